#!/usr/bin/env python3
"""Gather real photographs from Debian packages into mpq's `photos` dataset (docs/datasets.md).

usage: gather_photos.py OUT_DIR [--debs DIR] [--packages P1,P2,...] [--limit N] [--sheet FILE.png]

No labelled natural-image evaluation set can be downloaded on the project's machines, but
Debian's archive holds photographs inside games, wallpapers, documentation and test data. This
script downloads the packages listed in SOURCES (`apt-get download`, nothing is installed),
unpacks them, and keeps the files that are photographs:

  1. candidates: the image files (.jpg .jpeg .png .webp) under each source's directories;
  2. decodable, at least 96 px on the short side, at least 15% of the pixels opaque;
  3. a photograph, not a drawing, icon or rendering, judged on the opaque pixels of a
     256-px thumbnail (both must hold):
       flatness  = share of horizontally adjacent pixel pairs whose RGB values differ by at
                   most 3 in total: below 0.35 (drawings and renderings have large exactly flat
                   areas; photographs have sensor noise and texture everywhere);
       tonality  = distinct colours at 5 bits per channel (colour images) at least 256, or
                   distinct grey levels at least 96 (grey images);
     a source marked "photo" (a directory of photographs, checked by eye) skips the flatness
     test, since studio shots on flat backdrops are photographs too;
  4. deduplicated: identical decoded content (SHA-256 of the RGB pixels) and near duplicates
     (64-bit difference hash of a 9x8 grey thumbnail within Hamming distance 6: the same
     wallpaper at two resolutions, consecutive video frames), the first in sorted order kept.

Kept images are written as OUT_DIR/images/<package>/<n>.jpg: composited on white where they
have an alpha channel (stamps on transparent backgrounds), reduced to 512 px on the short side
when larger (Pillow's LANCZOS), saved as JPEG quality 95. OUT_DIR/manifest.json records every
image: its file, split, source package and version, the source path and its SHA-256, the
licence of that path from the package's machine-readable copyright file (the last matching
"Files:" stanza, DEP-5) and what was done to it. The split is deterministic: images are sorted
by the SHA-256 of "<package>/<source path>" and every fourth one (positions 0, 4, 8, ...) is
"calibration", the rest "eval".

--packages restricts the sources (the tests use a small package); --limit keeps only the first
N kept images (in sorted order). --sheet writes a contact sheet of the kept images, for checking
them by eye. Idempotent: an OUT_DIR whose manifest was written from the same sources and options
is left as it is.
"""
import argparse
import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

# (package, directories inside the package, kind). "photo": directories of photographs (each
# checked on a contact sheet); "mixed": photographs among drawings, the flatness test decides.
SOURCES = [
    ("tuxpaint-stamps-default", ["usr/share/tuxpaint/stamps"], "mixed"),
    ("qabcs-data", ["usr/share/qabcs/abcs/all/pics"], "mixed"),
    ("scratch", ["usr/share/scratch/Media/Backgrounds"], "photo"),
    ("krank", ["usr/share/games/krank/levels/unera-backgrounds"], "photo"),
    ("plasma-workspace-wallpapers", ["usr/share/wallpapers"], "mixed"),
    ("mate-backgrounds", ["usr/share/backgrounds/mate/nature"], "photo"),
    ("gnome-backgrounds", ["usr/share/backgrounds/gnome"], "mixed"),
    ("lomiri-wallpapers-16.04", ["usr/share/backgrounds"], "mixed"),
    ("ukui-wallpapers", ["usr/share/backgrounds"], "mixed"),
    ("kphotoalbum", ["usr/share/kphotoalbum/demo"], "photo"),
    ("libdlib19.1", ["usr/share/doc/libdlib19.1/examples/johns",
                     "usr/share/doc/libdlib19.1/examples/faces"], "photo"),
    ("opencv-doc", ["usr/share/doc/opencv-doc/examples/data"], "mixed"),
    ("visp-images-data", ["usr/share/visp-images-data/ViSP-images"], "mixed"),
    ("python3-skimage", ["usr/lib/python3/dist-packages/skimage/data"], "mixed"),
    ("darknet", ["usr/share/darknet/data"], "mixed"),
]
# Paths that hold no photographs whatever the test says (alphabets, coin faces, cartoons), and
# opencv-doc's stereo calibration series (28 shots of one chessboard: near duplicates the
# difference hash does not catch).
EXCLUDE = ["*/symbols/*", "*/cartoon/*", "*/labels/*", "*/icons/*", "*/examples/data/left*",
           "*/examples/data/right*"]
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MIN_SIDE, OPAQUE, FLAT_MAX, COLOURS_MIN, GREYS_MIN, HAMMING_MAX = 96, 0.15, 0.35, 256, 96, 6
SHORT_SIDE, QUALITY = 512, 95
FORMAT_VERSION = 1


def fail(msg, code=1):
    print(f"gather_photos.py: {msg}", file=sys.stderr)
    sys.exit(code)


def run(argv, what):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        fail(f"{what} failed ({' '.join(argv)}): {err}")
    return r.stdout


def download(package, debs):
    """The .deb of the candidate version of `package` in `debs` (apt-get download, cached)."""
    version = None
    policy = run(["apt-cache", "policy", package], "apt-cache policy")
    for line in policy.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split(":", 1)[1].strip()
    if not version or version == "(none)":
        fail(f"package {package}: not in the apt package lists (run apt-get update)")
    for f in os.listdir(debs):
        if f.startswith(package + "_") and f.endswith(".deb"):
            deb_version = run(["dpkg-deb", "-f", os.path.join(debs, f), "Version"], "dpkg-deb")
            if deb_version.strip() == version:
                return os.path.join(debs, f), version
    r = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=debs,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        fail(f"apt-get download {package}={version} failed: {err}")
    for f in os.listdir(debs):
        if f.startswith(package + "_") and f.endswith(".deb"):
            return os.path.join(debs, f), version
    fail(f"apt-get download {package}: no .deb appeared in {debs}")


def dep5_licences(text):
    """[(patterns, licence)] of a machine-readable debian/copyright, in file order."""
    stanzas, cur = [], {}
    key = None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
            continue
        if line[0] in " \t" and key:
            cur[key] += " " + line.strip()
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            cur[key] = value.strip()
    out = []
    for s in stanzas:
        if "files" in s and "license" in s:
            out.append((s["files"].split(), s["license"].split("\n")[0].strip()))
    return out


def licence_of(path, rules, fallback):
    """The licence of `path` (relative to the package root): DEP-5's last matching stanza."""
    found = None
    for patterns, lic in rules:
        for p in patterns:
            if fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, "*/" + p) \
                    or fnmatch.fnmatchcase(os.path.basename(path), p):
                found = lic
    return found or fallback


def package_licence(root, package):
    cp = os.path.join(root, "usr/share/doc", package, "copyright")
    if not os.path.exists(cp):
        return [], "unknown (no copyright file)"
    text = open(cp, encoding="utf-8", errors="replace").read()
    rules = dep5_licences(text)
    general = next((lic for pats, lic in rules if "*" in pats), None)
    if general is None:
        general = rules[0][1] if rules else f"see /usr/share/doc/{package}/copyright"
    return rules, general


def photo_test(img, kind):
    """(is a photograph, reason, features) for an RGBA image."""
    if min(img.size) < MIN_SIDE:
        return False, "small", {}
    thumb = img.copy()
    thumb.thumbnail((256, 256))
    a = np.asarray(thumb).astype(np.int32)
    rgb, opaque = a[..., :3], a[..., 3] > 200
    if opaque.mean() < OPAQUE:
        return False, "transparent", {}
    pair = opaque[:, 1:] & opaque[:, :-1]
    same = (np.abs(rgb[:, 1:] - rgb[:, :-1]).sum(-1) <= 3) & pair
    flat = float(same.sum()) / max(int(pair.sum()), 1)
    px = rgb[opaque]
    grey = np.percentile(px.max(1) - px.min(1), 99) < 8
    if grey:
        tones = len(np.unique(px[:, 1]))
        rich = tones >= GREYS_MIN
    else:
        q = px >> 3
        tones = len(np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2]))
        rich = tones >= COLOURS_MIN
    feats = {"flatness": round(flat, 4), "tones": int(tones), "grey": bool(grey)}
    if not rich:
        return False, "few tones", feats
    if kind != "photo" and flat >= FLAT_MAX:
        return False, "flat", feats
    return True, "", feats


def dhash(img):
    g = np.asarray(img.convert("L").resize((9, 8), Image.BILINEAR)).astype(np.int32)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def flatten_alpha(img):
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB"), True
    return img.convert("RGB"), False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--debs", default=None, help="where downloaded .deb files are kept")
    ap.add_argument("--packages", default="", help="comma-separated subset of the sources")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--sheet", default=None)
    a = ap.parse_args()
    sources = SOURCES
    if a.packages:
        wanted = a.packages.split(",")
        unknown = [p for p in wanted if p not in [s[0] for s in SOURCES]]
        if unknown:
            fail(f"--packages: unknown source package(s) {', '.join(unknown)} "
                 f"(known: {', '.join(s[0] for s in SOURCES)})", 2)
        sources = [s for s in SOURCES if s[0] in wanted]
    options = {"format": FORMAT_VERSION, "sources": [list(s[:2]) + [s[2]] for s in sources],
               "limit": a.limit}
    manifest_path = os.path.join(a.out, "manifest.json")
    if os.path.exists(manifest_path):
        try:
            old = json.load(open(manifest_path))
            if old.get("options") == options and all(
                    os.path.exists(os.path.join(a.out, im["file"])) for im in old["images"]):
                print(f"gather_photos: {a.out} is up to date ({len(old['images'])} photos)")
                return
        except (ValueError, KeyError):
            pass
    debs = a.debs or os.path.join(a.out + ".debs")
    os.makedirs(debs, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mpq-photos-")
    candidates, versions, licences = [], {}, {}
    try:
        for package, dirs, kind in sources:
            deb, version = download(package, debs)
            versions[package] = version
            root = os.path.join(work, package)
            run(["dpkg-deb", "-x", deb, root], f"unpacking {deb}")
            rules, general = package_licence(root, package)
            for d in dirs:
                base = os.path.join(root, d)
                if not os.path.isdir(base):
                    fail(f"package {package} {version}: no directory /{d} (the sources list "
                         "needs updating for this version)")
                for dirpath, dirnames, filenames in os.walk(base):
                    dirnames.sort()
                    for f in sorted(filenames):
                        full = os.path.join(dirpath, f)
                        rel = os.path.relpath(full, root)
                        if not f.lower().endswith(EXTENSIONS) or os.path.islink(full):
                            continue
                        if any(fnmatch.fnmatchcase("/" + rel, e) for e in EXCLUDE):
                            continue
                        candidates.append((package, version, kind, rel, full,
                                           licence_of(rel, rules, general)))
        candidates.sort(key=lambda c: (c[0], c[3]))
        kept, rejected, seen_pixels, hashes = [], {}, set(), []
        for package, version, kind, rel, full, lic in candidates:
            try:
                src = Image.open(full)
                src.load()
            except Exception:  # noqa: BLE001 - any undecodable file is rejected, counted
                rejected["undecodable"] = rejected.get("undecodable", 0) + 1
                continue
            ok, reason, feats = photo_test(src.convert("RGBA"), kind)
            if not ok:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            rgb, composited = flatten_alpha(src)
            pixels = hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()
            h = dhash(rgb)
            if pixels in seen_pixels or any(bin(h ^ o).count("1") <= HAMMING_MAX for o in hashes):
                rejected["duplicate"] = rejected.get("duplicate", 0) + 1
                continue
            seen_pixels.add(pixels)
            hashes.append(h)
            kept.append((package, version, rel, full, lic, rgb, composited, feats))
            if a.limit and len(kept) >= a.limit:
                break
        if not kept:
            fail("no photographs found in the sources")
        tmp_out = a.out + ".tmp"
        shutil.rmtree(tmp_out, ignore_errors=True)
        images = []
        for i, (package, version, rel, full, lic, rgb, composited, feats) in enumerate(kept):
            steps = ["composited on white"] if composited else []
            w, h = rgb.size
            if min(w, h) > SHORT_SIDE:
                s = SHORT_SIDE / min(w, h)
                rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
                steps.append(f"resized to {SHORT_SIDE} px on the short side (LANCZOS)")
            buf = io.BytesIO()
            rgb.save(buf, "JPEG", quality=QUALITY)
            steps.append(f"JPEG quality {QUALITY}")
            data = buf.getvalue()
            name = f"images/{package}/{i:05d}.jpg"
            os.makedirs(os.path.join(tmp_out, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(tmp_out, name), "wb") as fh:
                fh.write(data)
            images.append({"file": name, "package": package, "version": version,
                           "source_path": "/" + rel,
                           "source_sha256": hashlib.sha256(open(full, "rb").read()).hexdigest(),
                           "licence": lic, "sha256": hashlib.sha256(data).hexdigest(),
                           "width": rgb.size[0], "height": rgb.size[1],
                           "transform": ", ".join(steps), "features": feats})
        order = sorted(range(len(images)), key=lambda k: hashlib.sha256(
            (images[k]["package"] + images[k]["source_path"]).encode()).hexdigest())
        for pos, k in enumerate(order):
            images[k]["split"] = "calibration" if pos % 4 == 0 else "eval"
        per_package = {}
        for im in images:
            per_package[im["package"]] = per_package.get(im["package"], 0) + 1
        manifest = {
            "format": "mpq-photos", "version": FORMAT_VERSION, "options": options,
            "created_by": "scripts/gather_photos.py",
            "criteria": {"min_side": MIN_SIDE, "min_opaque": OPAQUE, "flatness_max": FLAT_MAX,
                         "colours_min_5bit": COLOURS_MIN, "grey_levels_min": GREYS_MIN,
                         "dhash_hamming_max": HAMMING_MAX},
            "split_rule": "sorted by SHA-256 of '<package>/<source path>': every 4th "
                          "(positions 0, 4, ...) calibration, the rest eval",
            "packages": {p: {"version": versions[p], "photos": per_package.get(p, 0)}
                         for p in versions},
            "candidates": len(candidates), "rejected": rejected,
            "counts": {"total": len(images),
                       "calibration": sum(im["split"] == "calibration" for im in images),
                       "eval": sum(im["split"] == "eval" for im in images)},
            "images": images,
        }
        with open(os.path.join(tmp_out, "manifest.json"), "w") as fh:
            json.dump(manifest, fh, indent=1)
        shutil.rmtree(a.out, ignore_errors=True)
        os.replace(tmp_out, a.out)
        if a.sheet:
            contact_sheet([os.path.join(a.out, im["file"]) for im in images], a.sheet)
        print(f"gather_photos: {len(images)} photos ({manifest['counts']['calibration']} "
              f"calibration, {manifest['counts']['eval']} eval) from {len(candidates)} "
              f"candidates in {len(versions)} packages -> {a.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def contact_sheet(files, out, per_row=16, th=96):
    rows = (len(files) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * th, rows * th), "white")
    for i, f in enumerate(files):
        im = Image.open(f)
        im.thumbnail((th, th))
        sheet.paste(im, ((i % per_row) * th, (i // per_row) * th))
    sheet.save(out)


if __name__ == "__main__":
    main()
