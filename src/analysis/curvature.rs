//! The dense curvature measurement of `hessian` as data ([`Dense::measure`]): the exact
//! Hessian and Gauss-Newton matrix of the population loss at a point, their spectra, their
//! per-group blocks, and the tables the CLI prints and writes and Python returns.

use crate::error::{Error, Result};
use crate::io::table::{Shown, Table};
use crate::model::params::Params;
use crate::objective::hessian::{self, Block, Spectrum};
use std::time::Instant;

/// The default zero-mode tolerance: eigenvalues with |lambda| <= 1e-9 x lambda_max count as
/// zero modes.
pub const ZERO_TOL: f64 = 1e-9;

/// Refuse a zero-mode tolerance outside (0, 1).
pub fn check_zero_tol(zero_tol: f64) -> Result<()> {
    if zero_tol > 0.0 && zero_tol < 1.0 {
        return Ok(());
    }
    Err(Error::input(format!(
        "--zero-tol {zero_tol}: must be in (0, 1) (a fraction of the largest eigenvalue)"
    )))
}

/// Both matrices at one point and what they say.
#[derive(Clone, Debug)]
pub struct Dense {
    /// Real parameters (the matrices are `nr` x `nr`, row-major).
    pub nr: usize,
    /// The population loss.
    pub loss: f64,
    /// The Hessian.
    pub hessian: Vec<f64>,
    /// The Gauss-Newton matrix.
    pub gauss_newton: Vec<f64>,
    /// Largest column asymmetry of each before symmetrising (rounding).
    pub asymmetry: (f64, f64),
    /// max |H - GN| / max |GN|: zero where the residual vanishes (at the exact FFT).
    pub h_minus_gn: f64,
    /// The Hessian's spectrum.
    pub spec_h: Spectrum,
    /// The Gauss-Newton spectrum.
    pub spec_gn: Spectrum,
    /// The Hessian's per-group blocks.
    pub blocks_h: Vec<Block>,
    /// The Gauss-Newton per-group blocks.
    pub blocks_gn: Vec<Block>,
    /// Seconds to build both matrices, and in all.
    pub seconds: (f64, f64),
}

impl Dense {
    /// Measure at `p`: eigenvalues with |lambda| <= `zero_tol` x lambda_max count as zero
    /// modes (`zero_tol` in (0, 1)); N up to [`hessian::DENSE_MAX_N`].
    pub fn measure(p: &Params, zero_tol: f64) -> Result<Dense> {
        check_zero_tol(zero_tol)?;
        let net = &p.net;
        hessian::check_dense(net)?;
        let t0 = Instant::now();
        let (h, asym_h) = hessian::hessian(p);
        let (gn, asym_g) = hessian::gauss_newton(p);
        let t_build = t0.elapsed().as_secs_f64();
        let scale = gn.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = h.iter().zip(&gn).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        let spec_h = hessian::spectrum(net, &h, zero_tol)?;
        let spec_gn = hessian::spectrum(net, &gn, zero_tol)?;
        let blocks_h = hessian::blocks(net, &h)?;
        let blocks_gn = hessian::blocks(net, &gn)?;
        let (loss, _) = hessian::population_grad(p);
        Ok(Dense {
            nr: hessian::n_real(net),
            loss,
            hessian: h,
            gauss_newton: gn,
            asymmetry: (asym_h, asym_g),
            h_minus_gn: diff / scale,
            spec_h,
            spec_gn,
            blocks_h,
            blocks_gn,
            seconds: (t_build, t0.elapsed().as_secs_f64()),
        })
    }

    /// The eigenvalues of both, ascending, by rank (eigenvalues.csv).
    pub fn eigenvalues(&self) -> Table {
        Table::new()
            .int("rank", 0..self.spec_h.eig.len() as i64)
            .float("hessian", self.spec_h.eig.iter().copied())
            .float("gauss_newton", self.spec_gn.eig.iter().copied())
    }

    /// The per-group blocks, one row per group: the Gauss-Newton block's extreme eigenvalues
    /// and mean diagonal, and the Hessian's (the console shows the Hessian's largest).
    pub fn blocks(&self) -> Table {
        let col = |b: &[Block], get: fn(&Block) -> f64| b.iter().map(get).collect::<Vec<f64>>();
        let (g, h) = (&self.blocks_gn, &self.blocks_h);
        Table::new()
            .text("group", g.iter().map(|b| b.0.clone()))
            .shown("block", 8, Shown::Left)
            .int("size", g.iter().map(|b| b.1 as i64))
            .shown("size", 5, Shown::Right)
            .float("gn_min_eig", col(g, |b| b.2))
            .shown("GN min", 13, Shown::Sci(4))
            .float("gn_max_eig", col(g, |b| b.3))
            .shown("GN max", 13, Shown::Sci(4))
            .float("gn_mean_diag", col(g, |b| b.4))
            .shown("GN mean diag", 13, Shown::Sci(4))
            .float("h_min_eig", col(h, |b| b.2))
            .float("h_max_eig", col(h, |b| b.3))
            .shown("H max", 13, Shown::Sci(4))
            .float("h_mean_diag", col(h, |b| b.4))
    }
}
