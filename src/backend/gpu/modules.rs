//! Every WGSL module the GPU path can build, as source text, and which backends may run it:
//! the fused kernel at every N for each plan shape (the hardware shape and the CPU-type
//! adapters' shape), with int64 Philox on and off, in f32 and f64, within an adapter's limits;
//! the chunked lane and group kernels; and the reduce/Adam module. The translation check
//! (tests/it/translate.rs) sends each one through naga's validator and its SPIR-V, MSL and
//! HLSL writers, so a module that would not translate for a backend is found without that
//! backend's hardware.

use super::build::{chunked_source, fused_source, reduce_source};
use super::choice::Kernel;
use super::fused::{self, Fit, Plan};
use super::target::Precision;
use crate::model::network::Network;

/// One module: what it is, and its source.
#[derive(Clone, Debug)]
pub struct Module {
    /// `fused`, `lane`, `group` or `reduce`, with N, precision, Philox variant and plan.
    pub label: String,
    /// Its precision.
    pub prec: Precision,
    /// Whether it uses native 64-bit integer products (SHADER_INT64).
    pub int64: bool,
    /// The WGSL.
    pub source: String,
}

/// The fused kernel's plan shapes the project builds at log2 N = `l` (log2 radix, least
/// workgroup size, `combine` workgroup size, twiddles hoisted): hardware GPUs' and CPU-type
/// adapters', each also with the other's hoisting (`FFTLEARN_FUSED_HOIST` selects it).
fn shapes(l: u32) -> [(u32, u32, u32, bool); 4] {
    let (hw, cpu) = (fused::HARDWARE_SHAPE, fused::cpu_shape(l));
    [
        (hw.0, hw.1, fused::COMBINE_WG.0, false),
        (hw.0, hw.1, fused::COMBINE_WG.0, true),
        (cpu.0, cpu.1, fused::COMBINE_WG.1, true),
        (cpu.0, cpu.1, fused::COMBINE_WG.1, false),
    ]
}

/// Every module for transform sizes `ns` within the limits `fits`, without repeats (two
/// settings that give the same source are one module).
pub fn all(ns: &[usize], fits: &[Fit]) -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |m: Module| {
        if seen.insert(m.source.clone()) {
            out.push(m);
        }
    };
    for &n in ns {
        let Ok(net) = Network::new(n) else { continue };
        for prec in [Precision::F32, Precision::F64] {
            for int64 in [false, true] {
                for fit in fits {
                    for (bits, wg, cwg, hoist) in shapes(net.log2()) {
                        if let Ok(mut plan) = Plan::new(&net, prec, *fit, int64, bits, wg) {
                            plan.cwg = cwg;
                            plan.hoist = hoist;
                            push(Module {
                                label: format!(
                                    "fused N={n} {} int64={int64} radix=2^{bits} wg>={wg} hoist={hoist} ({} B workgroup memory)",
                                    prec.wgsl(),
                                    plan.wg_bytes
                                ),
                                prec,
                                int64,
                                source: fused_source(&net, prec, &plan),
                            });
                        }
                    }
                }
                for kernel in [Kernel::Lane, Kernel::Group] {
                    push(Module {
                        label: format!("{} N={n} {} int64={int64}", kernel.name(), prec.wgsl()),
                        prec,
                        int64,
                        source: chunked_source(&net, prec, kernel, 64, int64).expect("a chunked shape"),
                    });
                }
                push(Module {
                    label: format!("reduce N={n} {} int64={int64}", prec.wgsl()),
                    prec,
                    int64,
                    source: reduce_source(&net, prec, 1, int64),
                });
            }
        }
    }
    out
}
