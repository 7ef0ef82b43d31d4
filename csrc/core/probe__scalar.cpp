// Multiply-add chains for the portable path: see core/probe.h. Plain C++ built with the
// baseline flags; the compiler may vectorize the 16 chains with the baseline SIMD (SSE2 on
// x86-64), which is exactly what the portable kernels get too.
#include "core/probe.h"
#include "cpu/isa_table.h"  // the prototype of this file's probe

namespace convforge {

double fma_chains__scalar(int64_t iters, float a, float b) {
  float acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = static_cast<float>(i);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) acc[i] = acc[i] * a + b;
  double total = 0;
  for (float v : acc) total += v;
  return total;
}

}  // namespace convforge
