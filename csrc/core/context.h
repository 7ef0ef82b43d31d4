// Per-thread execution context of the ops, set from Python and read when an op is called:
// - which backend runs ops on host (NumPy) arrays: the CPU kernels, or the CUDA kernels executed
//   by the emulator (for testing them without a GPU);
// - the caller's CUDA device and stream for ops on GPU arrays (set by the Python layer from
//   CuPy's or torch's current stream just before each call; ops never synchronize).
// Thread-local: each Python thread has its own (ops release the GIL and may run concurrently).
#pragma once
#include <string>

#include "ops.h"

namespace convforge {

Device host_array_device();
void set_host_array_device(Device d);
// "cpu" or "cuda-emulated" -> Device; ValueError naming the accepted values otherwise.
Device host_device_from_name(const std::string& name);

// Makes `device` current for this thread's launches (a no-op in a build without CUDA) and
// `stream` (a cudaStream_t) the stream of its next ops on GPU arrays.
void set_cuda_context(int device, void* stream);
// The stream an op on device d launches on: the caller's for Device::cuda, none otherwise.
void* launch_stream(Device d);

}  // namespace convforge
