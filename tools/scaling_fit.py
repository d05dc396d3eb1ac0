#!/usr/bin/env python3
"""scaling_fit.py: the scaling law of steps to success against N, from sweep CSVs.

    python3 tools/scaling_fit.py SWEEP.csv [SWEEP.csv ...] [--plot OUT.png] [--min-n 8]

Reads `fftlearn sweep` CSVs (columns by name), groups the cells by everything but N and the
seed (init, data, batch, optimizer, schedule, beta2, lr), and fits two forms to every
successful cell's steps to success:

  power of N:      steps = a * N^alpha        (least squares on log steps against log N)
  linear in depth: steps = a + b * log2(N)    (least squares on steps against depth)

A power of N is polynomial in N and exponential in the depth log2 N (base 2^alpha); a form
linear in depth is logarithmic in N. The 95% intervals come from a bootstrap over seeds: each
resample draws every N's successful seeds with replacement (2,000 resamples, fixed RNG seed,
so the output is reproducible). The fit quality of each form is the RMS of the relative
residual (predicted / observed - 1) over the cells. Steps to success are resolved to the
sweep's eval_every, which bounds how well either form can fit at small N.

Needs numpy; --plot needs matplotlib.
"""
import argparse
import csv
import math
import sys
from collections import defaultdict

import numpy as np

KEY = ("init", "data", "batch", "optimizer", "schedule", "beta2", "lr", "precision")


def load(paths):
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                r.setdefault("beta2", "9.99e-1")
                rows.append(r)
    return rows


def groups(rows, min_n):
    g = defaultdict(lambda: defaultdict(list))
    tried = defaultdict(lambda: defaultdict(int))
    for r in rows:
        n = int(r["n"])
        if n < min_n:
            continue
        k = tuple(r[c] for c in KEY)
        tried[k][n] += 1
        if r["status"] == "success":
            g[k][n].append(float(r["steps_to_success"]))
    return g, tried


def fit_power(ns, steps):
    x, y = np.log(ns), np.log(steps)
    alpha, loga = np.polyfit(x, y, 1)
    return math.exp(loga), alpha


def fit_depth(ns, steps):
    b, a = np.polyfit(np.log2(ns), steps, 1)
    return a, b


def flat(per_n):
    ns = [n for n in sorted(per_n) for _ in per_n[n]]
    st = [s for n in sorted(per_n) for s in per_n[n]]
    return np.array(ns, float), np.array(st, float)


def rms_rel(pred, obs):
    return float(np.sqrt(np.mean((pred / obs - 1.0) ** 2)))


def analyse(per_n, boot=2000, seed=0):
    ns, st = flat(per_n)
    a_p, alpha = fit_power(ns, st)
    a_d, b_d = fit_depth(ns, st)
    rng = np.random.default_rng(seed)
    alphas, bs = [], []
    keys = sorted(per_n)
    for _ in range(boot):
        res = {n: list(rng.choice(per_n[n], size=len(per_n[n]), replace=True)) for n in keys}
        bn, bsx = flat(res)
        alphas.append(fit_power(bn, bsx)[1])
        bs.append(fit_depth(bn, bsx)[1])
    ci = lambda v: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
    return {
        "alpha": alpha,
        "a_power": a_p,
        "alpha_ci": ci(alphas),
        "b_depth": b_d,
        "a_depth": a_d,
        "b_ci": ci(bs),
        "rms_power": rms_rel(a_p * ns**alpha, st),
        "rms_depth": rms_rel(a_d + b_d * np.log2(ns), st),
        "cells": len(st),
    }


def label(k):
    d = dict(zip(KEY, k))
    s = f"{d['optimizer']} {d['init']}, {d['data']}"
    if d["data"] == "minibatch":
        s += f" batch {d['batch']}"
    if d["schedule"] != "constant":
        s += f", {d['schedule']}"
    if d["beta2"] not in ("9.99e-1", "0.999"):
        s += f", beta2 {float(d['beta2']):g}"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--plot")
    ap.add_argument("--min-n", type=int, default=8)
    a = ap.parse_args()
    g, tried = groups(load(a.csv), a.min_n)
    if not g:
        sys.exit("scaling_fit.py: no successful cell in " + ", ".join(a.csv))
    print("| group | N | successes / cells | steps = a N^alpha: alpha [95% CI] | RMS rel. resid. | steps = a + b log2 N: b [95% CI] | RMS rel. resid. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    fits = {}
    for k in sorted(g, key=label):
        per_n = g[k]
        if len(per_n) < 3:
            continue
        f = analyse(per_n)
        fits[k] = f
        ok = sum(len(v) for v in per_n.values())
        cells = sum(tried[k].values())
        ns = sorted(per_n)
        print(
            f"| {label(k)} | {ns[0]}..{ns[-1]} | {ok} / {cells} | {f['alpha']:.3f} [{f['alpha_ci'][0]:.3f}, {f['alpha_ci'][1]:.3f}] | {f['rms_power']:.3f} "
            f"| {f['b_depth']:.0f} [{f['b_ci'][0]:.0f}, {f['b_ci'][1]:.0f}] (a = {f['a_depth']:.0f}) | {f['rms_depth']:.3f} |"
        )
    print()
    print("| group | " + " | ".join(str(n) for n in sorted({n for k in fits for n in g[k]})) + " |")
    allns = sorted({n for k in fits for n in g[k]})
    print("| --- |" + " --- |" * len(allns))
    for k in fits:
        cells = []
        for n in allns:
            v = sorted(g[k].get(n, []))
            t = tried[k].get(n, 0)
            if not t:
                cells.append("")
            elif not v:
                cells.append(f"0/{t}")
            else:
                q1, med, q3 = np.percentile(v, [25, 50, 75])
                cells.append(f"{len(v)}/{t}, {med:g} ({q1:g}-{q3:g})")
        print(f"| {label(k)} | " + " | ".join(cells) + " |")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k, f in fits.items():
            ns = np.array(sorted(g[k]), float)
            q = np.array([np.percentile(g[k][int(n)], [25, 50, 75]) for n in ns])
            line = ax.errorbar(ns, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="o", capsize=3, label=f"{label(k)}: alpha {f['alpha']:.2f}")
            xs = np.geomspace(ns[0], ns[-1], 50)
            ax.plot(xs, f["a_power"] * xs ** f["alpha"], "-", color=line[0].get_color(), alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("steps to relative error <= 1e-6 (median, IQR)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(a.plot, dpi=110)
        print(f"\nwrote {a.plot}")


if __name__ == "__main__":
    main()
