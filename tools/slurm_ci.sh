#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for CI: installs munge and slurm-wlm (Debian),
# starts munged, slurmctld and slurmd (root, no systemd), submits deploy/slurm/submit.sh for a
# small grid in 4 shards with sbatch --wait, and checks that the merged sweep.csv equals a
# one-process `fftlearn sweep` of the same grid in every column but wall_s. The daemons are
# stopped by PID at the end, whatever happens.
#   usage: tools/slurm_ci.sh [FFTLEARN_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/fftlearn}")
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq munge slurm-wlm >/dev/null
fi
work=$(mktemp -d /tmp/fftlearn-slurm.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  local all=("${pids[@]}")
  # munged and slurmctld write their own pid files
  for f in "$work/munged.pid" "$work/slurmctld.pid" "$work/slurmd.pid"; do
    [ -f "$f" ] && all+=("$(cat "$f")")
  done
  for p in "${all[@]}"; do kill "$p" 2>/dev/null || true; done
  # wait (up to 15 s) until they have exited: a stopping slurmctld still writes its state
  # files, which would race the removal of the work folder
  for _ in $(seq 150); do
    local alive=0
    for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
}
trap cleanup EXIT

# munge: a fresh key and a private socket
mkdir -p "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/socket" \
  --pid-file="$work/munged.pid" --log-file="$work/munged.log" --seed-file="$work/munge/seed"
host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$work/state" "$work/spool" "$work/log"
cat > "$work/slurm.conf" <<CONF
ClusterName=fftlearn-ci
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$work/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$work/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 60); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mixed' && break
  sleep 0.5
done
sinfo

# the grid: N = 8..64, 2 optimizers, 3 seeds; 4 shards
cat > "$work/grid.toml" <<GRID
n = [8, 16, 32, 64]
optimizer = ["adam", "sgd"]
lr = [0.01]
seeds = 3
steps = 300
GRID
start=$(date +%s.%N)
FFTLEARN="$bin" SWEEP_SBATCH=sweep.sbatch deploy/slurm/submit.sh "$work/grid.toml" "$work/sharded" 4 \
  --cpus-per-task=1 --chdir="$work" --wait
end=$(date +%s.%N)
"$bin" sweep --config "$work/grid.toml" --out "$work/one" >/dev/null
strip() { cut -d, -f1-17 "$1"; }   # every column but wall_s (the 18th)
if ! diff <(strip "$work/one/sweep.csv") <(strip "$work/sharded/sweep.csv"); then
  echo "slurm_ci: the merged sweep.csv differs from the one-process sweep" >&2
  exit 1
fi
cells=$(($(wc -l < "$work/one/sweep.csv") - 1))
echo "slurm_ci: 4-shard array job + merge: $cells cells, identical to the one-process sweep but for wall_s; submit to merged in $(echo "$end - $start" | bc) s"
# the daemons stop on exit (trap); the work folder is kept only when something failed
trap 'cleanup; rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; } || true' EXIT
