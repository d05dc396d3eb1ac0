#!/usr/bin/env bash
# bench_packs.sh: learnability maps with packs against cell-by-cell and the PyTorch peer that
# trains many cells in one batched step (torch_map.py), measured in one run on this machine.
#
#   tools/bench_packs.sh FFTLEARN PEERS_DIR PYTHON [OUT]
#
# FFTLEARN: the binary (target/release/fftlearn); PEERS_DIR: the folder holding torch_map.py;
# PYTHON: a Python with torch and numpy. Writes OUT (default target/bench_packs): bench.csv
# (`fftlearn bench --cells`), torch_bench.txt and torch_train.txt (the peer's own lines),
# maps.csv (one row per map run) and table.md.
#
# Every map run trains every cell for all its steps (threshold 1e-300, so no cell leaves
# early), evaluated every BP_EVAL steps, so cell-steps = cells x steps in each of them:
#   gpu:  BP_GPU_CELLS cells at N = 64, batch 16, BP_STEPS steps, random inits, f32 (packed,
#         cell by cell, torch_map float32 on the CPU);
#   cpu:  BP_CPU_SEEDS cells at each N of BP_CPU_N, batch 16, BP_STEPS steps, f64 (packed,
#         cell by cell, torch_map float64).
# Sizes (defaults: the figures in docs/packs.md): BP_STEPS=2000 BP_EVAL=100 BP_GPU_CELLS=64
# BP_CPU_SEEDS=16 BP_CPU_N="8 16 32 64 128 256" BP_BENCH_CELLS=1,16,64,256 BP_MIN_TIME=3
# BP_THREADS=all cores (torch's threads; fftlearn uses every core).
set -euo pipefail
FL=$(realpath "${1:?usage: bench_packs.sh FFTLEARN PEERS_DIR PYTHON [OUT]}")
PEERS=$(realpath "${2:?usage: bench_packs.sh FFTLEARN PEERS_DIR PYTHON [OUT]}")
PY=${3:?usage: bench_packs.sh FFTLEARN PEERS_DIR PYTHON [OUT]}
OUT=${4:-target/bench_packs}
STEPS=${BP_STEPS:-2000}
EVAL=${BP_EVAL:-100}
GPU_CELLS=${BP_GPU_CELLS:-64}
CPU_SEEDS=${BP_CPU_SEEDS:-16}
CPU_N=${BP_CPU_N:-8 16 32 64 128 256}
BENCH_CELLS=${BP_BENCH_CELLS:-1,16,64,256}
MIN_TIME=${BP_MIN_TIME:-3}
THREADS=${BP_THREADS:-$(nproc)}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
echo "map,how,cells,steps,wall_s,cell_steps_per_s" >"$OUT/maps.csv"
: >"$OUT/torch_train.txt"

# record NAME HOW CELLS WALL: one row of maps.csv
record() {
    python3 -c "import sys; w=float(sys.argv[1]); c=int(sys.argv[2]); s=int(sys.argv[3]); print(f'{sys.argv[4]},{sys.argv[5]},{c},{s},{w:.3f},{c*s/w:.1f}')" \
        "$4" "$3" "$STEPS" "$1" "$2" | tee -a "$OUT/maps.csv"
}

# map NAME HOW CELLS CMD...: one fftlearn map run, timed as a whole process (start-up, device
# and shader cache included)
map() {
    local name=$1 how=$2 cells=$3
    shift 3
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$W/last.log" 2>&1 || { cat "$W/last.log"; exit 1; }
    t1=$(date +%s.%N)
    record "$name" "$how" "$cells" "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$t1")"
}

# peer NAME HOW CELLS CMD...: torch_map.py train runs, timed by their own clocks (the training
# loops' wall, without Python's and torch's start-up), summed
peer() {
    local name=$1 how=$2 cells=$3
    shift 3
    "$@" >"$W/last.log" 2>&1 || { cat "$W/last.log"; exit 1; }
    cat "$W/last.log" >>"$OUT/torch_train.txt"
    record "$name" "$how" "$cells" "$(python3 -c "import re, sys; print(sum(float(m) for m in re.findall(r'; ([0-9.]+) s$', open(sys.argv[1]).read(), re.M)))" "$W/last.log")"
}

grid() { # grid PRECISION SEEDS N...
    local prec=$1 seeds=$2
    shift 2
    local ns
    ns="$*"
    ns=${ns// /, }
    printf 'n = [%s]\nbatch = [16]\ninit = ["random"]\nprecision = ["%s"]\nseeds = %s\nsteps = %s\neval_every = %s\nthreshold = 1e-300\n' \
        "$ns" "$prec" "$seeds" "$STEPS" "$EVAL"
}

"$FL" devices >"$OUT/devices.txt" 2>&1 || true
echo "== bench --cells ($BENCH_CELLS) at N = 64, batch 16: the GPU (fused) and the CPU f64 path"
"$FL" bench --device both --kernel fused --n 64 --batches 16 --cells "$BENCH_CELLS" \
    --min-time "$MIN_TIME" --out "$OUT/bench.csv"
echo "== torch_map.py bench, the same cells, $THREADS threads"
# shellcheck disable=SC2046
(cd "$PEERS" && "$PY" torch_map.py bench --n 64 --batch 16 --cells $(echo "$BENCH_CELLS" | tr , ' ') \
    --steps 300 --threads "$THREADS") | tee "$OUT/torch_bench.txt"

echo "== maps"
grid f32 "$GPU_CELLS" 64 >"$W/gpu.toml"
map gpu packed "$GPU_CELLS" "$FL" sweep --config "$W/gpu.toml" --out "$W/gpu_on"
map gpu cell-by-cell "$GPU_CELLS" "$FL" sweep --config "$W/gpu.toml" --out "$W/gpu_off" --pack off
cmp <(cut -d, -f1-17 "$W/gpu_on/sweep.csv") <(cut -d, -f1-17 "$W/gpu_off/sweep.csv") && echo "gpu: packed rows = cell-by-cell rows"
peer gpu torch_map-float32 "$GPU_CELLS" bash -c "cd '$PEERS' && '$PY' torch_map.py train --n 64 --batch 16 --cells $GPU_CELLS --steps $STEPS --eval-every $EVAL --threshold 1e-300 --dtype float32 --threads $THREADS"
# shellcheck disable=SC2086
grid f64 "$CPU_SEEDS" $CPU_N >"$W/cpu.toml"
ncpu=$((CPU_SEEDS * $(echo "$CPU_N" | wc -w)))
map cpu packed "$ncpu" "$FL" sweep --config "$W/cpu.toml" --out "$W/cpu_on"
map cpu cell-by-cell "$ncpu" "$FL" sweep --config "$W/cpu.toml" --out "$W/cpu_off" --pack off
cmp <(cut -d, -f1-17 "$W/cpu_on/sweep.csv") <(cut -d, -f1-17 "$W/cpu_off/sweep.csv") && echo "cpu: packed rows = cell-by-cell rows"
peer cpu torch_map-float64 "$ncpu" bash -c "cd '$PEERS' && for n in $CPU_N; do '$PY' torch_map.py train --n \$n --batch 16 --cells $CPU_SEEDS --steps $STEPS --eval-every $EVAL --threshold 1e-300 --dtype float64 --threads $THREADS; done"

python3 - "$OUT" <<'PY'
import csv, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/maps.csv")))
lines = ["| map | how | cells | steps | wall s | cell-steps/s | packed / this |", "| --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    packed = next(float(p["cell_steps_per_s"]) for p in rows if p["map"] == r["map"] and p["how"] == "packed")
    lines.append(f"| {r['map']} | {r['how']} | {r['cells']} | {r['steps']} | {float(r['wall_s']):.1f} | "
                 f"{float(r['cell_steps_per_s']):,.0f} | {packed / float(r['cell_steps_per_s']):.1f}x |")
lines += ["", "| device | cells | median step s | cell-steps/s | samples/s |", "| --- | --- | --- | --- | --- |"]
for r in csv.DictReader(open(f"{out}/bench.csv")):
    lines.append(f"| {r['device']} {r['precision']} | {r['cells']} | {float(r['median_s']):.3e} | "
                 f"{float(r['cell_steps_per_s']):,.0f} | {float(r['samples_per_s']):,.0f} |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
grep -E "cell-steps/s" "$OUT/torch_bench.txt" || true
