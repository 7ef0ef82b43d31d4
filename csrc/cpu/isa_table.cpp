// The ISA table's rows (see isa_table.h), built once, on first use (at import: info() reads it).
#include "cpu/isa_table.h"

#include <algorithm>

#include "core/cache.h"
#include "core/probe.h"

namespace convforge::cpu {

namespace {

// A microkernel, its tile and its depth kc; its name is its own. mc and nc come from the caches.
#define CONVFORGE_GEMM_ROW(ukernel, window_ukernel, tile, kc) \
  with_blocking(ukernel, window_ukernel, (tile).mr, (tile).nr, kc, #ukernel)

// The blocks around a microkernel, from this core's caches: the mc x kc A block takes about 2/3
// of L2 (the rest holds the B panel in use and C's tiles; on a 1 MiB L2 that is the 336 rows of
// the 14x32 float tile at kc = 512 measured best on Zen 4), the kc x nc B block half of the core's
// share of L3.
template <typename T>
GemmKernel<T> with_blocking(GemmUkernel<T> ukernel, GemmWindowUkernel<T> window_ukernel, int64_t mr,
                            int64_t nr, int64_t kc, const char* name) {
  GemmKernel<T> k{ukernel, window_ukernel, mr, nr, kc, 1, 1, name};
  const CacheSizes& caches = host_caches();
  const int64_t row_bytes = k.kc * int64_t{sizeof(T)};
  k.mc = std::max<int64_t>(4, caches.l2 * 2 / 3 / row_bytes / k.mr) * k.mr;
  k.nc = std::clamp<int64_t>(caches.l3_per_core / 2 / row_bytes / k.nr, 16, 512) * k.nr;
  return k;
}

// conv2d's kernels of one ISA.
#define CONVFORGE_CONV2D_ROW(r, isa)                                                             \
  r.conv2d_depthwise_forward = conv2d_depthwise_forward__##isa;                                  \
  r.conv2d_depthwise_backward_input = conv2d_depthwise_backward_input__##isa;                    \
  r.conv2d_depthwise_backward_weight = conv2d_depthwise_backward_weight__##isa;                  \
  r.conv2d_nhwc_depthwise_forward = conv2d_nhwc_depthwise_forward__##isa;                        \
  r.conv2d_nhwc_depthwise_backward_input = conv2d_nhwc_depthwise_backward_input__##isa;          \
  r.conv2d_nhwc_depthwise_backward_weight = conv2d_nhwc_depthwise_backward_weight__##isa;        \
  r.winograd_f4x3 = {conv::winograd::winograd_f4x3_input__##isa, conv::winograd::winograd_f4x3_output__##isa, \
                     conv::winograd::winograd_f4x3_weight__##isa,                                 \
                     conv::winograd::winograd_f4x3_grad_output__##isa,                            \
                     conv::winograd::winograd_f4x3_weight_grad__##isa,                            \
                     conv::winograd::winograd_f4x3_input_tile__##isa,                             \
                     conv::winograd::winograd_f4x3_output_tile__##isa,                            \
                     conv::winograd::winograd_f4x3_grad_output_tile__##isa};                      \
  r.winograd_f2x3 = {conv::winograd::f2x3::winograd_f2x3_input_tile__##isa,                        \
                     conv::winograd::f2x3::winograd_f2x3_grad_output_tile__##isa,                  \
                     conv::winograd::f2x3::winograd_f2x3_weight_grad__##isa}

IsaKernels scalar_row() {
  IsaKernels r;
  r.isa = Isa::scalar;
  r.sgemm = CONVFORGE_GEMM_ROW(sgemm_ukernel_4x8__scalar, sgemm_window_ukernel_4x8__scalar,
                              tiles::sgemm_scalar, 256);
  r.dgemm = CONVFORGE_GEMM_ROW(dgemm_ukernel_4x8__scalar, dgemm_window_ukernel_4x8__scalar,
                              tiles::dgemm_scalar, 256);
  r.max_pool2d_forward = max_pool2d_forward__scalar;
  r.max_pool2d_backward = max_pool2d_backward__scalar;
  r.avg_pool2d_forward = avg_pool2d_forward__scalar;
  r.avg_pool2d_backward = avg_pool2d_backward__scalar;
  CONVFORGE_CONV2D_ROW(r, scalar);
  r.fma_chains = fma_chains__scalar;
  r.fma_probe_flops = kFmaProbeFlops__scalar;
  return r;
}

#if defined(CONVFORGE_X86)
IsaKernels avx2_row() {
  IsaKernels r;
  r.isa = Isa::avx2;
  r.sgemm = CONVFORGE_GEMM_ROW(sgemm_ukernel_6x16__avx2, sgemm_window_ukernel_6x16__avx2,
                              tiles::sgemm_avx2, 512);
  r.dgemm = CONVFORGE_GEMM_ROW(dgemm_ukernel_6x8__avx2, dgemm_window_ukernel_6x8__avx2,
                              tiles::dgemm_avx2, 512);
  r.max_pool2d_forward = max_pool2d_forward__avx2;
  r.max_pool2d_backward = max_pool2d_backward__avx2;
  r.avg_pool2d_forward = avg_pool2d_forward__avx2;
  r.avg_pool2d_backward = avg_pool2d_backward__avx2;
  CONVFORGE_CONV2D_ROW(r, avx2);
  r.fma_chains = fma_chains__avx2;
  r.fma_probe_flops = kFmaProbeFlops__avx2;
  return r;
}

IsaKernels avx512_row() {
  IsaKernels r;
  r.isa = Isa::avx512;
  r.sgemm = CONVFORGE_GEMM_ROW(sgemm_ukernel_14x32__avx512, sgemm_window_ukernel_14x32__avx512,
                              tiles::sgemm_avx512, 512);
  r.dgemm = CONVFORGE_GEMM_ROW(dgemm_ukernel_14x16__avx512, dgemm_window_ukernel_14x16__avx512,
                              tiles::dgemm_avx512, 512);
  r.max_pool2d_forward = max_pool2d_forward__avx512;
  r.max_pool2d_backward = max_pool2d_backward__avx512;
  r.avg_pool2d_forward = avg_pool2d_forward__avx512;
  r.avg_pool2d_backward = avg_pool2d_backward__avx512;
  CONVFORGE_CONV2D_ROW(r, avx512);
  r.fma_chains = fma_chains__avx512;
  r.fma_probe_flops = kFmaProbeFlops__avx512;
  return r;
}
#endif

struct Table {
  IsaKernels rows[3];
  Table() {
    rows[0] = scalar_row();
#if defined(CONVFORGE_X86)
    rows[1] = avx2_row();
    rows[2] = avx512_row();
#else
    rows[1] = rows[2] = rows[0];  // no x86 kernels: every ISA name runs the portable ones
#endif
  }
};

#undef CONVFORGE_GEMM_ROW
#undef CONVFORGE_CONV2D_ROW

}  // namespace

const IsaKernels& isa_kernels(Isa isa) {
  static const Table table;
  return table.rows[static_cast<int>(isa)];
}

}  // namespace convforge::cpu
