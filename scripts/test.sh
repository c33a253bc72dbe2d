#!/usr/bin/env bash
# The test command: install what is missing (the Python cross-checks, the Slurm daemons and the
# pretrained networks and photos included), build, run the whole suite (ctest; the Slurm tests
# start a one-node cluster), then the numerically sensitive tests again as on another CPU
# (scripts/second_pass.sh: another instruction set, other BLAS kernels, one thread). Both passes
# must pass.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit or -R quantize]  (arguments: first pass only)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python --with-slurm --with-pretrained
scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@")
if [ $# -eq 0 ]; then scripts/second_pass.sh build; fi
