//! The policy runtime against real components: the echo example and the fixtures under
//! plugins/examples/{misbehave,wrong-world,next-major,contract-0-1}, built for wasm32-wasip2 on demand.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use k8ssandra_host::plugin::{
    CallError, LoadedPolicy, PluginError, PolicyRuntime, RuntimeConfig, Snapshot, inspect,
    parse_snapshot, plan_to_json, test_file,
};

// ---------------------------------------------------------------------------------------
// Fixtures

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate sits in the workspace")
        .to_path_buf()
}

fn newest_mtime(path: &Path) -> SystemTime {
    let Ok(meta) = std::fs::metadata(path) else {
        return SystemTime::UNIX_EPOCH;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| newest_mtime(&e.path()))
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Path of a fixture component, built with `cargo build --target wasm32-wasip2 --profile
/// wasm` when missing or older than its sources (the CI script builds them beforehand).
fn fixture(dir_name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let ws = workspace();
    let krate = format!("{dir_name}-policy");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    let file = target
        .join("wasm32-wasip2/wasm")
        .join(format!("{}.wasm", krate.replace('-', "_")));
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let krate_dir = ws.join("plugins/examples").join(dir_name);
    let sources = [
        krate_dir.join("src"),
        krate_dir.join("Cargo.toml"),
        krate_dir.join("wit"),
        ws.join("plugins/sdk/src"),
        ws.join("wit"),
    ];
    let newest = sources.iter().map(|s| newest_mtime(s)).max().unwrap();
    let built = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
    if built.is_none_or(|b| b < newest) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&ws)
            .args([
                "build",
                "-p",
                &krate,
                "--target",
                "wasm32-wasip2",
                "--profile",
                "wasm",
            ])
            .status()
            .expect("run cargo");
        assert!(status.success(), "building {krate} failed");
    }
    assert!(file.is_file(), "{} missing after build", file.display());
    file
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        deadline: Duration::from_millis(200),
        epoch_tick: Duration::from_millis(5),
        memory_limit: 32 << 20,
        max_instances: 4,
        cache_dir: None,
        reload_debounce: Duration::from_millis(100),
        compile_command: None,
    }
}

fn runtime() -> PolicyRuntime {
    PolicyRuntime::new(config()).expect("runtime")
}

fn misbehave_snapshot(behaviour: &str) -> Snapshot {
    parse_snapshot(
        &serde_json::json!({
            "parent": {
                "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Misbehave",
                "metadata": {"name": "m", "namespace": "ns"},
                "spec": {"behaviour": behaviour},
            }
        })
        .to_string(),
    )
    .expect("snapshot")
}

fn echo_snapshot() -> Snapshot {
    let text = std::fs::read_to_string(workspace().join("plugins/examples/echo/snapshot.json"))
        .expect("echo snapshot.json");
    parse_snapshot(&text).expect("echo snapshot.json parses")
}

async fn misbehave(rt: &PolicyRuntime) -> Arc<LoadedPolicy> {
    rt.load_file(&fixture("misbehave"))
        .await
        .expect("misbehave loads")
}

/// The call that must still work after a failed one.
async fn assert_ok_call(rt: &PolicyRuntime, policy: &LoadedPolicy) {
    let plan = rt
        .reconcile(policy, misbehave_snapshot("ok"))
        .await
        .expect("sandbox ok")
        .expect("policy ok");
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].reason, "Behaved");
}

fn names(rt: &PolicyRuntime) -> Vec<String> {
    rt.policies().iter().map(|p| p.info.name.clone()).collect()
}

// ---------------------------------------------------------------------------------------
// Loading and calling

#[tokio::test]
async fn echo_loads_describes_and_reconciles() {
    let rt = runtime();
    let echo = rt.load_file(&fixture("echo")).await.expect("echo loads");
    assert_eq!(echo.info.name, "echo");
    assert_eq!(echo.info.parent.kind, "Echo");
    assert_eq!(echo.info.owns[0].kind, "ConfigMap");
    assert_eq!(echo.hash.len(), 64);
    assert_eq!(names(&rt), ["echo"]);

    let plan = rt
        .reconcile(&echo, echo_snapshot())
        .await
        .expect("no sandbox error")
        .expect("echo answers a plan");
    let plan = plan_to_json(&plan);
    assert_eq!(plan["apply"][0]["json"]["metadata"]["name"], "hello-echo-0");
    assert_eq!(plan["apply"][1]["json"]["data"]["message"], "hi there");
    assert_eq!(plan["status"]["configMaps"], 1);
    assert_eq!(plan["status"]["observedGeneration"], 2);

    let violations = rt
        .validate(
            &echo,
            r#"{"metadata":{"name":"x"},"spec":{"message":""}}"#.into(),
            None,
        )
        .await
        .expect("validate runs");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "spec.message");
}

#[tokio::test]
async fn policy_error_is_the_policys_answer_not_a_sandbox_failure() {
    let rt = runtime();
    let policy = misbehave(&rt).await;
    let answer = rt
        .reconcile(&policy, misbehave_snapshot("nonsense"))
        .await
        .expect("the sandbox is fine");
    let error = answer.expect_err("the policy refuses");
    assert!(error.message.contains("nonsense"), "{}", error.message);
}

// A current-thread runtime: if a call blocked the (only) async worker, the ticker task
// could not run while the policy loops.
#[tokio::test(flavor = "current_thread")]
async fn looping_policy_is_stopped_by_the_deadline_without_blocking_tokio() {
    let rt = runtime();
    let policy = misbehave(&rt).await;
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let err = rt
        .reconcile(&policy, misbehave_snapshot("loop"))
        .await
        .expect_err("the loop must be stopped");
    let ticked = ticks.load(Ordering::SeqCst);
    ticker.abort();
    match &err {
        CallError::Timeout { policy, deadline } => {
            assert_eq!(policy, "misbehave");
            assert_eq!(*deadline, Duration::from_millis(200));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(err.to_string().contains("misbehave"), "{err}");
    assert!(ticked > 0, "tokio worker was blocked during the call");
    assert_ok_call(&rt, &policy).await;
}

#[tokio::test]
async fn over_allocation_fails_cleanly_with_memory_exceeded() {
    let rt = runtime();
    let policy = misbehave(&rt).await;
    let err = rt
        .reconcile(&policy, misbehave_snapshot("alloc"))
        .await
        .expect_err("allocation beyond the cap must fail");
    assert_eq!(
        err,
        CallError::MemoryExceeded {
            policy: "misbehave".into(),
            limit: 32 << 20
        }
    );
    assert!(err.to_string().contains("misbehave"), "{err}");
    assert_ok_call(&rt, &policy).await;
}

#[tokio::test]
async fn trapping_policy_fails_that_call_only() {
    let rt = runtime();
    let policy = misbehave(&rt).await;
    for _ in 0..3 {
        let err = rt
            .reconcile(&policy, misbehave_snapshot("trap"))
            .await
            .expect_err("a panic is a trap");
        let CallError::Trap {
            policy: name,
            message,
        } = &err
        else {
            panic!("expected Trap, got {err:?}");
        };
        assert_eq!(name, "misbehave");
        // The guest's panic message (from its stderr) says why.
        assert!(message.contains("misbehave was asked to trap"), "{message}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        assert_ok_call(&rt, &policy).await;
    }
}

#[tokio::test]
async fn sleeping_policy_does_not_hold_its_slot_and_sees_frozen_time() {
    let rt = runtime();
    let policy = misbehave(&rt).await;
    // The guest asks for an hour; the bound only turns a regression into a failure
    // instead of a hung test.
    let plan = tokio::time::timeout(
        Duration::from_secs(60),
        rt.reconcile(&policy, misbehave_snapshot("sleep")),
    )
    .await
    .expect("a sleeping policy must not block for the time it asks")
    .expect("sandbox ok")
    .expect("policy ok");
    assert_eq!(plan.events[0].message, "slept 0ns, wall clock 0");
}

#[tokio::test]
async fn policies_cannot_reach_files_environment_or_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let rt = runtime();
    let policy = misbehave(&rt).await;
    let snapshot = parse_snapshot(
        &serde_json::json!({
            "parent": {"kind": "Misbehave", "metadata": {"name": "m"},
                       "spec": {"behaviour": "escape", "address": address}}
        })
        .to_string(),
    )
    .unwrap();
    let plan = rt
        .reconcile(&policy, snapshot)
        .await
        .expect("sandbox ok")
        .expect("policy ok");
    let outcomes: Vec<&str> = plan.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    for outcome in &outcomes {
        assert!(outcome.contains("denied"), "{outcomes:?}");
    }
    assert!(
        listener.accept().is_err(),
        "the policy's connection reached the listener"
    );
}

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    // One slot, so every call reuses the same (reset) memory.
    let rt = PolicyRuntime::new(RuntimeConfig {
        max_instances: 1,
        ..config()
    })
    .unwrap();
    let policy = misbehave(&rt).await;
    for _ in 0..5 {
        let plan = rt
            .reconcile(&policy, misbehave_snapshot("count"))
            .await
            .expect("sandbox ok")
            .expect("policy ok");
        assert_eq!(plan.events[0].message, "call 1");
    }
}

#[tokio::test]
async fn concurrent_calls_beyond_the_pool_wait_for_a_slot() {
    let rt = PolicyRuntime::new(RuntimeConfig {
        max_instances: 2,
        deadline: Duration::from_secs(30),
        ..config()
    })
    .unwrap();
    let policy = misbehave(&rt).await;
    let calls = (0..12).map(|_| {
        let (rt, policy) = (rt.clone(), policy.clone());
        async move { rt.reconcile(&policy, misbehave_snapshot("ok")).await }
    });
    for result in futures::future::join_all(calls).await {
        assert!(result.expect("sandbox ok").is_ok());
    }
}

// ---------------------------------------------------------------------------------------
// Refusals

#[tokio::test]
async fn component_of_another_world_is_refused() {
    let rt = runtime();
    let file = fixture("wrong-world");
    let err = rt.load_file(&file).await.expect_err("wrong world");
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("wrong_world_policy.wasm"), "{msg}");
    assert!(msg.contains("k8ssandra:policy/types"), "{msg}");
    assert!(rt.policies().is_empty());
}

#[tokio::test]
async fn component_of_another_major_version_is_refused() {
    let rt = runtime();
    let err = rt
        .load_file(&fixture("next-major"))
        .await
        .expect_err("incompatible version");
    assert!(matches!(err, PluginError::Incompatible { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("next_major_policy.wasm"), "{msg}");
    assert!(msg.contains("built for k8ssandra:policy@1.0.0"), "{msg}");
    assert!(msg.contains("k8ssandra:policy@0.4.x"), "{msg}");
    assert!(msg.contains("@0.3.x"), "{msg}");
    assert!(msg.contains("@0.2.x"), "{msg}");
    assert!(msg.contains("@0.1.x"), "{msg}");
}

/// A component built against the released 0.1.0 contract loads in this host and behaves
/// as it did: the snapshot reaches it whole, and its plan, errors and violations come back
/// unchanged.
#[tokio::test]
async fn a_component_built_against_0_1_0_keeps_working() {
    let plan = an_earlier_component_keeps_working("contract-0-1").await;
    assert!(
        plan["operations"][0]["kind"]["CreateKeyspace"].is_object(),
        "{plan}"
    );
}

/// The same for 0.2.0, whose fixture plans an operation 0.2.0 added.
#[tokio::test]
async fn a_component_built_against_0_2_0_keeps_working() {
    let plan = an_earlier_component_keeps_working("contract-0-2").await;
    assert_eq!(
        plan["operations"][0]["kind"]["CreateTable"]["name"], "messages",
        "{plan}"
    );
}

/// The same for 0.3.0, whose fixture plans an operation 0.3.0 added.
#[tokio::test]
async fn a_component_built_against_0_3_0_keeps_working() {
    let plan = an_earlier_component_keeps_working("contract-0-3").await;
    assert_eq!(
        plan["operations"][0]["kind"]["MedusaBackup"]["name"], "e-nightly",
        "{plan}"
    );
}

/// Loads an earlier version's fixture and checks describe, reconcile (twice), the error
/// answer and validate; returns the first plan.
async fn an_earlier_component_keeps_working(fixture_name: &str) -> serde_json::Value {
    let rt = runtime();
    let policy = rt
        .load_file(&fixture(fixture_name))
        .await
        .expect("an earlier version's component loads");
    assert_eq!(policy.info.name, fixture_name);
    assert_eq!(policy.info.owns.len(), 1);
    assert_eq!(policy.info.owns[0].kind, "ConfigMap");

    let parent = serde_json::json!({
        "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Echo",
        "metadata": {"name": "e", "namespace": "ns"},
        "spec": {"message": "hi"},
    });
    let node = |pod: &str, ready: bool| {
        serde_json::json!({
            "node": {"cluster": "", "namespace": "ns", "pod": pod},
            "address": "127.0.0.9", "reachable": true, "error": null,
            "alive": true, "ready": ready, "endpoints": null,
        })
    };
    let snapshot = parse_snapshot(
        &serde_json::json!({
            "parent": parent,
            "nodes": [node("e-0", false), node("e-1", true)],
            "now_ms": 1234,
        })
        .to_string(),
    )
    .unwrap();
    let plan = rt.reconcile(&policy, snapshot).await.unwrap().unwrap();
    let first = plan_to_json(&plan);
    let plan = first.clone();
    assert_eq!(plan["apply"][0]["json"]["data"]["message"], "hi", "{plan}");
    let op = &plan["operations"][0];
    assert_eq!(op["id"], "keyspace/e", "{plan}");
    assert_eq!(op["target"]["pod"], "e-1", "{plan}");
    assert_eq!(plan["status"]["readyNodes"], 1, "{plan}");
    assert_eq!(plan["status"]["seenAt"], 1234, "{plan}");
    assert_eq!(plan["events"][0]["reason"], "Echoed", "{plan}");

    // The outcome of its operation reaches it in the next snapshot.
    let snapshot = parse_snapshot(
        &serde_json::json!({
            "parent": parent,
            "nodes": [node("e-1", true)],
            "results": [{"id": "keyspace/e", "outcome": {"Succeeded": ""}, "at_ms": 5}],
        })
        .to_string(),
    )
    .unwrap();
    let plan = rt.reconcile(&policy, snapshot).await.unwrap().unwrap();
    assert!(plan.operations.is_empty());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(plan.status.as_deref().unwrap()).unwrap()["keyspace"],
        "succeeded"
    );

    // Its own error answer and its violations.
    let nameless = parse_snapshot(r#"{"parent": {"kind": "Echo"}}"#).unwrap();
    let err = rt.reconcile(&policy, nameless).await.unwrap().unwrap_err();
    assert_eq!(err.message, "parent has no name");
    assert_eq!(err.retry_after_ms, Some(1000));
    let violations = rt
        .validate(&policy, r#"{"spec":{"message":""}}"#.into(), None)
        .await
        .unwrap();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "spec.message");
    assert!(
        rt.validate(&policy, r#"{"spec":{"message":"x"}}"#.into(), None)
            .await
            .unwrap()
            .is_empty()
    );
    first
}

#[tokio::test]
async fn garbage_and_core_modules_are_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm at all").unwrap();
    let core = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let rt = runtime();
    let err = rt.load_file(&garbage).await.expect_err("garbage");
    assert!(matches!(err, PluginError::NotComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.wasm"), "{err}");
    let err = rt.load_file(&core).await.expect_err("core module");
    assert!(err.to_string().contains("core.wasm"), "{err}");
    assert!(err.to_string().contains("not a component"), "{err}");
    let missing = rt
        .load_file(&dir.path().join("missing.wasm"))
        .await
        .expect_err("missing");
    assert!(matches!(missing, PluginError::Io { .. }), "{missing:?}");
}

#[tokio::test]
async fn a_bad_file_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("echo"), dir.path().join("a-echo.wasm")).unwrap();
    std::fs::write(dir.path().join("b-bad.wasm"), b"nope").unwrap();
    std::fs::copy(fixture("misbehave"), dir.path().join("c-misbehave.wasm")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let rt = runtime();
    let reports = rt.load_dir(dir.path()).await;
    let outcome: Vec<(String, bool)> = reports
        .iter()
        .map(|r| {
            (
                r.path.file_name().unwrap().to_string_lossy().into_owned(),
                r.result.is_ok(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [
            ("a-echo.wasm".to_string(), true),
            ("b-bad.wasm".to_string(), false),
            ("c-misbehave.wasm".to_string(), true)
        ]
    );
    assert_eq!(names(&rt), ["echo", "misbehave"]);
}

#[tokio::test]
async fn two_files_with_the_same_policy_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("echo"), dir.path().join("one.wasm")).unwrap();
    std::fs::copy(fixture("echo"), dir.path().join("two.wasm")).unwrap();
    let rt = runtime();
    rt.load_file(&dir.path().join("one.wasm")).await.unwrap();
    let err = rt
        .load_file(&dir.path().join("two.wasm"))
        .await
        .expect_err("duplicate");
    assert!(matches!(err, PluginError::DuplicateName { .. }), "{err:?}");
    assert!(err.to_string().contains("two.wasm") && err.to_string().contains("one.wasm"));
}

// ---------------------------------------------------------------------------------------
// Hot reload and cache

/// Waits (bounded, to fail rather than hang) until the loaded names equal `expected`.
async fn wait_for_names(rt: &PolicyRuntime, expected: &[&str]) {
    let mut changes = rt.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while names(rt) != expected {
            changes.changed().await.expect("runtime alive");
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "policies are {:?}, expected {expected:?}",
        names(rt)
    );
}

#[tokio::test]
async fn changed_added_and_removed_files_are_reloaded_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("policy.wasm");
    std::fs::copy(fixture("echo"), &main).unwrap();
    let rt = runtime();
    let reports = rt.load_dir(dir.path()).await;
    assert!(reports.iter().all(|r| r.result.is_ok()));
    assert_eq!(names(&rt), ["echo"]);
    let echo = rt.policy("echo").unwrap();
    let before = *rt.subscribe().borrow();
    let watcher = rt.spawn_watcher(dir.path().to_path_buf());

    // Overwrite in place: the watcher reloads it, the name follows the new component.
    std::fs::copy(fixture("misbehave"), &main).unwrap();
    wait_for_names(&rt, &["misbehave"]).await;
    assert!(*rt.subscribe().borrow() > before);
    // A policy handle taken before the swap keeps working: in-flight work is unaffected.
    let old_plan = rt.reconcile(&echo, echo_snapshot()).await.unwrap();
    assert!(old_plan.is_ok());

    // Added.
    std::fs::copy(fixture("echo"), dir.path().join("second.wasm")).unwrap();
    wait_for_names(&rt, &["echo", "misbehave"]).await;

    // A broken replacement keeps the previous version serving.
    std::fs::write(dir.path().join("second.wasm"), b"broken").unwrap();
    std::fs::remove_file(&main).unwrap();
    wait_for_names(&rt, &["echo"]).await;
    assert_eq!(
        rt.policy("echo").unwrap().path.file_name().unwrap(),
        "second.wasm"
    );

    // Removed.
    std::fs::remove_file(dir.path().join("second.wasm")).unwrap();
    wait_for_names(&rt, &[]).await;
    watcher.abort();
}

/// The watcher's own reads of the directory are not changes: an unchanged directory is
/// read once by the watcher's catch-up sync and then left alone (it used to be re-read and
/// re-hashed every debounce period, forever: the operator's idle CPU).
#[tokio::test]
async fn an_unchanged_directory_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("echo"), dir.path().join("echo.wasm")).unwrap();
    std::fs::copy(fixture("misbehave"), dir.path().join("misbehave.wasm")).unwrap();
    let rt = runtime();
    assert!(
        rt.load_dir(dir.path())
            .await
            .iter()
            .all(|r| r.result.is_ok())
    );
    let watcher = rt.spawn_watcher(dir.path().to_path_buf());
    // The catch-up sync reads both files once; give a loop of syncs time to show itself
    // (the debounce is 100 ms here).
    let settled = tokio::time::timeout(Duration::from_secs(20), async {
        while rt.files_read() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "the watcher never synced");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rt.files_read(), 4, "an unchanged directory was read again");
    // A real change is still seen.
    std::fs::copy(fixture("echo"), dir.path().join("misbehave.wasm")).unwrap();
    let reread = tokio::time::timeout(Duration::from_secs(20), async {
        while rt.files_read() < 6 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reread.is_ok(), "a changed file was not read");
    watcher.abort();
}

#[tokio::test]
async fn precompiled_artifacts_are_reused_by_the_next_runtime() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..config()
    };
    let first = PolicyRuntime::new(cfg.clone()).unwrap();
    let echo = first.load_file(&fixture("echo")).await.unwrap();
    assert!(!echo.from_cache);
    assert_eq!(first.compilations(), 1);
    let artifact = first.artifact_path(&echo).expect("cache on");
    assert!(artifact.is_file(), "{} not written", artifact.display());
    assert!(
        artifact
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&echo.hash)
    );

    let second = PolicyRuntime::new(cfg).unwrap();
    let again = second.load_file(&fixture("echo")).await.unwrap();
    assert!(again.from_cache);
    assert_eq!(second.compilations(), 0);
    assert_eq!(second.cache_hits(), 1);
    let plan = second.reconcile(&again, echo_snapshot()).await.unwrap();
    assert_eq!(plan.unwrap().apply.len(), 2);

    // A corrupt artifact is discarded and recompiled, not trusted. It is replaced through a
    // rename, as the runtime itself does: `second` still has the old file mapped, and
    // truncating a mapped file in place would fault its code pages.
    let corrupt = cache.path().join("corrupt.tmp");
    std::fs::write(&corrupt, b"corrupt").unwrap();
    std::fs::rename(&corrupt, &artifact).unwrap();
    let third = PolicyRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..config()
    })
    .unwrap();
    let recompiled = third.load_file(&fixture("echo")).await.unwrap();
    assert!(!recompiled.from_cache);
    assert_eq!(third.compilations(), 1);
}

// ---------------------------------------------------------------------------------------
// CLI helpers

#[tokio::test]
async fn inspect_and_test_file_serve_the_cli() {
    let info = inspect(&fixture("echo")).await.expect("inspect");
    assert_eq!(info.name, "echo");
    let snapshot =
        std::fs::read_to_string(workspace().join("plugins/examples/echo/snapshot.json")).unwrap();
    let plan = test_file(&fixture("echo"), &snapshot)
        .await
        .expect("test runs")
        .expect("echo answers a plan");
    assert_eq!(plan.apply.len(), 2);
    let err = test_file(&fixture("echo"), "{\"parent\": 3}")
        .await
        .expect_err("bad snapshot");
    assert!(err.to_string().contains("snapshot"), "{err}");
    let err = inspect(&workspace().join("Cargo.toml"))
        .await
        .expect_err("not wasm");
    assert!(err.to_string().contains("Cargo.toml"), "{err}");
}

/// Compiling in a child process (what the operator does, so Cranelift's memory never stays
/// in its heap) gives a component that works like one compiled in process, and caches it;
/// a child that cannot run leaves compiling to the process itself.
#[tokio::test]
async fn components_compile_in_a_child_process_and_fall_back_in_process() {
    let cache = tempfile::tempdir().unwrap();
    let child = |program: &str| {
        Some(
            [
                program,
                "plugin",
                "compile",
                "--policy-memory-mib=32",
                "--max-instances=4",
            ]
            .map(std::ffi::OsString::from)
            .to_vec(),
        )
    };
    let rt = PolicyRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        compile_command: child(env!("CARGO_BIN_EXE_k8ssandra-operator")),
        ..config()
    })
    .unwrap();
    let echo = rt.load_file(&fixture("echo")).await.expect("echo loads");
    assert_eq!(rt.compilations(), 1);
    assert!(rt.artifact_path(&echo).unwrap().is_file());
    let plan = rt.reconcile(&echo, echo_snapshot()).await.unwrap().unwrap();
    assert!(!plan.apply.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let rt = PolicyRuntime::new(RuntimeConfig {
        compile_command: child("/nonexistent/k8ssandra-operator"),
        ..config()
    })
    .unwrap();
    let echo = rt
        .load_file(&fixture("echo"))
        .await
        .expect("echo loads in process");
    assert_eq!(rt.compilations(), 1);
    assert!(rt.reconcile(&echo, echo_snapshot()).await.unwrap().is_ok());
}

/// Two runtimes sharing a cache that load the same component at once compile it once: the
/// second waits for the first's artifact instead of compiling it again.
#[tokio::test]
async fn runtimes_sharing_a_cache_compile_a_component_once() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..config()
    };
    let (a, b) = (
        PolicyRuntime::new(cfg.clone()).unwrap(),
        PolicyRuntime::new(cfg).unwrap(),
    );
    let file = fixture("echo");
    let (pa, pb) = tokio::join!(a.load_file(&file), b.load_file(&file));
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    assert_eq!(a.compilations() + b.compilations(), 1);
    assert_eq!(a.cache_hits() + b.cache_hits(), 1);
    assert!(pa.from_cache != pb.from_cache);
}

/// The admission webhook asks the decorators of the kind's policy too: the org-labels
/// decorator refuses an override that is no label value, which cassandra-datacenter alone
/// would admit (and every apply would then fail).
#[tokio::test]
async fn admission_asks_the_decorators_of_the_owning_policy() {
    use k8ssandra_host::admission::{AdmissionConfig, review};
    use kube::core::DynamicObject;
    use kube::core::admission::AdmissionReview;

    let rt = runtime();
    rt.load_file(&crate::support::policy_wasm("cassandra-datacenter"))
        .await
        .expect("cassandra-datacenter loads");
    rt.load_file(&fixture("org-labels"))
        .await
        .expect("org-labels loads");
    let ask = |team: &str| {
        let dc = serde_json::json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns", "annotations": {"example.com/team": team}},
            "spec": {"clusterName": "c", "serverType": "cassandra", "serverVersion": "4.1.5",
                "size": 3, "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}},
        });
        let text = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "cassandra.datastax.com", "version": "v1beta1", "kind": "CassandraDatacenter"},
                "resource": {"group": "cassandra.datastax.com", "version": "v1beta1", "resource": "cassandradatacenters"},
                "name": "dc1", "namespace": "ns", "operation": "CREATE",
                "userInfo": {"username": "u"}, "object": dc, "dryRun": false,
            },
        });
        serde_json::from_value::<AdmissionReview<DynamicObject>>(text).expect("review")
    };
    let config = AdmissionConfig::default();
    let denied = review(&rt, &config, ask("data platform!")).await;
    let response = denied.response.expect("a response");
    assert!(!response.allowed, "{response:?}");
    assert!(
        response
            .result
            .message
            .contains("metadata.annotations[example.com/team]"),
        "{:?}",
        response.result
    );
    let admitted = review(&rt, &config, ask("payments")).await;
    let response = admitted.response.expect("a response");
    assert!(response.allowed, "{:?}", response.result);
}
