//! The typed interface between the host and the shaders: the per-dispatch `Job` and the
//! hyper-parameter array, each defined once here and emitted as WGSL into every module's
//! header, with the size constants and the Philox product (`mulhilo`) variant the adapter runs.

use super::target::Precision;
use crate::model::network::{Network, M_ENTRIES};
use bytemuck::{Pod, Zeroable};

const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// One dispatch's job (a uniform buffer). Its WGSL declaration is generated from
/// [`Job::FIELDS`], which a test checks against this struct's layout.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug, PartialEq, Eq)]
pub struct Job {
    /// Data seed, low 32 bits.
    pub seed_lo: u32,
    /// Data seed, high 32 bits.
    pub seed_hi: u32,
    /// Training step (Philox counter word 2).
    pub step: u32,
    /// Stream (Philox counter word 3).
    pub stream: u32,
    /// Index of the dispatch's first sample in the batch.
    pub base: u32,
    /// Samples in the dispatch.
    pub count: u32,
    /// 1: x (and maybe the target) come from the host buffers.
    pub from_host: u32,
    /// 1: targets come from the host buffer.
    pub host_target: u32,
    /// 1 on a step's last chunk (lane/group reduction).
    pub last_chunk: u32,
    /// Samples per team (fused).
    pub spt: u32,
    /// Workgroups of the dispatch (fused: the partials' stride).
    pub groups: u32,
    /// Index of the batch's first sample in a larger batch split over adapters (added to the
    /// Philox sample counter; 0 for a whole batch).
    pub sample0: u32,
    /// Fused: the first workgroup (x) of this dispatch's slice of the step's grid; a step cut
    /// into slices to keep each dispatch short gives every workgroup the index, and so the
    /// samples and partials, it has in one dispatch of the whole grid.
    pub group0: u32,
    /// Fused: the first cell-table row (y) of this dispatch's slice of the grid.
    pub row0: u32,
    /// Pads the struct to a multiple of 16 bytes.
    pub pad0: u32,
    /// Pads the struct to a multiple of 16 bytes.
    pub pad1: u32,
}

impl Job {
    /// Field names in declaration order (all u32).
    pub const FIELDS: [&'static str; 16] = [
        "seed_lo",
        "seed_hi",
        "step",
        "stream",
        "base",
        "count",
        "from_host",
        "host_target",
        "last_chunk",
        "spt",
        "groups",
        "sample0",
        "group0",
        "row0",
        "pad0",
        "pad1",
    ];

    /// The WGSL declaration.
    pub fn wgsl() -> String {
        let mut s = String::from("struct Job {\n");
        for f in Job::FIELDS {
            s.push_str(&format!("    {f}: u32,\n"));
        }
        s.push_str("}\n");
        s
    }
}

/// One cell's row of a step's cell table (a storage buffer of `vec4<u32>`, one row per cell
/// the step runs): `slot` is where the cell's parameters, moments and accumulators live
/// (`params[slot * NP ..]`, `moments[slot * 2 NP ..]`, `acc[slot * 2 NP1 ..]`); `seed` and
/// `step` are its Philox key and counter word 2 (the fused kernel; lane/group read the job's).
/// Row y's hyper-parameters are `hyper[y * HYL ..]`, its partials `partial[(y NP1 + j) groups + g]`
/// and its loss `losses[y]`. A single model is a table of one row at slot 0.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default, Debug, PartialEq, Eq)]
pub struct CellRow {
    /// Storage slot of the cell's state.
    pub slot: u32,
    /// Data seed, low 32 bits.
    pub seed_lo: u32,
    /// Data seed, high 32 bits.
    pub seed_hi: u32,
    /// Training step (Philox counter word 2).
    pub step: u32,
}

/// The hyper-parameters of a step, uploaded as an array of reals whose indices are emitted as
/// WGSL constants (`HY_SCALE`, ...): one array of [`Hyper::LEN`] reals per cell of the step
/// (`HYL` in WGSL), in the order of the step's cell table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Loss-gradient scale 2 / (B K).
    pub scale: f64,
    /// lr / (1 - beta1^t).
    pub lr_bc1: f64,
    /// sqrt(1 - beta2^t).
    pub sqrt_bc2: f64,
    /// Adam beta1.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Adam eps.
    pub eps: f64,
}

impl Hyper {
    /// WGSL names, in array order.
    pub const NAMES: [&'static str; 6] = ["HY_SCALE", "HY_LR_BC1", "HY_SQRT_BC2", "HY_BETA1", "HY_BETA2", "HY_EPS"];
    /// Reals in the uploaded array (padded to 8).
    pub const LEN: usize = 8;

    /// The array, in [`Hyper::NAMES`] order, padded to [`Hyper::LEN`].
    pub fn reals(&self) -> [f64; Hyper::LEN] {
        [
            self.scale,
            self.lr_bc1,
            self.sqrt_bc2,
            self.beta1,
            self.beta2,
            self.eps,
            0.0,
            0.0,
        ]
    }

    fn wgsl() -> String {
        Hyper::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| format!("const {n}: u32 = {i}u;\n"))
            .collect()
    }
}

/// 32x32 -> 64-bit product as (hi, lo) from 16-bit limbs (every adapter).
const MULHILO_LIMBS: &str = "fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let hl = ah * bl;
    let lh = al * bh;
    let hh = ah * bh;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (ll & 0xffffu);
    return vec2<u32>(hi, lo);
}
";

/// The same product with native u64 arithmetic (adapters with SHADER_INT64).
const MULHILO_INT64: &str = "fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let p = u64(a) * u64(b);
    return vec2<u32>(u32(p >> 32u), u32(p & 0xfffffffflu));
}
";

/// The butterfly geometry in WGSL, the twin of `model::network` ([`M_ENTRIES`],
/// [`crate::model::network::stage_offset`], `Stage::tw`, `Stage::param`, `Stage::inputs`,
/// `Stage::outputs`), for stage `st` (e = 2^st rows in, q columns out): the gradient checks of
/// every kernel shape against the CPU path (tests/it/gpu.rs) would fail if the two differed.
pub fn geometry() -> String {
    format!(
        "const M_ENTRIES: u32 = {M_ENTRIES}u;
// stage st's twiddle i among the twiddles (offset 2^st - 2), and among all parameters
fn tw_index(st: u32, i: u32) -> u32 {{
    return (1u << st) - 2u + i;
}}
fn param_index(st: u32, i: u32) -> u32 {{
    return M_ENTRIES + tw_index(st, i);
}}
// butterfly (i, j): its inputs in[i][j], in[i][j + q] (rows of 2q), its outputs out[i][j],
// out[i + e][j] (rows of q)
fn bf_inputs(q: u32, i: u32, j: u32) -> vec2<u32> {{
    let t = i * 2u * q + j;
    return vec2<u32>(t, t + q);
}}
fn bf_outputs(e: u32, q: u32, i: u32, j: u32) -> vec2<u32> {{
    return vec2<u32>(i * q + j, (i + e) * q + j);
}}
"
    )
}

/// The WGSL source of one module: constants (`NP1` = NP + 1 accumulators per cell, `HYL`
/// hyper reals per cell), `Job`, hyper indices, `mulhilo`, common.wgsl, then `body`. `chunk` is the per-chunk sample stride of the lane/group layouts.
pub fn source(net: &Network, prec: Precision, chunk: usize, int64: bool, body: &str) -> String {
    format!(
        "alias R = {};\nconst N: u32 = {}u;\nconst H: u32 = {}u;\nconst K: u32 = {}u;\nconst LOG2: u32 = {}u;\nconst NP: u32 = {}u;\nconst NP1: u32 = NP + 1u;\nconst HYL: u32 = {}u;\nconst C: u32 = {}u;\n{}{}{}{}\n{COMMON}\n{body}",
        prec.wgsl(),
        net.n(),
        net.half(),
        net.bins(),
        net.log2(),
        net.n_params(),
        Hyper::LEN,
        chunk,
        Job::wgsl(),
        Hyper::wgsl(),
        geometry(),
        if int64 { MULHILO_INT64 } else { MULHILO_LIMBS },
    )
}

pub(super) const CHUNKED: &str = include_str!("../../../shaders/chunked.wgsl");
pub(super) const LANE: &str = include_str!("../../../shaders/lane.wgsl");
pub(super) const GROUP: &str = include_str!("../../../shaders/group.wgsl");
pub(super) const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");
/// Invocations per workgroup in the lane/group/reduce kernels.
pub(super) const WG: u32 = 64;
/// Most samples in one lane/group chunk.
pub(super) const MAX_CHUNK: usize = 2048;
/// Largest N the lane kernel is offered at: at N = 4096 its M and stage-1 gradients and at
/// N = 8192 its loss disagree with the f64 CPU path on lavapipe (`fftlearn gradcheck --n 4096
/// --kernel lane`), while group and fused agree; the fault is not yet found.
pub const LANE_MAX_N: usize = 2048;
/// Most samples in one upload of host data (fused).
pub(super) const MAX_HOST_CHUNK: usize = 65_536;

/// One cell of a step: its storage slot, and for Philox data its seed and step (so it draws
/// the samples it draws alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellStep {
    /// Slot of the cell's state in the model.
    pub slot: usize,
    /// Data seed.
    pub seed: u64,
    /// Step (the Philox counter's step word).
    pub step: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_declaration_matches_the_struct() {
        assert_eq!(std::mem::size_of::<Job>(), 4 * Job::FIELDS.len());
        assert_eq!(
            std::mem::size_of::<Job>() % 16,
            0,
            "uniform structs are 16-byte aligned"
        );
        let j = Job {
            seed_lo: 1,
            seed_hi: 2,
            step: 3,
            stream: 4,
            base: 5,
            count: 6,
            from_host: 7,
            host_target: 8,
            last_chunk: 9,
            spt: 10,
            groups: 11,
            sample0: 12,
            group0: 13,
            row0: 14,
            pad0: 15,
            pad1: 16,
        };
        // every field at the position its name has in FIELDS
        let words: &[u32] = bytemuck::cast_slice(bytemuck::bytes_of(&j));
        assert_eq!(words, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        let w = Job::wgsl();
        for f in Job::FIELDS {
            assert!(w.contains(&format!("    {f}: u32,")));
        }
    }

    #[test]
    fn hyper_indices_follow_the_array() {
        let h = Hyper {
            scale: 1.0,
            lr_bc1: 2.0,
            sqrt_bc2: 3.0,
            beta1: 4.0,
            beta2: 5.0,
            eps: 6.0,
        };
        assert_eq!(&h.reals()[..6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(Hyper::wgsl().contains("const HY_EPS: u32 = 5u;"));
    }
}
