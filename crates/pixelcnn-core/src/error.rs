//! One error type for the whole core. Each variant is a failure class that the
//! binding maps to a stable JavaScript error code; messages name the field or
//! file and quote the value that was wrong.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range, of the wrong kind, or unknown.
    #[error("invalid config: `{field}` {message}")]
    InvalidConfig { field: String, message: String },

    /// Images, labels or dataset files do not have the expected shape or values.
    #[error("invalid data: {0}")]
    InvalidData(String),

    /// A checkpoint could not be read, parsed, or does not match the model.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },

    /// The requested device does not exist on this machine.
    #[error("device unavailable: {0}")]
    DeviceUnavailable(String),

    /// The caller asked the work to stop (an `AbortSignal` fired).
    #[error("aborted: {0}")]
    Aborted(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },

    /// A process group failed: a rank did not join or died, a collective timed out.
    #[error("distributed: {0}")]
    Distributed(String),

    /// Training gave up: too many steps in a row had a non-finite loss or
    /// gradient. The message names the step; saved checkpoints are intact.
    #[error("training diverged: {0}")]
    Diverged(String),

    /// The request needs more memory than this machine has available; the
    /// message says how much and which option to lower. Raised before allocating.
    #[error("not enough memory: {0}")]
    Resource(String),

    /// libtorch reported an error: a bug here, or an allocation that failed
    /// (code `Resource`). The C++ backtrace libtorch appends is left out.
    #[error("libtorch: {}", without_backtrace(.0))]
    Torch(#[from] tch::TchError),

    /// Anything else that should not happen (a caught panic, an invariant).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig { field: field.into(), message: message.into() }
    }

    pub fn checkpoint(path: &Path, message: impl Into<String>) -> Self {
        Error::Checkpoint { path: path.display().to_string(), message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }

    /// A stable identifier for the failure class, shared with the JS side.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::InvalidData(_) => "InvalidData",
            Error::Checkpoint { .. } => "Checkpoint",
            Error::DeviceUnavailable(_) => "DeviceUnavailable",
            Error::Aborted(_) => "Aborted",
            Error::Io { .. } => "Io",
            Error::Distributed(_) => "Distributed",
            Error::Resource(_) => "Resource",
            Error::Diverged(_) => "Diverged",
            Error::Torch(e) if is_allocation_failure(e) => "Resource",
            Error::Torch(_) | Error::Internal(_) => "Internal",
        }
    }
}

/// libtorch's message without the frames of the C++ backtrace it appends.
fn without_backtrace(error: &tch::TchError) -> String {
    let text = error.to_string();
    let cut = ["\nframe #", "\nException raised from"].iter().filter_map(|m| text.find(m)).min().unwrap_or(text.len());
    text[..cut].trim_end().to_string()
}

/// An allocation libtorch could not make: the CPU allocator's "can't
/// allocate memory" or CUDA's "out of memory".
fn is_allocation_failure(error: &tch::TchError) -> bool {
    let text = error.to_string();
    text.contains("can't allocate memory") || text.contains("CUDA out of memory") || text.contains("OutOfMemoryError")
}
