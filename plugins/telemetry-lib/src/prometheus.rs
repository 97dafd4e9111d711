//! ServiceMonitors (Prometheus Operator, `monitoring.coreos.com/v1`) shared by the policies:
//! whether the cluster serves the kind at all, and the metric relabelings upstream renders
//! for the legacy MCAC endpoint of a datacenter and for Stargate's metrics.

use k8ssandra_policy_sdk::Snapshot;
use serde_json::{Value, json};

pub const SERVICE_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";
pub const SERVICE_MONITOR_KIND: &str = "ServiceMonitor";
/// Name of the APIService the API server registers for the ServiceMonitor's group and
/// version once the Prometheus Operator's CRDs are installed.
const SERVICE_MONITOR_APISERVICE: &str = "v1.monitoring.coreos.com";
/// Label the API server puts on the APIServices it registers itself (built-in groups and
/// CRD groups): what a policy reads (selector of its `APIService` read) to learn which kinds
/// are served.
pub const APISERVICE_SELECTOR: &str = "kube-aggregator.kubernetes.io/automanaged";

/// Whether the cluster of the parent serves ServiceMonitors: `None` when the snapshot shows
/// no APIService at all (an operator limited to one namespace cannot read them), so the
/// ServiceMonitor is planned and the host's apply tells.
pub fn service_monitor_served(snapshot: &Snapshot) -> Option<bool> {
    let mut any = false;
    for o in snapshot.related.iter().filter(|o| o.cluster.is_empty()) {
        if o.kind().as_deref() == Some("APIService") {
            any = true;
            if o.name().as_deref() == Some(SERVICE_MONITOR_APISERVICE) {
                return Some(true);
            }
        }
    }
    any.then_some(false)
}

/// The condition message when Prometheus is on and the kind is not served.
pub fn kind_missing_message(field: &str) -> String {
    format!(
        "{field} is set but this cluster does not serve ServiceMonitors ({SERVICE_MONITOR_API_VERSION}): install the Prometheus Operator's CRDs; the ServiceMonitor is created once they are there"
    )
}

/// One relabeling: `(sourceLabels, regex, replacement, targetLabel)`; `replace` action.
type Rule<'a> = (&'a [&'a str], &'a str, &'a str, &'a str);

fn replace(rules: &[Rule]) -> Vec<Value> {
    rules
        .iter()
        .map(|(sources, regex, replacement, target)| {
            json!({
                "sourceLabels": sources,
                "regex": regex,
                "replacement": replacement,
                "targetLabel": target,
            })
        })
        .collect()
}

fn drop(sources: &[&str], regex: &str) -> Value {
    json!({"action": "drop", "sourceLabels": sources, "regex": regex})
}

const N: &[&str] = &["__name__"];
const M: &[&str] = &["mcac"];
const P: &[&str] = &["prom_name"];

/// The `metricRelabelings` upstream puts on the datacenter ServiceMonitor's MCAC endpoint
/// (`prometheus`, 9103): MCAC's `collectd_mcac_*` samples carry the Cassandra metric in a
/// `mcac` label; these rules turn them into `mcac_*` families with keyspace, table, pool,
/// request type and similar labels, histogram buckets and quantiles, and drop what is left
/// with a dotted name. The modern endpoint (`metrics`, 9000) needs none.
pub fn mcac_metric_relabelings() -> Vec<Value> {
    let mut out = replace(&[(N, "collectd_mcac_(meter|histogram).*", "${1}", "kind")]);
    out.push(drop(N, ".*rate_(mean|1m|5m|15m)"));
    out.extend(replace(&[
        (N, "(collectd_mcac_.+)", "${1}", "prom_name"),
        (P, ".+_bucket_(\\d+)", "${1}", "le"),
        (P, ".+_bucket_inf", "+Inf", "le"),
        (P, ".*_histogram_p(\\d+)", ".${1}", "quantile"),
        (P, ".*_histogram_min", "0", "quantile"),
        (P, ".*_histogram_max", "1", "quantile"),
    ]));
    out.push(drop(
        M,
        "org\\.apache\\.cassandra\\.metrics\\.table\\.(\\w+)",
    ));
    let table = "org\\.apache\\.cassandra\\.metrics\\.table\\.(\\w+)\\.(\\w+)\\.(\\w+)";
    let keyspace = "org\\.apache\\.cassandra\\.metrics\\.keyspace\\.(\\w+)\\.(\\w+)";
    let pools = "org\\.apache\\.cassandra\\.metrics\\.thread_pools\\.(\\w+)\\.(\\w+)\\.(\\w+).*";
    let request = "org\\.apache\\.cassandra\\.metrics\\.client_request\\.(\\w+)\\.(\\w+)$";
    let request_cl =
        "org\\.apache\\.cassandra\\.metrics\\.client_request\\.(\\w+)\\.(\\w+)\\.(\\w+)$";
    let cache = "org\\.apache\\.cassandra\\.metrics\\.cache\\.(\\w+)\\.(\\w+)";
    let dropped = "org\\.apache\\.cassandra\\.metrics\\.dropped_message\\.(\\w+)\\.(\\w+)";
    let streaming_peer = "org\\.apache\\.cassandra\\.metrics\\.streaming\\.(\\w+)\\.(.+)$";
    let hints_peer =
        "org\\.apache\\.cassandra\\.metrics\\.hinted_hand_off_manager\\.([^\\-]+)-(\\w+)";
    let hint_delays =
        "org\\.apache\\.cassandra\\.metrics\\.hints_service\\.hint_delays[\\-\\.]([\\w\\.]+)";
    let hints_created =
        "org\\.apache\\.cassandra\\.metrics\\.hints_service\\.hints_created[\\-\\.]([\\w\\.]+)";
    let gc = "jvm\\.gc\\.(\\w+)\\.(\\w+)";
    let memory = "jvm\\.memory\\.(\\w+)\\.(\\w+)";
    let memory_pools = "jvm\\.memory\\.pools\\.(\\w+)\\.(\\w+)";
    let buffers = "jvm\\.buffers\\.(\\w+)\\.(\\w+)";
    out.extend(replace(&[
        (M, table, "${3}", "table"),
        (M, table, "${2}", "keyspace"),
        (M, table, "mcac_table_${1}", "__name__"),
        (M, keyspace, "${2}", "keyspace"),
        (M, keyspace, "mcac_keyspace_${1}", "__name__"),
        (M, pools, "${2}", "pool_type"),
        (M, pools, "${3}", "pool_name"),
        (M, pools, "mcac_thread_pools_${1}", "__name__"),
        (M, request, "${2}", "request_type"),
        (M, request, "mcac_client_request_${1}", "__name__"),
        (M, request_cl, "${3}", "cl"),
        (M, request_cl, "${2}", "request_type"),
        (M, request_cl, "mcac_client_request_${1}_cl", "__name__"),
        (M, cache, "${2}", "cache_name"),
        (M, cache, "mcac_cache_${1}", "__name__"),
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.cql\\.(\\w+)",
            "mcac_cql_${1}",
            "__name__",
        ),
        (M, dropped, "${2}", "message_type"),
        (M, dropped, "mcac_dropped_message_${1}", "__name__"),
        (M, streaming_peer, "${2}", "peer_ip"),
        (M, streaming_peer, "mcac_streaming_${1}", "__name__"),
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.streaming\\.(\\w+)$",
            "mcac_streaming_${1}",
            "__name__",
        ),
    ]));
    for family in [
        "commit_log",
        "compaction",
        "storage",
        "batch",
        "client",
        "buffer_pool",
    ] {
        out.extend(replace(&[(
            M,
            &format!("org\\.apache\\.cassandra\\.metrics\\.{family}\\.(\\w+)"),
            &format!("mcac_{family}_${{1}}"),
            "__name__",
        )]));
    }
    out.extend(replace(&[
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.index\\.(\\w+)",
            "mcac_sstable_index_${1}",
            "__name__",
        ),
        (M, hints_peer, "${2}", "peer_ip"),
        (M, hints_peer, "mcac_hints_${1}", "__name__"),
    ]));
    // Upstream spells these with an explicit `replace` action; the meaning is the same.
    for (regex, replacement, target) in [
        (hint_delays, "${1}", "peer_ip"),
        (hint_delays, "mcac_hints_hint_delays", "__name__"),
        (hints_created, "${1}", "peer_ip"),
        (hints_created, "mcac_hints_hint_created", "__name__"),
    ] {
        out.push(json!({
            "action": "replace",
            "sourceLabels": M,
            "regex": regex,
            "replacement": replacement,
            "targetLabel": target,
        }));
    }
    out.extend(replace(&[
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.hints_service\\.([^\\-]+)",
            "mcac_hints_${1}",
            "__name__",
        ),
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.memtable_pool\\.(\\w+)",
            "mcac_memtable_pool_${1}",
            "__name__",
        ),
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.cdc_agent\\.(\\w+)",
            "mcac_cdc_agent_${1}",
            "__name__",
        ),
        (
            M,
            "com\\.datastax\\.bdp\\.type\\.performance_objects\\.name\\.cql_slow_log\\.metrics\\.queries_latency",
            "mcac_cql_slow_log_query_latency",
            "__name__",
        ),
        (
            M,
            "org\\.apache\\.cassandra\\.metrics\\.read_coordination\\.(.*)",
            "$1",
            "read_type",
        ),
        (M, gc, "${1}", "collector_type"),
        (M, gc, "mcac_jvm_gc_${2}", "__name__"),
        (M, memory, "${1}", "memory_type"),
        (M, memory, "mcac_jvm_memory_${2}", "__name__"),
        (M, memory_pools, "${2}", "pool_name"),
        (M, memory_pools, "mcac_jvm_memory_pool_${2}", "__name__"),
        (M, "jvm\\.fd\\.usage", "mcac_jvm_fd_usage", "__name__"),
        (M, buffers, "${1}", "buffer_type"),
        (M, buffers, "mcac_jvm_buffer_${2}", "__name__"),
    ]));
    out.push(json!({
        "sourceLabels": ["__name__", "prom_name"],
        "separator": ";",
        "regex": "(mcac_.*);.*(_micros_bucket|_bucket|_micros_count_total|_count_total|_total|_micros_sum|_sum|_stddev).*",
        "replacement": "${1}${2}",
        "targetLabel": "__name__",
    }));
    out.push(json!({"action": "labeldrop", "regex": "prom_name"}));
    out.push(drop(N, "(.*)\\.+(.*)"));
    out
}

/// The `metricRelabelings` upstream puts on Stargate's ServiceMonitor: the embedded
/// coordinator's `persistence_cassandra_<version>_..._ClientRequest_*` samples get the
/// datacenter, cluster and rack labels, a `request_type`, and `stargate_client_request_*`
/// names. Upstream writes the Stargate object's name into `dc` and a fixed `k8ssandra`
/// into `cluster`; here they hold the datacenter's and the Cassandra cluster's names, which
/// is what the labels say.
pub fn stargate_metric_relabelings(datacenter: &str, cluster: &str) -> Vec<Value> {
    const PREFIX: &str =
        "persistence_cassandra_(\\d_\\d+)_org_apache_cassandra_metrics_ClientRequest_";
    const OPS: &str = "(Read|Write|CASRead|CASWrite|RangeSlice|ViewWrite)";
    let any = format!("{PREFIX}.*");
    let mut out = replace(&[
        (N, &any, datacenter, "dc"),
        (N, &any, cluster, "cluster"),
        (N, &any, "default", "rack"),
    ]);
    for (op, value) in [
        ("Read", "read"),
        ("Write", "write"),
        ("CASRead", "cas_read"),
        ("CASWrite", "cas_write"),
        ("RangeSlice", "range_slice"),
        ("ViewWrite", "view_write"),
    ] {
        out.extend(replace(&[(
            N,
            &format!("{PREFIX}(\\w+)_{op}.*"),
            value,
            "request_type",
        )]));
    }
    for (metric, suffix, name) in [
        ("Latency", "_count", "stargate_client_request_latency_total"),
        ("Latency", "", "stargate_client_request_latency_quantile"),
        (
            "Failures",
            "_total",
            "stargate_client_request_failures_total",
        ),
        (
            "Timeouts",
            "_total",
            "stargate_client_request_timeouts_total",
        ),
        (
            "Unavailables",
            "_total",
            "stargate_client_request_unavailables_total",
        ),
        (
            "ConditionNotMet",
            "",
            "stargate_client_request_condition_not_met_total",
        ),
        (
            "UnfinishedCommit",
            "",
            "stargate_client_request_unfinished_commit_total",
        ),
        (
            "ContentionHistogram",
            "_count",
            // Upstream's spelling, kept so dashboards written for it find the family.
            "stargate_client_request_contention_histogran_total",
        ),
    ] {
        out.extend(replace(&[(
            N,
            &format!("{PREFIX}{metric}_{OPS}{suffix}"),
            name,
            "__name__",
        )]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regexes_compile(rules: &[Value]) {
        for r in rules {
            if let Some(re) = r["regex"].as_str() {
                assert!(
                    regex::Regex::new(&format!("^(?:{re})$")).is_ok(),
                    "regex {re} does not compile"
                );
            }
        }
    }

    /// Applies `replace` rules whose single source label is `__name__`/`mcac` to a sample's
    /// labels as Prometheus would (anchored regex, `${n}` groups), for the checks below.
    fn relabel(rules: &[Value], labels: &mut std::collections::BTreeMap<String, String>) -> bool {
        for r in rules {
            let action = r["action"].as_str().unwrap_or("replace");
            let sources: Vec<String> = r["sourceLabels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let sep = r["separator"].as_str().unwrap_or(";");
            let value: Vec<String> = sources
                .iter()
                .map(|s| labels.get(s).cloned().unwrap_or_default())
                .collect();
            let value = value.join(sep);
            let re = regex::Regex::new(&format!("^(?:{})$", r["regex"].as_str().unwrap_or("(.*)")))
                .unwrap();
            match action {
                "drop" => {
                    if re.is_match(&value) {
                        return false;
                    }
                }
                "labeldrop" => labels.retain(|k, _| !re.is_match(k)),
                _ => {
                    if let Some(c) = re.captures(&value) {
                        let mut out = String::new();
                        c.expand(r["replacement"].as_str().unwrap_or("$1"), &mut out);
                        labels.insert(r["targetLabel"].as_str().unwrap().to_string(), out);
                    }
                }
            }
        }
        true
    }

    #[test]
    fn mcac_relabelings_are_upstreams_and_compile() {
        let rules = mcac_metric_relabelings();
        assert_eq!(rules.len(), 60);
        regexes_compile(&rules);
        assert_eq!(rules[0]["targetLabel"], "kind");
        assert_eq!(rules.last().unwrap()["action"], "drop");
    }

    #[test]
    fn mcac_relabelings_name_a_table_metric_with_its_keyspace_and_table() {
        let rules = mcac_metric_relabelings();
        let mut labels = std::collections::BTreeMap::from([
            (
                "__name__".to_string(),
                "collectd_mcac_histogram_count_total".to_string(),
            ),
            (
                "mcac".to_string(),
                "org.apache.cassandra.metrics.table.read_latency.ks1.users".to_string(),
            ),
        ]);
        assert!(relabel(&rules, &mut labels));
        // The greedy `.*` of the last rule keeps the shortest suffix, as in Prometheus.
        assert_eq!(labels["__name__"], "mcac_table_read_latency_total");
        assert_eq!(labels["keyspace"], "ks1");
        assert_eq!(labels["table"], "users");
        assert_eq!(labels["kind"], "histogram");
        assert!(!labels.contains_key("prom_name"));
        // A rate of a meter is dropped.
        let mut rate = std::collections::BTreeMap::from([(
            "__name__".to_string(),
            "collectd_mcac_meter_rate_1m".to_string(),
        )]);
        assert!(!relabel(&rules, &mut rate));
    }

    #[test]
    fn stargate_relabelings_label_client_requests() {
        let rules = stargate_metric_relabelings("dc1", "demo");
        regexes_compile(&rules);
        assert_eq!(rules.len(), 17);
        let mut labels = std::collections::BTreeMap::from([(
            "__name__".to_string(),
            "persistence_cassandra_4_0_org_apache_cassandra_metrics_ClientRequest_Latency_Read_count"
                .to_string(),
        )]);
        assert!(relabel(&rules, &mut labels));
        assert_eq!(labels["__name__"], "stargate_client_request_latency_total");
        assert_eq!(labels["dc"], "dc1");
        assert_eq!(labels["cluster"], "demo");
        assert_eq!(labels["rack"], "default");
        assert_eq!(labels["request_type"], "read");
    }
}
