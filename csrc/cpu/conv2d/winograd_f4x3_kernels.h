// The Winograd F(4x4, 3x3) transforms (winograd_f4x3.h), written once and compiled per ISA:
// winograd_f4x3__<isa>.cpp includes this header with only its own ISA's flags. Each transform
// is a product with a constant matrix along one axis of the tiles' 6x6 patches, vectorized across
// the tiles of a GEMM panel; the matrix entries are template constants, so zero terms vanish and
// +-1 needs no multiply.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cpu/conv2d/winograd_f4x3.h"
#include "cpu/isa_table.h"
#include "cpu/simd_vector.h"

namespace convforge::cpu::conv::winograd {
// Internal linkage: each per-ISA translation unit keeps its own copy of these templates (and no
// library templates are called here, whose out-of-line copies would be shared across ISAs).
namespace {

struct InputMatrix {  // B^T
  static constexpr int rows = kIn, cols = kIn;
  static constexpr float at(int r, int c) { return float(kMatrices.bt[r][c]); }
};
struct WeightMatrix {  // G
  static constexpr int rows = kIn, cols = 3;
  static constexpr float at(int r, int c) { return float(kMatrices.g[r][c]); }
};
struct GradOutputMatrix {  // A: the adjoint of the output transform
  static constexpr int rows = kIn, cols = kOut;
  static constexpr float at(int r, int c) { return float(kMatrices.at[c][r]); }
};
struct WeightGradMatrix {  // G^T: the adjoint of the weight transform
  static constexpr int rows = 3, cols = kIn;
  static constexpr float at(int r, int c) { return float(kMatrices.g[c][r]); }
};
struct OutputMatrix {  // A^T
  static constexpr int rows = kOut, cols = kIn;
  static constexpr float at(int r, int c) { return float(kMatrices.at[r][c]); }
};

// M[R][C] * x, folded at compile time; -0.0 is the exact neutral element of +.
template <typename M, int R, int C, typename T>
inline T term(T x) {
  constexpr T k = T(M::at(R, C));
  if constexpr (k == T(0))
    return T(-0.0);
  else if constexpr (k == T(1))
    return x;
  else if constexpr (k == T(-1))
    return -x;
  else
    return k * x;
}

template <typename M, int R, typename T, int... C>
inline T dot(const T* const* src, int64_t t, std::integer_sequence<int, C...>) {
  return (T(-0.0) + ... + term<M, R, C>(src[C][t]));
}

// dst[R][t] = sum_C M[R][C] * src[C][t] for t < n, one output row of M at a time.
template <typename M, int R, typename T>
inline void apply_row(const T* const* src, T* dst, int64_t n) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) dst[t] = dot<M, R>(src, t, std::make_integer_sequence<int, M::cols>{});
}
template <typename M, typename T, int... R>
inline void apply_rows(const T* const* src, T* const* dst, int64_t n, std::integer_sequence<int, R...>) {
  (apply_row<M, R>(src, dst[R], n), ...);
}
template <typename M, typename T>
inline void apply(const T* const* src, T* const* dst, int64_t n) {
  apply_rows<M>(src, dst, n, std::make_integer_sequence<int, M::rows>{});
}

// The Side x Side patches of a block's tiles (tile tw of tile row th starts at row 4 th - pad_h,
// column 4 tw - pad_w; zero outside the plane): tile t's element (r, c) to d[r * Side + c][t], for
// every lane (zero past the tiles). Through strips (each run's Side rows, zero-padded, pitch
// 4 width + Side - 4) and the lanes' offsets into them, so every loop is as long as the block
// however short the tile rows. Returns the sum of the values (NaN or Inf when some are).
// Scratch: gather_scratch_floats(b, Side).
template <int Side>
inline float gather_patches(const float* x, const Plane& in, int64_t pad_h, int64_t pad_w, const Block& b,
                            float* d, float* scratch) {
  const int64_t lanes = b.panels * b.nr, pitch = kOut * b.width + Side - kOut;
  float* strips = scratch;
  auto* offset = reinterpret_cast<int32_t*>(strips + max_runs(b) * Side * pitch);
  for (int64_t q = 0; q < b.count; ++q) {
    const TileRun& run = b.runs[q];
    const int64_t len = run.tw1 - run.tw0, first = run.tw0 * kOut - pad_w, columns = kOut * len + Side - kOut;
    // Columns [lo, hi) of the strip lie inside the plane.
    int64_t lo = -first > 0 ? -first : 0, hi = in.w - first;
    lo = lo < columns ? lo : columns;
    hi = hi < lo ? lo : (hi < columns ? hi : columns);
    float* strip = strips + q * Side * pitch;
    for (int r = 0; r < Side; ++r) {
      const int64_t ih = run.th * kOut - pad_h + r;
      float* dst = strip + r * pitch;
      const bool inside = ih >= 0 && ih < in.h;
      const int64_t copy_lo = inside ? lo : columns, copy_hi = inside ? hi : columns;
      const float* src = x + run.n * in.image_stride + ih * in.row_stride + first * in.pixel_stride;
      for (int64_t col = 0; col < copy_lo; ++col) dst[col] = 0.0f;
      if (in.pixel_stride == 1)
        for (int64_t col = copy_lo; col < copy_hi; ++col) dst[col] = src[col];
      else
        for (int64_t col = copy_lo; col < copy_hi; ++col) dst[col] = src[col * in.pixel_stride];
      for (int64_t col = copy_hi; col < columns; ++col) dst[col] = 0.0f;
    }
    for (int64_t j = 0; j < len; ++j) offset[run.t + j] = int32_t(q * Side * pitch + kOut * j);
  }
  for (int64_t t = b.tiles; t < lanes; ++t) offset[t] = 0;  // lanes past the tiles: zeroed below
  float sum = 0.0f;
  for (int r = 0; r < Side; ++r)
    for (int c = 0; c < Side; ++c) {
      const float* src = strips + r * pitch + c;
      float* dst = d + (r * Side + c) * lanes;
#pragma omp simd
      for (int64_t t = 0; t < lanes; ++t) dst[t] = src[offset[t]];
      for (int64_t t = b.tiles; t < lanes; ++t) dst[t] = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t t = 0; t < lanes; ++t) sum += dst[t];
    }
  return sum;
}

// Scratch: d [36][lanes] (the 6x6 input patches), rt [36][nr], then gather_patches' scratch.
inline float input_block(const float* x, const Plane& in, int64_t pad_h, int64_t pad_w, const Block& b,
                         float* v, int64_t e_stride, int64_t panel_stride, float* scratch) {
  const int64_t lanes = b.panels * b.nr;
  float* d = scratch;
  float* rt = d + kTaps * lanes;
  const float sum = gather_patches<kIn>(x, in, pad_h, pad_w, b, d, rt + kTaps * b.nr);
  for (int64_t pj = 0; pj < b.panels; ++pj) {
    for (int r = 0; r < kIn; ++r) {  // along the columns: rt[r][j] = sum_c B^T[j][c] d[r][c]
      const float* src[kIn];
      float* dst[kIn];
      for (int c = 0; c < kIn; ++c) src[c] = d + (r * kIn + c) * lanes + pj * b.nr;
      for (int j = 0; j < kIn; ++j) dst[j] = rt + (r * kIn + j) * b.nr;
      apply<InputMatrix>(src, dst, b.nr);
    }
    for (int j = 0; j < kIn; ++j) {  // along the rows, into the panel: v[i][j] = sum_r B^T[i][r] rt[r][j]
      const float* src[kIn];
      float* dst[kIn];
      for (int r = 0; r < kIn; ++r) src[r] = rt + (r * kIn + j) * b.nr;
      for (int i = 0; i < kIn; ++i) dst[i] = v + (i * kIn + j) * e_stride + pj * panel_stride;
      apply<InputMatrix>(src, dst, b.nr);
    }
  }
  return sum;
}

// Scratch: yb [16][lanes] (tile t's output (r, c) at yb[r * 4 + c][t]), rt [4][6][nr], and one
// output row of every tile, interleaved: row[4 t + c]. A run of tiles is then a contiguous piece
// of an output row.
inline void output_block(const float* m, int64_t e_stride, const Block& b, float bias, float* y,
                         const Plane& out, float* scratch) {
  const int64_t lanes = b.panels * b.nr;
  float* yb = scratch;
  float* rt = yb + kOut * kOut * lanes;
  float* row = rt + kOut * kIn * b.nr;
  for (int64_t pj = 0; pj < b.panels; ++pj) {
    for (int j = 0; j < kIn; ++j) {  // along the rows: rt[r][j] = sum_i A^T[r][i] m[i][j]
      const float* src[kIn];
      float* dst[kOut];
      for (int i = 0; i < kIn; ++i) src[i] = m + (i * kIn + j) * e_stride + pj * b.nr;
      for (int r = 0; r < kOut; ++r) dst[r] = rt + (r * kIn + j) * b.nr;
      apply<OutputMatrix>(src, dst, b.nr);
    }
    for (int r = 0; r < kOut; ++r) {  // along the columns: y[r][c] = sum_j rt[r][j] A^T[c][j]
      const float* src[kIn];
      float* dst[kOut];
      for (int j = 0; j < kIn; ++j) src[j] = rt + (r * kIn + j) * b.nr;
      for (int c = 0; c < kOut; ++c) dst[c] = yb + (r * kOut + c) * lanes + pj * b.nr;
      apply<OutputMatrix>(src, dst, b.nr);
    }
  }
  for (int r = 0; r < kOut; ++r) {
    const float* y0 = yb + r * kOut * lanes;
    const float* y1 = y0 + lanes;
    const float* y2 = y1 + lanes;
    const float* y3 = y2 + lanes;
    for (int64_t t = 0; t < b.tiles; ++t) {
      row[kOut * t] = y0[t] + bias;
      row[kOut * t + 1] = y1[t] + bias;
      row[kOut * t + 2] = y2[t] + bias;
      row[kOut * t + 3] = y3[t] + bias;
    }
    for (int64_t q = 0; q < b.count; ++q) {  // the columns inside the output
      const TileRun& run = b.runs[q];
      if (run.th * kOut + r >= out.h) continue;
      const int64_t cols0 = out.w - run.tw0 * kOut, len = kOut * (run.tw1 - run.tw0);
      const int64_t cols = len < cols0 ? len : cols0;
      const float* src = row + kOut * run.t;
      float* dst = y + run.n * out.image_stride + (run.th * kOut + r) * out.row_stride +
                   run.tw0 * kOut * out.pixel_stride;
      if (out.pixel_stride == 1)
        for (int64_t col = 0; col < cols; ++col) dst[col] = src[col];
      else
        for (int64_t col = 0; col < cols; ++col) dst[col * out.pixel_stride] = src[col];
    }
  }
}

// Z = A dY A^T of one output channel's 4x4 tiles over a block, value e of tile t to
// z[e * e_stride + (t / nr) * panel_stride + t % nr]. Returns the sum of the values read.
// Scratch: d [16][lanes], rt [4][6][nr], then gather_patches' scratch.
inline float grad_output_block(const float* dy, const Plane& out, const Block& b, float* z, int64_t e_stride,
                               int64_t panel_stride, float* scratch) {
  const int64_t lanes = b.panels * b.nr;
  float* d = scratch;
  float* rt = d + kOut * kOut * lanes;
  const float sum = gather_patches<kOut>(dy, out, 0, 0, b, d, rt + kOut * kIn * b.nr);
  for (int64_t pj = 0; pj < b.panels; ++pj) {
    for (int r = 0; r < kOut; ++r) {  // along the columns: rt[r][j] = sum_c A[j][c] dy[r][c]
      const float* src[kOut];
      float* dst[kIn];
      for (int c = 0; c < kOut; ++c) src[c] = d + (r * kOut + c) * lanes + pj * b.nr;
      for (int j = 0; j < kIn; ++j) dst[j] = rt + (r * kIn + j) * b.nr;
      apply<GradOutputMatrix>(src, dst, b.nr);
    }
    for (int j = 0; j < kIn; ++j) {  // along the rows: z[i][j] = sum_r A[i][r] rt[r][j]
      const float* src[kOut];
      float* dst[kIn];
      for (int r = 0; r < kOut; ++r) src[r] = rt + (r * kIn + j) * b.nr;
      for (int i = 0; i < kIn; ++i) dst[i] = z + (i * kIn + j) * e_stride + pj * panel_stride;
      apply<GradOutputMatrix>(src, dst, b.nr);
    }
  }
  return sum;
}

// dW = G^T dU G for `count` channel pairs (GT = G^T, 3 x In): value e of pair i at du[e * e_stride + i],
// the pair's 3x3 gradient to dw as `taps` says.
template <typename GT, typename T>
inline void weight_grad(const T* du, int64_t e_stride, int64_t count, float* dw, const Taps& taps) {
  constexpr int In = GT::cols;
  constexpr int64_t kChunk = 64;
  T t3[3 * In][kChunk], w9[9][kChunk];
  for (int64_t i0 = 0; i0 < count; i0 += kChunk) {
    const int64_t n = count - i0 < kChunk ? count - i0 : kChunk;
    for (int j = 0; j < In; ++j) {  // t3[a][j] = sum_i G^T[a][i] dU[i][j]
      const T* src[In];
      T* dst[3];
      for (int i = 0; i < In; ++i) src[i] = du + (i * In + j) * e_stride + i0;
      for (int a = 0; a < 3; ++a) dst[a] = t3[a * In + j];
      apply<GT>(src, dst, n);
    }
    for (int a = 0; a < 3; ++a) {  // dw[a][b] = sum_j t3[a][j] G^T[b][j]
      const T* src[In];
      T* dst[3];
      for (int j = 0; j < In; ++j) src[j] = t3[a * In + j];
      for (int c = 0; c < 3; ++c) dst[c] = w9[a * 3 + c];
      apply<GT>(src, dst, n);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int e = 0; e < 9; ++e) dw[(i0 + i) * taps.pair_stride + e * taps.tap_stride] = float(w9[e][i]);
  }
}


// ---------------------------------------------------------------------------------------------
// NHWC: one tile at a time, the channels as the vector lanes.

using VecF = Vec<float>;
using VF = VecF::type;
constexpr int64_t kLanes = VecF::size;

__attribute__((always_inline)) inline VF splat(float f) {
  VF v;
  for (int64_t l = 0; l < kLanes; ++l) v[l] = f;
  return v;
}

template <typename M, int R, int C>
__attribute__((always_inline)) inline VF vterm(VF x) {
  constexpr float k = M::at(R, C);
  if constexpr (k == 0.0f)
    return splat(-0.0f);
  else if constexpr (k == 1.0f)
    return x;
  else if constexpr (k == -1.0f)
    return -x;
  else
    return x * k;
}

template <typename M, int R, int... C>
__attribute__((always_inline)) inline VF vdot(const VF* src, int stride, std::integer_sequence<int, C...>) {
  return (splat(-0.0f) + ... + vterm<M, R, C>(src[C * stride]));
}

// dst[R * dst_stride] = sum_C M[R][C] src[C * src_stride] for every row R of M.
template <typename M, int... R>
__attribute__((always_inline)) inline void vapply(const VF* src, int src_stride, VF* dst, int dst_stride,
                                                  std::integer_sequence<int, R...>) {
  ((dst[R * dst_stride] = vdot<M, R>(src, src_stride, std::make_integer_sequence<int, M::cols>{})), ...);
}
template <typename M>
__attribute__((always_inline)) inline void vapply(const VF* src, int src_stride, VF* dst, int dst_stride) {
  vapply<M>(src, src_stride, dst, dst_stride, std::make_integer_sequence<int, M::rows>{});
}

// n <= kLanes consecutive floats as a vector (zero past n), and back.
__attribute__((always_inline)) inline VF load_lanes(const float* p, int64_t n) {
  if (n == kLanes) return VecF::load(p);
  float t[kLanes] = {};
  for (int64_t l = 0; l < n; ++l) t[l] = p[l];
  return VecF::load(t);
}
__attribute__((always_inline)) inline void store_lanes(float* p, VF v, int64_t n) {
  if (n == kLanes) return VecF::store(p, v);
  for (int64_t l = 0; l < n; ++l) p[l] = v[l];
}

// Calls f(inside, full, c, n) for `count` channels a vector at a time: n channels from c, full
// (std::true_type) for whole vectors, then std::false_type for the rest; inside is std::true_type
// for the whole vectors when `inside` holds, else std::false_type. Decided here, out of the
// transforms' unrolled loops.
template <typename F>
__attribute__((always_inline)) inline void for_each_vector(int64_t count, bool inside, F&& f) {
  int64_t c = 0;
  if (inside)
    for (; c + kLanes <= count; c += kLanes) f(std::true_type{}, std::true_type{}, c, kLanes);
  else
    for (; c + kLanes <= count; c += kLanes) f(std::false_type{}, std::true_type{}, c, kLanes);
  if (c < count) f(std::false_type{}, std::false_type{}, c, count - c);
}

// U = G g G^T of one vector of n channel pairs (all kLanes when Full) with the pairs as the lanes:
// the 36 values go out as contiguous runs. Returns the weights read, summed.
template <bool Full>
__attribute__((always_inline)) inline VF weight_lanes(const float* g, int64_t tap_stride, int64_t n, float* u,
                                                      int64_t e_stride) {
  VF d[9], gd[kIn * 3], ut[kTaps];
  VF total = splat(0.0f);
#pragma GCC unroll 9
  for (int k = 0; k < 9; ++k) {
    const float* p = g + k * tap_stride;
    d[k] = Full ? VecF::load(p) : load_lanes(p, n);
    total += d[k];
  }
#pragma GCC unroll 3
  for (int b = 0; b < 3; ++b) vapply<WeightMatrix>(d + b, 3, gd + b, 3);  // G g, a column at a time
#pragma GCC unroll 8
  for (int a = 0; a < kIn; ++a) vapply<WeightMatrix>(gd + a * 3, 1, ut + a * kIn, 1);  // (G g) G^T
#pragma GCC unroll 36
  for (int e = 0; e < kTaps; ++e) {
    if (Full)
      VecF::store(u + e * e_stride, ut[e]);
    else
      store_lanes(u + e * e_stride, ut[e], n);
  }
  return total;
}

// U = G g G^T for `count` channel pairs side by side, kLanes pairs at a time.
inline bool weight(const float* g, int64_t tap_stride, int64_t count, float* u, int64_t e_stride) {
  VF total = splat(0.0f);
  for_each_vector(count, true, [&](auto, auto full, int64_t i, int64_t n) __attribute__((always_inline)) {
    total += weight_lanes<decltype(full)::value>(g + i, tap_stride, n, u + i, e_stride);
  });
  const float sum = VecF::sum(total);
  return sum - sum == 0.0f;  // false for NaN and infinities
}

// M d M^T of one vector of n channels (all kLanes when Full) of the side x side patch at row r0,
// column c0 (zero outside the plane; Inside: the whole patch lies in it), to v[e * e_stride].
// Returns the values read, summed.
template <typename M, bool Inside, bool Full>
__attribute__((always_inline)) inline VF patch_lanes(const float* x, const Plane& plane, int64_t r0, int64_t c0,
                                                     int64_t n, float* v, int64_t e_stride) {
  constexpr int S = M::cols, R = M::rows;
  VF d[S * S], t[S * R], z[R * R];
  VF total = splat(0.0f);
#pragma GCC unroll 8
  for (int a = 0; a < S; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < S; ++b) {
      const int64_t row = r0 + a, col = c0 + b;
      const float* p = x + row * plane.row_stride + col * plane.pixel_stride;
      if (Inside || (row >= 0 && row < plane.h && col >= 0 && col < plane.w))
        d[a * S + b] = Full ? VecF::load(p) : load_lanes(p, n);
      else
        d[a * S + b] = splat(0.0f);
      total += d[a * S + b];
    }
#pragma GCC unroll 8
  for (int a = 0; a < S; ++a) vapply<M>(d + a * S, 1, t + a * R, 1);  // along the columns
#pragma GCC unroll 8
  for (int j = 0; j < R; ++j) vapply<M>(t + j, R, z + j, R);          // along the rows
#pragma GCC unroll 36
  for (int e = 0; e < R * R; ++e) {
    if (Full)
      VecF::store(v + e * e_stride, z[e]);
    else
      store_lanes(v + e * e_stride, z[e], n);
  }
  return total;
}

// M d M^T of the side x side patch (side = M::cols; zero outside the plane) at row r0, column c0
// of `count` channels from x, to v[e * e_stride + c] (e over the M::rows x M::rows result): the
// input transform (M = B^T, 6x6 patches) and the grad_output transform (M = A, 4x4 patches).
// Returns the sum of the values read. The bounds and lane counts are decided once per tile, out
// of the unrolled loops.
template <typename M>
inline float patch_tile_nhwc(const float* x, const Plane& plane, int64_t r0, int64_t c0, int64_t count, float* v,
                             int64_t e_stride) {
  constexpr int S = M::cols;
  const bool inside = r0 >= 0 && r0 + S <= plane.h && c0 >= 0 && c0 + S <= plane.w;
  VF total = splat(0.0f);
  for_each_vector(count, inside, [&](auto in, auto full, int64_t ch, int64_t n) __attribute__((always_inline)) {
    total += patch_lanes<M, decltype(in)::value, decltype(full)::value>(x + ch, plane, r0, c0, n, v + ch, e_stride);
  });
  return VecF::sum(total);
}

// Y = A^T M A (+ bias) of one vector of n channels (all kLanes when Full) of a tile, to the output
// pixels of the tile that lie in the plane (Inside: all of them).
template <bool Inside, bool Full>
__attribute__((always_inline)) inline void output_lanes(const float* m, int64_t e_stride, int64_t n,
                                                        const float* bias, float* y, const Plane& out,
                                                        int64_t oh0, int64_t ow0) {
  VF mt[kTaps], t[kIn * kOut], yt[kOut * kOut];
#pragma GCC unroll 36
  for (int e = 0; e < kTaps; ++e) mt[e] = Full ? VecF::load(m + e * e_stride) : load_lanes(m + e * e_stride, n);
#pragma GCC unroll 8
  for (int i = 0; i < kIn; ++i) vapply<OutputMatrix>(mt + i * kIn, 1, t + i * kOut, 1);  // along the columns
#pragma GCC unroll 8
  for (int b = 0; b < kOut; ++b) vapply<OutputMatrix>(t + b, kOut, yt + b, kOut);         // along the rows
  const VF vb = !bias ? splat(0.0f) : Full ? VecF::load(bias) : load_lanes(bias, n);
#pragma GCC unroll 8
  for (int a = 0; a < kOut; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < kOut; ++b) {
      if (!Inside && (oh0 + a >= out.h || ow0 + b >= out.w)) continue;
      float* p = y + (oh0 + a) * out.row_stride + (ow0 + b) * out.pixel_stride;
      if (Full)
        VecF::store(p, yt[a * kOut + b] + vb);
      else
        store_lanes(p, yt[a * kOut + b] + vb, n);
    }
}

// The output transform of a tile at (oh0, ow0): `count` channels, value e of channel c at
// m[e * e_stride + c].
inline void output_tile_nhwc(const float* m, int64_t e_stride, int64_t count, const float* bias, float* y,
                             const Plane& out, int64_t oh0, int64_t ow0) {
  const bool inside = oh0 + kOut <= out.h && ow0 + kOut <= out.w;
  for_each_vector(count, inside, [&](auto in, auto full, int64_t c, int64_t n) __attribute__((always_inline)) {
    output_lanes<decltype(in)::value, decltype(full)::value>(m + c, e_stride, n, bias ? bias + c : nullptr, y + c,
                                                             out, oh0, ow0);
  });
}

}  // namespace
}  // namespace convforge::cpu::conv::winograd

// Defines the entry points of one ISA's translation unit.
#define CONVFORGE_DEFINE_WINOGRAD(isa)                                                            \
  namespace convforge::cpu::conv::winograd {                                                      \
  float winograd_f4x3_input__##isa(const float* x, const Plane& in, int64_t pad_h, int64_t pad_w,  \
                                   const Block& b, float* v, int64_t es, int64_t ps, float* s) {  \
    return input_block(x, in, pad_h, pad_w, b, v, es, ps, s);                                     \
  }                                                                                               \
  void winograd_f4x3_output__##isa(const float* m, int64_t es, const Block& b, float bias, float* y, \
                                   const Plane& out, float* s) {                                  \
    output_block(m, es, b, bias, y, out, s);                                                      \
  }                                                                                               \
  bool winograd_f4x3_weight__##isa(const float* g, int64_t tap_stride, int64_t count, float* u,   \
                                   int64_t es) {                                                  \
    return weight(g, tap_stride, count, u, es);                                                   \
  }                                                                                               \
  float winograd_f4x3_grad_output__##isa(const float* dy, const Plane& out, const Block& b, float* z, \
                                         int64_t es, int64_t ps, float* s) {                      \
    return grad_output_block(dy, out, b, z, es, ps, s);                                           \
  }                                                                                               \
  void winograd_f4x3_weight_grad__##isa(const double* du, int64_t es, int64_t count, float* dw,    \
                                         const Taps& taps) {                                      \
    weight_grad<WeightGradMatrix>(du, es, count, dw, taps);                                      \
  }                                                                                               \
  float winograd_f4x3_input_tile__##isa(const float* x, const Plane& in, int64_t ih0, int64_t iw0, \
                                        int64_t count, float* v, int64_t es) {                    \
    return patch_tile_nhwc<InputMatrix>(x, in, ih0, iw0, count, v, es);                          \
  }                                                                                               \
  void winograd_f4x3_output_tile__##isa(const float* m, int64_t es, int64_t count, const float* bias, \
                                        float* y, const Plane& out, int64_t oh0, int64_t ow0) {   \
    output_tile_nhwc(m, es, count, bias, y, out, oh0, ow0);                                       \
  }                                                                                               \
  float winograd_f4x3_grad_output_tile__##isa(const float* dy, const Plane& out, int64_t oh0, int64_t ow0, \
                                              int64_t count, float* z, int64_t es) {              \
    return patch_tile_nhwc<GradOutputMatrix>(dy, out, oh0, ow0, count, z, es);                    \
  }                                                                                               \
  }
