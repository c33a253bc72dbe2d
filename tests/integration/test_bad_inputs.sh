#!/usr/bin/env bash
# Every bad input gives one clear line, the right exit code (2 usage/config, 1 runtime/input),
# no crash, and no file at the output path.
source "$(dirname "$0")/lib.sh"
d="$ART/bad" && rm -rf "$d" && mkdir -p "$d"
model="$ART/models/tiny_resnet20.pt"
out="$d/out.h5"
q=("$MPQ" -q quantize --set data.eval_limit=100)

expect_error 1 "/nonexistent/m.pt: cannot open model" "$out" -- "${q[@]}" --model /nonexistent/m.pt -o "$out"
echo "not a model" >"$d/garbage.pt"
expect_error 1 "$d/garbage.pt: not a TorchScript archive" "$out" -- "${q[@]}" --model "$d/garbage.pt" -o "$out"
head -c 20000 "$model" >"$d/truncated.pt"
expect_error 1 "$d/truncated.pt: " "$out" -- "${q[@]}" --model "$d/truncated.pt" -o "$out"
expect_error 1 "$d: is a directory" "$out" -- "${q[@]}" --model "$d" -o "$out"

# Dataset directory with a missing file, and with a truncated file.
mkdir -p "$d/fm"
cp /usr/share/datasets/fashion-mnist/*.gz "$d/fm/"
rm "$d/fm/t10k-labels-idx1-ubyte.gz"
expect_error 1 "$d/fm/t10k-labels-idx1-ubyte.gz: missing" "$out" -- "${q[@]}" --model "$model" --set data.root="$d/fm" -o "$out"
cp /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz "$d/fm/"
head -c 1000000 /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$d/fm/t10k-images-idx3-ubyte.gz"
expect_error 1 "$d/fm/t10k-images-idx3-ubyte.gz: (corrupt or truncated|truncated)" "$out" -- "${q[@]}" --model "$model" --set data.root="$d/fm" -o "$out"

# Out-of-range bits, unknown keys, wrong JSON types, malformed JSON, unknown values.
expect_error 2 "/weights/bits: must be an integer in \[2, 8\], got integer 1" "$out" -- "${q[@]}" --model "$model" --bits 1 -o "$out"
expect_error 2 "/weights/bits: must be an integer in \[2, 8\], got integer 9" "$out" -- "${q[@]}" --model "$model" --bits 9 -o "$out"
echo '{"weights": {"bits": 4, "colour": "blue"}}' >"$d/unknown.json"
expect_error 2 "$d/unknown.json: /weights/colour: unknown key" "$out" -- "${q[@]}" --config "$d/unknown.json" -o "$out"
echo '{"weights": {"bits": "four"}}' >"$d/type.json"
expect_error 2 "$d/type.json: /weights/bits: must be an integer in \[2, 8\], got string \"four\"" "$out" -- "${q[@]}" --config "$d/type.json" -o "$out"
echo '{"calibration": {"size": -5}}' >"$d/neg.json"
expect_error 2 "$d/neg.json: /calibration/size: must be an integer in \[1, " "$out" -- "${q[@]}" --config "$d/neg.json" -o "$out"
printf '{"weights": {"bits": 4,}}' >"$d/syntax.json"
expect_error 2 "$d/syntax.json: not valid JSON: .*line 1" "$out" -- "${q[@]}" --config "$d/syntax.json" -o "$out"
echo '[1, 2]' >"$d/array.json"
expect_error 2 "$d/array.json: must contain a JSON object" "$out" -- "${q[@]}" --config "$d/array.json" -o "$out"
expect_error 1 "/nonexistent/c.json: cannot open" "$out" -- "${q[@]}" --config /nonexistent/c.json -o "$out"
expect_error 2 "/weights/granularity: must be one of" "$out" -- "${q[@]}" --model "$model" --granularity per_tensor -o "$out"
expect_error 2 "/weights/method: must be one of" "$out" -- "${q[@]}" --model "$model" --method magic -o "$out"
expect_error 2 "model 'default:vgg': unknown default model" "$out" -- "${q[@]}" --model default:vgg -o "$out"

# Issue-4 keys: method names, OCS expand ratio, activation bits, impossible exports.
expect_error 2 "/weights/method: must be one of \"rtn\", \"mse\", \"aciq\"" "$out" -- "${q[@]}" --model "$model" --method gptq -o "$out"
expect_error 2 "/weights/ocs/expand_ratio: must be a number in \[0, 1\], got number 1.5" "$out" -- "${q[@]}" --model "$model" --method ocs --set weights.ocs.expand_ratio=1.5 -o "$out"
expect_error 2 "/weights/ocs/expand_ratio: must be a number in \[0, 1\], got number -0.1" "$out" -- "${q[@]}" --model "$model" --method ocs --set weights.ocs.expand_ratio=-0.1 -o "$out"
for ab in 1 9 16 33; do
  expect_error 2 "/activations/bits: must be in \[2, 8\], or 32 for full precision, got $ab" "$out" -- "${q[@]}" --model "$model" --set activations.bits=$ab -o "$out"
done
expect_error 2 "/activations/range: must be one of" "$out" -- "${q[@]}" --model "$model" --set activations.bits=8 --set activations.range=minmax -o "$out"
expect_error 2 "/weights/aciq/prior: must be one of \"laplace\", \"gaussian\"" "$out" -- "${q[@]}" --model "$model" --method aciq --set weights.aciq.prior=cauchy -o "$out"
expect_error 2 "/export: bit_alloc .* has no common-operand form" "$out" -- "${q[@]}" --model "$model" --method bit_alloc -o "$out" --export "$d/x.pt"
expect_error 2 "/weights/bit_alloc/average_bits: must be 0" "$out" -- "${q[@]}" --model "$model" --method bit_alloc --set weights.bit_alloc.average_bits=1 -o "$out"

# Output path in a missing directory: a config error before any work.
expect_error 2 "/output: directory $d/missing of $d/missing/out.h5 does not exist" "$d/missing/out.h5" -- "${q[@]}" --model "$model" -o "$d/missing/out.h5"

# Command-line mistakes are usage errors.
expect_error 2 "bogus" "-" -- "$MPQ" quantize --bogus
expect_error 2 "--bits: Value x not in range|Could not convert|x" "-" -- "$MPQ" quantize --bits x
expect_error 2 "--input-shape 3,x: expected C,H,W" "-" -- "$MPQ" inspect "$model" --input-shape 3,x
expect_error 1 "/nonexistent.h5: cannot open model|/nonexistent.h5" "-" -- "$MPQ" inspect /nonexistent.h5
expect_error 1 "$d/garbage.pt: not a TorchScript archive" "-" -- "$MPQ" inspect "$d/garbage.pt"
# A trial file cut short is reported, not read.
"$MPQ" -q quantize --model "$model" --set data.eval_limit=100 -o "$d/good.h5" >/dev/null 2>&1
head -c 3000 "$d/good.h5" >"$d/cut.h5"
expect_error 1 "$d/cut.h5: not a readable HDF5 file" "-" -- "$MPQ" inspect "$d/cut.h5"
# Training: bad arch and missing output directory.
expect_error 2 "/arch: must be one of" "-" -- "$MPQ" -q train --arch vgg16 --output "$d/x.pt"
expect_error 2 "output directory $d/nodir does not exist" "$d/nodir/x.pt" -- "$MPQ" -q train --arch resnet20 --output "$d/nodir/x.pt"
finish
