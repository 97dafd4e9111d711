//! Pods from Kubernetes: a watch per context feeds the simulator, and readiness goes back as a
//! status patch, the way a kubelet's readiness probe would set it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, ReadyPatch};
use crate::model::*;

/// Field manager of the readiness patches, distinct from the fake kubelet's.
pub const FIELD_MANAGER: &str = "cassandra-sim";

/// What the simulator sees of a Kubernetes pod; None when it is no Cassandra pod.
pub fn pod_info(context: &str, pod: &Pod) -> Option<PodInfo> {
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
    let container_statuses = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let server_version = pod.spec.as_ref().and_then(|spec| {
        let c = spec
            .containers
            .iter()
            .find(|c| c.name == "cassandra")
            .or_else(|| spec.containers.first())?;
        let image = c.image.as_deref()?;
        let tag = image.rsplit_once(':')?.1;
        let version: String = tag
            .chars()
            .take_while(|ch| ch.is_ascii_digit() || *ch == '.')
            .collect();
        (version.split('.').count() == 3 && version.split('.').all(|p| !p.is_empty()))
            .then_some(version)
    });
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
    })
}

/// Watches Cassandra pods of one context until cancelled.
pub(crate) async fn watch_pods(
    core: Arc<Core>,
    context: String,
    client: Client,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let cfg = watcher::Config::default().labels(LABEL_CLUSTER);
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    // Pods seen during a (re)list, to forget those deleted while the watch was down.
    let mut relist: Option<HashSet<PodKey>> = None;
    let mut known: HashSet<PodKey> = HashSet::new();
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else {
            tracing::warn!(context = %context, "pod watch ended");
            return;
        };
        match ev {
            Ok(Event::Init) => relist = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if let Some(info) = pod_info(&context, &pod) {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(info.key.clone());
                    }
                    known.insert(info.key.clone());
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
                core.remove_pod(&key);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relist.take() {
                    let gone: Vec<PodKey> = known.difference(&seen).cloned().collect();
                    for key in gone {
                        known.remove(&key);
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
            .container_statuses
            .iter()
            .map(|name| json!({"name": name, "ready": p.ready}))
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
