#!/usr/bin/env bash
# Sweep throughput before/after (issue 21): whole trials and evaluation, the same commands run by
# two builds alternately in one session (BEFORE = a build of an earlier commit, e.g. the commit
# before the allocator: `git worktree add /tmp/base <commit> && cmake -S /tmp/base -B
# /tmp/base/build && cmake --build /tmp/base/build --target mpq mpq_bench`).
#   1. default MobileNetV2 W4 multipoint per layer 10% (weight-only and W4A8), default ResNet-20
#      W4 multipoint: wall seconds -> trials per core-hour (2 threads), eval images/s
#   2. torchvision ResNet-18 and MobileNetV2 (random weights) at 224x224 on 1000 generated
#      images, W4 multipoint 10%, weight-only, 64 calibration images: the same
#   3. forward passes of mpq's evaluation engine vs PyTorch's optimize_for_inference of the same
#      archive, same batch and threads, 5 alternating runs, medians (the new anchor)
# The metrics column compares the before/after trial files (top-1, agreement, KL, extra points;
# KL differs in its last bits from commits before badcd23, which changed the summation order).
#   4. a sweep of 18 ResNet-20 trials in one process (ONLY_SWEEP=1: this part alone)
# Usage: bash bench/bench_sweep_throughput.sh BEFORE_BUILD [AFTER_BUILD] [ROUNDS]
#        (docs/benchmarks.md, "Sweep throughput"). ~45 minutes on 2 cores with 3 rounds (the before build's torchvision trials are most of it).
set -uo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: bench_sweep_throughput.sh BEFORE_BUILD [AFTER_BUILD] [ROUNDS]}
AFTER=${2:-build}
ROUNDS=${3:-3}
PY=${PYTHON:-/usr/bin/python3}
work=/tmp/mpq_bench_throughput
mkdir -p "$work"
tree=/tmp/mpq_bench_trial/tree
[ -f "$tree/labels.json" ] || "$PY" tests/integration/make_images.py imagenet "$tree" 10 26 100 --size 500x375 >/dev/null
"$PY" bench/tv_models.py /tmp/mpq_bench_tv resnet18 mobilenet_v2
# Warm the default models (trained once, cached) with the after build.
"$AFTER/mpq" -q quantize --model default:mobilenetv2 --bits 4 -o "$work/warm.h5" >/dev/null
"$AFTER/mpq" -q quantize --model default:resnet20 --bits 4 -o "$work/warm.h5" >/dev/null

if [ -z "${ONLY_SWEEP:-}" ]; then
declare -A CASES=(
  [mbv2_w4]="--model default:mobilenetv2 --method multipoint --granularity per_layer --set weights.multipoint.budget=0.1"
  [mbv2_w4a8]="--model default:mobilenetv2 --method multipoint --granularity per_layer --set weights.multipoint.budget=0.1 --set activations.bits=8"
  [r20_w4]="--model default:resnet20 --method multipoint --granularity per_layer --set weights.multipoint.budget=0.1"
  [tv_r18_w4]="--model /tmp/mpq_bench_tv/resnet18.pt --dataset imagenet --data-root $tree/folder --method multipoint --set weights.multipoint.budget=0.1 --set calibration.size=64 --set data.eval_limit=1000 --set data.cache_dir=$work/icache"
  [tv_mbv2_w4]="--model /tmp/mpq_bench_tv/mobilenet_v2.pt --dataset imagenet --data-root $tree/folder --method multipoint --set weights.multipoint.budget=0.1 --set calibration.size=64 --set data.eval_limit=1000 --set data.cache_dir=$work/icache"
)
ORDER=(mbv2_w4 mbv2_w4a8 r20_w4 tv_r18_w4 tv_mbv2_w4)
for r in $(seq "$ROUNDS"); do
  for c in "${ORDER[@]}"; do
    for side in before after; do
      bin=$BEFORE; [ $side = after ] && bin=$AFTER
      rm -rf "$work/cache_$side"
      # shellcheck disable=SC2086
      /usr/bin/time -f "%e" -o "$work/t" "$bin/mpq" -q quantize ${CASES[$c]} --bits 4 --threads 2 \
        --set calibration.cache_dir="$work/cache_$side" -o "$work/${c}_$side.h5" >/dev/null 2>"$work/err" \
        || { echo "$c $side FAILED: $(tail -1 "$work/err")"; continue; }
      echo "$c $side $r $(cat "$work/t")" >>"$work/walls"
      "$PY" -c "import h5py; m = h5py.File('$work/${c}_$side.h5')['metrics'].attrs; print('$c $side $r', m['images_per_second'])" >>"$work/rates"
    done
  done
done
"$PY" - "$work" "${ORDER[@]}" <<'PY'
import sys, statistics, h5py
work, order = sys.argv[1], sys.argv[2:]
walls, rates = {}, {}
for line in open(f"{work}/walls"):
    c, side, r, w = line.split(); walls.setdefault((c, side), []).append(float(w))
for line in open(f"{work}/rates"):
    c, side, r, v = line.split(); rates.setdefault((c, side), []).append(float(v))
print("| case | wall s before | wall s after | trials / core-hour before -> after | speed-up | eval images/s before -> after | metrics |")
print("|---|---|---|---:|---:|---:|---|")
for c in order:
    if (c, "before") not in walls or (c, "after") not in walls:
        print(f"| {c} | missing |"); continue
    b, a = walls[(c, "before")], walls[(c, "after")]
    mb, ma = statistics.median(b), statistics.median(a)
    tb, ta = 3600 / (2 * mb), 3600 / (2 * ma)
    rb, ra = statistics.median(rates[(c, "before")]), statistics.median(rates[(c, "after")])
    fb, fa = (h5py.File(f"{work}/{c}_{s}.h5")["metrics"].attrs for s in ("before", "after"))
    same = all(fb[k] == fa[k] for k in ("top1", "agreement", "kl", "extra_points"))
    engine = h5py.File(f"{work}/{c}_after.h5")["manifest"].attrs.get("eval_engine", "?")
    print(f"| {c} | {' / '.join('%.1f' % x for x in b)} | {' / '.join('%.1f' % x for x in a)} "
          f"| {tb:.0f} -> {ta:.0f} | {mb / ma:.2f}x | {rb:.0f} -> {ra:.0f} | "
          f"{'identical' if same else 'top1 %.4f/%.4f kl %.6g/%.6g' % (fb['top1'], fa['top1'], fb['kl'], fa['kl'])}; {engine} |")
PY
rm -f "$work/walls" "$work/rates"

echo
echo "Forward passes: mpq (evaluation engine auto) vs PyTorch optimize_for_inference, medians of 5 alternating runs"
echo "| model | batch | threads | mpq images/s | PyTorch optimize_for_inference images/s | mpq / PyTorch |"
echo "|---|---:|---:|---:|---:|---:|"
for spec in "results/models/mobilenetv2-*.pt 500 1,28,28 10000" "results/models/resnet20-*.pt 500 1,28,28 10000" \
            "/tmp/mpq_bench_tv/resnet18.pt 32 3,224,224 256" "/tmp/mpq_bench_tv/mobilenet_v2.pt 32 3,224,224 256"; do
  set -- $spec
  model=$(ls $1 | head -1) batch=$2 shape=$3 n=$4
  for t in 1 2; do
    m=() p=()
    for r in 1 2 3 4 5; do
      m+=("$("$AFTER/bench/mpq_bench" forward "$model" "$n" "$batch" "$t" auto 2>/dev/null | tail -1)")
      p+=("$("$PY" bench/python_forward.py "$model" "$n" "$batch" "$t" --optimize --shape "$shape")")
    done
    "$PY" -c "
import statistics, sys
m = statistics.median(map(float, '${m[*]}'.split())); p = statistics.median(map(float, '${p[*]}'.split()))
print('| $(basename "$model") | $batch | $t | %.1f | %.1f | %.2f |' % (m, p, m / p))"
  done
done

fi

# 4. Inside a sweep (what trials per core-hour means for a study): 18 default ResNet-20 multipoint
#    trials (per layer / per channel x W4/W3/W2 x budgets 5/10/25%) in one process with 2 threads,
#    where the data, the FP reference and the calibration statistics are loaded once per worker.
echo
echo "A sweep of 18 default ResNet-20 trials, one process, 2 threads (wall s, alternating rounds)"
for r in $(seq "$ROUNDS"); do
  for side in before after; do
    bin=$BEFORE; [ $side = after ] && bin=$AFTER
    rm -rf "$work/sweep_$side"
    cat >"$work/sweep_$side.json" <<JSON
{"name": "r20", "run": {"results_dir": "$work/sweep_$side", "threads_per_rank": 2},
 "base": {"model": {"path": "default:resnet20"}, "weights": {"method": "multipoint"},
          "calibration": {"cache_dir": "$work/sweep_$side/cache"}},
 "axes": [{"key": "weights.granularity", "values": ["per_layer", "per_channel"]},
          {"key": "weights.bits", "values": [4, 3, 2]},
          {"key": "weights.multipoint.budget", "values": [0.05, 0.1, 0.25]}]}
JSON
    /usr/bin/time -f "%e" -o "$work/t" "$bin/mpq" -q sweep run "$work/sweep_$side.json" >/dev/null 2>"$work/err" \
      || { echo "sweep $side FAILED: $(tail -1 "$work/err")"; continue; }
    echo "sweep $side round $r: $(cat "$work/t") s"
  done
done
