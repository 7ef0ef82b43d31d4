// The ISA table: one row per CPU path (scalar, avx2, avx512) holding everything compiled per ISA
// -- GEMM microkernels with their tiles and blocking, pooling kernels, conv2d's direct loops (NCHW
// and NHWC) and Winograd transforms, the FMA probe -- filled once (at import) and read by the
// dispatchers: `isa_kernels()` is the active ISA's row. The per-ISA prototypes are declared here
// and nowhere else; each *__<isa>.cpp defines its own.
// (XNNPACK's per-family configs and BLIS's context are the models.)
//
// Adding an ISA or a kernel: declare its entry points below, define them in a translation unit
// of that ISA (only that ISA's flags; no shared symbols, see core/scratch.h), and fill the row in
// isa_table.cpp.
#pragma once
#include <cstdint>

#include "core/isa.h"
#include "cpu/conv2d/winograd_f2x3.h"
#include "cpu/conv2d/winograd_f4x3.h"
#include "cpu/gemm.h"
#include "ops.h"

namespace convforge {

// FMA throughput probe (core/probe.h): iters rounds of kFmaProbeChains independent chains.
double fma_chains__avx512(int64_t iters, float a, float b);
double fma_chains__avx2(int64_t iters, float a, float b);
double fma_chains__scalar(int64_t iters, float a, float b);

}  // namespace convforge

namespace convforge::cpu {

// GEMM microkernels (contract in gemm.h).
void sgemm_ukernel_14x32__avx512(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t,
                                 int64_t, float, float);
void dgemm_ukernel_14x16__avx512(int64_t, const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t,
                                 int64_t, double, double);
void sgemm_ukernel_6x16__avx2(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t,
                              int64_t, float, float);
void dgemm_ukernel_6x8__avx2(int64_t, const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t,
                             int64_t, double, double);
void sgemm_ukernel_4x8__scalar(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t,
                               int64_t, float, float);
void dgemm_ukernel_4x8__scalar(int64_t, const double*, int64_t, const double*, int64_t, double*, int64_t, int64_t,
                               int64_t, double, double);
// Their window microkernels (A read in place; contract in gemm.h).
#define CONVFORGE_DECLARE_WINDOW_UKERNEL(T, name)                                                  \
  void name(const T*, int64_t, const int64_t*, int64_t, int64_t, const T*, const T*, T, T*, int64_t, int64_t, \
            int64_t);
CONVFORGE_DECLARE_WINDOW_UKERNEL(float, sgemm_window_ukernel_14x32__avx512)
CONVFORGE_DECLARE_WINDOW_UKERNEL(double, dgemm_window_ukernel_14x16__avx512)
CONVFORGE_DECLARE_WINDOW_UKERNEL(float, sgemm_window_ukernel_6x16__avx2)
CONVFORGE_DECLARE_WINDOW_UKERNEL(double, dgemm_window_ukernel_6x8__avx2)
CONVFORGE_DECLARE_WINDOW_UKERNEL(float, sgemm_window_ukernel_4x8__scalar)
CONVFORGE_DECLARE_WINDOW_UKERNEL(double, dgemm_window_ukernel_4x8__scalar)
#undef CONVFORGE_DECLARE_WINDOW_UKERNEL

// Pooling (pool2d_impl.h compiled per ISA; the scalar ones live in pool2d.cpp).
#define CONVFORGE_DECLARE_POOL2D(isa)                                                         \
  void max_pool2d_forward__##isa(const Pool2dParams& p, const void* x, void* y, int64_t* idx); \
  bool max_pool2d_backward__##isa(const Pool2dParams& p, const void* dy, const int64_t* idx,   \
                                  void* dx);                                                   \
  void avg_pool2d_forward__##isa(const Pool2dParams& p, const void* x, void* y);               \
  void avg_pool2d_backward__##isa(const Pool2dParams& p, const void* dy, void* dx);
CONVFORGE_DECLARE_POOL2D(scalar)
CONVFORGE_DECLARE_POOL2D(avx2)
CONVFORGE_DECLARE_POOL2D(avx512)
#undef CONVFORGE_DECLARE_POOL2D

// conv2d's direct loops (conv2d_depthwise.h compiled per ISA): output planes, input-gradient planes
// or weight-gradient output channels [begin, end).
#define CONVFORGE_DECLARE_CONV2D_DIRECT(isa)                                                      \
  void conv2d_depthwise_forward__##isa(const Conv2dParams& p, const void* x, const void* w,      \
                                       const void* b, void* y, int64_t begin, int64_t end);       \
  void conv2d_depthwise_backward_input__##isa(const Conv2dParams& p, const void* dy,             \
                                              const void* w, void* dx, int64_t begin,            \
                                              int64_t end);                                       \
  void conv2d_depthwise_backward_weight__##isa(const Conv2dParams& p, const void* dy,            \
                                               const void* x, void* dw, int64_t begin,           \
                                               int64_t end);
CONVFORGE_DECLARE_CONV2D_DIRECT(scalar)
CONVFORGE_DECLARE_CONV2D_DIRECT(avx2)
CONVFORGE_DECLARE_CONV2D_DIRECT(avx512)
#undef CONVFORGE_DECLARE_CONV2D_DIRECT

// conv2d's NHWC direct loops for one input channel per group (conv2d/nhwc_depthwise.h compiled per
// ISA), vectorized along the channels: output rows [begin, end) of n * out_h, input-gradient rows
// [begin, end) of n * h, or the weight-gradient sums of images [n0, n1) for output channels
// [c0, c1). wt is the weight tap-major (taps x c_out); scratch is the calling thread's, laid out by
// nhwc_dw::ScratchLayout.
#define CONVFORGE_DECLARE_CONV2D_NHWC_DEPTHWISE(isa)                                               \
  void conv2d_nhwc_depthwise_forward__##isa(const Conv2dParams& p, const void* x, const void* wt,   \
                                            const void* b, void* y, void* scratch, int64_t begin,  \
                                            int64_t end);                                           \
  void conv2d_nhwc_depthwise_backward_input__##isa(const Conv2dParams& p, const void* dy,          \
                                                   const void* wt, void* dx, void* scratch,        \
                                                   int64_t begin, int64_t end);                     \
  void conv2d_nhwc_depthwise_backward_weight__##isa(const Conv2dParams& p, const void* dy,         \
                                                    const void* x, void* sums, void* scratch,      \
                                                    int64_t n0, int64_t n1, int64_t c0, int64_t c1);
CONVFORGE_DECLARE_CONV2D_NHWC_DEPTHWISE(scalar)
CONVFORGE_DECLARE_CONV2D_NHWC_DEPTHWISE(avx2)
CONVFORGE_DECLARE_CONV2D_NHWC_DEPTHWISE(avx512)
#undef CONVFORGE_DECLARE_CONV2D_NHWC_DEPTHWISE

}  // namespace convforge::cpu

// conv2d's Winograd F(4x4, 3x3) transforms (cpu/conv2d/winograd_f4x3_kernels.h compiled per ISA).
namespace convforge::cpu::conv::winograd {
#define CONVFORGE_DECLARE_WINOGRAD(isa)                                                           \
  float winograd_f4x3_input__##isa(const float*, const Plane&, int64_t, int64_t, const Block&,     \
                                   float*, int64_t, int64_t, float*);                             \
  void winograd_f4x3_output__##isa(const float*, int64_t, const Block&, float, float*, const Plane&, \
                                   float*);                                                       \
  bool winograd_f4x3_weight__##isa(const float*, int64_t, int64_t, float*, int64_t);                \
  float winograd_f4x3_grad_output__##isa(const float*, const Plane&, const Block&, float*, int64_t,  \
                                         int64_t, float*);                                         \
  void winograd_f4x3_weight_grad__##isa(const double*, int64_t, int64_t, float*, const Taps&);      \
  float winograd_f4x3_input_tile__##isa(const float*, const Plane&, int64_t, int64_t, int64_t, float*, \
                                        int64_t);                                                 \
  void winograd_f4x3_output_tile__##isa(const float*, int64_t, int64_t, const float*, float*, const Plane&, \
                                        int64_t, int64_t);                                        \
  float winograd_f4x3_grad_output_tile__##isa(const float*, const Plane&, int64_t, int64_t, int64_t, float*, \
                                              int64_t);
CONVFORGE_DECLARE_WINOGRAD(scalar)
CONVFORGE_DECLARE_WINOGRAD(avx2)
CONVFORGE_DECLARE_WINOGRAD(avx512)
#undef CONVFORGE_DECLARE_WINOGRAD
}  // namespace convforge::cpu::conv::winograd

// conv2d's Winograd F(2x2, 3x3) weight-gradient transforms (cpu/conv2d/winograd_f2x3_kernels.h).
namespace convforge::cpu::conv::winograd::f2x3 {
#define CONVFORGE_DECLARE_WINOGRAD_F2X3(isa)                                                      \
  float winograd_f2x3_input_tile__##isa(const float*, const Plane&, int64_t, int64_t, int64_t, float*, \
                                        int64_t);                                                 \
  float winograd_f2x3_grad_output_tile__##isa(const float*, const Plane&, int64_t, int64_t, int64_t, float*, \
                                              int64_t);                                           \
  void winograd_f2x3_weight_grad__##isa(const float*, int64_t, int64_t, float*, const Taps&);
CONVFORGE_DECLARE_WINOGRAD_F2X3(scalar)
CONVFORGE_DECLARE_WINOGRAD_F2X3(avx2)
CONVFORGE_DECLARE_WINOGRAD_F2X3(avx512)
#undef CONVFORGE_DECLARE_WINOGRAD_F2X3
}  // namespace convforge::cpu::conv::winograd::f2x3

namespace convforge::cpu {

struct IsaKernels {
  Isa isa = Isa::scalar;

  GemmKernel<float> sgemm;
  GemmKernel<double> dgemm;
  template <typename T>
  const GemmKernel<T>& gemm() const {
    if constexpr (sizeof(T) == sizeof(float)) return sgemm; else return dgemm;
  }

  void (*max_pool2d_forward)(const Pool2dParams&, const void*, void*, int64_t*) = nullptr;
  bool (*max_pool2d_backward)(const Pool2dParams&, const void*, const int64_t*, void*) = nullptr;
  void (*avg_pool2d_forward)(const Pool2dParams&, const void*, void*) = nullptr;
  void (*avg_pool2d_backward)(const Pool2dParams&, const void*, void*) = nullptr;

  // conv2d: the direct loops (one input channel per group, ...) and the Winograd transforms.
  void (*conv2d_depthwise_forward)(const Conv2dParams&, const void*, const void*, const void*,
                                   void*, int64_t, int64_t) = nullptr;
  void (*conv2d_depthwise_backward_input)(const Conv2dParams&, const void*, const void*, void*,
                                          int64_t, int64_t) = nullptr;
  void (*conv2d_depthwise_backward_weight)(const Conv2dParams&, const void*, const void*, void*,
                                           int64_t, int64_t) = nullptr;
  // NHWC, one input channel per group (vectorized along the channels).
  void (*conv2d_nhwc_depthwise_forward)(const Conv2dParams&, const void*, const void*, const void*,
                                        void*, void*, int64_t, int64_t) = nullptr;
  void (*conv2d_nhwc_depthwise_backward_input)(const Conv2dParams&, const void*, const void*, void*,
                                               void*, int64_t, int64_t) = nullptr;
  void (*conv2d_nhwc_depthwise_backward_weight)(const Conv2dParams&, const void*, const void*, void*,
                                                void*, int64_t, int64_t, int64_t, int64_t) = nullptr;
  conv::winograd::Transforms winograd_f4x3 = {};
  conv::winograd::f2x3::Transforms winograd_f2x3 = {};

  // FMA probe: one call of fma_chains runs iters rounds of fma_probe_flops FLOP each.
  double (*fma_chains)(int64_t iters, float a, float b) = nullptr;
  int64_t fma_probe_flops = 0;
};

// The row of an ISA (any ISA this build knows; a build without x86 kernels gives the scalar
// row for all), and the row of the active ISA (core/isa.h).
const IsaKernels& isa_kernels(Isa isa);
inline const IsaKernels& isa_kernels() { return isa_kernels(active_isa()); }

}  // namespace convforge::cpu
