// conv2d dispatcher: validates the params once and picks the backend.
#include <string>

#include "core/check.h"
#include "core/view.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "ops.h"

namespace convforge {

static void validate(const Conv2dParams& p) {
  CHECK(p.dtype != DType::i64, "conv2d: expected float32 or float64");
  CHECK(p.stride_h > 0 && p.stride_w > 0, "stride: expected positive values, got (", p.stride_h,
        ", ", p.stride_w, ")");
  CHECK(p.dilation_h > 0 && p.dilation_w > 0, "dilation: expected positive values, got (",
        p.dilation_h, ", ", p.dilation_w, ")");
  CHECK(p.pad_h >= 0 && p.pad_w >= 0, "padding: expected non-negative values, got (", p.pad_h,
        ", ", p.pad_w, ")");
  CHECK(p.groups > 0, "groups: expected a positive integer, got ", p.groups);
  CHECK(p.c_in % p.groups == 0, "groups: expected a divisor of in_channels=", p.c_in, ", got ",
        p.groups);
  CHECK(p.c_out % p.groups == 0, "groups: expected a divisor of out_channels=", p.c_out, ", got ",
        p.groups);
  CHECK(p.out_h > 0 && p.out_w > 0, "conv2d: the output would be empty (", p.out_h, " x ",
        p.out_w, "); the kernel is larger than the padded input");
  CHECK(p.device == Device::cpu || !p.algorithm || std::string(p.algorithm) == "auto",
        "algorithm: selects among the CPU algorithms; the '", device_name(p.device),
        "' backend has one, expected 'auto', got '", p.algorithm, "'");
}

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  validate(p);
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
  validate(p);
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
