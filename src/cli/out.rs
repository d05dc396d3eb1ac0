//! Everything the binary writes to stdout goes through here ([`say!`] and [`Stdout`]): a
//! broken pipe (`fftlearn devices | head -1`) silently stops the printing and is not an
//! error; any other write failure (a full disk behind `>file`) stops the printing and is
//! reported once, as one `error:` line, when the command ends. Neither ever stops a run:
//! its files are written either way.

use std::io::Write;
use std::sync::Mutex;

/// The first write failure on stdout other than a broken pipe, and whether printing stopped.
static STATE: Mutex<(bool, Option<String>)> = Mutex::new((false, None));

/// Stdout that never fails: see the module docs.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if st.0 {
            return Ok(buf.len());
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(buf).and_then(|_| out.flush()) {
            st.0 = true;
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                st.1 = Some(e.to_string());
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A write failure to report when the command ends (a broken pipe is none).
pub fn failure() -> Option<String> {
    STATE.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
}

/// `println!` through [`Stdout`].
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::out::Stdout);
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::out::Stdout, $($arg)*);
    }};
}
pub(crate) use say;
