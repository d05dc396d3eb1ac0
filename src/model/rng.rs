//! Counter-based random numbers: Philox4x32-10 and the Box-Muller normals built on it.
//!
//! Every random value is a pure function of (seed, stream, step, sample, element), so a batch
//! can be generated in any order, on any thread count, on the CPU or on the GPU
//! (`philox` in `shaders/common.wgsl` is the same generator, its 32x32->64 product `mulhilo`
//! emitted by src/backend/gpu/abi.rs), and replayed from `(seed, step)` alone.
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

/// ln(u1) for u1 = (a + 0.5) / 2^32, branch-free (so loops over it vectorise): the exponent
/// and a mantissa in [sqrt(1/2), sqrt(2)) from the bits, then 2 atanh((m-1)/(m+1)) by its
/// series to s^21 (|s| <= 0.172, truncation < 1e-17).
#[inline(always)]
fn ln_u(a: u32) -> f64 {
    let v = (a as f64) + 0.5;
    let bits = v.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = (e + big as i64 - 32) as f64;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = 1.0 / 21.0;
    for d in [19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        p = p * s2 + 1.0 / d;
    }
    e * std::f64::consts::LN_2 + 2.0 * s * p
}

/// (cos, sin) of 2 pi b / 2^32, branch-free: the top 3 bits pick the octant, the rest the
/// angle within it (measured from the nearer even multiple of pi/4, so |t| <= pi/4), then
/// Taylor polynomials to t^17 / t^18 (error < 2e-16).
#[inline(always)]
fn cos_sin_turn(b: u32) -> (f64, f64) {
    let oct = b >> 29;
    let frac = (b & 0x1fff_ffff) as f64 * (1.0 / 536870912.0); // in [0, 1)
    let odd = oct & 1 == 1;
    // angle = base * (pi/4) + t, base even
    let t = if odd { frac - 1.0 } else { frac } * std::f64::consts::FRAC_PI_4;
    let base = (oct + odd as u32) & 7; // 0, 2, 4, 6
    let t2 = t * t;
    const S: [f64; 9] = [
        1.0,
        -0.16666666666666666,
        0.008333333333333333,
        -0.0001984126984126984,
        2.7557319223985893e-06,
        -2.505210838544172e-08,
        1.6059043836821613e-10,
        -7.647163731819816e-13,
        2.8114572543455206e-15,
    ];
    const C: [f64; 10] = [
        1.0,
        -0.5,
        0.041666666666666664,
        -0.001388888888888889,
        2.48015873015873e-05,
        -2.755731922398589e-07,
        2.08767569878681e-09,
        -1.1470745597729725e-11,
        4.779477332387385e-14,
        -1.5619206968586225e-16,
    ];
    let mut sp = S[8];
    for &c in S[..8].iter().rev() {
        sp = sp * t2 + c;
    }
    let mut cp = C[9];
    for &c in C[..9].iter().rev() {
        cp = cp * t2 + c;
    }
    let sin_t = t * sp;
    let cos_t = cp;
    // rotate by base * pi/4, branch-free: 0 -> (c, s), 2 -> (-s, c), 4 -> (-c, -s), 6 -> (s, -c)
    let swap = base & 2 != 0;
    let (x, y) = if swap { (sin_t, cos_t) } else { (cos_t, sin_t) };
    let neg_x = base == 2 || base == 4;
    let neg_y = base >= 4;
    (if neg_x { -x } else { x }, if neg_y { -y } else { y })
}

/// Box-Muller on one pair of 32-bit words: u1 = (a + 0.5) / 2^32 in (0, 1), angle = 2 pi b / 2^32.
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f64, f64) {
    let r = (-2.0 * ln_u(a)).sqrt();
    let (c, s) = cos_sin_turn(b);
    (r * c, r * s)
}

/// Fill `out` with the standard normals of one sample: element j is normal number j of
/// the sample's sequence; block k (elements 4k..4k+4) is Philox of counter [k, sample, step, stream].
pub fn normals(seed: u64, stream: Stream, step: u32, sample: u32, out: &mut [f64]) {
    const BLK: usize = 64;
    let key = key_of(seed);
    let mut words = [0u32; 4 * BLK];
    for (c, chunk) in out.chunks_mut(4 * BLK).enumerate() {
        let nblk = chunk.len().div_ceil(4);
        for k in 0..nblk {
            let r = philox4x32_10([(c * BLK + k) as u32, sample, step, stream as u32], key);
            words[4 * k..4 * k + 4].copy_from_slice(&r);
        }
        let pairs = chunk.len() / 2;
        for i in 0..pairs {
            let (z0, z1) = box_muller(words[2 * i], words[2 * i + 1]);
            chunk[2 * i] = z0;
            chunk[2 * i + 1] = z1;
        }
        if chunk.len() % 2 == 1 {
            let (z0, _) = box_muller(words[2 * pairs], words[2 * pairs + 1]);
            chunk[2 * pairs] = z0;
        }
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
        let (mut s1, mut s2, mut fourth, mut n) = (0.0, 0.0, 0.0, 0.0);
        for b in 0..512 {
            normals(7, Stream::Data, 3, b, &mut x);
            for &v in &x {
                s1 += v;
                s2 += v * v;
                fourth += v * v * v * v;
                n += 1.0;
            }
        }
        let mean = s1 / n;
        let var = s2 / n - mean * mean;
        assert!(mean.abs() < 5.0 * 2e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * 2.8e-3, "var {var}");
        assert!((fourth / n - 3.0).abs() < 0.05, "kurtosis {}", fourth / n);
    }

    #[test]
    fn fast_ln_and_trig_match_libm() {
        for a in (0..u32::MAX)
            .step_by(9_999_991)
            .chain([0, 1, 2, u32::MAX - 1, u32::MAX])
        {
            let u1 = ((a as f64) + 0.5) / 4294967296.0;
            let want = u1.ln();
            assert!(
                (ln_u(a) - want).abs() <= 4.5e-16 * want.abs().max(1.0),
                "ln a={a}: {} vs {want}",
                ln_u(a)
            );
            let (c, s) = cos_sin_turn(a);
            let ang = std::f64::consts::TAU * (a as f64 / 4294967296.0);
            assert!(
                (c - ang.cos()).abs() < 1e-15 && (s - ang.sin()).abs() < 1e-15,
                "trig a={a}"
            );
        }
        assert_eq!(cos_sin_turn(0), (1.0, 0.0));
        assert_eq!(cos_sin_turn(1 << 30), (0.0, 1.0));
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
