#!/usr/bin/env python3
"""remedy_table.py: the remedy table of docs/failures.md from the CSVs in docs/sweeps.

  tools/remedy_table.py [DOCS]      (DOCS default docs/sweeps; standard library only)

Inputs: remedies_adam.csv (Adam constant / cosine / step:1000:0.3, `fftlearn sweep --config
experiments/remedies_adam.toml`), remedies_phase_h200host.csv (phase-only, `experiments/
remedies_other.toml`, its phase cells), reset_adam.csv (`experiments/reset_adam.sh`).
"Restarts" is derived from the constant-lr Adam rows: a constant-lr run of 1500 steps is the
first half of the 3000-step run bit for bit (counter-based data), so two restarts of 1500 steps
(seeds 2j and 2j+1) succeed iff either seed reached 1e-6 by step 1500.
"""
import csv
import statistics
import sys
from pathlib import Path

docs = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/sweeps")


def rows(name):
    with open(docs / name) as f:
        return list(csv.DictReader(f))


def summary(rs):
    ok = [int(r["steps_to_success"]) for r in rs if r["status"] == "success"]
    bad = sorted(float(r["final_rel_err"]) for r in rs if r["status"] != "success")
    med = f"{statistics.median(ok):.0f}" if ok else "-"
    fails = ", ".join(f"{x:.3g}" for x in bad) if bad else "-"
    return f"{len(ok)}/{len(rs)}", med, fails


out = ["| remedy | success (<= 1e-6 in 3,000 steps) | median steps to success | final error of the failures | command |",
       "| --- | --- | --- | --- | --- |"]
adam = rows("remedies_adam.csv")
for sched, label in [("constant", "none: Adam, constant lr (the map's cell)"),
                     ("cosine", "cosine schedule"), ("step:1000:0.3", "step schedule (x0.3 every 1,000 steps)")]:
    s, m, f = summary([r for r in adam if r["schedule"] == sched])
    out.append(f"| {label} | {s} | {m} | {f} | `fftlearn sweep --config experiments/remedies_adam.toml` |")
base = sorted((r for r in adam if r["schedule"] == "constant"), key=lambda r: int(r["seed"]))
pairs = [(base[i], base[i + 1]) for i in range(0, len(base) - 1, 2)]
won = []
for a, b in pairs:
    hits = [int(r["steps_to_success"]) for r in (a, b) if r["status"] == "success" and int(r["steps_to_success"]) <= 1500]
    won.append(hits)
ok_pairs = [h for h in won if h]
out.append(f"| restarts: 2 x 1,500 steps (seeds 2j, 2j+1) | {len(ok_pairs)}/{len(pairs)} | - | - | derived from the constant-lr rows (see tools/remedy_table.py) |")
reset = rows("reset_adam.csv")
kept = [r for r in reset if r["direction"] == "kept"]
fresh = [r for r in reset if r["direction"] == "fresh"]
def esc(rs):
    ok = [int(r["steps_to_threshold"]) for r in rs if r["steps_to_threshold"]]
    left = [int(r["steps_to_1e-2"]) for r in rs if r["steps_to_1e-2"]]
    bad = sorted(float(r["final_rel"]) for r in rs if not r["steps_to_threshold"])
    return ok, left, bad
ok, left, bad = esc(fresh)
when = f"all at the first evaluation, {min(left)} steps" if min(left) == max(left) else f"after {min(left)}-{max(left)} steps"
out.append(f"| reset Adam's moments once, at step 1,500 | {len(ok)}/{len(fresh)} | {statistics.median([1500 + x for x in ok]):.0f} | {', '.join(f'{x:.3g}' for x in bad) or '-'} (left the plateau, <= 1e-2: {len(left)}/{len(fresh)}, {when}) | `experiments/reset_adam.sh` |")
ok, left, bad = esc(kept)
out.append(f"| (control: the same runs continued with their moments) | {len(ok)}/{len(kept)} | {statistics.median([1500 + x for x in ok]):.0f} | {', '.join(f'{x:.3g}' for x in bad) or '-'} | `experiments/reset_adam.sh` |" if ok else
           f"| (control: the same runs continued with their moments) | 0/{len(kept)} | - | {', '.join(f'{x:.3g}' for x in bad)} | `experiments/reset_adam.sh` |")
s, m, f = summary(rows("remedies_phase_h200host.csv"))
out.append(f"| phase-only (twiddles on the unit circle: `--optimizer phase`) | {s} | {m} | {f} | `fftlearn sweep --config experiments/remedies_other.toml` (its phase cells; run on the H200's 16-core host) |")
print("\n".join(out))
