//! Helpers every test module shares: the binary under test, a fresh temporary directory, and
//! the test data folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `fftlearn` binary built with these tests.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fftlearn"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

/// A fresh, empty directory under the system temp dir, unique to this process, the calling
/// test module and `name`.
#[track_caller]
pub fn tmpdir(name: &str) -> PathBuf {
    let module = Path::new(std::panic::Location::caller().file())
        .file_stem()
        .map_or("test".into(), |s| s.to_string_lossy().to_string());
    let d = std::env::temp_dir().join(format!("fftlearn-{module}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
