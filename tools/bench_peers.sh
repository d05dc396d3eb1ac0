#!/usr/bin/env bash
# Training-step throughput of fftlearn's CPU f64 path beside the peers (torch_vec.py, jax_vec.py),
# measured in one run on this machine. Usage:
#   tools/bench_peers.sh PEERS_DIR [PYTHON=/tmp/peers-venv/bin/python]
# PEERS_DIR: the folder holding torch_vec.py and jax_vec.py.
# Writes target/bench_peers.md (a Markdown table of samples/s and ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${1:?usage: tools/bench_peers.sh PEERS_DIR [PYTHON]}
PY=${2:-/tmp/peers-venv/bin/python}
OUT=target/bench_peers
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo bench --bench train_step -- train_step_cpu_f64 2>&1 | grep -E "^train_step|thrpt" || true
cargo bench --bench train_step -- train_step_gpu 2>&1 | grep -E "^train_step|thrpt|skipping" || true
(cd "$PEERS" && "$PY" torch_vec.py bench --n-clean 4 --out "$OLDPWD/$OUT/torch.json")
(cd "$PEERS" && "$PY" jax_vec.py bench --n-clean 4 --out "$OLDPWD/$OUT/jax.json")
"$PY" - "$OUT" <<'PYEOF'
import json, sys, os
out = sys.argv[1]
def ours(b):
    est = json.load(open(f"target/criterion/train_step_cpu_f64/{b}/new/estimates.json"))
    return b / (est["median"]["point_estimate"] * 1e-9)
def peer(name):
    rows = json.load(open(f"{out}/{name}.json"))["rows"]
    return {(r["batch"], r["dtype"]): r.get("samples_per_s_full_best", r.get("samples_per_s_best")) for r in rows}
t, j = peer("torch"), peer("jax")
lines = ["| batch | fftlearn cpu f64 | torch f64 | torch f32 | JAX f64 | JAX f32 | vs torch f64 | vs JAX f64 |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for b in (16, 1024, 65536):
    o = ours(b)
    tf, tf32, jf, jf32 = t.get((b, "float64")), t.get((b, "float32")), j.get((b, "float64")), j.get((b, "float32"))
    f = lambda v: f"{v:,.0f}" if v else "-"
    r = lambda v: f"{o / v:.1f}x" if v else "-"
    lines.append(f"| {b:,} | {o:,.0f} | {f(tf)} | {f(tf32)} | {f(jf)} | {f(jf32)} | {r(tf)} | {r(jf)} |")
import glob
lines.append("")
for d in sorted(glob.glob("target/criterion/train_step_gpu_f32_*/*/new/estimates.json")):
    est = json.load(open(d))
    b = int(d.split("/")[3])
    g = b / (est["median"]["point_estimate"] * 1e-9)
    name = d.split("/")[2]
    tf32 = t.get((b, "float32"))
    vs = f"; torch f32 same batch: {tf32:,.0f}; ratio {g / tf32:.1f}x" if tf32 else ""
    cpu = ours(b) if os.path.exists(f"target/criterion/train_step_cpu_f64/{b}") else None
    vc = f"; fftlearn cpu f64: {cpu:,.0f}" if cpu else ""
    lines.append(f"- {name}, batch {b:,}: {g:,.0f} samples/s{vs}{vc}")
open(f"{out}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
