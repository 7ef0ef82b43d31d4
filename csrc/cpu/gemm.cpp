// CPU GEMM entry point, microkernel table and per-thread workspaces (the loops are in gemm.h).
#include "cpu/gemm.h"

#include "core/scratch.h"
#include "cpu/isa_table.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

// Blocking: the depth kc is the ISA table's (a deep kc = 512, fewer passes over C, beat the
// textbook "kc x NR panel in L1" by 3-5 % on Zen 4: L2 feeds both panels fast enough); mc and nc
// follow this core's L2 and L3 (with_blocking in isa_table.cpp). gemm_packed() evens out the k
// blocks and halves kc for products with fewer than mc rows (block_kc in gemm.h).
template <>
GemmKernel<float> gemm_kernel<float>(Isa isa) {
  return isa_kernels(isa).sgemm;
}

template <>
GemmKernel<double> gemm_kernel<double>(Isa isa) {
  return isa_kernels(isa).dgemm;
}

int gemm_threads(int64_t m, int64_t n, int64_t k) {
  // Waking a thread costs about a microsecond: each thread should get >= ~0.5 MFLOP.
  return threads_for(double(m) * double(n) * double(std::max<int64_t>(k, 1)), 1 << 18);
}

void* gemm_workspace(int slot, size_t bytes) {
  static thread_local Scratch buffers[2];
  return buffers[slot].reserve(bytes);
}

template <typename T>
static void gemm_typed(const GemmParams& p) {
  // op(A)(i, p) and op(B)(p, j) as strided matrices: a transpose swaps the strides.
  const StridedPackA<T> pack_a{static_cast<const T*>(p.a), p.trans_a ? 1 : p.lda, p.trans_a ? p.lda : 1};
  const StridedPackB<T> pack_b{static_cast<const T*>(p.b), p.trans_b ? 1 : p.ldb, p.trans_b ? p.ldb : 1};
  gemm_packed(gemm_kernel<T>(), p.m, p.n, p.k, static_cast<T>(p.alpha), pack_a, pack_b,
              static_cast<T>(p.beta), static_cast<T*>(p.c), p.ldc, gemm_threads(p.m, p.n, p.k));
}

void gemm(const GemmParams& p) {
  if (p.dtype == DType::f32)
    gemm_typed<float>(p);
  else
    gemm_typed<double>(p);
}

}  // namespace convforge::cpu
