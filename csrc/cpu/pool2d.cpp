// Placeholder pooling: direct loops with torch's semantics, threaded over planes. Replaced by
// the vectorized kernels.
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.h"
#include "cpu/kernels.h"

namespace convforge::cpu {

template <typename T>
static void max_forward(const Pool2dParams& p, const T* x, T* y, int64_t* idx) {
  parallel_for(p.n * p.c, threads_for(double(p.n * p.c) * p.h * p.w, 1 << 16), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* xp = x + pl * p.h * p.w;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
          while (h0 < 0) h0 += p.dilation_h;
          while (w0 < 0) w0 += p.dilation_w;
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_i = h0 * p.w + w0;
          const int64_t h_end = std::min(oh * p.stride_h - p.pad_h + (p.kh - 1) * p.dilation_h + 1, p.h);
          const int64_t w_end = std::min(ow * p.stride_w - p.pad_w + (p.kw - 1) * p.dilation_w + 1, p.w);
          for (int64_t ih = h0; ih < h_end; ih += p.dilation_h)
            for (int64_t iw = w0; iw < w_end; iw += p.dilation_w) {
              const T v = xp[ih * p.w + iw];
              if (v > best || std::isnan(v)) {
                best = v;
                best_i = ih * p.w + iw;
              }
            }
          const int64_t o = (pl * p.out_h + oh) * p.out_w + ow;
          y[o] = best;
          if (idx) idx[o] = best_i;
        }
    }
  });
}

template <typename T>
static bool max_backward(const Pool2dParams& p, const T* dy, const int64_t* idx, T* dx) {
  std::atomic<bool> ok{true};
  parallel_for(p.n * p.c, threads_for(double(p.n * p.c) * p.h * p.w, 1 << 16), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* dxp = dx + pl * p.h * p.w;
      std::memset(dxp, 0, sizeof(T) * p.h * p.w);
      for (int64_t o = pl * p.out_h * p.out_w; o < (pl + 1) * p.out_h * p.out_w; ++o) {
        if (uint64_t(idx[o]) < uint64_t(p.h * p.w))
          dxp[idx[o]] += dy[o];
        else
          ok = false;
      }
    }
  });
  return ok;
}

// Visits each output of one plane with its clipped window and torch's divisor.
template <typename F>
static void each_avg_window(const Pool2dParams& p, F&& f) {
  for (int64_t oh = 0; oh < p.out_h; ++oh)
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
      int64_t h1 = std::min(h0 + p.kh, p.h + p.pad_h), w1 = std::min(w0 + p.kw, p.w + p.pad_w);
      const int64_t padded_size = (h1 - h0) * (w1 - w0);
      h0 = std::max<int64_t>(h0, 0);
      w0 = std::max<int64_t>(w0, 0);
      h1 = std::min(h1, p.h);
      w1 = std::min(w1, p.w);
      const int64_t divisor = p.divisor_override ? p.divisor_override
                              : p.count_include_pad ? padded_size
                                                    : (h1 - h0) * (w1 - w0);
      f(oh * p.out_w + ow, h0, h1, w0, w1, divisor);
    }
}

template <typename T>
static void avg_forward(const Pool2dParams& p, const T* x, T* y) {
  parallel_for(p.n * p.c, threads_for(double(p.n * p.c) * p.h * p.w, 1 << 16), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const T* xp = x + pl * p.h * p.w;
      T* yp = y + pl * p.out_h * p.out_w;
      each_avg_window(p, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t d) {
        T sum = 0;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += xp[ih * p.w + iw];
        yp[o] = sum / T(d);
      });
    }
  });
}

template <typename T>
static void avg_backward(const Pool2dParams& p, const T* dy, T* dx) {
  parallel_for(p.n * p.c, threads_for(double(p.n * p.c) * p.h * p.w, 1 << 16), [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      T* dxp = dx + pl * p.h * p.w;
      const T* dyp = dy + pl * p.out_h * p.out_w;
      std::memset(dxp, 0, sizeof(T) * p.h * p.w);
      each_avg_window(p, [&](int64_t o, int64_t h0, int64_t h1, int64_t w0, int64_t w1, int64_t d) {
        const T g = dyp[o] / T(d);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) dxp[ih * p.w + iw] += g;
      });
    }
  });
}

void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  if (p.dtype == DType::f32)
    max_forward(p, static_cast<const float*>(input), static_cast<float*>(output), indices);
  else
    max_forward(p, static_cast<const double*>(input), static_cast<double*>(output), indices);
}

bool max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input) {
  if (p.dtype == DType::f32)
    return max_backward(p, static_cast<const float*>(grad_output), indices, static_cast<float*>(grad_input));
  return max_backward(p, static_cast<const double*>(grad_output), indices, static_cast<double*>(grad_input));
}

void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output) {
  if (p.dtype == DType::f32)
    avg_forward(p, static_cast<const float*>(input), static_cast<float*>(output));
  else
    avg_forward(p, static_cast<const double*>(input), static_cast<double*>(output));
}

void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  if (p.dtype == DType::f32)
    avg_backward(p, static_cast<const float*>(grad_output), static_cast<float*>(grad_input));
  else
    avg_backward(p, static_cast<const double*>(grad_output), static_cast<double*>(grad_input));
}

}  // namespace convforge::cpu
