#!/usr/bin/env bash
# EfficientNet-Lite0 with its ImageNet weights (pretrained:efficientnet_lite0) at 224x224 on
# THREADS threads (default 2), docs/benchmarks.md "EfficientNet-Lite0":
#  1. FP forward throughput: mpq's prepared network in C++ (mpq_bench forward, BN folded) against
#     the same TorchScript archive in PyTorch (bench/python_forward.py, as loaded and after
#     freeze + optimize_for_inference), batch 32, 256 images, runs alternated, one run each.
#  2. One trial per method on the photos (128 calibration images, the 453 evaluation photos), W4
#     per channel, weight-only (and RTN W4A8): wall time (the whole process: loading, the FP
#     evaluation of the trial, writing), peak RSS (/usr/bin/time -v) and the trial's own
#     statistics / quantization / activation-range and bias-correction / evaluation seconds.
#     The first trial that needs calibration statistics computes them into a fresh cache
#     (cold); the others read them, as in a sweep.
#  3. GPTQ and AdaRound per layer: the slowest layers and the sum over layers, from the trial
#     files' gptq_seconds / adaround_seconds (docs/trial-file-format.md).
# Usage: bash bench/bench_pretrained.sh [build dir] [methods...]
#   needs scripts/install-deps.sh --with-python --with-pretrained and a build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${1:-build}
shift || true
PY=${PYTHON:-/usr/bin/python3}
T=${THREADS:-2}
MPQ=$BUILD/mpq BENCH=$BUILD/bench/mpq_bench
OUT=${OUT:-/tmp/mpq_bench_pretrained}
rm -rf "$OUT" && mkdir -p "$OUT/cache"
# the archive (exported on first use, like every pretrained: model) and the FP check's 20 images
"$MPQ" -q eval --model pretrained:efficientnet_lite0 --dataset imagenet_samples >/dev/null
ARCHIVE=results/models/pretrained/efficientnet_lite0.pt

echo "### FP forward, $T threads, batch 32, 256 images (images/s)"
echo "| PyTorch | mpq (C++, this build) | PyTorch as loaded | PyTorch optimize_for_inference | mpq / as loaded | mpq / optimized |"
echo "|---|---:|---:|---:|---:|---:|"
c=$("$BENCH" forward "$ARCHIVE" 256 32 "$T" 2>/dev/null | tail -1)
# Debian's torch 1.13 (the reference of the tests) and, when scripts/build.sh --torch pip made
# it, PyPI's torch 2.14.1 (.venv/torch2): the same archive in each.
for py in "$PY" .venv/torch2/bin/python; do
  [ -x "$py" ] || continue
  v=$("$py" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)
  p=$("$py" bench/python_forward.py "$ARCHIVE" 256 32 "$T" 2>/dev/null)
  o=$("$py" bench/python_forward.py "$ARCHIVE" 256 32 "$T" --optimize 2>/dev/null)
  echo "| $v | $c | $p | $o | $(awk "BEGIN{printf \"%.2f\", $c/$p}") | $(awk "BEGIN{printf \"%.2f\", $c/$o}") |"
done

methods=("$@")
[ ${#methods[@]} -eq 0 ] && methods=(RTN MSE RTN+BC CLE+RTN GPTQ GPTQ-act-order AdaRound "MP 10%"
  "GPTQ+MP 10%" "AdaRound+MP 10%" "RTN W4A8")
echo
echo "### One trial per method: W4 per channel, 128 calibration photos, 453 evaluation photos, $T threads"
echo "| method | wall s | statistics s | quantize s | act. ranges + bias corr. s | evaluate s | peak RSS MB | agreement % | note |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
base=(quantize --model pretrained:efficientnet_lite0 --dataset photos --bits 4
      --granularity per_channel --threads "$T" --set calibration.size=128
      --set calibration.cache_dir="$OUT/cache" --set weights.adaround.iterations=2000)
source scripts/method_options.sh
for m in "${methods[@]}"; do
  mpq_method_options "$m" || { echo "bench_pretrained.sh: unknown method '$m'" >&2; exit 2; }
  f="$OUT/$(echo "$m" | tr -c 'A-Za-z0-9\n' '_').h5"
  /usr/bin/time -v -o "$f.time" "$MPQ" -q "${base[@]}" "${opt[@]}" -o "$f" >/dev/null 2>"$f.log" ||
    { echo "| $m | failed: $(tail -1 "$f.log") |"; continue; }
  "$PY" - "$f" "$m" <<'EOF'
import re, sys, h5py
f, m = sys.argv[1], sys.argv[2]
t = open(f + ".time").read()
wall = t.split("Elapsed (wall clock) time (h:mm:ss or m:ss): ")[1].split()[0].split(":")
wall = sum(float(v) * 60 ** i for i, v in enumerate(reversed(wall)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
with h5py.File(f, "r") as h:
    a = h["metrics"].attrs
    if int(a.get("stats_cache_hit", 0)):
        note = "statistics from the cache"
    elif float(a["calibration_seconds"]) > 0:
        note = "statistics computed (cold)"
    else:
        note = "no calibration statistics"
    lays = h["layers"]
    ar = sum(int(lays[k].attrs.get("adaround_cache_hit", 0)) for k in lays)
    note += f"; AdaRound from the cache on {ar} layers" if ar else ""
    post = float(a.get("activation_calibration_seconds", 0)) + float(a.get("correction_seconds", 0))
    print(f"| {m} | {wall:.1f} | {a['calibration_seconds']:.1f} | {a['quant_seconds']:.1f} | "
          f"{post:.1f} | {a['eval_seconds']:.1f} | {rss:.0f} | {100 * a['agreement']:.1f} | {note} |")
EOF
done

echo
echo "### GPTQ and AdaRound per layer (W4 per channel; seconds on one thread each)"
"$PY" - "$OUT" <<'EOF'
import os, sys, h5py
out = sys.argv[1]
for name, key in (("GPTQ.h5", "gptq_seconds"), ("AdaRound.h5", "adaround_seconds")):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        continue
    with h5py.File(p, "r") as h:
        rows = [(float(g.attrs[key]), g.attrs["name"], g.attrs["weight_shape"])
                for g in h["layers"].values() if key in g.attrs]
        q = float(h["metrics"].attrs["quant_seconds"])
    rows.sort(reverse=True)
    tot = sum(r[0] for r in rows)
    print(f"{name[:-3]}: {len(rows)} layers, sum of per-layer times {tot:.1f} s, trial quantize "
          f"{q:.1f} s; slowest: " + ", ".join(f"{n} {s} {t:.2f} s" for t, n, s in rows[:5]))
EOF
