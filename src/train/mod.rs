//! Training: the typed run config ([`config`]), metrics rows ([`metrics`]), checkpoints
//! ([`checkpoint`]), the steppers ([`stepper`]) and the one step loop ([`drive`]) that `train`,
//! `sweep` and `claims` all run, and its form for many cells in lockstep ([`pack`]); [`run`] is
//! `train`'s use of it (log, metrics.csv, checkpoints, params.npz), and [`job`] the whole
//! command from a front end's request.

pub mod checkpoint;
pub mod config;
pub mod job;
pub mod metrics;
pub mod pack;
pub mod stepper;

pub use checkpoint::Checkpoint;
pub use config::{BackendKind, DataMode, TrainConfig, UpdateSite};
pub use job::{Job, Request};
pub use metrics::{read_metrics, Metric};
pub use stepper::{backend_for, Backend, GpuBackend, HostBackend};

use crate::backend::cpu;
use crate::error::{Error, Result};
use crate::io::lock::DirLock;
use crate::io::npy;
use crate::model::data::Batch;
use crate::model::params::{exact_twiddles, Params, EXACT_M};
use crate::model::rng::Stream;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// One step as the loop saw it.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// The step (from 1).
    pub step: u32,
    /// Its loss, before its update.
    pub loss: f64,
    /// The first step's loss (the divergence test's reference).
    pub first_loss: f64,
    /// Whether it is the run's last step.
    pub last: bool,
    /// Whether an interrupt (Ctrl-C, SIGTERM, SIGHUP) has arrived: the loop stops after this
    /// step, so an observer that keeps state should save it now.
    pub interrupted: bool,
}

/// What an observer wants after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Take the next step.
    Continue,
    /// End the run here (e.g. a success threshold was reached).
    Stop,
    /// End the run as interrupted (a stop signal arrived during the observer's own work).
    Interrupt,
}

/// What the loop does after each step: log, evaluate, checkpoint, decide to stop.
pub trait Observer {
    /// Called after every step that did not diverge.
    fn after_step(&mut self, s: &StepInfo, backend: &mut dyn Backend) -> Result<Flow>;

    /// Called when an interrupt abandoned step `step` before its update: the backend still
    /// holds the state after step `step - 1` (`first_loss` is known if `step > 1`).
    fn interrupted_in(&mut self, _step: u32, _first_loss: Option<f64>, _backend: &mut dyn Backend) -> Result<()> {
        Ok(())
    }
}

/// How a run of [`drive`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// Every step ran.
    Finished,
    /// The observer stopped the run after this step.
    Stopped(u32),
    /// An interrupt stopped the run after this step (before the last; 0: within step 1).
    Interrupted(u32),
    /// The loss or parameters left the finite range, or the loss grew past the ratio.
    Diverged {
        /// The step.
        step: u32,
        /// Its loss.
        loss: f64,
        /// Why, in words (naming the flag that bounds it).
        why: String,
    },
}

/// The step loop's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    /// Steps already done (0 for a fresh run).
    pub start: u32,
    /// The last step.
    pub steps: u32,
    /// A loss above this multiple of the first step's loss (or of `loss_floor`, where that is
    /// larger) is divergence.
    pub max_loss_ratio: f64,
    /// The least reference loss of the divergence test ([`Span::loss_floor`]).
    pub loss_floor: f64,
    /// The first step's loss, when resuming.
    pub first_loss: Option<f64>,
}

impl Span {
    /// The least reference loss of the divergence test at transform size `n`: 1e-8 N. A run
    /// that starts at the FFT has a step-1 loss of rounding size (1e-31 in f64), against which
    /// any movement would read as divergence (Adam there takes lr-sized steps on noise: loss
    /// 1.2 by step 3 at N = 512 and lr 1e-2). The zero model's loss is about N, so with the
    /// default ratio of 1e8 a run is stopped where its loss passes the zero model's.
    pub fn loss_floor(n: usize) -> f64 {
        1e-8 * n as f64
    }
}

/// The one step loop: steps `backend` from `span.start + 1` to `span.steps`, stopping at
/// divergence (a non-finite loss or parameter, or a loss above `max_loss_ratio` times the first
/// step's), when `obs` says so, or after the step in which an interrupt arrived.
pub fn drive(span: Span, backend: &mut dyn Backend, obs: &mut dyn Observer) -> Result<End> {
    let mut first_loss = span.first_loss;
    for step in span.start + 1..=span.steps {
        let loss = match backend.step(step) {
            Ok(l) => l,
            Err(e) if e.kind() == crate::error::Kind::Interrupted => {
                obs.interrupted_in(step, first_loss, backend)?;
                return Ok(End::Interrupted(step - 1));
            }
            Err(e) => return Err(e),
        };
        let first = *first_loss.get_or_insert(loss);
        if let Some(why) = divergence(
            loss,
            first,
            span.loss_floor,
            backend.params_finite(),
            span.max_loss_ratio,
        ) {
            return Ok(End::Diverged { step, loss, why });
        }
        let last = step == span.steps;
        let interrupted = crate::interrupt::requested();
        let info = StepInfo {
            step,
            loss,
            first_loss: first,
            last,
            interrupted,
        };
        match obs.after_step(&info, backend)? {
            Flow::Continue => {}
            Flow::Stop => return Ok(End::Stopped(step)),
            Flow::Interrupt => return Ok(End::Interrupted(step)),
        }
        if interrupted && !last {
            return Ok(End::Interrupted(step));
        }
    }
    Ok(End::Finished)
}

/// Why a step's `loss` (the first step's: `first`) is divergence, if it is: not finite, a
/// parameter not finite after the update, or a loss above `ratio` x the first (x `floor`
/// where the first is smaller).
pub(crate) fn divergence(loss: f64, first: f64, floor: f64, finite: bool, ratio: f64) -> Option<String> {
    if !loss.is_finite() {
        Some(format!("loss is {loss}"))
    } else if !finite {
        Some("a parameter is not finite after the update".to_string())
    } else if loss > ratio * first.max(floor) {
        Some(if first >= floor {
            format!("loss {loss:.3e} exceeds {ratio:e} x the step-1 loss {first:.3e} (--max-loss-ratio)")
        } else {
            format!(
                "loss {loss:.3e} exceeds {ratio:e} x {floor:.3e}, the floor (1e-8 N) under the step-1 loss {first:.3e} (--max-loss-ratio)"
            )
        })
    } else {
        None
    }
}

/// An observer that evaluates the relative operator error every `every` steps (and at the
/// last) and stops once it is at most `threshold`: what `sweep` cells and `claims` run.
#[derive(Clone, Debug)]
pub struct UntilThreshold {
    /// Steps between evaluations.
    pub every: u32,
    /// Success: relative operator error at most this.
    pub threshold: f64,
    /// The last evaluated relative operator error (NaN before the first).
    pub rel: f64,
    /// The last step's loss.
    pub loss: f64,
    /// The step at which the threshold was reached.
    pub reached: Option<u32>,
    /// The first step's loss (the divergence reference), once seen.
    pub first_loss: Option<f64>,
}

impl UntilThreshold {
    /// Evaluate every `every` steps; succeed at `threshold`.
    pub fn new(every: u32, threshold: f64) -> Self {
        UntilThreshold {
            every: every.max(1),
            threshold,
            rel: f64::NAN,
            loss: f64::NAN,
            reached: None,
            first_loss: None,
        }
    }
}

impl UntilThreshold {
    /// Record step `s`; whether an evaluation is due after it (every `every` steps and at the
    /// last).
    pub fn record(&mut self, s: &StepInfo) -> bool {
        self.loss = s.loss;
        self.first_loss = Some(s.first_loss);
        s.step.is_multiple_of(self.every) || s.last
    }

    /// The evaluation after step `step` gave `rel`: stop at the threshold.
    pub fn judge(&mut self, step: u32, rel: f64) -> Flow {
        self.rel = rel;
        if rel <= self.threshold {
            self.reached = Some(step);
            return Flow::Stop;
        }
        Flow::Continue
    }
}

impl Observer for UntilThreshold {
    fn after_step(&mut self, s: &StepInfo, backend: &mut dyn Backend) -> Result<Flow> {
        if self.record(s) {
            return Ok(self.judge(s.step, cpu::rel_operator_error(&backend.params()?)));
        }
        Ok(Flow::Continue)
    }
}

/// The seed's "eval on random examples": mean per-example loss over `count` fresh Gaussian
/// examples from the eval stream at position `step`.
pub fn eval_random(p: &Params, seed: u64, step: u32, count: usize) -> f64 {
    cpu::loss(
        p,
        &Batch::Gaussian {
            seed,
            stream: Stream::Eval,
            step,
            size: count,
        },
    )
}

/// Max |tw - exact| over the used twiddles and max `|M - [[1,1],[1,-1]]|` (no gauge fixing).
pub fn distance_from_exact(p: &Params) -> (f64, f64) {
    let ex = exact_twiddles(&p.net);
    let used = p.net.unused_twiddle();
    let dt = p.tw[..used]
        .iter()
        .zip(&ex[..used])
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    let dm =
        p.m.iter()
            .zip(&EXACT_M)
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max);
    (dt, dm)
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The metric rows.
    pub metrics: Vec<Metric>,
    /// Final parameters.
    pub params: Params,
    /// Final relative operator error.
    pub rel_op_err: f64,
    /// Final 10-example eval.
    pub final_eval: f64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The files a run writes into its directory.
pub const RUN_FILES: [&str; 3] = [checkpoint::FILE, "metrics.csv", "params.npz"];

/// How a run starts in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A new run: the directory must not hold one.
    Fresh,
    /// A new run replacing the one the directory holds (its files are removed first).
    Overwrite,
    /// Continue the run the directory holds.
    Resume,
}

/// Lock a run directory for the whole run (creating it; a second process is refused naming
/// the holder) and check it suits `start`: a fresh run refuses a directory that holds a run,
/// naming `--resume` and `--overwrite`. Temporary files of interrupted writes are removed.
/// With `Overwrite` the run it holds stays until [`clear_run`], once the new run is known to
/// start.
pub fn open_run_dir(dir: &std::path::Path, start: Start) -> Result<DirLock> {
    let no_checkpoint = || {
        Error::input(format!(
            "--resume {}: cannot open {} (no checkpoint there to continue from)",
            dir.display(),
            checkpoint::path_in(dir).display()
        ))
    };
    if start == Start::Resume && !dir.is_dir() {
        return Err(no_checkpoint());
    }
    let what = if start == Start::Resume { "--resume" } else { "--out" };
    let lock = DirLock::acquire(dir, what)?;
    if start == Start::Resume && !checkpoint::path_in(dir).is_file() {
        return Err(no_checkpoint());
    }
    lock.remove_stale_temporaries();
    let present: Vec<&str> = RUN_FILES.into_iter().filter(|f| dir.join(f).exists()).collect();
    match start {
        Start::Fresh if !present.is_empty() => {
            return Err(Error::input(format!(
                "--out {} holds a run ({}): continue it with `fftlearn train --resume {}`, replace it with --overwrite, or choose another --out",
                dir.display(),
                present.join(", "),
                dir.display()
            )))
        }
        _ => {}
    }
    Ok(lock)
}

/// Remove the run a locked directory holds (`--overwrite`, after the new run's settings,
/// parameters and device were all accepted).
pub fn clear_run(lock: &DirLock) -> Result<()> {
    for f in RUN_FILES.into_iter().map(|f| lock.dir().join(f)).filter(|f| f.exists()) {
        std::fs::remove_file(&f)
            .map_err(|e| Error::runtime(format!("--overwrite: cannot remove {}: {e}", f.display())))?;
    }
    Ok(())
}

/// What to do after a divergence: where the last checkpoint stands (with its relative
/// operator error, from the metrics row at its step) and advice that works: a resume would
/// repeat the same steps at the same lr, so a new run with a smaller lr.
fn divergence_advice(ck: Option<u32>, metrics: &[Metric], cfg: &TrainConfig) -> String {
    let dir = cfg.out.display();
    let restart = format!(
        "a resume repeats the same steps at the same lr and diverges again: start a new run with a smaller --lr (e.g. `fftlearn train --lr {:e} --out NEW_DIR` with the same other flags)",
        cfg.lr / 10.0
    );
    match ck {
        Some(s) => {
            let rel = metrics.iter().rev().find(|m| m.step <= s).map(|m| m.rel_op_err);
            let sound = rel.is_some_and(|r| r.is_finite() && r < 1.0);
            format!(
                "the last checkpoint is {} at step {s}{}; {restart}{}",
                checkpoint::path_in(&cfg.out).display(),
                rel.map_or(String::new(), |r| format!(" (relative operator error {r:.3e})")),
                if sound {
                    format!(", optionally from that checkpoint's parameters with --init {dir}/checkpoint.npz")
                } else {
                    String::new()
                }
            )
        }
        None => format!("no checkpoint was written before it; {restart}"),
    }
}

/// The rows up to a pending one (a row whose exact evaluation an interrupt cut short: its
/// relative operator error is NaN, a value no finished evaluation of finite parameters has).
fn complete(metrics: &[Metric]) -> &[Metric] {
    match metrics.last() {
        Some(m) if m.rel_op_err.is_nan() => &metrics[..metrics.len() - 1],
        _ => metrics,
    }
}

/// The log lines of one metric row, as `train` prints them.
fn row_lines(m: &Metric) -> String {
    format!(
        "step {:5} | loss {:.6e}\n[eval] mean MSE over 3 random examples: {:.6e} | rel op err {:.4e}",
        m.step, m.loss, m.eval, m.rel_op_err
    )
}

/// `train`'s observer: the seed's log lines, metrics rows, the progress bar, checkpoints.
struct TrainLog<'a> {
    cfg: &'a TrainConfig,
    log: &'a mut dyn Write,
    bar: Option<indicatif::ProgressBar>,
    metrics: Vec<Metric>,
    last_ck: Option<u32>,
    /// Seconds spent in the exact evaluations (part of the wall time).
    eval_s: f64,
}

impl TrainLog<'_> {
    fn csv_path(&self) -> std::path::PathBuf {
        self.cfg.out.join("metrics.csv")
    }
}

impl Observer for TrainLog<'_> {
    fn after_step(&mut self, s: &StepInfo, backend: &mut dyn Backend) -> Result<Flow> {
        let cfg = self.cfg;
        let step = s.step;
        if step.is_multiple_of(cfg.print_every) || step == 1 || s.last {
            let te = Instant::now();
            let p = backend.params()?;
            let eval = eval_random(&p, cfg.seed, step, 3);
            // the exact evaluation answers a stop signal (at large N it takes many seconds):
            // the row is then checkpointed as pending and completed when the run resumes
            let Some(rel) = cpu::rel_operator_error_until(&p, &crate::interrupt::requested) else {
                self.metrics.push(Metric {
                    step,
                    loss: s.loss,
                    eval,
                    rel_op_err: f64::NAN,
                });
                self.checkpoint(step, s.first_loss, backend)?;
                return Ok(Flow::Interrupt);
            };
            let m = Metric {
                step,
                loss: s.loss,
                eval,
                rel_op_err: rel,
            };
            match &self.bar {
                Some(pb) => pb.println(row_lines(&m)),
                None => writeln!(self.log, "{}", row_lines(&m))?,
            }
            self.metrics.push(m);
            self.eval_s += te.elapsed().as_secs_f64();
        }
        if let Some(pb) = &self.bar {
            pb.set_position(step as u64);
        }
        if step.is_multiple_of(cfg.checkpoint_every) || s.last || s.interrupted {
            self.checkpoint(step, s.first_loss, backend)?;
        }
        Ok(Flow::Continue)
    }

    fn interrupted_in(&mut self, step: u32, first_loss: Option<f64>, backend: &mut dyn Backend) -> Result<()> {
        match first_loss {
            Some(f) if self.last_ck != Some(step - 1) => self.checkpoint(step - 1, f, backend),
            _ => Ok(()),
        }
    }
}

impl TrainLog<'_> {
    /// Write the checkpoint of the state after `step`, then metrics.csv.
    fn checkpoint(&mut self, step: u32, first_loss: f64, backend: &mut dyn Backend) -> Result<()> {
        let cfg = self.cfg;
        let ck = Checkpoint {
            config: cfg.clone(),
            step,
            params: backend.params()?,
            opt: backend.state()?,
            first_loss,
            metrics: self.metrics.clone(),
            update: Some(backend.update()),
        };
        if !ck.params.is_finite() {
            return Err(Error::diverged(format!(
                "training diverged at step {step}: a parameter is not finite; {}",
                divergence_advice(self.last_ck, &self.metrics, cfg)
            )));
        }
        // the checkpoint first: metrics.csv never runs past it (a resume rewrites the csv
        // from the checkpoint's rows)
        ck.save(&checkpoint::path_in(&cfg.out))?;
        npy::write_text(&self.csv_path(), &metrics::csv_of(complete(&self.metrics)))?;
        self.last_ck = Some(step);
        Ok(())
    }
}

/// Run training on `backend` from step 1, or from `resume` (whose state is loaded into
/// `backend` here), writing `out/metrics.csv`, `out/checkpoint.npz` every
/// `cfg.checkpoint_every` steps and at the end, and `out/params.npz`, in the directory `dir`
/// holds (see [`open_run_dir`]). Long on purpose: the resume (restore, pending row,
/// metrics), the loop and each way a run ends are one sequence a reader follows in order.
pub fn run(
    cfg: &TrainConfig,
    backend: &mut dyn Backend,
    resume: Option<Checkpoint>,
    dir: &DirLock,
    log: &mut dyn Write,
) -> Result<Summary> {
    if dir.dir() != cfg.out {
        return Err(Error::runtime(format!(
            "the run writes to {} but holds the lock on {}",
            cfg.out.display(),
            dir.dir().display()
        )));
    }
    let (start, metrics, first_loss) = match resume {
        Some(mut ck) => {
            // the same update as the run that wrote it, or the results would match neither run
            if let Some(u) = ck.update.filter(|&u| u != backend.update()) {
                return Err(Error::input(format!(
                    "the checkpoint in {} was written by a run whose update ran {u} ({}), and this resume would run it {} ({}); resume as the run started (the same --device, --precision and --adapters)",
                    cfg.out.display(),
                    ck.config.backend,
                    backend.update(),
                    backend.describe()
                )));
            }
            backend.restore(&ck.params, &ck.opt)?;
            // a row logged only because it ended the earlier leg is not a row of this (longer)
            // run: drop it, so a resumed run's metrics equal an uninterrupted run's
            let keep = |m: &Metric| m.step.is_multiple_of(cfg.print_every) || m.step == 1 || m.step == cfg.steps;
            ck.metrics.retain(keep);
            // a row whose evaluation was interrupted: the restored parameters are the ones
            // it evaluates, so completing it now gives the uninterrupted run's row
            let pending = ck
                .metrics
                .last_mut()
                .filter(|m| m.rel_op_err.is_nan() && m.step == ck.step);
            if let Some(m) = pending {
                m.rel_op_err = cpu::rel_operator_error(&backend.params()?);
                writeln!(log, "{}", row_lines(m))?;
                // the checkpoint too: the same state, its row now complete
                ck.save(&checkpoint::path_in(&cfg.out))?;
            }
            // metrics.csv describes the checkpoint's step, whatever an interrupted write left
            npy::write_text(&cfg.out.join("metrics.csv"), &metrics::csv_of(&ck.metrics))?;
            (ck.step, ck.metrics, Some(ck.first_loss))
        }
        None => (0, Vec::new(), None),
    };
    writeln!(
        log,
        "[info] fftlearn train: N = {}, steps {}, batch {}, lr {:e}, seed {}, init {}, backend {}{}",
        cfg.n,
        cfg.steps,
        cfg.batch,
        cfg.lr,
        cfg.seed,
        cfg.init,
        backend.describe(),
        if start > 0 {
            format!(", resumed at step {start}")
        } else {
            String::new()
        }
    )?;
    let bar = std::io::stdout().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(cfg.steps as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .expect("valid template"),
        );
        pb.set_position(start as u64);
        pb
    });
    let ck_path = checkpoint::path_in(&cfg.out);
    let t0 = Instant::now();
    let span = Span {
        start,
        steps: cfg.steps,
        max_loss_ratio: cfg.max_loss_ratio,
        loss_floor: Span::loss_floor(cfg.n),
        first_loss,
    };
    let mut obs = TrainLog {
        cfg,
        log,
        bar,
        metrics,
        last_ck: (start > 0).then_some(start),
        eval_s: 0.0,
    };
    let end = drive(span, backend, &mut obs);
    if let Some(pb) = &obs.bar {
        if matches!(end, Ok(End::Finished)) {
            pb.finish_and_clear();
        } else {
            pb.abandon();
        }
    }
    match end? {
        End::Finished | End::Stopped(_) => {}
        End::Diverged { step, why, .. } => {
            let csv_path = obs.csv_path();
            npy::write_text(&csv_path, &metrics::csv_of(&obs.metrics))?;
            return Err(Error::diverged(format!(
                "training diverged at step {step}: {why} (lr {:e}); metrics up to step {} are in {}; {}",
                cfg.lr,
                obs.metrics.last().map_or(0, |m: &Metric| m.step),
                csv_path.display(),
                divergence_advice(obs.last_ck, &obs.metrics, cfg)
            )));
        }
        End::Interrupted(0) => {
            return Err(Error::interrupted(format!(
                "interrupted within step 1 of {}: no step completed, nothing to continue; run the command again to start",
                cfg.steps
            )));
        }
        End::Interrupted(step) => {
            return Err(Error::interrupted(format!(
                "interrupted at step {step} of {}: checkpoint written to {}; continue with `fftlearn train --resume {}`",
                cfg.steps,
                ck_path.display(),
                cfg.out.display()
            )));
        }
    }
    let TrainLog {
        log, metrics, eval_s, ..
    } = obs;
    let seconds = t0.elapsed().as_secs_f64();
    let p = backend.params()?;
    let final_eval = eval_random(&p, cfg.seed, u32::MAX, 10);
    let rel = cpu::rel_operator_error(&p);
    p.save(&cfg.out.join("params.npz"))?;
    let (dt, dm) = distance_from_exact(&p);
    writeln!(log, "[eval] mean MSE over 10 random examples: {final_eval:.6e}")?;
    let done = cfg.steps - start;
    let samples = done as f64 * cfg.batch as f64;
    writeln!(
        log,
        "[summary] {done} steps x {} samples in {seconds:.2} s ({:.0} samples/s); final loss {:.6e}; relative operator error {rel:.6e}",
        cfg.batch,
        samples / seconds,
        metrics.last().map_or(f64::NAN, |m: &Metric| m.loss),
    )?;
    if eval_s > 0.5 * seconds {
        writeln!(
            log,
            "[summary] the exact evaluations (every --print-every steps) took {eval_s:.2} s of that: the steps alone ran at {:.0} samples/s",
            samples / (seconds - eval_s).max(f64::MIN_POSITIVE)
        )?;
    }
    writeln!(
        log,
        "[summary] max |tw - exact| = {dt:.3e} (used twiddles), max |M - [[1,1],[1,-1]]| = {dm:.3e}"
    )?;
    writeln!(
        log,
        "[summary] wrote {}, {} and {}",
        cfg.out.join("metrics.csv").display(),
        ck_path.display(),
        cfg.out.join("params.npz").display()
    )?;
    Ok(Summary {
        metrics,
        params: p,
        rel_op_err: rel,
        final_eval,
        seconds,
    })
}
