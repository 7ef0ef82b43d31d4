// Pooling dispatcher: validates the params once and picks the backend.
#include "core/check.h"
#include "core/view.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "ops.h"

namespace convforge {

static void validate(const Pool2dParams& p) {
  CHECK(p.dtype != DType::i64, "pool2d: expected float32 or float64");
  CHECK(p.kh > 0 && p.kw > 0, "kernel_size: expected positive values, got (", p.kh, ", ", p.kw, ")");
  CHECK(p.stride_h > 0 && p.stride_w > 0, "stride: expected positive values, got (", p.stride_h,
        ", ", p.stride_w, ")");
  CHECK(p.dilation_h > 0 && p.dilation_w > 0, "dilation: expected positive values, got (",
        p.dilation_h, ", ", p.dilation_w, ")");
  CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kh && 2 * p.pad_w <= p.kw,
        "padding: expected at most half the kernel size (", p.kh / 2, ", ", p.kw / 2, "), got (",
        p.pad_h, ", ", p.pad_w, ")");
  CHECK(p.divisor_override >= 0, "divisor_override: expected a positive integer, got ",
        p.divisor_override);
  CHECK(p.out_h > 0 && p.out_w > 0, "pool2d: the output would be empty (", p.out_h, " x ",
        p.out_w, ")");
  CHECK(p.device == Device::cpu || !p.channels_last, "input: the '", device_name(p.device),
        "' backend reads C-contiguous (NCHW) arrays, got channels_last ones");
}

#if CONVFORGE_WITH_CUDA
#define CONVFORGE_POOL_CUDA_CASE(name, ...) case Device::cuda: return cuda::name(__VA_ARGS__);
#else
#define CONVFORGE_POOL_CUDA_CASE(name, ...)
#endif
#if CONVFORGE_WITH_CUDA_EMULATION
#define CONVFORGE_POOL_EMULATED_CASE(name, ...) \
  case Device::cuda_emulated: return cuda_emulated::name(__VA_ARGS__);
#else
#define CONVFORGE_POOL_EMULATED_CASE(name, ...)
#endif
#define CONVFORGE_POOL_CUDA_CASES(name, ...) \
  CONVFORGE_POOL_CUDA_CASE(name, __VA_ARGS__) CONVFORGE_POOL_EMULATED_CASE(name, __VA_ARGS__)

#define CONVFORGE_POOL_DISPATCH(name, ...)                                                        \
  validate(p);                                                                                     \
  switch (p.device) {                                                                              \
    case Device::cpu: return cpu::name(__VA_ARGS__);                                               \
    CONVFORGE_POOL_CUDA_CASES(name, __VA_ARGS__)                                                   \
    default: CHECK(false, #name ": device '", device_name(p.device), "' is not available in this build"); \
  }

void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  CONVFORGE_POOL_DISPATCH(max_pool2d_forward, p, input, output, indices)
}
void max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input) {
  validate(p);
  switch (p.device) {
    case Device::cpu:
      CHECK(cpu::max_pool2d_backward(p, grad_output, indices, grad_input),
            "indices: expected values in [0, ", p.h * p.w, ") (offsets within a ", p.h, " x ", p.w,
            " plane), got some outside");
      return;
    // The CUDA kernels gather: an index outside its window is never matched, so never written.
    CONVFORGE_POOL_CUDA_CASES(max_pool2d_backward, p, grad_output, indices, grad_input)
    default:
      CHECK(false, "max_pool2d_backward: device '", device_name(p.device), "' is not available in this build");
  }
}
void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output) {
  CONVFORGE_POOL_DISPATCH(avg_pool2d_forward, p, input, output)
}
void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  CONVFORGE_POOL_DISPATCH(avg_pool2d_backward, p, grad_output, grad_input)
}

}  // namespace convforge
