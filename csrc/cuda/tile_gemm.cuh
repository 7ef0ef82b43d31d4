// The block-tiled GEMM main loop shared by SGEMM and the implicit-GEMM convolutions.
//
// Contract: a block of Cfg::THREADS threads computes acc[TM][TN] per thread of the BM x BN tile
// C[m0.., n0..] += A[m0.., k] * B[k, n0..] over k in [k_begin, k_end). Operands come through
// loaders: la.fetch(v, k0, k_end) reads this thread's 4 elements of the tile A[m0.., k0..]
// (zero outside A or past k_end) into registers, la.store(As, v) puts them at their place in
// As[BK][BM]; lb likewise for Bs[BK][BN]. Thread (ty, tx) owns rows ty*TM.. and columns tx*TN..
#pragma once
#include "cuda/compat.h"

namespace convforge::CF_NS {

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct TileConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int THREADS = (BM / TM) * (BN / TN);
  static constexpr int PAD = 4;  // keeps rows 16-byte aligned and spreads transposed stores
  static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "4 loads per thread per tile");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are read as float4");
};
using Tile128 = TileConfig<128, 128, 8, 8, 8>;  // large problems: 8x8 outputs per thread
using Tile64 = TileConfig<64, 64, 16, 4, 4>;     // small ones (and float64)

// A fragment of N consecutive shared-memory values (float: 16-byte loads).
template <int N>
__device__ __forceinline__ void load_fragment(const float* src, float (&dst)[N]) {
  CF_UNROLL
  for (int i = 0; i < N; i += 4) {
    const float4 v = *reinterpret_cast<const float4*>(src + i);
    dst[i] = v.x, dst[i + 1] = v.y, dst[i + 2] = v.z, dst[i + 3] = v.w;
  }
}
template <int N>
__device__ __forceinline__ void load_fragment(const double* src, double (&dst)[N]) {
  CF_UNROLL
  for (int i = 0; i < N; ++i) dst[i] = src[i];
}

// Double-buffered: while the tiles of step k are multiplied out of one shared buffer, the
// operands of step k + 1 are fetched into registers and then stored into the other buffer, so a
// single barrier per step separates writes from reads.
template <typename Cfg, typename T, typename LoaderA, typename LoaderB>
__device__ __forceinline__ void tile_mma(const LoaderA& la, const LoaderB& lb, int k_begin, int k_end,
                                         T (&acc)[Cfg::TM][Cfg::TN]) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  __shared__ __align__(16) T As[2][BK][BM + Cfg::PAD];
  __shared__ __align__(16) T Bs[2][BK][BN + Cfg::PAD];
  const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
  T ra[4], rb[4];
  if (k_begin < k_end) {
    la.fetch(ra, k_begin, k_end);
    lb.fetch(rb, k_begin, k_end);
    la.store(As[0], ra);
    lb.store(Bs[0], rb);
  }
  __syncthreads();
  int buf = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    const bool next = k0 + BK < k_end;
    if (next) {
      la.fetch(ra, k0 + BK, k_end);
      lb.fetch(rb, k0 + BK, k_end);
    }
    CF_UNROLL
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
      load_fragment(&As[buf][kk][ty * TM], a);
      load_fragment(&Bs[buf][kk][tx * TN], b);
      CF_UNROLL
      for (int i = 0; i < TM; ++i)
        CF_UNROLL
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    if (next) {  // the other buffer was last read before the previous barrier
      la.store(As[buf ^ 1], ra);
      lb.store(Bs[buf ^ 1], rb);
    }
    __syncthreads();
    buf ^= 1;
  }
}

// A dense operand: element (r, k) of a rows x k_total matrix at p[r * ld + k] (K_CONTIG) or
// p[k * ld + r]. Each thread loads 4 elements consecutive in memory, as one float4 when VEC
// (the host guarantees 16-byte alignment of p and of ld * 4 bytes).
template <typename T, int BR, int BK, int PAD, bool K_CONTIG, bool VEC>
struct DenseLoader {
  gptr<const T> p;
  int ld, rows, r0;

  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    static_assert(!VEC || sizeof(T) == 4, "vector loads are for float32");
    if constexpr (K_CONTIG) {
      const int r = threadIdx.x / (BK / 4), kq = (threadIdx.x % (BK / 4)) * 4;
      const int gr = r0 + r, gk = k0 + kq;
      const int64_t at = int64_t(gr) * ld + gk;
      if (VEC && gr < rows && gk + 3 < k_end) {
        load4(at, v);
      } else {
        CF_UNROLL
        for (int j = 0; j < 4; ++j) v[j] = gr < rows && gk + j < k_end ? p[at + j] : T(0);
      }
    } else {
      const int kk = threadIdx.x / (BR / 4), rq = (threadIdx.x % (BR / 4)) * 4;
      const int gk = k0 + kk, gr = r0 + rq;
      const int64_t at = int64_t(gk) * ld + gr;
      if (VEC && gk < k_end && gr + 3 < rows) {
        load4(at, v);
      } else {
        CF_UNROLL
        for (int j = 0; j < 4; ++j) v[j] = gk < k_end && gr + j < rows ? p[at + j] : T(0);
      }
    }
  }

  __device__ __forceinline__ void store(T (*s)[BR + PAD], const T (&v)[4]) const {
    if constexpr (K_CONTIG) {
      const int r = threadIdx.x / (BK / 4), kq = (threadIdx.x % (BK / 4)) * 4;
      CF_UNROLL
      for (int j = 0; j < 4; ++j) s[kq + j][r] = v[j];
    } else {
      const int kk = threadIdx.x / (BR / 4), rq = (threadIdx.x % (BR / 4)) * 4;
      CF_UNROLL
      for (int j = 0; j < 4; ++j) s[kk][rq + j] = v[j];
    }
  }

  __device__ __forceinline__ void load4(int64_t at, T (&v)[4]) const {
    if constexpr (VEC) {
      const float4 q = load_float4(p, at);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    }
  }
};

// Stores of the loaders whose thread holds one k row and 4 consecutive columns of the tile.
template <typename T, int BR, int PAD>
__device__ __forceinline__ void store_row_quad(T (*s)[BR + PAD], const T (&v)[4]) {
  const int kk = threadIdx.x / (BR / 4), q = (threadIdx.x % (BR / 4)) * 4;
  CF_UNROLL
  for (int j = 0; j < 4; ++j) s[kk][q + j] = v[j];
}

// Sum over the block (blockDim.x a multiple of 32); the result is valid in thread 0. The order
// of the additions is fixed, so the result does not depend on scheduling.
template <typename T>
__device__ __forceinline__ T block_reduce_sum(T v) {
  __shared__ T partial[32];
  CF_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / 32) ? partial[lane] : T(0);
    CF_UNROLL
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

}  // namespace convforge::CF_NS
