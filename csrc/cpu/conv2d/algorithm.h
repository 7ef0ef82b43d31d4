// The CPU conv2d algorithm list: what an algorithm is, the scratch it declares, and the chooser.
//
// Each pass of a convolution (forward, grad_input, grad_weight) runs one algorithm of an ordered
// list (algorithms.cpp). An entry says which problems it can take (`applies`), the scratch it
// needs (`workspace`), and implements some of the passes. grad_input with stride 1 is itself a
// forward convolution of grad_output with the flipped weight: that pass goes back through the
// chooser and runs the forward of whichever algorithm it picks. Every heuristic lives in
// choose(); the algorithms only compute.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops.h"

namespace convforge::cpu::conv {

enum class Pass { forward, grad_input, grad_weight };
const char* pass_name(Pass pass);

// Scratch declared by an algorithm for one call, in bytes: one part for the whole call, and for
// every thread one part for the work item it runs and one for the operand packers called by the
// GEMM driver on that thread.
struct Workspace {
  size_t shared = 0, item = 0, packing = 0;
};

// One call's scratch, laid out from a Workspace: [shared][thread 0: item, packing][thread 1: ...].
// A thread's parts are found by its OpenMP thread number, so they serve both a loop over items
// run by a thread team and the packers of one threaded GEMM (never nested in one call).
class Arena {
 public:
  Arena(char* base, const Workspace& ws, int threads);
  static size_t bytes(const Workspace& ws, int threads);
  // Every part starts on a cache line.
  static size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }
  template <typename T>
  T* shared() const { return reinterpret_cast<T*>(base_); }
  template <typename T>
  T* item() const { return reinterpret_cast<T*>(thread_base()); }
  template <typename T>
  T* packing() const { return reinterpret_cast<T*>(thread_base() + ws_.item); }

 private:
  char* thread_base() const;
  char* base_;
  Workspace ws_;
  int threads_;
};

using ForwardFn = bool (*)(const Conv2dParams&, const Arena&, const void* x, const void* w,
                           const void* bias, void* y);
using GradInputFn = void (*)(const Conv2dParams&, const Arena&, const void* dy, const void* w, void* dx);
using GradWeightFn = bool (*)(const Conv2dParams&, const Arena&, const void* dy, const void* x, void* dw);

// A forward or grad_weight may decline at run time by returning false (Winograd on NaN/Inf data,
// whose transforms would spread them over a tile): the chooser's pick without it then runs.
struct Algorithm {
  const char* name;
  const char* requires;  // what `applies` checks, in words (error messages, docs)
  bool (*applies)(const Conv2dParams&, Pass);
  Workspace (*workspace)(const Conv2dParams&, Pass, int threads);
  ForwardFn forward;           // null: no forward
  GradInputFn grad_input;      // null: grad_input only as a flipped-weight forward
  GradWeightFn grad_weight;    // null: no grad_weight
  bool may_decline = false;    // its forward and grad_weight may return false
  // The forward of a flipped problem (flipped_problem()) reading the weight of the problem it was
  // flipped from, in that problem's layout, as it is (null: it reads a flipped copy). May decline
  // as the forward does.
  ForwardFn flipped_weight_forward = nullptr;
};

// The list, in the chooser's order of preference.
const Algorithm* const* algorithms(int* count);
const Algorithm* find_algorithm(const char* name);  // null when unknown

// What runs a pass: an algorithm, and for grad_input whether it runs as the forward of the
// flipped problem (flipped_problem() below).
struct Choice {
  const Algorithm* algorithm;
  bool flipped_forward = false;
};
// `forced`: null or "auto" lets the chooser decide (the CONVFORGE_CONV_ALGORITHM environment
// variable, read once, forces a name too); a name that does not apply raises ValueError.
Choice choose(const Conv2dParams& p, Pass pass, const char* forced);
// What runs a pass when the chosen algorithm declines: the chooser's pick without Winograd.
const Algorithm& fallback(const Conv2dParams& p, Pass pass);

// Whether the chooser's "auto" may pick Winograd (its numerics differ from direct summation).
bool winograd_enabled();
void set_winograd_enabled(bool enabled);

// grad_input = conv(grad_output, flip(w)^T) with padding dilation * (k - 1) - pad, when the stride
// is 1 and that padding is not negative. Returns false otherwise.
bool flipped_problem(const Conv2dParams& p, Conv2dParams* q);

}  // namespace convforge::cpu::conv
