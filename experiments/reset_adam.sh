#!/usr/bin/env bash
# The remedy the stall's anatomy points to (docs/failures.md): reset Adam's moments once. On the failing cell of
# the random-init map (N = 8192, batch 64, random unit-circle init, lr 1e-2), for seeds 0..9:
# Adam for 1500 steps (bit for bit the first half of the baseline cell in remedies_adam.toml),
# then, from that checkpoint, 1500 more steps twice on the same data: with the run's own Adam
# state ("kept": the baseline itself, continued) and with fresh moments ("fresh": the remedy).
# Budget: 3000 steps either way. Writes OUT/reset_adam.csv (seed + inspect's escape.csv rows).
#   experiments/reset_adam.sh [OUT]      (FL=path/to/fftlearn; about 25 min on 2 cores)
set -euo pipefail
FL=${FL:-target/release/fftlearn}
OUT=${1:-runs/reset_adam}
mkdir -p "$OUT"
echo "seed,direction,eps,start_rel,final_rel,steps_to_1e-2,steps_to_threshold" >"$OUT/reset_adam.csv.tmp"
for s in 0 1 2 3 4 5 6 7 8 9; do
    "$FL" train --device cpu --n 8192 --batch 64 --init random --seed "$s" --steps 1500 \
        --print-every 500 --out "$OUT/s$s/run" --overwrite >"$OUT/s$s.train.log"
    "$FL" inspect --checkpoint "$OUT/s$s/run/checkpoint.npz" --lanczos 0 --escape-steps 1500 \
        --eval-every 250 --threshold 1e-6 --out "$OUT/s$s/inspect" >"$OUT/s$s.inspect.log"
    tail -n +2 "$OUT/s$s/inspect/escape.csv" | sed "s/^/$s,/" >>"$OUT/reset_adam.csv.tmp"
done
mv "$OUT/reset_adam.csv.tmp" "$OUT/reset_adam.csv"
cat "$OUT/reset_adam.csv"
