// gemm_im2col: implicit GEMM on im2col columns gathered straight into the driver's packed panels
// (the im2col matrix is never built). Takes any problem; every pass.
//   forward      Y_g (cog x ohw) = W_g (cog x k) * im2col(x_g) (k x ohw) + bias. Narrow images go
//                several to a GEMM, side by side along its columns (into scratch, then copied out
//                per image): the weights are packed once per run, no panel is cut by an image edge.
//   grad_input   dcol = W_g^T * dY_g a band of output rows at a time (an L2-sized buffer), then
//                col2im.
//   grad_weight  dW_g = sum over images of dY_g * im2col(x_g)^T, the GEMM's k running over the
//                pixels of all images of a slice of the batch; the partials of the slices (their
//                number depends on the shape only) are added in slice order.
#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

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

// The packing scratch of BatchIm2colPackB for a k block of at most kc pixels: the row segments,
// then the gathered runs (64-byte aligned).
template <typename T>
size_t batch_im2col_scratch_bytes(const GemmKernel<T>& kern) {
  return detail::round_up(sizeof(Segment) * (kern.kc + 2), 64) + sizeof(T) * kern.nr * kern.kc;
}

template <typename T>
struct BatchIm2colPackB {
  const Conv2dParams& p;
  const TapTable& taps;
  const T* x;  // the group's first input channel of the slice's first image
  const Arena& arena;
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    const int64_t khw = p.kh * p.kw, plane = p.h * p.w;
    auto* seg = arena.packing<Segment>();
    const int64_t segments = row_segments(k0, kc, p.out_w, p.out_h * p.out_w, seg);
    // Each tap's values along the pixels are gathered into a contiguous run, then the runs are
    // transposed into the panel: contiguous copies both ways instead of one store per value.
    T* runs = reinterpret_cast<T*>(arena.packing<char>() + detail::round_up(sizeof(Segment) * (kc + 2), 64));
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

// Images per forward GEMM: about 2048 columns.
int64_t forward_images(const Conv2dParams& p, const Geometry& g) {
  constexpr int64_t kRunColumns = 2048;
  return std::clamp<int64_t>(kRunColumns / std::max<int64_t>(g.ohw, 1), 1, p.n);
}

// Output rows per grad_input band: a dcol buffer of about 2^17 elements.
int64_t dcol_rows(const Conv2dParams& p, const Geometry& g) {
  constexpr int64_t kBandElements = int64_t{1} << 17;
  return std::clamp<int64_t>(kBandElements / std::max<int64_t>(g.k * p.out_w, 1), 1, p.out_h);
}

template <typename T>
void forward(const Conv2dParams& p, const Arena& arena, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  const int64_t images = forward_images(p, g);
  const int64_t runs = (p.n + images - 1) / images;
  const double work = double(g.cog) * g.k * g.ohw * images;
  for_items(runs * p.groups, work, gemm_threads(g.cog, g.ohw * images, g.k), [&](int64_t item, int nt) {
    const int64_t n0 = item / p.groups * images, n1 = std::min(p.n, n0 + images), grp = item % p.groups;
    const int64_t cols = (n1 - n0) * g.ohw;
    const T* xg = x + (n0 * p.c_in + grp * g.cig) * p.h * p.w;
    const StridedPackA<T> pack_w{w + grp * g.cog * g.k, g.k, 1};
    const Im2colPackB<T> pack_x{p, taps, xg, p.c_in * p.h * p.w};
    T* yg = y + (n0 * p.c_out + grp * g.cog) * g.ohw;
    T* c = n1 - n0 == 1 ? yg : arena.item<T>();
    if (bias)
      gemm_packed(kern, g.cog, cols, g.k, T(1), pack_w, pack_x, T(0), c, cols, nt,
                  BiasEpilogue<T>{bias + grp * g.cog});
    else
      gemm_packed(kern, g.cog, cols, g.k, T(1), pack_w, pack_x, T(0), c, cols, nt);
    if (c != yg)
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t co = 0; co < g.cog; ++co)
          std::memcpy(yg + ((n - n0) * p.c_out + co) * g.ohw, c + co * cols + (n - n0) * g.ohw,
                      sizeof(T) * g.ohw);
  });
}

template <typename T>
void grad_input(const Conv2dParams& p, const Arena& arena, const T* dy, const T* w, T* dx) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  const int64_t rows = dcol_rows(p, g);
  const double work = double(g.cog) * g.k * g.ohw;
  for_items(p.n * p.groups, work, gemm_threads(g.k, rows * p.out_w, g.cog), [&](int64_t item, int nt) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    const T* dyg = dy + (n * p.c_out + grp * g.cog) * g.ohw;
    const StridedPackA<T> pack_wt{w + grp * g.cog * g.k, 1, g.k};
    T* dxg = dx + (n * p.c_in + grp * g.cig) * p.h * p.w;
    std::memset(dxg, 0, sizeof(T) * g.cig * p.h * p.w);
    T* col = arena.item<T>();
    for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += rows) {
      const int64_t oh1 = std::min(p.out_h, oh0 + rows), cols = (oh1 - oh0) * p.out_w;
      gemm_packed(kern, g.k, cols, g.cog, T(1), pack_wt, StridedPackB<T>{dyg + oh0 * p.out_w, g.ohw, 1},
                  T(0), col, cols, nt);
      col2im(p, g, taps, col, oh0, oh1, dxg);
    }
  });
}

template <typename T>
void grad_weight(const Conv2dParams& p, const Arena& arena, const T* dy, const T* x, T* dw) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const TapTable taps(p);
  sliced_grad_weight(p, g, arena, dw, [&](int64_t grp, int64_t n0, int64_t n1, T* dwg, int nt) {
    const BatchPackA<T> pack_dy{dy + (n0 * p.c_out + grp * g.cog) * g.ohw, p.c_out * g.ohw, g.ohw};
    const BatchIm2colPackB<T> pack_x{p, taps, x + (n0 * p.c_in + grp * g.cig) * p.h * p.w, arena};
    gemm_packed(kern, g.cog, g.k, (n1 - n0) * g.ohw, T(1), pack_dy, pack_x, T(0), dwg, g.k, nt);
  });
}

}  // namespace

// The entries of the list.

bool gemm_im2col_applies(const Conv2dParams& p, Pass) { return !p.channels_last; }

Workspace gemm_im2col_workspace(const Conv2dParams& p, Pass pass, int) {
  const Geometry g = geometry(p);
  const size_t size = dtype_size(p.dtype);
  Workspace ws;
  if (pass == Pass::forward) {
    const int64_t images = forward_images(p, g);
    if (images > 1) ws.item = size * g.cog * images * g.ohw;
  } else if (pass == Pass::grad_input) {
    ws.item = size * g.k * dcol_rows(p, g) * p.out_w;
  } else {
    ws.shared = weight_partials_bytes(p, g);
    ws.packing = p.dtype == DType::f32 ? batch_im2col_scratch_bytes(gemm_kernel<float>())
                                       : batch_im2col_scratch_bytes(gemm_kernel<double>());
  }
  return ws;
}

bool gemm_im2col_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                         const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, arena, typed...); });
}

void gemm_im2col_grad_input(const Conv2dParams& p, const Arena& arena, const void* dy, const void* w,
                            void* dx) {
  typed_backward(p, dy, w, dx, [&](auto... typed) { grad_input(p, arena, typed...); });
}

bool gemm_im2col_grad_weight(const Conv2dParams& p, const Arena& arena, const void* dy, const void* x,
                             void* dw) {
  typed_backward(p, dy, x, dw, [&](auto... typed) { grad_weight(p, arena, typed...); });
  return true;
}

}  // namespace convforge::cpu::conv
