#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests (../shared/environment.md recipe), self-contained:
# a private munge key and socket, slurmctld and slurmd from a config in DIR, free ports.
#
#   tests/slurm/cluster.sh start DIR    starts munged, slurmctld, slurmd; waits for the node to be
#                                       idle; prints "export SLURM_CONF=DIR/slurm.conf"
#   tests/slurm/cluster.sh stop DIR     stops them by the pids in their pid files
#
# Needs root (slurmd runs jobs as their users) and Debian's slurmctld, slurmd, slurm-client and
# munge (scripts/install-deps.sh --with-slurm). Fails with a clear message when the cluster
# cannot start (no root, ports taken, a daemon dies); never skips.
set -uo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR} dir=${2:?usage: cluster.sh start|stop DIR}
die() { echo "slurm cluster: $*" >&2; exit 1; }

stop() {
  for p in slurmd slurmctld munged; do
    [ -f "$dir/$p.pid" ] || continue
    pid=$(cat "$dir/$p.pid" 2>/dev/null)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    alive=0
    for p in slurmd slurmctld munged; do
      [ -f "$dir/$p.pid" ] && kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null && alive=1
    done
    [ $alive -eq 0 ] && break
    sleep 0.2
  done
  for p in slurmd slurmctld munged; do
    [ -f "$dir/$p.pid" ] && kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null
    rm -f "$dir/$p.pid"
  done
  # slurmstepd of jobs killed with the daemons
  pkill -f "slurmstepd.*$dir" 2>/dev/null || true
  return 0
}

free_port() {  # a TCP port nobody listens on
  for _ in $(seq 1 50); do
    local p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  die "no free TCP port found"
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || die "usage: cluster.sh start|stop DIR"
[ "$(id -u)" -eq 0 ] || die "needs root (slurmd must run as root); run the tests as root"
for b in munged mungekey slurmctld slurmd sbatch sinfo; do
  command -v "$b" >/dev/null || die "$b not found (run scripts/install-deps.sh --with-slurm)"
done
stop
rm -rf "$dir" && mkdir -p "$dir/state" "$dir/spool" "$dir/munge" || die "cannot create $dir"
chmod 700 "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)
ctl=$(free_port) node=$(free_port)
mungekey -c -k "$dir/munge/munge.key" >/dev/null 2>&1 || die "mungekey failed"
munged -f -S "$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" \
  || die "munged did not start ($(tail -2 "$dir/munged.log" 2>/dev/null))"
cat >"$dir/slurm.conf" <<CONF
ClusterName=mpqtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl
SlurmdPort=$node
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmUser=root
ReturnToService=2
MpiDefault=none
SchedulerParameters=sched_interval=2
KillWait=5
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 || die "slurmctld did not start: $(tail -3 "$dir/slurmctld.log")"
slurmd -f "$SLURM_CONF" >"$dir/slurmd.out" 2>&1 || die "slurmd did not start: $(tail -3 "$dir/slurmd.log")"
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1)
  [ "$state" = idle ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
  sleep 0.3
done
stop
die "the node did not become idle within 30 s (state '$state'): $(tail -3 "$dir/slurmctld.log" 2>/dev/null) $(tail -3 "$dir/slurmd.log" 2>/dev/null)"
