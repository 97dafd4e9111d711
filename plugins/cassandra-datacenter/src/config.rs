//! The node configuration handed to the config builder init container as the
//! `CONFIG_FILE_DATA` JSON: `cluster-info` and `datacenter-info` (what the builder needs to
//! fill in seeds, names and DSE workloads), then one object per configuration file
//! (`cassandra-yaml`, `jvm-server-options`, `dse-yaml`, ...), with the user's `spec.config`
//! merged over them.

use k8ssandra_api::cassandra::ServerType;
use k8ssandra_api::names::{additional_seed_service_name, seed_service_name};
use serde_json::{Map, Value, json};

use crate::model::Dc;
use crate::util::canonical_json;

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

/// Authentication, authorization and role management, on unless the user's configuration
/// says otherwise. cass-operator adds nothing here: its users (and k8ssandra-operator) put
/// these keys into `spec.config`, and without them the images' own cassandra.yaml runs with
/// `AllowAllAuthenticator`. We keep them as defaults on purpose (docs/compatibility.md): the
/// superuser the operator creates would otherwise guard nothing, and a datacenter created by
/// an earlier version of this operator must not lose authentication on upgrade.
pub fn auth_defaults(server_type: ServerType) -> Value {
    match server_type {
        ServerType::Cassandra => json!({
            "cassandra-yaml": {
                "authenticator": "PasswordAuthenticator",
                "authorizer": "CassandraAuthorizer",
                "role_manager": "CassandraRoleManager",
            }
        }),
        ServerType::Dse | ServerType::Hcd => json!({
            "cassandra-yaml": {
                "authenticator": "com.datastax.bdp.cassandra.auth.DseAuthenticator",
                "authorizer": "com.datastax.bdp.cassandra.auth.DseAuthorizer",
                "role_manager": "com.datastax.bdp.cassandra.auth.DseRoleManager",
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

/// The `CONFIG_FILE_DATA` document: upstream's model values (cluster and datacenter info,
/// the node ports), our authentication defaults, then the user's `spec.config` over them.
/// Everything else (num_tokens, token allocation, ...) is left to the config builder's
/// defaults for the server version, as upstream does.
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
    // Node ports change the ports Cassandra listens on; the TLS one wins when both are set.
    let mut yaml = Map::new();
    if let Some(np) = spec.networking.as_ref().and_then(|n| n.node_port.as_ref()) {
        let set = |p: Option<i32>| p.filter(|p| *p != 0);
        if let Some(p) = set(np.native_ssl) {
            yaml.insert("native_transport_port_ssl".into(), json!(p));
        } else if let Some(p) = set(np.native) {
            yaml.insert("native_transport_port".into(), json!(p));
        }
        if let Some(p) = set(np.internode_ssl) {
            yaml.insert("ssl_storage_port".into(), json!(p));
        } else if let Some(p) = set(np.internode) {
            yaml.insert("storage_port".into(), json!(p));
        }
    }
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
        "cassandra-yaml": yaml,
    });
    merge(&mut doc, &auth_defaults(dc.server_type()));
    if let Some(user) = spec.config.as_ref().filter(|c| c.is_object()) {
        merge(&mut doc, user);
    }
    doc
}

/// `CONFIG_FILE_DATA` as text, byte for byte what cass-operator writes for the same
/// document: compact JSON with the keys of every object sorted, and `<`, `>`, `&`, U+2028,
/// U+2029 escaped as Go's encoder does. These characters can only occur inside strings.
pub fn config_file_data_text(dc: &Dc) -> String {
    canonical_json(&config_file_data(dc))
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
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
        let mut base = auth_defaults(ServerType::Cassandra);
        merge(
            &mut base,
            &json!({"cassandra-yaml": {"authenticator": "AllowAllAuthenticator"}, "jvm-server-options": {"max_heap_size": "1G"}}),
        );
        assert_eq!(
            base["cassandra-yaml"]["authenticator"],
            "AllowAllAuthenticator"
        );
        assert_eq!(base["cassandra-yaml"]["authorizer"], "CassandraAuthorizer");
        assert_eq!(base["jvm-server-options"]["max_heap_size"], "1G");
        let dse = auth_defaults(ServerType::Dse);
        assert_eq!(dse["dse-yaml"]["authentication_options"]["enabled"], true);
        // Token settings are the config builder's, per version.
        assert!(dse["cassandra-yaml"].get("num_tokens").is_none());
    }
}
