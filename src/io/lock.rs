//! Exclusive use of an output directory: an advisory lock (the standard library's
//! `File::try_lock`: flock on Unix, LockFileEx on Windows) on `DIR/.fftlearn.lock`, held for
//! the whole run and released by the operating system when the process ends, however it ends.
//! The file holds the holder's PID, so a refused second writer can name it. Taking the lock
//! also proves the directory writable before any work starts.

use crate::error::{Error, Result};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked directory.
pub const FILE: &str = ".fftlearn.lock";

/// A held lock on a directory (released on drop).
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    dir: PathBuf,
}

impl DirLock {
    /// Create `dir` if needed and lock it; `what` names the flag that chose it (`--out`).
    pub fn acquire(dir: &Path, what: &str) -> Result<DirLock> {
        Self::acquire_named(dir, FILE, what)
    }

    /// [`DirLock::acquire`] with the lock file `name`: one of several writers that share a
    /// directory, each owning its own files (the shards of a sweep).
    pub fn acquire_named(dir: &Path, name: &str, what: &str) -> Result<DirLock> {
        Self::take(dir, name, what, false)
    }

    /// A shared lock on `dir/name`: held by many processes at once (the running shards of one
    /// sweep), it keeps out every exclusive holder (a whole sweep into the same directory, a
    /// merge) and is refused while one holds it.
    pub fn acquire_shared(dir: &Path, name: &str, what: &str) -> Result<DirLock> {
        Self::take(dir, name, what, true)
    }

    /// Whether some process holds a lock on the existing file `path` (an exclusive lock
    /// cannot be taken on it now). A missing file is not held.
    pub fn is_held(path: &Path) -> bool {
        let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(path) else {
            return false;
        };
        matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    fn take(dir: &Path, name: &str, what: &str, shared: bool) -> Result<DirLock> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::input(format!("{what} {}: cannot create the directory: {e}", dir.display())))?;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::input(format!("{what} {}: cannot write in the directory: {e}", dir.display())))?;
        match if shared { f.try_lock_shared() } else { f.try_lock() } {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::input(format!(
                    "{what} {} is in use by another fftlearn process{} (lock {}); wait for it to end or choose another {what}",
                    dir.display(),
                    if holder.is_empty() || shared { String::new() } else { format!(" (PID {holder})") },
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::runtime(format!("cannot lock {}: {e}", path.display())));
            }
        }
        let pid = std::process::id().to_string();
        if shared {
            // many holders: the file names none of them (nor a past exclusive holder)
            let _ = f.set_len(0);
            return Ok(DirLock {
                _file: f,
                dir: dir.to_path_buf(),
            });
        }
        (|| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(pid.as_bytes())?;
            f.flush()
        })()
        .map_err(|e| Error::input(format!("{what} {}: cannot write in the directory: {e}", dir.display())))?;
        Ok(DirLock {
            _file: f,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Remove temporary files that an interrupted atomic write left (`.NAME.tmpPID`): under
    /// the lock no other process can be writing them.
    pub fn remove_stale_temporaries(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') && name.contains(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
