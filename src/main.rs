//! The `fftlearn` binary: parse, dispatch, print the error chain once, exit with its code.

mod cli;

use std::io::Write;

fn main() {
    let args = cli::args::parse();
    fftlearn::backend::gpu::context::quiet_vulkan_runtime_dir();
    let mut result = cli::run(args.cmd);
    if let (Ok(()), Some(f)) = (&result, cli::out::failure()) {
        // the command's files are written; only its report was lost
        result = Err(fftlearn::Error::runtime(format!("cannot write to stdout: {f}")));
    }
    if let Err(e) = result {
        // one line, whatever a foreign message held
        let msg: Vec<String> = e.to_string().lines().map(|l| l.trim().to_string()).collect();
        // a stderr that cannot be written (a full disk) must not turn the exit code into a panic's
        let _ = writeln!(std::io::stderr(), "error: {}", msg.join(" "));
        std::process::exit(e.exit_code());
    }
}
