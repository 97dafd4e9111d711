//! Policy runtime: the echo policy's reconcile in wasm (fresh store per call, as in
//! production) against the same reconcile compiled natively.
//!
//! `cargo bench -p k8ssandra-host --bench policy`. Besides criterion's estimates it prints
//! its own median and p99 over 10,000 timed iterations of each variant, and a breakdown of
//! the wasm call (instantiation alone, the call alone in a reused instance). Results are in
//! docs/benchmarks.md, "Policy runtime".

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use k8ssandra_host::plugin::{
    LoadedPolicy, PolicyRuntime, RuntimeConfig, Snapshot, parse_snapshot,
};
use k8ssandra_policy_sdk::Policy;

const SAMPLES: usize = 10_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate sits in the workspace")
        .to_path_buf()
}

/// The echo component, built for wasm32-wasip2 when missing.
fn echo_wasm() -> PathBuf {
    let ws = workspace();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    let file = target.join("wasm32-wasip2/wasm/echo_policy.wasm");
    if !file.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&ws)
            .args([
                "build",
                "-p",
                "echo-policy",
                "--target",
                "wasm32-wasip2",
                "--profile",
                "wasm",
            ])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building echo-policy failed");
    }
    file
}

struct Fixture {
    runtime: PolicyRuntime,
    policy: std::sync::Arc<LoadedPolicy>,
    host_snapshot: Snapshot,
    guest_snapshot: k8ssandra_policy_sdk::Snapshot,
    tokio: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = PolicyRuntime::new(RuntimeConfig::default()).expect("runtime");
    let policy = tokio
        .block_on(runtime.load_file(&echo_wasm()))
        .expect("echo loads");
    let text = std::fs::read_to_string(workspace().join("plugins/examples/echo/snapshot.json"))
        .expect("snapshot.json");
    let host_snapshot = parse_snapshot(&text).expect("snapshot parses");
    // Host and guest bindings come from the same WIT and derive serde with the same field
    // and variant names, so JSON carries one into the other; check it is lossless.
    let wire = serde_json::to_value(&host_snapshot).expect("serialise host snapshot");
    let guest_snapshot: k8ssandra_policy_sdk::Snapshot =
        serde_json::from_value(wire.clone()).expect("guest snapshot from host JSON");
    assert_eq!(
        serde_json::to_value(&guest_snapshot).expect("serialise guest snapshot"),
        wire,
        "host and guest snapshots differ in serde shape"
    );
    // Both sides must compute the same plan, or the comparison is meaningless.
    let wasm_plan = runtime
        .reconcile_blocking(&policy, &host_snapshot)
        .expect("wasm call")
        .expect("wasm plan");
    let native_plan = echo_policy::EchoPolicy::reconcile(guest_snapshot.clone()).expect("native");
    assert_eq!(
        serde_json::to_value(&wasm_plan).expect("plan"),
        serde_json::to_value(&native_plan).expect("plan"),
        "wasm and native plans differ"
    );
    Fixture {
        runtime,
        policy,
        host_snapshot,
        guest_snapshot,
        tokio,
    }
}

/// Times `SAMPLES` iterations one by one and prints median and p99.
fn percentiles(label: &str, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..SAMPLES / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let median = samples[SAMPLES / 2];
    let p99 = samples[SAMPLES * 99 / 100];
    println!(
        "{label:<44} median {:>9.2} µs   p99 {:>9.2} µs",
        micros(median),
        micros(p99)
    );
    (median, p99)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn custom_measurement(fx: &Fixture) {
    println!("\npolicy runtime: echo reconcile, {SAMPLES} timed iterations each");
    let (native, native_p99) = percentiles("native reconcile", || {
        black_box(echo_policy::EchoPolicy::reconcile(black_box(fx.guest_snapshot.clone())).ok());
    });
    let (wasm, wasm_p99) = percentiles("wasm instantiate+reconcile (blocking)", || {
        black_box(
            fx.runtime
                .reconcile_blocking(&fx.policy, black_box(&fx.host_snapshot))
                .ok(),
        );
    });
    let (full, full_p99) = percentiles("wasm reconcile via async API (spawn_blocking)", || {
        black_box(
            fx.tokio
                .block_on(fx.runtime.reconcile(&fx.policy, fx.host_snapshot.clone()))
                .ok(),
        );
    });
    percentiles("  of which: instantiate only", || {
        black_box(fx.runtime.instantiate_blocking(&fx.policy).ok());
    });
    // The call alone: one instance, many calls; per-call time is the total divided.
    let batch = 100;
    let (batched, _) = percentiles("  of which: 100 calls in one instance", || {
        black_box(
            fx.runtime
                .reconcile_reusing_instance_blocking(&fx.policy, &fx.host_snapshot, batch)
                .ok(),
        );
    });
    println!(
        "{:<44} {:>16.2} µs",
        "  => one call without instantiation",
        micros(batched) / batch as f64
    );
    println!(
        "ratio wasm/native: median {:.2}x, p99 {:.2}x (blocking); median {:.2}x, p99 {:.2}x (async API)\n",
        micros(wasm) / micros(native),
        micros(wasm_p99) / micros(native_p99),
        micros(full) / micros(native),
        micros(full_p99) / micros(native_p99),
    );
}

fn criterion_benches(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("echo_reconcile");
    group.bench_function("native", |b| {
        b.iter(|| echo_policy::EchoPolicy::reconcile(black_box(fx.guest_snapshot.clone())))
    });
    group.bench_function("wasm_fresh_store", |b| {
        b.iter(|| {
            fx.runtime
                .reconcile_blocking(&fx.policy, black_box(&fx.host_snapshot))
        })
    });
    group.bench_function("wasm_async_api", |b| {
        b.iter(|| {
            fx.tokio
                .block_on(fx.runtime.reconcile(&fx.policy, fx.host_snapshot.clone()))
        })
    });
    group.bench_function("wasm_instantiate_only", |b| {
        b.iter(|| fx.runtime.instantiate_blocking(&fx.policy))
    });
    group.finish();
}

fn main() {
    let fx = fixture();
    // `cargo test --benches` runs this binary with `--bench` absent: keep it quick there.
    let benching = std::env::args().any(|a| a == "--bench");
    if benching {
        custom_measurement(&fx);
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &fx);
    c.final_summary();
}
