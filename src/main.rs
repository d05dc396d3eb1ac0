//! The `fftlearn` binary: parse, dispatch, print the error chain once, exit with its code.

use clap::Parser;
use fftlearn::cli::Cli;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = fftlearn::commands::run(cli.cmd) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
