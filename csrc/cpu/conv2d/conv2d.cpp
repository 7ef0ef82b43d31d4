// conv2d on the CPU: each pass asks the chooser (algorithms.cpp) which algorithm runs, and runs
// it with one scratch arena sized from what that algorithm declares.
#include "core/parallel.h"
#include "core/scratch.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/conv2d/gemm_common.h"
#include "cpu/kernels.h"

namespace convforge::cpu {
namespace conv {
namespace {

// The calling thread's memory for its arenas, grown on demand and kept for the next call
// (first touch of fresh memory is slow).
char* arena_memory(size_t bytes) {
  thread_local Scratch memory;
  return static_cast<char*>(memory.reserve(bytes));
}

// Bytes of a pass run by `a`, and by its fallback when it may decline.
size_t pass_bytes(const Algorithm& a, const Conv2dParams& p, Pass pass, int threads) {
  size_t bytes = Arena::bytes(a.workspace(p, pass, threads), threads);
  if (a.may_decline)
    bytes = std::max(bytes, Arena::bytes(fallback(p, pass).workspace(p, pass, threads), threads));
  return bytes;
}

void forward_with(const Algorithm& a, const Conv2dParams& p, char* memory, int threads, const void* x,
                  const void* w, const void* bias, void* y) {
  if (a.forward(p, Arena(memory, a.workspace(p, Pass::forward, threads), threads), x, w, bias, y)) return;
  const Algorithm& f = fallback(p, Pass::forward);
  f.forward(p, Arena(memory, f.workspace(p, Pass::forward, threads), threads), x, w, bias, y);
}

// w'[g][ci][co][t] = w[g][co][ci][kh * kw - 1 - t]: the weight of the flipped problem.
template <typename T>
void flip_weight(const Conv2dParams& p, const T* w, T* flipped) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, khw = p.kh * p.kw;
  for (int64_t grp = 0; grp < p.groups; ++grp)
    for (int64_t co = 0; co < cog; ++co)
      for (int64_t ci = 0; ci < cig; ++ci) {
        const T* src = w + ((grp * cog + co) * cig + ci) * khw;
        T* dst = flipped + ((grp * cig + ci) * cog + co) * khw;
        for (int64_t t = 0; t < khw; ++t) dst[t] = src[khw - 1 - t];
      }
}

// grad_bias[co] = sum over images and pixels of dy, with a few independent partial sums.
template <typename T>
void grad_bias(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t ohw = p.out_h * p.out_w;
  parallel_for(p.c_out, threads_for(double(p.n) * p.c_out * ohw, 1 << 18), [&](int64_t c0, int64_t c1) {
    for (int64_t co = c0; co < c1; ++co) {
      T total = 0;
      for (int64_t n = 0; n < p.n; ++n) {
        const T* row = dy + (n * p.c_out + co) * ohw;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t s = 0; s < ohw; ++s) acc += row[s];
        total += acc;
      }
      db[co] = total;
    }
  });
}

}  // namespace
}  // namespace conv

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  using namespace conv;
  const Algorithm& a = *choose(p, Pass::forward, p.algorithm).algorithm;
  const int threads = get_num_threads();
  char* memory = arena_memory(pass_bytes(a, p, Pass::forward, threads));
  forward_with(a, p, memory, threads, input, weight, bias, output);
}

void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias) {
  using namespace conv;
  const int threads = get_num_threads();
  if (grad_bias)
    with_dtype(p, [&](auto zero) {
      using T = decltype(zero);
      conv::grad_bias(p, static_cast<const T*>(grad_output), static_cast<T*>(grad_bias));
    });
  if (grad_weight) {
    const Algorithm& a = *choose(p, Pass::grad_weight, p.algorithm).algorithm;
    char* memory = arena_memory(pass_bytes(a, p, Pass::grad_weight, threads));
    if (!a.grad_weight(p, Arena(memory, a.workspace(p, Pass::grad_weight, threads), threads), grad_output,
                       input, grad_weight)) {
      const Algorithm& f = fallback(p, Pass::grad_weight);
      f.grad_weight(p, Arena(memory, f.workspace(p, Pass::grad_weight, threads), threads), grad_output, input,
                    grad_weight);
    }
  }
  if (grad_input) {
    const Choice c = choose(p, Pass::grad_input, p.algorithm);
    const Algorithm& a = *c.algorithm;
    if (!c.flipped_forward) {
      const Workspace ws = a.workspace(p, Pass::grad_input, threads);
      a.grad_input(p, Arena(arena_memory(Arena::bytes(ws, threads)), ws, threads), grad_output, weight,
                   grad_input);
      return;
    }
    // grad_input = conv(grad_output, flipped weight): the flipped weight first, then the forward's arena.
    Conv2dParams q;
    flipped_problem(p, &q);
    const size_t head =
        Arena::aligned(size_t(dtype_size(p.dtype)) * p.c_out * (p.c_in / p.groups) * p.kh * p.kw);
    char* memory = arena_memory(head + pass_bytes(a, q, Pass::forward, threads));
    with_dtype(p, [&](auto zero) {
      using T = decltype(zero);
      flip_weight(p, static_cast<const T*>(weight), reinterpret_cast<T*>(memory));
    });
    forward_with(a, q, memory + head, threads, grad_output, memory, nullptr, grad_input);
  }
}

}  // namespace convforge::cpu
