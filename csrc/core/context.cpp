#include "core/context.h"

#include "core/check.h"
#include "core/view.h"
#include "cuda/kernels.h"

namespace convforge {

static thread_local Device host_device = Device::cpu;
static thread_local void* cuda_stream = nullptr;

Device host_array_device() { return host_device; }

void set_host_array_device(Device d) { host_device = d; }

Device host_device_from_name(const std::string& name) {
  for (Device d : {Device::cpu, Device::cuda_emulated})
    if (name == device_name(d)) return d;
  CHECK(false, "device: expected 'cpu' or 'cuda-emulated', got '", name, "'");
  return Device::cpu;
}

void set_cuda_context(int device, void* stream) {
#if CONVFORGE_WITH_CUDA
  cuda::set_device(device);
#endif
  cuda_stream = stream;
}

void* launch_stream(Device d) { return d == Device::cuda ? cuda_stream : nullptr; }

}  // namespace convforge
