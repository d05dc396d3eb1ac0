//! Helpers every test module shares: the binary under test, a fresh temporary directory, one
//! clean failure, a child process stopped by a signal after a line of its output, and a sweep
//! CSV without its clock column.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// Asserts a clean failure: exit `code` (never a panic's 101), exactly one stderr line that
/// starts with "error:" and names every `needles` entry.
pub fn assert_error(out: &Output, code: i32, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {err}");
    assert!(lines[0].starts_with("error:"), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks '{n}': {err}");
    }
}

/// Start `args` with stdout piped and wait until a line contains `wait_for`.
pub fn start_until(args: &[&str], wait_for: &str) -> std::process::Child {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    for l in lines.by_ref() {
        if l.unwrap().contains(wait_for) {
            break;
        }
    }
    // keep draining so the child never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Send `sig` (e.g. "-TERM") to `child` and wait for it.
pub fn signal(child: std::process::Child, sig: &str) -> Output {
    let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
    child.wait_with_output().unwrap()
}

/// A sweep CSV without its last column (wall_s, a clock reading).
pub fn without_wall(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect()
}
