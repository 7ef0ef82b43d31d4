// gemm_windows / nhwc_gemm_windows: the forward as an implicit GEMM whose A operand is never
// packed. Output pixel (n, oh, ow)'s im2col row is a few runs of a pixel-major (NHWC) image -- one
// per kernel row when the dilation is 1 and the groups are one (the kw * c_in values of a
// window's row follow each other), else one per tap -- and the window microkernel (cpu/gemm.h)
// broadcasts them from where they lie, the pixels of an output row being lda = stride_w * c_in
// apart. The weight is packed once per call (B(k, co) with k = tap * cig + ci, the runs' order).
//   NHWC: the windows are read from the input itself, or, where some reach into the padding, from
//         an output row's kernel rows copied into a zero-bordered band (the thread's scratch, a
//         few rows: it stays in cache); the output is written in place.
//   NCHW: the band is always built, each input row transposed to pixel-major on the way (cheap
//         with few channels, where packing im2col panels costs the most); the output row is
//         computed pixel-major into scratch and transposed into the output planes.
// Forward only; any problem.
#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

// Where the windows of an output row are read from: rows `pitch` elements apart, the row of the
// windows' top kernel row first.
struct Windows {
  int64_t padded_w, pitch;  // band rows: pad_w zero pixels, the input row, zeros to padded_w pixels
  int64_t nseg, seg_len;    // the runs of one window
  bool band;                // some window reaches into the padding: rows go through the band
  int64_t block;            // output rows per work item: each B panel serves all their pixels
};

inline Windows windows(const Conv2dParams& p) {
  Windows win;
  // Columns and rows the windows span from the first padded one ('same' may pad one side more).
  const int64_t span_w = (p.out_w - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
  const int64_t span_h = (p.out_h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
  win.band = !p.channels_last || p.pad_h > 0 || p.pad_w > 0 || span_w > p.w || span_h > p.h;
  win.padded_w = win.band ? std::max(span_w, p.pad_w + p.w) : p.w;
  win.pitch = win.padded_w * p.c_in;
  const bool row_runs = p.dilation_w == 1 && p.groups == 1;
  win.nseg = row_runs ? p.kh : p.kh * p.kw;
  win.seg_len = row_runs ? p.kw * p.c_in : p.c_in / p.groups;
  // A B panel (k x NR) is read once per block of output rows: about 128 pixels make its reads
  // cheap next to their multiply-adds (with 7-pixel rows and 512 channels, a panel per row was
  // 2x slower), while the blocks still feed every thread.
  constexpr int64_t kBlockPixels = 128;
  const int64_t rows = p.n * p.out_h, nt = get_num_threads();
  win.block = std::clamp<int64_t>((kBlockPixels + p.out_w - 1) / p.out_w, 1, p.out_h);
  win.block = std::max<int64_t>(1, std::min(win.block, rows / nt));
  return win;
}

// The rows spanned by one window: (kh - 1) * dilation_h + 1.
inline int64_t window_rows(const Conv2dParams& p) { return (p.kh - 1) * p.dilation_h + 1; }
// The rows of the band of a block of output rows.
inline int64_t band_rows(const Conv2dParams& p, const Windows& win) {
  return (win.block - 1) * p.stride_h + window_rows(p);
}

// The per-call shared scratch holds the packed weight, group after group, each group's
// round_up(cog, NR) x k panels, then the runs' offsets.
template <typename T>
int64_t packed_group_elements(const Geometry& g, const GemmKernel<T>& kern) {
  return detail::round_up(g.cog, kern.nr) * g.k;
}

// The band for output rows [oh0, oh1) of image n: their window rows, zero-bordered, pixel-major.
template <typename T>
void fill_band(const Conv2dParams& p, const Windows& win, const T* x, int64_t n, int64_t oh0, int64_t oh1,
               T* band) {
  const int64_t ih0 = oh0 * p.stride_h - p.pad_h, edge = p.pad_w * p.c_in, row_in = p.w * p.c_in;
  const int64_t plane = p.h * p.w;
  for (int64_t i = 0; i < (oh1 - oh0 - 1) * p.stride_h + window_rows(p); ++i) {
    T* d = band + i * win.pitch;
    const int64_t ih = ih0 + i;
    if (ih < 0 || ih >= p.h) {
      std::fill(d, d + win.pitch, T(0));
      continue;
    }
    std::fill(d, d + edge, T(0));
    if (p.channels_last) {
      std::memcpy(d + edge, x + (n * p.h + ih) * row_in, sizeof(T) * row_in);
    } else {  // the row of every channel plane, transposed
      detail::transpose(x + n * p.c_in * plane + ih * p.w, plane, p.w, p.c_in, d + edge, p.c_in);
    }
    std::fill(d + edge + row_in, d + win.pitch, T(0));
  }
}

// The weight as B panels: B(k, co) = w[co][tap][ci] (OHWI) or w[co][ci][tap] (OIHW).
template <typename T>
void pack_weight(const Conv2dParams& p, const Geometry& g, const GemmKernel<T>& kern, const T* w, T* dst) {
  const int64_t group_b = packed_group_elements(g, kern), panels = (g.cog + kern.nr - 1) / kern.nr;
  const int64_t taps = p.kh * p.kw;
  parallel_for(p.groups * panels, threads_for(double(p.groups * group_b), 1 << 16), [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      const int64_t grp = q / panels, j = q % panels * kern.nr, cols = std::min(kern.nr, g.cog - j);
      const T* src = w + (grp * g.cog + j) * g.k;
      T* d = dst + grp * group_b + j * g.k;
      if (p.channels_last) {
        detail::pack_panels_any(src, 1, g.k, g.k, cols, kern.nr, d);
        continue;
      }
      // OIHW: each output channel's weights read in order, written down the panel's column.
      if (cols < kern.nr) std::fill(d, d + g.k * kern.nr, T(0));
      for (int64_t t = 0; t < cols; ++t)
        for (int64_t ci = 0; ci < g.cig; ++ci)
          for (int64_t tap = 0; tap < taps; ++tap) d[(tap * g.cig + ci) * kern.nr + t] = src[t * g.k + ci * taps + tap];
    }
  });
}

template <typename T>
void forward(const Conv2dParams& p, const Arena& arena, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const Windows win = windows(p);
  const int64_t group_b = packed_group_elements(g, kern);
  T* b_packed = arena.shared<T>();
  pack_weight(p, g, kern, w, b_packed);
  int64_t* seg = reinterpret_cast<int64_t*>(b_packed + p.groups * group_b);
  const int64_t taps_per_seg = win.nseg / p.kh;  // a run per tap, or one per kernel row
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < taps_per_seg; ++j)
      seg[i * taps_per_seg + j] = i * p.dilation_h * win.pitch + j * p.dilation_w * p.c_in;

  // An output row's pixels in tiles of at most MR, as even as possible (a short last tile would
  // run a tile of few rows, at a fraction of the FMA rate).
  const int64_t tiles = (p.out_w + kern.mr - 1) / kern.mr;
  const int64_t row_in = p.w * p.c_in, out_plane = p.out_h * p.out_w;
  const int64_t blocks = (p.out_h + win.block - 1) / win.block;
  const double work = double(p.out_w) * p.c_out * g.k * p.out_h / blocks;
  parallel_for(p.n * blocks, threads_for(work * p.n * blocks, 1 << 20), [&](int64_t i0, int64_t i1) {
    T* band = arena.item<T>();
    T* rows_out = band + (win.band ? band_rows(p, win) * win.pitch : 0);  // NCHW: the rows, pixel-major
    for (int64_t item = i0; item < i1; ++item) {
      const int64_t n = item / blocks, oh0 = item % blocks * win.block;
      const int64_t oh1 = std::min(p.out_h, oh0 + win.block);
      if (win.band) fill_band(p, win, x, n, oh0, oh1, band);
      for (int64_t grp = 0; grp < p.groups; ++grp)
        for (int64_t j = 0; j < g.cog; j += kern.nr) {
          const T* b_panel = b_packed + grp * group_b + j * g.k;
          const T* bias_j = bias ? bias + grp * g.cog + j : nullptr;
          const int64_t n_tile = std::min(kern.nr, g.cog - j);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            // The window rows of output row oh, pitch apart.
            const T* top = win.band ? band + (oh - oh0) * p.stride_h * win.pitch
                                    : x + (n * p.h + oh * p.stride_h) * row_in;
            T* y_row = p.channels_last ? y + (n * p.out_h + oh) * p.out_w * p.c_out
                                       : rows_out + (oh - oh0) * p.out_w * p.c_out;
            for (int64_t t = 0; t < tiles; ++t) {
              const int64_t ow0 = p.out_w * t / tiles, ow1 = p.out_w * (t + 1) / tiles;
              kern.window_ukernel(top + grp * g.cig + ow0 * p.stride_w * p.c_in, p.stride_w * p.c_in, seg, win.nseg,
                                  win.seg_len, b_panel, bias_j, T(0), y_row + ow0 * p.c_out + grp * g.cog + j, p.c_out,
                                  ow1 - ow0, n_tile);
            }
          }
        }
      if (p.channels_last) continue;
      // Four output planes at a time: planes lie a page apart when out_h * out_w is a power of
      // two, and rows of more of them at once would compete for the same L1 set.
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const T* row = rows_out + (oh - oh0) * p.out_w * p.c_out;
        T* y_row = y + n * p.c_out * out_plane + oh * p.out_w;
        for (int64_t co = 0; co < p.c_out; co += 4)
          detail::transpose(row + co, p.c_out, std::min<int64_t>(4, p.c_out - co), p.out_w, y_row + co * out_plane,
                            out_plane);
      }
    }
  });
}

template <typename T>
Workspace workspace(const Conv2dParams& p) {
  const Windows win = windows(p);
  Workspace ws;
  ws.shared = sizeof(T) * p.groups * packed_group_elements(geometry(p), gemm_kernel<T>()) +
              sizeof(int64_t) * win.nseg;
  if (win.band) ws.item = sizeof(T) * band_rows(p, win) * win.pitch;
  if (!p.channels_last) ws.item += sizeof(T) * win.block * p.out_w * p.c_out;
  return ws;
}

Workspace any_workspace(const Conv2dParams& p) {
  return p.dtype == DType::f32 ? workspace<float>(p) : workspace<double>(p);
}

bool any_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w, const void* bias,
                 void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, arena, typed...); });
}

}  // namespace

bool gemm_windows_applies(const Conv2dParams& p, Pass pass) { return !p.channels_last && pass == Pass::forward; }
Workspace gemm_windows_workspace(const Conv2dParams& p, Pass, int) { return any_workspace(p); }
bool gemm_windows_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w, const void* bias,
                          void* y) {
  return any_forward(p, arena, x, w, bias, y);
}

bool nhwc_gemm_windows_applies(const Conv2dParams& p, Pass pass) { return p.channels_last && pass == Pass::forward; }
Workspace nhwc_gemm_windows_workspace(const Conv2dParams& p, Pass, int) { return any_workspace(p); }
bool nhwc_gemm_windows_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                               const void* bias, void* y) {
  return any_forward(p, arena, x, w, bias, y);
}

}  // namespace convforge::cpu::conv
