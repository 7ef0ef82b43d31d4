// FMA throughput chains for avx2: see core/probe.h. 12 ymm accumulators cover a 4-5 cycle FMA
// latency at 2 FMA per cycle.
#include <immintrin.h>

#include "core/probe.h"
#include "cpu/isa_table.h"  // the prototype of this file's probe

namespace convforge {

double fma_chains__avx2(int64_t iters, float a, float b) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  __m256 acc[kFmaProbeChains];
  for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], va, vb);
  __m256 sum = acc[0];
  for (int i = 1; i < kFmaProbeChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  double total = 0;
  for (float v : lanes) total += v;
  return total;
}

}  // namespace convforge
