//! Policy runtime: the echo policy's reconcile in wasm (`PolicyRuntime::reconcile`, the
//! call production makes: slot, fresh store, instance, call) against the same reconcile
//! compiled natively.
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

/// The echo component, built for wasm32-wasip2 when missing. `POLICY_BENCH_WASM` names
/// another build of it (e.g. with a different optimisation level) to compare.
fn echo_wasm() -> PathBuf {
    if let Some(file) = std::env::var_os("POLICY_BENCH_WASM") {
        return PathBuf::from(file);
    }
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
    let wasm_plan = tokio
        .block_on(runtime.reconcile(&policy, host_snapshot.clone()))
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

/// One timed operation of the benchmark.
type Variant<'a> = Box<dyn Fn() + 'a>;

/// Median and p99 of a sorted sample.
fn stats(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times `SAMPLES` iterations of every variant, one of each in turn, so a burst of load
/// from elsewhere on the machine hits all variants alike, and prints median and p99.
fn custom_measurement(fx: &Fixture) {
    const BATCH: usize = 100;
    let variants: Vec<(&str, Variant<'_>)> = vec![
        (
            "native reconcile",
            Box::new(|| {
                black_box(
                    echo_policy::EchoPolicy::reconcile(black_box(fx.guest_snapshot.clone())).ok(),
                );
            }),
        ),
        (
            "wasm reconcile (the production call)",
            Box::new(|| {
                black_box(
                    fx.tokio
                        .block_on(fx.runtime.reconcile(&fx.policy, fx.host_snapshot.clone()))
                        .ok(),
                );
            }),
        ),
        (
            "  breakdown: instantiate+drop only",
            Box::new(|| {
                black_box(
                    fx.tokio
                        .block_on(fx.runtime.instantiate_only(&fx.policy))
                        .ok(),
                );
            }),
        ),
        (
            "  reference: spawn_blocking hand-off only",
            Box::new(|| {
                black_box(
                    fx.tokio
                        .block_on(async { tokio::task::spawn_blocking(|| 1).await.ok() }),
                );
            }),
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(SAMPLES); variants.len()];
    for round in 0..SAMPLES + SAMPLES / 10 {
        for (i, (_, f)) in variants.iter().enumerate() {
            let start = Instant::now();
            f();
            // The first tenth warms caches and the pool up.
            if round >= SAMPLES / 10 {
                samples[i].push(start.elapsed());
            }
        }
    }
    // The call alone: one instance, BATCH calls; per-call time is the batch's divided.
    let mut batched: Vec<Duration> = (0..SAMPLES / BATCH)
        .map(|_| {
            let start = Instant::now();
            black_box(
                fx.tokio
                    .block_on(fx.runtime.reconcile_reusing_instance(
                        &fx.policy,
                        &fx.host_snapshot,
                        BATCH,
                    ))
                    .ok(),
            );
            start.elapsed() / BATCH as u32
        })
        .collect();

    println!("\npolicy runtime: echo reconcile, {SAMPLES} timed iterations each (round-robin)");
    let mut medians = Vec::new();
    for ((label, _), samples) in variants.iter().zip(samples.iter_mut()) {
        let (median, p99) = stats(samples);
        medians.push((median, p99));
        println!(
            "{label:<46} median {:>9.2} µs   p99 {:>9.2} µs",
            micros(median),
            micros(p99)
        );
    }
    let (call_median, call_p99) = stats(&mut batched);
    println!(
        "{:<46} median {:>9.2} µs   p99 {:>9.2} µs",
        "  breakdown: call alone in a reused instance",
        micros(call_median),
        micros(call_p99)
    );
    let (median, p99) = (
        micros(medians[1].0) / micros(medians[0].0),
        micros(medians[1].1) / micros(medians[0].1),
    );
    println!("ratio wasm/native: median {median:.2}x, p99 {p99:.2}x\n");
}

fn criterion_benches(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("echo_reconcile");
    group.bench_function("native", |b| {
        b.iter(|| echo_policy::EchoPolicy::reconcile(black_box(fx.guest_snapshot.clone())))
    });
    group.bench_function("wasm", |b| {
        b.iter(|| {
            fx.tokio
                .block_on(fx.runtime.reconcile(&fx.policy, fx.host_snapshot.clone()))
        })
    });
    group.bench_function("wasm_instantiate_only", |b| {
        b.iter(|| fx.tokio.block_on(fx.runtime.instantiate_only(&fx.policy)))
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
