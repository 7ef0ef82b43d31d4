// Pooling on the CPU: the scalar path (the kernels of pool2d_impl.h with one lane) and the
// dispatch to the active ISA's kernels through the ISA table (cpu/isa_table.h).
#include <cmath>

#include "cpu/isa_table.h"
#include "cpu/kernels.h"
#include "cpu/pool2d_impl.h"

namespace convforge::cpu {


namespace {

// One lane: see the traits contract in pool2d_impl.h.
template <typename T_>
struct Scalar {
  using T = T_;
  using V = T;
  using I = int64_t;
  using M = bool;
  using C = int64_t;
  static constexpr int N = 1;
  static V zero() { return T(0); }
  static V set1(T v) { return v; }
  static V loadu(const T* p) { return *p; }
  static void storeu(T* p, V v) { *p = v; }
  template <int SW> static V load_s(const T* p) { return *p; }
  template <int SW> static void store_s(T* p, const V* a) {
    for (int c = 0; c < SW; ++c) p[c] = a[c];
  }
  static V add(V a, V b) { return a + b; }
  static V div(V a, V b) { return a / b; }
  static M gt_or_nan(V v, V best) { return v > best || std::isnan(v); }
  static V select(M m, V a, V b) { return m ? a : b; }
  static I select_i(M m, I a, I b) { return m ? a : b; }
  static I iota(int64_t start, int64_t) { return start; }
  static I add_i(I a, int64_t k) { return a + k; }
  static void store_idx(int64_t* p, I v) { *p = v; }
  static C cand(int64_t start, int64_t) { return start; }
  static constexpr bool narrow_indices = false;
  static void narrow(const int64_t*, int32_t*, int64_t) {}
  static M eq(const int32_t*, I) { return M(); }
  static M eq(const int64_t* p, C c) { return *p == c; }
  static V add_masked(V acc, M m, V v) { return m ? acc + v : acc; }
  static I count(I cnt, M m) { return cnt + m; }
  static int64_t hsum(I cnt) { return cnt; }
  static M lanes_from(int64_t k) { return k <= 0; }
  static M and_(M a, M b) { return a && b; }
};

using ScalarOps = pool::Ops<Scalar<float>, Scalar<double>>;

}  // namespace

// The scalar row of the ISA table (isa_table.h).
void max_pool2d_forward__scalar(const Pool2dParams& p, const void* x, void* y, int64_t* idx) {
  ScalarOps::max_pool2d_forward(p, x, y, idx);
}
bool max_pool2d_backward__scalar(const Pool2dParams& p, const void* dy, const int64_t* idx, void* dx) {
  return ScalarOps::max_pool2d_backward(p, dy, idx, dx);
}
void avg_pool2d_forward__scalar(const Pool2dParams& p, const void* x, void* y) {
  ScalarOps::avg_pool2d_forward(p, x, y);
}
void avg_pool2d_backward__scalar(const Pool2dParams& p, const void* dy, void* dx) {
  ScalarOps::avg_pool2d_backward(p, dy, dx);
}

// The active ISA's kernels, through the ISA table.
void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  isa_kernels().max_pool2d_forward(p, input, output, indices);
}

bool max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input) {
  return isa_kernels().max_pool2d_backward(p, grad_output, indices, grad_input);
}

void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output) {
  isa_kernels().avg_pool2d_forward(p, input, output);
}

void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  isa_kernels().avg_pool2d_backward(p, grad_output, grad_input);
}

}  // namespace convforge::cpu
