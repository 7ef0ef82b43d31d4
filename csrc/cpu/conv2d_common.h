// Helpers shared by the conv2d kernels (the GEMM paths in conv2d.cpp and the direct depthwise
// loops): which output columns a kernel column reaches inside the input.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/scratch.h"
#include "ops.h"

namespace convforge::cpu {
// Internal linkage: included by translation units compiled for different ISAs.
namespace {

// The output columns [lo, hi) whose input column ow * stride - pad + tap * dilation lies in [0, in).
struct TapRange {
  int64_t lo, hi;
};
inline TapRange tap_range(int64_t tap, int64_t in, int64_t out, int64_t stride, int64_t pad,
                          int64_t dilation) {
  const int64_t shift = tap * dilation - pad;  // input column of output column 0
  int64_t lo = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
  int64_t hi = in - 1 - shift < 0 ? 0 : (in - 1 - shift) / stride + 1;
  lo = std::min(lo, out);
  hi = std::max(lo, std::min(hi, out));
  return {lo, hi};
}

// The output-column range [lo, hi) and the input column src of output column lo, for every
// kernel column j: computed once per call, so the divisions stay out of the row loops.
// Storage from Scratch, not std::vector: per-ISA files use this table (see core/scratch.h).
struct TapTable {
  Scratch storage;
  int64_t *lo, *hi, *src;
  explicit TapTable(const Conv2dParams& p)
      : lo(scratch_array<int64_t>(storage, 3 * p.kw)), hi(lo + p.kw), src(hi + p.kw) {
    for (int64_t j = 0; j < p.kw; ++j) {
      const TapRange r = tap_range(j, p.w, p.out_w, p.stride_w, p.pad_w, p.dilation_w);
      lo[j] = r.lo, hi[j] = r.hi, src[j] = r.lo * p.stride_w - p.pad_w + j * p.dilation_w;
    }
  }
};

}  // namespace
}  // namespace convforge::cpu
