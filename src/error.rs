//! The one error type: a message chain plus a kind that decides the process exit code.

use std::fmt;

/// What went wrong, which decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad user input: a flag, a file, a shape. Exit code 2.
    Input,
    /// A failure while running: I/O, GPU, numerics. Exit code 1.
    Runtime,
    /// Training diverged (non-finite loss or parameters). Exit code 3.
    Diverged,
    /// Stopped by Ctrl-C after writing a checkpoint. Exit code 130.
    Interrupted,
}

/// An error with its context chain, outermost first.
#[derive(Clone, Debug)]
pub struct Error {
    kind: Kind,
    chain: Vec<String>,
}

/// Crate-wide result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Bad input from the user.
    pub fn input(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Input,
            chain: vec![msg.into()],
        }
    }
    /// A failure while running.
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Runtime,
            chain: vec![msg.into()],
        }
    }
    /// Divergence.
    pub fn diverged(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Diverged,
            chain: vec![msg.into()],
        }
    }
    /// Stopped by SIGINT.
    pub fn interrupted(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Interrupted,
            chain: vec![msg.into()],
        }
    }
    /// Add an outer context line.
    pub fn context(mut self, msg: impl Into<String>) -> Self {
        self.chain.insert(0, msg.into());
        self
    }
    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// Process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Input => 2,
            Kind::Runtime => 1,
            Kind::Diverged => 3,
            Kind::Interrupted => crate::interrupt::exit_code(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.chain.join(": "))
    }
}

impl std::error::Error for Error {}

/// Attach context to any result.
pub trait Context<T> {
    /// Wrap the error with an outer message.
    fn context(self, msg: impl Into<String>) -> Result<T>;
    /// Wrap lazily.
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, msg: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(msg))
    }
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::runtime(e.to_string())
    }
}
