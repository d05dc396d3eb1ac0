#!/usr/bin/env bash
# device_packs.sh: learnability maps on a hardware GPU with packs (many cells per step), in one
# run, every step under its own timeout, every result into one folder. Made for an NVIDIA
# H100/H200 with CUDA, Python and torch but no Rust toolchain and no network.
#
#   tools/device_packs.sh KIT OUT
#
# KIT (tools/make_device_kit.sh): the portable fftlearn, torch_map.py, the Vulkan loader .debs,
# experiments/*.toml. OUT receives log.txt (everything), devices.txt, bench.csv (`fftlearn bench
# --cells`: cell-steps/s and samples/s per N, batch and cell count), torch_map.txt (the peer on
# CUDA at the same cell counts, same run), same_rows.txt (a packed grid against the same grid
# cell by cell on this card: every row equal but wall_s), grid_f32.csv and map_10k.csv (the
# sweeps, with their wall times in the log).
#
# Sizes (override for a dry run on lavapipe, e.g. DP_CELLS=1,16 DP_TORCH_CELLS="1 16"
# DP_GRID=... DP_MAP=...):
#   DP_CELLS        bench cell counts at N = 64 and 512, batch 16  (default 1,256,4096,16384,65535)
#   DP_TORCH_CELLS  torch_map.py cell counts                      (default "1 256 4096 16384")
#   DP_DEVICE       torch device                                   (default cuda)
#   DP_GRID         the grid timed packed                          (default KIT/experiments/grid_f32.toml)
#   DP_MAP          the large map                                  (default KIT/experiments/map_10k.toml)
#   DP_MAP_TIMEOUT  seconds for the large map                      (default 300)
set -uo pipefail
KIT=$(cd "${1:?usage: device_packs.sh KIT OUT}" && pwd)
OUT=${2:?usage: device_packs.sh KIT OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
CELLS=${DP_CELLS:-1,256,4096,16384,65535}
TORCH_CELLS=${DP_TORCH_CELLS:-1 256 4096 16384}
TORCH_DEVICE=${DP_DEVICE:-cuda}
GRID=${DP_GRID:-$KIT/experiments/grid_f32.toml}
MAP=${DP_MAP:-$KIT/experiments/map_10k.toml}
MAP_TIMEOUT=${DP_MAP_TIMEOUT:-300}
FL=$KIT/fftlearn
W=$(mktemp -d)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$LOG"; }
# step NAME SECONDS CMD...: run under a timeout, output to the log, rc and seconds noted
step() {
    local name=$1 secs=$2
    shift 2
    say "== $name (timeout $secs s): $*"
    local s
    s=$(date +%s.%N)
    timeout -k 5 "$secs" "$@" >>"$LOG" 2>&1
    local rc=$?
    say "-- $name: rc $rc in $(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$s") s"
    return 0
}

say "device_packs on $(hostname) $(date -u +%FT%TZ); $(nproc) cores; kit $KIT"
{ grep -m1 'model name' /proc/cpuinfo; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; } >>"$LOG" 2>&1
# the Vulkan loader and a hardware adapter (tools/device_vulkan.sh)
# shellcheck source=tools/device_vulkan.sh
. "$(dirname "$0")/device_vulkan.sh"
find_hardware_adapter || say "WARNING: no hardware adapter found; the GPU rows run on whatever adapter wgpu finds"
"$FL" devices >"$OUT/devices.txt" 2>&1

# 1. throughput: packs of many cells against one lone cell, and the batched PyTorch peer
step "bench --cells N=64" 150 "$FL" bench --kernel fused --n 64 --batches 16 --cells "$CELLS" --min-time 1 --min-steps 3 --out "$W/b64.csv"
step "bench --cells N=512" 150 "$FL" bench --kernel fused --n 512 --batches 16 --cells "$CELLS" --min-time 1 --min-steps 3 --out "$W/b512.csv"
{
    head -n1 "$W/b64.csv" 2>/dev/null
    tail -n +2 "$W/b64.csv" 2>/dev/null
    tail -n +2 "$W/b512.csv" 2>/dev/null
} >"$OUT/bench.csv"
# shellcheck disable=SC2086
step "torch_map bench $TORCH_DEVICE" 180 bash -c "python3 '$KIT/torch_map.py' bench --device $TORCH_DEVICE --n 64 --batch 16 --cells $TORCH_CELLS --steps 100 --dtypes float32 | tee '$OUT/torch_map.txt'"

# 2. a cell in a pack is the cell alone, on this card: a small grid both ways
cat >"$W/same.toml" <<'EOF'
n = [16, 64]
batch = [16]
lr = [1e-2, 3e-2]
init = ["seed", "random"]
precision = ["f32"]
seeds = 4
steps = 600
eval_every = 50
threshold = 1e-5
EOF
step "same grid packed" 120 "$FL" sweep --config "$W/same.toml" --out "$W/same_on"
step "same grid cell by cell" 240 "$FL" sweep --config "$W/same.toml" --out "$W/same_off" --pack off
if cmp <(cut -d, -f1-17 "$W/same_on/sweep.csv") <(cut -d, -f1-17 "$W/same_off/sweep.csv") >/dev/null 2>&1; then
    echo "identical rows (but wall_s): $(($(wc -l <"$W/same_on/sweep.csv") - 1)) cells" >"$OUT/same_rows.txt"
else
    { echo "DIFFERENT rows"; diff <(cut -d, -f1-17 "$W/same_on/sweep.csv") <(cut -d, -f1-17 "$W/same_off/sweep.csv") | head -20; } >"$OUT/same_rows.txt" 2>&1
fi
say "$(head -1 "$OUT/same_rows.txt")"

# 3. the maps: the f32 grid (310 s cell by cell on an H200) and a map of about 10,000 cells
step "grid_f32 packed" 180 "$FL" sweep --config "$GRID" --out "$W/grid"
cp "$W/grid/sweep.csv" "$OUT/grid_f32.csv" 2>>"$LOG"
step "map_10k packed" "$MAP_TIMEOUT" "$FL" sweep --config "$MAP" --out "$W/map"
cp "$W/map/sweep.csv" "$OUT/map_10k.csv" 2>>"$LOG"
say "map_10k: $(($(wc -l <"$OUT/map_10k.csv" 2>/dev/null || echo 1) - 1)) cells in the CSV"

say "done in $(($(date +%s) - T0)) s"
rm -rf "$W"
echo "=== bench.csv (cells, cell-steps/s, samples/s)"
python3 - "$OUT/bench.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(f"N {r['n']:>4} batch {r['batch']:>3} cells {r['cells']:>6}: {float(r['cell_steps_per_s']):>14,.0f} cell-steps/s {float(r['samples_per_s']):>16,.0f} samples/s  {r['adapter'][:40]}")
PY
echo "=== torch_map"
grep -E "cell-steps/s" "$OUT/torch_map.txt" || true
cat "$OUT/same_rows.txt"
grep -E "^\[.*-- (grid_f32|map_10k) packed" "$LOG" || true
