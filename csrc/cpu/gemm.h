// The CPU GEMM core (BLIS-style), reusable by other kernels such as the convolutions.
//
//   C[m x n] = alpha * A[m x k] * B[k x n] + beta * C        (C row-major, row stride ldc)
//
// A and B never reach the microkernel directly: *packing routines* copy blocks of them into
// contiguous, zero-padded panels, so a caller can gather its operand on the fly (im2col columns,
// a transposed weight, ...) by passing its own packer instead of a matrix.
//
// Packing contract (T is float or double; all sizes in elements):
//   pack_a(i0, mc, k0, kc, mr, dst): rows [i0, i0+mc) x columns [k0, k0+kc) of A, as
//     ceil(mc/mr) panels; panel q starts at dst + q*mr*kc and holds A(i0+q*mr+i, k0+p) at
//     [p*mr + i]. Rows past mc in the last panel are written as 0.
//   pack_b(k0, kc, j0, nc, nr, dst): rows [k0, k0+kc) x columns [j0, j0+nc) of B, as
//     ceil(nc/nr) panels; panel q starts at dst + q*nr*kc and holds B(k0+p, j0+q*nr+j) at
//     [p*nr + j]. Columns past nc in the last panel are written as 0.
//   dst is 64-byte aligned. A packer is called concurrently from several threads when the driver
//   runs more than one (each with its own dst), so it must only read shared state.
//
// Microkernel contract (GemmUkernel<T>, one per ISA, e.g. sgemm_ukernel_14x32__avx512):
//   ukernel(kc, a, a_step, b, b_step, c, ldc, m, n, alpha, beta) with 1 <= m <= MR, 1 <= n <= NR,
//   kc >= 0; step p of A is the m values at a + p*a_step, of B the NR values at b + p*b_step:
//     C[i, j] = alpha * sum_p a[p*a_step + i] * b[p*b_step + j] + beta * C[i, j]  for i < m, j < n.
//   A packed panel has a_step = MR (b_step = NR); a caller whose operands already lie in such
//   steps passes them in place. B's steps are 64-byte aligned (the vector ISAs load them aligned).
//   beta == 0 means C is write-only (NaN or garbage in C does not propagate, as in BLAS).
//   Only the m x n corner of C is read or written, so edge tiles cost one call like any other.
//   The sum over p runs in order p = 0, 1, ..., kc-1 per element: results do not depend on
//   where the tile sits in C nor on how the work is split over threads.
//
// Window microkernel (GemmWindowUkernel<T>, same tile): A is read in place, not packed -- an
// implicit GEMM whose A rows are the windows of a convolution (runs of an NHWC image):
//   ukernel(a, lda, seg, nseg, seg_len, b, bias, beta, c, ldc, m, n) with 1 <= m <= MR,
//   1 <= n <= NR: row i < m of A is the nseg runs of seg_len values at a + i * lda + seg[s]
//   (s = 0 .. nseg-1, in that order), b one packed B panel of nseg * seg_len steps:
//     C[i, j] = (bias[j] + sum_{s, p} a[i*lda + seg[s] + p] * b[(s*seg_len + p)*NR + j]) + beta * C[i, j]
//   (bias null: 0; beta 0 or 1, and 0 makes C write-only), summed in that order.
//
// Driver: gemm_packed(kernel, m, n, k, alpha, pack_a, pack_b, beta, c, ldc, nthreads, epilogue)
//   - kernel: gemm_kernel<T>(isa) (microkernel + its MR/NR and cache blocking), chosen once.
//   - beta = 1 accumulates into C (e.g. over groups or a batch); k == 0 gives C = beta * C.
//   - nthreads: the caller decides (gemm_threads() suggests a count with a minimum amount of
//     work per thread); 1 never starts a thread team, so a caller that already runs in parallel
//     (e.g. one image per thread) calls the driver with 1. The work is split over M or N, never
//     K, so the result is bitwise identical for every thread count.
//   - epilogue(c_tile, ldc, i, j, m, n) runs once per finished m x n tile of C at row i, column j,
//     after its last k-block, while the tile is still in cache (e.g. bias + activation).
//   Threads splitting M pack one shared B block together (each packs some of its panels); a
//   thread alone packs its B block in chunks, just before the microkernel first needs them.
//   Packing buffers come from gemm_workspace() slots 0 and 1 (per thread, reused, grown on
//   demand); callers bring their own scratch (the convolutions: one arena per call).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "core/isa.h"
#include "core/parallel.h"

namespace convforge::cpu {

template <typename T>
using GemmUkernel = void (*)(int64_t kc, const T* a, int64_t a_step, const T* b, int64_t b_step, T* c,
                             int64_t ldc, int64_t m, int64_t n, T alpha, T beta);

template <typename T>
using GemmWindowUkernel = void (*)(const T* a, int64_t lda, const int64_t* seg, int64_t nseg, int64_t seg_len,
                                   const T* b, const T* bias, T beta, T* c, int64_t ldc, int64_t m, int64_t n);

// The register tiles (MR x NR) of the microkernels. The ISA table (isa_table.cpp) builds its
// rows from these and the packers below specialize for exactly these widths, so a new tile is
// added here, once.
struct GemmTileShape {
  int mr, nr;
};
namespace tiles {
constexpr GemmTileShape sgemm_scalar{4, 8}, dgemm_scalar{4, 8};
constexpr GemmTileShape sgemm_avx2{6, 16}, dgemm_avx2{6, 8};
constexpr GemmTileShape sgemm_avx512{14, 32}, dgemm_avx512{14, 16};
constexpr GemmTileShape all[] = {sgemm_scalar, dgemm_scalar, sgemm_avx2,
                                 dgemm_avx2,   sgemm_avx512, dgemm_avx512};
constexpr size_t count = sizeof(all) / sizeof(all[0]);
}  // namespace tiles

// A microkernel with its register tile and the cache blocking tuned for it.
template <typename T>
struct GemmKernel {
  GemmUkernel<T> ukernel = nullptr;
  GemmWindowUkernel<T> window_ukernel = nullptr;  // the same tile, A read in place
  int64_t mr = 1, nr = 1;  // register tile
  int64_t kc = 1;          // depth of a packed block (the k loop of one microkernel call)
  int64_t mc = 1;          // rows of the packed A block (mc x kc): sized for L2
  int64_t nc = 1;          // columns of the packed B block (kc x nc): sized for L3
  const char* name = "";
};

// The microkernel table for an ISA (float and double), and for the active one.
template <typename T>
GemmKernel<T> gemm_kernel(Isa isa);
template <typename T>
GemmKernel<T> gemm_kernel() {
  return gemm_kernel<T>(active_isa());
}

// Threads worth using for an m x n x k product (1 for small products; never more than
// get_num_threads()).
int gemm_threads(int64_t m, int64_t n, int64_t k);

// A per-thread, 64-byte aligned buffer of at least `bytes`, reused across calls (slot 0 or 1).
void* gemm_workspace(int slot, size_t bytes);

// The per-ISA microkernels are declared in isa_table.h, with the rest of each ISA's code.

// ---------------------------------------------------------------------------------------------
// Packers for ordinary strided matrices: element (r, c) at ptr[r * rs + c * cs]. A transpose is
// just swapped strides. The copy loops are specialized for a unit stride along either axis.

namespace detail {

// dst[p*ds + j] = s[j*js + p] for j < w, p < kc: the transposing copy (A row-major, B transposed;
// ds = W in a panel). 4x4 (float) or 2x2 (double) register transposes of the baseline SSE2.
template <typename T>
inline void transpose(const T* s, int64_t js, int64_t kc, int64_t w, T* dst, int64_t ds) {
  int64_t j = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    for (; j + 4 <= w; j += 4) {
      const float *r0 = s + j * js, *r1 = r0 + js, *r2 = r1 + js, *r3 = r2 + js;
      int64_t p = 0;
      for (; p + 4 <= kc; p += 4) {
        __m128 x0 = _mm_loadu_ps(r0 + p), x1 = _mm_loadu_ps(r1 + p);
        __m128 x2 = _mm_loadu_ps(r2 + p), x3 = _mm_loadu_ps(r3 + p);
        _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
        _mm_storeu_ps(dst + (p + 0) * ds + j, x0);
        _mm_storeu_ps(dst + (p + 1) * ds + j, x1);
        _mm_storeu_ps(dst + (p + 2) * ds + j, x2);
        _mm_storeu_ps(dst + (p + 3) * ds + j, x3);
      }
      for (; p < kc; ++p)
        for (int q = 0; q < 4; ++q) dst[p * ds + j + q] = s[(j + q) * js + p];
    }
    for (; j + 2 <= w; j += 2) {
      const float *r0 = s + j * js, *r1 = r0 + js;
      int64_t p = 0;
      for (; p + 4 <= kc; p += 4) {
        const __m128 x0 = _mm_loadu_ps(r0 + p), x1 = _mm_loadu_ps(r1 + p);
        const __m128 lo = _mm_unpacklo_ps(x0, x1), hi = _mm_unpackhi_ps(x0, x1);
        _mm_storel_pi(reinterpret_cast<__m64*>(dst + (p + 0) * ds + j), lo);
        _mm_storeh_pi(reinterpret_cast<__m64*>(dst + (p + 1) * ds + j), lo);
        _mm_storel_pi(reinterpret_cast<__m64*>(dst + (p + 2) * ds + j), hi);
        _mm_storeh_pi(reinterpret_cast<__m64*>(dst + (p + 3) * ds + j), hi);
      }
      for (; p < kc; ++p) dst[p * ds + j] = r0[p], dst[p * ds + j + 1] = r1[p];
    }
  } else if constexpr (std::is_same_v<T, double>) {
    for (; j + 2 <= w; j += 2) {
      const double *r0 = s + j * js, *r1 = r0 + js;
      int64_t p = 0;
      for (; p + 2 <= kc; p += 2) {
        const __m128d x0 = _mm_loadu_pd(r0 + p), x1 = _mm_loadu_pd(r1 + p);
        _mm_storeu_pd(dst + (p + 0) * ds + j, _mm_unpacklo_pd(x0, x1));
        _mm_storeu_pd(dst + (p + 1) * ds + j, _mm_unpackhi_pd(x0, x1));
      }
      for (; p < kc; ++p) dst[p * ds + j] = r0[p], dst[p * ds + j + 1] = r1[p];
    }
  }
#endif
  for (; j < w; ++j)
    for (int64_t p = 0; p < kc; ++p) dst[p * ds + j] = s[j * js + p];
}

template <int W, typename T>
inline void pack_transpose(const T* s, int64_t js, int64_t kc, int64_t w, T* dst) {
  transpose(s, js, kc, w, dst, W);
}

// dst[p*W + j] = src(p, j) for p < kc, j < w (w <= W), zero for j >= w. src(p, j) = s[p*ps + j*js].
template <int W, typename T>
inline void pack_panel(const T* s, int64_t ps, int64_t js, int64_t kc, int64_t w, T* dst) {
  if (w == W && js == 1) {  // contiguous rows of W: a straight copy (memcpy: a plain loop may
                            // alias, and the compiler then copies one element at a time)
    for (int64_t p = 0; p < kc; ++p, s += ps, dst += W) std::memcpy(dst, s, sizeof(T) * W);
  } else if (ps == 1) {  // contiguous along p: walk each source line once (a transpose)
    if (w < W)
      for (int64_t p = 0; p < kc; ++p)
        for (int j = int(w); j < W; ++j) dst[p * W + j] = T(0);
    pack_transpose<W>(s, js, kc, w, dst);
  } else if (js == 1) {  // a narrow last panel: zero the row (a fixed-length loop), then copy
    for (int64_t p = 0; p < kc; ++p, s += ps, dst += W) {
      std::memcpy(dst, s, sizeof(T) * w);
      for (int j = int(w); j < W; ++j) dst[j] = T(0);
    }
  } else {
    for (int64_t p = 0; p < kc; ++p, s += ps, dst += W) {
      for (int64_t j = 0; j < w; ++j) dst[j] = s[j * js];
      for (int j = int(w); j < W; ++j) dst[j] = T(0);
    }
  }
}

// Packs `count` columns (width w each, last one narrower) of a strided source into panels.
template <int W, typename T>
inline void pack_panels(const T* s, int64_t ps, int64_t js, int64_t kc, int64_t count, T* dst) {
  // Rows contiguous along j (B row-major, A transposed): a few rows at a time across all panels,
  // so each source row is read as one run. Panel by panel, a wide row would be read one cache
  // line per page visit, which the hardware prefetcher does not follow.
  const int64_t rows = js == 1 && ps != 1 && count >= 2 * W ? 4 : kc;
  for (int64_t p0 = 0; p0 < kc; p0 += rows)
    for (int64_t j = 0; j < count; j += W)
      pack_panel<W>(s + p0 * ps + j * js, ps, js, std::min(rows, kc - p0), std::min<int64_t>(W, count - j),
                    dst + j * kc + p0 * W);
}

// pack_panels<W> for the W among the tiles' MR and NR (tiles::all) equal to width; false if none.
template <typename T, size_t... I>
inline bool pack_panels_tile(std::index_sequence<I...>, const T* s, int64_t ps, int64_t js,
                             int64_t kc, int64_t count, int64_t width, T* dst) {
  return ((width == tiles::all[I].mr ? (pack_panels<tiles::all[I].mr>(s, ps, js, kc, count, dst), true)
           : width == tiles::all[I].nr ? (pack_panels<tiles::all[I].nr>(s, ps, js, kc, count, dst), true)
                                       : false) ||
          ...);
}

template <typename T>
inline void pack_panels_any(const T* s, int64_t ps, int64_t js, int64_t kc, int64_t count,
                            int64_t width, T* dst) {
  // Every tile width of the ISA table is specialized (derived from tiles::all, never a hand-kept
  // list); the loop below serves only widths no microkernel has.
  if (pack_panels_tile(std::make_index_sequence<tiles::count>{}, s, ps, js, kc, count, width, dst))
    return;
  for (int64_t j = 0; j < count; j += width, dst += width * kc) {
    const int64_t w = std::min(width, count - j);
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t jj = 0; jj < width; ++jj)
        dst[p * width + jj] = jj < w ? s[(j + jj) * js + p * ps] : T(0);
  }
}

// pack_transpose<W> for the W among the tiles' MR and NR equal to width (columns [0, w) of a
// panel of that width; the others are left as they are); false if none.
template <typename T, size_t... I>
inline bool pack_transpose_tile(std::index_sequence<I...>, const T* s, int64_t js, int64_t kc, int64_t w,
                                int64_t width, T* dst) {
  return ((width == tiles::all[I].mr ? (pack_transpose<tiles::all[I].mr>(s, js, kc, w, dst), true)
           : width == tiles::all[I].nr ? (pack_transpose<tiles::all[I].nr>(s, js, kc, w, dst), true)
                                       : false) ||
          ...);
}

// Writes dst[p * width + j] = s[j * js + p] for p < kc, j < w: w columns of a panel `width` wide
// from w rows of a strided source, leaving the panel's other columns alone.
template <typename T>
inline void pack_columns(const T* s, int64_t js, int64_t kc, int64_t w, int64_t width, T* dst) {
  if (pack_transpose_tile(std::make_index_sequence<tiles::count>{}, s, js, kc, w, width, dst)) return;
  for (int64_t j = 0; j < w; ++j)
    for (int64_t p = 0; p < kc; ++p) dst[p * width + j] = s[j * js + p];
}

// Packs `count` columns of B whose row p is the contiguous run row(p)[0 .. count) into panels of
// width nr (zero-padded), one pass along each row: rows may lie anywhere (e.g. the taps of a
// padded image). With W the tile width, each panel's run is a fixed-size copy the compiler inlines.
template <int W, typename T, typename Row>
inline void pack_row_runs_w(const Row& row, int64_t kc, int64_t count, int64_t nr, T* dst) {
  const int64_t w = W > 0 ? W : nr;
  const int64_t full = count / w * w;
  for (int64_t p = 0; p < kc; ++p) {
    const T* s = row(p);
    T* d = dst + p * w;
    for (int64_t j = 0; j < full; j += w, d += w * kc) std::memcpy(d, s + j, sizeof(T) * w);
    if (full < count)
      for (int64_t t = 0; t < w; ++t) d[t] = full + t < count ? s[full + t] : T(0);
  }
}

// pack_row_runs_w<NR> for the tile of tiles::all whose NR is nr; false if none.
template <typename T, typename Row, size_t... I>
inline bool pack_row_runs_tile(std::index_sequence<I...>, const Row& row, int64_t kc,
                               int64_t count, int64_t nr, T* dst) {
  return ((nr == tiles::all[I].nr ? (pack_row_runs_w<tiles::all[I].nr>(row, kc, count, nr, dst), true)
                                  : false) ||
          ...);
}

template <typename T, typename Row>
inline void pack_row_runs(const Row& row, int64_t kc, int64_t count, int64_t nr, T* dst) {
  // The B tiles of the ISA table (tiles::all): constant-length copies.
  if (!pack_row_runs_tile(std::make_index_sequence<tiles::count>{}, row, kc, count, nr, dst))
    pack_row_runs_w<0>(row, kc, count, nr, dst);
}

}  // namespace detail

// A as a strided matrix: A(i, p) = a[i * rs + p * cs].
template <typename T>
struct StridedPackA {
  const T* a;
  int64_t rs, cs;
  void operator()(int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, T* dst) const {
    detail::pack_panels_any(a + i0 * rs + k0 * cs, cs, rs, kc, mc, mr, dst);
  }
};

// B as a strided matrix: B(p, j) = b[p * rs + j * cs].
template <typename T>
struct StridedPackB {
  const T* b;
  int64_t rs, cs;
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    detail::pack_panels_any(b + k0 * rs + j0 * cs, rs, cs, kc, nc, nr, dst);
  }
};

struct NoEpilogue {
  template <typename T>
  void operator()(T*, int64_t, int64_t, int64_t, int64_t, int64_t) const {}
};

// ---------------------------------------------------------------------------------------------
// The loops: jc (nc columns: pack B) > pc (kc deep) > ic (mc rows: pack A) > jr > ir (microkernel).

namespace detail {

inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
// The depth of the k blocks for a product with `rows` rows: equal blocks of at most kern.kc (a
// thin last block would cost a whole pass over C for little work), and half as deep when the
// rows do not fill one A block: each B panel then serves only a few microkernel calls, and a
// shallower panel stays in L1 between them.
template <typename T>
int64_t block_kc(const GemmKernel<T>& kern, int64_t k, int64_t rows) {
  const int64_t limit = rows < kern.mc ? std::max<int64_t>(kern.kc / 2, 1) : kern.kc;
  const int64_t blocks = std::max<int64_t>(1, (k + limit - 1) / limit);
  return std::max<int64_t>(1, (k + blocks - 1) / blocks);
}
template <typename T>
int64_t block_nc(const GemmKernel<T>& kern, int64_t n) { return std::min(kern.nc, round_up(n, kern.nr)); }

inline void team_barrier() {
#if defined(CONVFORGE_OPENMP)
#pragma omp barrier
#endif
}

// The threads that split M share one packed B block: each packs 1/size of its panels into
// b_shared, then all compute from all of it. size == 1: a thread packs B alone, into its own buffer.
struct Team {
  int index = 0, size = 1;
  void* b_shared = nullptr;
};

// One thread's share: rows [i_begin, i_end) x columns [j_begin, j_end) of C. Every member of a
// team runs the same jc/pc loops (and so meets the same barriers), even with no rows of its own.
template <typename T, typename PackA, typename PackB, typename Epilogue>
void gemm_block(const GemmKernel<T>& kern, int64_t i_begin, int64_t i_end, int64_t j_begin,
                int64_t j_end, int64_t k, T alpha, const PackA& pack_a, const PackB& pack_b,
                T beta, T* c, int64_t ldc, const Epilogue& epilogue, const Team& team) {
  const int64_t MR = kern.mr, NR = kern.nr;
  const int64_t KC = kern.kc, NC = block_nc(kern, j_end - j_begin);  // KC: see gemm_packed
  const int64_t MC = std::min(kern.mc, round_up(std::max<int64_t>(i_end - i_begin, 1), MR));
  T* a_buf = static_cast<T*>(gemm_workspace(0, sizeof(T) * MC * KC));
  T* b_buf = team.size > 1 ? static_cast<T*>(team.b_shared)
                           : static_cast<T*>(gemm_workspace(1, sizeof(T) * NC * KC));
  const auto ukernel = kern.ukernel;
  // Just-in-time B packing goes ~128 KB at a time (4 panels of the AVX2 SGEMM tile at kc = 512),
  // or ~512 KB when the rows do not fill an A block: each panel then serves few microkernel calls,
  // reading B (often from DRAM) dominates, and longer runs along its rows stream better.
  const int64_t chunk_bytes = (i_end - i_begin < kern.mc ? int64_t{512} : int64_t{128}) << 10;
  const int64_t b_chunk = NR * std::max<int64_t>(1, chunk_bytes / (sizeof(T) * NR * KC));
  for (int64_t jc = j_begin; jc < j_end; jc += NC) {
    const int64_t nc = std::min(NC, j_end - jc);
    // k == 0 still makes one pass (kc = 0) so that C = beta * C.
    for (int64_t pc = 0; pc == 0 || pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const bool last = pc + kc >= k;
      // A thread alone packs B just in time, a few panels ahead of the microkernel during the
      // first row block: the packing (strided, often from DRAM) then overlaps compute, and the
      // fresh panels are still in L1/L2 when first used.
      bool b_packed = false;
      if (team.size > 1) {
        const int64_t panels = (nc + NR - 1) / NR;
        const int64_t q0 = panels * team.index / team.size, q1 = panels * (team.index + 1) / team.size;
        if (q0 < q1) pack_b(pc, kc, jc + q0 * NR, std::min(nc, q1 * NR) - q0 * NR, NR, b_buf + q0 * NR * kc);
        team_barrier();  // B block complete
        b_packed = true;
      }
      for (int64_t ic = i_begin; ic < i_end; ic += MC) {
        const int64_t mc = std::min(MC, i_end - ic);
        pack_a(ic, mc, pc, kc, MR, a_buf);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          if (!b_packed && jr % b_chunk == 0)
            pack_b(pc, kc, jc + jr, std::min(b_chunk, nc - jr), NR, b_buf + jr * kc);
          const int64_t n_tile = std::min(NR, nc - jr);
          const T* b_panel = b_buf + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t m_tile = std::min(MR, mc - ir);
            T* c_tile = c + (ic + ir) * ldc + jc + jr;
            ukernel(kc, a_buf + ir * kc, MR, b_panel, NR, c_tile, ldc, m_tile, n_tile, alpha, beta_pc);
            if (last) epilogue(c_tile, ldc, ic + ir, jc + jr, m_tile, n_tile);
          }
        }
        b_packed = true;
      }
      if (team.size > 1) team_barrier();  // everyone is done with this B block
    }
  }
}

}  // namespace detail

template <typename T, typename PackA, typename PackB, typename Epilogue = NoEpilogue>
void gemm_packed(const GemmKernel<T>& kern, int64_t m, int64_t n, int64_t k, T alpha,
                 const PackA& pack_a, const PackB& pack_b, T beta, T* c, int64_t ldc,
                 int nthreads, const Epilogue& epilogue = {}) {
  if (m <= 0 || n <= 0) return;
  const int64_t tiles_m = (m + kern.mr - 1) / kern.mr, tiles_n = (n + kern.nr - 1) / kern.nr;
  // Split the dimension with more tiles, at tile boundaries; but split the columns too when A is
  // one block and no bigger than B (m <= mc, m <= n): each thread then packs all of A, which costs
  // less than its share of B, and no thread waits for another (the row split's team meets two
  // barriers per k block, a fifth of the time of a 64 x 120 x 84 product).
  const bool split_m = tiles_m >= tiles_n && !(m <= kern.mc && m <= n && tiles_n >= nthreads);
  const int64_t tiles = split_m ? tiles_m : tiles_n;
  nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, tiles)));
  // The block depth depends on the shape only: it sets where the sums over k are rounded, so
  // the bits do not depend on the thread count (and a team shares its B blocks).
  GemmKernel<T> blocked = kern;
  blocked.kc = detail::block_kc(kern, k, m);
  if (nthreads == 1) {
    detail::gemm_block(blocked, 0, m, 0, n, k, alpha, pack_a, pack_b, beta, c, ldc, epilogue, {});
    return;
  }
#if defined(CONVFORGE_OPENMP)
  if (split_m) {  // one shared B block (the calling thread's buffer), rows split
    void* b_shared = gemm_workspace(1, sizeof(T) * detail::block_nc(kern, n) * blocked.kc);
#pragma omp parallel num_threads(nthreads)
    {
      const detail::Team team{omp_get_thread_num(), omp_get_num_threads(), b_shared};
      const int64_t b = std::min(tiles * team.index / team.size * kern.mr, m);
      const int64_t e = std::min(tiles * (team.index + 1) / team.size * kern.mr, m);
      detail::gemm_block(blocked, b, e, 0, n, k, alpha, pack_a, pack_b, beta, c, ldc, epilogue, team);
    }
    return;
  }
#endif
  // Columns split: each thread packs its own columns of B (and all of the small A).
  parallel_for(nthreads, nthreads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = std::min(tiles * t / nthreads * kern.nr, n);
      const int64_t e = std::min(tiles * (t + 1) / nthreads * kern.nr, n);
      if (b < e) detail::gemm_block(blocked, 0, m, b, e, k, alpha, pack_a, pack_b, beta, c, ldc, epilogue, {});
    }
  });
}

}  // namespace convforge::cpu
