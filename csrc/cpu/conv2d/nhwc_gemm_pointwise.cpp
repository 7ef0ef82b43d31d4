// nhwc_gemm_pointwise: on NHWC arrays a 1x1 convolution with stride 1 and no padding is one GEMM
// per group over the pixels of all images, Y_g (pixels x cog) = X_g (pixels x cig) * W_g^T + bias:
// rows of c_in and c_out channels, read and written in place. Forward only (grad_input runs it as
// the flipped-weight forward, again 1x1, reading the weight as it is).
#include "cpu/conv2d/gemm_common.h"

namespace convforge::cpu::conv {
namespace {

template <typename T, typename PackBOf>
void forward(const Conv2dParams& p, const T* x, const T* w, const T* bias, T* y, const PackBOf& pack_w) {
  const int64_t cig = p.c_in / p.groups;
  nhwc_forward(p, w, bias, y, [&](int64_t grp) { return StridedPackA<T>{x + grp * cig, p.c_in, 1}; }, pack_w);
}

}  // namespace

bool nhwc_gemm_pointwise_applies(const Conv2dParams& p, Pass pass) {
  return p.channels_last && pass == Pass::forward && p.kh == 1 && p.kw == 1 && p.stride_h == 1 &&
         p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0 && p.out_h == p.h && p.out_w == p.w;
}

Workspace nhwc_gemm_pointwise_workspace(const Conv2dParams&, Pass, int) { return {}; }

bool nhwc_gemm_pointwise_forward(const Conv2dParams& p, const Arena&, const void* x, const void* w,
                                 const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, typed..., WeightPackBOf{}); });
}

bool nhwc_gemm_pointwise_flipped_weight_forward(const Conv2dParams& p, const Arena&, const void* x, const void* w,
                                                const void* bias, void* y) {
  return typed_forward(p, x, w, bias, y, [&](auto... typed) { forward(p, typed..., FlippedWeightPackBOf{}); });
}

}  // namespace convforge::cpu::conv
