#!/usr/bin/env bash
# Reproducing the paper (docs/reproduce.md): the FP sanity check at preparation on a generated
# ImageNet tree — an archive whose metadata claims an accuracy the tree cannot give fails
# preparation (one clear line, no plan written), a matching claim passes, a subset reports the
# binomial interval, --ignore-fp-check proceeds; the report states the outcome; the paper sweeps
# plan on generated ImageNet/VOC trees with exported torchvision models (random weights).
source "$(dirname "$0")/lib.sh"
d="$ART/reproduce" && rm -rf "$d" && mkdir -p "$d/models"
"$PYTHON" "$SRC/tests/integration/make_images.py" imagenet "$d/tree" 10 4 3 --size 120x90 >/dev/null \
  || { fail "generating the ImageNet tree"; finish; }
IMNET="$d/tree/folder"
# ResNet-18 with random weights whose metadata says IMAGENET1K_V1 (published top-1 69.758); its
# classifier always answers the tree's first class, so it scores exactly 1/10 (3 of 30 images).
"$PYTHON" - "$d/random_r18.pth" "$d/tree/labels.json" <<'PY' || fail "random state dict"
import json, sys, torch, torchvision
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None)
first = min(json.load(open(sys.argv[2]))["val"])
with torch.no_grad():
    m.fc.weight.zero_(); m.fc.bias.zero_(); m.fc.bias[first] = 1.0
torch.save(m.state_dict(), sys.argv[1])
PY
"$PYTHON" "$SRC/scripts/export_torchvision.py" resnet18 --weights IMAGENET1K_V1 \
  --weights-file "$d/random_r18.pth" -o "$d/models/resnet18.pt" >"$d/export.log" 2>&1 \
  || fail "export: $(tail -1 "$d/export.log")"
"$PYTHON" - "$d/models/resnet18.pt" <<'PY' && pass "export records the published top-1" || fail "export metadata"
import json, sys, torch
extra = {"mpq_meta.json": ""}
torch.jit.load(sys.argv[1], _extra_files=extra)
m = json.loads(extra["mpq_meta.json"])
assert m["published"]["ImageNet-1K"]["acc@1"] == 69.758, m
PY

sweep() {  # name model eval_limit
  cat <<JSON
{"name": "$1", "vars": {"models": "$d/models", "imagenet": ""},
 "base": {"model": {"path": "\${models}/$2"}, "threads": 2,
          "data": {"name": "imagenet", "root": "\${imagenet}", "eval_limit": $3,
                   "preprocess": {"preset": "torchvision-v1"}, "cache_dir": "$d/icache"},
          "calibration": {"size": 8, "split": "val", "cache_dir": "$d/cache"}},
 "axes": [{"key": "weights.bits", "values": [8]}],
 "run": {"results_dir": "$d/results"}}
JSON
}
sweep bad resnet18.pt 0 >"$d/bad.json"
expect_error 1 "resnet18.pt: FP reference check failed: FP top1 10.000% on the full split \(30 images\) vs published 69.758% \(ImageNet-1K acc@1\).*Likely causes: a preprocessing preset" \
  "$d/results/bad/plan.json" -- "$MPQ" -q sweep prepare "$d/bad.json" --var imagenet="$IMNET"
"$PYTHON" -c "import json,sys; c=json.load(open('$d/results/bad/fp_check.json')); sys.exit(0 if c[0]['outcome']=='fail' and c[0]['images']==30 else 1)" \
  && pass "fp_check.json records the failure" || fail "fp_check.json after a failure"

# The same weights with metadata claiming what they measure: passes.
measured=$("$MPQ" -q eval --model "$d/models/resnet18.pt" --dataset imagenet --data-root "$IMNET" \
  --set data.preprocess.preset=torchvision-v1 --threads 2 | field top1)
"$PYTHON" - "$d/models/resnet18.pt" "$d/models/matching.pt" "$measured" <<'PY' || fail "rewriting metadata"
import json, sys, torch
extra = {"mpq_meta.json": ""}
m = torch.jit.load(sys.argv[1], _extra_files=extra)
meta = json.loads(extra["mpq_meta.json"])
meta["published"]["ImageNet-1K"]["acc@1"] = round(100 * float(sys.argv[3]), 3)
assert abs(meta["published"]["ImageNet-1K"]["acc@1"] - 10.0) < 1e-9, sys.argv[3]
torch.jit.save(m, sys.argv[2], _extra_files={"mpq_meta.json": json.dumps(meta)})
PY
sweep good matching.pt 0 >"$d/good.json"
"$MPQ" -q sweep prepare "$d/good.json" --var imagenet="$IMNET" 2>"$d/good.err" \
  && [ -f "$d/results/good/plan.json" ] && pass "matching metadata ($measured): preparation passes" \
  || fail "matching metadata: $(cat "$d/good.err")"
grep -q '"outcome": "pass"' "$d/results/good/fp_check.json" && pass "fp_check.json: pass" || fail "fp_check.json: no pass"

# A wrong preprocessing preset is caught before any trial runs: a small classifier (2x2-pooled
# colour features -> linear, fitted by least squares in PyTorch on torchvision-v1 inputs of the
# tree) records the top-1 PyTorch measures with torchvision's own transforms as its published
# accuracy. mpq with the right preset measures the same (check passes); with preset "none" and the
# same resize and crop (the normalization forgotten) the accuracy changes and preparation fails.
"$PYTHON" - "$IMNET/val" "$d/models/pooled.pt" <<'PY' >"$d/pooled.log" 2>&1 || fail "pooled classifier: $(tail -1 "$d/pooled.log")"
import json, os, sys, torch
import torchvision.transforms as T
from PIL import Image
root, out = sys.argv[1], sys.argv[2]
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
classes = sorted(os.listdir(root))
xs, ys = [], []
for c, wnid in enumerate(classes):
    for f in sorted(os.listdir(f"{root}/{wnid}")):
        xs.append(tf(Image.open(f"{root}/{wnid}/{f}").convert("RGB"))); ys.append(c)
class Pooled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(12, len(classes))
    def forward(self, x):
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))
m = Pooled().eval()
with torch.no_grad():
    F = torch.nn.functional.adaptive_avg_pool2d(torch.stack(xs), 2).flatten(1).double()
    A = torch.cat([F, torch.ones(len(xs), 1, dtype=torch.float64)], 1)
    Y = torch.nn.functional.one_hot(torch.tensor(ys), len(classes)).double()
    W = torch.linalg.lstsq(A, Y).solution
    m.fc.weight.copy_(W[:12].t().float()); m.fc.bias.copy_(W[12].float())
    acc = (m(torch.stack(xs)).argmax(1) == torch.tensor(ys)).double().mean().item()
meta = {"source": "test", "published": {"ImageNet-1K": {"acc@1": round(100 * acc, 3)}}}
torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3, 224, 224)), out, _extra_files={"mpq_meta.json": json.dumps(meta)})
print(f"{100 * acc:.3f}")
PY
sweep preset_ok pooled.pt 0 >"$d/preset_ok.json"
"$MPQ" -q sweep prepare "$d/preset_ok.json" --var imagenet="$IMNET" 2>"$d/preset_ok.err" \
  && grep -q '"outcome": "pass"' "$d/results/preset_ok/fp_check.json" \
  && pass "right preset: mpq measures PyTorch's $(cat "$d/pooled.log")% exactly, check passes" \
  || fail "right preset: $(cat "$d/preset_ok.err")"
sed -e 's/"name": "preset_ok"/"name": "preset_none"/' -e 's/"preset": "torchvision-v1"/"preset": "none", "resize": 256, "crop": 224/' \
  "$d/preset_ok.json" >"$d/preset_none.json"
expect_error 1 "pooled.pt: FP reference check failed: FP top1 .* on the full split \(30 images\) vs published $(cat "$d/pooled.log")%.*preprocessing preset" \
  "$d/results/preset_none/plan.json" -- "$MPQ" -q sweep prepare "$d/preset_none.json" --var imagenet="$IMNET"

# The other torchvision preset (resize 232 instead of 256) is caught too.
sed -e 's/"name": "preset_ok"/"name": "preset_v2"/' -e 's/"preset": "torchvision-v1"/"preset": "torchvision-v2"/' \
  "$d/preset_ok.json" >"$d/preset_v2.json"
expect_error 1 "pooled.pt: FP reference check failed: FP top1 76.667% on the full split \(30 images\) vs published $(cat "$d/pooled.log")%.*preprocessing preset" \
  "$d/results/preset_v2/plan.json" -- "$MPQ" -q sweep prepare "$d/preset_v2.json" --var imagenet="$IMNET"

# A subset: the difference with its 95% interval, never a failure.
sweep subset resnet18.pt 20 >"$d/subset.json"
"$MPQ" sweep prepare "$d/subset.json" --var imagenet="$IMNET" >"$d/subset.out" 2>&1 \
  && grep -q "FP check subset: .*subset of 20 images (95% CI .*) vs published 69.758% .*published value OUTSIDE the interval" "$d/subset.out" \
  && pass "subset: $(grep 'FP check' "$d/subset.out" | head -c 200)" || fail "subset: $(cat "$d/subset.out")"
"$PYTHON" - "$d/results/subset/fp_check.json" <<'PY' && pass "Wilson interval recorded" || fail "subset interval"
import json, math, sys
c = json.load(open(sys.argv[1]))[0]
p, n, z = c["measured"] / 100, c["images"], 1.959963984540054
centre = (p + z * z / (2 * n)) / (1 + z * z / n)
half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
lo, hi = c["ci95"]
assert abs(lo - 100 * (centre - half)) < 1e-9 and abs(hi - 100 * (centre + half)) < 1e-9, c
assert c["outcome"] == "subset" and n == 20
PY

# --ignore-fp-check proceeds (and records the failure); the report states the outcome.
"$MPQ" -q sweep run "$d/bad.json" --var imagenet="$IMNET" --ignore-fp-check >/dev/null 2>"$d/ign.err" \
  && pass "--ignore-fp-check runs the sweep" || fail "--ignore-fp-check: $(cat "$d/ign.err")"
"$MPQ" report "$d/results/bad" >/dev/null 2>"$d/rep.err" || fail "report: $(cat "$d/rep.err")"
grep -q "^- fail: resnet18 — FP top1" "$d/results/bad/report/report.md" \
  && pass "the report states the FP check's outcome" || fail "report has no FP check outcome"

# The paper sweeps plan on generated trees with exported torchvision models (random weights).
for a in resnet50 resnet101; do
  "$PYTHON" "$SRC/scripts/export_torchvision.py" $a --weights none -o "$d/models/$a.pt" >/dev/null 2>&1 || fail "export $a"
done
"$PYTHON" "$SRC/scripts/export_torchvision.py" mobilenet_v2 --weights none -o "$d/models/mobilenet_v2.pt" >/dev/null 2>&1 || fail "export mobilenet_v2"
"$MPQ" sweep plan "$SRC/configs/sweeps/paper_imagenet.json" --var models="$d/models" --var imagenet="$IMNET" \
  >"$d/plan.out" 2>&1; rc=$?
n=$(grep -c "^| *[0-9]* | [0-9a-f]\{16\} |" "$d/plan.out")
[ $rc -eq 0 ] && [ "$n" -eq 720 ] && pass "paper_imagenet plans 720 trials" || fail "paper_imagenet plan (rc $rc, $n trials): $(tail -2 "$d/plan.out")"
"$MPQ" sweep plan "$SRC/configs/sweeps/paper_imagenet_ptq.json" --var models="$d/models" --var imagenet="$IMNET" \
  >"$d/plan_ptq.out" 2>&1; rc=$?
n=$(grep -c "^| *[0-9]* | [0-9a-f]\{16\} |" "$d/plan_ptq.out")
[ $rc -eq 0 ] && [ "$n" -eq 648 ] && pass "paper_imagenet_ptq plans 648 trials" || fail "paper_imagenet_ptq plan (rc $rc, $n trials): $(tail -2 "$d/plan_ptq.out")"
"$MPQ" -q data make-voc -o "$d/voc" --trainval 8 --test 8 >/dev/null 2>&1 || fail "make-voc"
"$PYTHON" "$SRC/scripts/export_torchvision.py" ssdlite320_mobilenet_v3_large --weights none --num-classes 21 \
  --published VOC2007-test:map_voc07=68.1 -o "$d/models/ssd_voc.pt" >/dev/null 2>&1 || fail "export ssdlite"
"$MPQ" sweep plan "$SRC/configs/sweeps/paper_voc.json" --var model="$d/models/ssd_voc.pt" --var voc="$d/voc/VOCdevkit" \
  >"$d/plan_voc.out" 2>&1; rc=$?
n=$(grep -c "^| *[0-9]* | [0-9a-f]\{16\} |" "$d/plan_voc.out")
[ $rc -eq 0 ] && [ "$n" -eq 180 ] && pass "paper_voc plans 180 trials" || fail "paper_voc plan (rc $rc, $n trials): $(tail -2 "$d/plan_voc.out")"
# Detectors: the mAP given with --published is checked the same way (a random detector on the
# full generated VOC2007 test split cannot reach 68.1).
expect_error 1 "ssd_voc.pt: FP reference check failed: FP map_voc07 .* on the full split \(8 images\) vs published 68.100% \(VOC2007-test map_voc07\)" \
  "$d/results/paper_voc/plan.json" -- env -C "$d" "$MPQ" -q sweep prepare "$SRC/configs/sweeps/paper_voc.json" \
  --var model="$d/models/ssd_voc.pt" --var voc="$d/voc/VOCdevkit" --set calibration.cache_dir="$d/cache"
expect_error 2 "variable 'models' has no value: pass --var models=VALUE" - -- "$MPQ" sweep plan "$SRC/configs/sweeps/paper_imagenet.json"
expect_error 2 "--var modelz=x: the sweep has no variable 'modelz'" - -- "$MPQ" sweep plan "$SRC/configs/sweeps/paper_imagenet.json" --var modelz=x
# Every command of docs/reproduce.md parses: mpq commands run (sweep run as sweep plan, slurm
# submit with --dry-run) against the generated trees and must not be usage errors (exit 2);
# export commands use only options the script has.
"$PYTHON" - "$SRC/docs/reproduce.md" "$d" "$MPQ" "$IMNET" "$SRC" <<'PY' && pass "every command in docs/reproduce.md parses" || fail "docs/reproduce.md commands (above)"
import re, shlex, subprocess, sys
doc, d, mpq, imnet, src = sys.argv[1:]
text = open(doc).read()
blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
cmds = []
for b in blocks:
    for line in b.replace("\\\n", " ").splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(("mpq ", "python3 scripts/export_torchvision.py", "mpirun")):
            cmds.append(line)
bad, ran = [], 0
script = open(f"{src}/scripts/export_torchvision.py").read()
for c in cmds:
    c = (c.replace("$PWD/models/ssd_voc.pt", f"{d}/models/ssd_voc.pt").replace("$PWD/models", f"{d}/models")
          .replace("/data/imagenet", imnet).replace("/data/VOCdevkit", f"{d}/voc/VOCdevkit"))
    argv = shlex.split(c)
    if argv[0] == "python3":
        for opt in [a for a in argv if a.startswith("--")]:
            if f'"{opt}"' not in script: bad.append(f"{c}: no option {opt}")
        continue
    if argv[0] == "mpirun":
        argv = argv[argv.index("mpq"):]
    argv[0] = mpq
    if argv[1:3] == ["sweep", "run"]: argv[2] = "plan"
    if argv[1:3] == ["slurm", "submit"]: argv += ["--dry-run"]
    argv = [a.replace("...", "x") for a in argv]
    if any(a.endswith("=x") for a in argv): continue  # placeholder values (the mpirun example)
    r = subprocess.run(argv, cwd=d, capture_output=True, text=True)
    ran += 1
    if r.returncode == 2 or r.returncode < 0:
        bad.append(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()[:200]}")
for b in bad: print("  ", b)
print(f"  {ran} mpq commands run, {len(cmds)} commands in total")
sys.exit(1 if bad or ran < 6 else 0)
PY
finish
