#!/usr/bin/env python3
"""The peers' table.tsv (experiments/peers/run.sh) as Markdown, one table per setting, as in
docs/method.md. A (toolkit, method, setting) row that appears more than once keeps its first
place and its last run's numbers.

usage: table_md.py OUT/table.tsv [MORE/table.tsv ...] [--setting "W3 per tensor"]
"""
import argparse
import csv
from collections import OrderedDict


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--setting", default="", help="only this setting, e.g. 'W4 per channel'")
    a = ap.parse_args()
    rows = OrderedDict()
    for path in a.tables:
        with open(path) as f:
            for r in csv.DictReader(f, delimiter="\t"):
                if not a.setting or r["setting"] == a.setting:
                    rows[(r["toolkit"], r["method"], r["setting"])] = r
    by_setting = OrderedDict()
    for (_, _, setting), r in rows.items():
        by_setting.setdefault(setting, []).append(r)
    for setting, group in by_setting.items():
        print(f"\n**{setting}** (weight-only)\n")
        print("| toolkit | method | agreement % | top-5 agr. % | KL | SQNR dB | time s | note |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in group:
            cells = [f"{float(r[k]):.{d}f}" for k, d in
                     (("agreement", 1), ("agreement_top5", 1), ("kl", 3), ("sqnr_db", 2), ("seconds", 1))]
            print(f"| {r['toolkit']} | {r['method']} | " + " | ".join(cells) + f" | {r['note']} |")

if __name__ == "__main__":
    main()
