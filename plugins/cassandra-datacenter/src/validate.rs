//! Rules the CRD schema cannot express (or that the policy re-checks because a spec can
//! reach it without admission, e.g. with CEL disabled). `reconcile` runs `check_spec` too
//! and reports violations as `Valid=False` without planning anything destructive.

use std::collections::BTreeSet;

use k8ssandra_api::cassandra::{CassandraDatacenter, DatacenterConditionType, ServerType};
use k8ssandra_api::labels::ALLOW_STORAGE_CHANGES_ANNOTATION;
use k8ssandra_api::names::MAX_STS_NAME_LEN;
use k8ssandra_policy_sdk::{Violation, violation};
use serde_json::Value;

use crate::config::major_minor;

/// The `num_tokens` a node of this datacenter starts with: `cassandra-yaml`'s, else the
/// image's default where it is known (Cassandra 3.11: 256; 4.0 and later: 16). None for
/// DSE and HCD without an explicit value: their images' defaults are not known here, and
/// datacenters created by earlier versions of this operator ran with 16 there, so setting
/// the value the nodes already run with must stay possible. As text, so that `16` and
/// `"16"` compare equal.
pub fn num_tokens(dc: &CassandraDatacenter) -> Option<String> {
    let set = dc
        .spec
        .config
        .as_ref()
        .and_then(|c| c.get("cassandra-yaml"))
        .and_then(|y| y.get("num_tokens"));
    match set {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) if !v.is_null() => Some(v.to_string()),
        _ => match dc.spec.server_type {
            ServerType::Dse | ServerType::Hcd => None,
            ServerType::Cassandra if dc.spec.server_version.starts_with("3.") => Some("256".into()),
            ServerType::Cassandra => Some("16".into()),
        },
    }
}

/// Violations of one datacenter spec on its own.
pub fn check_spec(dc: &CassandraDatacenter) -> Vec<Violation> {
    let spec = &dc.spec;
    let mut out = Vec::new();
    let racks = dc.racks();

    if spec.size < 1 {
        out.push(violation("spec.size", "must be at least 1"));
    }
    if (spec.size.max(0) as usize) < racks.len() {
        out.push(violation(
            "spec.size",
            format!(
                "must be at least the number of racks ({}), got {}",
                racks.len(),
                spec.size
            ),
        ));
    }
    if spec.cluster_name.trim().is_empty() {
        out.push(violation("spec.clusterName", "must not be empty"));
    }
    out.extend(crate::telemetry::check_spec(dc));

    let version = &spec.server_version;
    let mm = major_minor(version);
    let well_formed = version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !well_formed {
        out.push(violation(
            "spec.serverVersion",
            format!("{version:?} is not a version of the form X.Y.Z"),
        ));
    } else {
        let supported: &[(u32, u32)] = match spec.server_type {
            ServerType::Cassandra => &[(3, 11), (4, 0), (4, 1), (5, 0)],
            ServerType::Dse => &[(6, 8), (6, 9)],
            ServerType::Hcd => &[(1, 0), (1, 1), (1, 2)],
        };
        if !mm.is_some_and(|mm| supported.contains(&mm)) {
            let list: Vec<String> = supported.iter().map(|(a, b)| format!("{a}.{b}")).collect();
            out.push(violation(
                "spec.serverVersion",
                format!(
                    "{version} is not a supported {} version (supported: {}.x)",
                    spec.server_type.as_str(),
                    list.join(".x, ")
                ),
            ));
        }
    }

    if spec.server_type != ServerType::Dse
        && spec.dse_workloads.as_ref().is_some_and(|w| w.any_enabled())
    {
        out.push(violation(
            "spec.dseWorkloads",
            "DSE workloads can only be enabled with serverType dse",
        ));
    }
    if let Some(Value::Object(cfg)) = &spec.config {
        let v3 =
            mm.is_some_and(|(major, _)| major < 4) && spec.server_type == ServerType::Cassandra;
        if cfg.contains_key("dse-yaml") && spec.server_type != ServerType::Dse {
            out.push(violation(
                "spec.config.dse-yaml",
                "dse-yaml is only valid with serverType dse",
            ));
        }
        if cfg.contains_key("jvm-options") && !v3 {
            out.push(violation(
                "spec.config.jvm-options",
                "jvm-options applies to Cassandra 3.11 only; use jvm-server-options",
            ));
        }
        if cfg.contains_key("jvm-server-options") && v3 {
            out.push(violation(
                "spec.config.jvm-server-options",
                "jvm-server-options does not apply to Cassandra 3.11; use jvm-options",
            ));
        }
    } else if spec.config.as_ref().is_some_and(|c| !c.is_null()) {
        out.push(violation(
            "spec.config",
            "must be an object of configuration files",
        ));
    }

    let mut seen = BTreeSet::new();
    for (i, r) in racks.iter().enumerate() {
        if !seen.insert(r.name.as_str()) {
            out.push(violation(
                &format!("spec.racks[{i}].name"),
                format!("rack name {:?} is used twice", r.name),
            ));
        }
        let sts = dc.sts_name(&r.name);
        if sts.len() > MAX_STS_NAME_LEN {
            out.push(violation(
                &format!("spec.racks[{i}].name"),
                format!(
                    "StatefulSet name {sts} is longer than {MAX_STS_NAME_LEN} characters; use shorter cluster, datacenter or rack names"
                ),
            ));
        }
    }
    if spec
        .storage_config
        .cassandra_data_volume_claim_spec
        .is_none()
    {
        out.push(violation(
            "spec.storageConfig.cassandraDataVolumeClaimSpec",
            "is required",
        ));
    }
    if spec.allow_multiple_nodes_per_worker == Some(true) {
        let has = |part: &str, res: &str| {
            spec.resources.as_ref().is_some_and(|r| {
                let m = if part == "requests" {
                    r.requests.as_ref()
                } else {
                    r.limits.as_ref()
                };
                m.is_some_and(|m| m.contains_key(res))
            })
        };
        if !(has("requests", "cpu")
            && has("requests", "memory")
            && has("limits", "cpu")
            && has("limits", "memory"))
        {
            out.push(violation(
                "spec.resources",
                "cpu and memory requests and limits are required with allowMultipleNodesPerWorker",
            ));
        }
    }
    out
}

/// Violations of an update from `old` to `new`.
pub fn check_update(new: &CassandraDatacenter, old: &CassandraDatacenter) -> Vec<Violation> {
    let (n, o) = (&new.spec, &old.spec);
    let mut out = Vec::new();
    if n.cluster_name != o.cluster_name {
        out.push(violation(
            "spec.clusterName",
            "is immutable: a node refuses to start when its saved cluster name differs",
        ));
    }
    if let (nt, Some(ot)) = (num_tokens(new), num_tokens(old))
        && nt.as_deref() != Some(ot.as_str())
    {
        let nt = nt.unwrap_or_else(|| "the image's default".into());
        out.push(violation(
            "spec.config.cassandra-yaml.num_tokens",
            format!(
                "{} (from {ot} to {nt})",
                k8ssandra_api::policies::DC_NUM_TOKENS_MESSAGE
                    .trim_start_matches("spec.config.cassandra-yaml.num_tokens ")
            ),
        ));
    }
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    if nonempty(&n.datacenter_name) != nonempty(&o.datacenter_name) {
        out.push(violation("spec.datacenterName", "is immutable"));
    }
    if nonempty(&n.superuser_secret_name) != nonempty(&o.superuser_secret_name) {
        out.push(violation("spec.superuserSecretName", "is immutable"));
    }
    if nonempty(&n.service_account) != nonempty(&o.service_account) {
        out.push(violation("spec.serviceAccount", "is immutable"));
    }
    if n.allow_multiple_nodes_per_worker.unwrap_or(false)
        != o.allow_multiple_nodes_per_worker.unwrap_or(false)
    {
        out.push(violation(
            "spec.allowMultipleNodesPerWorker",
            "is immutable",
        ));
    }
    let (nr, or) = (new.racks(), old.racks());
    for (i, o_rack) in or.iter().enumerate() {
        match nr.get(i) {
            Some(n_rack) if n_rack.name == o_rack.name => {
                let nz = n_rack.deprecated_zone.clone().filter(|z| !z.is_empty());
                let oz = o_rack.deprecated_zone.clone().filter(|z| !z.is_empty());
                if nz != oz {
                    out.push(violation(
                        &format!("spec.racks[{i}].zone"),
                        "a rack cannot move to another zone",
                    ));
                }
                let zone_of = |r: &k8ssandra_api::cassandra::Rack| {
                    r.node_affinity_labels
                        .as_ref()
                        .and_then(|l| l.get("topology.kubernetes.io/zone").cloned())
                };
                if zone_of(n_rack) != zone_of(o_rack) {
                    out.push(violation(
                        &format!("spec.racks[{i}].nodeAffinityLabels"),
                        "a rack cannot move to another zone (topology.kubernetes.io/zone)",
                    ));
                }
            }
            _ => out.push(violation(
                &format!("spec.racks[{i}]"),
                format!(
                    "rack {:?} cannot be removed, renamed or reordered; new racks go at the end",
                    o_rack.name
                ),
            )),
        }
    }
    if nr.len() > or.len() {
        // Existing racks must keep their node counts when racks are added, or nodes would
        // have to move between racks.
        let per_old = (o.size.max(0) as usize) / or.len().max(1);
        let needed = per_old * (nr.len() - or.len());
        if n.size < o.size || ((n.size - o.size) as usize) < needed {
            out.push(violation(
                "spec.size",
                format!(
                    "adding {} rack(s) requires increasing size by at least {needed} so existing racks keep their nodes",
                    nr.len() - or.len()
                ),
            ));
        }
    }
    let old_size = o
        .storage_config
        .data_volume_size()
        .and_then(crate::util::quantity_bytes);
    let new_size = n
        .storage_config
        .data_volume_size()
        .and_then(crate::util::quantity_bytes);
    let scaling = old.status.as_ref().is_some_and(|s| {
        s.is_true(DatacenterConditionType::ScalingUp)
            || s.is_true(DatacenterConditionType::ScalingDown)
    });
    const STORAGE: &str =
        "spec.storageConfig.cassandraDataVolumeClaimSpec.resources.requests.storage";
    if let (Some(a), Some(b)) = (old_size, new_size) {
        if b < a {
            out.push(violation(STORAGE, "cannot shrink"));
        } else if b > a {
            if !new.annotation_is_true(ALLOW_STORAGE_CHANGES_ANNOTATION) {
                out.push(violation(
                    STORAGE,
                    format!(
                        "can only grow with the annotation {ALLOW_STORAGE_CHANGES_ANNOTATION}: \"true\""
                    ),
                ));
            }
            if scaling {
                out.push(violation(
                    STORAGE,
                    "cannot change while the datacenter is still scaling up or down",
                ));
            }
        }
    }
    out.extend(claim_changes(
        n.storage_config.cassandra_data_volume_claim_spec.as_ref(),
        o.storage_config.cassandra_data_volume_claim_spec.as_ref(),
    ));
    if scaling && n.size != o.size {
        out.push(violation(
            "spec.size",
            "cannot change while the datacenter is still scaling up or down",
        ));
    }
    out
}

/// Changes of the data volume claim other than its storage request: claims exist already
/// and Kubernetes lets only their size change.
fn claim_changes<T: serde::Serialize>(new: Option<&T>, old: Option<&T>) -> Vec<Violation> {
    let (Some(new), Some(old)) = (new, old) else {
        return Vec::new();
    };
    let as_map = |c: &T| match serde_json::to_value(c) {
        Ok(Value::Object(mut m)) => {
            if let Some(Value::Object(r)) = m.get_mut("resources") {
                if let Some(Value::Object(req)) = r.get_mut("requests") {
                    req.remove("storage");
                    if req.is_empty() {
                        r.remove("requests");
                    }
                }
                if r.is_empty() {
                    m.remove("resources");
                }
            }
            m.retain(|_, v| !v.is_null());
            m
        }
        _ => Default::default(),
    };
    let (n, o) = (as_map(new), as_map(old));
    let keys: BTreeSet<&String> = n.keys().chain(o.keys()).collect();
    keys.into_iter()
        .filter(|k| n.get(*k) != o.get(*k))
        .map(|k| {
            violation(
                &format!("spec.storageConfig.cassandraDataVolumeClaimSpec.{k}"),
                "is immutable: only resources.requests.storage may grow",
            )
        })
        .collect()
}
