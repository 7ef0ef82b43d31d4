// Winograd F(2x2, 3x3) for the weight gradient: dW = G^T [ sum over tiles of (A dY A^T) . (B^T d B) ] G,
// the adjoint of Y = A^T [ (G g G^T) . (B^T d B) ] A, with a 2x2 output tile read from a 4x4 input
// tile: 16 products per (input, output) channel pair for 36 multiply-adds of direct summation.
//
// The matrices are Lavin's, on the points {0, 1, -1, inf}. Their entries are 0, +-1 and 1/2, so the
// float32 sums over the tiles stay near direct summation's error (0.8-1.7x of it measured on random
// data, 16-512 channels, 7x7 to 56x56), unlike F(4x4, 3x3)'s, whose larger entries make its float32
// weight gradient err 3.6-6.1x as much.
//
// The per-ISA transforms (winograd_f2x3__<isa>.cpp, loops in winograd_f2x3_kernels.h) work on NHWC
// arrays, one tile at a time, vectorized along the channels.
#pragma once
#include <cstdint>

#include "cpu/conv2d/winograd_f4x3.h"

namespace convforge::cpu::conv::winograd::f2x3 {

constexpr int kOut = 2;    // output tile side
constexpr int kIn = 4;     // input tile side
constexpr int kTaps = 16;  // transformed values per tile

constexpr float kInput[kIn][kIn] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};  // B^T
constexpr float kWeight[kIn][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};   // G
constexpr float kOutput[kOut][kIn] = {{1, 1, 1, 0}, {0, 1, -1, -1}};                              // A^T

// dW = G^T dU G for `count` channel pairs: value e of pair i at du[e * e_stride + i], the pair's 3x3
// gradient to dw as `taps` says.
using WeightGradTransform = void (*)(const float* du, int64_t e_stride, int64_t count, float* dw,
                                     const Taps& taps);

struct Transforms {
  InputTileTransform input_tile;             // V = B^T d B of the 4x4 patch at (ih0, iw0)
  GradOutputTileTransform grad_output_tile;  // Z = A dY A^T of the 2x2 output tile at (oh0, ow0)
  WeightGradTransform weight_grad;
};

}  // namespace convforge::cpu::conv::winograd::f2x3
