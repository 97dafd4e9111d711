//! Admission rules of a K8ssandraCluster that its CRD schema cannot express, each naming
//! the offending field. Rules that need other objects (a k8sContext without a ClientConfig)
//! are checked at reconcile time instead, where those objects are known.

use std::collections::BTreeMap;

use k8ssandra_api::k8ssandra::{CassandraDatacenterTemplate, K8ssandraCluster};
use k8ssandra_api::names;
use k8ssandra_policy_sdk::{Violation, violation};
use serde_json::Value;

use crate::dc::merged_options;

/// Kubeconfig context names are free-form (EKS uses ARNs with ':' and '/'), so only what can
/// never be one is refused: blanks, control characters, and absurd lengths.
fn context_looks_valid(ctx: &str) -> bool {
    ctx.len() <= 253 && !ctx.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() >= 3
        && parts[..3]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The Vector sidecars of the Reaper and Stargate objects this cluster makes, checked here
/// as their own policies would check them: a bad pipeline is refused where it was written
/// instead of surfacing later on an object the user did not write.
fn sidecar_telemetry(kc: &K8ssandraCluster) -> Vec<Violation> {
    use k8ssandra_telemetry::vector::{REAPER_METRICS, STARGATE_METRICS, sidecar_violations};
    let mut found = Vec::new();
    if let Some(r) = &kc.spec.reaper {
        found.extend(sidecar_violations(
            "spec.reaper.telemetry",
            r.template.telemetry.as_ref(),
            &REAPER_METRICS,
        ));
    }
    if let Some(sg) = &kc.spec.stargate {
        found.extend(sidecar_violations(
            "spec.stargate.telemetry",
            sg.template.telemetry.as_ref(),
            &STARGATE_METRICS,
        ));
    }
    for (i, dc) in kc.datacenters().iter().enumerate() {
        if let Some(sg) = &dc.stargate {
            found.extend(sidecar_violations(
                &format!("spec.cassandra.datacenters[{i}].stargate.telemetry"),
                sg.cluster_template.template.telemetry.as_ref(),
                &STARGATE_METRICS,
            ));
        }
    }
    found.into_iter().map(|(f, m)| violation(&f, m)).collect()
}

pub fn validate(object: &str, old: Option<&str>) -> Vec<Violation> {
    let kc: K8ssandraCluster = match serde_json::from_str(object) {
        Ok(k) => k,
        Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
    };
    let mut out = check(&kc);
    out.extend(crate::stargate::violations(&kc));
    out.extend(sidecar_telemetry(&kc));
    if let Some(old) = old.and_then(|o| serde_json::from_str::<K8ssandraCluster>(o).ok()) {
        out.extend(check_update(&kc, &old));
    }
    out
}

fn check(kc: &K8ssandraCluster) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let cluster = kc.cass_cluster_name();
    for (i, dc) in kc.datacenters().iter().enumerate() {
        let f = |s: &str| format!("spec.cassandra.datacenters[{i}].{s}");
        let name = dc.metadata.name.as_str();
        if !names::is_dns1035_label(name) {
            out.push(violation(
                &f("metadata.name"),
                format!("{name:?} is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63 characters)"),
            ));
        }
        out.extend(crate::telemetry::violations(
            &merged_options(kc, dc),
            i,
            dc.options.telemetry.is_some(),
        ));
        if let Some(j) = seen.insert(name, i) {
            out.push(violation(
                &f("metadata.name"),
                format!("{name:?} is already the name of spec.cassandra.datacenters[{j}]"),
            ));
        }
        if let Some(ctx) = dc.k8s_context.as_deref()
            && !context_looks_valid(ctx)
        {
            out.push(violation(
                &f("k8sContext"),
                format!("{ctx:?} is not a valid context name"),
            ));
        }
        let opts = merged_options(kc, dc);
        if opts.get("storageConfig").is_none_or(Value::is_null) {
            out.push(violation(
                &f("storageConfig"),
                "must be set here or in spec.cassandra.storageConfig",
            ));
        }
        match opts.get("serverVersion").and_then(Value::as_str) {
            None => out.push(violation(
                &f("serverVersion"),
                "must be set here or in spec.cassandra.serverVersion",
            )),
            Some(v) if !is_version(v) => out.push(violation(
                &f("serverVersion"),
                format!("{v:?} is not a version like 4.1.5"),
            )),
            Some(_) => {}
        }
        let racks: Vec<String> = opts
            .get("racks")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if dc.size < 1 {
            out.push(violation(&f("size"), "must be at least 1"));
        } else if (dc.size as usize) < racks.len() {
            out.push(violation(
                &f("size"),
                format!("must be at least the number of racks ({})", racks.len()),
            ));
        }
        let rack_names = if racks.is_empty() {
            vec!["default".to_string()]
        } else {
            racks
        };
        for (r, rack) in rack_names.iter().enumerate() {
            let sts = names::sts_name(cluster, dc.cass_dc_name(), rack);
            if sts.len() > names::MAX_STS_NAME_LEN {
                out.push(violation(
                    &f(&format!("racks[{r}].name")),
                    format!(
                        "the StatefulSet name {sts:?} would exceed {} characters",
                        names::MAX_STS_NAME_LEN
                    ),
                ));
            }
        }
    }
    out
}

fn num_tokens(kc: &K8ssandraCluster, dc: &CassandraDatacenterTemplate) -> Option<Value> {
    merged_options(kc, dc)
        .pointer("/config/cassandraYaml/num_tokens")
        .cloned()
}

fn check_update(new: &K8ssandraCluster, old: &K8ssandraCluster) -> Vec<Violation> {
    let mut out = Vec::new();
    if new.cass_cluster_name() != old.cass_cluster_name() {
        out.push(violation("spec.cassandra.clusterName", "is immutable"));
    }
    let old_dcs: BTreeMap<&str, &CassandraDatacenterTemplate> = old
        .datacenters()
        .iter()
        .map(|d| (d.metadata.name.as_str(), d))
        .collect();
    let added = new
        .datacenters()
        .iter()
        .any(|d| !old_dcs.contains_key(d.metadata.name.as_str()));
    let removed = old.datacenters().iter().any(|o| {
        !new.datacenters()
            .iter()
            .any(|d| d.metadata.name == o.metadata.name)
    });
    if added && removed {
        out.push(violation(
            "spec.cassandra.datacenters",
            "datacenters cannot be added and removed in the same update (renaming a datacenter does both)",
        ));
    }
    for (i, dc) in new.datacenters().iter().enumerate() {
        let Some(o) = old_dcs.get(dc.metadata.name.as_str()) else {
            continue;
        };
        let f = |s: &str| format!("spec.cassandra.datacenters[{i}].{s}");
        if dc.k8s_context.as_deref().unwrap_or_default()
            != o.k8s_context.as_deref().unwrap_or_default()
        {
            out.push(violation(
                &f("k8sContext"),
                "cannot change for an existing datacenter",
            ));
        }
        if dc.cass_dc_name() != o.cass_dc_name() {
            out.push(violation(&f("datacenterName"), "is immutable"));
        }
        let (a, b) = (num_tokens(new, dc), num_tokens(old, o));
        if a != b && b.is_some() {
            out.push(violation(
                &f("config.cassandraYaml.num_tokens"),
                "cannot change for an existing datacenter",
            ));
        }
    }
    out
}
