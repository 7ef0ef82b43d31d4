// The data caches of one core, as the operating system reports them, for the GEMM blocking (the
// packed A block is sized for L2, the packed B block for this core's share of L3).
#pragma once
#include <cstdint>

namespace convforge {

struct CacheSizes {
  int64_t l1d = 0, l2 = 0;  // bytes, one core's
  int64_t l3_per_core = 0;  // bytes: the last level divided among the CPUs that share it
};

// Read once (Linux sysfs, else sysconf); a level that is not reported, or reported outside the
// sizes of real cores (virtual machines report odd values), gets a typical value.
const CacheSizes& host_caches();

}  // namespace convforge
