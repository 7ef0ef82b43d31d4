#!/usr/bin/env bash
# Install the part of the CUDA toolkit that building convforge needs (nvcc, cicc, the headers,
# the static runtime) from NVIDIA's wheels on PyPI, and lay it out as a toolkit at PREFIX
# (PREFIX/bin/nvcc, PREFIX/include, PREFIX/lib64, PREFIX/targets/x86_64-linux/...).
# Used by the release wheel build ([tool.cibuildwheel] before-all in pyproject.toml), whose
# manylinux image has a compiler but no CUDA.
#
#   tools/install_cuda_toolkit.sh /usr/local/cuda
set -euo pipefail
PREFIX=${1:?usage: install_cuda_toolkit.sh PREFIX}
CUDA_VERSION=${CUDA_VERSION:-13.0}

PYTHON=$(command -v python3 || ls /opt/python/cp3*/bin/python | sort -V | tail -1)
PACKAGES="$PREFIX-wheels"
"$PYTHON" -m pip install --quiet --no-deps --target "$PACKAGES" \
  "nvidia-cuda-nvcc==$CUDA_VERSION.*" "nvidia-nvvm==$CUDA_VERSION.*" "nvidia-cuda-crt==$CUDA_VERSION.*" \
  "nvidia-cuda-runtime==$CUDA_VERSION.*" "nvidia-cuda-cccl==$CUDA_VERSION.*" "nvidia-cuda-culibos==$CUDA_VERSION.*"

ROOT="$PACKAGES/nvidia/cu${CUDA_VERSION%%.*}"
ln -sfn "$ROOT" "$PREFIX"
[ -e "$ROOT/lib64" ] || ln -s lib "$ROOT/lib64"
mkdir -p "$ROOT/targets/x86_64-linux"
ln -sfn ../../include "$ROOT/targets/x86_64-linux/include"
ln -sfn ../../lib "$ROOT/targets/x86_64-linux/lib"
"$PREFIX/bin/nvcc" --version | tail -1
