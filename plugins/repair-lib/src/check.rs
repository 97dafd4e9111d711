//! The rules on the repair part of a spec (`k8ssandra_api::repair_schedule::RepairSpec`),
//! on its raw JSON: `(field, message)` each, phrased for the user.

use serde::de::DeserializeOwned;
use serde_json::Value;

const PARALLELISMS: [&str; 3] = ["SEQUENTIAL", "PARALLEL", "DATACENTER_AWARE"];

/// The intensity of a spec value: a number, or a string holding one.
pub fn intensity_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// `spec.<field>`, when given, is a whole number in `min..=max`.
pub fn uint(spec: &Value, field: &str, min: u64, max: u64, out: &mut Vec<(String, String)>) {
    let Some(v) = spec.get(field).filter(|v| !v.is_null()) else {
        return;
    };
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => {}
        _ if max == u64::MAX => out.push((
            format!("spec.{field}"),
            format!("{v} is not allowed: use a whole number of at least {min}"),
        )),
        _ => out.push((
            format!("spec.{field}"),
            format!("{v} is not allowed: use a whole number from {min} to {max}"),
        )),
    }
}

/// `spec.<field>`, when given, is true or false.
pub fn boolean(spec: &Value, field: &str, out: &mut Vec<(String, String)>) {
    if let Some(v) = spec.get(field).filter(|v| !v.is_null())
        && !v.is_boolean()
    {
        out.push((format!("spec.{field}"), format!("{v} is not true or false")));
    }
}

fn strings(spec: &Value, field: &str, out: &mut Vec<(String, String)>) {
    let Some(v) = spec.get(field).filter(|v| !v.is_null()) else {
        return;
    };
    let ok = v
        .as_array()
        .is_some_and(|a| a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())));
    if !ok {
        out.push((
            format!("spec.{field}"),
            "must be a list of non-empty names".to_string(),
        ));
    }
}

/// The spec of the object, or the broken rule saying it is missing.
pub fn spec_of(obj: &Value) -> Result<&Value, Vec<(String, String)>> {
    obj.get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| vec![("spec".to_string(), "is required".to_string())])
}

/// The object parsed when it breaks none of the rules `faults`; else the broken rules in one
/// message (`field: rule; ...`) for a condition.
pub fn parse_checked<T: DeserializeOwned>(
    raw: &Value,
    faults: &[(String, String)],
) -> Result<T, String> {
    if !faults.is_empty() {
        return Err(faults
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; "));
    }
    serde_json::from_value(raw.clone()).map_err(|e| format!("spec: does not parse: {e}"))
}

/// Every broken rule of the repair part of `spec`.
pub fn check_repair(spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for field in ["cluster", "keyspace"] {
        if spec
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            let what = if field == "cluster" {
                "the name of the K8ssandraCluster in this namespace"
            } else {
                "the keyspace to repair"
            };
            out.push((format!("spec.{field}"), format!("is required: {what}")));
        }
    }
    if let Some(v) = spec.get("intensity").filter(|v| !v.is_null()) {
        match intensity_of(v) {
            Some(x) if x > 0.0 && x <= 1.0 => {}
            _ => out.push((
                "spec.intensity".to_string(),
                format!(
                    "{v} is outside (0, 1]: the share of time spent repairing, greater than 0 and at most 1"
                ),
            )),
        }
    }
    let parallelism = spec.get("repairParallelism").filter(|v| !v.is_null());
    if let Some(p) = parallelism
        && !p.as_str().is_some_and(|s| PARALLELISMS.contains(&s))
    {
        out.push((
            "spec.repairParallelism".to_string(),
            format!(
                "{p} is not a repair parallelism: use SEQUENTIAL, PARALLEL or DATACENTER_AWARE"
            ),
        ));
    }
    if spec.get("incremental").and_then(Value::as_bool) == Some(true)
        && let Some(p) = parallelism.and_then(Value::as_str)
        && p != "PARALLEL"
    {
        out.push((
            "spec.repairParallelism".to_string(),
            format!("{p} is not allowed with incremental: true; incremental repairs run PARALLEL"),
        ));
    }
    uint(spec, "segmentCountPerNode", 1, u64::MAX, &mut out);
    uint(spec, "repairThreadCount", 1, 4, &mut out);
    for field in ["tables", "blacklistedTables", "datacenters", "nodes"] {
        strings(spec, field, &mut out);
    }
    boolean(spec, "incremental", &mut out);
    if let Some(r) = spec.get("reaperRef").filter(|v| !v.is_null())
        && r.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        out.push((
            "spec.reaperRef.name".to_string(),
            "is required when reaperRef is given: the name of a Reaper".to_string(),
        ));
    }
    out
}
