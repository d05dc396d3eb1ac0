//! Opening the GPU for a command: one model (`--adapter`, or the pick of `--device`) or the
//! models of `--adapters`, each adapter's `[device]` line printed.

use crate::cli::args;
use crate::cli::out::say;
use fftlearn::backend::gpu;
use fftlearn::backend::{self as be, Device};
use fftlearn::error::{Error, Result};
use fftlearn::model::params::Params;

/// The models of `--adapters` (with the GPU path, without `--adapter`), each adapter's line
/// printed.
pub fn open_adapters(
    a: &args::GpuArgs,
    choice: &be::GpuChoice,
    device: Device,
    p: &Params,
) -> Result<gpu::multi::MultiGpu> {
    if a.adapter.is_some() {
        return Err(Error::input(
            "--adapters and --adapter exclude each other: list every adapter in --adapters",
        ));
    }
    if device == Device::Cpu {
        return Err(Error::input("--adapters runs the GPU path: drop --device cpu"));
    }
    let m = be::open_multi(choice, &a.adapters, p)?;
    for (i, n) in m.names().iter().enumerate() {
        say!("[device] adapter {i}: {n}");
    }
    Ok(m)
}

/// Open the GPU model: `allow_software` admits software adapters such as lavapipe.
pub fn open_model(a: &args::GpuArgs, p: &Params, allow_software: bool) -> Result<gpu::GpuModel> {
    let m = be::open_model(&a.choice(), p, allow_software)?;
    for l in be::gpu_lines(&m) {
        say!("{l}");
    }
    Ok(m)
}

/// The GPU model `device` chooses (its `[device]` lines printed; None on the CPU path), or
/// with `--adapters` the models of those adapters.
pub fn open_for(
    a: &args::GpuArgs,
    device: Device,
    p: &Params,
) -> Result<(Option<gpu::GpuModel>, Option<gpu::multi::MultiGpu>)> {
    if !a.adapters.is_empty() {
        return Ok((None, Some(open_adapters(a, &a.choice(), device, p)?)));
    }
    let chosen = be::choose(device, &a.choice(), p)?;
    for l in chosen.lines() {
        say!("{l}");
    }
    Ok(match chosen {
        be::Chosen::Gpu(m) => (Some(*m), None),
        be::Chosen::Cpu(_) => {
            refuse_gpu_flags_on_the_cpu_path()?;
            (None, None)
        }
    })
}

/// Flags that set the GPU path, given to a run that `--device auto` put on the CPU path (no
/// hardware GPU adapter), are refused, naming them: they would change nothing.
pub fn refuse_gpu_flags_on_the_cpu_path() -> Result<()> {
    let set = args::given_of(&args::GPU_FLAGS);
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{} set the GPU path, but --device auto took the CPU f64 path (no hardware GPU adapter; --device gpu also takes a software one such as lavapipe); drop them or use --device gpu",
        set.join(", ")
    )))
}
