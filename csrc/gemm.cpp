// GEMM dispatcher: validates the params once and picks the backend.
#include <algorithm>

#include "core/check.h"
#include "core/view.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "ops.h"

namespace convforge {

// Copies the m x n matrix p.c_init (any strides) into C, the BLAS way of starting from C.
template <typename T>
static void copy_c_init(const GemmParams& p) {
  const T* src = static_cast<const T*>(p.c_init);
  T* dst = static_cast<T*>(p.c);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) dst[i * p.ldc + j] = src[i * p.c_init_rs + j * p.c_init_cs];
}

void gemm(const GemmParams& p) {
  CHECK(p.m >= 0 && p.n >= 0 && p.k >= 0, "gemm: expected non-negative sizes, got m=", p.m,
        " n=", p.n, " k=", p.k);
  CHECK(p.dtype != DType::i64, "gemm: expected float32 or float64");
  // Stored shapes: A is (m, k) or (k, m) when transposed; B is (k, n) or (n, k).
  const int64_t a_cols = p.trans_a ? p.m : p.k, b_cols = p.trans_b ? p.k : p.n;
  CHECK(p.lda >= std::max<int64_t>(a_cols, 1), "a: expected a row stride >= ", a_cols, ", got ", p.lda);
  CHECK(p.ldb >= std::max<int64_t>(b_cols, 1), "b: expected a row stride >= ", b_cols, ", got ", p.ldb);
  CHECK(p.ldc >= std::max<int64_t>(p.n, 1), "out: expected a row stride >= ", p.n, ", got ", p.ldc);
  if (p.m == 0 || p.n == 0) return;
  if (p.c_init) {
    CHECK(p.device != Device::cuda, "c: expected c to be out itself for CUDA arrays (the Python "
          "layer copies it)");
    p.dtype == DType::f32 ? copy_c_init<float>(p) : copy_c_init<double>(p);
  }
  switch (p.device) {
    case Device::cpu: return cpu::gemm(p);
#if CONVFORGE_WITH_CUDA
    case Device::cuda: return cuda::gemm(p);
#endif
#if CONVFORGE_WITH_CUDA_EMULATION
    case Device::cuda_emulated: return cuda_emulated::gemm(p);
#endif
    default: CHECK(false, "gemm: device '", device_name(p.device), "' is not available in this build");
  }
}

GemmTile gemm_cpu_tile(DType dtype, Isa isa) {
  if (dtype == DType::f64) {
    auto k = cpu::gemm_kernel<double>(isa);
    return {k.mr, k.nr, k.kc, k.mc, k.nc, k.name};
  }
  auto k = cpu::gemm_kernel<float>(isa);
  return {k.mr, k.nr, k.kc, k.mc, k.nc, k.name};
}

}  // namespace convforge
