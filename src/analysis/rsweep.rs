//! The r-sweep: every twiddle set to modulus r (exact or random phases, M exact), the
//! population gradient's norm per group, fitted exponents below and above r = 1, and the
//! path structure that predicts them (how many twiddles each input-to-output path carries).

use crate::model::network::Network;
use crate::model::params::{exact_twiddles, Params, Scheme, EXACT_M};
use crate::objective::hessian::{group_of, population_grad};

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
