// Max and average pooling on CUDA, with the CPU path's semantics (torch's): NaN propagates and
// the last NaN / first maximum wins in max pooling; average pooling clips windows to the padded
// input and divides by torch's divisor. Forward: one thread per output. Backward: one thread per
// input pixel gathering from the windows that cover it, in output order (deterministic, no
// atomics).
#include "cuda/kernels.h"
#include "cuda/compat.h"

namespace convforge::CF_NS {

struct PoolShape {
  int planes, h, w, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw;
  int count_include_pad, divisor_override;
};

constexpr int kPoolThreads = 256;

template <typename T>
__device__ __forceinline__ T lowest();
template <>
__device__ __forceinline__ float lowest<float>() { return -INFINITY; }
template <>
__device__ __forceinline__ double lowest<double>() { return -INFINITY; }

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_fwd_kernel(PoolShape s, gptr<const T> x, gptr<T> y, gptr<int64_t> indices) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= int64_t(s.planes) * s.out_h * s.out_w) return;
  const int ow = int(o % s.out_w), oh = int(o / s.out_w % s.out_h);
  const int64_t plane = o / (int64_t(s.out_h) * s.out_w);
  gptr<const T> xp = x + plane * s.h * s.w;
  const int hs = oh * s.sh - s.ph, ws = ow * s.sw - s.pw;
  // First tap inside the input (the window may start in the padding).
  const int h0 = hs < 0 ? hs + (-hs + s.dh - 1) / s.dh * s.dh : hs;
  const int w0 = ws < 0 ? ws + (-ws + s.dw - 1) / s.dw * s.dw : ws;
  const int h_end = imin(hs + (s.kh - 1) * s.dh + 1, s.h), w_end = imin(ws + (s.kw - 1) * s.dw + 1, s.w);
  T best = lowest<T>();
  int best_i = h0 * s.w + w0;
  for (int ih = h0; ih < h_end; ih += s.dh)
    for (int iw = w0; iw < w_end; iw += s.dw) {
      const T v = xp[ih * s.w + iw];
      if (v > best || isnan(v)) {
        best = v;
        best_i = ih * s.w + iw;
      }
    }
  y[o] = best;
  if (indices) indices[o] = best_i;
}

// Windows that may contain input coordinate i: outputs [lo, hi] along one axis, for a window of
// `span` input pixels starting at o * stride - pad.
__device__ __forceinline__ void covering(int i, int stride, int pad, int span, int out, int& lo, int& hi) {
  const int a = i + pad - span + 1;
  lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  hi = imin((i + pad) / stride, out - 1);
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    max_pool2d_bwd_kernel(PoolShape s, gptr<const T> dy, gptr<const int64_t> indices, gptr<T> dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(s.planes) * s.h * s.w) return;
  const int iw = int(i % s.w), ih = int(i / s.w % s.h);
  const int64_t plane = i / (int64_t(s.h) * s.w);
  const int64_t base = plane * s.out_h * s.out_w;
  int oh0, oh1, ow0, ow1;
  covering(ih, s.sh, s.ph, (s.kh - 1) * s.dh + 1, s.out_h, oh0, oh1);
  covering(iw, s.sw, s.pw, (s.kw - 1) * s.dw + 1, s.out_w, ow0, ow1);
  const int64_t target = int64_t(ih) * s.w + iw;
  T sum = 0;
  for (int oh = oh0; oh <= oh1; ++oh)
    for (int ow = ow0; ow <= ow1; ++ow) {
      const int64_t o = base + oh * s.out_w + ow;
      if (indices[o] == target) sum += dy[o];
    }
  dx[i] = sum;
}

// torch's average-pooling window of output (oh, ow), clipped, and its divisor.
struct AvgWindow {
  int h0, h1, w0, w1, divisor;
};
__device__ __forceinline__ AvgWindow avg_window(const PoolShape& s, int oh, int ow) {
  AvgWindow r;
  r.h0 = oh * s.sh - s.ph, r.w0 = ow * s.sw - s.pw;
  r.h1 = imin(r.h0 + s.kh, s.h + s.ph), r.w1 = imin(r.w0 + s.kw, s.w + s.pw);
  const int padded = (r.h1 - r.h0) * (r.w1 - r.w0);
  r.h0 = imax(r.h0, 0), r.w0 = imax(r.w0, 0);
  r.h1 = imin(r.h1, s.h), r.w1 = imin(r.w1, s.w);
  r.divisor = s.divisor_override ? s.divisor_override
              : s.count_include_pad ? padded
                                    : (r.h1 - r.h0) * (r.w1 - r.w0);
  return r;
}

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_fwd_kernel(PoolShape s, gptr<const T> x, gptr<T> y) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= int64_t(s.planes) * s.out_h * s.out_w) return;
  const int ow = int(o % s.out_w), oh = int(o / s.out_w % s.out_h);
  gptr<const T> xp = x + o / (int64_t(s.out_h) * s.out_w) * s.h * s.w;
  const AvgWindow win = avg_window(s, oh, ow);
  T sum = 0;
  for (int ih = win.h0; ih < win.h1; ++ih)
    for (int iw = win.w0; iw < win.w1; ++iw) sum += xp[ih * s.w + iw];
  y[o] = sum / T(win.divisor);
}

// g / divisor, correctly rounded like the CPU's. For float through double: a double quotient
// rounded to float is the correctly rounded float quotient (53 >= 2 * 24 + 2 bits), and it
// avoids the float division's slow-path call, whose saved registers ptxas reports as spills.
__device__ __forceinline__ float divide(float g, int divisor) { return float(double(g) / double(divisor)); }
__device__ __forceinline__ double divide(double g, int divisor) { return g / double(divisor); }

template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    avg_pool2d_bwd_kernel(PoolShape s, gptr<const T> dy, gptr<T> dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(s.planes) * s.h * s.w) return;
  const int iw = int(i % s.w), ih = int(i / s.w % s.h);
  gptr<const T> dyp = dy + i / (int64_t(s.h) * s.w) * s.out_h * s.out_w;
  int oh0, oh1, ow0, ow1;
  covering(ih, s.sh, s.ph, s.kh, s.out_h, oh0, oh1);
  covering(iw, s.sw, s.pw, s.kw, s.out_w, ow0, ow1);
  T sum = 0;
  for (int oh = oh0; oh <= oh1; ++oh)
    for (int ow = ow0; ow <= ow1; ++ow) sum += divide(dyp[oh * s.out_w + ow], avg_window(s, oh, ow).divisor);
  dx[i] = sum;
}

namespace {

PoolShape pool_shape(const Pool2dParams& p) {
  CHECK(p.n * p.c * p.h * p.w < (int64_t(1) << 31) && p.n * p.c * p.out_h * p.out_w < (int64_t(1) << 31),
        "pool2d: ", backend_name(), " kernels expect fewer than 2^31 elements per array");
  require_device();
  return {int(p.n * p.c), int(p.h),          int(p.w),          int(p.out_h),      int(p.out_w),
          int(p.kh),      int(p.kw),         int(p.stride_h),   int(p.stride_w),   int(p.pad_h),
          int(p.pad_w),   int(p.dilation_h), int(p.dilation_w), p.count_include_pad, int(p.divisor_override)};
}

// One thread per element of `count`.
dim3 grid_for(int64_t count) { return dim3(unsigned(ceil_div(count, kPoolThreads))); }

template <typename T>
void max_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  const PoolShape s = pool_shape(p);
  const int64_t in = int64_t(s.planes) * s.h * s.w, out = int64_t(s.planes) * s.out_h * s.out_w;
  CF_LAUNCH(max_pool2d_fwd_kernel<T>, grid_for(out), dim3(kPoolThreads), 0, p.stream, s,
            device_array(static_cast<const T*>(input), in, "input"),
            device_array(static_cast<T*>(output), out, "output"), device_array(indices, out, "indices"));
}

template <typename T>
void max_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices, void* grad_input) {
  const PoolShape s = pool_shape(p);
  const int64_t in = int64_t(s.planes) * s.h * s.w, out = int64_t(s.planes) * s.out_h * s.out_w;
  CF_LAUNCH(max_pool2d_bwd_kernel<T>, grid_for(in), dim3(kPoolThreads), 0, p.stream, s,
            device_array(static_cast<const T*>(grad_output), out, "grad_output"),
            device_array(indices, out, "indices"), device_array(static_cast<T*>(grad_input), in, "grad_input"));
}

template <typename T>
void avg_forward(const Pool2dParams& p, const void* input, void* output) {
  const PoolShape s = pool_shape(p);
  const int64_t in = int64_t(s.planes) * s.h * s.w, out = int64_t(s.planes) * s.out_h * s.out_w;
  CF_LAUNCH(avg_pool2d_fwd_kernel<T>, grid_for(out), dim3(kPoolThreads), 0, p.stream, s,
            device_array(static_cast<const T*>(input), in, "input"),
            device_array(static_cast<T*>(output), out, "output"));
}

template <typename T>
void avg_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  const PoolShape s = pool_shape(p);
  const int64_t in = int64_t(s.planes) * s.h * s.w, out = int64_t(s.planes) * s.out_h * s.out_w;
  CF_LAUNCH(avg_pool2d_bwd_kernel<T>, grid_for(in), dim3(kPoolThreads), 0, p.stream, s,
            device_array(static_cast<const T*>(grad_output), out, "grad_output"),
            device_array(static_cast<T*>(grad_input), in, "grad_input"));
}

}  // namespace

void max_pool2d_forward(const Pool2dParams& p, const void* input, void* output, int64_t* indices) {
  p.dtype == DType::f32 ? max_forward<float>(p, input, output, indices)
                        : max_forward<double>(p, input, output, indices);
}
void max_pool2d_backward(const Pool2dParams& p, const void* grad_output, const int64_t* indices,
                         void* grad_input) {
  p.dtype == DType::f32 ? max_backward<float>(p, grad_output, indices, grad_input)
                        : max_backward<double>(p, grad_output, indices, grad_input);
}
void avg_pool2d_forward(const Pool2dParams& p, const void* input, void* output) {
  p.dtype == DType::f32 ? avg_forward<float>(p, input, output) : avg_forward<double>(p, input, output);
}
void avg_pool2d_backward(const Pool2dParams& p, const void* grad_output, void* grad_input) {
  p.dtype == DType::f32 ? avg_backward<float>(p, grad_output, grad_input)
                        : avg_backward<double>(p, grad_output, grad_input);
}

}  // namespace convforge::CF_NS
