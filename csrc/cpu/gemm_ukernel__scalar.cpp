// SGEMM/DGEMM microkernels in portable C++ (contract in csrc/cpu/gemm.h): the path for CPUs
// without AVX2 and for non-x86 builds. A 4 x 8 tile of accumulators the compiler keeps in
// registers (and vectorizes with whatever baseline SIMD the target has).
#include <cstdint>

#include "cpu/gemm.h"
#include "cpu/isa_table.h"  // the prototypes of this file's microkernels

namespace convforge::cpu {
namespace {

template <typename T>
void ukernel_4x8(int64_t kc, const T* __restrict a, int64_t a_step, const T* __restrict b, int64_t b_step,
                 T* __restrict c, int64_t ldc, int64_t m, int64_t n, T alpha, T beta) {
  constexpr int MR = 4, NR = 8;
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p, a += a_step, b += b_step)
    for (int i = 0; i < MR; ++i) {
      const T ai = i < m ? a[i] : T(0);
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      T& out = c[i * ldc + j];
      out = beta == T(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * out;
    }
}

template <typename T>
void window_ukernel_4x8(const T* __restrict a, int64_t lda, const int64_t* seg, int64_t nseg, int64_t seg_len,
                        const T* __restrict b, const T* bias, T beta, T* __restrict c, int64_t ldc, int64_t m,
                        int64_t n) {
  constexpr int MR = 4, NR = 8;
  T acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = bias && j < n ? bias[j] : T(0);
  for (int64_t s = 0; s < nseg; ++s)
    for (int64_t p = 0; p < seg_len; ++p, b += NR)
      for (int i = 0; i < MR; ++i) {
        const T ai = i < m ? a[i * lda + seg[s] + p] : T(0);
        for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
      }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? acc[i][j] : acc[i][j] + beta * c[i * ldc + j];
}

}  // namespace

static_assert(tiles::sgemm_scalar.mr == 4 && tiles::sgemm_scalar.nr == 8 &&
                  tiles::dgemm_scalar.mr == 4 && tiles::dgemm_scalar.nr == 8,
              "the scalar microkernels' tile and its entry in gemm.h (tiles::) must agree");

void sgemm_ukernel_4x8__scalar(int64_t kc, const float* a, int64_t a_step, const float* b, int64_t b_step,
                               float* c, int64_t ldc, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_4x8<float>(kc, a, a_step, b, b_step, c, ldc, m, n, alpha, beta);
}

void dgemm_ukernel_4x8__scalar(int64_t kc, const double* a, int64_t a_step, const double* b, int64_t b_step,
                               double* c, int64_t ldc, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_4x8<double>(kc, a, a_step, b, b_step, c, ldc, m, n, alpha, beta);
}


void sgemm_window_ukernel_4x8__scalar(const float* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                      int64_t seg_len, const float* b, const float* bias, float beta, float* c,
                                      int64_t ldc, int64_t m, int64_t n) {
  window_ukernel_4x8<float>(a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc, m, n);
}

void dgemm_window_ukernel_4x8__scalar(const double* a, int64_t lda, const int64_t* seg, int64_t nseg,
                                      int64_t seg_len, const double* b, const double* bias, double beta, double* c,
                                      int64_t ldc, int64_t m, int64_t n) {
  window_ukernel_4x8<double>(a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc, m, n);
}

}  // namespace convforge::cpu
