//! The WIT contract of every released `k8ssandra:policy` version is kept in
//! `wit/released/policy@<version>.wit`, and the host serves each of them. While `wit/policy.wit` carries a released
//! version, everything but its comments must stay as released: components built against
//! it were compiled for exactly those types, and they must keep loading and behaving the
//! same. A new operation or field goes into a new minor version (with its own fixture and a
//! host that still serves the older one), never into a released one.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The contract without comments and blank lines, each line trimmed: what a component's
/// types are made of.
fn contract(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn version(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("package k8ssandra:policy@"))
        .map(|v| v.trim_end_matches(';').trim().to_string())
        .unwrap_or_default()
}

#[test]
fn a_released_contract_changes_only_in_its_comments() {
    let current = std::fs::read_to_string(workspace().join("wit/policy.wit"))
        .unwrap_or_else(|e| panic!("wit/policy.wit: {e}"));
    let current_version = version(&current);
    assert!(
        !current_version.is_empty(),
        "wit/policy.wit names no package version"
    );
    let released_dir = workspace().join("wit/released");
    let released = released_dir.join(format!("policy@{current_version}.wit"));
    let text = std::fs::read_to_string(&released).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; every version wit/policy.wit carries is pinned there once released",
            released.display()
        )
    });
    assert_eq!(version(&text), current_version, "{}", released.display());
    let (now, then) = (contract(&current), contract(&text));
    let first = now
        .iter()
        .zip(&then)
        .position(|(a, b)| a != b)
        .unwrap_or(now.len().min(then.len()));
    assert!(
        now == then,
        "wit/policy.wit changed the released contract {current_version} (first difference at \
         contract line {first}: now {:?}, released {:?}); components built against it would \
         break: put new operations and fields into a new minor version instead",
        now.get(first),
        then.get(first)
    );
}

/// Every released version is served (the host binds it and accepts components built
/// against it), the newest served one is what `wit/policy.wit` carries, and a served
/// version has its released text.
#[test]
fn the_host_serves_every_released_version() {
    let mut released: Vec<String> = std::fs::read_dir(workspace().join("wit/released"))
        .expect("wit/released")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            Some(
                name.strip_prefix("policy@")?
                    .strip_suffix(".wit")?
                    .to_string(),
            )
        })
        .collect();
    released.sort();
    let mut served: Vec<String> = k8ssandra_host::plugin::bindings::Contract::SUPPORTED
        .iter()
        .map(|c| c.version().to_string())
        .collect();
    served.sort();
    assert_eq!(
        served, released,
        "every released contract must stay served, and every served one released"
    );
    let current = std::fs::read_to_string(workspace().join("wit/policy.wit")).unwrap();
    assert_eq!(
        version(&current),
        k8ssandra_host::plugin::bindings::WIT_VERSION
    );
}

/// Every earlier version the host serves has a fixture component built from its released
/// text (`plugins/examples/contract-<major>-<minor>`), which `host/tests/integration/runtime.rs` loads
/// and checks behaves as it did: a new minor version cannot be released without one for
/// the version before it.
#[test]
fn every_earlier_served_version_has_a_fixture_component() {
    for contract in k8ssandra_host::plugin::bindings::Contract::SUPPORTED {
        let version = contract.version();
        if version == k8ssandra_host::plugin::bindings::WIT_VERSION {
            continue;
        }
        let mut parts = version.split('.');
        let dir = format!(
            "plugins/examples/contract-{}-{}",
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        );
        let lib = workspace().join(&dir).join("src/lib.rs");
        let source = std::fs::read_to_string(&lib)
            .unwrap_or_else(|e| panic!("{}: {e}; version {version} has no fixture", lib.display()));
        assert!(
            source.contains(&format!("wit/released/policy@{version}.wit")),
            "{dir} is not built from the released {version} text"
        );
        let runtime =
            std::fs::read_to_string(workspace().join("host/tests/integration/runtime.rs")).unwrap();
        let name = dir.rsplit('/').next().unwrap_or_default();
        assert!(
            runtime.contains(&format!("keeps_working(\"{name}\")")),
            "host/tests/integration/runtime.rs does not load {name}"
        );
    }
}

#[test]
fn the_comparison_sees_type_changes_and_ignores_comments() {
    let base = "package k8ssandra:policy@0.1.0;\n/// doc\nrecord a {\n    x: u32, // why\n}\n";
    let recommented =
        "package k8ssandra:policy@0.1.0;\n\n/// other doc\nrecord a {\n    x: u32,\n}\n";
    let changed = "package k8ssandra:policy@0.1.0;\nrecord a {\n    x: u64,\n}\n";
    assert_eq!(contract(base), contract(recommented));
    assert_ne!(contract(base), contract(changed));
    assert_eq!(version(base), "0.1.0");
}
