// conv2d on the CPU, on the packed GEMM driver of cpu/gemm.h. Paths, chosen once per call:
//  - one input channel per group (depthwise, C_in = 1): direct loops along the width
//    (conv2d_depthwise.h, compiled per ISA);
//  - otherwise implicit GEMM: the im2col matrix is never built. Forward, its rows are contiguous
//    runs of zero-padded, stride-phase-split input planes (PaddedPlanes, copied by OffsetPackB),
//    or for narrow images with many channels its columns are gathered straight into the driver's
//    packed B panels (Im2colPackB). 1x1 stride-1 convolutions are plain GEMMs.
// Forward Y_g = W_g * col(x_g); grad_weight dW_g = sum over images of dY_g * col(x_g)^T (k runs
// over the pixels of many images); grad_input is a forward convolution of dY with the flipped
// weight when the stride is 1 and there are enough input channels, else dcol = W_g^T * dY_g per
// band of rows followed by col2im.
// Every sum has a fixed order that does not depend on the thread count: bitwise reproducible.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "cpu/conv2d_common.h"
#include "cpu/conv2d_depthwise.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

namespace {

// Per-thread scratch of the calling thread, grown on demand and kept for the next call.
template <typename T>
T* workspace(size_t count, int slot) {
  thread_local std::vector<T> buffers[2];
  std::vector<T>& buf = buffers[slot];
  if (buf.size() < count) buf.resize(count);
  return buf.data();
}

struct Geometry {
  int64_t cig, cog, k, ohw;
  bool pointwise;  // 1x1, stride 1, no padding: the im2col matrix is the input itself
};

Geometry geometry(const Conv2dParams& p) {
  Geometry g;
  g.cig = p.c_in / p.groups;
  g.cog = p.c_out / p.groups;
  g.k = g.cig * p.kh * p.kw;
  g.ohw = p.out_h * p.out_w;
  g.pointwise = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 &&
                p.pad_w == 0 && p.out_h == p.h && p.out_w == p.w;
  return g;
}

// A run of im2col columns that lie on one output row: columns [off, off + ow1 - ow0) of a panel
// are output pixels (oh, ow0 .. ow1) of image n.
struct Segment {
  int64_t n, oh, ow0, ow1, off;
};

// Splits the flat pixel range [q, q + count) (pixels of consecutive images, ohw each) into
// output-row segments; returns how many were written to seg.
inline int64_t row_segments(int64_t q, int64_t count, int64_t out_w, int64_t ohw, Segment* seg) {
  int64_t m = 0;
  int64_t n = q / ohw, pix = q % ohw, oh = pix / out_w, ow = pix % out_w;
  for (int64_t off = 0; off < count; ++m) {
    const int64_t len = std::min(out_w - ow, count - off);
    seg[m] = {n, oh, ow, ow + len, off};
    off += len;
    ow = 0;
    if (++oh == ohw / out_w) oh = 0, ++n;
  }
  return m;
}

// Gathers the im2col values of kernel tap (ci, i, j) for one segment into d[0 .. len) with
// element stride ds: x is the image's channel ci.
template <typename T>
inline void gather_segment(const Conv2dParams& p, const TapTable& taps, const T* xc, int64_t i,
                           int64_t j, const Segment& s, T* d, int64_t ds) {
  const int64_t len = s.ow1 - s.ow0;
  const int64_t ih = s.oh * p.stride_h - p.pad_h + i * p.dilation_h;
  const int64_t lo = std::max(s.ow0, taps.lo[j]), hi = std::min(s.ow1, taps.hi[j]);
  if (ih < 0 || ih >= p.h || hi <= lo) {
    for (int64_t t = 0; t < len; ++t) d[t * ds] = T(0);
    return;
  }
  for (int64_t t = 0; t < lo - s.ow0; ++t) d[t * ds] = T(0);
  const T* src = xc + ih * p.w + taps.src[j] + (lo - taps.lo[j]) * p.stride_w;
  T* dd = d + (lo - s.ow0) * ds;
  if (p.stride_w == 1 && ds == 1) {
#pragma omp simd
    for (int64_t t = 0; t < hi - lo; ++t) dd[t] = src[t];  // runs are short: no library call
  } else
    for (int64_t t = 0; t < hi - lo; ++t) dd[t * ds] = src[t * p.stride_w];
  for (int64_t t = hi - s.ow0; t < len; ++t) d[t * ds] = T(0);
}

// The im2col matrix of one image and group as the GEMM's B operand, packed on the fly:
// B(k, q) with k = (ci * kh + i) * kw + j and q = oh * out_w + ow the output pixel.
template <typename T>
struct Im2colPackB {
  const Conv2dParams& p;
  const TapTable& taps;
  const T* x;            // the group's first input channel of the first image
  int64_t image_stride;  // the columns may span images: pixel q is in image q / (out_h * out_w)
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    const int64_t khw = p.kh * p.kw, plane = p.h * p.w;
    Segment seg[130];  // a panel (nr <= 64 columns) spans at most nr + 1 output rows
    for (int64_t q0 = j0; q0 < j0 + nc; q0 += nr, dst += nr * kc) {
      const int64_t width = std::min(nr, j0 + nc - q0);
      const int64_t segments = row_segments(q0, width, p.out_w, p.out_h * p.out_w, seg);
      int64_t ci = k0 / khw, i = k0 % khw / p.kw, j = k0 % p.kw;
      for (int64_t r = 0; r < kc; ++r) {
        T* d = dst + r * nr;
        for (int64_t s = 0; s < segments; ++s)
          gather_segment(p, taps, x + seg[s].n * image_stride + ci * plane, i, j, seg[s], d + seg[s].off, 1);
        for (int64_t t = width; t < nr; ++t) d[t] = T(0);
        if (++j == p.kw) {
          j = 0;
          if (++i == p.kh) i = 0, ++ci;
        }
      }
    }
  }
};

// Weight gradient operands, with the GEMM's k running over the pixels of a slice of images:
// A(co, q) = dy of channel co at pixel q, B(q, k) = im2col value of tap k at pixel q.
template <typename T>
struct BatchPackA {
  const T* dy;  // the group's first output channel of the slice's first image
  int64_t image_stride, ohw;
  void operator()(int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, T* dst) const {
    for (int64_t r0 = 0; r0 < mc; r0 += mr, dst += mr * kc) {
      const int64_t rows = std::min(mr, mc - r0);
      for (int64_t q = k0; q < k0 + kc;) {  // one run of pixels per image: a transposing copy
        const int64_t n = q / ohw, pix = q % ohw, len = std::min(ohw - pix, k0 + kc - q);
        detail::pack_panels_any(dy + n * image_stride + (i0 + r0) * ohw + pix, 1, ohw, len, rows, mr,
                                dst + (q - k0) * mr);
        q += len;
      }
    }
  }
};

template <typename T>
struct BatchIm2colPackB {
  const Conv2dParams& p;
  const TapTable& taps;
  const T* x;  // the group's first input channel of the slice's first image
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    const int64_t khw = p.kh * p.kw, plane = p.h * p.w;
    auto* seg = static_cast<Segment*>(gemm_workspace(2, sizeof(Segment) * (kc + 2)));
    const int64_t segments = row_segments(k0, kc, p.out_w, p.out_h * p.out_w, seg);
    // Each tap's values along the pixels are gathered into a contiguous run, then the runs are
    // transposed into the panel: contiguous copies both ways instead of one store per value.
    T* runs = static_cast<T*>(gemm_workspace(3, sizeof(T) * nr * kc));
    for (int64_t t0 = j0; t0 < j0 + nc; t0 += nr, dst += nr * kc) {
      const int64_t width = std::min(nr, j0 + nc - t0);
      for (int64_t c = 0; c < width; ++c) {
        const int64_t tap = t0 + c, ci = tap / khw, i = tap % khw / p.kw, j = tap % p.kw;
        for (int64_t s = 0; s < segments; ++s) {
          const T* xc = x + (seg[s].n * p.c_in + ci) * plane;
          gather_segment(p, taps, xc, i, j, seg[s], runs + c * kc + seg[s].off, 1);
        }
      }
      detail::pack_panels_any(runs, 1, kc, kc, width, nr, dst);
    }
  }
};

// Adds bias[row] to each finished tile of C.
template <typename T>
struct BiasEpilogue {
  const T* bias;
  void operator()(T* c, int64_t ldc, int64_t i, int64_t, int64_t m, int64_t n) const {
    for (int64_t r = 0; r < m; ++r)
      for (int64_t t = 0; t < n; ++t) c[r * ldc + t] += bias[i + r];
  }
};

// B(k, q) = base[offsets[k] + q]: every row of B is a contiguous run (the stride-1 layout below).
template <typename T>
struct OffsetPackB {
  const T* base;
  const int64_t* offsets;
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    detail::pack_row_runs([&](int64_t r) { return base + offsets[k0 + r] + j0; }, kc, nc, nr, dst);
  }
};

// The adjoint of im2col for one band of output rows: dx[ci][ih][iw] += col[k][q].
template <typename T>
void col2im(const Conv2dParams& p, const Geometry& g, const TapTable& taps, const T* col,
            int64_t oh0, int64_t oh1, T* dx) {
  const int64_t width = (oh1 - oh0) * p.out_w;
  for (int64_t ci = 0; ci < g.cig; ++ci)
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j) {
        const T* src = col + ((ci * p.kh + i) * p.kw + j) * width;
        for (int64_t oh = oh0; oh < oh1; ++oh, src += p.out_w) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          T* dst = dx + (ci * p.h + ih) * p.w + taps.src[j];
          const T* s = src + taps.lo[j];
          const int64_t len = taps.hi[j] - taps.lo[j];
          if (p.stride_w == 1)
            for (int64_t t = 0; t < len; ++t) dst[t] += s[t];
          else
            for (int64_t t = 0; t < len; ++t) dst[t * p.stride_w] += s[t];
        }
      }
}

// Runs fn(item, gemm_threads) for items [0, count): in parallel over items when there are enough
// of them (each item's GEMM then runs on one thread), else one after another with threaded GEMMs.
template <typename Fn>
void for_items(int64_t count, double work_per_item, int gemm_nt, Fn&& fn) {
  const int nt = threads_for(work_per_item * count, 1 << 20);
  if (nt > 1 && count >= 2 * nt) {
    parallel_for(count, nt, [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) fn(item, 1);
    });
  } else {
    for (int64_t item = 0; item < count; ++item) fn(item, gemm_nt);
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
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_in / p.groups);
  parallel_for(planes, threads_for(work * planes, kMinWorkPerThread),
               [&](int64_t b0, int64_t b1) { t.forward(p, x, w, b, y, b0, b1); });
}

// Stride 1: grad_input is the convolution of grad_output with the flipped, transposed kernel
// (c_out / groups input channels per group, one output channel per group here) and padding
// dilation * (k - 1) - pad, which runs on the register-blocked direct loops. Returns false when
// that does not apply.
bool depthwise_backward_input_as_forward(const Conv2dParams& p, const void* dy, const void* w,
                                         void* dx) {
  const int64_t pad_h = p.dilation_h * (p.kh - 1) - p.pad_h, pad_w = p.dilation_w * (p.kw - 1) - p.pad_w;
  if (p.stride_h != 1 || p.stride_w != 1 || pad_h < 0 || pad_w < 0) return false;
  const int64_t khw = p.kh * p.kw, size = dtype_size(p.dtype);
  char* flipped = workspace<char>(p.c_out * khw * size, 0);
  for (int64_t c = 0; c < p.c_out; ++c)
    for (int64_t t = 0; t < khw; ++t)
      std::memcpy(flipped + (c * khw + t) * size,
                  static_cast<const char*>(w) + (c * khw + khw - 1 - t) * size, size);
  Conv2dParams q = p;
  q.c_in = p.c_out, q.c_out = p.c_in;
  q.h = p.out_h, q.w = p.out_w, q.out_h = p.h, q.out_w = p.w;
  q.pad_h = pad_h, q.pad_w = pad_w;
  depthwise_forward(q, dy, flipped, nullptr, dx);
  return true;
}

void depthwise_backward(const Conv2dParams& p, const void* dy, const void* x, const void* w,
                        void* dx, void* dw) {
  const DepthwiseTable t = depthwise_table();
  const double work = double(p.out_h) * p.out_w * p.kh * p.kw * (p.c_out / p.groups);
  if (dx && !depthwise_backward_input_as_forward(p, dy, w, dx))
    parallel_for(p.n * p.c_in, threads_for(work * p.n * p.c_in, kMinWorkPerThread),
                 [&](int64_t b0, int64_t b1) { t.backward_input(p, dy, w, dx, b0, b1); });
  if (dw)
    parallel_for(p.c_out, threads_for(work * p.n * p.groups, kMinWorkPerThread),
                 [&](int64_t b0, int64_t b1) { t.backward_weight(p, dy, x, dw, b0, b1); });
}

// ---------------------------------------------------------------------------------------------
// GEMM paths

// The padded-plane layout: the input is copied once into zero-padded planes of exactly the rows
// and columns the taps reach, split by phase (row mod stride_h, column mod stride_w; one phase at
// stride 1; only the phases some tap reads), each phase a hq x wq plane. The output is computed
// on the grid q = oh * wq + ow, ow < wq: then im2col row k = (ci, i, j) is the contiguous run
//   xq[plane(ci, i * dh mod sh, j * dw mod sw) + (i * dh / sh) * wq + j * dw / sw + q],
// so the B panels are straight copies, with no per-pixel index arithmetic. The wq - out_w extra
// columns per row are computed and dropped when a band is copied into the output (with the bias).
struct PaddedPlanes {
  int64_t hq, wq;
  // The phases some tap reads (1x1 strided: only phase 0), numbered as first met; -1: unused.
  std::vector<int64_t> row_phase, col_phase;
  int64_t row_phases = 0, col_phases = 0, planes;

  explicit PaddedPlanes(const Conv2dParams& p, const Geometry& g)
      : row_phase(p.stride_h, -1), col_phase(p.stride_w, -1) {
    const int64_t hp = (p.out_h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
    const int64_t wp = (p.out_w - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
    hq = (hp + p.stride_h - 1) / p.stride_h;
    wq = (wp + p.stride_w - 1) / p.stride_w;
    for (int64_t i = 0; i < p.kh; ++i)
      if (int64_t& ph = row_phase[i * p.dilation_h % p.stride_h]; ph < 0) ph = row_phases++;
    for (int64_t j = 0; j < p.kw; ++j)
      if (int64_t& pw = col_phase[j * p.dilation_w % p.stride_w]; pw < 0) pw = col_phases++;
    planes = g.cig * row_phases * col_phases;
  }
  // + slack: the last row's extra columns run past the last plane.
  int64_t size() const { return planes * hq * wq + wq; }

  template <typename T>
  void fill(const Conv2dParams& p, const T* x, T* xq) const {
    const int64_t sw = p.stride_w;
    for (int64_t ci = 0; ci < p.c_in / p.groups; ++ci)
      for (int64_t ph = 0; ph < p.stride_h; ++ph)
        for (int64_t pw = 0; pw < sw; ++pw) {
          if (row_phase[ph] < 0 || col_phase[pw] < 0) continue;
          T* plane = xq + plane_index(ci, ph, pw) * hq * wq;
          // Column c of this phase reads input column c * sw + pw - pad_w: inside for c in [c0, c1).
          const int64_t c0 = std::clamp<int64_t>((p.pad_w - pw + sw - 1) / sw, 0, wq);
          const int64_t c1 = std::clamp<int64_t>((p.w + p.pad_w - pw + sw - 1) / sw, c0, wq);
          for (int64_t r = 0; r < hq; ++r) {
            T* dst = plane + r * wq;
            const int64_t ih = r * p.stride_h + ph - p.pad_h;
            if (ih < 0 || ih >= p.h) {
              std::fill(dst, dst + wq, T(0));
              continue;
            }
            const T* src = x + (ci * p.h + ih) * p.w + c0 * sw + pw - p.pad_w;
            std::fill(dst, dst + c0, T(0));
            if (sw == 1)
              std::memcpy(dst + c0, src, sizeof(T) * (c1 - c0));
            else
              for (int64_t c = c0; c < c1; ++c) dst[c] = src[(c - c0) * sw];
            std::fill(dst + c1, dst + wq, T(0));
          }
        }
    std::fill(xq + planes * hq * wq, xq + size(), T(0));
  }

  // The start of im2col row k = (ci, i, j) in the planes.
  std::vector<int64_t> row_offsets(const Conv2dParams& p, const Geometry& g) const {
    std::vector<int64_t> offsets(g.k);
    for (int64_t ci = 0; ci < g.cig; ++ci)
      for (int64_t i = 0; i < p.kh; ++i)
        for (int64_t j = 0; j < p.kw; ++j) {
          const int64_t di = i * p.dilation_h, dj = j * p.dilation_w;
          const int64_t plane = plane_index(ci, di % p.stride_h, dj % p.stride_w);
          offsets[(ci * p.kh + i) * p.kw + j] = (plane * hq + di / p.stride_h) * wq + dj / p.stride_w;
        }
    return offsets;
  }

 private:
  int64_t plane_index(int64_t ci, int64_t ph, int64_t pw) const {
    return (ci * row_phases + row_phase[ph]) * col_phases + col_phase[pw];
  }
};

template <typename T>
void forward_gemm_padded(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const PaddedPlanes planes(p, g);
  const int64_t wq = planes.wq;
  const std::vector<int64_t> offsets = planes.row_offsets(p, g);
  constexpr int64_t kBandColumns = 4096;
  const int64_t rows = std::clamp<int64_t>(kBandColumns / wq, 1, p.out_h);
  const double work = double(g.cog) * g.k * p.out_h * wq;
  for_items(p.n * p.groups, work, gemm_threads(g.cog, rows * wq, g.k), [&](int64_t item, int nt) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    T* xq = static_cast<T*>(gemm_workspace(3, sizeof(T) * planes.size()));
    planes.fill(p, x + (n * p.c_in + grp * g.cig) * p.h * p.w, xq);
    const StridedPackA<T> pack_w{w + grp * g.cog * g.k, g.k, 1};
    T* yg = y + (n * p.c_out + grp * g.cog) * g.ohw;
    T* band = workspace<T>(g.cog * rows * wq, 1);
    for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += rows) {
      const int64_t oh1 = std::min(p.out_h, oh0 + rows), cols = (oh1 - oh0) * wq;
      gemm_packed(kern, g.cog, cols, g.k, T(1), pack_w, OffsetPackB<T>{xq + oh0 * wq, offsets.data()},
                  T(0), band, cols, nt);
      for (int64_t co = 0; co < g.cog; ++co) {
        const T b = bias ? bias[grp * g.cog + co] : T(0);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const T* src = band + co * cols + (oh - oh0) * wq;
          T* dst = yg + co * g.ohw + oh * p.out_w;
          for (int64_t ow = 0; ow < p.out_w; ++ow) dst[ow] = src[ow] + b;
        }
      }
    }
  });
}

// The padded planes compute (wq - out_w) extra columns per row; gathering im2col panels
// instead costs a few dozen cycles per output-row piece of a panel. Rough cycles per output
// column and B row: extra work (wq - out_w) / out_w * cog / 16 FMAs against the gather's
// (32 / out_w + 1) * 0.8. Small channel counts favour the padded planes, narrow images with many
// channels (e.g. 14 x 14 x 512) the gather.
bool use_padded_planes(const Conv2dParams& p, const Geometry& g) {
  const double wq = double(PaddedPlanes(p, g).wq), ow = double(p.out_w);
  return (wq - ow) / ow * g.cog / 16.0 < (32.0 / ow + 1.0) * 0.8;
}

// Y_g (cog x ohw) = W_g (cog x k) * im2col(x_g) (k x ohw) + bias, per group and run of images.
// Narrow images go several to a GEMM, side by side along its columns (into scratch, then copied
// out per image): the weights are packed once per run and no panel is cut short by an image edge.
template <typename T>
void forward_gemm(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  if (!g.pointwise && use_padded_planes(p, g)) return forward_gemm_padded(p, x, w, bias, y);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  constexpr int64_t kRunColumns = 2048;
  const int64_t images = g.pointwise ? 1 : std::clamp<int64_t>(kRunColumns / std::max<int64_t>(g.ohw, 1), 1, p.n);
  const int64_t runs = (p.n + images - 1) / images;
  const double work = double(g.cog) * g.k * g.ohw * images;
  for_items(runs * p.groups, work, gemm_threads(g.cog, g.ohw * images, g.k), [&](int64_t item, int nt) {
    const int64_t n0 = item / p.groups * images, n1 = std::min(p.n, n0 + images), grp = item % p.groups;
    const int64_t cols = (n1 - n0) * g.ohw;
    const T* xg = x + (n0 * p.c_in + grp * g.cig) * p.h * p.w;
    const StridedPackA<T> pack_w{w + grp * g.cog * g.k, g.k, 1};
    T* yg = y + (n0 * p.c_out + grp * g.cog) * g.ohw;
    T* c = n1 - n0 == 1 ? yg : workspace<T>(g.cog * cols, 1);
    auto run = [&](const auto& pack_x) {
      if (bias)
        gemm_packed(kern, g.cog, cols, g.k, T(1), pack_w, pack_x, T(0), c, cols, nt,
                    BiasEpilogue<T>{bias + grp * g.cog});
      else
        gemm_packed(kern, g.cog, cols, g.k, T(1), pack_w, pack_x, T(0), c, cols, nt);
    };
    if (g.pointwise)
      run(StridedPackB<T>{xg, g.ohw, 1});
    else
      run(Im2colPackB<T>{p, taps, xg, p.c_in * p.h * p.w});
    if (c != yg)
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t co = 0; co < g.cog; ++co)
          std::memcpy(yg + ((n - n0) * p.c_out + co) * g.ohw, c + co * cols + (n - n0) * g.ohw,
                      sizeof(T) * g.ohw);
  });
}

// Stride 1 with padding no larger than the kernel's reach, and enough input channels: grad_input
// is itself a convolution of grad_output with the flipped, transposed weight
// (w'[ci][co][i][j] = w[co][ci][kh-1-i][kw-1-j] per group) and padding dilation * (k - 1) - pad.
// Returns false when that does not apply.
template <typename T>
bool backward_input_as_forward(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  const int64_t pad_h = p.dilation_h * (p.kh - 1) - p.pad_h, pad_w = p.dilation_w * (p.kw - 1) - p.pad_w;
  if (p.stride_h != 1 || p.stride_w != 1 || pad_h < 0 || pad_w < 0) return false;
  const Geometry g = geometry(p);
  // That GEMM has only c_in / groups rows to spread the packing of its (c_out * kh * kw) x pixels
  // B operand over; with few input channels, dcol = W^T * dY (B: c_out x pixels, reused by every
  // tap) plus col2im is faster (LeNet's second layer: 1.3x).
  constexpr int64_t kMinInputChannels = 16;
  if (g.cig < kMinInputChannels) return false;
  T* wt = workspace<T>(p.c_out * g.k, 0);
  const int64_t khw = p.kh * p.kw;
  for (int64_t grp = 0; grp < p.groups; ++grp)
    for (int64_t co = 0; co < g.cog; ++co)
      for (int64_t ci = 0; ci < g.cig; ++ci) {
        const T* src = w + ((grp * g.cog + co) * g.cig + ci) * khw;
        T* dst = wt + ((grp * g.cig + ci) * g.cog + co) * khw;
        for (int64_t t = 0; t < khw; ++t) dst[t] = src[khw - 1 - t];
      }
  Conv2dParams q = p;
  q.c_in = p.c_out, q.c_out = p.c_in;
  q.h = p.out_h, q.w = p.out_w, q.out_h = p.h, q.out_w = p.w;
  q.pad_h = pad_h, q.pad_w = pad_w;
  forward_gemm<T>(q, dy, wt, nullptr, dx);
  return true;
}

// Otherwise: dcol = W_g^T * dY_g a band of output rows at a time (an L2-sized buffer), then col2im.
template <typename T>
void backward_input_gemm(const Conv2dParams& p, const T* dy, const T* w, T* dx) {
  if (backward_input_as_forward(p, dy, w, dx)) return;
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  constexpr int64_t kBandElements = int64_t{1} << 17;
  const int64_t rows = std::clamp<int64_t>(kBandElements / std::max<int64_t>(g.k * p.out_w, 1), 1, p.out_h);
  const double work = double(g.cog) * g.k * g.ohw;
  for_items(p.n * p.groups, work, gemm_threads(g.k, rows * p.out_w, g.cog), [&](int64_t item, int nt) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    const T* dyg = dy + (n * p.c_out + grp * g.cog) * g.ohw;
    const StridedPackA<T> pack_wt{w + grp * g.cog * g.k, 1, g.k};
    T* dxg = dx + (n * p.c_in + grp * g.cig) * p.h * p.w;
    std::memset(dxg, 0, sizeof(T) * g.cig * p.h * p.w);
    for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += rows) {
      const int64_t oh1 = std::min(p.out_h, oh0 + rows), cols = (oh1 - oh0) * p.out_w;
      T* col = static_cast<T*>(gemm_workspace(3, sizeof(T) * g.k * cols));
      gemm_packed(kern, g.k, cols, g.cog, T(1), pack_wt, StridedPackB<T>{dyg + oh0 * p.out_w, g.ohw, 1},
                  T(0), col, cols, nt);
      col2im(p, g, taps, col, oh0, oh1, dxg);
    }
  });
}

// dW_g = sum over images of dY_g * im2col(x_g)^T, with the GEMM's k running over the pixels of all
// images of a slice of the batch. The number of slices depends on the shape only; each slice
// has its own partial and the partials are added in slice order, so the bits are the same for
// any thread count (the GEMM itself never splits k).
template <typename T>
void backward_weight_gemm(const Conv2dParams& p, const T* dy, const T* x, T* dw) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  const int64_t wsize = p.c_out * g.k;
  constexpr int64_t kMaxSlices = 8, kMaxPartialElements = int64_t{1} << 20;
  const int64_t slices = std::clamp<int64_t>(kMaxPartialElements / std::max<int64_t>(wsize, 1), 1,
                                             std::min(kMaxSlices, std::max<int64_t>(p.n, 1)));
  T* partials = workspace<T>(std::max<int64_t>(slices - 1, 0) * wsize, 1);
  auto slice_output = [&](int64_t s) { return s == 0 ? dw : partials + (s - 1) * wsize; };
  const double work = double(g.cog) * g.k * g.ohw * p.n / slices;
  for_items(slices * p.groups, work, gemm_threads(g.cog, g.k, g.ohw * p.n / slices), [&](int64_t item, int nt) {
    const int64_t s = item / p.groups, grp = item % p.groups;
    const int64_t n0 = p.n * s / slices, n1 = p.n * (s + 1) / slices;
    const BatchPackA<T> pack_dy{dy + (n0 * p.c_out + grp * g.cog) * g.ohw, p.c_out * g.ohw, g.ohw};
    const BatchIm2colPackB<T> pack_x{p, taps, x + (n0 * p.c_in + grp * g.cig) * p.h * p.w};
    gemm_packed(kern, g.cog, g.k, (n1 - n0) * g.ohw, T(1), pack_dy, pack_x, T(0),
                slice_output(s) + grp * g.cog * g.k, g.k, nt);
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

// One input channel per group.
bool use_depthwise(const Conv2dParams& p) { return p.c_in == p.groups; }

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
