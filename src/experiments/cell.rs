//! One cell of the learnability map: its run alone (the lone path beside
//! [`super::packs`]' packs), its outcome, its CSV row and the checks a resumed row passes,
//! and its progress line. Sweeps ([`super::sweep`]) and shards ([`super::shard`]) share it.

use super::grid::{precision_name, Cell, SweepConfig};
use crate::backend::gpu::{self, Gpu, GpuModel, Precision};
use crate::error::{Error, Result};
use crate::model::params::Params;
use crate::optim::OptState;
use crate::train::{
    self, backend_for, BackendKind, Checkpoint, DataMode, End, Metric, Span, TrainConfig, UntilThreshold, UpdateSite,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The running state of an unsharded sweep (checkpoints of interrupted cells, rows finished
/// ahead of the CSV; src/experiments/packs.rs); a shard keeps `shards/I-of-N.running`.
pub const RUNNING: &str = "running";

/// The CSV header.
pub const HEADER: &str = "n,batch,lr,init,optimizer,precision,schedule,momentum,beta2,data,seed,steps,status,steps_to_success,samples_to_success,final_rel_err,final_loss,backend,wall_s";

/// Whether `head` is `want` as versions before the beta2 column wrote it (the sweep CSV's
/// header, or a shard's, which holds it).
pub(crate) fn before_beta2(head: &str, want: &str) -> bool {
    head == want.replace("momentum,beta2,", "momentum,")
}

/// What one cell gave.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// success, fail or diverged.
    pub status: &'static str,
    /// First evaluated step at or below the threshold.
    pub steps_to_success: Option<u32>,
    /// The relative operator error at the end (or at success).
    pub final_rel_err: f64,
    /// The last step's loss.
    pub final_loss: f64,
    /// Where it ran (backend and adapter).
    pub backend: String,
    /// Seconds.
    pub wall_s: f64,
}

/// Samples one step of `cell` consumes (N for population data).
pub(crate) fn samples_per_step(cell: &Cell) -> u64 {
    if cell.data == DataMode::Population {
        cell.n as u64
    } else {
        cell.batch as u64
    }
}

/// Run one cell. `ck` is where the cell keeps a checkpoint when a stop signal interrupts it
/// (the step, parameters, optimizer state and the observer's last figures): a later call for
/// the same cell resumes from it, so a preempted cell is not started over, and its row is the
/// one an uninterrupted run writes (but for `wall_s`). The file is removed once the cell ends.
pub(crate) fn run_cell(cell: &Cell, c: &SweepConfig, gpu: &mut Option<Gpu>, ck: &Path) -> Result<Outcome> {
    let job = CellJob::new(cell, c, ck)?;
    let p = cell.init.params(&job.tc.validate()?, cell.seed)?;
    let model = if cell.precision.is_gpu() {
        let g = match gpu.take() {
            Some(g) => g,
            None => {
                let a = gpu::context::pick(None, true)?;
                Gpu::open(&a, false)?
            }
        };
        Some(GpuModel::new(g, &p, Precision::F32)?)
    } else {
        None
    };
    let mut backend = backend_for(&job.tc, p, model)?;
    let t0 = Instant::now();
    let ran = ran_on(backend.kind(), backend.describe());
    let (span, mut obs) = job.start(|p, s| backend.restore(p, s))?;
    let end = train::drive(span, backend.as_mut(), &mut obs)?;
    let update = backend.update();
    let b = std::cell::RefCell::new(backend);
    let done = job.end(
        &end,
        span.start,
        &obs,
        &mut || b.borrow_mut().params(),
        &mut || b.borrow_mut().state(),
        update,
    )?;
    match done {
        Some((status, final_rel_err, final_loss)) => Ok(Outcome {
            status,
            steps_to_success: obs.reached,
            final_rel_err,
            final_loss,
            backend: ran,
            wall_s: t0.elapsed().as_secs_f64(),
        }),
        None => Err(Error::interrupted(format!(
            "interrupted at step {} of the cell",
            match end {
                End::Interrupted(s) => s,
                _ => 0,
            }
        ))),
    }
}

/// Where a cell ran, as its row writes it: without the thread count (a CPU cell's bits do not
/// depend on it, and the CSV must not either), and with no comma.
pub(crate) fn ran_on(kind: BackendKind, describe: String) -> String {
    match kind {
        BackendKind::CpuF64 => "cpu f64".to_string(),
        _ => describe.replace(',', ";"),
    }
}

/// One cell's start and end as a sweep runs it, alone ([`run_cell`]) or in a pack
/// (src/experiments/packs.rs): the same resume from its checkpoint, the same status, saved
/// parameters and interrupt checkpoint, so the two give the same row.
pub(crate) struct CellJob<'a> {
    cell: &'a Cell,
    c: &'a SweepConfig,
    /// The cell's training config.
    pub(crate) tc: TrainConfig,
    /// Where the cell keeps its checkpoint when interrupted.
    ck: PathBuf,
}

impl<'a> CellJob<'a> {
    /// The job of `cell` of `c`, checkpointing to `ck`.
    pub(crate) fn new(cell: &'a Cell, c: &'a SweepConfig, ck: &Path) -> Result<Self> {
        let tc = cell.train_config(c);
        tc.validate()?;
        Ok(CellJob {
            cell,
            c,
            tc,
            ck: ck.to_path_buf(),
        })
    }

    /// The cell's span and observer: from its checkpoint when the file holds this very cell
    /// (its config; the state goes to `restore`), else from step 0 (a stale file is removed).
    pub(crate) fn start(
        &self,
        restore: impl FnOnce(&Params, &OptState) -> Result<()>,
    ) -> Result<(Span, UntilThreshold)> {
        let every = if self.c.eval_every > 0 {
            self.c.eval_every
        } else {
            (self.cell.steps / 20).max(1)
        };
        let mut obs = UntilThreshold::new(every, self.c.threshold);
        let mut span = Span {
            start: 0,
            steps: self.cell.steps,
            max_loss_ratio: self.tc.max_loss_ratio,
            loss_floor: Span::loss_floor(self.tc.n),
            first_loss: None,
        };
        if self.ck.exists() {
            match Checkpoint::load(&self.ck) {
                Ok(k) if k.config == self.tc => {
                    restore(&k.params, &k.opt)?;
                    if let Some(m) = k.metrics.last() {
                        obs.loss = m.loss;
                        obs.rel = m.rel_op_err;
                    }
                    obs.first_loss = Some(k.first_loss);
                    span.start = k.step;
                    span.first_loss = Some(k.first_loss);
                }
                _ => {
                    let _ = std::fs::remove_file(&self.ck);
                }
            }
        }
        Ok((span, obs))
    }

    /// The cell ended as `end` (it started at step `start`; `obs` saw it): an interrupted cell
    /// writes its checkpoint and gives None; any other gives (status, final relative operator
    /// error, final loss), keeps its parameters if the config asks, and removes its checkpoint.
    pub(crate) fn end(
        &self,
        end: &End,
        start: u32,
        obs: &UntilThreshold,
        params: &mut dyn FnMut() -> Result<Params>,
        state: &mut dyn FnMut() -> Result<OptState>,
        update: UpdateSite,
    ) -> Result<Option<(&'static str, f64, f64)>> {
        let (status, rel, loss) = match *end {
            End::Interrupted(step) => {
                if let (true, Some(first)) = (step > start, obs.first_loss) {
                    Checkpoint {
                        config: self.tc.clone(),
                        step,
                        params: params()?,
                        opt: state()?,
                        first_loss: first,
                        metrics: vec![Metric {
                            step,
                            loss: obs.loss,
                            eval: f64::NAN,
                            rel_op_err: obs.rel,
                        }],
                        update: Some(update),
                    }
                    .save(&self.ck)?;
                }
                return Ok(None);
            }
            End::Diverged { loss, .. } => ("diverged", f64::NAN, loss),
            End::Stopped(_) | End::Finished if obs.reached.is_some() => ("success", obs.rel, obs.loss),
            End::Stopped(_) | End::Finished => ("fail", obs.rel, obs.loss),
        };
        if self.c.save_params.wants(status) {
            let p = params()?;
            if p.is_finite() {
                let dir = self.c.out.join("params");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::input(format!("cannot create {}: {e}", dir.display())))?;
                p.save(&dir.join(format!("{}.npz", self.cell.file_stem())))?;
            }
        }
        let _ = std::fs::remove_file(&self.ck);
        Ok(Some((status, rel, loss)))
    }
}

/// Why `line` is not a complete row of `cell` (None if it is one): its key, a status the
/// sweep writes, and every column of [`HEADER`]. What a resume and a merge check of each row.
pub(crate) fn row_problem(cell: &Cell, line: &str) -> Option<String> {
    let want = HEADER.split(',').count();
    let fields: Vec<&str> = line.split(',').collect();
    let key = cell.key();
    if !line.starts_with(&format!("{key},")) {
        return Some(format!("does not match the config's cell ({})", cell.label()));
    }
    // the backend column may hold ';' but never ','
    if fields.len() != want {
        return Some(format!(
            "is not a complete row ({} of {want} columns; the rows before it are intact)",
            fields.len()
        ));
    }
    let k = key.split(',').count();
    let status = fields[k];
    if !["success", "fail", "diverged"].contains(&status) {
        return Some(format!("status '{status}' is not one the sweep writes"));
    }
    let num_ok = |s: &str| s.is_empty() || s.parse::<f64>().is_ok();
    if !fields[k + 1..k + 5].iter().all(|f| num_ok(f)) || fields[want - 1].parse::<f64>().is_err() {
        return Some("has a column that is not a number".into());
    }
    None
}

pub(crate) fn row(cell: &Cell, o: &Outcome) -> String {
    format!(
        "{},{},{},{},{:e},{:e},{},{:.3}",
        cell.key(),
        o.status,
        o.steps_to_success.map_or(String::new(), |s| s.to_string()),
        o.steps_to_success
            .map_or(String::new(), |s| (s as u64 * samples_per_step(cell)).to_string()),
        o.final_rel_err,
        o.final_loss,
        o.backend,
        o.wall_s
    )
}

/// The progress line of the `k`-th of `total` cells.
pub(crate) fn progress(k: usize, total: usize, cell: &Cell, o: &Outcome) -> String {
    format!(
        "[sweep] cell {}/{}: N = {}, batch {}, lr {:e}, {} {}{}, init {}, seed {}: {}{} (rel err {:.2e}, {:.2} s)",
        k + 1,
        total,
        cell.n,
        cell.batch,
        cell.lr,
        cell.optimizer,
        precision_name(cell.precision),
        // the settings that are not the defaults
        [
            (cell.schedule != crate::optim::Schedule::Constant).then(|| format!(", {}", cell.schedule)),
            (cell.momentum != 0.0).then(|| format!(", momentum {}", cell.momentum)),
            (cell.beta2 != crate::optim::BETA2).then(|| format!(", beta2 {}", cell.beta2)),
            (cell.data != DataMode::Minibatch).then(|| format!(", {} data", cell.data)),
        ]
        .into_iter()
        .flatten()
        .collect::<String>(),
        cell.init,
        cell.seed,
        o.status,
        o.steps_to_success.map_or(String::new(), |s| format!(" at step {s}")),
        o.final_rel_err,
        o.wall_s
    )
}
