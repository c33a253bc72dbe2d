"""Generates real image files for the data tests, from the photos Debian's darknet package ships
(/usr/share/darknet/data/*.jpg), with PIL.

usage:
  make_images.py variants OUT_DIR
      OUT_DIR/all/<name>.<ext>: every JPEG flavour PIL reads (chroma subsampling 4:4:4, 4:2:2,
      4:2:0, progressive, grayscale, CMYK, EXIF-rotated), PNG content named .JPEG (RGBA, palette,
      gray), and sizes that hit the resize/crop rounding cases (upscaling, odd margins, extreme
      aspect ratios, exactly the resize size, smaller than the crop).
  make_images.py imagenet OUT_DIR CLASSES TRAIN_PER_CLASS VAL_PER_CLASS [--size WxH]
      The same images in the three ImageNet layouts, with real wnids (the first CLASSES of the
      ILSVRC-2012 classes in ILSVRC2012_ID order, darknet's imagenet.labels.list):
        OUT_DIR/folder/{train,val}/<wnid>/...
        OUT_DIR/flat/{train/<wnid>/..., val/ILSVRC2012_val_<n>.JPEG,
                      ILSVRC2012_devkit_t12/data/{ILSVRC2012_validation_ground_truth.txt, meta.mat}}
        OUT_DIR/flat_txt/ (as flat, with synsets.txt instead of meta.mat)
        OUT_DIR/kaggle/{LOC_synset_mapping.txt, LOC_val_solution.csv,
                        ILSVRC/Data/CLS-LOC/{train/<wnid>/..., val/...}}
      and OUT_DIR/labels.json: the expected label of every val image by its number.
  make_images.py jpegs OUT_DIR COUNT [--size WxH]
      COUNT ImageNet-like JPEGs (quality 90) in OUT_DIR/<class>/ for the benchmarks.
  make_images.py fmnist_png OUT_DIR
      The Fashion-MNIST test split (Debian's idx files) as gray PNGs, OUT_DIR/<label>/<index>.png.
"""
import json
import os
import random
import sys

import numpy as np
from PIL import Image

DARKNET = "/usr/share/darknet/data"
PHOTOS = ["dog", "horses", "eagle", "giraffe", "kite", "person", "scream"]


def photos():
    return [Image.open(f"{DARKNET}/{p}.jpg").convert("RGB") for p in PHOTOS]


def crop_to(img, w, h, rng):
    """A random crop of `img` with aspect w:h, resized to w x h (real photo content)."""
    W, H = img.size
    scale = min(W / w, H / h) * rng.uniform(0.5, 1.0)
    cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
    x0, y0 = rng.randint(0, W - cw), rng.randint(0, H - ch)
    return img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)


def variants(out):
    d = os.path.join(out, "all")
    os.makedirs(d, exist_ok=True)
    rng = random.Random(0)
    ph = photos()
    dog = ph[0]
    for i, p in enumerate(ph):  # the originals as they are
        p.save(f"{d}/orig_{PHOTOS[i]}.jpg", quality=95)
    for sub, name in [(0, "444"), (1, "422"), (2, "420")]:
        dog.save(f"{d}/sub{name}.JPEG", quality=90, subsampling=sub)
    dog.save(f"{d}/progressive.JPEG", quality=85, progressive=True)
    ph[2].save(f"{d}/q30.jpeg", quality=30)
    ph[1].convert("L").save(f"{d}/gray.JPEG", quality=90)
    ph[3].convert("CMYK").save(f"{d}/cmyk.JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: PIL ignores it, so must we
    ph[4].save(f"{d}/exif_rot.JPEG", quality=90, exif=exif)
    rgba = ph[5].convert("RGBA")
    a = np.array(rgba)
    a[..., 3] = (np.arange(a.shape[1]) % 256)[None, :]
    Image.fromarray(a, "RGBA").save(f"{d}/rgba_png.JPEG", format="PNG")
    ph[6].convert("P", palette=Image.ADAPTIVE, colors=64).save(f"{d}/palette_png.JPEG", format="PNG")
    ph[0].convert("L").save(f"{d}/gray_png.JPEG", format="PNG")
    ph[1].save(f"{d}/plain.png")
    # Sizes: upscaling, odd margins, extreme aspect ratios, exactly 256, smaller than 224.
    for w, h in [(100, 80), (80, 100), (257, 300), (300, 257), (373, 500), (500, 383),
                 (1000, 60), (60, 1000), (256, 256), (256, 341), (341, 256), (17, 23), (224, 224),
                 (225, 225), (511, 513), (2000, 1500)]:
        crop_to(ph[rng.randrange(len(ph))], w, h, rng).save(f"{d}/size_{w}x{h}.JPEG", quality=90)
    return d


def imagenet(out, classes, train_per, val_per, size):
    wnids = [l.split()[0] for l in open(f"{DARKNET}/imagenet.labels.list")][:classes]
    order = sorted(wnids)
    rng = random.Random(1)
    ph = photos()
    w, h = size

    def img():
        ww, hh = max(16, int(w * rng.uniform(0.6, 1.4))), max(16, int(h * rng.uniform(0.6, 1.4)))
        return crop_to(ph[rng.randrange(len(ph))], ww, hh, rng)

    # val images: number n (1-based) belongs to class ids[n-1] (an ILSVRC2012_ID, 1-based).
    val = []
    for c in range(classes):
        for _ in range(val_per):
            val.append(c + 1)
    rng.shuffle(val)
    val_imgs = [img() for _ in val]
    train_imgs = {c: [img() for _ in range(train_per)] for c in range(classes)}
    labels = {}
    for n, cid in enumerate(val, 1):
        labels[n] = order.index(wnids[cid - 1])

    def train_tree(root):
        for c in range(classes):
            os.makedirs(f"{root}/{wnids[c]}", exist_ok=True)
            for k, im in enumerate(train_imgs[c]):
                im.save(f"{root}/{wnids[c]}/{wnids[c]}_{k + 1}.JPEG", quality=90)

    def flat_val(root):
        os.makedirs(root, exist_ok=True)
        for n, im in enumerate(val_imgs, 1):
            im.save(f"{root}/ILSVRC2012_val_{n:08d}.JPEG", quality=90)

    # folder layout
    train_tree(f"{out}/folder/train")
    for n, (cid, im) in enumerate(zip(val, val_imgs), 1):
        dd = f"{out}/folder/val/{wnids[cid - 1]}"
        os.makedirs(dd, exist_ok=True)
        im.save(f"{dd}/ILSVRC2012_val_{n:08d}.JPEG", quality=90)
    # flat layout with the devkit (meta.mat written by scipy: a real MAT v5 file)
    import scipy.io
    for name in ["flat", "flat_txt"]:
        train_tree(f"{out}/{name}/train")
        flat_val(f"{out}/{name}/val")
        dk = f"{out}/{name}/ILSVRC2012_devkit_t12/data"
        os.makedirs(dk, exist_ok=True)
        with open(f"{dk}/ILSVRC2012_validation_ground_truth.txt", "w") as f:
            f.writelines(f"{cid}\n" for cid in val)
    dk = f"{out}/flat/ILSVRC2012_devkit_t12/data"
    # Leaf synsets (the classes) plus one parent synset with children, as in the real meta.mat.
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"),
          ("num_children", "O"), ("children", "O"), ("wordnet_height", "O"),
          ("num_train_images", "O")]
    syn = np.zeros((classes + 1, 1), dtype=dt)
    for i in range(classes):
        syn[i, 0] = (np.array([[i + 1]], dtype=np.uint16), np.array([wnids[i]]), np.array(["w"]),
                     np.array(["g"]), np.array([[0]], dtype=np.uint8), np.zeros((1, 0)),
                     np.array([[0]], dtype=np.uint8), np.array([[train_per]], dtype=np.uint16))
    syn[classes, 0] = (np.array([[classes + 1]], dtype=np.uint16), np.array(["n00001740"]),
                       np.array(["entity"]), np.array(["g"]), np.array([[classes]], dtype=np.uint8),
                       np.arange(1, classes + 1, dtype=np.uint16)[None, :],
                       np.array([[1]], dtype=np.uint8), np.array([[0]], dtype=np.uint16))
    scipy.io.savemat(f"{dk}/meta.mat", {"synsets": syn}, do_compression=True)
    with open(f"{out}/flat_txt/ILSVRC2012_devkit_t12/data/synsets.txt", "w") as f:
        f.writelines(w + "\n" for w in wnids)
    # kaggle layout
    k = f"{out}/kaggle"
    train_tree(f"{k}/ILSVRC/Data/CLS-LOC/train")
    os.makedirs(f"{k}/ILSVRC/Data/CLS-LOC/val", exist_ok=True)
    rows = []
    for n, (cid, im) in enumerate(zip(val, val_imgs), 1):
        stem = f"ILSVRC2012_val_{n:08d}"
        im.save(f"{k}/ILSVRC/Data/CLS-LOC/val/{stem}.JPEG", quality=90)
        wn = wnids[cid - 1]
        rows.append(f"{stem},{wn} 10 20 100 120 {wn} 5 5 50 60 \n")
    rng.shuffle(rows)  # the real CSV is not in image order
    with open(f"{k}/LOC_val_solution.csv", "w") as f:
        f.write("ImageId,PredictionString\n")
        f.writelines(rows)
    with open(f"{k}/LOC_synset_mapping.txt", "w") as f:
        f.writelines(f"{w} words for {w}\n" for w in order)
    with open(f"{out}/labels.json", "w") as f:
        json.dump({"val": [labels[n] for n in range(1, len(val) + 1)], "wnids": order}, f)


def jpegs(out, count, size):
    rng = random.Random(2)
    ph = photos()
    w, h = size
    for i in range(count):
        d = f"{out}/c{i % 10}"
        os.makedirs(d, exist_ok=True)
        crop_to(ph[rng.randrange(len(ph))], w, h, rng).save(f"{d}/img{i:06d}.JPEG", quality=90)


def fmnist_png(out):
    import gzip
    root = "/usr/share/datasets/fashion-mnist"
    img = gzip.open(f"{root}/t10k-images-idx3-ubyte.gz").read()[16:]
    lbl = gzip.open(f"{root}/t10k-labels-idx1-ubyte.gz").read()[8:]
    x = np.frombuffer(img, dtype=np.uint8).reshape(-1, 28, 28)
    for c in range(10):
        os.makedirs(f"{out}/{c}", exist_ok=True)
    for i, (im, c) in enumerate(zip(x, lbl)):
        Image.fromarray(im, "L").save(f"{out}/{c}/{i:05d}.png")


def parse_size(args):
    if "--size" in args:
        w, h = args[args.index("--size") + 1].split("x")
        return int(w), int(h)
    return 500, 375


if __name__ == "__main__":
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "variants":
        variants(out)
    elif cmd == "imagenet":
        imagenet(out, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), parse_size(sys.argv))
    elif cmd == "fmnist_png":
        fmnist_png(out)
    elif cmd == "jpegs":
        jpegs(out, int(sys.argv[3]), parse_size(sys.argv))
    else:
        sys.exit(__doc__)
