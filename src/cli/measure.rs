//! The measurement subcommands (`hessian`, `rsweep`, `snr`): each the library's procedure,
//! its report printed.

use crate::cli::args::{HessianArgs, PhasesArg, RsweepArgs, SnrArgs};
use crate::cli::out;
use fftlearn::analysis::rsweep::{self, Phases};
use fftlearn::analysis::{curvature, snr_report};
use fftlearn::error::Result;

/// `fftlearn hessian`.
pub fn hessian_cmd(a: HessianArgs) -> Result<()> {
    curvature::run(&a.request()?, &mut out::Stdout)
}

/// `fftlearn rsweep`.
pub fn rsweep_cmd(a: RsweepArgs) -> Result<()> {
    let phases = match a.phases {
        PhasesArg::Exact => Phases::Exact,
        PhasesArg::Random => Phases::Random,
    };
    rsweep::run(
        a.n,
        (a.r_min, a.r_max, a.points),
        phases,
        a.seed,
        &a.out,
        &mut out::Stdout,
    )
    .map(drop)
}

/// `fftlearn snr`.
pub fn snr_cmd(a: SnrArgs) -> Result<()> {
    // the first Ctrl-C stops it between minibatches (a second ends the process at once)
    fftlearn::interrupt::install();
    snr_report::run(&a.request()?, &mut out::Stdout).map(drop)
}
