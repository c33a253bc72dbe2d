#!/usr/bin/env bash
# The main job: install what is missing, build, train (or reuse cached) default models on
# Fashion-MNIST, run the default sweep on 2 MPI ranks, print the results table and write the
# report (figures, tables, conventions: <results>/<sweep>/report/report.md and .html).
# Usage: scripts/run.sh [sweep.json]      (default: configs/sweeps/default.json)
# Re-running resumes: cached models and finished trials are reused.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-configs/sweeps/default.json}
scripts/install-deps.sh
scripts/build.sh --target mpq
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
name=$(build/mpq sweep plan "$sweep" | sed -n 's/^sweep \([^:]*\):.*-> \(.*\)$/\2/p')
mpirun --oversubscribe -np 2 build/mpq sweep run "$sweep"
pivots=(--pivot model.path,weights.granularity,label:weights.bits:top1
        --pivot model.path,weights.granularity,label:weights.bits:kl)
build/mpq aggregate "$name" --metrics top1 agreement kl extra_channels_pct extra_macs_pct "${pivots[@]}"
build/mpq report "$name"
