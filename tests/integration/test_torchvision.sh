#!/usr/bin/env bash
# Any TorchScript model, not only ours: torchvision models exported from Python (traced and
# scripted) are prepared (every conv/linear found, BN folded without changing outputs, every
# layer observed by the probe) and quantized weights can be swapped in.
source "$(dirname "$0")/lib.sh"
d="$ART/torchvision" && rm -rf "$d" && mkdir -p "$d"
"$PYTHON" "$SRC/tests/integration/export_torchvision.py" "$d" >/dev/null || { fail "export"; finish; }
check_model() {  # file expected_layers
  local file=$1 want=$2 txt="$d/inspect.txt"
  if ! "$MPQ" -q inspect "$d/$file" --input-shape 3,64,64 --check-fold >"$txt" 2>&1; then
    fail "$file: inspect failed: $(head -c 300 "$txt")"; return
  fi
  grep -q "^$want quantizable layers" "$txt" && pass "$file: $want layers" || fail "$file: expected $want layers: $(tail -3 "$txt")"
  grep -q "BatchNorm layers: [1-9][0-9]* before folding, 0 after" "$txt" && pass "$file: all BN folded" || fail "$file: BN not folded: $(grep BatchNorm "$txt")"
  grep -q "not executed" "$txt" && fail "$file: a layer was not observed" || pass "$file: every layer observed"
  local rel; rel=$(sed -n 's/.*(relative \([^)]*\)).*/\1/p' "$txt")
  "$PYTHON" -c "import sys; sys.exit(not (float('$rel') < 1e-5))" && pass "$file: folding changes outputs by $rel" || fail "$file: folding error $rel"
}
check_model resnet18_traced.pt 21
check_model resnet18_scripted.pt 21
check_model mobilenet_v2_traced.pt 53
grep -q "depthwise" <("$MPQ" -q inspect "$d/mobilenet_v2_traced.pt" --input-shape 3,64,64) && pass "depthwise convs recognized" || fail "no depthwise conv found"
finish
