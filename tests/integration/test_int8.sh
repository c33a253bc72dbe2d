#!/usr/bin/env bash
# The int8 deployment (--export-int8): the model runs on LibTorch's quantized kernels, loads in
# PyTorch, classifies like the fake-quant simulation of the same trial (full Fashion-MNIST test
# split), and its quantized weights are exactly the trial's codes and steps. Also the float
# expanded model's recorded integer form, and clear errors for impossible exports.
source "$(dirname "$0")/lib.sh"
out="$ART/int8" && rm -rf "$out" && mkdir -p "$out"
# The fixture's models (2 epochs on 20000 images; ~85% top-1).
for arch in resnet20 mobilenetv2; do cp "$ART/models/tiny_$arch.pt" "$out/$arch.pt"; done
for run in "resnet20 multipoint per_channel" "mobilenetv2 multipoint per_layer" "resnet20 rtn per_channel" "mobilenetv2 mse per_channel"; do
  set -- $run
  arch=$1 method=$2 gran=$3 name="$1_$2_$3"
  if ! "$MPQ" -q quantize --model "$out/$arch.pt" --method "$method" --bits 4 --granularity "$gran" \
      --set weights.multipoint.budget=0.1 --set activations.bits=8 --set calibration.size=128 \
      -o "$out/$name.h5" --export "$out/$name.pt" --export-int8 "$out/${name}_int8.pt" >"$out/log" 2>&1; then
    fail "quantize $name: $(cat "$out/log")"; continue
  fi
  # The int8 model in PyTorch against the simulated trial, on all 10000 test images, with the
  # bounds derived in int8_fidelity.py (logit deviation from the output requantization; top-1
  # within the images that deviation can flip).
  if r=$("$PYTHON" "$SRC/tests/integration/int8_fidelity.py" "$out/$name.pt" "$out/${name}_int8.pt" "$out/$name.h5" 2>&1); then
    pass "$name int8 model in PyTorch: $r"
  else fail "$name int8 vs simulation: $r"; fi
  "$PYTHON" - "$out/${name}_int8.pt" "$out/$name.pt" "$out/$name.h5" <<'PY' && pass "$name int8 weights are the trial's codes and steps" || fail "$name int8 weights"
import sys, h5py, numpy as np, torch
torch.backends.quantized.engine = "onednn"
m8, mf, h5 = torch.jit.load(sys.argv[1]), torch.jit.load(sys.argv[2]), h5py.File(sys.argv[3], "r")
graph = m8.graph
ops = [n for n in graph.nodes() if n.kind() in ("quantized::conv2d", "quantized::conv2d_relu",
                                                  "quantized::linear", "quantized::linear_relu")]
assert ops, "no quantized operator in the graph"
assert not any(n.kind() == "aten::conv2d" for n in graph.nodes()), "a float conv is left"
qi = 0
for name in sorted(h5["layers"], key=int):
    L, i = h5["layers"][name], int(name)
    assert L.attrs["quantized"], i
    codes = getattr(m8, f"mpq_layer{i}_codes").numpy()
    steps = getattr(m8, f"mpq_layer{i}_steps").numpy()
    channel = getattr(m8, f"mpq_layer{i}_channel").numpy()
    # The float expanded model records the same integer form.
    assert np.array_equal(codes, getattr(mf, f"mpq_layer{i}_codes").numpy())
    # ... which is the trial file's (channel-major there, first points first here).
    order = np.lexsort((np.arange(len(channel)), channel))
    c_out = int(L.attrs["c_out"])
    assert np.array_equal(L["codes"][()].reshape(len(channel), -1), codes[order]), i
    assert np.array_equal(L["scales"][()], steps[order]), i
    # The packed weights of the layer's quantized operators are exactly these codes and steps.
    packed = []
    for n in ops[qi:qi + (2 if len(channel) > c_out else 1)]:
        p = n.inputsAt(1).toIValue()
        unpack = torch.ops.quantized.conv2d_unpack if "conv" in n.kind() else torch.ops.quantized.linear_unpack
        packed.append(unpack(p)[0])
    qi += len(packed)
    w = torch.cat([q.int_repr().reshape(q.shape[0], -1) for q in packed]).numpy()
    s = torch.cat([q.q_per_channel_scales() for q in packed]).numpy()
    assert np.array_equal(w, codes), i
    assert np.allclose(s, steps, rtol=1e-7, atol=0), i
assert qi == len(ops), (qi, len(ops))
PY
  "$PYTHON" -c "import h5py; f = h5py.File('$out/$name.h5'); m = f['metrics'].attrs; assert m['export_int8_layers'] == m['quantized_layers'] and 'export_int8_max_abs_diff' in m and f['manifest'].attrs['export_int8_engine'] in ('onednn', 'qnnpack'), dict(m)" \
    && pass "$name int8 export recorded in the trial file" || fail "$name int8 metrics"
done

# Impossible exports are configuration errors naming the field; nothing is written.
model="$ART/models/tiny_resnet20.pt"
expect_error 2 "/export_int8: int8 kernels take 8-bit inputs; set activations.bits" "$out/no.pt" -- \
  "$MPQ" quantize --model "$model" --bits 4 --export-int8 "$out/no.pt"
expect_error 2 "/export_int8: bit_alloc has no integer-kernel export" "$out/no.pt" -- \
  "$MPQ" quantize --model "$model" --method bit_alloc --bits 4 --set activations.bits=8 --export-int8 "$out/no.pt"
expect_error 2 "/export_int8: ocs has no integer-kernel export" "$out/no.pt" -- \
  "$MPQ" quantize --model "$model" --method ocs --bits 4 --set activations.bits=8 --export-int8 "$out/no.pt"
expect_error 2 "/export_int8: directory .* does not exist" - -- \
  "$MPQ" quantize --model "$model" --bits 4 --set activations.bits=8 --export-int8 "$out/missing/x.pt"
finish
