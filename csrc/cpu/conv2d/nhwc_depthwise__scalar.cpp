// NHWC depthwise conv2d loops (nhwc_depthwise.h) compiled with scalar flags only.
#include "cpu/conv2d/nhwc_depthwise.h"

namespace convforge::cpu {
CONVFORGE_DEFINE_NHWC_DEPTHWISE(scalar)
}  // namespace convforge::cpu
