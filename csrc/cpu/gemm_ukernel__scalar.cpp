// SGEMM/DGEMM microkernels for scalar: see csrc/cpu/gemm.cpp for the contract.
