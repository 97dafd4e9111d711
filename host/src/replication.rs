//! The ReplicatedSecret controller. It lives in the host, not in a policy, because it
//! copies Secret values and policies must never see those.
//!
//! For each ReplicatedSecret (control plane), the Secrets of its namespace that match its
//! selector are copied to every replication target (a cluster known to the host, a
//! namespace, an optional name prefix), and kept up to date.
//!
//! Ownership: a copy carries the label [`REPLICATED_BY`]; a Secret of the same name without
//! it (or made for another ReplicatedSecret) is never overwritten, and the target's
//! condition says so. The copies made are listed in `status.copies`; when a target is
//! removed, or the ReplicatedSecret is deleted (a finalizer holds it until then), those
//! copies, and only those, are deleted again — unless `spec.keepCopies` is set or the copy
//! carries the orphan annotation. A cluster the host no longer knows is never waited for.
use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8ssandra_api::replication::{
    REPLICATION_DONE, ReplicatedCopy, ReplicatedSecret, ReplicationCondition, ReplicationTarget,
};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, Preconditions};
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
/// Holds a deleted ReplicatedSecret until its copies are gone (upstream's name).
pub const FINALIZER: &str = "replicatedresource.k8ssandra.io/finalizer";
/// `"true"` on a source or a copy: the copy stays when its target or the ReplicatedSecret
/// goes (upstream's annotation).
pub const ORPHAN: &str = "replicatedresource.k8ssandra.io/orphan";

fn rs_id(rs: &ReplicatedSecret) -> String {
    format!(
        "{}.{}",
        rs.metadata.namespace.clone().unwrap_or_default(),
        rs.metadata.name.clone().unwrap_or_default()
    )
}

/// Whether the live Secret is a copy this ReplicatedSecret made.
fn made_by(live: &Secret, rs_id: &str) -> bool {
    live.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REPLICATED_BY))
        .is_some_and(|v| v == rs_id)
}

fn orphaned(secret: &Secret) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORPHAN))
        .is_some_and(|v| v == "true")
}

fn target_key(target: &ReplicationTarget, rs_namespace: &str) -> (String, String) {
    (
        target.k8s_context_name.clone().unwrap_or_default(),
        target
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| rs_namespace.to_string()),
    )
}

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
            annotations: orphaned(source)
                .then(|| BTreeMap::from([(ORPHAN.to_string(), "true".to_string())])),
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

/// What one pass over a ReplicatedSecret found and did.
struct Outcome {
    conditions: Vec<ReplicationCondition>,
    copies: Vec<ReplicatedCopy>,
}

async fn replicate(
    rs: &ReplicatedSecret,
    local: &Client,
    clusters: &ClusterRegistry,
    metrics: &Metrics,
) -> Outcome {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let rs_id = rs_id(rs);
    let previous: Vec<ReplicatedCopy> = rs
        .status
        .as_ref()
        .and_then(|s| s.copies.clone())
        .unwrap_or_default();
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
                // Nothing is known: keep the record of the copies as it is.
                return Outcome {
                    conditions: Vec::new(),
                    copies: previous,
                };
            }
        }
    };
    let mut conditions = Vec::new();
    let mut copies: Vec<ReplicatedCopy> = Vec::new();
    for target in rs.spec.replication_targets.iter().flatten() {
        let context = target.k8s_context_name.clone().unwrap_or_default();
        let mut ok = clusters.is_reachable(&context) && !sources.is_empty();
        let mut problems: Vec<String> = Vec::new();
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
                let record = ReplicatedCopy {
                    cluster: context.clone(),
                    namespace: cns.clone(),
                    name: cname.clone(),
                };
                let api: Api<Secret> = Api::namespaced(client.clone(), &cns);
                match api.get_opt(&cname).await {
                    Ok(Some(live)) if !made_by(&live, &rs_id) => {
                        // Someone else's Secret (or another ReplicatedSecret's copy):
                        // overwriting it could break whatever uses it.
                        tracing::warn!(context = %context, namespace = %cns, secret = %cname, "a Secret the operator did not create is in the way; not overwritten");
                        problems.push(format!(
                            "Secret {cns}/{cname} exists and was not created by this \
                             ReplicatedSecret (no label {REPLICATED_BY}={rs_id}); it is not \
                             overwritten"
                        ));
                        ok = false;
                        continue;
                    }
                    Ok(Some(live)) if same(&copy, &live) => {
                        copies.push(record);
                        continue;
                    }
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
                // Recorded before the write: a copy that may exist must be found again.
                copies.push(record);
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
            problems.push(format!(
                "cluster {context:?} is not known (no ClientConfig)"
            ));
        }
        if sources.is_empty() {
            problems.push(if selector.is_empty() {
                "spec.selector is empty: nothing is copied (it would copy every Secret of the \
                 namespace)"
                    .to_string()
            } else {
                format!("no Secret matches the selector {selector:?}")
            });
        }
        conditions.push(ReplicationCondition {
            cluster: context,
            type_: REPLICATION_DONE.into(),
            status: if ok { "True" } else { "False" }.into(),
            last_transition_time: None,
            message: (!problems.is_empty()).then(|| problems.join("; ")),
        });
    }

    // Copies made earlier: kept on the record while their target exists, deleted when it
    // went (unless kept), forgotten once gone.
    let targets: Vec<(String, String)> = rs
        .spec
        .replication_targets
        .iter()
        .flatten()
        .map(|t| target_key(t, &ns))
        .collect();
    let keep = rs.spec.keep_copies == Some(true);
    for old in previous {
        if copies.contains(&old) {
            continue;
        }
        let target_stays = targets.contains(&(old.cluster.clone(), old.namespace.clone()));
        // A copy whose deletion failed stays on the record, to be tried again.
        if target_stays || (!keep && remove_copy(&old, &rs_id, clusters, metrics).await.is_err()) {
            copies.push(old);
        }
    }
    copies.sort();
    copies.dedup();
    Outcome { conditions, copies }
}

/// Deletes one copy if it is still this ReplicatedSecret's and not orphaned. A cluster the
/// host no longer knows is skipped (it may never come back); an error means "try again".
async fn remove_copy(
    copy: &ReplicatedCopy,
    rs_id: &str,
    clusters: &ClusterRegistry,
    metrics: &Metrics,
) -> Result<(), kube::Error> {
    let Some(client) = clusters.client(&copy.cluster) else {
        tracing::warn!(context = %copy.cluster, namespace = %copy.namespace, secret = %copy.name, "cluster not known any more; its copy is left in place");
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(client, &copy.namespace);
    let Some(live) = api.get_opt(&copy.name).await? else {
        return Ok(());
    };
    if !made_by(&live, rs_id) || orphaned(&live) {
        tracing::info!(context = %copy.cluster, namespace = %copy.namespace, secret = %copy.name, "copy is not this ReplicatedSecret's any more or is orphaned; left in place");
        return Ok(());
    }
    metrics.record_write("replicated-secret", "delete", &copy.cluster);
    let params = DeleteParams {
        // Only the object just checked: never one recreated by someone else meanwhile.
        preconditions: Some(Preconditions {
            uid: live.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&copy.name, &params).await {
        Ok(_) => {
            tracing::info!(context = %copy.cluster, namespace = %copy.namespace, secret = %copy.name, "replicated Secret deleted");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(error) => {
            tracing::warn!(context = %copy.cluster, secret = %copy.name, %error, "cannot delete a replicated Secret");
            Err(error)
        }
    }
}

/// A deleted ReplicatedSecret: removes its copies (unless kept), then its finalizer.
async fn finalize(
    rs: &ReplicatedSecret,
    local: &Client,
    clusters: &ClusterRegistry,
    metrics: &Metrics,
) {
    if !has_finalizer(rs) {
        return;
    }
    let rs_id = rs_id(rs);
    let keep = rs.spec.keep_copies == Some(true);
    let mut left = Vec::new();
    for copy in rs
        .status
        .as_ref()
        .and_then(|s| s.copies.clone())
        .unwrap_or_default()
    {
        if !keep && remove_copy(&copy, &rs_id, clusters, metrics).await.is_err() {
            left.push(copy);
        }
    }
    if !left.is_empty() {
        // Retried on the next pass; the record shrinks to what is left.
        write_copies(rs, local, &left, metrics).await;
        return;
    }
    set_finalizer(rs, local, false, metrics).await;
}

fn has_finalizer(rs: &ReplicatedSecret) -> bool {
    rs.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

async fn set_finalizer(rs: &ReplicatedSecret, local: &Client, on: bool, metrics: &Metrics) {
    let mut finalizers: Vec<String> = rs
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    if on {
        finalizers.push(FINALIZER.to_string());
    }
    let name = rs.metadata.name.clone().unwrap_or_default();
    let api: Api<ReplicatedSecret> = Api::namespaced(
        local.clone(),
        rs.metadata.namespace.as_deref().unwrap_or_default(),
    );
    metrics.record_write("replicated-secret", "finalizer", LOCAL);
    // The resourceVersion makes the merge patch fail rather than drop someone else's
    // finalizer added meanwhile.
    let body = serde_json::json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": rs.metadata.resource_version,
    }});
    if let Err(error) = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(replicatedsecret = %name, %error, "cannot update the finalizer; retrying");
    }
}

async fn write_copies(
    rs: &ReplicatedSecret,
    local: &Client,
    copies: &[ReplicatedCopy],
    metrics: &Metrics,
) {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let api: Api<ReplicatedSecret> = Api::namespaced(
        local.clone(),
        rs.metadata.namespace.as_deref().unwrap_or_default(),
    );
    metrics.record_write("replicated-secret", "status", LOCAL);
    let body = serde_json::json!({ "status": { "copies": copies } });
    if let Err(error) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(replicatedsecret = %name, %error, "cannot write status");
    }
}

async fn write_status(rs: &ReplicatedSecret, local: &Client, outcome: Outcome, metrics: &Metrics) {
    let Outcome {
        mut conditions,
        copies,
    } = outcome;
    let live_copies = rs
        .status
        .as_ref()
        .and_then(|s| s.copies.clone())
        .unwrap_or_default();
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
    if conditions == live && copies == live_copies {
        return;
    }
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let api: Api<ReplicatedSecret> = Api::namespaced(local.clone(), &ns);
    metrics.record_write("replicated-secret", "status", LOCAL);
    let body = serde_json::json!({ "status": { "conditions": conditions, "copies": copies } });
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
            if rs.metadata.deletion_timestamp.is_some() {
                finalize(&rs, &local, &clusters, &metrics).await;
                continue;
            }
            if !has_finalizer(&rs) {
                // The watch brings the object back with its finalizer; replicate then.
                set_finalizer(&rs, &local, true, &metrics).await;
                continue;
            }
            let outcome = replicate(&rs, &local, &clusters, &metrics).await;
            write_status(&rs, &local, outcome, &metrics).await;
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
        assert!(made_by(&copy, "k8ssandra.demo"));
        assert!(!made_by(&copy, "k8ssandra.other"));
        assert!(!made_by(&source, "k8ssandra.demo"), "no label, not ours");
        assert!(!orphaned(&copy));
    }

    #[test]
    fn the_orphan_annotation_travels_with_the_copy() {
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("keep".into()),
                namespace: Some("k8ssandra".into()),
                annotations: Some(BTreeMap::from([(ORPHAN.to_string(), "true".to_string())])),
                ..Default::default()
            },
            ..Default::default()
        };
        let copy = copy_of(&source, &ReplicationTarget::default(), "k8ssandra.demo");
        assert!(orphaned(&copy));
    }

    #[test]
    fn targets_default_to_the_local_cluster_and_own_namespace() {
        let target = ReplicationTarget {
            namespace: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            target_key(&target, "k8ssandra"),
            (String::new(), "k8ssandra".to_string())
        );
        let target = ReplicationTarget {
            namespace: Some("dc2".into()),
            k8s_context_name: Some("east".into()),
            ..Default::default()
        };
        assert_eq!(
            target_key(&target, "k8ssandra"),
            ("east".to_string(), "dc2".to_string())
        );
    }
}
