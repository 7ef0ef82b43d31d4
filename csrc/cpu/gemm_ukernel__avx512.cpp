// SGEMM/DGEMM microkernels for AVX-512 (contract in csrc/cpu/gemm.h). Compiled with AVX-512 flags
// only in this translation unit; called only when the CPU supports them.
//
// The tile is MR x (2 vectors): 14 rows x 2 zmm = 28 accumulators, 2 B vectors and broadcasts
// from memory fill the 32 zmm registers. Edge columns use masked loads/stores of C (and a
// one-vector tile when at most one vector wide); edge rows use a tile instantiated for that many
// rows, so no edge costs more than a full tile.
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "cpu/gemm.h"
#include "cpu/isa_table.h"  // the prototypes of this file's microkernels

namespace convforge::cpu {
namespace {

struct F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_load_ps(p); }
  static V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static V set1(T x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V loadm(Mask k, const T* p) { return _mm512_maskz_loadu_ps(k, p); }
  static void storem(T* p, Mask k, V v) { _mm512_mask_storeu_ps(p, k, v); }
  static Mask mask(int64_t n) { return n >= 16 ? Mask(0xFFFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1); }
};

struct F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int lanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const T* p) { return _mm512_load_pd(p); }
  static V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static V set1(T x) { return _mm512_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V loadm(Mask k, const T* p) { return _mm512_maskz_loadu_pd(k, p); }
  static void storem(T* p, Mask k, V v) { _mm512_mask_storeu_pd(p, k, v); }
  static Mask mask(int64_t n) { return n >= 8 ? Mask(0xFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1); }
};

// M rows (M <= MR) x NV vectors of an MR x 2-vector tile (NV = 1 for an edge tile at most one
// vector wide: half the work, and the same sums in the same order as the full tile).
template <typename S, int MR, int M, int NV>
inline void tile(int64_t kc, const typename S::T* __restrict a, const typename S::T* __restrict b,
                 typename S::T* __restrict c, int64_t ldc, int64_t n, typename S::T alpha,
                 typename S::T beta) {
  using V = typename S::V;
  constexpr int L = S::lanes, NR = 2 * L;
  V acc0[M], acc1[M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    acc0[i] = S::zero();
    if constexpr (NV == 2) acc1[i] = S::zero();
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * L - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    const V b0 = S::load(b);
    V b1;
    if constexpr (NV == 2) b1 = S::load(b + L);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const V ai = S::bcast(a + i);
      acc0[i] = S::fma(ai, b0, acc0[i]);
      if constexpr (NV == 2) acc1[i] = S::fma(ai, b1, acc1[i]);
    }
    a += MR;
    b += NR;
  }
  const auto k0 = S::mask(n), k1 = S::mask(n - L);
  const V va = S::set1(alpha);
  if (beta == typename S::T(0)) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      S::storem(c + i * ldc, k0, S::mul(va, acc0[i]));
      if constexpr (NV == 2) S::storem(c + i * ldc + L, k1, S::mul(va, acc1[i]));
    }
  } else {
    const V vb = S::set1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      S::storem(c + i * ldc, k0, S::fma(vb, S::loadm(k0, c + i * ldc), S::mul(va, acc0[i])));
      if constexpr (NV == 2)
        S::storem(c + i * ldc + L, k1, S::fma(vb, S::loadm(k1, c + i * ldc + L), S::mul(va, acc1[i])));
    }
  }
}

template <typename S, int MR, int... Ms>
inline void dispatch_rows(std::integer_sequence<int, Ms...>, int64_t kc, const typename S::T* a,
                          const typename S::T* b, typename S::T* c, int64_t ldc, int64_t m,
                          int64_t n, typename S::T alpha, typename S::T beta) {
  using Fn = void (*)(int64_t, const typename S::T*, const typename S::T*, typename S::T*, int64_t,
                      int64_t, typename S::T, typename S::T);
  static constexpr Fn full[] = {tile<S, MR, Ms + 1, 2>...}, half[] = {tile<S, MR, Ms + 1, 1>...};
  (n > S::lanes ? full : half)[m - 1](kc, a, b, c, ldc, n, alpha, beta);
}

}  // namespace

static_assert(tiles::sgemm_avx512.mr == 14 && tiles::sgemm_avx512.nr == 2 * F32::lanes &&
                  tiles::dgemm_avx512.mr == 14 && tiles::dgemm_avx512.nr == 2 * F64::lanes,
              "the avx512 microkernels' tile and its entry in gemm.h (tiles::) must agree");

void sgemm_ukernel_14x32__avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                 int64_t m, int64_t n, float alpha, float beta) {
  dispatch_rows<F32, 14>(std::make_integer_sequence<int, 14>{}, kc, a, b, c, ldc, m, n, alpha, beta);
}

void dgemm_ukernel_14x16__avx512(int64_t kc, const double* a, const double* b, double* c,
                                 int64_t ldc, int64_t m, int64_t n, double alpha, double beta) {
  dispatch_rows<F64, 14>(std::make_integer_sequence<int, 14>{}, kc, a, b, c, ldc, m, n, alpha, beta);
}

}  // namespace convforge::cpu
