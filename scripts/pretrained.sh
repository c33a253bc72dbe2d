#!/usr/bin/env bash
# The pretrained networks and the real photos (docs/models.md "Pretrained networks",
# docs/datasets.md "Real photos"): a project-local venv with the pinned packages, TorchScript
# exports of the networks, foolbox's 20 labelled ImageNet images and the photos gathered from
# Debian packages. Idempotent: what is already in place (and matches its pins) is kept.
#
# Usage: scripts/pretrained.sh [--models NAMES] [--no-photos] [--photos-packages P1,P2]
#                              [--out DIR] [--data DIR] [--export NAME]
#   --models NAMES         comma-separated (default: every model of configs/pretrained/models.json)
#   --no-photos            skip the photos dataset (the imagenet samples are always made)
#   --photos-packages P,Q  gather photos from these source packages only (tests)
#   --out DIR              where the archives go (default results/models/pretrained)
#   --data DIR             where the datasets go (default results/data)
#   --export NAME          only make sure archive DIR/NAME.pt exists (what `mpq` runs on first
#                          use of --model pretrained:NAME); prints the archive's path
# Environment: MPQ_PRETRAINED_VENV (default <repo>/.venv/pretrained).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${MPQ_PRETRAINED_VENV:-$repo/.venv/pretrained}
table=$repo/configs/pretrained/models.json
reqs=$repo/configs/pretrained/requirements.txt
out=results/models/pretrained data=results/data models="" photos=1 photo_pkgs="" only=""
while [ $# -gt 0 ]; do
  case $1 in
    --models) models=$2; shift 2 ;;
    --no-photos) photos=0; shift ;;
    --photos-packages) photo_pkgs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --export) only=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "pretrained.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
say() { [ -n "$only" ] || echo "pretrained: $*"; }
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c 'import torch, torchvision, PIL, numpy' 2>/dev/null; then
  echo "pretrained.sh: Debian's python3-torch/torchvision/pil/numpy are missing: run scripts/install-deps.sh --with-python --with-pretrained" >&2
  exit 1
fi

# 1. The venv, on Debian's torch 1.13 (--system-site-packages), with the pinned packages. A
#    marker holds the requirements' hash: changed pins reinstall.
want=$(sha256sum "$reqs" | cut -c1-64)
if [ "$(cat "$venv/.mpq-requirements" 2>/dev/null)" != "$want" ]; then
  say "creating $venv (pinned: configs/pretrained/requirements.txt)"
  rm -rf "$venv"
  "$py" -m venv --system-site-packages "$venv" >/dev/null ||
    { echo "pretrained.sh: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
  if ! "$venv/bin/pip" install -q --no-deps --require-hashes -r "$reqs" 2>"$venv/pip.log"; then
    echo "pretrained.sh: pip install -r $reqs failed: $(grep -v '^ *$' "$venv/pip.log" | tail -1)" >&2
    exit 1
  fi
  echo "$want" >"$venv/.mpq-requirements"
fi

# 2. The archives.
all=$("$py" -c "import json,sys; print(','.join(json.load(open(sys.argv[1]))['models']))" "$table")
mkdir -p "$out"
IFS=, read -r -a names <<<"${only:-${models:-$all}}"
for name in "${names[@]}"; do
  if [ ! -s "$out/$name.pt" ]; then
    "$venv/bin/python" "$repo/scripts/export_pretrained.py" "$name" -o "$out/$name.pt" |
      { if [ -n "$only" ]; then cat >/dev/null; else sed 's/^/pretrained: /'; fi; }
  fi
done
if [ -n "$only" ]; then echo "$out/$only.pt"; exit 0; fi

# 3. foolbox's 20 labelled ImageNet images (only the JPEGs of the pinned wheel; nothing installed).
samples=$data/imagenet_samples
if [ ! -s "$samples/manifest.json" ]; then
  say "extracting foolbox 3.3.4's ImageNet samples into $samples"
  wheels=$venv/wheels && mkdir -p "$wheels"
  read -r whl sha < <("$py" -c "import json,sys; s=json.load(open(sys.argv[1]))['imagenet_samples']; print(s['wheel'], s['wheel_sha256'])" "$table")
  if [ ! -s "$wheels/$whl" ]; then
    "$venv/bin/pip" download -q --no-deps -d "$wheels" "foolbox==3.3.4" 2>"$wheels/pip.log" ||
      { echo "pretrained.sh: pip download foolbox==3.3.4 failed: $(tail -1 "$wheels/pip.log")" >&2; exit 1; }
  fi
  got=$(sha256sum "$wheels/$whl" | cut -c1-64)
  [ "$got" = "$sha" ] || { echo "pretrained.sh: $wheels/$whl: SHA-256 $got, expected $sha" >&2; exit 1; }
  "$py" - "$wheels/$whl" "$samples" "$table" <<'EOF'
import hashlib, json, os, re, shutil, sys, zipfile
whl, dest, table = sys.argv[1:]
info = json.load(open(table))["imagenet_samples"]
tmp = dest + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
images = []
with zipfile.ZipFile(whl) as z:
    for n in sorted(z.namelist()):
        m = re.fullmatch(r"foolbox/data/(imagenet_(\d+)_(\d+)\.jpg)", n)
        if m:
            data = z.read(n)
            open(os.path.join(tmp, m.group(1)), "wb").write(data)
            images.append({"file": m.group(1), "label": int(m.group(3)),
                           "sha256": hashlib.sha256(data).hexdigest()})
if len(images) != 20:
    sys.exit(f"pretrained.sh: {whl}: expected 20 ImageNet samples, found {len(images)}")
manifest = {"format": "mpq-imagenet-samples", "version": 1, "package": info["package"],
            "package_version": info["version"], "wheel_sha256": info["wheel_sha256"],
            "license": info["license"], "labels": info["labels"], "images": images}
json.dump(manifest, open(os.path.join(tmp, "manifest.json"), "w"), indent=1)
shutil.rmtree(dest, ignore_errors=True)
os.replace(tmp, dest)
EOF
fi

# 4. The photos.
if [ "$photos" = 1 ]; then
  args=("$data/photos" --debs "$data/photos.debs")
  [ -z "$photo_pkgs" ] || args+=(--packages "$photo_pkgs")
  "$py" "$repo/scripts/gather_photos.py" "${args[@]}" | sed 's/^gather_photos: /pretrained: /'
fi
say "ready: $(ls "$out"/*.pt 2>/dev/null | wc -l) archive(s) in $out, datasets in $data"
