// Scratch memory for the per-ISA translation units (files named *__<isa>.cpp).
//
// ISA isolation: a per-ISA file must not define any shared (weak / COMDAT) symbol. Every
// std container method, and every other header template or inline function it instantiates and
// does not inline, is such a symbol, compiled with that file's ISA flags; the linker keeps one
// copy per symbol for the whole module, so an AVX-512 std::vector<float> method can end up
// called from the AVX2 path on a CPU without AVX-512. tools/check_isa_symbols.py inspects the
// objects in CI. Per-ISA code therefore allocates through Scratch: a plain class whose members
// are all defined out of line in scratch.cpp (baseline ISA), so per-ISA code only calls them.
#pragma once
#include <cstddef>
#include <cstdint>

namespace convforge {

class Scratch {
 public:
  Scratch() noexcept;
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // At least `bytes` bytes, 64-byte aligned. The contents are kept while the buffer does not
  // grow; growing drops them. Throws std::bad_alloc.
  void* reserve(size_t bytes);
  // The same, the first `bytes` bytes set to zero.
  void* reserve_zeroed(size_t bytes);

 private:
  void* data_;
  size_t bytes_;
};

// Internal linkage: each translation unit keeps its own copy of these typed helpers.
namespace {
template <typename T>
inline T* scratch_array(Scratch& s, int64_t count) {
  return static_cast<T*>(s.reserve(sizeof(T) * static_cast<size_t>(count)));
}
template <typename T>
inline T* scratch_zeros(Scratch& s, int64_t count) {
  return static_cast<T*>(s.reserve_zeroed(sizeof(T) * static_cast<size_t>(count)));
}
}  // namespace

}  // namespace convforge
