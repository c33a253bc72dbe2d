#!/usr/bin/env bash
# PASCAL VOC detection end to end on a generated VOC tree (real JPEGs, XML, ImageSets): the
# official metric against an independent Python implementation (1e-9), own NMS against
# torchvision's, a scripted torchvision SSDlite giving PyTorch's detections through mpq, a tiny
# detector trained here quantized with every method family, a 2-rank detection sweep equal to the
# single-process run, and bad annotations as one clear line each.
source "$(dirname "$0")/lib.sh"
d="$ART/voc" && rm -rf "$d" && mkdir -p "$d"
"$MPQ" -q data make-voc -o "$d/gen" --trainval 160 --test 48 --seed 3 >/dev/null || { fail "make-voc"; finish; }
voc="$d/gen/VOCdevkit" V="$d/gen/VOCdevkit/VOC2007"
ref="$SRC/tests/integration/voc_reference.py"
n=$(ls "$V/JPEGImages" | wc -l)
[ "$n" = 208 ] && pass "make-voc wrote 208 JPEGs" || fail "make-voc wrote $n JPEGs"

# 1. The metric: random detections built to hit the rules' corner cases, several settings.
for seed in 1 2; do
  "$PYTHON" "$ref" random-detections "$V" test "$d/dets$seed.h5" "$seed"
  for setting in "0.5 0 devkit" "0.5 1 devkit" "0.7 0 devkit" "0.5 0 exact" "0.5 0 numpy"; do
    set -- $setting
    strict=""; [ "$2" = 1 ] && strict="--strict"
    "$MPQ" -q score-detections "$d/dets$seed.h5" --set data.name=voc --set data.root="$voc" \
      --iou "$1" $strict --voc07-thresholds "$3" --json >"$d/mpq.json" 2>"$d/log" || fail "score-detections: $(cat "$d/log")"
    "$PYTHON" "$ref" score "$V" test "$d/dets$seed.h5" "$1" "$2" "$3" >"$d/ref.json"
    "$PYTHON" "$ref" compare "$d/mpq.json" "$d/ref.json" 1e-9 >"$d/cmp" 2>&1 \
      && pass "seed $seed, IoU $1 strict=$2 thresholds=$3: $(cat "$d/cmp")" || fail "AP mismatch ($3): $(cat "$d/cmp")"
  done
done

# 2. Own torchvision::nms == torchvision.ops.nms (ties included).
"$PYTHON" "$ref" nms-cases "$d/nms.json" 5 && \
  MPQ_NMS_CASES="$d/nms.json" "$(dirname "$MPQ")/tests/mpq_unit_tests" "[.nms-parity]" >"$d/nms.log" 2>&1 \
  && pass "own NMS keeps exactly torchvision's boxes ($(grep -o '[0-9]* assertions' "$d/nms.log"))" \
  || fail "NMS parity: $(tail -5 "$d/nms.log")"

# 3. A scripted torchvision SSDlite: same detections through mpq (own NMS, BN folded) as in
#    PyTorch with torchvision's ops, and it quantizes. Random weights, with every BatchNorm's
#    statistics set to the exact averages over a few batches (momentum None): with its initial
#    statistics the random network saturates and scores every box 1/21 whatever the input (ties
#    by construction); this way scores spread over (0.37, 0.98) and depend on the image.
"$PYTHON" - "$d/ssdlite.pt" <<'PY' || fail "exporting ssdlite"
import sys, torch, torchvision
torch.manual_seed(0)
m = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.reset_running_stats(); mod.momentum = None
m.train()
with torch.no_grad():
    for _ in range(4):
        m.head(list(m.backbone(torch.rand(8, 3, 320, 320)).values()))
torch.jit.script(m.eval()).save(sys.argv[1])
PY
"$MPQ" -q eval --model "$d/ssdlite.pt" --dataset voc --data-root "$voc" --limit 6 --save-logits "$d/ssd_mpq.h5" >/dev/null 2>"$d/log" \
  || fail "mpq eval ssdlite: $(cat "$d/log")"
"$PYTHON" "$ref" detector-outputs "$d/ssdlite.pt" "$V" test 6 "$d/ssd_py.h5" 2>/dev/null
# Compared as sets per image with stated tolerances (voc_reference.py compare-detections):
# near-tied scores may come out in either order. 300 = torchvision's detections_per_img.
if r=$("$PYTHON" "$ref" compare-detections "$d/ssd_mpq.h5" "$d/ssd_py.h5" 300 2>&1); then
  pass "torchvision SSDlite: detections equal to PyTorch + torchvision ($r)"
else fail "SSDlite detections differ: $r"; fi
"$MPQ" -q quantize --model "$d/ssdlite.pt" --dataset voc --data-root "$voc" --bits 8 \
  --set data.eval_limit=6 -o "$d/ssd_w8.h5" >"$d/log" 2>&1 || fail "quantize ssdlite: $(cat "$d/log")"
"$PYTHON" -c "import h5py; f = h5py.File('$d/ssd_w8.h5'); m = f['manifest'].attrs; assert f['layers'].attrs['count'] == 98 and m['detection_ops'].startswith('mpq'), dict(m)" \
  && pass "torchvision SSDlite quantized: 98 layers, own NMS recorded" || fail "ssdlite trial file"

# 4. A tiny detector trained here (seconds), then detection trials.
"$MPQ" -q train --arch ssdlite --data-root "$voc" --epochs 3 --width 0.5 --test-limit 48 \
  --output "$d/tiny_ssd.pt" >"$d/train.log" 2>&1 || { fail "training the tiny detector: $(cat "$d/train.log")"; finish; }
"$PYTHON" -c "import torch, torchvision; m = torch.jit.load('$d/tiny_ssd.pt'); l, r = m([torch.rand(3, 150, 170)]); assert set(r[0]) == {'boxes', 'scores', 'labels'}" \
  && pass "tiny detector loads in PyTorch, torchvision output convention" || fail "tiny detector in PyTorch"
common=(--model "$d/tiny_ssd.pt" --dataset voc --data-root "$voc" --set calibration.size=32
        --set calibration.cache_dir="$d/cache" --set data.cache_dir="$d/icache")
"$MPQ" -q quantize "${common[@]}" --method multipoint --bits 4 --set eval.save_detections=true \
  -o "$d/mp.h5" --export "$d/mp_expanded.pt" >"$d/log" 2>&1 || fail "multipoint detection trial: $(cat "$d/log")"
"$PYTHON" - "$d/mp.h5" "$d/mp_expanded.pt" <<'PY' && pass "detection trial: mAP, per-class AP, detections, expanded model" || fail "detection trial content"
import sys, h5py, numpy as np, torch, torchvision
f = h5py.File(sys.argv[1]); m = f["metrics"].attrs; man = f["manifest"].attrs
for k in ["map_voc07", "map_voc12", "fp_map_voc07", "fidelity_map", "detections"]:
    assert k in m, k
assert 0 <= m["map_voc07"] <= 1 and m["n_eval"] == 48
assert m["export_max_abs_diff"] < 1e-3, m["export_max_abs_diff"]  # expanded == simulated
assert f["results/ap_voc07"].shape == (20,) and f["results/detections"].shape[1] == 7
assert man["task"] == "detection" and man["calibration_split"] == "trainval"
assert man["calibration_size"] == 32
e = torch.jit.load(sys.argv[2])
l, r = e([torch.rand(3, 140, 180)])
assert r[0]["boxes"].shape[1] == 4
PY
# Saved detections re-score to the trial's own numbers.
"$MPQ" -q score-detections "$d/mp.h5" --json >"$d/rescore.json" 2>"$d/log" || fail "re-scoring: $(cat "$d/log")"
"$PYTHON" -c "import json, h5py; r = json.load(open('$d/rescore.json')); m = h5py.File('$d/mp.h5')['metrics'].attrs; assert abs(r['map_voc07'] - m['map_voc07']) < 1e-12 and abs(r['map_voc12'] - m['map_voc12']) < 1e-12" \
  && pass "re-scored saved detections equal the trial's mAP" || fail "re-scored mAP differs"
for spec in "rtn:" "mse:--granularity per_layer" "aciq:" "percentile:" "ocs:--set weights.ocs.expand_ratio=0.05" \
            "bit_alloc:" "rtn:--set activations.bits=8 --set bias_correction=true"; do
  method=${spec%%:*}; extra=${spec#*:}
  # shellcheck disable=SC2086
  if "$MPQ" -q quantize "${common[@]}" --method "$method" --bits 4 $extra --set data.eval_limit=16 \
      -o "$d/m_$method.h5" >"$d/log" 2>&1; then
    pass "detector, $method $extra: $(tail -1 "$d/log" | cut -c1-60)"
  else fail "detector, $method $extra: $(cat "$d/log")"; fi
done

# 5. A 2-rank detection sweep equals the single-process run.
sweep() {
  cat <<JSON
{"name": "voc",
 "base": {"model": {"path": "$d/tiny_ssd.pt"}, "data": {"name": "voc", "root": "$voc", "cache_dir": "$d/icache", "eval_limit": 24},
          "calibration": {"size": 32, "cache_dir": "$d/cache"}},
 "axes": [{"key": "weights.bits", "values": [4, 3]},
          {"variants": [{"label": "RTN"}, {"label": "MP10", "weights": {"method": "multipoint", "granularity": "per_layer", "multipoint": {"max_points": 2}}}]}],
 "run": {"results_dir": "$1", "threads_per_rank": 1}}
JSON
}
sweep "$d/one" >"$d/one.json"; sweep "$d/two" >"$d/two.json"
"$MPQ" -q sweep run "$d/one.json" >"$d/one.log" 2>&1 || fail "1-process detection sweep: $(tail -3 "$d/one.log")"
mpirun --oversubscribe -np 2 "$MPQ" -q sweep run "$d/two.json" >"$d/two.log" 2>&1 || fail "2-rank detection sweep: $(tail -3 "$d/two.log")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/voc" "$d/two/voc" && pass "2-rank detection sweep == 1 process" || fail "2-rank detection sweep differs"
"$MPQ" -q aggregate "$d/two/voc" >"$d/agg.md" 2>"$d/log" && grep -q "map_voc07" "$d/agg.md" \
  && pass "aggregate reports detection metrics" || fail "aggregate: $(cat "$d/log") $(head -5 "$d/agg.md")"

# 5b. The evaluator's options reach the FP reference and the headline. A 2-rank sweep over
# eval.label_offset with eval.voc_metric=voc12: the FP references precomputed across ranks must be
# those of each trial's own offset (the FP mAP of each trial equals a single trial's with that
# offset, which computes its FP pass itself), and every summary leads with VOC12.
cat >"$d/off.json" <<JSON
{"name": "off",
 "base": {"model": {"path": "$d/tiny_ssd.pt"}, "data": {"name": "voc", "root": "$voc", "cache_dir": "$d/icache", "eval_limit": 24},
          "calibration": {"size": 32, "cache_dir": "$d/cache"}, "eval": {"voc_metric": "voc12"}},
 "axes": [{"key": "weights.bits", "values": [4]}, {"key": "eval.label_offset", "values": [1, 0]}],
 "run": {"results_dir": "$d/off", "threads_per_rank": 1}}
JSON
mpirun --oversubscribe -np 2 "$MPQ" -q sweep run "$d/off.json" >"$d/off.log" 2>&1 || fail "label_offset sweep: $(tail -3 "$d/off.log")"
for off in 1 0; do
  "$MPQ" quantize "${common[@]}" --method rtn --bits 4 --threads 1 --set data.eval_limit=24 \
    --set eval.label_offset=$off --set eval.voc_metric=voc12 -o "$d/off$off.h5" >"$d/off$off.log" 2>&1 \
    || fail "single trial, label_offset $off: $(cat "$d/off$off.log")"
done
# Exact equality: the same detections from the same batches give the same sums (the 2-rank sweep
# equals the single process bit for bit, section 5); a wrong reference differs by whole points.
"$PYTHON" - "$d/off/off/trials" "$d/off1.h5" "$d/off0.h5" <<'PY' && pass "FP reference per label_offset: each trial's FP mAP = its own offset's (sweep over 2 ranks)" || fail "FP reference of a label_offset sweep"
import sys, glob, h5py
single = {}
for p in sys.argv[2:]:
    f = h5py.File(p)
    single[int(f["manifest"].attrs["detection_label_offset"])] = f["metrics"].attrs
trials = glob.glob(sys.argv[1] + "/*.h5")
assert len(trials) == 2, trials
for p in trials:
    f = h5py.File(p)
    off = int(f["manifest"].attrs["detection_label_offset"])
    for k in ["fp_map_voc07", "fp_map_voc12", "map_voc07", "map_voc12"]:
        assert f["metrics"].attrs[k] == single[off][k], (off, k, f["metrics"].attrs[k], single[off][k])
# The offsets must matter, or this check could not see a shared reference.
assert single[0]["fp_map_voc12"] != single[1]["fp_map_voc12"], "offsets give the same FP mAP"
print("FP mAP VOC12 offset 1 / 0:", single[1]["fp_map_voc12"], single[0]["fp_map_voc12"])
PY
grep -q "mAP VOC12 .* VOC07" "$d/off1.log" && pass "voc12: the trial summary leads with VOC12" || fail "trial summary: $(tail -1 "$d/off1.log")"
"$MPQ" -q aggregate "$d/off/off" --pivot weights.bits:eval.label_offset >"$d/offagg.md" 2>"$d/log" || fail "aggregate voc12: $(cat "$d/log")"
grep -Eq '\| +n \| +map_voc12 % +\| +map_voc07 % +\|' "$d/offagg.md" \
  && grep -q "### map_voc12 % by eval.label_offset" "$d/offagg.md" \
  && pass "voc12: aggregate's first metric column and default pivot are map_voc12" || fail "aggregate headline: $(head -8 "$d/offagg.md")"
"$MPQ" -q report "$d/off/off" >"$d/log" 2>&1 && grep -q "mAP@0.5, VOC12 area" "$d/off/off/report/report.md" \
  && pass "voc12: the report's figures are of map_voc12" || fail "report headline: $(cat "$d/log")"

# 6. Bad annotations and layouts: one line naming the file and field.
bad() {  # name
  rm -rf "$d/$1" && cp -r "$d/gen" "$d/$1" && echo "$d/$1/VOCdevkit"
}
q=("$MPQ" -q eval --model "$d/tiny_ssd.pt" --dataset voc --limit 2)
r=$(bad malformed); printf '<annotation><size>' >"$r/VOC2007/Annotations/000161.xml"
expect_error 1 "000161.xml: malformed XML" "-" -- "${q[@]}" --data-root "$r"
r=$(bad unknown); sed -i '0,/<name>[a-z]*<\/name>/s//<name>unicorn<\/name>/' "$r/VOC2007/Annotations/000162.xml"
expect_error 1 "000162.xml: annotation/object\[0\]/name: unknown class 'unicorn'" "-" -- "${q[@]}" --data-root "$r"
r=$(bad outside); sed -i '0,/<xmax>[0-9]*<\/xmax>/s//<xmax>5000<\/xmax>/' "$r/VOC2007/Annotations/000163.xml"
expect_error 1 "000163.xml: annotation/object\[0\]/bndbox: box .* outside the 1-based image" "-" -- "${q[@]}" --data-root "$r"
r=$(bad inverted); sed -i '0,/<xmin>[0-9]*<\/xmin>/s//<xmin>999<\/xmin>/' "$r/VOC2007/Annotations/000164.xml"
expect_error 1 "000164.xml: annotation/object\[0\]/bndbox: xmax < xmin" "-" -- "${q[@]}" --data-root "$r"
r=$(bad nojpeg); rm "$r/VOC2007/JPEGImages/000165.jpg"
expect_error 1 "000165.jpg: missing JPEG for image set entry '000165'" "-" -- "${q[@]}" --data-root "$r"
r=$(bad noxml); rm "$r/VOC2007/Annotations/000166.xml"
expect_error 1 "test.txt: lists '000166' but .*000166.xml does not exist" "-" -- "${q[@]}" --data-root "$r"
expect_error 1 "not a VOCdevkit directory" "-" -- "${q[@]}" --data-root "$d"
expect_error 1 "ssd_mpq.h5: no /detections table" "-" -- "$MPQ" -q score-detections "$d/ssd_mpq.h5" --set data.name=voc --set data.root="$voc"
finish
