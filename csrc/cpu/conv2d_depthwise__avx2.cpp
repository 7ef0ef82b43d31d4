// Depthwise conv2d loops (csrc/cpu/conv2d_depthwise.h) compiled with avx2 flags only.
#include "cpu/conv2d_depthwise.h"

namespace convforge::cpu {
CONVFORGE_DEFINE_DEPTHWISE(avx2)
}  // namespace convforge::cpu
