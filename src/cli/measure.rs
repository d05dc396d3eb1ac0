//! The measurement subcommands (`hessian`, `rsweep`, `snr`): run the analysis, print the
//! report, write its CSV files and PNG.

use crate::cli::args::{HessianArgs, PhasesArg, PointArgs, RsweepArgs, SnrArgs};
use crate::cli::out::say;
use fftlearn::analysis::rsweep::{self, Phases};
use fftlearn::analysis::{curvature, snr, snr_report};
use fftlearn::error::{Error, Result};
use fftlearn::io::npy::{self, Out};
use fftlearn::io::plot::{charts, Chart, Series};
use fftlearn::model::network::Network;
use fftlearn::model::params::Params;
use fftlearn::objective::hessian;
use std::path::Path;
use std::time::Instant;

fn point(a: &PointArgs) -> Result<Params> {
    a.point()?.params()
}

fn mkdir(d: &Path) -> Result<()> {
    std::fs::create_dir_all(d).map_err(|e| Error::input(format!("cannot create output directory {}: {e}", d.display())))
}

/// `fftlearn hessian`. Slightly over 120 lines: the dense and Lanczos methods' reports, the
/// spectrum file and its plot.
pub fn hessian_cmd(a: HessianArgs) -> Result<()> {
    curvature::check_zero_tol(a.zero_tol)?;
    let p = point(&a.point)?;
    if a.method == crate::cli::args::HessianMethod::Lanczos {
        return lanczos_report(&a, &p);
    }
    hessian::check_dense(&p.net)?;
    mkdir(&a.out)?;
    let d = curvature::Dense::measure(&p, a.zero_tol)?;
    let n = p.net.n();
    say!(
        "hessian: N = {n}, {} real parameters, population loss {:.6e} (relative operator error {:.3e})",
        d.nr,
        d.loss,
        (d.loss / n as f64).sqrt()
    );
    say!(
        "built both matrices in {:.1} s, eigendecompositions done at {:.1} s; column asymmetry before symmetrising: H {:.1e}, GN {:.1e}",
        d.seconds.0,
        d.seconds.1,
        d.asymmetry.0,
        d.asymmetry.1
    );
    say!(
        "max |H - GN| / max |GN| = {:.3e} (zero at the exact FFT, where the residual vanishes)",
        d.h_minus_gn
    );
    for (name, s) in [("Hessian", &d.spec_h), ("Gauss-Newton", &d.spec_gn)] {
        say!(
            "{name}: lambda_max {:.6e}, zero modes (|lambda| <= {:.1e}) {}, negative {}, condition number over the rest {:.6e}",
            s.eig.last().copied().unwrap_or(0.0),
            s.tol,
            s.zero_modes.len(),
            s.negative,
            s.kappa
        );
        for (l, carriers) in s.zero_modes.iter().take(12) {
            let c: Vec<String> = carriers.iter().take(4).map(|(n, w)| format!("{n} ({w:.2})")).collect();
            say!("  zero mode {l:+.2e}: {}", c.join(", "));
        }
    }
    let blocks = d.blocks();
    for l in blocks.console() {
        say!("{l}");
    }
    npy::write_text(&a.out.join("eigenvalues.csv"), &d.eigenvalues().csv())?;
    npy::write_text(&a.out.join("blocks.csv"), &blocks.csv())?;
    if a.save_matrices {
        let nr = d.nr;
        npy::write_npz(
            &a.out.join("matrices.npz"),
            &[
                ("hessian", Out::F64(&[nr, nr], &d.hessian)),
                ("gauss_newton", Out::F64(&[nr, nr], &d.gauss_newton)),
            ],
        )?;
    }
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
        &a.out.join("spectrum.png"),
        &[Chart {
            title: format!("|eigenvalues|, N = {n}, init {}", a.point.init),
            x_label: "rank (descending)".into(),
            y_label: "|lambda|".into(),
            log_x: false,
            log_y: true,
            series: vec![series(&d.spec_h, "Hessian"), series(&d.spec_gn, "Gauss-Newton")],
        }],
        800,
        520,
    )?;
    say!(
        "wrote {}, {} and {}",
        a.out.join("eigenvalues.csv").display(),
        a.out.join("blocks.csv").display(),
        a.out.join("spectrum.png").display()
    );
    Ok(())
}

/// `fftlearn hessian --method lanczos`: extreme eigenvalues of the Gauss-Newton operator.
fn lanczos_report(a: &HessianArgs, p: &Params) -> Result<()> {
    if a.iters < 2 {
        return Err(Error::input(format!("--iters {}: at least 2 Lanczos steps", a.iters)));
    }
    let net = &p.net;
    let nr = hessian::n_real(net);
    mkdir(&a.out)?;
    let t0 = Instant::now();
    let op = hessian::GnOperator::new(p)?;
    let mask: Vec<bool> = (0..nr).map(|j| hessian::group_of(net, j).is_some()).collect();
    let (ritz, iters) = hessian::lanczos(|v| op.apply(v), &mask, a.iters, 1)?;
    let secs = t0.elapsed().as_secs_f64();
    let (lmin, lmax) = (ritz[0], ritz[ritz.len() - 1]);
    say!(
        "hessian (Lanczos on the Gauss-Newton operator): N = {}, {} used real parameters (the unused twiddle left out), {iters} steps, {secs:.1} s",
        net.n(),
        mask.iter().filter(|&&m| m).count()
    );
    say!(
        "lambda_max {lmax:.6e}, lambda_min {lmin:.6e}, condition number {:.6e}{}",
        lmax / lmin,
        if iters >= a.iters {
            " (not converged: raise --iters)"
        } else {
            " (converged: extremes changed < 1e-10 over the last 10 steps)"
        }
    );
    let mut csv = String::from("rank,ritz_value\n");
    for (i, v) in ritz.iter().enumerate() {
        csv.push_str(&format!("{i},{v:e}\n"));
    }
    npy::write_text(&a.out.join("ritz.csv"), &csv)?;
    say!("wrote {}", a.out.join("ritz.csv").display());
    Ok(())
}

/// `fftlearn rsweep`. Slightly over 120 lines: the scan's table, its CSV and its two plots.
pub fn rsweep_cmd(a: RsweepArgs) -> Result<()> {
    let phases = match a.phases {
        PhasesArg::Exact => Phases::Exact,
        PhasesArg::Random => Phases::Random,
    };
    // the flags checked before the output directory is made
    Network::new(a.n)?;
    rsweep::moduli(a.r_min, a.r_max, a.points)?;
    mkdir(&a.out)?;
    let t0 = Instant::now();
    let scan = rsweep::Scan::measure(a.n, a.r_min, a.r_max, a.points, phases, a.seed)?;
    let (net, rows, hist) = (&scan.net, &scan.rows, &scan.hist);
    npy::write_text(&a.out.join("rsweep.csv"), &scan.table().csv())?;
    say!(
        "rsweep: N = {}, {} phases, r from {} to {} ({} points), {:.1} s",
        net.n(),
        if phases == Phases::Exact { "exact" } else { "random" },
        a.r_min,
        a.r_max,
        a.points,
        t0.elapsed().as_secs_f64()
    );
    let total: usize = hist.iter().sum();
    let h: Vec<String> = hist
        .iter()
        .enumerate()
        .map(|(m, c)| format!("{m}: {:.4}", *c as f64 / total as f64))
        .collect();
    say!(
        "paths by twiddle count m (fraction of the {total} bin-input paths): {}",
        h.join(", ")
    );
    say!("gradient-norm exponents: least-squares slopes of log ||grad|| on log r, away from r = 1 (0.8 < r < 1.25 left out: with exact phases the gradient vanishes at r = 1)");
    for l in scan.slopes().console() {
        say!("{l}");
    }
    if let Some(worst) = scan.prediction_gap() {
        say!("exact phases: measured population loss vs the path-count prediction (1/K) sum (r^m - 1)^2: max rel diff {worst:.2e}");
    }
    let groups = scan.groups();
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
        &a.out.join("rsweep.png"),
        &[Chart {
            title: format!("population gradient norm per group, N = {}", net.n()),
            x_label: "twiddle modulus r".into(),
            y_label: "||grad||".into(),
            log_x: true,
            log_y: true,
            series: series.into_iter().chain(reference).collect(),
        }],
        820,
        560,
    )?;
    say!(
        "wrote {} and {}",
        a.out.join("rsweep.csv").display(),
        a.out.join("rsweep.png").display()
    );
    Ok(())
}

/// The fits `snr` prints after its rows.
fn print_fits(fits: &snr_report::Fits, l: usize) {
    say!("\nper-stage fit: slope of ln std(g_s) on ({l} - s) ln 2 over stages 1..{l} (the seed claims 0.5)");
    for (b, measured, closed) in &fits.stage {
        say!("  B = {b:>8}: measured {measured:.4}, closed form {closed:.4}");
    }
    if !fits.batch.is_empty() {
        say!("batch fit: slope of ln(median SNR) on ln B per group (independent minibatches give 0.5)");
        for (g, measured, closed) in &fits.batch {
            say!("  {g:<7} measured {measured:.4}, closed form {closed:.4}");
        }
    }
}

/// `fftlearn snr`.
pub fn snr_cmd(a: SnrArgs) -> Result<()> {
    let p = crate::cli::args::point_of(a.params.as_deref(), a.n, &a.init, a.seed)?.params()?;
    let net = p.net.clone();
    let req = snr::SnrRequest::new(net.n(), a.batches.clone(), a.k, a.exact.into())?;
    crate::cli::args::refuse_gpu_flags_on_cpu(a.device)?;
    mkdir(&a.out)?;
    let point = a
        .params
        .as_ref()
        .map_or(format!("init {}", a.init), |f| f.display().to_string());
    let (gpu, multi) = crate::cli::device::open_for(&a.gpu, a.device.into(), &p)?;
    let on = match (&gpu, &multi) {
        (Some(g), _) => snr::On::Gpu(g),
        (_, Some(m)) => snr::On::Multi(m),
        _ => snr::On::Cpu,
    };
    let t0 = Instant::now();
    let base = req.baseline(&p);
    let (pop_loss, pop, ex) = (base.pop_loss, &base.pop, base.exact.as_ref());
    match ex {
        Some(e) => say!(
            "closed form (N (N + 1) / 2 = {} per-sample gradients): {:.1} s; max |tr A_j - population gradient_j| = {:.2e}",
            net.n() * (net.n() + 1) / 2,
            base.exact_s,
            base.gap(e)
        ),
        None => say!("closed form: skipped (--exact {:?}, N = {})", a.exact, net.n()),
    }
    say!(
        "snr: N = {}, {point}, population loss {pop_loss:.6e}, |G| = {:.6e}, K = {} minibatches per batch size (stream Measure, seed {})",
        net.n(),
        pop.iter().map(|v| v * v).sum::<f64>().sqrt(),
        a.k,
        a.seed
    );
    if pop.iter().all(|&v| v == 0.0) {
        say!("note: the population gradient is exactly zero here (a stationary point): SNR, MeanGSNR, cosines and B_simple are undefined (NaN/inf)");
    }
    let all_rows = req.rows(&p, on, a.seed, pop, ex, |b, rows, secs| {
        if let Some(m) = &multi {
            say!("[device] B = {b}: {}", m.assignment(b));
        }
        say!(
            "\nB = {b}: {} minibatches in {secs:.1} s ({:.0} samples/s)",
            a.k,
            (b * a.k) as f64 / secs
        );
        print_rows(rows);
        Ok(())
    })?;
    print_fits(&snr_report::Fits::of(&net, &a.batches, &all_rows), net.stages().len());
    snr_report::write(&a.out, &net, &a.batches, &all_rows, ex.is_some())?;
    say!(
        "total {:.1} s; wrote {} and {}",
        t0.elapsed().as_secs_f64(),
        a.out.join("snr.csv").display(),
        a.out.join("snr.png").display()
    );
    Ok(())
}

/// The per-group table of one batch size.
fn print_rows(rows: &[snr::Row]) {
    for l in snr::table(rows).console() {
        say!("{l}");
    }
}
