#!/usr/bin/env bash
# Sweep scaling and overhead (issue 5): 16 short trials on the default ResNet-20 (RTN and MSE at
# 8/6/4/3 bits, per channel and per layer, EVAL_LIMIT evaluation images, default 10000), run
#   (a) 1 rank x 2 threads (the default on 2 cores) and 2 ranks x 1 thread (the default for 2 ranks)
#   (b) 1 rank x 1 thread and 2 ranks x 1 thread (same threads per rank)
# Reports wall-clock speedups and, per trial, the scheduling latency (waiting for an assignment)
# and the storage time (writing the HDF5 file), as fractions of the trial's own compute time.
set -euo pipefail
cd "$(dirname "$0")/.."
MPQ=build/mpq
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/mpq_bench_sweep.XXXX)
$MPQ -q eval --model default:resnet20 --limit 10 >/dev/null   # make sure the model is cached
mk() {  # name threads_per_rank
  cat >"$work/$1.json" <<JSON
{"name": "$1", "base": {"model": {"path": "default:resnet20"}, "data": {"eval_limit": ${EVAL_LIMIT:-10000}},
                        "calibration": {"cache_dir": ""}},
 "axes": [{"key": "weights.bits", "values": [8, 6, 4, 3]},
          {"key": "weights.granularity", "values": ["per_channel", "per_layer"]},
          {"key": "weights.method", "values": ["rtn", "mse"]}],
 "run": {"results_dir": "$work/results", "threads_per_rank": $2}}
JSON
}
run() {  # name ranks
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$2" -eq 1 ]; then $MPQ -q sweep run "$work/$1.json" >/dev/null
  else mpirun --oversubscribe -np "$2" $MPQ -q sweep run "$work/$1.json" >/dev/null; fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
mk r1t2 2; mk r2t1 1; mk r1t1 1; mk r2t1b 1
a1=$(run r1t2 1); a2=$(run r2t1 2); b1=$(run r1t1 1); b2=$(run r2t1b 2)
/usr/bin/python3 - "$work/results" "$a1" "$a2" "$b1" "$b2" <<'PY'
import glob, json, sys, h5py, statistics as st
root, a1, a2, b1, b2 = sys.argv[1], *map(float, sys.argv[2:])
print("| configuration | wall (s) | speedup |\n|---|---:|---:|")
print(f"| 1 rank x 2 threads | {a1:.1f} | 1.00 |\n| 2 ranks x 1 thread | {a2:.1f} | {a1 / a2:.2f}x |")
print(f"| 1 rank x 1 thread | {b1:.1f} | 1.00 |\n| 2 ranks x 1 thread | {b2:.1f} | {b1 / b2:.2f}x |")
print("\n| run | trials | mean trial compute (s) | mean scheduling wait (ms) | mean file write (ms) | overhead / compute |\n|---|---:|---:|---:|---:|---:|")
for name in ["r1t2", "r2t1", "r1t1", "r2t1b"]:
    d = f"{root}/{name}"
    recs = [json.loads(l) for p in glob.glob(f"{d}/ledgers/*.jsonl") for l in open(p) if l.strip()]
    done = [r for r in recs if r.get("event") == "done"]
    compute, wait, write = [], [], []
    for r in done:
        m = h5py.File(f"{d}/trials/{r['trial']}.h5", "r")["manifest"].attrs
        compute.append(m["seconds"]); wait.append(r["wait"]); write.append(r["seconds"] - m["seconds"])
    c = st.mean(compute)
    print(f"| {name} | {len(done)} | {c:.3f} | {1e3 * st.mean(wait):.2f} | {1e3 * st.mean(write):.2f} | {100 * (st.mean(wait) + st.mean(write)) / c:.2f}% |")
PY
rm -rf "$work"
