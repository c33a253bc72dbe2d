#!/usr/bin/env bash
# The image pipeline is torchvision's, bit for bit: real photos (Debian's darknet JPEGs) in every
# JPEG/PNG flavour and at sizes that hit the rounding cases go through `mpq data export` and
# through torchvision 0.14's Resize -> CenterCrop -> ToTensor -> Normalize on PIL; the float32
# tensors must be identical. Then accuracy through the image path: the Fashion-MNIST test split
# as PNG files in an image_folder tree gives exactly the top-1 of the idx path.
source "$(dirname "$0")/lib.sh"
d="$ART/parity" && rm -rf "$d" && mkdir -p "$d"
"$PYTHON" "$SRC/tests/integration/make_images.py" variants "$d/img" || { fail "generating images"; finish; }
IM=0.485,0.456,0.406 IS=0.229,0.224,0.225
check() {  # name resize crop interp color mean std -- extra mpq --set args
  local name=$1 resize=$2 crop=$3 interp=$4 color=$5 mean=$6 std=$7; shift 8
  if ! "$MPQ" -q data export --set data.name=image_folder --set data.root="$d/img" "$@" \
      -o "$d/$name.h5" >"$d/$name.log" 2>&1; then
    fail "$name: export: $(cat "$d/$name.log")"; return
  fi
  "$PYTHON" "$SRC/tests/integration/torchvision_reference.py" compare "$d/$name.h5" "$d/img" \
    "$resize" "$crop" "$interp" "$color" "$mean" "$std" >"$d/$name.cmp" 2>&1 \
    && pass "$name: $(tail -1 "$d/$name.cmp")" || fail "$name: $(cat "$d/$name.cmp")"
}
check torchvision-v1 256 224 bilinear rgb $IM $IS --
check torchvision-v2 232 224 bilinear rgb $IM $IS -- --set data.preprocess.preset=torchvision-v2
check inception 342 299 bilinear rgb $IM $IS -- --set data.preprocess.preset=inception
check bicubic 256 224 bicubic rgb $IM $IS -- --set data.preprocess.interpolation=bicubic
check gray 256 224 bilinear gray 0.45 0.27 -- --set data.preprocess.color=gray \
  --set data.preprocess.mean=[0.45] --set data.preprocess.std=[0.27]
check crop-pads-small-images 0 224 bilinear rgb $IM $IS -- --set data.preprocess.resize=0
check odd-sizes 37 31 bilinear rgb $IM $IS -- --set data.preprocess.resize=37 --set data.preprocess.crop=31
check upscale-bicubic 600 512 bicubic rgb $IM $IS -- --set data.preprocess.resize=600 \
  --set data.preprocess.crop=512 --set data.preprocess.interpolation=bicubic
# Every flavour was in the tree (a silent drop would make the checks above vacuous).
n=$("$PYTHON" -c "import h5py; print(len(h5py.File('$d/torchvision-v1.h5')['paths']))")
[ "$n" -ge 35 ] && pass "$n images compared per configuration" || fail "only $n images exported"

# Accuracy through the image path equals the idx path.
"$PYTHON" "$SRC/tests/integration/make_images.py" fmnist_png "$d/fm" || fail "writing Fashion-MNIST PNGs"
model="$ART/models/tiny_resnet20.pt"
idx=$("$MPQ" -q eval --model "$model" | field top1)
png=$("$MPQ" -q eval --model "$model" --dataset image_folder --data-root "$d/fm" \
      --set data.preprocess.preset=fashion-mnist | field top1)
imgs=$("$MPQ" -q eval --model "$model" --dataset image_folder --data-root "$d/fm" \
      --set data.preprocess.preset=fashion-mnist | field images)
[ "$imgs" = 10000 ] && pass "10000 PNGs evaluated" || fail "PNG tree evaluated $imgs images"
[ -n "$idx" ] && [ "$idx" = "$png" ] && pass "top-1 through PNG files $png == idx files $idx" \
  || fail "top-1 through PNG files '$png' != idx files '$idx'"
finish
