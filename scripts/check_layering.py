#!/usr/bin/env python3
"""Checks every #include "mpq/<dir>/..." in src/mpq against the layering table of
docs/architecture.md ("may include"). Prints each violation as file:line and exits 1 if any.

usage: check_layering.py [REPO]   (default: the repository this script is in)
"""
import os
import re
import sys

repo = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
doc = open(os.path.join(repo, "docs", "architecture.md"), encoding="utf-8").read()
src = os.path.join(repo, "src", "mpq")
dirs = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))

# Rows of the table: | `dir/` | responsibility | may include | notes |
allowed = {}
for line in doc.splitlines():
    m = re.match(r"^\| `([a-z]+)/` \|[^|]*\| ([^|]*) \|", line)
    if not m or m.group(1) not in dirs:
        continue
    deps = m.group(2).strip()
    if deps == "everything below":  # sweep/: every directory listed above it in the table
        allowed[m.group(1)] = set(allowed)
    else:
        allowed[m.group(1)] = {d.strip() for d in deps.split(",") if d.strip() in dirs}

missing = [d for d in dirs if d not in allowed]
if missing:
    print("docs/architecture.md has no layering row for: " + ", ".join(missing))
    sys.exit(1)

bad = 0
checked = 0
for d in dirs:
    for root, _, files in os.walk(os.path.join(src, d)):
        for f in sorted(files):
            path = os.path.join(root, f)
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                m = re.match(r'\s*#include "mpq/([a-z]+)/', line)
                if not m:
                    continue
                checked += 1
                target = m.group(1)
                if target != d and target not in allowed[d]:
                    print("%s:%d: %s/ includes %s/ (allowed: %s)" % (
                        os.path.relpath(path, repo), n, d, target,
                        ", ".join(sorted(allowed[d])) or "nothing"))
                    bad += 1
print("%d includes checked, %d against the layering" % (checked, bad))
sys.exit(1 if bad else 0)
