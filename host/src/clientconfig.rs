//! ClientConfig → a client per remote context, kept in the [`ClusterRegistry`] while the
//! operator runs. k8ssandra-operator restarts itself on every ClientConfig change; here a
//! change only swaps one client, and the controllers re-watch that cluster.
//!
//! A kubeconfig comes from a Secret that anyone allowed to write Secrets in the namespace
//! can change, so it must not make the operator run a program or read a file of its own
//! choosing: `exec` (unless `--allow-kubeconfig-exec`) and `auth-provider` credential
//! plugins and every file reference are refused, and the ClientConfig's `Ready` condition
//! names the field.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8ssandra_api::config::{CLIENT_CONFIG_READY, ClientConfig, KUBECONFIG_SECRET_KEY};
use kube::api::{Patch, PatchParams};
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
    #[error(
        "ClientConfig {name}: kubeconfig in Secret {secret} refused: {}",
        join(refusals)
    )]
    Refused {
        name: String,
        secret: String,
        refusals: Vec<Refusal>,
    },
}

impl ClientConfigError {
    /// The `reason` of the ClientConfig's `Ready` condition.
    fn reason(&self) -> &'static str {
        match self {
            ClientConfigError::NoSecret { .. } => "NoKubeconfigSecret",
            ClientConfigError::Secret { .. } => "SecretNotUsable",
            ClientConfigError::Kubeconfig { .. } => "KubeconfigInvalid",
            ClientConfigError::Refused { .. } => "KubeconfigRefused",
        }
    }
}

/// One part of a kubeconfig the operator will not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where it is, in the kubeconfig's own spelling (`users[admin].user.exec`).
    pub field: String,
    /// Why it is refused.
    pub rule: &'static str,
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| format!("{}: {}", r.field, r.rule))
        .collect::<Vec<_>>()
        .join("; ")
}

const FILE_RULE: &str = "file references are not allowed (the operator would read a file of \
     its own file system); embed the content with the matching *-data field instead";
const EXEC_RULE: &str = "exec credential plugins run a program inside the operator; not \
     allowed unless the operator runs with --allow-kubeconfig-exec";
const AUTH_PROVIDER_RULE: &str = "auth-provider plugins are not allowed (some run a program, \
     all are deprecated upstream); use a token, a client certificate or an exec plugin";

/// Every part of `kubeconfig` that would make the operator run a program or read a local
/// file. Every entry is checked, not only the context in use: a Secret is one unit of trust.
pub fn check_kubeconfig(kubeconfig: &Kubeconfig, allow_exec: bool) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let mut refuse = |field: String, rule: &'static str| refusals.push(Refusal { field, rule });
    for named in &kubeconfig.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        if cluster.certificate_authority.is_some() {
            refuse(
                format!("clusters[{}].cluster.certificate-authority", named.name),
                FILE_RULE,
            );
        }
    }
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let field = |key: &str| format!("users[{}].user.{key}", named.name);
        if user.token_file.is_some() {
            refuse(field("tokenFile"), FILE_RULE);
        }
        if user.client_certificate.is_some() {
            refuse(field("client-certificate"), FILE_RULE);
        }
        if user.client_key.is_some() {
            refuse(field("client-key"), FILE_RULE);
        }
        if user.auth_provider.is_some() {
            refuse(field("auth-provider"), AUTH_PROVIDER_RULE);
        }
        if user.exec.is_some() && !allow_exec {
            refuse(field("exec"), EXEC_RULE);
        }
    }
    refusals
}

/// How ClientConfigs are turned into clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientConfigOptions {
    /// Accept kubeconfigs with `exec` credential plugins (the program runs inside the
    /// operator's container with its permissions).
    pub allow_exec: bool,
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
    options: ClientConfigOptions,
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
    // The parser's message may quote a value of the Secret: say only that it failed.
    let kubeconfig = Kubeconfig::from_yaml(&text)
        .map_err(|_| kc_err("not a kubeconfig (YAML with clusters, users, contexts)".into()))?;
    let refusals = check_kubeconfig(&kubeconfig, options.allow_exec);
    if !refusals.is_empty() {
        return Err(ClientConfigError::Refused {
            name: name.clone(),
            secret: secret_name.clone(),
            refusals,
        });
    }
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
pub async fn run(
    local: Client,
    namespace: Option<String>,
    registry: ClusterRegistry,
    options: ClientConfigOptions,
) {
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
                        sync_one(&local, &registry, &mut known, &configs, &key, options).await;
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
                    sync_one(&local, &registry, &mut known, &configs, &key, options).await;
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
    options: ClientConfigOptions,
) {
    let Some(cc) = configs.get(key) else { return };
    match client_for(local, cc, &key.0, options).await {
        Ok((context, fingerprint, client)) => {
            if context == LOCAL {
                return;
            }
            write_ready(
                local,
                cc,
                "True",
                "ClusterConfigured",
                &format!("context {context:?} is configured"),
            )
            .await;
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
            write_ready(local, cc, "False", error.reason(), &error.to_string()).await;
        }
    }
}

/// Sets the `Ready` condition of `cc` unless it already says the same.
async fn write_ready(local: &Client, cc: &ClientConfig, status: &str, reason: &str, message: &str) {
    let live = cc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == CLIENT_CONFIG_READY));
    if live.is_some_and(|c| c.status == status && c.reason == reason && c.message == message) {
        return;
    }
    let last_transition_time = live
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    let condition = Condition {
        type_: CLIENT_CONFIG_READY.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time,
        observed_generation: cc.metadata.generation,
    };
    let mut conditions: Vec<Condition> = cc
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != CLIENT_CONFIG_READY)
        .collect();
    conditions.push(condition);
    let name = cc.metadata.name.clone().unwrap_or_default();
    let api: Api<ClientConfig> = Api::namespaced(
        local.clone(),
        cc.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let body = serde_json::json!({ "status": { "conditions": conditions } });
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(clientconfig = %name, %error, "cannot write the ClientConfig's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMBEDDED: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: east
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Zm9v
users:
- name: admin
  user:
    client-certificate-data: Zm9v
    client-key-data: Zm9v
- name: robot
  user:
    token: abc
contexts:
- name: east
  context: {cluster: east, user: admin}
current-context: east
"#;

    fn parse(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).expect("test kubeconfig parses")
    }

    fn fields(refusals: &[Refusal]) -> Vec<&str> {
        refusals.iter().map(|r| r.field.as_str()).collect()
    }

    #[test]
    fn embedded_credentials_are_accepted() {
        assert!(check_kubeconfig(&parse(EMBEDDED), false).is_empty());
    }

    #[test]
    fn file_references_are_refused_by_field() {
        let text = r#"
clusters:
- name: east
  cluster: {server: "https://e:6443", certificate-authority: /etc/ca.crt}
users:
- name: admin
  user: {client-certificate: /tmp/c.crt, client-key: /tmp/c.key}
- name: robot
  user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}
contexts:
- name: east
  context: {cluster: east, user: admin}
"#;
        let refusals = check_kubeconfig(&parse(text), true);
        assert_eq!(
            fields(&refusals),
            [
                "clusters[east].cluster.certificate-authority",
                "users[admin].user.client-certificate",
                "users[admin].user.client-key",
                "users[robot].user.tokenFile",
            ]
        );
        assert!(refusals.iter().all(|r| r.rule == FILE_RULE));
    }

    #[test]
    fn exec_is_refused_unless_allowed_and_auth_provider_always() {
        let text = r#"
clusters:
- name: east
  cluster: {server: "https://e:6443"}
users:
- name: cloud
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: ["-c", "id"]}
- name: legacy
  user:
    auth-provider: {name: gcp, config: {cmd-path: /bin/true}}
contexts:
- name: east
  context: {cluster: east, user: cloud}
"#;
        let kubeconfig = parse(text);
        let refused = check_kubeconfig(&kubeconfig, false);
        assert_eq!(
            fields(&refused),
            ["users[cloud].user.exec", "users[legacy].user.auth-provider"]
        );
        assert!(refused[0].rule.contains("--allow-kubeconfig-exec"));
        assert_eq!(
            fields(&check_kubeconfig(&kubeconfig, true)),
            ["users[legacy].user.auth-provider"]
        );
    }

    #[test]
    fn the_error_names_field_and_rule() {
        let error = ClientConfigError::Refused {
            name: "east".into(),
            secret: "east-kubeconfig".into(),
            refusals: vec![Refusal {
                field: "users[cloud].user.exec".into(),
                rule: EXEC_RULE,
            }],
        };
        let text = error.to_string();
        assert!(text.contains("users[cloud].user.exec"), "{text}");
        assert!(text.contains("--allow-kubeconfig-exec"), "{text}");
        assert_eq!(error.reason(), "KubeconfigRefused");
    }
}
