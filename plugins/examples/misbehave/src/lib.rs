//! A policy that misbehaves on request, so the host's sandbox can be tested with one
//! component: the parent's `spec.behaviour` says what `reconcile` does.
//!
//! - `ok`: returns a plan with one event (and logs a line through the host).
//! - `loop`: never returns; the host's epoch deadline must stop it.
//! - `alloc`: allocates until the allocator fails; the host's memory cap must stop it.
//! - `trap`: panics, which aborts the instance.
//! - `error`: returns a `PolicyError` (a clean refusal, not a crash).
//!
//! `validate` refuses objects whose `spec.behaviour` is missing.

use k8ssandra_policy_sdk::{
    EventType, KindRef, Level, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, error,
    export_policy, log, violation,
};

pub struct Misbehave;

fn behaviour(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value["spec"]["behaviour"].as_str().map(str::to_string)
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
            Some(other) => Err(error(format!("unknown behaviour {other:?}"))),
            None => Err(error("spec.behaviour is missing")),
        }
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match behaviour(&object) {
            Some(_) => vec![],
            None => vec![violation("spec.behaviour", "is required")],
        }
    }
}

export_policy!(Misbehave);
