// CUDA kernel entry points, called by the dispatchers in csrc/<op>.cpp after validation. The
// same sources are built twice: convforge::cuda (nvcc, real GPUs) and convforge::cuda_emulated
// (the host compiler and the emulator in cuda/emu, for tests without a GPU).
#pragma once
#include <string>
#include <vector>

#include "ops.h"

#define CONVFORGE_CUDA_ENTRY_POINTS                                                                  \
  void gemm(const GemmParams& p);                                                                  \
  void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight,                 \
                      const void* bias, void* output);                                             \
  void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,          \
                       const void* weight, void* grad_input, void* grad_weight, void* grad_bias);  \
  void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices); \
  void max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,  \
                           void* grad_input);                                                      \
  void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output);                 \
  void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input);

namespace convforge::cuda {
CONVFORGE_CUDA_ENTRY_POINTS
int device_count();                       // 0 without a GPU or driver (never throws)
std::vector<std::string> architectures(); // the sm_XY the build compiled
// Makes `device` current for this host thread's launches (the caller's device).
void set_device(int device);
}  // namespace convforge::cuda

namespace convforge::cuda_emulated {
CONVFORGE_CUDA_ENTRY_POINTS
// Test-only kernels with deliberate bugs, proving the emulator catches them (see broken.cu).
void run_broken_kernel(const std::string& name, float* data, int64_t count);
void set_seed(uint64_t seed);
}  // namespace convforge::cuda_emulated
