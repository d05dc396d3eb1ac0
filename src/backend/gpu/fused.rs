//! The `fused` kernel shape: each sample stays on chip from its first random number to its
//! last gradient term. This module owns the plan (which invocation holds which values in which
//! pass), the straight-line WGSL generated from it, the gather table that turns per-invocation
//! gradient accumulators into one partial per workgroup, and the sizes that come from the
//! adapter's limits.
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

use super::context::Precision;
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
        let mut g = Gen {
            plan: self,
            out: String::new(),
            exact: exact_twiddles(&Network::new(self.n() as usize).expect("a plan's N is valid")),
            real: vec![false; self.rr() as usize],
        };
        g.module();
        g.out
    }
}

fn slots_of(l: u32, r: u32, pass: &Pass) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for &s in &pass.stages {
        if s == 0 {
            v.extend((0..4).map(|c| (0, c)));
            continue;
        }
        let mut cs: Vec<u32> = (0..1u32 << r).map(|k| rev((k << pass.lo) >> (l - s), s)).collect();
        cs.sort_unstable();
        cs.dedup();
        v.extend(cs.into_iter().map(|c| (s, c)));
    }
    v
}

struct Gen<'a> {
    plan: &'a Plan,
    out: String,
    /// The exact twiddles (the `exact` buffer's values, in f64), for the stages whose
    /// twiddles are known when the module is generated.
    exact: Vec<C64>,
    /// Per value of the exact forward: whether its imaginary part is known to be zero.
    real: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq)]
enum Src {
    Learned,
    Exact,
}

impl Gen<'_> {
    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    /// The whole module, in the order the kernel runs (preamble, per pass: loads, butterflies,
    /// exchanges, then the backward passes and the gather of the partials). Long on purpose:
    /// the emitted WGSL reads top to bottom as this function does.
    fn module(&mut self) {
        let p = self.plan;
        let (n, rr) = (p.n(), p.rr());
        self.line(format!(
            "// fused: generated by src/backend/gpu/fused.rs for N = {n}: {} pass(es) of radix {rr}, {} invocations per sample, {} sample(s) per workgroup, {} exchange buffer(s)",
            p.passes.len(),
            p.ts,
            p.teams,
            p.nbuf
        ));
        let (ge, gp) = p.table_offsets();
        self.line(format!(
            "const TS: u32 = {}u;\nconst TEAMS: u32 = {}u;\nconst WG: u32 = {}u;\nconst WGM: u32 = {}u;\nconst GE: u32 = {ge}u;\nconst GP: u32 = {gp}u;\nconst CWG: u32 = {}u;",
            p.ts, p.teams, p.wg, p.wgm, p.cwg
        ));
        self.line(
            "@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read> params: array<vec2<R>>;
@group(0) @binding(2) var<storage, read> exact: array<vec2<R>>;
@group(0) @binding(3) var<storage, read_write> partial: array<vec2<R>>;
@group(0) @binding(4) var<storage, read> xin: array<R>;
@group(0) @binding(5) var<storage, read> tin: array<vec2<R>>;
@group(0) @binding(6) var<storage, read> hyper: array<R>;
@group(0) @binding(7) var<storage, read> gather: array<u32>;
@group(0) @binding(8) var<storage, read_write> acc: array<vec2<R>>;
@group(0) @binding(9) var<storage, read> cells: array<vec4<u32>>;
@group(0) @binding(10) var<storage, read_write> losses: array<R>;
var<workgroup> wv: array<vec2<R>, WGM>;

// bit-reversal of the low `bits` bits (bits >= 1)
fn rev(v: u32, bits: u32) -> u32 {
    return reverseBits(v) >> (32u - bits);
}

// spreads the strided exchange patterns over the banks (a bijection on every 32-aligned block)
fn swz(a: u32) -> u32 {
    return a ^ ((a >> 5u) & 7u) ^ (((a >> 6u) & 3u) << 3u);
}

",
        );
        self.line("@compute @workgroup_size(WG)\nfn train_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {");
        self.line("    let tm = lid / TS;\n    let t = lid % TS;\n    let toff = tm * (WGM / TEAMS);\n    let gx = wid.x + job.group0;\n    let y = wid.y + job.row0;\n    let team_base = (gx * TEAMS + tm) * job.spt;");
        // the cell: row y of the step's cell table (src/backend/gpu/abi.rs, CellRow); (gx, y)
        // is the workgroup's place in the step's whole grid, of which a dispatch may be a slice
        self.line("    let cell = cells[y];\n    let pb = cell.x * NP;\n    let pout = y * NP1;");
        self.line("    let scale = hyper[y * HYL + HY_SCALE];\n    let m0 = params[pb];\n    let m1 = params[pb + 1u];\n    let m2 = params[pb + 2u];\n    let m3 = params[pb + 3u];");
        let np = p.passes.len();
        for (pi, pass) in p.passes.iter().enumerate() {
            let lo = pass.lo;
            self.line(format!(
                "    let at{pi} = (t & {}u) | ((t >> {lo}u) << {}u);",
                (1u32 << lo) - 1,
                lo + p.r
            ));
            for &s in &pass.stages {
                if s > 0 {
                    self.line(format!("    let tb{pi}_{s} = rev(at{pi} >> {}u, {s}u);", p.l - s));
                }
            }
        }
        let last = np - 1;
        for k in 0..rr {
            self.line(format!(
                "    let inb{k} = rev(at{last} | {}u, LOG2) <= H;",
                p.at_k(last, k)
            ));
            self.line(format!(
                "    let tbin{k} = min(rev(at{last} | {}u, LOG2), H);",
                p.at_k(last, k)
            ));
        }
        for pi in 0..np {
            for q in 0..p.slots(pi).len() {
                self.line(format!("    var acc{pi}_{q} = vec2<R>(0.0, 0.0);"));
            }
        }
        self.load_twiddles();
        self.line("    var lossacc = R(0.0);");
        self.line("    let key = vec2<u32>(cell.y, cell.z);");
        self.line("    for (var it = 0u; it < job.spt; it = it + 1u) {");
        self.line("        let s = team_base + it;\n        let valid = s < job.count;\n        let sc = select(R(0.0), scale, valid);\n        let sx = min(s, job.count - 1u);");
        // inputs
        for k in 0..rr {
            self.line(format!("        var x{k}: R;"));
        }
        self.line("        if (job.from_host == 1u) {");
        for k in 0..rr {
            self.line(format!("            x{k} = xin[sx * N + (at0 | {}u)];", p.at_k(0, k)));
        }
        self.line("        } else {");
        if p.nbuf == 0 {
            // one invocation per sample: value k is element k, straight from Philox
            for kb in 0..n / 4 {
                self.line(format!(
                    "            {{\n                let r = philox(vec4<u32>({kb}u, job.sample0 + job.base + s, cell.w, job.stream), key);\n                let z0 = box_muller(r.x, r.y);\n                let z1 = box_muller(r.z, r.w);\n                x{} = R(z0.x);\n                x{} = R(z0.y);\n                x{} = R(z1.x);\n                x{} = R(z1.y);\n            }}",
                    4 * kb,
                    4 * kb + 1,
                    4 * kb + 2,
                    4 * kb + 3
                ));
            }
        } else {
            for j in 0..rr / 4 {
                self.line(format!(
                    "            {{\n                let kb = t + {}u;\n                let r = philox(vec4<u32>(kb, job.sample0 + job.base + s, cell.w, job.stream), key);\n                let z0 = box_muller(r.x, r.y);\n                let z1 = box_muller(r.z, r.w);\n                wv[toff + swz(4u * kb)].x = R(z0.x);\n                wv[toff + swz(4u * kb + 1u)].x = R(z0.y);\n                wv[toff + swz(4u * kb + 2u)].x = R(z1.x);\n                wv[toff + swz(4u * kb + 3u)].x = R(z1.y);\n            }}",
                    j * p.ts
                ));
            }
            self.line("            workgroupBarrier();");
            for k in 0..rr {
                self.line(format!("            x{k} = wv[toff + swz(at0 | {}u)].x;", p.at_k(0, k)));
            }
            if p.nbuf == 1 {
                self.line("            workgroupBarrier();");
            }
        }
        self.line("        }");
        // targets
        for k in 0..rr {
            self.line(format!("        var tg{k}: vec2<R>;"));
        }
        self.line("        if (job.host_target == 1u) {");
        for k in 0..rr {
            self.line(format!("            tg{k} = tin[sx * K + tbin{k}];"));
        }
        self.line("        } else {");
        let mut buf = 1u32;
        // the binding stays in the layout where every exact twiddle is a constant
        self.line("            _ = exact[0u];");
        if p.omit.target {
            for k in 0..rr {
                self.line(format!("            tg{k} = vec2<R>(x{k}, R(0.0));"));
            }
        } else {
            self.forward_all(Src::Exact, "e", &mut buf, "            ");
            for k in 0..rr {
                self.line(format!("            tg{k} = e{last}_{k};"));
            }
        }
        self.line("        }");
        // learned forward (its first exchange must use the other buffer than the exact
        // forward's last; with host targets the exact forward is skipped, and the previous
        // iteration's closing barrier makes either buffer safe)
        self.forward_all(Src::Learned, "f", &mut buf, "        ");
        // loss and adjoint
        self.line("        var l = R(0.0);");
        for k in 0..rr {
            self.line(format!(
                "        var g{k}: vec2<R>;\n        {{\n            let d = f{last}_{k} - tg{k};\n            l = l + select(R(0.0), dot(d, d), inb{k});\n            g{k} = select(vec2<R>(0.0, 0.0), sc * d, inb{k});\n        }}"
            ));
        }
        self.line("        lossacc = lossacc + select(R(0.0), l, valid);");
        // backward
        for pi in (0..np).rev() {
            if p.omit.backward {
                for q in 0..p.slots(pi).len() {
                    self.line(format!("        acc{pi}_{q} = acc{pi}_{q} + g{};", q as u32 % rr));
                }
                continue;
            }
            self.backward_pass(pi, "        ");
            if pi > 0 {
                self.exchange(pi, pi - 1, "g", "g", false, buf, "        ");
                buf ^= 1;
            }
        }
        if p.nbuf > 0 {
            self.line("        workgroupBarrier();");
        }
        self.line("    }");
        // reduction rounds
        for (ri, round) in p.rounds.iter().enumerate() {
            self.line("    workgroupBarrier();");
            match round.slots {
                Some((pi, q0, q1)) => {
                    for q in q0..q1 {
                        let at = (q - q0) as u32 * p.wg;
                        self.line(format!("    wv[{at}u + lid] = acc{pi}_{q};"));
                    }
                }
                None => self.line("    wv[lid] = vec2<R>(lossacc, R(0.0));"),
            }
            self.line(format!(
                "    workgroupBarrier();
    for (var e = gather[{ri}u] + lid; e < gather[{}u]; e = e + WG) {{
        let j = gather[GE + 3u * e];
        var sv = vec2<R>(0.0, 0.0);
        for (var q = gather[GE + 3u * e + 1u]; q < gather[GE + 3u * e + 2u]; q = q + 1u) {{
            sv = sv + wv[gather[GP + q]];
        }}
        partial[(pout + j) * job.groups + gx] = sv;
    }}",
                ri + 1
            ));
        }
        self.line("}");
        self.line(COMBINE);
    }

    /// Exchange values held in pass `from`'s layout into pass `to`'s layout.
    #[allow(clippy::too_many_arguments)]
    fn exchange(&mut self, from: usize, to: usize, src: &str, dst: &str, declare: bool, buf: u32, ind: &str) {
        let p = self.plan;
        let off = if p.nbuf == 2 { buf * p.n() } else { 0 };
        for k in 0..p.rr() {
            self.line(format!(
                "{ind}wv[toff + {off}u + swz(at{from} | {}u)] = {src}{k};",
                p.at_k(from, k)
            ));
        }
        self.line(format!("{ind}workgroupBarrier();"));
        for k in 0..p.rr() {
            let idx = format!("toff + {off}u + swz(at{to} | {}u)", p.at_k(to, k));
            if declare {
                self.line(format!("{ind}let {dst}{k} = wv[{idx}];"));
            } else {
                self.line(format!("{ind}{dst}{k} = wv[{idx}];"));
            }
        }
        if p.nbuf == 1 {
            self.line(format!("{ind}workgroupBarrier();"));
        }
    }

    /// The twiddle of pair `k` of stage `s` in pass `pi`: the variable it was loaded into
    /// before the sample loop ([`Plan::hoist`]), else its load.
    fn twiddle(&self, src: Src, pi: usize, s: u32, k: u32) -> String {
        let p = self.plan;
        let c = rev((k << p.passes[pi].lo) >> (p.l - s), s);
        match (src, p.hoist) {
            (Src::Learned, true) => format!("tl{pi}_{s}_{c}"),
            (Src::Exact, true) => format!("te{pi}_{s}_{c}"),
            (Src::Learned, false) => format!("params[pb + {}u + (tb{pi}_{s} | {c}u)]", M_ENTRIES + stage_offset(s)),
            (Src::Exact, false) => format!("exact[{}u + (tb{pi}_{s} | {c}u)]", stage_offset(s)),
        }
    }

    /// With [`Plan::hoist`]: load every twiddle an invocation uses once, before the sample
    /// loop (the parameters do not change within a step): the learned ones, and the exact
    /// ones not fixed at generation.
    fn load_twiddles(&mut self) {
        let p = self.plan;
        if !p.hoist {
            return;
        }
        for (pi, pass) in p.passes.iter().enumerate() {
            for &s in pass.stages.iter().filter(|&&s| s > 0) {
                let mut cs: Vec<u32> = self
                    .pairs(pi, s)
                    .iter()
                    .map(|&(k, _)| rev((k << pass.lo) >> (p.l - s), s))
                    .collect();
                cs.sort_unstable();
                cs.dedup();
                for c in cs {
                    self.line(format!(
                        "    let tl{pi}_{s}_{c} = params[pb + {}u + (tb{pi}_{s} | {c}u)];",
                        M_ENTRIES + stage_offset(s)
                    ));
                    if !self.twiddles_fixed(pi, s) {
                        self.line(format!(
                            "    let te{pi}_{s}_{c} = exact[{}u + (tb{pi}_{s} | {c}u)];",
                            stage_offset(s)
                        ));
                    }
                }
            }
        }
    }

    /// Pairs (k0, k1) of stage s in pass pi: k1 = k0 with the stage's bit set.
    fn pairs(&self, pi: usize, s: u32) -> Vec<(u32, u32)> {
        let p = self.plan;
        let bit = p.l - 1 - s - p.passes[pi].lo;
        (0..p.rr())
            .filter(|k| k & (1 << bit) == 0)
            .map(|k| (k, k | (1 << bit)))
            .collect()
    }

    /// Whether stage `s`'s twiddles in pass `pi` are the same for every invocation (known when
    /// the module is generated): in the first pass, whose window is the top bits, an
    /// invocation's own bits lie below the stage's twiddle index, so `tb0_s` is 0.
    fn twiddles_fixed(&self, pi: usize, s: u32) -> bool {
        pi == 0 && self.plan.passes[0].lo + s <= self.plan.l
    }

    /// The product `w * {v}{k1}` of the exact forward's stage `s` (fixed twiddles) as WGSL,
    /// with the multiplications by 1, -1, i and -i and by a known-zero imaginary part left
    /// out (the values are those of the `cmul` with the buffer's twiddle, but for the sign of
    /// a zero), and whether it is real.
    fn fixed_product(&self, pi: usize, s: u32, k0: u32, x: &str) -> (String, bool) {
        let p = self.plan;
        let c = rev((k0 << p.passes[pi].lo) >> (p.l - s), s);
        let w = self.exact[stage_offset(s) + c as usize];
        let real = self.real[(k0 | (1 << (p.l - 1 - s - p.passes[pi].lo))) as usize];
        let lit = |v: f64| format!("R({v:?})");
        match (w.re, w.im) {
            (1.0, 0.0) => (x.to_string(), real),
            (-1.0, 0.0) => (format!("(-{x})"), real),
            (0.0, -1.0) => (format!("vec2<R>({x}.y, -{x}.x)"), false),
            (0.0, 1.0) => (format!("vec2<R>(-{x}.y, {x}.x)"), false),
            _ if real => (format!("vec2<R>({} * {x}.x, {} * {x}.x)", lit(w.re), lit(w.im)), false),
            _ => (format!("cmul(vec2<R>({}, {}), {x})", lit(w.re), lit(w.im)), false),
        }
    }

    /// Emit one stage on the variables `v{k}` (declared `var`).
    fn stage(&mut self, src: Src, pi: usize, s: u32, v: &str, ind: &str) {
        for (k0, k1) in self.pairs(pi, s) {
            if s == 0 {
                let (a, b) = (format!("x{k0}"), format!("x{k1}"));
                match src {
                    Src::Exact => {
                        self.line(format!(
                            "{ind}{v}{k0} = vec2<R>({a} + {b}, R(0.0));\n{ind}{v}{k1} = vec2<R>({a} - {b}, R(0.0));"
                        ));
                        self.real[k0 as usize] = true;
                        self.real[k1 as usize] = true;
                    }
                    Src::Learned => self.line(format!(
                        "{ind}{v}{k0} = m0 * {a} + m1 * {b};\n{ind}{v}{k1} = m2 * {a} + m3 * {b};"
                    )),
                }
            } else if src == Src::Exact && self.twiddles_fixed(pi, s) {
                let (pr, real) = self.fixed_product(pi, s, k0, &format!("{v}{k1}"));
                let both = real && self.real[k0 as usize];
                self.line(format!(
                    "{ind}{{\n{ind}    let pr = {pr};\n{ind}    let tp = {v}{k0};\n{ind}    {v}{k0} = tp + pr;\n{ind}    {v}{k1} = tp - pr;\n{ind}}}"
                ));
                self.real[k0 as usize] = both;
                self.real[k1 as usize] = both;
            } else {
                let w = self.twiddle(src, pi, s, k0);
                self.line(format!(
                    "{ind}{{\n{ind}    let pr = cmul({w}, {v}{k1});\n{ind}    let tp = {v}{k0};\n{ind}    {v}{k0} = tp + pr;\n{ind}    {v}{k1} = tp - pr;\n{ind}}}"
                ));
            }
        }
    }

    /// `let b{pi}_{j}_{k1} = v{k1}`: the bottom inputs of stage j (the twiddle gradient's
    /// factor); stage 0 needs none (its gradient uses x).
    fn save_inputs(&mut self, pi: usize, j: usize, s: u32, v: &str, ind: &str) {
        if s == 0 {
            return;
        }
        for (_, k1) in self.pairs(pi, s) {
            self.line(format!("{ind}let b{pi}_{j}_{k1} = {v}{k1};"));
        }
    }

    /// The whole forward: pass inputs `{pre}in{p}_{k}` (p >= 1), outputs `{pre}{p}_{k}`.
    fn forward_all(&mut self, src: Src, pre: &str, buf: &mut u32, ind: &str) {
        let p = self.plan;
        let np = p.passes.len();
        for pi in 0..np {
            let v = format!("{pre}{pi}_");
            for k in 0..p.rr() {
                if pi == 0 {
                    self.line(format!("{ind}var {v}{k}: vec2<R>;"));
                } else {
                    self.line(format!("{ind}var {v}{k} = {pre}in{pi}_{k};"));
                }
            }
            // values that came through an exchange are taken as complex
            self.real.iter_mut().for_each(|r| *r = false);
            let stages = p.passes[pi].stages.clone();
            // one pass: the learned forward keeps each stage's inputs for the backward
            let save = src == Src::Learned && np == 1;
            for (j, s) in stages.into_iter().enumerate() {
                if save {
                    self.save_inputs(pi, j, s, &v, ind);
                }
                self.stage(src, pi, s, &v, ind);
            }
            if pi + 1 < np {
                let dst = format!("{pre}in{}_", pi + 1);
                self.exchange(pi, pi + 1, &v, &dst, true, *buf, ind);
                *buf ^= 1;
            }
        }
    }

    /// Backward through pass pi: adjoints `g{k}` in, adjoints of the pass input out (in place);
    /// twiddle and M terms into the pass's accumulators. Stage inputs are recomputed from the
    /// pass input (`fin{pi}_k`, or x for pass 0).
    fn backward_pass(&mut self, pi: usize, ind: &str) {
        let p = self.plan;
        let stages = p.passes[pi].stages.clone();
        let slots = p.slots(pi);
        let rv = format!("r{pi}_");
        // recompute each stage's input from the pass input (one pass: the forward kept them)
        if p.passes.len() > 1 {
            for k in 0..p.rr() {
                if pi == 0 {
                    self.line(format!("{ind}var {rv}{k}: vec2<R>;"));
                } else {
                    self.line(format!("{ind}var {rv}{k} = fin{pi}_{k};"));
                }
            }
            for (j, &s) in stages.iter().enumerate() {
                self.save_inputs(pi, j, s, &rv, ind);
                if j + 1 < stages.len() {
                    self.stage(Src::Learned, pi, s, &rv, ind);
                }
            }
        }
        for (j, &s) in stages.iter().enumerate().rev() {
            for (k0, k1) in self.pairs(pi, s) {
                if s == 0 {
                    let q = |c: u32| slots.iter().position(|&x| x == (0, c)).unwrap();
                    self.line(format!(
                        "{ind}acc{pi}_{} = acc{pi}_{} + g{k0} * x{k0};\n{ind}acc{pi}_{} = acc{pi}_{} + g{k0} * x{k1};\n{ind}acc{pi}_{} = acc{pi}_{} + g{k1} * x{k0};\n{ind}acc{pi}_{} = acc{pi}_{} + g{k1} * x{k1};",
                        q(0), q(0), q(1), q(1), q(2), q(2), q(3), q(3)
                    ));
                } else {
                    let c = rev((k0 << p.passes[pi].lo) >> (p.l - s), s);
                    let q = slots.iter().position(|&x| x == (s, c)).unwrap();
                    let w = self.twiddle(Src::Learned, pi, s, k0);
                    self.line(format!(
                        "{ind}{{\n{ind}    let ga = g{k0};\n{ind}    let gb = g{k1};\n{ind}    let gp = ga - gb;\n{ind}    acc{pi}_{q} = acc{pi}_{q} + cmulc(b{pi}_{j}_{k1}, gp);\n{ind}    g{k0} = ga + gb;\n{ind}    g{k1} = cmulc({w}, gp);\n{ind}}}"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "fused_tests.rs"]
mod tests;
