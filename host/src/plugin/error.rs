//! Errors of the policy runtime. Every message names the policy (or file) and the reason in
//! one line, because they end up in status conditions, events and CLI output.

use std::path::PathBuf;
use std::time::Duration;

/// A call into a loaded policy failed. Only that call: the runtime keeps serving.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its epoch deadline and was interrupted.
    #[error("policy {policy} ran past its {deadline:?} deadline and was stopped")]
    Timeout { policy: String, deadline: Duration },
    /// The guest tried to grow its memory beyond the per-call cap.
    #[error("policy {policy} tried to use more than {limit} bytes of memory and was stopped")]
    MemoryExceeded { policy: String, limit: usize },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    #[error("policy {policy} crashed: {message}")]
    Trap { policy: String, message: String },
    /// No instance slot became free within the deadline: too many calls in flight.
    #[error("policy {policy} could not run: all {size} instance slots stayed busy for {waited:?}")]
    PoolExhausted {
        policy: String,
        size: u32,
        waited: Duration,
    },
    /// The instance could not be created (not the guest's fault, e.g. a resource limit of
    /// the host).
    #[error("policy {policy} could not be instantiated: {message}")]
    Instantiate { policy: String, message: String },
    /// The call was abandoned by the runtime (it is shutting down).
    #[error("policy {policy} call was abandoned: {message}")]
    Aborted { policy: String, message: String },
}

impl CallError {
    /// Name of the policy whose call failed.
    pub fn policy(&self) -> &str {
        match self {
            CallError::Timeout { policy, .. }
            | CallError::MemoryExceeded { policy, .. }
            | CallError::Trap { policy, .. }
            | CallError::PoolExhausted { policy, .. }
            | CallError::Instantiate { policy, .. }
            | CallError::Aborted { policy, .. } => policy,
        }
    }
}

/// A policy file could not be loaded. The message names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not WebAssembly at all, or a core module instead of a component.
    #[error("{file}: not a policy component: {reason}")]
    NotComponent { file: PathBuf, reason: String },
    /// A component, but of another world than `k8ssandra:policy/policy`.
    #[error("{file}: not a k8ssandra policy: {reason}")]
    WrongWorld { file: PathBuf, reason: String },
    /// A `k8ssandra:policy` component of a version this host does not speak.
    #[error("{file}: incompatible policy: {reason}")]
    Incompatible { file: PathBuf, reason: String },
    /// The component failed validation or compilation.
    #[error("{file}: cannot compile: {reason}")]
    Compile { file: PathBuf, reason: String },
    /// The component's imports could not be satisfied, or its exports don't type-check.
    #[error("{file}: cannot link: {reason}")]
    Link { file: PathBuf, reason: String },
    /// `describe` failed when the policy was loaded.
    #[error("{file}: describe failed: {source}")]
    Describe {
        file: PathBuf,
        #[source]
        source: CallError,
    },
    /// Another loaded file already provides a policy of this name.
    #[error("{file}: policy {name} is already loaded from {other}")]
    DuplicateName {
        file: PathBuf,
        name: String,
        other: PathBuf,
    },
    /// The wasmtime engine could not be configured.
    #[error("cannot create the policy engine: {reason}")]
    Engine { reason: String },
}

impl PluginError {
    /// The file the error is about, if any.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            PluginError::Io { file, .. }
            | PluginError::NotComponent { file, .. }
            | PluginError::WrongWorld { file, .. }
            | PluginError::Incompatible { file, .. }
            | PluginError::Compile { file, .. }
            | PluginError::Link { file, .. }
            | PluginError::Describe { file, .. }
            | PluginError::DuplicateName { file, .. } => Some(file),
            PluginError::Engine { .. } => None,
        }
    }
}

/// Errors of the `plugin test` helper.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("snapshot does not parse: {0}")]
    Snapshot(String),
    #[error(transparent)]
    Call(#[from] CallError),
}
