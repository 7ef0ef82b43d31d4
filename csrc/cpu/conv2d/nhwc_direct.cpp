// nhwc_direct: direct convolution on NHWC arrays with one input channel per group (depthwise with
// any channel multiplier, a first layer on a grey image), vectorized along the channels, which
// NHWC keeps contiguous (the loops: conv2d/nhwc_depthwise.h, compiled per ISA, reached through
// the ISA table). Memory-bound, like the NCHW `direct`; a GEMM would have one step of depth per
// tap. The weight (OHWI, which for one input channel per group is (c_out, taps)) is transposed
// tap-major into the arena first, so that a tap's weights are a vector along the channels.
//   forward      output rows of all images split over the threads; bias added in the loop.
//   grad_input   input rows split over the threads, each pixel gathered from the output pixels it
//                reaches (written once: no zeroing, no atomics).
//   grad_weight  fixed slices of the batch x chunks of output channels as the work items, each
//                summing into its own partial, added in slice order: the sums do not depend on the
//                thread count.
#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/conv2d/gemm_common.h"
#include "cpu/conv2d/nhwc_depthwise.h"
#include "cpu/isa_table.h"

namespace convforge::cpu::conv {
namespace {

// Minimum multiply-adds per thread before a second thread pays for its fork/join.
constexpr double kMinWorkPerThread = 1 << 16;

// grad_weight's slices of the batch: a function of the shape only (determinism), enough items to
// spread when the channels are few, and partial sums over at most n / slices images.
int64_t batch_slices(const Conv2dParams& p) { return std::clamp<int64_t>(p.n, 1, 8); }

int64_t weight_chunks(const Conv2dParams& p) { return (p.c_out + nhwc_dw::kWeightChunk - 1) / nhwc_dw::kWeightChunk; }

// wt[tap][co] = w[co][tap] (OHWI with one input channel per group).
template <typename T>
void tap_major(const Conv2dParams& p, const T* w, T* wt) {
  const int64_t taps = p.kh * p.kw;
  for (int64_t co = 0; co < p.c_out; ++co)
    for (int64_t t = 0; t < taps; ++t) wt[t * p.c_out + co] = w[co * taps + t];
}

double macs_per_output(const Conv2dParams& p) { return double(p.kh) * p.kw; }

}  // namespace

bool nhwc_direct_applies(const Conv2dParams& p, Pass) { return p.channels_last && p.c_in == p.groups; }

Workspace nhwc_direct_workspace(const Conv2dParams& p, Pass pass, int) {
  const size_t weight = size_t(dtype_size(p.dtype)) * p.c_out * p.kh * p.kw;
  Workspace ws;
  ws.shared = pass == Pass::grad_weight ? weight * batch_slices(p) : weight;
  ws.item = nhwc_dw::ScratchLayout(p, static_cast<int>(pass)).bytes;
  return ws;
}

bool nhwc_direct_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                         const void* bias, void* y) {
  const auto forward = isa_kernels().conv2d_nhwc_depthwise_forward;
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    T* wt = arena.shared<T>();
    tap_major(p, static_cast<const T*>(w), wt);
    const int64_t rows = p.n * p.out_h;
    const double work = macs_per_output(p) * p.out_w * p.c_out * rows;
    parallel_for(rows, threads_for(work, kMinWorkPerThread),
                 [&](int64_t r0, int64_t r1) { forward(p, x, wt, bias, y, arena.item<char>(), r0, r1); });
  });
  return true;
}

void nhwc_direct_grad_input(const Conv2dParams& p, const Arena& arena, const void* dy, const void* w, void* dx) {
  const auto grad_input = isa_kernels().conv2d_nhwc_depthwise_backward_input;
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    T* wt = arena.shared<T>();
    tap_major(p, static_cast<const T*>(w), wt);
    const int64_t rows = p.n * p.h;
    const double work = macs_per_output(p) * p.out_h * p.out_w * p.c_out * p.n;
    parallel_for(rows, threads_for(work, kMinWorkPerThread),
                 [&](int64_t r0, int64_t r1) { grad_input(p, dy, wt, dx, arena.item<char>(), r0, r1); });
  });
}

bool nhwc_direct_grad_weight(const Conv2dParams& p, const Arena& arena, const void* dy, const void* x, void* dw) {
  const auto grad_weight = isa_kernels().conv2d_nhwc_depthwise_backward_weight;
  const int64_t slices = batch_slices(p), chunks = weight_chunks(p), taps = p.kh * p.kw;
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    T* partials = arena.shared<T>();  // slices x taps x c_out
    const double work = macs_per_output(p) * p.out_h * p.out_w * p.c_out * p.n;
    parallel_for(slices * chunks, threads_for(work, kMinWorkPerThread), [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t s = item / chunks, chunk = item % chunks;
        const int64_t c0 = chunk * nhwc_dw::kWeightChunk, c1 = std::min(p.c_out, c0 + nhwc_dw::kWeightChunk);
        grad_weight(p, dy, x, partials + s * taps * p.c_out, arena.item<char>(), p.n * s / slices,
                    p.n * (s + 1) / slices, c0, c1);
      }
    });
    T* out = static_cast<T*>(dw);  // OHWI: (c_out, taps)
    for (int64_t co = 0; co < p.c_out; ++co)
      for (int64_t t = 0; t < taps; ++t) {
        T total = partials[t * p.c_out + co];
        for (int64_t s = 1; s < slices; ++s) total += partials[(s * taps + t) * p.c_out + co];
        out[co * taps + t] = total;
      }
  });
  return true;
}

}  // namespace convforge::cpu::conv
