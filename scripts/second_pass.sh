#!/usr/bin/env bash
# The test suite's second pass: the numerically sensitive tests (ctest label "numeric": the tiny
# models retrained, quantize_e2e, imagenet, voc, int8, sweep_mpi, torchvision, python_interop)
# again, as on another machine: oneDNN restricted to another instruction set than this CPU's
# best (AVX2 on an AVX-512 CPU, else SSE4.1), OpenBLAS on another kernel family
# (Sandybridge), and one thread per process by default. Each of these changes the last bits of
# convolutions, matrix products and the trained fixture (checked in docs/benchmarks.md,
# "Portable tests"); every check must hold anyway.
# Usage: scripts/second_pass.sh [build dir]       (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if grep -q -w avx512f /proc/cpuinfo; then isa=AVX2; else isa=SSE41; fi
echo "second pass: ONEDNN_MAX_CPU_ISA=$isa OPENBLAS_CORETYPE=Sandybridge MPQ_THREADS=1"
cd "$build"
ONEDNN_MAX_CPU_ISA=$isa OPENBLAS_CORETYPE=Sandybridge MPQ_THREADS=1 \
  ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" -L numeric
