// The Winograd F(4x4, 3x3) transforms (winograd_f4x3.h), written once and compiled per ISA:
// winograd_f4x3__<isa>.cpp includes this header with only its own ISA's flags. Each transform
// is a product with a constant matrix along one axis of the tiles' 6x6 patches, vectorized across
// the tiles of a GEMM panel; the matrix entries are template constants, so zero terms vanish and
// +-1 needs no multiply.
#pragma once
#include <cstdint>
#include <utility>

#include "cpu/conv2d/winograd_f4x3.h"

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
struct OutputMatrix {  // A^T
  static constexpr int rows = kOut, cols = kIn;
  static constexpr float at(int r, int c) { return float(kMatrices.at[r][c]); }
};

// M[R][C] * x, folded at compile time; -0.0 is the exact neutral element of +.
template <typename M, int R, int C>
inline float term(float x) {
  constexpr float k = M::at(R, C);
  if constexpr (k == 0.0f)
    return -0.0f;
  else if constexpr (k == 1.0f)
    return x;
  else if constexpr (k == -1.0f)
    return -x;
  else
    return k * x;
}

template <typename M, int R, int... C>
inline float dot(const float* const* src, int64_t t, std::integer_sequence<int, C...>) {
  return (-0.0f + ... + term<M, R, C>(src[C][t]));
}

// dst[R][t] = sum_C M[R][C] * src[C][t] for t < n, one output row of M at a time.
template <typename M, int R>
inline void apply_row(const float* const* src, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) dst[t] = dot<M, R>(src, t, std::make_integer_sequence<int, M::cols>{});
}
template <typename M, int... R>
inline void apply_rows(const float* const* src, float* const* dst, int64_t n, std::integer_sequence<int, R...>) {
  (apply_row<M, R>(src, dst[R], n), ...);
}
template <typename M>
inline void apply(const float* const* src, float* const* dst, int64_t n) {
  apply_rows<M>(src, dst, n, std::make_integer_sequence<int, M::rows>{});
}

// Scratch: d [36][lanes] (the 6x6 input patches, tile t's element (r, c) at d[r * 6 + c][t]),
// then rt [36][nr].
inline float input_block(const float* x, const Plane& in, int64_t pad_h, int64_t pad_w, const Block& b,
                         float* v, int64_t e_stride, int64_t panel_stride, float* scratch) {
  const int64_t lanes = b.panels * b.nr;
  float* d = scratch;
  float* rt = d + kTaps * lanes;
  float sum = 0.0f;
  for (int64_t q = 0; q < b.count; ++q) {
    const TileRun& run = b.runs[q];
    const int64_t len = run.tw1 - run.tw0;
    for (int r = 0; r < kIn; ++r) {
      const int64_t ih = run.th * kOut - pad_h + r;
      const bool inside = ih >= 0 && ih < in.h;
      const float* row = x + run.n * in.image_stride + ih * in.w;
      for (int c = 0; c < kIn; ++c) {
        float* dst = d + (r * kIn + c) * lanes + run.t;
        // Tile k of the run reads column first + 4k: inside the input for k in [lo, hi).
        const int64_t first = run.tw0 * kOut - pad_w + c;
        int64_t lo = first >= 0 ? 0 : (kOut - 1 - first) / kOut;
        int64_t hi = in.w > first ? (in.w - first + kOut - 1) / kOut : 0;
        if (!inside) lo = hi = 0;
        lo = lo < len ? lo : len;
        hi = hi < lo ? lo : (hi < len ? hi : len);
        for (int64_t t = 0; t < lo; ++t) dst[t] = 0.0f;
        const float* src = row + first;
#pragma omp simd reduction(+ : sum)
        for (int64_t t = lo; t < hi; ++t) {
          dst[t] = src[kOut * t];
          sum += dst[t];
        }
        for (int64_t t = hi; t < len; ++t) dst[t] = 0.0f;
      }
    }
  }
  for (int e = 0; e < kTaps; ++e)
    for (int64_t t = b.tiles; t < lanes; ++t) d[e * lanes + t] = 0.0f;
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

// Scratch: yb [16][lanes] (tile t's output (r, c) at yb[r * 4 + c][t]), then rt [4][6][nr].
inline void output_block(const float* m, int64_t e_stride, const Block& b, float bias, float* y,
                         const Plane& out, float* scratch) {
  const int64_t lanes = b.panels * b.nr;
  float* yb = scratch;
  float* rt = yb + kOut * kOut * lanes;
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
  for (int64_t q = 0; q < b.count; ++q) {  // the tiles' 4x4 values, interleaved into output rows
    const TileRun& run = b.runs[q];
    const int64_t len = run.tw1 - run.tw0, cols = out.w - run.tw0 * kOut;
    const int64_t full = len < cols / kOut ? len : cols / kOut;  // tiles whose 4 columns are inside
    for (int r = 0; r < kOut && run.th * kOut + r < out.h; ++r) {
      float* row = y + run.n * out.image_stride + (run.th * kOut + r) * out.w + run.tw0 * kOut;
      const float* src = yb + r * kOut * lanes + run.t;
      for (int64_t t = 0; t < full; ++t)
        for (int c = 0; c < kOut; ++c) row[kOut * t + c] = src[c * lanes + t] + bias;
      for (int64_t t = full; t < len; ++t)
        for (int c = 0; c < kOut && kOut * t + c < cols; ++c) row[kOut * t + c] = src[c * lanes + t] + bias;
    }
  }
}

// U = G g G^T, a chunk of channel pairs at a time with the pairs as the vector lanes.
inline bool weight(const float* g, int64_t count, float* u, int64_t e_stride, int64_t stride) {
  constexpr int64_t kChunk = 64;
  float g9[9][kChunk], gd[kIn * 3][kChunk], ut[kTaps][kChunk];
  float sum = 0.0f;
  for (int64_t i0 = 0; i0 < count; i0 += kChunk) {
    const int64_t n = count - i0 < kChunk ? count - i0 : kChunk;
    for (int t = 0; t < 9; ++t)
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; ++i) {
        g9[t][i] = g[(i0 + i) * 9 + t];
        sum += g9[t][i];
      }
    for (int b = 0; b < 3; ++b) {  // gd[a][b] = sum_k G[a][k] g[k][b]
      const float* src[3] = {g9[b], g9[3 + b], g9[6 + b]};
      float* dst[kIn];
      for (int a = 0; a < kIn; ++a) dst[a] = gd[a * 3 + b];
      apply<WeightMatrix>(src, dst, n);
    }
    for (int a = 0; a < kIn; ++a) {  // u[a][c] = sum_k gd[a][k] G[c][k]
      const float* src[3] = {gd[a * 3], gd[a * 3 + 1], gd[a * 3 + 2]};
      float* dst[kIn];
      for (int c = 0; c < kIn; ++c) dst[c] = ut[a * kIn + c];
      apply<WeightMatrix>(src, dst, n);
    }
    for (int e = 0; e < kTaps; ++e)
      for (int64_t i = 0; i < n; ++i) u[e * e_stride + (i0 + i) * stride] = ut[e][i];
  }
  return sum - sum == 0.0f;  // false for NaN and infinities
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
  bool winograd_f4x3_weight__##isa(const float* g, int64_t count, float* u, int64_t es, int64_t st) { \
    return weight(g, count, u, es, st);                                                           \
  }                                                                                               \
  }
