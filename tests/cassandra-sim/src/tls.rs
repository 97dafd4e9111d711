//! The management API over mutual TLS, for pods set up as cass-operator does with
//! `managementApiAuth.manual`: the cassandra container has `MGMT_API_TLS_CA_CERT_FILE`,
//! `MGMT_API_TLS_CERT_FILE` and `MGMT_API_TLS_KEY_FILE`, each a file of a mounted Secret.
//! Such a pod's management API serves HTTPS with that certificate and key, and refuses any
//! client that does not present a certificate signed by that CA. Without those variables
//! it stays plain HTTP.
//!
//! Key material never reaches the simulator's state dumps or logs: [`MgmtTls`] serializes
//! the Secret's name and what is wrong with it, nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The variables the management API reads its TLS files from.
pub const CA_ENV: &str = "MGMT_API_TLS_CA_CERT_FILE";
pub const CERT_ENV: &str = "MGMT_API_TLS_CERT_FILE";
pub const KEY_ENV: &str = "MGMT_API_TLS_KEY_FILE";

/// Where one of the TLS files comes from: a key of a Secret mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    pub env: &'static str,
    pub secret: String,
    pub key: String,
}

/// The server side of a pod's management-API TLS.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MgmtTls {
    /// Names of the Secrets the files come from (one, as cass-operator mounts it).
    pub secrets: Vec<String>,
    /// Why it cannot serve (a Secret or key missing, a certificate that does not parse);
    /// the management API then does not come up, as a real one could not start.
    pub error: Option<String>,
    #[serde(skip)]
    pem: Option<ServerPem>,
}

#[derive(Clone, PartialEq)]
struct ServerPem {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for MgmtTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MgmtTls")
            .field("secrets", &self.secrets)
            .field("error", &self.error)
            .field("fingerprint", &self.fingerprint().map(hex::encode))
            .finish()
    }
}

impl MgmtTls {
    /// From PEM texts (CA, server certificate chain, server key); checked by building the
    /// server configuration, so a bad one carries its error from the start.
    pub fn from_pem(secrets: Vec<String>, ca: &[u8], cert: &[u8], key: &[u8]) -> MgmtTls {
        let pem = ServerPem {
            ca: ca.to_vec(),
            cert: cert.to_vec(),
            key: key.to_vec(),
        };
        let error = build_config(&pem).err();
        MgmtTls {
            secrets,
            error,
            pem: Some(pem),
        }
    }

    fn failed(secrets: Vec<String>, error: String) -> MgmtTls {
        MgmtTls {
            secrets,
            error: Some(error),
            pem: None,
        }
    }

    /// Identifies the material: a listener serving other material is replaced.
    pub fn fingerprint(&self) -> Option<[u8; 32]> {
        let pem = self.pem.as_ref().filter(|_| self.error.is_none())?;
        let mut h = Sha256::new();
        for part in [&pem.ca, &pem.cert, &pem.key] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Some(h.finalize().into())
    }

    /// The rustls server configuration: this certificate, client certificates required
    /// and verified against the CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let pem = self.pem.as_ref().ok_or("no TLS material")?;
        build_config(pem)
    }
}

fn build_config(pem: &ServerPem) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem.ca) {
        let cert = cert.map_err(|e| format!("CA certificate does not parse: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate refused: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CA certificate".into());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server certificate does not parse: {e}"))?;
    if chain.is_empty() {
        return Err("no server certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| format!("server key does not parse: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| format!("server certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

fn cassandra(pod: &Pod) -> Option<&Container> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "cassandra")
}

/// Whether the pod's management API serves TLS: the three files, each resolved to a key of
/// a Secret volume mounted into the cassandra container. None for a plain pod; Err when a
/// file is set but cannot come from a Secret (no mount holds it, or the volume is not a
/// Secret).
pub fn tls_files(pod: &Pod) -> Option<Result<Vec<SecretFile>, String>> {
    let c = cassandra(pod)?;
    let envs = c.env.as_deref().unwrap_or_default();
    let value = |name: &str| {
        envs.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    // The certificate variable is what turns TLS on; the other two must come with it.
    value(CERT_ENV)?;
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let resolve = |env: &'static str| -> Result<SecretFile, String> {
        let path = value(env).ok_or_else(|| format!("{CERT_ENV} is set but {env} is not"))?;
        let mount = c
            .volume_mounts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| {
                let rest = path.strip_prefix(m.mount_path.trim_end_matches('/'))?;
                let key = rest.strip_prefix('/')?;
                (!key.is_empty() && !key.contains('/')).then(|| (m, key.to_string()))
            })
            .next();
        let Some((mount, key)) = mount else {
            return Err(format!(
                "{env}={path} is in no volume mounted into the container"
            ));
        };
        let secret = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .and_then(|v| v.secret.as_ref())
            .and_then(|s| s.secret_name.clone())
            .ok_or_else(|| format!("{env}={path}: volume {} is not a Secret", mount.name))?;
        Ok(SecretFile { env, secret, key })
    };
    Some(
        [CA_ENV, CERT_ENV, KEY_ENV]
            .into_iter()
            .map(resolve)
            .collect(),
    )
}

/// The pod's management-API TLS, reading its Secrets through `client`; None for a plain pod.
pub async fn mgmt_tls_with_client(pod: &Pod, client: &Client) -> Option<MgmtTls> {
    let files = match tls_files(pod)? {
        Ok(f) => f,
        Err(e) => return Some(MgmtTls::failed(Vec::new(), e)),
    };
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut names: Vec<String> = files.iter().map(|f| f.secret.clone()).collect();
    names.dedup();
    let mut data: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for name in &names {
        match api.get_opt(name).await {
            Ok(Some(s)) => {
                let d = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                data.insert(name.clone(), d);
            }
            Ok(None) => {
                return Some(MgmtTls::failed(
                    names.clone(),
                    format!("Secret {ns}/{name} not found"),
                ));
            }
            Err(e) => {
                return Some(MgmtTls::failed(
                    names.clone(),
                    format!("Secret {ns}/{name} cannot be read: {e}"),
                ));
            }
        }
    }
    Some(from_files(&ns, names, &files, &data))
}

/// [`MgmtTls`] from the Secrets' data (name → key → bytes).
pub fn from_files(
    namespace: &str,
    secrets: Vec<String>,
    files: &[SecretFile],
    data: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> MgmtTls {
    let mut parts = Vec::new();
    for f in files {
        match data
            .get(&f.secret)
            .and_then(|d| d.get(&f.key))
            .filter(|v| !v.is_empty())
        {
            Some(v) => parts.push(v.clone()),
            None => {
                return MgmtTls::failed(
                    secrets,
                    format!(
                        "Secret {namespace}/{} has no key {:?} ({})",
                        f.secret, f.key, f.env
                    ),
                );
            }
        }
    }
    MgmtTls::from_pem(secrets, &parts[0], &parts[1], &parts[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("pod")
    }

    fn tls_pod() -> Pod {
        pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "volumes": [{"name": "certs", "secret": {"secretName": "server-tls"}}],
                "containers": [{
                    "name": "cassandra",
                    "volumeMounts": [{"name": "certs", "mountPath": "/management-api-certs"}],
                    "env": [
                        {"name": CA_ENV, "value": "/management-api-certs/ca.crt"},
                        {"name": CERT_ENV, "value": "/management-api-certs/tls.crt"},
                        {"name": KEY_ENV, "value": "/management-api-certs/tls.key"}
                    ]
                }]
            }
        }))
    }

    #[test]
    fn the_files_come_from_the_mounted_secret() {
        let files = tls_files(&tls_pod()).expect("TLS pod").expect("resolved");
        let keys: Vec<_> = files
            .iter()
            .map(|f| (f.env, f.secret.as_str(), f.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (CA_ENV, "server-tls", "ca.crt"),
                (CERT_ENV, "server-tls", "tls.crt"),
                (KEY_ENV, "server-tls", "tls.key"),
            ]
        );
    }

    #[test]
    fn a_plain_pod_serves_http() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "cassandra", "env": [{"name": "USE_MGMT_API", "value": "true"}]}]}
        }));
        assert!(tls_files(&p).is_none());
    }

    #[test]
    fn a_file_outside_any_mount_is_an_error_naming_it() {
        let mut p = tls_pod();
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].volume_mounts = None;
        }
        let err = tls_files(&p).expect("TLS pod").expect_err("unresolved");
        assert!(err.contains(CA_ENV) && err.contains("no volume"), "{err}");
    }

    #[test]
    fn a_missing_key_names_the_secret_and_key() {
        let files = tls_files(&tls_pod()).expect("TLS pod").expect("resolved");
        let data = BTreeMap::from([(
            "server-tls".to_string(),
            BTreeMap::from([("ca.crt".to_string(), b"x".to_vec())]),
        )]);
        let tls = from_files("ns", vec!["server-tls".into()], &files, &data);
        let err = tls.error.clone().expect("refused");
        assert!(
            err.contains("ns/server-tls") && err.contains("tls.crt"),
            "{err}"
        );
        assert!(tls.server_config().is_err());
        assert!(tls.fingerprint().is_none());
    }

    #[test]
    fn garbage_pem_is_refused_and_never_printed() {
        let tls = MgmtTls::from_pem(
            vec!["s".into()],
            b"not a cert",
            b"SECRET-CERT",
            b"SECRET-KEY",
        );
        assert!(tls.error.is_some());
        let shown = format!("{tls:?} {}", serde_json::to_string(&tls).expect("json"));
        assert!(!shown.contains("SECRET-KEY"), "{shown}");
    }
}
