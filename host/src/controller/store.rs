//! Caches of watched objects, one per (cluster, kind, selector), fed by `watcher`
//! streams. Objects are stored without `managedFields`: they are most of an object's bytes
//! and nothing here reads them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::clusters::ClusterRegistry;

type Key = (String, String);

#[derive(Default)]
pub struct Store {
    objects: RwLock<HashMap<Key, Arc<DynamicObject>>>,
    /// Each object's JSON for policy snapshots, with the resourceVersion it was made from:
    /// a reconcile serialises only what changed since the last one (at a thousand pods,
    /// serialising every object for every reconcile was a fifth of the operator's CPU).
    json: RwLock<HashMap<Key, (String, Arc<str>)>>,
    synced: AtomicBool,
}

impl Store {
    /// A store that never gets a watch: synced, and empty for good.
    pub fn synced_empty() -> Store {
        let store = Store::default();
        store.synced.store(true, Ordering::Release);
        store
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<DynamicObject>> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// `obj`'s JSON, made once per resourceVersion.
    pub fn json(&self, obj: &DynamicObject) -> Arc<str> {
        let key = Self::key(obj);
        let rv = obj.metadata.resource_version.as_deref().unwrap_or_default();
        if !rv.is_empty()
            && let Some((seen, json)) = self
                .json
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            && seen == rv
        {
            return json.clone();
        }
        let json: Arc<str> = serde_json::to_string(obj).unwrap_or_default().into();
        if !rv.is_empty() {
            self.json
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (rv.to_string(), json.clone()));
        }
        json
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn key(obj: &DynamicObject) -> Key {
        (
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn put(&self, obj: DynamicObject) -> Arc<DynamicObject> {
        let obj = Arc::new(obj);
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Self::key(&obj), obj.clone());
        obj
    }

    fn remove(&self, obj: &DynamicObject) {
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::key(obj));
        self.json
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::key(obj));
    }

    fn replace(&self, objects: HashMap<Key, Arc<DynamicObject>>) {
        self.json
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| objects.contains_key(k));
        *self.objects.write().unwrap_or_else(|e| e.into_inner()) = objects;
        self.synced.store(true, Ordering::Release);
    }
}

/// An object that changed, with the cluster it lives in.
pub struct Touched {
    pub cluster: String,
    pub object: Arc<DynamicObject>,
}

/// Watches one kind in one cluster into `store`, reporting every change on `events` and
/// the cluster's reachability to the registry. Runs until aborted; errors are retried
/// with kube's default backoff, so a lost cluster reconnects by itself.
#[allow(clippy::too_many_arguments)]
pub async fn run_watch(
    cluster: String,
    client: Client,
    resource: ApiResource,
    namespace: Option<String>,
    selector: Option<String>,
    store: Arc<Store>,
    events: mpsc::UnboundedSender<Touched>,
    registry: ClusterRegistry,
) {
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let mut config = watcher::Config::default().any_semantic();
    if let Some(sel) = selector.as_deref().filter(|s| !s.is_empty()) {
        config = config.labels(sel);
    }
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: Option<HashMap<Key, Arc<DynamicObject>>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(error) if forbidden(&error) => {
                // The cluster answers; the operator may just not read this kind. Count it
                // as an empty, synced kind rather than an unreachable cluster, which would
                // stop every reconcile there (policies treat what they cannot see as
                // absent).
                if !store.is_synced() {
                    tracing::warn!(cluster = %cluster, kind = %resource.kind, error = %error,
                        "watch forbidden; the kind stays empty");
                    store.replace(HashMap::new());
                }
                continue;
            }
            Err(error) => {
                let message = error.to_string();
                if registry.set_reachable(&cluster, false, Some(message.clone())) {
                    tracing::warn!(cluster = %cluster, kind = %resource.kind, error = %message, "cluster unreachable");
                }
                continue;
            }
        };
        if registry.set_reachable(&cluster, true, None) {
            tracing::info!(cluster = %cluster, "cluster reachable again");
        }
        match event {
            Event::Init => buffer = Some(HashMap::new()),
            Event::InitApply(obj) => {
                let obj = Arc::new(strip(obj, &resource));
                if let Some(b) = buffer.as_mut() {
                    b.insert(Store::key(&obj), obj);
                }
            }
            Event::InitDone => {
                let objects = buffer.take().unwrap_or_default();
                // Report the union of old and new: objects that vanished while the watch
                // was down need a reconcile too.
                let mut touched: Vec<Arc<DynamicObject>> = store.list();
                touched.retain(|o| !objects.contains_key(&Store::key(o)));
                touched.extend(objects.values().cloned());
                store.replace(objects);
                for object in touched {
                    let _ = events.send(Touched {
                        cluster: cluster.clone(),
                        object,
                    });
                }
            }
            Event::Apply(obj) => {
                let object = store.put(strip(obj, &resource));
                let _ = events.send(Touched {
                    cluster: cluster.clone(),
                    object,
                });
            }
            Event::Delete(obj) => {
                let obj = strip(obj, &resource);
                store.remove(&obj);
                let _ = events.send(Touched {
                    cluster: cluster.clone(),
                    object: Arc::new(obj),
                });
            }
        }
    }
}

/// Drops the `managedFields` of other managers and fills in `apiVersion`/`kind`: the items
/// of the initial list come without them (only watch events carry them), and policies find
/// objects by kind, so an object listed at start-up and never changed since would stay
/// invisible to them. The policies' own server-side-apply entries stay: they tell which
/// fields a policy set earlier and no longer wants (see `reconcile::owns_extra_fields`).
fn strip(mut obj: DynamicObject, resource: &ApiResource) -> DynamicObject {
    obj.metadata.managed_fields = obj.metadata.managed_fields.take().and_then(|entries| {
        let ours: Vec<_> = entries
            .into_iter()
            .filter(|e| {
                e.operation.as_deref() == Some("Apply")
                    && e.manager
                        .as_deref()
                        .is_some_and(|m| m.starts_with(crate::apply::FIELD_MANAGER_PREFIX))
            })
            .collect();
        (!ours.is_empty()).then_some(ours)
    });
    if obj.types.as_ref().is_none_or(|t| t.kind.is_empty()) {
        obj.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
    }
    obj
}

/// Whether a watch failed because the operator's RBAC does not allow it.
fn forbidden(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 403,
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Box<kube::core::Status> {
        Box::new(
            serde_json::from_value(serde_json::json!({"status": "Failure", "code": code,
                "reason": "Forbidden", "message": "m"}))
            .expect("a Status"),
        )
    }

    #[test]
    fn only_forbidden_watches_count_as_forbidden() {
        assert!(forbidden(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(403))
        )));
        assert!(forbidden(&watcher::Error::WatchError(status(403))));
        assert!(!forbidden(&watcher::Error::InitialListFailed(
            kube::Error::Api(status(500))
        )));
        assert!(!forbidden(&watcher::Error::NoResourceVersion));
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    fn cm(rv: &str, value: &str) -> DynamicObject {
        let mut o: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "resourceVersion": rv},
            "data": {"k": value},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        o.metadata.resource_version = Some(rv.to_string());
        o
    }

    #[test]
    fn an_objects_json_is_made_once_per_version_and_forgotten_with_it() {
        let store = Store::default();
        let first = store.json(&store.put(cm("1", "a")));
        assert!(first.contains(r#""k":"a""#));
        assert!(Arc::ptr_eq(&first, &store.json(&cm("1", "a"))));
        let second = store.json(&store.put(cm("2", "b")));
        assert!(second.contains(r#""k":"b""#) && !Arc::ptr_eq(&first, &second));
        store.remove(&cm("2", "b"));
        assert!(
            store
                .json
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        );
        store.json(&store.put(cm("3", "c")));
        store.replace(HashMap::new());
        assert!(
            store
                .json
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        );
    }
}
