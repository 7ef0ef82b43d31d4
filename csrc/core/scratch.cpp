#include "core/scratch.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace convforge {

Scratch::Scratch() noexcept : data_(nullptr), bytes_(0) {}

Scratch::~Scratch() { std::free(data_); }

void* Scratch::reserve(size_t bytes) {
  if (bytes <= bytes_ && data_) return data_;
  constexpr size_t kAlign = 64;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (rounded < bytes) throw std::bad_alloc();
  void* p = std::aligned_alloc(kAlign, rounded ? rounded : kAlign);
  if (!p) throw std::bad_alloc();
  std::free(data_);
  data_ = p;
  bytes_ = rounded;
  return data_;
}

void* Scratch::reserve_zeroed(size_t bytes) {
  void* p = reserve(bytes);
  std::memset(p, 0, bytes);
  return p;
}

}  // namespace convforge
