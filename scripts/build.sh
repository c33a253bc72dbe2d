#!/usr/bin/env bash
# Configure and build mpq (Release) in ./build. Idempotent: reruns only rebuild what changed.
# Usage: scripts/build.sh [--target TARGET]... [extra cmake -D options]
#   --target mpq   build only the CLI (what scripts/run.sh needs; the unit tests and benchmarks
#                  are most of the build time)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
targets=() defs=()
while [ $# -gt 0 ]; do
  case $1 in
    --target) targets+=(--target "$2"); shift 2 ;;
    *) defs+=("$1"); shift ;;
  esac
done
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${defs[@]}" >/dev/null
cmake --build build -j"$jobs" "${targets[@]}"
