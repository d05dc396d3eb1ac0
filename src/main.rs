//! The `fftlearn` binary: parse, dispatch, print the error chain once, exit with its code.

mod cli;

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" on every start
/// where it is missing (a fresh machine, a container, a batch job). It is noise for a compute
/// program: point it at a private directory for this process.
fn quiet_vulkan_runtime_dir() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let ok = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        if ok {
            return;
        }
        // one private directory per user (the owner of /proc/self is this process's user)
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let d = std::env::temp_dir().join(format!("fftlearn-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&d);
        if std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir() && m.uid() == uid) {
            // single-threaded here: nothing else reads the environment yet
            std::env::set_var("XDG_RUNTIME_DIR", &d);
        }
    }
}

fn main() {
    let args = cli::args::parse();
    quiet_vulkan_runtime_dir();
    let mut result = cli::run(args.cmd);
    if let (Ok(()), Some(f)) = (&result, cli::out::failure()) {
        // the command's files are written; only its report was lost
        result = Err(fftlearn::Error::runtime(format!("cannot write to stdout: {f}")));
    }
    if let Err(e) = result {
        // one line, whatever a foreign message held
        let msg: Vec<String> = e.to_string().lines().map(|l| l.trim().to_string()).collect();
        eprintln!("error: {}", msg.join(" "));
        std::process::exit(e.exit_code());
    }
}
