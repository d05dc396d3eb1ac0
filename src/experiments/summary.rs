//! A sweep's summary over its seeds. Cells that differ only in the seed form a group; each
//! group gets its success rate with a 95% Wilson score interval, and the median and
//! interquartile range of the steps (and samples) to success among its successes. Written as
//! `OUT/summary.csv` and drawn as the heat maps `OUT/success_rate.png` and
//! `OUT/median_steps.png` (one panel per group of the axes other than N and batch).

use super::cell::HEADER;
use super::grid::{Cell, SweepConfig};
use crate::error::Result;
use crate::io::npy;
use crate::io::plot::{heatmaps, Heat};

/// The normal quantile of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `k` successes in `n` trials at normal quantile `z` (Wilson
/// 1927; Brown, Cai and DasGupta 2001 recommend it over the Wald interval for small n and for
/// rates near 0 or 1). `(0, 1)` when `n` is 0.
pub fn wilson(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // exact at the ends: k = 0 gives lo = 0, k = n gives hi = 1
    let lo = if k == 0.0 { 0.0 } else { (centre - half).max(0.0) };
    let hi = if k == n { 1.0 } else { (centre + half).min(1.0) };
    (lo, hi)
}

/// The `q`-quantile of sorted values by linear interpolation between order statistics
/// (Hyndman and Fan's type 7, numpy's and R's default); NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        len => {
            let h = (len - 1) as f64 * q;
            let i = h.floor() as usize;
            let j = (i + 1).min(len - 1);
            sorted[i] + (h - i as f64) * (sorted[j] - sorted[i])
        }
    }
}

/// The 25%, 50% and 75% quantiles of `v` (NaN when empty).
pub fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [quantile(&v, 0.25), quantile(&v, 0.5), quantile(&v, 0.75)]
}

/// One group of cells that differ only in the seed.
#[derive(Clone, Debug)]
pub struct Group {
    /// Its first cell (the seed aside, every cell of the group has these coordinates).
    pub cell: Cell,
    /// Cells with a row.
    pub seeds: usize,
    /// Rows with status success.
    pub successes: usize,
    /// Rows with status diverged.
    pub diverged: usize,
    /// The 95% Wilson interval of the success rate.
    pub interval: (f64, f64),
    /// Quartiles of the steps to success among the successes (NaN without one).
    pub steps: [f64; 3],
    /// Quartiles of the samples to success among the successes.
    pub samples: [f64; 3],
}

impl Group {
    /// successes / seeds (NaN without a row).
    pub fn rate(&self) -> f64 {
        self.successes as f64 / self.seeds as f64
    }
}

/// The summary CSV's header: the coordinates a group shares, then its figures.
pub const SUMMARY_HEADER: &str = "n,batch,lr,init,optimizer,precision,schedule,momentum,beta2,data,steps,seeds,successes,diverged,success_rate,wilson95_lo,wilson95_hi,steps_to_success_median,steps_to_success_q1,steps_to_success_q3,samples_to_success_median,samples_to_success_q1,samples_to_success_q3";

fn column(name: &str) -> usize {
    HEADER
        .split(',')
        .position(|c| c == name)
        .expect("a column of the sweep CSV")
}

/// Group the rows of `cells` (`rows[i]` is the row of `cells[i]`; cells past the rows have
/// none), in the order of each group's first cell.
pub fn groups(cells: &[Cell], rows: &[String]) -> Vec<Group> {
    let (status, steps_at, samples_at) = (
        column("status"),
        column("steps_to_success"),
        column("samples_to_success"),
    );
    let mut order: Vec<String> = Vec::new();
    let mut by: std::collections::HashMap<String, (Cell, Vec<&str>)> = Default::default();
    for (cell, row) in cells.iter().zip(rows) {
        let k = cell.group_key();
        by.entry(k.clone())
            .or_insert_with(|| {
                order.push(k);
                (cell.clone(), Vec::new())
            })
            .1
            .push(row);
    }
    order
        .into_iter()
        .map(|k| {
            let (cell, rows) = by.remove(&k).expect("every key was inserted");
            let field = |r: &str, i: usize| r.split(',').nth(i).unwrap_or("").to_string();
            let ok: Vec<&&str> = rows.iter().filter(|r| field(r, status) == "success").collect();
            let values = |i: usize| ok.iter().filter_map(|r| field(r, i).parse::<f64>().ok()).collect();
            Group {
                seeds: rows.len(),
                successes: ok.len(),
                diverged: rows.iter().filter(|r| field(r, status) == "diverged").count(),
                interval: wilson(ok.len(), rows.len(), Z95),
                steps: quartiles(values(steps_at)),
                samples: quartiles(values(samples_at)),
                cell,
            }
        })
        .collect()
}

fn num(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        format!("{v}")
    }
}

/// The summary CSV of `groups`.
pub fn csv(groups: &[Group]) -> String {
    let mut out = format!("{SUMMARY_HEADER}\n");
    for g in groups {
        let [s1, s2, s3] = g.steps;
        let [m1, m2, m3] = g.samples;
        out.push_str(&format!(
            "{},{},{},{},{},{:.4},{:.4},{:.4},{},{},{},{},{},{}\n",
            g.cell.shared_coords().join(","),
            g.cell.steps,
            g.seeds,
            g.successes,
            g.diverged,
            g.rate(),
            g.interval.0,
            g.interval.1,
            num(s2),
            num(s1),
            num(s3),
            num(m2),
            num(m1),
            num(m3)
        ));
    }
    out
}

/// The files [`write`] writes into `out`: refused before any cell runs when one is a special
/// file (a directory, a device, a link...).
pub fn check_outputs(out: &std::path::Path) -> Result<()> {
    for f in ["summary.csv", "success_rate.png", "median_steps.png"] {
        npy::check_out_file(&out.join(f))?;
    }
    Ok(())
}

/// Write `OUT/summary.csv` and the two heat maps for the rows of `cells`.
pub fn write(c: &SweepConfig, cells: &[Cell], rows: &[String]) -> Result<()> {
    let gs = groups(cells, rows);
    npy::write_text(&c.out.join("summary.csv"), &csv(&gs))?;
    maps(c, &gs)
}

/// The heat maps over N x batch: one panel per combination of the other axes (the seed
/// aside), titled by the optimizer and every axis with more than one value.
fn maps(c: &SweepConfig, gs: &[Group]) -> Result<()> {
    let title = |cell: &Cell| {
        let mut t = cell.optimizer.to_string();
        let mut add = |many: bool, what: String| {
            if many {
                t.push_str(", ");
                t.push_str(&what);
            }
        };
        add(c.lr.len() > 1, format!("lr {:e}", cell.lr));
        add(c.init.len() > 1, cell.init.to_string());
        add(
            c.precision.len() > 1,
            super::grid::precision_name(cell.precision).into(),
        );
        add(c.schedule.len() > 1, cell.schedule.to_string());
        add(c.momentum.len() > 1, format!("momentum {}", cell.momentum));
        add(c.beta2.len() > 1, format!("beta2 {}", cell.beta2));
        add(c.data.len() > 1, cell.data.to_string());
        t
    };
    let mut panels: Vec<(String, Vec<&Group>)> = Vec::new();
    for g in gs {
        let t = title(&g.cell);
        match panels.iter_mut().find(|(pt, _)| *pt == t) {
            Some((_, v)) => v.push(g),
            None => panels.push((t, vec![g])),
        }
    }
    if panels.is_empty() {
        // no row yet (a partial merge): one empty panel
        panels.push((crate::optim::Optimizer::names(c.optimizer.iter().copied()), Vec::new()));
    }
    let (nr, nc) = (c.n.len(), c.batch.len());
    let at = |g: &Group| {
        let r = c.n.iter().position(|&n| n == g.cell.n).unwrap_or(0);
        let col = c.batch.iter().position(|&b| b == g.cell.batch).unwrap_or(0);
        (r, col)
    };
    let mut rate = Vec::new();
    let mut med = Vec::new();
    let medians = || gs.iter().map(|g| g.steps[1]).filter(|v| v.is_finite());
    let steps_hi = medians().fold(1.0, f64::max);
    // the colour scale spans the medians drawn (one value: that value is drawn green)
    let steps_lo = match medians().fold(steps_hi, f64::min) {
        lo if lo < steps_hi => lo,
        _ => steps_hi / 2.0,
    };
    for (t, groups) in &panels {
        let mut rv = vec![vec![None; nc]; nr];
        let mut rl = vec![vec![String::new(); nc]; nr];
        let mut mv = vec![vec![None; nc]; nr];
        let mut ml = vec![vec![String::new(); nc]; nr];
        for g in groups {
            let (r, col) = at(g);
            rv[r][col] = Some(g.rate());
            rl[r][col] = format!(
                "{}/{}\n[{:.2}, {:.2}]",
                g.successes, g.seeds, g.interval.0, g.interval.1
            );
            mv[r][col] = Some(g.steps[1]);
            if g.steps[1].is_finite() {
                ml[r][col] = format!("{}\n{}-{}", g.steps[1], g.steps[0], g.steps[2]);
            }
        }
        let base = |title: String, values, labels, lo, hi, log, reverse| Heat {
            title,
            x_label: "batch".into(),
            y_label: "N".into(),
            cols: c.batch.iter().map(|b| b.to_string()).collect(),
            rows: c.n.iter().map(|n| n.to_string()).collect(),
            values,
            labels,
            lo,
            hi,
            log,
            reverse,
        };
        rate.push(base(format!("{t}: success (95% CI)"), rv, rl, 0.0, 1.0, false, false));
        med.push(base(
            format!("{t}: median steps (IQR)"),
            mv,
            ml,
            steps_lo,
            steps_hi,
            true,
            true,
        ));
    }
    let h = (90 + 50 * nr as u32).max(320);
    let w = (140 + 100 * nc as u32).max(380);
    heatmaps(&c.out.join("success_rate.png"), &rate, w, h)?;
    heatmaps(&c.out.join("median_steps.png"), &med, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Brown, Cai and DasGupta (2001) and any statistics package: 0/10 -> [0, 0.2775],
        // 5/10 -> [0.2366, 0.7634], 10/10 -> [0.7225, 1], 48/50 -> [0.8654, 0.9890]
        let cases = [
            ((0, 10), (0.0, 0.27753)),
            ((5, 10), (0.23659, 0.76341)),
            ((10, 10), (0.72247, 1.0)),
            ((48, 50), (0.86542, 0.98896)),
        ];
        for ((k, n), (lo, hi)) in cases {
            let (a, b) = wilson(k, n, Z95);
            assert!((a - lo).abs() < 5e-5 && (b - hi).abs() < 5e-5, "{k}/{n}: {a} {b}");
        }
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn quartiles_interpolate_like_numpy() {
        // numpy.percentile([1500, 2000, 2500, 3000], [25, 50, 75]) = 1875, 2250, 2625
        assert_eq!(
            quartiles(vec![3000.0, 1500.0, 2500.0, 2000.0]),
            [1875.0, 2250.0, 2625.0]
        );
        assert_eq!(quartiles(vec![7.0]), [7.0; 3]);
        assert!(quartiles(vec![]).iter().all(|v| v.is_nan()));
    }
}
