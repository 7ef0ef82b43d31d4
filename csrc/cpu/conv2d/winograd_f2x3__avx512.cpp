// Winograd F(2x2, 3x3) weight-gradient transforms (winograd_f2x3_kernels.h) compiled with avx512 flags only.
#include "cpu/conv2d/winograd_f2x3_kernels.h"

CONVFORGE_DEFINE_WINOGRAD_F2X3(avx512)
