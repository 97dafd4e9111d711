//! Reads by name: a read whose selector is `ref:<JSON pointer>[,<pointer>...]` asks for the
//! objects the parent names in those fields (a MedusaConfiguration's storage Secret, say),
//! not for a label-selected set.
//!
//! Users' Secrets carry no label of ours, and a label-less watch of every Secret would hold
//! the whole cluster's Secrets in memory; a read by name costs one GET per named object and
//! reconcile instead. Such objects are not watched: a change to one does not trigger its
//! parent, so a policy that waits on one requeues.

use std::sync::Arc;

use kube::Api;
use kube::api::DynamicObject;
use serde_json::Value;

use crate::apply::Discovery;
use crate::clusters::{ClusterRegistry, LOCAL};
use crate::plugin::bindings::{KindRef, ReadSpec};

/// Prefix of a read-by-name selector.
pub const PREFIX: &str = "ref:";

/// One read-by-name spec of a policy.
#[derive(Clone, Debug)]
pub struct NamedRead {
    pub kind: KindRef,
    pointers: Vec<String>,
    all_clusters: bool,
}

impl NamedRead {
    /// The read-by-name form of `spec`, or None for an ordinary (watched) read.
    pub fn parse(spec: &ReadSpec) -> Option<NamedRead> {
        let rest = spec.selector.trim().strip_prefix(PREFIX)?;
        Some(NamedRead {
            kind: spec.kind.clone(),
            pointers: rest
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            all_clusters: spec.all_clusters,
        })
    }

    /// The names `parent` gives at the pointers: strings only, each once, in order.
    pub fn names(&self, parent: &Value) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for pointer in &self.pointers {
            if let Some(name) = parent.pointer(pointer).and_then(Value::as_str)
                && !name.is_empty()
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
        names
    }

    /// The named objects in the parent's namespace, from the parent's cluster (or every
    /// reachable cluster for an all-clusters read), as (cluster, object). An object that
    /// does not exist is simply absent; a failed lookup is logged and absent too, so the
    /// policy sees "not found" and says so rather than the reconcile failing.
    pub async fn fetch(
        &self,
        clusters: &ClusterRegistry,
        discovery: &Discovery,
        namespace: &str,
        parent: &Value,
    ) -> Vec<(String, Arc<DynamicObject>)> {
        let names = self.names(parent);
        if names.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for (cluster, client, _) in clusters.all() {
            if (!self.all_clusters && cluster != LOCAL) || !clusters.is_reachable(&cluster) {
                continue;
            }
            let Ok(resolved) = discovery
                .resolve(&cluster, &client, &self.kind.api_version, &self.kind.kind)
                .await
            else {
                continue;
            };
            let api: Api<DynamicObject> = if resolved.namespaced {
                Api::namespaced_with(client, namespace, &resolved.resource)
            } else {
                Api::all_with(client, &resolved.resource)
            };
            for name in &names {
                match api.get_opt(name).await {
                    Ok(Some(obj)) => found.push((cluster.clone(), Arc::new(obj))),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%cluster, kind = %self.kind.kind, %namespace, %name,
                            %error, "cannot read an object a parent names")
                    }
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(selector: &str) -> ReadSpec {
        ReadSpec {
            kind: KindRef {
                api_version: "v1".into(),
                kind: "Secret".into(),
            },
            selector: selector.into(),
            per_parent: false,
            all_clusters: false,
        }
    }

    #[test]
    fn only_ref_selectors_are_reads_by_name() {
        assert!(NamedRead::parse(&spec("app=x")).is_none());
        assert!(NamedRead::parse(&spec("")).is_none());
        let read = NamedRead::parse(&spec(" ref:/spec/a/name, /spec/b ,")).unwrap();
        assert_eq!(read.pointers, ["/spec/a/name", "/spec/b"]);
    }

    #[test]
    fn names_are_the_parents_strings_each_once() {
        let read = NamedRead::parse(&spec("ref:/spec/a/name,/spec/b,/spec/c,/spec/d")).unwrap();
        let parent = json!({"spec": {"a": {"name": "s1"}, "b": "s1", "c": 3, "d": ""}});
        assert_eq!(read.names(&parent), ["s1"]);
        assert!(read.names(&json!({})).is_empty());
    }
}
