// Machine probes for the benchmark harness: the FP32 FMA throughput of each ISA path and the
// DRAM bandwidth (STREAM-style copy and triad), so results can be reported as a fraction of what
// this machine can do rather than of a number from a data sheet.
#pragma once
#include <cstdint>

#include "core/isa.h"

namespace convforge {

// fma_chains__<isa> (declared in cpu/isa_table.h) runs `iters` rounds of independent FMA chains
// acc = acc * a + b (enough chains to cover the FMA latency on every x86 core we target) and
// returns a value that depends on every chain, so nothing is optimised away. One round is
// kFmaProbeFlops__<isa> FLOP.
constexpr int64_t kFmaProbeChains = 12;
constexpr int64_t kFmaProbeFlops__avx512 = kFmaProbeChains * 16 * 2;
constexpr int64_t kFmaProbeFlops__avx2 = kFmaProbeChains * 8 * 2;
constexpr int64_t kFmaProbeFlops__scalar = 16 * 2;

// Best FP32 GFLOP/s of `threads` threads each running the `isa` chains for >= min_seconds.
double measure_fma_gflops(Isa isa, int threads, double min_seconds);

// Best GB/s over `repeats` passes of copy (c = a, 2 arrays moved) or triad (a = b + s * c,
// 3 arrays moved) on float arrays of `bytes_per_array` bytes, split over `threads` threads.
double measure_memory_gbps(bool triad, int64_t bytes_per_array, int threads, int repeats);

}  // namespace convforge
