#!/usr/bin/env bash
# Proves mpq builds and runs on Debian 13 (trixie: gcc 14, LibTorch 2.6, Catch2 3.7, HDF5 1.14,
# Open MPI 5, OpenCV 4.10): debootstraps trixie into a directory, copies the working tree in, and
# inside a chroot runs scripts/install-deps.sh --with-python, scripts/build.sh, the unit tests and
# one MPI sweep on 2 ranks (a tiny trained model, 4 trials). Prints the time of each step.
# Not part of CI (about 25 minutes on 2 cores; docs/toolchains.md has the measured times).
#
# Usage: scripts/check_debian13.sh [ROOT_DIR]     (default /var/tmp/mpq-trixie; reused if there)
# Needs root (debootstrap, chroot, bind mounts) and Debian's archive.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/var/tmp/mpq-trixie}
[ "$(id -u)" -eq 0 ] || { echo "check_debian13.sh: needs root (debootstrap and chroot)" >&2; exit 2; }
step() { echo "debian13: $*"; }
t_all=$(date +%s)
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
t0=$(date +%s)
if [ ! -x "$root/usr/bin/apt-get" ]; then
  step "debootstrap trixie into $root"
  debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
    { echo "check_debian13.sh: debootstrap failed: $(tail -2 "$root.debootstrap.log")" >&2; exit 1; }
fi
step "root filesystem ready in $(( $(date +%s) - t0 )) s ($(. "$root/etc/os-release"; echo "$PRETTY_NAME"))"
mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts; do
  mkdir -p "$root/$m"
  if ! mountpoint -q "$root/$m"; then mount --bind "/$m" "$root/$m"; mounted=("$root/$m" "${mounted[@]}"); fi
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The working tree as it is (tracked files, uncommitted changes included), not build outputs.
rm -rf "$root/src/mpq" && mkdir -p "$root/src/mpq"
(cd "$repo" && git ls-files -z | xargs -0 tar -cf -) | tar -xf - -C "$root/src/mpq"
cat >"$root/src/mpq/run-check.sh" <<'EOF'
set -euo pipefail
cd /src/mpq
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 DEBIAN_FRONTEND=noninteractive
t() { local s=$(date +%s); "$@"; echo "debian13: $(( $(date +%s) - s )) s: $*"; }
t scripts/install-deps.sh --with-python
echo "debian13: $(gcc --version | head -1); libtorch-dev $(dpkg-query -W -f='${Version}' libtorch-dev); libcatch2-dev $(dpkg-query -W -f='${Version}' libcatch2-dev); libhdf5-dev $(dpkg-query -W -f='${Version}' libhdf5-dev); $(mpirun --version | head -1)"
t scripts/build.sh
./build/mpq --version
t bash -c 'cd build && ctest -L unit -j2 --output-on-failure > ../unit.log 2>&1 || { tail -40 ../unit.log; exit 1; }; tail -3 ../unit.log'
mkdir -p results/models
t ./build/mpq -q train --arch resnet20 --width 0.25 --epochs 1 --train-limit 4000 --test-limit 1000 --output results/models/tiny.pt
cat > /tmp/s.json <<'J'
{"name": "trixie", "base": {"model": {"path": "results/models/tiny.pt"}, "data": {"eval_limit": 2000}, "calibration": {"size": 64}},
 "axes": [{"key": "weights.bits", "values": [4, 3]},
          {"variants": [{"label": "RTN", "weights": {"method": "rtn"}},
                        {"label": "MP 10%", "weights": {"method": "multipoint", "multipoint": {"budget": 0.1}}}]}],
 "run": {"results_dir": "/tmp/sweeps"}}
J
t mpirun --oversubscribe -np 2 ./build/mpq -q sweep run /tmp/s.json
./build/mpq status /tmp/sweeps/trixie | head -3
test "$(ls /tmp/sweeps/trixie/trials/*.h5 | wc -l)" -eq 4
echo "debian13: all checks passed"
EOF
step "install-deps, build, unit tests and an MPI sweep inside the chroot"
chroot "$root" /bin/bash /src/mpq/run-check.sh
step "done in $(( $(date +%s) - t_all )) s"
