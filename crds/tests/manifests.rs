//! Manifests users write must survive the Rust types unchanged: every document of
//! `tests/manifests/valid/*.yaml` is deserialised into its typed kind and serialised back, and
//! the JSON must be identical (a field the types do not know, or drop, or rewrite fails the
//! test with its path).
//!
//! `tests/manifests/invalid/*.yaml` are manifests the API server must reject; each names the
//! rule it breaks in a `# expect: <message fragment>` line. Files with two documents are an
//! update: the first is the object as created (valid), the second the change that must be
//! refused. Here we check they parse and that each expectation matches a rule of the CRD
//! (`tests/apiserver.rs` applies them to a real API server).

use std::path::{Path, PathBuf};

use k8ssandra_api::{cassandra, config, control, k8ssandra, medusa, reaper, replication, stargate};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn manifests(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every difference between `a` (the manifest) and `b` (after the round trip), with its path.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k}: lost")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                // The name of a LocalObjectReference defaults to "" (`+default=""` in
                // Kubernetes, `default: ""` in the schema): the API server stores it so too.
                if k == "name" && y[k] == "" {
                    continue;
                }
                out.push(format!("{path}.{k}: added"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a == b => {}
        // Quantities (int-or-string) are kept as strings: `cpu: 2` comes back as `cpu: "2"`,
        // the same quantity for Kubernetes.
        (Value::Number(n), Value::String(s)) if n.to_string() == *s => {}
        _ => out.push(format!("{path}: {a} became {b}")),
    }
}

fn round_trip_as<T: DeserializeOwned + serde::Serialize>(doc: &Value) -> Result<Value, String> {
    let typed: T =
        serde_json::from_value(doc.clone()).map_err(|e| format!("does not parse: {e}"))?;
    serde_json::to_value(&typed).map_err(|e| format!("does not serialise: {e}"))
}

/// The JSON of `doc` after a trip through its Rust type.
fn round_trip(doc: &Value) -> Result<Value, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("k8ssandra.io/v1alpha1", "K8ssandraCluster") => {
            round_trip_as::<k8ssandra::K8ssandraCluster>(doc)
        }
        ("cassandra.datastax.com/v1beta1", "CassandraDatacenter") => {
            round_trip_as::<cassandra::CassandraDatacenter>(doc)
        }
        ("config.k8ssandra.io/v1beta1", "ClientConfig") => {
            round_trip_as::<config::ClientConfig>(doc)
        }
        ("replication.k8ssandra.io/v1alpha1", "ReplicatedSecret") => {
            round_trip_as::<replication::ReplicatedSecret>(doc)
        }
        ("control.k8ssandra.io/v1alpha1", "CassandraTask") => {
            round_trip_as::<control::CassandraTask>(doc)
        }
        ("control.k8ssandra.io/v1alpha1", "ScheduledTask") => {
            round_trip_as::<control::ScheduledTask>(doc)
        }
        ("control.k8ssandra.io/v1alpha1", "K8ssandraTask") => {
            round_trip_as::<control::K8ssandraTask>(doc)
        }
        ("reaper.k8ssandra.io/v1alpha1", "Reaper") => round_trip_as::<reaper::Reaper>(doc),
        ("stargate.k8ssandra.io/v1alpha1", "Stargate") => round_trip_as::<stargate::Stargate>(doc),
        ("medusa.k8ssandra.io/v1alpha1", "MedusaBackupJob") => {
            round_trip_as::<medusa::MedusaBackupJob>(doc)
        }
        ("medusa.k8ssandra.io/v1alpha1", "MedusaBackup") => {
            round_trip_as::<medusa::MedusaBackup>(doc)
        }
        ("medusa.k8ssandra.io/v1alpha1", "MedusaBackupSchedule") => {
            round_trip_as::<medusa::MedusaBackupSchedule>(doc)
        }
        ("medusa.k8ssandra.io/v1alpha1", "MedusaRestoreJob") => {
            round_trip_as::<medusa::MedusaRestoreJob>(doc)
        }
        ("medusa.k8ssandra.io/v1alpha1", "MedusaTask") => round_trip_as::<medusa::MedusaTask>(doc),
        ("medusa.k8ssandra.io/v1alpha1", "MedusaConfiguration") => {
            round_trip_as::<medusa::MedusaConfiguration>(doc)
        }
        _ => Err(format!("no Rust type for {api_version} {kind}")),
    }
}

#[test]
fn valid_manifests_round_trip_without_losing_fields() {
    let mut files = manifests("valid");
    files.extend(manifests("valid-updates"));
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for (i, doc) in documents(file).iter().enumerate() {
            match round_trip(doc) {
                Ok(back) => {
                    let mut d = Vec::new();
                    diff("", doc, &back, &mut d);
                    failures.extend(d.into_iter().map(|d| format!("{name}[{i}] {d}")));
                }
                Err(e) => failures.push(format!("{name}[{i}]: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The expected message fragments of an invalid manifest: `# expect: <fragment>` lines, or
/// `expected message: <fragment>` at the end of a comment line.
pub fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            l.strip_prefix("# expect:")
                .or_else(|| l.split_once("expected message:").map(|(_, m)| m))
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn invalid_manifests_name_a_rule_the_crds_have() {
    let crds = k8ssandra_api::all_crds();
    let messages: Vec<String> = crds
        .iter()
        .flat_map(k8ssandra_api::schema::rules_of)
        .filter_map(|(_, r)| r.message)
        .chain(k8ssandra_api::policies::messages())
        .collect();
    let files = manifests("invalid");
    assert!(!files.is_empty());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expect = expectations(&file);
        let docs = documents(&file);
        assert!(
            (1..=2).contains(&docs.len()),
            "{name}: one document (create) or two (create, then update)"
        );
        for fragment in expect {
            // Rules enforced by the OpenAPI schema itself (patterns, enums, minimums) are
            // reported by the API server in its own words; CEL messages are ours.
            let schema_error = [
                "should match",
                "Unsupported value",
                "should be greater than or equal to",
                "Required value",
                "must be no more than",
                "should have at most",
            ]
            .iter()
            .any(|s| fragment.contains(s));
            assert!(
                schema_error || messages.iter().any(|m| m.contains(&fragment)),
                "{name}: no CEL rule or admission policy has a message containing {fragment:?}"
            );
        }
    }
}

#[test]
fn every_kind_with_a_manifest_has_a_crd() {
    let kinds: Vec<String> = k8ssandra_api::all_crds()
        .iter()
        .map(|c| c.spec.names.kind.clone())
        .collect();
    for kind in [
        "K8ssandraCluster",
        "CassandraDatacenter",
        "ClientConfig",
        "ReplicatedSecret",
        "CassandraTask",
        "ScheduledTask",
        "K8ssandraTask",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing");
    }
}
