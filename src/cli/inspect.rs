//! `fftlearn inspect`: the anatomy of one point ([`fftlearn::analysis::anatomy`]) printed as a
//! report, with its CSV files and one picture (per-bin error, per-stage twiddle deviation).
//!
//! The verdict's rules, with lambda the exact Hessian's extreme eigenvalues (unused twiddle
//! excluded), g the population gradient and L the population loss:
//! - "the FFT" when the relative operator error is <= 1e-6;
//! - "saddle" when lambda_min < -1e-8 lambda_max (a direction of negative curvature);
//! - else "stationary, no negative curvature (a local minimum to second order)" when
//!   rho = ||g|| / sqrt(2 lambda_max L) < 1e-6 (rho <= 1 on any quadratic bowl of curvature at
//!   most lambda_max, so it measures how stationary the point is for its loss);
//! - else "not stationary, no negative curvature found": a slow region if training sits there.

use crate::cli::args::{given_of, InspectArgs};
use crate::cli::out::say;
use fftlearn::analysis::anatomy::{self, Escape, EscapeRun};
use fftlearn::error::{Error, Result};
use fftlearn::io::npy;
use fftlearn::io::plot::{charts, Chart, Series};
use fftlearn::model::params::Params;
use fftlearn::optim::{OptState, Optimizer, Schedule};
use fftlearn::train::{Checkpoint, DataMode};
use std::path::Path;
use std::time::Instant;

/// One twiddle's deviation: (k, stage, i, w, exact).
type TwiddleDev = (usize, u32, usize, num_complex::Complex64, num_complex::Complex64);

/// `fftlearn inspect`.
pub fn inspect_cmd(a: InspectArgs) -> Result<()> {
    check_flags(&a)?;
    // a checkpoint gives the point, the Adam state and the escape runs' data
    let ck = match &a.checkpoint {
        Some(f) => {
            let k = Checkpoint::load(f)?;
            let c = &k.config;
            if c.optimizer != Optimizer::Adam || c.schedule != Schedule::Constant || c.data != DataMode::Minibatch {
                return Err(Error::input(format!(
                    "--checkpoint {}: the escape runs continue Adam at a constant lr on minibatches; this run used --optimizer {} --schedule {} --data {}",
                    f.display(),
                    c.optimizer.name(),
                    c.schedule,
                    c.data.name()
                )));
            }
            Some(k)
        }
        None => None,
    };
    let p = match &ck {
        Some(k) => k.params.clone(),
        None => a.point.point()?.params()?,
    };
    let run = EscapeRun {
        start_step: ck.as_ref().map_or(0, |k| k.step),
        steps: a.escape_steps,
        batch: ck.as_ref().map_or(a.batch, |k| k.config.batch),
        lr: ck.as_ref().map_or(a.lr, |k| k.config.lr),
        seed: ck.as_ref().map_or(a.data_seed, |k| k.config.seed),
        every: a.eval_every,
        threshold: a.threshold,
    };
    if !p.is_finite() {
        return Err(Error::input("the point has non-finite parameters"));
    }
    // a point whose error overflows has no anatomy (every figure would be NaN)
    let err = fftlearn::backend::cpu::rel_operator_error(&p);
    if !err.is_finite() {
        return Err(Error::input(format!(
            "the point's relative operator error is {err} (its parameters overflow the network's f64 range); inspect a point of finite error"
        )));
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", a.out.display())))?;
    let net = p.net.clone();
    let src = match (&a.checkpoint, &ck, &a.point.params) {
        (Some(f), Some(k), _) => format!(
            "{} (step {}, seed {}, batch {}, lr {:e})",
            f.display(),
            k.step,
            k.config.seed,
            k.config.batch,
            k.config.lr
        ),
        (_, _, Some(f)) => f.display().to_string(),
        _ => format!("init {} (seed {})", a.point.init, a.point.seed),
    };
    say!("inspect: N = {}, {src}", net.n());

    let (bins, rel) = where_the_error_lives(&p, &a.out)?;
    let dev = which_parameters_are_off(&p, &a.out)?;
    let curv = gradient_and_curvature(&p, rel, a.lanczos)?;
    if let Some(k) = &ck {
        adam_state(k, &a.out)?;
    }
    let rows = escapes(&a, &p, ck.as_ref(), &run, rel, curv.as_ref())?;
    picture(&a.out, net.n(), rel, &bins, &dev)?;
    say!(
        "wrote {}/{{bins,stages,twiddles{}}}.csv and anatomy.png",
        a.out.display(),
        if rows.is_empty() { "" } else { ",escape" }
    );
    Ok(())
}

/// The flags' own checks, and the escape runs' flags refused where there are no escape runs.
fn check_flags(a: &InspectArgs) -> Result<()> {
    if a.point.params.is_some() && !given_of(&["seed"]).is_empty() {
        return Err(Error::input(
            "--seed with --params: the file fixes the point (the escape runs' data seed is --data-seed)",
        ));
    }
    for &e in &a.escape {
        if !(e.is_finite() && e >= 0.0) {
            return Err(Error::input(format!("--escape {e}: sizes must be finite and >= 0")));
        }
    }
    if !(a.threshold > 0.0 && a.threshold < 1.0) {
        return Err(Error::input(format!("--threshold {}: must be in (0, 1)", a.threshold)));
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        return Err(Error::input(format!("--lr {}: must be finite and > 0", a.lr)));
    }
    if a.batch == 0 || a.escape_steps == 0 || a.eval_every == 0 {
        return Err(Error::input(format!(
            "--batch {}, --escape-steps {}, --eval-every {}: each must be >= 1",
            a.batch, a.escape_steps, a.eval_every
        )));
    }
    // the escape runs' flags act only where there are escape runs
    if a.escape.is_empty() && a.checkpoint.is_none() {
        let unused =
            crate::cli::args::given_of(&["lr", "escape_steps", "batch", "data_seed", "eval_every", "threshold"]);
        if !unused.is_empty() {
            return Err(Error::input(format!(
                "{} set the escape runs, and there are none: give --escape EPS,... (or --checkpoint), or drop them",
                unused.join(", ")
            )));
        }
    }
    Ok(())
}

/// Section 1, where the error lives: per bin, per residue class, the subtrees wholly wrong
/// (bins.csv). Returns the bins and the relative operator error.
fn where_the_error_lives(p: &Params, out: &Path) -> Result<(Vec<anatomy::Bin>, f64)> {
    let net = &p.net;
    let t0 = Instant::now();
    let bins = anatomy::bins(p);
    let rel = anatomy::rel_error(&bins);
    say!(
        "relative operator error {rel:.6e} (1/sqrt(2) = 0.707107; one half switched off: {:.6}) [{:.1} s]",
        anatomy::odd_off_error(net),
        t0.elapsed().as_secs_f64()
    );
    let mut csv = String::from("bin,err2,energy\n");
    for b in &bins {
        csv.push_str(&format!("{},{:e},{:e}\n", b.bin, b.err2, b.energy));
    }
    npy::write_text(&out.join("bins.csv"), &csv)?;
    say!("error by residue class (bins k = r mod m): mean relative squared error / mean relative energy / share of the error");
    for t in anatomy::subtrees(&bins, 3.min(net.log2() - 1)) {
        say!(
            "  m = {}, r = {}: {} bins, err2 {:.4}, energy {:.4}, share {:.4}",
            t.modulus,
            t.residue,
            t.bins,
            t.mean_err2,
            t.mean_energy,
            t.share
        );
    }
    let failed = anatomy::failed_subtrees(&bins, net, 1e-2);
    if failed.is_empty() {
        say!("no subtree has every bin wrong (relative squared error > 1e-2)");
    }
    for t in &failed {
        say!(
            "subtree in error: bins k = {} (mod {}) ({} bins): every bin's relative squared error > 1e-2 (mean {:.4}, energy {:.4}), {:.1}% of the error",
            t.residue,
            t.modulus,
            t.bins,
            t.mean_err2,
            t.mean_energy,
            100.0 * t.share
        );
    }

    Ok((bins, rel))
}

/// Section 2, which parameters are off, in what pattern: M, the twiddles per stage and half
/// (stages.csv), every twiddle (twiddles.csv). Returns the twiddles' deviations.
fn which_parameters_are_off(p: &Params, out: &Path) -> Result<Vec<TwiddleDev>> {
    let md = anatomy::m_deviation(p);
    say!(
        "M - [[1,1],[1,-1]]: |row 0| = ({:.3e}, {:.3e}), |row 1| = ({:.3e}, {:.3e}); M = [[{:.4}, {:.4}], [{:.4}, {:.4}]]",
        md[0],
        md[1],
        md[2],
        md[3],
        p.m[0],
        p.m[1],
        p.m[2],
        p.m[3]
    );
    say!("twiddles per stage and half (i even: the even bins; i odd: the odd bins): canonical (|w - t| <= 1e-6) / count, max and mean |w - t|, |w| min/median/max, median |arg(w/t)|");
    let stages = anatomy::stages(p);
    let mut csv = String::from("stage,half,count,exact,max_dev,mean_dev,mod_min,mod_median,mod_max,median_phase_err\n");
    for s in &stages {
        say!(
            "  s = {:2} {}: {:5}/{:<5} max {:.3e} mean {:.3e} | |w| {:.3}/{:.3}/{:.3} | phase {:.3e}",
            s.stage,
            format!("{:4}", anatomy::HALVES[s.half]),
            s.exact,
            s.count,
            s.max_dev,
            s.mean_dev,
            s.modulus.0,
            s.modulus.1,
            s.modulus.2,
            s.median_phase_err
        );
        csv.push_str(&format!(
            "{},{},{},{},{:e},{:e},{:e},{:e},{:e},{:e}\n",
            s.stage,
            anatomy::HALVES[s.half],
            s.count,
            s.exact,
            s.max_dev,
            s.mean_dev,
            s.modulus.0,
            s.modulus.1,
            s.modulus.2,
            s.median_phase_err
        ));
    }
    npy::write_text(&out.join("stages.csv"), &csv)?;
    let dev = anatomy::twiddle_deviation(p);
    let mut csv = String::from("k,stage,i,w_re,w_im,t_re,t_im,dev\n");
    for (k, s, i, w, t) in &dev {
        csv.push_str(&format!(
            "{k},{s},{i},{:e},{:e},{:e},{:e},{:e}\n",
            w.re,
            w.im,
            t.re,
            t.im,
            (w - t).norm()
        ));
    }
    npy::write_text(&out.join("twiddles.csv"), &csv)?;

    Ok(dev)
}

/// Section 3, gradient and curvature: the population gradient per group, the exact Hessian's extreme
/// eigenvalues by `lanczos` Lanczos steps (0: skipped), and the verdict.
fn gradient_and_curvature(p: &Params, rel: f64, lanczos: usize) -> Result<Option<anatomy::Curvature>> {
    let t0 = Instant::now();
    let g = anatomy::grad_norms(p);
    say!(
        "population loss {:.6e}; population gradient norm {:.6e} (even half {:.3e}, odd half {:.3e}); per group (M, s = 1..): {} [{:.1} s]",
        g.loss,
        g.total,
        g.halves[0],
        g.halves[1],
        g.groups.iter().map(|v| format!("{v:.2e}")).collect::<Vec<_>>().join(" "),
        t0.elapsed().as_secs_f64()
    );
    Ok(if lanczos > 0 {
        let t0 = Instant::now();
        let c = anatomy::curvature(p, lanczos, 1)?;
        let rho = g.total / (2.0 * c.max.max(0.0) * g.loss).sqrt();
        say!(
            "exact Hessian (Lanczos, {} steps, unused twiddle excluded): lambda_min {:.6e}, lambda_max {:.6e}, lambda_min / lambda_max {:.3e}; rho = ||g|| / sqrt(2 lambda_max L) = {rho:.3e} [{:.1} s]",
            c.steps,
            c.min,
            c.max,
            c.min / c.max,
            t0.elapsed().as_secs_f64()
        );
        let verdict = if rel <= 1e-6 {
            "the FFT (relative operator error <= 1e-6)".to_string()
        } else if c.min < -1e-8 * c.max {
            format!(
                "saddle: negative curvature lambda_min = {:.3e} ({}stationary: rho = {rho:.1e})",
                c.min,
                if rho < 1e-6 { "" } else { "not " }
            )
        } else if rho < 1e-6 {
            "stationary with no negative curvature found: a local minimum to second order".to_string()
        } else {
            format!(
                "not stationary (rho = {rho:.1e}) and no negative curvature found: a slow region if training sits here"
            )
        };
        say!("verdict: {verdict}");
        if c.steps >= lanczos {
            say!(
                "(Lanczos stopped at --lanczos {}: the extremes may not have converged)",
                lanczos
            );
        }
        Some(c)
    } else {
        say!("curvature skipped (--lanczos 0)");
        None
    })
}

/// Section 3b, Adam's state from a checkpoint, per group and half (adam_state.csv).
fn adam_state(k: &Checkpoint, out: &Path) -> Result<()> {
    let net = &k.params.net;
    {
        if let Some(sc) = anatomy::adam_scales(net, &k.opt) {
            say!("Adam's state at step {} (medians): sqrt(v_hat) and the step Adam takes, |m_hat / sqrt(v_hat)|, in units of lr", k.step);
            let mut csv = String::from("group,half,sqrt_v_hat,step_over_lr\n");
            for r in &sc {
                say!(
                    "  {} {}: sqrt(v_hat) {:.3e}, step {:.3e} lr",
                    if r.group == 0 {
                        "M      ".to_string()
                    } else {
                        format!("s = {:2} ", r.group)
                    },
                    format!("{:4}", anatomy::HALVES[r.half]),
                    r.rms,
                    r.step
                );
                csv.push_str(&format!(
                    "{},{},{:e},{:e}\n",
                    r.group,
                    anatomy::HALVES[r.half],
                    r.rms,
                    r.step
                ));
            }
            npy::write_text(&out.join("adam_state.csv"), &csv)?;
        }
    }

    Ok(())
}

/// Section 4, escapes: Adam from the point itself (with the run's own state where a checkpoint gives
/// it, and fresh) and from kicks of each size along the lowest-curvature and a random
/// direction (escape.csv). Returns the runs.
fn escapes(
    a: &InspectArgs,
    p: &Params,
    ck: Option<&Checkpoint>,
    run: &EscapeRun,
    rel: f64,
    curv: Option<&anatomy::Curvature>,
) -> Result<Vec<Escape>> {
    let net = &p.net;
    let mut rows: Vec<Escape> = Vec::new();
    if !a.escape.is_empty() || ck.is_some() {
        let rand = anatomy::random_direction(net, run.seed);
        let mut starts: Vec<(&str, f64, Params, Option<&OptState>)> = Vec::new();
        if let Some(k) = ck {
            starts.push(("kept", 0.0, p.clone(), Some(&k.opt)));
        }
        starts.push(("fresh", 0.0, p.clone(), None));
        // a kick keeps the run's own Adam state when there is one (is the run itself escaped by
        // it?), else starts fresh
        let kept = ck.map(|k| &k.opt);
        for &e in &a.escape {
            if let Some(c) = curv {
                starts.push(("lowest", e, anatomy::perturbed(p, &c.min_vector, e), kept));
            }
            starts.push(("random", e, anatomy::perturbed(p, &rand, e), kept));
        }
        say!(
            "escape: Adam (lr {:e}, batch {}, data seed {}, data from step {}, CPU f64) for at most {} steps from each start, evaluated every {}; success at {:e}",
            run.lr,
            run.batch,
            run.seed,
            run.start_step + 1,
            run.steps,
            run.every,
            run.threshold
        );
        for (dir, eps, start, state) in starts {
            let t0 = Instant::now();
            // the unperturbed starts are the point itself, whose error is known
            let start_rel = if eps == 0.0 {
                rel
            } else {
                anatomy::rel_error(&anatomy::bins(&start))
            };
            let (final_rel, left, reached) = anatomy::adam_from(&start, state, run)?;
            say!(
                "  {dir:6} eps {eps:9.3e}: start {start_rel:.4e} -> <= {:.0e} {}, <= {:.0e} {} (final {final_rel:.3e}) [{:.1} s]",
                anatomy::LEFT_PLATEAU,
                left.map_or("never".to_string(), |s| format!("after {s} steps")),
                run.threshold,
                reached.map_or("never".to_string(), |s| format!("after {s} steps")),
                t0.elapsed().as_secs_f64()
            );
            rows.push(Escape {
                direction: dir.to_string(),
                eps,
                start_rel,
                final_rel,
                left,
                reached,
            });
        }
        let mut csv = String::from("direction,eps,start_rel,final_rel,steps_to_1e-2,steps_to_threshold\n");
        for r in &rows {
            csv.push_str(&format!(
                "{},{:e},{:e},{:e},{},{}\n",
                r.direction,
                r.eps,
                r.start_rel,
                r.final_rel,
                r.left.map_or(String::new(), |s| s.to_string()),
                r.reached.map_or(String::new(), |s| s.to_string())
            ));
        }
        npy::write_text(&a.out.join("escape.csv"), &csv)?;
    }

    Ok(rows)
}

/// Section 5, the picture (anatomy.png): relative squared error per bin, twiddle deviation per stage.
fn picture(out: &Path, n: usize, rel: f64, bins: &[anatomy::Bin], dev: &[TwiddleDev]) -> Result<()> {
    let err_pts = |h: usize| -> Vec<(f64, f64)> {
        bins.iter()
            .filter(|b| b.bin % 2 == h)
            .map(|b| (b.bin as f64, b.err2.max(1e-32)))
            .collect()
    };
    let half = |h: usize| -> Vec<(f64, f64)> {
        dev.iter()
            .filter(|d| d.2 % 2 == h)
            .map(|(_, s, i, w, t)| (f64::from(*s) + 0.8 * (*i as f64) / (1u64 << s) as f64, (w - t).norm()))
            .collect()
    };
    charts(
        &out.join("anatomy.png"),
        &[
            Chart {
                title: format!(
                    "relative squared error per bin (N = {}, relative operator error {rel:.4})",
                    n
                ),
                x_label: "bin k".into(),
                y_label: "|W_k - F_k|^2 / |F_k|^2".into(),
                log_x: false,
                log_y: true,
                series: vec![
                    Series {
                        label: "even bins".into(),
                        points: err_pts(0),
                        markers: true,
                    },
                    Series {
                        label: "odd bins".into(),
                        points: err_pts(1),
                        markers: true,
                    },
                ],
            },
            Chart {
                title: "twiddle deviation per stage".into(),
                x_label: "stage s (+ i / 2^s within it)".into(),
                y_label: "|w - exact|".into(),
                log_x: false,
                log_y: false,
                series: vec![
                    Series {
                        label: "i even (even bins)".into(),
                        points: half(0),
                        markers: true,
                    },
                    Series {
                        label: "i odd (odd bins)".into(),
                        points: half(1),
                        markers: true,
                    },
                ],
            },
        ],
        1200,
        480,
    )?;
    Ok(())
}
