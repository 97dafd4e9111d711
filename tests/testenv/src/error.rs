use std::path::PathBuf;

/// Everything that can go wrong while finding binaries or running a control plane.
///
/// A missing dependency is always an error (never a silent skip): tests that use testenv
/// must fail loudly on a machine that cannot run them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("testenv binary `{name}` is missing from {dir} (run tests/testenv/build-binaries.sh)")]
    MissingBinary { name: String, dir: PathBuf },

    #[error("build-binaries.sh failed: {0}")]
    BuildScript(String),

    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("certificate generation failed: {0}")]
    Pki(#[from] rcgen::Error),

    #[error("{component} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ComponentExited {
        component: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("timed out after {secs}s waiting for {what}")]
    Timeout { what: String, secs: u64 },

    #[error("Kubernetes API error while {context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },

    #[error("kubeconfig error: {0}")]
    Kubeconfig(String),

    #[error("no free cluster slot under {0} (all 254 pod ranges are in use)")]
    NoFreeSlot(PathBuf),

    #[error("invalid options: {0}")]
    InvalidOptions(String),

    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a human-readable context to I/O errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

pub(crate) fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let context = context.into();
    move |source| Error::Kube { context, source }
}
