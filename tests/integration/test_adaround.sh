#!/usr/bin/env bash
# AdaRound (quant/adaround.h): against an independent PyTorch implementation with the same
# initialization and schedule on a small layer (adaround_reference.py, bounds stated there), and
# on both fixture models: every layer's output error at most round-to-nearest's on the same grid,
# results served from the per-layer cache on a second run (identical codes), the same codes with
# another thread count and no cache (determinism), and the exported weights giving mpq's top-1 in
# PyTorch (python_eval.py, within its float32 reordering bound). The data objective (asymmetric
# reconstruction) the same way: its PyTorch reference (adaround_reference.py --data), every
# layer at most round-to-nearest's data objective, the activation found after each layer, the
# cache, multipoint on its first points, and the export in PyTorch.
source "$(dirname "$0")/lib.sh"
d="$ART/adaround" && rm -rf "$d" && mkdir -p "$d"

if r=$("$PYTHON" "$SRC/tests/integration/adaround_reference.py" "$LAYER_TOOL" "$d/ref" 2>&1); then pass "PyTorch reference: $r"
else fail "PyTorch reference: $r"; fi

for arch in resnet20 mobilenetv2; do
  m="$ART/models/tiny_$arch.pt"
  q=(-q quantize --model "$m" --bits 3 --set weights.adaround.iterations=300
     --set calibration.size=64 --set data.eval_limit=1000)
  "$MPQ" "${q[@]}" --method adaround --threads 2 --set calibration.cache_dir="$d/cache_$arch" -o "$d/${arch}_1.h5" \
    --export "$d/$arch.pt" >"$d/log" 2>&1 || { fail "$arch: $(cat "$d/log")"; continue; }
  "$MPQ" "${q[@]}" --method adaround --threads 2 --set calibration.cache_dir="$d/cache_$arch" -o "$d/${arch}_2.h5" \
    >"$d/log" 2>&1 || { fail "$arch (cached): $(cat "$d/log")"; continue; }
  "$MPQ" "${q[@]}" --method adaround --threads 1 --set calibration.cache_dir= -o "$d/${arch}_3.h5" \
    >"$d/log" 2>&1 || { fail "$arch (1 thread): $(cat "$d/log")"; continue; }
  if r=$("$PYTHON" - "$d/${arch}_1.h5" "$d/${arch}_2.h5" "$d/${arch}_3.h5" <<'PY'
import sys, h5py, numpy as np
a, b, c = (h5py.File(p) for p in sys.argv[1:])
n = worse = hits = 0
for k in a["layers"]:
    x = a["layers"][k]
    if not x.attrs["quantized"]:
        continue
    n += 1
    if x.attrs["output_rel_error_final"] > x.attrs["output_rel_error_rtn"] * (1 + 1e-9):
        worse += 1
    assert not x.attrs["adaround_cache_hit"], k
    # recorded (>= 0: a small layer takes ~0.1 ms here, below a coarse clock's tick elsewhere)
    assert x.attrs["adaround_seconds"] >= 0, k
    hits += bool(b["layers"][k].attrs["adaround_cache_hit"])
    for other, what in ((b, "cached"), (c, "1 thread, no cache")):
        assert np.array_equal(x["codes"][()], other["layers"][k]["codes"][()]), f"{k}: {what} differs"
assert worse == 0, f"{worse} layers above round-to-nearest"
assert hits == n, f"only {hits} of {n} layers from the cache"
ma, mr = a["metrics"].attrs, c["metrics"].attrs
assert ma["top1"] == mr["top1"] and ma["kl"] == mr["kl"]
print(f"{n} layers at most RTN's output error; all {n} cached on rerun; identical with 1 thread "
      f"and no cache; top-1 {ma['top1']:.4f}")
PY
  ); then pass "$arch: $r"; else fail "$arch: $r"; fi
  # Multipoint on AdaRound: first points are the AdaRound trial's, served from the same cache.
  "$MPQ" "${q[@]}" --method multipoint --set weights.multipoint.first_point=adaround \
    --set calibration.cache_dir="$d/cache_$arch" -o "$d/${arch}_mp.h5" >"$d/log" 2>&1 \
    || fail "$arch multipoint on AdaRound: $(cat "$d/log")"
  if r=$("$PYTHON" - "$d/${arch}_mp.h5" "$d/${arch}_1.h5" <<'PY'
import sys, h5py, numpy as np
mp, ar = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
extra = 0
for k in ar["layers"]:
    a, b = mp["layers"][k], ar["layers"][k]
    if not b.attrs["quantized"]:
        continue
    assert a.attrs["first_point"] == "adaround"
    ppc = a["points_per_channel"][()]
    first = np.concatenate([[0], np.cumsum(ppc)[:-1]])
    assert np.array_equal(a["codes"][()][first], b["codes"][()]), f"{k}: first-point codes"
    assert a.attrs["output_rel_error_final"] <= b.attrs["output_rel_error_final"] * (1 + 1e-6) + 1e-12, k
    extra += int(ppc.sum() - len(ppc))
print(f"first points identical to AdaRound's on every layer; {extra} extra points")
PY
  ); then pass "$arch multipoint on AdaRound: $r"; else fail "$arch multipoint on AdaRound: $r"; fi
  sim=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$d/${arch}_1.h5')['metrics'].attrs['top1'])")
  read -r py bound < <("$PYTHON" "$SRC/tests/integration/python_eval.py" "$d/$arch.pt" 1000 --flip-bound 1e-3)
  "$PYTHON" -c "import sys; sys.exit(abs($sim - $py) > $bound + 1e-9)" \
    && pass "$arch in PyTorch: top-1 $py, mpq $sim (bound $bound)" \
    || fail "$arch in PyTorch: top-1 $py vs mpq $sim (bound $bound)"
done

# The data objective (the paper's asymmetric reconstruction: quantized earlier layers, the
# activation after the layer): the PyTorch reference, then both fixture models end to end.
if r=$("$PYTHON" "$SRC/tests/integration/adaround_reference.py" --data "$LAYER_TOOL" "$d/ref" 2>&1); then
  pass "PyTorch reference, data objective: $r"
else fail "PyTorch reference, data objective: $r"; fi
for arch in resnet20 mobilenetv2; do
  m="$ART/models/tiny_$arch.pt"
  q=(-q quantize --model "$m" --bits 3 --threads 2 --set weights.adaround.iterations=200
     --set weights.adaround.objective=data --set calibration.size=64 --set data.eval_limit=1000
     --set calibration.cache_dir="$d/cache_data_$arch")
  "$MPQ" "${q[@]}" --method adaround -o "$d/${arch}_d1.h5" --export "$d/${arch}_d.pt" >"$d/log" 2>&1 \
    || { fail "$arch data objective: $(cat "$d/log")"; continue; }
  "$MPQ" "${q[@]}" --method adaround -o "$d/${arch}_d2.h5" >"$d/log" 2>&1 \
    || { fail "$arch data objective (cached): $(cat "$d/log")"; continue; }
  "$MPQ" "${q[@]}" --method multipoint --set weights.multipoint.first_point=adaround \
    -o "$d/${arch}_dmp.h5" >"$d/log" 2>&1 || { fail "$arch multipoint on data AdaRound: $(cat "$d/log")"; continue; }
  if r=$("$PYTHON" - "$arch" "$d/${arch}_d1.h5" "$d/${arch}_d2.h5" "$d/${arch}_dmp.h5" <<'PY'
import sys, h5py, numpy as np
arch = sys.argv[1]
a, b, mp = (h5py.File(p) for p in sys.argv[2:])
n = hits = 0
acts = set()
for k in a["layers"]:
    x = a["layers"][k]
    if not x.attrs["quantized"]:
        continue
    n += 1
    at = x.attrs
    assert at["adaround_objective"] == "data" and at["adaround_inputs"] == 64, k
    # the guard: each row at most round-to-nearest's objective on the same inputs
    assert at["adaround_data_error_final"] <= at["adaround_data_error_rtn"] * (1 + 1e-9), k
    acts.add(at["adaround_activation"])
    assert not at["adaround_cache_hit"], k
    hits += bool(b["layers"][k].attrs["adaround_cache_hit"])
    assert np.array_equal(x["codes"][()], b["layers"][k]["codes"][()]), f"{k}: cached codes differ"
    y = mp["layers"][k]
    ppc = y["points_per_channel"][()]
    first = np.concatenate([[0], np.cumsum(ppc)[:-1]])
    assert np.array_equal(y["codes"][()][first], x["codes"][()]), f"{k}: multipoint's first points"
assert hits == n, f"only {hits} of {n} layers from the cache"
expect = {"resnet20": {"relu", "none"}, "mobilenetv2": {"clip(0, 6)", "none"}}[arch]
assert acts == expect, f"activations {acts}, expected {expect}"
print(f"{n} layers at most RTN's data objective; activations {sorted(acts)}; all cached on rerun; "
      f"multipoint's first points are AdaRound's; top-1 {a['metrics'].attrs['top1']:.4f}")
PY
  ); then pass "$arch data objective: $r"; else fail "$arch data objective: $r"; fi
  sim=$("$PYTHON" -c "import h5py; print('%.4f' % h5py.File('$d/${arch}_d1.h5')['metrics'].attrs['top1'])")
  read -r py bound < <("$PYTHON" "$SRC/tests/integration/python_eval.py" "$d/${arch}_d.pt" 1000 --flip-bound 1e-3)
  "$PYTHON" -c "import sys; sys.exit(abs($sim - $py) > $bound + 1e-9)" \
    && pass "$arch data objective in PyTorch: top-1 $py, mpq $sim (bound $bound)" \
    || fail "$arch data objective in PyTorch: top-1 $py vs mpq $sim (bound $bound)"
done

# Two trials needing the same AdaRound layers at the same time (two ranks or workers): each layer
# is optimized once, by whichever process takes its lock first; the other reads it.
m="$ART/models/tiny_resnet20.pt"
q=(-q quantize --model "$m" --bits 2 --method adaround --threads 1 --set weights.adaround.iterations=300
   --set calibration.size=64 --set data.eval_limit=200 --set calibration.cache_dir="$d/cache_race")
"$MPQ" "${q[@]}" -o "$d/race_a.h5" >"$d/race_a.log" 2>&1 & pa=$!
"$MPQ" "${q[@]}" -o "$d/race_b.h5" >"$d/race_b.log" 2>&1 & pb=$!
wait $pa || fail "concurrent AdaRound trial a: $(cat "$d/race_a.log")"
wait $pb || fail "concurrent AdaRound trial b: $(cat "$d/race_b.log")"
if r=$("$PYTHON" - "$d/race_a.h5" "$d/race_b.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
n = 0
for k in a["layers"]:
    x, y = a["layers"][k], b["layers"][k]
    if not x.attrs["quantized"]:
        continue
    n += 1
    assert np.array_equal(x["codes"][()], y["codes"][()]), k
    hits = bool(x.attrs["adaround_cache_hit"]) + bool(y.attrs["adaround_cache_hit"])
    assert hits == 1, f"layer {k}: optimized {2 - hits} times"
print(f"{n} layers, each optimized by one of the two processes and read by the other")
PY
  ); then pass "concurrent AdaRound trials: $r"; else fail "concurrent AdaRound trials: $r"; fi
finish
