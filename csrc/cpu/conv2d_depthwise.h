// Direct conv2d for one input channel per group (depthwise, and any conv with C_in / groups == 1
// such as a first layer on a grey image): memory-bound, so it works plane by plane with the plane
// in L1 and vectorizes along the width, one pass over an output row per kernel tap.
//
// The loops are written once here and compiled per ISA: conv2d_depthwise__<isa>.cpp includes this
// header with only its own ISA's flags and instantiates the entry points declared at the bottom.
// No std containers here (scratch comes from core/scratch.h): see the ISA isolation note there.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/scratch.h"
#include "cpu/conv2d_common.h"
#include "cpu/simd_vector.h"
#include "cpu/isa_table.h"
#include "ops.h"

namespace convforge::cpu {

// Internal linkage: every per-ISA translation unit keeps its own copy of these templates (with
// external linkage the linker would keep one instantiation, compiled for one ISA, for all).
namespace {
namespace depthwise {

// y[lo:hi] += w * x[(lo:hi) * S], S the width stride (1 at compile time for the common case).
template <typename T, int S>
inline void axpy_row(T* __restrict y, const T* __restrict x, T w, int64_t n, int64_t stride) {
  const int64_t s = S ? S : stride;
  for (int64_t k = 0; k < n; ++k) y[k] += w * x[k * s];
}
// y[(lo:hi) * S] += w * x[lo:hi]
template <typename T, int S>
inline void axpy_row_scatter(T* __restrict y, const T* __restrict x, T w, int64_t n, int64_t stride) {
  const int64_t s = S ? S : stride;
  for (int64_t k = 0; k < n; ++k) y[k * s] += w * x[k];
}
template <typename T, int S>
inline T dot_row(const T* __restrict a, const T* __restrict x, int64_t n, int64_t stride) {
  const int64_t s = S ? S : stride;
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < n; ++k) acc += a[k] * x[k * s];
  return acc;
}

// dst (rows x cols) = the plane x (h x w) placed at row pad_h and column pad_w, zero elsewhere;
// what falls outside dst is dropped.
template <typename T>
void pad_plane(const T* x, int64_t h, int64_t w, int64_t pad_h, int64_t pad_w, int64_t rows,
               int64_t cols, T* dst) {
  const int64_t c0 = std::clamp<int64_t>(pad_w, 0, cols), c1 = std::clamp<int64_t>(pad_w + w, c0, cols);
  for (int64_t r = 0; r < rows; ++r, dst += cols) {
    const int64_t ih = r - pad_h;
    std::fill(dst, dst + cols, T(0));
    if (ih >= 0 && ih < h && c1 > c0) std::memcpy(dst + c0, x + ih * w + c0 - pad_w, sizeof(T) * (c1 - c0));
  }
}

// One output row of a plane with one pass per kernel tap: any stride, any width.
template <typename T, int S>
void forward_row(const Conv2dParams& p, const TapTable& t, const T* xp, const T* wp, T bias,
                 int64_t oh, T* yr) {
  std::fill(yr, yr + p.out_w, bias);
  for (int64_t c = 0; c < p.c_in / p.groups; ++c, xp += p.h * p.w, wp += p.kh * p.kw)
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
      if (ih < 0 || ih >= p.h) continue;
      const T* xr = xp + ih * p.w;
      for (int64_t j = 0; j < p.kw; ++j)
        axpy_row<T, S>(yr + t.lo[j], xr + t.src[j], wp[i * p.kw + j], t.hi[j] - t.lo[j], p.stride_w);
    }
}

// Unit width stride, blocks of kRows output rows x one vector of columns with the sums in
// registers across all taps. Columns [lo, hi) are those every tap reaches inside the input
// (hi - lo >= one vector); the last block overlaps the previous one rather than running short.
// The few columns outside [lo, hi) go through a per-column loop.
template <typename T>
void forward_rows_blocked(const Conv2dParams& p, const T* xp, const T* wp, T bias, int64_t lo,
                          int64_t hi, const T* zeros, T* yp) {
  using V = typename Vec<T>::type;
  constexpr int64_t kRows = 4, L = Vec<T>::size;
  const int64_t channels = p.c_in / p.groups;
  for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += kRows) {
    const int64_t rows = std::min(kRows, p.out_h - oh0);
    for (int64_t ow = lo;; ow += L) {
      ow = std::min(ow, hi - L);
      V acc[kRows];
      for (int64_t r = 0; r < kRows; ++r) acc[r] = V{} + bias;
      for (int64_t c = 0; c < channels; ++c) {
        const T* xc = xp + c * p.h * p.w;
        const T* wc = wp + c * p.kh * p.kw;
        for (int64_t i = 0; i < p.kh; ++i) {
          const T* row[kRows];
          for (int64_t r = 0; r < kRows; ++r) {
            const int64_t ih = (oh0 + r) * p.stride_h - p.pad_h + i * p.dilation_h;
            row[r] = (r < rows && ih >= 0 && ih < p.h ? xc + ih * p.w : zeros) + ow - p.pad_w;
          }
          for (int64_t j = 0; j < p.kw; ++j) {
            const T wv = wc[i * p.kw + j];
            const int64_t off = j * p.dilation_w;
            for (int64_t r = 0; r < kRows; ++r) acc[r] += wv * Vec<T>::load(row[r] + off);
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) Vec<T>::store(yp + (oh0 + r) * p.out_w + ow, acc[r]);
      if (ow + L >= hi) break;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t oh = oh0 + r;
      auto edge = [&](int64_t ow) {
        T acc = bias;
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t iw = ow - p.pad_w + j * p.dilation_w;
              if (iw >= 0 && iw < p.w)
                acc += wp[(c * p.kh + i) * p.kw + j] * xp[(c * p.h + ih) * p.w + iw];
            }
          }
        yp[oh * p.out_w + ow] = acc;
      };
      for (int64_t ow = 0; ow < lo; ++ow) edge(ow);
      for (int64_t ow = hi; ow < p.out_w; ++ow) edge(ow);
    }
  }
}

// The same for unit strides, unit row dilation and a KH x KW kernel known at compile time, on a
// padded plane (every tap inside): each input row of a block of kRows output rows is loaded once
// per kernel column and feeds every output row it reaches, so a 3x3 kernel needs 10 loads for
// 24 multiply-adds per column where the generic loop needs one load per multiply-add.
template <typename T, int KH, int KW>
void forward_rows_tiled(const Conv2dParams& p, const T* xp, const T* wp, T bias, T* yp) {
  using V = typename Vec<T>::type;
  constexpr int kRows = 8, kInputRows = kRows + KH - 1;
  constexpr int64_t L = Vec<T>::size;
  const int64_t channels = p.c_in / p.groups;
  for (int64_t oh0 = 0; oh0 < p.out_h; oh0 += kRows) {
    const int64_t rows = std::min<int64_t>(kRows, p.out_h - oh0);
    for (int64_t ow = 0;; ow += L) {
      ow = std::min(ow, p.out_w - L);  // the last block overlaps the previous one
      V acc[kRows];
      for (auto& a : acc) a = V{} + bias;
      for (int64_t c = 0; c < channels; ++c) {
        const T* in[kInputRows];  // rows past the plane (last block) feed only rows not stored
        for (int rr = 0; rr < kInputRows; ++rr)
          in[rr] = xp + (c * p.h + std::min<int64_t>(oh0 + rr, p.h - 1)) * p.w + ow;
        const T* wc = wp + c * KH * KW;
        for (int j = 0; j < KW; ++j) {
          V xv[kInputRows];
          for (int rr = 0; rr < kInputRows; ++rr) xv[rr] = Vec<T>::load(in[rr] + j * p.dilation_w);
          for (int i = 0; i < KH; ++i) {
            const V wv = V{} + wc[i * KW + j];
            for (int r = 0; r < kRows; ++r) acc[r] += wv * xv[r + i];
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) Vec<T>::store(yp + (oh0 + r) * p.out_w + ow, acc[r]);
      if (ow + L >= p.out_w) break;
    }
  }
}

// Output planes [begin, end) of n * c_out. Written for one input channel per group, it also
// takes a few (the input gradient of a layer with few output channels per group runs here).
template <typename T, int S>
void forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y, int64_t begin,
             int64_t end) {
  const int64_t cog = p.c_out / p.groups, cig = p.c_in / p.groups, ohw = p.out_h * p.out_w;
  if (S == 1 && p.out_w >= Vec<T>::size) {
    // The group's input planes are copied into zero-padded planes holding exactly the rows and
    // columns the taps reach, so that every output column takes the vector loop.
    Conv2dParams q = p;
    q.h = (p.out_h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
    q.w = p.out_w + (p.kw - 1) * p.dilation_w;
    q.pad_h = q.pad_w = 0;
    const int64_t plane_in = q.h * q.w;
    using Tiled = void (*)(const Conv2dParams&, const T*, const T*, T, T*);
    Tiled tiled = nullptr;  // the common kernel sizes
    if (p.stride_h == 1 && p.dilation_h == 1) {
      if (p.kh == 3 && p.kw == 3) tiled = forward_rows_tiled<T, 3, 3>;
      if (p.kh == 5 && p.kw == 5) tiled = forward_rows_tiled<T, 5, 5>;
    }
    thread_local Scratch padded_buf;
    T* const padded = scratch_array<T>(padded_buf, cig * plane_in);
    int64_t cached = -1;  // (image, group) whose planes are in `padded`
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t n = plane / p.c_out, co = plane % p.c_out, grp = co / cog;
      if (n * p.groups + grp != cached) {
        cached = n * p.groups + grp;
        for (int64_t c = 0; c < cig; ++c)
          pad_plane(x + (n * p.c_in + grp * cig + c) * p.h * p.w, p.h, p.w, p.pad_h, p.pad_w, q.h, q.w,
                    padded + c * plane_in);
      }
      const T* wc = w + co * cig * p.kh * p.kw;
      const T bias = b ? b[co] : T(0);
      T* yp = y + plane * ohw;
      if (tiled)
        tiled(q, padded, wc, bias, yp);
      else
        forward_rows_blocked(q, padded, wc, bias, 0, p.out_w, padded, yp);
    }
    return;
  }
  const TapTable t(p);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / p.c_out, co = plane % p.c_out, ci = co / cog * cig;
    const T* xp = x + (n * p.c_in + ci) * p.h * p.w;
    const T* wp = w + co * cig * p.kh * p.kw;
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      forward_row<T, S>(p, t, xp, wp, b ? b[co] : T(0), oh, y + plane * ohw + oh * p.out_w);
  }
}

// Input-gradient planes [begin, end) of n * c_in: each is written once, from the cog output
// channels of its group, in a fixed order.
template <typename T, int S>
void backward_input(const Conv2dParams& p, const T* dy, const T* w, T* dx, int64_t begin,
                    int64_t end) {
  const TapTable t(p);
  const int64_t cog = p.c_out / p.groups, ohw = p.out_h * p.out_w;
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / p.c_in, ci = plane % p.c_in;
    T* xp = dx + plane * p.h * p.w;
    std::memset(xp, 0, sizeof(T) * p.h * p.w);
    for (int64_t co = ci * cog; co < (ci + 1) * cog; ++co) {
      const T* yp = dy + (n * p.c_out + co) * ohw;
      const T* wp = w + co * p.kh * p.kw;
      for (int64_t oh = 0; oh < p.out_h; ++oh) {
        const T* yr = yp + oh * p.out_w;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          T* xr = xp + ih * p.w;
          for (int64_t j = 0; j < p.kw; ++j) {
            axpy_row_scatter<T, S>(xr + t.src[j], yr + t.lo[j], wp[i * p.kw + j], t.hi[j] - t.lo[j],
                                   p.stride_w);
          }
        }
      }
    }
  }
}

// Weight gradients of output channels [begin, end), each summed over the batch in order.
// acc holds kh * kw partial sums.
template <typename T, int S>
void backward_weight(const Conv2dParams& p, const T* dy, const T* x, T* dw, int64_t begin,
                     int64_t end) {
  const TapTable t(p);
  const int64_t cog = p.c_out / p.groups, ohw = p.out_h * p.out_w;
  for (int64_t co = begin; co < end; ++co) {
    const int64_t ci = co / cog;
    T* acc = dw + co * p.kh * p.kw;
    std::fill(acc, acc + p.kh * p.kw, T(0));
    for (int64_t n = 0; n < p.n; ++n) {
      const T* yp = dy + (n * p.c_out + co) * ohw;
      const T* xp = x + (n * p.c_in + ci) * p.h * p.w;
      for (int64_t oh = 0; oh < p.out_h; ++oh) {
        const T* yr = yp + oh * p.out_w;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          if (ih < 0 || ih >= p.h) continue;
          const T* xr = xp + ih * p.w;
          for (int64_t j = 0; j < p.kw; ++j) {
            acc[i * p.kw + j] += dot_row<T, S>(yr + t.lo[j], xr + t.src[j], t.hi[j] - t.lo[j], p.stride_w);
          }
        }
      }
    }
  }
}

// Unit strides and dilations with a KH x KW kernel known at compile time: per image, dy and x are
// copied into zero-padded planes (dy rows rounded up to whole vectors, x with every tap inside),
// so that the loop over a plane has no edges; the sums of KI kernel rows at a time stay in
// registers. Sums are kept per lane and reduced once per channel, in a fixed order.
template <typename T, int KH, int KW>
void backward_weight_tiled(const Conv2dParams& p, const T* dy, const T* x, T* dw, int64_t begin,
                           int64_t end) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::size;
  constexpr int KI = KH * KW <= 9 ? KH : 2;  // kernel rows per pass over a plane
  constexpr int kTaps = KH * KW;
  const int64_t cog = p.c_out / p.groups, ohw = p.out_h * p.out_w;
  const int64_t owr = (p.out_w + L - 1) / L * L, hp = p.out_h + KH - 1, wp = owr + KW - 1;
  thread_local Scratch dyp_buf, xp_buf, sums_buf;
  T* const dyp = scratch_zeros<T>(dyp_buf, p.out_h * owr);  // the columns past out_w stay zero
  T* const xp = scratch_array<T>(xp_buf, hp * wp);
  T* const sums = scratch_array<T>(sums_buf, kTaps * L);
  for (int64_t co = begin; co < end; ++co) {
    const int64_t ci = co / cog;
    std::fill(sums, sums + kTaps * L, T(0));
    for (int64_t n = 0; n < p.n; ++n) {
      const T* yp = dy + (n * p.c_out + co) * ohw;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        std::memcpy(&dyp[oh * owr], yp + oh * p.out_w, sizeof(T) * p.out_w);
      pad_plane(x + (n * p.c_in + ci) * p.h * p.w, p.h, p.w, p.pad_h, p.pad_w, hp, wp, xp);
      for (int i0 = 0; i0 < KH; i0 += KI) {
        const int rows = std::min(KI, KH - i0);
        V acc[KI][KW];
        for (int ii = 0; ii < KI; ++ii)
          for (int j = 0; j < KW; ++j)
            acc[ii][j] = ii < rows ? Vec<T>::load(&sums[((i0 + ii) * KW + j) * L]) : V{};
        for (int64_t oh = 0; oh < p.out_h; ++oh)
          for (int64_t ow = 0; ow < owr; ow += L) {
            const V d = Vec<T>::load(&dyp[oh * owr + ow]);
            for (int ii = 0; ii < KI; ++ii) {
              if (ii >= rows) break;
              const T* xr = &xp[(oh + i0 + ii) * wp + ow];
              for (int j = 0; j < KW; ++j) acc[ii][j] += d * Vec<T>::load(xr + j);
            }
          }
        for (int ii = 0; ii < rows; ++ii)
          for (int j = 0; j < KW; ++j) Vec<T>::store(&sums[((i0 + ii) * KW + j) * L], acc[ii][j]);
      }
    }
    for (int k = 0; k < kTaps; ++k) dw[co * kTaps + k] = Vec<T>::sum(Vec<T>::load(&sums[k * L]));
  }
}

// Unit width stride: the sums stay in vector form (one accumulator per tap and vector width)
// over whole planes and are reduced once per channel, in a fixed lane order. The columns every
// tap reaches are done a vector at a time (one load of dy shared by all taps), the rest per column.
template <typename T>
void backward_weight_unit_stride(const Conv2dParams& p, const T* dy, const T* x, T* dw,
                                 int64_t begin, int64_t end) {
  if (p.stride_h == 1 && p.dilation_h == 1 && p.dilation_w == 1 && p.out_w >= Vec<T>::size) {
    if (p.kh == 3 && p.kw == 3) return backward_weight_tiled<T, 3, 3>(p, dy, x, dw, begin, end);
    if (p.kh == 5 && p.kw == 5) return backward_weight_tiled<T, 5, 5>(p, dy, x, dw, begin, end);
  }
  using Full = Vec<T>;
  using Half = Vec<T, kVectorBytes / 2>;
  const TapTable t(p);
  const int64_t cog = p.c_out / p.groups, ohw = p.out_h * p.out_w, taps = p.kh * p.kw;
  int64_t lo = 0, hi = p.out_w;
  for (int64_t j = 0; j < p.kw; ++j) lo = std::max(lo, t.lo[j]), hi = std::min(hi, t.hi[j]);
  hi = std::max(hi, lo);
  // Plain T storage (sums kept per lane, loaded and stored as vectors).
  Scratch acc_full_buf, acc_half_buf, acc_buf, row_buf;
  T* const acc_full = scratch_array<T>(acc_full_buf, taps * Full::size);
  T* const acc_half = scratch_array<T>(acc_half_buf, taps * Half::size);
  T* const acc = scratch_array<T>(acc_buf, taps);
  // Offset of input column 0 (unpadded) per tap row, or -1.
  int64_t* const row = scratch_array<int64_t>(row_buf, p.kh);
  for (int64_t co = begin; co < end; ++co) {
    const int64_t ci = co / cog;
    std::fill(acc_full, acc_full + taps * Full::size, T(0));
    std::fill(acc_half, acc_half + taps * Half::size, T(0));
    std::fill(acc, acc + taps, T(0));
    for (int64_t n = 0; n < p.n; ++n) {
      const T* yp = dy + (n * p.c_out + co) * ohw;
      const T* xp = x + (n * p.c_in + ci) * p.h * p.w;
      for (int64_t oh = 0; oh < p.out_h; ++oh) {
        const T* yr = yp + oh * p.out_w;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
          row[i] = ih >= 0 && ih < p.h ? ih * p.w : -1;
        }
        int64_t ow = lo;
        for (; ow + Full::size <= hi; ow += Full::size) {
          const auto d = Full::load(yr + ow);
          for (int64_t i = 0; i < p.kh; ++i) {
            if (row[i] < 0) continue;
            const T* xr = xp + row[i] + ow - p.pad_w;
            for (int64_t j = 0; j < p.kw; ++j) {
              T* a = &acc_full[(i * p.kw + j) * Full::size];
              Full::store(a, Full::load(a) + d * Full::load(xr + j * p.dilation_w));
            }
          }
        }
        for (; ow + Half::size <= hi; ow += Half::size) {
          const auto d = Half::load(yr + ow);
          for (int64_t i = 0; i < p.kh; ++i) {
            if (row[i] < 0) continue;
            const T* xr = xp + row[i] + ow - p.pad_w;
            for (int64_t j = 0; j < p.kw; ++j) {
              T* a = &acc_half[(i * p.kw + j) * Half::size];
              Half::store(a, Half::load(a) + d * Half::load(xr + j * p.dilation_w));
            }
          }
        }
        auto column = [&](int64_t c) {
          for (int64_t i = 0; i < p.kh; ++i) {
            if (row[i] < 0) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t iw = c - p.pad_w + j * p.dilation_w;
              if (iw >= 0 && iw < p.w) acc[i * p.kw + j] += yr[c] * xp[row[i] + iw];
            }
          }
        };
        for (; ow < hi; ++ow) column(ow);
        for (int64_t c = 0; c < lo; ++c) column(c);
        for (int64_t c = hi; c < p.out_w; ++c) column(c);
      }
    }
    for (int64_t k = 0; k < taps; ++k)
      dw[co * taps + k] = Full::sum(Full::load(&acc_full[k * Full::size])) +
                          Half::sum(Half::load(&acc_half[k * Half::size])) + acc[k];
  }
}

}  // namespace depthwise
}  // namespace

// The per-ISA entry points (declared in cpu/isa_table.h; dtype from p.dtype; ranges as in the
// templates above).

// Instantiates the entry points in a per-ISA translation unit: unit width stride is a template
// parameter, so the common case is a contiguous loop the compiler vectorizes.
#define CONVFORGE_DEFINE_DEPTHWISE(isa)                                                           \
  template <typename T>                                                                           \
  static void dw_fwd(const Conv2dParams& p, const void* x, const void* w, const void* b, void* y, \
                     int64_t begin, int64_t end) {                                                \
    auto f = p.stride_w == 1 ? depthwise::forward<T, 1> : depthwise::forward<T, 0>;              \
    f(p, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),          \
      static_cast<T*>(y), begin, end);                                                            \
  }                                                                                               \
  template <typename T>                                                                           \
  static void dw_bwd_in(const Conv2dParams& p, const void* dy, const void* w, void* dx,          \
                        int64_t begin, int64_t end) {                                             \
    auto f = p.stride_w == 1 ? depthwise::backward_input<T, 1> : depthwise::backward_input<T, 0>; \
    f(p, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx), begin, end);  \
  }                                                                                               \
  template <typename T>                                                                           \
  static void dw_bwd_w(const Conv2dParams& p, const void* dy, const void* x, void* dw,           \
                       int64_t begin, int64_t end) {                                              \
    auto f = p.stride_w == 1 ? depthwise::backward_weight_unit_stride<T>                          \
                             : depthwise::backward_weight<T, 0>;                                 \
    f(p, static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dw), begin, end);  \
  }                                                                                               \
  void conv2d_depthwise_forward__##isa(const Conv2dParams& p, const void* x, const void* w,      \
                                       const void* b, void* y, int64_t begin, int64_t end) {      \
    (p.dtype == DType::f32 ? dw_fwd<float> : dw_fwd<double>)(p, x, w, b, y, begin, end);         \
  }                                                                                               \
  void conv2d_depthwise_backward_input__##isa(const Conv2dParams& p, const void* dy,             \
                                              const void* w, void* dx, int64_t begin,            \
                                              int64_t end) {                                      \
    (p.dtype == DType::f32 ? dw_bwd_in<float> : dw_bwd_in<double>)(p, dy, w, dx, begin, end);    \
  }                                                                                               \
  void conv2d_depthwise_backward_weight__##isa(const Conv2dParams& p, const void* dy,            \
                                               const void* x, void* dw, int64_t begin,           \
                                               int64_t end) {                                     \
    (p.dtype == DType::f32 ? dw_bwd_w<float> : dw_bwd_w<double>)(p, dy, x, dw, begin, end);      \
  }

}  // namespace convforge::cpu
