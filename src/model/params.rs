//! Model parameters (M and the N-1 twiddles), the init schemes, exact twiddles in f64, and
//! their `.npz` form (`M` (2,2) and `twiddles` (N-1,), complex128).

use crate::error::{Context, Error, Result};
use crate::io::npy::{self, Npz, Out};
use crate::model::network::Network;
use crate::model::rng::{self, Stream};
use num_complex::Complex64 as C64;
use std::path::Path;

/// exp(-2 pi i num / den), computed in f64 with octant reduction so that multiples of
/// pi/4 come out exact (0, +-1, +-sqrt(1/2)) and symmetric angles give symmetric values.
pub fn root_of_unity(num: u64, den: u64) -> C64 {
    let k = num % den;
    // angle = 2 pi k / den in [0, 2 pi); work in units of den/8 (octants)
    let k8 = 8 * k as u128;
    let den = den as u128;
    let oct = (k8 / den) as u32; // 0..8
    let rem = k8 - oct as u128 * den; // angle within the octant, in units of 2pi/(8 den)
    let frac = |r: u128| std::f64::consts::FRAC_PI_4 * (r as f64 / den as f64);
    // (c, s) = (cos, sin) of the angle measured from the octant start
    let (c, s) = {
        // for odd octants measure from the octant end so the reduced angle is in [0, pi/4]
        if oct.is_multiple_of(2) {
            let t = frac(rem);
            (t.cos(), t.sin())
        } else {
            let t = frac(den - rem);
            // angle = (oct+1) pi/4 - t
            (t.cos(), -t.sin())
        }
    };
    // rotate by the octant start (or end for odd octants)
    let base = (if oct.is_multiple_of(2) { oct } else { oct + 1 }) % 8;
    // (cos, sin) of base * pi/4 applied to the small angle: cos(a+b), sin(a+b)
    let (cb, sb) = match base {
        0 => (1.0, 0.0),
        2 => (0.0, 1.0),
        4 => (-1.0, 0.0),
        6 => (0.0, -1.0),
        _ => unreachable!("base is even"),
    };
    let cos = cb * c - sb * s;
    let sin = sb * c + cb * s;
    C64::new(cos, -sin)
}

/// Where a command's parameter point comes from: a parameters file (which fixes N), or an init
/// scheme at N with its seed.
#[derive(Clone, Debug, PartialEq)]
pub enum Point {
    /// A `params.npz` or checkpoint file.
    File(std::path::PathBuf),
    /// An init scheme at N.
    Init {
        /// N.
        n: usize,
        /// The scheme.
        scheme: Scheme,
        /// Its seed.
        seed: u64,
    },
}

impl Point {
    /// The parameters.
    pub fn params(&self) -> Result<Params> {
        match self {
            Point::File(f) => Params::load(f),
            Point::Init { n, scheme, seed } => Ok(Params::init(&Network::new(*n)?, scheme, *seed)),
        }
    }
}

/// The exact twiddles of the seed's indexing: `tw[offset_s + k] = exp(-i pi k / e_s)`; the
/// unused last entry is 1.
pub fn exact_twiddles(net: &Network) -> Vec<C64> {
    let mut tw = vec![C64::new(1.0, 0.0); net.n_twiddles()];
    for st in net.stages() {
        for k in 0..st.e {
            tw[st.tw(k)] = root_of_unity(k as u64, 2 * st.e as u64);
        }
    }
    tw
}

/// The exact split matrix [[1, 1], [1, -1]].
pub const EXACT_M: [C64; 4] = [
    C64::new(1.0, 0.0),
    C64::new(1.0, 0.0),
    C64::new(1.0, 0.0),
    C64::new(-1.0, 0.0),
];

/// An init scheme.
#[derive(Clone, Debug, PartialEq)]
pub enum Scheme {
    /// M and twiddles all ones (the seed's code).
    Seed,
    /// M = `[[1,1],[1,-1]]`, exact twiddles.
    Exact,
    /// Unit-circle twiddles at random phases, M complex Gaussian / sqrt(2).
    Random,
    /// Random phases with every |w| = R, M as in `Random`.
    Modulus(f64),
    /// The hand-built stall (`odd-off:R` or `odd-off:R:r`): the exact FFT on the even half (M
    /// row 0 and every twiddle (s, i) with i even), the odd half switched off: M row 1 =
    /// R (1, -1) and the odd twiddles at random phases with modulus r (default 1). The two
    /// halves are independent problems (the loss is their sum), so the even bins are exact and,
    /// at R = 0, the odd bins are exactly 0: relative operator error sqrt((N/4) / (N/2 + 1)) ->
    /// 1/sqrt(2).
    OddOff(f64, f64),
}

impl std::str::FromStr for Scheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "seed" | "ones" => Ok(Scheme::Seed),
            "exact" => Ok(Scheme::Exact),
            "random" => Ok(Scheme::Random),
            _ => {
                if let Some(r) = s.strip_prefix("modulus:") {
                    let v: f64 = r
                        .parse()
                        .map_err(|_| Error::input(format!("init scheme '{s}': modulus '{r}' is not a number")))?;
                    if !(v.is_finite() && v > 0.0) {
                        return Err(Error::input(format!(
                            "init scheme '{s}': modulus {r} must be finite and > 0"
                        )));
                    }
                    Ok(Scheme::Modulus(v))
                } else if let Some(rest) = s.strip_prefix("odd-off:") {
                    let (a, b) = rest.split_once(':').unwrap_or((rest, "1"));
                    let num = |what: &str, t: &str| -> Result<f64> {
                        match t.parse::<f64>() {
                            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                            _ => Err(Error::input(format!(
                                "init scheme '{s}': {what} '{t}' must be a finite number >= 0 (odd-off:R or odd-off:R:r)"
                            ))),
                        }
                    };
                    Ok(Scheme::OddOff(num("R", a)?, num("r", b)?))
                } else {
                    Err(Error::input(format!(
                        "unknown init scheme '{s}' (accepted: seed, exact, random, modulus:R, odd-off:R[:r])"
                    )))
                }
            }
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheme::Seed => write!(f, "seed"),
            Scheme::Exact => write!(f, "exact"),
            Scheme::Random => write!(f, "random"),
            Scheme::Modulus(r) => write!(f, "modulus:{r}"),
            Scheme::OddOff(big, r) if *r == 1.0 => write!(f, "odd-off:{big}"),
            Scheme::OddOff(big, r) => write!(f, "odd-off:{big}:{r}"),
        }
    }
}

/// Where a run's initial parameters come from: an init scheme or a parameters `.npz` file.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// A scheme (with the run's seed for the random ones).
    Scheme(Scheme),
    /// A `.npz` written by `init` or `train`.
    File(std::path::PathBuf),
}

impl Default for Init {
    fn default() -> Self {
        Init::Scheme(Scheme::Seed)
    }
}

impl std::str::FromStr for Init {
    type Err = Error;
    /// A name ending in `.npz` is a file; anything else must be a scheme.
    fn from_str(s: &str) -> Result<Self> {
        if s.ends_with(".npz") {
            Ok(Init::File(s.into()))
        } else {
            Ok(Init::Scheme(s.parse()?))
        }
    }
}

impl std::fmt::Display for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Init::Scheme(s) => write!(f, "{s}"),
            Init::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Init {
    /// The initial parameters for `net` (a file must hold parameters of that size).
    pub fn params(&self, net: &Network, seed: u64) -> Result<Params> {
        match self {
            Init::Scheme(s) => Ok(Params::init(net, s, seed)),
            Init::File(path) => {
                let p = Params::load(path)?;
                if p.net != *net {
                    return Err(Error::input(format!(
                        "--init {} holds parameters for N = {} but --n is {}",
                        path.display(),
                        p.net.n(),
                        net.n()
                    )));
                }
                Ok(p)
            }
        }
    }
}

/// The model's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The wiring these parameters belong to.
    pub net: Network,
    /// M in row-major order: M00, M01, M10, M11.
    pub m: [C64; 4],
    /// N-1 twiddles.
    pub tw: Vec<C64>,
}

impl Params {
    /// Parameters from an init scheme; `seed` is used by the random schemes only.
    pub fn init(net: &Network, scheme: &Scheme, seed: u64) -> Self {
        match scheme {
            Scheme::Seed => Params {
                net: net.clone(),
                m: [C64::new(1.0, 0.0); 4],
                tw: vec![C64::new(1.0, 0.0); net.n_twiddles()],
            },
            Scheme::Exact => Params {
                net: net.clone(),
                m: EXACT_M,
                tw: exact_twiddles(net),
            },
            Scheme::Random => Self::random(net, 1.0, seed),
            Scheme::Modulus(r) => Self::random(net, *r, seed),
            Scheme::OddOff(big, r) => {
                let random = Self::random(net, *r, seed);
                let mut tw = exact_twiddles(net);
                for st in net.stages() {
                    for i in (1..st.e).step_by(2) {
                        tw[st.tw(i)] = random.tw[st.tw(i)];
                    }
                }
                let mut m = EXACT_M;
                m[2] = C64::new(*big, 0.0);
                m[3] = C64::new(-*big, 0.0);
                Params {
                    net: net.clone(),
                    m,
                    tw,
                }
            }
        }
    }

    fn random(net: &Network, modulus: f64, seed: u64) -> Self {
        let mut z = [0.0; 8];
        rng::normals(seed, Stream::Init, 0, 0, &mut z);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let m = [0, 1, 2, 3].map(|i| C64::new(z[2 * i] * s, z[2 * i + 1] * s));
        let key = rng::key_of(seed);
        let tw = (0..net.n_twiddles())
            .map(|k| {
                let r = rng::philox4x32_10([k as u32, 1, 0, Stream::Init as u32], key);
                C64::from_polar(modulus, std::f64::consts::TAU * rng::uniform(r[0]))
            })
            .collect();
        Params {
            net: net.clone(),
            m,
            tw,
        }
    }

    /// Number of complex parameters (M's four entries and N - 1 twiddles).
    pub fn len(&self) -> usize {
        self.net.n_params()
    }

    /// Always false: a model has parameters.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// All complex parameters as one vector: M (row-major) then twiddles.
    pub fn flat(&self) -> Vec<C64> {
        self.m.iter().chain(self.tw.iter()).copied().collect()
    }

    /// Set all parameters from a flat vector (as produced by [`Params::flat`]).
    pub fn set_flat(&mut self, v: &[C64]) {
        self.m.copy_from_slice(&v[..4]);
        self.tw.copy_from_slice(&v[4..]);
    }

    /// Whether every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.m
            .iter()
            .chain(self.tw.iter())
            .all(|z| z.re.is_finite() && z.im.is_finite())
    }

    /// Save as `.npz` with arrays `M` (2,2) and `twiddles` (N-1,), complex128.
    pub fn save(&self, path: &Path) -> Result<()> {
        npy::write_npz(
            path,
            &[
                ("M", Out::C128(&[2, 2], &self.m)),
                ("twiddles", Out::C128(&[self.tw.len()], &self.tw)),
            ],
        )
    }

    /// Load from `.npz`; N is inferred from the twiddle count (N-1).
    pub fn load(path: &Path) -> Result<Self> {
        let mut npz = Npz::open(path)?;
        Self::from_npz(&mut npz).with_context(|| format!("loading parameters from {}", path.display()))
    }

    /// Read `M` and `twiddles` from an open archive.
    pub fn from_npz(npz: &mut Npz) -> Result<Self> {
        let (_, m) = npz.read_c128("M", &[Some(2), Some(2)], 4)?;
        let (_, tw) = npz.read_c128("twiddles", &[None], 1 << 16)?;
        Self::from_parts([m[0], m[1], m[2], m[3]], tw)
    }

    /// Parameters from M (row-major) and the N-1 twiddles, checked: N from the twiddle count,
    /// every value finite.
    pub fn from_parts(m: [C64; 4], tw: Vec<C64>) -> Result<Self> {
        let net = Network::new(tw.len() + 1).map_err(|_| {
            Error::input(format!(
                "twiddles has {} entries: expected N-1 for a power of two N in 4..=65536 (511 for N = 512)",
                tw.len()
            ))
        })?;
        let p = Params { net, m, tw };
        if !p.is_finite() {
            return Err(Error::input("parameters contain NaN or infinity"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_exact_at_octants_and_accurate_elsewhere() {
        assert_eq!(root_of_unity(0, 8), C64::new(1.0, 0.0));
        assert_eq!(root_of_unity(2, 8), C64::new(0.0, -1.0));
        assert_eq!(root_of_unity(4, 8), C64::new(-1.0, 0.0));
        assert_eq!(root_of_unity(6, 8), C64::new(0.0, 1.0));
        for den in [3u64, 7, 16, 512, 1000, 65536] {
            for k in 0..den.min(2000) {
                let a = -std::f64::consts::TAU * k as f64 / den as f64;
                let z = root_of_unity(k, den);
                // the reference's own angle carries up to |a| * 2^-53 ~ 7e-16 of rounding
                assert!((z - C64::new(a.cos(), a.sin())).norm() < 1.5e-15, "k={k} den={den}");
                assert!((z.norm() - 1.0).abs() < 3e-16);
            }
        }
    }

    #[test]
    fn exact_seed_twiddles() {
        let net = Network::seed();
        let tw = exact_twiddles(&net);
        assert_eq!(tw[0], C64::new(1.0, 0.0));
        assert_eq!(tw[1], C64::new(0.0, -1.0)); // stage 1: exp(-i pi/2)
        assert_eq!(tw[510], C64::new(1.0, 0.0));
        let st = net.stages()[7];
        let a = -std::f64::consts::PI * 3.0 / 256.0;
        assert!((tw[st.offset + 3] - C64::new(a.cos(), a.sin())).norm() < 3e-16);
    }

    #[test]
    fn schemes_parse_and_reject() {
        assert_eq!("seed".parse::<Scheme>().unwrap(), Scheme::Seed);
        assert_eq!("modulus:0.5".parse::<Scheme>().unwrap(), Scheme::Modulus(0.5));
        let e = "modulus:-1".parse::<Scheme>().unwrap_err().to_string();
        assert!(e.contains("-1"), "{e}");
        let e = "bogus".parse::<Scheme>().unwrap_err().to_string();
        assert!(e.contains("'bogus'") && e.contains("modulus:R"), "{e}");
    }

    #[test]
    fn modulus_one_is_random_and_moduli_hold() {
        let net = Network::new(64).unwrap();
        let a = Params::init(&net, &Scheme::Random, 5);
        let b = Params::init(&net, &Scheme::Modulus(1.0), 5);
        assert_eq!(a, b);
        let c = Params::init(&net, &Scheme::Modulus(0.25), 5);
        assert!(c.tw.iter().all(|w| (w.norm() - 0.25).abs() < 1e-15));
        assert_ne!(Params::init(&net, &Scheme::Random, 6), a);
    }
}
