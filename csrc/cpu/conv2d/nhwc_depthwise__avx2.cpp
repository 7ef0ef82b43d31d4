// NHWC depthwise conv2d loops (nhwc_depthwise.h) compiled with avx2 flags only.
#include "cpu/conv2d/nhwc_depthwise.h"

namespace convforge::cpu {
CONVFORGE_DEFINE_NHWC_DEPTHWISE(avx2)
}  // namespace convforge::cpu
