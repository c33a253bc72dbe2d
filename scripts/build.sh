#!/usr/bin/env bash
# Configure and build mpq (Release). Idempotent: reruns only rebuild what changed.
# Usage: scripts/build.sh [--torch debian|pip] [--target TARGET]... [extra cmake -D options]
#   --torch debian  Debian's LibTorch (libtorch-dev; 1.13.1 on Debian 12, 2.6 on Debian 13), into
#                   ./build (the default)
#   --torch pip     the LibTorch inside PyPI's torch wheel (2.14.1, pinned with hashes in
#                   configs/torch2/requirements.txt), installed into .venv/torch2 (reused when its
#                   pins are unchanged), into ./build-torch2; its CMake config needs the CUDA
#                   toolkit (nvcc; /usr/local/cuda is looked at too), the build runs on the CPU
#   --target mpq    build only the CLI (what scripts/run.sh needs; the unit tests and benchmarks
#                   are most of the build time)
# Environment: MPQ_TORCH2_VENV (default <repo>/.venv/torch2).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
targets=() defs=() torch=debian
while [ $# -gt 0 ]; do
  case $1 in
    --target) targets+=(--target "$2"); shift 2 ;;
    --torch) torch=$2; shift 2 ;;
    *) defs+=("$1"); shift ;;
  esac
done
build=build
case $torch in
  debian) ;;
  pip)
    build=build-torch2
    venv=${MPQ_TORCH2_VENV:-$repo/.venv/torch2}
    reqs=$repo/configs/torch2/requirements.txt
    want=$(sha256sum "$reqs" | cut -c1-64)
    if [ "$(cat "$venv/.mpq-requirements" 2>/dev/null)" != "$want" ]; then
      echo "build.sh: installing PyPI's torch into $venv (pinned: configs/torch2/requirements.txt; ~2.9 GB of wheels)"
      rm -rf "$venv"
      /usr/bin/python3 -m venv "$venv" || { echo "build.sh: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
      t0=$(date +%s)
      if ! "$venv/bin/pip" install -q --require-hashes -r "$reqs" 2>"$venv/pip.log"; then
        echo "build.sh: pip install -r $reqs failed: $(grep -v '^ *$' "$venv/pip.log" | tail -1)" >&2
        exit 1
      fi
      echo "build.sh: torch installed in $(( $(date +%s) - t0 )) s"
      echo "$want" >"$venv/.mpq-requirements"
    fi
    nvcc=$(command -v nvcc || true)
    [ -n "$nvcc" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc=/usr/local/cuda/bin/nvcc
    if [ -z "$nvcc" ]; then
      echo "build.sh: --torch pip: the wheel's CMake config needs a CUDA toolkit (nvcc), none found in PATH or /usr/local/cuda" >&2
      exit 1
    fi
    prefix=$("$venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
    defs+=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CUDA_COMPILER="$nvcc"
           -DCUDAToolkit_ROOT="$(dirname "$(dirname "$nvcc")")" -DMPQ_TEST_PYTHON="$venv/bin/python")
    ;;
  *) echo "build.sh: --torch $torch: expected debian or pip" >&2; exit 2 ;;
esac
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${defs[@]}" >/dev/null
cmake --build "$build" -j"$jobs" "${targets[@]}"
