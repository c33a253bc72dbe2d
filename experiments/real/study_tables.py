#!/usr/bin/env python3
"""The real-network study's tables (docs/method.md, "Every method on EfficientNet-Lite0") from
a sweep's aggregate/trials.csv (`mpq aggregate DIR` writes it).

One Markdown table per activation setting: a row per method label (in sweep order), a column
per (weight bits, granularity) present, each cell "agreement % ± sample std over seeds / KL
(n seeds)"; a cell of a method with extra MACs adds them; rows with fewer seeds than the most
say so. A second table gives the mean trial time (statistics + quantization seconds) per cell.

usage: study_tables.py results/real_lite0 [--bits 4,3] [--time] [--split CONFIG_COLUMN]
"""
import argparse
import csv
import math
import os
from collections import OrderedDict, defaultdict


def mean_sd(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, sd


def cell(rs):
    """agreement % ± sd / KL (+extra MACs) [n=seeds if fewer than 3]."""
    if not rs:
        return "–"
    m, sd = mean_sd([100 * float(r["agreement"]) for r in rs])
    kl, _ = mean_sd([float(r["kl"]) for r in rs])
    macs, _ = mean_sd([float(r["extra_macs_pct"] or 0) for r in rs])
    s = f"{m:.1f}" + (f" ± {sd:.1f}" if len(rs) > 1 else "") + f" / {kl:.2f}"
    if macs > 0.05:
        s += f" (+{macs:.0f}%)"
    return s + (f" [n={len(rs)}]" if len(rs) < 3 else "")


def seconds(rs):
    """mean statistics-pass + quantization seconds."""
    if not rs:
        return "–"
    return f"{mean_sd([float(r['quant_seconds']) + float(r['calibration_seconds']) for r in rs])[0]:.1f}"


def table(labels, cols, value):
    """One Markdown table: a row per label with any value, a column per (bits, granularity)."""
    print("| method | " + " | ".join(f"W{b} {g.replace('_', ' ')}" for b, g in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for lab in labels:
        out = [value(lab, c) for c in cols]
        if any(o != "–" for o in out):
            print(f"| {lab} | " + " | ".join(out) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--bits", default="", help="weight bits to show, e.g. 4,3 (default: all)")
    ap.add_argument("--time", action="store_true", help="also the trial-time table")
    ap.add_argument("--split", default="", help="a config column whose value joins the row label, "
                    "e.g. weights.multipoint.budget for real_lite0_mixed.json's budgets")
    a = ap.parse_args()
    with open(os.path.join(a.dir, "aggregate", "trials.csv")) as f:
        rows = list(csv.DictReader(f))
    if a.split:
        for r in rows:
            value = str(r[a.split])
            if value.startswith("pretrained:"):  # a model: its short name is the label
                r["label"] = f"{r['label']} ({value.split(':', 1)[1]})"
            else:
                r["label"] = f"{r['label']} @ {a.split.split('.')[-1]} {value}"
    want = {int(b) for b in a.bits.split(",") if b}
    labels = list(OrderedDict.fromkeys(r["label"] for r in rows))
    cells = defaultdict(list)
    cols = OrderedDict()
    for r in rows:
        bits = int(r["weights.bits"])
        if want and bits not in want:
            continue
        key = (bits, r["weights.granularity"])
        cols[key] = True
        cells[(r.get("activations.bits", "32"), r["label"], key)].append(r)
    cols = sorted(cols, key=lambda k: (-k[0], k[1] != "per_layer"))
    for act in sorted({r.get("activations.bits", "32") for r in rows}, key=lambda s: -int(s)):
        title = "weight-only" if int(act) >= 32 else f"W·A{act}"
        print(f"\n**{title}**: agreement % ± sd / KL, over calibration seeds; extra MACs where > 0\n")
        table(labels, cols, lambda lab, c: cell(cells.get((act, lab, c), [])))
        if a.time:
            print(f"\n{title}: mean seconds per trial (statistics pass + quantization; "
                  "the pass is 0 when the statistics came from the cache)\n")
            table(labels, cols, lambda lab, c: seconds(cells.get((act, lab, c), [])))


if __name__ == "__main__":
    main()
