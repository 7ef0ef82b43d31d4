// SGEMM/DGEMM microkernels for AVX2+FMA (contract in csrc/cpu/gemm.h). Compiled with AVX2/FMA
// flags only in this translation unit; called only when the CPU supports them.
//
// The tile (cpu/gemm_ukernel_tile.h) is 6 rows x 2 ymm: 12 accumulators, 2 B vectors and a
// broadcast fill the 16 ymm registers. Edge columns use masked loads/stores of C.
#include <immintrin.h>

#include <cstdint>
#include <utility>

#include "cpu/gemm.h"
#include "cpu/gemm_ukernel_tile.h"
#include "cpu/isa_table.h"  // the prototypes of this file's microkernels

namespace convforge::cpu {
namespace {

struct F32 {
  using T = float;
  using V = __m256;
  using Mask = __m256i;
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
  using Mask = __m256i;
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

}  // namespace

static_assert(tiles::sgemm_avx2.mr == 6 && tiles::sgemm_avx2.nr == 2 * F32::lanes &&
                  tiles::dgemm_avx2.mr == 6 && tiles::dgemm_avx2.nr == 2 * F64::lanes,
              "the avx2 microkernels' tile and its entry in gemm.h (tiles::) must agree");

void sgemm_ukernel_6x16__avx2(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                              float* c, int64_t ldc, int64_t m, int64_t n, float alpha, float beta) {
  dispatch_rows<F32>(std::make_integer_sequence<int, 6>{}, kc, a, a_step, b, b_step, c, ldc, m, n, alpha,
                     beta);
}

void dgemm_ukernel_6x8__avx2(int64_t kc, const double* a, int64_t a_step, const double* b, int64_t b_step,
                             double* c, int64_t ldc, int64_t m, int64_t n, double alpha, double beta) {
  dispatch_rows<F64>(std::make_integer_sequence<int, 6>{}, kc, a, a_step, b, b_step, c, ldc, m, n, alpha,
                     beta);
}

void sgemm_window_ukernel_6x16__avx2(const float* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                     int64_t seg_len, const float* b, const float* bias, float beta, float* c,
                                     int64_t ldc, int64_t m, int64_t n) {
  dispatch_window_rows<F32>(std::make_integer_sequence<int, 6>{}, a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc,
                            m, n);
}

void dgemm_window_ukernel_6x8__avx2(const double* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                    int64_t seg_len, const double* b, const double* bias, double beta, double* c,
                                    int64_t ldc, int64_t m, int64_t n) {
  dispatch_window_rows<F64>(std::make_integer_sequence<int, 6>{}, a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc,
                            m, n);
}

}  // namespace convforge::cpu
