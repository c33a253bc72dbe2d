# Sourced by the benchmark scripts that run torchvision models at 224x224: goes to the source
# tree, sets BUILD (first argument, default build), PY, BENCH (the mpq_bench binary, or
# $MPQ_BENCH) and TV (the directory of the models), and writes the models (bench/tv_models.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
BENCH=${MPQ_BENCH:-$BUILD/bench/mpq_bench}
TV=/tmp/mpq_bench_tv
"$PY" bench/tv_models.py "$TV" resnet18 mobilenet_v2
