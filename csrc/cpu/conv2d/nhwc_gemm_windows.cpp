// nhwc_gemm_windows: the forward of an NHWC problem as an implicit GEMM whose A operand is never
// packed. Output pixel (n, oh, ow)'s im2col row is a few runs of the input -- one per kernel row
// when the dilation is 1 and the groups are one (the kw * c_in values of a window's row follow
// each other), else one per tap -- and the window microkernel (cpu/gemm.h) broadcasts them from
// where they lie, the pixels of an output row being lda = stride_w * c_in apart. The weight is
// packed once per call (OHWI: B(k, co) = w[co][k], k = tap * cig + ci, the runs' order). With
// padding, an output row's kernel rows are first copied into a zero-bordered band (the thread's
// scratch, a few rows: it stays in cache), so every window is a plain run of memory.
// Forward only; any NHWC problem.
#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

// Where the windows of an output row are read from: rows `pitch` elements apart, the row of the
// windows' top kernel row first.
struct Windows {
  int64_t padded_w, pitch;  // band rows: pad_w zero pixels, the input row, zeros to padded_w pixels
  int64_t nseg, seg_len;    // the runs of one window
  bool band;                // some window reaches into the padding: rows go through the band
};

inline Windows windows(const Conv2dParams& p) {
  Windows win;
  // Columns and rows the windows span from the first padded one ('same' may pad one side more).
  const int64_t span_w = (p.out_w - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
  const int64_t span_h = (p.out_h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
  win.band = p.pad_h > 0 || p.pad_w > 0 || span_w > p.w || span_h > p.h;
  win.padded_w = win.band ? std::max(span_w, p.pad_w + p.w) : p.w;
  win.pitch = win.padded_w * p.c_in;
  const bool row_runs = p.dilation_w == 1 && p.groups == 1;
  win.nseg = row_runs ? p.kh : p.kh * p.kw;
  win.seg_len = row_runs ? p.kw * p.c_in : p.c_in / p.groups;
  return win;
}

// The rows spanned by one window: (kh - 1) * dilation_h + 1.
inline int64_t window_rows(const Conv2dParams& p) { return (p.kh - 1) * p.dilation_h + 1; }

// The per-call shared scratch: the packed weight (each group's round_up(cog, NR) x k panels),
// then the runs' offsets.
template <typename T>
int64_t packed_weight_elements(const Conv2dParams& p, const GemmKernel<T>& kern) {
  const Geometry g = geometry(p);
  return p.groups * detail::round_up(g.cog, kern.nr) * g.k;
}

template <typename T>
void forward(const Conv2dParams& p, const Arena& arena, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const Windows win = windows(p);
  const int64_t group_b = detail::round_up(g.cog, kern.nr) * g.k;
  T* b_packed = arena.shared<T>();
  int64_t* seg = reinterpret_cast<int64_t*>(b_packed + p.groups * group_b);
  const int64_t taps_per_seg = win.nseg / p.kh;  // a run per tap, or one per kernel row
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < taps_per_seg; ++j)
      seg[i * taps_per_seg + j] = i * p.dilation_h * win.pitch + j * p.dilation_w * p.c_in;

  const int64_t panels = (g.cog + kern.nr - 1) / kern.nr;
  const int pack_nt = threads_for(double(p.groups * group_b), 1 << 16);
  parallel_for(p.groups * panels, pack_nt, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      const int64_t grp = q / panels, j = q % panels * kern.nr;
      detail::pack_panels_any(w + (grp * g.cog + j) * g.k, 1, g.k, g.k, std::min(kern.nr, g.cog - j), kern.nr,
                              b_packed + grp * group_b + j * g.k);
    }
  });

  // The output row's pixels in tiles of at most MR, as even as possible (a short last tile would
  // run a tile of few rows, at a fraction of the FMA rate).
  const int64_t tiles = (p.out_w + kern.mr - 1) / kern.mr;
  const int64_t rows = window_rows(p);
  const int64_t row_in = p.w * p.c_in;  // an input row
  const double work = double(p.out_w) * p.c_out * g.k;
  parallel_for(p.n * p.out_h, threads_for(work * p.n * p.out_h, 1 << 20), [&](int64_t r0, int64_t r1) {
    T* band = arena.item<T>();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / p.out_h, oh = r % p.out_h;
      const int64_t ih0 = oh * p.stride_h - p.pad_h;
      const T* image = x + n * p.h * row_in;
      const T* top;  // the window rows of this output row, pitch apart
      if (!win.band) {
        top = image + ih0 * row_in;
      } else {
        for (int64_t i = 0; i < rows; ++i) {
          T* d = band + i * win.pitch;
          const int64_t ih = ih0 + i;
          const int64_t edge = p.pad_w * p.c_in;
          if (ih < 0 || ih >= p.h) {
            std::fill(d, d + win.pitch, T(0));
            continue;
          }
          std::fill(d, d + edge, T(0));
          std::memcpy(d + edge, image + ih * row_in, sizeof(T) * row_in);
          std::fill(d + edge + row_in, d + win.pitch, T(0));
        }
        top = band;
      }
      T* y_row = y + r * p.out_w * p.c_out;
      for (int64_t grp = 0; grp < p.groups; ++grp) {
        const T* a_grp = top + grp * g.cig;
        for (int64_t j = 0; j < g.cog; j += kern.nr) {
          const T* b_panel = b_packed + grp * group_b + j * g.k;
          const T* bias_j = bias ? bias + grp * g.cog + j : nullptr;
          const int64_t n_tile = std::min(kern.nr, g.cog - j);
          for (int64_t t = 0; t < tiles; ++t) {
            const int64_t ow0 = p.out_w * t / tiles, ow1 = p.out_w * (t + 1) / tiles;
            kern.window_ukernel(a_grp + ow0 * p.stride_w * p.c_in, p.stride_w * p.c_in, seg, win.nseg, win.seg_len,
                                b_panel, bias_j, y_row + ow0 * p.c_out + grp * g.cog + j, p.c_out, ow1 - ow0,
                                n_tile);
          }
        }
      }
    }
  });
}

template <typename T>
Workspace workspace(const Conv2dParams& p) {
  const Windows win = windows(p);
  Workspace ws;
  ws.shared = sizeof(T) * packed_weight_elements(p, gemm_kernel<T>()) + sizeof(int64_t) * win.nseg;
  if (win.band) ws.item = sizeof(T) * window_rows(p) * win.pitch;
  return ws;
}

}  // namespace

bool nhwc_gemm_windows_applies(const Conv2dParams& p, Pass pass) {
  return p.channels_last && pass == Pass::forward;
}

Workspace nhwc_gemm_windows_workspace(const Conv2dParams& p, Pass, int) {
  return p.dtype == DType::f32 ? workspace<float>(p) : workspace<double>(p);
}

bool nhwc_gemm_windows_forward(const Conv2dParams& p, const Arena& arena, const void* x, const void* w,
                               const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, arena, typed...); });
}

}  // namespace convforge::cpu::conv
