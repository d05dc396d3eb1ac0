//! The model on the GPU: the buffers every kernel shape shares (parameters, Adam moments,
//! hyper-parameters, the step accumulator), the shape chosen for the adapter, and one step's
//! dispatch sequence (loss and gradients of a batch, a fixed-order reduction, Adam), all on
//! the device. The shapes: `lane` and `group` (shaders/lane.wgsl, group.wgsl: every layer of
//! every sample through global memory, chunked, reduced by shaders/reduce.wgsl) and `fused`
//! (src/backend/gpu/fused.rs: each sample on chip, one partial per workgroup, one submit per step).

use super::abi::{CellRow, CellStep, Hyper, Job, LANE_MAX_N, WG};
pub(super) use super::build::Shape;
use super::build::{bind, buffer, buffer_init, build_chunked, build_fused, pipeline, FusedRun, Shared};
use super::choice::env_shape;
pub use super::choice::{auto_summary, fused_plan, Kernel};
use super::context::Gpu;
use super::dispatch::{self, DispatchCap, Slice};
use super::fused;
use super::target::Precision;
use super::timing::{Part, StepTiming, Timer};
use crate::error::{Error, Result};
use crate::model::network::Network;
use crate::model::params::{exact_twiddles, Params};
use num_complex::Complex64 as C64;

/// A batch for the GPU.
#[derive(Clone, Copy, Debug)]
pub enum GpuBatch<'a> {
    /// Generated on the device by Philox from (seed, stream, step, sample).
    Gaussian {
        /// Seed.
        seed: u64,
        /// Stream.
        stream: crate::model::rng::Stream,
        /// Step.
        step: u32,
        /// Samples.
        size: usize,
    },
    /// Samples `first..first + size` of a Gaussian batch of `total` samples (one adapter's
    /// part of a batch split over several): the loss and gradient are that part's
    /// contribution to the whole batch's mean, so the parts' sums add up to the whole.
    GaussianPart {
        /// Seed.
        seed: u64,
        /// Stream.
        stream: crate::model::rng::Stream,
        /// Step.
        step: u32,
        /// The part's first sample in the whole batch.
        first: usize,
        /// Samples in the part.
        size: usize,
        /// Samples in the whole batch.
        total: usize,
    },
    /// From the host: inputs B x N and optional targets B x (N/2+1) (default: exact FFT on the device).
    Host {
        /// Inputs.
        x: &'a [f64],
        /// Targets.
        target: Option<&'a [C64]>,
    },
    /// Rows of a host batch of `total` samples (one adapter's part): the loss and gradient
    /// are the part's contribution to the whole batch's mean.
    HostPart {
        /// The part's inputs.
        x: &'a [f64],
        /// The part's targets.
        target: Option<&'a [C64]>,
        /// Samples in the whole batch.
        total: usize,
    },
}

impl GpuBatch<'_> {
    /// Samples in the batch, for size N.
    pub fn len(&self, n: usize) -> usize {
        match self {
            GpuBatch::Gaussian { size, .. } | GpuBatch::GaussianPart { size, .. } => *size,
            GpuBatch::Host { x, .. } | GpuBatch::HostPart { x, .. } => x.len() / n,
        }
    }

    /// The sample count the loss is a mean over (the whole batch's for a part).
    pub fn mean_over(&self, n: usize) -> usize {
        match self {
            GpuBatch::GaussianPart { total, .. } | GpuBatch::HostPart { total, .. } => *total,
            _ => self.len(n),
        }
    }
}

/// Adam's hyper-parameters as the device's update reads them (the optimizer layer's
/// `optim::Adam` converts into this; the backend does not depend on the optimizers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// beta1.
    pub beta1: f64,
    /// beta2.
    pub beta2: f64,
    /// eps.
    pub eps: f64,
}

/// How to build a [`GpuModel`].
#[derive(Clone, Copy, Debug)]
pub struct ModelOptions {
    /// Arithmetic precision of the kernels.
    pub prec: Precision,
    /// Kernel shape (None: [`Kernel::auto`]).
    pub kernel: Option<Kernel>,
    /// Samples per dispatch (None: lane/group the most the adapter's binding limit allows,
    /// up to 2048; fused the whole batch, host data in uploads of up to 65,536).
    pub chunk: Option<usize>,
    /// Native 64-bit Philox products where the adapter has SHADER_INT64 (default true).
    pub int64: bool,
    /// The fused plan's (bits per invocation, least invocations per workgroup); None: per
    /// adapter type ([`fused::HARDWARE_SHAPE`], [`fused::CPU_SHAPE`]).
    pub fused_shape: Option<(u32, u32)>,
    /// Whether the fused plan loads its twiddles once per step ([`fused::Plan::hoist`]);
    /// None: on CPU-type adapters, or as `FFTLEARN_FUSED_HOIST` says.
    pub fused_hoist: Option<bool>,
    /// Parts of the fused kernel left out, for `bench --parts` alone ([`fused::Omit`]).
    pub fused_omit: fused::Omit,
    /// Most samples one fused dispatch runs (None: [`DispatchCap::default_for`] the adapter
    /// type and N). The step's bytes do not depend on it ([`super::dispatch`]).
    pub dispatch_cap: Option<DispatchCap>,
}

impl ModelOptions {
    /// What these options fix of the fused plan.
    pub fn fused_pick(&self) -> super::choice::FusedPick {
        super::choice::FusedPick {
            shape: self.fused_shape,
            hoist: self.fused_hoist,
            omit: self.fused_omit,
        }
    }

    /// Defaults at `prec`.
    pub fn new(prec: Precision) -> Self {
        ModelOptions {
            prec,
            kernel: None,
            chunk: None,
            int64: true,
            fused_shape: None,
            fused_hoist: None,
            fused_omit: fused::Omit::default(),
            dispatch_cap: None,
        }
    }
}

/// The model's buffers and pipelines on one device: `cap` cells (1 for a single model, more
/// for a pack, src/backend/gpu/pack.rs), each with its parameters, Adam moments and step
/// accumulator at its slot; one kernel body serves both.
pub struct GpuModel {
    pub(super) gpu: Gpu,
    pub(super) net: Network,
    pub(super) prec: Precision,
    kernel: Kernel,
    note: Option<String>,
    int64: bool,
    job: wgpu::Buffer,
    pub(super) params: wgpu::Buffer,
    hyper: wgpu::Buffer,
    pub(super) acc: wgpu::Buffer,
    pub(super) moments: wgpu::Buffer,
    /// The step's cell table (abi::CellRow per row).
    table: wgpu::Buffer,
    /// Each row's loss total (fused).
    pub(super) losses: wgpu::Buffer,
    /// Cells the buffers hold.
    pub(super) cap: usize,
    adam: wgpu::ComputePipeline,
    adam_bg: wgpu::BindGroup,
    pub(super) shape: Shape,
    /// Most samples per fused dispatch.
    dispatch_cap: DispatchCap,
    /// GPU timestamps of each step, once [`GpuModel::enable_timing`] is called.
    timer: Option<Timer>,
    /// Whether the last step wrote every timestamp.
    timed: std::sync::atomic::AtomicBool,
}

pub(super) fn reals(prec: Precision, v: impl Iterator<Item = f64>) -> Vec<u8> {
    match prec {
        Precision::F32 => v.flat_map(|x| (x as f32).to_le_bytes()).collect(),
        Precision::F64 => v.flat_map(|x| x.to_le_bytes()).collect(),
    }
}

pub(super) fn complexes(prec: Precision, v: &[C64]) -> Vec<u8> {
    reals(prec, v.iter().flat_map(|z| [z.re, z.im]))
}

pub(super) fn from_reals(prec: Precision, b: &[u8]) -> Vec<f64> {
    match prec {
        Precision::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Precision::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

impl GpuModel {
    /// Upload `p` and build the pipelines for its size at `prec`, kernel and chunk by default.
    pub fn new(gpu: Gpu, p: &Params, prec: Precision) -> Result<Self> {
        Self::with_options(gpu, p, ModelOptions::new(prec))
    }

    /// Upload `p` and build the pipelines with explicit options.
    pub fn with_options(gpu: Gpu, p: &Params, opts: ModelOptions) -> Result<Self> {
        Self::build(gpu, std::slice::from_ref(p), opts, None)
    }

    /// The model for cells `ps` (one N) at slots 0.., with `opts`; `pack_batch`: a pack of
    /// steps of that many samples (fused only; its partials sized for it), else one cell.
    /// Long on purpose: the choice of shape with its refusals, then every buffer and
    /// pipeline, in the order they are bound.
    pub(super) fn build(gpu: Gpu, ps: &[Params], opts: ModelOptions, pack_batch: Option<usize>) -> Result<Self> {
        // a measurement override that does not parse is an error, never a silent fallback
        env_shape().map_err(Error::input)?;
        let prec = opts.prec;
        let net = ps
            .first()
            .ok_or_else(|| Error::input("a pack needs at least one cell"))?
            .net
            .clone();
        if let Some(q) = ps.iter().find(|q| q.net != net) {
            return Err(Error::input(format!(
                "a pack holds cells of one N: N = {} beside N = {}",
                q.net.n(),
                net.n()
            )));
        }
        let plan = fused_plan(
            &gpu.info,
            &gpu.limits,
            gpu.features,
            &net,
            prec,
            opts.int64,
            opts.fused_pick(),
        );
        let (kernel, note) = match opts.kernel {
            Some(Kernel::Fused) => {
                if let Err(why) = &plan {
                    return Err(Error::input(format!(
                        "--kernel fused: {why} on adapter {}; use --kernel group",
                        gpu.name()
                    )));
                }
                (Kernel::Fused, None)
            }
            Some(k) => (k, None),
            None => Kernel::auto(&gpu.info, &plan, net.n()),
        };
        if kernel == Kernel::Lane && net.n() > LANE_MAX_N {
            return Err(Error::input(format!(
                "--kernel lane at N = {}: offered up to N = {LANE_MAX_N} (at N >= 4096 its gradients disagree with the f64 path on lavapipe, a fault not yet found); use --kernel group or fused",
                net.n()
            )));
        }
        if pack_batch.is_some() && kernel != Kernel::Fused {
            return Err(Error::input(format!(
                "a pack runs on the fused kernel; {} runs one cell per model",
                kernel.name()
            )));
        }
        let cap = ps.len();
        let flat: Vec<C64> = ps.iter().flat_map(|q| q.flat()).collect();
        let int64 = opts.int64 && gpu.features.contains(wgpu::Features::SHADER_INT64);
        let np = net.n_params();
        let cb = 2 * prec.bytes() as u64;
        let dev = &gpu.device;
        let (job, params, exact, hyper, acc, moments, table, losses) = gpu.scoped("buffer allocation", || {
            let job = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("job"),
                size: std::mem::size_of::<Job>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (
                job,
                buffer_init(dev, "params", &complexes(prec, &flat)),
                buffer_init(dev, "exact", &complexes(prec, &exact_twiddles(&net))),
                buffer(dev, "hyper", (cap * Hyper::LEN * prec.bytes()) as u64),
                buffer(dev, "acc", cap as u64 * 2 * (np + 1) as u64 * cb),
                buffer(dev, "moments", cap as u64 * 2 * np as u64 * cb),
                buffer(dev, "cells", (cap * std::mem::size_of::<CellRow>()) as u64),
                buffer(dev, "losses", (cap * prec.bytes()) as u64),
            )
        })?;
        let sh = Shared {
            job: &job,
            params: &params,
            exact: &exact,
            hyper: &hyper,
            acc: &acc,
            table: &table,
            losses: &losses,
        };
        let shape = match kernel {
            Kernel::Lane | Kernel::Group => {
                Shape::Chunked(build_chunked(&gpu, &net, prec, kernel, opts.chunk, int64, &sh)?)
            }
            Kernel::Fused => {
                let plan = plan.map_err(Error::runtime)?;
                Shape::Fused(build_fused(&gpu, &net, prec, plan, opts.chunk, &sh, cap, pack_batch)?)
            }
        };
        let (adam, adam_bg) = gpu.scoped("shader compilation (adam)", || {
            let m = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("reduce"),
                source: wgpu::ShaderSource::Wgsl(super::build::reduce_source(&net, prec, 1, int64).into()),
            });
            let adam = pipeline(dev, &m, "adam", true);
            let bg = bind(
                dev,
                &adam,
                &[(2, &acc), (3, &params), (4, &moments), (5, &hyper), (6, &table)],
            );
            (adam, bg)
        })?;
        let dispatch_cap = opts
            .dispatch_cap
            .unwrap_or_else(|| DispatchCap::default_for(gpu.dispatch_type, net.n()));
        Ok(GpuModel {
            dispatch_cap,
            timer: None,
            timed: std::sync::atomic::AtomicBool::new(false),
            gpu,
            net,
            prec,
            kernel,
            note,
            int64,
            job,
            params,
            hyper,
            acc,
            moments,
            table,
            losses,
            cap,
            adam,
            adam_bg,
            shape,
        })
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The kernel shape in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Why `auto` did not take its first choice, if it did not.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Samples per dispatch: the lane/group chunk, or for fused the most samples per upload
    /// of host data (Philox data runs the whole batch per step unless --chunk is given, in
    /// dispatches under the dispatch cap).
    pub fn chunk(&self) -> usize {
        match &self.shape {
            Shape::Chunked(c) => c.chunk,
            Shape::Fused(f) => f.chunk.unwrap_or(f.host_chunk),
        }
    }

    /// One line on the shape: kernel, chunking, and (fused) the plan and limits it uses.
    pub fn describe_shape(&self) -> String {
        match &self.shape {
            Shape::Chunked(c) => format!("kernel {} | chunk {} samples", self.kernel.name(), c.chunk),
            Shape::Fused(f) => format!(
                "kernel fused | {} invocations per sample, {} sample(s) per workgroup, {} B workgroup memory ({} exchange buffer(s)), twiddles loaded {}{} | up to {} workgroups per step | {} | dispatch cap {} | {}",
                f.plan.ts,
                f.plan.teams,
                f.plan.wg_bytes,
                f.plan.nbuf,
                if f.plan.hoist { "once per step" } else { "at each use" },
                match (f.plan.omit.target, f.plan.omit.backward) {
                    (false, false) => "",
                    (true, false) => " | FOR TIMING ONLY: without the target's forward",
                    (false, true) => " | FOR TIMING ONLY: without the backward",
                    (true, true) => " | FOR TIMING ONLY: without the target's forward and the backward",
                },
                f.max_groups,
                match f.chunk {
                    Some(c) => format!("{c} samples per dispatch"),
                    None => format!("whole batch per step, host data in uploads of {}", f.host_chunk),
                },
                match self.dispatch_cap {
                    DispatchCap::Samples(s) => format!("{s} samples ({:?} adapter)", self.gpu.dispatch_type),
                    DispatchCap::Off => "off".into(),
                },
                if self.int64 { "Philox with u64 products" } else { "Philox with 16-bit limbs" }
            ),
        }
    }

    /// Time every later step with GPU timestamps; false where the device has no
    /// TIMESTAMP_QUERY or the kernel is not fused (only its steps are timed).
    pub fn enable_timing(&mut self) -> bool {
        if matches!(self.shape, Shape::Fused(_)) && self.timer.is_none() {
            self.timer = Timer::new(&self.gpu);
        }
        self.timer.is_some()
    }

    /// The GPU times of the last step, if it was timed (timing enabled, a fused step in one
    /// chunk: Philox data, or host data of at most one upload).
    pub fn last_step_timing(&self) -> Result<Option<StepTiming>> {
        match &self.timer {
            Some(t) if self.timed.load(std::sync::atomic::Ordering::Relaxed) => t.read(&self.gpu).map(Some),
            _ => Ok(None),
        }
    }

    /// Most samples one fused dispatch runs.
    pub fn dispatch_cap(&self) -> DispatchCap {
        self.dispatch_cap
    }

    /// The dispatches of the fused kernel's training pass for `count` samples on `rows`
    /// cells: the slices of its grid under the dispatch cap (lane/group: none).
    pub fn dispatches(&self, count: usize, rows: usize) -> Vec<Slice> {
        match &self.shape {
            Shape::Chunked(_) => Vec::new(),
            Shape::Fused(f) => {
                let (spt, groups) = f.plan.shape(count, f.max_groups);
                dispatch::slices(groups, rows as u32, spt as u64 * f.plan.teams as u64, self.dispatch_cap)
            }
        }
    }

    /// Precision.
    pub fn precision(&self) -> Precision {
        self.prec
    }

    /// `gpu f32 ADAPTER`: the model as a run's `backend` column and log name it.
    pub fn describe(&self) -> String {
        format!("gpu {} {}", self.precision().wgsl(), self.gpu().name())
    }

    /// The network this model runs.
    pub fn net(&self) -> &Network {
        &self.net
    }

    fn adam_pass(
        &self,
        enc: &mut wgpu::CommandEncoder,
        rows: u32,
        writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let np = self.net.n_params() as u32;
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: writes,
        });
        pass.set_pipeline(&self.adam);
        pass.set_bind_group(0, &self.adam_bg, &[]);
        pass.dispatch_workgroups(np.div_ceil(WG), rows, 1);
    }

    /// Write the step's hyper-parameters (per row: the loss scale, and with `adam` the
    /// bias-corrected Adam factors) and its cell table.
    fn upload_cells(&self, batch: &GpuBatch, rows: &[CellStep], adam: Option<&[(AdamHyper, u64)]>) {
        let (n, k) = (self.net.n(), self.net.bins());
        let mut hyper = Vec::with_capacity(rows.len() * Hyper::LEN);
        for i in 0..rows.len() {
            let mut h = Hyper {
                scale: 2.0 / (batch.mean_over(n) as f64 * k as f64),
                lr_bc1: 0.0,
                sqrt_bc2: 1.0,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            };
            if let Some((a, t)) = adam.map(|a| a[i]) {
                let t = t as f64;
                h.lr_bc1 = a.lr / (1.0 - a.beta1.powf(t));
                h.sqrt_bc2 = (1.0 - a.beta2.powf(t)).sqrt();
                h.beta1 = a.beta1;
                h.beta2 = a.beta2;
                h.eps = a.eps;
            }
            hyper.extend(h.reals());
        }
        self.gpu
            .queue
            .write_buffer(&self.hyper, 0, &reals(self.prec, hyper.into_iter()));
        let table: Vec<CellRow> = rows
            .iter()
            .map(|r| CellRow {
                slot: r.slot as u32,
                seed_lo: r.seed as u32,
                seed_hi: (r.seed >> 32) as u32,
                step: r.step,
            })
            .collect();
        self.gpu
            .queue
            .write_buffer(&self.table, 0, bytemuck::cast_slice(&table));
    }

    /// Encode one chunk of a fused step into `enc`: the training dispatches over the slices of
    /// its grid under the dispatch cap (every slice but the last submitted at once, each with
    /// its own job), then the combine; with `timed`, the timestamps of both.
    fn encode_fused(
        &self,
        f: &FusedRun,
        enc: &mut wgpu::CommandEncoder,
        job: &mut Job,
        count: usize,
        nrows: u32,
        timed: bool,
    ) -> Result<()> {
        let (spt, groups) = f.plan.shape(count, f.max_groups);
        if groups > f.cell_groups {
            return Err(Error::runtime(format!(
                "a dispatch of {count} samples needs {groups} workgroups per cell; this pack's partials hold {}",
                f.cell_groups
            )));
        }
        job.spt = spt;
        job.groups = groups;
        // every slice but the last in a submission of its own, with its job
        let per_group = spt as u64 * f.plan.teams as u64;
        let slices = dispatch::slices(groups, nrows, per_group, self.dispatch_cap);
        let (last_slice, earlier) = slices.split_last().expect("a grid has a slice");
        // timestamps where the step is one chunk (Philox data): the training
        // dispatches' first beginning and last end, combine, Adam
        let timer = self.timer.as_ref().filter(|_| timed);
        let writes = |part, begin, end| timer.and_then(|t| t.writes(part, begin, end));
        for (i, sl) in earlier.iter().enumerate() {
            let mut e = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = e.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: writes(Part::Train, i == 0, false),
                });
                pass.set_pipeline(&f.train);
                pass.set_bind_group(0, &f.train_bg, &[]);
                pass.dispatch_workgroups(sl.groups, sl.rows, 1);
            }
            let js = Job {
                group0: sl.group0,
                row0: sl.row0,
                ..*job
            };
            self.gpu.queue.write_buffer(&self.job, 0, bytemuck::bytes_of(&js));
            self.gpu.queue.submit([e.finish()]);
        }
        job.group0 = last_slice.group0;
        job.row0 = last_slice.row0;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: writes(Part::Train, earlier.is_empty(), true),
            });
            pass.set_pipeline(&f.train);
            pass.set_bind_group(0, &f.train_bg, &[]);
            pass.dispatch_workgroups(last_slice.groups, last_slice.rows, 1);
        }
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: writes(Part::Combine, true, true),
        });
        let np1 = self.net.n_params() as u32 + 1;
        if groups <= fused::SMALL_COMBINE {
            pass.set_pipeline(&f.combine_small);
            pass.set_bind_group(0, &f.combine_small_bg, &[]);
            pass.dispatch_workgroups(np1.div_ceil(WG), nrows, 1);
        } else {
            pass.set_pipeline(&f.combine);
            pass.set_bind_group(0, &f.combine_bg, &[]);
            pass.dispatch_workgroups(np1, nrows, 1);
        }
        Ok(())
    }

    /// Accumulate loss and gradient of `batch` for every cell of `rows` into its accumulator
    /// (started afresh), then (with `adam`, one entry per row: hyper-parameters and step count
    /// from 1) update those cells' parameters. Gaussian data: each row's seed and step (the
    /// fused kernel; lane and group, which run one cell, take the batch's); host data: the
    /// same samples for every row. Slightly over 120 lines: the step's command buffer is
    /// recorded in the order it runs (uploads, each slice's dispatch, combine, Adam, the read).
    pub(super) fn accumulate(
        &self,
        batch: &GpuBatch,
        rows: &[CellStep],
        adam: Option<&[(AdamHyper, u64)]>,
    ) -> Result<()> {
        let (n, k) = (self.net.n(), self.net.bins());
        let b = batch.len(n);
        if rows.is_empty() || rows.len() > self.cap || rows.iter().any(|r| r.slot >= self.cap) {
            return Err(Error::runtime(format!(
                "a step of {} cell(s) on a model of {} (slots {:?})",
                rows.len(),
                self.cap,
                rows.iter().map(|r| r.slot).collect::<Vec<_>>()
            )));
        }
        self.upload_cells(batch, rows, adam);
        let nrows = rows.len() as u32;
        let per = match &self.shape {
            Shape::Chunked(c) => c.chunk,
            Shape::Fused(f) => match batch {
                GpuBatch::Gaussian { .. } | GpuBatch::GaussianPart { .. } => f.chunk.unwrap_or(usize::MAX),
                GpuBatch::Host { .. } | GpuBatch::HostPart { .. } => f.chunk.unwrap_or(f.host_chunk),
            },
        };
        let timed = self.timer.is_some() && b <= per && matches!(self.shape, Shape::Fused(_));
        self.timed.store(timed, std::sync::atomic::Ordering::Relaxed);
        self.gpu.scoped("a training step", || -> Result<()> {
            let mut base = 0usize;
            while base < b {
                let count = (b - base).min(per);
                let first = base == 0;
                let last = base + count == b;
                let mut job = Job {
                    base: base as u32,
                    count: count as u32,
                    last_chunk: last as u32,
                    ..Default::default()
                };
                let (xin, tin) = match &self.shape {
                    Shape::Chunked(c) => (&c.xin, &c.tin),
                    Shape::Fused(f) => (&f.xin, &f.tin),
                };
                match batch {
                    GpuBatch::Gaussian { seed, stream, step, .. } => {
                        job.seed_lo = *seed as u32;
                        job.seed_hi = (*seed >> 32) as u32;
                        job.step = *step;
                        job.stream = *stream as u32;
                    }
                    GpuBatch::GaussianPart {
                        seed,
                        stream,
                        step,
                        first,
                        ..
                    } => {
                        job.seed_lo = *seed as u32;
                        job.seed_hi = (*seed >> 32) as u32;
                        job.step = *step;
                        job.stream = *stream as u32;
                        job.sample0 = *first as u32;
                    }
                    GpuBatch::Host { x, target } | GpuBatch::HostPart { x, target, .. } => {
                        job.from_host = 1;
                        let xs = &x[base * n..(base + count) * n];
                        self.gpu
                            .queue
                            .write_buffer(xin, 0, &reals(self.prec, xs.iter().copied()));
                        if let Some(t) = target {
                            job.host_target = 1;
                            self.gpu.queue.write_buffer(
                                tin,
                                0,
                                &complexes(self.prec, &t[base * k..(base + count) * k]),
                            );
                        }
                    }
                }
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                if first && matches!(self.shape, Shape::Chunked(_)) {
                    // (fused: combine starts the accumulator at the step's first dispatch)
                    enc.clear_buffer(&self.acc, 0, None);
                }
                match &self.shape {
                    Shape::Chunked(c) => {
                        let mut pass = enc.begin_compute_pass(&Default::default());
                        pass.set_pipeline(&c.train);
                        pass.set_bind_group(0, &c.train_bg, &[]);
                        let groups = match self.kernel {
                            Kernel::Lane => (count as u32).div_ceil(WG),
                            _ => count as u32,
                        };
                        pass.dispatch_workgroups(groups, 1, 1);
                        pass.set_pipeline(&c.reduce);
                        pass.set_bind_group(0, &c.reduce_bg, &[]);
                        pass.dispatch_workgroups((self.net.n_params() as u32 + 1).div_ceil(WG), 1, 1);
                    }
                    Shape::Fused(f) => self.encode_fused(f, &mut enc, &mut job, count, nrows, timed)?,
                }
                let adam_writes = self
                    .timer
                    .as_ref()
                    .filter(|_| timed)
                    .and_then(|t| t.writes(Part::Adam, true, true));
                if last && adam.is_some() {
                    self.adam_pass(&mut enc, nrows, adam_writes);
                } else if adam_writes.is_some() {
                    // a step without an update: an empty pass keeps the Adam pair this step's
                    enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: adam_writes,
                    });
                }
                self.gpu.queue.write_buffer(&self.job, 0, bytemuck::bytes_of(&job));
                self.gpu.queue.submit([enc.finish()]);
                base += count;
            }
            Ok(())
        })?
    }
}
