// The one CHECK macro of the loud boundary: a failed check throws an error whose message names
// the argument, the expected and the actual value. The binding turns ValueError/TypeError into
// the Python exceptions of the same name. Kernels below the dispatchers only assert.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace convforge {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

}  // namespace convforge

// CHECK(cond, "weight: expected 4 dimensions, got ", ndim) -> ValueError
#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) throw ::convforge::ValueError(::convforge::detail::concat(__VA_ARGS__)); \
  } while (0)

// CHECK_TYPE(cond, ...) -> TypeError (wrong dtype, mixed dtypes)
#define CHECK_TYPE(cond, ...)                                                \
  do {                                                                       \
    if (!(cond)) throw ::convforge::TypeError(::convforge::detail::concat(__VA_ARGS__)); \
  } while (0)
