// Depthwise conv2d loops (csrc/cpu/conv2d_depthwise.h) compiled with scalar flags only.
#include "cpu/conv2d_depthwise.h"

namespace convforge::cpu {
CONVFORGE_DEFINE_DEPTHWISE(scalar)
}  // namespace convforge::cpu
