//! The cap on one dispatch's work, and the cutting of a fused step's grid into slices under it.
//!
//! Display drivers reset a GPU whose work runs too long without a break: Windows' TDR after
//! 2 s by default, macOS's watchdog after a few seconds, Linux drivers with a GPU hang check.
//! The fused kernel runs a whole minibatch of Philox data in one dispatch, which at 2^24
//! samples on a slow adapter runs for seconds. So a step's grid of workgroups (x: a cell's
//! workgroups, y: the pack's cells) is dispatched in slices, each at most [`DispatchCap`]
//! samples. A slice's workgroups carry their place in the whole grid (`Job::group0`, `row0`),
//! so every workgroup runs the samples and writes the partials it has in one dispatch, and
//! the step's bytes do not depend on the cap. Lane and group kernels dispatch at most
//! `MAX_CHUNK` (2,048) samples at a time and are not cut further.

use crate::error::{Error, Result};

/// Samples per dispatch at N <= 512 by adapter type: an H100 runs 2^22 samples of N = 512 in
/// ~23 ms, and a GPU 40x slower still well inside Windows' 2 s; integrated, virtual and
/// unknown adapters get 2^20 (~1 s at 1 M samples/s); CPU adapters (lavapipe) have no
/// watchdog, and 2^20 keeps each submission's host memory and latency small.
pub fn budget(ty: wgpu::DeviceType) -> u64 {
    match ty {
        wgpu::DeviceType::DiscreteGpu => 1 << 22,
        _ => 1 << 20,
    }
}

/// N log2 N at N = 512, the unit the budgets are counted in.
const UNIT: u64 = 512 * 9;

/// How many samples one dispatch may run: a count, or no cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchCap {
    /// At most this many samples (summed over a pack's cells) per dispatch, at least one
    /// workgroup's worth.
    Samples(u64),
    /// The whole step's grid in one dispatch.
    Off,
}

impl DispatchCap {
    /// The default for an adapter of type `ty` at size `n`: [`budget`] samples at N <= 512,
    /// fewer in proportion to N log2 N above (a sample's work), at least 1.
    pub fn default_for(ty: wgpu::DeviceType, n: usize) -> DispatchCap {
        let n = n.max(2) as u64;
        let work = (n * n.ilog2() as u64).max(UNIT);
        DispatchCap::Samples((budget(ty) * UNIT / work).max(1))
    }

    /// The most samples per dispatch (`u64::MAX` for no cap).
    pub fn samples(self) -> u64 {
        match self {
            DispatchCap::Samples(s) => s,
            DispatchCap::Off => u64::MAX,
        }
    }

    /// As the `--dispatch-cap` flag writes it.
    pub fn name(self) -> String {
        match self {
            DispatchCap::Samples(s) => s.to_string(),
            DispatchCap::Off => "off".into(),
        }
    }
}

impl std::str::FromStr for DispatchCap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "off" {
            return Ok(DispatchCap::Off);
        }
        match s.parse::<u64>() {
            Ok(v) if v >= 1 => Ok(DispatchCap::Samples(v)),
            _ => Err(Error::input(format!(
                "--dispatch-cap '{s}': accepted: a sample count from 1 to {}, or off",
                u64::MAX
            ))),
        }
    }
}

/// One dispatch's part of a step's grid: workgroups `group0..group0 + groups` of rows
/// `row0..row0 + rows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// First workgroup (x).
    pub group0: u32,
    /// Workgroups (x).
    pub groups: u32,
    /// First row (y).
    pub row0: u32,
    /// Rows (y).
    pub rows: u32,
}

/// The slices of a grid of `groups` x `rows` workgroups of `per_group` samples each, in
/// order, each at most `cap` samples, except that a slice has at least one workgroup: whole
/// rows together where a row fits, else one row cut into runs of workgroups.
pub fn slices(groups: u32, rows: u32, per_group: u64, cap: DispatchCap) -> Vec<Slice> {
    let cap = cap.samples();
    let row = groups as u64 * per_group.max(1);
    if row.saturating_mul(rows as u64) <= cap {
        return vec![Slice {
            group0: 0,
            groups,
            row0: 0,
            rows,
        }];
    }
    let mut out = Vec::new();
    if row <= cap {
        let per = (cap / row) as u32;
        let mut r = 0;
        while r < rows {
            let n = per.min(rows - r);
            out.push(Slice {
                group0: 0,
                groups,
                row0: r,
                rows: n,
            });
            r += n;
        }
    } else {
        let per = (cap / per_group.max(1)).max(1) as u32;
        for r in 0..rows {
            let mut g = 0;
            while g < groups {
                let n = per.min(groups - g);
                out.push(Slice {
                    group0: g,
                    groups: n,
                    row0: r,
                    rows: 1,
                });
                g += n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_grid_once_in_order_and_keep_under_the_cap() {
        for (groups, rows, per, cap) in [
            (16_384u32, 1u32, 1024u64, 1u64 << 20),
            (16_384, 1, 1024, 1 << 22),
            (100, 7, 64, 6400),
            (100, 7, 64, 12_800),
            (100, 7, 64, 6399),
            (3, 5, 10, 1),
            (1, 1, 1, 1),
            (37, 3, 8, 100),
        ] {
            let s = slices(groups, rows, per, DispatchCap::Samples(cap));
            let mut seen = vec![0u32; (groups * rows) as usize];
            for sl in &s {
                assert!(sl.groups >= 1 && sl.rows >= 1);
                let work = sl.groups as u64 * sl.rows as u64 * per;
                assert!(work <= cap || (sl.groups == 1 && sl.rows == 1), "{sl:?} over {cap}");
                for r in sl.row0..sl.row0 + sl.rows {
                    for g in sl.group0..sl.group0 + sl.groups {
                        seen[(r * groups + g) as usize] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{groups}x{rows} per {per} cap {cap}");
            // no more slices than the cap forces
            let total = groups as u64 * rows as u64 * per;
            if per <= cap {
                let lower = total.div_ceil(cap) as usize;
                assert!(
                    s.len() >= lower && s.len() <= lower.max(1) * 2 + rows as usize,
                    "{} slices",
                    s.len()
                );
            }
        }
        assert_eq!(slices(10, 2, 5, DispatchCap::Off).len(), 1);
        assert_eq!(slices(10, 2, 5, DispatchCap::Samples(100)).len(), 1);
        assert_eq!(slices(10, 2, 5, DispatchCap::Samples(99)).len(), 2);
    }

    #[test]
    fn the_default_cap_follows_the_adapter_type_and_a_samples_work() {
        use wgpu::DeviceType as T;
        assert_eq!(
            DispatchCap::default_for(T::DiscreteGpu, 512),
            DispatchCap::Samples(1 << 22)
        );
        assert_eq!(
            DispatchCap::default_for(T::DiscreteGpu, 8),
            DispatchCap::Samples(1 << 22)
        );
        assert_eq!(
            DispatchCap::default_for(T::IntegratedGpu, 512),
            DispatchCap::Samples(1 << 20)
        );
        assert_eq!(
            DispatchCap::default_for(T::Cpu, 1024),
            DispatchCap::Samples((1 << 20) * 4608 / 10_240)
        );
        // N = 65,536: 2^22 * 4608 / (65,536 * 16)
        assert_eq!(
            DispatchCap::default_for(T::DiscreteGpu, 65_536),
            DispatchCap::Samples(18_432)
        );
    }

    #[test]
    fn the_flag_takes_a_positive_count_or_off() {
        assert_eq!("off".parse::<DispatchCap>().unwrap(), DispatchCap::Off);
        assert_eq!("4096".parse::<DispatchCap>().unwrap(), DispatchCap::Samples(4096));
        for bad in ["0", "-1", "1e6", "", "none", " off", "5 "] {
            let e = bad.parse::<DispatchCap>().unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")) && e.contains("or off"), "{e}");
        }
    }
}
