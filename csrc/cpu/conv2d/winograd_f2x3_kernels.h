// The Winograd F(2x2, 3x3) weight-gradient transforms (winograd_f2x3.h), written once and compiled
// per ISA: winograd_f2x3__<isa>.cpp includes this header with only its own ISA's flags. The loops
// are F(4x4, 3x3)'s (winograd_f4x3_kernels.h), instantiated with these matrices.
#pragma once
#include "cpu/conv2d/winograd_f2x3.h"
#include "cpu/conv2d/winograd_f4x3_kernels.h"

namespace convforge::cpu::conv::winograd::f2x3 {
// Internal linkage, as in winograd_f4x3_kernels.h.
namespace {

struct InputMatrix {  // B^T
  static constexpr int rows = kIn, cols = kIn;
  static constexpr float at(int r, int c) { return kInput[r][c]; }
};
struct GradOutputMatrix {  // A: the adjoint of the output transform
  static constexpr int rows = kIn, cols = kOut;
  static constexpr float at(int r, int c) { return kOutput[c][r]; }
};
struct WeightGradMatrix {  // G^T: the adjoint of the weight transform
  static constexpr int rows = 3, cols = kIn;
  static constexpr float at(int r, int c) { return kWeight[c][r]; }
};

}  // namespace
}  // namespace convforge::cpu::conv::winograd::f2x3

// Defines the entry points of one ISA's translation unit.
#define CONVFORGE_DEFINE_WINOGRAD_F2X3(isa)                                                       \
  namespace convforge::cpu::conv::winograd::f2x3 {                                                \
  float winograd_f2x3_input_tile__##isa(const float* x, const Plane& in, int64_t ih0, int64_t iw0, \
                                        int64_t count, float* v, int64_t es) {                    \
    return patch_tile_nhwc<InputMatrix>(x, in, ih0, iw0, count, v, es);                          \
  }                                                                                               \
  float winograd_f2x3_grad_output_tile__##isa(const float* dy, const Plane& out, int64_t oh0, int64_t ow0, \
                                              int64_t count, float* z, int64_t es) {              \
    return patch_tile_nhwc<GradOutputMatrix>(dy, out, oh0, ow0, count, z, es);                    \
  }                                                                                               \
  void winograd_f2x3_weight_grad__##isa(const float* du, int64_t es, int64_t count, float* dw,     \
                                         const Taps& taps) {                                      \
    weight_grad<WeightGradMatrix>(du, es, count, dw, taps);                                      \
  }                                                                                               \
  }
