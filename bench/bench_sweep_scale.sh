#!/usr/bin/env bash
# Scale of the shared sweep store (issue 10), simulated on one machine: trials are replaced by a
# sleep of T seconds plus a minimal real trial file (--simulate-trial-seconds), so what is
# measured is the coordination: claims, ledgers, plan scans, scheduling, trial-file writes.
#
#   bash bench/bench_sweep_scale.sh [phase...]      phases: growth kills mpi (default: all)
#
#   growth  array workers W = 1, 4, 16, 32 (oversubscribed on this machine's cores), 32 trials per
#           worker of T = 2 s each (a minute per run): per-trial coordination overhead vs W
#   kills   32 array workers, 1000 trials of T = 2 s; every 4 s one random worker is killed with
#           SIGKILL and a fresh one started (a requeue); then: every trial done, none done twice
#   mpi     mpirun -np 32 (oversubscribed) `sweep run`, 1000 trials of T = 2 s; one rank is
#           killed with SIGKILL after 20 s (the whole job dies), the job is rerun and completes
#
# Reported per trial: the coordination (a worker's time in the picker, claims, ledger appends and
# releases: `store` of its summary line), the trial file (HDF5 write, fsync, rename: a done
# record's seconds - T), both also as a fraction of a 2 s trial; per worker the fixed cost (process
# start, loading the plan, exit); and end to end, (sum of worker wall times - trials * T) / trials.
set -uo pipefail
cd "$(dirname "$0")/.."
MPQ=$PWD/build/mpq
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
phases=${*:-growth kills mpi}
work=$(mktemp -d /tmp/mpq_bench_scale.XXXX)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$work"' EXIT
model="$work/tiny_resnet20.pt"
$MPQ -q train --arch resnet20 --width 0.25 --epochs 1 --train-limit 500 --test-limit 100 \
  --output "$model" >/dev/null || { echo "training the tiny model failed" >&2; exit 1; }

mk() {  # name trials lease -> sweep file
  local seeds
  seeds=$(seq -s, 1 "$2")
  cat >"$work/$1.json" <<JSON
{"name": "$1", "base": {"model": {"path": "$model"}, "calibration": {"cache_dir": ""}},
 "axes": [{"key": "data.eval_limit", "values": [$seeds]}],
 "run": {"results_dir": "$work/results", "threads_per_rank": 1, "lease_seconds": $3}}
JSON
  echo "$work/$1.json"
}
now() { date +%s.%N; }
check() {  # sweep_dir trials: every trial done (valid file), none done twice
  /usr/bin/python3 - "$1" "$2" <<'PY'
import glob, json, sys, collections
d, n = sys.argv[1], int(sys.argv[2])
recs = [json.loads(l) for p in glob.glob(d + "/ledgers/*.jsonl") for l in open(p) if l.strip()]
done = collections.Counter(r["trial"] for r in recs if r.get("event") == "done")
files = len(glob.glob(d + "/trials/*.h5"))
twice = sum(1 for c in done.values() if c > 1)
print(files, twice, len(done))
sys.exit(0 if files == n and twice == 0 else 1)
PY
}
analyze() {  # sweep_dir trials T logdir -> "coord_ms write_ms fixed_s e2e_ms" (see the header)
  /usr/bin/python3 - "$@" <<'PY'
import glob, json, re, statistics as st, sys
d, n, t, logs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
recs = [json.loads(l) for p in glob.glob(d + "/ledgers/*.jsonl") for l in open(p) if l.strip()]
done = [r for r in recs if r.get("event") == "done"]
write = st.mean(r["seconds"] - t for r in done)  # the trial file: HDF5 write, fsync, rename
ran = store = wall_sum = fixed = 0.0
workers = 0
for out in glob.glob(logs + "/*.out"):
    m = re.search(r"ran (\d+) .* ([0-9.]+) s \(store ([0-9.]+) s\)", open(out).read())
    tf = out[:-4] + ".time"
    if not m or not glob.glob(tf):
        continue  # killed: no summary
    end, begin = map(float, open(tf).read().split())
    k, trial_wall = int(m.group(1)), float(m.group(2))
    ran += k; store += float(m.group(3)); wall_sum += end - begin; workers += 1
    fixed += (end - begin) - float(m.group(3)) - k * (t + write)
print(f"{1e3 * store / max(ran, 1):.2f} {1e3 * write:.2f} {fixed / max(workers, 1):.2f} "
      f"{1e3 * (wall_sum - ran * t) / max(ran, 1):.1f}")
PY
}
workers() {  # sweep_file W T logdir: starts W workers, each timing itself into logdir/<i>.time
  local i
  for i in $(seq 1 "$2"); do
    ( s=$(now); $MPQ -q sweep work "$1" --simulate-trial-seconds "$3" >"$4/$i.out" 2>&1
      echo "$(now) $s" >"$4/$i.time" ) &
  done
}

if [[ " $phases " == *" growth "* ]]; then
  echo "## growth: W array workers, 32 * W trials of 2 s"
  echo "| workers | wall (s) | ideal (s) | claims + ledger + scan per trial | trial file per trial | start + exit per worker | end-to-end overhead per trial | trial files | done twice |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for W in 1 4 16 32; do
    n=$((32 * W))
    f=$(mk "growth$W" "$n" 60)
    $MPQ -q sweep prepare "$f" >/dev/null
    logs="$work/logs_growth$W" && mkdir -p "$logs"
    t0=$(now); workers "$f" "$W" 2 "$logs"; wait; t1=$(now)
    read -r files twice _ <<<"$(check "$work/results/growth$W" "$n")"
    read -r coord write fixed e2e <<<"$(analyze "$work/results/growth$W" "$n" 2 "$logs")"
    awk -v w="$W" -v a="$t0" -v b="$t1" -v c="$coord" -v wr="$write" -v fx="$fixed" -v e="$e2e" \
        -v f="$files" -v t="$twice" 'BEGIN {
      printf "| %d | %.1f | %.1f | %.2f ms (%.3f%%) | %.2f ms (%.3f%%) | %.2f s | %.0f ms | %d | %d |\n",
             w, b - a, 64, c, c / 20, wr, wr / 20, fx, e, f, t }'
  done
  echo "(percentages: of a 2 s trial)"
fi

if [[ " $phases " == *" kills "* ]]; then
  echo "## kills: 32 array workers, 1000 trials of 2 s, a SIGKILL every 4 s for the first 40 s"
  f=$(mk kills 1000 30)
  $MPQ -q sweep prepare "$f" >/dev/null
  logs="$work/logs_kills" && mkdir -p "$logs"
  t0=$(now)
  workers "$f" 32 2 "$logs"
  killed=0
  for _ in $(seq 1 10); do
    sleep 4
    victim=$(pgrep -f "sweep work $f" | shuf -n 1)
    [ -n "$victim" ] || continue
    kill -9 "$victim" && killed=$((killed + 1))
    ( s=$(now); $MPQ -q sweep work "$f" --simulate-trial-seconds 2 >"$logs/r$killed.out" 2>&1
      echo "$(now) $s" >"$logs/r$killed.time" ) &
  done
  wait
  t1=$(now)
  # Workers that were killed never wrote their .time: their wall time up to the kill is lost
  # to the overhead sum (a slight underestimate of the work they did).
  echo "killed $killed workers; wall $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (ideal $((1000 * 2 / 32)) s)"
  $MPQ status "$work/results/kills" | head -1
  read -r files twice withdone <<<"$(check "$work/results/kills" 1000)"
  echo "trial files $files/1000, done twice $twice, trials with a done record $withdone"
  [ "$files" = 1000 ] && [ "$twice" = 0 ] && echo "OK: no trial lost, none done twice" || echo "FAILED"
  read -r coord write fixed e2e <<<"$(analyze "$work/results/kills" 1000 2 "$logs")"
  echo "per trial: claims + ledger + scan $coord ms, trial file $write ms: $(awk -v c="$coord" -v w="$write" 'BEGIN { printf "%.3f", (c + w) / 20 }')% of a 2 s trial"
  echo "per worker: start + exit $fixed s; end-to-end overhead per trial $e2e ms (workers that were killed not counted)"
fi

if [[ " $phases " == *" mpi "* ]]; then
  echo "## mpi: 32 ranks (oversubscribed), 1000 trials of 2 s; a rank killed after 20 s, rerun"
  f=$(mk mpi 1000 30)
  $MPQ -q sweep prepare "$f" >/dev/null
  t0=$(now)
  mpirun --oversubscribe -np 32 $MPQ -q sweep run "$f" --simulate-trial-seconds 2 \
    >"$work/mpi1.out" 2>&1 &
  sleep 20
  victim=$(pgrep -f "sweep run $f" | grep -v "^$(pgrep -f "mpirun.*sweep run $f")$" | shuf -n 1)
  kill -9 "$victim"
  wait
  t1=$(now)
  echo "first run (rank killed at 20 s): $($MPQ status "$work/results/mpi" | head -1)"
  mpirun --oversubscribe -np 32 $MPQ -q sweep run "$f" --simulate-trial-seconds 2 \
    >"$work/mpi2.out" 2>&1
  t2=$(now)
  tail -1 "$work/mpi2.out"
  read -r files twice withdone <<<"$(check "$work/results/mpi" 1000)"
  echo "trial files $files/1000, done twice $twice, trials with a done record $withdone"
  [ "$files" = 1000 ] && [ "$twice" = 0 ] && echo "OK: no trial lost, none done twice" || echo "FAILED"
  /usr/bin/python3 - "$work/results/mpi" "$t0" "$t1" "$t2" <<'PY'
import glob, json, sys, statistics as st
d, t0, t1, t2 = sys.argv[1], *map(float, sys.argv[2:])
recs = [json.loads(l) for p in glob.glob(d + "/ledgers/*.jsonl") for l in open(p) if l.strip()]
done = [r for r in recs if r.get("event") == "done"]
wait = [r["wait"] for r in done]; write = [r["seconds"] - 2.0 for r in done]
wall = (t1 - t0) + (t2 - t1)
print(f"wall {t1 - t0:.1f} s + rerun {t2 - t1:.1f} s; ideal for 1000 x 2 s on 32 ranks: {1000 * 2 / 32:.1f} s")
print(f"per trial: scheduling wait mean {1e3 * st.mean(wait):.1f} ms (p99 {1e3 * sorted(wait)[int(0.99 * len(wait))]:.1f}),"
      f" trial file write mean {1e3 * st.mean(write):.1f} ms;"
      f" wait + write = {100 * (st.mean(wait) + st.mean(write)) / 2.0:.2f}% of a 2 s trial")
total_rank_s = 32 * (t2 - t1)
print(f"rerun: {len([r for r in done if r['seconds'] > 0])} done records in total; rerun rank-time {total_rank_s:.0f} s")
PY
fi
