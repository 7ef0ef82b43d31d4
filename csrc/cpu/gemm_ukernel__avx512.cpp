// SGEMM/DGEMM microkernels for AVX-512 (contract in csrc/cpu/gemm.h). Compiled with AVX-512 flags
// only in this translation unit; called only when the CPU supports them.
//
// The tile (cpu/gemm_ukernel_tile.h) is 14 rows x 2 zmm: 28 accumulators, 2 B vectors and
// broadcasts from memory fill the 32 zmm registers. Edge columns use masked loads/stores of C.
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
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_load_ps(p); }
  static V loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
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
  static V loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  static V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static V set1(T x) { return _mm512_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V loadm(Mask k, const T* p) { return _mm512_maskz_loadu_pd(k, p); }
  static void storem(T* p, Mask k, V v) { _mm512_mask_storeu_pd(p, k, v); }
  static Mask mask(int64_t n) { return n >= 8 ? Mask(0xFF) : n <= 0 ? Mask(0) : Mask((1u << n) - 1); }
};

}  // namespace

static_assert(tiles::sgemm_avx512.mr == 14 && tiles::sgemm_avx512.nr == 2 * F32::lanes &&
                  tiles::dgemm_avx512.mr == 14 && tiles::dgemm_avx512.nr == 2 * F64::lanes,
              "the avx512 microkernels' tile and its entry in gemm.h (tiles::) must agree");

void sgemm_ukernel_14x32__avx512(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                                 float* c, int64_t ldc, int64_t m, int64_t n, float alpha, float beta) {
  dispatch_rows<F32>(std::make_integer_sequence<int, 14>{}, kc, a, a_step, b, b_step, c, ldc, m, n, alpha,
                     beta);
}

void dgemm_ukernel_14x16__avx512(int64_t kc, const double* a, int64_t a_step, const double* b, int64_t b_step,
                                 double* c, int64_t ldc, int64_t m, int64_t n, double alpha, double beta) {
  dispatch_rows<F64>(std::make_integer_sequence<int, 14>{}, kc, a, a_step, b, b_step, c, ldc, m, n, alpha,
                     beta);
}

void sgemm_window_ukernel_14x32__avx512(const float* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                        int64_t seg_len, const float* b, const float* bias, float beta, float* c,
                                        int64_t ldc, int64_t m, int64_t n) {
  dispatch_window_rows<F32>(std::make_integer_sequence<int, 14>{}, a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc,
                            m, n);
}

void dgemm_window_ukernel_14x16__avx512(const double* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                        int64_t seg_len, const double* b, const double* bias, double beta, double* c,
                                        int64_t ldc, int64_t m, int64_t n) {
  dispatch_window_rows<F64>(std::make_integer_sequence<int, 14>{}, a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc,
                            m, n);
}

}  // namespace convforge::cpu
