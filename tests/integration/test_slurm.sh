#!/usr/bin/env bash
# Sweeps on a real one-node Slurm cluster (tests/slurm/cluster.sh, started by the CTest fixture
# slurm_cluster): array mode equals a local run; a requeued array task and a cancelled-then-
# resubmitted job lose and duplicate nothing; a job whose time limit is shorter than the sweep
# requeues itself through SIGUSR1 until done; MPI mode with 2 tasks; bad input submits nothing.
source "$(dirname "$0")/lib.sh"
: "${SLURM_CONF:?the CTest fixture sets SLURM_CONF}"
[ -f "$SLURM_CONF" ] || { fail "no Slurm cluster ($SLURM_CONF missing: the fixture did not start)"; finish; }
sinfo -h -o %T >/dev/null 2>&1 || { fail "the Slurm cluster does not answer (sinfo failed)"; finish; }
d="$ART/slurm" && rm -rf "$d" && mkdir -p "$d"
R20="$ART/models/tiny_resnet20.pt" MNV2="$ART/models/tiny_mobilenetv2.pt"

sweep() {  # name results_dir trials(12|120) lease
  local bits='[8, 6, 5, 4, 3, 2]'
  [ "$3" = 120 ] && bits='[8, 7, 6, 5, 4, 3]'
  local models="\"$R20\", \"$MNV2\""
  [ "$3" = 120 ] && models="\"$R20\", \"$MNV2\", \"$R20x\", \"$MNV2x\""
  local methods='["rtn"]'
  [ "$3" = 120 ] && methods='["rtn", "mse", "aciq", "percentile", "multipoint"]'
  cat <<JSON
{"name": "$1",
 "base": {"data": {"eval_limit": ${EVAL:-2000}, "eval_split": "${SPLIT:-test}"}, "calibration": {"size": 64, "cache_dir": "$d/cache"},
          "weights": {"granularity": "per_layer"}},
 "axes": [{"key": "model.path", "values": [$models]},
          {"key": "weights.bits", "values": $bits},
          {"key": "weights.method", "values": $methods}],
 "run": {"results_dir": "$2", "threads_per_rank": 1, "lease_seconds": ${4:-30}}}
JSON
}
# Two more model files (copies) and five methods make a 120-trial sweep for the time-limit test:
# long enough (about 55 s of work on an idle 2-core machine, > 35 s) for the USR1 sent 25 s before a 1-minute limit.
R20x="$d/r20_copy.pt" MNV2x="$d/mnv2_copy.pt"
cp "$R20" "$R20x"; cp "$MNV2" "$MNV2x"; printf 'x' >>"$R20x"; printf 'x' >>"$MNV2x"  # distinct files

jobs_of() {  # sweep_dir [kind]: the recorded job ids, comma-separated
  "$PYTHON" - "$1/slurm/jobs.jsonl" "${2:-}" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(",".join(r["job"] for r in recs if not sys.argv[2] or r.get("kind") == sys.argv[2]))
PY
}
wait_jobs() {  # sweep_dir timeout_s: until no recorded job is queued or running
  local ids; ids=$(jobs_of "$1")
  for _ in $(seq 1 "$2"); do
    [ -z "$(squeue -h -j "${ids%,}" 2>/dev/null)" ] && return 0
    sleep 1
  done
  echo "jobs still queued after $2 s: $(squeue -h -j "${ids%,}")" >&2
  return 1
}
done_counts() {  # sweep_dir: "<trials done>/<max done records per trial>"
  "$PYTHON" - "$1/ledgers" <<'PY'
import glob, json, sys, collections
recs = [json.loads(l) for p in glob.glob(sys.argv[1] + "/*.jsonl") for l in open(p) if l.strip()]
done = collections.Counter(r["trial"] for r in recs if r.get("event") == "done")
print(f"{len(done)}/{max(done.values()) if done else 0}")
PY
}
submit() { "$MPQ" -q slurm submit "$@" >>"$d/submit.log" 2>&1; }

# Reference: the same sweeps run locally in one process.
sweep s12 "$d/local" 12 >"$d/local12.json"
"$MPQ" -q sweep run "$d/local12.json" >/dev/null 2>&1 || fail "local reference (12)"

# 1. Array mode: 12 trials, 3 array tasks; the aggregate equals the local run's.
sweep s12 "$d/array" 12 >"$d/array.json"
submit "$d/array.json" --array-tasks 3 --time 00:10:00 || fail "submit: $(tail -2 "$d/submit.log")"
wait_jobs "$d/array/s12" 240 || fail "array jobs did not finish"
"$MPQ" status "$d/array/s12" | grep -q "12 trials: 12 done" && pass "array mode: 12 done" || fail "array: $("$MPQ" status "$d/array/s12" | head -2) $(tail -5 "$d"/array/s12/slurm/logs/*.out)"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/local/s12" "$d/array/s12" >/dev/null && pass "array mode == local run (codes, metrics)" || fail "array mode differs"
"$MPQ" -q aggregate "$d/local/s12" >/dev/null; "$MPQ" -q aggregate "$d/array/s12" >/dev/null
cmp -s "$d/local/s12/aggregate/summary.csv" "$d/array/s12/aggregate/summary.csv" && pass "aggregate identical" || fail "aggregate differs"
[ "$(done_counts "$d/array/s12")" = 12/1 ] && pass "each trial done once" || fail "done counts $(done_counts "$d/array/s12")"
"$PYTHON" - "$d/array/s12" <<'PY' && pass "job id, array task and restart count in ledgers and manifests" || fail "Slurm ids not recorded"
import glob, json, sys, h5py
recs = [json.loads(l) for p in glob.glob(sys.argv[1] + "/ledgers/*.jsonl") for l in open(p) if l.strip()]
tasks = {r.get("slurm_array_task_id") for r in recs if r.get("event") == "done"}
assert tasks <= {"0", "1", "2"} and len(tasks) >= 2, tasks  # the work was shared
m = h5py.File(glob.glob(sys.argv[1] + "/trials/*.h5")[0])["manifest"].attrs
assert m["slurm_array_job_id"] and m["slurm_array_task_id"] in ("0", "1", "2") and "slurm_restart_count" in m
PY
"$MPQ" status "$d/array/s12" | grep -q "Slurm jobs" && pass "status lists the Slurm jobs" || fail "status without jobs"

# Sections 2-4 interrupt running trials: they must outlast the interruption by far on any CPU.
# Their trials evaluate on the 60000-image train split (about 6x the 10000-image test split; a
# trial takes seconds), and the interruption comes at the first trial started or done.
SPLIT=train EVAL=60000 sweep s12 "$d/local60k" 12 >"$d/local60k.json"
"$MPQ" -q sweep run "$d/local60k.json" >/dev/null 2>&1 || fail "local reference (60000 images)"

# 2. `scontrol requeue` of one running array task: nothing lost, nothing duplicated.
SPLIT=train EVAL=60000 sweep s12 "$d/requeue" 12 >"$d/requeue.json"
submit "$d/requeue.json" --array-tasks 3 --time 00:10:00 || fail "submit (requeue)"
arr=$(jobs_of "$d/requeue/s12" array)
for _ in $(seq 1 120); do
  n=$(cat "$d/requeue/s12/ledgers/"*.jsonl 2>/dev/null | grep -c '"started"' || true)
  [ "${n:-0}" -ge 2 ] && break
  sleep 1
done
scontrol requeue "${arr}_1" && pass "requeued array task ${arr}_1 while trials ran" || fail "scontrol requeue ${arr}_1"
wait_jobs "$d/requeue/s12" 300 || fail "requeue jobs did not finish"
"$MPQ" status "$d/requeue/s12" | grep -q "12 trials: 12 done" && pass "after a requeue: 12 done" || fail "requeue: $("$MPQ" status "$d/requeue/s12" | head -3)"
[ "$(done_counts "$d/requeue/s12")" = 12/1 ] && pass "after a requeue: each trial done once" || fail "requeue done counts $(done_counts "$d/requeue/s12")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/local60k/s12" "$d/requeue/s12" >/dev/null && pass "requeued run == local run" || fail "requeued run differs"

# 3. scancel of the whole job while trials run, then submit again: completes, identical.
SPLIT=train EVAL=60000 sweep s12 "$d/cancel" 12 >"$d/cancel.json"
submit "$d/cancel.json" --array-tasks 2 --time 00:10:00 || fail "submit (cancel)"
for _ in $(seq 1 240); do
  n=$(cat "$d/cancel/s12/ledgers/"*.jsonl 2>/dev/null | grep -c '"done"' || true)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.5
done
"$MPQ" slurm cancel "$d/cancel/s12" >/dev/null && pass "mpq slurm cancel" || fail "mpq slurm cancel"
wait_jobs "$d/cancel/s12" 60 || fail "cancelled jobs still queued"
st=$("$MPQ" status "$d/cancel/s12" | head -1)
echo "$st" | grep -q " 12 done" && fail "cancel came too late to test anything: $st" || pass "interrupted: $st"
# The worker writes "terminated" within 100 ms of SIGTERM (its heartbeat thread polls), but squeue
# can drop a cancelled job before that: wait for the record (up to 30 s) instead of racing it.
for _ in $(seq 1 60); do
  cat "$d/cancel/s12/ledgers/"*.jsonl | grep -q '"terminated"' && break
  sleep 0.5
done
cat "$d/cancel/s12/ledgers/"*.jsonl | grep -q '"terminated"' && pass "workers released their claims on SIGTERM" || fail "no terminated record"
submit "$d/cancel.json" --array-tasks 2 --time 00:10:00 || fail "resubmit"
wait_jobs "$d/cancel/s12" 300 || fail "resubmitted jobs did not finish"
"$MPQ" status "$d/cancel/s12" | grep -q "12 trials: 12 done" && pass "resubmitted: 12 done" || fail "resubmit: $("$MPQ" status "$d/cancel/s12" | head -3)"
[ "$(done_counts "$d/cancel/s12")" = 12/1 ] && pass "cancel + resubmit: each trial done once" || fail "cancel done counts $(done_counts "$d/cancel/s12")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/local60k/s12" "$d/cancel/s12" >/dev/null && pass "cancelled + resubmitted == local" || fail "cancel+resubmit differs"

# 4. A time limit shorter than the sweep: USR1 -> hand back -> requeue, until done. The job
# requeues as long as each start finishes a trial, however many starts a loaded machine needs
# (a 1-minute job got 2-4 trials per start on a loaded machine; 6 requeues used to be the end).
SPLIT=train EVAL=15000 sweep s120 "$d/limit" 120 5 >"$d/limit.json"
submit "$d/limit.json" --array-tasks 1 --time 00:01:00 --signal-seconds 25 || fail "submit (limit)"
wait_jobs "$d/limit/s120" 1200 || fail "time-limited job did not finish"
"$MPQ" status "$d/limit/s120" | grep -q "120 trials: 120 done" && pass "time-limited sweep completed" || fail "limit: $("$MPQ" status "$d/limit/s120" | head -3) $(tail -q -n 3 "$d"/limit/s120/slurm/logs/*.out)"
grep -q "time limit near: requeueing" "$d"/limit/s120/slurm/logs/*.out && pass "requeued itself on SIGUSR1" || fail "no requeue on USR1: $(tail -q -n 5 "$d"/limit/s120/slurm/logs/*.out)"
"$PYTHON" - "$d/limit/s120" <<'PY' && pass "later runs recorded SLURM_RESTART_COUNT > 0" || fail "no restart count recorded"
import glob, json, sys
recs = [json.loads(l) for p in glob.glob(sys.argv[1] + "/ledgers/*.jsonl") for l in open(p) if l.strip()]
assert max(int(r.get("slurm_restart_count", 0)) for r in recs) >= 1
PY
[ "$(done_counts "$d/limit/s120")" = 120/1 ] && pass "time limits: each trial done once" || fail "limit done counts $(done_counts "$d/limit/s120")"
SPLIT=train EVAL=15000 sweep s120 "$d/local120" 120 >"$d/local120.json"
"$MPQ" -q sweep run "$d/local120.json" >/dev/null 2>&1
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/local120/s120" "$d/limit/s120" >/dev/null && pass "time-limited == local" || fail "time-limited differs"

# 4b. A time limit shorter than one trial: the start finishes nothing, and after --max-stalls
# such starts the job gives up instead of requeueing forever; `mpq status` says so in one line
# with the command that continues it. (AdaRound with 10^6 iterations outlasts the 10 s left by
# a 1-minute limit with USR1 50 s before it on any CPU.)
cat >"$d/stall.json" <<JSON
{"name": "s2",
 "base": {"model": {"path": "$R20"}, "data": {"eval_limit": 200}, "calibration": {"size": 64, "cache_dir": "$d/cache"},
          "weights": {"method": "adaround", "adaround": {"iterations": 1000000}}},
 "axes": [{"key": "weights.bits", "values": [4, 3]}],
 "run": {"results_dir": "$d/stall", "threads_per_rank": 1, "lease_seconds": 5}}
JSON
submit "$d/stall.json" --array-tasks 1 --time 00:01:00 --signal-seconds 50 --max-stalls 1 || fail "submit (stall)"
wait_jobs "$d/stall/s2" 300 || fail "stalled job did not stop"
st=$("$MPQ" status "$d/stall/s2")
echo "$st" | grep -q "gave up after 1 start(s).*finished no trial.*Continue it with: mpq slurm submit" && pass "a start that finishes nothing: gave up, status says so" || fail "stall: $st $(tail -q -n 3 "$d"/stall/s2/slurm/logs/*.out)"
grep -q "not requeueing: 1 start(s) in a row finished no trial" "$d"/stall/s2/slurm/logs/*.out && pass "stall: the log says why" || fail "stall log: $(tail -q -n 3 "$d"/stall/s2/slurm/logs/*.out)"
# At submit, a limit that leaves less than the median finished trial of the sweep (ledger
# records in the format workers write) is warned about; one that leaves more is not.
mkdir -p "$d/warn/s12/ledgers"
for i in 1 2 3; do echo '{"event":"done","trial":"t'$i'","seconds":'$((100 * i))',"time":"2026-01-01T00:00:00Z"}'; done >"$d/warn/s12/ledgers/w.jsonl"
sweep s12 "$d/warn" 12 >"$d/warn.json"
"$MPQ" slurm submit "$d/warn.json" --time 00:02:00 --dry-run 2>"$d/warn.err" >/dev/null
grep -q "warning: --time 00:02:00 with USR1 30 s before it leaves 90 s of work per start, less than a typical trial of this sweep (200 s" "$d/warn.err" && pass "submit warns: limit shorter than a typical trial" || fail "no short-limit warning: $(cat "$d/warn.err")"
"$MPQ" slurm submit "$d/warn.json" --time 00:10:00 --dry-run 2>"$d/warn.err" >/dev/null
[ ! -s "$d/warn.err" ] && pass "no warning when a trial fits" || fail "spurious warning: $(cat "$d/warn.err")"

# 5. MPI mode: one allocation, 2 ranks.
sweep s12 "$d/mpi" 12 >"$d/mpi.json"
submit "$d/mpi.json" --mode mpi --ntasks-per-node 2 --cpus-per-task 1 --time 00:10:00 || fail "submit (mpi)"
wait_jobs "$d/mpi/s12" 240 || fail "mpi job did not finish"
"$MPQ" status "$d/mpi/s12" | grep -q "12 trials: 12 done" && pass "mpi mode: 12 done" || fail "mpi: $("$MPQ" status "$d/mpi/s12" | head -2) $(tail -5 "$d"/mpi/s12/slurm/logs/*.out)"
grep -q "on 2 rank(s)" "$d"/mpi/s12/slurm/logs/*.out && pass "mpi mode ran 2 ranks" || fail "mpi ranks: $(cat "$d"/mpi/s12/slurm/logs/*.out | head -5)"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/local/s12" "$d/mpi/s12" >/dev/null && pass "mpi mode == local run" || fail "mpi mode differs"

# 6. Bad input: clear errors, nothing written or submitted.
before=$(squeue -h | wc -l)
sweep s12 "$d/bad" 12 >"$d/bad.json"
expect_error 1 "sbatch not found in PATH" "$d/bad/s12/slurm" -- env PATH=/nonexistent "$MPQ" slurm submit "$d/bad.json"
expect_error 2 "--time 1:2:3:4: expected a Slurm time limit" "$d/bad/s12/slurm" -- "$MPQ" slurm submit "$d/bad.json" --time 1:2:3:4
expect_error 2 "--time 10m: expected a Slurm time limit" "$d/bad/s12/slurm" -- "$MPQ" slurm submit "$d/bad.json" --time 10m
echo '{"name": "x", "axes": [{"key": "weights.bitz", "values": [4]}], "run": {"results_dir": "'$d'/bad"}}' >"$d/invalid.json"
expect_error 2 "/axes/0/key: 'weights.bitz' is not a trial config key" "$d/bad/x" -- "$MPQ" slurm submit "$d/invalid.json"
expect_error 2 "--mode batch: must be" "$d/bad/s12/slurm" -- "$MPQ" slurm submit "$d/bad.json" --mode batch
[ "$(squeue -h | wc -l)" -eq "$before" ] && pass "nothing submitted for bad input" || fail "bad input submitted a job"
finish
