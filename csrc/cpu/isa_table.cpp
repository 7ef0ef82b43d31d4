// The ISA table's rows (see isa_table.h), built once, on first use (at import: info() reads it).
#include "cpu/isa_table.h"

#include "core/probe.h"

namespace convforge::cpu {

namespace {

IsaKernels scalar_row() {
  IsaKernels r;
  r.isa = Isa::scalar;
  // GEMM blocking (kc, mc, nc): see gemm.cpp.
  r.sgemm = {sgemm_ukernel_4x8__scalar, 4, 8, 256, 4 * 64, 8 * 512, "sgemm_ukernel_4x8__scalar"};
  r.dgemm = {dgemm_ukernel_4x8__scalar, 4, 8, 256, 4 * 32, 8 * 256, "dgemm_ukernel_4x8__scalar"};
  r.max_pool2d_forward = max_pool2d_forward__scalar;
  r.max_pool2d_backward = max_pool2d_backward__scalar;
  r.avg_pool2d_forward = avg_pool2d_forward__scalar;
  r.avg_pool2d_backward = avg_pool2d_backward__scalar;
  r.fma_chains = fma_chains__scalar;
  r.fma_probe_flops = kFmaProbeFlops__scalar;
  return r;
}

#if defined(CONVFORGE_X86)
IsaKernels avx2_row() {
  IsaKernels r;
  r.isa = Isa::avx2;
  r.sgemm = {sgemm_ukernel_6x16__avx2, 6, 16, 512, 6 * 56, 16 * 256, "sgemm_ukernel_6x16__avx2"};
  r.dgemm = {dgemm_ukernel_6x8__avx2, 6, 8, 512, 6 * 28, 8 * 256, "dgemm_ukernel_6x8__avx2"};
  r.max_pool2d_forward = max_pool2d_forward__avx2;
  r.max_pool2d_backward = max_pool2d_backward__avx2;
  r.avg_pool2d_forward = avg_pool2d_forward__avx2;
  r.avg_pool2d_backward = avg_pool2d_backward__avx2;
  r.fma_chains = fma_chains__avx2;
  r.fma_probe_flops = kFmaProbeFlops__avx2;
  return r;
}

IsaKernels avx512_row() {
  IsaKernels r;
  r.isa = Isa::avx512;
  r.sgemm = {sgemm_ukernel_14x32__avx512, 14, 32, 512, 14 * 24, 32 * 128, "sgemm_ukernel_14x32__avx512"};
  r.dgemm = {dgemm_ukernel_14x16__avx512, 14, 16, 512, 14 * 12, 16 * 128, "dgemm_ukernel_14x16__avx512"};
  r.max_pool2d_forward = max_pool2d_forward__avx512;
  r.max_pool2d_backward = max_pool2d_backward__avx512;
  r.avg_pool2d_forward = avg_pool2d_forward__avx512;
  r.avg_pool2d_backward = avg_pool2d_backward__avx512;
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

}  // namespace

const IsaKernels& isa_kernels(Isa isa) {
  static const Table table;
  return table.rows[static_cast<int>(isa)];
}

}  // namespace convforge::cpu
