// conv2d on the CPU: each pass asks the chooser (algorithms.cpp) which algorithm runs, and runs
// it with one scratch arena sized from what that algorithm declares. The algorithms read the
// weight in the activations' layout (OIHW for NCHW, OHWI for NHWC); a weight given in the other
// one is converted here, into the head of the arena (it is small next to the activations).
#include <algorithm>

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

// Where weight element (co, ci, tap) lies, for a weight whose (c_out, c_in / groups) are given:
// at co * cig * taps + ci * ci_stride + tap * tap_stride. OIHW, or OHWI with channels_last.
struct WeightLayout {
  int64_t ci_stride, tap_stride;
  WeightLayout(int64_t cig, int64_t taps, bool channels_last)
      : ci_stride(channels_last ? 1 : taps), tap_stride(channels_last ? cig : 1) {}
};

size_t weight_bytes(const Conv2dParams& p) {
  return Arena::aligned(size_t(dtype_size(p.dtype)) * p.c_out * (p.c_in / p.groups) * p.kh * p.kw);
}

// The weight in the other layout (from_channels_last: OHWI -> OIHW, else OIHW -> OHWI).
template <typename T>
void relayout_weight(const Conv2dParams& p, bool from_channels_last, const T* w, T* out) {
  const int64_t cig = p.c_in / p.groups, taps = p.kh * p.kw, size = cig * taps;
  const WeightLayout src(cig, taps, from_channels_last), dst(cig, taps, !from_channels_last);
  for (int64_t co = 0; co < p.c_out; ++co, w += size, out += size)
    for (int64_t ci = 0; ci < cig; ++ci)
      for (int64_t t = 0; t < taps; ++t)
        out[ci * dst.ci_stride + t * dst.tap_stride] = w[ci * src.ci_stride + t * src.tap_stride];
}

// The weight of the flipped problem (flipped_problem()): w'[g * cig + ci][co][taps - 1 - t] =
// w[g * cog + co][ci][t], from the weight's layout into the activations' one. A transpose of
// (co, ci) per tap, through a 16 x 16 tile: the rows of either side can lie a multiple of 2 KiB
// apart (OHWI, 512 channels: 18 KiB), sharing a few cache sets, so each line is read or written
// in one burst instead of an element at a time. Blocks of output channels write disjoint parts of
// w': they go to the threads.
template <typename T>
void flip_weight(const Conv2dParams& p, const T* w, T* flipped) {
  constexpr int64_t kBlock = 16;
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups, taps = p.kh * p.kw;
  const WeightLayout src(cig, taps, p.weight_channels_last), dst(cog, taps, p.channels_last);
  const int64_t co_blocks = (cog + kBlock - 1) / kBlock;
  const int threads = threads_for(double(p.groups) * cog * cig * taps, 1 << 18);
  parallel_for(p.groups * co_blocks, threads, [&](int64_t b0, int64_t b1) {
    T tile[kBlock][kBlock];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t grp = b / co_blocks, co0 = b % co_blocks * kBlock, cos = std::min(kBlock, cog - co0);
      for (int64_t ci0 = 0; ci0 < cig; ci0 += kBlock) {
        const int64_t cis = std::min(kBlock, cig - ci0);
        for (int64_t t = 0; t < taps; ++t) {
          const T* s = w + (grp * cog + co0) * cig * taps + ci0 * src.ci_stride + t * src.tap_stride;
          T* d = flipped + (grp * cig + ci0) * cog * taps + co0 * dst.ci_stride + (taps - 1 - t) * dst.tap_stride;
          for (int64_t co = 0; co < cos; ++co)
            for (int64_t ci = 0; ci < cis; ++ci) tile[ci][co] = s[co * cig * taps + ci * src.ci_stride];
          for (int64_t ci = 0; ci < cis; ++ci)
            for (int64_t co = 0; co < cos; ++co) d[ci * cog * taps + co * dst.ci_stride] = tile[ci][co];
        }
      }
    }
  });
}

// grad_bias[co] = sum over images and pixels of dy, with a few independent partial sums.
template <typename T>
void grad_bias(const Conv2dParams& p, const T* dy, T* db) {
  const int64_t ohw = p.out_h * p.out_w;
  if (p.channels_last) {
    // Rows of c_out: blocks of rows summed along the channels (in parallel, into the arena), then
    // the blocks' sums added in order, so the bits do not depend on the thread count.
    constexpr int64_t kBlock = 64;
    const int64_t rows = p.n * ohw, blocks = (rows + kBlock - 1) / kBlock;
    T* partial = reinterpret_cast<T*>(arena_memory(sizeof(T) * blocks * p.c_out));
    parallel_for(blocks, threads_for(double(rows) * p.c_out, 1 << 18), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        T* block = partial + b * p.c_out;
        std::fill(block, block + p.c_out, T(0));
        for (int64_t r = b * kBlock; r < std::min(rows, (b + 1) * kBlock); ++r) {
          const T* row = dy + r * p.c_out;
#pragma omp simd
          for (int64_t co = 0; co < p.c_out; ++co) block[co] += row[co];
        }
      }
    });
    std::fill(db, db + p.c_out, T(0));
    for (int64_t b = 0; b < blocks; ++b) {
      const T* block = partial + b * p.c_out;
#pragma omp simd
      for (int64_t co = 0; co < p.c_out; ++co) db[co] += block[co];
    }
    return;
  }
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

// The problem as the algorithms see it: the weight in the activations' layout (the entry points
// convert a weight given in the other one).
Conv2dParams with_native_weight(const Conv2dParams& p) {
  Conv2dParams q = p;
  q.weight_channels_last = p.channels_last;
  return q;
}

// Converts a weight in the other layout into `memory`; returns the weight the algorithms read.
const void* native_weight(const Conv2dParams& p, const void* weight, char* memory) {
  if (p.weight_channels_last == p.channels_last) return weight;
  with_dtype(p, [&](auto zero) {
    using T = decltype(zero);
    relayout_weight(p, p.weight_channels_last, static_cast<const T*>(weight), reinterpret_cast<T*>(memory));
  });
  return memory;
}

}  // namespace
}  // namespace conv

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  using namespace conv;
  const Conv2dParams q = with_native_weight(p);
  const Algorithm& a = *choose(q, Pass::forward, p.algorithm).algorithm;
  const int threads = get_num_threads();
  const size_t head = p.weight_channels_last != p.channels_last ? weight_bytes(p) : 0;
  char* memory = arena_memory(head + pass_bytes(a, q, Pass::forward, threads));
  forward_with(a, q, memory + head, threads, input, native_weight(p, weight, memory), bias, output);
}

void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias) {
  using namespace conv;
  const int threads = get_num_threads();
  const Conv2dParams q = with_native_weight(p);
  const bool relayout = p.weight_channels_last != p.channels_last;
  if (grad_bias)
    with_dtype(p, [&](auto zero) {
      using T = decltype(zero);
      conv::grad_bias(p, static_cast<const T*>(grad_output), static_cast<T*>(grad_bias));
    });
  if (grad_weight) {  // into the weight's layout: through the arena when it is not the native one
    const Algorithm& a = *choose(q, Pass::grad_weight, p.algorithm).algorithm;
    const size_t head = relayout ? weight_bytes(p) : 0;
    char* memory = arena_memory(head + pass_bytes(a, q, Pass::grad_weight, threads));
    void* dw = relayout ? memory : grad_weight;
    if (!a.grad_weight(q, Arena(memory + head, a.workspace(q, Pass::grad_weight, threads), threads),
                       grad_output, input, dw)) {
      const Algorithm& f = fallback(q, Pass::grad_weight);
      f.grad_weight(q, Arena(memory + head, f.workspace(q, Pass::grad_weight, threads), threads),
                    grad_output, input, dw);
    }
    if (relayout)
      with_dtype(p, [&](auto zero) {
        using T = decltype(zero);
        relayout_weight(p, p.channels_last, reinterpret_cast<const T*>(memory), static_cast<T*>(grad_weight));
      });
  }
  if (grad_input) {
    const Choice c = choose(q, Pass::grad_input, p.algorithm);
    const Algorithm& a = *c.algorithm;
    if (!c.flipped_forward) {
      const Workspace ws = a.workspace(q, Pass::grad_input, threads);
      const size_t head = relayout ? weight_bytes(p) : 0;
      char* memory = arena_memory(head + Arena::bytes(ws, threads));
      a.grad_input(q, Arena(memory + head, ws, threads), grad_output, native_weight(p, weight, memory),
                   grad_input);
      return;
    }
    // grad_input = conv(grad_output, flipped weight): the forward of the flipped problem, reading the
    // weight as it is where the algorithm can (in the head of the arena when it needs converting
    // into the native layout), else -- or when it declined -- a flipped copy there; then the
    // forward's arena.
    Conv2dParams flipped;
    flipped_problem(q, &flipped);
    const size_t head = weight_bytes(p);
    char* memory = arena_memory(head + pass_bytes(a, flipped, Pass::forward, threads));
    if (a.flipped_weight_forward &&
        a.flipped_weight_forward(flipped, Arena(memory + head, a.workspace(flipped, Pass::forward, threads), threads),
                                 grad_output, native_weight(p, weight, memory), nullptr, grad_input))
      return;
    with_dtype(p, [&](auto zero) {
      using T = decltype(zero);
      flip_weight(p, static_cast<const T*>(weight), reinterpret_cast<T*>(memory));
    });
    // One that declined would decline again on the copy: its fallback runs instead.
    const Algorithm& b = a.flipped_weight_forward ? fallback(flipped, Pass::forward) : a;
    forward_with(b, flipped, memory + head, threads, grad_output, memory, nullptr, grad_input);
  }
}

}  // namespace convforge::cpu
