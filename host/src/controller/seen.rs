//! What one reconcile's snapshot showed its policy, so that the plan acts on exactly that.
//!
//! A plan names objects by name, but a name outlives its object: a StatefulSet recreates a
//! deleted pod under the same name (and, on the simulator and often on real clusters,
//! the same address) within moments. A delete decided from a snapshot is meant for the
//! object that snapshot held; the host sends it with that object's UID as a precondition,
//! so it can never reach the object that replaced it.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::DynamicObject;

/// The objects of one snapshot, by identity, and the addresses of its pods.
#[derive(Default)]
pub(super) struct Seen {
    /// `cluster/namespace/pod` → the pod's IP when the snapshot was taken.
    pub addresses: HashMap<String, String>,
    /// (apiVersion, kind, cluster) of the objects in the same slot of `objects`.
    groups: Vec<(String, String, String)>,
    objects: Vec<Vec<Arc<DynamicObject>>>,
}

impl Seen {
    /// Records `obj`, of `api_version`/`kind`, in `cluster`.
    pub fn add(&mut self, api_version: &str, kind: &str, cluster: &str, obj: Arc<DynamicObject>) {
        let slot = match self.slot(cluster, api_version, kind) {
            Some(i) => i,
            None => {
                self.groups.push((
                    api_version.to_string(),
                    kind.to_string(),
                    cluster.to_string(),
                ));
                self.objects.push(Vec::new());
                self.groups.len() - 1
            }
        };
        self.objects[slot].push(obj);
    }

    /// The UID of the object the snapshot held under this identity, if it held one.
    pub fn uid(
        &self,
        cluster: &str,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&str> {
        self.objects[self.slot(cluster, api_version, kind)?]
            .iter()
            .find(|o| {
                o.metadata.name.as_deref() == Some(name)
                    && o.metadata.namespace.as_deref().unwrap_or_default() == namespace
            })
            .and_then(|o| o.metadata.uid.as_deref())
    }

    fn slot(&self, cluster: &str, api_version: &str, kind: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|(a, k, c)| a == api_version && k == kind && c == cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, uid: &str) -> Arc<DynamicObject> {
        let mut o = DynamicObject::new(
            name,
            &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
        )
        .within(ns);
        o.metadata.uid = Some(uid.into());
        Arc::new(o)
    }

    #[test]
    fn a_uid_is_found_only_under_its_whole_identity() {
        let mut seen = Seen::default();
        seen.add("v1", "Pod", "east", pod("ns", "p-0", "u0"));
        seen.add("v1", "Pod", "west", pod("ns", "p-0", "u1"));
        seen.add("apps/v1", "StatefulSet", "east", pod("ns", "p-0", "u2"));
        assert_eq!(seen.uid("east", "v1", "Pod", "ns", "p-0"), Some("u0"));
        assert_eq!(seen.uid("west", "v1", "Pod", "ns", "p-0"), Some("u1"));
        assert_eq!(
            seen.uid("east", "apps/v1", "StatefulSet", "ns", "p-0"),
            Some("u2")
        );
        assert_eq!(seen.uid("east", "v1", "Pod", "other", "p-0"), None);
        assert_eq!(seen.uid("east", "v1", "Secret", "ns", "p-0"), None);
    }
}
