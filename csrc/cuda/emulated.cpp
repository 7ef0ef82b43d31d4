// The emulated CUDA backend: the project's .cu sources compiled by the host compiler against
// the emulator (cuda/emu/cuda_emu.h), into namespace convforge::cuda_emulated.
#define CONVFORGE_CUDA_EMULATION 1

#include <cstdlib>
#include <cstring>
#include <new>

#include "cuda/gemm.cu"
#include "cuda/conv2d.cu"
#include "cuda/pool2d.cu"
#include "cuda/broken.cu"

namespace convforge::cuda_emulated {

// Filled with NaN so that reading a part no kernel wrote shows in the result.
Workspace::Workspace(size_t bytes, void* stream) : ptr_(bytes ? std::malloc(bytes) : nullptr), stream_(stream) {
  if (bytes && !ptr_) throw std::bad_alloc();
  if (bytes) std::memset(ptr_, 0xff, bytes);
}
Workspace::~Workspace() { std::free(ptr_); }

void require_device() {}

void set_seed(uint64_t seed) { emu::set_seed(seed); }

}  // namespace convforge::cuda_emulated
