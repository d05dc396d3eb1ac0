//! Which kernel shape and fused plan run on an adapter: [`Kernel`] (lane, group, fused) and
//! `auto`'s rule, the fused plan for an adapter's limits and type (or a measurement's
//! `FFTLEARN_FUSED_SHAPE`, `FFTLEARN_FUSED_HOIST`), and the line `fftlearn devices` prints for it.

use super::abi::{GROUP, LANE, LANE_MAX_N};
use super::dispatch::DispatchCap;
use super::fused::fused_max_groups;
use super::fused::{self, Plan};
use super::target::Precision;
use crate::error::{Error, Result};
use crate::model::network::Network;

/// The shape of the training kernel. Adding one: an arm here, its name, and its arm in
/// [`GpuModel::with_options`] (the compiler lists every match that must learn it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// One invocation per sample, loops over global memory (shaders/lane.wgsl).
    Lane,
    /// One workgroup of 64 invocations per sample, barriers between stages, every layer in
    /// global memory (shaders/group.wgsl).
    Group,
    /// A team of invocations per sample holding it on chip through every stage, generated
    /// straight-line WGSL (src/backend/gpu/fused.rs).
    Fused,
}

impl Kernel {
    /// Every shape, for conformance loops.
    pub const ALL: [Kernel; 3] = [Kernel::Lane, Kernel::Group, Kernel::Fused];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Lane => "lane",
            Kernel::Group => "group",
            Kernel::Fused => "fused",
        }
    }

    /// The layout file of a chunked shape (every layer in global memory, the per-sample work
    /// in shaders/chunked.wgsl); `None` for a shape built otherwise.
    pub fn chunked_layout(self) -> Option<&'static str> {
        match self {
            Kernel::Lane => Some(LANE),
            Kernel::Group => Some(GROUP),
            Kernel::Fused => None,
        }
    }

    /// The shape `--kernel auto` takes on an adapter at size `n`, and a note when the
    /// preferred one does not fit: `fused` wherever a sample fits the adapter's workgroup
    /// memory (measured fastest on lavapipe and on hardware GPUs, see docs/speed.md), else
    /// `group` on hardware GPUs and `lane` on CPU-type adapters (`group` above
    /// [`LANE_MAX_N`]).
    pub fn auto(
        info: &wgpu::AdapterInfo,
        plan: &std::result::Result<Plan, String>,
        n: usize,
    ) -> (Kernel, Option<String>) {
        match plan {
            Ok(_) => (Kernel::Fused, None),
            Err(why) => {
                let k = if info.device_type == wgpu::DeviceType::Cpu && n <= LANE_MAX_N {
                    Kernel::Lane
                } else {
                    Kernel::Group
                };
                (k, Some(format!("fused does not fit ({why}); using {}", k.name())))
            }
        }
    }
}

impl std::str::FromStr for Kernel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
            Error::input(format!("--kernel '{s}': accepted: auto, {}", names.join(", ")))
        })
    }
}

/// The fused plan for `net` at `prec` on `gpu`, or why it does not fit; `pick` fixes parts of
/// it, the rest is the adapter type's, or the environment's `FFTLEARN_FUSED_SHAPE=BITS,WG`
/// and `FFTLEARN_FUSED_HOIST=on|off` (for measurements).
pub fn fused_plan(
    info: &wgpu::AdapterInfo,
    limits: &wgpu::Limits,
    features: wgpu::Features,
    net: &Network,
    prec: Precision,
    int64: bool,
    pick: FusedPick,
) -> std::result::Result<Plan, String> {
    let FusedPick { shape, hoist, omit } = pick;
    let int64 = int64 && features.contains(wgpu::Features::SHADER_INT64);
    let env = env_shape()?;
    let (bits, min_wg) = shape.or(env).unwrap_or(if info.device_type == wgpu::DeviceType::Cpu {
        fused::cpu_shape(net.log2())
    } else {
        fused::HARDWARE_SHAPE
    });
    let mut plan = Plan::new(net, prec, fused::Fit::of(limits), int64, bits, min_wg)?;
    let cpu_type = info.device_type == wgpu::DeviceType::Cpu;
    if cpu_type {
        plan.cwg = fused::COMBINE_WG.1;
    }
    plan.hoist = match hoist {
        Some(h) => h,
        None => env_hoist()?.unwrap_or(cpu_type),
    };
    plan.omit = omit;
    Ok(plan)
}

/// What a caller fixes of the fused plan; None: the adapter type's (or a measurement's
/// environment variable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FusedPick {
    /// (bits per invocation, least invocations per workgroup).
    pub shape: Option<(u32, u32)>,
    /// Twiddles loaded once per step ([`Plan::hoist`]).
    pub hoist: Option<bool>,
    /// Parts left out for timing ([`Plan::omit`]).
    pub omit: fused::Omit,
}

/// Whether `FFTLEARN_FUSED_HOIST=on|off` sets the fused plan's twiddle hoisting
/// ([`Plan::hoist`]) for measurements, if set; an error naming it if it is neither.
pub(super) fn env_hoist() -> std::result::Result<Option<bool>, String> {
    match std::env::var("FFTLEARN_FUSED_HOIST").as_deref() {
        Ok("on") => Ok(Some(true)),
        Ok("off") => Ok(Some(false)),
        Ok(v) => Err(format!("FFTLEARN_FUSED_HOIST={v}: expected on or off")),
        Err(_) => Ok(None),
    }
}

/// The fused plan shape `FFTLEARN_FUSED_SHAPE=BITS,WG` sets for measurements, if set; an
/// error naming it if it does not parse.
pub(super) fn env_shape() -> std::result::Result<Option<(u32, u32)>, String> {
    match std::env::var("FFTLEARN_FUSED_SHAPE") {
        Ok(v) => parse_shape(&v)
            .map(Some)
            .map_err(|e| format!("FFTLEARN_FUSED_SHAPE={v}: {e}")),
        Err(_) => Ok(None),
    }
}

/// A fused plan shape `BITS,WG`: log2 of the values per invocation (1..=16) and the least
/// invocations per workgroup (1..=1024).
fn parse_shape(v: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || "expected BITS,WG with BITS in 1..=16 and WG in 1..=1024 (e.g. 3,64)".to_string();
    let (a, b) = v.split_once(',').ok_or_else(bad)?;
    let (bits, wg): (u32, u32) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if !(1..=16).contains(&bits) || !(1..=1024).contains(&wg) {
        return Err(bad());
    }
    Ok((bits, wg))
}

/// What `--kernel auto` runs on `adapter` at size `net` and `prec`, with the limits it uses:
/// one line for `fftlearn devices`.
pub fn auto_summary(adapter: &wgpu::Adapter, net: &Network, prec: Precision) -> Result<String> {
    let (info, limits, features) = super::context::caps(adapter)?;
    if prec == Precision::F64 && !features.contains(wgpu::Features::SHADER_F64) {
        return Ok(format!("{}: no SHADER_F64", prec.wgsl()));
    }
    let plan = fused_plan(&info, &limits, features, net, prec, true, FusedPick::default());
    let (kernel, note) = Kernel::auto(&info, &plan, net.n());
    Ok(match (kernel, plan) {
        (Kernel::Fused, Ok(p)) => {
            let groups = fused_max_groups(&limits, net, prec);
            let ty = super::context::dispatch_type(&info)?;
            format!(
                "{}: fused, {} invocations per sample, {} per workgroup, {} B workgroup memory, up to {groups} workgroups per step, dispatches of at most {} samples ({ty:?} adapter)",
                prec.wgsl(),
                p.ts,
                p.wg,
                p.wg_bytes,
                DispatchCap::default_for(ty, net.n()).name()
            )
        }
        (k, _) => format!("{}: {} ({})", prec.wgsl(), k.name(), note.unwrap_or_default()),
    })
}
