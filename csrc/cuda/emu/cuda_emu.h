// An emulation of the CUDA execution model on the host, so that the project's .cu kernels run
// (and are checked) on a machine without a GPU. Only compat.h includes this, and only in the
// emulated build (CONVFORGE_CUDA_EMULATION=1), where the .cu sources are compiled by the host
// compiler.
//
// Each block's threads run as fibers on one OS thread. A fiber runs until it reaches a barrier
// (__syncthreads, a warp shuffle, __syncwarp) or exits; the scheduler then runs the others, in
// an order shuffled by a seed, so a missing barrier shows up as a wrong result for some seed.
// What a GPU punishes is reported as emu::Error (a Python RuntimeError):
//   - threads that leave a barrier behind (exit while others wait, or wait at different ones);
//   - global-memory accesses outside the argument arrays (kernels take gptr<T>, a checked
//     pointer here and a raw pointer in the real build), misaligned vector accesses, and
//     accesses outside the dynamic shared memory;
//   - launches a GPU rejects: more than 1024 threads per block, grid.y/z over 65535, dynamic
//     shared memory over the 48 KiB a kernel gets without opting in.
// Static __shared__ arrays become `static thread_local` (one block at a time per OS thread);
// their size over the limit is a compile error of the real build (ptxas), not checked here.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

namespace convforge::emu {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Built-in types and variables

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) double2 {
  double x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }

constexpr int warpSize = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxDynamicSharedBytes = 48 * 1024;

// The state of the CUDA thread the current fiber runs.
struct ThreadState {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
  unsigned linear = 0;  // thread index within the block
};
extern __thread ThreadState* current_thread;

[[noreturn]] void fail(const std::string& what);  // throws Error naming kernel, block and thread

// ---------------------------------------------------------------------------------------------
// Checked global-memory pointer: a base, an element offset and the extent of the array the host
// passed. Arithmetic is free; every dereference is checked.

template <typename T>
struct checked_ptr {
  T* base = nullptr;
  int64_t offset = 0, size = 0;
  const char* name = "?";

  checked_ptr() = default;
  checked_ptr(T* b, int64_t n, const char* nm) : base(b), offset(0), size(n), name(nm) {}
  template <typename U>
  checked_ptr(const checked_ptr<U>& o) : base(o.base), offset(o.offset), size(o.size), name(o.name) {}

  T* at(int64_t i, int64_t count = 1) const {
    const int64_t j = offset + i;
    if (j < 0 || j + count > size)
      fail(std::string("out-of-bounds access to '") + name + "': element " + std::to_string(j) +
           (count > 1 ? " (+" + std::to_string(count - 1) + ")" : "") + " of " +
           std::to_string(size));
    return base + j;
  }
  T& operator[](int64_t i) const { return *at(i); }
  T& operator*() const { return *at(0); }
  checked_ptr operator+(int64_t i) const {
    checked_ptr r = *this;
    r.offset += i;
    return r;
  }
  checked_ptr operator-(int64_t i) const { return *this + (-i); }
  checked_ptr& operator+=(int64_t i) {
    offset += i;
    return *this;
  }
  explicit operator bool() const { return base != nullptr; }
};

// A 16-byte vector access must be aligned on a GPU; check it here too.
template <typename V, typename T>
V* vector_at(const checked_ptr<T>& p, int64_t i) {
  T* q = p.at(i, sizeof(V) / sizeof(T));
  if (reinterpret_cast<uintptr_t>(q) % alignof(V) != 0)
    fail(std::string("misaligned ") + std::to_string(sizeof(V)) + "-byte access to '" + p.name +
         "' at element " + std::to_string(p.offset + i));
  return reinterpret_cast<V*>(q);
}

// ---------------------------------------------------------------------------------------------
// Barriers and warp intrinsics (implemented by the scheduler in cuda_emu.cpp)

void syncthreads(const char* file, int line);
void syncwarp(unsigned mask, const char* file, int line);
// Exchanges 8 bytes within the warp: every lane in `mask` offers `value` and receives the value
// of lane `src` (its own when src is outside the warp or not in the mask).
uint64_t warp_exchange(unsigned mask, uint64_t value, int src, const char* file, int line);

unsigned lane_id();

template <typename T>
T shfl_impl(unsigned mask, T v, int src, const char* file, int line) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_exchange(mask, bits, src, file, line);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

// Dynamic shared memory of the running block, checked against the launch's byte count.
template <typename T>
checked_ptr<T> dynamic_shared();
void* dynamic_shared_base(size_t* bytes);
template <typename T>
checked_ptr<T> dynamic_shared() {
  size_t bytes = 0;
  void* p = dynamic_shared_base(&bytes);
  return checked_ptr<T>(static_cast<T*>(p), static_cast<int64_t>(bytes / sizeof(T)), "dynamic shared memory");
}

// ---------------------------------------------------------------------------------------------
// Atomics: the blocks of a launch run one after another on one OS thread, so a plain
// read-modify-write is atomic with respect to every other emulated thread.

template <typename T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <typename T>
T atomicCAS(T* p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}

// ---------------------------------------------------------------------------------------------
// Math intrinsics

inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, 4);
  return i;
}
using std::isinf;
using std::isnan;
template <typename T>
T __ldg(const T* p) {
  return *p;
}

// ---------------------------------------------------------------------------------------------
// Launch: runs kernel() once per thread of every block; throws Error on a rejected launch or a
// fault. Blocks run in order; threads within a block in a seeded random order.

void launch(const char* kernel_name, dim3 grid, dim3 block, size_t dynamic_smem,
            const std::function<void()>& kernel);

// Seed of the thread order (process-wide; tests run several).
void set_seed(uint64_t seed);
uint64_t get_seed();

}  // namespace convforge::emu

// CUDA's keywords and built-in variables, for the kernel sources compiled in emulation.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
#define threadIdx (::convforge::emu::current_thread->thread_idx)
#define blockIdx (::convforge::emu::current_thread->block_idx)
#define blockDim (::convforge::emu::current_thread->block_dim)
#define gridDim (::convforge::emu::current_thread->grid_dim)
#define __syncthreads() ::convforge::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(mask) ::convforge::emu::syncwarp((mask), __FILE__, __LINE__)
#define __shfl_sync(mask, v, src) ::convforge::emu::shfl_impl((mask), (v), int((src) & 31), __FILE__, __LINE__)
#define __shfl_down_sync(mask, v, delta)                                                          \
  ::convforge::emu::shfl_impl((mask), (v), int(::convforge::emu::lane_id() + (delta)), __FILE__, \
                              __LINE__)
#define __shfl_up_sync(mask, v, delta)                                                            \
  ::convforge::emu::shfl_impl((mask), (v), int(::convforge::emu::lane_id()) - int(delta), __FILE__, \
                              __LINE__)
#define __shfl_xor_sync(mask, v, lanemask)                                                        \
  ::convforge::emu::shfl_impl((mask), (v), int(::convforge::emu::lane_id() ^ (lanemask)), __FILE__, \
                              __LINE__)
