// CPU kernel entry points, called by the dispatchers in csrc/<op>.cpp after validation.
#pragma once
#include "ops.h"

namespace convforge::cpu {

void gemm(const GemmParams& p);

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output);
void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias);

void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices);
// Returns false when some index is outside its plane (that gradient is dropped).
bool max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input);
void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output);
void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input);

}  // namespace convforge::cpu
