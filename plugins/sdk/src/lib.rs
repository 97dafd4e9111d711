//! Guest-side SDK for k8ssandra operator policies.
//!
//! A policy is a plain Rust library: implement [`Policy`] on a unit struct, call
//! [`export_policy!`] once, and build with `cargo build --target wasm32-wasip2` (or
//! `cargo component build`). The same crate compiles natively, so its logic is unit-tested
//! with ordinary `#[test]`s: build a [`Snapshot`], call `reconcile`, assert on the [`Plan`].
//!
//! The WIT contract lives in `wit/policy.wit` at the repository root; the types re-exported
//! here are generated from it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "k8ssandra_policy_sdk::bindings",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        generate_unused_types: true,
    });
}

pub use bindings::k8ssandra::policy::types::Event;
pub use bindings::k8ssandra::policy::types::{
    ClusterState, EventType, GeneratedSecret, KindRef, Level, NodeRef, NodeState, Object,
    ObjectKey, Operation, OperationKind, OperationResult, Outcome, Plan, PluginInfo, PolicyError,
    ReadSpec, Replication, Role, Snapshot, TableScope, Violation,
};
pub use bindings::k8ssandra::policy::types::{ColumnDef, ColumnKind, TableDef};
pub use bindings::k8ssandra::policy::types::{
    KeyspaceDrop, MedusaBackup, MedusaBackupMode, MedusaRestore,
};
pub use bindings::k8ssandra::policy::types::{
    ReaperAccess, ReaperCluster, ReaperClusterRef, ReaperRepair, ReaperSchedule, ReaperScheduleRef,
    ReaperScheduleState, ReaperScheduleUpdate, RepairParallelism,
};

/// Re-exported so policies use the same versions as the SDK.
pub mod calls;
pub mod conditions;
pub mod pods;
mod scan;

pub use k8s_openapi;
pub use serde_json;

/// Label the host stamps on every object a policy owns: the policy's name.
pub const POLICY_LABEL: &str = "k8ssandra.io/policy";
/// Labels that tie an owned object to its parent across clusters (ownerReferences can't).
pub const PARENT_NAME_LABEL: &str = "k8ssandra.io/parent-name";
pub const PARENT_NAMESPACE_LABEL: &str = "k8ssandra.io/parent-namespace";
pub const PARENT_KIND_LABEL: &str = "k8ssandra.io/parent-kind";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "k8ssandra-operator";

/// What a policy implements. The three functions mirror the WIT world's exports.
pub trait Policy {
    fn describe() -> PluginInfo;
    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError>;
    fn validate(_object: String, _old: Option<String>) -> Vec<Violation> {
        Vec::new()
    }
}

/// Exports a [`Policy`] implementation as the component's `policy` world.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty) => {
        const _: () = {
            struct __K8ssandraPolicyExport;
            impl $crate::bindings::Guest for __K8ssandraPolicyExport {
                fn describe() -> $crate::PluginInfo {
                    <$ty as $crate::Policy>::describe()
                }
                fn reconcile(
                    snapshot: $crate::Snapshot,
                ) -> ::core::result::Result<$crate::Plan, $crate::PolicyError> {
                    <$ty as $crate::Policy>::reconcile(snapshot)
                }
                fn validate(
                    object: ::std::string::String,
                    old: ::core::option::Option<::std::string::String>,
                ) -> ::std::vec::Vec<$crate::Violation> {
                    <$ty as $crate::Policy>::validate(object, old)
                }
            }
            $crate::bindings::__export_policy_world!(__K8ssandraPolicyExport);
        };
    };
}

/// Sends a log line to the host. Natively (unit tests) it goes to stderr instead, because
/// there is no host to import from.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Errors that turn into a [`PolicyError`].
pub fn error(message: impl Into<String>) -> PolicyError {
    PolicyError {
        message: message.into(),
        retry_after_ms: None,
    }
}

impl ReadSpec {
    /// Objects of a kind in the parent's cluster, selected by `selector` (`kubectl -l`
    /// syntax; empty selects every object of the kind).
    pub fn new(api_version: &str, kind: &str, selector: &str) -> Self {
        ReadSpec {
            kind: KindRef::new(api_version, kind),
            selector: selector.to_string(),
            per_parent: false,
            all_clusters: false,
        }
    }

    /// The objects of a kind the parent names: each JSON pointer into the parent (e.g.
    /// `/spec/storageProperties/storageSecretRef/name`) gives a name, read from the
    /// parent's namespace. They are fetched for each reconcile and not watched (a change of
    /// one does not trigger the parent): a policy waiting on one requeues. This is how a
    /// policy reads a user's Secret that carries none of its labels. (0.4.0 hosts)
    pub fn by_name(api_version: &str, kind: &str, pointers: &[&str]) -> Self {
        ReadSpec::new(api_version, kind, &format!("ref:{}", pointers.join(",")))
    }

    /// The same objects in every known cluster.
    pub fn in_all_clusters(self) -> Self {
        ReadSpec {
            all_clusters: true,
            ..self
        }
    }
}

impl KindRef {
    pub fn new(api_version: &str, kind: &str) -> Self {
        KindRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// The kind of a k8s-openapi or kube-derived resource type.
    pub fn of<K: k8s_openapi::Resource>() -> Self {
        KindRef::new(K::API_VERSION, K::KIND)
    }
}

impl Object {
    /// Serialises a typed object for the plan. The object must carry `apiVersion` and
    /// `kind` (k8s-openapi types do when built with `Default` and serialised).
    pub fn from_typed<T: Serialize>(cluster: &str, value: &T) -> Result<Self, PolicyError> {
        let json = serde_json::to_string(value).map_err(|e| error(format!("serialise: {e}")))?;
        Ok(Object {
            cluster: cluster.to_string(),
            json,
        })
    }

    /// Parses the object into a typed value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        serde_json::from_str(&self.json).map_err(|e| error(format!("parse object: {e}")))
    }

    /// The object as untyped JSON.
    pub fn value(&self) -> Result<serde_json::Value, PolicyError> {
        self.parse()
    }

    /// `kind` of the object: empty when it has none, `None` when the text is not a JSON
    /// object or `kind` is not a string. Only the text up to `kind` is read (the host
    /// writes it second), so this is cheap to ask of every object.
    pub fn kind(&self) -> Option<String> {
        self.kind_str().map(Cow::into_owned)
    }

    /// Whether the object's `kind` is `kind`, without allocating.
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind_str().is_some_and(|k| k == kind)
    }

    fn kind_str(&self) -> Option<Cow<'_, str>> {
        match scan::field(&self.json, "kind") {
            Ok(Some(raw)) => scan::string(raw),
            Ok(None) => Some(Cow::Borrowed("")),
            Err(scan::Malformed) => None,
        }
    }

    /// `metadata.name` of the object, if it parses.
    pub fn name(&self) -> Option<String> {
        self.meta().and_then(|m| m.name)
    }

    /// `metadata.labels` of the object.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.meta().and_then(|m| m.labels).unwrap_or_default()
    }

    /// `metadata` alone, typed: found by a scan, so the rest of the object is not parsed.
    fn meta(&self) -> Option<HeaderMeta> {
        match scan::field(&self.json, "metadata") {
            Ok(Some(raw)) => serde_json::from_str(raw).ok(),
            Ok(None) => Some(HeaderMeta::default()),
            Err(scan::Malformed) => None,
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct HeaderMeta {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

impl Snapshot {
    /// The parent, typed.
    pub fn parent<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        self.parent.parse()
    }

    /// Children of one kind, typed, with their cluster.
    pub fn children_of<K>(&self) -> Vec<(String, K)>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        typed_of(&self.children)
    }

    /// Related (read) objects of one kind, typed, with their cluster.
    pub fn related_of<K>(&self) -> Vec<(String, K)>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        typed_of(&self.related)
    }

    /// Related Pods, read through the slim [`pods::PodView`] (labels, name, uid, IP,
    /// readiness, timestamps) rather than whole k8s-openapi `Pod`s, with their cluster. The
    /// pods a policy watches are most of a large snapshot; prefer this to
    /// `related_of::<Pod>()` unless the spec or more of the status is needed.
    pub fn pods(&self) -> Vec<(String, pods::PodView)> {
        pods::views(&self.related)
    }

    /// Related objects of a kind named by its `kind` (for custom resources, which are not
    /// k8s-openapi types), typed, with their cluster.
    pub fn related_by_kind<T: DeserializeOwned>(&self, kind: &str) -> Vec<(String, T)> {
        by_kind(&self.related, kind)
    }

    /// Children of a kind named by its `kind`, typed, with their cluster.
    pub fn children_by_kind<T: DeserializeOwned>(&self, kind: &str) -> Vec<(String, T)> {
        by_kind(&self.children, kind)
    }

    /// The latest outcome recorded for an operation id.
    pub fn result(&self, id: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .filter(|r| r.id == id)
            .max_by_key(|r| r.at_ms)
            .map(|r| &r.outcome)
    }

    /// Whether the host can currently reach the named cluster. Unknown clusters count as
    /// unreachable: deciding anything about them would be a guess.
    pub fn cluster_reachable(&self, cluster: &str) -> bool {
        self.clusters
            .iter()
            .any(|c| c.name == cluster && c.reachable)
    }

    /// An empty snapshot around a parent, for tests.
    pub fn for_parent(parent: Object) -> Self {
        Snapshot {
            parent,
            children: Vec::new(),
            related: Vec::new(),
            nodes: Vec::new(),
            results: Vec::new(),
            clusters: vec![ClusterState {
                name: String::new(),
                reachable: true,
                message: None,
            }],
            now_ms: 0,
            base_plan: None,
        }
    }
}

fn by_kind<T: DeserializeOwned>(objects: &[Object], kind: &str) -> Vec<(String, T)> {
    objects
        .iter()
        .filter(|o| o.is_kind(kind))
        .filter_map(|o| o.parse::<T>().ok().map(|t| (o.cluster.clone(), t)))
        .collect()
}

fn typed_of<K>(objects: &[Object]) -> Vec<(String, K)>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    objects
        .iter()
        .filter(|o| o.is_kind(K::KIND))
        .filter_map(|o| o.parse::<K>().ok().map(|k| (o.cluster.clone(), k)))
        .collect()
}

// Deriving is not possible: the type is generated, and `additional_derives` would ask
// `Default` of every generated type, enums included.
#[allow(clippy::derivable_impls)]
impl Default for Plan {
    fn default() -> Self {
        Plan {
            apply: Vec::new(),
            delete: Vec::new(),
            operations: Vec::new(),
            secrets: Vec::new(),
            status: None,
            finalizers: None,
            events: Vec::new(),
            requeue_after_ms: None,
        }
    }
}

impl Plan {
    /// Adds an object to apply in a cluster.
    pub fn apply<T: Serialize>(&mut self, cluster: &str, value: &T) -> Result<(), PolicyError> {
        self.apply.push(Object::from_typed(cluster, value)?);
        Ok(())
    }

    /// Sets the parent's desired status.
    pub fn set_status<T: Serialize>(&mut self, status: &T) -> Result<(), PolicyError> {
        self.status =
            Some(serde_json::to_string(status).map_err(|e| error(format!("status: {e}")))?);
        Ok(())
    }

    /// Records an event about the parent.
    pub fn event(&mut self, event_type: EventType, reason: &str, message: impl Into<String>) {
        self.events.push(Event {
            event_type,
            reason: reason.to_string(),
            message: message.into(),
            regarding: None,
        });
    }

    /// Asks to be called again after `ms` milliseconds, keeping the earliest request.
    pub fn requeue_after(&mut self, ms: u64) {
        self.requeue_after_ms = Some(self.requeue_after_ms.map_or(ms, |cur| cur.min(ms)));
    }

    /// Adds a data-plane operation.
    pub fn operate(&mut self, id: impl Into<String>, target: NodeRef, kind: OperationKind) {
        self.operations.push(Operation {
            id: id.into(),
            target,
            kind,
        });
    }
}

/// A typed object's `metadata.labels`, created if absent.
pub fn labels_mut(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> &mut BTreeMap<String, String> {
    meta.labels.get_or_insert_with(BTreeMap::new)
}

/// A table whose columns are `partition_key` (in key order) then `regular`, each as
/// (name, CQL type): the shape of the tables operators create for their own use.
pub fn simple_table(
    keyspace: &str,
    name: &str,
    partition_key: &[(&str, &str)],
    regular: &[(&str, &str)],
) -> TableDef {
    let column = |(i, (n, t)): (usize, &(&str, &str)), kind| ColumnDef {
        name: n.to_string(),
        cql_type: t.to_string(),
        kind,
        position: u32::try_from(i).unwrap_or(u32::MAX),
        descending: false,
    };
    let mut columns: Vec<ColumnDef> = partition_key
        .iter()
        .enumerate()
        .map(|c| column(c, ColumnKind::PartitionKey))
        .collect();
    columns.extend(
        regular
            .iter()
            .enumerate()
            .map(|c| column(c, ColumnKind::Regular)),
    );
    TableDef {
        keyspace: keyspace.to_string(),
        name: name.to_string(),
        columns,
        options: Vec::new(),
    }
}

/// RFC 3339 (seconds, UTC) of Unix milliseconds: the form Kubernetes writes a `Time` in, so a
/// status a policy writes compares equal to the one it reads back.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// FNV-1a, 64 bits, as 16 hex digits: stable across builds and platforms, unlike std's
/// hasher, so operation ids derived from it survive an operator upgrade.
pub fn stable_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A violation for `field`.
pub fn violation(field: &str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn typed_children_filter_by_kind() {
        let cm = ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("a".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut json = serde_json::to_value(&cm).unwrap();
        json["apiVersion"] = "v1".into();
        json["kind"] = "ConfigMap".into();
        let mut snap = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: "{}".into(),
        });
        snap.children.push(Object {
            cluster: "east".into(),
            json: json.to_string(),
        });
        snap.children.push(Object {
            cluster: "east".into(),
            json: r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#.into(),
        });
        let cms = snap.children_of::<ConfigMap>();
        assert_eq!(cms.len(), 1);
        assert_eq!(cms[0].0, "east");
        assert_eq!(cms[0].1.metadata.name.as_deref(), Some("a"));
    }

    /// What `kind`/`name`/`labels` returned before the scan: one serde pass over the whole
    /// text. The reference the scan must agree with on well-formed objects.
    #[derive(serde::Deserialize)]
    struct Reference {
        #[serde(default)]
        kind: String,
        #[serde(default)]
        metadata: ReferenceMeta,
    }

    #[derive(serde::Deserialize, Default)]
    struct ReferenceMeta {
        name: Option<String>,
        labels: Option<BTreeMap<String, String>>,
    }

    #[test]
    fn header_lookups_agree_with_a_full_parse() {
        let pod = pods::tests::full_pod();
        let part = |k: &str| pod[k].to_string();
        let reordered = format!(
            r#"{{"status":{},"spec":{},"metadata":{},"kind":"Pod","apiVersion":"v1"}}"#,
            part("status"),
            part("spec"),
            part("metadata")
        );
        let sts = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "demo-dc1-r1-sts", "namespace": "db",
                "labels": {"app.kubernetes.io/managed-by": "k8ssandra-operator"},
                "ownerReferences": [{"apiVersion": "cassandra.datastax.com/v1beta1",
                    "kind": "CassandraDatacenter", "name": "dc1", "uid": "u"}]},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "cassandra"}]}},
                "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "server-data"}}]}});
        let texts = [
            pod.to_string(),
            serde_json::to_string_pretty(&pod).unwrap_or_default(),
            reordered,
            sts.to_string(),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s\u00e9\"q","labels":{"k\n":"v\t"}},"data":{}}"#.into(),
            r#"{"apiVersion":"v1","kind":"\u0050od","metadata":{"name":"p"}}"#.into(),
            r#"{"apiVersion":"v1","metadata":{"name":"no-kind"}}"#.into(),
            r#"{"apiVersion":"v1","kind":"Pod"}"#.into(),
            r#"{"kind":"Pod","metadata":{"labels":null}}"#.into(),
            "{}".into(),
        ];
        for json in texts {
            let reference: Reference =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            let o = Object {
                cluster: String::new(),
                json: json.clone(),
            };
            assert_eq!(o.kind(), Some(reference.kind.clone()), "{json}");
            assert!(o.is_kind(&reference.kind), "{json}");
            assert_eq!(o.name(), reference.metadata.name, "{json}");
            assert_eq!(
                o.labels(),
                reference.metadata.labels.unwrap_or_default(),
                "{json}"
            );
        }
    }

    #[test]
    fn header_lookups_on_malformed_text_find_nothing() {
        for json in [
            "",
            "null",
            r#"{"apiVersion":"v1","#,
            r#"{"kind":1}"#,
            r#"{"kind":null}"#,
            r#"{"a":[1,"kind":"Pod"}"#,
            r#"{"metadata":{"name":1}}"#,
            r#"{"metadata":"x"}"#,
        ] {
            let o = Object {
                cluster: String::new(),
                json: json.into(),
            };
            assert!(serde_json::from_str::<Reference>(json).is_err(), "{json}");
            let found = if json.contains("metadata") {
                o.name()
            } else {
                o.kind()
            };
            assert_eq!(found, None, "{json}");
            assert!(o.labels().is_empty(), "{json}");
            assert!(!o.is_kind("Pod"), "{json}");
        }
    }

    #[test]
    fn requeue_keeps_earliest() {
        let mut plan = Plan::default();
        plan.requeue_after(5000);
        plan.requeue_after(100);
        plan.requeue_after(9000);
        assert_eq!(plan.requeue_after_ms, Some(100));
    }

    #[test]
    fn latest_result_wins() {
        let mut snap = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: "{}".into(),
        });
        snap.results.push(OperationResult {
            id: "x".into(),
            outcome: Outcome::Running("job".into()),
            at_ms: 1,
        });
        snap.results.push(OperationResult {
            id: "x".into(),
            outcome: Outcome::Succeeded(String::new()),
            at_ms: 2,
        });
        assert_eq!(snap.result("x"), Some(&Outcome::Succeeded(String::new())));
        assert!(snap.result("y").is_none());
    }
}
