// The register-tile loops of the vector microkernels (contracts in cpu/gemm.h), written once over
// an ISA's vector traits S and included only by that ISA's translation unit (gemm_ukernel__avx2.cpp,
// gemm_ukernel__avx512.cpp). Everything here has internal linkage: a template instantiated with
// one ISA's instructions must never become a symbol shared with the other translation units.
//
// S provides: T, V, Mask, lanes, zero(), load(p) (aligned), loadu, storeu, loadm(mask, p),
// storem(p, mask, v), mask(n) (the first n lanes), bcast(p), set1(x), fma(a, b, c), mul(a, b).
//
// A tile is M rows (M <= MR) x NV vectors of C (NV = 2, or 1 for an edge tile at most one vector
// wide: half the work, the same sums in the same order). Edge rows use a tile instantiated for
// that many rows, so no edge tile costs more than a full one.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <utility>

namespace convforge::cpu {
namespace {

// C[i, v*L ..] = alpha * acc + beta * C for the first n columns (C write-only when beta == 0).
template <typename S, int M, int NV>
inline void store_tile(typename S::V (&acc)[NV][M], typename S::T* __restrict c, int64_t ldc, int64_t n,
                       typename S::T alpha, typename S::T beta) {
  using V = typename S::V;
  constexpr int L = S::lanes;
  const V va = S::set1(alpha), vb = S::set1(beta);
  const bool keep = beta != typename S::T(0);
  if (n == NV * L) {
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < NV; ++v) {
        V r = S::mul(va, acc[v][i]);
        if (keep) r = S::fma(vb, S::loadu(c + i * ldc + v * L), r);
        S::storeu(c + i * ldc + v * L, r);
      }
    return;
  }
  typename S::Mask k[NV];
  for (int v = 0; v < NV; ++v) k[v] = S::mask(n - v * L);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < NV; ++v) {
      V r = S::mul(va, acc[v][i]);
      if (keep) r = S::fma(vb, S::loadm(k[v], c + i * ldc + v * L), r);
      S::storem(c + i * ldc + v * L, k[v], r);
    }
}

// The microkernel: kc steps of M rows of A, a_step apart, and of NV * L columns of B, b_step apart
// (MR and NR when packed).
template <typename S, int M, int NV>
inline void tile(int64_t kc, const typename S::T* __restrict a, int64_t a_step, const typename S::T* __restrict b,
                 int64_t b_step, typename S::T* __restrict c, int64_t ldc, int64_t n, typename S::T alpha,
                 typename S::T beta) {
  using V = typename S::V;
  constexpr int L = S::lanes;
  V acc[NV][M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) acc[v][i] = S::zero();
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NV * L - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const V ai = S::bcast(a + i);
      for (int v = 0; v < NV; ++v) acc[v][i] = S::fma(ai, bv[v], acc[v][i]);
    }
    a += a_step;
    b += b_step;
  }
  store_tile<S, M, NV>(acc, c, ldc, n, alpha, beta);
}

// The window microkernel: row i of A is read in place, as the nseg runs of seg_len values at
// a + i * lda + seg[s]; b holds nseg * seg_len steps of NV * L columns. C = bias + A * B + beta C.
template <typename S, int M, int NV>
inline void window_tile(const typename S::T* __restrict a, int64_t lda, const int64_t* seg, int64_t nseg,
                        int64_t seg_len, const typename S::T* __restrict b, const typename S::T* bias,
                        typename S::T beta, typename S::T* __restrict c, int64_t ldc, int64_t n) {
  using V = typename S::V;
  constexpr int L = S::lanes, NR = 2 * L;
  V init[NV];
  for (int v = 0; v < NV; ++v) init[v] = bias ? S::loadm(S::mask(n - v * L), bias + v * L) : S::zero();
  V acc[NV][M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i)
    for (int v = 0; v < NV; ++v) acc[v][i] = init[v];
  // The rows are addressed from H = ceil(M / 2) pointers, rows i + H at a fixed offset from row
  // i's: with a pointer per row, the 14 rows of the AVX-512 tile would leave too few general
  // registers and the compiler would spill pointers and B vectors inside the loop.
  // A line of the next tile's rows (a + M * lda on) is prefetched per line of steps: A streams
  // from memory in runs too short, and too interleaved, for the hardware prefetchers to follow.
  using T = typename S::T;
  constexpr int H = (M + 1) / 2;
  constexpr int64_t line = 64 / sizeof(T);
  const int64_t far = H * lda;
  for (int64_t s = 0; s < nseg; ++s) {
    const T* row[H];
    for (int i = 0; i < H; ++i) row[i] = a + seg[s] + i * lda;
    for (int64_t p0 = 0; p0 < seg_len; p0 += line) {
      const T* next = row[0] + M * lda;
      for (int i = 0; i < M; ++i, next += lda) _mm_prefetch(reinterpret_cast<const char*>(next), _MM_HINT_T0);
      const int64_t steps = seg_len - p0 < line ? seg_len - p0 : line;
#pragma GCC unroll 2
      for (int64_t p = 0; p < steps; ++p) {
        V bv[NV];
        for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
#pragma GCC unroll 16
        for (int i = 0; i < M; ++i) {
          const V ai = S::bcast(i < H ? row[i] : row[i - H] + far);
          for (int v = 0; v < NV; ++v) acc[v][i] = S::fma(ai, bv[v], acc[v][i]);
        }
#pragma GCC unroll 16
        for (int i = 0; i < H; ++i) ++row[i];
        b += NR;
      }
    }
  }
  store_tile<S, M, NV>(acc, c, ldc, n, typename S::T(1), beta);
}

// The entry points: the tile for m rows and n columns, from tables of every row count.
template <typename S, int... Ms>
inline void dispatch_rows(std::integer_sequence<int, Ms...>, int64_t kc, const typename S::T* a, int64_t a_step,
                          const typename S::T* b, int64_t b_step, typename S::T* c, int64_t ldc, int64_t m,
                          int64_t n, typename S::T alpha, typename S::T beta) {
  using T = typename S::T;
  using Fn = void (*)(int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, int64_t, T, T);
  static constexpr Fn full[] = {tile<S, Ms + 1, 2>...}, half[] = {tile<S, Ms + 1, 1>...};
  (n > S::lanes ? full : half)[m - 1](kc, a, a_step, b, b_step, c, ldc, n, alpha, beta);
}

template <typename S, int... Ms>
inline void dispatch_window_rows(std::integer_sequence<int, Ms...>, const typename S::T* a, int64_t lda,
                                 const int64_t* seg, int64_t nseg, int64_t seg_len, const typename S::T* b,
                                 const typename S::T* bias, typename S::T beta, typename S::T* c, int64_t ldc,
                                 int64_t m, int64_t n) {
  using T = typename S::T;
  using Fn = void (*)(const T*, int64_t, const int64_t*, int64_t, int64_t, const T*, const T*, T, T*, int64_t,
                      int64_t);
  static constexpr Fn full[] = {window_tile<S, Ms + 1, 2>...}, half[] = {window_tile<S, Ms + 1, 1>...};
  (n > S::lanes ? full : half)[m - 1](a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc, n);
}

}  // namespace
}  // namespace convforge::cpu
