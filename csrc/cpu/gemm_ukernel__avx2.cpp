// SGEMM/DGEMM microkernels for avx2: see csrc/cpu/gemm.cpp for the contract.
