//! Where the forward and backward passes run: the exact f64 CPU path ([`cpu`]) and the WGSL
//! GPU path ([`gpu`]); and [`choose`], the one place `--device auto` falls back from a
//! hardware GPU to the CPU (the seed's `cuda if available else cpu`).

pub mod cpu;
pub mod gpu;

use crate::error::{Error, Result};
use crate::given::Given;
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
        fused_hoist: None,
        fused_omit: Default::default(),
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

/// The models of the adapters a run spreads its work over (`adapters`, as [`open_multi`]
/// takes them), each adapter's `[device]` line written to `log`: not with one `adapter`
/// named too, nor on the CPU path.
pub fn open_adapters(
    c: &GpuChoice,
    adapters: &[String],
    device: Device,
    p: &Params,
    g: &Given,
    log: &mut dyn std::io::Write,
) -> Result<gpu::multi::MultiGpu> {
    if c.adapter.is_some() {
        return Err(Error::input(format!(
            "{} and {} exclude each other: list every adapter in {}",
            g.name("adapters"),
            g.name("adapter"),
            g.name("adapters")
        )));
    }
    if device == Device::Cpu {
        return Err(Error::input(format!(
            "{} runs the GPU path: drop {}",
            g.name("adapters"),
            g.with("device", "cpu")
        )));
    }
    let m = open_multi(c, adapters, p)?;
    for (i, n) in m.names().iter().enumerate() {
        writeln!(log, "[device] adapter {i}: {n}")?;
    }
    Ok(m)
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

/// What [`open_for`] opened: where a run or a measurement computes.
pub enum Opened {
    /// The CPU f64 path.
    Cpu,
    /// One GPU model.
    Gpu(Box<GpuModel>),
    /// Several adapters' models, each taking a part of every batch.
    Multi(gpu::multi::MultiGpu),
}

/// Open what a run asks for: the models of `adapters` where any are named
/// ([`open_adapters`]), else [`choose`]'s pick for `device`. The `[device]` lines go to `log`
/// (the CPU path's own line only with `cpu_line`). Where `auto` took the CPU path, settings of
/// the GPU path that `g` says were given are refused: they would change nothing.
pub fn open_for(
    device: Device,
    c: &GpuChoice,
    adapters: &[String],
    p: &Params,
    g: &Given,
    cpu_line: bool,
    log: &mut dyn std::io::Write,
) -> Result<Opened> {
    if !adapters.is_empty() {
        return Ok(Opened::Multi(open_adapters(c, adapters, device, p, g, log)?));
    }
    let chosen = choose(device, c, p)?;
    for l in chosen.lines() {
        if cpu_line || !l.starts_with("[device] cpu") {
            writeln!(log, "{l}")?;
        }
    }
    Ok(match chosen {
        Chosen::Gpu(m) => Opened::Gpu(m),
        Chosen::Cpu(why) => {
            if why.is_some() {
                g.refuse_gpu_settings(&auto_took_the_cpu(g), true)?;
            }
            Opened::Cpu
        }
    })
}

/// Why the GPU path's settings do nothing where `auto` found no hardware GPU.
pub fn auto_took_the_cpu(g: &Given) -> String {
    format!(
        "{} took the CPU f64 path (no hardware GPU adapter; {} also takes a software one such as lavapipe)",
        g.with("device", "auto"),
        g.with("device", "gpu")
    )
}
