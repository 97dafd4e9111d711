//! ClientConfig → a client per remote context, kept in the [`ClusterRegistry`] while the
//! operator runs. k8ssandra-operator restarts itself on every ClientConfig change; here a
//! change only swaps one client, and the controllers re-watch that cluster.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8ssandra_api::config::{ClientConfig, KUBECONFIG_SECRET_KEY};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use sha2::{Digest, Sha256};

use crate::clusters::{ClusterRegistry, LOCAL};

#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("ClientConfig {name}: spec.kubeConfigSecret.name is not set")]
    NoSecret { name: String },
    #[error("ClientConfig {name}: Secret {secret}: {reason}")]
    Secret {
        name: String,
        secret: String,
        reason: String,
    },
    #[error("ClientConfig {name}: kubeconfig in Secret {secret} is not usable: {reason}")]
    Kubeconfig {
        name: String,
        secret: String,
        reason: String,
    },
}

/// What one ClientConfig resolved to.
struct Resolved {
    context: String,
    fingerprint: String,
}

/// How often referenced Secrets are re-read: Secrets are not watched (a cluster-wide
/// Secret informer costs memory proportional to every Secret in the cluster), so a rotated
/// kubeconfig is noticed within this period.
const SECRET_RECHECK: Duration = Duration::from_secs(30);

async fn client_for(
    local: &Client,
    cc: &ClientConfig,
    namespace: &str,
) -> Result<(String, String, Client), ClientConfigError> {
    let name = cc.metadata.name.clone().unwrap_or_default();
    let secret_name = cc
        .spec
        .kube_config_secret
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ClientConfigError::NoSecret { name: name.clone() })?;
    let secrets: Api<Secret> = Api::namespaced(local.clone(), namespace);
    let secret_err = |reason: String| ClientConfigError::Secret {
        name: name.clone(),
        secret: secret_name.clone(),
        reason,
    };
    let secret = secrets
        .get(&secret_name)
        .await
        .map_err(|e| secret_err(e.to_string()))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KUBECONFIG_SECRET_KEY))
        .map(|b| b.0.clone())
        .ok_or_else(|| secret_err(format!("has no key {KUBECONFIG_SECRET_KEY:?}")))?;
    let fingerprint = hex::encode(Sha256::digest(&bytes));
    let kc_err = |reason: String| ClientConfigError::Kubeconfig {
        name: name.clone(),
        secret: secret_name.clone(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|e| kc_err(e.to_string()))?;
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|e| kc_err(e.to_string()))?;
    let context = cc.context_name().to_string();
    // The context named by the ClientConfig when the kubeconfig has it, else its current one.
    let use_context = kubeconfig
        .contexts
        .iter()
        .any(|c| c.name == context)
        .then(|| context.clone());
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &KubeConfigOptions {
            context: use_context,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| kc_err(e.to_string()))?;
    let client = Client::try_from(config).map_err(|e| kc_err(e.to_string()))?;
    Ok((context, fingerprint, client))
}

/// Watches ClientConfigs in `namespace` (all namespaces when None) of the local cluster and
/// keeps `registry` in step. Runs until aborted.
pub async fn run(local: Client, namespace: Option<String>, registry: ClusterRegistry) {
    let api: Api<ClientConfig> = match &namespace {
        Some(ns) => Api::namespaced(local.clone(), ns),
        None => Api::all(local.clone()),
    };
    let mut known: HashMap<(String, String), Resolved> = HashMap::new();
    let mut configs: BTreeMap<(String, String), ClientConfig> = BTreeMap::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut recheck = tokio::time::interval(SECRET_RECHECK);
    loop {
        tokio::select! {
            event = stream.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(Event::Apply(cc)) | Ok(Event::InitApply(cc)) => {
                        let key = (cc.metadata.namespace.clone().unwrap_or_default(), cc.metadata.name.clone().unwrap_or_default());
                        configs.insert(key.clone(), cc);
                        sync_one(&local, &registry, &mut known, &configs, &key).await;
                    }
                    Ok(Event::Delete(cc)) => {
                        let key = (cc.metadata.namespace.clone().unwrap_or_default(), cc.metadata.name.clone().unwrap_or_default());
                        configs.remove(&key);
                        if let Some(r) = known.remove(&key) {
                            tracing::info!(context = %r.context, "ClientConfig removed; dropping its cluster");
                            registry.remove(&r.context);
                        }
                    }
                    Ok(Event::Init) | Ok(Event::InitDone) => {}
                    Err(error) => tracing::warn!(%error, "ClientConfig watch failed; retrying"),
                }
            }
            _ = recheck.tick() => {
                let keys: Vec<_> = configs.keys().cloned().collect();
                for key in keys {
                    sync_one(&local, &registry, &mut known, &configs, &key).await;
                }
            }
        }
    }
}

async fn sync_one(
    local: &Client,
    registry: &ClusterRegistry,
    known: &mut HashMap<(String, String), Resolved>,
    configs: &BTreeMap<(String, String), ClientConfig>,
    key: &(String, String),
) {
    let Some(cc) = configs.get(key) else { return };
    match client_for(local, cc, &key.0).await {
        Ok((context, fingerprint, client)) => {
            if context == LOCAL {
                return;
            }
            let unchanged = known
                .get(key)
                .is_some_and(|r| r.context == context && r.fingerprint == fingerprint);
            if unchanged {
                return;
            }
            if let Some(old) = known.get(key)
                && old.context != context
            {
                registry.remove(&old.context);
            }
            tracing::info!(context = %context, clientconfig = %key.1, "cluster client configured");
            registry.insert(&context, client);
            known.insert(
                key.clone(),
                Resolved {
                    context,
                    fingerprint,
                },
            );
        }
        Err(error) => {
            // A broken ClientConfig never removes a working client: the cluster keeps
            // being reconciled with what worked last.
            tracing::warn!(%error, "ClientConfig not usable");
        }
    }
}
