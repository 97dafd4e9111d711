//! The webhook's command-line flags (`k8ssandra-operator run --webhook-…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{AdmissionConfig, CertSource, FailurePolicy, GeneratedCerts, Rotation, WebhookOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Serve the validating admission webhook (HTTPS) on this address; no webhook when unset.
    #[arg(long, env = "K8SSANDRA_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Directory holding the serving certificate as `tls.crt` and `tls.key` (a mounted
    /// cert-manager Secret, say); re-read when the files change.
    #[arg(
        long,
        env = "K8SSANDRA_WEBHOOK_CERT_DIR",
        conflicts_with = "webhook_cert_secret"
    )]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Make the serving certificate (and its CA) here instead: a Secret of this name, shared
    /// by every replica, renewed before expiry.
    #[arg(long, env = "K8SSANDRA_WEBHOOK_CERT_SECRET")]
    pub webhook_cert_secret: Option<String>,
    /// Namespace of `--webhook-cert-secret`.
    #[arg(
        long,
        env = "K8SSANDRA_WEBHOOK_CERT_NAMESPACE",
        default_value = "default"
    )]
    pub webhook_cert_namespace: String,
    /// DNS names and IP addresses of the made certificate (the webhook Service's
    /// `<service>.<namespace>.svc`, or the address a URL-configured webhook uses).
    #[arg(long, env = "K8SSANDRA_WEBHOOK_CERT_HOSTS", value_delimiter = ',')]
    pub webhook_cert_host: Vec<String>,
    /// ValidatingWebhookConfiguration whose `caBundle` the operator keeps equal to the made
    /// certificate's CA bundle.
    #[arg(long, env = "K8SSANDRA_WEBHOOK_CONFIGURATION")]
    pub webhook_configuration: Option<String>,
    /// When a policy traps or runs out of time in `validate`: deny (Fail) or admit with a
    /// warning (Ignore).
    #[arg(
        long,
        value_enum,
        env = "K8SSANDRA_WEBHOOK_FAILURE_POLICY",
        default_value = "Fail"
    )]
    pub webhook_failure_policy: FailurePolicy,
    /// The host's budget for one admission review, in milliseconds; keep it below the
    /// webhook configuration's `timeoutSeconds`.
    #[arg(long, default_value_t = 8000)]
    pub webhook_deadline_ms: u64,
    /// Lifetime of a made CA, in hours.
    #[arg(long, default_value_t = 5 * 365 * 24, hide = true)]
    pub webhook_ca_validity_hours: u64,
    /// Lifetime of a made serving certificate, in hours.
    #[arg(long, default_value_t = 365 * 24, hide = true)]
    pub webhook_cert_validity_hours: u64,
    /// How often the made certificate and the caBundle are checked, in seconds.
    #[arg(long, default_value_t = 30, hide = true)]
    pub webhook_check_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "--webhook-addr needs a certificate: --webhook-cert-dir (your own) or --webhook-cert-secret (made by the operator)"
    )]
    NoCertificate,
    #[error("--webhook-cert-secret needs at least one --webhook-cert-host")]
    NoHosts,
    #[error("--webhook-deadline-ms must be at least 1")]
    Deadline,
}

impl WebhookArgs {
    /// The webhook's options, None when it is off.
    pub fn options(&self) -> Result<Option<WebhookOptions>, ArgsError> {
        let Some(addr) = self.webhook_addr else {
            return Ok(None);
        };
        if self.webhook_deadline_ms == 0 {
            return Err(ArgsError::Deadline);
        }
        let hours = |h: u64| Duration::from_secs(h.max(1).saturating_mul(3600));
        let certs = match (&self.webhook_cert_dir, &self.webhook_cert_secret) {
            (Some(dir), _) => CertSource::Files { dir: dir.clone() },
            (None, Some(secret)) => {
                if self.webhook_cert_host.is_empty() {
                    return Err(ArgsError::NoHosts);
                }
                CertSource::Generated(GeneratedCerts {
                    secret_namespace: self.webhook_cert_namespace.clone(),
                    secret_name: secret.clone(),
                    hosts: self.webhook_cert_host.clone(),
                    webhook_configuration: self.webhook_configuration.clone(),
                    rotation: Rotation {
                        ca_validity: hours(self.webhook_ca_validity_hours),
                        cert_validity: hours(self.webhook_cert_validity_hours),
                        check_every: Duration::from_secs(self.webhook_check_seconds.max(1)),
                    },
                })
            }
            (None, None) => return Err(ArgsError::NoCertificate),
        };
        Ok(Some(WebhookOptions {
            addr,
            certs,
            review: AdmissionConfig {
                failure_policy: self.webhook_failure_policy,
                deadline: Duration::from_millis(self.webhook_deadline_ms),
            },
        }))
    }
}
