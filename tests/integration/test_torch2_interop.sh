#!/usr/bin/env bash
# PyTorch 2.x models in, mpq models out (issue 33), run in the build against PyPI's LibTorch 2.14
# (scripts/build.sh --torch pip; $MPQ) with Debian's 1.13 build beside it ($MPQ_113):
#   - archives PyTorch 2.14 writes (traced and scripted torchvision 0.29 classifiers, a scripted
#     detector) load, evaluate and quantize in mpq 2.x, with PyTorch 2.14's logits;
#   - in mpq 1.13 they either work the same or fail with one line naming the producer's version
#     and the fix (the test records which, for docs/toolchains.md);
#   - what both builds write (a trial's --export and --export-int8 archives) loads and runs in
#     PyTorch 2.14 with the outputs mpq simulated; in PyTorch 1.13 likewise or recorded as not.
# Prints the interop matrix ("matrix:" lines).
source "$(dirname "$0")/lib.sh"
: "${MPQ_113:?the mpq of the Debian (LibTorch 1.13) build}" "${PYTHON_113:=/usr/bin/python3}"
d="$ART/torch2_interop" && rm -rf "$d" && mkdir -p "$d/img"
"$PYTHON" -c "import torch, sys; sys.exit(not torch.__version__.startswith('2.'))" ||
  { fail "PYTHON=$PYTHON has no torch 2.x (build with scripts/build.sh --torch pip)"; finish; }
"$PYTHON" "$SRC/tests/integration/torch2_models.py" export "$d" >"$d/export.txt" || { fail "export with torch 2"; finish; }
pass "$(cat "$d/export.txt")"
"$PYTHON_113" "$SRC/tests/integration/make_images.py" jpegs "$d/img" 12 --size 80x72 >/dev/null || { fail "images"; finish; }
data=(--dataset image_folder --data-root "$d/img" --set data.preprocess.resize=72 --set data.preprocess.crop=64)
"$MPQ" -q data export --set data.name=image_folder --set "data.root=$d/img" --set data.preprocess.resize=72 \
  --set data.preprocess.crop=64 -o "$d/inputs.h5" >/dev/null 2>&1 || { fail "data export"; finish; }
matrix() { echo "matrix: $*"; }
# Both builds' logits against PyTorch 2.14's on the same input tensors. The graphs differ by BN
# folding and mpq's frozen graph (float32 reorderings over ~20 layers): bound 1e-4 of the largest
# |logit| (measured ~1e-6).
compare() { "$PYTHON" "$SRC/tests/integration/compare_logits.py" "$@"; }  # ours.h5 ref.npy bound
for m in resnet18_traced resnet18_scripted mobilenet_v3_small_traced; do
  "$PYTHON" "$SRC/tests/integration/torch2_models.py" logits "$d/$m.pt" "$d/inputs.h5" "$d/$m.ref.npy"
  for build in 2x 113; do
    bin=$MPQ; [ $build = 113 ] && bin=$MPQ_113
    if "$bin" -q eval --model "$d/$m.pt" "${data[@]}" --save-logits "$d/$m.$build.h5" >/dev/null 2>"$d/$m.$build.err"; then
      if err=$(compare "$d/$m.$build.h5" "$d/$m.ref.npy" 1e-4); then
        pass "mpq $build: $m (PyTorch 2.14) evaluates with PyTorch's logits ($err of the largest)"
        matrix "PyTorch 2.14 $m -> mpq $build: loads, logits within $err"
      else
        fail "mpq $build: $m logits differ from PyTorch 2.14's ($err)"
      fi
      # Weight-only multipoint (its expanded export equals the simulation) and an 8-bit-activation
      # RTN trial for the int8 export.
      "$bin" -q quantize --model "$d/$m.pt" "${data[@]}" --method multipoint --bits 4 --set calibration.size=8 \
        --export "$d/$m.$build.mp.pt" --save-logits "$d/$m.$build.mp.h5" -o "$d/$m.$build.mp.trial.h5" \
        >/dev/null 2>"$d/$m.$build.q.err" &&
      "$bin" -q quantize --model "$d/$m.pt" "${data[@]}" --method rtn --bits 8 --set calibration.size=8 \
        --set activations.bits=8 --export-int8 "$d/$m.$build.int8.pt" --save-logits "$d/$m.$build.int8.h5" \
        -o "$d/$m.$build.int8.trial.h5" >/dev/null 2>>"$d/$m.$build.q.err" \
        && pass "mpq $build: $m quantizes and exports" || fail "mpq $build: quantize $m: $(tail -1 "$d/$m.$build.q.err")"
    else
      lines=$(wc -l <"$d/$m.$build.err")
      if [ $build = 113 ] && [ "$lines" -eq 1 ] && grep -q "written by PyTorch 2" "$d/$m.$build.err" && grep -q -- "--torch pip" "$d/$m.$build.err"; then
        pass "mpq 1.13 refuses $m in one line naming the producer and the fix: $(cat "$d/$m.$build.err")"
        matrix "PyTorch 2.14 $m -> mpq 1.13: refused ($(cut -c1-120 "$d/$m.$build.err"))"
      else
        fail "mpq $build: $m: $(head -c 400 "$d/$m.$build.err")"
      fi
    fi
  done
done
# The detector: loads and evaluates (its outputs are detections; the VOC path is test_voc's).
for build in 2x 113; do
  bin=$MPQ; [ $build = 113 ] && bin=$MPQ_113
  if "$bin" -q inspect "$d/ssdlite_scripted.pt" --input-shape 3,320,320 >"$d/ssd.$build.txt" 2>&1 &&
     grep -q "quantizable layers" "$d/ssd.$build.txt"; then
    pass "mpq $build: scripted ssdlite (PyTorch 2.14): $(grep 'quantizable layers' "$d/ssd.$build.txt")"
    matrix "PyTorch 2.14 ssdlite_scripted -> mpq $build: loads ($(grep -o '^[0-9]* quantizable layers' "$d/ssd.$build.txt"))"
  elif [ $build = 113 ] && [ "$(wc -l <"$d/ssd.$build.txt")" -eq 1 ] && grep -q -- "--torch pip" "$d/ssd.$build.txt"; then
    pass "mpq 1.13 refuses the scripted detector in one line: $(cat "$d/ssd.$build.txt")"
    matrix "PyTorch 2.14 ssdlite_scripted -> mpq 1.13: refused ($(cut -c1-120 "$d/ssd.$build.txt"))"
  else
    fail "mpq $build: ssdlite: $(head -c 400 "$d/ssd.$build.txt")"
  fi
done
# mpq's outputs in PyTorch 2.14 and 1.13. The expanded archive of a weight-only trial gives the
# trial's outputs (bound 1e-4 of the largest |logit|, float32 reordering). The int8 archive runs
# on the quantized kernels of the PyTorch that loads it; its outputs in PyTorch 2.14 are compared
# with those in the LibTorch that wrote it and checked it (PyTorch 1.13 for mpq 1.13; for mpq 2x
# that is PyTorch 2.14 itself): oneDNN versions may round an int8 accumulator differently, moving
# an output by one step of its 8-bit grid; bound 5% of the largest |logit| and the same top-1 on
# every image whose margin is larger (compare_logits.py --top1).
run_in() {  # python archive out.npy
  "$1" "$SRC/tests/integration/torch2_models.py" run "$2" "$d/inputs.h5" "$3" 2>"$3.err"
}
for f in "$d"/*.mp.pt "$d"/*.int8.pt; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .pt) writer=$(basename "$f" | cut -d. -f2)
  for py in "$PYTHON" "$PYTHON_113"; do
    v=$("$py" -c "import torch; print(torch.__version__.split('+')[0].split('a')[0])")
    if run_in "$py" "$f" "$f.$v.npy"; then
      case $f in
        *.mp.pt) if err=$(compare "${f%.pt}.h5" "$f.$v.npy" 1e-4); then
                   pass "$name runs in PyTorch $v with the trial's outputs ($err)"
                   matrix "mpq $writer expanded export -> PyTorch $v: runs, the trial's outputs within $err"
                 else fail "$name in PyTorch $v: outputs differ from the trial's ($err)"; fi ;;
        *) pass "$name runs in PyTorch $v"
           matrix "mpq $writer int8 export -> PyTorch $v: runs" ;;
      esac
    else
      matrix "mpq $writer $(echo "$name" | cut -d. -f3) export -> PyTorch $v: fails ($(tail -1 "$f.$v.npy.err" | cut -c1-120))"
      # PyTorch 2.14 must load whatever either build writes; 1.13 is measured, not promised.
      case $v in 2.*) fail "$name does not load in PyTorch $v: $(tail -1 "$f.$v.npy.err")" ;;
                 *) pass "recorded: $name does not load in PyTorch $v" ;; esac
    fi
  done
done
for f in "$d"/*.int8.pt; do
  name=$(basename "$f" .pt) writer=$(basename "$f" | cut -d. -f2)
  ref_v=$("$PYTHON" -c "import torch; print(torch.__version__.split('+')[0])")
  [ "$writer" = 113 ] && ref_v=$("$PYTHON_113" -c "import torch; print(torch.__version__.split('+')[0].split('a')[0])")
  v2=$("$PYTHON" -c "import torch; print(torch.__version__.split('+')[0])")
  [ -e "$f.$ref_v.npy" ] && [ -e "$f.$v2.npy" ] || continue
  if err=$("$PYTHON" "$SRC/tests/integration/compare_logits.py" --npy "$f.$ref_v.npy" "$f.$v2.npy" 5e-2 --top1); then
    pass "$name: PyTorch $v2 gives the outputs of PyTorch $ref_v (the writer's) ($err)"
    matrix "mpq $writer int8 export: PyTorch $v2 vs $ref_v outputs within $err"
  else
    fail "$name: PyTorch $v2 and $ref_v disagree ($err)"
  fi
done
finish
