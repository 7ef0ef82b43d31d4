// Host-side CUDA runtime glue of the real build: errors, devices, stream-ordered workspaces.
// The runtime is linked statically, so importing convforge needs no driver; ops on a machine
// without a GPU raise a clear error here.
#include <stdexcept>

#include "cuda/compat.h"
#include "cuda/kernels.h"

#ifndef CONVFORGE_CUDA_ARCHS
#define CONVFORGE_CUDA_ARCHS ""
#endif

namespace convforge::cuda {

void throw_cuda_error(cudaError_t err, const char* what) {
  throw std::runtime_error(std::string("cuda: ") + what + ": " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ")");
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void require_device() {
  static const int count = device_count();
  if (count == 0)
    throw std::runtime_error(
        "cuda: no CUDA device is available (no GPU or no driver); use NumPy arrays for the CPU "
        "backend");
}

void set_device(int device) {
  require_device();
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) throw_cuda_error(err, "cudaSetDevice");
}

std::vector<std::string> architectures() {
  std::vector<std::string> out;
  std::string all = CONVFORGE_CUDA_ARCHS, cur;
  for (char ch : all + ";") {
    if (ch == ';' || ch == ' ') {
      if (!cur.empty()) out.push_back("sm_" + cur.substr(0, cur.find('-')));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  return out;
}

Workspace::Workspace(size_t bytes, void* stream) : stream_(stream) {
  if (!bytes) return;
  cudaError_t err = cudaMallocAsync(&ptr_, bytes, static_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) throw_cuda_error(err, "cudaMallocAsync");
}
Workspace::~Workspace() {
  if (ptr_) cudaFreeAsync(ptr_, static_cast<cudaStream_t>(stream_));
}

}  // namespace convforge::cuda
