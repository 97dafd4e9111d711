//! Golden pod templates: for each CassandraDatacenter in `tests/golden/pod/<case>.dc.json`,
//! the rendered StatefulSet's `minReadySeconds` and pod template must equal
//! `<case>.expected.json`, which was written from cass-operator's rendering of the same
//! datacenter (plus the differences docs/compatibility.md lists). The template hash of every
//! case is pinned in `template-hashes.txt`: a changed hash restarts every running datacenter
//! on an operator upgrade, so it must be acknowledged in docs/release-notes.md.
//!
//! `UPDATE_GOLDEN=1 cargo test -p cassandra-datacenter --test golden` rewrites the expected
//! files and the hash table from the current rendering, for a deliberate change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cassandra_datacenter::TEMPLATE_HASH_ANNOTATION;
use cassandra_datacenter::model::Dc;
use cassandra_datacenter::objects::statefulset;
use k8ssandra_policy_sdk::{Object, Snapshot};
use serde_json::{Map, Value, json};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pod")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Every case, by name, with its datacenter.
fn cases() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(case) = name.strip_suffix(".dc.json") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(case.to_string(), serde_json::from_str(&text).unwrap());
        }
    }
    assert!(!out.is_empty(), "no cases in {}", dir().display());
    out
}

/// `(minReadySeconds and the template without its hash, the hash)` of the first rack.
fn render(dc_json: &Value) -> (Value, String) {
    let snapshot = Snapshot::for_parent(Object {
        cluster: String::new(),
        json: dc_json.to_string(),
    });
    let dc = Dc::parse(&snapshot).unwrap();
    let sts = statefulset(&dc, &dc.racks[0], dc.racks[0].desired);
    let mut template = sts["spec"]["template"].clone();
    let annotations = template["metadata"]["annotations"].as_object_mut().unwrap();
    let hash = annotations
        .remove(TEMPLATE_HASH_ANNOTATION)
        .and_then(|h| h.as_str().map(str::to_string))
        .unwrap();
    if annotations.is_empty() {
        template["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    }
    (
        json!({"minReadySeconds": sts["spec"]["minReadySeconds"], "template": template}),
        hash,
    )
}

/// The same value with object keys in sorted order, so files read the same whatever
/// serde_json's map type.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// One line per differing leaf: `path: expected …, rendered …`.
fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}/{k}");
                match (e.get(k), a.get(k)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: expected {x}, rendered nothing")),
                    (None, Some(y)) => out.push(format!("{p}: not expected, rendered {y}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            for i in 0..e.len().max(a.len()) {
                let p = format!("{path}/{i}");
                match (e.get(i), a.get(i)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: expected {x}, rendered nothing")),
                    (None, Some(y)) => out.push(format!("{p}: not expected, rendered {y}")),
                    (None, None) => {}
                }
            }
        }
        (e, a) if e != a => out.push(format!("{path}: expected {e}, rendered {a}")),
        _ => {}
    }
}

#[test]
fn pod_templates_match_cass_operator() {
    let mut failures = String::new();
    for (case, dc) in cases() {
        let (actual, _) = render(&dc);
        let path = dir().join(format!("{case}.expected.json"));
        if updating() {
            let text = serde_json::to_string_pretty(&sorted(&actual)).unwrap();
            std::fs::write(&path, format!("{text}\n")).unwrap();
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => {
                let _ = writeln!(failures, "{case}: {} unreadable: {e}", path.display());
                continue;
            }
        };
        let mut lines = Vec::new();
        diff("", &expected, &actual, &mut lines);
        if !lines.is_empty() {
            let _ = writeln!(failures, "{case} ({}):", path.display());
            for l in lines.iter().take(40) {
                let _ = writeln!(failures, "    {l}");
            }
            if lines.len() > 40 {
                let _ = writeln!(failures, "    … {} more", lines.len() - 40);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "rendered pod templates differ from the golden files (a deliberate change: rerun \
         with UPDATE_GOLDEN=1 and list it in docs/compatibility.md):\n{failures}"
    );
}

#[test]
fn template_hashes_are_pinned() {
    let path = dir().join("template-hashes.txt");
    let rendered: BTreeMap<String, String> = cases()
        .into_iter()
        .map(|(case, dc)| (case, render(&dc).1))
        .collect();
    if updating() {
        let mut text = String::from(
            "# case  k8ssandra.io/pod-template-hash — a change restarts running datacenters on\n\
             # upgrade; acknowledge it in docs/release-notes.md before updating this file.\n",
        );
        for (case, hash) in &rendered {
            let _ = writeln!(text, "{case} {hash}");
        }
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let pinned: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect();
    let mut changed = Vec::new();
    for (case, hash) in &rendered {
        match pinned.get(case) {
            Some(p) if p == hash => {}
            Some(p) => changed.push(format!("{case}: pinned {p}, rendered {hash}")),
            None => changed.push(format!("{case}: not pinned, rendered {hash}")),
        }
    }
    assert!(
        changed.is_empty(),
        "the pod template hash changed: every running datacenter of these shapes would \
         restart when the operator is upgraded. If that is intended, say so (and why) in \
         docs/release-notes.md, then rerun with UPDATE_GOLDEN=1 to pin the new hashes:\n    {}",
        changed.join("\n    ")
    );
}
