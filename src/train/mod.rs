//! Training: the typed run config ([`config`]), metrics rows ([`metrics`]), checkpoints
//! ([`checkpoint`]), the steppers ([`stepper`]) and the one step loop ([`drive`]) that `train`,
//! `sweep` and `claims` all run; [`run`] is `train`'s use of it (log, metrics.csv,
//! checkpoints, params.npz).

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod stepper;

pub use checkpoint::Checkpoint;
pub use config::{BackendKind, DataMode, TrainConfig};
pub use metrics::{read_metrics, Metric};
pub use stepper::{backend_for, Backend, GpuBackend, HostBackend};

use crate::backend::cpu;
use crate::error::{Error, Result};
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
}

/// What the loop does after each step: log, evaluate, checkpoint, decide to stop.
pub trait Observer {
    /// Called after every step that did not diverge.
    fn after_step(&mut self, s: &StepInfo, backend: &mut dyn Backend) -> Result<Flow>;
}

/// How a run of [`drive`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// Every step ran.
    Finished,
    /// The observer stopped the run after this step.
    Stopped(u32),
    /// An interrupt stopped the run after this step (before the last).
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
    /// A loss above this multiple of the first step's loss is divergence.
    pub max_loss_ratio: f64,
    /// The first step's loss, when resuming.
    pub first_loss: Option<f64>,
}

/// The one step loop: steps `backend` from `span.start + 1` to `span.steps`, stopping at
/// divergence (a non-finite loss or parameter, or a loss above `max_loss_ratio` times the first
/// step's), when `obs` says so, or after the step in which an interrupt arrived.
pub fn drive(span: Span, backend: &mut dyn Backend, obs: &mut dyn Observer) -> Result<End> {
    let mut first_loss = span.first_loss;
    for step in span.start + 1..=span.steps {
        let loss = backend.step(step)?;
        let first = *first_loss.get_or_insert(loss);
        let finite = backend.params_finite();
        if !loss.is_finite() || loss > span.max_loss_ratio * first || !finite {
            let why = if !loss.is_finite() {
                format!("loss is {loss}")
            } else if !finite {
                "a parameter is not finite after the update".to_string()
            } else {
                format!(
                    "loss {loss:.3e} exceeds {:e} x the step-1 loss {first:.3e} (--max-loss-ratio)",
                    span.max_loss_ratio
                )
            };
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
        if obs.after_step(&info, backend)? == Flow::Stop {
            return Ok(End::Stopped(step));
        }
        if interrupted && !last {
            return Ok(End::Interrupted(step));
        }
    }
    Ok(End::Finished)
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
        }
    }
}

impl Observer for UntilThreshold {
    fn after_step(&mut self, s: &StepInfo, backend: &mut dyn Backend) -> Result<Flow> {
        self.loss = s.loss;
        if s.step.is_multiple_of(self.every) || s.last {
            self.rel = cpu::rel_operator_error(&backend.params()?);
            if self.rel <= self.threshold {
                self.reached = Some(s.step);
                return Ok(Flow::Stop);
            }
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

/// Where the run's last checkpoint stands, for error messages.
fn last_good(ck: Option<u32>, dir: &std::path::Path) -> String {
    match ck {
        Some(s) => format!(
            "last good checkpoint: {} at step {s} (continue with `fftlearn train --resume {}`)",
            checkpoint::path_in(dir).display(),
            dir.display()
        ),
        None => "no checkpoint was written before it".to_string(),
    }
}

/// `train`'s observer: the seed's log lines, metrics rows, the progress bar, checkpoints.
struct TrainLog<'a> {
    cfg: &'a TrainConfig,
    log: &'a mut dyn Write,
    bar: Option<indicatif::ProgressBar>,
    metrics: Vec<Metric>,
    last_ck: Option<u32>,
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
        if step.is_multiple_of(cfg.print_every) || step == 1 {
            let p = backend.params()?;
            let eval = eval_random(&p, cfg.seed, step, 3);
            let rel = cpu::rel_operator_error(&p);
            let line = format!(
                "step {step:5} | loss {:.6e}\n[eval] mean MSE over 3 random examples: {eval:.6e} | rel op err {rel:.4e}",
                s.loss
            );
            match &self.bar {
                Some(pb) => pb.println(line),
                None => writeln!(self.log, "{line}")?,
            }
            self.metrics.push(Metric {
                step,
                loss: s.loss,
                eval,
                rel_op_err: rel,
            });
        }
        if let Some(pb) = &self.bar {
            pb.set_position(step as u64);
        }
        if step.is_multiple_of(cfg.checkpoint_every) || s.last || s.interrupted {
            let ck = Checkpoint {
                config: cfg.clone(),
                step,
                params: backend.params()?,
                opt: backend.state()?,
                first_loss: s.first_loss,
                metrics: self.metrics.clone(),
            };
            if !ck.params.is_finite() {
                return Err(Error::diverged(format!(
                    "training diverged at step {step}: a parameter is not finite; {}",
                    last_good(self.last_ck, &cfg.out)
                )));
            }
            npy::write_text(&self.csv_path(), &metrics::csv_of(&self.metrics))?;
            ck.save(&checkpoint::path_in(&cfg.out))?;
            self.last_ck = Some(step);
        }
        Ok(Flow::Continue)
    }
}

/// Run training on `backend` from step 1, or from `resume` (whose state is loaded into
/// `backend` here), writing `out/metrics.csv`, `out/checkpoint.npz` every
/// `cfg.checkpoint_every` steps and at the end, and `out/params.npz`.
pub fn run(
    cfg: &TrainConfig,
    backend: &mut dyn Backend,
    resume: Option<Checkpoint>,
    log: &mut dyn Write,
) -> Result<Summary> {
    std::fs::create_dir_all(&cfg.out)
        .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", cfg.out.display())))?;
    let (start, metrics, first_loss) = match resume {
        Some(ck) => {
            backend.restore(&ck.params, &ck.opt)?;
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
        first_loss,
    };
    let mut obs = TrainLog {
        cfg,
        log,
        bar,
        metrics,
        last_ck: (start > 0).then_some(start),
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
                last_good(obs.last_ck, &cfg.out)
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
    let TrainLog { log, metrics, .. } = obs;
    let seconds = t0.elapsed().as_secs_f64();
    let p = backend.params()?;
    let final_eval = eval_random(&p, cfg.seed, u32::MAX, 10);
    let rel = cpu::rel_operator_error(&p);
    p.save(&cfg.out.join("params.npz"))?;
    let (dt, dm) = distance_from_exact(&p);
    writeln!(log, "[eval] mean MSE over 10 random examples: {final_eval:.6e}")?;
    let done = cfg.steps - start;
    writeln!(
        log,
        "[summary] {done} steps x {} samples in {seconds:.2} s ({:.0} samples/s); final loss {:.6e}; relative operator error {rel:.6e}",
        cfg.batch,
        done as f64 * cfg.batch as f64 / seconds,
        metrics.last().map_or(f64::NAN, |m: &Metric| m.loss),
    )?;
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
