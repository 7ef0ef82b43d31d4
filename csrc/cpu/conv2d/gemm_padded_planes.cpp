// gemm_padded_planes: implicit GEMM on zero-padded input planes, forward only (grad_input runs
// it as the flipped-weight forward).
//
// The input is copied once into zero-padded planes of exactly the rows and columns the taps
// reach, split by phase (row mod stride_h, column mod stride_w; one phase at stride 1; only the
// phases some tap reads), each phase a hq x wq plane. The output is computed on the grid
// q = oh * wq + ow, ow < wq: then im2col row k = (ci, i, j) is the contiguous run
//   xq[plane(ci, i * dh mod sh, j * dw mod sw) + (i * dh / sh) * wq + j * dw / sw + q],
// so the B panels are straight copies, with no per-pixel index arithmetic. The wq - out_w extra
// columns per row are computed and dropped when a band is copied into the output (with the bias).
#include <vector>

#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

struct PaddedPlanes {
  int64_t hq, wq;
  // The phases some tap reads (1x1 strided: only phase 0), numbered as first met; -1: unused.
  std::vector<int64_t> row_phase, col_phase;
  int64_t row_phases = 0, col_phases = 0, planes;

  explicit PaddedPlanes(const Conv2dParams& p) : row_phase(p.stride_h, -1), col_phase(p.stride_w, -1) {
    const int64_t hp = (p.out_h - 1) * p.stride_h + (p.kh - 1) * p.dilation_h + 1;
    const int64_t wp = (p.out_w - 1) * p.stride_w + (p.kw - 1) * p.dilation_w + 1;
    hq = (hp + p.stride_h - 1) / p.stride_h;
    wq = (wp + p.stride_w - 1) / p.stride_w;
    for (int64_t i = 0; i < p.kh; ++i)
      if (int64_t& ph = row_phase[i * p.dilation_h % p.stride_h]; ph < 0) ph = row_phases++;
    for (int64_t j = 0; j < p.kw; ++j)
      if (int64_t& pw = col_phase[j * p.dilation_w % p.stride_w]; pw < 0) pw = col_phases++;
    planes = p.c_in / p.groups * row_phases * col_phases;
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

// B(k, q) = base[offsets[k] + q]: every row of B is a contiguous run.
template <typename T>
struct OffsetPackB {
  const T* base;
  const int64_t* offsets;
  void operator()(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, T* dst) const {
    detail::pack_row_runs([&](int64_t r) { return base + offsets[k0 + r] + j0; }, kc, nc, nr, dst);
  }
};

// Output rows per GEMM band: about 4096 columns of the padded grid.
int64_t band_rows(const Conv2dParams& p, int64_t wq) {
  constexpr int64_t kBandColumns = 4096;
  return std::clamp<int64_t>(kBandColumns / wq, 1, p.out_h);
}

// The item scratch: the padded planes of one image and group, then one band of the output grid.
int64_t band_offset(const PaddedPlanes& planes) { return detail::round_up(planes.size(), 16); }

template <typename T>
void forward(const Conv2dParams& p, const Arena& arena, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  const PaddedPlanes planes(p);
  const int64_t wq = planes.wq;
  const std::vector<int64_t> offsets = planes.row_offsets(p, g);
  const int64_t rows = band_rows(p, wq);
  const double work = double(g.cog) * g.k * p.out_h * wq;
  for_items(p.n * p.groups, work, gemm_threads(g.cog, rows * wq, g.k), [&](int64_t item, int nt) {
    const int64_t n = item / p.groups, grp = item % p.groups;
    T* xq = arena.item<T>();
    T* band = xq + band_offset(planes);
    planes.fill(p, x + (n * p.c_in + grp * g.cig) * p.h * p.w, xq);
    const StridedPackA<T> pack_w{w + grp * g.cog * g.k, g.k, 1};
    T* yg = y + (n * p.c_out + grp * g.cog) * g.ohw;
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

}  // namespace

int64_t padded_plane_width(const Conv2dParams& p) { return PaddedPlanes(p).wq; }

bool gemm_padded_planes_applies(const Conv2dParams& p, Pass pass) {
  return !p.channels_last && pass == Pass::forward;
}

Workspace gemm_padded_planes_workspace(const Conv2dParams& p, Pass, int) {
  const PaddedPlanes planes(p);
  const int64_t band = p.c_out / p.groups * band_rows(p, planes.wq) * planes.wq;
  return {0, size_t(dtype_size(p.dtype) * (band_offset(planes) + band)), 0};
}

bool gemm_padded_planes_forward(const Conv2dParams& p, const Arena& arena, const void* x,
                                const void* w, const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, arena, typed...); });
}

}  // namespace convforge::cpu::conv
