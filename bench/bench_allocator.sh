#!/usr/bin/env bash
# Which allocator keeps mpq's memory: one whole trial (default MobileNetV2, multipoint W4, 2
# threads) and a 10000-image FP evaluation, run by the same binary under each candidate in
# alternating rounds; wall seconds, system seconds and peak RSS from /usr/bin/time.
#   glibc          the default
#   glibc-tuned    glibc told not to give memory back (GLIBC_TUNABLES mmap/trim thresholds)
#   jemalloc       Debian's libjemalloc2 with decay off (MALLOC_CONF dirty/muzzy_decay_ms:-1)
#   jemalloc-decay the same with its default decay (10 s)
#   tcmalloc       Debian's libtcmalloc-minimal4
# With ALLOCATORS="linked" it times the binary as built (mpq links its choice, docs/benchmarks.md).
# Usage: bash bench/bench_allocator.sh [mpq binary] [rounds]     (docs/benchmarks.md, "Allocator")
set -uo pipefail
cd "$(dirname "$0")/.."
MPQ=${1:-build/mpq}
ROUNDS=${2:-3}
LIB=/usr/lib/x86_64-linux-gnu
ALLOCATORS=${ALLOCATORS:-glibc glibc-tuned jemalloc jemalloc-decay tcmalloc}
# tcmalloc is only a candidate here, not a dependency of mpq: install it for this benchmark.
if [[ " $ALLOCATORS " == *" tcmalloc "* && ! -e $LIB/libtcmalloc_minimal.so.4 ]]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y -qq libtcmalloc-minimal4 >/dev/null
fi
out=$(mktemp -d)
run() {  # allocator label command...
  local a=$1 label=$2; shift 2
  local env=()
  case $a in
    glibc-tuned) env=(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824) ;;
    jemalloc) env=(LD_PRELOAD=$LIB/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1) ;;
    jemalloc-decay) env=(LD_PRELOAD=$LIB/libjemalloc.so.2) ;;
    tcmalloc) env=(LD_PRELOAD=$LIB/libtcmalloc_minimal.so.4) ;;
  esac
  env "${env[@]}" /usr/bin/time -f "%e %S %M" -o "$out/t" "$@" >/dev/null 2>"$out/err" || { echo "$a $label FAILED: $(tail -2 "$out/err")"; return; }
  read -r wall sys rss <"$out/t"
  printf '%-15s %-8s wall %6.2f s  sys %6.2f s  peak RSS %5d MB\n' "$a" "$label" "$wall" "$sys" $((rss / 1024))
}
"$MPQ" -q quantize --model default:mobilenetv2 --bits 4 -o "$out/warm.h5" >/dev/null  # models cached
for r in $(seq "$ROUNDS"); do
  echo "== round $r"
  for a in $ALLOCATORS; do
    run "$a" trial "$MPQ" -q quantize --model default:mobilenetv2 --method multipoint --bits 4 \
      --granularity per_layer --set weights.multipoint.budget=0.1 --threads 2 -o "$out/$a.h5"
    run "$a" eval "$MPQ" -q eval --model default:mobilenetv2 --threads 2
  done
done
# The trial files must be identical whatever the allocator (h5py: codes, scales, metrics).
/usr/bin/python3 - "$out" $ALLOCATORS <<'PY'
import sys, h5py, numpy as np
d, names = sys.argv[1], sys.argv[2:]
ref = h5py.File(f"{d}/{names[0]}.h5", "r")
for n in names[1:]:
    f = h5py.File(f"{d}/{n}.h5", "r")
    same = all(np.array_equal(ref["layers"][l][k][()], f["layers"][l][k][()]) for l in ref["layers"] for k in ("codes", "scales"))
    same = same and all(ref["metrics"].attrs[k] == f["metrics"].attrs[k] for k in ("top1", "kl", "agreement"))
    print(f"{n}: trial file {'identical to' if same else 'DIFFERS from'} {names[0]}'s")
PY
rm -rf "$out"
