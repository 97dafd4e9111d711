//! Labels and annotations a user attaches to the objects the operator creates.
//!
//! Shared by every kind: the K8ssandraCluster's cluster and datacenter templates, Reaper and
//! Stargate (`ResourceMeta`). Field names match k8ssandra-operator's `meta` package.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Labels and annotations for one kind of generated object.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct Tags {
    /// Labels added to the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Labels and annotations for a component (Reaper, Stargate) and everything created for it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMeta {
    /// Labels added to the component's main object only (for example the Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the component's main object only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Labels added to every object created for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,

    /// Annotations added to every object created for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,

    /// Labels and annotations added to the component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Tags>,

    /// Labels and annotations added to the component's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Tags>,
}

/// Labels and annotations for each Service of a Cassandra datacenter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterServicesMeta {
    /// For the `<cluster>-<dc>-service` Service (CQL and management API of every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_service: Option<Tags>,

    /// For the `<cluster>-seed-service` Service that resolves to the seed nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_service: Option<Tags>,

    /// For the `<cluster>-<dc>-all-pods-service` headless Service covering every pod, ready or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_pods_service: Option<Tags>,

    /// For the `<cluster>-<dc>-additional-seed-service` Service listing seeds outside this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_seed_service: Option<Tags>,

    /// For the `<cluster>-<dc>-node-port-service` Service, created when NodePort networking is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port_service: Option<Tags>,
}

/// Labels and annotations for the objects of the whole Cassandra cluster
/// (`spec.cassandra.metadata` of a K8ssandraCluster).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraClusterMeta {
    /// Labels added to each generated CassandraDatacenter object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to each generated CassandraDatacenter object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Labels added to every object created for the Cassandra cluster (datacenters,
    /// StatefulSets, pods, Services, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,

    /// Annotations added to every object created for the Cassandra cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,

    /// Labels and annotations added to the Cassandra pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Tags>,

    /// Labels and annotations for each Service of the datacenters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<CassandraDatacenterServicesMeta>,
}

/// Name, namespace, labels and annotations of one datacenter of a K8ssandraCluster
/// (`spec.cassandra.datacenters[].metadata`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedObjectMeta {
    /// Name of the CassandraDatacenter object, and of the datacenter in Cassandra unless
    /// `datacenterName` overrides it. Must be a DNS-1035 label (lower case letters, digits and
    /// '-', starting with a letter); it cannot be changed once the datacenter exists.
    pub name: String,

    /// Namespace of the CassandraDatacenter in its Kubernetes cluster. Defaults to the
    /// namespace of the K8ssandraCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Labels added to the CassandraDatacenter object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the CassandraDatacenter object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Labels added to every object created for this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,

    /// Annotations added to every object created for this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,

    /// Labels and annotations added to this datacenter's Cassandra pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Tags>,

    /// Labels and annotations for each Service of this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<CassandraDatacenterServicesMeta>,
}
