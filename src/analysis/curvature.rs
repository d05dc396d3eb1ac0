//! The `hessian` command's measurement. Dense ([`Dense::measure`]): the exact Hessian and
//! Gauss-Newton matrix of the population loss at a point, their spectra, their per-group
//! blocks, and the tables the CLI prints and writes and Python returns. Lanczos: the extreme
//! eigenvalues of the Gauss-Newton operator, matrix-free. [`run`] is the command's procedure:
//! a request ([`HessianRequest`]) checked, either method's report to a log, its files.

use crate::error::{Error, Result};
use crate::given::Given;
use crate::io::npy::{self, Out};
use crate::io::plot::{charts, Chart, Series};
use crate::io::table::{Shown, Table};
use crate::model::params::{Params, Point};
use crate::objective::hessian::{self, Block, Spectrum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How `hessian` computes the spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Both matrices in full and their eigendecompositions (N <= 2048).
    Dense,
    /// The extreme eigenvalues of the Gauss-Newton operator over the used parameters,
    /// matrix-free (any N).
    Lanczos,
}

/// `hessian` as a front end asks for it.
#[derive(Clone, Debug)]
pub struct HessianRequest {
    /// The point.
    pub point: Point,
    /// The method.
    pub method: Method,
    /// Zero-mode tolerance (dense).
    pub zero_tol: f64,
    /// Also write both matrices (dense).
    pub save_matrices: bool,
    /// Most Lanczos steps (lanczos).
    pub iters: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Which settings were given.
    pub given: Given,
}

/// Run `hessian`: the report to `log`; eigenvalues.csv, blocks.csv and spectrum.png (and
/// matrices.npz) in `r.out` for the dense method, ritz.csv for Lanczos. A setting of the
/// other method is refused where given.
pub fn run(r: &HessianRequest, log: &mut dyn Write) -> Result<()> {
    let g = &r.given;
    let (other, theirs) = match r.method {
        Method::Dense => (g.names(&["iters"]), "lanczos"),
        Method::Lanczos => (g.names(&["zero_tol", "save_matrices"]), "dense"),
    };
    if !other.is_empty() {
        return Err(Error::input(format!(
            "{} {} on {} only, and this is {}; drop {} or use {}",
            other.join(", "),
            crate::given::agree(&other, "acts", "act"),
            g.with("method", theirs),
            g.with("method", format!("{:?}", r.method).to_lowercase()),
            crate::given::agree(&other, "it", "them"),
            g.with("method", theirs)
        )));
    }
    check_zero_tol(r.zero_tol, g)?;
    if r.method == Method::Lanczos && r.iters < 2 {
        return Err(Error::input(format!(
            "{}: at least 2 Lanczos steps",
            g.with("iters", r.iters)
        )));
    }
    let p = r.point.params()?;
    if r.method == Method::Dense {
        hessian::check_dense(&p.net)?;
    }
    crate::backend::cpu::measurable_error(&p, "measure")?;
    // made now, so a bad --out is refused at once; removed again if nothing is written
    let dir = crate::io::npy::OutDir::create(&r.out)?;
    let stale: &[&str] = match r.method {
        Method::Dense => {
            dense_report(r, &p, log)?;
            if r.save_matrices {
                &["ritz.csv"]
            } else {
                &["ritz.csv", "matrices.npz"]
            }
        }
        Method::Lanczos => {
            lanczos_report(r, &p, log)?;
            &["eigenvalues.csv", "blocks.csv", "spectrum.png", "matrices.npz"]
        }
    };
    dir.remove_stale(stale, log)?;
    Ok(())
}

/// The dense method's report, tables, matrices and plot.
fn dense_report(r: &HessianRequest, p: &Params, log: &mut dyn Write) -> Result<()> {
    let d = Dense::measure(p, r.zero_tol, &r.given)?;
    let n = p.net.n();
    writeln!(
        log,
        "hessian: N = {n}, {} real parameters, population loss {:.6e} (relative operator error {:.3e})",
        d.nr,
        d.loss,
        (d.loss / n as f64).sqrt()
    )?;
    writeln!(
        log,
        "built both matrices in {:.1} s, eigendecompositions done at {:.1} s; column asymmetry before symmetrising: H {:.1e}, GN {:.1e}",
        d.seconds.0, d.seconds.1, d.asymmetry.0, d.asymmetry.1
    )?;
    writeln!(
        log,
        "max |H - GN| / max |GN| = {:.3e} (zero at the exact FFT, where the residual vanishes)",
        d.h_minus_gn
    )?;
    for (name, s) in [("Hessian", &d.spec_h), ("Gauss-Newton", &d.spec_gn)] {
        writeln!(
            log,
            "{name}: lambda_max {:.6e}, zero modes (|lambda| <= {:.1e}) {}, negative {}, condition number over the rest {:.6e}",
            s.eig.last().copied().unwrap_or(0.0),
            s.tol,
            s.zero_modes.len(),
            s.negative,
            s.kappa
        )?;
        for (l, carriers) in s.zero_modes.iter().take(12) {
            let c: Vec<String> = carriers.iter().take(4).map(|(n, w)| format!("{n} ({w:.2})")).collect();
            writeln!(log, "  zero mode {l:+.2e}: {}", c.join(", "))?;
        }
    }
    let blocks = d.blocks();
    for l in blocks.console() {
        writeln!(log, "{l}")?;
    }
    let out = &r.out;
    npy::write_text(&out.join("eigenvalues.csv"), &d.eigenvalues().csv())?;
    npy::write_text(&out.join("blocks.csv"), &blocks.csv())?;
    if r.save_matrices {
        let nr = d.nr;
        npy::write_npz(
            &out.join("matrices.npz"),
            &[
                ("hessian", Out::F64(&[nr, nr], &d.hessian)),
                ("gauss_newton", Out::F64(&[nr, nr], &d.gauss_newton)),
            ],
        )?;
    }
    let of = match &r.point {
        Point::Init { scheme, .. } => format!("init {scheme}"),
        Point::File(f) => f.display().to_string(),
    };
    spectrum_plot(&out.join("spectrum.png"), &d, n, &of)?;
    writeln!(
        log,
        "wrote {}, {} and {}",
        out.join("eigenvalues.csv").display(),
        out.join("blocks.csv").display(),
        out.join("spectrum.png").display()
    )?;
    Ok(())
}

/// spectrum.png: both spectra's |eigenvalues| by descending rank.
fn spectrum_plot(path: &Path, d: &Dense, n: usize, of: &str) -> Result<()> {
    let series = |s: &hessian::Spectrum, label: &str| Series {
        label: label.into(),
        points: s
            .eig
            .iter()
            .rev()
            .enumerate()
            .map(|(i, l)| ((i + 1) as f64, l.abs()))
            .collect(),
        markers: true,
    };
    charts(
        path,
        &[Chart {
            title: format!("|eigenvalues|, N = {n}, {of}"),
            x_label: "rank (descending)".into(),
            y_label: "|lambda|".into(),
            log_x: false,
            log_y: true,
            series: vec![series(&d.spec_h, "Hessian"), series(&d.spec_gn, "Gauss-Newton")],
        }],
        800,
        520,
    )
}

/// The Lanczos method's report and ritz.csv.
fn lanczos_report(r: &HessianRequest, p: &Params, log: &mut dyn Write) -> Result<()> {
    let net = &p.net;
    let nr = hessian::n_real(net);
    let t0 = Instant::now();
    let op = hessian::GnOperator::new(p)?;
    let mask: Vec<bool> = (0..nr).map(|j| hessian::group_of(net, j).is_some()).collect();
    let (ritz, iters) = hessian::lanczos(|v| op.apply(v), &mask, r.iters, 1)?;
    let secs = t0.elapsed().as_secs_f64();
    let (lmin, lmax) = (ritz[0], ritz[ritz.len() - 1]);
    writeln!(
        log,
        "hessian (Lanczos on the Gauss-Newton operator): N = {}, {} used real parameters (the unused twiddle left out), {iters} steps, {secs:.1} s",
        net.n(),
        mask.iter().filter(|&&m| m).count()
    )?;
    writeln!(
        log,
        "lambda_max {lmax:.6e}, lambda_min {lmin:.6e}, condition number {:.6e}{}",
        lmax / lmin,
        if iters >= r.iters {
            format!(" (not converged: raise {})", r.given.name("iters"))
        } else {
            " (converged: extremes changed < 1e-10 over the last 10 steps)".to_string()
        }
    )?;
    let table = Table::new()
        .int("rank", (0..ritz.len() as i64).collect::<Vec<_>>())
        .float("ritz_value", ritz.iter().copied());
    let path = r.out.join("ritz.csv");
    npy::write_text(&path, &table.csv())?;
    writeln!(log, "wrote {}", path.display())?;
    Ok(())
}

/// The default zero-mode tolerance: eigenvalues with |lambda| <= 1e-9 x lambda_max count as
/// zero modes.
pub const ZERO_TOL: f64 = 1e-9;

/// Refuse a zero-mode tolerance outside (0, 1) (named as `g` spells it).
pub fn check_zero_tol(zero_tol: f64, g: &Given) -> Result<()> {
    if zero_tol > 0.0 && zero_tol < 1.0 {
        return Ok(());
    }
    Err(Error::input(format!(
        "{}: must be in (0, 1) (a fraction of the largest eigenvalue)",
        g.with("zero_tol", zero_tol)
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
    pub fn measure(p: &Params, zero_tol: f64, g: &Given) -> Result<Dense> {
        check_zero_tol(zero_tol, g)?;
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
