#!/usr/bin/env bash
# device_sweeps.sh: the learnability sweeps (docs/learnability.md, docs/failures.md) that need a GPU or many cores, in
# one run on a GPU machine (made for an NVIDIA H100/H200 with 16 cores, no Rust, no network),
# every job under its own timeout, all jobs at once (the GPU jobs share the card, the CPU jobs
# the cores), every result into one folder.
#
#   tools/device_sweeps.sh KIT OUT
#
# KIT (tools/make_device_kit.sh): the portable fftlearn and the Vulkan loader .debs; EXP (default
# KIT/experiments): the configs. Jobs (each a `fftlearn sweep`; sharded jobs are merged):
#   grid_f32.toml       GPU f32, 4 shards          -> OUT/grid_f32.csv
#   grid_f64.toml       CPU f64, 2 shards x 2 thr   -> OUT/grid_f64.csv
#   large_f32.toml      GPU f32, 1 process, 4 thr   -> OUT/large_f32.csv
#   floor_f32.toml      GPU f32                     -> OUT/floor_f32.csv
#   remedies_other.toml CPU f64, 3 shards x 2 thr   -> OUT/remedies_other.csv
# plus OUT/log.txt and OUT/devices.txt (seven files). DS_TIMEOUT (default 430 s) bounds each
# job; a job stopped by it leaves the cells it finished (merged with --partial).
set -uo pipefail
KIT=$(cd "${1:?usage: device_sweeps.sh KIT OUT}" && pwd)
OUT=${2:?usage: device_sweeps.sh KIT OUT}
EXP=${EXP:-$KIT/experiments}
TMO=${DS_TIMEOUT:-430}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
FL=$KIT/fftlearn
W=$(mktemp -d)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$LOG"; }

say "device_sweeps on $(hostname) $(date -u +%FT%TZ); $(nproc) cores; kit $KIT"
{ grep -m1 'model name' /proc/cpuinfo; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; } >>"$LOG" 2>&1
# the Vulkan loader and a hardware adapter (tools/device_vulkan.sh)
. "$(dirname "$0")/device_vulkan.sh"
find_hardware_adapter || say "WARNING: no hardware adapter found; the f32 jobs run on whatever adapter wgpu finds"
"$FL" devices >"$OUT/devices.txt" 2>&1

# job NAME THREADS CONFIG [SHARD]: one sweep process in the background, its log into the log
job() {
    local name=$1 thr=$2 cfg=$3 shard=${4:-}
    local args=(sweep --config "$EXP/$cfg" --out "$W/$name")
    [ -n "$shard" ] && args+=(--shard "$shard")
    say "start $name${shard:+ shard $shard} ($thr threads)"
    (RAYON_NUM_THREADS=$thr timeout -k 5 "$TMO" "$FL" "${args[@]}" >"$W/$name.${shard//\//of}.log" 2>&1
     echo "rc $?" >>"$W/$name.${shard//\//of}.log") &
}
for i in 0 1 2 3; do job grid_f32 1 grid_f32.toml "$i/4"; done
for i in 0 1; do job grid_f64 2 grid_f64.toml "$i/2"; done
job large_f32 4 large_f32.toml
job floor_f32 1 floor_f32.toml
for i in 0 1 2; do job remedies_other 2 remedies_other.toml "$i/3"; done
wait
say "all jobs ended"
for f in "$W"/*.log; do
    { echo "=== ${f##*/}"; cat "$f"; } >>"$LOG"
done
for name in grid_f32 grid_f64 remedies_other; do
    "$FL" sweep merge "$W/$name" --partial >>"$LOG" 2>&1
    cp "$W/$name/sweep.csv" "$OUT/$name.csv" 2>>"$LOG"
done
for name in large_f32 floor_f32; do
    cp "$W/$name/sweep.csv" "$OUT/$name.csv" 2>>"$LOG"
done
wc -l "$OUT"/*.csv >>"$LOG" 2>&1
say "done; $(ls "$OUT" | wc -l) files in $OUT"
rm -rf "$W"
