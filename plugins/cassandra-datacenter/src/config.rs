//! The node configuration handed to the config builder init container as the
//! `CONFIG_FILE_DATA` JSON: `cluster-info` and `datacenter-info` (what the builder needs to
//! fill in seeds, names and DSE workloads), then one object per configuration file
//! (`cassandra-yaml`, `jvm-server-options`, `dse-yaml`, ...), with the user's `spec.config`
//! merged over them.

use k8ssandra_api::cassandra::{CdcConfiguration, ServerType};
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
    crate::telemetry::add_logging_options(&mut doc, dc);
    if let Some(cdc) = &spec.cdc {
        add_cdc(&mut doc, cdc, dc.server_type(), mcac_enabled(dc));
    }
    doc
}

/// The CDC agent's options, in the order and with the names of upstream's `CDCConfiguration`
/// (its JSON tags, `cdcPollIntervalM` included): `name=value` for every field set.
/// Upstream formats each value with Go's `%s`, which spells numbers and booleans as
/// `%!s(int=5)` / `%!s(bool=true)` (options the agent cannot parse); we write `5` and `true`
/// (docs/compatibility.md).
pub fn cdc_agent_options(cdc: &CdcConfiguration) -> Vec<String> {
    let s = |v: &Option<String>| v.clone();
    let n = |v: &Option<i64>| v.map(|v| v.to_string());
    let b = |v: &Option<bool>| v.map(|v| v.to_string());
    let fields = [
        ("pulsarServiceUrl", Some(cdc.pulsar_service_url.clone())),
        ("topicPrefix", s(&cdc.topic_prefix)),
        ("cdcWorkingDir", s(&cdc.cdc_working_dir)),
        ("cdcPollIntervalM", n(&cdc.cdc_poll_interval_ms)),
        (
            "errorCommitLogReprocessEnabled",
            b(&cdc.error_commit_log_reprocess_enabled),
        ),
        ("cdcConcurrentProcessors", n(&cdc.cdc_concurrent_processors)),
        ("pulsarBatchDelayInMs", n(&cdc.pulsar_batch_delay_in_ms)),
        ("pulsarKeyBasedBatcher", b(&cdc.pulsar_key_based_batcher)),
        (
            "pulsarMaxPendingMessages",
            n(&cdc.pulsar_max_pending_messages),
        ),
        (
            "pulsarMaxPendingMessagesAcrossPartitions",
            n(&cdc.pulsar_max_pending_messages_across_partitions),
        ),
        (
            "pulsarAuthPluginClassName",
            s(&cdc.pulsar_auth_plugin_class_name),
        ),
        ("pulsarAuthParams", s(&cdc.pulsar_auth_params)),
        ("sslProvider", s(&cdc.ssl_provider)),
        ("sslTruststorePath", s(&cdc.ssl_truststore_path)),
        ("sslTruststorePassword", s(&cdc.ssl_truststore_password)),
        ("sslTruststoreType", s(&cdc.ssl_truststore_type)),
        ("sslKeystorePath", s(&cdc.ssl_keystore_path)),
        ("sslKeystorePassword", s(&cdc.ssl_keystore_password)),
        ("sslCipherSuites", s(&cdc.ssl_cipher_suites)),
        ("sslEnabledProtocols", s(&cdc.ssl_enabled_protocols)),
        (
            "sslAllowInsecureConnection",
            s(&cdc.ssl_allow_insecure_connection),
        ),
        (
            "sslHostnameVerificationEnable",
            s(&cdc.ssl_hostname_verification_enable),
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name}={v}")))
        .collect()
}

/// Whether upstream's CDC rendering counts the metrics collector as on: unless the last
/// `cassandra` container of the user's `podTemplateSpec` has a last `MGMT_API_DISABLE_MCAC`
/// of exactly `true`. Only the user's template counts, not the variable the operator adds
/// for a read-only root filesystem (upstream's `mcacEnabled`).
fn mcac_enabled(dc: &Dc) -> bool {
    let containers = dc
        .obj
        .spec
        .pod_template_spec
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let Some(cassandra) = containers.iter().rev().find(|c| c.name == "cassandra") else {
        return true;
    };
    let disabled = cassandra
        .env
        .iter()
        .flatten()
        .rev()
        .find(|e| e.name == "MGMT_API_DISABLE_MCAC");
    disabled.and_then(|e| e.value.as_deref()) != Some("true")
}

/// What cass-operator's `cdc.UpdateConfig` does to the finished document when `spec.cdc` is
/// set, whatever the server type and version: `cassandra-yaml.cdc_enabled: true` (over the
/// user's value), and `cassandra-env-sh.additional-jvm-opts` becomes the user's options
/// without any containing `pulsarServiceUrl`, then the metrics collector agent (Cassandra
/// only, when `mcac`), the management API agent and the CDC agent with its options. The pod
/// template gets nothing else.
pub fn add_cdc(doc: &mut Value, cdc: &CdcConfiguration, server_type: ServerType, mcac: bool) {
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    let yaml = root
        .entry("cassandra-yaml")
        .or_insert_with(|| Value::Object(Map::new()));
    if !yaml.is_object() {
        *yaml = Value::Object(Map::new());
    }
    yaml["cdc_enabled"] = Value::Bool(true);

    let env_sh = root
        .entry("cassandra-env-sh")
        .or_insert_with(|| Value::Object(Map::new()));
    if !env_sh.is_object() {
        *env_sh = Value::Object(Map::new());
    }
    let mut opts: Vec<Value> = env_sh
        .get("additional-jvm-opts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| !o.as_str().is_some_and(|o| o.contains("pulsarServiceUrl")))
        .cloned()
        .collect();
    if server_type == ServerType::Cassandra && mcac {
        opts.push(json!(
            "-javaagent:/opt/metrics-collector/lib/datastax-mcac-agent.jar"
        ));
    }
    opts.push(json!(
        "-javaagent:/opt/management-api/datastax-mgmtapi-agent.jar"
    ));
    opts.push(json!(format!(
        "-javaagent:/opt/cdc_agent/cdc-agent.jar={}",
        cdc_agent_options(cdc).join(",")
    )));
    env_sh["additional-jvm-opts"] = Value::Array(opts);
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

    fn cdc(url: &str) -> CdcConfiguration {
        CdcConfiguration {
            pulsar_service_url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn cdc_options_in_upstream_order() {
        let mut c = cdc("pulsar://pulsar:6650");
        c.topic_prefix = Some("test-prefix-".into());
        assert_eq!(
            cdc_agent_options(&c).join(","),
            "pulsarServiceUrl=pulsar://pulsar:6650,topicPrefix=test-prefix-"
        );
        c.ssl_hostname_verification_enable = Some("false".into());
        c.cdc_poll_interval_ms = Some(60000);
        c.error_commit_log_reprocess_enabled = Some(true);
        c.cdc_concurrent_processors = Some(2);
        c.pulsar_auth_params = Some("token:abc".into());
        assert_eq!(
            cdc_agent_options(&c),
            [
                "pulsarServiceUrl=pulsar://pulsar:6650",
                "topicPrefix=test-prefix-",
                "cdcPollIntervalM=60000",
                "errorCommitLogReprocessEnabled=true",
                "cdcConcurrentProcessors=2",
                "pulsarAuthParams=token:abc",
                "sslHostnameVerificationEnable=false",
            ]
        );
    }

    #[test]
    fn cdc_keeps_user_options_and_enables_cdc() {
        // Upstream's existingConfig test case (pkg/cdc/generate_config_test.go).
        let mut doc = json!({
            "cassandra-env-sh": {
                "additional-jvm-opts": [
                    "-Dcassandra.system_distributed_replication=test-dc:1",
                    "-javaagent:/old/cdc.jar=pulsarServiceUrl=pulsar://old:6650",
                    "-Dcom.sun.management.jmxremote.authenticate=true"
                ],
                "initial_heap_size": "800M"
            },
            "cassandra-yaml": {"authenticator": "PasswordAuthenticator", "cdc_enabled": false},
            "cluster-info": {"name": "test"}
        });
        let mut c = cdc("pulsar://pulsar:6650");
        c.topic_prefix = Some("test-prefix-".into());
        add_cdc(&mut doc, &c, ServerType::Cassandra, true);
        assert_eq!(
            canonical_json(&doc),
            concat!(
                r#"{"cassandra-env-sh":{"additional-jvm-opts":["#,
                r#""-Dcassandra.system_distributed_replication=test-dc:1","#,
                r#""-Dcom.sun.management.jmxremote.authenticate=true","#,
                r#""-javaagent:/opt/metrics-collector/lib/datastax-mcac-agent.jar","#,
                r#""-javaagent:/opt/management-api/datastax-mgmtapi-agent.jar","#,
                r#""-javaagent:/opt/cdc_agent/cdc-agent.jar=pulsarServiceUrl=pulsar://pulsar:6650,topicPrefix=test-prefix-"],"#,
                r#""initial_heap_size":"800M"},"#,
                r#""cassandra-yaml":{"authenticator":"PasswordAuthenticator","cdc_enabled":true},"#,
                r#""cluster-info":{"name":"test"}}"#
            )
        );
    }

    #[test]
    fn cdc_without_user_options_and_without_mcac() {
        let mut doc = json!({"cluster-info": {"name": "test"}});
        add_cdc(&mut doc, &cdc("pulsar://p:6650"), ServerType::Dse, true);
        assert_eq!(
            canonical_json(&doc),
            concat!(
                r#"{"cassandra-env-sh":{"additional-jvm-opts":["#,
                r#""-javaagent:/opt/management-api/datastax-mgmtapi-agent.jar","#,
                r#""-javaagent:/opt/cdc_agent/cdc-agent.jar=pulsarServiceUrl=pulsar://p:6650"]},"#,
                r#""cassandra-yaml":{"cdc_enabled":true},"cluster-info":{"name":"test"}}"#
            )
        );
        let mut doc = json!({});
        add_cdc(
            &mut doc,
            &cdc("pulsar://p:6650"),
            ServerType::Cassandra,
            false,
        );
        assert_eq!(
            doc["cassandra-env-sh"]["additional-jvm-opts"][0],
            "-javaagent:/opt/management-api/datastax-mgmtapi-agent.jar"
        );
    }

    fn dc(spec: Value) -> Dc {
        let mut obj = json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns1", "uid": "u", "generation": 1},
            "spec": {"clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.9", "size": 1, "storageConfig": {}},
        });
        merge(&mut obj["spec"], &spec);
        let snapshot = k8ssandra_policy_sdk::Snapshot::for_parent(k8ssandra_policy_sdk::Object {
            cluster: String::new(),
            json: obj.to_string(),
        });
        Dc::parse(&snapshot).unwrap()
    }

    #[test]
    fn config_file_data_with_and_without_cdc() {
        let user = json!({"config": {"cassandra-env-sh": {"additional-jvm-opts": ["-Dfoo=1"]}}});
        let plain = config_file_data_text(&dc(user.clone()));
        assert!(!plain.contains("cdc"), "{plain}");
        assert!(plain.contains(r#""cassandra-env-sh":{"additional-jvm-opts":["-Dfoo=1"]}"#));
        assert_eq!(
            config_file_data_text(&dc(json!({}))),
            concat!(
                r#"{"cassandra-yaml":{"authenticator":"PasswordAuthenticator","authorizer":"CassandraAuthorizer","role_manager":"CassandraRoleManager"},"#,
                r#""cluster-info":{"name":"demo","seeds":"demo-seed-service,demo-dc1-additional-seed-service"},"#,
                r#""datacenter-info":{"graph-enabled":0,"name":"dc1","solr-enabled":0,"spark-enabled":0}}"#
            )
        );

        let mut with = user;
        with["cdc"] = json!({"pulsarServiceUrl": "pulsar://p:6650", "topicPrefix": "t-"});
        assert_eq!(
            config_file_data_text(&dc(with.clone())),
            concat!(
                r#"{"cassandra-env-sh":{"additional-jvm-opts":["-Dfoo=1","#,
                r#""-javaagent:/opt/metrics-collector/lib/datastax-mcac-agent.jar","#,
                r#""-javaagent:/opt/management-api/datastax-mgmtapi-agent.jar","#,
                r#""-javaagent:/opt/cdc_agent/cdc-agent.jar=pulsarServiceUrl=pulsar://p:6650,topicPrefix=t-"]},"#,
                r#""cassandra-yaml":{"authenticator":"PasswordAuthenticator","authorizer":"CassandraAuthorizer","cdc_enabled":true,"role_manager":"CassandraRoleManager"},"#,
                r#""cluster-info":{"name":"demo","seeds":"demo-seed-service,demo-dc1-additional-seed-service"},"#,
                r#""datacenter-info":{"graph-enabled":0,"name":"dc1","solr-enabled":0,"spark-enabled":0}}"#
            )
        );

        // The user's MGMT_API_DISABLE_MCAC=true on the cassandra container drops the
        // metrics collector agent.
        with["podTemplateSpec"] = json!({"spec": {"containers": [{
            "name": "cassandra",
            "env": [{"name": "MGMT_API_DISABLE_MCAC", "value": "true"}],
        }]}});
        let text = config_file_data_text(&dc(with.clone()));
        assert!(!text.contains("metrics-collector"), "{text}");
        assert!(text.contains("datastax-mgmtapi-agent.jar"), "{text}");
        // DSE never gets it.
        with["podTemplateSpec"] = json!({});
        with["serverType"] = json!("dse");
        with["serverVersion"] = json!("6.8.50");
        let text = config_file_data_text(&dc(with));
        assert!(!text.contains("metrics-collector"), "{text}");
        assert!(text.contains(r#""cdc_enabled":true"#), "{text}");
    }
}
