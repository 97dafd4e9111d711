//! The node configuration handed to the config builder init container as the
//! `CONFIG_FILE_DATA` JSON: `cluster-info` and `datacenter-info` (what the builder needs to
//! fill in seeds, names and DSE workloads), then one object per configuration file
//! (`cassandra-yaml`, `jvm-server-options`, `dse-yaml`, ...), defaults first and the user's
//! `spec.config` merged over them.

use k8ssandra_api::cassandra::ServerType;
use k8ssandra_api::names::{additional_seed_service_name, seed_service_name};
use serde_json::{Map, Value, json};

use crate::model::Dc;

/// `(major, minor)` of a version such as `4.1.5`.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()?;
    Some((major, minor))
}

/// Defaults per server type and version. The config builder carries each version's own
/// cassandra.yaml; what we add is what the operator depends on: authentication (the
/// superuser role is created through it) and, for Cassandra 4.0+, 16 vnodes with the token
/// allocator, as k8ssandra does.
pub fn defaults(server_type: ServerType, version: &str) -> Value {
    let mm = major_minor(version).unwrap_or((4, 0));
    match server_type {
        ServerType::Cassandra if mm.0 < 4 => json!({
            "cassandra-yaml": {
                "authenticator": "PasswordAuthenticator",
                "authorizer": "CassandraAuthorizer",
                "role_manager": "CassandraRoleManager",
            }
        }),
        ServerType::Cassandra => json!({
            "cassandra-yaml": {
                "authenticator": "PasswordAuthenticator",
                "authorizer": "CassandraAuthorizer",
                "role_manager": "CassandraRoleManager",
                "num_tokens": 16,
                "allocate_tokens_for_local_replication_factor": 3,
            }
        }),
        ServerType::Dse | ServerType::Hcd => json!({
            "cassandra-yaml": {
                "authenticator": "com.datastax.bdp.cassandra.auth.DseAuthenticator",
                "authorizer": "com.datastax.bdp.cassandra.auth.DseAuthorizer",
                "role_manager": "com.datastax.bdp.cassandra.auth.DseRoleManager",
                "num_tokens": 16,
                "allocate_tokens_for_local_replication_factor": 3,
            },
            "dse-yaml": {
                "authentication_options": {"enabled": true},
                "authorization_options": {"enabled": true},
                "role_management_options": {"mode": "internal"},
            }
        }),
    }
}

/// Deep merge: objects merge key by key, anything else in `over` replaces `base`.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The `CONFIG_FILE_DATA` document.
pub fn config_file_data(dc: &Dc) -> Value {
    let spec = &dc.obj.spec;
    // Both seed Services always, as cass-operator does: the config (and so the pod
    // template hash) must not change when another datacenter's seeds first appear, or every
    // node of this datacenter would restart when a datacenter is added.
    let seeds = [
        seed_service_name(&dc.cluster),
        additional_seed_service_name(&dc.cluster, dc.name()),
    ];
    let workload = |f: fn(&k8ssandra_api::cassandra::DseWorkloads) -> Option<bool>| {
        let on = dc.server_type() == ServerType::Dse
            && spec.dse_workloads.as_ref().and_then(f) == Some(true);
        i32::from(on)
    };
    let mut doc = json!({
        "cluster-info": {
            "name": dc.cluster,
            "seeds": seeds.join(","),
        },
        "datacenter-info": {
            "name": dc.dc_name(),
            "graph-enabled": workload(|w| w.graph_enabled),
            "solr-enabled": workload(|w| w.search_enabled),
            "spark-enabled": workload(|w| w.analytics_enabled),
        },
    });
    merge(&mut doc, &defaults(dc.server_type(), &spec.server_version));
    if let Some(user) = spec.config.as_ref().filter(|c| c.is_object()) {
        merge(&mut doc, user);
    }
    // Node ports change the ports Cassandra announces; the builder reads them here.
    if let Some(np) = spec.networking.as_ref().and_then(|n| n.node_port.as_ref()) {
        let mut yaml = Map::new();
        if let Some(p) = np.native.filter(|p| *p > 0) {
            yaml.insert("native_transport_port".into(), json!(p));
        }
        if let Some(p) = np.internode.filter(|p| *p > 0) {
            yaml.insert("storage_port".into(), json!(p));
        }
        if !yaml.is_empty() {
            merge(&mut doc, &json!({ "cassandra-yaml": yaml }));
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(major_minor("4.1.5"), Some((4, 1)));
        assert_eq!(major_minor("6.8.50"), Some((6, 8)));
        assert_eq!(major_minor("5.0"), Some((5, 0)));
        assert_eq!(major_minor("x"), None);
    }

    #[test]
    fn user_config_wins_and_merges_deeply() {
        let mut base = defaults(ServerType::Cassandra, "4.1.5");
        merge(
            &mut base,
            &json!({"cassandra-yaml": {"num_tokens": 8}, "jvm-server-options": {"max_heap_size": "1G"}}),
        );
        assert_eq!(base["cassandra-yaml"]["num_tokens"], 8);
        assert_eq!(
            base["cassandra-yaml"]["authenticator"],
            "PasswordAuthenticator"
        );
        assert_eq!(base["jvm-server-options"]["max_heap_size"], "1G");
        let dse = defaults(ServerType::Dse, "6.8.50");
        assert_eq!(dse["dse-yaml"]["authentication_options"]["enabled"], true);
        let old = defaults(ServerType::Cassandra, "3.11.17");
        assert!(old["cassandra-yaml"].get("num_tokens").is_none());
    }
}
