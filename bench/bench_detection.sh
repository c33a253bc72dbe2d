#!/usr/bin/env bash
# Detection benchmarks (issue 9): VOC mAP evaluation time (5000 images x 20 classes x 100
# detections per image, and x 2000 per image = 100 per class), own NMS vs torchvision's on the
# same 10000 random boxes, and detector evaluation throughput in mpq vs the same TorchScript model
# in PyTorch on the same images (the default detector and a scripted torchvision SSDlite).
set -euo pipefail
cd "$(dirname "$0")/.."
MPQ=$PWD/build/mpq
build/bench/mpq_bench map 100
build/bench/mpq_bench map 2000 | tail -1
echo
build/bench/mpq_bench nms
/usr/bin/python3 - <<'PY'
import time, torch, torchvision
torch.manual_seed(0); torch.set_num_threads(2)
xy, wh = torch.rand(10000, 2) * 1000, torch.rand(10000, 2) * 100 + 1
boxes, scores = torch.cat([xy, xy + wh], 1), torch.rand(10000)
ts = []
for _ in range(9):
    t = time.time(); keep = torchvision.ops.nms(boxes, scores, 0.5); ts.append(time.time() - t)
print(f"torchvision nms, 10000 boxes, IoU 0.5: {1e3 * sorted(ts)[4]:.2f} ms (median of 9), {len(keep)} kept")
PY
echo
# Throughput: the same images (VOC test of the default synthetic set), batch 32, 2 threads.
work=/tmp/mpq_bench_det && mkdir -p "$work"
$MPQ -q eval --model default:ssdlite --dataset voc --limit 10 >/dev/null   # train/cache first
voc=$(ls -d results/data/voc-fmnist/VOCdevkit)
[ -f "$work/ssdlite_tv.pt" ] || /usr/bin/python3 -c "
import torch, torchvision
m = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
torch.jit.script(m.eval()).save('$work/ssdlite_tv.pt')" 2>/dev/null
ssd=$(ls results/models/ssdlite-*.pt | head -1)
echo "| model | images | mpq eval (images/s) | PyTorch (images/s) | mpq / PyTorch |"
echo "|---|---:|---:|---:|---:|"
# Both sides evaluate the dataset the way a user would: one pass over n images from the files
# (decode included; mpq also writes its image cache on the way), first calls included.
n=$(wc -l <"$voc/VOC2007/ImageSets/Main/test.txt")
for m in "$ssd" "$work/ssdlite_tv.pt"; do
  rm -rf "$work/icache"
  ours=$($MPQ -q eval --model "$m" --dataset voc --data-root "$voc" --threads 2 --batch-size 32 \
         --set data.cache=true --set data.cache_dir="$work/icache" | awk -F'\t' '$1 == "images_per_second" {print $2}')
  theirs=$(/usr/bin/python3 - "$m" "$voc/VOC2007" <<'PY'
import sys, time, torch, torchvision
import torchvision.transforms.functional as TF
from PIL import Image
torch.set_num_threads(2)
m = torch.jit.load(sys.argv[1]).eval()
ids = [l.strip() for l in open(f"{sys.argv[2]}/ImageSets/Main/test.txt")]
t = time.time()
with torch.no_grad():
    for b in range(0, len(ids), 32):
        imgs = [TF.to_tensor(Image.open(f"{sys.argv[2]}/JPEGImages/{i}.jpg").convert("RGB")) for i in ids[b:b + 32]]
        m(imgs)
print(f"{len(ids) / (time.time() - t):.1f}")
PY
)
  awk -v m="$(basename "$m")" -v n="$n" -v a="$ours" -v b="$theirs" 'BEGIN { printf "| %s | %d | %.1f | %.1f | %.2fx |\n", m, n, a, b, a / b }'
done
