//! Counter-based random numbers: Philox4x32-10 and the Box-Muller normals built on it.
//!
//! Every random value is a pure function of (seed, stream, step, sample, element), so a batch
//! can be generated in any order, on any thread count, on the CPU or on the GPU
//! (`shaders/rng.wgsl` is the same generator), and replayed from `(seed, step)` alone.
//! Counter layout: `[element block, sample, step, stream]`, key = the 64-bit seed.

/// Streams: independent random sequences for the same seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stream {
    /// Training minibatches.
    Data = 0,
    /// The seed's "eval on random examples".
    Eval = 1,
    /// Random parameter initialisation.
    Init = 2,
    /// Measurement minibatches (SNR and friends).
    Measure = 3,
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// Philox4x32 with 10 rounds (Salmon et al., SC'11), the Random123 reference.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The key for a 64-bit seed.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// Box-Muller on one pair of 32-bit words: u1 = (a + 0.5) / 2^32 in (0, 1), angle = 2 pi b / 2^32.
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f64, f64) {
    const INV32: f64 = 1.0 / 4294967296.0;
    let u1 = (a as f64 + 0.5) * INV32;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * (b as f64 * INV32)).sin_cos();
    (r * c, r * s)
}

/// Fill `out` with the standard normals of one sample: element j is normal number j of
/// the sample's sequence; block k (elements 4k..4k+4) is Philox of counter [k, sample, step, stream].
pub fn normals(seed: u64, stream: Stream, step: u32, sample: u32, out: &mut [f64]) {
    let key = key_of(seed);
    for (k, chunk) in out.chunks_mut(4).enumerate() {
        let r = philox4x32_10([k as u32, sample, step, stream as u32], key);
        let (z0, z1) = box_muller(r[0], r[1]);
        let (z2, z3) = box_muller(r[2], r[3]);
        let z = [z0, z1, z2, z3];
        chunk.copy_from_slice(&z[..chunk.len()]);
    }
}

/// Uniform in [0, 1) from one 32-bit word.
#[inline]
pub fn uniform(a: u32) -> f64 {
    a as f64 / 4294967296.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer tests from Random123's kat_vectors (philox4x32 with 10 rounds).
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        // 2^18 draws: the sample mean has sd 2e-3 and the variance sd 2.8e-3; 5 sigma bounds.
        let mut x = vec![0.0; 512];
        let (mut s1, mut s2, mut s4, mut n) = (0.0, 0.0, 0.0, 0.0);
        for b in 0..512 {
            normals(7, Stream::Data, 3, b, &mut x);
            for &v in &x {
                s1 += v;
                s2 += v * v;
                s4 += v * v * v * v;
                n += 1.0;
            }
        }
        let mean = s1 / n;
        let var = s2 / n - mean * mean;
        assert!(mean.abs() < 5.0 * 2e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * 2.8e-3, "var {var}");
        assert!((s4 / n - 3.0).abs() < 0.05, "kurtosis {}", s4 / n);
    }

    #[test]
    fn streams_and_steps_differ() {
        let mut a = vec![0.0; 8];
        let mut b = vec![0.0; 8];
        normals(1, Stream::Data, 0, 0, &mut a);
        normals(1, Stream::Eval, 0, 0, &mut b);
        assert_ne!(a, b);
        normals(1, Stream::Data, 1, 0, &mut b);
        assert_ne!(a, b);
        normals(1, Stream::Data, 0, 0, &mut b);
        assert_eq!(a, b);
    }
}
