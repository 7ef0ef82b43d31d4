// nhwc_gemm_im2col: implicit GEMM on NHWC arrays, the pixels of all images as the GEMM's rows and
// the channels as its contiguous depth (k = tap * cig + ci, the order of an OHWI weight). The
// im2col matrix is never built: its rows are runs of cig channels of the input, gathered straight
// into the driver's packed panels. Takes any NHWC problem; every pass.
//   forward      Y_g (pixels x cog) = im2col(x_g) (pixels x k) * W_g^T + bias, written in place
//                (row stride c_out).
//   grad_input   dcol = dY_g * W_g (a band of pixels at a time, an L2-sized buffer), then col2im:
//                runs of cig channels added into grad_input.
//   grad_weight  dW_g (cog x k) = dY_g^T * im2col(x_g), or its transpose where that fills the
//                register tiles better, the GEMM's depth running over the pixels of a slice of the
//                batch (sliced_grad_weight).
#include <vector>

#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

// An output pixel of the flat range over all images, stepped along without divisions.
struct Pixel {
  int64_t n, oh, ow;
  Pixel(const Conv2dParams& p, int64_t q)
      : n(q / (p.out_h * p.out_w)), oh(q % (p.out_h * p.out_w) / p.out_w), ow(q % p.out_w) {}
  void next(const Conv2dParams& p) {
    if (++ow < p.out_w) return;
    ow = 0;
    if (++oh == p.out_h) oh = 0, ++n;
  }
};

// Whether the window at input row ih0, column iw0 lies inside the input (dilation_w 1).
inline bool window_inside(const Conv2dParams& p, int64_t ih0, int64_t iw0) {
  return ih0 >= 0 && ih0 + (p.kh - 1) * p.dilation_h < p.h && iw0 >= 0 && iw0 + p.kw <= p.w;
}

// Column k of an im2col row: kernel tap (i, j), channel ci of the group.
struct Column {
  int64_t i, j, ci;
  Column(const Conv2dParams& p, int64_t cig, int64_t k) : i(k / cig / p.kw), j(k / cig % p.kw), ci(k % cig) {}
};

// Columns [k, k + len) of the im2col row of output pixel px, into d: runs of channels, zeros
// where a tap falls in the padding. A kernel row's taps inside the input are one run of
// kw * cig values when the dilation is 1 and the groups are one (adjacent pixels' channels follow
// each other). xg: the group's first channel of the first image.
template <typename T>
inline void im2col_row(const Conv2dParams& p, int64_t cig, const T* xg, const Pixel& px, Column k,
                       int64_t len, T* d) {
  const int64_t ih0 = px.oh * p.stride_h - p.pad_h, iw0 = px.ow * p.stride_w - p.pad_w;
  const bool rows_run = p.dilation_w == 1 && cig == p.c_in;
  const T* image = xg + px.n * p.h * p.w * p.c_in;
  const int64_t row_len = p.kw * cig;
  if (rows_run && k.i == 0 && k.j == 0 && k.ci == 0 && len == p.kh * row_len && window_inside(p, ih0, iw0)) {
    for (int64_t i = 0; i < p.kh; ++i) {
      const T* src = image + ((ih0 + i * p.dilation_h) * p.w + iw0) * p.c_in;
#pragma omp simd
      for (int64_t t = 0; t < row_len; ++t) d[i * row_len + t] = src[t];
    }
    return;
  }
  for (int64_t done = 0; done < len;) {
    const int64_t ih = ih0 + k.i * p.dilation_h, iw = iw0 + k.j * p.dilation_w;
    const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
    // Taps j .. j_end - 1 of this kernel row: inside the input and one run, or one padding tap.
    const int64_t j_end = inside && rows_run ? std::min(p.kw, p.w - iw0) : k.j + 1;
    const int64_t full = (j_end - k.j) * cig - k.ci, run = std::min(full, len - done);
    T* out = d + done;
    if (inside) {
      const T* src = image + (ih * p.w + iw) * p.c_in + k.ci;
#pragma omp simd
      for (int64_t t = 0; t < run; ++t) out[t] = src[t];
    } else {
      for (int64_t t = 0; t < run; ++t) out[t] = T(0);
    }
    done += run;
    if (run < full) break;  // the range ends inside this run
    k.ci = 0, k.j = j_end;
    if (k.j == p.kw) k.j = 0, ++k.i;
  }
}

// The forward's A operand: A(q, k) = im2col row q. Where a block holds whole kernel rows, each
// one a single run of kw * cig channels (dilation 1, one group), the pixels of a panel that lie on
// one output row with the whole window inside the input's width read a kernel row as a strided
// matrix (pixel stride stride_w * c_in), transposed straight into the panel. The other pixels'
// rows are gathered into the thread's packing scratch, then copied in.
template <typename T>
struct Im2colRowsPackA {
  const Conv2dParams& p;
  int64_t cig;
  const T* xg;
  const Arena& arena;
  void operator()(int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, T* dst) const {
    T* rows = arena.packing<T>();
    const Column k(p, cig, k0);
    Pixel px(p, i0);
    const int64_t row_len = p.kw * cig;
    const bool kernel_rows = p.dilation_w == 1 && cig == p.c_in && k0 % row_len == 0 && kc % row_len == 0;
    // Output columns [ow_lo, ow_hi) have their whole window inside the input's width.
    const int64_t ow_lo = std::min(p.out_w, (p.pad_w + p.stride_w - 1) / p.stride_w);
    const int64_t ow_hi = std::max(ow_lo, std::min(p.out_w, floor_div(p.w - p.kw + p.pad_w, p.stride_w) + 1));
    for (int64_t r0 = 0; r0 < mc; r0 += mr, dst += mr * kc) {
      const int64_t count = std::min(mr, mc - r0);
      if (!kernel_rows) {
        for (int64_t r = 0; r < count; ++r, px.next(p)) im2col_row(p, cig, xg, px, k, kc, rows + r * kc);
        detail::pack_panels_any(rows, 1, kc, kc, count, mr, dst);
        continue;
      }
      for (int64_t r = count; r < mr; ++r)
        for (int64_t c = 0; c < kc; ++c) dst[c * mr + r] = T(0);
      for (int64_t r = 0; r < count;) {  // a run of pixels on one output row
        const int64_t run = std::min(count - r, p.out_w - px.ow);
        const int64_t a = std::clamp(ow_lo - px.ow, int64_t{0}, run), b = std::clamp(ow_hi - px.ow, a, run);
        const T* image = xg + px.n * p.h * p.w * p.c_in;
        for (int64_t i = 0; i < kc / row_len; ++i) {
          const int64_t ih = px.oh * p.stride_h - p.pad_h + (k.i + i) * p.dilation_h;
          T* d = dst + i * row_len * mr + r + a;
          if (ih < 0 || ih >= p.h) {
            for (int64_t c = 0; c < row_len; ++c)
              for (int64_t t = 0; t < b - a; ++t) d[c * mr + t] = T(0);
            continue;
          }
          const int64_t iw = (px.ow + a) * p.stride_w - p.pad_w;
          detail::pack_columns(image + (ih * p.w + iw) * p.c_in, p.stride_w * p.c_in, row_len, b - a, mr, d);
        }
        for (int64_t t = 0; t < run; ++t) {  // pixels whose window crosses the left or right edge
          if (t == a) t = b;
          if (t >= run) break;
          Pixel edge = px;
          edge.ow += t;
          im2col_row(p, cig, xg, edge, k, kc, rows);
          for (int64_t c = 0; c < kc; ++c) dst[c * mr + r + t] = rows[c];
        }
        for (int64_t t = 0; t < run; ++t) px.next(p);
        r += run;
      }
    }
  }
};

inline bool pointwise(const Conv2dParams& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// Panels whose rows are pieces of im2col rows, for the columns [k0, k0 + nk) (panels `width`
// wide, the last zero-padded) and the pixels [q, q + count): dst[panel][pixel][width]. Where each
// kernel row is one run of kw * cig values (dilation_w 1, one group), a pixel whose whole window
// lies inside the input copies its runs straight into the panels, cut where a panel ends (the
// cuts are the same for every such pixel); any other pixel's piece of its row is gathered once,
// into `row` (nk values), then cut into the panels.
template <typename T>
void pack_im2col_pieces(const Conv2dParams& p, int64_t cig, const T* xg, int64_t q, int64_t count, int64_t k0,
                        int64_t nk, int64_t width, T* dst, T* row) {
  const Column k(p, cig, k0);
  const int64_t panel = width * count;
  struct Cut {
    int64_t src, dst, len;  // src: from the window's first value; dst: from the pixel's first panel row
  };
  std::vector<Cut> cuts;
  const int64_t row_len = p.kw * cig;
  const bool runs = p.dilation_w == 1 && cig == p.c_in;
  for (int64_t t = k0; runs && t < k0 + nk;) {
    const int64_t v = t - k0, off = t % row_len;
    const int64_t len = std::min({row_len - off, width - v % width, k0 + nk - t});
    cuts.push_back({t / row_len * p.dilation_h * p.w * p.c_in + off, v / width * panel + v % width, len});
    t += len;
  }
  const int64_t last_panel = (nk - 1) / width * panel, used = nk - (nk - 1) / width * width;
  Pixel px(p, q);
  for (int64_t r = 0; r < count; ++r, px.next(p)) {
    T* d = dst + r * width;
    const int64_t ih0 = px.oh * p.stride_h - p.pad_h, iw0 = px.ow * p.stride_w - p.pad_w;
    if (runs && window_inside(p, ih0, iw0)) {
      const T* window = xg + ((px.n * p.h + ih0) * p.w + iw0) * p.c_in;
      for (const Cut& cut : cuts) {
        const T* src = window + cut.src;
        T* out = d + cut.dst;
#pragma omp simd
        for (int64_t t = 0; t < cut.len; ++t) out[t] = src[t];
      }
      for (int64_t t = used; t < width; ++t) d[last_panel + t] = T(0);
      continue;
    }
    im2col_row(p, cig, xg, px, k, nk, row);
    int64_t t0 = 0;
    for (; t0 + width <= nk; t0 += width, d += panel) std::memcpy(d, row + t0, sizeof(T) * width);
    if (t0 < nk) {
      std::memcpy(d, row + t0, sizeof(T) * (nk - t0));
      for (int64_t t = nk - t0; t < width; ++t) d[t] = T(0);
    }
  }
}

// grad_weight's B operand: B(q, k) = im2col row q0 + q.
template <typename T>
struct Im2colColumnsPackB {
  const Conv2dParams& p;
  int64_t cig;
  const T* xg;
  int64_t q0;
  const Arena& arena;
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    if (pointwise(p))  // the im2col matrix is the input itself
      detail::pack_panels_any(xg + (q0 + k0) * p.c_in + j0, p.c_in, 1, kc, nc, nr, dst);
    else
      pack_im2col_pieces(p, cig, xg, q0 + k0, kc, j0, nc, nr, dst, arena.packing<T>());
  }
};

// The weight gradient's transpose as a GEMM, dW_g^T (k x cog) = im2col(x_g)^T * dY_g, when its
// shape fills the register tiles better: A(k, q) = im2col row q0 + q.
template <typename T>
struct Im2colTransposedPackA {
  const Conv2dParams& p;
  int64_t cig;
  const T* xg;
  int64_t q0;
  const Arena& arena;
  void operator()(int64_t i0, int64_t mc, int64_t k0, int64_t kc, int64_t mr, T* dst) const {
    pack_im2col_pieces(p, cig, xg, q0 + k0, kc, i0, mc, mr, dst, arena.packing<T>());
  }
};

// Whether grad_weight runs as its transpose: the padding of the rows to the register tile's MR
// and of the columns to its NR wastes less.
template <typename T>
bool transposed_grad_weight(const Geometry& g) {
  const GemmKernel<T> kern = gemm_kernel<T>();
  const auto padded = [&](int64_t rows, int64_t cols) {
    return detail::round_up(rows, kern.mr) * detail::round_up(cols, kern.nr);
  };
  return 10 * padded(g.k, g.cog) < 9 * padded(g.cog, g.k);
}

// The adjoint of im2col_row for the pixels [q0, q0 + count): dx += col, col's rows of k.
template <typename T>
void col2im(const Conv2dParams& p, const Geometry& g, const T* col, int64_t q0, int64_t count, T* dxg) {
  // With one group and no dilation along the width, a kernel row's taps are adjacent pixels of
  // dx and adjacent runs of col: a single run of kw * cig values (runs of cig alone are short
  // where there are few channels: 25 runs of 6 values per pixel in LeNet's second layer).
  const bool contiguous_taps = g.cig == p.c_in && p.dilation_w == 1;
  for (int64_t q = q0; q < q0 + count; ++q, col += g.k) {
    const int64_t n = q / g.ohw, oh = q % g.ohw / p.out_w, ow = q % p.out_w;
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
      if (ih < 0 || ih >= p.h) continue;
      if (contiguous_taps) {  // the kernel row's taps inside the image, as one run
        const int64_t iw0 = ow * p.stride_w - p.pad_w;
        const int64_t j0 = std::max<int64_t>(0, -iw0), j1 = std::min<int64_t>(p.kw, p.w - iw0);
        if (j0 >= j1) continue;
        T* d = dxg + ((n * p.h + ih) * p.w + iw0 + j0) * p.c_in;
        const T* s = col + (i * p.kw + j0) * g.cig;
#pragma omp simd
        for (int64_t e = 0; e < (j1 - j0) * g.cig; ++e) d[e] += s[e];
        continue;
      }
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dilation_w;
        if (iw < 0 || iw >= p.w) continue;
        T* d = dxg + ((n * p.h + ih) * p.w + iw) * p.c_in;
        const T* s = col + (i * p.kw + j) * g.cig;
#pragma omp simd
        for (int64_t ci = 0; ci < g.cig; ++ci) d[ci] += s[ci];
      }
    }
  }
}

// Pixels per grad_input band: a dcol buffer of about 2^17 elements.
int64_t dcol_pixels(const Geometry& g) {
  constexpr int64_t kBandElements = int64_t{1} << 17;
  return std::clamp<int64_t>(kBandElements / std::max<int64_t>(g.k, 1), 1, std::max<int64_t>(g.ohw, 1));
}

template <typename T, typename PackBOf>
void forward(const Conv2dParams& p, const Arena& arena, const T* x, const T* w, const T* bias, T* y,
             const PackBOf& pack_w) {
  const int64_t cig = p.c_in / p.groups;
  nhwc_forward(p, w, bias, y, [&](int64_t grp) { return Im2colRowsPackA<T>{p, cig, x + grp * cig, arena}; },
               pack_w);
}

template <typename T>
void grad_input(const Conv2dParams& p, const Arena& arena, const T* dy, const T* w, T* dx) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const int64_t band = dcol_pixels(g);
  std::memset(dx, 0, sizeof(T) * p.n * p.h * p.w * p.c_in);
  // Items (image, group) write disjoint elements of dx.
  const double work = double(g.cog) * g.k * g.ohw;
  for_items(p.n * p.groups, work, gemm_threads(band, g.k, g.cog), [&](int64_t item, int nt) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    const StridedPackB<T> pack_w{w + grp * g.cog * g.k, g.k, 1};  // B(co, k) = w[co][k]
    T* col = arena.item<T>();
    for (int64_t q0 = n * g.ohw; q0 < (n + 1) * g.ohw; q0 += band) {
      const int64_t count = std::min(band, (n + 1) * g.ohw - q0);
      const StridedPackA<T> pack_dy{dy + q0 * p.c_out + grp * g.cog, p.c_out, 1};
      gemm_packed(kern, count, g.k, g.cog, T(1), pack_dy, pack_w, T(0), col, g.k, nt);
      col2im(p, g, col, q0, count, dx + grp * g.cig);
    }
  });
}

template <typename T>
void grad_weight(const Conv2dParams& p, const Arena& arena, const T* dy, const T* x, T* dw) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const bool transposed = transposed_grad_weight<T>(g);
  sliced_grad_weight(p, g, arena, dw, [&](int64_t grp, int64_t n0, int64_t n1, T* dwg, int nt) {
    const int64_t q0 = n0 * g.ohw, pixels = (n1 - n0) * g.ohw;
    if (transposed) {  // into the item's scratch, then transposed into dW
      T* dwt = arena.item<T>();
      const Im2colTransposedPackA<T> pack_x{p, g.cig, x + grp * g.cig, q0, arena};
      const StridedPackB<T> pack_dy{dy + q0 * p.c_out + grp * g.cog, p.c_out, 1};  // B(q, co)
      gemm_packed(kern, g.k, g.cog, pixels, T(1), pack_x, pack_dy, T(0), dwt, g.cog, nt);
      for (int64_t co = 0; co < g.cog; ++co)
        for (int64_t k = 0; k < g.k; ++k) dwg[co * g.k + k] = dwt[k * g.cog + co];
      return;
    }
    const StridedPackA<T> pack_dy{dy + q0 * p.c_out + grp * g.cog, 1, p.c_out};  // A(co, q)
    const Im2colColumnsPackB<T> pack_x{p, g.cig, x + grp * g.cig, q0, arena};
    gemm_packed(kern, g.cog, g.k, pixels, T(1), pack_dy, pack_x, T(0), dwg, g.k, nt);
  });
}

template <typename T>
size_t rows_scratch_bytes(const GemmKernel<T>& kern) {
  return sizeof(T) * kern.mr * kern.kc;
}

}  // namespace

// The entries of the list.

bool nhwc_gemm_im2col_applies(const Conv2dParams& p, Pass) { return p.channels_last; }

Workspace nhwc_gemm_im2col_workspace(const Conv2dParams& p, Pass pass, int) {
  const Geometry g = geometry(p);
  Workspace ws;
  if (pass == Pass::forward)
    ws.packing = p.dtype == DType::f32 ? rows_scratch_bytes(gemm_kernel<float>())
                                       : rows_scratch_bytes(gemm_kernel<double>());
  else if (pass == Pass::grad_input)
    ws.item = size_t(dtype_size(p.dtype)) * g.k * dcol_pixels(g);
  else {
    ws.shared = weight_partials_bytes(p, g);
    ws.packing = size_t(dtype_size(p.dtype)) * g.k;  // an im2col row (pack_im2col_pieces)
    const bool transposed = p.dtype == DType::f32 ? transposed_grad_weight<float>(g)
                                                  : transposed_grad_weight<double>(g);
    if (transposed) ws.item = size_t(dtype_size(p.dtype)) * g.k * g.cog;
  }
  return ws;
}

bool nhwc_gemm_im2col_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                              const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, arena, typed..., WeightPackBOf{}); });
}

bool nhwc_gemm_im2col_flipped_weight_forward(const Conv2dParams& p, const Arena& arena, const void* x,
                                             const void* w, const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y,
                       [&](auto... typed) { forward(p, arena, typed..., FlippedWeightPackBOf{}); });
}

void nhwc_gemm_im2col_grad_input(const Conv2dParams& p, const Arena& arena, const void* dy, const void* w,
                                 void* dx) {
  typed_backward(p, dy, w, dx, [&](auto... typed) { grad_input(p, arena, typed...); });
}

bool nhwc_gemm_im2col_grad_weight(const Conv2dParams& p, const Arena& arena, const void* dy, const void* x,
                                  void* dw) {
  typed_backward(p, dy, x, dw, [&](auto... typed) { grad_weight(p, arena, typed...); });
  return true;
}

}  // namespace convforge::cpu::conv
