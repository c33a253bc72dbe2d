#!/usr/bin/env bash
# Attention layers are quantized, and what is not is said (issue 34 item 1). A ViT-like model on
# nn.MultiheadAttention, traced (the fused aten::_native_multi_head_attention) and scripted (that
# operator as the fast path beside the Python fallback): its projections become q/k/v/out_proj
# linear layers with PyTorch's logits, a calibration method (GPTQ) runs on the scripted graph
# (the fallback's layers, never run, stay FP), every trial records 100% coverage, and the
# expanded export reproduces the trial in PyTorch. A model with a weight mpq cannot quantize (a
# constant matmul operand): inspect names it, a trial warns once and records the coverage.
source "$(dirname "$0")/lib.sh"
d="$ART/attention" && rm -rf "$d" && mkdir -p "$d/img"
"$PYTHON" "$SRC/tests/integration/attention_models.py" export "$d" >/dev/null || { fail "export"; finish; }
"$PYTHON" "$SRC/tests/integration/make_images.py" jpegs "$d/img" 12 --size 40x36 >/dev/null || { fail "images"; finish; }
data=(--dataset image_folder --data-root "$d/img" --set data.preprocess.resize=36 --set data.preprocess.crop=32)
"$MPQ" -q data export --set data.name=image_folder --set "data.root=$d/img" --set data.preprocess.resize=36 \
  --set data.preprocess.crop=32 -o "$d/inputs.h5" >/dev/null 2>&1 || { fail "data export"; finish; }
metric() { "$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['metrics'].attrs[sys.argv[2]])" "$@"; }
# Logit bound: mpq's decomposition computes what the fused operator computes (q scaled before the
# product, one softmax) in another float32 order over two blocks: 1e-4 of the largest |logit|
# (measured ~1e-7).
compare() { "$PYTHON" "$SRC/tests/integration/compare_logits.py" "$@"; }

for m in vit_traced vit_scripted; do
  txt="$d/$m.inspect.txt"
  "$MPQ" -q inspect "$d/$m.pt" --input-shape 3,32,32 >"$txt" 2>&1 || { fail "$m: inspect: $(tail -2 "$txt")"; continue; }
  n=$(grep -cE '\| blocks\.[01]\.attn\.(q|k|v|out)_proj +\| linear' "$txt")
  # scripted: out_proj also appears in the fallback branch (not executed)
  [ "$n" -ge 8 ] && pass "$m: the 2 attention blocks' q/k/v/out projections are linear layers ($n rows)" \
    || fail "$m: attention projections not found as layers ($n rows): $(tail -5 "$txt")"
  grep -q "^coverage: 100.0%" "$txt" && pass "$m: $(grep '^coverage' "$txt")" || fail "$m: coverage: $(grep -E 'coverage|weights mpq' "$txt")"
  grep -q "aten::_native_multi_head_attention" "$txt" && fail "$m: a fused attention operator is left"
  "$PYTHON" "$SRC/tests/integration/attention_models.py" logits "$d/$m.pt" "$d/inputs.h5" "$d/$m.ref.npy"
  if "$MPQ" -q eval --model "$d/$m.pt" "${data[@]}" --save-logits "$d/$m.fp.h5" >/dev/null 2>"$d/$m.err"; then
    err=$(compare "$d/$m.fp.h5" "$d/$m.ref.npy" 1e-4) && pass "$m: mpq's FP logits are PyTorch's ($err of the largest)" \
      || fail "$m: FP logits differ from PyTorch's ($err)"
  else
    fail "$m: eval: $(tail -1 "$d/$m.err")"
  fi
  for method in rtn gptq; do
    t="$d/$m.$method.h5"
    if "$MPQ" -q quantize --model "$d/$m.pt" "${data[@]}" --method $method --bits 4 --set calibration.size=8 \
         -o "$t" --export "$d/$m.$method.pt" --save-logits "$d/$m.$method.logits.h5" >/dev/null 2>"$d/$m.$method.err"; then
      cov=$(metric "$t" weight_coverage_pct)
      "$PYTHON" -c "import sys; sys.exit(abs($cov - 100) > 1e-9)" && pass "$m $method: weight_coverage_pct $cov" \
        || fail "$m $method: weight_coverage_pct $cov"
      grep -q "warning" "$d/$m.$method.err" && fail "$m $method: unexpected warning: $(grep warning "$d/$m.$method.err")"
      # The quantized model (attention included) runs in PyTorch as mpq simulated it.
      "$PYTHON" "$SRC/tests/integration/attention_models.py" logits "$d/$m.$method.pt" "$d/inputs.h5" "$d/$m.$method.ref.npy"
      err=$(compare "$d/$m.$method.logits.h5" "$d/$m.$method.ref.npy" 1e-4) \
        && pass "$m $method: the exported model gives the trial's logits in PyTorch ($err)" \
        || fail "$m $method: exported model differs from the trial ($err)"
    else
      fail "$m $method: $(tail -1 "$d/$m.$method.err")"
    fi
  done
done
# The attention projections really are quantized: q_proj's weight in the W4 trial is not FP.
"$PYTHON" - "$d/vit_traced.rtn.h5" <<'PY' && pass "vit_traced rtn: q/k/v/out_proj quantized at 4 bits" || fail "vit_traced rtn: attention layers not quantized"
import h5py, sys
f = h5py.File(sys.argv[1], "r")
names = {g.attrs["name"]: g.attrs for g in f["layers"].values()}
proj = [a for n, a in names.items() if n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "out_proj")]
sys.exit(not (len(proj) == 8 and all(a["quantized"] and a["bits"] == 4 for a in proj)))
PY
# Scripted: the fallback branch's layers stay FP in GPTQ (no statistics) and are counted.
nf=$(metric "$d/vit_scripted.gptq.h5" layers_not_executed_fp 2>/dev/null)
[ "$nf" = 10 ] && pass "vit_scripted gptq: the fallback branch's 10 layers never ran and stay FP" || fail "vit_scripted gptq: layers_not_executed_fp '$nf', expected 10"

# A weight mpq cannot quantize: named, warned once, counted.
m=matmul_traced
"$MPQ" -q inspect "$d/$m.pt" --input-shape 3,32,32 >"$d/$m.inspect.txt" 2>&1
grep -qE '^\| aten::matmul +\| mix +\| +1024 \|' "$d/$m.inspect.txt" && pass "$m: inspect names the FP matmul weight (mix, 1024)" \
  || fail "$m: inspect does not name the matmul weight: $(tail -6 "$d/$m.inspect.txt")"
want=$("$PYTHON" -c "import json; c=json.load(open('$d/counts.json')); print(100*c['matmul_layer_weights']/(c['matmul_layer_weights']+c['matmul_fp_weights']))")
if "$MPQ" -q quantize --model "$d/$m.pt" "${data[@]}" --method rtn --bits 4 -o "$d/$m.h5" >"$d/$m.out" 2>"$d/$m.err"; then
  nw=$(grep -c "warning: .*stay in full precision" "$d/$m.err")
  [ "$nw" = 1 ] && pass "$m: one warning: $(grep warning "$d/$m.err" | cut -c1-200)" || fail "$m: $nw warnings: $(cat "$d/$m.err")"
  cov=$(metric "$d/$m.h5" weight_coverage_pct) fpw=$(metric "$d/$m.h5" weights_unquantizable)
  "$PYTHON" -c "import sys; sys.exit(abs($cov - $want) > 1e-9 or $fpw != 1024)" \
    && pass "$m: weight_coverage_pct $cov (the parameters give $want), 1024 weights unquantizable" \
    || fail "$m: coverage $cov (want $want), unquantizable $fpw"
  grep -q "weights quantized 86.3%" "$d/$m.out" "$d/$m.err" && pass "$m: the trial summary gives the coverage" \
    || fail "$m: no coverage in the summary: $(cat "$d/$m.out")"
else
  fail "$m: quantize: $(tail -1 "$d/$m.err")"
fi
finish
