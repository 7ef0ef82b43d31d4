// A SIMD vector written with GCC vector extensions, for loops compiled once per ISA: each per-ISA
// translation unit that includes this header turns it into its own registers.
#pragma once
#include <cstdint>
#include <cstring>

namespace convforge::cpu {
// Internal linkage: every per-ISA translation unit keeps its own copy (see core/scratch.h).
namespace {

// The widest register of the ISA this translation unit is compiled for. A wider GCC vector would
// be split into halves that the compiler assembles and takes apart through the stack (a store-
// forwarding stall per operation: ten times slower on an AVX2-only CPU).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <typename T, int Bytes = kVectorBytes>
struct Vec {
  static constexpr int64_t size = Bytes / sizeof(T);
  typedef T type __attribute__((vector_size(Bytes)));
  __attribute__((always_inline)) static type load(const T* p) {
    type v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  __attribute__((always_inline)) static void store(T* p, type v) { std::memcpy(p, &v, sizeof v); }
  static T sum(type v) {  // lanes in order
    T total = 0;
    for (int64_t l = 0; l < size; ++l) total += v[l];
    return total;
  }
};

}  // namespace
}  // namespace convforge::cpu
