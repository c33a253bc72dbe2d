#!/usr/bin/env bash
# The test command: install what is missing, build, run the whole suite (ctest).
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit or -R quantize]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@"
