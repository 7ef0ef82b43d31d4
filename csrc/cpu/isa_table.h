// The ISA table: one row per CPU path (scalar, avx2, avx512) holding everything compiled per ISA
// -- GEMM microkernels with their tiles and blocking, pooling kernels, the FMA probe -- filled
// once (at import) and read by the dispatchers: `isa_kernels()` is the active ISA's row. The
// per-ISA prototypes are declared here and nowhere else; each *__<isa>.cpp defines its own.
// (XNNPACK's per-family configs and BLIS's context are the models.)
//
// Adding an ISA or a kernel: declare its entry points below, define them in a translation unit
// of that ISA (only that ISA's flags; no shared symbols, see core/scratch.h), and fill the row in
// isa_table.cpp.
//
// The depthwise conv2d kernels have a slot in the row (conv2d_depthwise_*) that is not filled
// yet: conv2d still dispatches them itself (csrc/cpu/conv2d.cpp, conv2d_depthwise.h).
#pragma once
#include <cstdint>

#include "core/isa.h"
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
void sgemm_ukernel_14x32__avx512(int64_t, const float*, const float*, float*, int64_t, int64_t,
                                 int64_t, float, float);
void dgemm_ukernel_14x16__avx512(int64_t, const double*, const double*, double*, int64_t, int64_t,
                                 int64_t, double, double);
void sgemm_ukernel_6x16__avx2(int64_t, const float*, const float*, float*, int64_t, int64_t,
                              int64_t, float, float);
void dgemm_ukernel_6x8__avx2(int64_t, const double*, const double*, double*, int64_t, int64_t,
                             int64_t, double, double);
void sgemm_ukernel_4x8__scalar(int64_t, const float*, const float*, float*, int64_t, int64_t,
                               int64_t, float, float);
void dgemm_ukernel_4x8__scalar(int64_t, const double*, const double*, double*, int64_t, int64_t,
                               int64_t, double, double);

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

  // Depthwise conv2d (conv2d_depthwise.h): a slot, not filled yet (see the top of this file).
  void (*conv2d_depthwise_forward)(const Conv2dParams&, const void*, const void*, const void*,
                                   void*, int64_t, int64_t) = nullptr;
  void (*conv2d_depthwise_backward_input)(const Conv2dParams&, const void*, const void*, void*,
                                          int64_t, int64_t) = nullptr;
  void (*conv2d_depthwise_backward_weight)(const Conv2dParams&, const void*, const void*, void*,
                                           int64_t, int64_t) = nullptr;

  // FMA probe: one call of fma_chains runs iters rounds of fma_probe_flops FLOP each.
  double (*fma_chains)(int64_t iters, float a, float b) = nullptr;
  int64_t fma_probe_flops = 0;
};

// The row of an ISA (any ISA this build knows; a build without x86 kernels gives the scalar
// row for all), and the row of the active ISA (core/isa.h).
const IsaKernels& isa_kernels(Isa isa);
inline const IsaKernels& isa_kernels() { return isa_kernels(active_isa()); }

}  // namespace convforge::cpu
