// SGEMM/DGEMM microkernels for avx512: see csrc/cpu/gemm.cpp for the contract.
