// conv2d on the CPU. Three paths, chosen once per call:
//  - one input channel per group (depthwise, C_in = 1): direct loops along the width
//    (conv2d_depthwise.h, compiled per ISA);
//  - 1x1, stride 1, no padding: the input planes are already the GEMM operand;
//  - everything else: GEMM over im2col columns, a band of output rows at a time so the column
//    buffer stays L2-sized.
// The GEMMs are forward Y_g = W_g * col, input gradient dcol = W_g^T * dY_g then col2im, weight
// gradient dW_g = sum over images of dY_g * col^T. Every sum has a fixed order that does not
// depend on the thread count, so results are bitwise reproducible.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "cpu/conv2d_depthwise.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

namespace {

// Per-thread scratch, grown on demand and kept for the next call.
template <typename T>
T* workspace(size_t count, int slot) {
  thread_local std::vector<T> buffers[2];
  std::vector<T>& buf = buffers[slot];
  if (buf.size() < count) buf.resize(count);
  return buf.data();
}

// The im2col column band of one group of one image: rows [oh0, oh1) of the output.
struct Band {
  int64_t oh0, oh1;
  int64_t cols() const { return oh1 - oh0; }
};

struct Geometry {
  int64_t cig, cog, k, ohw, rows_per_band;
  bool pointwise;  // 1x1, stride 1, no padding: col is the input itself
};

constexpr int64_t kBandElements = int64_t{1} << 18;  // ~1 MiB of float32 columns

Geometry geometry(const Conv2dParams& p) {
  Geometry g;
  g.cig = p.c_in / p.groups;
  g.cog = p.c_out / p.groups;
  g.k = g.cig * p.kh * p.kw;
  g.ohw = p.out_h * p.out_w;
  g.pointwise = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
                p.pad_w == 0 && p.out_h == p.h && p.out_w == p.w;
  g.rows_per_band = std::clamp<int64_t>(kBandElements / std::max<int64_t>(g.k * p.out_w, 1), 1, p.out_h);
  return g;
}

// col[(ci * kh + i) * kw + j][(oh - oh0) * out_w + ow] = x[ci][oh * sh - ph + i * dh][ow * sw - pw + j * dw]
// (zero in the padding), for the cig channels starting at x.
template <typename T>
void im2col(const Conv2dParams& p, const Geometry& g, const T* x, Band band, T* col) {
  const int64_t width = band.cols() * p.out_w;
  for (int64_t ci = 0; ci < g.cig; ++ci)
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j) {
        T* dst = col + ((ci * p.kh + i) * p.kw + j) * width;
        const TapRange r = tap_range(j, p.w, p.out_w, p.stride_w, p.pad_w, p.dilation_w);
        for (int64_t oh = band.oh0; oh < band.oh1; ++oh, dst += p.out_w) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= p.h) {
            std::fill(dst, dst + p.out_w, T(0));
            continue;
          }
          const T* src = x + (ci * p.h + ih) * p.w + r.lo * p.stride_w - p.pad_w + j * p.dilation_w;
          std::fill(dst, dst + r.lo, T(0));
          if (p.stride_w == 1)
            std::memcpy(dst + r.lo, src, sizeof(T) * (r.hi - r.lo));
          else
            for (int64_t ow = r.lo; ow < r.hi; ++ow) dst[ow] = src[(ow - r.lo) * p.stride_w];
          std::fill(dst + r.hi, dst + p.out_w, T(0));
        }
      }
}

// The adjoint of im2col: dx[ci][ih][iw] += col[...] over the band (dx is the group's planes).
template <typename T>
void col2im(const Conv2dParams& p, const Geometry& g, const T* col, Band band, T* dx) {
  const int64_t width = band.cols() * p.out_w;
  for (int64_t ci = 0; ci < g.cig; ++ci)
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j) {
        const T* src = col + ((ci * p.kh + i) * p.kw + j) * width;
        const TapRange r = tap_range(j, p.w, p.out_w, p.stride_w, p.pad_w, p.dilation_w);
        for (int64_t oh = band.oh0; oh < band.oh1; ++oh, src += p.out_w) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          T* dst = dx + (ci * p.h + ih) * p.w + r.lo * p.stride_w - p.pad_w + j * p.dilation_w;
          if (p.stride_w == 1)
            for (int64_t ow = r.lo; ow < r.hi; ++ow) dst[ow - r.lo] += src[ow];
          else
            for (int64_t ow = r.lo; ow < r.hi; ++ow) dst[(ow - r.lo) * p.stride_w] += src[ow];
        }
      }
}

template <typename T>
void run_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
              const T* b, int64_t ldb, T* c, int64_t ldc, double beta) {
  GemmParams q;
  q.dtype = sizeof(T) == 4 ? DType::f32 : DType::f64;
  q.trans_a = trans_a, q.trans_b = trans_b;
  q.m = m, q.n = n, q.k = k;
  q.a = a, q.lda = std::max<int64_t>(lda, 1);
  q.b = b, q.ldb = std::max<int64_t>(ldb, 1);
  q.c = c, q.ldc = std::max<int64_t>(ldc, 1);
  q.beta = beta;
  if (m > 0 && n > 0) cpu::gemm(q);
}

// Runs fn(item) for items [0, count): in parallel over items when there are enough of them (each
// item's GEMMs then run on one thread), else one after another with the GEMMs threaded.
template <typename Fn>
void for_items(int64_t count, double work_per_item, Fn&& fn) {
  const int nt = threads_for(work_per_item * count, 1 << 18);
  if (nt > 1 && count >= nt) {
    parallel_for(count, nt, [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) fn(item);
    });
  } else {
    for (int64_t item = 0; item < count; ++item) fn(item);
  }
}

// ---------------------------------------------------------------------------------------------
// Depthwise / one input channel per group

using DepthwiseForward = void (*)(const Conv2dParams&, const void*, const void*, const void*, void*,
                                  int64_t, int64_t);
using DepthwiseBackwardInput = void (*)(const Conv2dParams&, const void*, const void*, void*,
                                        int64_t, int64_t);
using DepthwiseBackwardWeight = DepthwiseBackwardInput;

struct DepthwiseTable {
  DepthwiseForward forward;
  DepthwiseBackwardInput backward_input;
  DepthwiseBackwardWeight backward_weight;
};

DepthwiseTable depthwise_table() {
#if defined(CONVFORGE_X86)
  switch (active_isa()) {
    case Isa::avx512:
      return {conv2d_depthwise_forward__avx512, conv2d_depthwise_backward_input__avx512,
              conv2d_depthwise_backward_weight__avx512};
    case Isa::avx2:
      return {conv2d_depthwise_forward__avx2, conv2d_depthwise_backward_input__avx2,
              conv2d_depthwise_backward_weight__avx2};
    default: break;
  }
#endif
  return {conv2d_depthwise_forward__scalar, conv2d_depthwise_backward_input__scalar,
          conv2d_depthwise_backward_weight__scalar};
}

// Minimum multiply-adds per thread before a second thread pays for its fork/join.
constexpr double kMinWorkPerThread = 1 << 16;

void depthwise_forward(const Conv2dParams& p, const void* x, const void* w, const void* b, void* y) {
  const DepthwiseTable t = depthwise_table();
  const int64_t planes = p.n * p.c_out;
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw;
  parallel_for(planes, threads_for(work * planes, kMinWorkPerThread),
               [&](int64_t b0, int64_t b1) { t.forward(p, x, w, b, y, b0, b1); });
}

void depthwise_backward(const Conv2dParams& p, const void* dy, const void* x, const void* w,
                        void* dx, void* dw) {
  const DepthwiseTable t = depthwise_table();
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_out / p.groups);
  if (dx)
    parallel_for(p.n * p.c_in, threads_for(work * p.n * p.c_in, kMinWorkPerThread),
                 [&](int64_t b0, int64_t b1) { t.backward_input(p, dy, w, dx, b0, b1); });
  if (dw)
    parallel_for(p.c_out, threads_for(work * p.n * p.groups, kMinWorkPerThread),
                 [&](int64_t b0, int64_t b1) { t.backward_weight(p, dy, x, dw, b0, b1); });
}

// ---------------------------------------------------------------------------------------------
// GEMM paths

template <typename T>
void forward_gemm(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const int64_t items = p.n * p.groups;
  for_items(items, double(g.cog) * g.k * g.ohw, [&](int64_t item) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    const T* xg = x + (n * p.c_in + grp * g.cig) * p.h * p.w;
    const T* wg = w + grp * g.cog * g.k;
    T* yg = y + (n * p.c_out + grp * g.cog) * g.ohw;
    if (bias)
      for (int64_t co = 0; co < g.cog; ++co)
        std::fill(yg + co * g.ohw, yg + (co + 1) * g.ohw, bias[grp * g.cog + co]);
    const double beta = bias ? 1.0 : 0.0;
    if (g.pointwise) {
      run_gemm<T>(false, false, g.cog, g.ohw, g.k, wg, g.k, xg, g.ohw, yg, g.ohw, beta);
      return;
    }
    for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += g.rows_per_band) {
      const Band band{oh0, std::min(p.out_h, oh0 + g.rows_per_band)};
      const int64_t cols = band.cols() * p.out_w;
      T* col = workspace<T>(g.k * cols, 0);
      im2col(p, g, xg, band, col);
      run_gemm<T>(false, false, g.cog, cols, g.k, wg, g.k, col, cols, yg + oh0 * p.out_w, g.ohw, beta);
    }
  });
}

template <typename T>
void backward_input_gemm(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const Geometry g = geometry(p);
  for_items(p.n * p.groups, double(g.cog) * g.k * g.ohw, [&](int64_t item) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    const T* dyg = dy + (n * p.c_out + grp * g.cog) * g.ohw;
    const T* wg = w + grp * g.cog * g.k;
    T* dxg = dx + (n * p.c_in + grp * g.cig) * p.h * p.w;
    if (g.pointwise) {
      run_gemm<T>(true, false, g.k, g.ohw, g.cog, wg, g.k, dyg, g.ohw, dxg, g.ohw, 0.0);
      return;
    }
    std::memset(dxg, 0, sizeof(T) * g.cig * p.h * p.w);
    for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += g.rows_per_band) {
      const Band band{oh0, std::min(p.out_h, oh0 + g.rows_per_band)};
      const int64_t cols = band.cols() * p.out_w;
      T* col = workspace<T>(g.k * cols, 0);
      run_gemm<T>(true, false, g.k, cols, g.cog, wg, g.k, dyg + oh0 * p.out_w, g.ohw, col, cols, 0.0);
      col2im(p, g, col, band, dxg);
    }
  });
}

// Weight gradient: the batch is cut into a number of slices that depends on the shape only; each
// slice sums its images in order into its own partial, and the partials are added in slice order.
// The bits are therefore the same for any thread count.
template <typename T>
void backward_weight_gemm(const Conv2dParams& p, const T* dy, const T* x, T* dw) {
  const Geometry g = geometry(p);
  const int64_t wsize = p.c_out * g.k;
  constexpr int64_t kMaxSlices = 8, kMaxPartialElements = int64_t{1} << 20;
  const int64_t slices = std::clamp<int64_t>(kMaxPartialElements / std::max<int64_t>(wsize, 1), 1,
                                             std::min(kMaxSlices, p.n));
  std::vector<T> partials(size_t(std::max<int64_t>(slices - 1, 0) * wsize));
  auto slice_output = [&](int64_t s) { return s == 0 ? dw : partials.data() + (s - 1) * wsize; };
  for_items(slices * p.groups, double(g.cog) * g.k * g.ohw * p.n / slices, [&](int64_t item) {
    const int64_t s = item / p.groups, grp = item % p.groups;
    T* dwg = slice_output(s) + grp * g.cog * g.k;
    double beta = 0.0;
    for (int64_t n = p.n * s / slices; n < p.n * (s + 1) / slices; ++n) {
      const T* xg = x + (n * p.c_in + grp * g.cig) * p.h * p.w;
      const T* dyg = dy + (n * p.c_out + grp * g.cog) * g.ohw;
      if (g.pointwise) {
        run_gemm<T>(false, true, g.cog, g.k, g.ohw, dyg, g.ohw, xg, g.ohw, dwg, g.k, beta);
        beta = 1.0;
        continue;
      }
      for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += g.rows_per_band) {
        const Band band{oh0, std::min(p.out_h, oh0 + g.rows_per_band)};
        const int64_t cols = band.cols() * p.out_w;
        T* col = workspace<T>(g.k * cols, 0);
        im2col(p, g, xg, band, col);
        run_gemm<T>(false, true, g.cog, g.k, cols, dyg + oh0 * p.out_w, g.ohw, col, cols, dwg, g.k, beta);
        beta = 1.0;
      }
    }
  });
  for (int64_t s = 1; s < slices; ++s) {
    const T* part = slice_output(s);
    for (int64_t e = 0; e < wsize; ++e) dw[e] += part[e];
  }
}

// grad_bias[co] = sum over images and pixels of dy, with a few independent partial sums.
template <typename T>
void backward_bias(const Conv2dParams& p, const T* dy, T* db) {
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

// One input channel per group and a kernel the tap table holds.
bool use_depthwise(const Conv2dParams& p) { return p.c_in == p.groups && p.kw <= 64; }

template <typename T>
void backward(const Conv2dParams& p, const T* dy, const T* x, const T* w, T* dx, T* dw, T* db) {
  if (db) backward_bias(p, dy, db);
  if (use_depthwise(p)) return depthwise_backward(p, dy, x, w, dx, dw);
  if (dw) backward_weight_gemm(p, dy, x, dw);
  if (dx) backward_input_gemm(p, dy, w, dx);
}

}  // namespace

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  if (use_depthwise(p)) return depthwise_forward(p, input, weight, bias, output);
  if (p.dtype == DType::f32)
    forward_gemm(p, static_cast<const float*>(input), static_cast<const float*>(weight),
                 static_cast<const float*>(bias), static_cast<float*>(output));
  else
    forward_gemm(p, static_cast<const double*>(input), static_cast<const double*>(weight),
                 static_cast<const double*>(bias), static_cast<double*>(output));
}

void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input,
                     const void* weight, void* grad_input, void* grad_weight, void* grad_bias) {
  if (p.dtype == DType::f32)
    backward(p, static_cast<const float*>(grad_output), static_cast<const float*>(input),
             static_cast<const float*>(weight), static_cast<float*>(grad_input),
             static_cast<float*>(grad_weight), static_cast<float*>(grad_bias));
  else
    backward(p, static_cast<const double*>(grad_output), static_cast<const double*>(input),
             static_cast<const double*>(weight), static_cast<double*>(grad_input),
             static_cast<double*>(grad_weight), static_cast<double*>(grad_bias));
}

}  // namespace convforge::cpu
