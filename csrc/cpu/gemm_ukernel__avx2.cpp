// SGEMM/DGEMM microkernels for AVX2+FMA (contract in csrc/cpu/gemm.h). Compiled with AVX2/FMA
// flags only in this translation unit; called only when the CPU supports them.
//
// The tile is 6 rows x 2 ymm: 12 accumulators, 2 B vectors and a broadcast fill the 16 ymm
// registers. Edge columns use masked loads/stores of C; edge rows use a tile instantiated for
// that many rows.
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "cpu/gemm.h"
#include "cpu/isa_table.h"  // the prototypes of this file's microkernels

namespace convforge::cpu {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  static constexpr int lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const T* p) { return _mm256_load_ps(p); }
  static V loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  static V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V set1(T x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n < 0 ? 0 : n > 8 ? 8 : n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V loadm(__m256i k, const T* p) { return _mm256_maskload_ps(p, k); }
  static void storem(T* p, __m256i k, V v) { _mm256_maskstore_ps(p, k, v); }
};

struct F64 {
  using T = double;
  using V = __m256d;
  static constexpr int lanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const T* p) { return _mm256_load_pd(p); }
  static V loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
  static V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V set1(T x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n < 0 ? 0 : n > 4 ? 4 : n),
                              _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V loadm(__m256i k, const T* p) { return _mm256_maskload_pd(p, k); }
  static void storem(T* p, __m256i k, V v) { _mm256_maskstore_pd(p, k, v); }
};

// M rows x NV vectors of C (NV = 1 for an edge tile at most one vector wide: half the work).
template <typename S, int MR, int M, int NV>
inline void tile(int64_t kc, const typename S::T* __restrict a, const typename S::T* __restrict b,
                 typename S::T* __restrict c, int64_t ldc, int64_t n, typename S::T alpha,
                 typename S::T beta) {
  using V = typename S::V;
  constexpr int L = S::lanes, NR = 2 * L;
  V acc[NV][M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) acc[v][i] = S::zero();
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * L - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const V ai = S::bcast(a + i);
      for (int v = 0; v < NV; ++v) acc[v][i] = S::fma(ai, bv[v], acc[v][i]);
    }
    a += MR;
    b += NR;
  }
  const V va = S::set1(alpha), vb = S::set1(beta);
  const bool keep = beta != typename S::T(0);
  if (n == NV * L) {
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < NV; ++v) {
        V r = S::mul(va, acc[v][i]);
        if (keep) r = S::fma(vb, S::loadu(c + i * ldc + v * L), r);
        S::storeu(c + i * ldc + v * L, r);
      }
  } else {
    __m256i k[NV];
    for (int v = 0; v < NV; ++v) k[v] = S::mask(n - v * L);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < NV; ++v) {
        V r = S::mul(va, acc[v][i]);
        if (keep) r = S::fma(vb, S::loadm(k[v], c + i * ldc + v * L), r);
        S::storem(c + i * ldc + v * L, k[v], r);
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

static_assert(tiles::sgemm_avx2.mr == 6 && tiles::sgemm_avx2.nr == 2 * F32::lanes &&
                  tiles::dgemm_avx2.mr == 6 && tiles::dgemm_avx2.nr == 2 * F64::lanes,
              "the avx2 microkernels' tile and its entry in gemm.h (tiles::) must agree");

void sgemm_ukernel_6x16__avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                              int64_t m, int64_t n, float alpha, float beta) {
  dispatch_rows<F32, 6>(std::make_integer_sequence<int, 6>{}, kc, a, b, c, ldc, m, n, alpha, beta);
}

void dgemm_ukernel_6x8__avx2(int64_t kc, const double* a, const double* b, double* c, int64_t ldc,
                             int64_t m, int64_t n, double alpha, double beta) {
  dispatch_rows<F64, 6>(std::make_integer_sequence<int, 6>{}, kc, a, b, c, ldc, m, n, alpha, beta);
}

}  // namespace convforge::cpu
