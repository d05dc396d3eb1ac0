//! Size-driven allocations checked before they are made: an estimate of the bytes a request
//! needs against the memory the machine has available (`MemAvailable` of /proc/meminfo on
//! Linux; elsewhere only a check against the address space), refused with both figures.

use crate::error::{Error, Result};

/// Bytes of memory available to a new allocation, where the platform says.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuse `what`, which needs `bytes`, when that is more than the available memory.
pub fn check(bytes: u128, what: &str) -> Result<()> {
    let gib = |b: u128| b as f64 / (1u128 << 30) as f64;
    let limit = available().map_or(usize::MAX as u128, |a| a as u128);
    if bytes > limit {
        return Err(Error::input(format!(
            "{what} needs {:.1} GiB of memory; {:.1} GiB is available",
            gib(bytes),
            gib(limit)
        )));
    }
    Ok(())
}
