#!/usr/bin/env bash
# ImageNet end to end on a generated tree with real wnids and real photo content: the three
# layouts give identical labels, bad devkit files are clear errors, torchvision models (traced
# ResNet-18, scripted MobileNetV2; random weights) give PyTorch's logits through mpq's pipeline,
# a W4 multipoint trial with calibration writes its file and a PyTorch-loadable expanded model,
# the stratified eval subset is recorded, and a 2-rank sweep equals the single-process run.
source "$(dirname "$0")/lib.sh"
d="$ART/imagenet" && rm -rf "$d" && mkdir -p "$d"
"$PYTHON" "$SRC/tests/integration/make_images.py" imagenet "$d/tree" 10 4 3 --size 120x90 \
  || { fail "generating the ImageNet tree"; finish; }
small=(--set data.preprocess.resize=72 --set data.preprocess.crop=64)

# 1. Layouts: the same images get the same labels (val and train), as recorded in labels.json.
for L in folder flat flat_txt kaggle; do
  for split in val train; do
    "$MPQ" -q data export --set data.name=imagenet --set data.root="$d/tree/$L" "${small[@]}" \
      --split $split -o "$d/$L-$split.h5" >"$d/log" 2>&1 || fail "$L $split export: $(cat "$d/log")"
  done
done
"$PYTHON" - "$d" <<'PY' && pass "folder, flat (meta.mat), flat (synset list), kaggle: identical labels" || fail "layouts disagree"
import h5py, json, sys
d = sys.argv[1]
exp = json.load(open(f"{d}/tree/labels.json"))["val"]
train = None
for L in ["folder", "flat", "flat_txt", "kaggle"]:
    f = h5py.File(f"{d}/{L}-val.h5")
    nums = [int(p.decode().split("_")[-1].split(".")[0]) for p in f["paths"][()]]
    assert list(f["labels"][()]) == [exp[n - 1] for n in nums], L
    assert sorted(nums) == list(range(1, 31)), L
    t = h5py.File(f"{d}/{L}-train.h5")
    pairs = sorted(zip([p.decode().split("/")[-1] for p in t["paths"][()]], t["labels"][()]))
    assert train is None or pairs == train, L
    train = pairs
PY
# Bad devkit files: one clear line naming the file.
cp -r "$d/tree/flat" "$d/badcount" && sed -i '$d' "$d/badcount/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
expect_error 1 "ILSVRC2012_validation_ground_truth.txt: holds 29 labels but .*/val holds 30 images" "$d/x.h5" -- \
  "$MPQ" -q data export --set data.name=imagenet --set data.root="$d/badcount" -o "$d/x.h5"
cp -r "$d/tree/flat" "$d/badid" && sed -i '3s/.*/5000/' "$d/badid/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
expect_error 1 "ground_truth.txt: line 3: ILSVRC2012_ID 5000 is not one of the 10 classes of .*meta.mat" "$d/x.h5" -- \
  "$MPQ" -q data export --set data.name=imagenet --set data.root="$d/badid" -o "$d/x.h5"
cp -r "$d/tree/flat" "$d/nogt" && rm "$d/nogt/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
expect_error 1 "flat ImageNet images but no ILSVRC2012_validation_ground_truth.txt" "$d/x.h5" -- \
  "$MPQ" -q data export --set data.name=imagenet --set data.root="$d/nogt" -o "$d/x.h5"
echo "not a mat file" >"$d/badid/ILSVRC2012_devkit_t12/data/meta.mat"
expect_error 1 "meta.mat: not a readable MAT-file" "$d/x.h5" -- \
  "$MPQ" -q data export --set data.name=imagenet --set data.root="$d/badid" -o "$d/x.h5"

# 2. torchvision models exported as users do; mpq's logits equal PyTorch's on the same images.
"$PYTHON" "$SRC/scripts/export_torchvision.py" resnet18 --weights none -o "$d/r18.pt" >/dev/null \
  && "$PYTHON" "$SRC/scripts/export_torchvision.py" mobilenet_v2 --weights none --script -o "$d/mbv2.pt" >/dev/null \
  || { fail "export_torchvision.py"; finish; }
for m in r18 mbv2; do
  "$MPQ" -q eval --model "$d/$m.pt" --dataset imagenet --data-root "$d/tree/flat" \
    --save-logits "$d/$m.logits.h5" >/dev/null 2>"$d/log" || fail "$m eval: $(cat "$d/log")"
  "$PYTHON" "$SRC/tests/integration/torchvision_reference.py" logits "$d/$m.logits.h5" \
    "$d/tree/flat/val" "$d/$m.pt" >"$d/log" 2>&1 && pass "$m: $(cat "$d/log")" || fail "$m: $(cat "$d/log")"
done

# 3. A W4 multipoint trial with calibration from train, its file and its expanded model.
common=(--model "$d/r18.pt" --dataset imagenet --data-root "$d/tree/folder" "${small[@]}"
        --set calibration.size=16 --set calibration.cache_dir="$d/cache" --set data.cache_dir="$d/icache")
"$MPQ" -q quantize "${common[@]}" --method multipoint --bits 4 --set data.eval_subset=10 \
  --set data.eval_subset_seed=3 -o "$d/mp.h5" --export "$d/mp.pt" >"$d/log" 2>&1 \
  || fail "multipoint trial: $(cat "$d/log")"
"$PYTHON" - "$d/mp.h5" "$d/mp.pt" "$d/tree/labels.json" <<'PY' && pass "W4 multipoint trial: file, subset, export" || fail "W4 multipoint trial content"
import h5py, json, sys, numpy as np, torch
f = h5py.File(sys.argv[1]); m = f["manifest"].attrs; met = f["metrics"].attrs
assert m["dataset"] == "imagenet" and m["dataset_layout"] == "folder", dict(m)
assert "sorted wnid" in m["dataset_label_mapping"]
assert m["calibration_split"] == "train" and m["calibration_size"] == 16
assert len(f["manifest/calibration_indices"][()]) == 16
idx = f["manifest/eval_indices"][()]
assert len(idx) == 10 and met["n_eval"] == 10 and np.all(np.diff(idx) > 0), idx
# Stratified: 10 of 30 images over 10 classes of 3 -> one per class (folder order = class order).
assert sorted(i // 3 for i in idx) == list(range(10)), idx
assert met["extra_channels_pct"] > 9 and met["export_max_abs_diff"] < 1e-3, dict(met)
e = torch.jit.load(sys.argv[2]).eval()
assert e(torch.zeros(2, 3, 64, 64)).shape == (2, 1000)
PY
# The same subset seed gives the same indices; another seed others.
"$MPQ" -q quantize "${common[@]}" --bits 4 --set data.eval_subset=10 --set data.eval_subset_seed=3 -o "$d/a.h5" >/dev/null 2>&1
"$MPQ" -q quantize "${common[@]}" --bits 4 --set data.eval_subset=10 --set data.eval_subset_seed=4 -o "$d/b.h5" >/dev/null 2>&1
"$PYTHON" - "$d/mp.h5" "$d/a.h5" "$d/b.h5" <<'PY' && pass "eval subset seeded" || fail "eval subset not seeded"
import h5py, sys, numpy as np
i = [h5py.File(p)["manifest/eval_indices"][()] for p in sys.argv[1:]]
assert np.array_equal(i[0], i[1]) and not np.array_equal(i[0], i[2])
PY

# 4. A 2-rank sweep equals the single-process one (and shares one image cache).
sweep() {  # name results_dir
  cat <<JSON
{"name": "$1",
 "base": {"model": {"path": "$d/r18.pt"},
          "data": {"name": "imagenet", "root": "$d/tree/kaggle", "cache_dir": "$d/icache",
                   "preprocess": {"resize": 72, "crop": 64}},
          "calibration": {"size": 16, "cache_dir": "$d/cache"}},
 "axes": [{"key": "weights.granularity", "values": ["per_layer", "per_channel"]},
          {"variants": [{"label": "RTN"},
                        {"label": "MP10", "weights": {"method": "multipoint", "multipoint": {"budget": 0.1, "max_points": 2}}}]}],
 "run": {"results_dir": "$2", "threads_per_rank": 1}}
JSON
}
sweep inet "$d/one" >"$d/one.json"; sweep inet "$d/two" >"$d/two.json"
"$MPQ" -q sweep run "$d/one.json" >"$d/one.log" 2>&1 || fail "1-process sweep: $(tail -3 "$d/one.log")"
mpirun --oversubscribe -np 2 "$MPQ" -q sweep run "$d/two.json" >"$d/two.log" 2>&1 || fail "2-rank sweep: $(tail -3 "$d/two.log")"
grep -q "4 trials: 4 done" "$d/two.log" && pass "2-rank ImageNet sweep: 4 done" || fail "2-rank sweep: $(cat "$d/two.log")"
"$PYTHON" "$SRC/tests/integration/compare_sweeps.py" "$d/one/inet" "$d/two/inet" && pass "2 ranks == 1 process" || fail "2 ranks differ"
# Both sweeps (3 processes, 8 trials) share one cached eval set and one calibration sample.
"$PYTHON" - "$d/icache" <<'PY' && pass "image cache: one file per (data, preprocessing, images), shared" || fail "image cache not shared"
import glob, h5py, sys
desc = [h5py.File(p).attrs["description"] for p in glob.glob(sys.argv[1] + "/images-*.h5")]
kaggle = [x for x in desc if "kaggle" in x]
assert len(kaggle) == 2, kaggle
assert sum("calibration sample" in x for x in kaggle) == 1, kaggle
assert not glob.glob(sys.argv[1] + "/*.tmp.*")
PY
finish
