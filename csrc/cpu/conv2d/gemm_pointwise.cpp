// gemm_pointwise: a 1x1 convolution with stride 1 and no padding is a plain GEMM per image and
// group, Y_g (cog x hw) = W_g (cog x cig) * X_g (cig x hw) + bias: the input is its own im2col
// matrix. Forward only (grad_input runs it as the flipped-weight forward, again 1x1).
#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

template <typename T>
void forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y) {
  const Geometry g = geometry(p);
  const GemmKernel<T> kern = gemm_kernel<T>();
  for_items(p.n * p.groups, double(g.cog) * g.cig * g.ohw, gemm_threads(g.cog, g.ohw, g.cig),
            [&](int64_t item, int nt) {
              const int64_t n = item / p.groups, grp = item % p.groups;
              const StridedPackA<T> pack_w{w + grp * g.cog * g.cig, g.cig, 1};
              const StridedPackB<T> pack_x{x + (n * p.c_in + grp * g.cig) * g.ohw, g.ohw, 1};
              T* yg = y + (n * p.c_out + grp * g.cog) * g.ohw;
              if (bias)
                gemm_packed(kern, g.cog, g.ohw, g.cig, T(1), pack_w, pack_x, T(0), yg, g.ohw, nt,
                            BiasEpilogue<T>{bias + grp * g.cog});
              else
                gemm_packed(kern, g.cog, g.ohw, g.cig, T(1), pack_w, pack_x, T(0), yg, g.ohw, nt);
            });
}

}  // namespace

bool gemm_pointwise_applies(const Conv2dParams& p, Pass pass) {
  return !p.channels_last && pass == Pass::forward && p.kh == 1 && p.kw == 1 && p.stride_h == 1 &&
         p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0 && p.out_h == p.h && p.out_w == p.w;
}

Workspace gemm_pointwise_workspace(const Conv2dParams&, Pass, int) { return {}; }

bool gemm_pointwise_forward(const Conv2dParams& p, const Arena&, const void* x, const void* w,
                            const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, typed...); });
}

}  // namespace convforge::cpu::conv
