// What the CUDA kernel sources see, in both builds:
//  - the real one (nvcc, CONVFORGE_CUDA_EMULATION undefined): namespace convforge::cuda, raw
//    pointers, <<<>>> launches on the caller's stream;
//  - the emulated one (the host compiler, CONVFORGE_CUDA_EMULATION=1, through emulated.cpp):
//    namespace convforge::cuda_emulated, bounds-checked pointers, the fiber scheduler.
// The launch helper below is the only host-side difference between the two; kernels write
// `namespace convforge::CF_NS { ... }`, take global arrays as gptr<T> and wrap host pointers
// with device_array(ptr, count, name).
#pragma once
#ifndef CONVFORGE_CUDA_EMULATION
#define CONVFORGE_CUDA_EMULATION 0
#endif
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/check.h"
#include "ops.h"

#if CONVFORGE_CUDA_EMULATION
#include "cuda/emu/cuda_emu.h"
#define CF_NS cuda_emulated
namespace convforge::cuda_emulated {
using namespace ::convforge::emu;
template <typename T>
using gptr = emu::checked_ptr<T>;
}  // namespace convforge::cuda_emulated
#else
#include <cuda_runtime.h>
#define CF_NS cuda
namespace convforge::cuda {
template <typename T>
using gptr = T*;
}  // namespace convforge::cuda
#endif

#if CONVFORGE_CUDA_EMULATION
#define CF_UNROLL
#else
#define CF_UNROLL _Pragma("unroll")
#endif

namespace convforge::CF_NS {

constexpr bool kEmulated = CONVFORGE_CUDA_EMULATION;
inline const char* backend_name() { return kEmulated ? "cuda-emulated" : "cuda"; }

// A host-side view of a device array as a kernel argument (extent known only to emulation).
template <typename T>
inline gptr<T> device_array(T* p, int64_t count, const char* name) {
#if CONVFORGE_CUDA_EMULATION
  return gptr<T>(p, p ? count : 0, name);
#else
  return p;
#endif
}

// 16-byte vector load/store of 4 floats at p + i (aligned; the host checks before choosing a
// vectorized kernel).
__device__ __forceinline__ float4 load_float4(gptr<const float> p, int64_t i) {
#if CONVFORGE_CUDA_EMULATION
  return *emu::vector_at<const float4>(p, i);
#else
  return *reinterpret_cast<const float4*>(p + i);
#endif
}
__device__ __forceinline__ void store_float4(gptr<float> p, int64_t i, float4 v) {
#if CONVFORGE_CUDA_EMULATION
  *emu::vector_at<float4>(p, i) = v;
#else
  *reinterpret_cast<float4*>(p + i) = v;
#endif
}

// The block's dynamic shared memory (the launch's smem bytes) as an array of T.
template <typename T>
__device__ __forceinline__ auto dynamic_smem() {
#if CONVFORGE_CUDA_EMULATION
  return emu::dynamic_shared<T>();
#else
  extern __shared__ __align__(16) unsigned char convforge_dynamic_smem[];
  return reinterpret_cast<T*>(convforge_dynamic_smem);
#endif
}

__host__ __device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }
__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The one launch helper: kernel<<<grid, block, smem, stream>>>(args...) on the GPU, the fiber
// scheduler in emulation. Launch errors (bad configuration, too much shared memory, no device)
// throw; the GPU path never synchronizes.
#define CF_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::convforge::CF_NS::launch_kernel(#kernel, kernel, grid, block, smem, stream, __VA_ARGS__)

// An empty problem (a zero batch, channel or output count) has an empty grid, which CUDA
// rejects: it launches nothing instead.
inline bool empty_grid(dim3 grid) { return grid.x == 0 || grid.y == 0 || grid.z == 0; }

#if CONVFORGE_CUDA_EMULATION
template <typename... Params, typename... Args>
void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   void* /*stream*/, Args&&... args) {
  if (empty_grid(grid)) return;
  emu::launch(name, grid, block, smem, [&] { kernel(args...); });
}
#else
void throw_cuda_error(cudaError_t err, const char* what);
template <typename... Params, typename... Args>
void launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   void* stream, Args&&... args) {
  if (empty_grid(grid)) return;
  kernel<<<grid, block, smem, static_cast<cudaStream_t>(stream)>>>(std::forward<Args>(args)...);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, name);
}
#endif

// Temporary device memory ordered on the stream (split-K partial sums): cudaMallocAsync /
// cudaFreeAsync on the GPU, the host heap in emulation.
class Workspace {
 public:
  Workspace(size_t bytes, void* stream);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  void* stream_ = nullptr;
};

// Checks before the first launch of an op (the GPU build: that a device exists).
void require_device();

}  // namespace convforge::CF_NS
