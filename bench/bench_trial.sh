#!/usr/bin/env bash
# One ImageNet-sized trial (issue 8): torchvision ResNet-18 and VGG-16 (random weights) at
# 224x224 on generated ImageNet-like JPEGs (500x375) in the folder layout, 256 calibration
# images, 1000 evaluation images, W4 multipoint with 10% extra channels. Reports the wall time
# of the FP evaluation, calibration statistics, quantization and the quantized evaluation (from
# the trial file), the whole command's wall time and its peak RSS (GNU time).
# Usage: bench/bench_trial.sh [ARCH...]   (default: resnet18 vgg16)
set -euo pipefail
cd "$(dirname "$0")/.."
archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(resnet18 vgg16)
work=/tmp/mpq_bench_trial
tree=$work/tree
if [ ! -f "$tree/labels.json" ]; then
  rm -rf "$tree"
  /usr/bin/python3 tests/integration/make_images.py imagenet "$tree" 10 26 100 --size 500x375
fi
echo "| model | FP eval s | calibration statistics s | quantization s | quantized eval s | data + image cache s | total wall s | peak RSS GB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for arch in "${archs[@]}"; do
  [ -f "$work/$arch.pt" ] || /usr/bin/python3 scripts/export_torchvision.py "$arch" --weights none -o "$work/$arch.pt" >/dev/null
  rm -rf "$work/cache" "$work/icache" "$work/$arch.h5"
  /usr/bin/time -v build/mpq -q quantize --model "$work/$arch.pt" --dataset imagenet --data-root "$tree/folder" \
    --method multipoint --bits 4 --set weights.multipoint.budget=0.1 --set calibration.size=256 \
    --set data.eval_limit=1000 --set calibration.cache_dir="$work/cache" --set data.cache_dir="$work/icache" \
    -o "$work/$arch.h5" >"$work/$arch.log" 2>"$work/$arch.time"
  /usr/bin/python3 - "$work/$arch.h5" "$work/$arch.time" "$arch" <<'PY'
import h5py, re, sys
f = h5py.File(sys.argv[1]); m = f["metrics"].attrs; man = f["manifest"].attrs
t = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 2**20
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1).split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
print(f"| {sys.argv[3]} | {man['fp_eval_seconds']:.1f} | {m['calibration_seconds']:.1f} | {m['quant_seconds']:.1f} "
      f"| {m['eval_seconds']:.1f} | {man['data_seconds']:.1f} | {wall:.1f} | {rss:.2f} |")
PY
done
