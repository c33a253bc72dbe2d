#!/usr/bin/env bash
# mpq report on a small real sweep (tiny ResNet-20, 2 seeds): every expected figure exists with its
# data file and script; the data equal aggregate/trials.csv; PNGs are valid images of the stated
# size, SVGs parse; the HTML and Markdown reference only files that exist; the report is
# deterministic; LaTeX tables are balanced, escaped and carry the Markdown's numbers; a sweep
# without multipoint gets no multipoint figures; bad input gives one clear line.
source "$(dirname "$0")/lib.sh"
d="$ART/report" && rm -rf "$d" && mkdir -p "$d"
R20="$ART/models/tiny_resnet20.pt"

cat >"$d/rep.json" <<JSON
{"name": "rep",
 "description": "report test: tiny ResNet-20, RTN / MSE / OCS / multipoint at W4 and W3",
 "base": {"model": {"path": "$R20"}, "data": {"eval_limit": 500},
          "calibration": {"size": 64, "cache_dir": "$d/cache"},
          "weights": {"granularity": "per_channel", "multipoint": {"max_points": 3}}},
 "axes": [{"key": "weights.bits", "values": [4, 3]},
          {"variants": [
            {"label": "RTN", "weights": {"method": "rtn"}},
            {"label": "MSE", "weights": {"method": "mse"}},
            {"label": "OCS 5%", "weights": {"method": "ocs", "ocs": {"expand_ratio": 0.05}}},
            {"label": "MP 5%", "weights": {"method": "multipoint", "multipoint": {"budget": 0.05}}},
            {"label": "MP 25%", "weights": {"method": "multipoint", "multipoint": {"budget": 0.25}}}]}],
 "seeds": [0, 1],
 "run": {"results_dir": "$d/results", "threads_per_rank": 2}}
JSON
sed -e 's/"name": "rep"/"name": "plain"/' -e '/OCS 5%\|MP 5%\|MP 25%/d' -e 's/"label": "MSE", "weights": {"method": "mse"}},/"label": "MSE", "weights": {"method": "mse"}}]}],/' \
  "$d/rep.json" >"$d/plain.json"
"$MPQ" -q sweep run "$d/rep.json" >/dev/null 2>"$d/run.err" || fail "sweep run: $(tail -1 "$d/run.err")"
"$MPQ" -q sweep run "$d/plain.json" >/dev/null 2>"$d/run2.err" || fail "plain sweep run: $(tail -1 "$d/run2.err")"
S="$d/results/rep" P="$d/results/plain"

out=$("$MPQ" report "$S" 2>"$d/report.err") && pass "mpq report: $out" || fail "mpq report: $(cat "$d/report.err")"
"$MPQ" aggregate "$S" --format latex --bold-best >"$d/agg.tex" 2>"$d/agg.err" || fail "aggregate --format latex: $(cat "$d/agg.err")"
"$MPQ" aggregate "$S" --pivot label:weights.bits:top1 >"$d/agg.md" 2>>"$d/agg.err" || fail "aggregate: $(cat "$d/agg.err")"
"$MPQ" aggregate "$S" --pivot label:weights.bits:top1 --format latex --bold-best >"$d/agg_pivot.tex" 2>>"$d/agg.err" || fail "aggregate latex pivot"

"$PYTHON" - "$S" "$d" <<'PY' && pass "figures, data, images, links, LaTeX checked" || fail "report checks (above)"
import csv, glob, hashlib, os, re, struct, sys, xml.etree.ElementTree as ET
S, d = sys.argv[1], sys.argv[2]
R = S + "/report"
bad = []
def check(cond, what):
    if not cond: bad.append(what)
expected = ["tradeoff-01", "tradeoff-02", "bits-01", "errors-01", "points-01", "points-layers-01",
            "layer-error-01", "budget-01"]
for name in expected:
    for ext in ("png", "svg", "csv", "gp"):
        check(os.path.isfile(f"{R}/{name}.{ext}"), f"missing {name}.{ext}")
# Exactly these figures (one multipoint panel at W4 per channel; tradeoff per bits).
pngs = sorted(os.path.basename(p)[:-4] for p in glob.glob(R + "/*.png"))
check(pngs == sorted(expected), f"figures {pngs} != {sorted(expected)}")

trials = list(csv.DictReader(open(S + "/aggregate/trials.csv")))
check(len(trials) == 20, f"{len(trials)} trials in trials.csv")
def mean(xs): return sum(xs) / len(xs)
# Trade-off data == the trials: per label at W4 (tradeoff-01) and W3 (tradeoff-02).
for name, bits in (("tradeoff-01", "4"), ("tradeoff-02", "3")):
    gp = open(f"{R}/{name}.gp").read()
    check(f"W bits {bits}" in gp, f"{name} is not the W{bits} panel")
    # top-1 is a percentage: the y axis stays within [0, 100] even where mean - std is negative.
    check("set yrange [0<*:*<100]" in gp, f"{name}: y axis not bounded to [0, 100]")
    rows = list(csv.DictReader(open(f"{R}/{name}.csv")))
    check(len(rows) == 5, f"{name}: {len(rows)} rows")
    for r in rows:
        ts = [t for t in trials if t["label"] == r["label"] and t["weights.bits"] == bits]
        check(len(ts) == 2 and int(r["n"]) == 2, f"{name} {r['label']}: n")
        y = mean([100 * float(t["top1"]) for t in ts]); x = mean([float(t["extra_macs_pct"]) for t in ts])
        fp = mean([100 * float(t["fp_top1"]) for t in ts])
        check(abs(float(r["y"]) - y) < 1e-6, f"{name} {r['label']}: y {r['y']} != {y}")
        check(abs(float(r["x"]) - x) < 1e-6, f"{name} {r['label']}: x {r['x']} != {x}")
        check(abs(float(r["fp"]) - fp) < 1e-6, f"{name}: fp {r['fp']} != {fp}")
    lines = [r["line"] for r in rows]
    check(lines.count("multipoint") == 2 and lines.count("OCS") == 1, f"{name}: lines {lines}")
bits = list(csv.DictReader(open(f"{R}/bits-01.csv")))
for r in bits:
    ts = [t for t in trials if t["label"] == r["line"] and t["weights.bits"] == str(int(float(r["x"])))]
    check(abs(float(r["y"]) - mean([100 * float(t["top1"]) for t in ts])) < 1e-6, f"bits-01 {r}")
# Points histogram: sums to 100 %, and its channel count equals the trial file's.
pts = list(csv.DictReader(open(f"{R}/points-01.csv")))
check(abs(sum(float(r["percent"]) for r in pts) - 100) < 1e-6, "points-01 does not sum to 100%")
import h5py
tid = re.search(r"trial ([0-9a-f]{12})", open(R + "/report.md").read()).group(1)
f = h5py.File(glob.glob(f"{S}/trials/{tid}*.h5")[0], "r")
hist = {}
for g in f["layers"].values():
    if g.attrs.get("quantized", 0):
        for n in g["points_per_channel"][()]:
            if n > 0: hist[int(n)] = hist.get(int(n), 0) + 1
for r in pts:
    check(int(r["channels"]) == hist.get(int(r["points"]), 0), f"points-01 {r} vs file {hist}")
check(f["config"][()].decode().count('"multipoint"') >= 1, "detail trial is not multipoint")
# PNG: valid signature and IHDR size == the script's; PIL decodes it. SVG parses.
from PIL import Image
for name in expected:
    raw = open(f"{R}/{name}.png", "rb").read()
    check(raw[:8] == b"\x89PNG\r\n\x1a\n", f"{name}.png signature")
    w, h = struct.unpack(">II", raw[16:24])
    size = re.search(r"pngcairo size (\d+),(\d+)", open(f"{R}/{name}.gp").read())
    check((w, h) == (int(size.group(1)), int(size.group(2))), f"{name}.png is {w}x{h}, script says {size.groups()}")
    Image.open(f"{R}/{name}.png").load()
    check(w >= 800 and h >= 500, f"{name}.png too small for a paper: {w}x{h}")
    root = ET.parse(f"{R}/{name}.svg").getroot()
    check(root.tag.endswith("svg"), f"{name}.svg root {root.tag}")
# HTML and Markdown reference only existing files; every figure is referenced.
html = open(R + "/report.html").read()
refs = re.findall(r'(?:src|href)="([^"]+)"', html)
for r in refs: check(os.path.isfile(f"{R}/{r}"), f"report.html references missing {r}")
md = open(R + "/report.md").read()
mrefs = re.findall(r"\]\(([^)]+)\)", md)
for r in mrefs: check(os.path.isfile(f"{R}/{r}"), f"report.md references missing {r}")
for name in expected:
    check(f"{name}.png" in refs and f"{name}.png" in mrefs, f"{name} not in the report")
check(html.count("<table>") == html.count("</table>") and html.rstrip().endswith("</html>"), "html structure")
for section in ("## FP reference check", "Not checked: no model", "## Results", "## Conventions", "## Provenance", "against overhead", "Where the points went"):
    check(section in md, f"report.md has no '{section}'")
check(re.search(r"\| evaluation images +\| 500 +\|", md) is not None, "conventions: evaluation images not shared")
check(re.search(r"\| calibration images +\| 0; 64 +\|", md) is not None, "conventions: calibration images (0 for RTN) do not vary")
check(re.search(r"\| weight method +\| rtn; mse; ocs; multipoint", md) is not None, "conventions: varying methods")
# LaTeX: balanced environments, escaped underscores and percents, numbers == Markdown's.
for t in ("agg.tex", "agg_pivot.tex"):
    tex = open(f"{d}/{t}").read()
    for env in ("table", "tabular"):
        check(tex.count("\\begin{%s}" % env) == tex.count("\\end{%s}" % env) > 0, f"{t}: unbalanced {env}")
    check(re.search(r"(?<!\\)_", tex) is None, f"{t}: unescaped underscore")
    body = "\n".join(l for l in tex.splitlines() if not l.startswith("% needs"))
    check(re.search(r"(?<!\\)%", body) is None, f"{t}: unescaped %")
    check("MP 5\\%" in body, f"{t}: labels not in the table")
    check("\\mathbf{" in tex, f"{t}: no bold best")
num = lambda s: re.findall(r"(\d+\.\d+) (?:±|\\pm) (\d+\.\d+)", s)
md_piv = open(f"{d}/agg.md").read().split("by weights.bits")[1]
tex_piv = open(f"{d}/agg_pivot.tex").read().split("\\begin{table}")[-1]
check(num(md_piv) == num(tex_piv) and len(num(tex_piv)) == 10, f"pivot numbers differ: {num(md_piv)} vs {num(tex_piv)}")
for b in bad: print("  ", b)
sys.exit(1 if bad else 0)
PY

# Deterministic: a second report writes the same bytes.
(cd "$S/report" && md5sum * | sort) >"$d/md5.1"
"$MPQ" report "$S" >/dev/null 2>&1 || fail "second report"
(cd "$S/report" && md5sum * | sort) >"$d/md5.2"
cmp -s "$d/md5.1" "$d/md5.2" && pass "report is deterministic ($(wc -l <"$d/md5.1") files)" || fail "report differs between runs: $(diff "$d/md5.1" "$d/md5.2" | head -3)"
# Re-plot from the shipped script and data.
(cd "$S/report" && rm -f bits-01.png && gnuplot bits-01.gp 2>/dev/null && [ -s bits-01.png ]) && pass "gnuplot NAME.gp re-plots from NAME.csv" || fail "re-plot failed"

# A sweep without multipoint or OCS: accuracy against bits only, no empty multipoint figures.
"$MPQ" report "$P" >/dev/null 2>"$d/plain.err" || fail "report of the plain sweep: $(cat "$d/plain.err")"
figs=$(cd "$P/report" && ls *.png | tr '\n' ' ')
[ "$figs" = "bits-01.png " ] && pass "plain sweep: only the bits figure" || fail "plain sweep figures: $figs"
grep -q "Where the points went\|against overhead" "$P/report/report.md" && fail "plain report has multipoint sections" || pass "plain report has no multipoint sections"

# scripts/model_seed_tables.py (docs/method.md's multi-model tables): on this real sweep its
# pooled cells equal aggregate's pivot; on a hand-made trials.csv of two training seeds it splits
# the spread into between-model and within-model parts and counts multipoint wins as computed by
# hand.
"$PYTHON" "$SRC/scripts/model_seed_tables.py" "$S" >"$d/mst.md" 2>"$d/mst.err" || fail "model_seed_tables.py: $(cat "$d/mst.err")"
"$PYTHON" - "$d/mst.md" "$S/aggregate/pivot0.csv" <<'PY' && pass "model_seed_tables.py cells equal aggregate's pivot" || fail "model_seed_tables.py vs pivot (above)"
import csv, sys
table = {}
for line in open(sys.argv[1]):
    cols = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cols) == 4 and "±" in cols[2]:
        table[cols[0]] = cols[2:]
piv = list(csv.DictReader(open(sys.argv[2])))
assert piv and len(table) == len(piv), (len(table), len(piv))
for r in piv:
    want = [r["weights.bits=4"].strip(), r["weights.bits=3"].strip()]
    assert table[r["label"]] == want, (r["label"], table[r["label"]], want)
PY
mkdir -p "$d/mst/aggregate"
{
  echo "label,model.path,weights.bits,bias_correction,seed,top1,extra_macs_pct"
  # RTN: per-model means 0.80 / 0.90, within sd 0.01 / 0.03; with bias correction 0.82 / 0.85
  # (up on seed 0, down on seed 1). MP 5%: 0.85 / 0.88. OCS 10% (12% MACs, beyond MP 5%'s 5% + 3):
  # 0.99 everywhere, never compared.
  for row in "RTN,default:resnet20,false,0.79,0.81" "RTN,default:resnet20@seed=1,false,0.87,0.93" \
    "RTN,default:resnet20,true,0.82,0.82" "RTN,default:resnet20@seed=1,true,0.85,0.85" \
    "MP 5%,default:resnet20,false,0.85,0.85" "MP 5%,default:resnet20@seed=1,false,0.87,0.89" \
    "OCS 10%,default:resnet20,false,0.99,0.99" "OCS 10%,default:resnet20@seed=1,false,0.99,0.99"; do
    IFS=, read -r label model bc a b <<<"$row"
    macs=0 && [ "$label" = "MP 5%" ] && macs=5
    [ "$label" = "OCS 10%" ] && macs=12
    echo "$label,$model,4,$bc,0,$a,$macs" && echo "$label,$model,4,$bc,1,$b,$macs"
  done
} >"$d/mst/aggregate/trials.csv"
"$PYTHON" "$SRC/scripts/model_seed_tables.py" "$d/mst" --per-model >"$d/mst2.md" 2>"$d/mst.err" || fail "model_seed_tables.py on two models: $(cat "$d/mst.err")"
# RTN pooled: mean 85.00, sample sd of {79, 81, 87, 93} = 6.32; with bias correction {82, 82, 85,
# 85}: 83.50 ± 1.73. Spread: sd of means {80, 90} = 7.07, root mean within variance
# sqrt((2 + 18) / 2) = 3.16. MP 5% ahead on resnet20@0 (+5), behind on @1 (-2).
grep -qF "| RTN | 0.0% | 85.00 ± 6.32 / 83.50 ± 1.73 |" "$d/mst2.md" && grep -qF "| 7.07 / 3.16 |" "$d/mst2.md" \
  && grep -qF "| RTN | 80.00, 90.00 / 82.00, 85.00 |" "$d/mst2.md" && grep -qF "| 1/2 | – | – |" "$d/mst2.md" \
  && grep -qF "| MP 5% | 2 | 1 | 0 | -2.00 / +1.50 / +5.00 | resnet20@1 W4: RTN 90.00 vs 88.00 |" "$d/mst2.md" \
  && grep -qF -- "- MP 5% on resnet20: RTN" "$d/mst2.md" \
  && pass "model_seed_tables.py: pooled cells, spread split, per-model cells, bias correction counts and multipoint wins as computed by hand" \
  || fail "model_seed_tables.py on two models: $(cat "$d/mst2.md")"

# Bad input.
expect_error 1 "not a sweep directory" - -- "$MPQ" report "$d"
expect_error 2 "--metric: 'top_1' is not a metric of this sweep" - -- "$MPQ" report "$S" --metric top_1
expect_error 2 "--overhead" - -- "$MPQ" report "$S" --overhead flops
expect_error 1 "gnuplot not found in PATH" - -- env PATH=/nonexistent "$MPQ" report "$S"
(cd "$S/report" && md5sum * | sort) >"$d/md5.3"
cmp -s "$d/md5.2" "$d/md5.3" && [ -z "$(ls -a "$S" | grep '^\.report')" ] && pass "a failed report leaves the previous one as it was, no temporary left" || fail "a failed report changed report/ or left a temporary"
mkdir -p "$d/results/empty" && "$MPQ" -q sweep plan "$d/plain.json" >/dev/null 2>&1
sed -e 's/"name": "plain"/"name": "empty"/' "$d/plain.json" >"$d/empty.json"
"$MPQ" -q sweep prepare "$d/empty.json" >/dev/null 2>&1 || fail "sweep prepare"
expect_error 1 "no finished trials to report on" "$d/results/empty/report/report.md" -- "$MPQ" report "$d/results/empty"
expect_error 2 "expected default:<arch> or default:<arch>@seed=<n>" - -- "$MPQ" quantize --model "default:resnet20@seed=x" --bits 4
finish
