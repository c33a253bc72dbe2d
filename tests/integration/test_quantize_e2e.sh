#!/usr/bin/env bash
# End to end: quantize the tiny models with round-to-nearest, check the HDF5 file from Python
# and the metrics against an independent `mpq eval` of the FP model.
source "$(dirname "$0")/lib.sh"
out="$ART/e2e" && rm -rf "$out" && mkdir -p "$out"
for arch in resnet20 mobilenetv2; do
  model="$ART/models/tiny_$arch.pt"
  fp_top1=$("$MPQ" -q eval --model "$model" --limit 1000 | field top1)
  for gran in per_channel per_layer; do
    for bits in 8 4 2; do
      h5="$out/${arch}_${gran}_w$bits.h5"
      if ! "$MPQ" -q quantize --model "$model" --bits "$bits" --granularity "$gran" \
          --set data.eval_limit=1000 --set calibration.size=64 -o "$h5" >"$out/log" 2>&1; then
        fail "quantize $arch $gran $bits: $(cat "$out/log")"; continue
      fi
      "$PYTHON" "$SRC/tests/integration/check_trial.py" "$h5" "$model" \
        "{\"bits\": $bits, \"granularity\": \"$gran\", \"points\": 1, \"calibration_size\": 64}" \
        && pass "$h5 content" || fail "$h5 content"
      got_fp=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$h5')['metrics'].attrs['fp_top1'])")
      [ "$got_fp" = "$fp_top1" ] && pass "fp_top1 $got_fp matches mpq eval" || fail "fp_top1 $got_fp != mpq eval $fp_top1"
    done
    # 8 bits is all but lossless; 2 bits is much worse than 8 (in KL against the FP model).
    "$PYTHON" - "$out/${arch}_${gran}_w8.h5" "$out/${arch}_${gran}_w2.h5" <<'PY' && pass "$arch $gran 8-bit fidelity" || fail "$arch $gran 8-bit fidelity"
import sys, h5py
w8, w2 = (h5py.File(p)["metrics"].attrs for p in sys.argv[1:])
assert w8["agreement"] >= 0.97, w8["agreement"]
assert abs(w8["top1"] - w8["fp_top1"]) <= 0.01, (w8["top1"], w8["fp_top1"])
assert w2["kl"] > 10 * w8["kl"], (w2["kl"], w8["kl"])
PY
  done
done
# inspect prints a summary of a trial file
"$MPQ" inspect "$out/resnet20_per_channel_w4.h5" | grep -q "weights    rtn, 4 bits, per_channel" \
  && pass "inspect trial" || fail "inspect trial"
# A config file plus overrides produce the same trial id as the equivalent flags.
cat >"$out/trial.json" <<JSON
{"model": {"path": "$ART/models/tiny_resnet20.pt"}, "weights": {"bits": 3}, "data": {"eval_limit": 200}}
JSON
id1=$("$MPQ" -q quantize --config "$out/trial.json" --set weights.granularity=per_layer | awk '{print $2}')
id2=$("$MPQ" -q quantize --model "$ART/models/tiny_resnet20.pt" --bits 3 --granularity per_layer --set data.eval_limit=200 | awk '{print $2}')
[ -n "$id1" ] && [ "$id1" = "$id2" ] && pass "config file and flags give the same trial id" || fail "trial ids differ: $id1 vs $id2"
finish
