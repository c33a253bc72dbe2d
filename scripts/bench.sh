#!/usr/bin/env bash
# Runs the benchmarks of bench/ and prints their tables (numbers for notes and docs).
# Usage: scripts/bench.sh [resnet18|search|calib|latency|eval|sweep|pretrained ...]   (default: all
#   but pretrained, which needs scripts/install-deps.sh --with-pretrained: EfficientNet-Lite0)
#   calib, latency (which includes the int8 models) and eval also run the torchvision models at
#   224x224 (bench/bench_calib.sh, bench/bench_latency.sh, bench/bench_eval_tv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-python
scripts/build.sh
which=("$@")
[ ${#which[@]} -eq 0 ] && which=(resnet18 search calib latency eval sweep)
for b in "${which[@]}"; do
  case "$b" in
    sweep) bash bench/bench_sweep.sh ;;
    pretrained) scripts/install-deps.sh --with-pretrained; bash bench/bench_pretrained.sh ;;
    resnet18) build/bench/mpq_bench resnet18 2; build/bench/mpq_bench resnet18 4 ;;
    calib) bash bench/bench_calib.sh ;;
    latency) bash bench/bench_latency.sh ;;
    eval) build/bench/mpq_bench eval; bash bench/bench_eval_tv.sh ;;
    *) build/bench/mpq_bench "$b" ;;
  esac
  echo
done
