//! The Reaper that runs a repair of a K8ssandraCluster, and a ready pod of it: the target
//! of the `reaper-*` operations.

use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_api::labels::K8SSANDRA_CLUSTER_NAME_LABEL;
use k8ssandra_api::reaper::{REAPER_LABEL, Reaper, ReaperProgress};
use k8ssandra_api::repair_schedule::RepairSpec;
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::ReaperAccess;
use k8ssandra_policy_sdk::pods::PodView;
use k8ssandra_policy_sdk::{NodeRef, ReadSpec, Snapshot};

/// What a repair policy reads: the cluster a repair names (its Cassandra cluster name, its
/// reaperRef), and Reapers and their pods wherever they run (the targets of the REST calls).
pub fn reads() -> Vec<ReadSpec> {
    vec![
        ReadSpec::new("k8ssandra.io/v1alpha1", "K8ssandraCluster", ""),
        ReadSpec::new("reaper.k8ssandra.io/v1alpha1", "Reaper", "").in_all_clusters(),
        ReadSpec::new("v1", "Pod", REAPER_LABEL).in_all_clusters(),
    ]
}

/// A Reaper to run the repair through and a ready pod of it.
pub struct Target {
    pub reaper: Reaper,
    /// The Kubernetes cluster (context) the Reaper runs in; empty for the local one.
    pub cluster: String,
    pub pod: NodeRef,
}

impl Target {
    /// How the host reaches this Reaper: with its UI user's Secret when it names one.
    pub fn access(&self) -> ReaperAccess {
        ReaperAccess {
            ui_secret: self
                .reaper
                .spec
                .template
                .ui_user_secret_ref
                .as_ref()
                .map(|r| r.name.clone())
                .filter(|n| !n.is_empty()),
        }
    }

    /// `<cluster>/<namespace>/<name>` of the Reaper, for status and events.
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}",
            self.cluster,
            self.reaper
                .metadata
                .namespace
                .as_deref()
                .unwrap_or_default(),
            self.reaper.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// The K8ssandraCluster `spec.cluster` names, in the namespace `ns` of the control plane.
pub fn cluster_of(s: &Snapshot, spec: &RepairSpec, ns: &str) -> Option<K8ssandraCluster> {
    s.related_by_kind::<K8ssandraCluster>("K8ssandraCluster")
        .into_iter()
        .filter(|(c, _)| c.is_empty())
        .map(|(_, k)| k)
        .find(|k| {
            k.metadata.name.as_deref() == Some(spec.cluster.as_str())
                && k.metadata.namespace.as_deref() == Some(ns)
        })
}

/// The Reapers that may run the repair: the one `reaperRef` names, else the cluster's
/// `reaperRef`, else those made for the cluster (label `k8ssandra.io/cluster-name`). With
/// `running`, only those whose status is `Running` (the cluster is registered with them).
/// Sorted by (cluster, name): Reapers of one cluster with `cassandra` storage share their
/// state, so any of them will do, always the same one.
pub fn candidates(
    s: &Snapshot,
    spec: &RepairSpec,
    ns: &str,
    kc: &K8ssandraCluster,
    running: bool,
) -> Vec<(String, Reaper)> {
    let by_ref = spec
        .reaper_ref
        .as_ref()
        .map(|r| (r.name.clone(), r.namespace.clone()))
        .or_else(|| {
            let r = kc.spec.reaper.as_ref()?.reaper_ref.as_ref()?;
            Some((r.name.clone()?, r.namespace.clone()))
        });
    let kc_name = kc.metadata.name.clone().unwrap_or_default();
    let mut out: Vec<(String, Reaper)> = s
        .related_by_kind::<Reaper>("Reaper")
        .into_iter()
        .filter(|(_, r)| r.metadata.deletion_timestamp.is_none())
        .filter(|(_, r)| match &by_ref {
            Some((name, rns)) => {
                r.metadata.name.as_deref() == Some(name.as_str())
                    && r.metadata.namespace.as_deref()
                        == Some(rns.as_deref().filter(|n| !n.is_empty()).unwrap_or(ns))
            }
            None => r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(K8SSANDRA_CLUSTER_NAME_LABEL))
                .is_some_and(|n| *n == kc_name),
        })
        .filter(|(_, r)| {
            !running
                || r.status.as_ref().and_then(|st| st.progress) == Some(ReaperProgress::Running)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1.metadata.name).cmp(&(&b.0, &b.1.metadata.name)));
    out
}

/// The first candidate with a ready pod, and whether any candidate has a pod at all.
pub fn target(s: &Snapshot, cands: Vec<(String, Reaper)>) -> (Option<Target>, bool) {
    let pods = s.pods();
    let mut any = false;
    for (cluster, reaper) in cands {
        let name = reaper.metadata.name.clone().unwrap_or_default();
        let ns = reaper.metadata.namespace.clone().unwrap_or_default();
        let mut mine: Vec<&PodView> = pods
            .iter()
            .filter(|(c, p)| {
                *c == cluster
                    && p.metadata.namespace.as_deref() == Some(ns.as_str())
                    && p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(REAPER_LABEL))
                        .is_some_and(|v| *v == name)
            })
            .map(|(_, p)| p)
            .collect();
        any |= !mine.is_empty();
        mine.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if let Some(p) = mine
            .into_iter()
            .find(|p| k8ssandra_policy_sdk::pods::serving(p))
        {
            let pod = NodeRef {
                cluster: cluster.clone(),
                namespace: ns,
                pod: p.metadata.name.clone().unwrap_or_default(),
            };
            return (
                Some(Target {
                    reaper,
                    cluster,
                    pod,
                }),
                true,
            );
        }
    }
    (None, any)
}
