use std::net::SocketAddr;

/// Errors of the simulator library.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the control API on {addr}: {source}")]
    BindControl {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("control API request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("control API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("fault target not found: {0}")]
    FaultTarget(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
}
