#include "core/cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace convforge {

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// "32K", "1024K", "2M", "1048576" -> bytes (0 if unreadable).
int64_t parse_size(const std::string& s) {
  int64_t value = 0;
  char unit = 0;
  if (std::sscanf(s.c_str(), "%ld%c", &value, &unit) < 1 || value < 0) return 0;
  return unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : unit == 'G' ? value << 30 : value;
}

// "0-1,4,6-7" -> 5.
int64_t count_cpus(const std::string& list) {
  int64_t count = 0;
  std::stringstream ss(list);
  for (std::string range; std::getline(ss, range, ',');) {
    int64_t a = 0, b = 0;
    const int n = std::sscanf(range.c_str(), "%ld-%ld", &a, &b);
    count += n == 2 ? b - a + 1 : n == 1 ? 1 : 0;
  }
  return count;
}

CacheSizes read_caches() {
  CacheSizes c;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    const std::string level = read_line(dir + "level"), type = read_line(dir + "type");
    if (level.empty()) break;
    if (type == "Instruction") continue;
    const int64_t size = parse_size(read_line(dir + "size"));
    if (level == "1") c.l1d = size;
    if (level == "2") c.l2 = size;
    if (level == "3") c.l3_per_core = size / std::max<int64_t>(1, count_cpus(read_line(dir + "shared_cpu_list")));
  }
#if defined(_SC_LEVEL2_CACHE_SIZE)
  if (c.l1d <= 0) c.l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
  if (c.l2 <= 0) c.l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  if (c.l3_per_core <= 0)
    c.l3_per_core = sysconf(_SC_LEVEL3_CACHE_SIZE) / std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));
#endif
  auto sane = [](int64_t bytes, int64_t lo, int64_t hi, int64_t typical) {
    return bytes >= lo && bytes <= hi ? bytes : typical;
  };
  c.l1d = sane(c.l1d, 16 << 10, 256 << 10, 32 << 10);
  c.l2 = sane(c.l2, 128 << 10, 16 << 20, 1 << 20);
  c.l3_per_core = sane(c.l3_per_core, 256 << 10, 64 << 20, 2 << 20);
  return c;
}

}  // namespace

const CacheSizes& host_caches() {
  static const CacheSizes caches = read_caches();
  return caches;
}

}  // namespace convforge
