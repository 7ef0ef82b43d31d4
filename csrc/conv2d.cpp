// conv2d dispatcher: the checks on conv2d's arguments (one place), and the backend.
#include <string>

#include "core/check.h"
#include "core/view.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "ops.h"

namespace convforge {

// Window parameters up to 2^31 - 1 keep in + 2 * pad - dilation * (kernel - 1) and the index
// arithmetic far from int64 overflow.
constexpr int64_t kMaxWindowParam = (int64_t{1} << 31) - 1;

static void check_window_values(const char* name, const int64_t* values, int count, bool positive) {
  for (int i = 0; i < count; ++i) {
    CHECK(values[i] <= kMaxWindowParam, name, ": expected values at most ", kMaxWindowParam, ", got ",
          values[i]);
    if (positive)
      CHECK(values[i] > 0, name, ": expected positive values, got ", values[i]);
    else
      CHECK(values[i] >= 0, name, ": expected non-negative values, got ", values[i]);
  }
}

void conv2d_check_window(const int64_t kernel[2], const int64_t stride[2], const int64_t padding[4],
                         const int64_t dilation[2]) {
  check_window_values("weight", kernel, 2, true);
  check_window_values("stride", stride, 2, true);
  check_window_values("dilation", dilation, 2, true);
  check_window_values("padding", padding, 4, false);
}

void conv2d_check(const Conv2dParams& p) {
  CHECK(p.dtype != DType::i64, "conv2d: expected float32 or float64");
  const int64_t kernel[2] = {p.kh, p.kw}, stride[2] = {p.stride_h, p.stride_w};
  const int64_t padding[4] = {p.pad_h, 0, p.pad_w, 0}, dilation[2] = {p.dilation_h, p.dilation_w};
  conv2d_check_window(kernel, stride, padding, dilation);
  CHECK(p.groups > 0, "groups: expected a positive integer, got ", p.groups);
  CHECK(p.c_in % p.groups == 0, "groups: expected a divisor of the input's ", p.c_in, " channels, got ",
        p.groups);
  CHECK(p.c_out % p.groups == 0, "groups: expected a divisor of weight's ", p.c_out,
        " output channels, got ", p.groups);
  CHECK(p.out_h > 0 && p.out_w > 0, "weight: expected a kernel no larger than the padded input, got an "
        "effective kernel of ", p.dilation_h * (p.kh - 1) + 1, " x ", p.dilation_w * (p.kw - 1) + 1,
        " for a ", p.h, " x ", p.w, " input (the output would be ", p.out_h, " x ", p.out_w, ")");
  CHECK(p.device == Device::cpu || !(p.channels_last || p.weight_channels_last), "input: the '",
        device_name(p.device), "' backend reads C-contiguous (NCHW) arrays, got channels_last ones");
  CHECK(p.device == Device::cpu || !p.algorithm || std::string(p.algorithm) == "auto",
        "algorithm: selects among the CPU algorithms; the '", device_name(p.device),
        "' backend has one, expected 'auto', got '", p.algorithm, "'");
}

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  conv2d_check(p);
  switch (p.device) {
    case Device::cpu: return cpu::conv2d_forward(p, input, weight, bias, output);
#if CONVFORGE_WITH_CUDA
    case Device::cuda: return cuda::conv2d_forward(p, input, weight, bias, output);
#endif
#if CONVFORGE_WITH_CUDA_EMULATION
    case Device::cuda_emulated: return cuda_emulated::conv2d_forward(p, input, weight, bias, output);
#endif
    default: CHECK(false, "conv2d: device '", device_name(p.device), "' is not available in this build");
  }
}

void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias) {
  conv2d_check(p);
  switch (p.device) {
    case Device::cpu:
      return cpu::conv2d_backward(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
#if CONVFORGE_WITH_CUDA
    case Device::cuda:
      return cuda::conv2d_backward(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
#endif
#if CONVFORGE_WITH_CUDA_EMULATION
    case Device::cuda_emulated:
      return cuda_emulated::conv2d_backward(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
#endif
    default: CHECK(false, "conv2d: device '", device_name(p.device), "' is not available in this build");
  }
}

}  // namespace convforge
