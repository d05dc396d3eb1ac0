//! The measurement subcommands (`hessian`, `rsweep`, `snr`): run the analysis, print the
//! report, write its CSV files and PNG.

use crate::cli::args::{HessianArgs, PhasesArg, PointArgs, RsweepArgs, SnrArgs};
use crate::cli::out::say;
use fftlearn::analysis::rsweep::{self, Phases};
use fftlearn::analysis::{snr, snr_report};
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
    if !(a.zero_tol > 0.0 && a.zero_tol < 1.0) {
        return Err(Error::input(format!(
            "--zero-tol {}: must be in (0, 1) (a fraction of the largest eigenvalue)",
            a.zero_tol
        )));
    }
    let p = point(&a.point)?;
    let net = p.net.clone();
    let nr = hessian::n_real(&net);
    if a.method == crate::cli::args::HessianMethod::Lanczos {
        return lanczos_report(&a, &p);
    }
    if nr > 4200 {
        return Err(Error::input(format!(
            "N = {}: {nr} real parameters; the dense {nr} x {nr} eigendecomposition is limited to N <= 2048 here (use --method lanczos)",
            net.n()
        )));
    }
    mkdir(&a.out)?;
    let t0 = Instant::now();
    let (h, asym_h) = hessian::hessian(&p);
    let (gn, asym_g) = hessian::gauss_newton(&p);
    let t_build = t0.elapsed().as_secs_f64();
    let scale = gn.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = h.iter().zip(&gn).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    let sh = hessian::spectrum(&net, &h, a.zero_tol)?;
    let sg = hessian::spectrum(&net, &gn, a.zero_tol)?;
    let bh = hessian::blocks(&net, &h)?;
    let bg = hessian::blocks(&net, &gn)?;
    let secs = t0.elapsed().as_secs_f64();
    let (loss, _) = hessian::population_grad(&p);
    say!(
        "hessian: N = {}, {nr} real parameters, population loss {loss:.6e} (relative operator error {:.3e})",
        net.n(),
        (loss / net.n() as f64).sqrt()
    );
    say!(
        "built both matrices in {t_build:.1} s, eigendecompositions done at {secs:.1} s; column asymmetry before symmetrising: H {asym_h:.1e}, GN {asym_g:.1e}"
    );
    say!(
        "max |H - GN| / max |GN| = {:.3e} (zero at the exact FFT, where the residual vanishes)",
        diff / scale
    );
    for (name, s) in [("Hessian", &sh), ("Gauss-Newton", &sg)] {
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
    say!(
        "{:<8} {:>5} {:>13} {:>13} {:>13} {:>13}",
        "block",
        "size",
        "GN min",
        "GN max",
        "GN mean diag",
        "H max"
    );
    let mut blocks_csv = String::from("matrix,group,size,min_eig,max_eig,mean_diag\n");
    for (g, h) in bg.iter().zip(&bh) {
        say!(
            "{:<8} {:>5} {:>13.4e} {:>13.4e} {:>13.4e} {:>13.4e}",
            g.0,
            g.1,
            g.2,
            g.3,
            g.4,
            h.3
        );
        blocks_csv.push_str(&format!("gauss_newton,{},{},{:e},{:e},{:e}\n", g.0, g.1, g.2, g.3, g.4));
        blocks_csv.push_str(&format!("hessian,{},{},{:e},{:e},{:e}\n", h.0, h.1, h.2, h.3, h.4));
    }
    let mut eig_csv = String::from("rank,hessian,gauss_newton\n");
    for (i, (x, y)) in sh.eig.iter().zip(&sg.eig).enumerate() {
        eig_csv.push_str(&format!("{i},{x:e},{y:e}\n"));
    }
    npy::write_text(&a.out.join("eigenvalues.csv"), &eig_csv)?;
    npy::write_text(&a.out.join("blocks.csv"), &blocks_csv)?;
    if a.save_matrices {
        npy::write_npz(
            &a.out.join("matrices.npz"),
            &[
                ("hessian", Out::F64(&[nr, nr], &h)),
                ("gauss_newton", Out::F64(&[nr, nr], &gn)),
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
            title: format!("|eigenvalues|, N = {}, init {}", net.n(), a.point.init),
            x_label: "rank (descending)".into(),
            y_label: "|lambda|".into(),
            log_x: false,
            log_y: true,
            series: vec![series(&sh, "Hessian"), series(&sg, "Gauss-Newton")],
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
    let net = Network::new(a.n)?;
    if !(a.r_min > 0.0 && a.r_min < a.r_max && a.r_max.is_finite()) {
        return Err(Error::input(format!(
            "--r-min {} --r-max {}: need 0 < r-min < r-max < inf",
            a.r_min, a.r_max
        )));
    }
    if a.points < 3 {
        return Err(Error::input(format!("--points {}: at least 3", a.points)));
    }
    mkdir(&a.out)?;
    let rs: Vec<f64> = (0..a.points)
        .map(|i| a.r_min * (a.r_max / a.r_min).powf(i as f64 / (a.points - 1) as f64))
        .collect();
    let phases = match a.phases {
        PhasesArg::Exact => Phases::Exact,
        PhasesArg::Random => Phases::Random,
    };
    let t0 = Instant::now();
    let rows = rsweep::sweep(&net, &rs, phases, a.seed);
    let hist = rsweep::path_histogram(&net);
    let groups = 1 + net.stages().len();
    let name = |g: usize| if g == 0 { "M".to_string() } else { format!("stage{g}") };
    let mut csv = String::from("r,population_loss,predicted_loss_exact_phases");
    for g in 0..groups {
        csv.push_str(&format!(",grad_norm_{}", name(g)));
    }
    csv.push('\n');
    for r in &rows {
        csv.push_str(&format!(
            "{:e},{:e},{:e}",
            r.r,
            r.loss,
            rsweep::predicted_loss(&net, &hist, r.r)
        ));
        for v in &r.norms {
            csv.push_str(&format!(",{v:e}"));
        }
        csv.push('\n');
    }
    npy::write_text(&a.out.join("rsweep.csv"), &csv)?;
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
    say!(
        "{:<8} {:>16} {:>16} {:>12}",
        "group",
        "slope r<=0.8",
        "slope r>=1.25",
        "seed claims"
    );
    for g in 0..groups {
        let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.r, r.norms[g])).collect();
        say!(
            "{:<8} {:>16.3} {:>16.3} {:>12}",
            name(g),
            rsweep::log_slope(&pts, 0.0..=0.8),
            rsweep::log_slope(&pts, 1.25..=f64::INFINITY),
            "8"
        );
    }
    if phases == Phases::Exact {
        // relative to the loss, floored at 1e-12 of the largest (at r = 1 both are rounding)
        let floor = 1e-12 * rows.iter().map(|r| r.loss).fold(0.0, f64::max);
        let worst = rows
            .iter()
            .map(|r| ((r.loss - rsweep::predicted_loss(&net, &hist, r.r)) / r.loss.max(floor)).abs())
            .fold(0.0, f64::max);
        say!("exact phases: measured population loss vs the path-count prediction (1/K) sum (r^m - 1)^2: max rel diff {worst:.2e}");
    }
    let series: Vec<Series> = (0..groups)
        .map(|g| Series {
            label: name(g),
            points: rows.iter().map(|r| (r.r, r.norms[g])).collect(),
            markers: false,
        })
        .collect();
    let mut reference = Vec::new();
    if let Some(mid) = rows
        .iter()
        .min_by(|x, y| (x.r - 1.0).abs().total_cmp(&(y.r - 1.0).abs()))
    {
        let g8 = mid.norms[groups - 1];
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
    say!(
        "{:<7} {:>11} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "group",
        "mean|g|",
        "std",
        "std exact",
        "SNR med",
        "SNR exact",
        "MeanGSNR",
        "GSNR ex",
        "cos",
        "B_simple",
        "B_s exact"
    );
    for r in rows {
        say!(
            "{:<7} {:>11.4e} {:>11.4e} {:>11.4e} {:>10.3e} {:>10.3e} {:>10.3e} {:>10.3e} {:>8.4} {:>10.3e} {:>10.3e}",
            r.group,
            r.mean_abs_g,
            r.std,
            r.std_exact,
            r.snr_median,
            r.snr_exact_median,
            r.mean_gsnr,
            r.mean_gsnr_exact,
            r.cos_mean,
            r.b_simple,
            r.b_simple_exact
        );
    }
}
