// FMA throughput chains for avx512: see core/probe.h. 12 zmm accumulators cover a 4-cycle FMA
// latency at up to 2 zmm FMA per cycle (Zen 4 executes one zmm FMA as two 256-bit halves).
#include <immintrin.h>

#include "core/probe.h"
#include "cpu/isa_table.h"  // the prototype of this file's probe

namespace convforge {

double fma_chains__avx512(int64_t iters, float a, float b) {
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  __m512 acc[kFmaProbeChains];
  for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], va, vb);
  __m512 sum = acc[0];
  for (int i = 1; i < kFmaProbeChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

}  // namespace convforge
