#!/usr/bin/env bash
# Evaluation throughput of torchvision ResNet-18 and MobileNetV2 (random initialization,
# bench/tv_models.py) at 224x224: forward passes of mpq's prepared network in C++ vs the same
# archive in PyTorch, batch 32, 256 images, 1 and 2 threads, runs alternated.
# Usage: bash bench/bench_eval_tv.sh [build dir]    (docs/benchmarks.md)
source "$(dirname "$0")/tv_env.sh"
echo "| model | threads | C++ images/s | PyTorch images/s | C++ / PyTorch |"
echo "|---|---:|---:|---:|---:|"
for arch in resnet18 mobilenet_v2; do
  for t in 1 2; do
    c=$("$BENCH" forward "$TV/$arch.pt" 256 32 "$t" | tail -1)
    p=$("$PY" bench/python_forward.py "$TV/$arch.pt" 256 32 "$t")
    echo "| $arch | $t | $c | $p | $(awk "BEGIN{printf \"%.2f\", $c/$p}") |"
  done
done
