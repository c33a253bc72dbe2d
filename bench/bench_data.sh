#!/usr/bin/env bash
# Data pipeline (issue 8): decode + preprocess images/s of mpq's threaded loader vs a torchvision
# DataLoader with PIL on the same generated ImageNet-like JPEGs (COUNT files, 500x375, quality
# 90) and the same number of workers, and mpq's preprocessed-image cache vs its decode path.
# Usage: bench/bench_data.sh [COUNT]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-2000}
dir=/tmp/mpq_bench_jpegs_$count
[ -d "$dir" ] || /usr/bin/python3 tests/integration/make_images.py jpegs "$dir" "$count" --size 500x375
rm -rf /tmp/mpq_bench_image_cache
build/bench/mpq_bench data "$dir" 1 2 | tee /tmp/mpq_bench_data.txt
echo
echo "| workers | torchvision DataLoader (images/s) | mpq (images/s) | mpq / torchvision |"
echo "|---:|---:|---:|---:|"
/usr/bin/python3 bench/bench_data_torchvision.py "$dir" 1 2 | while IFS=$'\t' read -r w tv; do
  ours=$(awk -F'|' -v w="$w" '$2+0 == w && NF > 4 { gsub(/ /, "", $3); print $3 }' /tmp/mpq_bench_data.txt)
  awk -v w="$w" -v a="$tv" -v b="$ours" 'BEGIN { printf "| %d | %.0f | %.0f | %.2fx |\n", w, a, b, b / a }'
done
