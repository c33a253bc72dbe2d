#!/usr/bin/env bash
# The test command: install what is missing (the Python cross-checks, the Slurm daemons and the
# pretrained networks and photos included), build against Debian's LibTorch and run the whole
# suite there (ctest; the Slurm tests start a one-node cluster); then build against PyPI's
# LibTorch 2.x (scripts/build.sh --torch pip: a pinned venv, reused when present) and run its unit
# tests and the numerically sensitive tests (ctest label "numeric", with the PyTorch 2.14
# interop test) as on another machine (scripts/second_pass.sh: another instruction set, other
# BLAS kernels, one thread). Both passes must pass.
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit or -R quantize]  (arguments: first pass
#        only, and no second pass)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python --with-slurm --with-pretrained
scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@")
if [ $# -eq 0 ]; then
  t0=$(date +%s)
  scripts/build.sh --torch pip --target mpq --target mpq_unit_tests --target mpq_layer_tool
  echo "test.sh: LibTorch 2.x build ready in $(( $(date +%s) - t0 )) s"
  build-torch2/tests/mpq_unit_tests
  scripts/second_pass.sh build-torch2
fi
