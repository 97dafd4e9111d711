//! Writes to Kubernetes: server-side apply, deletion, status patches, events, generated
//! Secrets. Every write goes through [`Writer`], which counts it, so "an unchanged plan
//! causes zero writes" is measurable.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;

use crate::observe::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cluster {cluster:?} is not known to the host")]
    UnknownCluster { cluster: String },
    #[error("object in plan is not valid: {reason}")]
    InvalidObject { reason: String },
    #[error("kind {api_version}/{kind} is not served by cluster {cluster:?}: {message}")]
    Discovery {
        cluster: String,
        api_version: String,
        kind: String,
        /// The server's message in one line (see [`short`]).
        message: String,
    },
    #[error("{verb} {kind} {object} in cluster {cluster:?}: {message}")]
    Api {
        verb: &'static str,
        cluster: String,
        kind: String,
        /// `namespace/name`.
        object: String,
        /// The server's message in one line (see [`short`]).
        message: String,
    },
}

/// An API error in one line: the server's message, not the whole Status structure.
pub fn short(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}

/// A resolved kind: how to address it and whether it lives in namespaces.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// (cluster, apiVersion, kind).
type KindKey = (String, String, String);

/// Discovery results per (cluster, apiVersion, kind); discovery is one round trip per kind,
/// so it is worth remembering.
#[derive(Clone, Default)]
pub struct Discovery {
    cache: Arc<Mutex<HashMap<KindKey, Resolved>>>,
    /// Kinds asked for and not served at the time, until `appeared` finds them served: a
    /// CRD installed later (the Prometheus Operator's ServiceMonitor) is then watched.
    misses: Arc<Mutex<std::collections::BTreeSet<KindKey>>>,
    /// Set when a lookup finds a kind that was missing: the watches lack it until they
    /// restart, and a policy's own apply is usually the first to find it, long before the
    /// periodic re-check would.
    found: Arc<std::sync::atomic::AtomicBool>,
    found_notify: Arc<tokio::sync::Notify>,
}

impl Discovery {
    pub async fn resolve(
        &self,
        cluster: &str,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved, ApplyError> {
        let key = (
            cluster.to_string(),
            api_version.to_string(),
            kind.to_string(),
        );
        if let Some(r) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(r.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = match pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(source) => {
                self.misses
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key);
                return Err(ApplyError::Discovery {
                    cluster: cluster.to_string(),
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    message: short(&source),
                });
            }
        };
        let resolved = Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        if self
            .misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
        {
            tracing::info!(%cluster, %api_version, %kind, "kind is served now");
            self.found.store(true, std::sync::atomic::Ordering::SeqCst);
            self.found_notify.notify_one();
        }
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, resolved.clone());
        Ok(resolved)
    }

    /// Completes when a lookup has found a kind that was missing (see [`Self::appeared`]).
    pub async fn found_missing(&self) {
        self.found_notify.notified().await;
    }

    /// Asks again for every kind that was not served; true when one is now, or when a
    /// lookup found one since the last call. One request per missing kind, nothing when
    /// every kind was found.
    pub async fn appeared(&self, client_of: impl Fn(&str) -> Option<Client>) -> bool {
        let misses: Vec<KindKey> = self
            .misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for (cluster, api_version, kind) in misses {
            match client_of(&cluster) {
                Some(client) => {
                    // A success removes the miss and raises `found`.
                    let _ = self.resolve(&cluster, &client, &api_version, &kind).await;
                }
                // A cluster that is gone is asked about again when it returns.
                None => {
                    self.misses
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(cluster, api_version, kind));
                }
            }
        }
        self.found.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets a cluster's kinds (its client changed, CRDs may differ).
    pub fn forget_cluster(&self, cluster: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.0 != cluster);
        self.misses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| k.0 != cluster);
    }
}

/// True when every field set in `desired` has the same value in `live`. Arrays must match
/// element by element. This is how "the plan equals the live state" is decided: the API
/// server adds defaults and status, which `desired` does not mention.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Null, _) => true,
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || l.get(k).is_some_and(|lv| is_subset(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        (d, l) => d == l,
    }
}

/// Removes the values of a Secret, keeping its keys: policies may see which keys exist,
/// never what they hold.
pub fn redact_secret(obj: &mut DynamicObject) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = obj.data.get_mut(field) {
            for v in map.values_mut() {
                *v = Value::String(String::new());
            }
        }
    }
}

/// How an object listed in a plan's `delete` is deleted. A StatefulSet is deleted
/// orphaning its pods: a policy lists one to recreate it with a field Kubernetes does not
/// let change (`volumeClaimTemplates`), and its running pods must survive that (the new
/// StatefulSet adopts them). Everything else, and every prune, propagates in the
/// background.
/// Prefix of the server-side-apply field manager of every policy (`k8ssandra-policy-<name>`).
pub const FIELD_MANAGER_PREFIX: &str = "k8ssandra-policy-";

pub fn explicit_delete_params(api_version: &str, kind: &str) -> DeleteParams {
    if api_version == "apps/v1" && kind == "StatefulSet" {
        DeleteParams::orphan()
    } else {
        DeleteParams::background()
    }
}

/// Whether the host adopts an object a plan applies (ownership labels, ownerReference).
/// PersistentVolumeClaims are not adopted: a policy patches them (a larger size) but they
/// belong to their StatefulSet's pods, and an ownerReference to the parent would let the
/// garbage collector delete the data with the parent.
pub fn adopts(api_version: &str, kind: &str) -> bool {
    !(api_version == "v1" && kind == "PersistentVolumeClaim")
}

/// Kinds whose objects record something outside Kubernetes that must outlive whatever
/// created them: a MedusaBackup stands for a backup in the storage. The host labels them
/// (so the policy sees them as its own) but gives them no ownerReference, so the garbage
/// collector never deletes them with their parent, and never prunes them: only a user or
/// an explicit `delete` of a plan removes one.
pub fn retained(api_version: &str, kind: &str) -> bool {
    api_version.starts_with("medusa.k8ssandra.io/") && kind == "MedusaBackup"
}

/// The object an apply was for, to name it in errors and logs.
struct Applied {
    kind: String,
    namespace: String,
    name: String,
}

impl Applied {
    fn api_error(self, cluster: &str, source: &kube::Error) -> ApplyError {
        ApplyError::Api {
            verb: "apply",
            cluster: cluster.to_string(),
            object: format!("{}/{}", self.namespace, self.name),
            kind: self.kind,
            message: short(source),
        }
    }
}

/// Performs and counts writes on behalf of one policy.
#[derive(Clone)]
pub struct Writer {
    pub policy: String,
    pub field_manager: String,
    pub metrics: Metrics,
    pub discovery: Discovery,
}

impl Writer {
    pub fn new(policy: &str, metrics: Metrics, discovery: Discovery) -> Self {
        Writer {
            policy: policy.to_string(),
            field_manager: format!("{FIELD_MANAGER_PREFIX}{policy}"),
            metrics,
            discovery,
        }
    }

    fn api(client: Client, resolved: &Resolved, namespace: &str) -> Api<DynamicObject> {
        if resolved.namespaced {
            Api::namespaced_with(client, namespace, &resolved.resource)
        } else {
            Api::all_with(client, &resolved.resource)
        }
    }

    /// Server-side applies one object (forcing ownership of the fields it sets).
    pub async fn apply(
        &self,
        cluster: &str,
        client: &Client,
        object: &Value,
    ) -> Result<DynamicObject, ApplyError> {
        let (id, answer) = self.send_apply(cluster, client, object).await?;
        answer.map_err(|source| id.api_error(cluster, &source))
    }

    /// Server-side applies fields of an object this policy does not own (labels on a pod
    /// of its StatefulSet, say). `object` carries the live `metadata.uid`: the API server
    /// then refuses to create it when it is gone (409) and to touch a namesake that
    /// replaced it. Either answer, and a 404, is `None`: nothing to patch.
    pub async fn patch_existing(
        &self,
        cluster: &str,
        client: &Client,
        object: &Value,
    ) -> Result<Option<DynamicObject>, ApplyError> {
        if object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_none()
        {
            let (_, kind, namespace, name) = identity(object)?;
            return Err(ApplyError::InvalidObject {
                reason: format!("a patch of {kind} {namespace}/{name} needs its metadata.uid"),
            });
        }
        let (id, answer) = self.send_apply(cluster, client, object).await?;
        match answer {
            Ok(o) => Ok(Some(o)),
            Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => {
                tracing::debug!(kind = %id.kind, namespace = %id.namespace, name = %id.name,
                    message = %e.message, "object gone or replaced; not patched");
                Ok(None)
            }
            Err(source) => Err(id.api_error(cluster, &source)),
        }
    }

    /// The apply request of both: the kind resolved (an unknown one is the error), the
    /// request counted as a write; the API server's answer is left to the caller.
    async fn send_apply(
        &self,
        cluster: &str,
        client: &Client,
        object: &Value,
    ) -> Result<(Applied, Result<DynamicObject, kube::Error>), ApplyError> {
        let (api_version, kind, namespace, name) = identity(object)?;
        let resolved = self
            .discovery
            .resolve(cluster, client, &api_version, &kind)
            .await?;
        let api = Self::api(client.clone(), &resolved, &namespace);
        let params = PatchParams::apply(&self.field_manager).force();
        self.metrics.record_write(&self.policy, "apply", cluster);
        let answer = api.patch(&name, &params, &Patch::Apply(object)).await;
        Ok((
            Applied {
                kind,
                namespace,
                name,
            },
            answer,
        ))
    }

    /// Deletes one object; an object already gone is success.
    pub async fn delete(
        &self,
        cluster: &str,
        client: &Client,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApplyError> {
        // Background propagation: a StatefulSet's pods go with it, its PVCs never do
        // (Kubernetes keeps them unless the StatefulSet's retention policy says otherwise).
        let params = DeleteParams::background();
        self.delete_with(cluster, client, api_version, kind, namespace, name, &params)
            .await
    }

    /// Deletes one object with the given propagation; an object already gone is success,
    /// and so is one whose UID precondition fails: the object meant is gone, and another
    /// now carries its name.
    #[allow(clippy::too_many_arguments)]
    pub async fn delete_with(
        &self,
        cluster: &str,
        client: &Client,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<(), ApplyError> {
        let resolved = self
            .discovery
            .resolve(cluster, client, api_version, kind)
            .await?;
        let api = Self::api(client.clone(), &resolved, namespace);
        self.metrics.record_write(&self.policy, "delete", cluster);
        match api.delete(name, params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && params.preconditions.is_some() => {
                tracing::debug!(cluster = %cluster, kind = %kind, namespace = %namespace, name = %name,
                    "not deleting: the object the plan meant was replaced");
                Ok(())
            }
            Err(source) => Err(ApplyError::Api {
                verb: "delete",
                cluster: cluster.to_string(),
                kind: kind.to_string(),
                object: format!("{namespace}/{name}"),
                message: short(&source),
            }),
        }
    }

    /// Applies the parent's status through the status subresource; returns the status the
    /// API server stored (after its schema pruned what it doesn't know).
    pub async fn patch_status(
        &self,
        client: &Client,
        parent: &Resolved,
        parent_obj: &DynamicObject,
        status: Value,
    ) -> Result<DynamicObject, ApplyError> {
        let namespace = parent_obj.metadata.namespace.clone().unwrap_or_default();
        let name = parent_obj.metadata.name.clone().unwrap_or_default();
        let api = Self::api(client.clone(), parent, &namespace);
        let body = serde_json::json!({
            "apiVersion": parent.resource.api_version,
            "kind": parent.resource.kind,
            "status": status,
        });
        let params = PatchParams::apply(&self.field_manager).force();
        self.metrics.record_write(&self.policy, "status", "");
        api.patch_status(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| ApplyError::Api {
                verb: "patch status",
                cluster: String::new(),
                kind: parent.resource.kind.clone(),
                object: format!("{namespace}/{name}"),
                message: short(&source),
            })
    }

    /// Applies the status of an object a plan created (a MedusaBackup the policy records
    /// with what the backup holds) through its status subresource.
    pub async fn apply_child_status(
        &self,
        cluster: &str,
        client: &Client,
        object: &Value,
        status: Value,
    ) -> Result<(), ApplyError> {
        let (api_version, kind, namespace, name) = identity(object)?;
        let resolved = self
            .discovery
            .resolve(cluster, client, &api_version, &kind)
            .await?;
        let api = Self::api(client.clone(), &resolved, &namespace);
        let body = serde_json::json!({
            "apiVersion": api_version,
            "kind": kind,
            "status": status,
        });
        let params = PatchParams::apply(&self.field_manager).force();
        self.metrics.record_write(&self.policy, "status", cluster);
        api.patch_status(&name, &params, &Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(|source| ApplyError::Api {
                verb: "patch status",
                cluster: cluster.to_string(),
                kind,
                object: format!("{namespace}/{name}"),
                message: short(&source),
            })
    }

    /// Merge-patches one condition into the parent's `status.conditions`, used when the
    /// policy itself failed and cannot say anything.
    pub async fn set_condition(
        &self,
        client: &Client,
        parent: &Resolved,
        parent_obj: &DynamicObject,
        condition: Value,
    ) -> Result<(), ApplyError> {
        let ctype = condition.get("type").cloned().unwrap_or(Value::Null);
        let mut conditions: Vec<Value> = parent_obj
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(existing) = conditions.iter().find(|c| c.get("type") == Some(&ctype)) {
            let same = ["status", "reason", "message"]
                .iter()
                .all(|k| existing.get(*k) == condition.get(*k));
            if same {
                return Ok(());
            }
        }
        conditions.retain(|c| c.get("type") != Some(&ctype));
        conditions.push(condition);
        let namespace = parent_obj.metadata.namespace.clone().unwrap_or_default();
        let name = parent_obj.metadata.name.clone().unwrap_or_default();
        let api = Self::api(client.clone(), parent, &namespace);
        let body = serde_json::json!({ "status": { "conditions": conditions } });
        self.metrics.record_write(&self.policy, "status", "");
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(|_| ())
            .map_err(|source| ApplyError::Api {
                verb: "patch status",
                cluster: String::new(),
                kind: parent.resource.kind.clone(),
                object: format!("{namespace}/{name}"),
                message: short(&source),
            })
    }

    /// Sets the finalizers this policy manages on the parent (server-side apply owns them
    /// per field manager, so other controllers' finalizers are untouched).
    /// The field manager that owns the finalizers this policy asked for.
    pub fn finalizer_manager(&self) -> String {
        format!("{}-finalizer", self.field_manager)
    }

    pub async fn set_finalizers(
        &self,
        client: &Client,
        parent: &Resolved,
        parent_obj: &DynamicObject,
        finalizers: &[String],
    ) -> Result<(), ApplyError> {
        let namespace = parent_obj.metadata.namespace.clone().unwrap_or_default();
        let name = parent_obj.metadata.name.clone().unwrap_or_default();
        let api = Self::api(client.clone(), parent, &namespace);
        let body = serde_json::json!({
            "apiVersion": parent.resource.api_version,
            "kind": parent.resource.kind,
            "metadata": { "name": name, "namespace": namespace, "finalizers": finalizers },
        });
        let params = PatchParams::apply(&self.finalizer_manager()).force();
        self.metrics.record_write(&self.policy, "finalizers", "");
        match api.patch(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => Err(ApplyError::Api {
                verb: "set finalizers",
                cluster: String::new(),
                kind: parent.resource.kind.clone(),
                object: format!("{namespace}/{name}"),
                message: short(&source),
            }),
        }
    }

    /// Creates a Secret with random values when none exists. Never updates one: a password
    /// that changed under a running cluster would lock the operator out.
    pub async fn ensure_secret(
        &self,
        client: &Client,
        secret: &crate::plugin::bindings::GeneratedSecret,
        labels: BTreeMap<String, String>,
    ) -> Result<bool, ApplyError> {
        let (cluster, namespace, name) = (
            secret.cluster.as_str(),
            secret.namespace.as_str(),
            secret.name.as_str(),
        );
        let (fixed, random_keys) = (&secret.fixed, &secret.random_keys);
        use k8s_openapi::api::core::v1::Secret;
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let err = |verb: &'static str, source: kube::Error| ApplyError::Api {
            verb,
            cluster: cluster.to_string(),
            kind: "Secret".into(),
            object: format!("{namespace}/{name}"),
            message: short(&source),
        };
        if api
            .get_opt(name)
            .await
            .map_err(|e| err("get", e))?
            .is_some()
        {
            return Ok(false);
        }
        let mut data = BTreeMap::new();
        for (k, v) in fixed {
            data.insert(k.clone(), v.clone());
        }
        for k in random_keys {
            let value: String = rand::rng()
                .sample_iter(&Alphanumeric)
                .take(20)
                .map(char::from)
                .collect();
            data.insert(k.clone(), value);
        }
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            string_data: Some(data),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        self.metrics.record_write(&self.policy, "create", cluster);
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(err("create", e)),
        }
    }

    /// Records a core/v1 Event about an object.
    #[allow(clippy::too_many_arguments)]
    pub async fn event(
        &self,
        cluster: &str,
        client: &Client,
        regarding: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), ApplyError> {
        use k8s_openapi::api::core::v1::{Event, EventSource};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = k8s_openapi::jiff::Timestamp::now();
        let suffix: u64 = rand::rng().random();
        let event = Event {
            metadata: kube::api::ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.clone().unwrap_or_default(),
                    suffix
                )),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding.clone(),
            reason: Some(reason.to_string()),
            // Events are capped at 1 KiB of message by convention; long plans get cut.
            message: Some(message.chars().take(1024).collect()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            source: Some(EventSource {
                component: Some(format!("k8ssandra-operator/{}", self.policy)),
                host: None,
            }),
            reporting_component: Some("k8ssandra-operator".into()),
            reporting_instance: Some(format!("k8ssandra-operator-{}", self.policy)),
            action: Some(reason.to_string()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        self.metrics.record_write(&self.policy, "event", cluster);
        api.create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|source| ApplyError::Api {
                verb: "create",
                cluster: cluster.to_string(),
                kind: "Event".into(),
                object: format!(
                    "{}/{}",
                    namespace,
                    regarding.name.clone().unwrap_or_default()
                ),
                message: short(&source),
            })
    }
}

/// apiVersion, kind, namespace, name of an object in a plan.
pub fn identity(object: &Value) -> Result<(String, String, String, String), ApplyError> {
    let s = |ptr: &str| {
        object
            .pointer(ptr)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let api_version = s("/apiVersion").ok_or_else(|| ApplyError::InvalidObject {
        reason: "apiVersion is missing".into(),
    })?;
    let kind = s("/kind").ok_or_else(|| ApplyError::InvalidObject {
        reason: "kind is missing".into(),
    })?;
    let name = s("/metadata/name").ok_or_else(|| ApplyError::InvalidObject {
        reason: format!("metadata.name is missing on a {kind}"),
    })?;
    Ok((
        api_version,
        kind,
        s("/metadata/namespace").unwrap_or_default(),
        name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
                          "data": {"k": "v"}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn subset_sees_changed_values_and_lists() {
        let live = json!({"spec": {"replicas": 3, "ports": [{"port": 1}, {"port": 2}]}});
        assert!(!is_subset(&json!({"spec": {"replicas": 4}}), &live));
        assert!(!is_subset(
            &json!({"spec": {"ports": [{"port": 1}]}}),
            &live
        ));
        assert!(is_subset(
            &json!({"spec": {"ports": [{"port": 1}, {"port": 2}]}}),
            &live
        ));
        assert!(is_subset(&json!({"spec": {"replicas": 3.0}}), &live));
        assert!(!is_subset(&json!({"spec": {"missing": "x"}}), &live));
    }

    #[test]
    fn explicit_statefulset_deletes_orphan_the_pods() {
        use kube::api::PropagationPolicy;
        let sts = explicit_delete_params("apps/v1", "StatefulSet");
        assert!(matches!(
            sts.propagation_policy,
            Some(PropagationPolicy::Orphan)
        ));
        for (api_version, kind) in [
            ("v1", "Pod"),
            ("v1", "PersistentVolumeClaim"),
            ("v1", "Service"),
        ] {
            let p = explicit_delete_params(api_version, kind);
            assert!(matches!(
                p.propagation_policy,
                Some(PropagationPolicy::Background)
            ));
        }
    }

    #[test]
    fn claims_are_patched_not_adopted() {
        assert!(!adopts("v1", "PersistentVolumeClaim"));
        assert!(adopts("apps/v1", "StatefulSet"));
        assert!(adopts("v1", "Service"));
    }

    #[test]
    fn secrets_lose_their_values() {
        let mut obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "c2VjcmV0"}
        }))
        .unwrap();
        redact_secret(&mut obj);
        assert_eq!(obj.data["data"]["password"], "");
    }
}
