//! A policy that misbehaves on request, so the host's sandbox can be tested with one
//! component: the parent's `spec.behaviour` says what `reconcile` does.
//!
//! - `ok`: returns a plan with one event (and logs a line through the host).
//! - `loop`: never returns; the host's epoch deadline must stop it.
//! - `alloc`: allocates until the allocator fails; the host's memory cap must stop it.
//! - `trap`: panics, which aborts the instance.
//! - `sleep`: sleeps an hour, then reports what its clocks said (the host makes waits end
//!   at once and freezes time).
//! - `escape`: tries the file system, the environment and a TCP connection to
//!   `spec.address`, and reports each outcome as an event (the host must deny them all).
//! - `count`: bumps a global counter and reports it; every call must see a fresh instance.
//! - anything else: returns a `PolicyError` (a clean refusal, not a crash).
//!
//! `validate` refuses objects whose `spec.behaviour` is missing; it panics for
//! `trap-validate` and never returns for `loop-validate` (the admission webhook's failure
//! policy is tested with them).

use k8ssandra_policy_sdk::{
    EventType, KindRef, Level, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, error,
    export_policy, log, violation,
};

pub struct Misbehave;

fn spec_field(json: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["spec"][field].as_str().map(str::to_string)
}

fn behaviour(json: &str) -> Option<String> {
    spec_field(json, "behaviour")
}

/// Tries to reach outside the sandbox; one event per attempt, message `<what>: <outcome>`.
fn escape(address: &str) -> Plan {
    let mut plan = Plan::default();
    let fs = match std::fs::read_dir("/") {
        Ok(entries) => format!("fs: listed {} entries of /", entries.count()),
        Err(e) => format!("fs: denied ({e})"),
    };
    let env = match std::env::vars().count() {
        0 => "env: denied (no variables)".to_string(),
        n => format!("env: saw {n} variables"),
    };
    let net = match std::net::TcpStream::connect(address) {
        Ok(_) => format!("net: connected to {address}"),
        Err(e) => format!("net: denied ({e})"),
    };
    for message in [fs, env, net] {
        plan.event(EventType::Normal, "Escape", message);
    }
    plan
}

impl Policy for Misbehave {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new("examples.k8ssandra.io/v1alpha1", "Misbehave"),
            owns: vec![],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        match behaviour(&snapshot.parent.json).as_deref() {
            Some("ok") => {
                log(Level::Info, "behaving");
                let mut plan = Plan::default();
                plan.event(EventType::Normal, "Behaved", "all good");
                Ok(plan)
            }
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    // black_box keeps the loop from being proven side-effect free.
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("alloc") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 8 << 20];
                    // Touch every page so nothing can be elided or left lazily unmapped.
                    for i in (0..chunk.len()).step_by(4096) {
                        chunk[i] = 1;
                    }
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            Some("trap") => panic!("misbehave was asked to trap"),
            Some("count") => {
                static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                // A heap allocation too, so reused memory would show in the count's text.
                let seen = Box::new(format!("call {n}"));
                let mut plan = Plan::default();
                plan.event(EventType::Normal, "Counted", *seen);
                Ok(plan)
            }
            Some("sleep") => {
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(3600));
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default();
                let mut plan = Plan::default();
                let message = format!("slept {:?}, wall clock {wall}", started.elapsed());
                plan.event(EventType::Normal, "Slept", message);
                Ok(plan)
            }
            Some("escape") => Ok(escape(
                &spec_field(&snapshot.parent.json, "address").unwrap_or_default(),
            )),
            Some(other) => Err(error(format!("unknown behaviour {other:?}"))),
            None => Err(error("spec.behaviour is missing")),
        }
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match behaviour(&object).as_deref() {
            Some("trap-validate") => panic!("misbehave was asked to trap in validate"),
            Some("loop-validate") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some(_) => vec![],
            None => vec![violation("spec.behaviour", "is required")],
        }
    }
}

export_policy!(Misbehave);
