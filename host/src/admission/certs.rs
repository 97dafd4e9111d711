//! The webhook's serving certificate.
//!
//! Either the user's (files, e.g. a cert-manager Secret mounted as a volume), re-read when
//! they change, or one the operator makes. A made certificate lives in one Secret that every
//! replica shares (`tls.crt`, `tls.key`, `ca.crt`, `ca.key`): whichever replica finds it
//! missing or due creates or renews it (a write conditional on the resourceVersion, so
//! racing replicas agree on one), and every replica serves what the Secret holds and puts
//! the Secret's CA bundle into the ValidatingWebhookConfiguration. No leader is needed: the
//! writes are idempotent and conflicts are retried.
//!
//! Rotation never leaves the API server without a CA it trusts: the serving certificate is
//! renewed from the same CA; when the CA itself is due, a new CA is added to the bundle
//! first (the old one stays until it expires), and certificates are issued from the new CA
//! only once the webhook configuration carries it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// `tls.crt` and `tls.key` in a directory, re-read when they change.
    Files { dir: PathBuf },
    /// Made and rotated by the operator.
    Generated(GeneratedCerts),
}

/// A certificate the operator makes, kept in a Secret.
#[derive(Debug, Clone)]
pub struct GeneratedCerts {
    pub secret_namespace: String,
    pub secret_name: String,
    /// DNS names and IP addresses the certificate is valid for.
    pub hosts: Vec<String>,
    /// The ValidatingWebhookConfiguration whose `caBundle`s are kept current; none leaves
    /// the CA to whoever configures the webhook.
    pub webhook_configuration: Option<String>,
    pub rotation: Rotation,
}

/// Lifetimes of the made certificates and how often they are checked.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub ca_validity: Duration,
    pub cert_validity: Duration,
    /// How often the Secret and the webhook configuration are compared with what is due
    /// (also how soon a `helm upgrade` that reset `caBundle` is repaired).
    pub check_every: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Rotation {
            ca_validity: Duration::from_secs(5 * 365 * DAY),
            cert_validity: Duration::from_secs(365 * DAY),
            check_every: Duration::from_secs(30),
        }
    }
}

/// A certificate is renewed when less than a third of its life is left.
fn due(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> bool {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    match not_after.duration_since(now) {
        Ok(left) => left < life / 3,
        Err(_) => true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("reading {file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        source: Box<kube::Error>,
    },
}

fn invalid(what: &str, reason: impl std::fmt::Display) -> CertError {
    CertError::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// The certificate the TLS server presents, swapped in place when it is renewed.
#[derive(Debug, Default)]
pub struct Resolver {
    current: RwLock<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl Resolver {
    /// Serves `cert_pem` (the chain) with `key_pem` from now on; the same pair again is a
    /// no-op. Returns whether it changed.
    pub fn set(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<bool, CertError> {
        let fingerprint = [cert_pem, key_pem].concat();
        if self.read().as_ref().is_some_and(|(f, _)| *f == fingerprint) {
            return Ok(false);
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("tls.crt", e))?;
        if chain.is_empty() {
            return Err(invalid("tls.crt", "holds no certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("tls.key", e))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| invalid("tls.key", e))?;
        let certified = Arc::new(CertifiedKey::new(chain, signing));
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some((fingerprint, certified));
        Ok(true)
    }

    pub fn is_set(&self) -> bool {
        self.read().is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<(Vec<u8>, Arc<CertifiedKey>)>> {
        // Every write replaces the whole value: a poisoned lock still holds a whole pair.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.read().as_ref().map(|(_, k)| k.clone())
    }
}

/// Loads the user's files into `resolver`.
pub async fn load_files(dir: &std::path::Path, resolver: &Resolver) -> Result<bool, CertError> {
    let (crt, key) = super::user_cert_files(dir);
    let read = |file: PathBuf| async move {
        tokio::fs::read(&file)
            .await
            .map_err(|source| CertError::Io { file, source })
    };
    let (crt, key) = (read(crt).await?, read(key).await?);
    resolver.set(&crt, &key)
}

/// Re-reads the user's files every `every`; a broken renewal keeps the previous pair.
pub async fn watch_files(dir: PathBuf, resolver: Arc<Resolver>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match load_files(&dir, &resolver).await {
            Ok(true) => tracing::info!(dir = %dir.display(), "webhook certificate reloaded"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "webhook certificate not reloaded; serving the previous one")
            }
        }
    }
}

/// What the made Secret holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// PEM of the CAs the API server should trust: the current one first.
    pub ca_bundle: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

impl Material {
    fn from_secret(secret: &Secret) -> Option<Material> {
        let data = secret.data.as_ref()?;
        let text = |k: &str| {
            data.get(k)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        Some(Material {
            ca_bundle: text(CA_CRT)?,
            ca_key: text(CA_KEY)?,
            cert: text(TLS_CRT)?,
            key: text(TLS_KEY)?,
        })
    }

    fn to_data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_CRT, &self.ca_bundle),
            (CA_KEY, &self.ca_key),
            (TLS_CRT, &self.cert),
            (TLS_KEY, &self.key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }
}

/// The facts rotation needs of one certificate.
#[derive(Debug, Clone)]
struct CertInfo {
    pem: String,
    subject: String,
    issuer: String,
    not_before: SystemTime,
    not_after: SystemTime,
    hosts: Vec<String>,
}

fn parse_pems(text: &str) -> Result<Vec<CertInfo>, String> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| e.to_string())?;
        let cert = pem.parse_x509().map_err(|e| e.to_string())?;
        let time = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let mut hosts: Vec<String> = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        hosts.sort();
        let block = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_lines(&pem.contents)
        );
        out.push(CertInfo {
            pem: block,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: time(cert.validity().not_before.timestamp()),
            not_after: time(cert.validity().not_after.timestamp()),
            hosts,
        });
    }
    Ok(out)
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn new_ca(rotation: &Rotation, now: SystemTime) -> Result<(String, String), CertError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // The time in the name makes each CA's subject unique, so a serving certificate's
    // issuer tells which CA signed it.
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("k8ssandra-operator webhook CA {stamp}"),
    );
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now.into();
    params.not_after = (now + rotation.ca_validity).into();
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_cert(
    hosts: &[String],
    ca_pem: &str,
    ca_key: &str,
    rotation: &Rotation,
    now: SystemTime,
) -> Result<(String, String), CertError> {
    let ca_key = rcgen::KeyPair::from_pem(ca_key)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        hosts
            .first()
            .cloned()
            .unwrap_or_else(|| "k8ssandra-operator-webhook".into()),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.not_before = now.into();
    params.not_after = (now + rotation.cert_validity).into();
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What the Secret should hold next, or None when it is right as it is.
///
/// `trusted` is the CA bundle the webhook configuration carries now (None when the
/// operator does not manage one: then every CA in the Secret counts as trusted).
pub fn next_material(
    current: Option<&Material>,
    hosts: &[String],
    rotation: &Rotation,
    trusted: Option<&str>,
    now: SystemTime,
) -> Result<Option<Material>, CertError> {
    let parsed = current.and_then(|m| {
        let cas = parse_pems(&m.ca_bundle).ok()?;
        let cert = parse_pems(&m.cert).ok()?.into_iter().next()?;
        (!cas.is_empty()).then_some((m, cas, cert))
    });
    let Some((m, mut cas, cert)) = parsed else {
        let (ca, ca_key) = new_ca(rotation, now)?;
        let (cert, key) = new_cert(hosts, &ca, &ca_key, rotation, now)?;
        return Ok(Some(Material {
            ca_bundle: ca,
            ca_key,
            cert,
            key,
        }));
    };
    let mut next = m.clone();
    // A CA that has expired verifies nothing any more.
    cas.retain(|c| c.not_after > now);
    let mut current_ca = cas.first().cloned();
    if current_ca
        .as_ref()
        .is_none_or(|ca| due(ca.not_before, ca.not_after, now))
    {
        let (ca, ca_key) = new_ca(rotation, now)?;
        let info = parse_pems(&ca)
            .map_err(|e| invalid("new CA", e))?
            .into_iter()
            .next()
            .ok_or_else(|| invalid("new CA", "no certificate"))?;
        cas.insert(0, info.clone());
        next.ca_key = ca_key;
        current_ca = Some(info);
    }
    next.ca_bundle = cas.iter().map(|c| c.pem.clone()).collect();
    let ca = current_ca.ok_or_else(|| invalid("CA", "none"))?;
    let mut wanted: Vec<String> = hosts.to_vec();
    wanted.sort();
    let renew = due(cert.not_before, cert.not_after, now)
        || cert.hosts != wanted
        || cert.issuer != ca.subject;
    let ca_trusted = match trusted {
        None => true,
        Some(bundle) => parse_pems(bundle)
            .map(|b| b.iter().any(|c| c.pem == ca.pem))
            .unwrap_or(false),
    };
    // An expired serving certificate is replaced at once: nothing could verify it anyway.
    if renew && (ca_trusted || cert.not_after <= now) {
        let (cert, key) = new_cert(hosts, &ca.pem, &next.ca_key, rotation, now)?;
        next.cert = cert;
        next.key = key;
    }
    Ok((next != *m).then_some(next))
}

/// Keeps the made certificate current: in the Secret, in the webhook configuration, and in
/// `resolver`. Runs until the task is dropped.
pub async fn manage(client: kube::Client, certs: GeneratedCerts, resolver: Arc<Resolver>) {
    let mut failures = 0u32;
    loop {
        let wait = match reconcile_once(&client, &certs, &resolver).await {
            Ok(()) => {
                failures = 0;
                certs.rotation.check_every
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "webhook certificate not reconciled; trying again");
                // Quick retries while nothing is being served yet, or after a conflict.
                Duration::from_millis(500 * u64::from(failures.min(20)))
                    .min(certs.rotation.check_every)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One pass: read, renew if due (conditional write), publish the CA, serve the pair.
pub async fn reconcile_once(
    client: &kube::Client,
    certs: &GeneratedCerts,
    resolver: &Resolver,
) -> Result<(), CertError> {
    let kube_err = |what: &str| {
        let what = what.to_string();
        move |source: kube::Error| CertError::Kube {
            what,
            source: Box::new(source),
        }
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &certs.secret_namespace);
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let secret_what = format!("Secret {}/{}", certs.secret_namespace, certs.secret_name);
    let existing = secrets
        .get_opt(&certs.secret_name)
        .await
        .map_err(kube_err(&secret_what))?;
    let config = match &certs.webhook_configuration {
        Some(name) => Some(
            webhooks
                .get_opt(name)
                .await
                .map_err(kube_err(&format!("ValidatingWebhookConfiguration {name}")))?,
        ),
        None => None,
    };
    let trusted = config.as_ref().map(|c| {
        c.as_ref()
            .and_then(|c| c.webhooks.as_ref())
            .and_then(|w| w.first())
            .and_then(|w| w.client_config.ca_bundle.as_ref())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    });
    let current = existing.as_ref().and_then(Material::from_secret);
    let material = match next_material(
        current.as_ref(),
        &certs.hosts,
        &certs.rotation,
        trusted.as_deref(),
        SystemTime::now(),
    )? {
        None => current.ok_or_else(|| invalid(&secret_what, "unreadable"))?,
        Some(next) => {
            let mut secret = existing.clone().unwrap_or_else(|| Secret {
                metadata: ObjectMeta {
                    name: Some(certs.secret_name.clone()),
                    namespace: Some(certs.secret_namespace.clone()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_string(),
                        "k8ssandra-operator".to_string(),
                    )])),
                    ..Default::default()
                },
                type_: Some("kubernetes.io/tls".into()),
                ..Default::default()
            });
            secret.data = Some(next.to_data());
            secret.string_data = None;
            // Conditional on what was read (resourceVersion), so racing replicas write once;
            // the loser gets a conflict and reads the winner's certificate next time.
            let written = match existing {
                Some(_) => {
                    secrets
                        .replace(&certs.secret_name, &PostParams::default(), &secret)
                        .await
                }
                None => secrets.create(&PostParams::default(), &secret).await,
            };
            written.map_err(kube_err(&format!("writing {secret_what}")))?;
            tracing::info!(secret = %secret_what, "webhook certificate written");
            next
        }
    };
    if let (Some(name), Some(Some(config))) = (&certs.webhook_configuration, config) {
        publish_ca(&webhooks, name, config, &material.ca_bundle)
            .await
            .map_err(kube_err(&format!("ValidatingWebhookConfiguration {name}")))?;
    }
    if resolver.set(material.cert.as_bytes(), material.key.as_bytes())? {
        tracing::info!(secret = %secret_what, "serving the webhook certificate");
    }
    Ok(())
}

/// Writes `bundle` into every webhook's `caBundle`, unless it is there already.
async fn publish_ca(
    api: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    mut config: ValidatingWebhookConfiguration,
    bundle: &str,
) -> Result<(), kube::Error> {
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        let current = webhook.client_config.ca_bundle.as_ref().map(|b| &b.0[..]);
        if current != Some(bundle.as_bytes()) {
            webhook.client_config.ca_bundle = Some(ByteString(bundle.as_bytes().to_vec()));
            changed = true;
        }
    }
    if changed {
        api.replace(name, &PostParams::default(), &config).await?;
        tracing::info!(configuration = %name, "webhook CA bundle updated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn rotation() -> Rotation {
        Rotation {
            ca_validity: 30 * DAY,
            cert_validity: 9 * DAY,
            check_every: Duration::from_secs(1),
        }
    }

    fn hosts() -> Vec<String> {
        vec!["webhook.ops.svc".into(), "127.0.0.1".into()]
    }

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn a_fresh_certificate_serves_its_hosts_from_its_ca() {
        let m = next_material(None, &hosts(), &rotation(), None, start())
            .unwrap()
            .unwrap();
        let ca = &parse_pems(&m.ca_bundle).unwrap()[0];
        let cert = &parse_pems(&m.cert).unwrap()[0];
        assert_eq!(cert.issuer, ca.subject);
        assert_eq!(cert.hosts, vec!["127.0.0.1", "webhook.ops.svc"]);
        assert_eq!(cert.not_after, start() + 9 * DAY);
        let resolver = Resolver::default();
        assert!(resolver.set(m.cert.as_bytes(), m.key.as_bytes()).unwrap());
        assert!(!resolver.set(m.cert.as_bytes(), m.key.as_bytes()).unwrap());
        // Nothing is due the next day.
        let later = start() + DAY;
        assert_eq!(
            next_material(Some(&m), &hosts(), &rotation(), Some(&m.ca_bundle), later).unwrap(),
            None
        );
    }

    #[test]
    fn the_serving_certificate_is_renewed_from_the_same_ca_before_it_expires() {
        let m = next_material(None, &hosts(), &rotation(), None, start())
            .unwrap()
            .unwrap();
        let at = start() + 7 * DAY;
        let n = next_material(Some(&m), &hosts(), &rotation(), Some(&m.ca_bundle), at)
            .unwrap()
            .expect("renewed with 2 of 9 days left");
        assert_eq!(n.ca_bundle, m.ca_bundle, "same CA");
        assert_ne!(n.cert, m.cert);
        assert_eq!(parse_pems(&n.cert).unwrap()[0].not_after, at + 9 * DAY);
        // Other hosts: renewed at once.
        let other = vec!["webhook.other.svc".to_string()];
        let o = next_material(Some(&n), &other, &rotation(), Some(&n.ca_bundle), at)
            .unwrap()
            .unwrap();
        assert_eq!(parse_pems(&o.cert).unwrap()[0].hosts, other);
    }

    #[test]
    fn a_new_ca_is_trusted_before_it_signs() {
        let m = next_material(None, &hosts(), &rotation(), None, start())
            .unwrap()
            .unwrap();
        let old_ca = parse_pems(&m.ca_bundle).unwrap()[0].clone();
        // Day 19: the serving certificate is renewed from the CA (still 11 of 30 days left).
        let m = next_material(
            Some(&m),
            &hosts(),
            &rotation(),
            Some(&m.ca_bundle),
            start() + 19 * DAY,
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.ca_bundle, parse_pems(&m.ca_bundle).unwrap()[0].pem);
        // Day 21: the CA is due.
        let at = start() + 21 * DAY;
        let n = next_material(Some(&m), &hosts(), &rotation(), Some(&m.ca_bundle), at)
            .unwrap()
            .unwrap();
        let cas = parse_pems(&n.ca_bundle).unwrap();
        assert_eq!(cas.len(), 2, "new CA first, the old one kept");
        assert_eq!(cas[1].pem, old_ca.pem);
        assert_ne!(cas[0].subject, old_ca.subject);
        // The webhook configuration does not carry the new CA yet: the serving certificate
        // (still valid) is not re-issued from it.
        assert_eq!(
            parse_pems(&n.cert).unwrap()[0].issuer,
            old_ca.subject,
            "not signed by an untrusted CA"
        );
        // Once the bundle is published, the certificate moves to the new CA.
        let p = next_material(Some(&n), &hosts(), &rotation(), Some(&n.ca_bundle), at)
            .unwrap()
            .unwrap();
        assert_eq!(parse_pems(&p.cert).unwrap()[0].issuer, cas[0].subject);
        assert_eq!(parse_pems(&p.ca_bundle).unwrap().len(), 2);
        // After the old CA expires it leaves the bundle.
        let q = next_material(
            Some(&p),
            &hosts(),
            &rotation(),
            Some(&p.ca_bundle),
            start() + 31 * DAY,
        )
        .unwrap()
        .unwrap();
        let cas = parse_pems(&q.ca_bundle).unwrap();
        assert_eq!(cas.len(), 1);
        assert_ne!(cas[0].pem, old_ca.pem);
    }

    #[test]
    fn a_broken_secret_is_replaced() {
        let broken = Material {
            ca_bundle: "not pem".into(),
            ca_key: String::new(),
            cert: String::new(),
            key: String::new(),
        };
        let m = next_material(Some(&broken), &hosts(), &rotation(), None, start())
            .unwrap()
            .unwrap();
        assert!(parse_pems(&m.cert).is_ok());
        let resolver = Resolver::default();
        assert!(resolver.set(b"junk", b"junk").is_err());
        assert!(!resolver.is_set());
    }
}
