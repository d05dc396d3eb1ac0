//! The `fftlearn` binary: parse, dispatch, print the error chain once, exit with its code.

fn main() {
    let cli = fftlearn::cli::parse();
    if let Err(e) = fftlearn::commands::run(cli.cmd) {
        // one line, whatever a foreign message held
        let msg: Vec<String> = e.to_string().lines().map(|l| l.trim().to_string()).collect();
        eprintln!("error: {}", msg.join(" "));
        std::process::exit(e.exit_code());
    }
}
