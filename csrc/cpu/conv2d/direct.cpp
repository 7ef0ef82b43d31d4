// direct: loops straight over the kernel taps, vectorized along the width (cpu/conv2d_depthwise.h,
// compiled per ISA, reached through the ISA table). Memory-bound; it pays when a GEMM would have a
// single row or a single step of depth: one input channel per group (depthwise, a first layer on a
// grey image) or one output channel per group (the flipped-weight forward of such layers'
// grad_input).
//   forward      any problem, one output plane after another.
//   grad_input   one input channel per group: each input plane written once, from its group's
//                output channels.
//   grad_weight  one input channel per group.
#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/isa_table.h"

namespace convforge::cpu::conv {
namespace {

// Minimum multiply-adds per thread before a second thread pays for its fork/join.
constexpr double kMinWorkPerThread = 1 << 16;

}  // namespace

bool direct_applies(const Conv2dParams& p, Pass pass) {
  return !p.channels_last && (pass == Pass::forward || p.c_in == p.groups);
}

Workspace direct_workspace(const Conv2dParams&, Pass, int) { return {}; }

bool direct_forward(const Conv2dParams& p, const Arena&, const void* x, const void* w, const void* b,
                    void* y) {
  const auto forward = isa_kernels().conv2d_depthwise_forward;
  const int64_t planes = p.n * p.c_out;
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_in / p.groups);
  parallel_for(planes, threads_for(work * planes, kMinWorkPerThread),
               [&](int64_t b0, int64_t b1) { forward(p, x, w, b, y, b0, b1); });
  return true;
}

void direct_grad_input(const Conv2dParams& p, const Arena&, const void* dy, const void* w, void* dx) {
  const auto grad_input = isa_kernels().conv2d_depthwise_backward_input;
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_out / p.groups);
  parallel_for(p.n * p.c_in, threads_for(work * p.n * p.c_in, kMinWorkPerThread),
               [&](int64_t b0, int64_t b1) { grad_input(p, dy, w, dx, b0, b1); });
}

bool direct_grad_weight(const Conv2dParams& p, const Arena&, const void* dy, const void* x, void* dw) {
  const auto grad_weight = isa_kernels().conv2d_depthwise_backward_weight;
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_out / p.groups);
  parallel_for(p.c_out, threads_for(work * p.n * p.groups, kMinWorkPerThread),
               [&](int64_t b0, int64_t b1) { grad_weight(p, dy, x, dw, b0, b1); });
  return true;
}

}  // namespace convforge::cpu::conv
