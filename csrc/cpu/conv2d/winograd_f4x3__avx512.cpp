// Winograd F(4x4, 3x3) transforms (winograd_f4x3_kernels.h) compiled with avx512 flags only.
#include "cpu/conv2d/winograd_f4x3_kernels.h"

CONVFORGE_DEFINE_WINOGRAD(avx512)
