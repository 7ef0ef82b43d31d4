// Test-only kernels, compiled into the emulated build only: each has one deliberate bug a GPU
// would punish (or none, as the control), so the tests can prove the emulator catches it.
// Exposed through the private binding _C._emu_run_kernel(name, float32 array).
#include <string>

#include "cuda/compat.h"
#include "cuda/kernels.h"

namespace convforge::CF_NS {

constexpr int kBrokenThreads = 128;

// Reverses each block's chunk of data through shared memory (the control: correct).
__global__ void reverse_kernel(gptr<float> data) {
  __shared__ float s[kBrokenThreads];
  const int t = threadIdx.x;
  const int64_t base = int64_t(blockIdx.x) * blockDim.x;
  s[t] = data[base + t];
  __syncthreads();
  data[base + t] = s[blockDim.x - 1 - t];
}

// Bug: no barrier between the shared-memory writes and the reads of other threads' values.
__global__ void reverse_missing_barrier_kernel(gptr<float> data) {
  __shared__ float s[kBrokenThreads];
  const int t = threadIdx.x;
  const int64_t base = int64_t(blockIdx.x) * blockDim.x;
  s[t] = data[base + t];
  data[base + t] = s[blockDim.x - 1 - t];
}

// Bug: the bound check is off by one (<= instead of <), reading one element past the end.
__global__ void shift_off_by_one_kernel(gptr<float> data, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i + 1 <= count) data[i] = data[i] + data[i + 1];
}

// Bug: threads past the end return before a barrier the others wait at.
__global__ void divergent_barrier_kernel(gptr<float> data, int64_t count) {
  __shared__ float s[kBrokenThreads];
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  s[threadIdx.x] = data[i];
  __syncthreads();
  data[i] = s[threadIdx.x] * 2.0f;
}

// Warp sums with shuffles (the control), and with half the warp skipping the shuffle (bug).
__global__ void warp_sum_kernel(gptr<float> data) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float v = data[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  data[i] = v;
}
__global__ void warp_sum_divergent_kernel(gptr<float> data) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float v = data[i];
  if (threadIdx.x % 32 < 16)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  data[i] = v;
}

// Bug: writes one float past the dynamic shared memory the launch requested.
__global__ void dynamic_smem_overflow_kernel(gptr<float> data) {
  auto s = dynamic_smem<float>();
  s[threadIdx.x + 1] = data[threadIdx.x];
  __syncthreads();
  data[threadIdx.x] = s[threadIdx.x];
}

// Bug: a float4 load from an address that is not 16-byte aligned.
__global__ void misaligned_vector_kernel(gptr<float> data) {
  const float4 v = load_float4(data, 1);
  data[0] = v.x;
}

// Fine as code, but launched with more threads or shared memory than a block may have.
__global__ void scale_kernel(gptr<float> data, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) data[i] *= 2.0f;
}

#if CONVFORGE_CUDA_EMULATION
void run_broken_kernel(const std::string& name, float* host, int64_t count) {
  auto data = device_array(host, count, "data");
  const dim3 block(kBrokenThreads), grid(unsigned(ceil_div(count, kBrokenThreads)));
  const bool whole_blocks = count % kBrokenThreads == 0;
  if (name == "reverse" || name == "missing_barrier" || name == "warp_sum" || name == "divergent_shuffle")
    CHECK(whole_blocks, "data: expected a multiple of ", kBrokenThreads, " elements, got ", count);
  if (name == "reverse") return CF_LAUNCH(reverse_kernel, grid, block, 0, nullptr, data);
  if (name == "missing_barrier") return CF_LAUNCH(reverse_missing_barrier_kernel, grid, block, 0, nullptr, data);
  if (name == "off_by_one") return CF_LAUNCH(shift_off_by_one_kernel, grid, block, 0, nullptr, data, count);
  if (name == "divergent_barrier") return CF_LAUNCH(divergent_barrier_kernel, grid, block, 0, nullptr, data, count);
  if (name == "warp_sum") return CF_LAUNCH(warp_sum_kernel, grid, block, 0, nullptr, data);
  if (name == "divergent_shuffle") return CF_LAUNCH(warp_sum_divergent_kernel, grid, block, 0, nullptr, data);
  if (name == "dynamic_smem_overflow")
    return CF_LAUNCH(dynamic_smem_overflow_kernel, dim3(1), dim3(unsigned(count)), count * sizeof(float), nullptr, data);
  if (name == "misaligned_vector") return CF_LAUNCH(misaligned_vector_kernel, dim3(1), dim3(1), 0, nullptr, data);
  if (name == "too_much_shared_memory")  // 64 KiB without the opt-in a GPU requires above 48 KiB
    return CF_LAUNCH(scale_kernel, grid, block, 64 * 1024, nullptr, data, count);
  if (name == "too_many_threads") return CF_LAUNCH(scale_kernel, dim3(1), dim3(1025), 0, nullptr, data, count);
  CHECK(false, "name: expected a known test kernel, got '", name, "'");
}
#endif

}  // namespace convforge::CF_NS
