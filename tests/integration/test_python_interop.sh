#!/usr/bin/env bash
# Models mpq trains load in PyTorch (torch.jit.load) with torchvision-style parameter names and
# give the same accuracy as `mpq eval`; training is deterministic for a fixed seed and threads.
source "$(dirname "$0")/lib.sh"
d="$ART/interop" && rm -rf "$d" && mkdir -p "$d"
for arch in resnet20 mobilenetv2; do
  model="$ART/models/tiny_$arch.pt"
  cpp=$("$MPQ" -q eval --model "$model" --limit 2000 --threads 1 | field top1)
  # mpq evaluates the BN-folded graph, PyTorch the original (outputs differ by ~1e-6 relative,
  # docs/models.md): only images whose margin is within 1e-3 of the largest logit may flip.
  read -r py bound < <("$PYTHON" "$SRC/tests/integration/python_eval.py" "$model" 2000 --flip-bound 1e-3)
  "$PYTHON" -c "import sys; sys.exit(abs($cpp - $py) > $bound + 1e-9)" \
    && pass "$arch: C++ top-1 $cpp == PyTorch top-1 $py (bound $bound)" || fail "$arch: C++ $cpp vs PyTorch $py (bound $bound)"
done
# Determinism: the same seed and thread count give identical parameters and buffers.
for i in 1 2; do
  "$MPQ" -q train --arch mobilenetv2 --width 0.25 --epochs 1 --train-limit 1000 --test-limit 200 \
    --threads 2 --seed 5 --output "$d/det$i.pt" >/dev/null || fail "train det$i"
done
"$MPQ" -q train --arch mobilenetv2 --width 0.25 --epochs 1 --train-limit 1000 --test-limit 200 \
  --threads 2 --seed 6 --output "$d/det3.pt" >/dev/null || fail "train det3"
"$PYTHON" - "$d/det1.pt" "$d/det2.pt" "$d/det3.pt" <<'PY' && pass "training is deterministic" || fail "training determinism"
import sys, torch
a, b, c = (torch.jit.load(p) for p in sys.argv[1:])
sa, sb, sc = (dict(m.state_dict()) for m in (a, b, c))
assert sa.keys() == sb.keys() and len(sa) > 0
assert all(torch.equal(sa[k], sb[k]) for k in sa), "same seed differs"
assert any(not torch.equal(sa[k], sc[k]) for k in sa), "different seed is identical"
assert "stem_conv.weight" in sa and "block1.dw_conv.weight" in sa, list(sa)[:5]
PY
finish
