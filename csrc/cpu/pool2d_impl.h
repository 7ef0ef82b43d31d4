// Pooling kernels, written once against a small SIMD traits struct `S` and compiled once per ISA
// (csrc/cpu/pool2d.cpp: scalar, pool2d__avx2.cpp, pool2d__avx512.cpp), each translation unit
// with its own ISA flags and its own traits.
//
// Layout: NCHW planes, threaded over the n * c planes (channels_last: namespace nhwc below).
// Within a plane, outputs whose windows lie inside the input ("interior") are computed S::N at
// a time along the width; the border (padding, ceil_mode's clipped windows) goes through
// per-element functions that are torch's loops verbatim. Backward passes are gathers over input
// pixels: each grad_input row is computed in registers from the output rows whose windows cover
// it and stored once, in the same order of summation as torch's scatter (output order), so
// results are deterministic and, where the arithmetic allows, identical to torch's.
//
// Traits contract (T = float|double, N lanes): V values, M lane mask, I lane-sized integers
// (running max index, match counts), C int64 candidates compared against stored indices.
//   zero set1 loadu storeu add div            plain lane-wise ops
//   load_s<SW>(p)       p[0], p[SW], ..., p[(N-1)*SW]; reads nothing past the last of them
//   store_s<SW>(p, a)   p[SW*l + c] = a[c][l]: SW vectors interleaved into SW*N elements
//   gt_or_nan(v, best)  v > best || isnan(v): torch's update rule for the running maximum
//   select(m, a, b)     m ? a : b          (select_i: the same on I)
//   iota(s, k)          I lanes s + k*l    (add_i adds a scalar)
//   store_idx(p, i)     N int64 at p
//   cand(s, k)          C lanes s + k*l;   eq(p, c): int64 p[l] == c[l]
//   add_masked(a, m, v) m ? a + v : a;     count(cnt, m): cnt + (m ? 1 : 0);  hsum(cnt)
//   lanes_from(k)       lanes l >= k;      and_(m1, m2)
//   narrow_indices      if true: narrow(src, dst, n) int64 -> int32 with saturation, and
//                       eq(const int32_t* p, I c) compares them (else C and eq on int64 only)
//   narrow_indices16    if true: narrow16(src, dst, n) int64 -> int16 with saturation, and
//                       eq16(const int16_t* p, k): p[l] == k (NHWC max backward)
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/parallel.h"
#include "core/scratch.h"
#include "ops.h"

// Internal linkage: every ISA's translation unit gets its own copy, compiled with its own flags
// (an inline function shared across them could be linked in from the wrong one). For the same
// reason no std containers: memory comes from Scratch (see core/scratch.h).
namespace convforge::cpu {
namespace {
namespace pool {

// One lane: the scalar ISA's traits, and the NHWC path's when a pixel has fewer channels than
// a vector has lanes (or its plane offsets do not fit the int32 index lanes).
template <typename T_>
struct Scalar {
  using T = T_;
  using V = T;
  using I = int64_t;
  using M = bool;
  using C = int64_t;
  static constexpr int N = 1;
  static V zero() { return T(0); }
  static V set1(T v) { return v; }
  static V loadu(const T* p) { return *p; }
  static void storeu(T* p, V v) { *p = v; }
  template <int SW> static V load_s(const T* p) { return *p; }
  template <int SW> static void store_s(T* p, const V* a) {
    for (int c = 0; c < SW; ++c) p[c] = a[c];
  }
  static V add(V a, V b) { return a + b; }
  static V div(V a, V b) { return a / b; }
  static M gt_or_nan(V v, V best) { return v > best || std::isnan(v); }
  static V select(M m, V a, V b) { return m ? a : b; }
  static I select_i(M m, I a, I b) { return m ? a : b; }
  static I iota(int64_t start, int64_t) { return start; }
  static I add_i(I a, int64_t k) { return a + k; }
  static void store_idx(int64_t* p, I v) { *p = v; }
  static C cand(int64_t start, int64_t) { return start; }
  static constexpr bool narrow_indices = false, narrow_indices16 = false;
  static void narrow(const int64_t*, int32_t*, int64_t) {}
  static M eq(const int32_t*, I) { return M(); }
  static M eq(const int64_t* p, C c) { return *p == c; }
  static V add_masked(V acc, M m, V v) { return m ? acc + v : acc; }
  static I count(I cnt, M m) { return cnt + m; }
  static int64_t hsum(I cnt) { return cnt; }
  static M lanes_from(int64_t k) { return k <= 0; }
  static M and_(M a, M b) { return a && b; }
};

// A window shape fixed at compile time (0: read from the params at run time) and the width
// stride of the vector path, 1 or 2.
template <int KH_, int KW_, int SW_>
struct Shape {
  static constexpr int KH = KH_, KW = KW_, SW = SW_;
  static constexpr bool vector = true;
};
struct ScalarOnly {  // any stride, any kernel: per-element functions everywhere
  static constexpr int KH = 0, KW = 0, SW = 1;
  static constexpr bool vector = false;
};

// Picks the compiled variant for these params: the one place where runtime facts become
// template parameters. f(Shape<...>{}) or f(ScalarOnly{}).
template <typename F>
void with_shape(const Pool2dParams& p, F&& f) {
  const bool fits = p.h * p.w < (int64_t{1} << 31);  // int32 index lanes
  const bool plain = p.dilation_h == 1 && p.dilation_w == 1;
  if (!fits || (p.stride_w != 1 && p.stride_w != 2)) return f(ScalarOnly{});
  if (plain && p.kh == 2 && p.kw == 2 && p.stride_w == 2) return f(Shape<2, 2, 2>{});
  if (plain && p.kh == 3 && p.kw == 3 && p.stride_w == 2) return f(Shape<3, 3, 2>{});
  if (plain && p.kh == 3 && p.kw == 3 && p.stride_w == 1) return f(Shape<3, 3, 1>{});
  if (p.stride_w == 2) return f(Shape<0, 0, 2>{});
  return f(Shape<0, 0, 1>{});
}

// Minimum bytes moved per thread before a second thread is worth its fork/join.
constexpr double kMinBytesPerThread = 256 * 1024;

struct Geom {
  int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t oh_lo, oh_hi, ow_lo, ow_hi;  // outputs whose windows lie inside the input
};

inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

inline void interior(int64_t in, int64_t out, int64_t k, int64_t s, int64_t pad, int64_t d,
                     int64_t& lo, int64_t& hi) {
  lo = std::min(ceil_div(pad, s), out);
  hi = std::clamp(floor_div(in - 1 - (k - 1) * d + pad, s) + 1, lo, out);
}

inline Geom make_geom(const Pool2dParams& p) {
  Geom g{p.h, p.w, p.out_h, p.out_w, p.kh, p.kw, p.stride_h, p.stride_w,
         p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, 0, 0, 0, 0};
  interior(g.h, g.oh, g.kh, g.sh, g.ph, g.dh, g.oh_lo, g.oh_hi);
  interior(g.w, g.ow, g.kw, g.sw, g.pw, g.dw, g.ow_lo, g.ow_hi);
  return g;
}

// ---------------------------------------------------------------------------------------------
// Per-element functions: torch's CPU loops (aten/src/ATen/native/cpu/{Max,Avg}PoolKernel.cpp).

template <typename T>
inline void max_one(const Geom& g, const T* x, int64_t oh, int64_t ow, T* y, int64_t* idx) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const int64_t h1 = std::min(h0 + (g.kh - 1) * g.dh + 1, g.h);
  const int64_t w1 = std::min(w0 + (g.kw - 1) * g.dw + 1, g.w);
  if (h0 < 0) h0 += ceil_div(-h0, g.dh) * g.dh;
  if (w0 < 0) w0 += ceil_div(-w0, g.dw) * g.dw;
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_i = h0 * g.w + w0;
  for (int64_t ih = h0; ih < h1; ih += g.dh)
    for (int64_t iw = w0; iw < w1; iw += g.dw) {
      const T v = x[ih * g.w + iw];
      if (v > best || std::isnan(v)) {
        best = v;
        best_i = ih * g.w + iw;
      }
    }
  y[oh * g.ow + ow] = best;
  if (idx) idx[oh * g.ow + ow] = best_i;
}

// take ? a : b, as bit masks (a compiler keeps a branch for a float select).
template <typename T>
inline T select_bits(bool take, T a, T b) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  Bits ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const Bits mask = Bits(0) - Bits(take);
  const Bits r = (ua & mask) | (ub & ~mask);
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}

// max_one for a window that lies inside the input: no clipping, and the taps unrolled where Sh
// fixes the kernel.
template <class Sh, typename T>
inline void max_one_inside(const Geom& g, const T* x, int64_t oh, int64_t ow, T* y, int64_t* idx) {
  const int64_t kh = Sh::KH ? Sh::KH : g.kh, kw = Sh::KW ? Sh::KW : g.kw;
  const int64_t start = (oh * g.sh - g.ph) * g.w + ow * g.sw - g.pw;
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_i = start;
  for (int64_t i = 0; i < kh; ++i)
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t at = start + i * g.dh * g.w + j * g.dw;
      const T v = x[at];
      // Selected through masks, not branches: on random data a branch mispredicts every other tap.
      const bool take = (v > best) | (v != v);
      best = select_bits(take, v, best);
      best_i = take ? at : best_i;
    }
  y[oh * g.ow + ow] = best;
  if (idx) idx[oh * g.ow + ow] = best_i;
}

// torch's divisor for one axis: the window clipped to the padded input, or to the input.
inline int64_t avg_extent(int64_t o, int64_t in, int64_t k, int64_t s, int64_t pad,
                          bool count_include_pad) {
  int64_t a = o * s - pad, b = std::min(a + k, in + pad);
  if (!count_include_pad) a = std::max<int64_t>(a, 0), b = std::min(b, in);
  return b - a;
}

template <typename T>
inline void avg_one(const Geom& g, const T* x, int64_t oh, int64_t ow, T divisor, T* y) {
  const int64_t h0 = std::max<int64_t>(oh * g.sh - g.ph, 0), w0 = std::max<int64_t>(ow * g.sw - g.pw, 0);
  const int64_t h1 = std::min(oh * g.sh - g.ph + g.kh, g.h), w1 = std::min(ow * g.sw - g.pw + g.kw, g.w);
  T sum = 0;
  for (int64_t ih = h0; ih < h1; ++ih)
    for (int64_t iw = w0; iw < w1; ++iw) sum += x[ih * g.w + iw];
  y[oh * g.ow + ow] = sum / divisor;
}

// The divisor of every output of a plane (the same for all planes), in `storage`.
template <typename T>
const T* avg_divisors(const Pool2dParams& p, Scratch& storage) {
  T* const d = scratch_array<T>(storage, p.out_h * p.out_w);
  for (int64_t oh = 0; oh < p.out_h; ++oh)
    for (int64_t ow = 0; ow < p.out_w; ++ow)
      d[oh * p.out_w + ow] =
          p.divisor_override
              ? T(p.divisor_override)
              : T(avg_extent(oh, p.h, p.kh, p.stride_h, p.pad_h, p.count_include_pad) *
                  avg_extent(ow, p.w, p.kw, p.stride_w, p.pad_w, p.count_include_pad));
  return d;
}

// ---------------------------------------------------------------------------------------------
// Forward: one output row at a time; vector blocks over the interior columns, the last block
// shifted left to end at the interior's edge (it recomputes a few outputs, identically).

// Rows whose interior is narrower than a vector block run `inside` there: one output whose window
// lies inside the input (a plane of 14 outputs per row has no block of 16 to vectorize).
template <class S, class Sh, typename Block, typename Inside, typename One>
inline void forward_plane(const Geom& g, Block&& block, Inside&& inside, One&& one) {
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const bool row_inside = oh >= g.oh_lo && oh < g.oh_hi;
    if (row_inside && g.ow_hi - g.ow_lo < S::N) {
      for (int64_t ow = 0; ow < g.ow; ++ow)
        if (ow >= g.ow_lo && ow < g.ow_hi)
          inside(oh, ow);
        else
          one(oh, ow);
      continue;
    }
    int64_t a = 0, b = 0;  // vector columns [a, b)
    if (Sh::vector && row_inside) a = g.ow_lo, b = g.ow_hi;
    for (int64_t ow = 0; ow < a; ++ow) one(oh, ow);
    if (b > a) {
      int64_t ow = a;
      for (; ow + S::N <= b; ow += S::N) block(oh, ow);
      if (ow < b) block(oh, b - S::N);
    }
    for (int64_t ow = b; ow < g.ow; ++ow) one(oh, ow);
  }
}

template <class S, class Sh, bool with_idx>
inline void max_block(const Geom& g, const typename S::T* x, typename S::T* y, int64_t* idx,
                      int64_t oh, int64_t ow0) {
  using T = typename S::T;
  const int64_t kh = Sh::KH ? Sh::KH : g.kh, kw = Sh::KW ? Sh::KW : g.kw;
  const int64_t start = (oh * g.sh - g.ph) * g.w + ow0 * Sh::SW - g.pw;
  auto best = S::set1(-std::numeric_limits<T>::infinity());
  const auto first = S::iota(start, Sh::SW);
  auto best_i = first;
  for (int64_t i = 0; i < kh; ++i)
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t off = i * g.dh * g.w + j * g.dw;
      const auto v = S::template load_s<Sh::SW>(x + start + off);
      const auto m = S::gt_or_nan(v, best);
      best = S::select(m, v, best);
      if constexpr (with_idx) best_i = S::select_i(m, S::add_i(first, off), best_i);
    }
  S::storeu(y + oh * g.ow + ow0, best);
  if constexpr (with_idx) S::store_idx(idx + oh * g.ow + ow0, best_i);
}

template <class S, class Sh>
inline void avg_block(const Geom& g, const typename S::T* x, typename S::T* y, typename S::T divisor,
                      int64_t oh, int64_t ow0) {
  const int64_t kh = Sh::KH ? Sh::KH : g.kh, kw = Sh::KW ? Sh::KW : g.kw;
  const int64_t start = (oh * g.sh - g.ph) * g.w + ow0 * Sh::SW - g.pw;
  auto sum = S::zero();
  for (int64_t i = 0; i < kh; ++i)
    for (int64_t j = 0; j < kw; ++j)
      sum = S::add(sum, S::template load_s<Sh::SW>(x + start + i * g.w + j));
  S::storeu(y + oh * g.ow + ow0, S::div(sum, S::set1(divisor)));
}

// ---------------------------------------------------------------------------------------------
// Backward: for input row r, the output rows oh whose windows cover it (increasing), and for
// input column iw the columns ow (increasing); in the vector path the input columns split into
// SW phases iw = SW * j + c, each phase reading contiguous output columns j + off.

// For every input coordinate along one axis, the output coordinates whose windows cover it, in
// increasing order (computed once per call: no divisions in the loops).
struct Cover {
  Scratch start_storage, list_storage;
  int64_t *start, *list;  // coordinate i: list[start[i] .. start[i + 1])

  Cover(int64_t in, int64_t out, int64_t k, int64_t s, int64_t pad, int64_t d)
      : start(scratch_array<int64_t>(start_storage, in + 1)), list(nullptr) {
    // Two passes, counting then filling (the list's length is not known up front).
    for (int pass = 0; pass < 2; ++pass) {
      int64_t size = 0;
      for (int64_t i = 0; i < in; ++i) {
        start[i] = size;
        for (int64_t j = k - 1; j >= 0; --j) {
          const int64_t t = i + pad - j * d;
          if (t >= 0 && t % s == 0 && t / s < out) {
            if (pass == 1) list[size] = t / s;
            ++size;
          }
        }
      }
      start[in] = size;
      if (pass == 0) list = scratch_array<int64_t>(list_storage, size);
    }
  }
  const int64_t* begin(int64_t i) const { return list + start[i]; }
  const int64_t* end(int64_t i) const { return list + start[i + 1]; }
};

// One input pixel, per element. contrib(acc, o) adds the contribution of output o, if any.
template <typename T, typename Contrib>
inline T gather_one(const Geom& g, const int64_t* oh0, const int64_t* oh1, const Cover& cols,
                    int64_t iw, Contrib&& contrib) {
  T acc = 0;
  for (const int64_t* oh = oh0; oh != oh1; ++oh)
    for (const int64_t* ow = cols.begin(iw); ow != cols.end(iw); ++ow) contrib(acc, *oh * g.ow + *ow);
  return acc;
}

// Phase offsets of the vector path: for phase c and window column j, output column = j0 + off
// when (c + pw - j * dw) is a multiple of SW. Also the range of block starts it allows.
template <class Sh>
struct Phases {
  int64_t off[2][64];
  bool use[2][64];
  int64_t j_lo = 0, j_end = 0;  // vector blocks cover phase columns [j_lo, j_end)

  Phases(const Geom& g, int n_lanes) {
    int64_t lo = 0, hi = 0;
    bool any = false;
    for (int c = 0; c < Sh::SW; ++c)
      for (int64_t j = 0; j < g.kw && j < 64; ++j) {
        const int64_t q = c + g.pw - j * g.dw;
        use[c][j] = floor_div(q, Sh::SW) * Sh::SW == q;
        off[c][j] = floor_div(q, Sh::SW);
        if (!use[c][j]) continue;
        lo = any ? std::min(lo, off[c][j]) : off[c][j];
        hi = any ? std::max(hi, off[c][j]) : off[c][j];
        any = true;
      }
    j_lo = std::max<int64_t>(0, -lo);
    j_end = std::min(g.ow - hi, g.w / Sh::SW);
    if (!Sh::vector || g.kw > 64 || j_end - j_lo < n_lanes) j_lo = j_end = 0;
  }
};

// Max backward of one plane; returns how many (output, window position) pairs matched an index.
// idx is the plane's int64 indices, or their copy narrowed to int32 with saturation (S::narrow:
// one compare per lane instead of two; a saturated value never equals a position of the plane).
template <class S, class Sh, typename X>
inline int64_t max_backward_plane(const Geom& g, const Phases<Sh>& ph, const Cover& rows,
                                  const Cover& cols, const typename S::T* dy, const X* idx,
                                  typename S::T* dx) {
  using T = typename S::T;
  constexpr int SW = Sh::SW;
  const int64_t kw = Sh::KW ? Sh::KW : g.kw;
  int64_t matched = 0;
  auto counts = S::iota(0, 0);
  for (int64_t r = 0; r < g.h; ++r) {
    T* dxr = dx + r * g.w;
    const int64_t *oh0 = rows.begin(r), *oh1 = rows.end(r);
    if (oh0 == oh1) {
      std::fill(dxr, dxr + g.w, T(0));
      continue;
    }
    auto one = [&](int64_t iw) {
      dxr[iw] = gather_one<T>(g, oh0, oh1, cols, iw, [&](T& acc, int64_t o) {
        if (idx[o] == r * g.w + iw) acc += dy[o], ++matched;
      });
    };
    auto block = [&](int64_t j0, typename S::M fresh) {
      typename S::V acc[SW];
      auto make_cand = [](int64_t start, int64_t step) {
        if constexpr (sizeof(X) == 4) return S::iota(start, step);
        else return S::cand(start, step);
      };
      decltype(make_cand(0, 0)) cand[SW];
      for (int c = 0; c < SW; ++c) acc[c] = S::zero(), cand[c] = make_cand(r * g.w + SW * j0 + c, SW);
      for (const int64_t* oh = oh0; oh != oh1; ++oh) {
        const int64_t o = *oh * g.ow + j0;
        for (int64_t j = kw - 1; j >= 0; --j)
          for (int c = 0; c < SW; ++c) {
            if (!ph.use[c][j]) continue;
            const auto m = S::eq(idx + o + ph.off[c][j], cand[c]);
            acc[c] = S::add_masked(acc[c], m, S::loadu(dy + o + ph.off[c][j]));
            counts = S::count(counts, S::and_(m, fresh));
          }
      }
      S::template store_s<SW>(dxr + SW * j0, acc);
    };
    for (int64_t iw = 0; iw < SW * ph.j_lo; ++iw) one(iw);
    if (ph.j_end > ph.j_lo) {
      int64_t j0 = ph.j_lo;
      for (; j0 + S::N <= ph.j_end; j0 += S::N) block(j0, S::lanes_from(0));
      if (j0 < ph.j_end) block(ph.j_end - S::N, S::lanes_from(j0 - (ph.j_end - S::N)));
    }
    for (int64_t iw = SW * ph.j_end; iw < g.w; ++iw) one(iw);
  }
  return matched + S::hsum(counts);
}

// Avg backward of one plane from share = grad_output / divisor (one plane, contiguous).
template <class S, class Sh>
inline void avg_backward_plane(const Geom& g, const Phases<Sh>& ph, const Cover& rows,
                               const Cover& cols, const typename S::T* share, typename S::T* dx) {
  using T = typename S::T;
  constexpr int SW = Sh::SW;
  const int64_t kw = Sh::KW ? Sh::KW : g.kw;
  for (int64_t r = 0; r < g.h; ++r) {
    T* dxr = dx + r * g.w;
    const int64_t *oh0 = rows.begin(r), *oh1 = rows.end(r);
    if (oh0 == oh1) {
      std::fill(dxr, dxr + g.w, T(0));
      continue;
    }
    auto one = [&](int64_t iw) {
      dxr[iw] = gather_one<T>(g, oh0, oh1, cols, iw, [&](T& acc, int64_t o) { acc += share[o]; });
    };
    auto block = [&](int64_t j0) {
      typename S::V acc[SW];
      for (int c = 0; c < SW; ++c) acc[c] = S::zero();
      for (const int64_t* oh = oh0; oh != oh1; ++oh) {
        const int64_t o = *oh * g.ow + j0;
        for (int64_t j = kw - 1; j >= 0; --j)
          for (int c = 0; c < SW; ++c)
            if (ph.use[c][j]) acc[c] = S::add(acc[c], S::loadu(share + o + ph.off[c][j]));
      }
      S::template store_s<SW>(dxr + SW * j0, acc);
    };
    for (int64_t iw = 0; iw < SW * ph.j_lo; ++iw) one(iw);
    if (ph.j_end > ph.j_lo) {
      int64_t j0 = ph.j_lo;
      for (; j0 + S::N <= ph.j_end; j0 += S::N) block(j0);
      if (j0 < ph.j_end) block(ph.j_end - S::N);
    }
    for (int64_t iw = SW * ph.j_end; iw < g.w; ++iw) one(iw);
  }
}

// ---------------------------------------------------------------------------------------------
// NHWC (channels_last): a pixel's channels are contiguous, so vectors run along them and every
// window tap is a plain load per vector. The window of an output pixel is computed once, as in
// torch's loops, and serves all its channels; groups of vectors stay in registers across the
// taps. Indices are the same plane offsets h * W + w as in NCHW (one value for all lanes), in
// an NHWC-dense array. Threads take output rows (forward) or input rows (backward) of all
// images. Backward passes gather as the NCHW ones do, in the same order of summation (so the
// results are torch's channels_last results, bit for bit), two input columns at a time.
namespace nhwc {

template <int B_>
struct Blocks {
  static constexpr int B = B_;
};
template <class S_>
struct Use {
  using S = S_;
};

// Vectors per group: the running values (and indices) of a group live in registers. Two
// pixels' worth (max backward) fits 4 of 32 AVX-512 registers, 2 of the 16 others.
constexpr int kGroup = 4;
template <class S>
constexpr int kPairGroup = sizeof(typename S::V) >= 64 ? 4 : 2;

// f(Blocks<B>{}, c0, fresh) for the channel blocks of one pixel: groups of B vectors, then single
// vectors, then, where C is not a multiple of N, one vector shifted back to end at C (it redoes
// some lanes, identically; `fresh` marks the lanes not done before). Needs C >= N.
template <class S, int B, typename F>
inline void channel_blocks(int64_t c, F&& f) {
  int64_t c0 = 0;
  for (; c0 + B * S::N <= c; c0 += B * S::N) f(Blocks<B>{}, c0, S::lanes_from(0));
  for (; c0 + S::N <= c; c0 += S::N) f(Blocks<1>{}, c0, S::lanes_from(0));
  if (c0 < c) f(Blocks<1>{}, c - S::N, S::lanes_from(c0 - (c - S::N)));
}

// Runs run(Use<S>{}) with the vector traits, or with one lane where a pixel has fewer channels
// than a vector or the plane offsets do not fit the int32 index lanes.
template <class S, typename Run>
inline void with_traits(const Pool2dParams& p, Run&& run) {
  const bool fits = p.h * p.w < (int64_t{1} << 31);
  if (p.c >= S::N && fits) return run(Use<S>{});
  run(Use<Scalar<typename S::T>>{});
}

// Max pooling's taps along one axis: a, a + d, ... < b (max_one's bounds).
inline void max_taps(int64_t o, int64_t k, int64_t s, int64_t pad, int64_t d, int64_t in, int64_t& a,
                     int64_t& b) {
  a = o * s - pad;
  b = std::min(a + (k - 1) * d + 1, in);
  if (a < 0) a += ceil_div(-a, d) * d;
}

// Avg pooling's taps along one axis: [a, b) (avg_one's bounds).
inline void avg_taps(int64_t o, int64_t k, int64_t s, int64_t pad, int64_t in, int64_t& a, int64_t& b) {
  a = std::max<int64_t>(o * s - pad, 0);
  b = std::min(o * s - pad + k, in);
}

template <class S, bool with_idx>
void max_forward(const Pool2dParams& p, const Geom& g, const typename S::T* x, typename S::T* y,
                 int64_t* idx, int nt) {
  using T = typename S::T;
  const int64_t c = p.c;
  parallel_for(p.n * g.oh, nt, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {  // u = n * oh + output row
      const T* xn = x + (u / g.oh) * g.h * g.w * c;
      int64_t h0, h1;
      max_taps(u % g.oh, g.kh, g.sh, g.ph, g.dh, g.h, h0, h1);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        int64_t w0, w1;
        max_taps(ow, g.kw, g.sw, g.pw, g.dw, g.w, w0, w1);
        const int64_t out = (u * g.ow + ow) * c;
        channel_blocks<S, kGroup>(c, [&](auto blocks, int64_t c0, typename S::M) {
          constexpr int B = decltype(blocks)::B;
          typename S::V best[B];
          typename S::I best_i[B];
          const auto first = S::iota(h0 * g.w + w0, 0);
          for (int b = 0; b < B; ++b)
            best[b] = S::set1(-std::numeric_limits<T>::infinity()), best_i[b] = first;
          for (int64_t ih = h0; ih < h1; ih += g.dh)
            for (int64_t iw = w0; iw < w1; iw += g.dw) {
              const T* xp = xn + (ih * g.w + iw) * c + c0;
              const auto pos = S::iota(ih * g.w + iw, 0);
              for (int b = 0; b < B; ++b) {
                const auto v = S::loadu(xp + b * S::N);
                const auto m = S::gt_or_nan(v, best[b]);
                best[b] = S::select(m, v, best[b]);
                if constexpr (with_idx) best_i[b] = S::select_i(m, pos, best_i[b]);
              }
            }
          for (int b = 0; b < B; ++b) {
            S::storeu(y + out + c0 + b * S::N, best[b]);
            if constexpr (with_idx) S::store_idx(idx + out + c0 + b * S::N, best_i[b]);
          }
        });
      }
    }
  });
}

template <class S>
void avg_forward(const Pool2dParams& p, const Geom& g, const typename S::T* divisors,
                 const typename S::T* x, typename S::T* y, int nt) {
  using T = typename S::T;
  const int64_t c = p.c;
  parallel_for(p.n * g.oh, nt, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const T* xn = x + (u / g.oh) * g.h * g.w * c;
      const int64_t oh = u % g.oh;
      int64_t h0, h1;
      avg_taps(oh, g.kh, g.sh, g.ph, g.h, h0, h1);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        int64_t w0, w1;
        avg_taps(ow, g.kw, g.sw, g.pw, g.w, w0, w1);
        const auto divisor = S::set1(divisors[oh * g.ow + ow]);
        T* yp = y + (u * g.ow + ow) * c;
        channel_blocks<S, kGroup>(c, [&](auto blocks, int64_t c0, typename S::M) {
          constexpr int B = decltype(blocks)::B;
          typename S::V sum[B];
          for (int b = 0; b < B; ++b) sum[b] = S::zero();
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) {
              const T* xp = xn + (ih * g.w + iw) * c + c0;
              for (int b = 0; b < B; ++b) sum[b] = S::add(sum[b], S::loadu(xp + b * S::N));
            }
          for (int b = 0; b < B; ++b) S::storeu(yp + c0 + b * S::N, S::div(sum[b], divisor));
        });
      }
    }
  });
}

// A per-thread copy of the output rows that a thread's input rows read, made as they are first
// needed, so it is still in cache when read: rows [lo, next) of image `image` are done.
// Backward passes read the same rows again for each input row their windows cover.
template <typename X>
struct RowCopy {
  int64_t image = -1, lo = 0, next = 0;
  X* rows = nullptr;

  // Makes the rows input row r of image n needs (none if it has no covering output row), the
  // thread going through [u, u1) in order; prepare(oh, dst) fills output row oh.
  template <typename Prepare>
  void need(Scratch& storage, const Cover& cover, int64_t h, int64_t out_row, int64_t n, int64_t r,
            int64_t rows_left, Prepare&& prepare) {
    if (n != image) {  // the output rows covering this image's input rows [r, r_end)
      const int64_t r_end = std::min(h, r + rows_left);
      int64_t hi = 0;
      lo = std::numeric_limits<int64_t>::max();
      for (int64_t i = r; i < r_end; ++i)
        if (cover.begin(i) != cover.end(i))
          lo = std::min(lo, *cover.begin(i)), hi = std::max(hi, cover.end(i)[-1] + 1);
      rows = scratch_array<X>(storage, std::max<int64_t>(hi - lo, 0) * out_row);
      image = n, next = lo;
    }
    if (cover.begin(r) == cover.end(r)) return;
    for (; next <= cover.end(r)[-1]; ++next) prepare(next, rows + (next - lo) * out_row);
  }
  const X* row(int64_t oh, int64_t out_row) const { return rows + (oh - lo) * out_row; }
};

// Max backward, gathered: each grad_input pixel sums the grad_output elements of the outputs
// covering it whose index names it, in output order. matched[n * h + r]: how many (output,
// channel) pairs input row r of image n matched; an image whose rows together match fewer
// than all its outputs has indices outside their windows, and the caller redoes it. The
// indices are compared as they are (X = int64_t) or as int32 / int16 copies (S::narrow,
// S::narrow16; see max_backward_plane): smaller loads, and more compares per load.
template <class S, typename X>
void max_backward_gather(const Pool2dParams& p, const Geom& g, const Cover& rows, const Cover& cols,
                         const typename S::T* dy, const int64_t* idx, typename S::T* dx,
                         int64_t* matched, int nt) {
  using T = typename S::T;
  constexpr bool narrowed = !std::is_same_v<X, int64_t>;
  const int64_t c = p.c, out_row = g.ow * c, out_image = g.oh * out_row;
  parallel_for(p.n * g.h, nt, [&](int64_t u0, int64_t u1) {
    static thread_local Scratch narrow_storage;  // per-thread workspace, reused across calls
    RowCopy<X> copy;
    for (int64_t u = u0; u < u1; ++u) {  // u = n * h + input row
      const int64_t n = u / g.h, r = u % g.h;
      T* dxr = dx + u * g.w * c;
      const T* dyn = dy + n * out_image;
      const int64_t* in = idx + n * out_image;
      const int64_t *oh0 = rows.begin(r), *oh1 = rows.end(r);
      matched[u] = 0;
      if constexpr (std::is_same_v<X, int16_t>)
        copy.need(narrow_storage, rows, g.h, out_row, n, r, u1 - u,
                  [&](int64_t oh, int16_t* dst) { S::narrow16(in + oh * out_row, dst, out_row); });
      else if constexpr (narrowed)
        copy.need(narrow_storage, rows, g.h, out_row, n, r, u1 - u,
                  [&](int64_t oh, int32_t* dst) { S::narrow(in + oh * out_row, dst, out_row); });
      if (oh0 == oh1) {
        std::fill(dxr, dxr + g.w * c, T(0));
        continue;
      }
      // Two input columns at a time: the outputs covering both (neighbours share them) are
      // loaded once. Each column still sums its outputs in increasing order.
      auto counts = S::iota(0, 0);
      for (int64_t iw = 0; iw < g.w; iw += 2) {
        const bool two = iw + 1 < g.w;
        const int64_t *a0 = cols.begin(iw), *a1 = cols.end(iw);
        const int64_t *b0 = two ? cols.begin(iw + 1) : a1, *b1 = two ? cols.end(iw + 1) : a1;
        const int64_t pos = r * g.w + iw;
        T* dxp = dxr + iw * c;
        channel_blocks<S, kPairGroup<S>>(c, [&](auto blocks, int64_t c0, typename S::M fresh) {
          constexpr int B = decltype(blocks)::B;
          typename S::V acc_a[B], acc_b[B];
          for (int b = 0; b < B; ++b) acc_a[b] = S::zero(), acc_b[b] = S::zero();
          auto match = [&](const X* ip, int64_t at) {
            if constexpr (std::is_same_v<X, int16_t>) return S::eq16(ip, at);
            else if constexpr (narrowed) return S::eq(ip, S::iota(at, 0));
            else return S::eq(ip, S::cand(at, 0));
          };
          for (const int64_t* oh = oh0; oh != oh1; ++oh) {
            const X* ir;
            if constexpr (narrowed) ir = copy.row(*oh, out_row) + c0;
            else ir = in + *oh * out_row + c0;
            const T* gr = dyn + *oh * out_row + c0;
            for (const int64_t *pa = a0, *pb = b0; pa != a1 || pb != b1;) {  // the union, in order
              const int64_t ow = pb == b1 || (pa != a1 && *pa <= *pb) ? *pa : *pb;
              const bool in_a = pa != a1 && *pa == ow, in_b = pb != b1 && *pb == ow;
              pa += in_a, pb += in_b;
              typename S::V v[B];
              for (int b = 0; b < B; ++b) v[b] = S::loadu(gr + ow * c + b * S::N);
              if (in_a)
                for (int b = 0; b < B; ++b) {
                  const auto m = match(ir + ow * c + b * S::N, pos);
                  acc_a[b] = S::add_masked(acc_a[b], m, v[b]);
                  counts = S::count(counts, S::and_(m, fresh));
                }
              if (in_b)
                for (int b = 0; b < B; ++b) {
                  const auto m = match(ir + ow * c + b * S::N, pos + 1);
                  acc_b[b] = S::add_masked(acc_b[b], m, v[b]);
                  counts = S::count(counts, S::and_(m, fresh));
                }
            }
          }
          for (int b = 0; b < B; ++b) S::storeu(dxp + c0 + b * S::N, acc_a[b]);
          if (two)
            for (int b = 0; b < B; ++b) S::storeu(dxp + c + c0 + b * S::N, acc_b[b]);
        });
      }
      matched[u] = S::hsum(counts);
    }
  });
}

// Max backward of the images whose indices the gather did not all match: redone as torch does
// it, a scatter in output order, skipping (and reporting) indices outside the plane.
template <typename T>
bool max_backward_scatter(const Pool2dParams& p, const Geom& g, const T* dy, const int64_t* idx,
                          T* dx, const int64_t* matched, int nt) {
  const int64_t c = p.c, plane = g.h * g.w, out_image = g.oh * g.ow * c;
  Scratch flags_storage;
  uint8_t* const outside = scratch_zeros<uint8_t>(flags_storage, p.n);
  parallel_for(p.n, nt, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t total = 0;
      for (int64_t r = 0; r < g.h; ++r) total += matched[n * g.h + r];
      if (total == out_image) continue;
      const T* dyn = dy + n * out_image;
      const int64_t* in = idx + n * out_image;
      T* dxn = dx + n * plane * c;
      std::fill(dxn, dxn + plane * c, T(0));
      for (int64_t o = 0; o < g.oh * g.ow; ++o)
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t i = in[o * c + ch];
          if (uint64_t(i) < uint64_t(plane))
            dxn[i * c + ch] += dyn[o * c + ch];
          else
            outside[n] = 1;
        }
    }
  });
  for (int64_t n = 0; n < p.n; ++n)
    if (outside[n]) return false;
  return true;
}

// Avg backward, gathered from share = grad_output / divisor, computed per thread (RowCopy).
template <class S>
void avg_backward_gather(const Pool2dParams& p, const Geom& g, const Cover& rows, const Cover& cols,
                         const typename S::T* divisors, const typename S::T* dy,
                         typename S::T* dx, int nt) {
  using T = typename S::T;
  const int64_t c = p.c, out_row = g.ow * c;
  parallel_for(p.n * g.h, nt, [&](int64_t u0, int64_t u1) {
    static thread_local Scratch share_storage;  // per-thread workspace, reused across calls
    RowCopy<T> share;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t n = u / g.h, r = u % g.h;
      const T* dyn = dy + n * g.oh * out_row;
      share.need(share_storage, rows, g.h, out_row, n, r, u1 - u, [&](int64_t oh, T* dst) {
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          const auto divisor = S::set1(divisors[oh * g.ow + ow]);
          const T* src = dyn + oh * out_row + ow * c;
          channel_blocks<S, kGroup>(c, [&](auto blocks, int64_t c0, typename S::M) {
            for (int b = 0; b < decltype(blocks)::B; ++b)
              S::storeu(dst + ow * c + c0 + b * S::N, S::div(S::loadu(src + c0 + b * S::N), divisor));
          });
        }
      });
      T* dxr = dx + u * g.w * c;
      const int64_t *oh0 = rows.begin(r), *oh1 = rows.end(r);
      if (oh0 == oh1) {
        std::fill(dxr, dxr + g.w * c, T(0));
        continue;
      }
      for (int64_t iw = 0; iw < g.w; iw += 2) {  // two columns at a time, as in max backward
        const bool two = iw + 1 < g.w;
        const int64_t *a0 = cols.begin(iw), *a1 = cols.end(iw);
        const int64_t *b0 = two ? cols.begin(iw + 1) : a1, *b1 = two ? cols.end(iw + 1) : a1;
        T* dxp = dxr + iw * c;
        channel_blocks<S, kPairGroup<S>>(c, [&](auto blocks, int64_t c0, typename S::M) {
          constexpr int B = decltype(blocks)::B;
          typename S::V acc_a[B], acc_b[B];
          for (int b = 0; b < B; ++b) acc_a[b] = S::zero(), acc_b[b] = S::zero();
          for (const int64_t* oh = oh0; oh != oh1; ++oh) {
            const T* sr = share.row(*oh, out_row) + c0;
            for (const int64_t *pa = a0, *pb = b0; pa != a1 || pb != b1;) {  // the union, in order
              const int64_t ow = pb == b1 || (pa != a1 && *pa <= *pb) ? *pa : *pb;
              const bool in_a = pa != a1 && *pa == ow, in_b = pb != b1 && *pb == ow;
              pa += in_a, pb += in_b;
              typename S::V v[B];
              for (int b = 0; b < B; ++b) v[b] = S::loadu(sr + ow * c + b * S::N);
              if (in_a)
                for (int b = 0; b < B; ++b) acc_a[b] = S::add(acc_a[b], v[b]);
              if (in_b)
                for (int b = 0; b < B; ++b) acc_b[b] = S::add(acc_b[b], v[b]);
            }
          }
          for (int b = 0; b < B; ++b) S::storeu(dxp + c0 + b * S::N, acc_a[b]);
          if (two)
            for (int b = 0; b < B; ++b) S::storeu(dxp + c + c0 + b * S::N, acc_b[b]);
        });
      }
    }
  });
}

}  // namespace nhwc

// ---------------------------------------------------------------------------------------------
// Drivers: threads over planes.

inline int pool_threads(const Pool2dParams& p, double bytes_per_plane) {
  return threads_for(double(p.n * p.c) * bytes_per_plane, kMinBytesPerThread);
}

template <class S>
void max_forward(const Pool2dParams& p, const typename S::T* x, typename S::T* y, int64_t* idx) {
  using T = typename S::T;
  const Geom g = make_geom(p);
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const int nt = pool_threads(p, sizeof(T) * (in_plane + out_plane) + (idx ? 8.0 * out_plane : 0.0));
  if (p.channels_last)
    return nhwc::with_traits<S>(p, [&](auto use) {
      using U = typename decltype(use)::S;
      if (idx)
        nhwc::max_forward<U, true>(p, g, x, y, idx, nt);
      else
        nhwc::max_forward<U, false>(p, g, x, y, idx, nt);
    });
  with_shape(p, [&](auto sh) {
    using Sh = decltype(sh);
    parallel_for(p.n * p.c, nt, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * in_plane;
        T* yp = y + pl * out_plane;
        int64_t* ip = idx ? idx + pl * out_plane : nullptr;
        auto one = [&](int64_t oh, int64_t ow) { max_one(g, xp, oh, ow, yp, ip); };
        auto inside = [&](int64_t oh, int64_t ow) { max_one_inside<Sh>(g, xp, oh, ow, yp, ip); };
        if (ip)
          forward_plane<S, Sh>(
              g, [&](int64_t oh, int64_t ow) { max_block<S, Sh, true>(g, xp, yp, ip, oh, ow); }, inside, one);
        else
          forward_plane<S, Sh>(
              g, [&](int64_t oh, int64_t ow) { max_block<S, Sh, false>(g, xp, yp, ip, oh, ow); }, inside, one);
      }
    });
  });
}

template <class S>
void avg_forward(const Pool2dParams& p, const typename S::T* x, typename S::T* y) {
  using T = typename S::T;
  const Geom g = make_geom(p);
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  Scratch divisors_storage;
  const T* const divisors = avg_divisors<T>(p, divisors_storage);
  const T inner = p.divisor_override ? T(p.divisor_override) : T(p.kh * p.kw);
  const int nt = pool_threads(p, sizeof(T) * (in_plane + out_plane));
  if (p.channels_last)
    return nhwc::with_traits<S>(p, [&](auto use) {
      nhwc::avg_forward<typename decltype(use)::S>(p, g, divisors, x, y, nt);
    });
  with_shape(p, [&](auto sh) {
    using Sh = decltype(sh);
    parallel_for(p.n * p.c, nt, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = x + pl * in_plane;
        T* yp = y + pl * out_plane;
        auto one = [&](int64_t oh, int64_t ow) { avg_one(g, xp, oh, ow, divisors[oh * g.ow + ow], yp); };
        forward_plane<S, Sh>(
            g, [&](int64_t oh, int64_t ow) { avg_block<S, Sh>(g, xp, yp, inner, oh, ow); }, one, one);
      }
    });
  });
}

// Every index inside its own window (the normal case) makes the gather exact; otherwise the
// plane is redone as torch does it, a scatter in output order, skipping indices outside the
// plane. Returns false if there were such indices. NCHW planes with no vector block across their
// width (too narrow, or a shape without a vector variant) go straight to the scatter.
template <class S>
bool max_backward(const Pool2dParams& p, const typename S::T* dy, const int64_t* idx, typename S::T* dx) {
  using T = typename S::T;
  const Geom g = make_geom(p);
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const int nt = pool_threads(p, sizeof(T) * (in_plane + out_plane) + 8.0 * out_plane);
  if (p.channels_last) {
    const Cover rows(g.h, g.oh, g.kh, g.sh, g.ph, g.dh), cols(g.w, g.ow, g.kw, g.sw, g.pw, g.dw);
    Scratch matched_storage;
    int64_t* const matched = scratch_array<int64_t>(matched_storage, p.n * g.h);
    nhwc::with_traits<S>(p, [&](auto use) {
      using U = typename decltype(use)::S;
      // Overlapping windows compare every index several times: narrowing them first pays.
      const bool overlap = g.kh > g.sh || g.kw > g.sw;
      if constexpr (U::narrow_indices16)
        if (overlap && g.h * g.w < INT16_MAX)
          return nhwc::max_backward_gather<U, int16_t>(p, g, rows, cols, dy, idx, dx, matched, nt);
      if constexpr (U::narrow_indices)
        if (overlap)
          return nhwc::max_backward_gather<U, int32_t>(p, g, rows, cols, dy, idx, dx, matched, nt);
      nhwc::max_backward_gather<U, int64_t>(p, g, rows, cols, dy, idx, dx, matched, nt);
    });
    return nhwc::max_backward_scatter(p, g, dy, idx, dx, matched, nt);
  }
  std::atomic<bool> in_bounds{true};
  with_shape(p, [&](auto sh) {
    using Sh = decltype(sh);
    const Phases<Sh> phases(g, S::N);
    const bool vector_blocks = phases.j_end > phases.j_lo;
    const Cover rows(g.h, g.oh, g.kh, g.sh, g.ph, g.dh), cols(g.w, g.ow, g.kw, g.sw, g.pw, g.dw);
    parallel_for(p.n * p.c, nt, [&](int64_t p0, int64_t p1) {
      static thread_local Scratch narrow_storage;  // per-thread workspace, reused across calls
      // Overlapping windows compare every index several times: narrowing them first pays.
      const bool narrowed = S::narrow_indices && vector_blocks && (g.kh > g.sh || g.kw > g.sw);
      int32_t* const narrow = narrowed ? scratch_array<int32_t>(narrow_storage, out_plane) : nullptr;
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* dyp = dy + pl * out_plane;
        const int64_t* ip = idx + pl * out_plane;
        T* dxp = dx + pl * in_plane;
        // Without a vector block the gather would search the windows an element at a time; the
        // scatter below is the same sums in the same (output) order.
        if (vector_blocks) {
          if (narrowed) S::narrow(ip, narrow, out_plane);
          const int64_t matched = narrowed ? max_backward_plane<S, Sh>(g, phases, rows, cols, dyp, narrow, dxp)
                                           : max_backward_plane<S, Sh>(g, phases, rows, cols, dyp, ip, dxp);
          if (matched == out_plane) continue;
        }
        std::fill(dxp, dxp + in_plane, T(0));
        for (int64_t o = 0; o < out_plane; ++o) {
          if (uint64_t(ip[o]) < uint64_t(in_plane))
            dxp[ip[o]] += dyp[o];
          else
            in_bounds.store(false, std::memory_order_relaxed);
        }
      }
    });
  });
  return in_bounds.load();
}

template <class S>
void avg_backward(const Pool2dParams& p, const typename S::T* dy, typename S::T* dx) {
  using T = typename S::T;
  const Geom g = make_geom(p);
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  Scratch divisors_storage;
  const T* const divisors = avg_divisors<T>(p, divisors_storage);
  const int nt = pool_threads(p, sizeof(T) * (in_plane + out_plane));
  if (p.channels_last) {
    const Cover rows(g.h, g.oh, g.kh, g.sh, g.ph, 1), cols(g.w, g.ow, g.kw, g.sw, g.pw, 1);
    return nhwc::with_traits<S>(p, [&](auto use) {
      nhwc::avg_backward_gather<typename decltype(use)::S>(p, g, rows, cols, divisors, dy, dx, nt);
    });
  }
  with_shape(p, [&](auto sh) {
    using Sh = decltype(sh);
    const Phases<Sh> phases(g, S::N);
    const Cover rows(g.h, g.oh, g.kh, g.sh, g.ph, 1), cols(g.w, g.ow, g.kw, g.sw, g.pw, 1);
    parallel_for(p.n * p.c, nt, [&](int64_t p0, int64_t p1) {
      static thread_local Scratch share_storage;  // per-thread workspace, reused across calls
      T* const share = scratch_array<T>(share_storage, out_plane);
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* dyp = dy + pl * out_plane;
        int64_t o = 0;
        for (; o + S::N <= out_plane; o += S::N)
          S::storeu(share + o, S::div(S::loadu(dyp + o), S::loadu(divisors + o)));
        for (; o < out_plane; ++o) share[o] = dyp[o] / divisors[o];
        avg_backward_plane<S, Sh>(g, phases, rows, cols, share, dx + pl * in_plane);
      }
    });
  });
}

// The four entry points for one ISA, float32 traits S32 and float64 traits S64.
template <class S32, class S64>
struct Ops {
  static void max_pool2d_forward(const Pool2dParams& p, const void* x, void* y, int64_t* idx) {
    if (p.dtype == DType::f32)
      max_forward<S32>(p, static_cast<const float*>(x), static_cast<float*>(y), idx);
    else
      max_forward<S64>(p, static_cast<const double*>(x), static_cast<double*>(y), idx);
  }
  static bool max_pool2d_backward(const Pool2dParams& p, const void* dy, const int64_t* idx, void* dx) {
    if (p.dtype == DType::f32)
      return max_backward<S32>(p, static_cast<const float*>(dy), idx, static_cast<float*>(dx));
    return max_backward<S64>(p, static_cast<const double*>(dy), idx, static_cast<double*>(dx));
  }
  static void avg_pool2d_forward(const Pool2dParams& p, const void* x, void* y) {
    if (p.dtype == DType::f32)
      avg_forward<S32>(p, static_cast<const float*>(x), static_cast<float*>(y));
    else
      avg_forward<S64>(p, static_cast<const double*>(x), static_cast<double*>(y));
  }
  static void avg_pool2d_backward(const Pool2dParams& p, const void* dy, void* dx) {
    if (p.dtype == DType::f32)
      avg_backward<S32>(p, static_cast<const float*>(dy), static_cast<float*>(dx));
    else
      avg_backward<S64>(p, static_cast<const double*>(dy), static_cast<double*>(dx));
  }
};

}  // namespace pool
}  // namespace
}  // namespace convforge::cpu
