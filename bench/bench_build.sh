#!/usr/bin/env bash
# Clean-build time of the whole project (mpq, the unit tests, the layer tool, the benchmarks) with
# and without the unity build (MPQ_UNITY_BUILD, CMakeLists.txt), each configured in a fresh
# directory and built with -j$(nproc); wall seconds and the largest compiler RSS from
# /usr/bin/time. The modes alternate for `rounds` rounds (the machine is shared and noisy).
# Usage: bash bench/bench_build.sh [rounds]          (docs/benchmarks.md, "Build time")
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-1}
jobs=$(nproc 2>/dev/null || echo 2)
work=$(mktemp -d /tmp/mpq_bench_build.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "clean builds with -j$jobs ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
for r in $(seq 1 "$ROUNDS"); do
  for unity in ON OFF; do
    dir="$work/build-$unity"
    rm -rf "$dir"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DMPQ_UNITY_BUILD=$unity >/dev/null
    /usr/bin/time -f "%e %M" -o "$work/time" cmake --build "$dir" -j"$jobs" >"$work/log" 2>&1 \
      || { tail -20 "$work/log"; exit 1; }
    read -r secs rss <"$work/time"
    awk -v r="$r" -v u="$unity" -v s="$secs" -v m="$rss" \
      'BEGIN { printf "round %d  unity %-3s  %7.1f s  largest process %5.2f GB\n", r, u, s, m / 1048576 }'
  done
done
