#!/usr/bin/env bash
# Sweeps on real MPI ranks with real HDF5 files: 2 ranks == 1 process, SIGKILL + resume, corrupt
# files redone, failing trials recorded, config changes refused, layer-parallel == single rank.
source "$(dirname "$0")/lib.sh"
d="$ART/sweep" && rm -rf "$d" && mkdir -p "$d"
R20="$ART/models/tiny_resnet20.pt" MNV2="$ART/models/tiny_mobilenetv2.pt"
MPIRUN=(mpirun --oversubscribe -np 2)

sweep_json() {  # name results_dir [mode] [extra model path]
  local extra=""; [ -n "${4:-}" ] && extra=", \"$4\""
  cat <<JSON
{"name": "$1",
 "base": {"data": {"eval_limit": 600}, "calibration": {"size": 64, "cache_dir": "$d/cache"}},
 "axes": [
   {"key": "model.path", "values": ["$R20", "$MNV2"$extra]},
   {"key": "weights.bits", "values": [4, 3]},
   {"variants": [{"label": "RTN", "weights": {"method": "rtn"}},
                 {"label": "MSE", "weights": {"method": "mse", "granularity": "per_layer"}},
                 {"label": "MP10", "weights": {"method": "multipoint", "granularity": "per_layer",
                                                "multipoint": {"budget": 0.1}}}]}
 ],
 "run": {"results_dir": "$2", "mode": "${3:-trials}", "threads_per_rank": 1}}
JSON
}

# 1. Two ranks give exactly what one process gives.
sweep_json small "$d/one" >"$d/one.json"
sweep_json small "$d/two" >"$d/two.json"
"$MPQ" -q sweep run "$d/one.json" >"$d/one.log" 2>&1 || fail "single-process sweep: $(tail -3 "$d/one.log")"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/two.json" >"$d/two.log" 2>&1 || fail "2-rank sweep: $(tail -3 "$d/two.log")"
grep -q "12 trials: 12 done, 0 failed" "$d/two.log" && pass "2-rank sweep: 12 done" || fail "2-rank sweep summary: $(cat "$d/two.log")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/small" "$d/two/small" && pass "2 ranks == 1 process (codes, metrics)" || fail "2 ranks differ from 1 process"
"$MPQ" -q aggregate "$d/one/small" >/dev/null && "$MPQ" -q aggregate "$d/two/small" >/dev/null
cmp -s "$d/one/small/aggregate/summary.csv" "$d/two/small/aggregate/summary.csv" && pass "aggregate tables identical" || fail "aggregate tables differ"
# A metric name with a typo is an error, not a column of "-".
expect_error 2 "--metrics: 'topl' is not a metric of this sweep \(metrics: .*top1" "-" -- "$MPQ" -q aggregate "$d/one/small" --metrics top1 topl
expect_error 2 "--pivot: metric 'acc' is not a metric of this sweep" "-" -- "$MPQ" -q aggregate "$d/one/small" --pivot label:weights.bits:acc
# Both ranks ran trials (dynamic scheduling, rank 0 works too).
"$PYTHON" - "$d/two/small/ledgers" <<'PY' && pass "both ranks ran trials" || fail "one rank did all the work"
import glob, json, sys
ranks = {json.loads(l)["rank"] for p in glob.glob(sys.argv[1] + "/*.jsonl") for l in open(p) if '"done"' in l}
assert ranks == {0, 1}, ranks
PY

# 2. SIGKILL of one rank mid-sweep, then resume: nothing lost, nothing duplicated.
sweep_json small "$d/kill" >"$d/kill.json"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/kill.json" >"$d/kill1.log" 2>&1 &
mpipid=$!
for _ in $(seq 1 600); do
  n=$(cat "$d/kill/small/ledgers/"*.jsonl 2>/dev/null | grep -c '"done"' || true)
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.1
done
victim=$(pgrep -f "mpq -q sweep run $d/kill.json" | sort -n | tail -1)
[ -n "$victim" ] && kill -9 "$victim"
wait $mpipid; rc=$?
[ $rc -ne 0 ] && pass "job died after SIGKILL of rank pid $victim (exit $rc)" || fail "job survived the kill (exit $rc)"
before=$("$MPQ" status "$d/kill/small" | head -1)
echo "status after kill: $before"
echo "$before" | grep -q " 12 done" && fail "the kill came too late to test anything" || pass "sweep interrupted: $before"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/kill.json" >"$d/kill2.log" 2>&1 || fail "resume: $(tail -3 "$d/kill2.log")"
"$MPQ" status "$d/kill/small" | grep -q "12 trials: 12 done, 0 failed, 0 gave up, 0 pending" && pass "resumed to 12 done" || fail "resume incomplete: $("$MPQ" status "$d/kill/small")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/small" "$d/kill/small" && pass "killed+resumed == uninterrupted" || fail "killed+resumed differs"
"$PYTHON" - "$d/kill/small/ledgers" <<'PY' && pass "no trial completed twice" || fail "a trial completed twice"
import glob, json, sys, collections
recs = [json.loads(l) for p in glob.glob(sys.argv[1] + "/*.jsonl") for l in open(p) if l.strip()]
done = collections.Counter(r["trial"] for r in recs if r.get("event") == "done")
assert done and max(done.values()) == 1, done.most_common(3)
PY
ls "$d/kill/small/trials" | grep -q tmp && fail "temporary files left in trials/" || pass "no temporary files left"
# Temporary files of the sweep's own files (fp_check.json, plan.json) left by a killed writer are
# removed by the next run: a dead process of this host, or over an hour old; a live writer's
# (this shell's pid) and another host's recent one are kept.
sleep 0 & dead=$!; wait $dead
host=$(hostname)
top="$d/kill/small"
touch "$top/fp_check.json.tmp.$host.$dead" "$top/plan.json.tmp.$host.$dead" \
      "$top/fp_check.json.tmp.$host.$$" "$top/plan.json.tmp.elsewhere.example.12345" \
      "$top/sweep.json.tmp.elsewhere.example.777"
touch -d "2 hours ago" "$top/sweep.json.tmp.elsewhere.example.777"
"$MPQ" -q sweep run "$d/kill.json" >"$d/kill_tmp.log" 2>&1 || fail "rerun with leftover temporary files"
left=$(cd "$top" && ls -d *.tmp.* 2>/dev/null | sort | tr '\n' ' ')
[ "$left" = "fp_check.json.tmp.$host.$$ plan.json.tmp.elsewhere.example.12345 " ] \
  && pass "stale temporary files removed, live ones kept" || fail "temporary files after rerun: $left"
rm -f "$top"/*.tmp.*

# 3. A truncated trial file is detected and redone; the other trials are not rerun.
victim_file=$(ls "$d/kill/small/trials"/*.h5 | head -1)
truncate -s 2000 "$victim_file"
"$MPQ" status "$d/kill/small" | grep -q "1 trial file(s) present but invalid" && pass "status reports the truncated file" || fail "truncated file not detected: $("$MPQ" status "$d/kill/small")"
starts_before=$(cat "$d/kill/small/ledgers/"*.jsonl | grep -c '"started"')
"$MPQ" -q sweep run "$d/kill.json" >"$d/kill3.log" 2>&1 || fail "rerun after truncation"
starts_after=$(cat "$d/kill/small/ledgers/"*.jsonl | grep -c '"started"')
[ $((starts_after - starts_before)) -eq 1 ] && pass "exactly the truncated trial was redone" || fail "redid $((starts_after - starts_before)) trials"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/small" "$d/kill/small" >/dev/null && pass "redone trial identical" || fail "redone trial differs"

# 3b. Stale temporary files of killed runs are removed; concurrent runs on one directory share
#     the work through claims (an MPI job and two plain workers), none does a trial twice.
touch "$d/kill/small/trials/deadbeef.h5.tmp.99999"
"$MPQ" -q sweep run "$d/kill.json" >/dev/null 2>&1 || fail "rerun for tmp cleanup"
[ -e "$d/kill/small/trials/deadbeef.h5.tmp.99999" ] && fail "stale temporary file kept" || pass "stale temporary file removed"
sweep_json small "$d/conc" >"$d/conc.json"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/conc.json" >"$d/conc0.log" 2>&1 &
p0=$!
"$MPQ" -q sweep work "$d/conc.json" >"$d/conc1.log" 2>&1 &
p1=$!
"$MPQ" -q sweep work "$d/conc.json" >"$d/conc2.log" 2>&1 &
p2=$!
wait $p0 $p1 $p2 || fail "concurrent runs: $(tail -2 "$d/conc0.log" "$d/conc1.log" "$d/conc2.log")"
"$MPQ" status "$d/conc/small" | grep -q "12 trials: 12 done" && pass "concurrent MPI job + 2 workers: 12 done" || fail "concurrent: $("$MPQ" status "$d/conc/small" | head -3)"
"$PYTHON" - "$d/conc/small/ledgers" <<'PY' && pass "concurrent runs: no trial done twice, work shared" || fail "concurrent runs duplicated work"
import glob, json, sys, collections
recs = [json.loads(l) for p in glob.glob(sys.argv[1] + "/*.jsonl") for l in open(p) if l.strip()]
done = collections.Counter(r["trial"] for r in recs if r.get("event") == "done")
assert len(done) == 12 and max(done.values()) == 1, done.most_common(3)
PY
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/small" "$d/conc/small" >/dev/null && pass "concurrent == single process" || fail "concurrent results differ"
[ -z "$(ls "$d/conc/small/claims")" ] && pass "every claim released" || fail "claims left: $(ls "$d/conc/small/claims")"

# 4. A failing trial is recorded FAILED and the sweep goes on; retried up to the cap.
echo "corrupt" >"$d/corrupt.pt"
sweep_json withbad "$d/bad" trials "$d/corrupt.pt" >"$d/bad.json"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/bad.json" >"$d/bad1.log" 2>&1 || fail "sweep with a failing trial should exit 0"
grep -q "18 trials: 12 done, 6 failed" "$d/bad1.log" && pass "6 failing trials recorded, 12 done" || fail "unexpected: $(cat "$d/bad1.log")"
# (grep without -q: it reads all of the output, so mpq never writes into a closed pipe; with
# LibTorch 2.x's longer messages the status exceeds one stdio buffer and grep -q + pipefail raced)
"$MPQ" status "$d/bad/withbad" | grep "not a TorchScript archive" >/dev/null && pass "failure message in status" || fail "no failure message"
"$MPQ" -q sweep run "$d/bad.json" >"$d/bad2.log" 2>&1
grep -q "12 done, 0 failed, 6 gave up" "$d/bad2.log" && pass "gave up after max_attempts=2" || fail "attempt cap: $(cat "$d/bad2.log")"
"$MPQ" -q sweep run "$d/bad.json" >"$d/bad3.log" 2>&1
[ "$(cat "$d/bad/withbad/ledgers/"*.jsonl | grep -c '"started"')" -eq 24 ] && pass "not retried past the cap" || fail "retried past the cap"

# 5. A different config under an existing name is refused; --force reuses the directory.
sweep_json small "$d/force" >"$d/force.json"
"$MPQ" -q sweep run "$d/force.json" >/dev/null 2>&1 || fail "force: first run"
sed 's/"eval_limit": 600/"eval_limit": 500/' "$d/force.json" >"$d/changed.json"
expect_error 2 "already holds a sweep with a different config" "-" -- "$MPQ" -q sweep run "$d/changed.json"
"$MPQ" -q sweep run "$d/changed.json" --force >/dev/null 2>&1 && pass "--force accepted" || fail "--force"

# 6. Bad sweep configs: every problem with its JSON path, nothing started.
bad_sweep() {  # json regex
  echo "$1" >"$d/s.json"
  expect_error 2 "$2" "$d/nothing" -- "$MPQ" sweep run "$d/s.json"
}
bad_sweep '{"name": "x", "axes": [{"key": "weights.bitz", "values": [4]}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/key: 'weights.bitz' is not a trial config key"
bad_sweep '{"name": "x", "axes": [{"key": "weights.bits", "values": []}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/values: must not be empty"
bad_sweep '{"name": "x", "axes": [{"key": "weights.bits", "values": [4, 1]}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/values/1: /weights/bits: must be an integer in \[2, 8\], got integer 1"
bad_sweep '{"name": "x", "axes": [{"key": "weights.bits", "values": [4, "8"]}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/values/1: /weights/bits: .*got string"
bad_sweep '{"name": "x", "axes": [{"key": "weights.bits", "values": [4, 4]}], "run": {"results_dir": "'$d'/nothing"}}' "duplicates trial 0"
bad_sweep '{"name": "x", "axes": [{"zip": [{"key": "weights.bits", "values": [4, 3]}, {"key": "label", "values": ["a"]}]}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/zip/1/values: has 1 values"
bad_sweep '{"name": "x", "axez": [], "run": {"results_dir": "'$d'/nothing"}}' "/axez: unknown key"
bad_sweep '{"name": "x", "base": {"weights": {"bits": 99}}, "run": {"results_dir": "'$d'/nothing"}}' "/base/weights/bits: must be an integer"
bad_sweep '{"name": "x", "seeds": [0, -1], "run": {"results_dir": "'$d'/nothing"}}' "/seeds/1: must be an integer >= 0"
bad_sweep '{"name": "x", "run": {"mode": "fast", "results_dir": "'$d'/nothing"}}' "/run/mode: must be"
bad_sweep '{"name": "../up", "run": {"results_dir": "'$d'/nothing"}}' "/name: must be"
bad_sweep '{"name": "x", "axes": [{"variants": [{"weights": {"method": "magic"}}]}], "run": {"results_dir": "'$d'/nothing"}}' "/axes/0/variants/0/weights/method: must be one of"
echo '{"name": "x", "axes": [{"key": "weights.bits", "values": [1]}, {"key": "weights.granularity", "values": ["per_tensor"]}]}' >"$d/two_problems.json"
n=$("$MPQ" sweep plan "$d/two_problems.json" 2>&1 | grep -c "^mpq: ")
[ "$n" -eq 2 ] && pass "both problems reported" || fail "expected 2 problems, got $n"
[ -e "$d/nothing" ] && fail "a bad sweep created its results directory" || pass "nothing started for bad sweeps"

# 7. The same trial twice gives identical codes and metrics.
for i in 1 2; do
  "$MPQ" -q quantize --model "$MNV2" --method multipoint --bits 3 --granularity per_layer --threads 2 \
    --set data.eval_limit=500 --set calibration.cache_dir="" -o "$d/twice$i.h5" >/dev/null || fail "twice $i"
done
"$PYTHON" - "$d/twice1.h5" "$d/twice2.h5" <<'PY' && pass "same trial twice: identical codes and metrics" || fail "same trial twice differs"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for k in ["top1", "top5", "agreement", "kl", "total_points"]:
    assert a["metrics"].attrs[k] == b["metrics"].attrs[k], k
for n in a["layers"]:
    for ds in ["codes", "scales", "points_per_channel"]:
        assert np.array_equal(a["layers"][n][ds][()], b["layers"][n][ds][()]), (n, ds)
PY

# 8. Layer-parallel mode on 2 ranks equals the single-process run.
sweep_json small "$d/layers" layers >"$d/layers.json"
"${MPIRUN[@]}" "$MPQ" -q sweep run "$d/layers.json" >"$d/layers.log" 2>&1 || fail "layer-parallel sweep: $(tail -3 "$d/layers.log")"
grep -q "12 trials: 12 done, 0 failed" "$d/layers.log" && pass "layer-parallel: 12 done" || fail "layer-parallel: $(cat "$d/layers.log")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/small" "$d/layers/small" && pass "layer-parallel == single process" || fail "layer-parallel differs"
"$PYTHON" -c "import h5py,glob,sys; f=h5py.File(sorted(glob.glob('$d/layers/small/trials/*.h5'))[0]); sys.exit(int(f['manifest'].attrs['ranks'] != 2))" \
  && pass "layer-parallel trial records 2 ranks" || fail "ranks not recorded"

# 9. Layer-parallel with failing trials: every rank takes part in every trial, so a failure must be
# agreed on by all ranks (sweep/trial_stages.h, Collective) — recorded FAILED, the sweep goes on
# and ends (a rank left waiting would hang here; timeout turns that into a failure).
sweep_json lbad "$d/lbad" layers "$d/corrupt.pt" \
  | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); d["axes"][0]["values"]=d["axes"][0]["values"][-1:]; print(json.dumps(d))' \
  >"$d/lbad.json"
timeout 300 "${MPIRUN[@]}" "$MPQ" -q sweep run "$d/lbad.json" >"$d/lbad.log" 2>&1 \
  && pass "layer-parallel sweep with failing trials ends, exit 0" || fail "layer-parallel with failures: exit $?: $(tail -3 "$d/lbad.log")"
grep -q "6 trials: 0 done, 6 failed" "$d/lbad.log" && pass "layer-parallel: 6 failures recorded" || fail "layer-parallel failures: $(cat "$d/lbad.log")"
"$MPQ" status "$d/lbad/lbad" | grep "not a TorchScript archive" >/dev/null && pass "layer-parallel failure message in status" || fail "no failure message: $("$MPQ" status "$d/lbad/lbad")"
finish
