// CPU GEMM entry point, microkernel table and per-thread workspaces (the loops are in gemm.h).
#include "cpu/gemm.h"

#include <cstring>

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

// C = alpha * A B^T + beta * C for an A of few rows and a B^T stored as rows (a Linear layer: A
// the batch, B its n x k weight) as C^T = B A^T: B's rows run along k, so the window microkernel
// reads them (copied a tile at a time into a buffer whose rows do not share L1 sets: weight rows
// a multiple of 4 KiB apart evicted each other) instead of B being transposed into packed panels
// (the transpose took 30 % of the time of 64 x 9216 x 4096). A^T is packed per k block (small),
// C^T accumulates in thread scratch and is transposed into C at the end. The threads split B's
// rows, so the bits do not depend on their count.
template <typename T>
static bool small_batch_bt(const GemmKernel<T>& kern, const GemmParams& p) {
  return !p.trans_a && p.trans_b && p.k > 0 && p.m <= 4 * kern.nr && p.n >= 4 * kern.mr;
}

template <typename T>
static void gemm_small_batch_bt(const GemmKernel<T>& kern, const GemmParams& p, int nthreads) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* c = static_cast<T*>(p.c);
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  const int64_t m = p.m, n = p.n, k = p.k, MR = kern.mr, NR = kern.nr;
  constexpr int64_t kLine = 64 / sizeof(T);
  const int64_t m_pad = detail::round_up(m, NR), kc_max = detail::block_kc(kern, k, m);
  const int64_t ld_tile = kc_max + kLine;  // a line more than the run: consecutive rows change sets
  const int64_t tiles = (n + MR - 1) / MR;
  static constexpr int64_t kOneRun = 0;
  parallel_for(tiles, nthreads, [&](int64_t t0, int64_t t1) {
    const int64_t row0 = t0 * MR, rows = std::min(n, t1 * MR) - row0;
    T* at = static_cast<T*>(gemm_workspace(0, sizeof(T) * (kc_max * m_pad + 2 * MR * ld_tile)));
    T* b_tile = at + kc_max * m_pad;  // two tiles: the microkernel prefetches the "next" one
    T* ct = static_cast<T*>(gemm_workspace(1, sizeof(T) * rows * m_pad));
    for (int64_t pc = 0; pc < k; pc += kc_max) {
      const int64_t kc = std::min(kc_max, k - pc);
      detail::pack_panels_any(a + pc, 1, p.lda, kc, m, NR, at);  // A^T(q, j) = A(j, pc + q)
      for (int64_t i = 0; i < rows; i += MR) {
        const int64_t mt = std::min(MR, rows - i), next = std::min(MR, rows - i - MR);
        const T* bi = b + (row0 + i) * p.ldb + pc;
        for (int64_t r = 0; r < mt; ++r) std::memcpy(b_tile + r * ld_tile, bi + r * p.ldb, sizeof(T) * kc);
        for (int64_t r = 0; r < next; ++r)  // the next tile's rows into L2 (B streams from memory)
          for (int64_t q = 0; q < kc; q += kLine) __builtin_prefetch(bi + (MR + r) * p.ldb + q, 0, 2);
        for (int64_t j = 0; j < m; j += NR)
          kern.window_ukernel(b_tile, ld_tile, &kOneRun, 1, kc, at + j * kc, nullptr, T(pc == 0 ? 0 : 1),
                              ct + i * m_pad + j, m_pad, mt, std::min(NR, m - j));
      }
    }
    // C(j, row0 + i) = alpha * C^T(i, j) + beta * C(j, row0 + i); beta == 0 does not read C.
    if (alpha == T(1) && beta == T(0)) {
      detail::transpose(ct, m_pad, m, rows, c + row0, p.ldc);
      return;
    }
    for (int64_t j = 0; j < m; ++j)
      for (int64_t i = 0; i < rows; ++i) {
        T& out = c[j * p.ldc + row0 + i];
        out = alpha * ct[i * m_pad + j] + (beta == T(0) ? T(0) : beta * out);
      }
  });
}

template <typename T>
static void gemm_typed(const GemmParams& p) {
  const GemmKernel<T> kern = gemm_kernel<T>();
  if (small_batch_bt(kern, p)) return gemm_small_batch_bt(kern, p, gemm_threads(p.m, p.n, p.k));
  // op(A)(i, p) and op(B)(p, j) as strided matrices: a transpose swaps the strides.
  const StridedPackA<T> pack_a{static_cast<const T*>(p.a), p.trans_a ? 1 : p.lda, p.trans_a ? p.lda : 1};
  const StridedPackB<T> pack_b{static_cast<const T*>(p.b), p.trans_b ? 1 : p.ldb, p.trans_b ? p.ldb : 1};
  gemm_packed(kern, p.m, p.n, p.k, static_cast<T>(p.alpha), pack_a, pack_b,
              static_cast<T>(p.beta), static_cast<T*>(p.c), p.ldc, gemm_threads(p.m, p.n, p.k));
}

void gemm(const GemmParams& p) {
  if (p.dtype == DType::f32)
    gemm_typed<float>(p);
  else
    gemm_typed<double>(p);
}

}  // namespace convforge::cpu
