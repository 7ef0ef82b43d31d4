// The ordered list of CPU conv2d algorithms and the chooser: the one place where a pass of a
// problem is matched to an algorithm.
#include <atomic>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"

namespace convforge::cpu::conv {

// The entries, each defined in the algorithm's own file.
#define CONVFORGE_DECLARE_ALGORITHM(name)                                                          \
  bool name##_applies(const Conv2dParams&, Pass);                                                  \
  Workspace name##_workspace(const Conv2dParams&, Pass, int);                                      \
  bool name##_forward(const Conv2dParams&, const Arena&, const void*, const void*, const void*, void*);
CONVFORGE_DECLARE_ALGORITHM(direct)
CONVFORGE_DECLARE_ALGORITHM(winograd_f4x3)
CONVFORGE_DECLARE_ALGORITHM(gemm_pointwise)
CONVFORGE_DECLARE_ALGORITHM(gemm_padded_planes)
CONVFORGE_DECLARE_ALGORITHM(gemm_im2col)
CONVFORGE_DECLARE_ALGORITHM(gemm_windows)
CONVFORGE_DECLARE_ALGORITHM(nhwc_direct)
CONVFORGE_DECLARE_ALGORITHM(nhwc_gemm_pointwise)
CONVFORGE_DECLARE_ALGORITHM(nhwc_gemm_im2col)
CONVFORGE_DECLARE_ALGORITHM(nhwc_gemm_windows)
#undef CONVFORGE_DECLARE_ALGORITHM
void direct_grad_input(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool direct_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
void gemm_im2col_grad_input(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool gemm_im2col_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool winograd_f4x3_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool winograd_f2x3_applies(const Conv2dParams&, Pass);
Workspace winograd_f2x3_workspace(const Conv2dParams&, Pass, int);
bool winograd_f2x3_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
void nhwc_direct_grad_input(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool nhwc_direct_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
void nhwc_gemm_im2col_grad_input(const Conv2dParams&, const Arena&, const void*, const void*, void*);
bool winograd_f4x3_flipped_weight_forward(const Conv2dParams&, const Arena&, const void*, const void*, const void*,
                                          void*);
bool nhwc_gemm_pointwise_flipped_weight_forward(const Conv2dParams&, const Arena&, const void*, const void*,
                                                const void*, void*);
bool nhwc_gemm_im2col_flipped_weight_forward(const Conv2dParams&, const Arena&, const void*, const void*,
                                             const void*, void*);
bool nhwc_gemm_im2col_grad_weight(const Conv2dParams&, const Arena&, const void*, const void*, void*);
int64_t padded_plane_width(const Conv2dParams& p);

namespace {

const Algorithm kDirect{"direct", "NCHW arrays; any problem forward; one input channel per group for the gradients",
                        direct_applies, direct_workspace, direct_forward, direct_grad_input,
                        direct_grad_weight};
const Algorithm kWinograd{"winograd_f4x3", "float32, a 3x3 kernel, stride 1 and dilation 1",
                          winograd_f4x3_applies, winograd_f4x3_workspace, winograd_f4x3_forward,
                          nullptr, winograd_f4x3_grad_weight, true, winograd_f4x3_flipped_weight_forward};
const Algorithm kWinogradF2{"winograd_f2x3",
                            "NHWC float32 arrays, a 3x3 kernel, stride 1 and dilation 1 (grad_weight)",
                            winograd_f2x3_applies, winograd_f2x3_workspace, nullptr, nullptr,
                            winograd_f2x3_grad_weight, true};
const Algorithm kPointwise{"gemm_pointwise", "NCHW arrays, a 1x1 kernel, stride 1 and no padding",
                           gemm_pointwise_applies, gemm_pointwise_workspace, gemm_pointwise_forward,
                           nullptr, nullptr};
const Algorithm kPaddedPlanes{"gemm_padded_planes", "NCHW arrays (forward, and grad_input at stride 1)",
                              gemm_padded_planes_applies, gemm_padded_planes_workspace,
                              gemm_padded_planes_forward, nullptr, nullptr};
const Algorithm kIm2col{"gemm_im2col", "NCHW arrays (every pass)", gemm_im2col_applies,
                        gemm_im2col_workspace, gemm_im2col_forward, gemm_im2col_grad_input,
                        gemm_im2col_grad_weight};
const Algorithm kWindows{"gemm_windows", "NCHW arrays (forward)", gemm_windows_applies, gemm_windows_workspace,
                         gemm_windows_forward, nullptr, nullptr};
const Algorithm kNhwcDirect{"nhwc_direct", "NHWC arrays with one input channel per group (every pass)",
                            nhwc_direct_applies, nhwc_direct_workspace, nhwc_direct_forward,
                            nhwc_direct_grad_input, nhwc_direct_grad_weight};
const Algorithm kNhwcPointwise{"nhwc_gemm_pointwise", "NHWC arrays, a 1x1 kernel, stride 1 and no padding",
                               nhwc_gemm_pointwise_applies, nhwc_gemm_pointwise_workspace,
                               nhwc_gemm_pointwise_forward, nullptr, nullptr, false,
                               nhwc_gemm_pointwise_flipped_weight_forward};
const Algorithm kNhwcIm2col{"nhwc_gemm_im2col", "NHWC arrays (every pass)", nhwc_gemm_im2col_applies,
                            nhwc_gemm_im2col_workspace, nhwc_gemm_im2col_forward,
                            nhwc_gemm_im2col_grad_input, nhwc_gemm_im2col_grad_weight, false,
                            nhwc_gemm_im2col_flipped_weight_forward};
const Algorithm kNhwcWindows{"nhwc_gemm_windows", "NHWC arrays (forward)", nhwc_gemm_windows_applies,
                             nhwc_gemm_windows_workspace, nhwc_gemm_windows_forward, nullptr, nullptr};

const Algorithm* const kList[] = {&kDirect, &kWinograd, &kWinogradF2, &kPointwise, &kWindows,
                                  &kPaddedPlanes, &kIm2col, &kNhwcDirect, &kNhwcPointwise,
                                  &kNhwcWindows, &kNhwcIm2col};
constexpr int kCount = sizeof(kList) / sizeof(kList[0]);

std::atomic<bool> g_winograd{[] {
  const char* env = std::getenv("CONVFORGE_WINOGRAD");
  return !(env && std::strcmp(env, "0") == 0);
}()};

// CONVFORGE_CONV_ALGORITHM, read once; null when unset, empty or "auto".
const char* environment_override() {
  static const std::string name = [] {
    const char* env = std::getenv("CONVFORGE_CONV_ALGORITHM");
    return std::string(env ? env : "");
  }();
  return name.empty() || name == "auto" ? nullptr : name.c_str();
}

bool has_pass(const Algorithm& a, const Conv2dParams& p, Pass pass) {
  const bool implemented = pass == Pass::forward      ? a.forward != nullptr
                           : pass == Pass::grad_input ? a.grad_input != nullptr
                                                      : a.grad_weight != nullptr;
  return implemented && a.applies(p, pass);
}

// ---------------------------------------------------------------------------------------------
// The heuristics.

// One input or one output channel per group: a GEMM would have a single step of depth per tap or
// a single row, while the direct loops stream the planes once.
bool prefers_direct(const Conv2dParams& p) { return p.c_in == p.groups || p.c_out == p.groups; }

// Winograd's transforms cost about as much per channel as 16-32 multiply-adds per output pixel,
// so the channel counts must carry them. Its float32 error is at most 4x that of direct summation
// on the vector paths (1.6-3.1x measured); the portable scalar path's direct sums are more
// accurate (up to 4.5x measured), so "auto" keeps to direct summation there.
// Images under 6x6 outputs waste most of their tiles.
bool prefers_winograd(const Conv2dParams& p) {
  constexpr int64_t kMinChannels = 16, kMinPixels = 6 * 6;
  return g_winograd.load(std::memory_order_relaxed) && active_isa() != Isa::scalar &&
         p.c_in / p.groups >= kMinChannels && p.c_out / p.groups >= kMinChannels &&
         p.out_h * p.out_w >= kMinPixels;
}

// The padded planes compute (wq - out_w) extra columns per row; gathering im2col panels instead
// costs a few dozen cycles per output-row piece of a panel. Rough cycles per output column and B
// row: extra work (wq - out_w) / out_w * cog / 16 FMAs against the gather's (32 / out_w + 1) * 0.8.
// Small channel counts favour the padded planes, narrow images with many channels (e.g. 14 x 14 x
// 512) the gather.
bool prefers_padded_planes(const Conv2dParams& p) {
  const double wq = double(padded_plane_width(p)), ow = double(p.out_w);
  return (wq - ow) / ow * (p.c_out / p.groups) / 16.0 < (32.0 / ow + 1.0) * 0.8;
}

// The windows algorithms run the whole depth k = cig * kh * kw per microkernel call, so a packed
// weight panel (k x NR) is read from L2 on every call: up to 256 channels of a 3x3 kernel (k =
// 2304) they beat packing im2col panels (NHWC 1.0-1.7x), at 512 (k = 4608) the panel crowds L2
// (0.9x). On NCHW arrays gemm_windows also transposes the input rows it reads and the output rows
// it writes, which 64 multiply-adds per output value pay back (over gemm_padded_planes and
// gemm_im2col: 1.0-1.75x at k = 144-2304; at k = 27, 3 -> 32 channels: 0.8x).
bool prefers_windows(const Conv2dParams& p) {
  constexpr int64_t kMaxDepth = 3072, kMinDepthNchw = 64;
  const int64_t depth = p.c_in / p.groups * p.kh * p.kw;
  return depth <= kMaxDepth && (p.channels_last || depth >= kMinDepthNchw);
}

// grad_input as the flipped-weight forward: with few input channels that forward has only
// c_in / groups rows (NCHW; columns on NHWC) to spread the packing of its im2col operand over,
// and dcol = W^T * dY (dY reused by every tap) plus col2im is faster (LeNet's second layer: 1.3x
// NCHW, 5x NHWC).
bool prefers_flipped_forward(const Conv2dParams& p) {
  constexpr int64_t kMinInputChannels = 16;
  return p.c_in == p.groups || p.c_in / p.groups >= kMinInputChannels;
}

// Winograd's forward transforms the whole weight once per call (36 values per channel pair, about
// as much time as 20 tiles save): the tiles of all images must pay that back. At 512 channels on
// 7x7 images, NHWC, over nhwc_gemm_im2col: 4 to 16 tiles 0.35-0.9x, 32 tiles 1.15-1.35x. NCHW
// blocks of so few tiles transform a channel at a time over mostly empty panels: 32 tiles ran
// 0.8-0.9x of gemm_im2col there.
bool winograd_forward_pays(const Conv2dParams& p) {
  const int64_t kMinTiles = p.channels_last ? 32 : 64;
  return p.n * ((p.out_h + 3) / 4) * ((p.out_w + 3) / 4) >= kMinTiles;
}

const Algorithm& auto_forward(const Conv2dParams& p, bool allow_winograd = true) {
  allow_winograd = allow_winograd && winograd_f4x3_applies(p, Pass::forward) && prefers_winograd(p) &&
                   winograd_forward_pays(p);
  if (p.channels_last) {
    // One input channel per group (depthwise, 1x1 kernels included) as for NCHW: a GEMM would
    // have a single step of depth per tap.
    if (nhwc_direct_applies(p, Pass::forward)) return kNhwcDirect;
    if (allow_winograd) return kWinograd;
    // Reading the windows in place beats packing im2col panels from them (most with few channels,
    // whose packing is a large share of the work), and a plain GEMM where a 1x1 layer narrows the
    // channels (1.3-1.5x at 256 -> 64); where it widens them the plain GEMM is faster (1.1x at
    // 64 -> 256).
    if (nhwc_gemm_pointwise_applies(p, Pass::forward) && p.c_out > p.c_in) return kNhwcPointwise;
    return prefers_windows(p) ? kNhwcWindows : kNhwcIm2col;
  }
  if (prefers_direct(p)) return kDirect;
  if (allow_winograd) return kWinograd;
  if (gemm_pointwise_applies(p, Pass::forward)) return kPointwise;
  if (prefers_windows(p)) return kWindows;
  if (prefers_padded_planes(p)) return kPaddedPlanes;
  return kIm2col;
}

// Winograd F(4x4, 3x3)'s weight gradient transforms both the input and grad_output, and its
// products run in double (for accuracy: winograd_f4x3.cpp), so it needs many channels and tiles:
// over the im2col GEMMs, 1.2-1.3x at 128 channels on 28x28 outputs, 1.55-1.6x at 256 on 56x56;
// parity at 64 channels or 256 on 14x14, 0.75-0.9x at 32 channels or 512 on 7x7.
bool prefers_winograd_grad_weight(const Conv2dParams& p) {
  constexpr int64_t kMinChannels = 128, kMinPixels = 28 * 28;
  return prefers_winograd(p) && p.c_in / p.groups >= kMinChannels && p.c_out / p.groups >= kMinChannels &&
         p.out_h * p.out_w >= kMinPixels;
}

// F(2x2, 3x3)'s weight gradient (NHWC, float32) moves 16 transformed values per tile and channel
// through L2 for its 2.25x fewer multiplications, so the channels must carry that traffic: over
// nhwc_gemm_im2col, 1 thread / 2 threads, 1.3x / 1.15x at 32 x 32 channels, 1.2x / 1.1x at 32 x 64,
// 1.2-1.5x at 64 x 64, 1.5-1.8x at 128-512 (1.15x on 7x7); parity or worse with 16 channels on
// either side. Faster than F(4x4, 3x3) in double on every NHWC layer measured.
bool prefers_winograd_f2x3_grad_weight(const Conv2dParams& p) {
  constexpr int64_t kMinChannels = 32;
  return prefers_winograd(p) && p.c_in / p.groups >= kMinChannels && p.c_out / p.groups >= kMinChannels;
}

const Algorithm& auto_grad_weight(const Conv2dParams& p, bool allow_winograd = true) {
  if (p.c_in == p.groups) return p.channels_last ? kNhwcDirect : kDirect;
  if (allow_winograd && winograd_f2x3_applies(p, Pass::grad_weight) && prefers_winograd_f2x3_grad_weight(p))
    return kWinogradF2;
  if (allow_winograd && winograd_f4x3_applies(p, Pass::grad_weight) && prefers_winograd_grad_weight(p))
    return kWinograd;
  return p.channels_last ? kNhwcIm2col : kIm2col;
}

}  // namespace

const char* pass_name(Pass pass) {
  return pass == Pass::forward ? "forward" : pass == Pass::grad_input ? "grad_input" : "grad_weight";
}

const Algorithm* const* algorithms(int* count) {
  *count = kCount;
  return kList;
}

const Algorithm* find_algorithm(const char* name) {
  for (const Algorithm* a : kList)
    if (std::strcmp(a->name, name) == 0) return a;
  return nullptr;
}

bool winograd_enabled() { return g_winograd.load(); }
void set_winograd_enabled(bool enabled) { g_winograd.store(enabled); }

bool flipped_problem(const Conv2dParams& p, Conv2dParams* q) {
  const int64_t pad_h = p.dilation_h * (p.kh - 1) - p.pad_h, pad_w = p.dilation_w * (p.kw - 1) - p.pad_w;
  if (p.stride_h != 1 || p.stride_w != 1 || pad_h < 0 || pad_w < 0) return false;
  *q = p;
  q->c_in = p.c_out, q->c_out = p.c_in;
  q->h = p.out_h, q->w = p.out_w, q->out_h = p.h, q->out_w = p.w;
  q->pad_h = pad_h, q->pad_w = pad_w;
  return true;
}

Choice choose(const Conv2dParams& p, Pass pass, const char* forced) {
  if (!forced || std::strcmp(forced, "auto") == 0) forced = environment_override();
  Conv2dParams q;
  const bool flippable = pass == Pass::grad_input && flipped_problem(p, &q);
  if (forced) {
    const Algorithm* a = find_algorithm(forced);
    if (!a) {
      std::string names;
      for (const Algorithm* b : kList) names += std::string(names.empty() ? "" : ", ") + b->name;
      CHECK(false, "algorithm: expected 'auto' or one of ", names, ", got '", forced, "'");
    }
    if (has_pass(*a, p, pass)) return {a};
    if (flippable && has_pass(*a, q, Pass::forward)) return {a, true};
    CHECK(false, "algorithm: '", a->name, "' does not apply to the ", pass_name(pass),
          " pass of this convolution (it needs: ", a->requires, ")");
  }
  switch (pass) {
    case Pass::forward: return {&auto_forward(p)};
    case Pass::grad_input:
      // NHWC with one input channel per group: with multiplier 1 the flipped problem is depthwise
      // again (nhwc_direct's forward, the same loops); with more, it would have one output channel
      // per group, a GEMM of one column, so nhwc_direct gathers grad_input itself.
      if (p.channels_last && p.c_in == p.groups && !(flippable && p.c_out == p.groups))
        return {&kNhwcDirect};
      if (flippable && prefers_flipped_forward(p)) return {&auto_forward(q), true};
      if (p.channels_last) return {&kNhwcIm2col};
      return {p.c_in == p.groups ? &kDirect : &kIm2col};
    case Pass::grad_weight: return {&auto_grad_weight(p)};
  }
  return {&kIm2col};
}

const Algorithm& fallback(const Conv2dParams& p, Pass pass) {
  return pass == Pass::forward ? auto_forward(p, false) : auto_grad_weight(p, false);
}

// ---------------------------------------------------------------------------------------------
// The arena.

namespace {
int thread_number() {
#if defined(CONVFORGE_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
}  // namespace

Arena::Arena(char* base, const Workspace& ws, int threads)
    : base_(base), ws_{aligned(ws.shared), aligned(ws.item), aligned(ws.packing)}, threads_(threads) {}

size_t Arena::bytes(const Workspace& ws, int threads) {
  return aligned(ws.shared) + size_t(threads) * (aligned(ws.item) + aligned(ws.packing));
}

char* Arena::thread_base() const {
  const int t = thread_number();
  assert(t < threads_);
  return base_ + ws_.shared + size_t(t) * (ws_.item + ws_.packing);
}

}  // namespace convforge::cpu::conv

namespace convforge {

int conv2d_cpu_algorithm_count() { return cpu::conv::kCount; }
const char* conv2d_cpu_algorithm_name(int index) { return cpu::conv::kList[index]->name; }
const char* conv2d_cpu_algorithm_requires(int index) { return cpu::conv::kList[index]->requires; }
const char* conv2d_cpu_chosen_algorithm(const Conv2dParams& p, int pass) {
  return cpu::conv::choose(p, static_cast<cpu::conv::Pass>(pass), p.algorithm).algorithm->name;
}
bool conv2d_winograd_enabled() { return cpu::conv::winograd_enabled(); }
void set_conv2d_winograd_enabled(bool enabled) { cpu::conv::set_winograd_enabled(enabled); }

}  // namespace convforge
