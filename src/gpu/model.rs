//! The model on the GPU: buffers, pipelines and the per-step dispatch sequence (chunked
//! forward + loss + backward, fixed-order reduction, Adam), all on the device.

use super::context::{Gpu, Precision};
use crate::cpu::Grad;
use crate::error::{Error, Result};
use crate::network::Network;
use crate::optim::Adam;
use crate::params::{exact_twiddles, Params};
use bytemuck::{Pod, Zeroable};
use num_complex::Complex64 as C64;
use wgpu::util::DeviceExt;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const LANE: &str = include_str!("../../shaders/lane.wgsl");
const GROUP: &str = include_str!("../../shaders/group.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
/// Invocations per workgroup in every kernel.
const WG: u32 = 64;
/// Most samples in one chunk.
const MAX_CHUNK: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Job {
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    stream: u32,
    base: u32,
    count: u32,
    from_host: u32,
    host_target: u32,
    last_chunk: u32,
    pad: [u32; 3],
}

/// A batch for the GPU.
#[derive(Clone, Copy, Debug)]
pub enum GpuBatch<'a> {
    /// Generated on the device by Philox from (seed, stream, step, sample).
    Gaussian {
        /// Seed.
        seed: u64,
        /// Stream.
        stream: crate::rng::Stream,
        /// Step.
        step: u32,
        /// Samples.
        size: usize,
    },
    /// From the host: inputs B x N and optional targets B x (N/2+1) (default: exact FFT on the device).
    Host {
        /// Inputs.
        x: &'a [f64],
        /// Targets.
        target: Option<&'a [C64]>,
    },
}

impl GpuBatch<'_> {
    /// Samples in the batch, for size N.
    pub fn len(&self, n: usize) -> usize {
        match self {
            GpuBatch::Gaussian { size, .. } => *size,
            GpuBatch::Host { x, .. } => x.len() / n,
        }
    }
}

/// The shape of the training kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// One invocation per sample, straight-line loops (shaders/lane.wgsl): fastest on CPU
    /// rasterisers such as lavapipe.
    Lane,
    /// One workgroup of 64 invocations per sample with barriers between stages
    /// (shaders/group.wgsl): the shape hardware GPUs favour.
    Group,
}

impl Kernel {
    /// The default for an adapter: `lane` on CPU-type adapters (lavapipe, SwiftShader), `group`
    /// on hardware GPUs.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Kernel {
        if info.device_type == wgpu::DeviceType::Cpu {
            Kernel::Lane
        } else {
            Kernel::Group
        }
    }
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Lane => "lane",
            Kernel::Group => "group",
        }
    }
}

/// How to build a [`GpuModel`].
#[derive(Clone, Copy, Debug)]
pub struct ModelOptions {
    /// Arithmetic precision of the kernels.
    pub prec: Precision,
    /// Kernel shape (None: [`Kernel::for_adapter`]).
    pub kernel: Option<Kernel>,
    /// Samples per chunk (None: the most the adapter's binding limit allows, up to 2048).
    pub chunk: Option<usize>,
}

impl ModelOptions {
    /// Defaults at `prec`.
    pub fn new(prec: Precision) -> Self {
        ModelOptions {
            prec,
            kernel: None,
            chunk: None,
        }
    }
}

/// The model's buffers and pipelines on one device.
pub struct GpuModel {
    gpu: Gpu,
    net: Network,
    prec: Precision,
    kernel: Kernel,
    chunk: usize,
    job: wgpu::Buffer,
    params: wgpu::Buffer,
    xin: wgpu::Buffer,
    tin: wgpu::Buffer,
    hyper: wgpu::Buffer,
    acc: wgpu::Buffer,
    moments: wgpu::Buffer,
    lane: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    adam: wgpu::ComputePipeline,
    lane_bg: wgpu::BindGroup,
    reduce_bg: wgpu::BindGroup,
    adam_bg: wgpu::BindGroup,
    _keep: Vec<wgpu::Buffer>,
}

fn reals(prec: Precision, v: impl Iterator<Item = f64>) -> Vec<u8> {
    match prec {
        Precision::F32 => v.flat_map(|x| (x as f32).to_le_bytes()).collect(),
        Precision::F64 => v.flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn complexes(prec: Precision, v: &[C64]) -> Vec<u8> {
    reals(prec, v.iter().flat_map(|z| [z.re, z.im]))
}

fn from_reals(prec: Precision, b: &[u8]) -> Vec<f64> {
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

/// The WGSL source for one module: the constants header, common.wgsl, then `body`.
pub fn source(net: &Network, prec: Precision, chunk: usize, body: &str) -> String {
    format!(
        "alias R = {};\nconst N: u32 = {}u;\nconst H: u32 = {}u;\nconst K: u32 = {}u;\nconst LOG2: u32 = {}u;\nconst NP: u32 = {}u;\nconst C: u32 = {}u;\n{COMMON}\n{body}",
        prec.wgsl(),
        net.n(),
        net.half(),
        net.bins(),
        net.log2(),
        4 + net.n_twiddles(),
        chunk
    )
}

impl GpuModel {
    /// Upload `p` and build the pipelines for its size at `prec`, kernel and chunk by default.
    pub fn new(gpu: Gpu, p: &Params, prec: Precision) -> Result<Self> {
        Self::with_options(gpu, p, ModelOptions::new(prec))
    }

    /// Upload `p` and build the pipelines with explicit options.
    pub fn with_options(gpu: Gpu, p: &Params, opts: ModelOptions) -> Result<Self> {
        let prec = opts.prec;
        let kernel = opts.kernel.unwrap_or(Kernel::for_adapter(&gpu.info));
        let net = p.net.clone();
        let (n, k) = (net.n(), net.bins());
        let np = 4 + net.n_twiddles();
        let cb = 2 * prec.bytes() as u64; // bytes per complex
        let layers = net.log2() as u64 + 2;
        let limit = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size);
        let mut chunk = MAX_CHUNK;
        while chunk > 1 && layers * n as u64 * chunk as u64 * cb > limit {
            chunk /= 2;
        }
        if layers * n as u64 * cb > limit {
            return Err(Error::runtime(format!(
                "N = {n} needs {} bytes of activations per sample, over adapter {}'s storage binding limit of {limit} bytes",
                layers * n as u64 * cb,
                gpu.name()
            )));
        }
        if let Some(c) = opts.chunk {
            let bytes = layers * n as u64 * c as u64 * cb;
            let groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
            if c == 0 || bytes > limit || c > groups {
                return Err(Error::input(format!(
                    "--chunk {c}: must be 1..={} on adapter {}: {c} samples need {bytes} bytes of activations (max_storage_buffer_binding_size / max_buffer_size: {limit} bytes) and {c} workgroups (max_compute_workgroups_per_dimension: {groups})",
                    chunk.min(groups),
                    gpu.name()
                )));
            }
            chunk = c;
        }
        let dev = &gpu.device;
        let st = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let made = gpu.scoped("buffer allocation", || {
            let buf = |label: &str, size: u64| {
                dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: size.max(16),
                    usage: st,
                    mapped_at_creation: false,
                })
            };
            let init = |label: &str, bytes: &[u8]| {
                dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: st,
                })
            };
            let job = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("job"),
                size: std::mem::size_of::<Job>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let params = init("params", &complexes(prec, &p.flat()));
            let exact = init("exact", &complexes(prec, &exact_twiddles(&net)));
            let act = buf("act", layers * n as u64 * chunk as u64 * cb);
            let pg = buf("pg", (np as u64 + 1) * chunk as u64 * cb);
            let xin = buf("xin", (chunk * n) as u64 * prec.bytes() as u64);
            let tin = buf("tin", (chunk * k) as u64 * cb);
            let hyper = buf("hyper", 8 * prec.bytes() as u64);
            let acc = buf("acc", 2 * (np as u64 + 1) * cb);
            let moments = buf("moments", 2 * np as u64 * cb);
            (job, params, exact, act, pg, xin, tin, hyper, acc, moments)
        })?;
        let (job, params, exact, act, pg, xin, tin, hyper, acc, moments) = made;
        let module = |label: &str, body: &str| {
            dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source(&net, prec, chunk, body).into()),
            })
        };
        let pipeline = |m: &wgpu::ShaderModule, entry: &str| {
            dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let (lane, reduce, adam) = gpu.scoped("shader compilation", || {
            let lm = match kernel {
                Kernel::Lane => module("lane", LANE),
                Kernel::Group => module("group", GROUP),
            };
            let rm = module("reduce", REDUCE);
            (
                pipeline(
                    &lm,
                    if kernel == Kernel::Lane {
                        "train_lane"
                    } else {
                        "train_group"
                    },
                ),
                pipeline(&rm, "reduce"),
                pipeline(&rm, "adam"),
            )
        })?;
        let bg = |pl: &wgpu::ComputePipeline, bufs: &[(u32, &wgpu::Buffer)]| {
            let entries: Vec<wgpu::BindGroupEntry> = bufs
                .iter()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: *i,
                    resource: b.as_entire_binding(),
                })
                .collect();
            dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pl.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let (lane_bg, reduce_bg, adam_bg) = gpu.scoped("bind groups", || {
            (
                bg(
                    &lane,
                    &[
                        (0, &job),
                        (1, &params),
                        (2, &exact),
                        (3, &act),
                        (4, &pg),
                        (5, &xin),
                        (6, &tin),
                        (7, &hyper),
                    ],
                ),
                bg(&reduce, &[(0, &job), (1, &pg), (2, &acc)]),
                bg(&adam, &[(2, &acc), (3, &params), (4, &moments), (5, &hyper)]),
            )
        })?;
        Ok(GpuModel {
            gpu,
            net,
            prec,
            kernel,
            chunk,
            job,
            params,
            xin,
            tin,
            hyper,
            acc,
            moments,
            lane,
            reduce,
            adam,
            lane_bg,
            reduce_bg,
            adam_bg,
            _keep: vec![exact, act, pg],
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

    /// Samples per chunk.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Precision.
    pub fn precision(&self) -> Precision {
        self.prec
    }

    /// Replace the parameters (and reset nothing else).
    pub fn set_params(&self, p: &Params) {
        self.gpu
            .queue
            .write_buffer(&self.params, 0, &complexes(self.prec, &p.flat()));
    }

    /// Read the parameters back.
    pub fn params(&self) -> Result<Params> {
        let np = 4 + self.net.n_twiddles();
        let b = self.gpu.read(&self.params, 0, (np * 2 * self.prec.bytes()) as u64)?;
        let v = from_reals(self.prec, &b);
        let flat: Vec<C64> = v.chunks_exact(2).map(|c| C64::new(c[0], c[1])).collect();
        let mut p = Params {
            net: self.net.clone(),
            m: [C64::default(); 4],
            tw: vec![C64::default(); np - 4],
        };
        p.set_flat(&flat);
        Ok(p)
    }

    fn write_hyper(&self, vals: &[f64]) {
        self.gpu
            .queue
            .write_buffer(&self.hyper, 0, &reals(self.prec, vals.iter().copied()));
    }

    /// Accumulate loss and gradient of `batch` into the accumulator (cleared first).
    fn accumulate(&self, batch: &GpuBatch, adam: Option<(&Adam, u64)>) -> Result<()> {
        let (n, k) = (self.net.n(), self.net.bins());
        let b = batch.len(n);
        let scale = 2.0 / (b as f64 * k as f64);
        let mut hyper = vec![scale, 0.0, 1.0, 0.9, 0.999, 1e-8, 0.0, 0.0];
        if let Some((h, t)) = adam {
            let t = t as f64;
            hyper[1] = h.lr / (1.0 - h.beta1.powf(t));
            hyper[2] = (1.0 - h.beta2.powf(t)).sqrt();
            hyper[3] = h.beta1;
            hyper[4] = h.beta2;
            hyper[5] = h.eps;
        }
        self.write_hyper(&hyper);
        let np = 4 + self.net.n_twiddles();
        self.gpu.scoped("a training step", || {
            let mut enc = self.gpu.device.create_command_encoder(&Default::default());
            enc.clear_buffer(&self.acc, 0, None);
            self.gpu.queue.submit([enc.finish()]);
            let mut base = 0usize;
            while base < b {
                let count = (b - base).min(self.chunk);
                let last_chunk = (base + count == b) as u32;
                let mut job = Job {
                    base: base as u32,
                    count: count as u32,
                    last_chunk,
                    ..Default::default()
                };
                match batch {
                    GpuBatch::Gaussian { seed, stream, step, .. } => {
                        job.seed_lo = *seed as u32;
                        job.seed_hi = (*seed >> 32) as u32;
                        job.step = *step;
                        job.stream = *stream as u32;
                    }
                    GpuBatch::Host { x, target } => {
                        job.from_host = 1;
                        let xs = &x[base * n..(base + count) * n];
                        self.gpu
                            .queue
                            .write_buffer(&self.xin, 0, &reals(self.prec, xs.iter().copied()));
                        if let Some(t) = target {
                            job.host_target = 1;
                            self.gpu.queue.write_buffer(
                                &self.tin,
                                0,
                                &complexes(self.prec, &t[base * k..(base + count) * k]),
                            );
                        }
                    }
                }
                self.gpu.queue.write_buffer(&self.job, 0, bytemuck::bytes_of(&job));
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.lane);
                    pass.set_bind_group(0, &self.lane_bg, &[]);
                    let groups = match self.kernel {
                        Kernel::Lane => (count as u32).div_ceil(WG),
                        Kernel::Group => count as u32,
                    };
                    pass.dispatch_workgroups(groups, 1, 1);
                    pass.set_pipeline(&self.reduce);
                    pass.set_bind_group(0, &self.reduce_bg, &[]);
                    pass.dispatch_workgroups((np as u32 + 1).div_ceil(WG), 1, 1);
                }
                self.gpu.queue.submit([enc.finish()]);
                base += count;
            }
            if adam.is_some() {
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.adam);
                    pass.set_bind_group(0, &self.adam_bg, &[]);
                    pass.dispatch_workgroups((np as u32).div_ceil(WG), 1, 1);
                }
                self.gpu.queue.submit([enc.finish()]);
            }
        })?;
        Ok(())
    }

    /// Loss and gradient of `batch` at the current parameters (read back in full).
    pub fn loss_grad(&self, batch: &GpuBatch) -> Result<Grad> {
        self.accumulate(batch, None)?;
        let np = 4 + self.net.n_twiddles();
        let cb = 2 * self.prec.bytes() as u64;
        let bytes = self.gpu.read(&self.acc, 0, 2 * (np as u64 + 1) * cb)?;
        let v = from_reals(self.prec, &bytes);
        // acc holds (total, open block) pairs; the last chunk flushed the block into the total
        let sum = |p: usize| C64::new(v[4 * p], v[4 * p + 1]);
        let b = batch.len(self.net.n());
        let loss = sum(np).re / (b as f64 * self.net.bins() as f64);
        let g: Vec<C64> = (0..np).map(sum).collect();
        Ok(Grad {
            loss,
            m: [g[0], g[1], g[2], g[3]],
            tw: g[4..].to_vec(),
        })
    }

    /// One Adam step on `batch` (step count `t`, from 1); returns the loss before the update.
    pub fn adam_step(&self, batch: &GpuBatch, adam: &Adam, t: u64) -> Result<f64> {
        self.accumulate(batch, Some((adam, t)))?;
        let cb = 2 * self.prec.bytes() as u64;
        let np = 4 + self.net.n_twiddles() as u64;
        let bytes = self.gpu.read(&self.acc, 2 * np * cb, self.prec.bytes() as u64)?;
        let b = batch.len(self.net.n());
        Ok(from_reals(self.prec, &bytes)[0] / (b as f64 * self.net.bins() as f64))
    }

    /// Adam moments (re/im per parameter) back on the host: (m, v).
    pub fn moments(&self) -> Result<(Vec<C64>, Vec<C64>)> {
        let np = 4 + self.net.n_twiddles();
        let b = self
            .gpu
            .read(&self.moments, 0, (2 * np * 2 * self.prec.bytes()) as u64)?;
        let v = from_reals(self.prec, &b);
        let c: Vec<C64> = v.chunks_exact(2).map(|c| C64::new(c[0], c[1])).collect();
        Ok((
            c.iter().step_by(2).copied().collect(),
            c.iter().skip(1).step_by(2).copied().collect(),
        ))
    }

    /// Replace the Adam moments (the layout [`GpuModel::moments`] reads).
    pub fn set_moments(&self, m: &[C64], v: &[C64]) {
        let inter: Vec<C64> = m.iter().zip(v).flat_map(|(a, b)| [*a, *b]).collect();
        self.gpu
            .queue
            .write_buffer(&self.moments, 0, &complexes(self.prec, &inter));
    }
}
