#!/usr/bin/env python3
"""The peers' table.tsv (experiments/peers/run.sh) as Markdown, one table per setting, as in
docs/method.md. A (toolkit, method, setting) row that appears more than once keeps its first place and its
last run's numbers.

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
    for setting in OrderedDict.fromkeys(k[2] for k in rows):
        print(f"\n**{setting}** (weight-only)\n")
        print("| toolkit | method | agreement % | top-5 agr. % | KL | SQNR dB | time s | note |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for (_, _, s), r in rows.items():
            if s != setting:
                continue
            num = lambda k, d: f"{float(r[k]):.{d}f}"  # noqa: E731
            print(f"| {r['toolkit']} | {r['method']} | {num('agreement', 1)} | {num('agreement_top5', 1)} "
                  f"| {num('kl', 3)} | {num('sqnr_db', 2)} | {num('seconds', 1)} | {r['note']} |")


if __name__ == "__main__":
    main()
