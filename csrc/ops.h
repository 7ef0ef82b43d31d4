// The whole C++ API of convforge: one declaration per op, with the params structs they take.
// Kernels see raw pointers and these plain structs only; no pybind11, NumPy or torch types.
#pragma once
#include <cstdint>

namespace convforge {

enum class DType { f32, f64, i64 };  // i64: index arrays only (max pooling)
// Where a kernel runs. cuda_emulated executes the CUDA kernel sources on the host (tests).
enum class Device { cpu, cuda, cuda_emulated };

inline int64_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }  // f64, i64: 8

// ---------------------------------------------------------------------------------------------
// GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, op(A) is m x k, op(B) is k x n.
// lda/ldb/ldc are row strides in elements of the stored (untransposed) matrices.
// beta == 0 means C is write-only (NaN in C does not propagate), as in BLAS.
struct GemmParams {
  DType dtype = DType::f32;
  Device device = Device::cpu;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  double alpha = 1.0, beta = 0.0;
  // When set (host arrays only), C starts as this m x n matrix, with element strides c_init_rs
  // and c_init_cs, instead of its own contents: BLAS's C input when it is not the output.
  const void* c_init = nullptr;
  int64_t c_init_rs = 0, c_init_cs = 0;
  void* stream = nullptr;  // cudaStream_t for Device::cuda
};
void gemm(const GemmParams& p);
// The CPU GEMM microkernel's register tile (MR x NR) and cache blocks (kc deep, mc rows of A,
// nc columns of B) for a dtype and ISA (tests, info()).
enum class Isa;
struct GemmTile {
  int64_t mr = 1, nr = 1;
  int64_t kc = 1, mc = 1, nc = 1;
  const char* name = "";
};
GemmTile gemm_cpu_tile(DType dtype, Isa isa);

// ---------------------------------------------------------------------------------------------
// conv2d. Arrays are dense, in one of two memory layouts: NCHW (C-contiguous), or with
// channels_last NHWC (torch's channels_last: the input, output and their gradients). weight is
// (c_out, c_in / groups, kh, kw), in memory OIHW, or OHWI with weight_channels_last (weight and
// grad_weight). Padding is given as the top/left amount; the bottom/right amount follows from
// out_h/out_w (which allows torch's asymmetric padding='same' for even kernels).
struct Conv2dParams {
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int64_t n = 0, c_in = 0, h = 0, w = 0;
  int64_t c_out = 0, kh = 0, kw = 0, groups = 1;
  int64_t out_h = 0, out_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool channels_last = false, weight_channels_last = false;  // CPU only
  // CPU: which algorithm of conv2d_cpu_algorithm_name() runs; null or "auto": the chooser decides.
  const char* algorithm = nullptr;
  void* stream = nullptr;
};
// The checks on conv2d's arguments, made in this one place (ValueError naming the argument):
// conv2d_check_window before any size arithmetic -- kernel, stride, padding (top, bottom, left,
// right) and dilation, each at most 2^31 - 1 so that no size or index computation overflows --
// and conv2d_check on a whole problem. Every conv2d entry point calls conv2d_check.
void conv2d_check_window(const int64_t kernel[2], const int64_t stride[2], const int64_t padding[4],
                         const int64_t dilation[2]);
void conv2d_check(const Conv2dParams& p);
// output (n, c_out, out_h, out_w) = conv(input, weight) + bias; bias may be null.
void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output);
// Each backward pointer may be null: that gradient is not computed. Outputs are overwritten.
void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias);

// The CPU conv2d algorithms, in the chooser's list (name, and what a problem needs for it), the
// one the chooser runs for a pass of p (0 forward, 1 grad_input, 2 grad_weight; ValueError for a
// forced algorithm that does not apply), and whether "auto" may choose Winograd.
int conv2d_cpu_algorithm_count();
const char* conv2d_cpu_algorithm_name(int index);
const char* conv2d_cpu_algorithm_requires(int index);
const char* conv2d_cpu_chosen_algorithm(const Conv2dParams& p, int pass);
bool conv2d_winograd_enabled();
void set_conv2d_winograd_enabled(bool enabled);

// ---------------------------------------------------------------------------------------------
// Pooling over n * c independent planes. Arrays are dense NCHW, or with channels_last (CPU only)
// dense NHWC: input, output, indices and the gradients alike.
struct Pool2dParams {
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kh = 1, kw = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;  // max pooling only
  bool count_include_pad = true;           // avg pooling only
  int64_t divisor_override = 0;            // avg pooling only; 0 means none
  bool channels_last = false;
  void* stream = nullptr;
};
// indices: int64 flat offsets h * w + w within each plane; may be null. The backward adds each
// grad_output element at its index, whichever position of the plane that is; an index outside
// [0, h * w) is never written through (the CPU path raises ValueError after the call).
void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices);
void max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input);
void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output);
void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input);

}  // namespace convforge

namespace convforge {

// torch's output-size rules, the one place they live (the binding exposes them to Python).
inline int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// conv2d along one axis, with the padding before and after (they differ for padding='same').
inline int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_before,
                             int64_t pad_after, int64_t dilation) {
  return floor_div(in + pad_before + pad_after - dilation * (kernel - 1) - 1, stride) + 1;
}

// Pooling along one axis. In ceil_mode the last window must start inside the input or the left
// padding, never in the right padding.
inline int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                             int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  int64_t out = (ceil_mode ? floor_div(span + stride - 1, stride) : floor_div(span, stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace convforge
