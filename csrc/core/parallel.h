// Threading: one process-wide thread count (set_num_threads), and a parallel_for that only
// starts a thread team when every thread gets at least a minimum amount of work, so small
// problems never pay the fork/join.
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(CONVFORGE_OPENMP)
#include <omp.h>
#endif

namespace convforge {

int get_num_threads();
void set_num_threads(int n);  // n >= 1
bool openmp_enabled();

// How many threads to use for `work` units when each thread should get >= min_work_per_thread.
// Defined out of line: per-ISA files call it, and an inline function would be a shared symbol
// compiled with their flags (see core/scratch.h).
int threads_for(double work, double min_work_per_thread);

// Calls fn(begin, end) on contiguous chunks of [0, count), one chunk per thread.
template <typename Fn>
void parallel_for(int64_t count, int nthreads, Fn&& fn) {
  if (count <= 0) return;
  nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, count)));
#if defined(CONVFORGE_OPENMP)
  if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      int64_t begin = count * t / nt, end = count * (t + 1) / nt;
      if (begin < end) fn(begin, end);
    }
    return;
  }
#endif
  fn(int64_t{0}, count);
}

}  // namespace convforge
