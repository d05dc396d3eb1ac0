//! Packs: many cells of one N stepped together, each exactly as it runs alone.
//!
//! A [`PackBackend`] steps a list of cells at once: on the CPU f64 path ([`CpuPack`]) every
//! cell's step runs as one task of a parallel loop (each keeps its own tasks, so small cells
//! fill the cores together); on the GPU every cell is a row of one command buffer per step
//! ([`GpuAdamPack`]: data, forward, backward, reduction and Adam on the device, the losses read
//! back in one copy; [`GpuHostPack`]: every cell's gradient in one step, then each cell's
//! host update in f64, as a lone GPU cell with a host optimizer does).
//!
//! [`drive_pack`] is [`super::drive`] with [`super::UntilThreshold`] for many cells: the same
//! divergence test, evaluation cadence and threshold per cell, but one parameter read and
//! one parallel host pass for every cell due for an exact evaluation. A cell that ends
//! (success, budget, divergence) leaves the step at once. Each cell's figures are the ones
//! its lone run gives, bit for bit: its state is its own, its data is its own Philox stream,
//! and its arithmetic does not depend on its neighbours (src/backend/gpu/pack.rs says why on
//! the GPU; on the CPU each cell's step is the lone step).

use super::config::{BackendKind, DataMode, TrainConfig, UpdateSite};
use super::stepper::{adam_state, to_population, HostBackend};
use super::{divergence, Backend, End, Flow, Span, StepInfo, UntilThreshold};
use crate::backend::cpu;
use crate::backend::gpu::{CellStep, GpuBatch, GpuModel};
use crate::error::{Error, Kind, Result};
use crate::model::params::Params;
use crate::model::rng::Stream;
use crate::objective::problem::Problem;
use crate::optim::{Adam, AdamState, OptState, Optimizer, Schedule};
use rayon::prelude::*;

/// Many cells' state and one step for all of them.
pub trait PackBackend {
    /// Cells held.
    fn len(&self) -> usize;
    /// Whether it holds no cell.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Where it runs: the text a lone cell's backend gives (a sweep writes it in every row).
    fn describe(&self) -> String;
    /// What a resume must run on.
    fn kind(&self) -> BackendKind;
    /// Where every cell's update runs.
    fn update(&self) -> UpdateSite;
    /// One step of every (cell, step) of `rows` (distinct cells): each one's loss before its
    /// update, or `None` where an interrupt abandoned the step before the update.
    fn step(&mut self, rows: &[(usize, u32)]) -> Result<Vec<Option<f64>>>;
    /// The current parameters of `cells`.
    fn params(&mut self, cells: &[usize]) -> Result<Vec<Params>>;
    /// Whether cell `cell`'s parameters are all finite, where that is cheap to know.
    fn params_finite(&self, cell: usize) -> bool;
    /// Cell `cell`'s optimizer state, for a checkpoint.
    fn state(&mut self, cell: usize) -> Result<OptState>;
    /// Continue cell `cell` from a checkpoint's parameters and optimizer state.
    fn restore(&mut self, cell: usize, p: &Params, s: &OptState) -> Result<()>;
}

/// Distinct `&mut` elements of `v` at `idx` (distinct indices), in `idx` order.
fn pick_mut<'a, T>(v: &'a mut [T], idx: &[usize]) -> Vec<&'a mut T> {
    let mut slots: Vec<Option<&mut T>> = v.iter_mut().map(Some).collect();
    idx.iter()
        .map(|&i| slots[i].take().expect("each cell once per step"))
        .collect()
}

/// Cells on the CPU f64 path: each a lone [`HostBackend`], every cell's step a task of one
/// parallel loop (bit-identical at any thread count: a cell's step does not depend on it).
pub struct CpuPack {
    cells: Vec<HostBackend>,
}

impl CpuPack {
    /// The pack of (validated) configs starting at their parameters.
    pub fn new(cells: Vec<(TrainConfig, Params)>) -> Result<Self> {
        Ok(CpuPack {
            cells: cells
                .into_iter()
                .map(|(c, p)| HostBackend::new(&c, p, None))
                .collect::<Result<_>>()?,
        })
    }
}

impl PackBackend for CpuPack {
    fn len(&self) -> usize {
        self.cells.len()
    }
    fn describe(&self) -> String {
        format!("cpu f64 ({} threads)", rayon::current_num_threads())
    }
    fn kind(&self) -> BackendKind {
        BackendKind::CpuF64
    }
    fn update(&self) -> UpdateSite {
        UpdateSite::HostF64
    }
    fn step(&mut self, rows: &[(usize, u32)]) -> Result<Vec<Option<f64>>> {
        let idx: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let work: Vec<(&mut HostBackend, u32)> = pick_mut(&mut self.cells, &idx)
            .into_iter()
            .zip(rows.iter().map(|r| r.1))
            .collect();
        work.into_par_iter()
            .with_max_len(1)
            .map(|(b, step)| match b.step(step) {
                Ok(l) => Ok(Some(l)),
                Err(e) if e.kind() == Kind::Interrupted => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
    fn params(&mut self, cells: &[usize]) -> Result<Vec<Params>> {
        cells.iter().map(|&c| self.cells[c].params()).collect()
    }
    fn params_finite(&self, cell: usize) -> bool {
        self.cells[cell].params_finite()
    }
    fn state(&mut self, cell: usize) -> Result<OptState> {
        self.cells[cell].state()
    }
    fn restore(&mut self, cell: usize, p: &Params, s: &OptState) -> Result<()> {
        self.cells[cell].restore(p, s)
    }
}

/// One cell of a [`GpuAdamPack`]: what a lone [`super::GpuBackend`] keeps on the host.
struct AdamCell {
    lr: f64,
    beta2: f64,
    schedule: Schedule,
    total: u32,
    seed: u64,
    t: u64,
}

/// Adam on minibatches entirely on the device, for every cell of a pack (the lone
/// [`super::GpuBackend`]'s step, one row per cell).
pub struct GpuAdamPack {
    model: GpuModel,
    cells: Vec<AdamCell>,
    batch: usize,
}

impl GpuAdamPack {
    /// The pack of `configs` (Adam, minibatches, one batch size) on `model` (slot i holds
    /// cell i's parameters).
    pub fn new(model: GpuModel, configs: &[TrainConfig]) -> Result<Self> {
        let batch = one_batch(configs)?;
        if configs
            .iter()
            .any(|c| c.optimizer != Optimizer::Adam || c.data != DataMode::Minibatch)
        {
            return Err(Error::runtime("a device Adam pack takes Adam on minibatches"));
        }
        Ok(GpuAdamPack {
            model,
            cells: configs
                .iter()
                .map(|c| AdamCell {
                    lr: c.lr,
                    beta2: c.beta2,
                    schedule: c.schedule,
                    total: c.steps,
                    seed: c.seed,
                    t: 0,
                })
                .collect(),
            batch,
        })
    }
}

/// The one batch size of a pack's configs.
fn one_batch(configs: &[TrainConfig]) -> Result<usize> {
    let b = configs.first().map_or(1, |c| c.batch);
    if configs.iter().any(|c| c.batch != b) {
        return Err(Error::runtime("a GPU pack holds cells of one batch size"));
    }
    Ok(b)
}

impl PackBackend for GpuAdamPack {
    fn len(&self) -> usize {
        self.cells.len()
    }
    fn describe(&self) -> String {
        self.model.describe()
    }
    fn kind(&self) -> BackendKind {
        BackendKind::gpu(self.model.precision())
    }
    fn update(&self) -> UpdateSite {
        UpdateSite::device(self.model.precision())
    }
    fn step(&mut self, rows: &[(usize, u32)]) -> Result<Vec<Option<f64>>> {
        let mut cs = Vec::with_capacity(rows.len());
        let mut hy = Vec::with_capacity(rows.len());
        for &(c, step) in rows {
            let cell = &mut self.cells[c];
            cell.t += 1;
            cs.push(CellStep {
                slot: c,
                seed: cell.seed,
                step,
            });
            hy.push((
                Adam::with_beta2(cell.schedule.lr(cell.lr, step, cell.total), cell.beta2).hyper(),
                cell.t,
            ));
        }
        let batch = GpuBatch::Gaussian {
            seed: 0,
            stream: Stream::Data,
            step: 0,
            size: self.batch,
        };
        Ok(self
            .model
            .pack_adam_step(&batch, &cs, &hy)?
            .into_iter()
            .map(Some)
            .collect())
    }
    fn params(&mut self, cells: &[usize]) -> Result<Vec<Params>> {
        self.model.params_of(cells)
    }
    fn params_finite(&self, _cell: usize) -> bool {
        true
    }
    fn state(&mut self, cell: usize) -> Result<OptState> {
        let (m, v) = self.model.moments_of(cell)?;
        Ok(OptState::from(&AdamState {
            step: self.cells[cell].t,
            m,
            v,
        }))
    }
    fn restore(&mut self, cell: usize, p: &Params, s: &OptState) -> Result<()> {
        let st = adam_state(s, p.len())?;
        self.model.set_params_of(cell, p);
        self.model.set_moments_of(cell, &st.m, &st.v);
        self.cells[cell].t = st.step;
        Ok(())
    }
}

/// Every cell's gradient from the device in one step, then each cell's update on the host in
/// f64 (a lone [`HostBackend`] with a GPU gradient, one row per cell): any gradient optimizer,
/// minibatches or population data.
pub struct GpuHostPack {
    model: GpuModel,
    hosts: Vec<HostBackend>,
    seeds: Vec<u64>,
    batch: usize,
    optimizer: Optimizer,
    /// Population data: the identity inputs and exact targets every cell shares.
    population: Option<Problem>,
}

impl GpuHostPack {
    /// The pack of `cells` (one optimizer, one data mode, one batch size) on `model` (slot i
    /// holds cell i's parameters).
    pub fn new(model: GpuModel, cells: Vec<(TrainConfig, Params)>) -> Result<Self> {
        let configs: Vec<TrainConfig> = cells.iter().map(|c| c.0.clone()).collect();
        let batch = one_batch(&configs)?;
        let optimizer = configs.first().map_or(Optimizer::Adam, |c| c.optimizer);
        let data = configs.first().map_or(DataMode::Minibatch, |c| c.data);
        if configs.iter().any(|c| c.optimizer != optimizer || c.data != data) || !optimizer.on_gpu() {
            return Err(Error::runtime(
                "a GPU host-update pack holds cells of one gradient optimizer and one data mode",
            ));
        }
        let population = (data == DataMode::Population).then(|| Problem::population(model.net()));
        Ok(GpuHostPack {
            seeds: configs.iter().map(|c| c.seed).collect(),
            hosts: cells
                .into_iter()
                .map(|(c, p)| HostBackend::new(&c, p, None))
                .collect::<Result<_>>()?,
            model,
            batch,
            optimizer,
            population,
        })
    }
}

impl PackBackend for GpuHostPack {
    fn len(&self) -> usize {
        self.hosts.len()
    }
    fn describe(&self) -> String {
        format!(
            "gpu {} {} (gradient on the device, {} update on the host in f64)",
            self.model.precision().wgsl(),
            self.model.gpu().name(),
            self.optimizer
        )
    }
    fn kind(&self) -> BackendKind {
        BackendKind::gpu(self.model.precision())
    }
    fn update(&self) -> UpdateSite {
        UpdateSite::HostF64
    }
    fn step(&mut self, rows: &[(usize, u32)]) -> Result<Vec<Option<f64>>> {
        let cs: Vec<CellStep> = rows
            .iter()
            .map(|&(c, step)| CellStep {
                slot: c,
                seed: self.seeds[c],
                step,
            })
            .collect();
        let n = self.model.net().n();
        let grads = match &self.population {
            Some(pop) => {
                let (x, t) = pop.data();
                self.model
                    .pack_loss_grad(&GpuBatch::Host { x, target: Some(t) }, &cs)?
                    .into_iter()
                    .map(|g| to_population(g, n))
                    .collect()
            }
            None => self.model.pack_loss_grad(
                &GpuBatch::Gaussian {
                    seed: 0,
                    stream: Stream::Data,
                    step: 0,
                    size: self.batch,
                },
                &cs,
            )?,
        };
        let idx: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let work: Vec<_> = pick_mut(&mut self.hosts, &idx)
            .into_iter()
            .zip(rows.iter().map(|r| r.1))
            .zip(grads)
            .collect();
        // a non-finite loss is reported before any update, as the lone step does
        let losses: Vec<f64> = work
            .into_par_iter()
            .with_max_len(1)
            .map(|((h, step), g)| {
                if g.loss.is_finite() {
                    h.update(step, &g)
                } else {
                    Ok(f64::NAN)
                }
            })
            .collect::<Result<_>>()?;
        for (&(c, _), l) in rows.iter().zip(&losses) {
            if l.is_finite() {
                self.model.set_params_of(c, self.hosts[c].params_ref());
            }
        }
        Ok(losses.into_iter().map(Some).collect())
    }
    fn params(&mut self, cells: &[usize]) -> Result<Vec<Params>> {
        cells.iter().map(|&c| self.hosts[c].params()).collect()
    }
    fn params_finite(&self, cell: usize) -> bool {
        self.hosts[cell].params_finite()
    }
    fn state(&mut self, cell: usize) -> Result<OptState> {
        self.hosts[cell].state()
    }
    fn restore(&mut self, cell: usize, p: &Params, s: &OptState) -> Result<()> {
        self.hosts[cell].restore(p, s)?;
        self.model.set_params_of(cell, p);
        Ok(())
    }
}

/// One cell's run in a pack: its bounds and observer, where it stands, and how it ended.
#[derive(Clone, Debug)]
pub struct CellRun {
    /// Its steps (start: steps already done; the first loss when resuming).
    pub span: Span,
    /// Its evaluations and threshold.
    pub obs: UntilThreshold,
    /// The last step taken.
    pub step: u32,
    /// How it ended (None while it runs).
    pub end: Option<End>,
}

impl CellRun {
    /// A cell over `span` evaluated by `obs`.
    pub fn new(span: Span, obs: UntilThreshold) -> Self {
        CellRun {
            step: span.start,
            span,
            obs,
            end: None,
        }
    }
}

/// Step every cell of `runs` on `backend` (cell i of both) until each ends, as [`super::drive`]
/// with [`UntilThreshold`] runs a lone cell: per step, the loss, the divergence test, the
/// evaluation when due, the threshold, the last step; after the step in which an interrupt
/// arrived every running cell ends `Interrupted`. Every parameter due for an evaluation is
/// read in one call and evaluated in one parallel host pass. `ended(i, run, backend)` is
/// called as cell i ends (its state still in `backend`, for a row, saved parameters or a
/// checkpoint).
pub fn drive_pack(
    backend: &mut dyn PackBackend,
    runs: &mut [CellRun],
    ended: &mut dyn FnMut(usize, &CellRun, &mut dyn PackBackend) -> Result<()>,
) -> Result<()> {
    if runs.len() != backend.len() {
        return Err(Error::runtime("one run per cell of the pack"));
    }
    for (i, r) in runs.iter_mut().enumerate() {
        if r.end.is_none() && r.step >= r.span.steps {
            r.end = Some(End::Finished);
            ended(i, r, backend)?;
        }
    }
    loop {
        let rows: Vec<(usize, u32)> = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.end.is_none())
            .map(|(i, r)| (i, r.step + 1))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let losses = backend.step(&rows)?;
        let interrupted = crate::interrupt::requested();
        let mut due = Vec::new();
        let mut done = Vec::new();
        for (&(i, step), loss) in rows.iter().zip(losses) {
            let r = &mut runs[i];
            let Some(loss) = loss else {
                r.end = Some(End::Interrupted(step - 1));
                done.push(i);
                continue;
            };
            let first = *r.span.first_loss.get_or_insert(loss);
            if let Some(why) = divergence(
                loss,
                first,
                r.span.loss_floor,
                backend.params_finite(i),
                r.span.max_loss_ratio,
            ) {
                r.end = Some(End::Diverged { step, loss, why });
                done.push(i);
                continue;
            }
            r.step = step;
            let info = StepInfo {
                step,
                loss,
                first_loss: first,
                last: step == r.span.steps,
                interrupted,
            };
            if r.obs.record(&info) {
                due.push(i);
            }
        }
        if !due.is_empty() {
            let ps = backend.params(&due)?;
            let rels: Vec<f64> = ps.par_iter().with_max_len(1).map(cpu::rel_operator_error).collect();
            for (&i, rel) in due.iter().zip(rels) {
                let r = &mut runs[i];
                if r.obs.judge(r.step, rel) == Flow::Stop {
                    r.end = Some(End::Stopped(r.step));
                }
            }
        }
        for &(i, _) in &rows {
            let r = &mut runs[i];
            if r.end.is_none() {
                if r.step == r.span.steps {
                    r.end = Some(End::Finished);
                } else if interrupted {
                    r.end = Some(End::Interrupted(r.step));
                }
            }
            if r.end.is_some() && !done.contains(&i) {
                done.push(i);
            }
        }
        done.sort_unstable();
        for i in done {
            ended(i, &runs[i], backend)?;
        }
    }
}
