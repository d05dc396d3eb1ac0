//! Ctrl-C: the first SIGINT sets a flag that the training loop polls between steps (it then
//! checkpoints and exits 130); a second SIGINT kills the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a SIGINT has arrived since [`install`].
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(unix)]
mod imp {
    use super::INTERRUPTED;
    use std::sync::atomic::Ordering;

    const SIGINT: i32 = 2;
    const SIG_DFL: usize = 0;

    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }

    extern "C" fn on_sigint(_: i32) {
        // async-signal-safe: an atomic store and signal(2)
        INTERRUPTED.store(true, Ordering::SeqCst);
        // SAFETY: restoring the default disposition is async-signal-safe; a second Ctrl-C kills.
        unsafe {
            signal(SIGINT, SIG_DFL);
        }
    }

    pub fn install() -> bool {
        let handler: extern "C" fn(i32) = on_sigint;
        // SAFETY: installs a handler that only touches an atomic and calls signal(2).
        unsafe { signal(SIGINT, handler as usize) != usize::MAX }
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn install() -> bool {
        false
    }
}

/// Install the SIGINT handler (Unix). Returns false where it is not supported, in which case
/// Ctrl-C ends the process and the last periodic checkpoint is what remains.
pub fn install() -> bool {
    imp::install()
}
