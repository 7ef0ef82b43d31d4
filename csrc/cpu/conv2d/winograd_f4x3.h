// Winograd F(4x4, 3x3): a 4x4 output tile from a 6x6 input tile with 36 multiplications per
// (input, output) channel pair instead of 144, as Y = A^T [ (G g G^T) . (B^T d B) ] A.
//
// The matrices come from the Toom-Cook construction on the points {0, c, -c, 1/c, -1/c, inf}
// with c = 3/2, computed at compile time. Lavin's points {0, 1, -1, 2, -2} give a float32 error
// about 4-6x that of direct summation on random data; this family about 1.2-2x (the constant is
// also what keeps B^T's entries near 1).
//
// The per-ISA transforms (winograd_f4x3__<isa>.cpp, loops in winograd_f4x3_kernels.h) work on a
// block of tiles, vectorized across the tiles of a GEMM panel, and on float only.
#pragma once
#include <cstdint>

namespace convforge::cpu::conv::winograd {

constexpr int kOut = 4;    // output tile side
constexpr int kIn = 6;     // input tile side
constexpr int kTaps = 36;  // transformed values per tile

struct Matrices {
  double at[kOut][kIn];  // output transform A^T
  double g[kIn][3];      // weight transform G
  double bt[kIn][kIn];   // input transform B^T
};

constexpr double abs_(double v) { return v < 0 ? -v : v; }

// A^T = V_e^T, G = V_g, B^T = (V_h^-1)^T, with V_x the Vandermonde matrices of the points (plus
// the point at infinity) for a kOut-, 3- and kIn-term polynomial. Each row of B^T is scaled to a
// largest entry of 1 and G's row by the inverse.
constexpr Matrices make_matrices(double c) {
  const double points[kIn - 1] = {0.0, c, -c, 1.0 / c, -1.0 / c};
  double v[kIn][2 * kIn] = {};  // [V_h | I], reduced to [I | V_h^-1]
  for (int j = 0; j < kIn; ++j) {
    for (int k = 0; k < kIn; ++k) {
      double power = 1.0;
      for (int e = 0; e < k; ++e) power *= j < kIn - 1 ? points[j] : 0.0;
      v[j][k] = j < kIn - 1 ? power : (k == kIn - 1 ? 1.0 : 0.0);
    }
    v[j][kIn + j] = 1.0;
  }
  for (int col = 0; col < kIn; ++col) {
    int pivot = col;
    for (int r = col + 1; r < kIn; ++r)
      if (abs_(v[r][col]) > abs_(v[pivot][col])) pivot = r;
    for (int k = 0; k < 2 * kIn; ++k) {
      const double t = v[col][k];
      v[col][k] = v[pivot][k];
      v[pivot][k] = t;
    }
    const double d = v[col][col];
    for (int k = 0; k < 2 * kIn; ++k) v[col][k] /= d;
    for (int r = 0; r < kIn; ++r) {
      if (r == col) continue;
      const double f = v[r][col];
      for (int k = 0; k < 2 * kIn; ++k) v[r][k] -= f * v[col][k];
    }
  }
  Matrices m = {};
  for (int j = 0; j < kIn; ++j) {
    double scale = 0.0;
    for (int k = 0; k < kIn; ++k) {
      double e = v[k][kIn + j];  // B^T[j][k] = (V_h^-1)[k][j]
      if (abs_(e) < 1e-12) e = 0.0;
      m.bt[j][k] = e;
      if (abs_(e) > scale) scale = abs_(e);
    }
    for (int k = 0; k < kIn; ++k) m.bt[j][k] /= scale;
    for (int k = 0; k < 3; ++k) {
      double power = 1.0;
      for (int e = 0; e < k; ++e) power *= j < kIn - 1 ? points[j] : 0.0;
      m.g[j][k] = (j < kIn - 1 ? power : (k == 2 ? 1.0 : 0.0)) * scale;
    }
  }
  for (int i = 0; i < kOut; ++i)
    for (int j = 0; j < kIn; ++j) {
      double power = 1.0;
      for (int e = 0; e < i; ++e) power *= j < kIn - 1 ? points[j] : 0.0;
      m.at[i][j] = j < kIn - 1 ? power : (i == kOut - 1 ? 1.0 : 0.0);
    }
  return m;
}

constexpr Matrices kMatrices = make_matrices(1.5);

// A block of tiles: runs of consecutive tiles along tile rows. Tile tw of tile row th of image n
// reads input rows 4 th - pad_h .. + 5 and columns 4 tw - pad_w .. + 5 (zero outside the input),
// and writes output rows 4 th .. + 3 and columns 4 tw .. + 3 (those inside the output).
struct TileRun {
  int64_t n, th, tw0, tw1;  // tiles [tw0, tw1) of tile row th of image n
  int64_t t;                // the block's number of tile tw0 (tiles are numbered 0 .. tiles)
};
struct Block {
  const TileRun* runs;
  int64_t count;   // runs
  int64_t tiles;   // in the block
  int64_t panels;  // GEMM panels of nr tiles covering them
  int64_t nr;
  int64_t width;   // tiles per tile row: the longest run
};
inline int64_t max_runs(const Block& b) { return b.panels * b.nr / b.width + 2; }
// One channel's plane of image 0: h x w values, (row, column) at row * row_stride + column *
// pixel_stride (NCHW: w and 1; NHWC: w * channels and channels), image n at n * image_stride.
struct Plane {
  int64_t h, w, image_stride, row_stride, pixel_stride;
};

// Input transform of one channel over a block: V = B^T d B of every tile goes to the GEMM's
// packed B panels, value e of tile t at v[e * e_stride + (t / nr) * panel_stride + t % nr] (lanes
// past the last tile zero). Returns the sum of the values read: NaN or Inf when some are.
// scratch: input_scratch_floats(block).
using InputTransform = float (*)(const float* x, const Plane& in, int64_t pad_h, int64_t pad_w,
                                 const Block& block, float* v, int64_t e_stride, int64_t panel_stride,
                                 float* scratch);
// Output transform of one output channel over a block: value e of tile t at m[e * e_stride + t];
// Y = A^T M A + bias goes to the output plane y. scratch: output_scratch_floats(block).
using OutputTransform = void (*)(const float* m, int64_t e_stride, const Block& block, float bias, float* y,
                                 const Plane& out, float* scratch);
// Z = A dY A^T of one output channel's 4x4 tiles over a block (the adjoint of the output
// transform), laid out as the input transform lays out V. Returns the sum of the values read.
// scratch: grad_output_scratch_floats(block).
using GradOutputTransform = float (*)(const float* dy, const Plane& out, const Block& block, float* z,
                                      int64_t e_stride, int64_t panel_stride, float* scratch);
// How a weight's channel pairs (one output channel, consecutive input channels) and their 3x3
// taps lie: tap t of pair i at i * pair_stride + t * tap_stride (OIHW: 9 and 1; OHWI: 1 and the
// input channels per group).
struct Taps {
  int64_t pair_stride, tap_stride;
};
// dW = G^T dU G (the adjoint of the weight transform) for `count` channel pairs: value e of pair
// i at du[e * e_stride + i]; pair i's 3x3 gradient to dw as `taps` says. In double: dU's values
// are large next to the gradient they cancel down to.
using WeightGradTransform = void (*)(const double* du, int64_t e_stride, int64_t count, float* dw,
                                     const Taps& taps);
// U = G g G^T for the 3x3 kernels g of `count` channel pairs side by side (tap t of pair i at
// g[t * tap_stride + i]), into u[e * e_stride + i] for pair i. Returns false if a weight is NaN or
// infinite.
using WeightTransform = bool (*)(const float* g, int64_t tap_stride, int64_t count, float* u, int64_t e_stride);

// The same transforms on NHWC arrays, vectorized along the channels instead (contiguous there),
// one tile at a time; the GEMM then runs with the tiles as rows (M_e^T = V_e^T U_e^T).
// Input: the 6x6 patch at input row ih0, column iw0 (zero outside the plane) of `count` channels
// starting at x, V = B^T d B to v[e * e_stride + c] for channel c. Returns the sum of the values read.
using InputTileTransform = float (*)(const float* x, const Plane& in, int64_t ih0, int64_t iw0, int64_t count,
                                     float* v, int64_t e_stride);
// Output: M of `count` channels at m[e * e_stride + c], Y = A^T M A (+ bias[c] unless null) to the
// output pixels of rows oh0 .. oh0 + 3 and columns ow0 .. ow0 + 3 inside the plane (channels from y).
using OutputTileTransform = void (*)(const float* m, int64_t e_stride, int64_t count, const float* bias, float* y,
                                     const Plane& out, int64_t oh0, int64_t ow0);

// Grad output: the 4x4 output tile at rows oh0 .. oh0 + 3, columns ow0 .. ow0 + 3 (zero outside the
// plane) of `count` channels starting at dy, Z = A dY A^T to z[e * e_stride + c]. Returns the sum
// of the values read.
using GradOutputTileTransform = float (*)(const float* dy, const Plane& out, int64_t oh0, int64_t ow0, int64_t count,
                                          float* z, int64_t e_stride);

inline int64_t gather_scratch_floats(const Block& b, int side) {
  return max_runs(b) * side * (kOut * b.width + side - kOut) + b.panels * b.nr;
}
inline int64_t input_scratch_floats(const Block& b) {
  return kTaps * (b.panels + 1) * b.nr + gather_scratch_floats(b, kIn);
}
inline int64_t grad_output_scratch_floats(const Block& b) {
  return kOut * kOut * b.panels * b.nr + kOut * kIn * b.nr + gather_scratch_floats(b, kOut);
}
inline int64_t output_scratch_floats(const Block& b) {
  return (kOut * kOut + kOut) * b.panels * b.nr + kOut * kIn * b.nr;
}

struct Transforms {
  InputTransform input;
  OutputTransform output;
  WeightTransform weight;
  GradOutputTransform grad_output;
  WeightGradTransform weight_grad;
  InputTileTransform input_tile;
  OutputTileTransform output_tile;
  GradOutputTileTransform grad_output_tile;
};


}  // namespace convforge::cpu::conv::winograd
