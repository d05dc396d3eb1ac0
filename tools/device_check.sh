#!/usr/bin/env bash
# device_check.sh: measure the GPU path on a machine with a hardware GPU (made for an NVIDIA
# H100/H200 with CUDA, Python and torch but no Rust toolchain and no network), in one run,
# every step under its own timeout, every result into one folder.
#
#   tools/device_check.sh KIT OUT
#
# KIT (made here by tools/make_device_kit.sh): fftlearn (built with a portable -C target-cpu),
# the peers torch_vec.py + cpuguard.py, and the Vulkan loader's .deb files (unpacked only if
# libvulkan.so.1 is missing). OUT receives log.txt (everything), bench.csv (fftlearn bench
# rows, every kernel x precision x batch, adapter and machine named), shapes.csv (other fused
# plan shapes, and the default one with its twiddles loaded once per step), torch.txt (the
# peer's rows from the same run), gradcheck.txt,
# determinism.txt and seed_run.txt: eight files at most.
#
# Sizes (override for a dry run on lavapipe, e.g. DC_BATCHES=4096,16384 DC_GC_BATCHES=1,4096):
#   DC_BATCHES       fftlearn bench batches, fused and group   (default 65536,1048576,4194304,16777216)
#   DC_LANE_BATCHES  lane (slow by design)                     (default 65536,1048576)
#   DC_GC_BATCHES    gradcheck batches                         (default 1,4096,65536,1048576)
#   DC_TORCH_BATCHES torch_vec.py bench batches on CUDA        (default 65536 262144)
#   DC_TRAIN_BATCH   batch of the two identical runs           (default 65536)
#   DC_CAP_BATCH     batch of the --dispatch-cap off row       (default 16777216)
#   DC_DEVICE        torch device                              (default cuda)
set -uo pipefail
KIT=$(cd "${1:?usage: device_check.sh KIT OUT}" && pwd)
OUT=${2:?usage: device_check.sh KIT OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/log.txt
BATCHES=${DC_BATCHES:-65536,1048576,4194304,16777216}
LANE_BATCHES=${DC_LANE_BATCHES:-65536,1048576}
GC_BATCHES=${DC_GC_BATCHES:-1,4096,65536,1048576}
TORCH_BATCHES=${DC_TORCH_BATCHES:-65536 262144}
TRAIN_BATCH=${DC_TRAIN_BATCH:-65536}
TORCH_DEVICE=${DC_DEVICE:-cuda}
FL=$KIT/fftlearn
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
T0=$(date +%s)

say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$LOG"; }
# step NAME SECONDS FILE CMD...: run under a timeout, output to the log (and FILE), rc noted
step() {
    local name=$1 secs=$2 file=$3
    shift 3
    say "== $name (timeout $secs s): $*"
    local s
    s=$(date +%s)
    if [ "$file" = - ]; then
        timeout -k 5 "$secs" "$@" >>"$LOG" 2>&1
    else
        timeout -k 5 "$secs" "$@" 2>&1 | tee -a "$file" >>"$LOG"
    fi
    local rc=${PIPESTATUS[0]}
    say "-- $name: rc $rc in $(($(date +%s) - s)) s"
    return 0
}

say "device_check on $(hostname) $(date -u +%FT%TZ); kit $KIT"
{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1; } >>"$LOG" 2>&1

# the Vulkan loader and a hardware adapter (tools/device_vulkan.sh)
. "$(dirname "$0")/device_vulkan.sh"
find_hardware_adapter || say "WARNING: no hardware adapter found; GPU rows will be software or fail"
step devices 60 "$OUT/devices.txt" "$FL" devices

# 1. speed: every kernel, f32 then f64, and the peer on the same card in the same run
step "bench fused f32" 150 - "$FL" bench --kernel fused --precision f32 --batches "$BATCHES" --min-time 1 --min-steps 3 --out "$OUT/b1.csv"
step "torch_vec bench $TORCH_DEVICE float32" 150 "$OUT/torch.txt" python3 "$KIT/torch_vec.py" bench --device "$TORCH_DEVICE" --batches $TORCH_BATCHES --dtypes float32 --n-clean 3 --min-time 0.5
step "bench group f32" 90 - "$FL" bench --kernel group --precision f32 --batches "$BATCHES" --min-time 1 --min-steps 2 --out "$OUT/b2.csv"
step "bench fused,group f64" 120 - "$FL" bench --kernel fused,group --precision f64 --batches "$BATCHES" --min-time 1 --min-steps 2 --out "$OUT/b3.csv"
# other fused plan shapes (bits per invocation, least workgroup size), at one large batch
for sh in ${DC_SHAPES:-2,64 3,128 4,64 4,128}; do
    step "bench fused shape $sh" 60 - env FFTLEARN_FUSED_SHAPE="$sh" "$FL" bench --kernel fused --precision f32 --batches "${DC_SHAPE_BATCH:-4194304}" --min-time 1 --min-steps 3 --out "$OUT/s_${sh/,/_}.csv"
done
# the default shape with its twiddles loaded once per step (as on CPU-type adapters), against
# the hardware default of loads at each use: the bits are the same (tests/it/gpu.rs)
step "bench fused hoist on" 45 - env FFTLEARN_FUSED_HOIST=on "$FL" bench --kernel fused --precision f32 --batches "${DC_SHAPE_BATCH:-4194304}" --min-time 1 --min-steps 3 --out "$OUT/s_hoist.csv"
step "bench lane f32" 90 - "$FL" bench --kernel lane --precision f32 --batches "$LANE_BATCHES" --min-time 0.5 --min-steps 2 --out "$OUT/b4.csv"
step "bench cpu f64" 60 - "$FL" bench --device cpu --batches 65536 --min-time 1 --min-steps 2 --out "$OUT/b5.csv"
# the dispatch cap's cost: a 2^24-sample step in one dispatch against the default cut (its
# GPU timestamps in the rows); the bytes are the same either way (tests/it/dispatch.rs)
step "bench fused f32 cap off" 60 - "$FL" bench --kernel fused --precision f32 --batches "${DC_CAP_BATCH:-16777216}" --min-time 1 --min-steps 3 --dispatch-cap off --out "$OUT/c_off.csv"
# one CSV: the header once, then every row
{
    head -n1 "$OUT/b1.csv" 2>/dev/null
    for f in "$OUT"/b[1-5].csv; do tail -n +2 "$f" 2>/dev/null; done
    tail -n +2 "$OUT/c_off.csv" 2>/dev/null | sed "s/,fused,/,fused(cap off),/"
} >"$OUT/bench.csv"
for f in "$OUT"/s_*.csv; do
    [ -e "$f" ] || continue
    s=${f##*/s_}
    tail -n +2 "$f" | sed "s/,fused,/,fused(${s%.csv}),/" >>"$OUT/shapes.csv"
done
rm -f "$OUT"/b[1-5].csv "$OUT"/c_off.csv "$OUT"/s_*.csv

# 2. correctness on this card: gradcheck per kernel x init x batch (f32), and f64
for b in ${GC_BATCHES//,/ }; do
    for init in seed exact random; do
        step "gradcheck fused $init b$b f32" 90 "$OUT/gradcheck.txt" "$FL" gradcheck --kernel fused --init "$init" --batch "$b"
    done
    for k in group lane; do
        step "gradcheck $k random b$b f32" 90 "$OUT/gradcheck.txt" "$FL" gradcheck --kernel "$k" --init random --batch "$b"
    done
    for k in fused group; do
        step "gradcheck $k random b$b f64" 90 "$OUT/gradcheck.txt" "$FL" gradcheck --kernel "$k" --init random --batch "$b" --precision f64
    done
done

# 3. two identical runs, compared byte for byte
# (the same --out for both: the checkpoint records its directory)
for r in A B; do
    step "train run $r" 90 - "$FL" train --device gpu --kernel auto --batch "$TRAIN_BATCH" --steps 200 --print-every 50 --n 512 --out "$OUT/run"
    mv "$OUT/run" "$OUT/run$r"
done
{
    for f in metrics.csv params.npz checkpoint.npz; do
        if cmp -s "$OUT/runA/$f" "$OUT/runB/$f"; then echo "identical: $f"; else echo "DIFFERENT: $f"; fi
    done
    sha256sum "$OUT"/run[AB]/metrics.csv
    tail -n 3 "$OUT/runA/metrics.csv"
} | tee "$OUT/determinism.txt" >>"$LOG"
rm -rf "$OUT/runA" "$OUT/runB"

# 4. the seed's own run on the GPU (3000 steps, batch 16, all-ones init)
step "seed run on the GPU" 120 "$OUT/seed_run.txt" "$FL" train --device gpu --out "$OUT/seed"
rm -rf "$OUT/seed"

say "done in $(($(date +%s) - T0)) s"
# the summary last, so the end of the output shows it
table() {
    python3 - "$@" <<'PY'
import csv, sys
for path in sys.argv[1:]:
    try:
        rows = list(csv.reader(open(path)))
    except OSError:
        continue
    for r in rows:
        if r and r[0] != "device":
            print(f"{r[0]:4} {r[2]:12} {r[3]:4} {r[5]:>9} {float(r[9]):>14,.0f} samples/s  {r[1][:40]}")
PY
}
echo "=== bench.csv"
table "$OUT/bench.csv"
echo "=== fused plan shapes"
table "$OUT/shapes.csv"
echo "=== torch"
grep -E "samples/s" "$OUT/torch.txt" || true
echo "=== gradcheck"
grep -cE "^PASS" "$OUT/gradcheck.txt" | sed 's/^/PASS lines: /'
grep -E "^FAIL|^error" "$OUT/gradcheck.txt" || true
cat "$OUT/determinism.txt"
grep -E "final|relative operator|samples/s" "$OUT/seed_run.txt" | tail -4
