// A checked view of an array argument: pointer, shape, strides in elements, dtype, device and
// whether it may be written. The binding builds one per argument; the checks below produce the
// messages of the loud boundary (argument name, expected, actual).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/check.h"
#include "ops.h"

namespace convforge {

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    default: return "float32";
  }
}
inline const char* device_name(Device d) {
  switch (d) {
    case Device::cuda: return "cuda";
    case Device::cuda_emulated: return "cuda-emulated";
    default: return "cpu";
  }
}

struct View {
  std::string name;
  void* data = nullptr;
  std::vector<int64_t> shape, strides;  // strides in elements
  DType dtype = DType::f32;
  Device device = Device::cpu;
  bool readonly = false;

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  static std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
  }
  std::string shape_str() const { return shape_str(shape); }
  bool is_contiguous() const {
    if (numel() == 0) return true;  // NumPy gives empty arrays zero strides
    int64_t expected = 1;
    for (int64_t i = ndim() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
  // Dense NHWC memory seen as an NCHW array (torch's channels_last): strides (h*w*c, 1, w*c, c),
  // any stride along a dimension of size 1.
  bool is_channels_last_dense() const {
    if (ndim() != 4) return false;
    if (numel() == 0) return true;
    const int64_t c = shape[1], w = shape[3], h = shape[2];
    const int64_t expected[4] = {h * w * c, 1, w * c, c};
    for (int i = 0; i < 4; ++i)
      if (shape[i] != 1 && strides[i] != expected[i]) return false;
    return true;
  }
  // Readable by a kernel in this layout: C-contiguous, or dense NHWC when channels_last.
  bool is_dense(bool channels_last) const {
    return channels_last ? is_channels_last_dense() : is_contiguous();
  }
  // Byte range [lo, hi) touched by this view (empty views touch nothing).
  std::pair<uintptr_t, uintptr_t> byte_range() const {
    if (numel() == 0) return {0, 0};
    int64_t lo = 0, hi = 0;
    for (int64_t i = 0; i < ndim(); ++i) {
      int64_t span = (shape[i] - 1) * strides[i];
      (span < 0 ? lo : hi) += span;
    }
    auto base = reinterpret_cast<uintptr_t>(data);
    int64_t size = dtype_size(dtype);
    return {base + lo * size, base + (hi + 1) * size};
  }

  void require_ndim(int64_t n) const {
    CHECK(ndim() == n, name, ": expected ", n, " dimensions, got ", ndim(), " (shape ",
          shape_str(), ")");
  }
  void require_dtype(DType t) const {
    CHECK_TYPE(dtype == t, name, ": expected dtype ", dtype_name(t), ", got ", dtype_name(dtype));
  }
  void require_shape(const std::vector<int64_t>& want) const {
    CHECK(shape == want, name, ": expected shape ", shape_str(want), ", got ", shape_str());
  }
  void require_contiguous() const {
    CHECK(is_contiguous(), name, ": expected a C-contiguous array, got strides that are not");
  }
  void require_dense(bool channels_last) const {
    if (!channels_last) return require_contiguous();
    CHECK(is_channels_last_dense(), name, ": expected a dense channels_last (NHWC) array like the "
          "others, got strides that are not");
  }
  void require_writable() const {
    CHECK(!readonly, name, ": expected a writable array, got a read-only one");
  }
  void require_disjoint(const View& other) const {
    auto [a0, a1] = byte_range();
    auto [b0, b1] = other.byte_range();
    CHECK(a1 <= b0 || b1 <= a0 || a0 == a1 || b0 == b1, name, ": expected memory disjoint from ",
          other.name, ", got an overlapping array");
  }
  void require_same_device(const View& other) const {
    CHECK(device == other.device, name, ": expected device ", device_name(other.device), " like ",
          other.name, ", got ", device_name(device));
  }
};

// The memory layout of an op's activation arrays: channels_last when one of them is dense NHWC
// and not C-contiguous (the two coincide when, e.g., there is one channel).
inline bool channels_last_layout(std::initializer_list<const View*> arrays) {
  for (const View* v : arrays)
    if (v && v->is_channels_last_dense() && !v->is_contiguous()) return true;
  return false;
}

}  // namespace convforge
