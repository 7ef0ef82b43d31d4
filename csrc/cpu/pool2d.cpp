// Pooling on the CPU: the scalar path (the kernels of pool2d_impl.h with one lane) and the
// dispatch to the active ISA's kernels through the ISA table (cpu/isa_table.h).
#include "cpu/isa_table.h"
#include "cpu/kernels.h"
#include "cpu/pool2d_impl.h"

namespace convforge::cpu {


namespace {

using ScalarOps = pool::Ops<pool::Scalar<float>, pool::Scalar<double>>;

}  // namespace

// The scalar row of the ISA table (isa_table.h).
void max_pool2d_forward__scalar(const Pool2dParams& p, const void* x, void* y, int64_t* idx) {
  ScalarOps::max_pool2d_forward(p, x, y, idx);
}
bool max_pool2d_backward__scalar(const Pool2dParams& p, const void* dy, const int64_t* idx, void* dx) {
  return ScalarOps::max_pool2d_backward(p, dy, idx, dx);
}
void avg_pool2d_forward__scalar(const Pool2dParams& p, const void* x, void* y) {
  ScalarOps::avg_pool2d_forward(p, x, y);
}
void avg_pool2d_backward__scalar(const Pool2dParams& p, const void* dy, void* dx) {
  ScalarOps::avg_pool2d_backward(p, dy, dx);
}

// The active ISA's kernels, through the ISA table.
void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  isa_kernels().max_pool2d_forward(p, input, output, indices);
}

bool max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input) {
  return isa_kernels().max_pool2d_backward(p, grad_output, indices, grad_input);
}

void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output) {
  isa_kernels().avg_pool2d_forward(p, input, output);
}

void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  isa_kernels().avg_pool2d_backward(p, grad_output, grad_input);
}

}  // namespace convforge::cpu
