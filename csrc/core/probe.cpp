#include "core/probe.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "core/check.h"
#include "core/parallel.h"
#include "cpu/isa_table.h"

namespace convforge {

static double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs fn(thread) on `threads` threads at once (or inline for one thread).
template <typename Fn>
static void on_threads(int threads, Fn&& fn) {
#if defined(CONVFORGE_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    fn(omp_get_thread_num());
    return;
  }
#endif
  fn(0);
}

double measure_fma_gflops(Isa isa, int threads, double min_seconds) {
  CHECK(threads >= 1, "threads: expected a positive integer, got ", threads);
  CHECK(isa <= best_supported_isa(), "isa: this CPU supports at most '",
        isa_name(best_supported_isa()), "', got '", isa_name(isa), "'");
  double (*chains)(int64_t, float, float) = cpu::isa_kernels(isa).fma_chains;
  const int64_t flops_per_iter = cpu::isa_kernels(isa).fma_probe_flops;
  volatile double sink = 0;
  auto run = [&](int64_t iters, int team) {
    const auto start = std::chrono::steady_clock::now();
    on_threads(team, [&](int) {
      double s = chains(iters, 0.9999f, 0.0001f);
      if (s == 12345.678) sink = s;  // practically never: keeps the result alive
    });
    return seconds_since(start);
  };
  // Calibrate on one thread (a team's start-up must not count as work), to ~20 ms per run.
  int64_t iters = 1 << 12;
  while (run(iters, 1) < 0.02) iters *= 2;
  // Many short runs, keeping the best: on a shared machine some run gets the cores undisturbed.
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 5 || spent < min_seconds; ++rep) {
    const double t = run(iters, threads);
    best = std::min(best, t);
    spent += t;
  }
  return static_cast<double>(iters) * flops_per_iter * threads / best * 1e-9;
}

double measure_memory_gbps(bool triad, int64_t bytes_per_array, int threads, int repeats) {
  CHECK(threads >= 1, "threads: expected a positive integer, got ", threads);
  CHECK(bytes_per_array >= 4096, "bytes_per_array: expected at least 4096, got ", bytes_per_array);
  CHECK(repeats >= 1, "repeats: expected a positive integer, got ", repeats);
  const int64_t n = bytes_per_array / static_cast<int64_t>(sizeof(float));
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  float *pa = a.get(), *pb = b.get(), *pc = c.get();
  // Each thread first-touches and later streams the same contiguous slice.
  auto slice = [&](int t, auto&& body) {
    const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
    body(begin, end);
  };
  on_threads(threads, [&](int t) {
    slice(t, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) pa[i] = 1.0f, pb[i] = 2.0f, pc[i] = 0.5f;
    });
  });
  const float s = 3.0f;
  double best = 1e30;
  for (int rep = 0; rep < repeats + 1; ++rep) {  // the first pass is a warm-up
    const auto start = std::chrono::steady_clock::now();
    on_threads(threads, [&](int t) {
      slice(t, [&](int64_t begin, int64_t end) {
        if (triad)
          for (int64_t i = begin; i < end; ++i) pa[i] = pb[i] + s * pc[i];
        else
          for (int64_t i = begin; i < end; ++i) pc[i] = pa[i];
      });
    });
    const double elapsed = seconds_since(start);
    if (rep > 0) best = std::min(best, elapsed);
  }
  volatile float sink = pa[n / 2] + pc[n / 3];
  (void)sink;
  const double moved = static_cast<double>(bytes_per_array) * (triad ? 3 : 2);
  return moved / best * 1e-9;
}

}  // namespace convforge
