//! The CQL operation kinds of a plan (`drop-keyspace`, WIT 0.4.0), run on the target
//! node's native-protocol port.
//!
//! Where to connect and with what is the host's business, never the policy's: the port is
//! the one the pod's `cassandra` container names `native` (9042 when it names none, as
//! cass-operator), the credentials come from the Secret the operation names (keys
//! `username` and `password`, in the pod's namespace) and never reach the policy or a log.
//!
//! The host also guards users' data against a buggy policy: it refuses a keyspace name that
//! is not a plain CQL identifier, and the keyspaces Cassandra and DSE keep for themselves
//! (`system*`, `dse_*`, `solr_admin`), whatever the plan says.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::labels::DATACENTER_LABEL;
use kube::Api;

use super::client::Password;
use super::cql::{
    Consistency, CqlSession, CqlTimeouts, Credentials, quote_identifier, valid_keyspace_name,
};
use super::executor::SecretReader;
use crate::clusters::ClusterRegistry;
use crate::plugin::bindings::{KeyspaceDrop, NodeRef};

const CASSANDRA_CONTAINER: &str = "cassandra";
const NATIVE_PORT_NAME: &str = "native";
const DEFAULT_NATIVE_PORT: i32 = 9042;

/// What the executor needs to run CQL operations. Deadlines are [`CqlTimeouts`]'s
/// defaults: 5 s to connect, 30 s per request (a schema change waits for agreement).
#[derive(Clone)]
pub struct CqlAccess {
    pub clusters: ClusterRegistry,
}

/// Why the host refuses to drop `keyspace`, if it does.
pub fn refuse_keyspace(keyspace: &str) -> Option<String> {
    if !valid_keyspace_name(keyspace) {
        return Some(format!(
            "keyspace {keyspace:?} is not a CQL identifier (a letter, then letters, digits or \
             underscores, at most 48): the host does not drop it"
        ));
    }
    let lower = keyspace.to_ascii_lowercase();
    if lower.starts_with("system") || lower.starts_with("dse_") || lower == "solr_admin" {
        return Some(format!(
            "keyspace {keyspace} belongs to Cassandra or DSE: the host never drops it"
        ));
    }
    None
}

/// Drops a keyspace through the node at `address`; the error is the message for
/// `failed(..)`. The outcome is `""`, also when the keyspace did not exist.
pub async fn drop_keyspace(
    access: &CqlAccess,
    secrets: &Arc<dyn SecretReader>,
    target: &NodeRef,
    address: &str,
    drop: &KeyspaceDrop,
) -> Result<String, String> {
    if let Some(why) = refuse_keyspace(&drop.keyspace) {
        return Err(why);
    }
    let port = native_port(access, target).await?;
    let credentials = credentials(secrets, target, &drop.credentials_secret).await?;
    let endpoint = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let mut session = CqlSession::connect(&endpoint, Some(&credentials), CqlTimeouts::default())
        .await
        .map_err(|e| e.to_string())?;
    let statement = format!(
        "DROP KEYSPACE IF EXISTS {}",
        quote_identifier(&drop.keyspace)
    );
    // The consistency of a schema statement is ignored by Cassandra, but the frame needs one.
    session
        .query(&statement, Consistency::Quorum)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        keyspace = %drop.keyspace,
        pod = %format!("{}/{}", target.namespace, target.pod),
        cluster = %target.cluster,
        "dropped keyspace"
    );
    Ok(String::new())
}

/// The node's CQL port, after checking its datacenter does not require client encryption.
async fn native_port(access: &CqlAccess, node: &NodeRef) -> Result<i32, String> {
    let client = access
        .clusters
        .client(&node.cluster)
        .ok_or_else(|| format!("cluster {:?} is not reachable", node.cluster))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &node.namespace);
    let pod = pods
        .get_opt(&node.pod)
        .await
        .map_err(|e| format!("reading pod {}/{}: {e}", node.namespace, node.pod))?
        .ok_or_else(|| format!("pod {}/{} no longer exists", node.namespace, node.pod))?;
    let dc = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(DATACENTER_LABEL))
        .cloned();
    if let Some(dc) = dc {
        let dcs: Api<CassandraDatacenter> = Api::namespaced(client, &node.namespace);
        let found = dcs
            .get_opt(&dc)
            .await
            .map_err(|e| format!("reading CassandraDatacenter {}/{dc}: {e}", node.namespace))?;
        if let Some(d) = found
            && requires_client_encryption(d.spec.config.as_ref())
        {
            return Err(format!(
                "CassandraDatacenter {}/{dc} requires client encryption \
                 (cassandra-yaml.client_encryption_options.enabled, not optional): this \
                 operator does not speak CQL over TLS",
                node.namespace
            ));
        }
    }
    Ok(cql_port(&pod))
}

/// Whether `cassandra-yaml.client_encryption_options` makes TLS mandatory for clients.
fn requires_client_encryption(config: Option<&serde_json::Value>) -> bool {
    let Some(opts) = config.and_then(|c| c.pointer("/cassandra-yaml/client_encryption_options"))
    else {
        return false;
    };
    let flag = |k: &str| {
        opts.get(k).is_some_and(|v| {
            v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
        })
    };
    flag("enabled") && !flag("optional")
}

/// The port of the pod's `cassandra` container named `native`, or 9042.
fn cql_port(pod: &Pod) -> i32 {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == CASSANDRA_CONTAINER))
        .and_then(|c| {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(NATIVE_PORT_NAME))
        })
        .map_or(DEFAULT_NATIVE_PORT, |p| p.container_port)
}

async fn credentials(
    secrets: &Arc<dyn SecretReader>,
    target: &NodeRef,
    name: &str,
) -> Result<Credentials, String> {
    if name.is_empty() {
        return Err("drop-keyspace names no credentials Secret".to_string());
    }
    let data = secrets
        .read(&target.cluster, &target.namespace, name)
        .await
        .map_err(|e| e.to_string())?;
    let field = |key: &str| -> Result<String, String> {
        let value = data
            .get(key)
            .ok_or_else(|| format!("Secret {}/{name} has no key {key:?}", target.namespace))?;
        let value = String::from_utf8(value.clone()).map_err(|_| {
            format!(
                "Secret {}/{name}: key {key:?} is not UTF-8",
                target.namespace
            )
        })?;
        if value.is_empty() {
            return Err(format!(
                "Secret {}/{name}: key {key:?} is empty",
                target.namespace
            ));
        }
        Ok(value)
    };
    Ok(Credentials {
        username: field("username")?,
        password: Password::new(field("password")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_and_malformed_keyspaces_are_refused() {
        assert_eq!(refuse_keyspace("data_endpoint_auth"), None);
        assert_eq!(refuse_keyspace("reaper_db"), None);
        for ks in [
            "system",
            "system_auth",
            "System_Schema",
            "dse_security",
            "solr_admin",
        ] {
            assert!(
                refuse_keyspace(ks).is_some_and(|m| m.contains("never drops")),
                "{ks}"
            );
        }
        for ks in ["", "a b", "ks\";DROP KEYSPACE x", "9ks"] {
            assert!(
                refuse_keyspace(ks).is_some_and(|m| m.contains("not a CQL identifier")),
                "{ks}"
            );
        }
    }

    #[test]
    fn the_native_port_is_the_cassandra_containers() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "server-system-logger", "ports": [{"name": "native", "containerPort": 1}]},
                {"name": "cassandra", "ports": [
                    {"name": "mgmt-api-http", "containerPort": 8080},
                    {"name": "native", "containerPort": 19042}]}
            ]}
        }))
        .expect("pod");
        assert_eq!(cql_port(&pod), 19042);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "cassandra"}]}
        }))
        .expect("pod");
        assert_eq!(cql_port(&pod), 9042);
    }

    #[test]
    fn mandatory_client_encryption_is_recognised() {
        let cfg =
            |o: serde_json::Value| json!({"cassandra-yaml": {"client_encryption_options": o}});
        assert!(requires_client_encryption(Some(&cfg(
            json!({"enabled": true})
        ))));
        assert!(!requires_client_encryption(Some(&cfg(
            json!({"enabled": true, "optional": true})
        ))));
        assert!(!requires_client_encryption(Some(&cfg(
            json!({"enabled": false})
        ))));
        assert!(!requires_client_encryption(Some(&json!({}))));
        assert!(!requires_client_encryption(None));
    }
}
