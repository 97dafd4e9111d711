//! Pods from Kubernetes: a watch per context feeds the simulator, and readiness goes back as a
//! status patch, the way a kubelet's readiness probe would set it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, ReadyPatch};
use crate::data::{RESTORE_CONTAINER, RestoreEnv};
use crate::model::*;

/// Field manager of the readiness patches, distinct from the fake kubelet's.
pub const FIELD_MANAGER: &str = "cassandra-sim";

/// How often a pod whose management-API TLS Secret is missing or unusable is read again.
const TLS_SECRET_RECHECK: Duration = Duration::from_secs(2);

/// Name of the config builder init container whose env carries the node's configuration.
pub const CONFIG_CONTAINER: &str = "server-config-init";

fn image_version(c: &Container) -> Option<String> {
    let image = c.image.as_deref()?;
    let tag = image.rsplit_once(':')?.1;
    let version: String = tag
        .chars()
        .take_while(|ch| ch.is_ascii_digit() || *ch == '.')
        .collect();
    (version.split('.').count() == 3 && version.split('.').all(|p| !p.is_empty()))
        .then_some(version)
}

/// A plain env value, or a label of the pod when the env refers to one
/// (`fieldRef: metadata.labels['…']`).
fn env_value(pod: &Pod, c: &Container, name: &str) -> Option<String> {
    let e = c.env.as_ref()?.iter().find(|e| e.name == name)?;
    if let Some(v) = &e.value {
        return Some(v.clone());
    }
    let path = &e.value_from.as_ref()?.field_ref.as_ref()?.field_path;
    let label = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
    pod.labels().get(label).cloned()
}

/// The Secret (name, key) `CONFIG_FILE_DATA` comes from, when it comes from one.
pub fn config_secret_ref(pod: &Pod) -> Option<(String, String)> {
    let spec = pod.spec.as_ref()?;
    let init = spec
        .init_containers
        .as_ref()?
        .iter()
        .find(|c| c.name == CONFIG_CONTAINER)?;
    let e = init
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == "CONFIG_FILE_DATA")?;
    let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((r.name.clone(), r.key.clone()))
}

/// The node's configuration from the pod: `Ok(None)` for a pod without a config builder
/// init container (or without `CONFIG_FILE_DATA`), `Err` when it cannot be read.
/// `secret_config` is the Secret's `config` text when `CONFIG_FILE_DATA` comes from a Secret.
fn node_config(pod: &Pod, secret_config: Option<&str>) -> Result<Option<NodeConfig>, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let Some(init) = spec
        .init_containers
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.name == CONFIG_CONTAINER))
    else {
        return Ok(None);
    };
    let data = match (
        env_value(pod, init, "CONFIG_FILE_DATA"),
        config_secret_ref(pod),
    ) {
        (Some(v), _) => v,
        (None, Some((name, key))) => match secret_config {
            Some(v) => v.to_string(),
            None => {
                return Err(format!(
                    "CONFIG_FILE_DATA comes from key {key} of Secret {name}, which could not be read"
                ));
            }
        },
        (None, None) => return Ok(None),
    };
    let cassandra = spec.containers.iter().find(|c| c.name == "cassandra");
    let jvm = cassandra.and_then(|c| env_value(pod, c, "JVM_EXTRA_OPTS"));
    let image = cassandra.and_then(image_version);
    NodeConfig::from_rendered(
        &data,
        env_value(pod, init, "PRODUCT_NAME").as_deref(),
        env_value(pod, init, "PRODUCT_VERSION").as_deref(),
        image.as_deref(),
        env_value(pod, init, "RACK_NAME").as_deref(),
        jvm.as_deref(),
    )
    .map(Some)
}

/// What the simulator sees of a Kubernetes pod; None when it is no Cassandra pod. A
/// configuration held in a Secret is not read here (see [`pod_info_with_client`]): the pod
/// gets a `config_error` saying so.
pub fn pod_info(context: &str, pod: &Pod) -> Option<PodInfo> {
    // Without a client the TLS Secrets cannot be read: such a pod's API stays down.
    let tls = crate::tls::tls_files(pod).map(|files| {
        let mut t = crate::tls::MgmtTls::default();
        t.error = Some(match files {
            Ok(_) => "the TLS Secrets were not read (no Kubernetes client)".to_string(),
            Err(e) => e,
        });
        t
    });
    pod_info_with_secret(context, pod, None, tls)
}

/// [`pod_info`], reading a configuration held in a Secret through `client`.
pub async fn pod_info_with_client(context: &str, pod: &Pod, client: &Client) -> Option<PodInfo> {
    let secret = match config_secret_ref(pod) {
        None => None,
        Some((name, key)) => {
            let ns = pod.namespace().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
            match api.get_opt(&name).await {
                Ok(Some(s)) => s
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&key))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok()),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(secret = %name, namespace = %ns, error = %e, "cannot read the configuration Secret");
                    None
                }
            }
        }
    };
    let tls = crate::tls::mgmt_tls_with_client(pod, client).await;
    let mut info = pod_info_with_secret(context, pod, secret.as_deref(), tls)?;
    info.restore = restore_env_with_client(pod, client).await;
    Some(info)
}

/// The restore parameters of the pod's `medusa-restore` init container: its `envFrom`
/// ConfigMaps (a missing optional one adds nothing), then its own `env` values, as the
/// kubelet builds a container's environment.
async fn restore_env_with_client(pod: &Pod, client: &Client) -> Option<RestoreEnv> {
    let init = pod
        .spec
        .as_ref()?
        .init_containers
        .as_ref()?
        .iter()
        .find(|c| c.name == RESTORE_CONTAINER)?;
    let ns = pod.namespace().unwrap_or_default();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for from in init.env_from.iter().flatten() {
        let Some(name) = from.config_map_ref.as_ref().map(|r| r.name.clone()) else {
            continue;
        };
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        match api.get_opt(&name).await {
            Ok(Some(cm)) => {
                let prefix = from.prefix.clone().unwrap_or_default();
                for (k, v) in cm.data.unwrap_or_default() {
                    vars.insert(format!("{prefix}{k}"), v);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(config_map = %name, namespace = %ns, error = %e, "cannot read the restore ConfigMap");
            }
        }
    }
    for e in init.env.iter().flatten() {
        if let Some(v) = &e.value {
            vars.insert(e.name.clone(), v.clone());
        }
    }
    RestoreEnv::from_vars(&vars)
}

fn pod_info_with_secret(
    context: &str,
    pod: &Pod,
    secret: Option<&str>,
    mgmt_tls: Option<crate::tls::MgmtTls>,
) -> Option<PodInfo> {
    let labels = pod.labels();
    let cluster = labels.get(LABEL_CLUSTER)?.clone();
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    // A finished pod's containers no longer run: no management API there.
    let ip = if matches!(phase, Some("Succeeded") | Some("Failed")) {
        None
    } else {
        status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
    };
    let observed_ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status == "True");
    let statuses = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let container_statuses = statuses.iter().map(|c| c.name.clone()).collect();
    let containers = statuses
        .iter()
        .map(|c| ContainerInfo {
            name: c.name.clone(),
            ready: c.ready,
            started: c.started == Some(true),
            running: c.state.as_ref().is_some_and(|s| s.running.is_some()),
        })
        .collect();
    let cassandra = pod.spec.as_ref().and_then(|spec| {
        spec.containers
            .iter()
            .find(|c| c.name == "cassandra")
            .or_else(|| spec.containers.first())
    });
    let server_version = cassandra.and_then(image_version);
    let readiness_probe = cassandra
        .and_then(|c| c.readiness_probe.as_ref())
        .map(|p| ProbeSpec {
            initial_delay_ms: u64::try_from(p.initial_delay_seconds.unwrap_or(0)).unwrap_or(0)
                * 1000,
            // Kubernetes' default period.
            period_ms: u64::try_from(p.period_seconds.unwrap_or(10)).unwrap_or(10) * 1000,
        });
    let mgmt_api_start_delay_ms = pod
        .annotations()
        .get(ANNOTATION_MGMT_API_START_DELAY)
        .and_then(|v| v.trim().parse().ok());
    let (config, config_error) = match node_config(pod, secret) {
        Ok(c) => (c, None),
        Err(e) => (None, Some(e)),
    };
    Some(PodInfo {
        key: PodKey::new(context, pod.namespace().unwrap_or_default(), pod.name_any()),
        uid: pod.uid().unwrap_or_default(),
        ip,
        cluster,
        datacenter: labels.get(LABEL_DATACENTER).cloned().unwrap_or_default(),
        rack: labels.get(LABEL_RACK).cloned().unwrap_or_default(),
        seed: labels.get(LABEL_SEED).is_some_and(|v| v == "true"),
        server_version,
        observed_ready,
        container_statuses,
        containers,
        config,
        config_error,
        mgmt_api_start_delay_ms,
        readiness_probe,
        metrics_config: crate::metrics::config_map_ref(pod),
        mgmt_tls,
        medusa_grpc_port: medusa_grpc_port(pod),
        cql_port: crate::cql::native_port(pod),
        restore: None,
    })
}

/// The gRPC port of the pod's `medusa` container (upstream's 50051 when it names none).
fn medusa_grpc_port(pod: &Pod) -> Option<u16> {
    let medusa = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "medusa")?;
    let port = medusa
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("grpc"))
        .map_or(i32::from(crate::medusa::DEFAULT_GRPC_PORT), |p| {
            p.container_port
        });
    u16::try_from(port).ok()
}

/// Watches Cassandra pods of one context until cancelled.
pub(crate) async fn watch_pods(
    core: Arc<Core>,
    context: String,
    client: Client,
    cancel: CancellationToken,
) {
    core.set_kube_client(&context, client.clone());
    let api: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().labels(LABEL_CLUSTER);
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    // Pods seen during a (re)list, to forget those deleted while the watch was down.
    let mut relist: Option<HashSet<PodKey>> = None;
    let mut known: HashSet<PodKey> = HashSet::new();
    // Pods whose management-API TLS Secret could not be used: a Secret makes no pod event,
    // so they are read again until it can (as a kubelet retries mounting it).
    let mut tls_waiting: HashMap<PodKey, Pod> = HashMap::new();
    let mut recheck = tokio::time::interval(TLS_SECRET_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = recheck.tick(), if !tls_waiting.is_empty() => {
                for (key, pod) in std::mem::take(&mut tls_waiting) {
                    if let Some(info) = pod_info_with_client(&context, &pod, &client).await {
                        if info.mgmt_tls.as_ref().is_some_and(|t| t.error.is_some()) {
                            tls_waiting.insert(key, pod);
                        } else {
                            core.upsert_pod(info);
                        }
                    }
                }
                continue;
            }
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else {
            tracing::warn!(context = %context, "pod watch ended");
            return;
        };
        match ev {
            Ok(Event::Init) => relist = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if let Some(info) = pod_info_with_client(&context, &pod, &client).await {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(info.key.clone());
                    }
                    known.insert(info.key.clone());
                    if info.mgmt_tls.as_ref().is_some_and(|t| t.error.is_some()) {
                        tls_waiting.insert(info.key.clone(), pod);
                    } else {
                        tls_waiting.remove(&info.key);
                    }
                    core.upsert_pod(info);
                }
            }
            Ok(Event::Delete(pod)) => {
                let key = PodKey::new(
                    &context,
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                );
                known.remove(&key);
                tls_waiting.remove(&key);
                core.remove_pod(&key);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relist.take() {
                    let gone: Vec<PodKey> = known.difference(&seen).cloned().collect();
                    for key in gone {
                        known.remove(&key);
                        tls_waiting.remove(&key);
                        core.remove_pod(&key);
                    }
                }
            }
            Err(e) => {
                // The stream backs off by itself before it retries.
                tracing::warn!(context = %context, error = %e, "pod watch error; retrying");
            }
        }
    }
}

/// Applies readiness patches for one context until cancelled.
pub(crate) async fn patch_readiness(
    core: Arc<Core>,
    client: Client,
    mut rx: mpsc::UnboundedReceiver<ReadyPatch>,
    cancel: CancellationToken,
) {
    loop {
        let p = tokio::select! {
            _ = cancel.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), &p.key.namespace);
        let status = if p.ready { "True" } else { "False" };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let container_statuses: Vec<_> = p
            .containers
            .iter()
            .map(|c| {
                let mut v = json!({"name": c.name, "ready": c.ready, "started": true});
                if c.set_running {
                    v["state"] = json!({"running": {"startedAt": now}});
                }
                v
            })
            .collect();
        // Null removes the fake kubelet's "probe pending" reason once the node is ready.
        let (reason, message) = if p.ready {
            (json!(null), json!(null))
        } else {
            (
                json!("ReadinessProbeFailed"),
                json!("Cassandra is not NORMAL (simulated readiness probe)"),
            )
        };
        let condition = |type_: &str| {
            json!({
                "type": type_,
                "status": status,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            })
        };
        let mut body = json!({
            "status": {
                "conditions": [condition("Ready"), condition("ContainersReady")]
            }
        });
        if !container_statuses.is_empty() {
            body["status"]["containerStatuses"] = json!(container_statuses);
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        // Strategic merge keys conditions by type and container statuses by name, so the
        // fake kubelet's other conditions stay as they are.
        match api
            .patch_status(&p.key.name, &params, &Patch::Strategic(body))
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %p.key, ready = p.ready, "pod readiness patched");
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %p.key, error = %e, "readiness patch failed; will retry");
                let core = Arc::clone(&core);
                let key = p.key.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    core.ready_patch_failed(&key);
                });
            }
        }
    }
}

/// Clients for contexts of a kubeconfig file (all of them when `contexts` is empty).
pub async fn clients_from_kubeconfig(
    path: &std::path::Path,
    contexts: &[String],
) -> Result<Vec<(String, Client)>, crate::SimError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| crate::SimError::Kubeconfig(format!("{}: {e}", path.display())))?;
    let names: Vec<String> = if contexts.is_empty() {
        kc.contexts.iter().map(|c| c.name.clone()).collect()
    } else {
        contexts.to_vec()
    };
    let mut out = Vec::new();
    for name in names {
        let opts = KubeConfigOptions {
            context: Some(name.clone()),
            ..KubeConfigOptions::default()
        };
        let cfg = kube::Config::from_custom_kubeconfig(kc.clone(), &opts)
            .await
            .map_err(|e| crate::SimError::Kubeconfig(format!("context {name}: {e}")))?;
        let client = Client::try_from(cfg)
            .map_err(|e| crate::SimError::Kubeconfig(format!("context {name}: {e}")))?;
        out.push((name, client));
    }
    Ok(out)
}

/// Watches CassandraDatacenters of one context for `spec.additionalSeeds`: what
/// `<cluster>-<dc>-additional-seed-service` resolves to. Without the CRD the watch keeps
/// retrying quietly and such Services resolve to nothing.
pub(crate) async fn watch_datacenters(
    core: Arc<Core>,
    context: String,
    client: Client,
    cancel: CancellationToken,
) {
    use kube::api::{ApiResource, DynamicObject};
    use kube::core::GroupVersionKind;
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "cassandradatacenters");
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let service = |dc: &DynamicObject| -> Option<(String, String)> {
        let cluster = dc.data.pointer("/spec/clusterName")?.as_str()?;
        let ns = dc.namespace()?;
        Some((
            ns,
            format!(
                "{}-{}-additional-seed-service",
                crate::core::clean_name(cluster),
                crate::core::clean_name(&dc.name_any())
            ),
        ))
    };
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { return };
        match ev {
            Ok(Event::InitApply(dc)) | Ok(Event::Apply(dc)) => {
                if let Some((ns, svc)) = service(&dc) {
                    let seeds: Vec<String> = dc
                        .data
                        .pointer("/spec/additionalSeeds")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str())
                                .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    core.set_additional_seeds(&context, &ns, &svc, seeds);
                }
            }
            Ok(Event::Delete(dc)) => {
                if let Some((ns, svc)) = service(&dc) {
                    core.set_additional_seeds(&context, &ns, &svc, Vec::new());
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(context = %context, error = %e, "CassandraDatacenter watch error; retrying");
            }
        }
    }
}
