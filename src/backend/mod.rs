//! Where the forward and backward passes run: the exact f64 CPU path ([`cpu`]) and the WGSL
//! GPU path ([`gpu`]); and [`choose`], the one place `--device auto` falls back from a
//! hardware GPU to the CPU (the seed's `cuda if available else cpu`).

pub mod cpu;
pub mod gpu;

use crate::error::{Error, Result};
use crate::model::params::Params;
use gpu::{context, Gpu, GpuModel, Kernel, ModelOptions, Precision};

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A hardware GPU if there is one, else the CPU (the seed's `cuda if available else cpu`).
    Auto,
    /// The exact f64 CPU path.
    Cpu,
    /// The GPU path (software adapters such as lavapipe allowed); an error if none is usable.
    Gpu,
}

impl Device {
    /// Every device choice, in the order `--device` lists them.
    pub const ALL: [Device; 3] = [Device::Auto, Device::Cpu, Device::Gpu];

    /// The name `--device` takes.
    pub fn name(self) -> &'static str {
        match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Device::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::input(format!("device '{s}' is unknown (accepted: auto, cpu, gpu)")))
    }
}

/// Which GPU to use and how (the `--adapter`, `--precision`, `--kernel`, `--chunk`,
/// `--dispatch-cap` flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuChoice {
    /// The adapter whose name contains this (case-insensitive); else the first hardware one.
    pub adapter: Option<String>,
    /// Kernel precision.
    pub precision: Precision,
    /// Kernel shape (`None`: chosen per adapter).
    pub kernel: Option<Kernel>,
    /// Samples per dispatch (`None`: each shape's own).
    pub chunk: Option<usize>,
    /// Most samples per fused dispatch (`None`: by adapter type and N).
    pub dispatch_cap: Option<gpu::DispatchCap>,
}

/// Open the GPU model for `p`: `allow_software` admits software adapters such as lavapipe
/// (an explicit adapter name always does).
pub fn open_model(c: &GpuChoice, p: &Params, allow_software: bool) -> Result<GpuModel> {
    let adapter = context::pick_for(
        c.adapter.as_deref(),
        allow_software || c.adapter.is_some(),
        c.precision == Precision::F64,
    )?;
    open_on(&adapter, c, p)
}

/// The model for `p` on `adapter`, as `c` asks (its `adapter` name aside).
fn open_on(adapter: &wgpu::Adapter, c: &GpuChoice, p: &Params) -> Result<GpuModel> {
    let g = Gpu::open(adapter, c.precision == Precision::F64)?;
    let opts = ModelOptions {
        prec: c.precision,
        kernel: c.kernel,
        chunk: c.chunk,
        int64: true,
        fused_shape: None,
        dispatch_cap: c.dispatch_cap,
    };
    GpuModel::with_options(g, p, opts)
}

/// Models on several adapters for `--adapters`: `all` (every adapter wgpu finds) or names,
/// each matched as `--adapter` matches (a name given twice opens the adapter twice: two
/// devices, as a node's identical GPUs are).
pub fn open_multi(c: &GpuChoice, names: &[String], p: &Params) -> Result<gpu::multi::MultiGpu> {
    if let Some(bad) = names.iter().find(|n| n.trim().is_empty()) {
        return Err(Error::input(format!(
            "--adapters '{}': an empty adapter name (accepted: all, or names, each matched as --adapter matches)",
            names.join(",").replace(bad.as_str(), bad.trim())
        )));
    }
    if names.len() > 1 && names.iter().any(|n| n == "all") {
        return Err(Error::input(format!(
            "--adapters {}: 'all' takes every adapter and no other name (accepted: all, or names)",
            names.join(",")
        )));
    }
    let adapters: Vec<wgpu::Adapter> = if names.len() == 1 && names[0] == "all" {
        let all = context::adapters();
        if all.is_empty() {
            return Err(Error::runtime("--adapters all: no GPU adapter on Vulkan/Metal/DX12"));
        }
        all
    } else {
        names
            .iter()
            .map(|n| context::pick(Some(n), true))
            .collect::<Result<_>>()?
    };
    let models = adapters.iter().map(|a| open_on(a, c, p)).collect::<Result<Vec<_>>>()?;
    gpu::multi::MultiGpu::new(models)
}

/// The `[device]` lines that say what a GPU model runs on.
pub fn gpu_lines(m: &GpuModel) -> Vec<String> {
    let mut v = vec![format!(
        "[device] gpu: {} | precision {} | {}",
        m.gpu().name(),
        m.precision().wgsl(),
        m.describe_shape()
    )];
    if let Some(note) = m.note() {
        v.push(format!("[device] note: {note}"));
    }
    v
}

/// What [`choose`] found.
pub enum Chosen {
    /// The GPU path, on this model.
    Gpu(Box<GpuModel>),
    /// The CPU f64 path; with `--device auto`, the reason no GPU was taken.
    Cpu(Option<String>),
}

impl Chosen {
    /// The `[device]` lines that say what was chosen, and why.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Chosen::Gpu(m) => gpu_lines(m),
            Chosen::Cpu(why) => {
                let mut v = Vec::new();
                if let Some(w) = why {
                    v.push(format!("[device] auto: {w}; using the CPU f64 path"));
                }
                v.push(format!("[device] cpu f64 ({} threads)", rayon::current_num_threads()));
                v
            }
        }
    }
}

/// The device for parameters `p`: `Cpu` is the CPU, `Gpu` any adapter (lavapipe included;
/// an error if none opens), `Auto` a hardware GPU if one opens, else the CPU with the reason.
pub fn choose(device: Device, c: &GpuChoice, p: &Params) -> Result<Chosen> {
    match device {
        Device::Cpu => Ok(Chosen::Cpu(None)),
        Device::Gpu => Ok(Chosen::Gpu(Box::new(open_model(c, p, true)?))),
        Device::Auto => match open_model(c, p, false) {
            Ok(m) => Ok(Chosen::Gpu(Box::new(m))),
            Err(e) => Ok(Chosen::Cpu(Some(format!("no usable hardware GPU ({e})")))),
        },
    }
}
