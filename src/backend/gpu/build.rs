//! Building a model's kernel shapes on a device: the buffers every shape shares, the lane and
//! group machinery (per-chunk activations and per-sample gradients in global memory) and the
//! fused machinery (one partial per workgroup and cell, combined by a fixed tree): modules,
//! pipelines and bind groups. The step that drives them is [`super::model`].

use super::abi;
use super::abi::{CHUNKED, MAX_CHUNK, MAX_HOST_CHUNK, REDUCE};
use super::choice::Kernel;
use super::context::Gpu;
use super::fused::{self, Plan};
use super::target::Precision;
use crate::error::{Error, Result};
use crate::model::network::Network;
use wgpu::util::DeviceExt;

/// The lane/group machinery: per-chunk activations and per-sample gradients in global memory.
pub(super) struct Chunked {
    pub(super) chunk: usize,
    pub(super) train: wgpu::ComputePipeline,
    pub(super) train_bg: wgpu::BindGroup,
    pub(super) reduce: wgpu::ComputePipeline,
    pub(super) reduce_bg: wgpu::BindGroup,
    pub(super) xin: wgpu::Buffer,
    pub(super) tin: wgpu::Buffer,
    pub(super) _keep: Vec<wgpu::Buffer>,
}

/// The fused machinery: one partial per workgroup and cell, combined by a fixed tree.
pub(super) struct FusedRun {
    pub(super) plan: Plan,
    pub(super) train: wgpu::ComputePipeline,
    pub(super) train_bg: wgpu::BindGroup,
    pub(super) combine: wgpu::ComputePipeline,
    pub(super) combine_small: wgpu::ComputePipeline,
    pub(super) combine_bg: wgpu::BindGroup,
    pub(super) combine_small_bg: wgpu::BindGroup,
    pub(super) xin: wgpu::Buffer,
    pub(super) tin: wgpu::Buffer,
    pub(super) max_groups: u32,
    /// Workgroups per cell the partials buffer holds (`max_groups` for a single model).
    pub(super) cell_groups: u32,
    pub(super) host_chunk: usize,
    pub(super) chunk: Option<usize>,
    pub(super) _keep: Vec<wgpu::Buffer>,
}

pub(super) enum Shape {
    Chunked(Chunked),
    Fused(FusedRun),
}

pub(super) fn bind(dev: &wgpu::Device, pl: &wgpu::ComputePipeline, bufs: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
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
}

pub(super) fn pipeline(
    dev: &wgpu::Device,
    m: &wgpu::ShaderModule,
    entry: &str,
    zero_wg: bool,
) -> wgpu::ComputePipeline {
    dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: m,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[],
            zero_initialize_workgroup_memory: zero_wg,
        },
        cache: None,
    })
}

pub(super) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

pub(super) fn buffer(dev: &wgpu::Device, label: &str, size: u64) -> wgpu::Buffer {
    dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(16),
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

pub(super) fn buffer_init(dev: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage: STORAGE,
    })
}

/// Buffers every shape reads.
pub(super) struct Shared<'a> {
    pub(super) job: &'a wgpu::Buffer,
    pub(super) params: &'a wgpu::Buffer,
    pub(super) exact: &'a wgpu::Buffer,
    pub(super) hyper: &'a wgpu::Buffer,
    pub(super) acc: &'a wgpu::Buffer,
    pub(super) table: &'a wgpu::Buffer,
    pub(super) losses: &'a wgpu::Buffer,
}

/// The WGSL of a chunked shape's training module (its layout, then the shared per-sample body)
/// for chunks of `chunk` samples; `None` for a shape that is not chunked.
pub(super) fn chunked_source(
    net: &Network,
    prec: Precision,
    kernel: Kernel,
    chunk: usize,
    int64: bool,
) -> Option<String> {
    let layout = kernel.chunked_layout()?;
    Some(abi::source(net, prec, chunk, int64, &format!("{layout}\n{CHUNKED}")))
}

/// The WGSL of the reduce module (per-sample gradients summed, and Adam).
pub(super) fn reduce_source(net: &Network, prec: Precision, chunk: usize, int64: bool) -> String {
    abi::source(net, prec, chunk, int64, REDUCE)
}

/// The WGSL of the fused kernel of `plan` (and its combine passes).
pub(super) fn fused_source(net: &Network, prec: Precision, plan: &Plan) -> String {
    abi::source(net, prec, 1, plan.int64, &plan.wgsl())
}

pub(super) fn build_chunked(
    gpu: &Gpu,
    net: &Network,
    prec: Precision,
    kernel: Kernel,
    chunk_opt: Option<usize>,
    int64: bool,
    sh: &Shared,
) -> Result<Chunked> {
    let (n, k) = (net.n(), net.bins());
    let np = net.n_params();
    let cb = 2 * prec.bytes() as u64;
    let layers = u64::from(net.log2()) + 2;
    let limit = super::context::binding_limit(&gpu.limits);
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
    if let Some(c) = chunk_opt {
        let bytes = (layers * n as u64 * cb).saturating_mul(c as u64);
        let groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
        // the largest chunk the adapter takes (the default is at most MAX_CHUNK of it)
        let most = ((limit / (layers * n as u64 * cb)) as usize).min(groups);
        if c == 0 || bytes > limit || c > groups {
            return Err(Error::input(format!(
                "--chunk {c}: must be 1..={most} on adapter {}: {c} samples need {} bytes of activations (max_storage_buffer_binding_size / max_buffer_size: {limit} bytes) and {c} workgroups (max_compute_workgroups_per_dimension: {groups})",
                gpu.name(),
                if bytes == u64::MAX { "over 2^64".to_string() } else { bytes.to_string() }
            )));
        }
        chunk = c;
    }
    let dev = &gpu.device;
    let (act, pg, xin, tin) = gpu.scoped("buffer allocation", || {
        (
            buffer(dev, "act", layers * n as u64 * chunk as u64 * cb),
            buffer(dev, "pg", (np + 1) as u64 * chunk as u64 * cb),
            buffer(dev, "xin", (chunk * n) as u64 * prec.bytes() as u64),
            buffer(dev, "tin", (chunk * k) as u64 * cb),
        )
    })?;
    let train_src = chunked_source(net, prec, kernel, chunk, int64)
        .ok_or_else(|| Error::runtime(format!("kernel {} is not a chunked shape", kernel.name())))?;
    let (train, reduce) = gpu.scoped("shader compilation", || {
        let module = |label: &str, src: String| {
            dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            })
        };
        let tm = module(kernel.name(), train_src);
        let rm = module("reduce", reduce_source(net, prec, chunk, int64));
        (pipeline(dev, &tm, "train", true), pipeline(dev, &rm, "reduce", true))
    })?;
    let (train_bg, reduce_bg) = gpu.scoped("bind groups", || {
        (
            bind(
                dev,
                &train,
                &[
                    (0, sh.job),
                    (1, sh.params),
                    (2, sh.exact),
                    (3, &act),
                    (4, &pg),
                    (5, &xin),
                    (6, &tin),
                    (7, sh.hyper),
                ],
            ),
            bind(dev, &reduce, &[(0, sh.job), (1, &pg), (2, sh.acc)]),
        )
    })?;
    Ok(Chunked {
        chunk,
        train,
        train_bg,
        reduce,
        reduce_bg,
        xin,
        tin,
        _keep: vec![act, pg, sh.exact.clone()],
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn build_fused(
    gpu: &Gpu,
    net: &Network,
    prec: Precision,
    plan: Plan,
    chunk_opt: Option<usize>,
    sh: &Shared,
    cap: usize,
    pack_batch: Option<usize>,
) -> Result<FusedRun> {
    let (n, k) = (net.n(), net.bins());
    let np1 = (net.n_params() + 1) as u64;
    let cb = 2 * prec.bytes() as u64;
    let rb = prec.bytes() as u64;
    let limit = super::context::binding_limit(&gpu.limits);
    let max_groups = fused::fused_max_groups(&gpu.limits, net, prec);
    if max_groups == 0 || np1 > gpu.limits.max_compute_workgroups_per_dimension as u64 {
        return Err(Error::runtime(format!(
            "--kernel fused: N = {n} needs {np1} combine workgroups and {} bytes per partial, over adapter {}'s limits",
            np1 * cb,
            gpu.name()
        )));
    }
    let host_chunk = (MAX_HOST_CHUNK as u64)
        .min(limit / (n as u64 * rb))
        .min(limit / (k as u64 * cb))
        .max(1) as usize;
    if let Some(c) = chunk_opt {
        if c == 0 || c > host_chunk {
            return Err(Error::input(format!(
                "--chunk {c}: must be 1..={host_chunk} with --kernel fused on adapter {} (host data of {c} samples needs {} bytes, max_storage_buffer_binding_size / max_buffer_size: {limit} bytes)",
                gpu.name(),
                c as u64 * n as u64 * rb
            )));
        }
    }
    let xin_len = chunk_opt.unwrap_or(host_chunk);
    // a pack's partials hold the workgroups of its batch's largest dispatch per cell
    let cell_groups = match pack_batch {
        Some(b) => plan.shape(b.min(chunk_opt.unwrap_or(b)).max(1), max_groups).1,
        None => max_groups,
    };
    let dev = &gpu.device;
    let table = plan.gather_table();
    let (partial, xin, tin, gather) = gpu.scoped("buffer allocation", || {
        (
            buffer(dev, "partial", cap as u64 * cell_groups as u64 * np1 * cb),
            buffer(dev, "xin", xin_len as u64 * n as u64 * rb),
            buffer(dev, "tin", xin_len as u64 * k as u64 * cb),
            buffer_init(dev, "gather", bytemuck::cast_slice(&table)),
        )
    })?;
    let src = fused_source(net, prec, &plan);
    let (train, combine, combine_small) = gpu.scoped("shader compilation (fused)", || {
        // SAFETY: every index the generated kernel forms is in range by construction (the
        // plan's layouts are bijections onto 0..N, sample indices are clamped to the dispatch,
        // partials are indexed below groups <= max_groups, for which the buffer is sized);
        // tests/gpu.rs checks the results against the f64 CPU path at every supported shape.
        let m = unsafe {
            dev.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some("fused"),
                    source: wgpu::ShaderSource::Wgsl(src.as_str().into()),
                },
                wgpu::ShaderRuntimeChecks::unchecked(),
            )
        };
        (
            pipeline(dev, &m, "train_fused", false),
            pipeline(dev, &m, "combine", false),
            pipeline(dev, &m, "combine_small", false),
        )
    })?;
    let mut entries = vec![
        (0, sh.job),
        (1, sh.params),
        (2, sh.exact),
        (3, &partial),
        (4, &xin),
        (5, &tin),
        (6, sh.hyper),
    ];
    entries.push((7, &gather));
    entries.push((9, sh.table));
    let (train_bg, combine_bg, combine_small_bg) = gpu.scoped("bind groups", || {
        let c = [(0, sh.job), (3, &partial), (8, sh.acc), (9, sh.table), (10, sh.losses)];
        (
            bind(dev, &train, &entries),
            bind(dev, &combine, &c),
            bind(dev, &combine_small, &c),
        )
    })?;
    Ok(FusedRun {
        plan,
        train,
        train_bg,
        combine,
        combine_small,
        combine_bg,
        combine_small_bg,
        xin,
        tin,
        max_groups,
        cell_groups,
        host_chunk,
        chunk: chunk_opt,
        _keep: vec![partial, gather, sh.exact.clone()],
    })
}
