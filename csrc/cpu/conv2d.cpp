// Placeholder conv2d: direct loops, correct for every parameter. Replaced by the GEMM-based
// kernels.
#include <cstring>

#include "core/parallel.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

template <typename T>
static void forward(const Conv2dParams& p, const T* x, const T* w, const T* b, T* y) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  parallel_for(p.n * p.c_out, get_num_threads(), [&](int64_t b0, int64_t b1) {
    for (int64_t nc = b0; nc < b1; ++nc) {
      const int64_t n = nc / p.c_out, co = nc % p.c_out, g = co / cog;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          T acc = b ? b[co] : T(0);
          for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t i = 0; i < p.kh; ++i) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
              if (ih < 0 || ih >= p.h) continue;
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dilation_w;
                if (iw < 0 || iw >= p.w) continue;
                acc += x[((n * p.c_in + g * cig + ci) * p.h + ih) * p.w + iw] *
                       w[((co * cig + ci) * p.kh + i) * p.kw + j];
              }
            }
          y[(nc * p.out_h + oh) * p.out_w + ow] = acc;
        }
    }
  });
}

template <typename T>
static void backward(const Conv2dParams& p, const T* dy, const T* x, const T* w, T* dx, T* dw,
                     T* db) {
  const int64_t cig = p.c_in / p.groups, cog = p.c_out / p.groups;
  const int64_t plane = p.out_h * p.out_w;
  if (db)
    for (int64_t co = 0; co < p.c_out; ++co) {
      T acc = 0;
      for (int64_t n = 0; n < p.n; ++n)
        for (int64_t s = 0; s < plane; ++s) acc += dy[(n * p.c_out + co) * plane + s];
      db[co] = acc;
    }
  // Visits every (output pixel, tap) pair: f(x index, w index, dy value).
  auto each_tap = [&](int64_t n, int64_t co, auto&& f) {
    const int64_t g = co / cog;
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        const T g_out = dy[((n * p.c_out + co) * p.out_h + oh) * p.out_w + ow];
        for (int64_t ci = 0; ci < cig; ++ci)
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t ih = oh * p.stride_h - p.pad_h + i * p.dilation_h;
            if (ih < 0 || ih >= p.h) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t iw = ow * p.stride_w - p.pad_w + j * p.dilation_w;
              if (iw < 0 || iw >= p.w) continue;
              f(((n * p.c_in + g * cig + ci) * p.h + ih) * p.w + iw,
                ((co * cig + ci) * p.kh + i) * p.kw + j, g_out);
            }
          }
      }
  };
  if (dw) {
    std::memset(dw, 0, sizeof(T) * p.c_out * cig * p.kh * p.kw);
    parallel_for(p.c_out, get_num_threads(), [&](int64_t c0, int64_t c1) {
      for (int64_t co = c0; co < c1; ++co)
        for (int64_t n = 0; n < p.n; ++n)
          each_tap(n, co, [&](int64_t xi, int64_t wi, T g) { dw[wi] += x[xi] * g; });
    });
  }
  if (dx) {
    std::memset(dx, 0, sizeof(T) * p.n * p.c_in * p.h * p.w);
    parallel_for(p.n, get_num_threads(), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t co = 0; co < p.c_out; ++co)
          each_tap(n, co, [&](int64_t xi, int64_t wi, T g) { dx[xi] += w[wi] * g; });
    });
  }
}

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias,
                    void* output) {
  if (p.dtype == DType::f32)
    forward(p, static_cast<const float*>(input), static_cast<const float*>(weight),
            static_cast<const float*>(bias), static_cast<float*>(output));
  else
    forward(p, static_cast<const double*>(input), static_cast<const double*>(weight),
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
