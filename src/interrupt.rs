//! Stopping a run cleanly: the first SIGINT (Ctrl-C), SIGTERM (what `timeout`, `kill`, Slurm
//! and Kubernetes send before killing) or SIGHUP (a closed terminal) sets a flag that the step
//! loop polls between steps; the run then checkpoints and exits with 128 + the signal's number
//! (`snr` polls between minibatches, `inspect` between its sections and escape steps, and they
//! say what they wrote). A second one ends the process at once. Handlers come from `signal-hook` (Unix and Windows;
//! Windows has SIGINT and SIGTERM only).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static WHICH: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// The signals that stop a run.
fn signals() -> Vec<i32> {
    use signal_hook::consts::*;
    #[allow(unused_mut)]
    let mut v = vec![SIGINT, SIGTERM];
    #[cfg(unix)]
    v.push(SIGHUP);
    v
}

/// Whether a stop signal has arrived since [`install`].
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// The signal that arrived (0 if none).
pub fn signal() -> i32 {
    WHICH.get().map_or(0, |w| w.load(Ordering::SeqCst) as i32)
}

/// The conventional exit code for a stop by the signal that arrived: 128 + its number (130 for
/// SIGINT, 143 for SIGTERM, 129 for SIGHUP); 130 if none is known.
pub fn exit_code() -> i32 {
    match signal() {
        0 => 130,
        s => 128 + s,
    }
}

/// Ask the running loop to stop as a stop signal would (for hosts that own the signals
/// themselves, such as the Python module, which sees Ctrl-C as KeyboardInterrupt).
pub fn request() {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .store(true, Ordering::SeqCst);
}

/// Forget a stop request (before the next run of a long-lived host process).
pub fn clear() {
    if let Some(f) = FLAG.get() {
        f.store(false, Ordering::SeqCst);
    }
    if let Some(w) = WHICH.get() {
        w.store(0, Ordering::SeqCst);
    }
}

/// Install the handlers (once; later calls do nothing). Returns false if the platform refused
/// them, in which case a signal ends the process and the last periodic checkpoint remains.
pub fn install() -> bool {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return true;
    }
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    let which = WHICH.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    let mut ok = true;
    for sig in signals() {
        // a second signal while the flag is set exits at once with 128 + sig
        ok &= signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(flag)).is_ok();
        // record the signal, then set the flag
        ok &= signal_hook::flag::register_usize(sig, Arc::clone(which), sig as usize).is_ok();
        ok &= signal_hook::flag::register(sig, Arc::clone(flag)).is_ok();
    }
    ok
}
