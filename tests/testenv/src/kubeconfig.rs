//! Kubeconfig documents for the admin identity of one or several clusters.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};

/// What a kubeconfig needs to reach one cluster as admin.
#[derive(Debug, Clone)]
pub struct KubeconfigEntry {
    pub context: String,
    pub server: String,
    pub ca_cert_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// One kubeconfig with a cluster, a user and a context per entry (all named after the
/// context); the first entry is the current context.
pub fn render(entries: &[&KubeconfigEntry]) -> Result<String> {
    let first = entries
        .first()
        .ok_or_else(|| Error::Kubeconfig("no clusters to write".into()))?;
    let clusters: Vec<_> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.context,
                "cluster": {
                    "server": e.server,
                    "certificate-authority-data": STANDARD.encode(&e.ca_cert_pem),
                }
            })
        })
        .collect();
    let users: Vec<_> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.context,
                "user": {
                    "client-certificate-data": STANDARD.encode(&e.client_cert_pem),
                    "client-key-data": STANDARD.encode(&e.client_key_pem),
                }
            })
        })
        .collect();
    let contexts: Vec<_> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.context,
                "context": { "cluster": e.context, "user": e.context, "namespace": "default" }
            })
        })
        .collect();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": first.context,
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
    });
    serde_yaml::to_string(&doc).map_err(|e| Error::Kubeconfig(e.to_string()))
}

/// A client for `context` that does not log failed requests: for polling `/readyz`, which
/// answers 500 until the server has finished starting.
pub(crate) async fn quiet_client_for(yaml: &str, context: &str) -> Result<kube::Client> {
    use kube::client::ConfigExt;
    let config = config_for(yaml, context).await?;
    let https = config
        .rustls_https_connector()
        .map_err(|e| Error::Kubeconfig(format!("TLS for {context}: {e}")))?;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}

async fn config_for(yaml: &str, context: &str) -> Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)
        .map_err(|e| Error::Kubeconfig(format!("parsing: {e}")))?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Kubeconfig(format!("context {context}: {e}")))
}

/// A client for `context` in a kubeconfig document.
pub async fn client_for(yaml: &str, context: &str) -> Result<kube::Client> {
    let mut config = config_for(yaml, context).await?;
    // Harness clients talk to a local server; long stalls mean it is down, not slow.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    kube::Client::try_from(config).map_err(|e| Error::Kubeconfig(format!("client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_context_per_entry() {
        let e = |n: &str| KubeconfigEntry {
            context: n.into(),
            server: format!("https://127.0.0.1:{}", n.len()),
            ca_cert_pem: "ca".into(),
            client_cert_pem: "cert".into(),
            client_key_pem: "key".into(),
        };
        let (a, b) = (e("cluster-0"), e("cluster-1"));
        let yaml = render(&[&a, &b]).unwrap();
        let parsed = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let names: Vec<_> = parsed.contexts.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["cluster-0", "cluster-1"]);
        assert_eq!(parsed.current_context.as_deref(), Some("cluster-0"));
        assert_eq!(parsed.clusters.len(), 2);
        assert_eq!(parsed.auth_infos.len(), 2);
    }
}
