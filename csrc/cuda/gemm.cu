// GEMM on CUDA: C = alpha * op(A) * op(B) + beta * C, row-major. Shared-memory tiles, 8x8 (or
// 4x4) register blocking per thread, float4 global loads when the operands are aligned.
#include <algorithm>

#include "cuda/kernels.h"
#include "cuda/tile_gemm.cuh"

namespace convforge::CF_NS {

template <typename Cfg, typename T, bool TRANS_A, bool TRANS_B, bool VEC>
__global__ void __launch_bounds__(Cfg::THREADS)
    gemm_tile_kernel(int m, int n, int k, T alpha, gptr<const T> a, int lda, gptr<const T> b, int ldb,
                     T beta, gptr<T> c, int ldc) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  // op(A)(i, k) is a[i * lda + k], or a[k * lda + i] when transposed; likewise op(B)(k, j).
  const DenseLoader<T, BM, BK, Cfg::PAD, !TRANS_A, VEC> la{a, lda, m, m0};
  const DenseLoader<T, BN, BK, Cfg::PAD, TRANS_B, VEC> lb{b, ldb, n, n0};
  T acc[TM][TN] = {};
  tile_mma<Cfg>(la, lb, 0, k, acc);

  const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
  CF_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + ty * TM + i;
    if (row >= m) break;
    CF_UNROLL
    for (int j = 0; j < TN; j += 4) {
      const int col = n0 + tx * TN + j;
      const int64_t at = int64_t(row) * ldc + col;
      T v[4];
      CF_UNROLL
      for (int q = 0; q < 4; ++q) v[q] = alpha * acc[i][j + q];
      if constexpr (VEC) {
        if (col + 3 < n) {
          if (beta != T(0)) {
            const float4 old = load_float4(c, at);
            v[0] += beta * old.x, v[1] += beta * old.y, v[2] += beta * old.z, v[3] += beta * old.w;
          }
          store_float4(c, at, make_float4(v[0], v[1], v[2], v[3]));
          continue;
        }
      }
      CF_UNROLL
      for (int q = 0; q < 4; ++q)
        if (col + q < n) c[at + q] = beta != T(0) ? v[q] + beta * c[at + q] : v[q];
    }
  }
}

namespace {

template <typename Cfg, typename T, bool VEC>
void launch_gemm(const GemmParams& p) {
  const dim3 grid(unsigned(ceil_div(p.n, Cfg::BN)), unsigned(ceil_div(p.m, Cfg::BM)));
  const int64_t a_rows = p.trans_a ? p.k : p.m, b_rows = p.trans_b ? p.n : p.k;
  auto a = device_array(static_cast<const T*>(p.a), (a_rows - 1) * p.lda + (p.trans_a ? p.m : p.k), "a");
  auto b = device_array(static_cast<const T*>(p.b), (b_rows - 1) * p.ldb + (p.trans_b ? p.k : p.n), "b");
  auto c = device_array(static_cast<T*>(p.c), (p.m - 1) * p.ldc + p.n, "c");
  const int m = int(p.m), n = int(p.n), k = int(p.k), lda = int(p.lda), ldb = int(p.ldb), ldc = int(p.ldc);
  const T alpha = T(p.alpha), beta = T(p.beta);
  const unsigned threads = Cfg::THREADS;
#define CONVFORGE_GEMM_CASE(TA, TB)                                                                  \
  if (p.trans_a == TA && p.trans_b == TB)                                                          \
    return CF_LAUNCH((gemm_tile_kernel<Cfg, T, TA, TB, VEC>), grid, dim3(threads), 0, p.stream, m, n, \
                     k, alpha, a, lda, b, ldb, beta, c, ldc);
  CONVFORGE_GEMM_CASE(false, false)
  CONVFORGE_GEMM_CASE(false, true)
  CONVFORGE_GEMM_CASE(true, false)
  CONVFORGE_GEMM_CASE(true, true)
#undef CONVFORGE_GEMM_CASE
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

// The launch configuration, from the problem shape: 128x128 tiles once there are enough of them
// to fill a GPU, 64x64 otherwise; float4 loads when every operand allows them.
void gemm(const GemmParams& p) {
  CHECK(p.m < (int64_t(1) << 31) && p.n < (int64_t(1) << 31) && p.k < (int64_t(1) << 31) &&
            p.lda * std::max(p.m, p.k) < (int64_t(1) << 31) && p.ldb * std::max(p.n, p.k) < (int64_t(1) << 31) &&
            p.ldc * p.m < (int64_t(1) << 31),
        "gemm: ", backend_name(), " kernels expect fewer than 2^31 elements per operand");
  require_device();
  if (p.dtype == DType::f64) return launch_gemm<Tile64, double, false>(p);
  const bool vec = aligned16(p.a) && aligned16(p.b) && aligned16(p.c) && p.lda % 4 == 0 &&
                   p.ldb % 4 == 0 && p.ldc % 4 == 0;
  const bool large = p.m >= 512 && p.n >= 512;
  if (large) return vec ? launch_gemm<Tile128, float, true>(p) : launch_gemm<Tile128, float, false>(p);
  return vec ? launch_gemm<Tile64, float, true>(p) : launch_gemm<Tile64, float, false>(p);
}

}  // namespace convforge::CF_NS
