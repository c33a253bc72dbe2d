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
        "{\"bits\": $bits, \"granularity\": \"$gran\", \"points\": 1, \"calibration_size\": 0}" \
        && pass "$h5 content" || fail "$h5 content"
      got_fp=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$h5')['metrics'].attrs['fp_top1'])")
      [ "$got_fp" = "$fp_top1" ] && pass "fp_top1 $got_fp matches mpq eval" || fail "fp_top1 $got_fp != mpq eval $fp_top1"
    done
    # 8 bits is all but lossless: compared with 4 and 2 bits of the same model, whatever the
    # trained fixture's accuracy. Weight noise variance scales with the squared step, 4^-bits:
    # 4 -> 8 bits divides it by 256 (per layer: by (127/7)^2 = 329). KL to the FP model is second
    # order in the logit perturbation, so it scales with that variance: require 16x (a 16x
    # safety factor, since 4 bits may leave the small-perturbation regime). A top-1 decision
    # flips when the perturbation exceeds the image's margin: to first order the count scales
    # with the perturbation's size, sqrt(256) = 16x; require 3x, plus 5 images of slack for the
    # counts' randomness.
    "$PYTHON" - "$out/${arch}_${gran}_w8.h5" "$out/${arch}_${gran}_w4.h5" "$out/${arch}_${gran}_w2.h5" <<'PY' && pass "$arch $gran 8-bit fidelity" || fail "$arch $gran 8-bit fidelity"
import sys, h5py
w8, w4, w2 = (h5py.File(p)["metrics"].attrs for p in sys.argv[1:])
n = w8["n_eval"]
assert 16 * w8["kl"] < w4["kl"] and w4["kl"] < w2["kl"], (w8["kl"], w4["kl"], w2["kl"])
assert 10 * w8["kl"] < w2["kl"], (w8["kl"], w2["kl"])
flips8, flips4 = (1 - w8["agreement"]) * n, (1 - w4["agreement"]) * n
assert 3 * flips8 <= flips4 + 5, (flips8, flips4)
PY
  done
done
# Baselines, activation quantization and bias correction end up in the file as documented.
h5="$out/baselines.h5"
for spec in "ocs:--set weights.ocs.expand_ratio=0.1" "bit_alloc:--set weights.bit_alloc.average_bits=4" "aciq:" "percentile:"; do
  method=${spec%%:*}; extra=${spec#*:}
  # shellcheck disable=SC2086
  "$MPQ" -q quantize --model "$ART/models/tiny_resnet20.pt" --method "$method" --bits 4 $extra \
    --set activations.bits=8 --set bias_correction=true --set data.eval_limit=500 --set calibration.size=64 \
    -o "$out/$method.h5" >"$out/log" 2>&1 || { fail "$method: $(cat "$out/log")"; continue; }
  "$PYTHON" - "$out/$method.h5" "$method" <<'PY' && pass "$method trial file" || fail "$method trial file"
import sys, h5py, numpy as np
f, method = h5py.File(sys.argv[1], "r"), sys.argv[2]
m = f["manifest"].attrs
assert m["activation_bits"] == 8 and m["bias_correction"] == 1, dict(m)
met = f["metrics"].attrs  # the time of both steps after quantization is recorded
assert met["activation_calibration_seconds"] > 0 and met["correction_seconds"] > 0, dict(met)
assert "unsigned" in m["activation_quantizers"]
layers = [f["layers"][n] for n in f["layers"]]
assert all(g.attrs["act_bits"] == 8 for g in layers)
assert all("bias_shift_mean_abs" in g.attrs for g in layers)
if method == "ocs":
    split = [g for g in layers if "ocs_source" in g]
    assert split, "no layer was split"
    g = split[0]
    assert g["codes"].shape[1] == g.attrs["d"] and g.attrs["ocs_splits"] == len(g["ocs_source"])
    assert f["metrics"].attrs["extra_input_channels_pct"] > 0
if method == "bit_alloc":
    for g in layers:
        b = g["bits_per_channel"][()]
        assert b.min() >= 2 and b.max() <= 8 and abs(b.mean() - 4) < 0.5, b
        L = (2 ** (b.astype(np.int64) - 1) - 1)
        assert np.all(np.abs(g["codes"][()]).max(axis=1) <= L)
PY
done

# The deployable expanded model loads in PyTorch and classifies like the simulated trial.
for arch in resnet20 mobilenetv2; do
  "$MPQ" -q quantize --model "$ART/models/tiny_$arch.pt" --method multipoint --bits 4 --granularity per_layer \
    --set weights.multipoint.budget=0.25 --set data.eval_limit=1000 --set calibration.size=64 \
    -o "$out/exp_$arch.h5" --export "$out/exp_$arch.pt" >"$out/log" 2>&1 || { fail "export $arch: $(cat "$out/log")"; continue; }
  sim=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$out/exp_$arch.h5')['metrics'].attrs['top1'])")
  # The same function with the points summed in another order: top-1 may differ only on images
  # whose margin is within float32 reordering error (python_eval.py --flip-bound).
  read -r py bound < <("$PYTHON" "$SRC/tests/integration/python_eval.py" "$out/exp_$arch.pt" 1000 --flip-bound 1e-3)
  "$PYTHON" -c "import sys; sys.exit(abs($sim - $py) > $bound + 1e-9)" \
    && pass "$arch expanded model in PyTorch: top-1 $py, simulated $sim (bound $bound)" || fail "$arch expanded $py vs simulated $sim (bound $bound)"
  "$PYTHON" - "$out/exp_$arch.h5" <<'PY' && pass "$arch per-layer overheads recorded" || fail "$arch per-layer overheads"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
tot = 0
for n in f["layers"]:
    a = f["layers"][n].attrs
    assert "extra_channels_pct" in a and "extra_macs_pct" in a and "extra_weight_bits_pct" in a
    assert abs(a["extra_channels_pct"] - 100.0 * a["extra_points"] / a["c_out"]) < 1e-9
    tot += a["extra_points"]
assert tot == f["metrics"].attrs["extra_points"]
PY
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
