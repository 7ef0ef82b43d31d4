#include "core/parallel.h"

#include <atomic>
#include <cstdlib>

#include "core/check.h"

namespace convforge {

static int initial_threads() {
#if defined(CONVFORGE_OPENMP)
  return std::max(1, omp_get_max_threads());  // honours OMP_NUM_THREADS
#else
  return 1;
#endif
}

static std::atomic<int>& thread_count() {
  static std::atomic<int> n{initial_threads()};
  return n;
}

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  CHECK(n >= 1, "num_threads: expected a positive integer, got ", n);
  thread_count().store(n, std::memory_order_relaxed);
}

int threads_for(double work, double min_work_per_thread) {
  int by_work = static_cast<int>(work / std::max(min_work_per_thread, 1.0));
  return std::max(1, std::min(get_num_threads(), by_work));
}

bool openmp_enabled() {
#if defined(CONVFORGE_OPENMP)
  return true;
#else
  return false;
#endif
}

}  // namespace convforge
