// Placeholder GEMM: correct, unblocked. Replaced by the packed, register-blocked driver.
#include <cstdint>

#include "core/parallel.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

template <typename T>
static void gemm_naive(const GemmParams& p) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  T* c = static_cast<T*>(p.c);
  const T alpha = static_cast<T>(p.alpha), beta = static_cast<T>(p.beta);
  auto A = [&](int64_t i, int64_t l) { return p.trans_a ? a[l * p.lda + i] : a[i * p.lda + l]; };
  auto B = [&](int64_t l, int64_t j) { return p.trans_b ? b[j * p.ldb + l] : b[l * p.ldb + j]; };
  int nt = threads_for(double(p.m) * p.n * p.k, 1 << 20);
  parallel_for(p.m, nt, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        T acc = 0;
        for (int64_t l = 0; l < p.k; ++l) acc += A(i, l) * B(l, j);
        T& out = c[i * p.ldc + j];
        out = beta == T(0) ? alpha * acc : alpha * acc + beta * out;
      }
  });
}

void gemm(const GemmParams& p) {
  if (p.dtype == DType::f32)
    gemm_naive<float>(p);
  else
    gemm_naive<double>(p);
}

}  // namespace convforge::cpu
