// winograd_f4x3: Winograd F(4x4, 3x3) (winograd_f4x3.h) for 3x3 convolutions with stride 1 and
// dilation 1, float32: forward (and so grad_input, as the flipped-weight forward) and, at the
// bottom of this file, grad_weight as the forward's adjoint.
//
// The output is cut into 4x4 tiles, numbered along rows over all images. Per block of tiles
// (a few GEMM panels wide), for each group:
//   1. the input transform writes V = B^T d B of every channel straight into the GEMM's packed B
//      panels: 36 matrices of cig x tiles;
//   2. 36 products M_e (cog x tiles) = U_e (cog x cig) * V_e run on the GEMM microkernel, with
//      U = G g G^T transformed once per call into packed A panels;
//   3. the output transform Y = A^T M A (+ bias) writes the block's tiles into the output.
// V and M of a block stay in cache; no transformed tensor of the whole input exists. Blocks are
// independent and each output is computed by one thread in a fixed order: the bits do not depend
// on the thread count. NaN or Inf in the input or weight would spread over whole tiles through
// the transforms, so the algorithm then declines and the chooser's pick without it runs.
#include <algorithm>
#include <atomic>

#include "core/cache.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/conv2d/winograd_f4x3.h"
#include "cpu/gemm.h"
#include "cpu/isa_table.h"

namespace convforge::cpu::conv {
namespace {

using namespace winograd;

const Transforms& transforms() { return isa_kernels().winograd_f4x3; }

// A channel's plane of an h x w array of `channels` channels in the problem's layout, and how far
// apart two channels' planes start.
Plane plane(const Conv2dParams& p, int64_t h, int64_t w, int64_t channels) {
  return p.channels_last ? Plane{h, w, h * w * channels, w * channels, channels}
                         : Plane{h, w, channels * h * w, w, 1};
}
int64_t channel_stride(const Conv2dParams& p, const Plane& plane) {
  return p.channels_last ? 1 : plane.h * plane.w;
}
// The weight's taps (OIHW, or OHWI on NHWC problems: the layout the entry point hands over).
Taps weight_taps(const Conv2dParams& p) {
  return p.channels_last ? Taps{1, p.c_in / p.groups} : Taps{9, 1};
}

// Where the forward reads weight element (co, ci, tap) of group grp: w + grp * group_stride +
// co * co_stride + ci * ci_stride + tap * tap_stride.
struct WeightView {
  const float* w;
  int64_t group_stride, co_stride, ci_stride, tap_stride;
};
WeightView own_weight(const Conv2dParams& p, const float* w) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  const Taps taps = weight_taps(p);
  return {w, cog * cig * 9, cig * 9, taps.pair_stride, taps.tap_stride};
}
// The weight of a flipped problem p (flipped_problem()) read from the weight w of the problem it
// was flipped from, in the same layout: p's element (co, ci, tap) is w's (ci, co, 8 - tap).
WeightView flipped_weight(const Conv2dParams& p, const float* w) {
  Conv2dParams original = p;
  original.c_in = p.c_out, original.c_out = p.c_in;
  const WeightView o = own_weight(original, w);
  return {w + 8 * o.tap_stride, o.group_stride, o.ci_stride, o.co_stride, -o.tap_stride};
}

struct Plan {
  int64_t cig, cog, tiles_h, tiles_w, tiles;  // tiles: of all images
  int64_t mr, nr;                              // microkernel tile
  int64_t up, kp;  // U's panel width (mr: A panels on NCHW; nr: B panels on NHWC), cog rounded up to it
  int64_t block, blocks;                       // tiles per block (a multiple of nr)
  int64_t co_parts;  // the forward splits each block's output channels in this many parts (of whole panels)
  int64_t kc;                                  // depth of one microkernel call
  // Scratch in floats: U of one group (shared by the threads); per thread V, M, the block's tile
  // runs (at most one per tile) and the transforms' scratch.
  int64_t u_floats() const { return kTaps * kp * cig; }
  int64_t v_floats() const { return kTaps * cig * block; }
  int64_t m_floats() const { return kTaps * cog * block; }
  int64_t run_floats() const { return int64_t(sizeof(TileRun) / sizeof(float)) * (block + 1); }
  int64_t transform_floats() const {
    const Block b{nullptr, 0, block, block / nr, nr, tiles_w};
    return std::max({input_scratch_floats(b), output_scratch_floats(b), grad_output_scratch_floats(b)});
  }
  int64_t item_floats() const { return v_floats() + m_floats() + run_floats() + transform_floats(); }
};

Plan plan(const Conv2dParams& p, int threads) {
  const GemmKernel<float> kern = gemm_kernel<float>();
  Plan s;
  s.cig = p.c_in / p.groups, s.cog = p.c_out / p.groups;
  s.tiles_h = (p.out_h + kOut - 1) / kOut, s.tiles_w = (p.out_w + kOut - 1) / kOut;
  s.tiles = p.n * s.tiles_h * s.tiles_w;
  s.mr = kern.mr, s.nr = kern.nr;
  s.up = p.channels_last ? kern.nr : kern.mr, s.kp = detail::round_up(s.cog, s.up);
  // V and M of a block in about half of L2 (a 2 MiB block, in L3, ran 1.1-1.25x slower at 2
  // threads), or as large as U (read once per block) when that is larger; 2 to 16 panels wide, and
  // at least one block per thread when there are tiles enough.
  const int64_t block_bytes = host_caches().l2 / 2;
  const int64_t per_tile = kTaps * (s.cig + s.cog) * int64_t(sizeof(float));
  const int64_t u_bytes = s.u_floats() * int64_t(sizeof(float));
  int64_t panels = std::clamp<int64_t>(std::max(block_bytes, u_bytes) / per_tile / s.nr, 2, 16);
  const int64_t all_panels = (s.tiles + s.nr - 1) / s.nr;
  panels = std::max<int64_t>(1, std::min(panels, all_panels / std::max(threads, 1)));
  s.block = panels * s.nr;
  s.blocks = (s.tiles + s.block - 1) / s.block;
  // Fewer blocks than threads (small images, few of them): the threads also share a block's output
  // channels, each transforming the block's input for its own part.
  const int64_t items = p.groups * s.blocks, co_panels = s.kp / s.up;
  s.co_parts = items >= threads ? 1 : std::min((threads + items - 1) / items, co_panels);
  // Sums over at most 32 input channels per microkernel call, added in order: fp32 sums of the
  // transformed values are long and large, and this blocking keeps their rounding error near the
  // direct path's (2.7x instead of 7.5x at 256 channels).
  constexpr int64_t kMaxDepth = 32;
  const int64_t kblocks = (s.cig + kMaxDepth - 1) / kMaxDepth;
  s.kc = (s.cig + kblocks - 1) / kblocks;
  return s;
}

// U_e of group grp as packed A panels, U[e][panel][ci][mr] (NCHW), or U_e^T as packed B panels,
// U[e][panel][ci][nr] (NHWC); output channels past cog zero. A panel at a time, one input channel
// at a time with the panel's rows as the vector lanes, so that each of the 36 values goes out as
// one contiguous run of the panel's width. Rows that do not lie side by side in the weight (all
// but grad_input's flipped NHWC view) are first gathered, a few input channels at a time, into a
// small buffer where they do: read in place, each would be a load from its own cache line.
void transform_weights(const Conv2dParams& p, const Plan& s, const Transforms& tf, const WeightView& wv, float* u,
                       std::atomic<bool>& finite) {
  constexpr int64_t kGatherChannels = 16, kMaxWidth = 32;
  static_assert(tiles::sgemm_avx512.mr <= kMaxWidth && tiles::sgemm_avx512.nr <= kMaxWidth &&
                    tiles::sgemm_avx2.nr <= kMaxWidth && tiles::sgemm_scalar.nr <= kMaxWidth,
                "a float32 panel's width (U's panel rows) must fit the gather buffer");
  const bool gather = wv.co_stride != 1;
  const int64_t panels = p.groups * (s.kp / s.up);
  parallel_for(panels, threads_for(double(panels) * s.up * s.cig * 200, 1 << 18), [&](int64_t q0, int64_t q1) {
    float rows_side_by_side[kGatherChannels * 9 * kMaxWidth];  // [ci][tap][row]
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t grp = q / (s.kp / s.up), co0 = q % (s.kp / s.up) * s.up, rows = std::min(s.up, s.cog - co0);
      float* panel = u + grp * s.u_floats() + co0 * s.cig;
      const float* g = wv.w + grp * wv.group_stride + co0 * wv.co_stride;
      for (int64_t c0 = 0; c0 < s.cig; c0 += kGatherChannels) {
        const int64_t channels = std::min(kGatherChannels, s.cig - c0);
        const float* src = g + c0 * wv.ci_stride;
        int64_t channel_stride = wv.ci_stride, tap_stride = wv.tap_stride;
        if (gather) {
          // The next channels' lines of the same rows and taps, a block ahead: 9 * rows lines from
          // far apart that the hardware prefetchers would not follow.
          if (c0 + kGatherChannels < s.cig)
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t t = 0; t < 9; ++t)
                __builtin_prefetch(src + r * wv.co_stride + kGatherChannels * wv.ci_stride + t * wv.tap_stride);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t t = 0; t < 9; ++t)
              for (int64_t c = 0; c < channels; ++c)
                rows_side_by_side[(c * 9 + t) * s.up + r] =
                    src[r * wv.co_stride + c * wv.ci_stride + t * wv.tap_stride];
          src = rows_side_by_side, channel_stride = 9 * s.up, tap_stride = s.up;
        }
        for (int64_t c = 0; c < channels; ++c) {
          const int64_t ci = c0 + c;
          if (!tf.weight(src + c * channel_stride, tap_stride, rows, panel + ci * s.up, s.kp * s.cig))
            finite.store(false, std::memory_order_relaxed);
          for (int64_t e = 0; e < kTaps; ++e)
            for (int64_t r = rows; r < s.up; ++r) panel[e * s.kp * s.cig + ci * s.up + r] = 0.0f;
        }
      }
    }
  });
}

// The block's tiles [t0, t1) as runs along tile rows.
Block block_runs(const Plan& s, int64_t block, TileRun* runs) {
  const int64_t t0 = block * s.block, t1 = std::min(s.tiles, t0 + s.block);
  int64_t count = 0;
  for (int64_t t = t0; t < t1; ++count) {
    const int64_t row = t / s.tiles_w, tw0 = t % s.tiles_w, tw1 = std::min(s.tiles_w, tw0 + (t1 - t));
    runs[count] = {row / s.tiles_h, row % s.tiles_h, tw0, tw1, t - t0};
    t += tw1 - tw0;
  }
  return {runs, count, t1 - t0, (t1 - t0 + s.nr - 1) / s.nr, s.nr, s.tiles_w};
}

// The output channels [begin, end) of a group that one call computes.
struct Channels {
  int64_t begin, end;
};

// Returns false when the input holds NaN or Inf.
bool run_block(const Conv2dParams& p, const Plan& s, const Transforms& tf, const GemmKernel<float>& kern,
               const float* x, const float* u, const float* bias, float* y, int64_t grp, const Block& b,
               const Channels& cos, float* v, float* m, float* scratch) {
  // 1. Input transform, into the packed B panels: V[e][panel][ci][nr].
  const Plane in = plane(p, p.h, p.w, p.c_in);
  float sum = 0.0f;
  for (int64_t ci = 0; ci < s.cig; ++ci)
    sum += tf.input(x + (grp * s.cig + ci) * channel_stride(p, in), in, p.pad_h, p.pad_w, b, v + ci * s.nr,
                    s.cig * s.block, s.cig * s.nr, scratch);
  if (!(sum - sum == 0.0f)) return false;
  // 2. The 36 products M_e = U_e V_e. A B panel (all channels) stays in L1/L2 across the A panels,
  // and a C tile in L1 across the depth blocks.
  const float* ug = u + grp * s.u_floats();
  for (int64_t e = 0; e < kTaps; ++e)
    for (int64_t pj = 0; pj < b.panels; ++pj) {
      const float* panel = v + e * s.cig * s.block + pj * s.cig * s.nr;
      for (int64_t i = cos.begin; i < cos.end; i += s.mr) {
        const float* a = ug + e * s.kp * s.cig + i * s.cig;
        float* c = m + (e * s.cog + i) * s.block + pj * s.nr;
        for (int64_t c0 = 0; c0 < s.cig; c0 += s.kc)
          kern.ukernel(std::min(s.kc, s.cig - c0), a + c0 * s.mr, s.mr, panel + c0 * s.nr, s.nr, c, s.block,
                       std::min(s.mr, s.cog - i), s.nr, 1.0f, c0 == 0 ? 0.0f : 1.0f);
      }
    }
  // 3. Output transform (+ bias).
  const Plane out = plane(p, p.out_h, p.out_w, p.c_out);
  for (int64_t co = cos.begin; co < cos.end; ++co) {
    const int64_t c = grp * s.cog + co;
    tf.output(m + co * s.block, s.cog * s.block, b, bias ? bias[c] : 0.0f, y + c * channel_stride(p, out), out,
              scratch);
  }
  return true;
}

// NHWC: the transforms run one tile at a time along the channels, and the products are transposed,
// M_e^T (tiles x cog) = V_e^T (tiles x cig) * U_e^T, on the window microkernel: the rows of V_e^T
// (a tile's channels, contiguous) are read where the input transform wrote them. Returns false
// when the input holds NaN or Inf.
bool run_block_nhwc(const Conv2dParams& p, const Plan& s, const Transforms& tf, const GemmKernel<float>& kern,
                    const float* x, const float* u, const float* bias, float* y, int64_t grp, const Block& b,
                    const Channels& cos, float* v, float* m) {
  const Plane in = plane(p, p.h, p.w, p.c_in), out = plane(p, p.out_h, p.out_w, p.c_out);
  // 1. Input transform: V[e][tile][ci].
  float sum = 0.0f;
  for (int64_t r = 0; r < b.count; ++r) {
    const TileRun& run = b.runs[r];
    const float* image = x + run.n * in.image_stride + grp * s.cig;
    for (int64_t tw = run.tw0; tw < run.tw1; ++tw)
      sum += tf.input_tile(image, in, kOut * run.th - p.pad_h, kOut * tw - p.pad_w, s.cig,
                           v + (run.t + tw - run.tw0) * s.cig, s.block * s.cig);
  }
  if (!(sum - sum == 0.0f)) return false;
  // 2. The 36 products, at most kc input channels per microkernel call (see plan()). While U_e^T
  // fits in a quarter of L2 it streams from there under a row of tiles kept in L1; a larger one
  // is taken a panel at a time, under all the block's tiles.
  constexpr int64_t kOneRun = 0;
  constexpr int64_t kStreamedU = int64_t{256} << 10;
  const bool tiles_outer = s.kp * s.cig * int64_t(sizeof(float)) <= kStreamedU;
  const float* ug = u + grp * s.u_floats();
  const auto product = [&](int64_t e, int64_t i, int64_t j) {
    const float* panel = ug + e * s.kp * s.cig + j * s.cig;
    for (int64_t c0 = 0; c0 < s.cig; c0 += s.kc)
      kern.window_ukernel(v + (e * s.block + i) * s.cig + c0, s.cig, &kOneRun, 1, std::min(s.kc, s.cig - c0),
                          panel + c0 * s.nr, nullptr, c0 == 0 ? 0.0f : 1.0f, m + (e * s.block + i) * s.cog + j,
                          s.cog, std::min(s.mr, b.tiles - i), std::min(s.nr, s.cog - j));
  };
  for (int64_t e = 0; e < kTaps; ++e)
    if (tiles_outer) {
      for (int64_t i = 0; i < b.tiles; i += s.mr)
        for (int64_t j = cos.begin; j < cos.end; j += s.nr) product(e, i, j);
    } else {
      for (int64_t j = cos.begin; j < cos.end; j += s.nr)
        for (int64_t i = 0; i < b.tiles; i += s.mr) product(e, i, j);
    }
  // 3. Output transform (+ bias).
  for (int64_t r = 0; r < b.count; ++r) {
    const TileRun& run = b.runs[r];
    float* image = y + run.n * out.image_stride + grp * s.cog + cos.begin;
    for (int64_t tw = run.tw0; tw < run.tw1; ++tw)
      tf.output_tile(m + (run.t + tw - run.tw0) * s.cog + cos.begin, s.block * s.cog, cos.end - cos.begin,
                     bias ? bias + grp * s.cog + cos.begin : nullptr, image, out, kOut * run.th, kOut * tw);
  }
  return true;
}

// NHWC, for the weight gradient: V[e][tile][ci] and Z[e][tile][co] of a block's tiles, a tile at a
// time along the channels (rows ld tiles apart per e). Returns the sum of the values read.
float transform_block_nhwc(const Conv2dParams& p, const Plan& s, const Transforms& tf, const float* x,
                           const float* dy, int64_t grp, const Block& b, float* v, float* z, int64_t ld) {
  const Plane in = plane(p, p.h, p.w, p.c_in), out = plane(p, p.out_h, p.out_w, p.c_out);
  float sum = 0.0f;
  for (int64_t r = 0; r < b.count; ++r) {
    const TileRun& run = b.runs[r];
    const float* image = x + run.n * in.image_stride + grp * s.cig;
    const float* grad = dy + run.n * out.image_stride + grp * s.cog;
    for (int64_t tw = run.tw0; tw < run.tw1; ++tw) {
      const int64_t t = run.t + tw - run.tw0;
      sum += tf.input_tile(image, in, kOut * run.th - p.pad_h, kOut * tw - p.pad_w, s.cig, v + t * s.cig,
                           ld * s.cig);
      sum += tf.grad_output_tile(grad, out, kOut * run.th, kOut * tw, s.cog, z + t * s.cog, ld * s.cog);
    }
  }
  return sum;
}

// The weight gradient transforms the tiles of a chunk of whole blocks at a time, V and Z of the
// chunk in about 32 MiB, and accumulates over the chunks in order.
int64_t chunk_blocks(const Plan& s) {
  constexpr int64_t kChunkBytes = int64_t{32} << 20;
  const int64_t per_block = kTaps * (s.cig + s.cog) * s.block * int64_t(sizeof(float));
  return std::clamp<int64_t>(kChunkBytes / per_block, 1, s.blocks);
}

// The weight gradient's products run in double on the float32 transforms, widened as they are
// packed: the products of transformed values are large next to the gradient they cancel down to,
// and float32 sums over the tiles erred 3.6-6.1x as much as direct summation (in double: 0.35-1.4x).
// Element (i, p) of a panel source at s[p * depth_stride + i * stride].
struct WidenedPanels {
  const float* s;
  int64_t depth_stride, stride;
  void pack(int64_t i0, int64_t count, int64_t k0, int64_t kc, int64_t width, double* dst) const {
    const float* base = s + i0 * stride + k0 * depth_stride;
    for (int64_t j0 = 0; j0 < count; j0 += width, dst += width * kc) {
      const int64_t w = std::min(width, count - j0);
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = base + p * depth_stride + j0 * stride;
        double* d = dst + p * width;
        if (stride == 1)  // NHWC: the panel's rows are contiguous
          for (int64_t j = 0; j < w; ++j) d[j] = src[j];
        else
          for (int64_t j = 0; j < w; ++j) d[j] = src[j * stride];
        for (int64_t j = w; j < width; ++j) d[j] = 0.0;
      }
    }
  }
};
struct WidenedPackA : WidenedPanels {  // rows i, depth p
  void operator()(int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, double* dst) const {
    pack(i0, mc, k0, kc, mr, dst);
  }
};
struct WidenedPackB : WidenedPanels {  // depth p, columns j
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, double* dst) const {
    pack(j0, nc, k0, kc, nr, dst);
  }
};

// The grad_weight plan: one thread's blocks, so that the sums' order (the chunks) does not depend
// on the thread count.
Plan grad_weight_plan(const Conv2dParams& p) { return plan(p, 1); }

}  // namespace

// dW = G^T [ sum over tiles of (A dY A^T) . (B^T d B) ] G: the adjoint of the forward. Per chunk
// of tiles, the transforms write V_e (cig x tiles) and Z_e (cog x tiles; tiles x channels on NHWC);
// then 36 products dU_e (+)= Z_e V_e^T in double with the tiles as their depth, one per thread at a
// time; G^T dU G in double too.
bool winograd_f4x3_grad_weight(const Conv2dParams& p, const Arena& arena, const void* dy_, const void* x_,
                               void* dw_) {
  const auto* dy = static_cast<const float*>(dy_);
  const auto* x = static_cast<const float*>(x_);
  auto* dw = static_cast<float*>(dw_);
  const Plan s = grad_weight_plan(p);
  const Transforms& tf = transforms();
  const GemmKernel<double> dkern = gemm_kernel<double>();
  const int64_t per_chunk = chunk_blocks(s), ld = per_chunk * s.block;
  double* du_sum = arena.shared<double>();  // dU, summed over all tiles
  float* v = reinterpret_cast<float*>(du_sum + kTaps * s.cog * s.cig);
  float* z = v + kTaps * s.cig * ld;
  const Plane in = plane(p, p.h, p.w, p.c_in), out = plane(p, p.out_h, p.out_w, p.c_out);
  std::atomic<bool> finite{true};
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    for (int64_t b0 = 0; b0 < s.blocks; b0 += per_chunk) {
      const int64_t b1 = std::min(s.blocks, b0 + per_chunk);
      const int64_t tiles = std::min(s.tiles, b1 * s.block) - b0 * s.block;
      const int transform_threads = threads_for(double(tiles) * kTaps * (s.cig + s.cog) * 8, 1 << 18);
      parallel_for(b1 - b0, transform_threads, [&](int64_t i0, int64_t i1) {
        auto* runs = arena.item<TileRun>();
        float* scratch = arena.item<float>() + s.run_floats();
        float sum = 0.0f;
        for (int64_t i = i0; i < i1; ++i) {
          const Block b = block_runs(s, b0 + i, runs);
          const int64_t t = i * s.block;
          if (p.channels_last) {
            sum += transform_block_nhwc(p, s, tf, x, dy, grp, b, v + t * s.cig, z + t * s.cog, ld);
            continue;
          }
          for (int64_t ci = 0; ci < s.cig; ++ci)
            sum += tf.input(x + (grp * s.cig + ci) * channel_stride(p, in), in, p.pad_h, p.pad_w, b,
                            v + ci * ld + t, s.cig * ld, s.nr, scratch);
          for (int64_t co = 0; co < s.cog; ++co)
            sum += tf.grad_output(dy + (grp * s.cog + co) * channel_stride(p, out), out, b, z + co * ld + t,
                                  s.cog * ld, s.nr, scratch);
        }
        if (!(sum - sum == 0.0f)) finite.store(false, std::memory_order_relaxed);
      });
      if (!finite) return false;
      const int product_threads = threads_for(double(tiles) * kTaps * s.cig * s.cog, 1 << 20);
      // Z_e and V_e are channels x tiles (NCHW) or tiles x channels (NHWC): A(co, t) = z[co * a_co +
      // t * a_t], B(t, ci) = v[t * b_t + ci * b_ci].
      const bool nhwc = p.channels_last;
      const int64_t a_co = nhwc ? 1 : ld, a_t = nhwc ? s.cog : 1, b_t = nhwc ? s.cig : 1, b_ci = nhwc ? 1 : ld;
      parallel_for(kTaps, product_threads, [&](int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; ++e)
          gemm_packed(dkern, s.cog, s.cig, tiles, 1.0, WidenedPackA{{z + e * s.cog * ld, a_t, a_co}},
                      WidenedPackB{{v + e * s.cig * ld, b_t, b_ci}}, b0 == 0 ? 0.0 : 1.0,
                      du_sum + e * s.cog * s.cig, s.cig, 1);
      });
    }
    parallel_for(s.cog, threads_for(double(s.cog) * s.cig * 300, 1 << 18), [&](int64_t c0, int64_t c1) {
      for (int64_t co = c0; co < c1; ++co)
        tf.weight_grad(du_sum + co * s.cig, s.cog * s.cig, s.cig, dw + (grp * s.cog + co) * s.cig * 9,
                       weight_taps(p));
    });
  }
  return true;
}


bool winograd_f4x3_applies(const Conv2dParams& p, Pass pass) {
  return pass != Pass::grad_input && p.dtype == DType::f32 && p.kh == 3 && p.kw == 3 && p.stride_h == 1 &&
         p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1;
}

Workspace winograd_f4x3_workspace(const Conv2dParams& p, Pass pass, int threads) {
  const size_t f = sizeof(float);
  if (pass == Pass::grad_weight) {
    const Plan s = grad_weight_plan(p);
    const int64_t ld = chunk_blocks(s) * s.block;
    const int64_t floats = kTaps * (s.cig + s.cog) * ld;  // V, Z
    return {sizeof(double) * kTaps * s.cog * s.cig + f * floats, f * (s.run_floats() + s.transform_floats()), 0};
  }
  const Plan s = plan(p, threads);
  return {f * p.groups * s.u_floats(), f * s.item_floats(), 0};
}

namespace {

bool forward(const Conv2dParams& p, const Arena& arena, const void* x, const WeightView& wv, const void* bias,
             void* y) {
  const Plan s = plan(p, get_num_threads());
  const Transforms& tf = transforms();
  const GemmKernel<float> kern = gemm_kernel<float>();
  float* u = arena.shared<float>();
  std::atomic<bool> finite{true};
  transform_weights(p, s, tf, wv, u, finite);
  if (!finite) return false;
  const int64_t items = p.groups * s.blocks * s.co_parts, co_panels = s.kp / s.up;
  const double work = double(kTaps) * s.cig * s.cog * s.block / s.co_parts;
  parallel_for(items, threads_for(work * items, 1 << 20), [&](int64_t i0, int64_t i1) {
    float* v = arena.item<float>();
    float* m = v + s.v_floats();
    auto* runs = reinterpret_cast<TileRun*>(m + s.m_floats());
    float* scratch = m + s.m_floats() + s.run_floats();
    for (int64_t item = i0; item < i1 && finite.load(std::memory_order_relaxed); ++item) {
      const int64_t part = item % s.co_parts, grp = item / s.co_parts % p.groups;
      const Block b = block_runs(s, item / s.co_parts / p.groups, runs);
      const Channels cos{std::min(s.cog, co_panels * part / s.co_parts * s.up),
                         std::min(s.cog, co_panels * (part + 1) / s.co_parts * s.up)};
      const auto* xf = static_cast<const float*>(x);
      const auto* bf = static_cast<const float*>(bias);
      auto* yf = static_cast<float*>(y);
      const bool ok = p.channels_last ? run_block_nhwc(p, s, tf, kern, xf, u, bf, yf, grp, b, cos, v, m)
                                      : run_block(p, s, tf, kern, xf, u, bf, yf, grp, b, cos, v, m, scratch);
      if (!ok)
        finite.store(false, std::memory_order_relaxed);
    }
  });
  return finite;
}

}  // namespace

bool winograd_f4x3_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                           const void* bias, void* y) {
  return forward(p, arena, x, own_weight(p, static_cast<const float*>(w)), bias, y);
}

bool winograd_f4x3_flipped_weight_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                                          const void* bias, void* y) {
  return forward(p, arena, x, flipped_weight(p, static_cast<const float*>(w)), bias, y);
}

}  // namespace convforge::cpu::conv
