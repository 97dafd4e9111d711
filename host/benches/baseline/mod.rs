//! A second build of a policy timed in the same rounds as the one under test (the
//! `snapshot` and `kc_snapshot` benches): old and new compared under the same load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8ssandra_host::plugin::bindings::Snapshot;
use k8ssandra_host::plugin::{LoadedPolicy, PolicyRuntime, RuntimeConfig};

/// Loads the component named by the environment variable `var`, if set, and checks that it
/// plans exactly what the native build planned.
pub fn load(
    var: &str,
    tokio: &tokio::runtime::Runtime,
    host: &Snapshot,
    native_plan: &impl serde::Serialize,
) -> Option<(PolicyRuntime, Arc<LoadedPolicy>)> {
    let path = PathBuf::from(std::env::var_os(var)?);
    // A runtime of its own: one runtime refuses two policies of the same name.
    let runtime = PolicyRuntime::new(RuntimeConfig::default()).expect("runtime");
    let loaded = tokio
        .block_on(runtime.load_file(&path))
        .expect("the baseline policy loads");
    let plan = tokio
        .block_on(runtime.reconcile(&loaded, host.clone()))
        .expect("baseline wasm call")
        .expect("baseline wasm plan");
    assert_eq!(
        serde_json::to_value(&plan).expect("plan"),
        serde_json::to_value(native_plan).expect("plan"),
        "baseline wasm and native plans differ"
    );
    println!("baseline: {}", path.display());
    Some((runtime, loaded))
}

/// Median and p99 of the samples, in milliseconds.
pub fn stats(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 99 / 100]),
    )
}

/// Prints wasm against native, and the baseline against both when one was timed.
pub fn ratios(native: (f64, f64), wasm: (f64, f64), base: &mut [Duration]) {
    let ((nm, np), (wm, wp)) = (native, wasm);
    println!(
        "ratio wasm/native: median {:.2}x, p99 {:.2}x",
        wm / nm,
        wp / np
    );
    if !base.is_empty() {
        let (bm, bp) = stats(base);
        println!("baseline wasm median {bm:>8.2} ms   p99 {bp:>8.2} ms");
        println!(
            "ratio baseline/wasm: median {:.2}x, p99 {:.2}x; baseline/native: median {:.2}x, p99 {:.2}x",
            bm / wm,
            bp / wp,
            bm / nm,
            bp / np
        );
    }
}
