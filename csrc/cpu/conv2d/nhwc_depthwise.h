// Direct conv2d on NHWC arrays for one input channel per group (depthwise with any channel
// multiplier M = c_out / groups, a first layer on a grey image), vectorized along the channels,
// which are contiguous in NHWC. Output channel co reads input channel co / M: with M > 1 the input
// rows a pass reads are first expanded to c_out channels (each input channel repeated M times),
// so that every loop below runs over c_out contiguous channels.
//
// The weight is read tap-major, wt[tap][co] (taps x c_out, transposed by the caller from OHWI).
// Every output element is written once, by one call, with its taps summed in a fixed order: the
// results do not depend on how the caller splits the work into threads.
//
// The loops are written once here and compiled per ISA: nhwc_depthwise__<isa>.cpp includes this
// header with only its own ISA's flags and instantiates the entry points declared in
// cpu/isa_table.h. No std containers and no shared helpers here: scratch comes from the caller
// (see core/scratch.h for why).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/conv2d_common.h"
#include "cpu/simd_vector.h"
#include "ops.h"

namespace convforge::cpu {
// Internal linkage: every per-ISA translation unit keeps its own copy of these templates.
namespace {
namespace nhwc_dw {

// grad_weight works on chunks of this many output channels (any split gives the same sums): runs
// of 512 bytes of a float32 pixel, the whole pixel of the usual depthwise layers.
constexpr int64_t kWeightChunk = 128;

// Expanded input rows are kept in slots, input row ih in slot ih % slots: the rows one output
// row reads, ih0 + i * dilation_h for i < kh, fall into distinct slots, and each input row is
// expanded once while consecutive output rows read it.
inline int64_t row_slots(const Conv2dParams& p) { return (p.kh - 1) * p.dilation_h + 1; }

// The caller's scratch for one thread: tap tables, then rows of T.
//   forward      row_slots() expanded input rows of w x c_out (M > 1)
//   grad_input   one row of w x c_out sums before they are added over the multiplier (M > 1)
//   grad_weight  row_slots() expanded input rows of w x kWeightChunk (M > 1)
struct ScratchLayout {
  size_t taps_bytes, rows_offset, bytes;
  ScratchLayout(const Conv2dParams& p, int pass) {
    const int64_t taps = p.kh * p.kw, multiplier = p.c_out / p.groups;
    // offsets, filtered offsets, row indices and slot tags (int64); weight pointers, filtered ones.
    taps_bytes = size_t(2 * taps + p.kh + row_slots(p)) * sizeof(int64_t) + size_t(2 * taps) * sizeof(void*);
    rows_offset = (taps_bytes + 63) / 64 * 64;
    const int64_t width = pass == 2 ? std::min(p.c_out, kWeightChunk) : p.c_out;
    const int64_t rows = multiplier == 1 ? 0 : pass == 1 ? 1 : row_slots(p);
    bytes = rows_offset + size_t(rows * p.w * width * dtype_size(p.dtype));
  }
};

// The tap tables of one row, in the caller's scratch.
template <typename T>
struct Taps {
  int64_t* off;        // element offset of each tap's source from the pixel's base index
  const T** w;         // each tap's weight row (c_out values)
  int64_t* off_edge;   // the same, filtered for one pixel at an edge
  const T** w_edge;
  int64_t* row;        // per kernel row: index of its source row, or -1 outside
  int64_t* tag;        // per slot: the input row n * h + ih expanded there, or -1
  T* rows;             // row buffers
  Taps(const Conv2dParams& p, void* scratch, const ScratchLayout& layout) {
    const int64_t taps = p.kh * p.kw;
    off = static_cast<int64_t*>(scratch);
    off_edge = off + taps;
    row = off_edge + taps;
    tag = row + p.kh;
    std::fill(tag, tag + row_slots(p), int64_t{-1});
    w = reinterpret_cast<const T**>(tag + row_slots(p));
    w_edge = w + taps;
    rows = reinterpret_cast<T*>(static_cast<char*>(scratch) + layout.rows_offset);
  }
};

// The microkernel: for r < R and c < channels,
//   dst[r * dst_step + c] = (bias ? bias[c] : 0) + sum over t < taps of w[t][c] * src[base + off[t] + r * src_step + c],
// taps summed in order; with B (one input channel for all: c_in == 1) the source is
// src[base + off[t] + r * src_step] for every c. R pixels share each weight load; 2 vectors of
// channels at a time, then 1, then single channels.
template <typename T, int R, bool B = false>
inline void pixels(const T* src, int64_t base, int64_t src_step, const int64_t* off, const T* const* w,
                   int64_t taps, const T* bias, int64_t channels, T* dst, int64_t dst_step) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::size;
  int64_t c = 0;
  for (; c + 2 * L <= channels; c += 2 * L) {
    V acc[R][2];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 2; ++v) acc[r][v] = bias ? Vec<T>::load(bias + c + v * L) : V{};
    for (int64_t t = 0; t < taps; ++t) {
      const T* s = src + (base + off[t] + (B ? 0 : c));
      const V w0 = Vec<T>::load(w[t] + c), w1 = Vec<T>::load(w[t] + c + L);
      for (int r = 0; r < R; ++r) {
        if (B) {
          const V xv = V{} + s[r * src_step];
          acc[r][0] += w0 * xv;
          acc[r][1] += w1 * xv;
        } else {
          acc[r][0] += w0 * Vec<T>::load(s + r * src_step);
          acc[r][1] += w1 * Vec<T>::load(s + r * src_step + L);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < 2; ++v) Vec<T>::store(dst + r * dst_step + c + v * L, acc[r][v]);
  }
  for (; c + L <= channels; c += L) {
    V acc[R];
    for (int r = 0; r < R; ++r) acc[r] = bias ? Vec<T>::load(bias + c) : V{};
    for (int64_t t = 0; t < taps; ++t) {
      const T* s = src + (base + off[t] + (B ? 0 : c));
      const V w0 = Vec<T>::load(w[t] + c);
      for (int r = 0; r < R; ++r) acc[r] += w0 * (B ? V{} + s[r * src_step] : Vec<T>::load(s + r * src_step));
    }
    for (int r = 0; r < R; ++r) Vec<T>::store(dst + r * dst_step + c, acc[r]);
  }
  for (; c < channels; ++c) {
    T acc[R];
    for (int r = 0; r < R; ++r) acc[r] = bias ? bias[c] : T(0);
    for (int64_t t = 0; t < taps; ++t) {
      const T* s = src + (base + off[t] + (B ? 0 : c));
      const T w0 = w[t][c];
      for (int r = 0; r < R; ++r) acc[r] += w0 * s[r * src_step];
    }
    for (int r = 0; r < R; ++r) dst[r * dst_step + c] = acc[r];
  }
}

// Input row (n, ih) expanded to c_out channels [c0, c0 + width), in the slot of ih (row_slots()),
// unless it is there already: out[iw * width + k] = x[n, ih, iw, (c0 + k) / M]. Returns the
// row's index in `rows`.
template <typename T>
int64_t expand_row(const Conv2dParams& p, const T* x, int64_t n, int64_t ih, int64_t c0, int64_t width,
                   const Taps<T>& tp) {
  const int64_t multiplier = p.c_out / p.groups, slot = ih % row_slots(p), index = slot * p.w * width;
  if (tp.tag[slot] == n * p.h + ih) return index;
  tp.tag[slot] = n * p.h + ih;
  const T* xr = x + (n * p.h + ih) * p.w * p.c_in;
  T* out = tp.rows + index;
  for (int64_t iw = 0; iw < p.w; ++iw, xr += p.c_in, out += width) {
    int64_t g = c0 / multiplier, m = c0 % multiplier;
    for (int64_t k = 0; k < width; ++k) {
      out[k] = xr[g];
      if (++m == multiplier) m = 0, ++g;
    }
  }
  return index;
}

// Output rows [begin, end) of n * out_h. wt: taps x c_out; b: c_out values or null.
template <typename T>
void forward(const Conv2dParams& p, const T* x, const T* wt, const T* b, T* y, void* scratch, int64_t begin,
             int64_t end) {
  constexpr int R = 4;
  const ScratchLayout layout(p, 0);
  Taps<T> tp(p, scratch, layout);
  // One input channel for all output channels (c_in == 1): read straight from x, broadcast.
  const bool broadcast = p.c_in == 1, expand = p.c_out != p.groups && !broadcast;
  const int64_t C = p.c_out, xs = expand ? C : p.c_in;  // pixel stride of the rows read
  const auto one = broadcast ? pixels<T, 1, true> : pixels<T, 1, false>;
  const auto block = broadcast ? pixels<T, R, true> : pixels<T, R, false>;
  // Output columns every kernel column reaches inside the input: [lo, hi).
  int64_t lo = 0, hi = p.out_w;
  for (int64_t j = 0; j < p.kw; ++j) {
    const TapRange r = tap_range(j, p.w, p.out_w, p.stride_w, p.pad_w, p.dilation_w);
    lo = std::max(lo, r.lo), hi = std::min(hi, r.hi);
  }
  hi = std::max(hi, lo);
  const T* src = expand ? tp.rows : x;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / p.out_h, oh = row % p.out_h;
    int64_t taps = 0;
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
      tp.row[i] = -1;
      if (ih < 0 || ih >= p.h) continue;
      if (expand) {
        tp.row[i] = expand_row(p, x, n, ih, 0, C, tp);
      } else {
        tp.row[i] = (n * p.h + ih) * p.w * xs;
      }
      for (int64_t j = 0; j < p.kw; ++j, ++taps) {
        tp.off[taps] = tp.row[i] + j * p.dilation_w * xs;
        tp.w[taps] = wt + (i * p.kw + j) * C;
      }
    }
    T* yr = y + row * p.out_w * C;
    // A pixel at an edge: only the taps inside the input.
    auto edge = [&](int64_t ow) {
      const int64_t iw0 = ow * p.stride_w - p.pad_w;
      int64_t count = 0;
      for (int64_t i = 0; i < p.kh; ++i) {
        if (tp.row[i] < 0) continue;
        for (int64_t j = 0; j < p.kw; ++j) {
          const int64_t iw = iw0 + j * p.dilation_w;
          if (iw < 0 || iw >= p.w) continue;
          tp.off_edge[count] = tp.row[i] + j * p.dilation_w * xs;
          tp.w_edge[count++] = wt + (i * p.kw + j) * C;
        }
      }
      one(src, iw0 * xs, 0, tp.off_edge, tp.w_edge, count, b, C, yr + ow * C, 0);
    };
    for (int64_t ow = 0; ow < lo; ++ow) edge(ow);
    int64_t ow = lo;
    for (; ow + R <= hi; ow += R)
      block(src, (ow * p.stride_w - p.pad_w) * xs, p.stride_w * xs, tp.off, tp.w, taps, b, C, yr + ow * C, C);
    for (; ow < hi; ++ow) one(src, (ow * p.stride_w - p.pad_w) * xs, 0, tp.off, tp.w, taps, b, C, yr + ow * C, 0);
    for (int64_t ow = std::max(hi, lo); ow < p.out_w; ++ow) edge(ow);
  }
}

// Input-gradient rows [begin, end) of n * h, gathered: dx[n, ih, iw, ci] = sum over the multiplier's
// channels co of ci and the taps (i, j) that reach (ih, iw) from an output pixel (oh, ow) of
// w[co][i][j] * dy[n, oh, ow, co]. The columns iw of one phase iw % stride_w are reached by the
// same kernel columns, from consecutive output columns.
template <typename T>
void backward_input(const Conv2dParams& p, const T* dy, const T* wt, T* dx, void* scratch, int64_t begin,
                    int64_t end) {
  constexpr int R = 4;
  const ScratchLayout layout(p, 1);
  Taps<T> tp(p, scratch, layout);
  const int64_t C = p.c_out, multiplier = p.c_out / p.groups;
  const int64_t sw = p.stride_w;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / p.h, ih = row % p.h;
    // With a multiplier the sums over the taps go to a row of c_out channels first.
    T* dst = multiplier == 1 ? dx + row * p.w * p.c_in : tp.rows;
    for (int64_t i = 0; i < p.kh; ++i) {
      const int64_t t = ih + p.pad_h - i * p.dilation_h;
      tp.row[i] = t >= 0 && t % p.stride_h == 0 && t / p.stride_h < p.out_h
                      ? (n * p.out_h + t / p.stride_h) * p.out_w * C : -1;
    }
    for (int64_t phase = 0; phase < std::min(sw, p.w); ++phase) {
      // Pixels iw = phase + k * sw, k < count; kernel column j reaches them from output column
      // ow = first[j] + k when (phase + pad_w - j * dilation_w) is a multiple of the stride.
      const int64_t count = (p.w - phase + sw - 1) / sw;
      int64_t k_lo = 0, k_hi = count, taps = 0;
      for (int64_t j = 0; j < p.kw; ++j) {
        const int64_t u = phase + p.pad_w - j * p.dilation_w;
        if (((u % sw) + sw) % sw != 0) continue;
        const int64_t first = u / sw;  // exact
        k_lo = std::max(k_lo, -first), k_hi = std::min(k_hi, p.out_w - first);
        for (int64_t i = 0; i < p.kh; ++i) {
          if (tp.row[i] < 0) continue;
          tp.off[taps] = tp.row[i] + first * C;
          tp.w[taps++] = wt + (i * p.kw + j) * C;
        }
      }
      k_hi = std::max(k_hi, k_lo);
      auto edge = [&](int64_t k) {
        int64_t used = 0;
        for (int64_t j = 0; j < p.kw; ++j) {
          const int64_t u = phase + p.pad_w - j * p.dilation_w;
          if (((u % sw) + sw) % sw != 0) continue;
          const int64_t ow = u / sw + k;
          if (ow < 0 || ow >= p.out_w) continue;
          for (int64_t i = 0; i < p.kh; ++i) {
            if (tp.row[i] < 0) continue;
            tp.off_edge[used] = tp.row[i] + ow * C;
            tp.w_edge[used++] = wt + (i * p.kw + j) * C;
          }
        }
        pixels<T, 1>(dy, 0, 0, tp.off_edge, tp.w_edge, used, nullptr, C, dst + (phase + k * sw) * C, 0);
      };
      for (int64_t k = 0; k < std::min(k_lo, count); ++k) edge(k);
      int64_t k = k_lo;
      for (; k + R <= k_hi; k += R)
        pixels<T, R>(dy, k * C, C, tp.off, tp.w, taps, nullptr, C, dst + (phase + k * sw) * C, sw * C);
      for (; k < k_hi; ++k)
        pixels<T, 1>(dy, k * C, 0, tp.off, tp.w, taps, nullptr, C, dst + (phase + k * sw) * C, 0);
      for (int64_t k = std::max(k_hi, k_lo); k < count; ++k) edge(k);
    }
    if (multiplier > 1) {  // dx[iw, g] = sum over m of the row's channel g * M + m, in order
      T* dxr = dx + row * p.w * p.c_in;
      for (int64_t iw = 0; iw < p.w; ++iw) {
        const T* s = dst + iw * C;
        for (int64_t g = 0; g < p.c_in; ++g) {
          T total = s[g * multiplier];
          for (int64_t m = 1; m < multiplier; ++m) total += s[g * multiplier + m];
          dxr[iw * p.c_in + g] = total;
        }
      }
    }
  }
}

// One output row's share of the weight-gradient sums for one kernel row: for every kernel column
// j and channel c < width, sum[j * c_out + c] += the sum over the output columns ow that j reaches
// of dy[ow * c_out + c] * x[iw * xs + c] (x[iw * xs] for every c with B), iw = ow * stride_w -
// pad_w + j * dilation_w. With KW (the kernel width at compile time) the columns all taps reach
// are done for all taps at once, one load of dy feeding KW sums in registers (at unit stride and
// dilation, R columns at a time, each input column loaded once for the KW taps it feeds); the few
// other columns follow, per tap. The order of the terms depends on the shape only.
// With `edges_only` the columns every tap reaches are left out of the vectors of channels (done
// by weight_rows_3x3 below).
template <typename T, int KW, bool B>
void weight_row(const Conv2dParams& p, const TapTable& t, const T* dyr, const T* xr, int64_t xs, T* sum,
                int64_t width, bool edges_only) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::size;
  constexpr int kAcc = KW > 0 ? KW : 1;
  const int64_t C = p.c_out, kw = KW > 0 ? KW : p.kw, dw = p.dilation_w * xs;
  int64_t lo = 0, hi = 0;  // columns every tap reaches (KW > 0)
  if (KW > 0) {
    hi = p.out_w;
    for (int64_t j = 0; j < kw; ++j) lo = std::max(lo, t.lo[j]), hi = std::min(hi, t.hi[j]);
    hi = std::max(hi, lo);
  }
  auto xv = [&](const T* ptr) { return B ? V{} + *ptr : Vec<T>::load(ptr); };
  auto x_at = [&](int64_t ow, int64_t j, int64_t c) {
    return xr + ((ow * p.stride_w - p.pad_w) * xs + j * dw + (B ? 0 : c));
  };
  int64_t c = 0;
  for (; c + L <= width; c += L) {
    V acc[kAcc];
    for (int64_t j0 = 0; j0 < kw; j0 += kAcc) {
      for (auto& a : acc) a = V{};
      int64_t ow = edges_only ? hi : lo;
      if (KW > 0 && p.stride_w == 1 && p.dilation_w == 1) {
        constexpr int R = 4;
        for (; ow + R <= hi; ow += R) {
          V d[R], xq[R + kAcc - 1];
          for (int r = 0; r < R; ++r) d[r] = Vec<T>::load(dyr + (ow + r) * C + c);
          const T* xp = x_at(ow, 0, c);
          for (int q = 0; q < R + kAcc - 1; ++q) xq[q] = xv(xp + q * xs);
          for (int r = 0; r < R; ++r)
            for (int j = 0; j < kAcc; ++j) acc[j] += d[r] * xq[r + j];
        }
      }
      if (KW > 0)
        for (; ow < hi; ++ow) {
          const V d = Vec<T>::load(dyr + ow * C + c);
          const T* xp = x_at(ow, 0, c);
          for (int j = 0; j < kAcc; ++j) acc[j] += d * xv(xp + j * dw);
        }
      for (int j = 0; j < kAcc; ++j) {
        const int64_t jj = j0 + j;
        for (int64_t ow = t.lo[jj]; ow < std::min(t.hi[jj], KW > 0 ? lo : t.hi[jj]); ++ow)
          acc[j] += Vec<T>::load(dyr + ow * C + c) * xv(x_at(ow, jj, c));
        for (int64_t ow = std::max(t.lo[jj], hi); KW > 0 && ow < t.hi[jj]; ++ow)
          acc[j] += Vec<T>::load(dyr + ow * C + c) * xv(x_at(ow, jj, c));
        Vec<T>::store(sum + jj * C + c, Vec<T>::load(sum + jj * C + c) + acc[j]);
      }
    }
  }
  for (; c < width; ++c)
    for (int64_t j = 0; j < kw; ++j) {
      T a = 0;
      for (int64_t ow = t.lo[j]; ow < t.hi[j]; ++ow) a += dyr[ow * C + c] * *x_at(ow, j, c);
      sum[j * C + c] += a;
    }
}

// A 3x3 kernel at unit width stride and dilation, on an output row whose three kernel rows all
// lie inside the input (xr: their input rows): the columns every tap reaches, for the vectors of
// channels, with the nine sums in registers and each load of dy feeding all of them (R columns
// at a time, each input column loaded once for the taps it feeds). The rest: weight_row with
// edges_only.
template <typename T, bool B>
void weight_rows_3x3(const Conv2dParams& p, const TapTable& t, const T* dyr, const T* const* xr, int64_t xs,
                     T* sum, int64_t width) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::size;
  constexpr int R = kVectorBytes == 64 ? 4 : 2;  // 9 sums + R + R + 2 vectors in registers
  const int64_t C = p.c_out;
  int64_t lo = 0, hi = p.out_w;
  for (int64_t j = 0; j < 3; ++j) lo = std::max(lo, t.lo[j]), hi = std::min(hi, t.hi[j]);
  if (hi <= lo) return;
  auto xv = [&](const T* ptr) { return B ? V{} + *ptr : Vec<T>::load(ptr); };
  for (int64_t c = 0; c + L <= width; c += L) {
    V acc[3][3] = {};
    const T* xp[3];
    for (int i = 0; i < 3; ++i) xp[i] = xr[i] + ((lo - p.pad_w) * xs + (B ? 0 : c));
    const T* dp = dyr + lo * C + c;
    int64_t ow = lo;
    for (; ow + R <= hi; ow += R, dp += R * C) {
      V d[R];
      for (int r = 0; r < R; ++r) d[r] = Vec<T>::load(dp + r * C);
      for (int i = 0; i < 3; ++i) {
        V xq[R + 2];
        for (int q = 0; q < R + 2; ++q) xq[q] = xv(xp[i] + q * xs);
        xp[i] += R * xs;
        for (int r = 0; r < R; ++r)
          for (int j = 0; j < 3; ++j) acc[i][j] += d[r] * xq[r + j];
      }
    }
    for (; ow < hi; ++ow, dp += C) {
      const V d = Vec<T>::load(dp);
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) acc[i][j] += d * xv(xp[i] + j * xs);
        xp[i] += xs;
      }
    }
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        T* s = sum + (i * 3 + j) * C + c;
        Vec<T>::store(s, Vec<T>::load(s) + acc[i][j]);
      }
  }
}

// Weight-gradient sums of images [n0, n1) for output channels [c0, c1): sums[tap * c_out + co] =
// sum over the images, output rows and columns of dy[n, oh, ow, co] * x[n, ih, iw, co / M]. Each
// output row's sum stays in registers and is added to sums once (partial sums of out_w terms).
template <typename T>
void backward_weight(const Conv2dParams& p, const T* dy, const T* x, T* sums, void* scratch, int64_t n0,
                     int64_t n1, int64_t c0, int64_t c1) {
  const ScratchLayout layout(p, 2);
  Taps<T> tp(p, scratch, layout);
  // One input channel for all output channels (c_in == 1): read straight from x, broadcast.
  const bool broadcast = p.c_in == 1, expand = p.c_out != p.groups && !broadcast;
  const int64_t C = p.c_out, width = c1 - c0, xs = expand ? width : p.c_in;
  using Row = void (*)(const Conv2dParams&, const TapTable&, const T*, const T*, int64_t, T*, int64_t, bool);
  Row row = broadcast ? weight_row<T, 0, true> : weight_row<T, 0, false>;
  if (p.kw == 3) row = broadcast ? weight_row<T, 3, true> : weight_row<T, 3, false>;
  if (p.kw == 5) row = broadcast ? weight_row<T, 5, true> : weight_row<T, 5, false>;
  const bool rows_3x3 = p.kh == 3 && p.kw == 3 && p.stride_w == 1 && p.dilation_w == 1;
  const auto all_rows = broadcast ? weight_rows_3x3<T, true> : weight_rows_3x3<T, false>;
  const T* xr[3];
  const TapTable t(p);
  for (int64_t k = 0; k < p.kh * p.kw; ++k) std::fill(sums + k * C + c0, sums + k * C + c1, T(0));
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t oh = 0; oh < p.out_h; ++oh) {
      const T* dyr = dy + (n * p.out_h + oh) * p.out_w * C + c0;
      const int64_t ih0 = oh * p.stride_h - p.pad_h, ih_last = ih0 + (p.kh - 1) * p.dilation_h;
      const bool all = rows_3x3 && ih0 >= 0 && ih_last < p.h;
      for (int64_t i = 0; i < p.kh; ++i) {
        const int64_t ih = ih0 + i * p.dilation_h;
        if (ih < 0 || ih >= p.h) continue;
        const T* xi = expand ? tp.rows + expand_row(p, x, n, ih, c0, width, tp)
                             : x + (n * p.h + ih) * p.w * p.c_in + (broadcast ? 0 : c0);
        if (all) xr[i] = xi;
        row(p, t, dyr, xi, xs, sums + i * p.kw * C + c0, width, all);
      }
      if (all) all_rows(p, t, dyr, xr, xs, sums + c0, width);
    }
}

}  // namespace nhwc_dw
}  // namespace

// Instantiates the entry points declared in cpu/isa_table.h in a per-ISA translation unit.
#define CONVFORGE_DEFINE_NHWC_DEPTHWISE(isa)                                                        \
  void conv2d_nhwc_depthwise_forward__##isa(const Conv2dParams& p, const void* x, const void* wt,   \
                                            const void* b, void* y, void* scratch, int64_t begin,  \
                                            int64_t end) {                                          \
    if (p.dtype == DType::f32)                                                                      \
      nhwc_dw::forward(p, static_cast<const float*>(x), static_cast<const float*>(wt),             \
                       static_cast<const float*>(b), static_cast<float*>(y), scratch, begin, end); \
    else                                                                                            \
      nhwc_dw::forward(p, static_cast<const double*>(x), static_cast<const double*>(wt),           \
                       static_cast<const double*>(b), static_cast<double*>(y), scratch, begin,     \
                       end);                                                                        \
  }                                                                                                 \
  void conv2d_nhwc_depthwise_backward_input__##isa(const Conv2dParams& p, const void* dy,          \
                                                   const void* wt, void* dx, void* scratch,        \
                                                   int64_t begin, int64_t end) {                    \
    if (p.dtype == DType::f32)                                                                      \
      nhwc_dw::backward_input(p, static_cast<const float*>(dy), static_cast<const float*>(wt),     \
                              static_cast<float*>(dx), scratch, begin, end);                       \
    else                                                                                            \
      nhwc_dw::backward_input(p, static_cast<const double*>(dy), static_cast<const double*>(wt),   \
                              static_cast<double*>(dx), scratch, begin, end);                      \
  }                                                                                                 \
  void conv2d_nhwc_depthwise_backward_weight__##isa(const Conv2dParams& p, const void* dy,         \
                                                    const void* x, void* sums, void* scratch,      \
                                                    int64_t n0, int64_t n1, int64_t c0,            \
                                                    int64_t c1) {                                   \
    if (p.dtype == DType::f32)                                                                      \
      nhwc_dw::backward_weight(p, static_cast<const float*>(dy), static_cast<const float*>(x),     \
                               static_cast<float*>(sums), scratch, n0, n1, c0, c1);                \
    else                                                                                            \
      nhwc_dw::backward_weight(p, static_cast<const double*>(dy), static_cast<const double*>(x),   \
                               static_cast<double*>(sums), scratch, n0, n1, c0, c1);               \
  }

}  // namespace convforge::cpu
