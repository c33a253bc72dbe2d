#!/usr/bin/env bash
# The torchvision zoo through mpq (issue 34; table in docs/models.md): every architecture traced
# by Debian's torch 1.13 / torchvision 0.14 with random weights and BatchNorm statistics warmed
# on 32 of the photos (scripts/export_torchvision.py --weights none --warm-images; WARM=random
# warms on random batches instead: such a network can be chaotic on photos, see
# experiments/zoo/rounding_sensitivity.py), then
#   mpq inspect --check-fold        quantizable layers, weights, coverage, BN folding error;
#   mpq quantize (RTN W4 per channel, or $METHOD; 8 real photos, --export)
#                                   the trial's coverage, and the export checked against the
#                                   simulation on the photos (a failing check is an error;
#                                   "inconclusive" when float32 rounding explains it).
# usage: experiments/zoo/torchvision_zoo.sh [OUT_DIR] [ARCH...]    (default: results/zoo, all)
# Writes OUT_DIR/zoo.tsv (one row per architecture) and OUT_DIR/<arch>.* logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/zoo}; shift || true
mkdir -p "$out"
MPQ=${MPQ:-build/mpq} PYTHON=${PYTHON:-/usr/bin/python3}
method=(${METHOD:-rtn})  # METHOD="multipoint --set weights.multipoint.budget=0.1" for the issue-34 recipe
warm=(--warm-images results/data/photos/images)
[ "${WARM:-photos}" = random ] && warm=()
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(alexnet vgg11_bn resnet18 resnet50 resnext50_32x4d wide_resnet50_2
  densenet121 googlenet inception_v3 squeezenet1_1 shufflenet_v2_x1_0 mnasnet1_0 mobilenet_v2
  mobilenet_v3_small mobilenet_v3_large efficientnet_b0 efficientnet_v2_s regnet_x_400mf
  regnet_y_400mf convnext_tiny swin_t vit_b_16 maxvit_t)
printf 'arch\tlayers\tweights\tcoverage\tattention_rewritten\tfold_rel\ttrial_coverage_pct\texport_rel_diff\texport_check\n' >"$out/zoo.tsv"
for a in "${archs[@]}"; do
  m="$out/$a.pt"
  if ! "$PYTHON" scripts/export_torchvision.py "$a" --weights none "${warm[@]}" -o "$m" >"$out/$a.export.log" 2>&1; then
    printf '%s\t-\t-\t-\t-\t-\t-\t-\texport failed: %s\n' "$a" "$(tail -1 "$out/$a.export.log" | cut -c1-80)" >>"$out/zoo.tsv"
    continue
  fi
  "$MPQ" -q inspect "$m" --check-fold >"$out/$a.inspect.txt" 2>&1
  layers=$(sed -n 's/^\([0-9]*\) quantizable layers, \([^ ]*\) weights.*/\1/p' "$out/$a.inspect.txt")
  weights=$(sed -n 's/^[0-9]* quantizable layers, \([^ ]*\) weights.*/\1/p' "$out/$a.inspect.txt")
  cov=$(sed -n 's/^coverage: \([0-9.]*%\).*/\1/p' "$out/$a.inspect.txt")
  att=$(sed -n 's/^\([0-9]*\) fused attention operator.*/\1/p' "$out/$a.inspect.txt")
  fold=$(sed -n 's/.*(relative \([^)]*\)).*/\1/p' "$out/$a.inspect.txt")
  t="$out/$a.trial.h5"
  rm -f "$t" "$out/$a.q.pt"
  if "$MPQ" -q quantize --model "$m" --dataset photos --set data.eval_limit=8 --set calibration.size=8 \
       --method "${method[@]}" --bits 4 --granularity per_channel --export "$out/$a.q.pt" -o "$t" >"$out/$a.quantize.log" 2>&1; then
    read -r tcov rel inc < <("$PYTHON" -c "import h5py,sys; m=h5py.File(sys.argv[1],'r')['metrics'].attrs; print(f\"{m['weight_coverage_pct']:.1f} {m['export_relative_diff']:.1e} {int(m['export_check_inconclusive'])}\")" "$t")
    check=passed
    [ "$inc" = 1 ] && check="inconclusive: $(grep -o 'moves the trial.s own outputs by [^:]*' "$out/$a.quantize.log" | head -1)"
  else
    tcov=- rel=- check="failed: $(tail -1 "$out/$a.quantize.log" | cut -c1-160)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "${layers:--}" "${weights:--}" "${cov:--}" "${att:-0}" "${fold:--}" "$tcov" "$rel" "$check" | tee -a "$out/zoo.tsv"
  rm -f "$out/$a.q.pt"  # large; the trial file keeps the check's numbers
done
