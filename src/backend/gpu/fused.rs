//! The `fused` kernel shape: each sample stays on chip from its first random number to its
//! last gradient term. This module owns the plan (which invocation holds which values in which
//! pass), the gather table that turns per-invocation gradient accumulators into one partial per
//! workgroup, and the sizes that come from the adapter's limits; `fused_wgsl.rs` generates the
//! straight-line WGSL from the plan.
//!
//! The network, rewritten in place. Store the layer-s values of the seed's network at the
//! "physical" index p whose top s+1 bits are the row index reversed and whose low bits are the
//! column. Then stage 0 (M) pairs p and p + N/2 and every twiddle stage s pairs p and
//! p + 2^(L-1-s) in place (a decimation-in-frequency FFT): bit L-1-s is consumed, twiddle
//! `i = bitrev_s(p >> (L-s))` is used, and output bin r ends at p = bitrev_L(r). Layer 0 is
//! exactly the seed's (2, N/2) layout, so nothing is permuted on the way in.
//!
//! The plan. A team of TS = N/R invocations owns one sample, R = 2^r values each (r = 3, or
//! 2 at N = 4). The L = log2 N stage bits are cut into passes of r bits from the top; in pass
//! p an invocation owns the R values whose index varies in the pass's r-bit window and agrees
//! with its own id on the other bits, so every butterfly of the pass is in its registers.
//! Between passes the values go through workgroup memory (two alternating buffers where they
//! fit, so one barrier per exchange; a bank-spreading XOR swizzle). Per sample: Philox and
//! Box-Muller for x (one exchange), the exact forward for the target (never leaves registers:
//! the target of each bin is computed by the invocation that later holds that bin's output),
//! the learned forward keeping each pass's input in registers, the loss and its adjoint in
//! registers, and the backward pass by pass, recomputing inside a pass from its input.
//!
//! Gradients: each invocation accumulates its butterflies' twiddle terms across the team's
//! samples in registers (a fixed slot per (stage, twiddle) it touches). After the sample loop,
//! one round per pass writes the slots to workgroup memory and each parameter's contributors
//! are summed in a fixed order (the gather table, built here on the host), giving one partial
//! per workgroup; `combine` then sums the partials of every parameter with a fixed tree. No
//! atomics anywhere, and the assignment of samples to workgroups depends only on the batch
//! size and the plan: a step is bit-identical run to run on one adapter.

use super::target::Precision;
use crate::model::network::{stage_offset, Network, M_ENTRIES};
use crate::model::params::exact_twiddles;
use num_complex::Complex64 as C64;

/// Largest workgroup count of one dispatch (the partials buffer is sized for it).
pub const MAX_GROUPS: u32 = 16_384;
/// Fewest samples a team loops over before more workgroups are used.
pub const MIN_SAMPLES_PER_TEAM: u32 = 32;
/// (log2 of the register-pass radix, least invocations per workgroup), chosen from
/// measurements (docs/speed.md): hardware GPUs run radix 8 in workgroups of 64 (few
/// values per invocation, all in registers; on an H100 radix 4 and 16 and workgroups of 128
/// were slower); CPU-type adapters such as lavapipe run radix 32 in small workgroups (16
/// invocations at N = 512): llvmpipe spills every live value at each barrier, so fewer,
/// larger passes win there.
pub const HARDWARE_SHAPE: (u32, u32) = (3, 64);
/// See [`HARDWARE_SHAPE`].
pub const CPU_SHAPE: (u32, u32) = (5, 8);
/// Largest log2 N a CPU-type adapter runs in one pass (one invocation per sample, no
/// barrier): at N = 64 that is 2.1x the two-pass plan's samples/s in a pack on lavapipe
/// (`FFTLEARN_FUSED_SHAPE=6,8` against `5,8`, `bench --n 64 --batches 16 --cells 64`) and
/// compiles in seconds; at N = 128 and above a one-pass kernel takes lavapipe 11 s to minutes
/// to compile.
pub const CPU_ONE_PASS_MAX_LOG2: u32 = 6;

/// The plan shape of a CPU-type adapter at log2 N = `l`: [`CPU_SHAPE`], in one pass up to
/// [`CPU_ONE_PASS_MAX_LOG2`].
pub fn cpu_shape(l: u32) -> (u32, u32) {
    if l <= CPU_ONE_PASS_MAX_LOG2 {
        (l.max(CPU_SHAPE.0), CPU_SHAPE.1)
    } else {
        CPU_SHAPE
    }
}
/// The reduction of a step's partials, `combine` (a fixed tree per parameter and cell) and
/// `combine_small` (workgroup order, for at most [`SMALL_COMBINE`] workgroups per cell), appended
/// to every fused module.
const COMBINE: &str = include_str!("../../../shaders/combine.wgsl");

/// Most workgroups per cell whose partials `combine_small` sums (above it, `combine`'s tree).
pub const SMALL_COMBINE: u32 = 16;

/// Invocations of a `combine` workgroup (a power of two) on hardware GPUs and on CPU-type
/// adapters, where each of them costs a coroutine switch per barrier of the tree.
pub const COMBINE_WG: (u32, u32) = (256, 16);

/// One register pass: the r-bit window an invocation owns and the stages done in it.
#[derive(Clone, Debug)]
struct Pass {
    /// Lowest bit of the owned window.
    lo: u32,
    /// Stages (0 = M, s = twiddle stage s), in the order they run.
    stages: Vec<u32>,
}

/// Everything the fused kernel's shape depends on, for one N, precision and adapter.
#[derive(Clone, Debug)]
pub struct Plan {
    l: u32,
    r: u32,
    /// Invocations per team (per sample).
    pub ts: u32,
    /// Teams per workgroup.
    pub teams: u32,
    /// Invocations per workgroup.
    pub wg: u32,
    /// Exchange buffers per team (2: one barrier per exchange; 1: two).
    pub nbuf: u32,
    /// Complex values in the workgroup array (exchanges and reductions).
    pub wgm: u32,
    /// Bytes of workgroup memory the kernel uses.
    pub wg_bytes: u64,
    /// Invocations of a `combine` workgroup ([`COMBINE_WG`]).
    pub cwg: u32,
    passes: Vec<Pass>,
    rounds: Vec<Round>,
    /// Whether Philox uses native 64-bit products (SHADER_INT64).
    pub int64: bool,
    /// Whether each invocation loads its twiddles once per step, before the sample loop,
    /// rather than at each use: on CPU-type adapters (lavapipe) that is 1.5-1.6x the samples/s
    /// at N = 512 (docs/speed.md), since every load there is a gather; on hardware GPUs the
    /// held twiddles would add registers to ~170 live values, so they load at each use.
    pub hoist: bool,
    /// Parts of the kernel left out, for timing them by removal (`bench --parts`): never set
    /// for a run, whose results it would make wrong.
    pub omit: Omit,
}

/// Parts of the fused kernel a timing plan leaves out ([`Plan::omit`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Omit {
    /// The exact forward that makes the targets (the target becomes the input).
    pub target: bool,
    /// The backward passes (each gradient slot adds an output adjoint instead).
    pub backward: bool,
}

/// One reduction round after the sample loop: the slots of one pass written to workgroup
/// memory, then every parameter they hold summed over its contributors.
#[derive(Clone, Debug)]
struct Round {
    /// (pass, first slot, end slot); None: the loss (and the parameters nothing touches).
    slots: Option<(usize, usize, usize)>,
    /// (parameter, positions of its terms in workgroup memory, in a fixed order).
    entries: Vec<(u32, Vec<u32>)>,
}

/// The limits a plan must respect.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    /// max_compute_workgroup_storage_size.
    pub wg_storage: u32,
    /// max_compute_invocations_per_workgroup (and size x).
    pub invocations: u32,
}

impl Fit {
    /// From wgpu limits.
    pub fn of(l: &wgpu::Limits) -> Fit {
        Fit {
            wg_storage: l.max_compute_workgroup_storage_size,
            invocations: l
                .max_compute_invocations_per_workgroup
                .min(l.max_compute_workgroup_size_x),
        }
    }
}

fn rev(v: u32, bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        v.reverse_bits() >> (32 - bits)
    }
}

impl Plan {
    /// The plan for `net` at `prec` within `fit`, or why the fused shape cannot hold a sample
    /// on this adapter. `bits`: log2 of the values each invocation holds (radix 2^bits register
    /// passes; capped at log2 N); `min_wg`: invocations per workgroup to reach with several
    /// teams.
    pub fn new(net: &Network, prec: Precision, fit: Fit, int64: bool, bits: u32, min_wg: u32) -> Result<Plan, String> {
        let l = net.log2();
        let n = net.n() as u32;
        let r = l.min(bits.max(2));
        let ts = 1u32 << (l - r);
        let teams = (min_wg / ts).max(1);
        let wg = ts * teams;
        let mut passes = Vec::new();
        let mut hi = l as i64 - 1;
        while hi >= 0 {
            let lo_stage = (hi + 1 - r as i64).max(0) as u32;
            let lo = lo_stage.min(l - r);
            let stages = (lo_stage..=hi as u32).rev().map(|b| l - 1 - b).collect();
            passes.push(Pass { lo, stages });
            hi = lo_stage as i64 - 1;
        }
        let rb = prec.bytes() as u64;
        if wg > fit.invocations {
            return Err(format!(
                "N = {n} needs {wg} invocations per workgroup, over the adapter's {}",
                fit.invocations
            ));
        }
        let most_slots = passes.iter().map(|p| slots_of(l, r, p).len()).max().unwrap_or(1) as u32;
        // reals per workgroup array the adapter allows, in whole rows of `wg`
        let allowed = (fit.wg_storage as u64 / (2 * rb)) as u32 / wg * wg;
        let size = |nbuf: u32| {
            let exch = teams * nbuf * n;
            exch.max(256).max((most_slots * wg).min(allowed.max(wg)))
        };
        let mut pick = None;
        for nbuf in if passes.len() == 1 { vec![0] } else { vec![2, 1] } {
            let wgm = size(nbuf);
            if 2 * wgm as u64 * rb <= fit.wg_storage as u64 {
                pick = Some((nbuf, wgm));
                break;
            }
        }
        let Some((nbuf, wgm)) = pick else {
            return Err(format!(
                "N = {n} at {} needs {} bytes of workgroup memory per sample, over the adapter's {} (max_compute_workgroup_storage_size)",
                prec.wgsl(),
                2 * size(1) as u64 * rb,
                fit.wg_storage
            ));
        };
        let mut plan = Plan {
            l,
            r,
            ts,
            teams,
            wg,
            nbuf,
            wgm,
            wg_bytes: 2 * wgm as u64 * rb,
            cwg: COMBINE_WG.0,
            passes,
            rounds: Vec::new(),
            int64,
            hoist: false,
            omit: Omit::default(),
        };
        plan.rounds = plan.make_rounds((wgm / wg).min(most_slots).max(1) as usize);
        Ok(plan)
    }

    /// Cut each pass's slots into rounds of at most `per` slots and list, per round, each
    /// parameter's contributors (a parameter's terms all sit in one slot number, so a round
    /// holds all of them); then the loss round, which also zeroes untouched parameters.
    fn make_rounds(&self, per: usize) -> Vec<Round> {
        let np = (M_ENTRIES as u32) + self.n() - 1;
        let mut touched = vec![false; np as usize];
        let mut rounds = Vec::new();
        for p in 0..self.passes.len() {
            let slots = self.slots(p);
            let mut q0 = 0;
            while q0 < slots.len() {
                let q1 = (q0 + per).min(slots.len());
                let mut lists: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
                for lid in 0..self.wg {
                    let at = self.at_t(p, lid % self.ts);
                    for (q, &(s, c)) in slots.iter().enumerate().take(q1).skip(q0) {
                        let param = if s == 0 {
                            c
                        } else {
                            (M_ENTRIES + stage_offset(s)) as u32 + (rev(at >> (self.l - s), s) | c)
                        };
                        lists.entry(param).or_default().push((q - q0) as u32 * self.wg + lid);
                    }
                }
                for &j in lists.keys() {
                    touched[j as usize] = true;
                }
                rounds.push(Round {
                    slots: Some((p, q0, q1)),
                    entries: lists.into_iter().collect(),
                });
                q0 = q1;
            }
        }
        let mut entries = vec![(np, (0..self.wg).collect())];
        entries.extend((0..np).filter(|&j| !touched[j as usize]).map(|j| (j, Vec::new())));
        rounds.push(Round { slots: None, entries });
        rounds
    }

    fn n(&self) -> u32 {
        1 << self.l
    }

    fn rr(&self) -> u32 {
        1 << self.r
    }

    /// The twiddle-index bits that value `k` of stage `s` in pass `p` fixes ([`tw_col`]); an
    /// invocation's `tb{p}_{s}` supplies the rest.
    fn tw_col(&self, p: usize, s: u32, k: u32) -> u32 {
        tw_col(self.l, self.passes[p].lo, s, k)
    }

    /// The index of value k of invocation t in pass p, split as (t part, k part).
    fn at_k(&self, p: usize, k: u32) -> u32 {
        k << self.passes[p].lo
    }

    fn at_t(&self, p: usize, t: u32) -> u32 {
        let lo = self.passes[p].lo;
        (t & ((1 << lo) - 1)) | ((t >> lo) << (lo + self.r))
    }

    /// Parameter slots of pass p for one invocation: (stage, twiddle index constant part).
    /// Stage 0 has four slots (dM[r][c] at 2r + c), encoded as (0, 2r + c).
    fn slots(&self, p: usize) -> Vec<(u32, u32)> {
        slots_of(self.l, self.r, &self.passes[p])
    }

    /// Samples per team and workgroups for a dispatch of `count` samples.
    pub fn shape(&self, count: usize, max_groups: u32) -> (u32, u32) {
        let per_wg_min = (self.teams * MIN_SAMPLES_PER_TEAM) as usize;
        let groups = count.div_ceil(per_wg_min).clamp(1, max_groups as usize) as u32;
        let spt = count.div_ceil((groups * self.teams) as usize) as u32;
        let groups = (count as u32).div_ceil(spt * self.teams);
        (spt, groups)
    }

    /// The gather table: per round the range of its entries, the entries (parameter, first
    /// and end position index), then the positions; offsets GE and GP are emitted as WGSL
    /// constants.
    pub fn gather_table(&self) -> Vec<u32> {
        let (mut offs, mut ents, mut pos): (Vec<u32>, Vec<u32>, Vec<u32>) = (vec![0], Vec::new(), Vec::new());
        for r in &self.rounds {
            for (j, list) in &r.entries {
                ents.extend([*j, pos.len() as u32, (pos.len() + list.len()) as u32]);
                pos.extend(list);
            }
            offs.push((ents.len() / 3) as u32);
        }
        let mut out = offs;
        out.extend(ents);
        out.extend(pos);
        out
    }

    fn table_offsets(&self) -> (usize, usize) {
        let ge = self.rounds.len() + 1;
        let entries: usize = self.rounds.iter().map(|r| r.entries.len()).sum();
        (ge, ge + 3 * entries)
    }

    /// The fused module's WGSL body (after the common header): `train_fused` and `combine`.
    pub fn wgsl(&self) -> String {
        wgsl::generate(self)
    }
}

/// The twiddle-index bits of stage `s` that value `k` of a pass whose window starts at bit
/// `lo` (of `l`) fixes: stage s uses twiddle `bitrev_s(p >> (l - s))` of the physical index p.
fn tw_col(l: u32, lo: u32, s: u32, k: u32) -> u32 {
    rev((k << lo) >> (l - s), s)
}

fn slots_of(l: u32, r: u32, pass: &Pass) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for &s in &pass.stages {
        if s == 0 {
            v.extend((0..4).map(|c| (0, c)));
            continue;
        }
        let mut cs: Vec<u32> = (0..1u32 << r).map(|k| tw_col(l, pass.lo, s, k)).collect();
        cs.sort_unstable();
        cs.dedup();
        v.extend(cs.into_iter().map(|c| (s, c)));
    }
    v
}

#[path = "fused_wgsl.rs"]
mod wgsl;

/// Most workgroups of one fused dispatch: [`MAX_GROUPS`], the dispatch limit, and the
/// partials (one per parameter and the loss per workgroup) within one binding.
pub fn fused_max_groups(limits: &wgpu::Limits, net: &Network, prec: Precision) -> u32 {
    let np1 = (net.n_params() + 1) as u64;
    (MAX_GROUPS as u64)
        .min(limits.max_compute_workgroups_per_dimension as u64)
        .min(super::context::binding_limit(limits) / (np1 * 2 * prec.bytes() as u64)) as u32
}

#[cfg(test)]
#[path = "fused_tests.rs"]
mod tests;
