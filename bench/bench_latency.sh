#!/usr/bin/env bash
# Latency of the expanded (deployable) multipoint model vs the original, side by side in one run:
# the default models (Fashion-MNIST, batch 1/32/256) and torchvision ResNet-18 and MobileNetV2
# (random initialization, bench/tv_models.py; 3x224x224, batch 1/32), at 0%, 10% and 25% extra points; then fp32 vs
# single-point int8 vs multipoint int8 (10% extra channels) on LibTorch quantized kernels.
# Usage: bash bench/bench_latency.sh [build dir]    (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
dir=/tmp/mpq_bench_tv
"$PY" bench/tv_models.py "$dir" resnet18 mobilenet_v2
"${MPQ_BENCH:-$BUILD/bench/mpq_bench}" latency "$dir/resnet18.pt" "$dir/mobilenet_v2.pt"
echo
# The same models on LibTorch's int8 kernels (mpq quantize --export-int8).
"${MPQ_BENCH:-$BUILD/bench/mpq_bench}" int8 "$dir/resnet18.pt" "$dir/mobilenet_v2.pt"
