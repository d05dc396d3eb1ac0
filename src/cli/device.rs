//! Opening the GPU for a command: one model (`--adapter`, or the pick of `--device`) or the
//! models of `--adapters`, each adapter's `[device]` line printed.

use crate::cli::args;
use crate::cli::out::{self, say};
use fftlearn::backend::gpu;
use fftlearn::backend::{self as be, Device};
use fftlearn::error::Result;
use fftlearn::model::params::Params;

/// The models of `--adapters` (with the GPU path, without `--adapter`), each adapter's line
/// printed.
pub fn open_adapters(
    a: &args::GpuArgs,
    choice: &be::GpuChoice,
    device: Device,
    p: &Params,
) -> Result<gpu::multi::MultiGpu> {
    be::open_adapters(choice, &a.adapters, device, p, &args::given_set(), &mut out::Stdout)
}

/// Open the GPU model: `allow_software` admits software adapters such as lavapipe.
pub fn open_model(a: &args::GpuArgs, p: &Params, allow_software: bool) -> Result<gpu::GpuModel> {
    let m = be::open_model(&a.choice(), p, allow_software)?;
    for l in be::gpu_lines(&m) {
        say!("{l}");
    }
    Ok(m)
}
