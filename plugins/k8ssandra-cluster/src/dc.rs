//! The CassandraDatacenter generated for one `spec.cassandra.datacenters[]` entry: the
//! cluster-level options merged with the datacenter's (the datacenter wins), rendered into
//! the `cassandra.datastax.com/v1beta1` shape cass-operator (and our datacenter policy) reads.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::ServerType;
use k8ssandra_api::k8ssandra::{CassandraDatacenterTemplate, K8ssandraCluster};
use k8ssandra_api::labels;
use serde_json::{Map, Value, json};

/// Array fields merged element by element, matched on a key, like Kubernetes' strategic
/// merge (and KO's `MergeCRs`): a datacenter can override one rack or one container of the
/// cluster-level list without repeating the others. Every other array is replaced whole.
fn array_merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "racks" | "containers" | "initContainers" | "env" | "additionalVolumes" | "pvcs" => "name",
        "volumes" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        _ => return None,
    })
}

/// Objects where only one member may be set (a volume source, an env var's value): merging
/// two of them key by key would produce an invalid mix, so the datacenter's replaces the
/// cluster's.
fn is_atomic(field: &str) -> bool {
    matches!(field, "volumeSource" | "valueFrom")
}

/// Deep merge of `over` into `base`: objects key by key, keyed arrays element by element,
/// anything else replaced. `null` in `over` never erases (an unset option inherits).
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (_, Value::Null) => {}
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing) if !is_atomic(k) => {
                        if let (Some(key), Value::Array(ba), Value::Array(oa)) =
                            (array_merge_key(k), &mut *existing, v)
                        {
                            merge_keyed(ba, oa, key, k == "volumes");
                        } else {
                            deep_merge(existing, v);
                        }
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
                // An env var holds a value or a reference, never both.
                if k == "value" && !v.is_null() {
                    b.remove("valueFrom");
                } else if k == "valueFrom" {
                    b.remove("value");
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn merge_keyed(base: &mut Vec<Value>, over: &[Value], key: &str, atomic_elements: bool) {
    for item in over {
        let id = item.get(key);
        match base.iter_mut().find(|b| id.is_some() && b.get(key) == id) {
            // Pod volumes flatten their source into the volume: merging two would mix sources.
            Some(existing) if atomic_elements => *existing = item.clone(),
            Some(existing) => deep_merge(existing, item),
            None => base.push(item.clone()),
        }
    }
}

/// Merged options of one datacenter, as JSON (field names as in the K8ssandraCluster).
pub fn merged_options(kc: &K8ssandraCluster, dc: &CassandraDatacenterTemplate) -> Value {
    let mut base = kc
        .spec
        .cassandra
        .as_ref()
        .and_then(|c| serde_json::to_value(&c.options).ok())
        .unwrap_or_else(|| json!({}));
    let over = serde_json::to_value(&dc.options).unwrap_or_else(|_| json!({}));
    deep_merge(&mut base, &over);
    base
}

/// Major and minor of `serverVersion`, for the version-specific configuration.
fn version(v: &str) -> (u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Where a JVM option goes in cass-config-builder's document.
#[derive(Clone, Copy)]
enum Modern {
    /// Not available after Cassandra 3.11.
    None,
    /// `jvm-server-options/<key>` for Cassandra 4+, DSE 6.8+ and HCD.
    Server(&'static str),
    /// Java-specific file: `jvm11-server-options` for Cassandra 4+ and HCD, `jvm8-server-options`
    /// for DSE.
    ByJava(&'static str),
}

/// `jvmOptions` field → (key in `jvm-options` for Cassandra 3.11, key for newer servers).
/// These are the config builder's names; they are what the pods' init container understands.
const JVM_OPTIONS: &[(&str, Option<&str>, Modern)] = {
    use Modern::*;
    &[
        (
            "heap_initial_size",
            Some("initial_heap_size"),
            Server("initial_heap_size"),
        ),
        (
            "heap_max_size",
            Some("max_heap_size"),
            Server("max_heap_size"),
        ),
        (
            "vm_enable_assertions",
            Some("enable_assertions"),
            Server("enable_assertions"),
        ),
        (
            "vm_enable_thread_priorities",
            Some("use_thread_priorities"),
            Server("use_thread_priorities"),
        ),
        (
            "vm_enable_non_root_thread_priority",
            Some("thread_priority_policy_42"),
            None,
        ),
        (
            "vm_heap_dump_on_out_of_memory_error",
            Some("heap_dump_on_out_of_memory_error"),
            Server("heap_dump_on_out_of_memory_error"),
        ),
        (
            "vm_per_thread_stack_size",
            Some("per_thread_stack_size"),
            Server("per_thread_stack_size"),
        ),
        (
            "vm_string_table_size",
            Some("string_table_size"),
            Server("string_table_size"),
        ),
        (
            "vm_always_pre_touch",
            Some("always_pre_touch"),
            Server("always_pre_touch"),
        ),
        (
            "vm_disable_biased_locking",
            Some("use_biased_locking"),
            Server("use-biased-locking"),
        ),
        ("vm_use_tlab", Some("use_tlb"), Server("use_tlb")),
        ("vm_resize_tlab", Some("resize_tlb"), Server("resize_tlb")),
        (
            "vm_disable_perf_shared_mem",
            Some("perf_disable_shared_mem"),
            Server("perf_disable_shared_mem"),
        ),
        (
            "vm_prefer_ipv4",
            Some("java_net_prefer_ipv4_stack"),
            Server("java_net_prefer_ipv4_stack"),
        ),
        ("vm_use_numa", Option::None, Server("use_numa")),
        (
            "vm_print_heap_histogram_on_out_of_memory_error",
            Option::None,
            Server("print_heap_histogram_on_out_of_memory_error"),
        ),
        (
            "vm_exit_on_out_of_memory_error",
            Option::None,
            Server("exit_on_out_of_memory_error"),
        ),
        (
            "vm_crash_on_out_of_memory_error",
            Option::None,
            Server("crash_on_out_of_memory_error"),
        ),
        (
            "vm_guaranteed_safepoint_interval_ms",
            Option::None,
            Server("guaranteed-safepoint-interval"),
        ),
        (
            "netty_eventloop_maxpendingtasks",
            Option::None,
            Server("io_netty_eventloop_maxpendingtasks"),
        ),
        (
            "netty_try_reflection_set_accessible",
            Option::None,
            ByJava("io_netty_try_reflection_set_accessible"),
        ),
        (
            "nio_maxcachedbuffersize",
            Option::None,
            Server("jdk_nio_maxcachedbuffersize"),
        ),
        (
            "nio_align_direct_memory",
            Option::None,
            Server("page-align-direct-memory"),
        ),
        (
            "jdk_allow_attach_self",
            Option::None,
            ByJava("jdk_attach_allow_attach_self"),
        ),
        (
            "cassandra_available_processors",
            Some("cassandra_available_processors"),
            Server("cassandra_available_processors"),
        ),
        (
            "cassandra_metrics_reporter_config_file",
            Some("cassandra_metrics_reporter_config_file"),
            Server("cassandra_metrics_reporter_config_file"),
        ),
        (
            "cassandra_ring_delay_ms",
            Some("cassandra_ring_delay_ms"),
            Server("cassandra_ring_delay_ms"),
        ),
        (
            "cassandra_triggers_directory",
            Some("cassandra_triggers_dir"),
            Server("cassandra_triggers_dir"),
        ),
        (
            "cassandra_write_survey",
            Some("cassandra_write_survey"),
            Server("cassandra_write_survey"),
        ),
        (
            "cassandra_disable_auth_caches_remote_configuration",
            Some("cassandra_disable_auth_caches_remote_configuration"),
            Server("cassandra_disable_auth_caches_remote_configuration"),
        ),
        (
            "cassandra_force_default_indexing_page_size",
            Some("cassandra_force_default_indexing_page_size"),
            Server("cassandra_force_default_indexing_page_size"),
        ),
        (
            "cassandra_force_3_0_protocol_version",
            Some("cassandra_force_3_0_protocol_version"),
            None,
        ),
        (
            "cassandra_expiration_date_overflow_policy",
            Option::None,
            Server("cassandra_expiration_date_overflow_policy"),
        ),
        (
            "cassandra_max_hint_ttl_seconds",
            Option::None,
            Server("cassandra_max_hint_ttl"),
        ),
        ("gc", Some("garbage_collector"), ByJava("garbage_collector")),
        (
            "gc_cms_heap_size_young_generation",
            Some("heap_size_young_generation"),
            None,
        ),
        ("gc_cms_survivor_ratio", Some("survivor_ratio"), None),
        (
            "gc_cms_max_tenuring_threshold",
            Some("max_tenuring_threshold"),
            None,
        ),
        (
            "gc_cms_initiating_occupancy_fraction",
            Some("cms_initiating_occupancy_fraction"),
            None,
        ),
        ("gc_cms_wait_duration_ms", Some("cms_wait_duration"), None),
        (
            "gc_g1_rset_updating_pause_time_percent",
            Some("g1r_set_updating_pause_time_percent"),
            ByJava("g1r_set_updating_pause_time_percent"),
        ),
        (
            "gc_g1_max_gc_pause_ms",
            Some("max_gc_pause_millis"),
            ByJava("max_gc_pause_millis"),
        ),
        (
            "gc_g1_initiating_heap_occupancy_percent",
            Some("initiating_heap_occupancy_percent"),
            ByJava("initiating_heap_occupancy_percent"),
        ),
        (
            "gc_g1_parallel_threads",
            Some("parallel_gc_threads"),
            ByJava("parallel_gc_threads"),
        ),
        (
            "gc_g1_conc_threads",
            Some("conc_gc_threads"),
            ByJava("conc_gc_threads"),
        ),
        ("gc_print_details", Some("print_gc_details"), None),
        ("gc_print_date_stamps", Some("print_gc_date_stamps"), None),
        ("gc_print_heap", Some("print_heap_at_gc"), None),
        (
            "gc_print_tenuring_distribution",
            Some("print_tenuring_distribution"),
            None,
        ),
        (
            "gc_print_application_stopped_time",
            Some("print_gc_application_stopped_time"),
            None,
        ),
        (
            "gc_print_promotion_failure",
            Some("print_promotion_failure"),
            None,
        ),
        (
            "gc_print_flss_statistics",
            Some("print_flss_statistics"),
            None,
        ),
        ("gc_print_use_log_file", Some("log_gc"), None),
        (
            "gc_print_use_log_file_rotation",
            Some("use_gc_log_file_rotation"),
            None,
        ),
        (
            "gc_print_number_of_log_files",
            Some("number_of_gc_log_files"),
            None,
        ),
        ("gc_print_log_file_size", Some("gc_log_file_size"), None),
        ("jmx_port", Some("jmx-port"), Server("jmx-port")),
        (
            "jmx_connection_type",
            Some("jmx-connection-type"),
            Server("jmx-connection-type"),
        ),
        (
            "jmx_remote_ssl",
            Some("jmx-remote-ssl"),
            Server("jmx-remote-ssl"),
        ),
        (
            "jmx_remote_ssl_opts",
            Some("jmx-remote-ssl-opts"),
            Server("jmx-remote-ssl-opts"),
        ),
        (
            "jmx_remote_ssl_require_client_auth",
            Option::None,
            Server("jmx-remote-ssl-require-client-auth"),
        ),
        (
            "debug_unlock_commercial_features",
            Some("unlock_commercial_features"),
            Server("unlock_commercial_features"),
        ),
        (
            "debug_enable_flight_recorder",
            Some("flight_recorder"),
            Server("flight_recorder"),
        ),
        (
            "debug_listen_remote_debuggers",
            Some("agent_lib_jdwp"),
            Server("agent_lib_jdwp"),
        ),
        (
            "debug_disable_contended_annotations",
            Option::None,
            Server("restrict-contended"),
        ),
        (
            "debug_non_safepoints",
            Option::None,
            Server("debug-non-safepoints"),
        ),
        (
            "debug_unlock_diagnostic_vm_options",
            Option::None,
            Server("unlock-diagnostic-vm-options"),
        ),
        (
            "debug_log_compilation",
            Option::None,
            Server("log_compilation"),
        ),
        (
            "debug_preserve_frame_pointer",
            Option::None,
            Server("preserve-frame-pointer"),
        ),
    ]
};

/// A Kubernetes quantity as the number the config builder expects: an integer when it has
/// no fractional part, else a float (`512Mi` → 536870912, `1.5` → 1.5).
pub fn quantity_number(q: &str) -> Value {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().unwrap_or(0)),
        _ => return Value::String(q.to_string()),
    };
    let Ok(n) = num.parse::<f64>() else {
        return Value::String(q.to_string());
    };
    let v = n * factor;
    if !num.contains('.') && v.fract() == 0.0 && v.abs() < 9.0e18 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// Quantity-typed JVM options (their values are strings in the K8ssandraCluster).
fn is_quantity(field: &str) -> bool {
    matches!(
        field,
        "heap_initial_size"
            | "heap_max_size"
            | "vm_per_thread_stack_size"
            | "vm_string_table_size"
            | "nio_maxcachedbuffersize"
            | "gc_cms_heap_size_young_generation"
            | "gc_print_log_file_size"
    )
}

fn put(doc: &mut Map<String, Value>, file: &str, key: &str, value: Value) {
    let entry = doc
        .entry(file.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = entry {
        m.insert(key.to_string(), value);
    }
}

fn put_if_absent(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_string()).or_insert(value);
}

/// The `spec.config` document of the CassandraDatacenter, as KO renders it for the config
/// builder: `cassandra-yaml`, `dse-yaml`, and the JVM option files of the server version,
/// with KO's defaults (auth settings, num_tokens, ...) added where the user set nothing.
pub fn render_config(
    config: &Value,
    server_type: ServerType,
    server_version: &str,
    auth: bool,
) -> Value {
    let (major, minor) = version(server_version);
    let cassandra = server_type == ServerType::Cassandra;
    let legacy = cassandra && major == 3 && minor == 11;
    let mut doc = Map::new();

    let mut yaml = config
        .get("cassandraYaml")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut dse_yaml = config
        .get("dseYaml")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Without explicit auth settings Cassandra would run with its own defaults, which do not
    // match spec.auth.
    if auth {
        if server_type == ServerType::Dse {
            put_if_absent(
                &mut yaml,
                "authenticator",
                json!("com.datastax.bdp.cassandra.auth.DseAuthenticator"),
            );
            put_if_absent(
                &mut yaml,
                "authorizer",
                json!("com.datastax.bdp.cassandra.auth.DseAuthorizer"),
            );
            put_if_absent(
                &mut yaml,
                "role_manager",
                json!("com.datastax.bdp.cassandra.auth.DseRoleManager"),
            );
            for (section, key, value) in [
                ("authentication_options", "enabled", "true"),
                ("authorization_options", "enabled", "true"),
                ("role_management_options", "mode", "internal"),
            ] {
                let s = dse_yaml
                    .entry(section.to_string())
                    .or_insert_with(|| json!({}));
                if let Value::Object(m) = s {
                    put_if_absent(m, key, json!(value));
                }
            }
        } else {
            put_if_absent(&mut yaml, "authenticator", json!("PasswordAuthenticator"));
            put_if_absent(&mut yaml, "authorizer", json!("CassandraAuthorizer"));
        }
    } else {
        put_if_absent(&mut yaml, "authenticator", json!("AllowAllAuthenticator"));
        put_if_absent(&mut yaml, "authorizer", json!("AllowAllAuthorizer"));
    }
    put_if_absent(&mut yaml, "role_manager", json!("CassandraRoleManager"));
    // Cassandra's own default is one token per node, which nobody wants.
    put_if_absent(
        &mut yaml,
        "num_tokens",
        json!(if cassandra && major == 3 { 256 } else { 16 }),
    );
    if cassandra && major == 3 {
        put_if_absent(&mut yaml, "start_rpc", json!(false));
    }
    if !cassandra {
        put_if_absent(
            &mut yaml,
            "allocate_tokens_for_local_replication_factor",
            json!(3),
        );
    }
    doc.insert("cassandra-yaml".into(), Value::Object(yaml));
    if !dse_yaml.is_empty() {
        doc.insert("dse-yaml".into(), Value::Object(dse_yaml));
    }

    let mut jvm = config
        .get("jvmOptions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Deprecated fields feed their replacements when those are unset.
    if let Some(h) = jvm.get("heapSize").cloned() {
        put_if_absent(&mut jvm, "heap_initial_size", h.clone());
        put_if_absent(&mut jvm, "heap_max_size", h);
    }
    if let Some(h) = jvm.get("heapNewGenSize").cloned() {
        put_if_absent(&mut jvm, "gc_cms_heap_size_young_generation", h);
    }
    let java_file = if server_type == ServerType::Dse {
        "jvm8-server-options"
    } else {
        "jvm11-server-options"
    };
    for (field, v3, modern) in JVM_OPTIONS {
        let Some(value) = jvm.get(*field) else {
            continue;
        };
        let value = match value {
            Value::String(s) if is_quantity(field) => quantity_number(s),
            other => other.clone(),
        };
        match (legacy, v3, modern) {
            (true, Some(key), _) => put(&mut doc, "jvm-options", key, value),
            (false, _, Modern::Server(key)) => put(&mut doc, "jvm-server-options", key, value),
            (false, _, Modern::ByJava(key)) => put(&mut doc, java_file, key, value),
            _ => {}
        }
    }
    let mut env_opts: Vec<Value> = jvm
        .get("additionalOptions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Stargate (and ALTER during range movements in general) needs this on Cassandra 4+.
    if cassandra && major >= 4 {
        let opt = json!("-Dcassandra.allow_alter_rf_during_range_movement=true");
        if !env_opts.contains(&opt) {
            env_opts.insert(0, opt);
        }
    }
    if !env_opts.is_empty() {
        put(
            &mut doc,
            "cassandra-env-sh",
            "additional-jvm-opts",
            Value::Array(env_opts),
        );
    }
    for (field, file) in [
        ("additionalJvmServerOptions", "jvm-server-options"),
        ("additionalJvm11ServerOptions", "jvm11-server-options"),
        ("additionalJvm8ServerOptions", "jvm8-server-options"),
    ] {
        if let Some(v) = jvm
            .get(field)
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            put(&mut doc, file, "additional-jvm-opts", v.clone());
        }
    }
    Value::Object(doc)
}

/// Labels KO puts on every CassandraDatacenter it creates; users and tools select on them.
pub fn ko_labels(kc_name: &str, kc_namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME_LABEL.into(), labels::NAME_LABEL_VALUE.into()),
        (
            labels::PART_OF_LABEL.into(),
            labels::PART_OF_LABEL_VALUE.into(),
        ),
        (
            labels::COMPONENT_LABEL.into(),
            labels::COMPONENT_CASSANDRA.into(),
        ),
        (
            labels::CLEANED_UP_BY_LABEL.into(),
            "k8ssandracluster-controller".into(),
        ),
        (labels::K8SSANDRA_CLUSTER_NAME_LABEL.into(), kc_name.into()),
        (
            labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL.into(),
            kc_namespace.into(),
        ),
    ])
}

/// What the rollout decided for one datacenter, beyond its template.
pub struct DcInputs<'a> {
    pub namespace: &'a str,
    pub superuser_secret: Option<&'a str>,
    pub additional_seeds: Vec<String>,
    /// Not the first datacenter: the superuser already exists in the cluster, and creating
    /// it again before system_auth replicates to this datacenter would fail.
    pub skip_user_creation: bool,
    pub extra_annotations: BTreeMap<String, String>,
}

fn merge_maps(
    a: Option<&BTreeMap<String, String>>,
    b: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = a.cloned().unwrap_or_default();
    out.extend(b.cloned().unwrap_or_default());
    out
}

fn tags_json(t: Option<&k8ssandra_api::meta::Tags>, extra: &BTreeMap<String, String>) -> Value {
    let mut labels = t.and_then(|t| t.labels.clone()).unwrap_or_default();
    labels.extend(extra.clone());
    let annotations = t.and_then(|t| t.annotations.clone()).unwrap_or_default();
    let mut o = Map::new();
    if !labels.is_empty() {
        o.insert("additionalLabels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        o.insert("additionalAnnotations".into(), json!(annotations));
    }
    Value::Object(o)
}

/// The desired CassandraDatacenter (apiVersion, kind, metadata, spec) of `dc`, or why it
/// cannot be generated (the field that is missing).
pub fn desired_datacenter(
    kc: &K8ssandraCluster,
    index: usize,
    dc: &CassandraDatacenterTemplate,
    inputs: &DcInputs,
) -> Result<Value, String> {
    let kc_name = kc.metadata.name.clone().unwrap_or_default();
    let kc_ns = kc.metadata.namespace.clone().unwrap_or_default();
    let cluster = kc.spec.cassandra.as_ref();
    let opts = merged_options(kc, dc);
    let field = |f: &str| format!("spec.cassandra.datacenters[{index}].{f}");
    let server_version = opts
        .get("serverVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!(
                "{} (or spec.cassandra.serverVersion) must be set",
                field("serverVersion")
            )
        })?
        .to_string();
    let mut storage = opts.get("storageConfig").cloned().ok_or_else(|| {
        format!(
            "{} (or spec.cassandra.storageConfig) must be set",
            field("storageConfig")
        )
    })?;
    let server_type = kc.server_type();

    // --- metadata ---
    let cmeta = cluster.and_then(|c| c.metadata.as_ref());
    let dmeta = &dc.metadata;
    let mut obj_labels = ko_labels(&kc_name, &kc_ns);
    obj_labels.extend(merge_maps(
        cmeta.and_then(|m| m.labels.as_ref()),
        dmeta.labels.as_ref(),
    ));
    let mut annotations = merge_maps(
        cmeta.and_then(|m| m.annotations.as_ref()),
        dmeta.annotations.as_ref(),
    );
    if inputs.skip_user_creation {
        annotations.insert(labels::SKIP_USER_CREATION_ANNOTATION.into(), "true".into());
    }
    annotations.extend(inputs.extra_annotations.clone());

    // --- pod template ---
    let mut pod_spec = Map::new();
    if let Some(v) = opts.get("podSecurityContext") {
        pod_spec.insert("securityContext".into(), v.clone());
    }
    if let Some(v) = opts.get("podPriorityClassName") {
        pod_spec.insert("priorityClassName".into(), v.clone());
    }
    let mut containers: Vec<Value> = opts
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cassandra_env: Vec<Value> = Vec::new();
    if let Some(heap) = opts.get("mgmtAPIHeap").and_then(Value::as_str) {
        let bytes = match quantity_number(heap) {
            Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        cassandra_env.push(json!({"name": "MANAGEMENT_API_HEAP_SIZE", "value": bytes}));
    }
    let mcac = opts
        .pointer("/telemetry/mcac/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !mcac {
        cassandra_env.push(json!({"name": "MGMT_API_DISABLE_MCAC", "value": "true"}));
    }
    cassandra_env.extend(crate::telemetry::cassandra_env(&opts));
    // The cassandra container is always declared, so the template is valid and the env
    // variables have a home.
    match containers
        .iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("cassandra"))
    {
        Some(c) => {
            if !cassandra_env.is_empty() {
                let env = c
                    .as_object_mut()
                    .map(|o| o.entry("env").or_insert_with(|| json!([])));
                if let Some(Value::Array(env)) = env {
                    env.extend(cassandra_env);
                }
            }
        }
        None => {
            let mut c = json!({"name": "cassandra"});
            if !cassandra_env.is_empty() {
                c["env"] = Value::Array(cassandra_env);
            }
            containers.push(c);
        }
    }
    pod_spec.insert("containers".into(), Value::Array(containers));
    if let Some(v) = opts
        .get("initContainers")
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        pod_spec.insert("initContainers".into(), v.clone());
    }
    if let Some(vols) = opts
        .pointer("/extraVolumes/volumes")
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        pod_spec.insert("volumes".into(), vols.clone());
    }
    if let Some(pvcs) = opts.pointer("/extraVolumes/pvcs").and_then(Value::as_array)
        && let Some(obj) = storage.as_object_mut()
        && let Value::Array(list) = obj.entry("additionalVolumes").or_insert_with(|| json!([]))
    {
        list.extend(pvcs.iter().cloned());
    }
    let mut pod_template = json!({"spec": Value::Object(pod_spec)});
    let pods = match (cmeta.and_then(|m| m.pods.clone()), dmeta.pods.clone()) {
        (Some(mut a), Some(b)) => {
            a.labels = Some(merge_maps(a.labels.as_ref(), b.labels.as_ref()));
            a.annotations = Some(merge_maps(a.annotations.as_ref(), b.annotations.as_ref()));
            Some(a)
        }
        (a, b) => b.or(a),
    };
    if let Some(p) = pods {
        let mut m = Map::new();
        if let Some(l) = p.labels.filter(|l| !l.is_empty()) {
            m.insert("labels".into(), json!(l));
        }
        if let Some(a) = p.annotations.filter(|a| !a.is_empty()) {
            m.insert("annotations".into(), json!(a));
        }
        if !m.is_empty() {
            pod_template["metadata"] = Value::Object(m);
        }
    }

    // --- spec ---
    let mut spec = Map::new();
    spec.insert("clusterName".into(), json!(kc.cass_cluster_name()));
    spec.insert("serverType".into(), json!(server_type.as_str()));
    spec.insert("serverVersion".into(), json!(server_version));
    spec.insert("size".into(), json!(dc.size));
    if dc.stopped == Some(true) {
        spec.insert("stopped".into(), json!(true));
    }
    for (from, to) in [
        ("serverImage", "serverImage"),
        ("racks", "racks"),
        ("resources", "resources"),
        ("networking", "networking"),
        ("tolerations", "tolerations"),
        ("dseWorkloads", "dseWorkloads"),
        ("managementApiAuth", "managementApiAuth"),
        ("serviceAccount", "serviceAccountName"),
        ("readOnlyRootFilesystem", "readOnlyRootFilesystem"),
        ("softPodAntiAffinity", "allowMultipleNodesPerWorker"),
    ] {
        if let Some(v) = opts.get(from).filter(|v| !v.is_null()) {
            spec.insert(to.into(), v.clone());
        }
    }
    // DC-level only, as in KO.
    if let Some(cdc) = &dc.options.cdc {
        spec.insert("cdc".into(), serde_json::to_value(cdc).unwrap_or_default());
    }
    if let Some(n) = dc
        .options
        .datacenter_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        spec.insert("datacenterName".into(), json!(n));
    }
    crate::telemetry::datacenter_fields(&opts, index, dc.options.telemetry.is_some(), &mut spec)?;
    spec.insert("storageConfig".into(), storage);
    let config = opts.get("config").cloned().unwrap_or_else(|| json!({}));
    spec.insert(
        "config".into(),
        render_config(&config, server_type, &server_version, kc.is_auth_enabled()),
    );
    if let Some(s) = inputs.superuser_secret {
        spec.insert("superuserSecretName".into(), json!(s));
    }
    if !inputs.additional_seeds.is_empty() {
        spec.insert("additionalSeeds".into(), json!(inputs.additional_seeds));
    }
    let common_labels = merge_maps(
        cmeta.and_then(|m| m.common_labels.as_ref()),
        dmeta.common_labels.as_ref(),
    );
    if !common_labels.is_empty() {
        spec.insert("additionalLabels".into(), json!(common_labels));
    }
    let common_annotations = merge_maps(
        cmeta.and_then(|m| m.common_annotations.as_ref()),
        dmeta.common_annotations.as_ref(),
    );
    if !common_annotations.is_empty() {
        spec.insert("additionalAnnotations".into(), json!(common_annotations));
    }
    // Service tags; the all-pods Service always carries the cluster's identity so the
    // cluster's objects can be found from it.
    let mut services =
        serde_json::to_value(cmeta.and_then(|m| m.services.clone())).unwrap_or_default();
    if services.is_null() {
        services = json!({});
    }
    deep_merge(
        &mut services,
        &serde_json::to_value(&dmeta.services).unwrap_or_default(),
    );
    let services: k8ssandra_api::meta::CassandraDatacenterServicesMeta =
        serde_json::from_value(services).unwrap_or_default();
    let none = BTreeMap::new();
    let identity = BTreeMap::from([
        (
            labels::K8SSANDRA_CLUSTER_NAME_LABEL.to_string(),
            kc_name.clone(),
        ),
        (
            labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(),
            kc_ns.clone(),
        ),
    ]);
    let mut svc = Map::new();
    for (name, tags, extra) in [
        ("dcService", services.dc_service.as_ref(), &none),
        ("seedService", services.seed_service.as_ref(), &none),
        (
            "allpodsService",
            services.all_pods_service.as_ref(),
            &identity,
        ),
        (
            "additionalSeedService",
            services.additional_seed_service.as_ref(),
            &none,
        ),
        (
            "nodePortService",
            services.node_port_service.as_ref(),
            &none,
        ),
    ] {
        let t = tags_json(tags, extra);
        if t.as_object().is_some_and(|o| !o.is_empty()) {
            svc.insert(name.into(), t);
        }
    }
    spec.insert("additionalServiceConfig".into(), Value::Object(svc));
    spec.insert("podTemplateSpec".into(), pod_template);

    let mut metadata = json!({
        "name": dc.metadata.name,
        "namespace": inputs.namespace,
        "labels": obj_labels,
    });
    if !annotations.is_empty() {
        metadata["annotations"] = json!(annotations);
    }
    Ok(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": metadata,
        "spec": Value::Object(spec),
    }))
}

/// Top-level spec fields this module may generate: when an update is not allowed, the live
/// values of exactly these fields are re-applied, so nothing changes and nothing is dropped.
pub const GENERATED_FIELDS: &[&str] = &[
    "clusterName",
    "serverType",
    "serverVersion",
    "size",
    "stopped",
    "serverImage",
    "racks",
    "resources",
    "networking",
    "tolerations",
    "dseWorkloads",
    "managementApiAuth",
    "serviceAccountName",
    "readOnlyRootFilesystem",
    "allowMultipleNodesPerWorker",
    "cdc",
    "datacenterName",
    "storageConfig",
    "config",
    "superuserSecretName",
    // Roles added by Reaper and Medusa: kept while a spec is refused.
    "users",
    "additionalSeeds",
    "additionalLabels",
    "additionalAnnotations",
    "additionalServiceConfig",
    "podTemplateSpec",
    "telemetry",
    "auditLogging",
    "fullQueryLogging",
];
