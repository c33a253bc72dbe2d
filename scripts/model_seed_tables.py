#!/usr/bin/env python3
"""Tables and per-model claim checks for a sweep over independently trained default models.

Reads <dir>/aggregate/trials.csv written by `mpq aggregate <dir>` (WITHOUT --pool-model-seeds, so
that model.path still names the training seed: default:<arch>[@seed=N]) and prints Markdown:

1. per (architecture, granularity): top-1 % as mean +- sample std over every (training seed,
   calibration seed) pair, one column per (weight bits, activation bits), cells
   "without / with bias correction" when the sweep has a bias_correction axis;
2. where the spread comes from: sd of the per-model means vs root mean within-model variance
   (the same split as `mpq aggregate --pool-model-seeds`'s summary);
3. with --per-model, every cell per training seed; with a bias_correction axis, how often it
   raises each method's top-1 per model;
4. per-model checks of "multipoint beats the baselines at matched overhead": for every model,
   setting and multipoint budget, the best baseline that costs no more extra MACs than the
   multipoint trial plus --slack points (default 3: OCS at the nominal ratio of the multipoint
   budget costs more MACs, its ratio being rounded up to whole input channels per layer),
   compared on the mean over calibration seeds.

Only the Python standard library. Example:
  build/mpq aggregate results/model_seeds_baselines
  python3 scripts/model_seed_tables.py results/model_seeds_baselines
"""
import argparse
import csv
import math
import os
import re
import sys
from collections import defaultdict

MODEL_RE = re.compile(r"^(?:default:)?([A-Za-z0-9_]+)(?:@seed=(\d+))?$")


def parse_model(path):
    """default:<arch>[@seed=N] -> (arch, N); any other model path is its own model, seed 0."""
    m = MODEL_RE.match(path)
    if m:
        return m.group(1), int(m.group(2) or 0)
    return os.path.splitext(os.path.basename(path))[0] or path, 0


def mean(xs):
    return sum(xs) / len(xs)


def sample_sd(xs):
    if len(xs) < 2:
        return 0.0
    mu = mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1))


def fmt(xs):
    return f"{100 * mean(xs):.2f} ± {100 * sample_sd(xs):.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="sweep results directory (aggregate/trials.csv inside)")
    ap.add_argument("--slack", type=float, default=3.0,
                    help="extra-MACs points a baseline may cost beyond the multipoint trial "
                         "(3: OCS at the same nominal ratio as a 2/5/10%% MACs budget)")
    ap.add_argument("--min-bits", type=int, default=3,
                    help="claim checks only at weight bits >= this (2 bits collapse)")
    ap.add_argument("--per-model", action="store_true",
                    help="also print every cell per training seed (mean over calibration seeds)")
    args = ap.parse_args()

    path = f"{args.dir}/aggregate/trials.csv"
    try:
        rows = list(csv.DictReader(open(path, newline="")))
    except OSError as e:
        sys.exit(f"{path}: cannot read ({e.strerror}); run `mpq aggregate {args.dir}` first")
    if not rows:
        sys.exit(f"{path}: no trials")
    for k in ["label", "weights.bits", "top1", "extra_macs_pct"]:
        if k not in rows[0]:
            sys.exit(f"{path}: no column '{k}' (expected a classification sweep with labels)")

    # Keys that were not swept are not columns: one model, one granularity.
    has_bc = "bias_correction" in rows[0]
    has_act = "activations.bits" in rows[0]
    # (arch, gran, bits, label, bc) -> model seed -> [top1 over calibration seeds]
    cells = defaultdict(lambda: defaultdict(list))
    macs = defaultdict(list)
    labels, archs, grans, bitcols = [], [], [], []
    skipped = 0
    for r in rows:
        if r["top1"] == "":
            skipped += 1
            continue
        arch, mseed = parse_model(r.get("model.path", "model"))
        r.setdefault("weights.granularity", "")
        bits = f"W{r['weights.bits']}" + (f"A{r['activations.bits']}" if has_act else "")
        bc = r["bias_correction"] == "true" if has_bc else False
        key = (arch, r["weights.granularity"], bits, r["label"], bc)
        cells[key][mseed].append(float(r["top1"]))
        macs[(arch, r["weights.granularity"], r["label"])].append(float(r["extra_macs_pct"] or 0))
        for lst, v in ((labels, r["label"]), (archs, arch), (grans, r["weights.granularity"]),
                       (bitcols, bits)):
            if v not in lst:
                lst.append(v)
    if not cells:
        sys.exit(f"{path}: no finished trials with a top-1")
    if skipped:
        print(f"({skipped} rows without a top-1 skipped)\n")

    def pooled(key):
        return [x for xs in cells.get(key, {}).values() for x in xs]

    def per_model_means(key):
        return {s: mean(xs) for s, xs in cells.get(key, {}).items()}

    def weight_bits(bitcol):
        return int(re.match(r"W(\d+)", bitcol).group(1))

    bcs = [False, True] if has_bc else [False]

    def method_tables(with_macs, cell, footer=None):
        """One table per (architecture, granularity): a row per method, a column per bits
        setting, cells "cell(key without bias correction) / cell(key with)"; then footer()."""
        for arch in archs:
            for gran in grans:
                print(f"\n**{arch}" + (f", {gran.replace('_', ' ')}" if gran else "") + "**\n")
                print("| method | " + ("extra MACs | " if with_macs else "")
                      + " | ".join(bitcols) + " |")
                print("|---|" + ("---:|" if with_macs else "") + "---:|" * len(bitcols))
                for label in labels:
                    m = macs.get((arch, gran, label))
                    if not m:
                        continue
                    out = [" / ".join(cell((arch, gran, b, label, bc)) for bc in bcs)
                           for b in bitcols]
                    print(f"| {label} | " + (f"{mean(m):.1f}% | " if with_macs else "")
                          + " | ".join(out) + " |")
                if footer:
                    footer(arch, gran)

    print("## Top-1 %, mean ± sample std over (training seed, calibration seed) pairs")
    if has_bc:
        print("Cells: without / with bias correction.")

    def replicates(arch, gran):
        n = {len(cells[k]) for k in cells if k[0] == arch and k[1] == gran}
        c = {len(v) for k in cells if k[0] == arch and k[1] == gran for v in cells[k].values()}
        print(f"\n({sorted(n)} models x {sorted(c)} calibration seeds per cell)")

    method_tables(True, lambda key: fmt(p) if (p := pooled(key)) else "–", replicates)

    print("\n## Where the spread comes from (top-1 points: sd of per-model means / "
          "root mean within-model variance)\n")
    print("| model | granularity | bits | bias corr. | " + " | ".join(labels) + " |")
    print("|---|---|---|---|" + "---|" * len(labels))
    for arch in archs:
        for gran in grans:
            for b in bitcols:
                for bc in bcs:
                    out = []
                    for label in labels:
                        d = cells.get((arch, gran, b, label, bc))
                        if not d:
                            out.append("–")
                            continue
                        means = [mean(xs) for xs in d.values()]
                        within = [sample_sd(xs) ** 2 for xs in d.values()]
                        out.append(f"{100 * sample_sd(means):.2f} / "
                                   f"{100 * math.sqrt(mean(within)):.2f}")
                    print(f"| {arch} | {gran} | {b} | {'yes' if bc else 'no'} | "
                          + " | ".join(out) + " |")

    if args.per_model:
        print("\n## Per training seed: top-1 %, mean over calibration seeds, seeds in order"
              + (" (cells: without / with bias correction)" if has_bc else ""))
        method_tables(False, lambda key: ", ".join(
            f"{100 * v:.2f}" for _, v in sorted(per_model_means(key).items())) or "–")

    if has_bc:
        print(f"\n## Bias correction, per model (mean over calibration seeds; W >= "
              f"{args.min_bits}): cells where it raises top-1 / all cells\n")
        print("| model | granularity | " + " | ".join(labels) + " |")
        print("|---|---|" + "---|" * len(labels))
        for arch in archs:
            for gran in grans:
                out = []
                for label in labels:
                    up, n = 0, 0
                    for b in bitcols:
                        if weight_bits(b) < args.min_bits:
                            continue
                        off = per_model_means((arch, gran, b, label, False))
                        on = per_model_means((arch, gran, b, label, True))
                        for k in off.keys() & on.keys():
                            n += 1
                            up += on[k] > off[k]
                    out.append(f"{up}/{n}" if n else "–")
                print(f"| {arch} | {gran} | " + " | ".join(out) + " |")

    mp_labels = [l for l in labels if l.startswith("MP")]
    base_labels = [l for l in labels if not l.startswith("MP")]
    if not mp_labels or not base_labels:
        return
    print(f"\n## Multipoint vs the best baseline costing <= its extra MACs + {args.slack:g} "
          f"(per model, mean over calibration seeds; W >= {args.min_bits})\n")
    print("| multipoint | settings x models | multipoint ahead | tied (to 0.01) | "
          "margin min / median / max | not ahead (model, setting: baseline, top-1 vs multipoint) |")
    print("|---|---:|---:|---:|---|---|")
    compared = []
    for mp in mp_labels:
        wins, ties, total, margins, losses = 0, 0, 0, [], []
        for arch in archs:
            for gran in grans:
                if not macs.get((arch, gran, mp)):
                    continue
                mp_cost = mean(macs[(arch, gran, mp)])
                allowed = [l for l in base_labels
                           if macs.get((arch, gran, l))
                           and mean(macs[(arch, gran, l)]) <= mp_cost + args.slack]
                compared.append(f"{mp} on {arch}" + (f" {gran}" if gran else "") + ": " + ", ".join(allowed))
                for b in bitcols:
                    if weight_bits(b) < args.min_bits:
                        continue
                    for bc in bcs:
                        mpm = per_model_means((arch, gran, b, mp, bc))
                        for s, v in sorted(mpm.items()):
                            best, best_label = None, None
                            for l in allowed:
                                bm = per_model_means((arch, gran, b, l, bc)).get(s)
                                if bm is not None and (best is None or bm > best):
                                    best, best_label = bm, l
                            if best is None:
                                continue
                            total += 1
                            margins.append(100 * (v - best))
                            tie = round(100 * v, 2) == round(100 * best, 2)
                            ties += tie
                            if v > best and not tie:
                                wins += 1
                            else:
                                losses.append(f"{arch}@{s} " + (f"{gran.replace('_', ' ')} " if gran else "") + f"{b}"
                                              f"{' BC' if bc else ''}: {best_label} "
                                              f"{100 * best:.2f} vs {100 * v:.2f}")
        if total == 0:
            continue
        ms = sorted(margins)
        med = ms[len(ms) // 2] if len(ms) % 2 else (ms[len(ms) // 2 - 1] + ms[len(ms) // 2]) / 2
        print(f"| {mp} | {total} | {wins} | {ties} | {ms[0]:+.2f} / {med:+.2f} / {ms[-1]:+.2f} | "
              + ("; ".join(losses) if losses else "–") + " |")
    print("\nBaselines compared:\n" + "\n".join(f"- {c}" for c in compared))


if __name__ == "__main__":
    main()
