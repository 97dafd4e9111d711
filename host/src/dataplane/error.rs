//! Errors of the data-plane clients.

/// Longest excerpt of an answer body kept in an error: enough to read the management
/// API's message, short enough that a 1000-node observation does not hold megabytes of
/// error text.
pub(crate) const BODY_EXCERPT: usize = 512;

/// A failed call to a node's management API, or a failure to prepare one.
///
/// Every variant names the endpoint (its path, never its query string, which may carry a
/// password) and the node address, so a log line or a policy's `failed(..)` outcome says
/// where it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The request did not get an HTTP answer: connection refused, timeout, TLS failure.
    #[error("{method} {endpoint} on {address}: {reason}")]
    Transport {
        method: &'static str,
        endpoint: &'static str,
        address: String,
        /// The transport error, rendered without its URL.
        reason: String,
        /// True when the request timed out.
        timeout: bool,
        /// True when no connection could be made, so the request was never sent.
        connect: bool,
    },
    /// The management API answered with a status outside 2xx.
    #[error("{method} {endpoint} on {address} answered HTTP {status}: {body}")]
    Status {
        method: &'static str,
        endpoint: &'static str,
        address: String,
        status: u16,
        /// The start of the answer body, with any secret of the request blanked out.
        body: String,
    },
    /// The answer was 2xx but not what the endpoint promises.
    #[error("{method} {endpoint} on {address}: unexpected answer: {reason}")]
    Decode {
        method: &'static str,
        endpoint: &'static str,
        address: String,
        reason: String,
    },
    /// The policy asked for a request that cannot be made (e.g. a table option that is not
    /// JSON); nothing was sent.
    #[error("cannot build the request: {reason}")]
    Request { reason: String },
    /// The TLS material given to the client could not be used.
    #[error("management API TLS configuration: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("building the management API HTTP client: {0}")]
    Client(String),
}

impl DataplaneError {
    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            DataplaneError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The endpoint does not exist on this node (an older management API without the
    /// v1 job endpoints answers 404), so the caller may fall back to another one.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Worth another try of an idempotent call: no answer, or a server-side failure.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            DataplaneError::Transport { .. } => true,
            DataplaneError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The request certainly never reached the server, so even a non-idempotent call may
    /// be sent again.
    pub(crate) fn never_sent(&self) -> bool {
        matches!(self, DataplaneError::Transport { connect: true, .. })
    }
}

/// Failure to read the Secret holding a role's credentials; returned by a
/// [`SecretReader`](super::SecretReader).
#[derive(Debug, thiserror::Error)]
#[error("reading Secret {namespace}/{name} in cluster {cluster:?}: {reason}")]
pub struct SecretError {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub reason: String,
}

/// Cuts `body` to at most [`BODY_EXCERPT`] bytes on a character boundary and blanks out
/// `secret` wherever it appears, so a server that echoes a password back does not put it
/// into our logs or a policy's snapshot.
pub(crate) fn excerpt(body: &str, secret: Option<&str>) -> String {
    let redacted;
    let body = match secret {
        Some(s) if !s.is_empty() && body.contains(s) => {
            redacted = body.replace(s, "***");
            redacted.as_str()
        }
        _ => body,
    };
    let trimmed = body.trim();
    if trimmed.len() <= BODY_EXCERPT {
        return trimmed.to_string();
    }
    let mut end = BODY_EXCERPT;
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &trimmed[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_redacts_and_cuts_on_char_boundary() {
        assert_eq!(excerpt(" bad pw hunter2 ", Some("hunter2")), "bad pw ***");
        let long = "é".repeat(BODY_EXCERPT);
        let cut = excerpt(&long, None);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= BODY_EXCERPT + '…'.len_utf8());
    }

    #[test]
    fn transient_and_not_found() {
        let status = |status| DataplaneError::Status {
            method: "GET",
            endpoint: "/x",
            address: "a".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(400).is_transient());
        assert!(status(404).is_not_found());
        assert!(!status(404).is_transient());
    }
}
