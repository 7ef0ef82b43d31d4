// Depthwise conv2d loops (csrc/cpu/conv2d_depthwise.h) compiled with avx512 flags only.
#include "cpu/conv2d_depthwise.h"

namespace convforge::cpu {
CONVFORGE_DEFINE_DEPTHWISE(avx512)
}  // namespace convforge::cpu
