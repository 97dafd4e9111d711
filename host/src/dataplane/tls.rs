//! Mutual TLS to the management API of datacenters with `managementApiAuth.manual`.
//!
//! cass-operator's set-up: the pod mounts the server Secret and its cassandra container gets
//! `MGMT_API_TLS_{CA_CERT,CERT,KEY}_FILE`, so its management API serves HTTPS and asks for a
//! client certificate; the operator presents the client Secret's `tls.crt`/`tls.key` and
//! verifies the server against the client Secret's `ca.crt` (the chain, not the pod IP).
//!
//! The host decides per pod, from the pod itself (a pod still running an older, plain
//! template keeps being spoken to in plain HTTP), and reads the Secret named by its
//! CassandraDatacenter; policies never see the key. A missing or malformed Secret makes
//! every call to that pod fail at once with a message naming the field, without anything
//! sent: the node stays unreachable, so nothing is started against it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::labels::DATACENTER_LABEL;
use kube::Api;

use super::client::{ManagementApiConfig, TlsConfig, http_client};
use crate::clusters::ClusterRegistry;
use crate::plugin::bindings::NodeRef;

/// Set on the cassandra container when its management API serves TLS.
pub const TLS_CERT_ENV: &str = "MGMT_API_TLS_CERT_FILE";
const CASSANDRA_CONTAINER: &str = "cassandra";
const FIELD: &str = "spec.managementApiAuth.manual.clientSecretName";
/// Datacenters and Secrets are read again after this long (a rotated certificate is used
/// within it); within it, one observation of many nodes reads them once.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// A pod's containers never change, so whether it serves TLS is read once per pod (name
/// and address: a recreated pod usually has another), and again after this long in case
/// it was recreated with the same name and address.
const POD_CACHE_FOR: Duration = Duration::from_secs(60);
/// Pods looked up at once on a first observation of a large datacenter.
const LOOKUPS_AT_ONCE: usize = 32;
/// Pods remembered before the stale ones are dropped (pods come and go).
const MAX_KNOWN_PODS: usize = 8192;

/// How to reach one pod's management API when not plain HTTP.
#[derive(Clone)]
pub enum Route {
    /// HTTPS with the datacenter's client certificate.
    Tls(reqwest::Client),
    /// TLS is required but cannot be set up: every call fails with this, nothing sent.
    Refused(Arc<str>),
}

/// Routes by pod address, shared by every clone of a [`super::ManagementApi`].
#[derive(Default)]
pub struct Routes(RwLock<HashMap<String, Route>>);

impl Routes {
    pub(crate) fn get(&self, address: &str) -> Option<Route> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
            .cloned()
    }

    /// Sets (Some) or clears (None: plain HTTP) the route of an address.
    pub fn set(&self, address: &str, route: Option<Route>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match route {
            Some(r) => map.insert(address.to_string(), r),
            None => map.remove(address),
        };
    }
}

/// The client TLS material of a `kubernetes.io/tls`-shaped Secret (`ca.crt`, `tls.crt`,
/// `tls.key`), checked by building the TLS configuration from it. The error says what is
/// wrong, never a value.
pub fn tls_from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<TlsConfig, String> {
    let key = |k: &str| {
        data.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("has no key {k:?}"))
    };
    let tls = TlsConfig {
        ca_pem: key("ca.crt")?,
        client_cert_pem: Some(key("tls.crt")?),
        client_key_pem: Some(key("tls.key")?),
        verify_hostname: false,
    };
    super::client::check_tls(&tls).map_err(|e| format!("is not usable: {e}"))?;
    Ok(tls)
}

/// Whether a pod's management API serves TLS, and its datacenter (object name), from the
/// pod's JSON (`spec` at least; the controllers' caches hold pods as JSON) and its labels.
pub fn pod_facts(pod: &serde_json::Value, labels: Option<&BTreeMap<String, String>>) -> PodFacts {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    let cassandra = containers
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(CASSANDRA_CONTAINER))?;
    let serves_tls = cassandra
        .get("env")
        .and_then(|e| e.as_array())
        .is_some_and(|env| {
            env.iter()
                .any(|e| e.get("name").and_then(|n| n.as_str()) == Some(TLS_CERT_ENV))
        });
    serves_tls.then(|| labels.and_then(|l| l.get(DATACENTER_LABEL)).cloned())
}

type DcKey = (String, String, String);
/// (cluster, namespace, pod, address)
type PodKey = (String, String, String, String);
/// Whether a pod serves TLS (Some), with its datacenter label.
pub type PodFacts = Option<Option<String>>;

/// Finds the route of each observed pod and records it in [`Routes`].
pub struct TlsResolver {
    clusters: ClusterRegistry,
    base: ManagementApiConfig,
    routes: Arc<Routes>,
    by_dc: Mutex<HashMap<DcKey, (Instant, Option<Route>)>>,
    /// Whether a pod serves TLS, and its datacenter label.
    by_pod: Mutex<HashMap<PodKey, (Instant, PodFacts)>>,
}

impl TlsResolver {
    pub fn new(clusters: ClusterRegistry, base: ManagementApiConfig, routes: Arc<Routes>) -> Self {
        TlsResolver {
            clusters,
            base,
            routes,
            by_dc: Mutex::new(HashMap::new()),
            by_pod: Mutex::new(HashMap::new()),
        }
    }

    /// Records what the caller's own copy of each pod says (see [`pod_facts`]), so that
    /// [`TlsResolver::resolve`] does not read those pods again.
    pub fn know(&self, pods: impl IntoIterator<Item = (NodeRef, String, PodFacts)>) {
        let now = Instant::now();
        let mut cache = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > MAX_KNOWN_PODS {
            cache.retain(|_, (at, _)| at.elapsed() < POD_CACHE_FOR);
        }
        for (node, address, facts) in pods {
            cache.insert(
                (node.cluster, node.namespace, node.pod, address),
                (now, facts),
            );
        }
    }

    /// Sets the route of every node with an address.
    pub async fn resolve(&self, nodes: &[(NodeRef, Option<String>)]) {
        use futures::StreamExt;
        futures::stream::iter(nodes)
            .filter_map(|(node, address)| async move { address.as_ref().map(|a| (node, a)) })
            .for_each_concurrent(LOOKUPS_AT_ONCE, |(node, address)| async move {
                let route = self.route_for(node, address).await;
                self.routes.set(address, route);
            })
            .await;
    }

    /// Whether the pod serves TLS (and its datacenter), cached; None when it can't be read.
    async fn pod_facts(
        &self,
        client: &kube::Client,
        node: &NodeRef,
        address: &str,
    ) -> Option<PodFacts> {
        let key = (
            node.cluster.clone(),
            node.namespace.clone(),
            node.pod.clone(),
            address.to_string(),
        );
        {
            let cache = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, facts)) = cache.get(&key)
                && at.elapsed() < POD_CACHE_FOR
            {
                return Some(facts.clone());
            }
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &node.namespace);
        let pod = pods.get_opt(&node.pod).await.ok().flatten()?;
        let facts = pod_facts(
            &serde_json::to_value(&pod).ok()?,
            pod.metadata.labels.as_ref(),
        );
        let mut cache = self.by_pod.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < POD_CACHE_FOR);
        cache.insert(key, (Instant::now(), facts.clone()));
        Some(facts)
    }

    async fn route_for(&self, node: &NodeRef, address: &str) -> Option<Route> {
        let client = self.clusters.client(&node.cluster)?;
        // A pod that cannot be read is spoken to as before: the call itself then fails or
        // not, as it would without TLS.
        let datacenter = self.pod_facts(&client, node, address).await??;
        let Some(dc) = datacenter else {
            return Some(refused(format!(
                "pod {}/{} serves its management API over TLS but has no {DATACENTER_LABEL} \
                 label; its CassandraDatacenter's client Secret cannot be found",
                node.namespace, node.pod
            )));
        };
        let key = (node.cluster.clone(), node.namespace.clone(), dc.clone());
        if let Some((at, route)) = self
            .by_dc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return route.clone();
        }
        let route = self.datacenter_route(client, &node.namespace, &dc).await;
        self.by_dc
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), route.clone()));
        route
    }

    async fn datacenter_route(&self, client: kube::Client, ns: &str, dc: &str) -> Option<Route> {
        let dcs: Api<CassandraDatacenter> = Api::namespaced(client.clone(), ns);
        let manual = match dcs.get_opt(dc).await {
            Ok(Some(d)) => d.spec.management_api_auth.and_then(|a| a.manual),
            Ok(None) => None,
            // Not known now: the next observation asks again.
            Err(_) => return None,
        };
        let Some(manual) = manual else {
            return Some(refused(format!(
                "the pods of CassandraDatacenter {ns}/{dc} serve their management API over \
                 TLS but spec.managementApiAuth.manual is not set"
            )));
        };
        let name = manual.client_secret_name;
        let secrets: Api<Secret> = Api::namespaced(client, ns);
        let secret = match secrets.get_opt(&name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Some(refused(format!(
                    "{FIELD}: Secret {ns}/{name} not found; nothing is sent to the management \
                     API of CassandraDatacenter {ns}/{dc} until it exists"
                )));
            }
            Err(error) => {
                return Some(refused(format!(
                    "{FIELD}: Secret {ns}/{name} cannot be read: {error}"
                )));
            }
        };
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let route = tls_from_secret(&data)
            .map_err(|reason| format!("{FIELD}: Secret {ns}/{name} {reason}"))
            .and_then(|tls| {
                http_client(&self.base, Some(&tls))
                    .map_err(|e| format!("{FIELD}: Secret {ns}/{name} is not usable: {e}"))
            });
        Some(match route {
            Ok(http) => Route::Tls(http),
            Err(message) => refused(message),
        })
    }
}

fn refused(message: String) -> Route {
    tracing::warn!(reason = %message, "management API TLS refused");
    Route::Refused(Arc::from(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(label: bool) -> BTreeMap<String, String> {
        if label {
            BTreeMap::from([(DATACENTER_LABEL.to_string(), "dc1".to_string())])
        } else {
            BTreeMap::new()
        }
    }

    fn pod(env: bool) -> serde_json::Value {
        serde_json::json!({
            "spec": {"containers": [{
                "name": "cassandra",
                "env": if env { serde_json::json!([{"name": TLS_CERT_ENV, "value": "/management-api-certs/tls.crt"}]) } else { serde_json::json!([]) }
            }]}
        })
    }

    #[test]
    fn the_pod_says_whether_it_serves_tls() {
        assert_eq!(pod_facts(&pod(false), Some(&labels(true))), None);
        assert_eq!(
            pod_facts(&pod(true), Some(&labels(true))),
            Some(Some("dc1".to_string()))
        );
        assert_eq!(pod_facts(&pod(true), Some(&labels(false))), Some(None));
        assert_eq!(pod_facts(&pod(true), None), Some(None));
    }

    #[test]
    fn a_secret_without_the_key_names_it() {
        let data = BTreeMap::from([
            ("ca.crt".to_string(), b"x".to_vec()),
            ("tls.crt".to_string(), b"y".to_vec()),
        ]);
        let Err(e) = tls_from_secret(&data) else {
            panic!("a Secret without tls.key is refused");
        };
        assert_eq!(e, "has no key \"tls.key\"");
        let data = BTreeMap::from([
            ("ca.crt".to_string(), b"not a pem".to_vec()),
            ("tls.crt".to_string(), b"y".to_vec()),
            ("tls.key".to_string(), b"z".to_vec()),
        ]);
        let Err(e) = tls_from_secret(&data) else {
            panic!("garbage is refused");
        };
        assert!(e.starts_with("is not usable"), "{e}");
        assert!(!e.contains("not a pem"), "no value in the message: {e}");
    }

    #[test]
    fn routes_are_set_and_cleared() {
        let routes = Routes::default();
        routes.set("10.0.0.1", Some(refused("no".into())));
        assert!(matches!(routes.get("10.0.0.1"), Some(Route::Refused(m)) if &*m == "no"));
        routes.set("10.0.0.1", None);
        assert!(routes.get("10.0.0.1").is_none());
    }
}
