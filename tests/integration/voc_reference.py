"""Independent references for mpq's detection pipeline (written for the tests, from the VOC
devkit's VOCevaldet rules and torchvision's documented NMS; shares no code with mpq).

usage:
  voc_reference.py random-detections VOC_DIR SPLIT OUT.h5 SEED
      Random detections over a VOC split, made to hit the rules' corner cases: jittered copies of
      ground-truth boxes (some exactly at IoU 0.5), duplicates of one box, detections on difficult
      boxes, pure false positives, classes without detections, and scores rounded to 2 decimals
      (ties). Writes /detections [M, 7] (image, class, score, x1, y1, x2, y2).
  voc_reference.py score VOC_DIR SPLIT DETS.h5 IOU STRICT [THRESHOLDS]
      Prints JSON {"map_voc07", "map_voc12", "ap_voc07": [...], "ap_voc12": [...]} computed here.
      THRESHOLDS: the VOC2007 recall thresholds: devkit (default; VOCevaldet's `for t=0:0.1:1`
      as MATLAB's colon builds it, from both ends: k * 0.1 up to the middle, 1 - (10 - k) * 0.1
      after), exact (k / 10) or numpy (np.arange(0, 1.1, 0.1), as py-faster-rcnn).
  voc_reference.py compare MPQ.json REF.json TOL
      Exits 1 unless every number agrees within TOL (absolute; NaN == NaN).
  voc_reference.py nms-cases OUT.json SEED
      Random boxes with tied scores, and torchvision.ops.nms's kept indices for several IoU
      thresholds (the reference for mpq's own torchvision::nms).
  voc_reference.py detector-outputs MODEL.pt VOC_DIR SPLIT N OUT.h5
      Runs a scripted torchvision detector in PyTorch (with torchvision's ops) on the first N
      images of a VOC split, PIL-decoded as mpq does (preset "none"), and writes every image's
      detections in VOC coordinates (boxes + 1), for comparison with `mpq eval --save-logits`.
  voc_reference.py compare-detections MPQ.h5 REF.h5 MAX_PER_IMAGE
      Exits 1 unless mpq's detections (`mpq eval --save-logits`) are torchvision's, compared as
      sets per image, not by order: two implementations that compute scores in another float
      order rank near-tied detections either way. Each detection must have a partner of the same
      label with score within 1e-4 and box within 1e-2 px. Tolerances: mpq runs the BN-folded
      graph, PyTorch the original; through SSDlite's ~60 layers scores differed by up to 1.03e-5
      and boxes by 1e-4 px (10x margins). A detection may lack a partner only where a near-tie
      decided (score within 1e-4 of the image's lowest kept one when the image has
      MAX_PER_IMAGE detections: the top-k cut; or an unpartnered detection of the same label and
      near-equal score on the other side: an NMS decision between near-tied boxes), and at most
      1% of them.
"""
import json
import math
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np

CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
           "train", "tvmonitor"]


def load_split(voc, split):
    ids = [l.strip() for l in open(f"{voc}/ImageSets/Main/{split}.txt") if l.strip()]
    gts = []
    for i in ids:
        root = ET.parse(f"{voc}/Annotations/{i}.xml").getroot()
        objs = []
        for o in root.findall("object"):
            b = o.find("bndbox")
            d = o.find("difficult")
            objs.append((CLASSES.index(o.find("name").text),
                         [float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")],
                         int(d.text) if d is not None else 0))
        gts.append(objs)
    return ids, gts


def random_detections(voc, split, out, seed):
    rng = np.random.default_rng(seed)
    ids, gts = load_split(voc, split)
    rows = []
    skip_class = 19  # never detected: its AP must be 0 (or NaN without positives)
    for im, objs in enumerate(gts):
        for c, (x1, y1, x2, y2), diff in objs:
            if c == skip_class:
                continue
            w, h = x2 - x1 + 1, y2 - y1 + 1
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 0.15, 4) * [w, h, w, h]
                rows.append([im, c, round(rng.random(), 2), x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3]])
            if rng.random() < 0.3:  # an exact duplicate: the second is a false positive
                s = round(rng.random(), 2)
                rows += [[im, c, s, x1, y1, x2, y2], [im, c, s, x1, y1, x2, y2]]
            if rng.random() < 0.2 and w >= 2:
                # IoU exactly 0.5 with the +1 convention: keep the height, halve the width.
                rows.append([im, c, round(rng.random(), 2), x1, y1, x1 + (w / 2) - 1, y2])
            if rng.random() < 0.1:  # the wrong class on this box
                rows.append([im, (c + 1) % 19, round(rng.random(), 2), x1, y1, x2, y2])
        for _ in range(rng.integers(0, 3)):  # false positives anywhere
            x, y = rng.uniform(1, 100, 2)
            rows.append([im, int(rng.integers(0, 19)), round(rng.random(), 2), x, y,
                         x + rng.uniform(3, 60), y + rng.uniform(3, 60)])
    with h5py.File(out, "w") as f:
        f["detections"] = np.array(rows, dtype=np.float64).reshape(-1, 7)


def iou(bb, gt):
    ixmin, iymin = np.maximum(gt[:, 0], bb[0]), np.maximum(gt[:, 1], bb[1])
    ixmax, iymax = np.minimum(gt[:, 2], bb[2]), np.minimum(gt[:, 3], bb[3])
    iw, ih = np.maximum(ixmax - ixmin + 1.0, 0.0), np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) +
           (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0) - inters)
    return inters / uni


def thresholds(kind):
    if kind == "exact":
        return [k / 10.0 for k in range(11)]
    if kind == "numpy":
        return [float(t) for t in np.arange(0.0, 1.1, 0.1)]
    assert kind == "devkit", kind
    return [k * 0.1 if k < 5 else 0.5 if k == 5 else 1.0 - (10 - k) * 0.1 for k in range(11)]


def score(voc, split, dets_path, thr, strict, kind="devkit"):
    ids, gts = load_split(voc, split)
    dets = h5py.File(dets_path, "r")["detections"][()]
    ap07, ap12 = [], []
    for c in range(20):
        R = {}
        npos = 0
        for im, objs in enumerate(gts):
            bb = np.array([o[1] for o in objs if o[0] == c]).reshape(-1, 4)
            dif = np.array([o[2] for o in objs if o[0] == c], dtype=bool)
            R[im] = {"bb": bb, "dif": dif, "det": np.zeros(len(bb), bool)}
            npos += int((~dif).sum())
        D = dets[dets[:, 1] == c]
        order = np.arange(len(D))
        # descending score; ties: image index, then input order (mpq's documented tie rule)
        order = np.lexsort((order, D[:, 0], -D[:, 2])) if len(D) else order
        tp, fp = np.zeros(len(D)), np.zeros(len(D))
        for k, d in enumerate(order):
            r = R[int(D[d, 0])]
            ovmax = -np.inf
            if len(r["bb"]):
                ov = iou(D[d, 3:7], r["bb"])
                jmax = int(np.argmax(ov))
                ovmax = ov[jmax]
            hit = ovmax > thr if strict else ovmax >= thr
            if hit:
                if not r["dif"][jmax]:
                    if not r["det"][jmax]:
                        tp[k] = 1
                        r["det"][jmax] = True
                    else:
                        fp[k] = 1
            else:
                fp[k] = 1
        if npos == 0:
            ap07.append(float("nan"))
            ap12.append(float("nan"))
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        rec = ctp / npos
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        a = 0.0
        for t in thresholds(kind):
            a += (np.max(prec[rec >= t]) if np.any(rec >= t) else 0.0) / 11.0
        ap07.append(a)
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(len(mpre) - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap12.append(float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])))
    valid = [k for k in range(20) if not math.isnan(ap07[k])]
    print(json.dumps({"map_voc07": float(np.mean([ap07[k] for k in valid])),
                      "map_voc12": float(np.mean([ap12[k] for k in valid])),
                      "ap_voc07": ap07, "ap_voc12": ap12}))


def compare(a_path, b_path, tol):
    a, b = json.load(open(a_path)), json.load(open(b_path))
    bad = 0

    def num(x):
        return float("nan") if x is None else float(x)

    for k in ["map_voc07", "map_voc12", "ap_voc07", "ap_voc12"]:
        xs, ys = a[k], b[k]
        xs, ys = (xs, ys) if isinstance(xs, list) else ([xs], [ys])
        for i, (x, y) in enumerate(zip(xs, ys)):
            x, y = num(x), num(y)
            if not ((math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol):
                print(f"FAIL {k}[{i}]: mpq {x!r} vs reference {y!r}")
                bad += 1
    print(f"{'ok' if not bad else 'FAIL'}: mAP VOC07 {num(a['map_voc07']):.6f} / "
          f"VOC12 {num(a['map_voc12']):.6f}, every AP within {tol}")
    return bad == 0


def nms_cases(out, seed):
    import torch
    import torchvision
    rng = np.random.default_rng(seed)
    cases = []
    for case in range(20):
        n = int(rng.integers(1, 400))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(1, 80, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        if case % 3 == 0:  # clusters of near-identical boxes
            boxes[n // 2:] = boxes[: n - n // 2] + rng.normal(0, 1, (n - n // 2, 4)).astype(np.float32)
        scores = np.round(rng.random(n), 1 if case % 2 else 3).astype(np.float32)  # many ties
        keep = {}
        for t in ["0.3", "0.5", "0.7"]:
            keep[t] = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                          float(t)).tolist()
        # float32 values as exact decimal strings of their doubles: JSON round-trips them
        cases.append({"boxes": [float(v) for v in boxes.reshape(-1)],
                      "scores": [float(v) for v in scores], "keep": keep})
    json.dump(cases, open(out, "w"))


def detector_outputs(model, voc, split, n, out):
    import torch
    import torchvision  # noqa: F401  (registers torchvision::nms)
    import torchvision.transforms.functional as TF
    from PIL import Image
    ids = [l.strip() for l in open(f"{voc}/ImageSets/Main/{split}.txt") if l.strip()][:n]
    m = torch.jit.load(model).eval()
    rows = []
    with torch.no_grad():
        for k, i in enumerate(ids):
            x = TF.to_tensor(Image.open(f"{voc}/JPEGImages/{i}.jpg").convert("RGB"))
            _, dets = m([x])
            d = dets[0]
            for b, s, l in zip(d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy()):
                rows.append([k, l, s, *(b + 1.0)])
    with h5py.File(out, "w") as f:
        f["detections"] = np.array(rows, dtype=np.float64).reshape(-1, 7)


def compare_detections(mpq_path, ref_path, max_per_image):
    eps_score, eps_box = 1e-4, 1e-2
    a = h5py.File(mpq_path, "r")
    A = np.concatenate([a["det_image"][()][:, None], a["det_label"][()][:, None] + 1,
                        a["det_score"][()][:, None], a["det_box"][()]], 1)
    B = h5py.File(ref_path, "r")["detections"][()]
    problems, unpartnered = [], 0
    for img in np.unique(np.concatenate([A[:, 0], B[:, 0]])):
        ra, rb = A[A[:, 0] == img], B[B[:, 0] == img]
        used = np.zeros(len(rb), bool)
        lone_a = []
        for r in ra[np.argsort(-ra[:, 2], kind="stable")]:
            ok = (~used & (rb[:, 1] == r[1]) & (np.abs(rb[:, 2] - r[2]) <= eps_score)
                  & (np.abs(rb[:, 3:] - r[3:]).max(1, initial=0) <= eps_box))
            hit = np.flatnonzero(ok)
            if len(hit):
                used[hit[0]] = True
            else:
                lone_a.append(r)
        lone_b = list(rb[~used])
        for mine, other, rows in [(lone_a, lone_b, ra), (lone_b, lone_a, rb)]:
            for r in mine:
                unpartnered += 1
                at_cut = len(rows) >= max_per_image and r[2] <= rows[:, 2].min() + eps_score
                nms_tie = any(o[1] == r[1] and abs(o[2] - r[2]) <= eps_score for o in other)
                if not (at_cut or nms_tie):
                    problems.append(f"image {int(img)}: {r.tolist()} has no partner and no near-tie")
    n = max(len(A), len(B))
    if unpartnered > 0.01 * n:
        problems.append(f"{unpartnered} of {n} detections without a partner (> 1%)")
    if len(A) < 100:
        problems.append(f"only {len(A)} detections: the comparison means little")
    for p in problems[:10]:
        print(p)
    if not problems:
        print(f"{len(A)} vs {len(B)} detections, {unpartnered} near-tie decisions")
    return not problems


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "random-detections":
        random_detections(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "score":
        score(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6] == "1",
              sys.argv[7] if len(sys.argv) > 7 else "devkit")
    elif cmd == "compare":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3], float(sys.argv[4])) else 1)
    elif cmd == "nms-cases":
        nms_cases(sys.argv[2], int(sys.argv[3]))
    elif cmd == "compare-detections":
        sys.exit(0 if compare_detections(sys.argv[2], sys.argv[3], int(sys.argv[4])) else 1)
    elif cmd == "detector-outputs":
        detector_outputs(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(__doc__)
