//! Errors of hpcs-job and their exit codes (listed in `cli::EXIT_HELP`; a code
//! never changes meaning). Each message says what is wrong and what to do.

use std::fmt;

/// A failure, with the exit code it maps to.
#[derive(Debug)]
pub enum Error {
    /// A flag value, archive, script or identity failed its check (exit 3).
    Invalid(String),
    /// The script could not be written (exit 4).
    Write(String),
    /// sbatch could not be started or refused the job (exit 5).
    Submit(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid(_) => 3,
            Error::Write(_) => 4,
            Error::Submit(_) => 5,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m) | Error::Write(m) | Error::Submit(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for an [`Error::Invalid`].
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}
