// winograd_f2x3: the weight gradient of 3x3 convolutions with stride 1 and dilation 1 on NHWC
// float32 arrays by Winograd F(2x2, 3x3) (winograd_f2x3.h), in float32 throughout.
//
// The output is cut into 2x2 tiles, numbered along rows over all images, and the tiles into a few
// slices, each summed into its own dU (slice 0 into the final one). Per chunk of a slice's tiles:
//   1. the transforms write V_e (tiles x cig) = B^T d B and Z_e (tiles x cog) = A dY A^T of every
//      tile, a tile at a time along the channels;
//   2. 16 products dU_e (cog x cig) (+)= Z_e^T V_e run on the GEMM microkernel with the tiles as
//      their depth, each on one thread. Z_e and V_e are its operands in place: a tile's row of Z_e
//      is a step of A (its output channels are the rows), a tile's row of V_e, padded to whole
//      panels, a step of B.
// Then the slices' dU are added in order and dW = G^T dU G. Threads take whole slices when there
// are enough of them, else share each chunk's transforms and products. The slices and chunks are
// fixed by the problem: the bits do not depend on the thread count. NaN or Inf in the input or
// grad_output would spread over whole tiles, so the algorithm then declines.
#include <algorithm>
#include <atomic>

#include "core/cache.h"
#include "core/isa.h"
#include "core/parallel.h"
#include "cpu/conv2d/algorithm.h"
#include "cpu/conv2d/winograd_f2x3.h"
#include "cpu/gemm.h"
#include "cpu/isa_table.h"

namespace convforge::cpu::conv {
namespace {

using winograd::Plane;
using winograd::Taps;
using winograd::f2x3::kOut;
using winograd::f2x3::kTaps;

struct Plan {
  int64_t cig, cog, tiles_h, tiles_w, tiles;  // tiles: of all images
  int64_t mr, nr;                              // microkernel tile
  int64_t v_row;                               // a tile's row of V: cig rounded up to whole B panels
  int64_t chunk;                               // tiles per chunk
  int64_t slices;
  // V_e and Z_e of a chunk lie v_stride and z_stride floats apart: a chunk's rows, plus a cache
  // line, so that the transforms' 16 stores of a tile do not all fall in one L1 set.
  int64_t v_stride() const { return chunk * v_row + 16; }
  int64_t z_stride() const { return chunk * cog + 16; }
  int64_t du_floats() const { return kTaps * cog * cig; }
  int64_t chunk_floats() const { return kTaps * (v_stride() + z_stride()); }  // V and Z of a chunk
};

// V and Z of a chunk in about half of L2, at least 64 tiles. Up to 8 slices of at least a chunk,
// their dU in at most 8 MiB.
Plan plan(const Conv2dParams& p) {
  constexpr int64_t kMinChunk = 64;
  const int64_t chunk_bytes = host_caches().l2 / 2;
  constexpr int64_t kMaxSlices = 8, kMaxPartialFloats = int64_t{1} << 21;
  const GemmKernel<float> kern = gemm_kernel<float>();
  Plan s;
  s.cig = p.c_in / p.groups, s.cog = p.c_out / p.groups;
  s.mr = kern.mr, s.nr = kern.nr, s.v_row = detail::round_up(s.cig, s.nr);
  s.tiles_h = (p.out_h + kOut - 1) / kOut, s.tiles_w = (p.out_w + kOut - 1) / kOut;
  s.tiles = p.n * s.tiles_h * s.tiles_w;
  const int64_t per_tile = kTaps * (s.v_row + s.cog) * int64_t(sizeof(float));
  s.chunk = std::min(s.tiles, std::max(kMinChunk, chunk_bytes / per_tile));
  s.slices = std::clamp<int64_t>(kMaxPartialFloats / s.du_floats(), 1, std::min(kMaxSlices, s.tiles / s.chunk));
  return s;
}

// V[e][i][ci] and Z[e][i][co] of the tiles [t0, t1) of group grp, tile t at row i = t - first (rows
// v_row and cog long, v_stride and z_stride apart per e). Returns the sum of the values read.
float transform_tiles(const Conv2dParams& p, const Plan& s, const winograd::f2x3::Transforms& tf, const float* x,
                      const float* dy, int64_t grp, int64_t first, int64_t t0, int64_t t1, float* v, float* z) {
  const Plane in{p.h, p.w, p.h * p.w * p.c_in, p.w * p.c_in, p.c_in};
  const Plane out{p.out_h, p.out_w, p.out_h * p.out_w * p.c_out, p.out_w * p.c_out, p.c_out};
  float sum = 0.0f;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n = t / (s.tiles_h * s.tiles_w), th = t / s.tiles_w % s.tiles_h, tw = t % s.tiles_w;
    const int64_t i = t - first;
    sum += tf.input_tile(x + n * in.image_stride + grp * s.cig, in, kOut * th - p.pad_h, kOut * tw - p.pad_w,
                         s.cig, v + i * s.v_row, s.v_stride());
    sum += tf.grad_output_tile(dy + n * out.image_stride + grp * s.cog, out, kOut * th, kOut * tw, s.cog,
                               z + i * s.cog, s.z_stride());
  }
  return sum;
}

}  // namespace

bool winograd_f2x3_applies(const Conv2dParams& p, Pass pass) {
  return pass == Pass::grad_weight && p.channels_last && p.dtype == DType::f32 && p.kh == 3 && p.kw == 3 &&
         p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1;
}

Workspace winograd_f2x3_workspace(const Conv2dParams& p, Pass, int) {
  const Plan s = plan(p);
  return {sizeof(float) * s.slices * s.du_floats(), sizeof(float) * s.chunk_floats(), 0};
}

bool winograd_f2x3_grad_weight(const Conv2dParams& p, const Arena& arena, const void* dy_, const void* x_,
                               void* dw_) {
  const auto* dy = static_cast<const float*>(dy_);
  const auto* x = static_cast<const float*>(x_);
  auto* dw = static_cast<float*>(dw_);
  const Plan s = plan(p);
  const winograd::f2x3::Transforms& tf = isa_kernels().winograd_f2x3;
  const GemmKernel<float> kern = gemm_kernel<float>();
  float* du = arena.shared<float>();  // dU[slice][e][co][ci]
  std::atomic<bool> finite{true};
  // Slice `slice` of group grp into its dU, on `threads` threads (1 inside a team over the slices).
  const auto run_slice = [&](int64_t grp, int64_t slice, int threads) {
    float* v = arena.item<float>();
    float* z = v + kTaps * s.v_stride();
    float* du_slice = du + slice * s.du_floats();
    const int64_t t_begin = s.tiles * slice / s.slices, t_end = s.tiles * (slice + 1) / s.slices;
    // The padding of V's rows is read as B columns past cig, whose sums are dropped: keep it 0.
    for (int64_t e = 0; e < kTaps && s.v_row > s.cig; ++e)
      for (float* row = v + e * s.v_stride(); row < v + e * s.v_stride() + s.chunk * s.v_row; row += s.v_row)
        std::fill(row + s.cig, row + s.v_row, 0.0f);
    for (int64_t t0 = t_begin; t0 < t_end && finite.load(std::memory_order_relaxed); t0 += s.chunk) {
      const int64_t tiles = std::min(s.chunk, t_end - t0);
      const double transform_work = double(tiles) * kTaps * (s.cig + s.cog) * 4;
      parallel_for(tiles, threads > 1 ? threads_for(transform_work, 1 << 18) : 1, [&](int64_t i0, int64_t i1) {
        const float sum = transform_tiles(p, s, tf, x, dy, grp, t0, t0 + i0, t0 + i1, v, z);
        if (!(sum - sum == 0.0f)) finite.store(false, std::memory_order_relaxed);
      });
      // dU_e += Z_e^T V_e: A(co, t) = z[t * cog + co], B(t, ci) = v[t * v_row + ci].
      const double product_work = double(tiles) * kTaps * s.cig * s.cog;
      const float beta = t0 == t_begin ? 0.0f : 1.0f;
      parallel_for(kTaps, threads > 1 ? threads_for(product_work, 1 << 20) : 1, [&](int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; ++e)
          for (int64_t ci = 0; ci < s.cig; ci += s.nr)
            for (int64_t co = 0; co < s.cog; co += s.mr)
              kern.ukernel(tiles, z + e * s.z_stride() + co, s.cog, v + e * s.v_stride() + ci, s.v_row,
                           du_slice + (e * s.cog + co) * s.cig + ci, s.cig, std::min(s.mr, s.cog - co),
                           std::min(s.nr, s.cig - ci), 1.0f, beta);
      });
    }
  };
  const int threads = get_num_threads();
  for (int64_t grp = 0; grp < p.groups; ++grp) {
    if (threads > 1 && s.slices >= 2 * threads)
      parallel_for(s.slices, threads, [&](int64_t s0, int64_t s1) {
        for (int64_t slice = s0; slice < s1; ++slice) run_slice(grp, slice, 1);
      });
    else
      for (int64_t slice = 0; slice < s.slices; ++slice) run_slice(grp, slice, threads);
    if (!finite) return false;
    for (int64_t slice = 1; slice < s.slices; ++slice) {
      const float* part = du + slice * s.du_floats();
#pragma omp simd
      for (int64_t i = 0; i < s.du_floats(); ++i) du[i] += part[i];
    }
    // dW = G^T dU G into the OHWI weight: pair (co, ci) tap t at (co * 9 + t) * cig + ci.
    parallel_for(s.cog, threads_for(double(s.cog) * s.cig * 100, 1 << 18), [&](int64_t c0, int64_t c1) {
      for (int64_t co = c0; co < c1; ++co)
        tf.weight_grad(du + co * s.cig, s.cog * s.cig, s.cig, dw + (grp * s.cog + co) * s.cig * 9,
                       Taps{1, s.cig});
    });
  }
  return true;
}

}  // namespace convforge::cpu::conv
