// Pieces shared by the GEMM-based conv2d algorithms (gemm_*.cpp): geometry, the im2col packers
// that feed the packed GEMM driver of cpu/gemm.h without building the im2col matrix, col2im, and
// the loop over work items. Every sum has a fixed order that does not depend on the thread
// count: bitwise reproducible.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/conv2d_common.h"
#include "cpu/gemm.h"

namespace convforge::cpu::conv {
namespace {

struct Geometry {
  int64_t cig, cog, k, ohw;
};

inline Geometry geometry(const Conv2dParams& p) {
  Geometry g;
  g.cig = p.c_in / p.groups;
  g.cog = p.c_out / p.groups;
  g.k = g.cig * p.kh * p.kw;
  g.ohw = p.out_h * p.out_w;
  return g;
}

// A run of im2col columns that lie on one output row: columns [off, off + ow1 - ow0) of a panel
// are output pixels (oh, ow0 .. ow1) of image n.
struct Segment {
  int64_t n, oh, ow0, ow1, off;
};

// Splits the flat pixel range [q, q + count) (pixels of consecutive images, ohw each) into
// output-row segments; returns how many were written to seg.
inline int64_t row_segments(int64_t q, int64_t count, int64_t out_w, int64_t ohw, Segment* seg) {
  int64_t m = 0;
  int64_t n = q / ohw, pix = q % ohw, oh = pix / out_w, ow = pix % out_w;
  for (int64_t off = 0; off < count; ++m) {
    const int64_t len = std::min(out_w - ow, count - off);
    seg[m] = {n, oh, ow, ow + len, off};
    off += len;
    ow = 0;
    if (++oh == ohw / out_w) oh = 0, ++n;
  }
  return m;
}

// Gathers the im2col values of kernel tap (ci, i, j) for one segment into d[0 .. len) with
// element stride ds: x is the image's channel ci.
template <typename T>
inline void gather_segment(const Conv2dParams& p, const TapTable& taps, const T* xc, int64_t i,
                           int64_t j, const Segment& s, T* d, int64_t ds) {
  const int64_t len = s.ow1 - s.ow0;
  const int64_t ih = s.oh * p.stride_h - p.pad_h + i * p.dilation_h;
  const int64_t lo = std::max(s.ow0, taps.lo[j]), hi = std::min(s.ow1, taps.hi[j]);
  if (ih < 0 || ih >= p.h || hi <= lo) {
    for (int64_t t = 0; t < len; ++t) d[t * ds] = T(0);
    return;
  }
  for (int64_t t = 0; t < lo - s.ow0; ++t) d[t * ds] = T(0);
  const T* src = xc + ih * p.w + taps.src[j] + (lo - taps.lo[j]) * p.stride_w;
  T* dd = d + (lo - s.ow0) * ds;
  if (p.stride_w == 1 && ds == 1) {
#pragma omp simd
    for (int64_t t = 0; t < hi - lo; ++t) dd[t] = src[t];  // runs are short: no library call
  } else
    for (int64_t t = 0; t < hi - lo; ++t) dd[t * ds] = src[t * p.stride_w];
  for (int64_t t = hi - s.ow0; t < len; ++t) d[t * ds] = T(0);
}

// Adds bias[row] to each finished tile of C.
template <typename T>
struct BiasEpilogue {
  const T* bias;
  void operator()(T* c, int64_t ldc, int64_t i, int64_t, int64_t m, int64_t n) const {
    for (int64_t r = 0; r < m; ++r)
      for (int64_t t = 0; t < n; ++t) c[r * ldc + t] += bias[i + r];
  }
};

// Adds bias[column] to each finished tile of C (NHWC outputs: a row per pixel).
template <typename T>
struct ColumnBiasEpilogue {
  const T* bias;
  void operator()(T* c, int64_t ldc, int64_t, int64_t j, int64_t m, int64_t n) const {
    for (int64_t r = 0; r < m; ++r)
#pragma omp simd
      for (int64_t t = 0; t < n; ++t) c[r * ldc + t] += bias[j + t];
  }
};

// B of an NHWC forward, B(k, co) = w[co][k], from its OHWI weight w.
struct WeightPackBOf {
  template <typename T>
  StridedPackB<T> operator()(const Conv2dParams& p, const T* w, int64_t grp) const {
    const int64_t k = p.c_in / p.groups * p.kh * p.kw;
    return {w + grp * (p.c_out / p.groups) * k, 1, k};
  }
};

// B of the NHWC forward of a flipped problem (flipped_problem()), read from the OHWI weight w of
// the problem it was flipped from: row k = tap * cig + ci is that problem's output channel ci at
// tap taps - 1 - tap, a contiguous run over its input channels (this problem's output channels).
template <typename T>
struct FlippedWeightPackB {
  const T* w;  // the group's first output channel of the original problem
  int64_t cig, cog, taps;  // of the flipped problem
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    detail::pack_row_runs(
        [&](int64_t r) { return w + (k0 + r) % cig * cog * taps + (taps - 1 - (k0 + r) / cig) * cog + j0; }, kc,
        nc, nr, dst);
  }
};
struct FlippedWeightPackBOf {
  template <typename T>
  FlippedWeightPackB<T> operator()(const Conv2dParams& p, const T* w, int64_t grp) const {
    const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, taps = p.kh * p.kw;
    return {w + grp * cig * cog * taps, cig, cog, taps};
  }
};

// The forward of an NHWC problem as one GEMM per group over the pixels of all images,
// Y_g (pixels x cog) = A_g (pixels x k) * W_g^T + bias, written in place (row stride c_out), with
// the packer of A_g from pack_a(group) and that of W from pack_w(p, w, group).
template <typename T, typename PackAOf, typename PackBOf = WeightPackBOf>
void nhwc_forward(const Conv2dParams& p, const T* w, const T* bias, T* y, const PackAOf& pack_a,
                  const PackBOf& pack_w = {}) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const int64_t pixels = p.n * g.ohw;
  const int nt = gemm_threads(pixels, g.cog, g.k);
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    T* yg = y + grp * g.cog;
    if (bias)
      gemm_packed(kern, pixels, g.cog, g.k, T(1), pack_a(grp), pack_w(p, w, grp), T(0), yg, p.c_out, nt,
                  ColumnBiasEpilogue<T>{bias + grp * g.cog});
    else
      gemm_packed(kern, pixels, g.cog, g.k, T(1), pack_a(grp), pack_w(p, w, grp), T(0), yg, p.c_out, nt);
  }
}

// Runs fn(item, gemm_threads) for items [0, count): in parallel over items when there are enough
// of them (each item's GEMM then runs on one thread), else one after another with threaded GEMMs.
template <typename Fn>
void for_items(int64_t count, double work_per_item, int gemm_nt, Fn&& fn) {
  const int nt = threads_for(work_per_item * count, 1 << 20);
  if (nt > 1 && count >= 2 * nt) {
    parallel_for(count, nt, [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) fn(item, 1);
    });
  } else {
    for (int64_t item = 0; item < count; ++item) fn(item, gemm_nt);
  }
}

// grad_weight by slices of the batch: each slice of images sums into its own partial of the
// weight gradient (slice 0 into dw itself), and the partials are added to dw in slice order. The
// number of slices depends on the shape only (at most 8, partials of at most 2^20 elements in
// all): the sums do not depend on the thread count.
inline int64_t weight_slices(const Conv2dParams& p, const Geometry& g) {
  constexpr int64_t kMaxSlices = 8, kMaxPartialElements = int64_t{1} << 20;
  return std::clamp<int64_t>(kMaxPartialElements / std::max<int64_t>(p.c_out * g.k, 1), 1,
                             std::min(kMaxSlices, std::max<int64_t>(p.n, 1)));
}
// The arena's shared part that holds the partials.
inline size_t weight_partials_bytes(const Conv2dParams& p, const Geometry& g) {
  return size_t(dtype_size(p.dtype)) * (weight_slices(p, g) - 1) * p.c_out * g.k;
}
// fn(group, first image, end image, the group's (cog x k) block of the slice's partial, GEMM
// threads) for every slice and group.
template <typename T, typename Fn>
void sliced_grad_weight(const Conv2dParams& p, const Geometry& g, const Arena& arena, T* dw, Fn&& fn) {
  const int64_t wsize = p.c_out * g.k, slices = weight_slices(p, g);
  T* partials = arena.shared<T>();
  auto slice_output = [&](int64_t s) { return s == 0 ? dw : partials + (s - 1) * wsize; };
  const int64_t pixels = g.ohw * p.n / slices;
  for_items(slices * p.groups, double(g.cog) * g.k * pixels, gemm_threads(g.cog, g.k, pixels),
            [&](int64_t item, int nt) {
              const int64_t s = item / p.groups, grp = item % p.groups;
              fn(grp, p.n * s / slices, p.n * (s + 1) / slices, slice_output(s) + grp * g.cog * g.k, nt);
            });
  for (int64_t s = 1; s < slices; ++s) {
    const T* part = slice_output(s);
    for (int64_t e = 0; e < wsize; ++e) dw[e] += part[e];
  }
}

// Calls fn(T{}) with T the element type of p: the typed body of an untyped entry of the list.
template <typename Fn>
void with_dtype(const Conv2dParams& p, Fn&& fn) {
  if (p.dtype == DType::f32)
    fn(float{});
  else
    fn(double{});
}

// An untyped forward entry of the list over a typed body: fn(x, w, bias, y) with T* pointers.
template <typename Fn>
bool typed_forward(const Conv2dParams& p, const void* x, const void* w, const void* bias, void* y, Fn&& fn) {
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    fn(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<T*>(y));
  });
  return true;
}

// An untyped backward entry of the list over a typed body: fn(a, b, out) with T* pointers (the
// two inputs read, the gradient written).
template <typename Fn>
void typed_backward(const Conv2dParams& p, const void* a, const void* b, void* out, Fn&& fn) {
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    fn(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
  });
}

}  // namespace
}  // namespace convforge::cpu::conv
