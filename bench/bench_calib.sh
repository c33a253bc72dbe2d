#!/usr/bin/env bash
# Calibration statistics: whole default models vs one FP forward pass, and per layer against the
# FLOP floor d / (C_out / groups) forward passes of the layer (before = stop-15 method, after =
# ptq::accumulate_moments), for the default models and torchvision ResNet-18 and MobileNetV2.
# Usage: bash bench/bench_calib.sh [build dir]    (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
dir=/tmp/mpq_bench_tv
"${PYTHON:-/usr/bin/python3}" bench/tv_models.py "$dir" resnet18 mobilenet_v2
"${MPQ_BENCH:-$BUILD/bench/mpq_bench}" calib "$dir/resnet18.pt" "$dir/mobilenet_v2.pt"
