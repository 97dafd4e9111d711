//! One reconcile: snapshot → policy (and its decorators) → plan execution.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::DynamicObject;
use serde_json::Value;

use super::PolicyController;
use super::queue::{After, ParentKey};
use super::seen::Seen;
use crate::apply::{identity, is_subset, redact_secret};
use crate::clusters::LOCAL;
use crate::plugin::CallError;
use crate::plugin::bindings::{EventType, NodeRef, Object, Plan, Snapshot};

pub const POLICY_LABEL: &str = "k8ssandra.io/policy";
pub const PARENT_NAME_LABEL: &str = "k8ssandra.io/parent-name";
pub const PARENT_NAMESPACE_LABEL: &str = "k8ssandra.io/parent-namespace";
pub const PARENT_KIND_LABEL: &str = "k8ssandra.io/parent-kind";
/// The identity (see `clusters::cluster_id`) of the cluster the parent lives in.
pub const PARENT_CLUSTER_LABEL: &str = "k8ssandra.io/parent-cluster-id";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "k8ssandra-operator";

/// The condition type the host sets on a parent whose policy failed.
pub const POLICY_FAILED: &str = "PolicyFailed";

/// Identity of an object across clusters.
type ObjKey = (String, String, String, String, String);

/// When each (reason, message) was last recorded for a parent.
type EventLog = HashMap<(String, String), Instant>;

/// What the host remembers between reconciles. Losing it (a restart) costs at most one
/// redundant write per object; correctness never depends on it.
#[derive(Default)]
pub struct Memory {
    /// Hash of the last desired object applied, and the resourceVersion the apply returned.
    applied: Mutex<HashMap<ObjKey, (u64, String)>>,
    /// Events recorded per parent, to record each distinct event once per hour.
    events: Mutex<HashMap<ParentKey, EventLog>>,
    /// Secrets known to exist.
    secrets: Mutex<HashSet<(String, String, String)>>,
    /// Per parent: hash of the last desired status written, and of what the server stored.
    status: Mutex<HashMap<ParentKey, (u64, u64)>>,
    /// Finalizers this policy has ever asked for.
    finalizers: Mutex<HashSet<String>>,
    /// Statuses this host wrote that its cache may not have delivered yet ([`fresh_parent`]).
    written: Mutex<Written>,
}

const EVENT_DEDUP: Duration = Duration::from_secs(3600);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The parent an object belongs to, if its labels name one of `parent_kind` in the cluster
/// `cluster_id`.
pub fn parent_from_labels(
    labels: &BTreeMap<String, String>,
    parent_kind: &str,
    cluster_id: &str,
) -> Option<ParentKey> {
    if labels.get(PARENT_KIND_LABEL).map(String::as_str) != Some(parent_kind)
        || labels.get(PARENT_CLUSTER_LABEL).map(String::as_str) != Some(cluster_id)
    {
        return None;
    }
    Some((
        labels.get(PARENT_NAMESPACE_LABEL)?.clone(),
        labels.get(PARENT_NAME_LABEL)?.clone(),
    ))
}

/// Matches `k=v`, `k==v`, `k!=v`, `k`, `!k` terms separated by commas.
pub fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels.get(k.trim()).map(String::as_str) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                let v = v.trim_start_matches('=');
                labels.get(k.trim()).map(String::as_str) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                !labels.contains_key(k.trim())
            } else {
                labels.contains_key(term)
            }
        })
}

fn hash_value(v: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn to_object(cluster: &str, obj: &DynamicObject) -> Object {
    Object {
        cluster: cluster.to_string(),
        json: serde_json::to_string(obj).unwrap_or_default(),
    }
}

impl PolicyController {
    fn parent_id(&self, key: &ParentKey) -> String {
        format!("{}|{}/{}", self.policy.info.name, key.0, key.1)
    }

    fn belongs(&self, obj: &DynamicObject, key: &ParentKey) -> bool {
        // Another controller's object that copied our labels (the EndpointSlices Kubernetes
        // makes for a Service carry the Service's labels) is not ours to prune or to show.
        if controlled_by_another(obj, &self.parent.resource.kind) {
            return false;
        }
        obj.metadata
            .labels
            .as_ref()
            .and_then(|l| {
                parent_from_labels(
                    l,
                    &self.parent.resource.kind,
                    self.shared.clusters.local_id(),
                )
            })
            .is_some_and(|k| &k == key)
    }

    pub(crate) async fn reconcile(self: Arc<Self>, key: ParentKey) -> After {
        let started = Instant::now();
        let name = self.policy.info.name.clone();
        let after = match self.parents.get(&key.0, &key.1) {
            // A plan made from half-filled caches is a wrong plan: a StatefulSet not yet
            // listed would be applied as new (at its initial size, shrinking a live one),
            // pods not yet listed would look absent. Wait for the first full list.
            Some(_) if !self.local_caches_synced() => After::Requeue(Duration::from_millis(200)),
            Some(parent) => self.reconcile_parent(&key, parent).await,
            None => {
                if self.parents.is_synced() {
                    self.sweep(&key).await
                } else {
                    After::Requeue(Duration::from_millis(200))
                }
            }
        };
        self.shared
            .metrics
            .observe_reconcile(&name, started.elapsed());
        after
    }

    /// Whether every watch of the local cluster has delivered its first full list.
    fn local_caches_synced(&self) -> bool {
        self.owned
            .iter()
            .chain(&self.reads)
            .filter_map(|w| w.stores.get(LOCAL))
            .all(|(store, _)| store.is_synced())
    }

    /// The parent is gone: delete what it owned (never PVCs), forget its state.
    async fn sweep(&self, key: &ParentKey) -> After {
        let mut failed = false;
        for watched in &self.owned {
            for (cluster, (store, _)) in &watched.stores {
                if !self.shared.clusters.is_reachable(cluster) || !store.is_synced() {
                    continue;
                }
                let Some(client) = self.shared.clusters.client(cluster) else {
                    continue;
                };
                for obj in store.list().into_iter().filter(|o| self.belongs(o, key)) {
                    // A retained kind (a MedusaBackup) outlives its parent, as in pruning.
                    if watched.kind.kind == "PersistentVolumeClaim"
                        || crate::apply::retained(&watched.kind.api_version, &watched.kind.kind)
                    {
                        continue;
                    }
                    let ns = obj.metadata.namespace.clone().unwrap_or_default();
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    if let Err(error) = self
                        .writer
                        .delete(
                            cluster,
                            &client,
                            &watched.kind.api_version,
                            &watched.kind.kind,
                            &ns,
                            &name,
                        )
                        .await
                    {
                        tracing::warn!(%error, "cannot delete an orphaned object");
                        failed = true;
                    }
                }
            }
        }
        if failed {
            return After::Backoff;
        }
        self.shared.dataplane.forget(&self.parent_id(key));
        lock(&self.memory.events).remove(key);
        lock(&self.memory.status).remove(key);
        lock(&self.memory.written).remove(key);
        After::Idle
    }

    async fn snapshot(&self, key: &ParentKey, parent: &DynamicObject) -> (Snapshot, Seen) {
        let mut seen = Seen::default();
        let mut children = Vec::new();
        for watched in &self.owned {
            for (cluster, (store, _)) in &watched.stores {
                for obj in store.list().into_iter().filter(|o| self.belongs(o, key)) {
                    children.push(Object {
                        cluster: cluster.clone(),
                        json: store.json(&obj).to_string(),
                    });
                    seen.add(&watched.kind.api_version, &watched.kind.kind, cluster, obj);
                }
            }
        }
        let mut related = Vec::new();
        let mut pods: Vec<(String, Arc<DynamicObject>)> = Vec::new();
        for watched in &self.reads {
            let is_secret = watched.kind.kind == "Secret" && watched.kind.api_version == "v1";
            let is_pod = watched.kind.kind == "Pod" && watched.kind.api_version == "v1";
            for (cluster, (store, resolved)) in &watched.stores {
                for obj in store.list() {
                    let mine = if watched.per_parent {
                        self.belongs(&obj, key)
                    } else {
                        !resolved.namespaced
                            || obj.metadata.namespace.as_deref() == Some(key.0.as_str())
                    };
                    if !mine {
                        continue;
                    }
                    if is_secret {
                        let mut redacted = (*obj).clone();
                        redact_secret(&mut redacted);
                        related.push(to_object(cluster, &redacted));
                    } else {
                        related.push(Object {
                            cluster: cluster.clone(),
                            json: store.json(&obj).to_string(),
                        });
                    }
                    if is_pod {
                        pods.push((cluster.clone(), obj.clone()));
                    }
                    seen.add(&watched.kind.api_version, &watched.kind.kind, cluster, obj);
                }
            }
        }
        if !self.named_reads.is_empty() {
            let parent_json = serde_json::to_value(parent).unwrap_or(Value::Null);
            for read in &self.named_reads {
                let is_secret = read.kind.kind == "Secret" && read.kind.api_version == "v1";
                for (cluster, obj) in read
                    .fetch(
                        &self.shared.clusters,
                        &self.shared.discovery,
                        &key.0,
                        &parent_json,
                    )
                    .await
                {
                    if is_secret {
                        let mut redacted = (*obj).clone();
                        redact_secret(&mut redacted);
                        related.push(to_object(&cluster, &redacted));
                    } else {
                        related.push(to_object(&cluster, &obj));
                    }
                }
            }
        }
        for (cluster, pod) in &pods {
            if let Some(ip) = pod.data.pointer("/status/podIP").and_then(Value::as_str) {
                seen.addresses.insert(
                    format!(
                        "{cluster}/{}/{}",
                        pod.metadata.namespace.clone().unwrap_or_default(),
                        pod.metadata.name.clone().unwrap_or_default()
                    ),
                    ip.to_string(),
                );
            }
        }
        let nodes = match &self.policy.info.observe_pods {
            Some(selector) => {
                let targets: Vec<(NodeRef, Arc<DynamicObject>)> = pods
                    .iter()
                    .filter(|(_, p)| {
                        selector_matches(selector, &p.metadata.labels.clone().unwrap_or_default())
                    })
                    .map(|(cluster, p)| {
                        (
                            NodeRef {
                                cluster: cluster.clone(),
                                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                                pod: p.metadata.name.clone().unwrap_or_default(),
                            },
                            p.clone(),
                        )
                    })
                    .collect();
                if targets.is_empty() {
                    Vec::new()
                } else {
                    self.shared
                        .dataplane
                        .observe(&self.parent_id(key), targets)
                        .await
                }
            }
            None => Vec::new(),
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let snapshot = Snapshot {
            parent: to_object(LOCAL, parent),
            children,
            related,
            nodes,
            results: self.shared.dataplane.results(&self.parent_id(key)),
            clusters: self.shared.clusters.states(),
            now_ms,
            base_plan: None,
        };
        (snapshot, seen)
    }

    /// Calls the policy, then every decorator of it in name order.
    async fn call(
        &self,
        snapshot: Snapshot,
    ) -> Result<Result<Plan, crate::plugin::bindings::PolicyError>, CallError> {
        let name = &self.policy.info.name;
        let t = Instant::now();
        let mut plan = match self
            .shared
            .runtime
            .reconcile(&self.policy, snapshot.clone())
            .await?
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        self.shared.metrics.observe_policy_call(name, t.elapsed());
        let mut decorators: Vec<_> = self
            .shared
            .runtime
            .policies()
            .into_iter()
            .filter(|p| p.info.decorates.as_deref() == Some(name.as_str()))
            .collect();
        decorators.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        for d in decorators {
            let mut s = snapshot.clone();
            s.base_plan = Some(plan);
            let t = Instant::now();
            plan = match self.shared.runtime.reconcile(&d, s).await? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            self.shared
                .metrics
                .observe_policy_call(&d.info.name, t.elapsed());
        }
        Ok(Ok(plan))
    }

    async fn reconcile_parent(&self, key: &ParentKey, parent: Arc<DynamicObject>) -> After {
        let parent = fresh_parent(&mut lock(&self.memory.written), key, parent);
        let (snapshot, seen) = self.snapshot(key, &parent).await;
        let name = self.policy.info.name.clone();
        let plan = match self.call(snapshot).await {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => {
                self.shared.metrics.record_error(&name, "PolicyError");
                let message = format!("policy {name} refused to plan: {}", e.message);
                self.report_failure(key, &parent, "PolicyError", &message)
                    .await;
                return match e.retry_after_ms {
                    Some(ms) => After::Requeue(Duration::from_millis(ms)),
                    None => After::Backoff,
                };
            }
            Err(e) => {
                let reason = match e {
                    CallError::Timeout { .. } => "PolicyTimeout",
                    CallError::MemoryExceeded { .. } => "PolicyMemoryExceeded",
                    CallError::Trap { .. } => "PolicyTrapped",
                    _ => "PolicyUnavailable",
                };
                self.shared.metrics.record_error(&name, reason);
                tracing::warn!(policy = %name, parent = %format!("{}/{}", key.0, key.1), error = %e, "policy call failed");
                self.report_failure(key, &parent, reason, &e.to_string())
                    .await;
                return After::Backoff;
            }
        };
        match self.execute(key, &parent, plan, seen).await {
            Ok(after) => after,
            Err(error) => {
                self.shared.metrics.record_error(&name, "ExecuteFailed");
                tracing::warn!(policy = %name, parent = %format!("{}/{}", key.0, key.1), %error, "plan execution failed");
                After::Backoff
            }
        }
    }

    async fn report_failure(
        &self,
        key: &ParentKey,
        parent: &DynamicObject,
        reason: &str,
        message: &str,
    ) {
        let Some(client) = self.shared.clusters.client(LOCAL) else {
            return;
        };
        let condition = serde_json::json!({
            "type": POLICY_FAILED,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        if let Err(error) = self
            .writer
            .set_condition(&client, &self.parent, parent, condition)
            .await
        {
            tracing::warn!(%error, "cannot record the policy failure on the parent's status");
        }
        self.event(key, parent, true, reason, message, None).await;
    }

    async fn event(
        &self,
        key: &ParentKey,
        parent: &DynamicObject,
        warning: bool,
        reason: &str,
        message: &str,
        regarding: Option<(String, ObjectReference)>,
    ) {
        {
            let mut events = lock(&self.memory.events);
            let seen = events.entry(key.clone()).or_default();
            let k = (reason.to_string(), message.to_string());
            if seen.get(&k).is_some_and(|t| t.elapsed() < EVENT_DEDUP) {
                return;
            }
            seen.insert(k, Instant::now());
        }
        let (cluster, reference) = regarding.unwrap_or_else(|| {
            (
                LOCAL.to_string(),
                ObjectReference {
                    api_version: Some(self.parent.resource.api_version.clone()),
                    kind: Some(self.parent.resource.kind.clone()),
                    name: parent.metadata.name.clone(),
                    namespace: parent.metadata.namespace.clone(),
                    uid: parent.metadata.uid.clone(),
                    resource_version: parent.metadata.resource_version.clone(),
                    ..Default::default()
                },
            )
        });
        let Some(client) = self.shared.clusters.client(&cluster) else {
            return;
        };
        if let Err(error) = self
            .writer
            .event(&cluster, &client, &reference, warning, reason, message)
            .await
        {
            tracing::warn!(%error, "cannot record an event");
        }
    }

    fn stamp(&self, key: &ParentKey, cluster: &str, parent: &DynamicObject, value: &mut Value) {
        let labels = value
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
            .map(|m| {
                m.entry("labels")
                    .or_insert_with(|| Value::Object(Default::default()))
            });
        if let Some(Value::Object(labels)) = labels {
            labels.insert(POLICY_LABEL.into(), self.policy.info.name.clone().into());
            labels.insert(
                PARENT_CLUSTER_LABEL.into(),
                self.shared.clusters.local_id().into(),
            );
            labels.insert(PARENT_NAME_LABEL.into(), key.1.clone().into());
            labels.insert(PARENT_NAMESPACE_LABEL.into(), key.0.clone().into());
            labels.insert(
                PARENT_KIND_LABEL.into(),
                self.parent.resource.kind.clone().into(),
            );
            labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        }
        // ownerReferences only work inside one cluster and one namespace; across clusters
        // the labels above are the only link.
        let same_ns =
            value.pointer("/metadata/namespace").and_then(Value::as_str) == Some(key.0.as_str());
        let retained = value
            .pointer("/apiVersion")
            .and_then(Value::as_str)
            .zip(value.pointer("/kind").and_then(Value::as_str))
            .is_some_and(|(a, k)| crate::apply::retained(a, k));
        if cluster == LOCAL && (same_ns || !self.parent.namespaced) && !retained {
            let owner = serde_json::json!({
                "apiVersion": self.parent.resource.api_version,
                "kind": self.parent.resource.kind,
                "name": parent.metadata.name,
                "uid": parent.metadata.uid,
                "controller": true,
            });
            if let Some(Value::Object(meta)) = value.pointer_mut("/metadata") {
                meta.insert("ownerReferences".into(), Value::Array(vec![owner]));
            }
        }
    }

    /// Whether the policy reads this kind by name (fetched per reconcile, not watched).
    fn read_by_name(&self, api_version: &str, kind: &str) -> bool {
        self.named_reads
            .iter()
            .any(|r| r.kind.kind == kind && r.kind.api_version == api_version)
    }

    /// Whether the policy owns this kind (declared in `owns`).
    fn owns(&self, api_version: &str, kind: &str) -> bool {
        self.owned
            .iter()
            .any(|w| w.kind.kind == kind && w.kind.api_version == api_version)
    }

    async fn execute(
        &self,
        key: &ParentKey,
        parent: &DynamicObject,
        plan: Plan,
        seen: Seen,
    ) -> Result<After, crate::apply::ApplyError> {
        let mut desired: HashSet<ObjKey> = HashSet::new();
        // Two contexts may name the same Kubernetes cluster: an object listed under one is
        // then also seen under the other, and must not be pruned there. UIDs tell.
        let mut desired_uids: HashSet<String> = HashSet::new();
        let mut first_error = None;
        let mut status_after_apply: Vec<(String, kube::Client, Value, Value)> = Vec::new();

        for obj in &plan.apply {
            let mut value: Value = serde_json::from_str(&obj.json).map_err(|e| {
                crate::apply::ApplyError::InvalidObject {
                    reason: format!("plan object is not JSON: {e}"),
                }
            })?;
            if value.pointer("/metadata/namespace").is_none()
                && let Some(Value::Object(meta)) = value.pointer_mut("/metadata")
            {
                // Kinds that are cluster-scoped ignore it; namespaced ones default to the parent's.
                meta.insert("namespace".into(), key.0.clone().into());
            }
            let (api_version, kind, ns, name) = identity(&value)?;
            let okey: ObjKey = (
                obj.cluster.clone(),
                api_version.clone(),
                kind.clone(),
                ns.clone(),
                name.clone(),
            );
            desired.insert(okey.clone());
            if !self.shared.clusters.is_reachable(&obj.cluster) {
                continue;
            }
            let Some(client) = self.shared.clusters.client(&obj.cluster) else {
                first_error.get_or_insert(crate::apply::ApplyError::UnknownCluster {
                    cluster: obj.cluster.clone(),
                });
                continue;
            };
            let owned = self.owns(&api_version, &kind);
            let live = if owned {
                cached(&self.owned, &obj.cluster, &api_version, &kind, &ns, &name)
            } else {
                // A kind the policy only reads (labels on its StatefulSets' pods, a larger
                // size on a claim): patched where it exists, never created, adopted or
                // pruned. The live UID goes into the patch, so an object deleted since the
                // cache saw it is refused by the API server instead of being recreated.
                match cached(&self.reads, &obj.cluster, &api_version, &kind, &ns, &name) {
                    Some(live) => {
                        if let Some(Value::Object(meta)) = value.pointer_mut("/metadata") {
                            meta.insert("uid".into(), live.metadata.uid.clone().into());
                        }
                        Some(live)
                    }
                    // Read by name (fetched for the snapshot, not watched): patched only
                    // with the UID the policy saw there, so it is never created either.
                    None if self.read_by_name(&api_version, &kind)
                        && value
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| !u.is_empty()) =>
                    {
                        None
                    }
                    None => {
                        tracing::debug!(policy = %self.policy.info.name, kind = %kind, namespace = %ns, name = %name,
                            "not patching an object the policy does not own and the cache does not hold");
                        continue;
                    }
                }
            };
            if owned && crate::apply::adopts(&api_version, &kind) {
                self.stamp(key, &obj.cluster, parent, &mut value);
            }
            // A status only goes through the status subresource, after the object exists.
            let child_status = match value.as_object_mut() {
                Some(o) if owned => o.remove("status"),
                _ => None,
            };
            if let Some(status) = child_status {
                let live_status = live
                    .as_ref()
                    .and_then(|l| l.data.get("status").cloned())
                    .unwrap_or(Value::Null);
                if !is_subset(&status, &live_status) {
                    status_after_apply.push((
                        obj.cluster.clone(),
                        client.clone(),
                        value.clone(),
                        status,
                    ));
                }
            }
            let hash = hash_value(&value);
            if let Some(uid) = live.as_ref().and_then(|l| l.metadata.uid.clone()) {
                desired_uids.insert(uid);
            }
            if let Some(live) = &live {
                let live_value = serde_json::to_value(&**live).unwrap_or_default();
                if is_subset(&value, &live_value)
                    && !owns_extra_fields(live, &self.writer.field_manager, &value)
                {
                    continue;
                }
                let remembered = lock(&self.memory.applied).get(&okey).cloned();
                if remembered
                    .is_some_and(|(h, rv)| h == hash && Some(rv) == live.metadata.resource_version)
                {
                    continue;
                }
            }
            let result = if owned {
                self.writer
                    .apply(&obj.cluster, &client, &value)
                    .await
                    .map(Some)
            } else {
                self.writer
                    .patch_existing(&obj.cluster, &client, &value)
                    .await
            };
            match result {
                // Gone since the cache saw it: its deletion event brings a new reconcile.
                Ok(None) => {}
                Ok(Some(applied)) => {
                    if let Some(uid) = applied.metadata.uid.clone() {
                        desired_uids.insert(uid);
                    }
                    lock(&self.memory.applied).insert(
                        okey,
                        (hash, applied.metadata.resource_version.unwrap_or_default()),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "apply failed");
                    first_error.get_or_insert(e);
                }
            }
        }

        for (cluster, client, object, status) in status_after_apply {
            if let Err(e) = self
                .writer
                .apply_child_status(&cluster, &client, &object, status)
                .await
            {
                tracing::warn!(error = %e, "child status failed");
                first_error.get_or_insert(e);
            }
        }

        // Prune owned objects the plan no longer lists, only where we can see them, and only
        // after every apply succeeded: an object meant to replace one elsewhere (a context
        // not configured yet, a failed create) must exist before its predecessor goes.
        let prune = first_error.is_none();
        for watched in self.owned.iter().filter(|_| prune) {
            if watched.kind.kind == "PersistentVolumeClaim"
                || crate::apply::retained(&watched.kind.api_version, &watched.kind.kind)
            {
                continue;
            }
            for (cluster, (store, _)) in &watched.stores {
                if !store.is_synced() || !self.shared.clusters.is_reachable(cluster) {
                    continue;
                }
                let Some(client) = self.shared.clusters.client(cluster) else {
                    continue;
                };
                for obj in store.list().into_iter().filter(|o| self.belongs(o, key)) {
                    let ns = obj.metadata.namespace.clone().unwrap_or_default();
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    let okey = (
                        cluster.clone(),
                        watched.kind.api_version.clone(),
                        watched.kind.kind.clone(),
                        ns.clone(),
                        name.clone(),
                    );
                    if desired.contains(&okey)
                        || obj.metadata.deletion_timestamp.is_some()
                        || obj
                            .metadata
                            .uid
                            .as_ref()
                            .is_some_and(|u| desired_uids.contains(u))
                    {
                        continue;
                    }
                    tracing::info!(policy = %self.policy.info.name, cluster = %cluster, kind = %watched.kind.kind, namespace = %ns, name = %name, "pruning");
                    if let Err(e) = self
                        .writer
                        .delete(
                            cluster,
                            &client,
                            &watched.kind.api_version,
                            &watched.kind.kind,
                            &ns,
                            &name,
                        )
                        .await
                    {
                        first_error.get_or_insert(e);
                    }
                    lock(&self.memory.applied).remove(&okey);
                }
            }
        }

        for del in &plan.delete {
            if !self.shared.clusters.is_reachable(&del.cluster) {
                continue;
            }
            let Some(client) = self.shared.clusters.client(&del.cluster) else {
                continue;
            };
            let mut params = crate::apply::explicit_delete_params(&del.api_version, &del.kind);
            if let Some(uid) = seen.uid(
                &del.cluster,
                &del.api_version,
                &del.kind,
                &del.namespace,
                &del.name,
            ) {
                params.preconditions = Some(kube::api::Preconditions {
                    uid: Some(uid.to_string()),
                    resource_version: None,
                });
            }
            if let Err(e) = self
                .writer
                .delete_with(
                    &del.cluster,
                    &client,
                    &del.api_version,
                    &del.kind,
                    &del.namespace,
                    &del.name,
                    &params,
                )
                .await
            {
                first_error.get_or_insert(e);
            }
        }

        for secret in &plan.secrets {
            let skey = (
                secret.cluster.clone(),
                secret.namespace.clone(),
                secret.name.clone(),
            );
            if lock(&self.memory.secrets).contains(&skey)
                || !self.shared.clusters.is_reachable(&secret.cluster)
            {
                continue;
            }
            let Some(client) = self.shared.clusters.client(&secret.cluster) else {
                continue;
            };
            let mut labels: BTreeMap<String, String> = secret.labels.iter().cloned().collect();
            labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
            match self.writer.ensure_secret(&client, secret, labels).await {
                Ok(_) => {
                    lock(&self.memory.secrets).insert(skey);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }

        if !plan.operations.is_empty() {
            self.shared.dataplane.execute(
                &self.parent_id(key),
                plan.operations.clone(),
                seen.addresses,
            );
        }

        let local = self.shared.clusters.client(LOCAL);
        if let (Some(status), Some(client)) = (&plan.status, &local) {
            let desired: Value = serde_json::from_str(status).map_err(|e| {
                crate::apply::ApplyError::InvalidObject {
                    reason: format!("plan status is not JSON: {e}"),
                }
            })?;
            let live = parent.data.get("status").cloned().unwrap_or(Value::Null);
            let differs = !is_subset(&desired, &live) || has_extra_conditions(&desired, &live);
            // A status with fields the CRD's schema prunes never equals the stored one; what
            // the server stored for this same desired status the last time is the reference.
            let desired_hash = hash_value(&desired);
            let stored_same = lock(&self.memory.status)
                .get(key)
                .is_some_and(|(d, l)| *d == desired_hash && *l == hash_value(&live));
            if differs && !stored_same {
                match self
                    .writer
                    .patch_status(client, &self.parent, parent, desired)
                    .await
                {
                    Ok(stored) => {
                        let stored_status =
                            stored.data.get("status").cloned().unwrap_or(Value::Null);
                        lock(&self.memory.status)
                            .insert(key.clone(), (desired_hash, hash_value(&stored_status)));
                        if let Some(rv) = parent.metadata.resource_version.clone() {
                            lock(&self.memory.written).insert(key.clone(), (rv, Arc::new(stored)));
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }

        if let (Some(wanted), Some(client)) = (&plan.finalizers, &local) {
            let live: HashSet<String> = parent
                .metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            let mut seen = lock(&self.memory.finalizers).clone();
            seen.extend(wanted.iter().cloned());
            // What this policy set before a restart is in the parent's managed fields: a
            // deletion plan's `[]` must release it though this process never saw it asked.
            seen.extend(managed_finalizers(parent, &self.writer.finalizer_manager()));
            *lock(&self.memory.finalizers) = seen.clone();
            let missing = wanted.iter().any(|f| !live.contains(f));
            let stale = live.iter().any(|f| seen.contains(f) && !wanted.contains(f));
            if (missing || stale)
                && let Err(e) = self
                    .writer
                    .set_finalizers(client, &self.parent, parent, wanted)
                    .await
            {
                first_error.get_or_insert(e);
            }
        }

        for ev in &plan.events {
            let regarding = ev.regarding.as_ref().map(|r| {
                (
                    r.cluster.clone(),
                    ObjectReference {
                        api_version: Some(r.api_version.clone()),
                        kind: Some(r.kind.clone()),
                        name: Some(r.name.clone()),
                        namespace: Some(if r.namespace.is_empty() {
                            key.0.clone()
                        } else {
                            r.namespace.clone()
                        }),
                        ..Default::default()
                    },
                )
            });
            self.event(
                key,
                parent,
                matches!(ev.event_type, EventType::Warning),
                &ev.reason,
                &ev.message,
                regarding,
            )
            .await;
        }

        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(match plan.requeue_after_ms {
            Some(ms) => After::Requeue(Duration::from_millis(ms)),
            None => After::Idle,
        })
    }
}

/// Whether an ownerReference with `controller: true` names something other than a parent
/// of this kind: the object is that controller's (our own children point at the parent).
/// The finalizers `manager` owns on `obj`, from its managed fields (`f:metadata` →
/// `f:finalizers` → `v:"<name>"`).
fn managed_finalizers(obj: &DynamicObject, manager: &str) -> Vec<String> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .filter_map(|m| m.fields_v1.as_ref())
        .filter_map(|f| f.0.pointer("/f:metadata/f:finalizers"))
        .filter_map(Value::as_object)
        .flat_map(|set| set.keys())
        .filter_map(|k| k.strip_prefix("v:"))
        .filter_map(|v| serde_json::from_str::<String>(v).ok())
        .collect()
}

/// Written statuses: per parent, the resourceVersion a write was based on and the object
/// the server returned for it.
type Written = HashMap<ParentKey, (String, Arc<DynamicObject>)>;

/// The parent as this host last saw it: the cache's copy, unless the cache has not yet
/// delivered this host's own last status write. A reconcile woken by a child's watch event
/// (the StatefulSet the previous plan scaled) can run before the parent's own event arrives;
/// planning from the older status would undo what the previous plan recorded (a scale-up
/// forgotten the moment its StatefulSet grew, so no cleanup ever ran).
fn fresh_parent(
    written: &mut Written,
    key: &ParentKey,
    cached: Arc<DynamicObject>,
) -> Arc<DynamicObject> {
    match written.get(key) {
        Some((based_on, stored)) if cached.metadata.resource_version.as_ref() == Some(based_on) => {
            stored.clone()
        }
        Some(_) => {
            written.remove(key);
            cached
        }
        None => cached,
    }
}

fn controlled_by_another(obj: &DynamicObject, parent_kind: &str) -> bool {
    obj.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind != parent_kind)
}

/// Whether `manager`'s server-side-apply entry on `live` holds a field `desired` no longer
/// has: a field the policy (or its decorator) set earlier and dropped since. Only applying
/// again removes it; the subset check alone would call the object up to date. List items
/// are matched leniently (key fields the desired item leaves out match anything), so a
/// defaulted key never turns into a write at every resync.
pub(crate) fn owns_extra_fields(live: &DynamicObject, manager: &str, desired: &Value) -> bool {
    live.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.manager.as_deref() == Some(manager) && e.operation.as_deref() == Some("Apply")
        })
        .filter_map(|e| e.fields_v1.as_ref())
        .any(|f| extra_fields(&f.0, desired))
}

fn extra_fields(fields: &Value, desired: &Value) -> bool {
    let Value::Object(map) = fields else {
        return false;
    };
    map.iter().any(|(key, sub)| {
        if let Some(name) = key.strip_prefix("f:") {
            match desired.get(name) {
                None => true,
                Some(d) => extra_fields(sub, d),
            }
        } else if let Some(item) = key.strip_prefix("k:") {
            let (Ok(Value::Object(want)), Value::Array(items)) =
                (serde_json::from_str::<Value>(item), desired)
            else {
                return false;
            };
            match items.iter().find(|i| {
                want.iter()
                    .all(|(k, v)| i.get(k).is_none_or(|have| have == v))
            }) {
                None => true,
                Some(i) => extra_fields(sub, i),
            }
        } else if let Some(item) = key.strip_prefix("v:") {
            match (serde_json::from_str::<Value>(item), desired) {
                (Ok(v), Value::Array(items)) => !items.contains(&v),
                _ => false,
            }
        } else {
            false
        }
    })
}

/// A live condition the desired status doesn't mention (such as the host's PolicyFailed)
/// makes the status differ even when every desired field matches.
fn has_extra_conditions(desired: &Value, live: &Value) -> bool {
    let count = |v: &Value| v.get("conditions").and_then(Value::as_array).map(Vec::len);
    matches!((count(desired), count(live)), (Some(d), Some(l)) if l > d)
}

/// An object of the given kind as one of `watches` (the owned or the read kinds) caches it
/// in `cluster`.
fn cached(
    watches: &[super::Watched],
    cluster: &str,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Arc<DynamicObject>> {
    watches
        .iter()
        .filter(|w| w.kind.kind == kind && w.kind.api_version == api_version)
        .find_map(|w| w.stores.get(cluster).and_then(|(s, _)| s.get(ns, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_managed(fields: Value, manager: &str) -> DynamicObject {
        let mut obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "managedFields": [{
                "manager": manager, "operation": "Apply", "apiVersion": "v1",
                "fieldsType": "FieldsV1", "fieldsV1": fields,
            }]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        obj.metadata.name = Some("c".into());
        obj
    }

    #[test]
    fn fields_applied_earlier_and_dropped_since_need_an_apply() {
        let fields = serde_json::json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:org": {}}},
            "f:spec": {"f:ports": {"k:{\"port\":9042,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}},
            "f:finalizers": {"v:\"a\"": {}},
        });
        let live = with_managed(fields, "k8ssandra-policy-x");
        let full = serde_json::json!({
            "metadata": {"labels": {"app": "c", "org": "o"}},
            "spec": {"ports": [{"port": 9042}]},
            "finalizers": ["a"],
        });
        assert!(!owns_extra_fields(&live, "k8ssandra-policy-x", &full));
        // Another manager's entry says nothing about this policy's fields.
        let mut label_gone = full.clone();
        label_gone["metadata"]["labels"]
            .as_object_mut()
            .map(|m| m.remove("org"));
        assert!(owns_extra_fields(&live, "k8ssandra-policy-x", &label_gone));
        assert!(!owns_extra_fields(&live, "k8ssandra-policy-y", &label_gone));
        let mut port_gone = full.clone();
        port_gone["spec"]["ports"] = serde_json::json!([{"port": 7000}]);
        assert!(owns_extra_fields(&live, "k8ssandra-policy-x", &port_gone));
        let mut finalizer_gone = full;
        finalizer_gone["finalizers"] = serde_json::json!(["b"]);
        assert!(owns_extra_fields(
            &live,
            "k8ssandra-policy-x",
            &finalizer_gone
        ));
    }

    #[test]
    fn finalizers_a_policy_set_before_a_restart_are_found_in_its_managed_fields() {
        let fields = serde_json::json!({
            "f:metadata": {"f:finalizers": {".": {}, "v:\"reaper.k8ssandra.io/deregister\"": {}}},
        });
        let live = with_managed(fields, "k8ssandra-policy-reaper-finalizer");
        assert_eq!(
            managed_finalizers(&live, "k8ssandra-policy-reaper-finalizer"),
            vec!["reaper.k8ssandra.io/deregister".to_string()]
        );
        // Another manager's finalizers are never this policy's to remove.
        assert!(managed_finalizers(&live, "k8ssandra-policy-other-finalizer").is_empty());
    }

    #[test]
    fn a_cache_behind_the_hosts_own_status_write_gives_way_to_what_the_server_stored() {
        let with = |rv: &str, phase: &str| {
            let mut o = DynamicObject::new(
                "dc1",
                &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            );
            o.metadata.resource_version = Some(rv.to_string());
            o.data = serde_json::json!({ "status": { "phase": phase } });
            Arc::new(o)
        };
        let key: ParentKey = ("ns".into(), "dc1".into());
        let mut written = Written::new();
        written.insert(key.clone(), ("10".into(), with("11", "ScalingUp")));
        // The cache still holds the object the write was based on: the stored one wins.
        let seen = fresh_parent(&mut written, &key, with("10", "Ready"));
        assert_eq!(seen.data["status"]["phase"], "ScalingUp");
        // The cache has moved on (our write or a later one): it is the truth again, and
        // the remembered write is forgotten.
        let seen = fresh_parent(&mut written, &key, with("12", "Other"));
        assert_eq!(seen.data["status"]["phase"], "Other");
        assert!(written.is_empty());
        // Nothing written: the cache's copy as it is.
        let seen = fresh_parent(&mut written, &key, with("10", "Ready"));
        assert_eq!(seen.data["status"]["phase"], "Ready");
    }

    #[test]
    fn objects_controlled_by_another_controller_are_not_children() {
        let slice: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc-abcde", "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": "svc", "uid": "u",
                "controller": true, "blockOwnerDeletion": true,
            }]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(controlled_by_another(&slice, "CassandraDatacenter"));
        assert!(!controlled_by_another(&slice, "Service"));
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "cassandra".to_string()),
            ("rack".to_string(), "r1".to_string()),
        ]
        .into();
        assert!(selector_matches("app=cassandra", &labels));
        assert!(selector_matches("app==cassandra,rack", &labels));
        assert!(!selector_matches("app=cassandra,rack!=r1", &labels));
        assert!(selector_matches("!missing", &labels));
        assert!(!selector_matches("missing", &labels));
        assert!(selector_matches("", &labels));
    }

    #[test]
    fn parent_labels_round_trip() {
        let labels: BTreeMap<String, String> = [
            (PARENT_KIND_LABEL.to_string(), "Echo".to_string()),
            (PARENT_NAMESPACE_LABEL.to_string(), "ns".to_string()),
            (PARENT_NAME_LABEL.to_string(), "a".to_string()),
            (PARENT_CLUSTER_LABEL.to_string(), "c1".to_string()),
        ]
        .into();
        assert_eq!(
            parent_from_labels(&labels, "Echo", "c1"),
            Some(("ns".into(), "a".into()))
        );
        assert_eq!(parent_from_labels(&labels, "Other", "c1"), None);
        // The same names under another cluster's parent are not ours.
        assert_eq!(parent_from_labels(&labels, "Echo", "c2"), None);
    }
}
