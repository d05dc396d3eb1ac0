//! The r-sweep: every twiddle set to modulus r (exact or random phases, M exact), the
//! population gradient's norm per group, fitted exponents below and above r = 1, and the
//! path structure that predicts them (how many twiddles each input-to-output path carries).
//! [`run`] is the `rsweep` command's procedure: the scan reported to a log, its CSV and plot.

use crate::error::{Error, Result};
use crate::io::npy;
use crate::io::plot::{charts, Chart, Series};
use crate::io::table::{Shown, Table};
use crate::model::network::Network;
use crate::model::params::{exact_twiddles, Params, Scheme, EXACT_M};
use crate::objective::hessian::{group_of, population_grad};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Phases of the twiddles in the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phases {
    /// The exact FFT's phases: W = r^m F entrywise, with m the path's twiddle count.
    Exact,
    /// Uniform random phases (the `random` init's, from `seed`).
    Random,
}

/// One grid point.
#[derive(Clone, Debug)]
pub struct Row {
    /// Modulus of every twiddle.
    pub r: f64,
    /// Population loss.
    pub loss: f64,
    /// Gradient norm per group: M, then stage 1.. .
    pub norms: Vec<f64>,
}

/// Parameters with every twiddle at modulus `r`.
pub fn params_at(net: &Network, r: f64, phases: Phases, seed: u64) -> Params {
    let unit = match phases {
        Phases::Exact => exact_twiddles(net),
        Phases::Random => Params::init(net, &Scheme::Random, seed).tw,
    };
    Params {
        net: net.clone(),
        m: EXACT_M,
        tw: unit.iter().map(|w| w / w.norm() * r).collect(),
    }
}

/// The sweep over `rs`.
pub fn sweep(net: &Network, rs: &[f64], phases: Phases, seed: u64) -> Vec<Row> {
    let groups = 1 + net.stages().len();
    rs.iter()
        .map(|&r| {
            let (loss, g) = population_grad(&params_at(net, r, phases, seed));
            let mut sq = vec![0.0; groups];
            for (j, v) in g.iter().enumerate() {
                if let Some(gr) = group_of(net, j) {
                    sq[gr] += v * v;
                }
            }
            Row {
                r,
                loss,
                norms: sq.iter().map(|s| s.sqrt()).collect(),
            }
        })
        .collect()
}

/// Least-squares slope of log y against log x over the points with x in `range` and y > 0.
pub fn log_slope(pts: &[(f64, f64)], range: std::ops::RangeInclusive<f64>) -> f64 {
    let v: Vec<(f64, f64)> = pts
        .iter()
        .filter(|(x, y)| range.contains(x) && *y > 0.0 && *x > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    let n = v.len() as f64;
    if v.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (
        v.iter().map(|p| p.0).sum::<f64>() / n,
        v.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = v.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = v.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// How many twiddles each (bin, input) path carries: histogram over m = 0..=stages, read off
/// |W_kn| = 2^m at r = 2 with exact phases (|M| entries and |F| are 1).
pub fn path_histogram(net: &Network) -> Vec<usize> {
    let w = crate::backend::cpu::operator(&params_at(net, 2.0, Phases::Exact, 0));
    let top = net.stages().len();
    let mut h = vec![0usize; top + 1];
    for z in w {
        let m = z.norm().log2().round() as usize;
        h[m.min(top)] += 1;
    }
    h
}

/// The exact-phase population loss predicted from the path histogram alone:
/// L(r) = (1/K) sum_paths (r^m - 1)^2.
pub fn predicted_loss(net: &Network, hist: &[usize], r: f64) -> f64 {
    hist.iter()
        .enumerate()
        .map(|(m, &c)| c as f64 * (r.powi(m as i32) - 1.0).powi(2))
        .sum::<f64>()
        / net.bins() as f64
}

/// The most moduli one scan takes: far beyond what a plot resolves, and each one costs a
/// population gradient (N samples through the network).
pub const MAX_POINTS: usize = 100_000;

/// The moduli of a scan: `points` (3 to [`MAX_POINTS`]) spaced evenly in log r from `r_min`
/// to `r_max` (0 < r_min < r_max < inf).
pub fn moduli(r_min: f64, r_max: f64, points: usize) -> Result<Vec<f64>> {
    if !(r_min > 0.0 && r_min < r_max && r_max.is_finite()) {
        return Err(Error::input(format!(
            "--r-min {r_min:?} --r-max {r_max:?}: need 0 < r-min < r-max < inf"
        )));
    }
    if !(3..=MAX_POINTS).contains(&points) {
        return Err(Error::input(format!(
            "--points {points}: from 3 to {MAX_POINTS} (each point is a population gradient)"
        )));
    }
    // the loss carries r^(2 m) for paths of up to m = log2 N twiddles: within f64 up to
    // N = 2^16 while r^32 is, i.e. r <= 1e9
    if r_max > 1e9 || r_min < 1e-9 {
        return Err(Error::input(format!(
            "--r-min {r_min:?} --r-max {r_max:?}: the moduli must lie in [1e-9, 1e9] (the loss holds r^(2 log2 N), which overflows or underflows f64 beyond)"
        )));
    }
    Ok((0..points)
        .map(|i| r_min * (r_max / r_min).powf(i as f64 / (points - 1) as f64))
        .collect())
}

/// One `rsweep` measurement as data: the rows at log-spaced moduli, the path histogram, and
/// the tables the CLI prints and writes.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The network.
    pub net: Network,
    /// The phases the twiddles had.
    pub phases: Phases,
    /// One row per modulus, ascending.
    pub rows: Vec<Row>,
    /// Input-to-output paths by the number of twiddles on them ([`path_histogram`]).
    pub hist: Vec<usize>,
}

impl Scan {
    /// Measure at `points` moduli spaced evenly in log r from `r_min` to `r_max`.
    pub fn measure(n: usize, r_min: f64, r_max: f64, points: usize, phases: Phases, seed: u64) -> Result<Scan> {
        let net = Network::new(n)?;
        let rows = sweep(&net, &moduli(r_min, r_max, points)?, phases, seed);
        let hist = path_histogram(&net);
        Ok(Scan {
            net,
            phases,
            rows,
            hist,
        })
    }

    /// The parameter groups' names: M, stage1, ...
    pub fn groups(&self) -> Vec<String> {
        (0..=self.net.stages().len())
            .map(|g| if g == 0 { "M".to_string() } else { format!("stage{g}") })
            .collect()
    }

    /// One row per modulus: r, the population loss, the path-count prediction for exact
    /// phases, and each group's gradient norm (rsweep.csv).
    pub fn table(&self) -> Table {
        let mut t = Table::new()
            .float("r", self.rows.iter().map(|r| r.r))
            .float("population_loss", self.rows.iter().map(|r| r.loss))
            .float(
                "predicted_loss_exact_phases",
                self.rows.iter().map(|r| predicted_loss(&self.net, &self.hist, r.r)),
            );
        for (g, name) in self.groups().iter().enumerate() {
            t = t.float(&format!("grad_norm_{name}"), self.rows.iter().map(|r| r.norms[g]));
        }
        t
    }

    /// Per group, the least-squares slopes of log ||grad|| on log r below r = 0.8 and above
    /// r = 1.25 (with exact phases the gradient vanishes at r = 1), beside the seed's claim of 8.
    pub fn slopes(&self) -> Table {
        let groups = self.groups();
        let slope = |g: usize, range: std::ops::RangeInclusive<f64>| {
            let pts: Vec<(f64, f64)> = self.rows.iter().map(|r| (r.r, r.norms[g])).collect();
            log_slope(&pts, range)
        };
        Table::new()
            .text("group", groups.iter().cloned())
            .shown("group", 8, Shown::Left)
            .float("slope_below", (0..groups.len()).map(|g| slope(g, 0.0..=0.8)))
            .shown("slope r<=0.8", 16, Shown::Fixed(3))
            .float("slope_above", (0..groups.len()).map(|g| slope(g, 1.25..=f64::INFINITY)))
            .shown("slope r>=1.25", 16, Shown::Fixed(3))
            .int("seed_claims", groups.iter().map(|_| 8))
            .shown("seed claims", 12, Shown::Right)
    }

    /// With exact phases: the largest relative difference between the measured population
    /// loss and the path-count prediction (1/K) sum (r^m - 1)^2, relative to the loss floored
    /// at 1e-12 of the largest (at r = 1 both are rounding). None with random phases.
    pub fn prediction_gap(&self) -> Option<f64> {
        if self.phases != Phases::Exact {
            return None;
        }
        let floor = 1e-12 * self.rows.iter().map(|r| r.loss).fold(0.0, f64::max);
        Some(
            self.rows
                .iter()
                .map(|r| ((r.loss - predicted_loss(&self.net, &self.hist, r.r)) / r.loss.max(floor)).abs())
                .fold(0.0, f64::max),
        )
    }
}

/// Run `rsweep` at N = `n` (moduli from `r_min` to `r_max`, `points` of them, `phases` from
/// `seed`): the report to `log`, rsweep.csv and rsweep.png in `out`.
pub fn run(
    n: usize,
    (r_min, r_max, points): (f64, f64, usize),
    phases: Phases,
    seed: u64,
    out: &Path,
    log: &mut dyn Write,
) -> Result<Scan> {
    // the settings checked before the output directory is made
    Network::new(n)?;
    moduli(r_min, r_max, points)?;
    // made now, so a bad --out is refused at once; removed again if nothing is written
    let _dir = npy::OutDir::create(out)?;
    let t0 = Instant::now();
    let scan = Scan::measure(n, r_min, r_max, points, phases, seed)?;
    npy::write_text(&out.join("rsweep.csv"), &scan.table().csv())?;
    writeln!(
        log,
        "rsweep: N = {n}, {} phases, r from {r_min} to {r_max} ({points} points), {:.1} s",
        if phases == Phases::Exact { "exact" } else { "random" },
        t0.elapsed().as_secs_f64()
    )?;
    let total: usize = scan.hist.iter().sum();
    let h: Vec<String> = scan
        .hist
        .iter()
        .enumerate()
        .map(|(m, c)| format!("{m}: {:.4}", *c as f64 / total as f64))
        .collect();
    writeln!(
        log,
        "paths by twiddle count m (fraction of the {total} bin-input paths): {}",
        h.join(", ")
    )?;
    writeln!(log, "gradient-norm exponents: least-squares slopes of log ||grad|| on log r, away from r = 1 (0.8 < r < 1.25 left out: with exact phases the gradient vanishes at r = 1)")?;
    for l in scan.slopes().console() {
        writeln!(log, "{l}")?;
    }
    if let Some(worst) = scan.prediction_gap() {
        writeln!(log, "exact phases: measured population loss vs the path-count prediction (1/K) sum (r^m - 1)^2: max rel diff {worst:.2e}")?;
    }
    plot(&scan, &out.join("rsweep.png"))?;
    writeln!(
        log,
        "wrote {} and {}",
        out.join("rsweep.csv").display(),
        out.join("rsweep.png").display()
    )?;
    Ok(scan)
}

/// rsweep.png: the gradient norm per group against r, with the seed's r^8 line through the
/// last stage at the r nearest 1.
fn plot(scan: &Scan, path: &Path) -> Result<()> {
    let (rows, groups) = (&scan.rows, scan.groups());
    let series: Vec<Series> = groups
        .iter()
        .enumerate()
        .map(|(g, name)| Series {
            label: name.clone(),
            points: rows.iter().map(|r| (r.r, r.norms[g])).collect(),
            markers: false,
        })
        .collect();
    let mut reference = Vec::new();
    if let Some(mid) = rows
        .iter()
        .min_by(|x, y| (x.r - 1.0).abs().total_cmp(&(y.r - 1.0).abs()))
    {
        let g8 = mid.norms[groups.len() - 1];
        reference.push(Series {
            label: "r^8 (seed), through the last stage at r = 1".into(),
            points: rows.iter().map(|r| (r.r, g8 * (r.r / mid.r).powi(8))).collect(),
            markers: false,
        });
    }
    charts(
        path,
        &[Chart {
            title: format!("population gradient norm per group, N = {}", scan.net.n()),
            x_label: "twiddle modulus r".into(),
            y_label: "||grad||".into(),
            log_x: true,
            log_y: true,
            series: series.into_iter().chain(reference).collect(),
        }],
        820,
        560,
    )
}
