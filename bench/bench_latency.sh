#!/usr/bin/env bash
# Latency of the expanded (deployable) multipoint model vs the original, side by side in one run:
# the default models (Fashion-MNIST, batch 1/32/256) and torchvision ResNet-18 and MobileNetV2
# (random initialization, bench/tv_models.py; 3x224x224, batch 1/32), at 0%, 10% and 25% extra
# points; then fp32 vs single-point int8 vs multipoint int8 (10% extra channels) on LibTorch
# quantized kernels.
# Usage: bash bench/bench_latency.sh [build dir]    (docs/benchmarks.md)
source "$(dirname "$0")/tv_env.sh"
"$BENCH" latency "$TV/resnet18.pt" "$TV/mobilenet_v2.pt"
echo
# The same models on LibTorch's int8 kernels (mpq quantize --export-int8).
"$BENCH" int8 "$TV/resnet18.pt" "$TV/mobilenet_v2.pt"
