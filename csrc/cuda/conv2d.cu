// conv2d on CUDA, NCHW, every parameter of the CPU op (groups, stride, dilation, asymmetric
// padding through out_h/out_w). Three implicit GEMMs on the tiled main loop of tile_gemm.cuh,
// whose loaders gather the virtual im2col matrices on the fly (no buffer), per group:
//   forward      Y[co][n,oh,ow]  = sum_(ci,r,s)  W[co][ci,r,s]   * X(ci,r,s ; n,oh,ow)
//   grad_input   dX[ci][n,h,w]   = sum_(co,r,s)  W[co][ci,r,s]   * dY(co,r,s ; n,h,w)   (gather)
//   grad_weight  dW[co][ci,r,s]  = sum_(n,oh,ow) dY[co][n,oh,ow] * X(n,oh,ow ; ci,r,s)  (split-K)
// grad_weight splits its long reduction over blocks writing partial sums to a workspace, which
// a second kernel adds in a fixed order (deterministic, no atomics). Depthwise convolutions
// (one input channel per group) use direct kernels instead. grad_bias is a block reduction.
#include <algorithm>

#include "cuda/kernels.h"
#include "cuda/tile_gemm.cuh"

namespace convforge::CF_NS {

struct ConvShape {
  int n, c_in, h, w, c_out, kh, kw, groups, out_h, out_w, sh, sw, ph, pw, dh, dw;
  int cig, cog;  // channels per group
};

// ---------------------------------------------------------------------------------------------
// Loaders of the virtual matrices (contract in tile_gemm.cuh). Each thread loads one k row and
// 4 consecutive columns of the tile; what the columns need is computed once per thread.

// forward B: X(k = (ci, r, s); j = (n, oh, ow)) for group g.
template <typename T, int BN, int BK, int PAD>
struct Im2colLoader {
  gptr<const T> x;
  ConvShape s;
  int kk, jq, ih0[4], iw0[4];
  int64_t base[4];  // offset of (n, first channel of the group), or -1 past the last column

  __device__ __forceinline__ Im2colLoader(const ConvShape& s_, gptr<const T> x_, int g, int n0) : x(x_), s(s_) {
    kk = threadIdx.x / (BN / 4), jq = (threadIdx.x % (BN / 4)) * 4;
    const int plane = s.out_h * s.out_w, cols = s.n * plane;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + jq + j, n = col / plane, pix = col % plane;
      base[j] = col < cols ? (int64_t(n) * s.c_in + int64_t(g) * s.cig) * s.h * s.w : -1;
      ih0[j] = pix / s.out_w * s.sh - s.ph;
      iw0[j] = pix % s.out_w * s.sw - s.pw;
    }
  }
  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    const int k = k0 + kk, taps = s.kh * s.kw;
    const int ci = k / taps, r = k % taps / s.kw, c = k % s.kw;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int ih = ih0[j] + r * s.dh, iw = iw0[j] + c * s.dw;
      const bool ok = k < k_end && base[j] >= 0 && ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
      v[j] = ok ? x[base[j] + (int64_t(ci) * s.h + ih) * s.w + iw] : T(0);
    }
  }
  __device__ __forceinline__ void store(T (*t)[BN + PAD], const T (&v)[4]) const { store_row_quad<T, BN, PAD>(t, v); }
};

// grad_input A: W(ci; k = (co, r, s)) = w[g*cog + co][ci][r][s], 4 consecutive ci per thread.
template <typename T, int BM, int BK, int PAD>
struct WeightTLoader {
  gptr<const T> w;  // the group's first filter
  ConvShape s;
  int m0;
  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    const int kk = threadIdx.x / (BM / 4), mq = (threadIdx.x % (BM / 4)) * 4;
    const int k = k0 + kk, taps = s.kh * s.kw, co = k / taps, rs = k % taps;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int ci = m0 + mq + j;
      v[j] = k < k_end && ci < s.cig ? w[(int64_t(co) * s.cig + ci) * taps + rs] : T(0);
    }
  }
  __device__ __forceinline__ void store(T (*t)[BM + PAD], const T (&v)[4]) const { store_row_quad<T, BM, PAD>(t, v); }
};

// grad_input B: dY(k = (co, r, s); j = (n, h, w)): the output pixel whose tap (r, s) lands on
// input pixel (h, w), if any.
template <typename T, int BN, int BK, int PAD>
struct Col2imLoader {
  gptr<const T> dy;
  ConvShape s;
  int kk, jq, hp[4], wp[4];
  int64_t base[4];  // offset of (n, first channel of the group) in dY, or -1

  __device__ __forceinline__ Col2imLoader(const ConvShape& s_, gptr<const T> dy_, int g, int n0) : dy(dy_), s(s_) {
    kk = threadIdx.x / (BN / 4), jq = (threadIdx.x % (BN / 4)) * 4;
    const int plane = s.h * s.w, cols = s.n * plane;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + jq + j, n = col / plane, pix = col % plane;
      base[j] = col < cols ? (int64_t(n) * s.c_out + int64_t(g) * s.cog) * s.out_h * s.out_w : -1;
      hp[j] = pix / s.w + s.ph;
      wp[j] = pix % s.w + s.pw;
    }
  }
  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    const int k = k0 + kk, taps = s.kh * s.kw;
    const int co = k / taps, r = k % taps / s.kw, c = k % s.kw;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int th = hp[j] - r * s.dh, tw = wp[j] - c * s.dw;
      const int oh = th / s.sh, ow = tw / s.sw;
      const bool ok = k < k_end && base[j] >= 0 && th >= 0 && tw >= 0 && oh * s.sh == th &&
                      ow * s.sw == tw && oh < s.out_h && ow < s.out_w;
      v[j] = ok ? dy[base[j] + (int64_t(co) * s.out_h + oh) * s.out_w + ow] : T(0);
    }
  }
  __device__ __forceinline__ void store(T (*t)[BN + PAD], const T (&v)[4]) const { store_row_quad<T, BN, PAD>(t, v); }
};

// grad_weight A: dY(co; k = (n, oh, ow)), 4 consecutive k per thread.
template <typename T, int BM, int BK, int PAD>
struct GradOutLoader {
  gptr<const T> dy;
  ConvShape s;
  int g, m0;
  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    const int r = threadIdx.x / (BK / 4), kq = (threadIdx.x % (BK / 4)) * 4;
    const int co = m0 + r, plane = s.out_h * s.out_w;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int k = k0 + kq + j, n = k / plane, pix = k % plane;
      v[j] = k < k_end && co < s.cog
                         ? dy[(int64_t(n) * s.c_out + int64_t(g) * s.cog + co) * plane + pix]
                         : T(0);
    }
  }
  __device__ __forceinline__ void store(T (*t)[BM + PAD], const T (&v)[4]) const {
    const int r = threadIdx.x / (BK / 4), kq = (threadIdx.x % (BK / 4)) * 4;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) t[kq + j][r] = v[j];
  }
};

// grad_weight B: X(k = (n, oh, ow); j = (ci, r, s)).
template <typename T, int BN, int BK, int PAD>
struct Im2colTLoader {
  gptr<const T> x;
  ConvShape s;
  int g, kk, jq, dr[4], dc[4];
  int64_t coff[4];  // channel offset within the group, or -1 past the last column

  __device__ __forceinline__ Im2colTLoader(const ConvShape& s_, gptr<const T> x_, int g_, int n0) : x(x_), s(s_), g(g_) {
    kk = threadIdx.x / (BN / 4), jq = (threadIdx.x % (BN / 4)) * 4;
    const int taps = s.kh * s.kw;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + jq + j, ci = col / taps;
      coff[j] = col < s.cig * taps ? int64_t(ci) * s.h * s.w : -1;
      dr[j] = col % taps / s.kw * s.dh;
      dc[j] = col % s.kw * s.dw;
    }
  }
  __device__ __forceinline__ void fetch(T (&v)[4], int k0, int k_end) const {
    const int k = k0 + kk, plane = s.out_h * s.out_w;
    const int n = k / plane, pix = k % plane;
    const int ih0 = pix / s.out_w * s.sh - s.ph, iw0 = pix % s.out_w * s.sw - s.pw;
    const int64_t base = (int64_t(n) * s.c_in + int64_t(g) * s.cig) * s.h * s.w;
    CF_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int ih = ih0 + dr[j], iw = iw0 + dc[j];
      const bool ok = k < k_end && coff[j] >= 0 && ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
      v[j] = ok ? x[base + coff[j] + int64_t(ih) * s.w + iw] : T(0);
    }
  }
  __device__ __forceinline__ void store(T (*t)[BN + PAD], const T (&v)[4]) const { store_row_quad<T, BN, PAD>(t, v); }
};

// ---------------------------------------------------------------------------------------------
// Implicit-GEMM kernels. grid = (column tiles, row tiles, groups [* splits]).

template <typename Cfg, typename T, bool VEC>
__global__ void __launch_bounds__(Cfg::THREADS)
    conv2d_fwd_implicit_gemm_kernel(ConvShape s, gptr<const T> x, gptr<const T> w, gptr<const T> bias, gptr<T> y) {
  constexpr int TM = Cfg::TM, TN = Cfg::TN;
  const int g = blockIdx.z, m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int K = s.cig * s.kh * s.kw, plane = s.out_h * s.out_w, cols = s.n * plane;
  const DenseLoader<T, Cfg::BM, Cfg::BK, Cfg::PAD, true, VEC> la{w + int64_t(g) * s.cog * K, K, s.cog, m0};
  const Im2colLoader<T, Cfg::BN, Cfg::BK, Cfg::PAD> lb(s, x, g, n0);
  T acc[TM][TN] = {};
  tile_mma<Cfg>(la, lb, 0, K, acc);
  const int tx = threadIdx.x % (Cfg::BN / TN), ty = threadIdx.x / (Cfg::BN / TN);
  CF_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int co = m0 + ty * TM + i;
    if (co >= s.cog) break;
    const int c = g * s.cog + co;
    const T b = bias ? bias[c] : T(0);
    CF_UNROLL
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      if (col < cols) y[(int64_t(col / plane) * s.c_out + c) * plane + col % plane] = acc[i][j] + b;
    }
  }
}

template <typename Cfg, typename T>
__global__ void __launch_bounds__(Cfg::THREADS)
    conv2d_bwd_input_implicit_gemm_kernel(ConvShape s, gptr<const T> dy, gptr<const T> w, gptr<T> dx) {
  constexpr int TM = Cfg::TM, TN = Cfg::TN;
  const int g = blockIdx.z, m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int K = s.cog * s.kh * s.kw, plane = s.h * s.w, cols = s.n * plane;
  const WeightTLoader<T, Cfg::BM, Cfg::BK, Cfg::PAD> la{w + int64_t(g) * s.cog * s.cig * s.kh * s.kw, s, m0};
  const Col2imLoader<T, Cfg::BN, Cfg::BK, Cfg::PAD> lb(s, dy, g, n0);
  T acc[TM][TN] = {};
  tile_mma<Cfg>(la, lb, 0, K, acc);
  const int tx = threadIdx.x % (Cfg::BN / TN), ty = threadIdx.x / (Cfg::BN / TN);
  CF_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int ci = m0 + ty * TM + i;
    if (ci >= s.cig) break;
    const int c = g * s.cig + ci;
    CF_UNROLL
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      if (col < cols) dx[(int64_t(col / plane) * s.c_in + c) * plane + col % plane] = acc[i][j];
    }
  }
}

// blockIdx.z = split * groups + g; split `split` covers k in [split * chunk, (split + 1) * chunk)
// and writes its partial dW to out + split * (weight size).
template <typename Cfg, typename T>
__global__ void __launch_bounds__(Cfg::THREADS)
    conv2d_bwd_weight_implicit_gemm_kernel(ConvShape s, gptr<const T> dy, gptr<const T> x, gptr<T> out, int chunk) {
  constexpr int TM = Cfg::TM, TN = Cfg::TN;
  const int g = blockIdx.z % s.groups, split = blockIdx.z / s.groups;
  const int m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int N = s.cig * s.kh * s.kw, K = s.n * s.out_h * s.out_w;
  const int k_begin = split * chunk, k_end = imin(K, k_begin + chunk);
  const GradOutLoader<T, Cfg::BM, Cfg::BK, Cfg::PAD> la{dy, s, g, m0};
  const Im2colTLoader<T, Cfg::BN, Cfg::BK, Cfg::PAD> lb(s, x, g, n0);
  T acc[TM][TN] = {};
  tile_mma<Cfg>(la, lb, k_begin, k_end, acc);
  gptr<T> part = out + int64_t(split) * s.c_out * N;
  const int tx = threadIdx.x % (Cfg::BN / TN), ty = threadIdx.x / (Cfg::BN / TN);
  CF_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int co = m0 + ty * TM + i;
    if (co >= s.cog) break;
    CF_UNROLL
    for (int j = 0; j < TN; ++j) {
      const int col = n0 + tx * TN + j;
      if (col < N) part[int64_t(g * s.cog + co) * N + col] = acc[i][j];
    }
  }
}

// dW[i] = sum over splits of the partial sums, in split order.
template <typename T>
__global__ void __launch_bounds__(256) splitk_reduce_kernel(gptr<const T> parts, int splits, int64_t count, gptr<T> out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  T sum = parts[i];
  for (int k = 1; k < splits; ++k) sum += parts[int64_t(k) * count + i];
  out[i] = sum;
}

// grad_bias[c] = sum over (n, pixel) of dY[n][c][pixel]: one block per channel.
template <typename T>
__global__ void __launch_bounds__(256) conv2d_bwd_bias_kernel(ConvShape s, gptr<const T> dy, gptr<T> db) {
  const int c = blockIdx.x, plane = s.out_h * s.out_w;
  T sum = 0;
  for (int n = 0; n < s.n; ++n) {
    gptr<const T> p = dy + (int64_t(n) * s.c_out + c) * plane;
    for (int i = threadIdx.x; i < plane; i += blockDim.x) sum += p[i];
  }
  sum = block_reduce_sum(sum);
  if (threadIdx.x == 0) db[c] = sum;
}

// ---------------------------------------------------------------------------------------------
// Depthwise (cig == 1): output channel co reads input channel co / cog.

template <typename T>
__global__ void __launch_bounds__(256)
    conv2d_depthwise_fwd_kernel(ConvShape s, gptr<const T> x, gptr<const T> w, gptr<const T> bias, gptr<T> y) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int plane = s.out_h * s.out_w;
  if (o >= int64_t(s.n) * s.c_out * plane) return;
  const int pix = int(o % plane), co = int(o / plane % s.c_out), n = int(o / plane / s.c_out);
  const int ih0 = pix / s.out_w * s.sh - s.ph, iw0 = pix % s.out_w * s.sw - s.pw;
  gptr<const T> xp = x + (int64_t(n) * s.c_in + co / s.cog) * s.h * s.w;
  gptr<const T> wp = w + int64_t(co) * s.kh * s.kw;
  T acc = bias ? bias[co] : T(0);
  for (int r = 0; r < s.kh; ++r) {
    const int ih = ih0 + r * s.dh;
    if (ih < 0 || ih >= s.h) continue;
    for (int c = 0; c < s.kw; ++c) {
      const int iw = iw0 + c * s.dw;
      if (iw >= 0 && iw < s.w) acc += xp[ih * s.w + iw] * wp[r * s.kw + c];
    }
  }
  y[o] = acc;
}

template <typename T>
__global__ void __launch_bounds__(256)
    conv2d_depthwise_bwd_input_kernel(ConvShape s, gptr<const T> dy, gptr<const T> w, gptr<T> dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int plane = s.h * s.w, out_plane = s.out_h * s.out_w;
  if (i >= int64_t(s.n) * s.c_in * plane) return;
  const int pix = int(i % plane), ci = int(i / plane % s.c_in), n = int(i / plane / s.c_in);
  const int hp = pix / s.w + s.ph, wp = pix % s.w + s.pw;
  T acc = 0;
  for (int m = 0; m < s.cog; ++m) {
    const int co = ci * s.cog + m;
    gptr<const T> dyp = dy + (int64_t(n) * s.c_out + co) * out_plane;
    for (int r = 0; r < s.kh; ++r) {
      const int th = hp - r * s.dh, oh = th / s.sh;
      if (th < 0 || oh * s.sh != th || oh >= s.out_h) continue;
      for (int c = 0; c < s.kw; ++c) {
        const int tw = wp - c * s.dw, ow = tw / s.sw;
        if (tw < 0 || ow * s.sw != tw || ow >= s.out_w) continue;
        acc += dyp[oh * s.out_w + ow] * w[(int64_t(co) * s.kh + r) * s.kw + c];
      }
    }
  }
  dx[i] = acc;
}

// One block per weight element (co, r, c), reducing over (n, oh, ow).
template <typename T>
__global__ void __launch_bounds__(256)
    conv2d_depthwise_bwd_weight_kernel(ConvShape s, gptr<const T> dy, gptr<const T> x, gptr<T> dw) {
  const int taps = s.kh * s.kw, co = blockIdx.x / taps, r = blockIdx.x % taps / s.kw, c = blockIdx.x % s.kw;
  const int plane = s.out_h * s.out_w;
  T sum = 0;
  for (int n = 0; n < s.n; ++n) {
    gptr<const T> xp = x + (int64_t(n) * s.c_in + co / s.cog) * s.h * s.w;
    gptr<const T> dyp = dy + (int64_t(n) * s.c_out + co) * plane;
    for (int pix = threadIdx.x; pix < plane; pix += blockDim.x) {
      const int ih = pix / s.out_w * s.sh - s.ph + r * s.dh, iw = pix % s.out_w * s.sw - s.pw + c * s.dw;
      if (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) sum += xp[ih * s.w + iw] * dyp[pix];
    }
  }
  sum = block_reduce_sum(sum);
  if (threadIdx.x == 0) dw[blockIdx.x] = sum;
}

// ---------------------------------------------------------------------------------------------
// Host side: the launch configuration of every conv2d kernel is chosen here, from the shape.

namespace {

constexpr int kThreads = 256;
constexpr int kSplitTargetBlocks = 256;  // enough blocks to fill the largest GPUs twice over
constexpr int kMinSplitK = 256;          // k values per split, so each block has work

ConvShape conv_shape(const Conv2dParams& p) {
  const int64_t limit = int64_t(1) << 31;
  CHECK(p.n * p.c_in * p.h * p.w < limit && p.n * p.c_out * p.out_h * p.out_w < limit &&
            p.c_out * (p.c_in / p.groups) * p.kh * p.kw < limit,
        "conv2d: ", backend_name(), " kernels expect fewer than 2^31 elements per array");
  CHECK(p.groups <= 65535, "groups: ", backend_name(), " kernels expect at most 65535 groups, got ", p.groups);
  require_device();
  ConvShape s;
  s.n = int(p.n), s.c_in = int(p.c_in), s.h = int(p.h), s.w = int(p.w);
  s.c_out = int(p.c_out), s.kh = int(p.kh), s.kw = int(p.kw), s.groups = int(p.groups);
  s.out_h = int(p.out_h), s.out_w = int(p.out_w);
  s.sh = int(p.stride_h), s.sw = int(p.stride_w), s.ph = int(p.pad_h), s.pw = int(p.pad_w);
  s.dh = int(p.dilation_h), s.dw = int(p.dilation_w);
  s.cig = s.c_in / s.groups, s.cog = s.c_out / s.groups;
  return s;
}

struct Sizes {
  int64_t x, w, y;
};
Sizes sizes(const ConvShape& s) {
  return {int64_t(s.n) * s.c_in * s.h * s.w, int64_t(s.c_out) * s.cig * s.kh * s.kw,
          int64_t(s.n) * s.c_out * s.out_h * s.out_w};
}

bool depthwise(const ConvShape& s) { return s.cig == 1 && s.groups > 1; }

// 128x128 tiles for big GEMMs, 64x64 for the rest and for float64.
template <typename T>
bool large_tiles(int64_t rows, int64_t cols) {
  return sizeof(T) == 4 && rows >= 128 && cols >= 128 * 16;
}

template <typename Cfg>
dim3 tile_grid(int64_t rows, int64_t cols, int64_t z) {
  return dim3(unsigned(ceil_div(cols, Cfg::BN)), unsigned(ceil_div(rows, Cfg::BM)), unsigned(z));
}

template <typename T>
void forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias, void* output) {
  const ConvShape s = conv_shape(p);
  const Sizes n = sizes(s);
  auto x = device_array(static_cast<const T*>(input), n.x, "input");
  auto w = device_array(static_cast<const T*>(weight), n.w, "weight");
  auto b = device_array(static_cast<const T*>(bias), s.c_out, "bias");
  auto y = device_array(static_cast<T*>(output), n.y, "output");
  if (depthwise(s))
    return CF_LAUNCH(conv2d_depthwise_fwd_kernel<T>, dim3(unsigned(ceil_div(n.y, kThreads))), dim3(kThreads), 0,
                     p.stream, s, x, w, b, y);
  const int64_t K = int64_t(s.cig) * s.kh * s.kw, cols = int64_t(s.n) * s.out_h * s.out_w;
  // float4 loads of the weight rows need 16-byte aligned rows.
  const bool vec = K % 4 == 0 && reinterpret_cast<uintptr_t>(weight) % 16 == 0;
  if constexpr (sizeof(T) == 4) {
    if (large_tiles<T>(s.cog, cols)) {
      const dim3 grid = tile_grid<Tile128>(s.cog, cols, s.groups);
      if (vec) return CF_LAUNCH((conv2d_fwd_implicit_gemm_kernel<Tile128, T, true>), grid, dim3(Tile128::THREADS), 0, p.stream, s, x, w, b, y);
      return CF_LAUNCH((conv2d_fwd_implicit_gemm_kernel<Tile128, T, false>), grid, dim3(Tile128::THREADS), 0, p.stream, s, x, w, b, y);
    }
    if (vec)
      return CF_LAUNCH((conv2d_fwd_implicit_gemm_kernel<Tile64, T, true>), tile_grid<Tile64>(s.cog, cols, s.groups),
                       dim3(Tile64::THREADS), 0, p.stream, s, x, w, b, y);
  }
  CF_LAUNCH((conv2d_fwd_implicit_gemm_kernel<Tile64, T, false>), tile_grid<Tile64>(s.cog, cols, s.groups),
            dim3(Tile64::THREADS), 0, p.stream, s, x, w, b, y);
}

template <typename T>
void launch_bwd_input_large(const Conv2dParams& p, const ConvShape& s, gptr<const T> dy, gptr<const T> w, gptr<T> dx,
                            int64_t cols) {
  if constexpr (sizeof(T) == 4)  // float64 always uses 64x64 tiles
    CF_LAUNCH((conv2d_bwd_input_implicit_gemm_kernel<Tile128, T>), tile_grid<Tile128>(s.cig, cols, s.groups),
              dim3(Tile128::THREADS), 0, p.stream, s, dy, w, dx);
}

template <typename T>
void backward(const Conv2dParams& p, const void* grad_output, const void* input, const void* weight,
              void* grad_input, void* grad_weight, void* grad_bias) {
  const ConvShape s = conv_shape(p);
  const Sizes n = sizes(s);
  auto dy = device_array(static_cast<const T*>(grad_output), n.y, "grad_output");
  auto x = device_array(static_cast<const T*>(input), n.x, "input");
  auto w = device_array(static_cast<const T*>(weight), n.w, "weight");
  if (grad_bias)
    CF_LAUNCH(conv2d_bwd_bias_kernel<T>, dim3(unsigned(s.c_out)), dim3(kThreads), 0, p.stream, s, dy,
              device_array(static_cast<T*>(grad_bias), s.c_out, "grad_bias"));
  if (grad_input) {
    auto dx = device_array(static_cast<T*>(grad_input), n.x, "grad_input");
    const int64_t cols = int64_t(s.n) * s.h * s.w;
    bool large = false;
    if constexpr (sizeof(T) == 4) large = large_tiles<T>(s.cig, cols);
    if (depthwise(s))
      CF_LAUNCH(conv2d_depthwise_bwd_input_kernel<T>, dim3(unsigned(ceil_div(n.x, kThreads))), dim3(kThreads), 0,
                p.stream, s, dy, w, dx);
    else if (large)
      launch_bwd_input_large(p, s, dy, w, dx, cols);
    else
      CF_LAUNCH((conv2d_bwd_input_implicit_gemm_kernel<Tile64, T>), tile_grid<Tile64>(s.cig, cols, s.groups),
                dim3(Tile64::THREADS), 0, p.stream, s, dy, w, dx);
  }
  if (grad_weight) {
    auto dw = device_array(static_cast<T*>(grad_weight), n.w, "grad_weight");
    if (depthwise(s))
      return CF_LAUNCH(conv2d_depthwise_bwd_weight_kernel<T>, dim3(unsigned(n.w)), dim3(kThreads), 0, p.stream, s,
                       dy, x, dw);
    // Split the reduction over n * out_h * out_w until there are enough blocks.
    using Cfg = Tile64;
    const int64_t rows = s.cog, cols = int64_t(s.cig) * s.kh * s.kw, K = int64_t(s.n) * s.out_h * s.out_w;
    const int64_t tiles = std::max<int64_t>(1, ceil_div(rows, Cfg::BM) * ceil_div(cols, Cfg::BN) * s.groups);
    const int64_t max_splits = std::max<int64_t>(1, K / kMinSplitK);
    const int64_t want = std::min<int64_t>(max_splits, ceil_div(kSplitTargetBlocks, tiles));
    // An empty batch (K == 0) still launches one split, which writes the zero gradient.
    const int64_t chunk = std::max<int64_t>(Cfg::BK, ceil_div(ceil_div(K, std::max<int64_t>(want, 1)), Cfg::BK) * Cfg::BK);
    const int64_t splits = std::max<int64_t>(1, ceil_div(K, chunk));
    CHECK(splits * s.groups <= 65535, "groups: ", backend_name(), " kernels expect at most 65535 groups");
    const dim3 grid = tile_grid<Cfg>(rows, cols, splits * s.groups);
    if (splits == 1)
      return CF_LAUNCH((conv2d_bwd_weight_implicit_gemm_kernel<Cfg, T>), grid, dim3(Cfg::THREADS), 0, p.stream, s,
                       dy, x, dw, int(chunk));
    Workspace ws(sizeof(T) * splits * n.w, p.stream);
    auto parts = device_array(ws.as<T>(), splits * n.w, "split-K workspace");
    CF_LAUNCH((conv2d_bwd_weight_implicit_gemm_kernel<Cfg, T>), grid, dim3(Cfg::THREADS), 0, p.stream, s, dy, x,
              parts, int(chunk));
    CF_LAUNCH(splitk_reduce_kernel<T>, dim3(unsigned(ceil_div(n.w, kThreads))), dim3(kThreads), 0, p.stream,
              gptr<const T>(parts), int(splits), n.w, dw);
  }
}

}  // namespace

void conv2d_forward(const Conv2dParams& p, const void* input, const void* weight, const void* bias, void* output) {
  p.dtype == DType::f32 ? forward<float>(p, input, weight, bias, output)
                        : forward<double>(p, input, weight, bias, output);
}

void conv2d_backward(const Conv2dParams& p, const void* grad_output, const void* input, const void* weight,
                     void* grad_input, void* grad_weight, void* grad_bias) {
  p.dtype == DType::f32 ? backward<float>(p, grad_output, input, weight, grad_input, grad_weight, grad_bias)
                        : backward<double>(p, grad_output, input, weight, grad_input, grad_weight, grad_bias);
}

}  // namespace convforge::CF_NS
