//! The wiring of the seed's `Radix2RFFT`: sizes, stages (e, q, twiddle offset), the butterfly
//! geometry (a butterfly's inputs and outputs, its twiddle's index among the twiddles and among
//! all parameters) and which output bins each parameter reaches. Single source of truth for
//! the CPU and GPU paths: the CPU kernels, objectives and solvers call [`Stage`]'s methods,
//! the WGSL modules get the same definitions in their generated header
//! (`backend::gpu::abi::GEOMETRY`), and the fused kernel's bit-reversed addressing takes its
//! offsets from [`stage_offset`] and [`M_ENTRIES`].
//!
//! For N = 2^n the model is:
//! * stage 0 (the "split"): a 2x2 complex matrix M maps (x\[i\], x\[i + N/2\]) to rows 0 and 1,
//!   giving a (2, N/2) array;
//! * stages s = 1..=n-1: e = 2^s, q = N / 2^(s+1); the input is (e, 2q), the output (2e, q):
//!   `out[i][j] = in[i][j] + w[offset+i] * in[i][j+q]`, `out[i+e][j] = in[i][j] - w[offset+i] * in[i][j+q]`,
//!   with offset = 2^s - 2 (0, 2, 6, ..., N-4);
//! * the output is rows 0..=N/2 of the final (N, 1) array.
//!
//! There are N-1 twiddles; the last one (index N-2, i.e. 510 at N = 512) is used by no stage,
//! exactly as in the seed, so its gradient is identically zero. The seed's "Nyquist handling"
//! writes row N/2+1, which is not returned, so it has no effect and is not modelled.

use crate::error::{Error, Result};

/// Smallest supported log2(N).
pub const MIN_LOG2: u32 = 2;
/// Largest supported log2(N).
pub const MAX_LOG2: u32 = 16;
/// The seed's size.
pub const DEFAULT_N: usize = 512;

/// M's four entries come first in the flat parameter vector (row-major), then the N - 1
/// twiddles.
pub const M_ENTRIES: usize = 4;

/// Index of stage s's first twiddle among the twiddles: 2^s - 2 (0, 2, 6, ..., N - 4).
pub const fn stage_offset(s: u32) -> usize {
    (1 << s) - 2
}

/// The butterfly shape of stage s at N points, level 0 included: e = 2^s rows of butterflies
/// on input and q = N / 2^(s+1) columns on output. Level 0 is M's split (one row, N/2
/// columns); level s >= 1 is twiddle stage s ([`Stage`]), whose output holds 2e rows of q;
/// level log2 N (q = 0) has no butterflies.
pub const fn level(n: usize, s: u32) -> (usize, usize) {
    (1 << s, n >> (s + 1))
}

/// One twiddle stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Stage number, 1..=n-1.
    pub s: u32,
    /// Rows on input (= twiddles in this stage), 2^s.
    pub e: usize,
    /// Columns on output, N / 2^(s+1).
    pub q: usize,
    /// Index of this stage's first twiddle, 2^s - 2.
    pub offset: usize,
}

impl Stage {
    /// Butterfly (i, j)'s inputs, `in[i][j]` and `in[i][j + q]`, as indices into the stage's
    /// input layer (e rows of 2q, row-major).
    #[inline(always)]
    pub fn inputs(&self, i: usize, j: usize) -> (usize, usize) {
        let t = i * 2 * self.q + j;
        (t, t + self.q)
    }

    /// Butterfly (i, j)'s outputs, `out[i][j]` and `out[i + e][j]`, as indices into the
    /// stage's output layer (2e rows of q, row-major).
    #[inline(always)]
    pub fn outputs(&self, i: usize, j: usize) -> (usize, usize) {
        (i * self.q + j, (i + self.e) * self.q + j)
    }

    /// Index of the stage's twiddle i among the twiddles.
    #[inline(always)]
    pub fn tw(&self, i: usize) -> usize {
        self.offset + i
    }

    /// Index of the stage's twiddle i among all complex parameters (after M's entries).
    #[inline(always)]
    pub fn param(&self, i: usize) -> usize {
        M_ENTRIES + self.offset + i
    }

    /// The stage's twiddles' indices among the twiddles.
    pub fn twiddles(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.e
    }
}

/// The wiring for one size N.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    log2: u32,
    stages: Vec<Stage>,
}

impl Network {
    /// The network for N points. N must be a power of two with 2^2 <= N <= 2^16.
    ///
    /// ```
    /// use fftlearn::model::network::Network;
    /// let net = Network::new(512).unwrap();
    /// assert_eq!(net.stages().len(), 8);
    /// assert_eq!(net.stages()[7].offset, 254);
    /// assert_eq!(net.n_twiddles(), 511); // index 510 is used by no stage
    /// assert!(Network::new(100).unwrap_err().to_string().contains("N = 100"));
    /// ```
    pub fn new(n: usize) -> Result<Self> {
        if !n.is_power_of_two() || !((1 << MIN_LOG2)..=(1 << MAX_LOG2)).contains(&n) {
            return Err(Error::input(format!(
                "N = {n} is not supported: N must be a power of two from {} to {} (2^{MIN_LOG2}..=2^{MAX_LOG2})",
                1usize << MIN_LOG2,
                1usize << MAX_LOG2
            )));
        }
        let log2 = n.trailing_zeros();
        let stages = (1..log2)
            .map(|s| {
                let (e, q) = level(n, s);
                Stage {
                    s,
                    e,
                    q,
                    offset: stage_offset(s),
                }
            })
            .collect();
        Ok(Network { log2, stages })
    }

    /// The seed's network, N = 512.
    pub fn seed() -> Self {
        Network::new(DEFAULT_N).expect("512 is supported")
    }

    /// N, the number of real inputs.
    pub fn n(&self) -> usize {
        1 << self.log2
    }
    /// log2(N).
    pub fn log2(&self) -> u32 {
        self.log2
    }
    /// N/2.
    pub fn half(&self) -> usize {
        self.n() / 2
    }
    /// Output bins, N/2 + 1.
    pub fn bins(&self) -> usize {
        self.n() / 2 + 1
    }
    /// Twiddle parameters, N - 1 (the last is unused).
    pub fn n_twiddles(&self) -> usize {
        self.n() - 1
    }
    /// Index of the twiddle no stage uses (N - 2).
    pub fn unused_twiddle(&self) -> usize {
        self.n() - 2
    }
    /// Complex parameters: M's four entries and the N - 1 twiddles.
    pub fn n_params(&self) -> usize {
        M_ENTRIES + self.n_twiddles()
    }
    /// Real parameters: twice the complex ones.
    pub fn n_real_params(&self) -> usize {
        2 * self.n_params()
    }
    /// The twiddle stages, s = 1..=n-1.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }
    /// The stage that uses twiddle `k`, or None for the unused one.
    pub fn stage_of_twiddle(&self, k: usize) -> Option<&Stage> {
        self.stages.iter().find(|st| k >= st.offset && k < st.offset + st.e)
    }
    /// The output bins (0..=N/2) that twiddle `k` reaches: row r of the final array is reached
    /// by twiddle (s, i) iff r = i (mod e). Empty for the unused twiddle.
    pub fn bins_of_twiddle(&self, k: usize) -> Vec<usize> {
        match self.stage_of_twiddle(k) {
            None => Vec::new(),
            Some(st) => {
                let i = k - st.offset;
                (0..self.bins()).filter(|r| r % st.e == i).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_butterfly_geometry_is_a_bijection_per_stage_and_the_offsets_tile_the_twiddles() {
        for log2 in MIN_LOG2..=12 {
            let net = Network::new(1 << log2).unwrap();
            let n = net.n();
            let mut next = 0;
            for st in net.stages() {
                // offsets run on from the stage before: 0, 2, 6, ... (the last twiddle unused)
                assert_eq!(st.offset, next, "N = {n} stage {}", st.s);
                assert_eq!(st.offset, stage_offset(st.s));
                next += st.e;
                assert_eq!(st.twiddles(), st.tw(0)..st.tw(st.e));
                let (mut seen_in, mut seen_out) = (vec![0u8; n], vec![0u8; n]);
                for i in 0..st.e {
                    assert_eq!(st.param(i), M_ENTRIES + st.tw(i));
                    for j in 0..st.q {
                        let (t, b) = st.inputs(i, j);
                        let (o1, o2) = st.outputs(i, j);
                        // in[i][j], in[i][j + q] in rows of 2q; out[i][j], out[i + e][j] in rows of q
                        assert_eq!((t / (2 * st.q), t % (2 * st.q), b - t), (i, j, st.q));
                        assert_eq!((o1 / st.q, o1 % st.q, o2 / st.q, o2 % st.q), (i, j, i + st.e, j));
                        seen_in[t] += 1;
                        seen_in[b] += 1;
                        seen_out[o1] += 1;
                        seen_out[o2] += 1;
                    }
                }
                assert!(
                    seen_in.iter().chain(&seen_out).all(|&c| c == 1),
                    "N = {n} stage {}",
                    st.s
                );
            }
            assert_eq!(next, net.unused_twiddle());
            assert_eq!(net.n_params(), M_ENTRIES + n - 1);
        }
    }

    #[test]
    fn seed_wiring() {
        let net = Network::seed();
        let offs: Vec<usize> = net.stages().iter().map(|s| s.offset).collect();
        assert_eq!(offs, vec![0, 2, 6, 14, 30, 62, 126, 254]);
        let eq: Vec<(usize, usize)> = net.stages().iter().map(|s| (s.e, s.q)).collect();
        assert_eq!(
            eq,
            vec![
                (2, 128),
                (4, 64),
                (8, 32),
                (16, 16),
                (32, 8),
                (64, 4),
                (128, 2),
                (256, 1)
            ]
        );
        assert_eq!(net.n_twiddles(), 511);
        assert_eq!(net.unused_twiddle(), 510);
        assert!(net.stage_of_twiddle(510).is_none());
        assert_eq!(net.stage_of_twiddle(509).unwrap().s, 8);
        // every used twiddle belongs to exactly one stage
        let last = net.stages().last().unwrap();
        assert_eq!(last.offset + last.e, 510);
    }

    #[test]
    fn bins_reached() {
        let net = Network::seed();
        assert_eq!(net.bins_of_twiddle(0).len(), 129); // stage 1, i = 0: even bins 0..=256
        assert_eq!(net.bins_of_twiddle(1).len(), 128);
        assert_eq!(net.bins_of_twiddle(254), vec![0, 256]); // stage 8, i = 0
        assert_eq!(net.bins_of_twiddle(255), vec![1]);
        assert!(net.bins_of_twiddle(510).is_empty());
    }

    #[test]
    fn rejects_bad_sizes() {
        for n in [0usize, 1, 2, 3, 100, 1 << 17] {
            let e = Network::new(n).unwrap_err().to_string();
            assert!(e.contains(&format!("N = {n}")), "{e}");
            assert!(e.contains("power of two"), "{e}");
        }
        for l in 2..=16 {
            let net = Network::new(1 << l).unwrap();
            assert_eq!(net.stages().len(), l as usize - 1);
            assert_eq!(net.n_twiddles(), (1 << l) - 1);
        }
    }
}
