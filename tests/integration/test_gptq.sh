#!/usr/bin/env bash
# GPTQ (quant/gptq.h) against an independent numpy implementation of the paper's Algorithm 1
# (gptq_reference.py): random layers (linear, blocked conv with dead inputs, grouped, depthwise,
# act-order, per layer) through tests' mpq_layer_tool, and every layer of GPTQ trials on both
# fixture models (model.fold_bn=false so the archive's weights are the layer weights; Σ read from
# the trial's statistics cache; rows where the paper's GPTQ is worse than round-to-nearest must
# be round-to-nearest's in mpq, the guard of gptq.h). Also, on the BN-folded fixture models:
# GPTQ's output error is never above round-to-nearest's on the same grid, on every layer (from
# the trial files' per-layer attributes; the count of guarded rows is printed),
# and the exported model (the dequantized weights in the archive) gives mpq's top-1 in PyTorch
# (python_eval.py, within its float32 reordering bound).
source "$(dirname "$0")/lib.sh"
d="$ART/gptq" && rm -rf "$d" && mkdir -p "$d"
ref="$SRC/tests/integration/gptq_reference.py"

if r=$("$PYTHON" "$ref" random "$LAYER_TOOL" "$d/random" 2>&1); then pass "random layers: $(tail -1 <<<"$r")"
else fail "random layers: $r"; fi
# GPTQ's feedback over multipoint layers (weights.multipoint.gptq_feedback) against the same
# reference with the channel's points rounding each column (gptq_reference.py feedback).
if r=$("$PYTHON" "$ref" feedback "$LAYER_TOOL" "$d/random" 2>&1); then pass "feedback on random layers: $(tail -1 <<<"$r")"
else fail "feedback on random layers: $r"; fi

for arch in resnet20 mobilenetv2; do
  m="$ART/models/tiny_$arch.pt"
  for args in "per_channel false" "per_layer true"; do
    set -- $args
    name="${arch}_$1_actorder_$2"
    cache="$d/cache_$name"
    if "$MPQ" -q quantize --model "$m" --method gptq --bits 3 --granularity "$1" \
        --set weights.gptq.act_order="$2" --set model.fold_bn=false --set calibration.size=64 \
        --set calibration.cache_dir="$cache" --set data.eval_limit=500 -o "$d/$name.h5" >"$d/log" 2>&1; then
      stats=$(ls -d "$cache"/stats-* | head -1)
      if r=$("$PYTHON" "$ref" trial "$d/$name.h5" "$stats" "$m" 2>&1); then pass "$name: $(tail -1 <<<"$r")"
      else fail "$name: $r"; fi
    else fail "$name: $(cat "$d/log")"; fi
  done
  # BN folded (the default): GPTQ <= RTN on every layer, and PyTorch's top-1 of the weights.
  for g in per_channel per_layer; do
    name="${arch}_folded_$g"
    if "$MPQ" -q quantize --model "$m" --method gptq --bits 4 --granularity $g \
        --set calibration.size=64 --set data.eval_limit=1000 -o "$d/$name.h5" --export "$d/$name.pt" \
        >"$d/log" 2>&1; then
      if r=$("$PYTHON" - "$d/$name.h5" <<'PY'
import sys, h5py
worse = []
with h5py.File(sys.argv[1]) as f:
    n = kept = 0
    for k in f["layers"]:
        a = f["layers"][k].attrs
        if not a["quantized"]:
            continue
        n += 1
        g, r = float(a["output_rel_error_final"]), float(a["output_rel_error_rtn"])
        kept += int(a["gptq_rows_kept_rtn"])
        assert float(a["gptq_seconds"]) >= 0, a["name"]  # the layer's wall time is recorded
        if g > r * (1 + 1e-9) + 1e-15:
            worse.append(f"{a['name']}: {g:.4e} > {r:.4e}")
print(f"{n} layers, GPTQ above RTN on {len(worse)}: {worse}; rows that kept RTN: {kept}")
sys.exit(1 if worse else 0)
PY
      ); then pass "$name: $r"; else fail "$name: $r"; fi
      sim=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$d/$name.h5')['metrics'].attrs['top1'])")
      read -r py bound < <("$PYTHON" "$SRC/tests/integration/python_eval.py" "$d/$name.pt" 1000 --flip-bound 1e-3)
      "$PYTHON" -c "import sys; sys.exit(abs($sim - $py) > $bound + 1e-9)" \
        && pass "$name in PyTorch: top-1 $py, mpq $sim (bound $bound)" \
        || fail "$name in PyTorch: top-1 $py vs mpq $sim (bound $bound)"
    else fail "$name: $(cat "$d/log")"; fi
  done
done
# Multipoint on GPTQ (weights.multipoint.first_point=gptq): every channel's first point is the
# GPTQ trial's (same codes and step, exactly: the same computation), extra points only lower the
# layer's output error, and the trial records where its first points came from.
for arch in resnet20 mobilenetv2; do
  name="${arch}_multipoint_on_gptq"
  if "$MPQ" -q quantize --model "$ART/models/tiny_$arch.pt" --method multipoint --bits 4 \
      --granularity per_channel --set weights.multipoint.first_point=gptq --set calibration.size=64 \
      --set data.eval_limit=1000 -o "$d/$name.h5" >"$d/log" 2>&1; then
    if r=$("$PYTHON" - "$d/$name.h5" "$d/${arch}_folded_per_channel.h5" <<'PY'
import sys, h5py, numpy as np
mp, gq = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
n_extra = 0
for k in gq["layers"]:
    a, b = mp["layers"][k], gq["layers"][k]
    if not b.attrs["quantized"]:
        continue
    assert a.attrs["first_point"] == "gptq", a.attrs["first_point"]
    ppc = a["points_per_channel"][()]
    first = np.concatenate([[0], np.cumsum(ppc)[:-1]])
    assert np.array_equal(a["codes"][()][first], b["codes"][()]), f"{k}: first-point codes"
    assert np.array_equal(a["scales"][()][first], b["scales"][()]), f"{k}: first-point steps"
    assert a.attrs["output_rel_error_final"] <= b.attrs["output_rel_error_final"] * (1 + 1e-6) + 1e-12, k
    n_extra += int(ppc.sum() - len(ppc))
print(f"first points identical to GPTQ's on every layer; {n_extra} extra points; top-1 "
      f"{mp['metrics'].attrs['top1']:.4f} vs GPTQ {gq['metrics'].attrs['top1']:.4f}")
PY
    ); then pass "$name: $r"; else fail "$name: $r"; fi
  else fail "$name: $(cat "$d/log")"; fi
  # The same trial with GPTQ's feedback over all points: the same points and steps, no layer's
  # output error above the trial without it (the guard, per row), rows of one point carry GPTQ's
  # codes exactly (one point rounds a column as GPTQ does, in the same operations) except rows
  # where GPTQ's own guard chose round-to-nearest, and the trial records the feedback.
  name="${arch}_multipoint_on_gptq_feedback"
  if "$MPQ" -q quantize --model "$ART/models/tiny_$arch.pt" --method multipoint --bits 4 \
      --granularity per_channel --set weights.multipoint.first_point=gptq --set calibration.size=64 \
      --set weights.multipoint.gptq_feedback=true --set data.eval_limit=1000 \
      -o "$d/$name.h5" >"$d/log" 2>&1; then
    if r=$("$PYTHON" - "$d/$name.h5" "$d/${arch}_multipoint_on_gptq.h5" \
        "$d/${arch}_folded_per_channel.h5" <<'PY'
import sys, h5py, numpy as np
fb, mp, gq = h5py.File(sys.argv[1]), h5py.File(sys.argv[2]), h5py.File(sys.argv[3])
kept = lowered = 0
for k in gq["layers"]:
    a, b, g = fb["layers"][k], mp["layers"][k], gq["layers"][k]
    if not g.attrs["quantized"]:
        continue
    ppc = a["points_per_channel"][()]
    assert np.array_equal(ppc, b["points_per_channel"][()]), f"{k}: points per channel"
    assert np.array_equal(a["scales"][()], b["scales"][()]), f"{k}: steps"
    # Bounds: the same quantity computed by two code paths in float32 GEMMs with float64 sums.
    e0, e1 = a.attrs["output_rel_error_before_feedback"], a.attrs["output_rel_error_final"]
    assert abs(e0 - b.attrs["output_rel_error_final"]) <= 1e-5 * e0 + 1e-12, f"{k}: before {e0}"
    assert e1 <= e0 * (1 + 1e-9) + 1e-15, f"{k}: feedback raised the error {e0} -> {e1}"
    lowered += e1 < e0
    first = np.concatenate([[0], np.cumsum(ppc)[:-1]])
    one = ppc == 1
    differ = int((a["codes"][()][first][one] != g["codes"][()][one]).any(axis=1).sum())
    assert differ <= int(g.attrs["gptq_rows_kept_rtn"]), f"{k}: {differ} one-point rows differ"
    kept += int(a.attrs["gptq_feedback_rows_kept"])
print(f"feedback lowered the output error of {lowered} layers, none raised; {kept} rows kept "
      f"their codes; top-1 {fb['metrics'].attrs['top1']:.4f} vs {mp['metrics'].attrs['top1']:.4f}")
PY
    ); then pass "$name: $r"; else fail "$name: $r"; fi
  else fail "$name: $(cat "$d/log")"; fi
done
finish
