//! `inspect` as one procedure: a request ([`InspectRequest`]: the point or a checkpoint, the
//! curvature and escape settings, the output directory, which settings were given) checked
//! once, then the anatomy of the point ([`super::anatomy`]) written as a report to a log, as
//! CSV tables (bins, stages, twiddles, Adam's state, escapes) and one picture. Front ends turn
//! their arguments into the request and print the log.
//!
//! The verdict's rules, with lambda the exact Hessian's extreme eigenvalues (unused twiddle
//! excluded), g the population gradient and L the population loss:
//! - "the FFT" when the relative operator error is <= 1e-6;
//! - "saddle" when lambda_min < -1e-8 lambda_max (a direction of negative curvature);
//! - else "stationary, no negative curvature (a local minimum to second order)" when
//!   rho = ||g|| / sqrt(2 lambda_max L) < 1e-6 (rho <= 1 on any quadratic bowl of curvature at
//!   most lambda_max, so it measures how stationary the point is for its loss);
//! - else "not stationary, no negative curvature found": a slow region if training sits there.

use super::anatomy::{self, Curvature, Escape, EscapeRun, HALVES};
use crate::error::{Error, Result};
use crate::given::Given;
use crate::io::npy;
use crate::io::plot::{charts, Chart, Series};
use crate::io::table::Table;
use crate::model::params::{Params, Point};
use crate::optim::{OptState, Optimizer, Schedule};
use crate::train::{Checkpoint, DataMode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the inspected point comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// A parameters file or an init scheme.
    Point(Point),
    /// A training checkpoint (Adam, constant lr, minibatches): its parameters are the point,
    /// and the escape runs continue its data stream with its batch, lr and seed, once with its
    /// Adam state ("kept") and once fresh; the kicks keep its state.
    Checkpoint(PathBuf),
}

/// Everything `inspect` does, as its front end gave it.
#[derive(Clone, Debug)]
pub struct InspectRequest {
    /// The point.
    pub start: Start,
    /// Output directory.
    pub out: PathBuf,
    /// Most Lanczos steps on the exact Hessian (0: no curvature, and no kick along it).
    pub lanczos: usize,
    /// Kick sizes of the escape runs.
    pub escape: Vec<f64>,
    /// The escape runs' most steps, batch, lr, data seed, evaluation interval and threshold
    /// (a checkpoint's batch, lr, seed and step replace theirs).
    pub run: EscapeRun,
    /// Which settings were given, for the refusals' wording.
    pub given: Given,
}

/// Escape kicks, the escape runs' settings and the threshold: the request's own checks, and
/// the escape settings refused where there are no escape runs.
fn check(r: &InspectRequest) -> Result<()> {
    let g = &r.given;
    for &e in &r.escape {
        if !(e.is_finite() && e >= 0.0) {
            return Err(Error::input(format!(
                "{}: sizes must be finite and >= 0",
                g.with("escape", e)
            )));
        }
    }
    g.refuse_repeats("escape", &r.escape, "size", "each is run once")?;
    if r.lanczos == 1 {
        return Err(Error::input(format!(
            "{}: at least 2 Lanczos steps (one gives a single Ritz value for both extremes), or 0 to skip the curvature",
            g.with("lanczos", 1)
        )));
    }
    let run = &r.run;
    if !(run.threshold > 0.0 && run.threshold < 1.0) {
        return Err(Error::input(format!(
            "{}: must be in (0, 1)",
            g.with("threshold", run.threshold)
        )));
    }
    if !(run.lr > 0.0 && run.lr.is_finite()) {
        return Err(Error::input(format!(
            "{}: must be finite and > 0",
            g.with("lr", run.lr)
        )));
    }
    if run.batch == 0 || run.steps == 0 || run.every == 0 {
        return Err(Error::input(format!(
            "{}, {}, {}: each must be >= 1",
            g.with("batch", run.batch),
            g.with("escape_steps", run.steps),
            g.with("eval_every", run.every)
        )));
    }
    if run.batch > 1 << 32 {
        return Err(Error::input(format!(
            "{}: at most 2^32 samples per step",
            g.with("batch", run.batch)
        )));
    }
    if let (Start::Point(Point::File(_)), true) = (&r.start, g.has("seed")) {
        return Err(Error::input(format!(
            "{} with {}: the file fixes the point (the escape runs' data seed is {})",
            g.name("seed"),
            g.name("params"),
            g.name("data_seed")
        )));
    }
    let unused = g.names(&["lr", "escape_steps", "batch", "data_seed", "eval_every", "threshold"]);
    if r.escape.is_empty() && !matches!(r.start, Start::Checkpoint(_)) && !unused.is_empty() {
        return Err(Error::input(format!(
            "{} {} the escape runs, and there are none: give {} (or {}), or drop {}",
            unused.join(", "),
            crate::given::agree(&unused, "sets", "set"),
            g.with("escape", "EPS,..."),
            g.name("checkpoint"),
            crate::given::agree(&unused, "it", "them")
        )));
    }
    Ok(())
}

/// The checkpoint of a checkpoint start, refused unless the escape runs can continue it.
fn load_checkpoint(f: &Path, g: &Given) -> Result<Checkpoint> {
    let k = Checkpoint::load(f)?;
    let c = &k.config;
    if c.optimizer != Optimizer::Adam || c.schedule != Schedule::Constant || c.data != DataMode::Minibatch {
        return Err(Error::input(format!(
            "{}: the escape runs continue Adam at a constant lr on minibatches; this run used {}, {}, {}",
            g.with("checkpoint", f.display()),
            g.with("optimizer", c.optimizer.name()),
            g.with("schedule", c.schedule),
            g.with("data", c.data.name())
        )));
    }
    Ok(k)
}

/// Run `inspect`: the report to `log`, and bins.csv, stages.csv, twiddles.csv (adam_state.csv
/// from a checkpoint, escape.csv where there are escape runs) and anatomy.png in `r.out`.
pub fn run(r: &InspectRequest, log: &mut dyn Write) -> Result<()> {
    check(r)?;
    let (p, ck, src) = match &r.start {
        Start::Checkpoint(f) => {
            let k = load_checkpoint(f, &r.given)?;
            let c = &k.config;
            let src = format!(
                "{} (step {}, seed {}, batch {}, lr {:e})",
                f.display(),
                k.step,
                c.seed,
                c.batch,
                c.lr
            );
            (k.params.clone(), Some(k), src)
        }
        Start::Point(pt) => {
            let src = match pt {
                Point::File(f) => f.display().to_string(),
                Point::Init { scheme, seed, .. } => format!("init {scheme} (seed {seed})"),
            };
            (pt.params()?, None, src)
        }
    };
    let run = match &ck {
        Some(k) => EscapeRun {
            start_step: k.step,
            batch: k.config.batch,
            lr: k.config.lr,
            seed: k.config.seed,
            ..r.run
        },
        None => EscapeRun { start_step: 0, ..r.run },
    };
    crate::backend::cpu::measurable_error(&p, "inspect")?;
    // made now, so a bad --out is refused at once; removed again if nothing is written
    let dir = npy::OutDir::create(&r.out)?;
    // the directory holds this run's files only, even where it is interrupted: an earlier
    // run's go before anything is written
    dir.remove_stale(&OUTPUTS, log)?;
    writeln!(log, "inspect: N = {}, {src}", p.net.n())?;
    // the files written so far, for the report and an interrupted run's refusal
    let mut written = vec!["bins.csv", "stages.csv", "twiddles.csv", "anatomy.png"];
    let named = |w: &[&str]| format!("{}/{{{}}}", r.out.display(), w.join(","));
    let stop = |w: &[&str]| -> Result<()> {
        if crate::interrupt::requested() {
            return Err(interrupted(&named(w)));
        }
        Ok(())
    };
    let (bins, rel) = where_the_error_lives(&p, &r.out, log)?;
    which_parameters_are_off(&p, &r.out, log)?;
    picture(&r.out, &p, rel, &bins)?;
    stop(&written)?;
    let curv = gradient_and_curvature(&p, rel, r.lanczos, &r.given, log)?;
    if let Some(k) = &ck {
        adam_state(k, &r.out, log)?;
        written.push("adam_state.csv");
    }
    stop(&written)?;
    if !r.escape.is_empty() || ck.is_some() {
        let rows = escapes(&r.escape, &p, ck.as_ref(), &run, rel, curv.as_ref(), log).map_err(|e| match e.kind() {
            crate::error::Kind::Interrupted => interrupted(&named(&written)),
            _ => e,
        })?;
        npy::write_text(&r.out.join("escape.csv"), &escape_table(&rows).csv())?;
        written.push("escape.csv");
    }
    writeln!(log, "wrote {}", named(&written))?;
    Ok(())
}

/// The files `inspect` writes (adam_state.csv from a checkpoint, escape.csv where there are
/// escape runs).
pub const OUTPUTS: [&str; 6] = [
    "bins.csv",
    "stages.csv",
    "twiddles.csv",
    "adam_state.csv",
    "escape.csv",
    "anatomy.png",
];

/// The refusal of an interrupted `inspect`, naming what it wrote.
fn interrupted(wrote: &str) -> Error {
    Error::interrupted(format!(
        "inspect interrupted: wrote {wrote} only; rerun the same command for the rest"
    ))
}

/// Seconds since `t0`, as the report's `[1.2 s]`.
fn took(t0: Instant) -> String {
    format!("[{:.1} s]", t0.elapsed().as_secs_f64())
}

/// Section 1, where the error lives: per bin, per residue class, the subtrees wholly wrong
/// (bins.csv). Returns the bins and the relative operator error.
fn where_the_error_lives(p: &Params, out: &Path, log: &mut dyn Write) -> Result<(Vec<anatomy::Bin>, f64)> {
    let net = &p.net;
    let t0 = Instant::now();
    let bins = anatomy::bins(p);
    let rel = anatomy::rel_error(&bins);
    writeln!(
        log,
        "relative operator error {rel:.6e} (1/sqrt(2) = 0.707107; one half switched off: {:.6}) {}",
        anatomy::odd_off_error(net),
        took(t0)
    )?;
    let table = Table::new()
        .int("bin", bins.iter().map(|b| b.bin as i64))
        .float("err2", bins.iter().map(|b| b.err2))
        .float("energy", bins.iter().map(|b| b.energy));
    npy::write_text(&out.join("bins.csv"), &table.csv())?;
    writeln!(log, "error by residue class (bins k = r mod m): mean relative squared error / mean relative energy / share of the error")?;
    for t in anatomy::subtrees(&bins, 3.min(net.log2() - 1)) {
        writeln!(
            log,
            "  m = {}, r = {}: {} bins, err2 {:.4}, energy {:.4}, share {:.4}",
            t.modulus, t.residue, t.bins, t.mean_err2, t.mean_energy, t.share
        )?;
    }
    let failed = anatomy::failed_subtrees(&bins, net, 1e-2);
    if failed.is_empty() {
        writeln!(log, "no subtree has every bin wrong (relative squared error > 1e-2)")?;
    }
    for t in &failed {
        writeln!(
            log,
            "subtree in error: bins k = {} (mod {}) ({} bins): every bin's relative squared error > 1e-2 (mean {:.4}, energy {:.4}), {:.1}% of the error",
            t.residue,
            t.modulus,
            t.bins,
            t.mean_err2,
            t.mean_energy,
            100.0 * t.share
        )?;
    }
    Ok((bins, rel))
}

/// Section 2, which parameters are off, in what pattern: M, the twiddles per stage and half
/// (stages.csv), every twiddle (twiddles.csv).
fn which_parameters_are_off(p: &Params, out: &Path, log: &mut dyn Write) -> Result<()> {
    let md = anatomy::m_deviation(p);
    writeln!(
        log,
        "M - [[1,1],[1,-1]]: |row 0| = ({:.3e}, {:.3e}), |row 1| = ({:.3e}, {:.3e}); M = [[{:.4}, {:.4}], [{:.4}, {:.4}]]",
        md[0], md[1], md[2], md[3], p.m[0], p.m[1], p.m[2], p.m[3]
    )?;
    writeln!(log, "twiddles per stage and half (i even: the even bins; i odd: the odd bins): canonical (|w - t| <= 1e-6) / count, max and mean |w - t|, |w| min/median/max, median |arg(w/t)|")?;
    let stages = anatomy::stages(p);
    for s in &stages {
        writeln!(
            log,
            "  s = {:2} {:4}: {:5}/{:<5} max {:.3e} mean {:.3e} | |w| {:.3}/{:.3}/{:.3} | phase {:.3e}",
            s.stage,
            HALVES[s.half],
            s.exact,
            s.count,
            s.max_dev,
            s.mean_dev,
            s.modulus.0,
            s.modulus.1,
            s.modulus.2,
            s.median_phase_err
        )?;
    }
    let table = Table::new()
        .int("stage", stages.iter().map(|s| i64::from(s.stage)))
        .text("half", stages.iter().map(|s| HALVES[s.half].to_string()))
        .int("count", stages.iter().map(|s| s.count as i64))
        .int("exact", stages.iter().map(|s| s.exact as i64))
        .float("max_dev", stages.iter().map(|s| s.max_dev))
        .float("mean_dev", stages.iter().map(|s| s.mean_dev))
        .float("mod_min", stages.iter().map(|s| s.modulus.0))
        .float("mod_median", stages.iter().map(|s| s.modulus.1))
        .float("mod_max", stages.iter().map(|s| s.modulus.2))
        .float("median_phase_err", stages.iter().map(|s| s.median_phase_err));
    npy::write_text(&out.join("stages.csv"), &table.csv())?;
    let dev = anatomy::twiddle_deviation(p);
    let table = Table::new()
        .int("k", dev.iter().map(|d| d.0 as i64))
        .int("stage", dev.iter().map(|d| i64::from(d.1)))
        .int("i", dev.iter().map(|d| d.2 as i64))
        .float("w_re", dev.iter().map(|d| d.3.re))
        .float("w_im", dev.iter().map(|d| d.3.im))
        .float("t_re", dev.iter().map(|d| d.4.re))
        .float("t_im", dev.iter().map(|d| d.4.im))
        .float("dev", dev.iter().map(|d| (d.3 - d.4).norm()));
    npy::write_text(&out.join("twiddles.csv"), &table.csv())?;
    Ok(())
}

/// The verdict on a point of relative operator error `rel`, curvature `c` and stationarity
/// `rho` (the rules in the module's docs).
pub fn verdict(rel: f64, c: &Curvature, rho: f64) -> String {
    if rel <= 1e-6 {
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
        format!("not stationary (rho = {rho:.1e}) and no negative curvature found: a slow region if training sits here")
    }
}

/// Section 3, gradient and curvature: the population gradient per group, the exact Hessian's
/// extreme eigenvalues by `lanczos` Lanczos steps (0: skipped), and the verdict.
fn gradient_and_curvature(
    p: &Params,
    rel: f64,
    lanczos: usize,
    g: &Given,
    log: &mut dyn Write,
) -> Result<Option<Curvature>> {
    let t0 = Instant::now();
    let gn = anatomy::grad_norms(p);
    writeln!(
        log,
        "population loss {:.6e}; population gradient norm {:.6e} (even half {:.3e}, odd half {:.3e}); per group (M, s = 1..): {} {}",
        gn.loss,
        gn.total,
        gn.halves[0],
        gn.halves[1],
        gn.groups.iter().map(|v| format!("{v:.2e}")).collect::<Vec<_>>().join(" "),
        took(t0)
    )?;
    if lanczos == 0 {
        writeln!(log, "curvature skipped ({})", g.with("lanczos", 0))?;
        return Ok(None);
    }
    let t0 = Instant::now();
    let c = anatomy::curvature(p, lanczos, 1)?;
    let rho = gn.total / (2.0 * c.max.max(0.0) * gn.loss).sqrt();
    writeln!(
        log,
        "exact Hessian (Lanczos, {} steps, unused twiddle excluded): lambda_min {:.6e}, lambda_max {:.6e}, lambda_min / lambda_max {:.3e}; rho = ||g|| / sqrt(2 lambda_max L) = {rho:.3e} {}",
        c.steps,
        c.min,
        c.max,
        c.min / c.max,
        took(t0)
    )?;
    writeln!(log, "verdict: {}", verdict(rel, &c, rho))?;
    if c.steps >= lanczos {
        writeln!(
            log,
            "(Lanczos stopped at {}: the extremes may not have converged)",
            g.with("lanczos", lanczos)
        )?;
    }
    Ok(Some(c))
}

/// Section 3b, Adam's state from a checkpoint, per group and half (adam_state.csv).
fn adam_state(k: &Checkpoint, out: &Path, log: &mut dyn Write) -> Result<()> {
    let Some(sc) = anatomy::adam_scales(&k.params.net, &k.opt) else {
        return Ok(());
    };
    writeln!(
        log,
        "Adam's state at step {} (medians): sqrt(v_hat) and the step Adam takes, |m_hat / sqrt(v_hat)|, in units of lr",
        k.step
    )?;
    for r in &sc {
        let group = if r.group == 0 {
            "M      ".to_string()
        } else {
            format!("s = {:2} ", r.group)
        };
        writeln!(
            log,
            "  {group} {:4}: sqrt(v_hat) {:.3e}, step {:.3e} lr",
            HALVES[r.half], r.rms, r.step
        )?;
    }
    let table = Table::new()
        .int("group", sc.iter().map(|r| r.group as i64))
        .text("half", sc.iter().map(|r| HALVES[r.half].to_string()))
        .float("sqrt_v_hat", sc.iter().map(|r| r.rms))
        .float("step_over_lr", sc.iter().map(|r| r.step));
    npy::write_text(&out.join("adam_state.csv"), &table.csv())
}

/// Section 4, escapes: Adam from the point itself (with the run's own state where a checkpoint
/// gives it, and fresh) and from kicks of each size along the lowest-curvature and a random
/// direction.
fn escapes(
    sizes: &[f64],
    p: &Params,
    ck: Option<&Checkpoint>,
    run: &EscapeRun,
    rel: f64,
    curv: Option<&Curvature>,
    log: &mut dyn Write,
) -> Result<Vec<Escape>> {
    let rand = anatomy::random_direction(&p.net, run.seed);
    let mut starts: Vec<(&str, f64, Params, Option<&OptState>)> = Vec::new();
    if let Some(k) = ck {
        starts.push(("kept", 0.0, p.clone(), Some(&k.opt)));
    }
    starts.push(("fresh", 0.0, p.clone(), None));
    // a kick keeps the run's own Adam state when there is one (is the run itself escaped by
    // it?), else starts fresh
    let kept = ck.map(|k| &k.opt);
    for &e in sizes {
        if let Some(c) = curv {
            starts.push(("lowest", e, anatomy::perturbed(p, &c.min_vector, e), kept));
        }
        starts.push(("random", e, anatomy::perturbed(p, &rand, e), kept));
    }
    writeln!(
        log,
        "escape: Adam (lr {:e}, batch {}, data seed {}, data from step {}, CPU f64) for at most {} steps from each start, evaluated every {}; success at {:e}",
        run.lr,
        run.batch,
        run.seed,
        run.start_step + 1,
        run.steps,
        run.every,
        run.threshold
    )?;
    let after = |s: Option<u32>| s.map_or("never".to_string(), |s| format!("after {s} steps"));
    let mut rows = Vec::new();
    for (dir, eps, start, state) in starts {
        let t0 = Instant::now();
        // the unperturbed starts are the point itself, whose error is known
        let start_rel = if eps == 0.0 {
            rel
        } else {
            anatomy::rel_error(&anatomy::bins(&start))
        };
        let (final_rel, left, reached) = anatomy::adam_from(&start, state, run)?;
        writeln!(
            log,
            "  {dir:6} eps {eps:9.3e}: start {start_rel:.4e} -> <= {:.0e} {}, <= {:.0e} {} (final {final_rel:.3e}) {}",
            anatomy::LEFT_PLATEAU,
            after(left),
            run.threshold,
            after(reached),
            took(t0)
        )?;
        rows.push(Escape {
            direction: dir.to_string(),
            eps,
            start_rel,
            final_rel,
            left,
            reached,
        });
    }
    Ok(rows)
}

/// The escape runs as escape.csv's table (an empty step count: never reached).
pub fn escape_table(rows: &[Escape]) -> Table {
    let steps = |f: fn(&Escape) -> Option<u32>| {
        rows.iter()
            .map(move |r| f(r).map_or(String::new(), |s| s.to_string()))
            .collect::<Vec<_>>()
    };
    Table::new()
        .text("direction", rows.iter().map(|r| r.direction.clone()))
        .float("eps", rows.iter().map(|r| r.eps))
        .float("start_rel", rows.iter().map(|r| r.start_rel))
        .float("final_rel", rows.iter().map(|r| r.final_rel))
        .text("steps_to_1e-2", steps(|r| r.left))
        .text("steps_to_threshold", steps(|r| r.reached))
}

/// Section 5, the picture (anatomy.png): relative squared error per bin, twiddle deviation per
/// stage.
fn picture(out: &Path, p: &Params, rel: f64, bins: &[anatomy::Bin]) -> Result<()> {
    let dev = anatomy::twiddle_deviation(p);
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
    let series = |label: &str, points| Series {
        label: label.into(),
        points,
        markers: true,
    };
    charts(
        &out.join("anatomy.png"),
        &[
            Chart {
                title: format!(
                    "relative squared error per bin (N = {}, relative operator error {rel:.4})",
                    p.net.n()
                ),
                x_label: "bin k".into(),
                y_label: "|W_k - F_k|^2 / |F_k|^2".into(),
                log_x: false,
                log_y: true,
                series: vec![series("even bins", err_pts(0)), series("odd bins", err_pts(1))],
            },
            Chart {
                title: "twiddle deviation per stage".into(),
                x_label: "stage s (+ i / 2^s within it)".into(),
                y_label: "|w - exact|".into(),
                log_x: false,
                log_y: false,
                series: vec![
                    series("i even (even bins)", half(0)),
                    series("i odd (odd bins)", half(1)),
                ],
            },
        ],
        1200,
        480,
    )?;
    Ok(())
}
