//! The ReplicatedSecret controller. It lives in the host, not in a policy, because it
//! copies Secret values and policies must never see those.
//!
//! For each ReplicatedSecret (control plane), the Secrets of its namespace that match its
//! selector are copied to every replication target (a cluster known to the host, a
//! namespace, an optional name prefix). Copies are updated when the source changes and
//! are left in place when the ReplicatedSecret goes: a running datacenter may still
//! need its credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8ssandra_api::replication::{
    REPLICATION_DONE, ReplicatedSecret, ReplicationCondition, ReplicationTarget,
};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::clusters::{ClusterRegistry, LOCAL};
use crate::observe::Metrics;

const FIELD_MANAGER: &str = "k8ssandra-replicated-secret";
/// Label on every copy: which ReplicatedSecret made it (`<namespace>.<name>`).
pub const REPLICATED_BY: &str = "k8ssandra.io/replicated-by";
/// Secrets are not watched (see `clientconfig`); sources are re-read this often.
const RESYNC: Duration = Duration::from_secs(15);

/// `matchLabels` and `In`/`NotIn`/`Exists`/`DoesNotExist` expressions as a label selector
/// string for a List call.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut terms: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        terms.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    terms.join(",")
}

fn copy_of(source: &Secret, target: &ReplicationTarget, rs_id: &str) -> Secret {
    let mut labels = source.metadata.labels.clone().unwrap_or_default();
    for l in target.drop_labels.iter().flatten() {
        labels.remove(l);
    }
    labels.extend(target.add_labels.clone().unwrap_or_default());
    labels.insert(REPLICATED_BY.into(), rs_id.to_string());
    Secret {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}{}",
                target.target_prefix.clone().unwrap_or_default(),
                source.metadata.name.clone().unwrap_or_default()
            )),
            namespace: target
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| source.metadata.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        data: source.data.clone(),
        type_: source.type_.clone(),
        ..Default::default()
    }
}

fn same(copy: &Secret, live: &Secret) -> bool {
    let labels_ok = copy.metadata.labels.iter().flatten().all(|(k, v)| {
        live.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|lv| lv == v)
    });
    labels_ok && copy.data == live.data
}

async fn replicate(
    rs: &ReplicatedSecret,
    local: &Client,
    clusters: &ClusterRegistry,
    metrics: &Metrics,
) -> Vec<ReplicationCondition> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let rs_id = format!("{ns}.{}", rs.metadata.name.clone().unwrap_or_default());
    let selector = rs
        .spec
        .selector
        .as_ref()
        .map(selector_string)
        .unwrap_or_default();
    let sources: Vec<Secret> = if selector.is_empty() {
        // An empty selector would copy every Secret of the namespace, tokens included:
        // refuse rather than guess.
        Vec::new()
    } else {
        match Api::<Secret>::namespaced(local.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(replicatedsecret = %rs_id, %error, "cannot list source Secrets");
                return Vec::new();
            }
        }
    };
    let mut conditions = Vec::new();
    for target in rs.spec.replication_targets.iter().flatten() {
        let context = target.k8s_context_name.clone().unwrap_or_default();
        let mut ok = clusters.is_reachable(&context) && !sources.is_empty();
        if let Some(client) = clusters.client(&context) {
            for source in &sources {
                let copy = copy_of(source, target, &rs_id);
                let (cname, cns) = (
                    copy.metadata.name.clone().unwrap_or_default(),
                    copy.metadata.namespace.clone().unwrap_or_default(),
                );
                if context == LOCAL && cns == ns && Some(&cname) == source.metadata.name.as_ref() {
                    continue;
                }
                let api: Api<Secret> = Api::namespaced(client.clone(), &cns);
                match api.get_opt(&cname).await {
                    Ok(Some(live)) if same(&copy, &live) => continue,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(context = %context, secret = %cname, %error, "cannot read a replicated Secret");
                        ok = false;
                        continue;
                    }
                }
                metrics.record_write("replicated-secret", "apply", &context);
                let mut body = serde_json::to_value(&copy).unwrap_or_default();
                body["apiVersion"] = "v1".into();
                body["kind"] = "Secret".into();
                if let Err(error) = api
                    .patch(
                        &cname,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&body),
                    )
                    .await
                {
                    tracing::warn!(context = %context, secret = %cname, %error, "cannot replicate a Secret");
                    ok = false;
                } else {
                    tracing::info!(context = %context, namespace = %cns, secret = %cname, "Secret replicated");
                }
            }
        } else {
            ok = false;
        }
        conditions.push(ReplicationCondition {
            cluster: context,
            type_: REPLICATION_DONE.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: None,
        });
    }
    conditions
}

async fn write_status(
    rs: &ReplicatedSecret,
    local: &Client,
    mut conditions: Vec<ReplicationCondition>,
    metrics: &Metrics,
) {
    let live = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    for c in &mut conditions {
        c.last_transition_time = live
            .iter()
            .find(|l| l.cluster == c.cluster && l.type_ == c.type_ && l.status == c.status)
            .and_then(|l| l.last_transition_time.clone())
            .or_else(|| Some(now.clone()));
    }
    if conditions == live {
        return;
    }
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let api: Api<ReplicatedSecret> = Api::namespaced(local.clone(), &ns);
    metrics.record_write("replicated-secret", "status", LOCAL);
    let body = serde_json::json!({ "status": { "conditions": conditions } });
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(replicatedsecret = %name, %error, "cannot write status");
    }
}

/// Runs the controller until aborted.
pub async fn run(
    local: Client,
    namespace: Option<String>,
    clusters: ClusterRegistry,
    metrics: Metrics,
) {
    let api: Api<ReplicatedSecret> = match &namespace {
        Some(ns) => Api::namespaced(local.clone(), ns),
        None => Api::all(local.clone()),
    };
    let mut known: BTreeMap<(String, String), ReplicatedSecret> = BTreeMap::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut tick = tokio::time::interval(RESYNC);
    let mut clusters_rx = clusters.subscribe();
    loop {
        let todo: Vec<ReplicatedSecret> = tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Apply(rs))) | Some(Ok(Event::InitApply(rs))) => {
                    let key = (rs.metadata.namespace.clone().unwrap_or_default(), rs.metadata.name.clone().unwrap_or_default());
                    known.insert(key, rs.clone());
                    vec![rs]
                }
                Some(Ok(Event::Delete(rs))) => {
                    known.remove(&(rs.metadata.namespace.clone().unwrap_or_default(), rs.metadata.name.clone().unwrap_or_default()));
                    vec![]
                }
                Some(Ok(_)) => vec![],
                Some(Err(error)) => {
                    tracing::warn!(%error, "ReplicatedSecret watch failed; retrying");
                    vec![]
                }
                None => break,
            },
            _ = tick.tick() => known.values().cloned().collect(),
            changed = clusters_rx.changed() => {
                if changed.is_err() { break; }
                known.values().cloned().collect()
            }
        };
        for rs in todo {
            let conditions = replicate(&rs, &local, &clusters, &metrics).await;
            write_status(&rs, &local, conditions, &metrics).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn selectors_render_for_list_calls() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "c".to_string())])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert_eq!(selector_string(&sel), "app=c,tier in (a,b)");
    }

    #[test]
    fn copies_keep_data_and_follow_the_target() {
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("demo-superuser".into()),
                namespace: Some("k8ssandra".into()),
                labels: Some(BTreeMap::from([
                    ("drop-me".to_string(), "x".to_string()),
                    ("k8ssandra.io/cluster-name".to_string(), "demo".to_string()),
                ])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "password".to_string(),
                k8s_openapi::ByteString(b"pw".to_vec()),
            )])),
            ..Default::default()
        };
        let target = ReplicationTarget {
            namespace: Some("dc2".into()),
            k8s_context_name: Some("east".into()),
            target_prefix: Some("p-".into()),
            drop_labels: Some(vec!["drop-me".into()]),
            add_labels: None,
        };
        let copy = copy_of(&source, &target, "k8ssandra.demo");
        assert_eq!(copy.metadata.name.as_deref(), Some("p-demo-superuser"));
        assert_eq!(copy.metadata.namespace.as_deref(), Some("dc2"));
        let labels = copy.metadata.labels.clone().unwrap();
        assert!(!labels.contains_key("drop-me"));
        assert_eq!(labels[REPLICATED_BY], "k8ssandra.demo");
        assert_eq!(copy.data, source.data);
        let mut live = copy.clone();
        assert!(same(&copy, &live));
        live.data = None;
        assert!(!same(&copy, &live));
    }
}
