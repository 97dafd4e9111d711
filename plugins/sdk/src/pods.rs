//! Facts about pods that several policies need alike, read through a slim view.
//!
//! A Kubernetes pod's JSON is mostly its spec (containers, env, volumes, probes); the
//! policies read a handful of fields. [`PodView`] deserialises only those (the rest is
//! skipped without allocating), which at 1000 pods is most of a reconcile's parsing
//! (issue #15). Field names follow k8s-openapi's `Pod`, so code reads the same.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Deserializer};

use crate::{Object, scan};

/// The fields of a Pod the policies read. Parsing one fails where parsing a k8s-openapi
/// `Pod` would fail on these fields (a label that is not a string, a condition without a
/// type, a malformed timestamp); what is not here is not looked at.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodView {
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: PodMeta,
    #[serde(default)]
    pub status: Option<PodStatusView>,
}

/// `metadata` of a [`PodView`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
}

/// `status` of a [`PodView`].
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodStatusView {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    pub conditions: Option<Vec<PodConditionView>>,
}

/// One of `status.conditions` (k8s-openapi reads a missing or null `type`/`status` as
/// empty; so does the view).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct PodConditionView {
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub type_: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
}

impl PodView {
    /// Whether the pod's `Ready` condition is `True` (what the kubelet reports; the node
    /// states say whether Cassandra itself is up).
    pub fn ready_condition(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    /// `status.podIP`, unless empty.
    pub fn ip(&self) -> Option<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
    }

    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// k8s-openapi reads a null where it has a default (`"metadata": null`) as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Whether a pod can take a call now: not terminating, with an address, and Ready.
pub fn serving(p: &PodView) -> bool {
    p.metadata.deletion_timestamp.is_none() && p.ip().is_some() && p.ready_condition()
}

/// The objects that are v1 Pods, as views, with their cluster; one that does not parse is
/// left out, as `Snapshot::related_of::<Pod>()` leaves it out.
pub(crate) fn views(objects: &[Object]) -> Vec<(String, PodView)> {
    objects
        .iter()
        .filter(|o| is_pod(&o.json))
        .filter_map(|o| {
            serde_json::from_str::<PodView>(&o.json)
                .ok()
                .map(|p| (o.cluster.clone(), p))
        })
        .collect()
}

/// `kind` Pod and `apiVersion` v1 (or none): k8s-openapi refuses a Pod of another group.
fn is_pod(json: &str) -> bool {
    let is = |key, want| match scan::field(json, key) {
        Ok(Some(v)) => scan::string(v).is_some_and(|s| s == want),
        Ok(None) => key == "apiVersion",
        Err(_) => false,
    };
    is("kind", "Pod") && is("apiVersion", "v1")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    /// A Cassandra pod as the API server returns it: spec, managed fields, owner references
    /// (with a `kind` of their own) and a full status.
    pub(crate) fn full_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "demo-dc1-r1-sts-2", "namespace": "db", "uid": "u-2",
                "generateName": "demo-dc1-r1-sts-", "resourceVersion": "4711",
                "creationTimestamp": "2026-12-07T10:11:12Z",
                "labels": {"cassandra.datastax.com/cluster": "demo",
                    "cassandra.datastax.com/datacenter": "dc1",
                    "cassandra.datastax.com/rack": "r1",
                    "cassandra.datastax.com/seed-node": "true",
                    "controller-revision-hash": "demo-dc1-r1-sts-7f9c",
                    "statefulset.kubernetes.io/pod-name": "demo-dc1-r1-sts-2"},
                "annotations": {"k8ssandra.io/template-hash": "abc\"def"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "demo-dc1-r1-sts", "uid": "s-1", "controller": true,
                    "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                    "apiVersion": "v1", "time": "2026-12-07T10:11:12Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}],
            },
            "spec": {
                "hostname": "demo-dc1-r1-sts-2", "subdomain": "demo-dc1-all-pods-service",
                "nodeName": "worker-3", "serviceAccountName": "default",
                "containers": [{"name": "cassandra", "image": "k8ssandra/cass-management-api:4.1.5",
                    "env": [{"name": "MAX_HEAP_SIZE", "value": "512M"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "ports": [{"name": "cql", "containerPort": 9042, "protocol": "TCP"}],
                    "readinessProbe": {"httpGet": {"path": "/api/v0/probes/readiness",
                        "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
                    "volumeMounts": [{"name": "server-data", "mountPath": "/var/lib/cassandra"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                    {"name": "server-system-logger", "image": "k8ssandra/system-logger:v1.18.1"}],
                "initContainers": [{"name": "server-config-init", "image": "datastax/cass-config-builder:1.0"}],
                "volumes": [{"name": "server-data", "persistentVolumeClaim":
                    {"claimName": "server-data-demo-dc1-r1-sts-2"}},
                    {"name": "server-config", "emptyDir": {}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                    [{"labelSelector": {"matchExpressions": [{"key": "cassandra.datastax.com/cluster",
                        "operator": "Exists"}]}, "topologyKey": "kubernetes.io/hostname"}]}},
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
            },
            "status": {
                "phase": "Running", "hostIP": "172.18.0.3", "podIP": "10.244.1.7",
                "podIPs": [{"ip": "10.244.1.7"}], "startTime": "2026-12-07T10:11:13Z",
                "qosClass": "Burstable",
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-07T10:11:20Z"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T10:12:01Z"},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-07T10:11:13Z"}],
                "containerStatuses": [{"name": "cassandra", "ready": true, "restartCount": 0,
                    "image": "k8ssandra/cass-management-api:4.1.5", "imageID": "sha256:1",
                    "started": true, "state": {"running": {"startedAt": "2026-12-07T10:11:21Z"}},
                    "lastState": {}}],
            },
        })
    }

    fn view(v: &Value) -> PodView {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(v: &Value) -> Pod {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every field of the view equals k8s-openapi's reading of the same text.
    fn assert_same(v: &Value) {
        let (p, view) = (pod(v), view(v));
        let m = &p.metadata;
        assert_eq!(view.metadata.name, m.name);
        assert_eq!(view.metadata.namespace, m.namespace);
        assert_eq!(view.metadata.uid, m.uid);
        assert_eq!(view.metadata.labels, m.labels);
        assert_eq!(view.metadata.annotations, m.annotations);
        assert_eq!(view.metadata.creation_timestamp, m.creation_timestamp);
        assert_eq!(view.metadata.deletion_timestamp, m.deletion_timestamp);
        let st = p.status.as_ref();
        assert_eq!(
            view.status.as_ref().and_then(|s| s.pod_ip.clone()),
            st.and_then(|s| s.pod_ip.clone())
        );
        let conditions = |c: Option<Vec<(String, String)>>| c;
        assert_eq!(
            conditions(
                view.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|c| {
                        c.iter()
                            .map(|c| (c.type_.clone(), c.status.clone()))
                            .collect()
                    })
            ),
            conditions(st.and_then(|s| s.conditions.as_ref()).map(|c| {
                c.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect()
            }))
        );
    }

    #[test]
    fn the_view_reads_what_k8s_openapi_reads() {
        let full = full_pod();
        assert_same(&full);
        let mut going = full.clone();
        going["metadata"]["deletionTimestamp"] = "2026-12-07T11:00:00.123456Z".into();
        assert_same(&going);
        let mut bare = full.clone();
        bare.as_object_mut().map(|o| o.remove("status"));
        bare["metadata"] = Value::Null;
        assert_same(&bare);
        assert_same(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert_same(&json!({"metadata": {"labels": null}, "status": {"conditions": null}}));
        let mut odd = full.clone();
        odd["status"]["conditions"][0]
            .as_object_mut()
            .map(|c| c.remove("type"));
        odd["status"]["conditions"][1]["status"] = Value::Null;
        assert_same(&odd);
        let v = view(&full);
        assert_eq!(v.ip(), Some("10.244.1.7"));
        assert_eq!(v.label("cassandra.datastax.com/rack"), Some("r1"));
        assert!(v.ready_condition());
    }

    #[test]
    fn what_k8s_openapi_refuses_the_view_refuses() {
        let full = full_pod();
        let mut bad_label = full.clone();
        bad_label["metadata"]["labels"]["x"] = 1.into();
        let mut bad_time = full.clone();
        bad_time["metadata"]["creationTimestamp"] = "yesterday".into();
        let mut not_a_list = full.clone();
        not_a_list["status"]["conditions"] = json!({"type": "Ready", "status": "True"});
        for (case, bad) in [
            ("label", bad_label),
            ("time", bad_time),
            ("conditions", not_a_list),
        ] {
            assert!(
                serde_json::from_value::<Pod>(bad.clone()).is_err(),
                "{case}"
            );
            assert!(serde_json::from_value::<PodView>(bad).is_err(), "{case}");
        }
    }

    #[test]
    fn views_are_the_v1_pods_that_parse() {
        let full = full_pod();
        let obj = |cluster: &str, v: &Value| Object {
            cluster: cluster.into(),
            json: v.to_string(),
        };
        let mut other_group = full.clone();
        other_group["apiVersion"] = "example.com/v1".into();
        let mut no_version = full.clone();
        no_version.as_object_mut().map(|o| o.remove("apiVersion"));
        let mut bad = full.clone();
        bad["metadata"]["labels"]["x"] = 1.into();
        let mut second = full.clone();
        second["metadata"]["name"] = "second".into();
        let objects = [
            obj("east", &full),
            obj(
                "",
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            ),
            obj("", &other_group),
            obj("", &bad),
            obj("west", &no_version),
            Object {
                cluster: String::new(),
                json: "{not json".into(),
            },
            obj("", &second),
        ];
        let views = views(&objects);
        let got: Vec<(&str, Option<&str>)> = views
            .iter()
            .map(|(c, p)| (c.as_str(), p.metadata.name.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("east", Some("demo-dc1-r1-sts-2")),
                ("west", Some("demo-dc1-r1-sts-2")),
                ("", Some("second"))
            ]
        );
        // The same set k8s-openapi's typed parse keeps.
        let mut snap = crate::Snapshot::for_parent(obj("", &json!({})));
        snap.related = objects.to_vec();
        let typed: Vec<(String, Option<String>)> = snap
            .related_of::<Pod>()
            .into_iter()
            .map(|(c, p)| (c, p.metadata.name))
            .collect();
        let viewed: Vec<(String, Option<String>)> = snap
            .pods()
            .into_iter()
            .map(|(c, p)| (c, p.metadata.name))
            .collect();
        assert_eq!(typed, viewed);
    }

    #[test]
    fn only_a_ready_pod_with_an_address_that_is_not_going_serves() {
        let ready = json!({"metadata": {"name": "p"},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(serving(&view(&ready)));
        let mut no_ip = ready.clone();
        no_ip["status"]["podIP"] = "".into();
        assert!(!serving(&view(&no_ip)));
        let mut unready = ready.clone();
        unready["status"]["conditions"][0]["status"] = "False".into();
        assert!(!serving(&view(&unready)));
        let mut going = ready;
        going["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z".into();
        assert!(!serving(&view(&going)));
    }
}
