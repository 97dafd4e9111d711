//! Checks a compiled component's type against the `k8ssandra:policy` world before anything
//! is instantiated, so a wrong file is refused with a reason instead of a link error.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginError;
use super::bindings::{Contract, WIT_PACKAGE};

/// Functions every policy exports.
const EXPORTS: [&str; 3] = ["describe", "reconcile", "validate"];

/// The first bytes of a file tell a component from a core module from anything else; this
/// gives a better message than the parser's.
pub(crate) fn check_header(file: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    // Version/layer field: core modules are version 1 layer 0, components layer 1.
    const CORE: [u8; 4] = [1, 0, 0, 0];
    let not = |reason: &str| PluginError::NotComponent {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        // Text format is accepted by the parser in tests, but never in a policy directory.
        return Err(not("not a WebAssembly binary"));
    }
    if bytes[4..8] == CORE {
        return Err(not(
            "a core WebAssembly module, not a component (build with --target wasm32-wasip2)",
        ));
    }
    Ok(())
}

/// Refuses components of another world or of a `k8ssandra:policy` version this host does
/// not serve; answers the served version the component is built against.
pub(crate) fn check_world(
    file: &Path,
    engine: &Engine,
    component: &Component,
) -> Result<Contract, PluginError> {
    let ty = component.component_type();
    let wrong = |reason: String| PluginError::WrongWorld {
        file: file.to_path_buf(),
        reason,
    };

    // The version is read from the imported `types` interface: every policy world imports
    // it (the exported functions use its types), and its name carries the package version.
    let prefix = format!("{WIT_PACKAGE}/");
    let mut versions = Vec::new();
    let mut foreign = Vec::new();
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix(&prefix) {
            let version = rest.split_once('@').map_or("", |(_, v)| v);
            versions.push(version.to_string());
        } else if !(name.starts_with("wasi:") || name == "log") {
            foreign.push(name.to_string());
        }
    }
    let mut contract = None;
    for version in &versions {
        let served = Contract::SUPPORTED
            .into_iter()
            .find(|c| compatible(version, c.version()));
        match (served, contract) {
            (None, _) => {
                let ranges: Vec<String> = Contract::SUPPORTED
                    .iter()
                    .map(|c| compatible_range(c.version()))
                    .collect();
                return Err(PluginError::Incompatible {
                    file: file.to_path_buf(),
                    reason: format!(
                        "built for {WIT_PACKAGE}@{version}, this host speaks {WIT_PACKAGE}@{}",
                        ranges.join(", @")
                    ),
                });
            }
            (Some(c), Some(seen)) if c != seen => {
                return Err(wrong(format!(
                    "imports {WIT_PACKAGE} in two versions ({} and {})",
                    seen.version(),
                    c.version()
                )));
            }
            (Some(c), _) => contract = Some(c),
        }
    }
    let Some(contract) = contract else {
        let exports: Vec<&str> = ty.exports(engine).map(|(n, _)| n).collect();
        return Err(wrong(format!(
            "does not import {WIT_PACKAGE}/types (exports: {})",
            list(&exports)
        )));
    };
    if !foreign.is_empty() {
        return Err(wrong(format!(
            "imports {} which this host does not provide",
            list(&foreign)
        )));
    }
    for export in EXPORTS {
        match ty.get_export(engine, export).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(_) => return Err(wrong(format!("export `{export}` is not a function"))),
            None => return Err(wrong(format!("does not export `{export}`"))),
        }
    }
    Ok(contract)
}

/// Semver compatibility as the component model's linker sees it: same major version, and
/// for 0.x the same minor version.
pub(crate) fn compatible(theirs: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    };
    match (parse(theirs), parse(ours)) {
        (Some((0, a)), Some((0, b))) => a == b,
        (Some((a, _)), Some((b, _))) => a == b,
        _ => false,
    }
}

/// "0.1.x" for 0.1.0, "1.x" for 1.2.0: what a component may be built against.
fn compatible_range(ours: &str) -> String {
    let mut parts = ours.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}.x"),
        (Some(major), _) => format!("{major}.x"),
        _ => ours.to_string(),
    }
}

fn list(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        return "nothing".to_string();
    }
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_rules_of_the_component_model() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("2.0.0", "1.0.0"));
        assert!(!compatible("", "0.1.0"));
        assert_eq!(compatible_range("0.1.0"), "0.1.x");
        assert_eq!(compatible_range("2.3.1"), "2.x");
    }

    #[test]
    fn headers_tell_modules_from_components() {
        let f = Path::new("x.wasm");
        assert!(matches!(
            check_header(f, b"hello world"),
            Err(PluginError::NotComponent { .. })
        ));
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let err = check_header(f, &core).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_header(f, &component).is_ok());
    }
}
