#!/usr/bin/env bash
# Calibration statistics: whole default models vs one FP forward pass, and per layer against the
# FLOP floor d / (C_out / groups) forward passes of the layer (before = stop-15 method, after =
# ptq::accumulate_moments), for the default models and torchvision ResNet-18 and MobileNetV2.
# Usage: bash bench/bench_calib.sh [build dir]    (docs/benchmarks.md)
source "$(dirname "$0")/tv_env.sh"
"$BENCH" calib "$TV/resnet18.pt" "$TV/mobilenet_v2.pt"
