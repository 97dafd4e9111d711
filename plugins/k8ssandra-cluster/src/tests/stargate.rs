//! Removing `spec.stargate`: the auth keyspace kept by default, dropped when the
//! K8ssandraCluster's annotation asks, once no Stargate is left.

use super::*;
use crate::stargate::{
    AUTH_KEYSPACE_CONDITION, AUTH_KEYSPACE_ON_REMOVAL, REASON_DROP_PENDING, REASON_DROPPED,
    REASON_KEPT,
};

const AUTH_KS: &str = "data_endpoint_auth";

fn drops(plan: &Plan) -> Vec<(String, String, String)> {
    plan.operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::DropKeyspace(d) => Some((
                o.id.clone(),
                d.keyspace.clone(),
                d.credentials_secret.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn events(plan: &Plan, reason: &str) -> usize {
    plan.events.iter().filter(|e| e.reason == reason).count()
}

/// What the host does with a plan's status: the next snapshot's parent carries it.
fn keep_status(w: &mut World, plan: &Plan) {
    w.kc["status"] = status(plan);
}

/// Both datacenters with a running Stargate each (objects live, status mirrored), then
/// `spec.stargate` removed: the first plan after the removal, with the Stargates still
/// there.
fn stargate_removed(annotation: Option<&str>) -> World {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    settle_with(&mut w, &want);
    w.kc["spec"]["stargate"] = json!({"size": 1});
    w.kc["metadata"]["generation"] = json!(2);
    settle_with(&mut w, &want);
    let plan = w.plan();
    let sgs = stargates_in(&plan);
    assert_eq!(sgs.len(), 2);
    for (ctx, sg) in sgs {
        let mut live = sg.clone();
        live["status"] = json!({"progress": "Running", "readyReplicasRatio": "1/1"});
        w.children.push(Object {
            cluster: ctx,
            json: live.to_string(),
        });
    }
    let plan = w.plan();
    assert!(
        condition(&plan, AUTH_KEYSPACE_CONDITION).is_none(),
        "in use"
    );
    keep_status(&mut w, &plan);
    if let Some(a) = annotation {
        w.kc["metadata"]["annotations"] = json!({AUTH_KEYSPACE_ON_REMOVAL: a});
    }
    w.kc["spec"]["stargate"] = Value::Null;
    w.kc["metadata"]["generation"] = json!(3);
    // The host forgets outcomes when the generation changes.
    w.results.clear();
    w
}

fn set_reachable(w: &mut World, cluster: &str, reachable: bool) {
    for (name, r) in &mut w.clusters {
        if name == cluster {
            *r = reachable;
        }
    }
}

fn prune_stargates(w: &mut World) {
    w.children
        .retain(|c| c.kind().as_deref() != Some("Stargate"));
}

#[test]
fn removing_stargate_keeps_its_auth_keyspace_by_default_and_says_how_to_drop_it() {
    let mut w = stargate_removed(None);
    let plan = w.plan();
    assert!(stargates_in(&plan).is_empty());
    assert!(drops(&plan).is_empty());
    let (reason, message) = condition_detail(&plan, AUTH_KEYSPACE_CONDITION).expect("condition");
    assert_eq!(reason, REASON_KEPT);
    assert!(message.contains(AUTH_KS), "{message}");
    assert!(
        message.contains(&format!("{AUTH_KEYSPACE_ON_REMOVAL}=drop")),
        "{message}"
    );
    assert_eq!(
        condition(&plan, AUTH_KEYSPACE_CONDITION).as_deref(),
        Some("True")
    );
    assert_eq!(events(&plan, "StargateAuthKeyspaceKept"), 1);
    keep_status(&mut w, &plan);

    // Settled: the condition stays, the event is not repeated, nothing is dropped.
    prune_stargates(&mut w);
    for _ in 0..3 {
        let plan = w.plan();
        assert!(drops(&plan).is_empty());
        assert_eq!(events(&plan, "StargateAuthKeyspaceKept"), 0);
        assert_eq!(
            condition_detail(&plan, AUTH_KEYSPACE_CONDITION).map(|(r, _)| r),
            Some(REASON_KEPT.to_string())
        );
        keep_status(&mut w, &plan);
    }

    // Kept, the keyspace is the user's: it holds a datacenter removal back like any other.
    // Asked to drop later (an annotation: no generation change), it is dropped.
    w.kc["metadata"]["annotations"] = json!({AUTH_KEYSPACE_ON_REMOVAL: "drop"});
    let plan = w.plan();
    assert_eq!(drops(&plan).len(), 1);
}

#[test]
fn removing_stargate_with_drop_drops_the_auth_keyspace_once_no_stargate_is_left() {
    let mut w = stargate_removed(Some("drop"));
    // The Stargates still exist (their pods use the keyspace): wait.
    let plan = w.plan();
    assert!(drops(&plan).is_empty(), "{:?}", plan.operations);
    assert_eq!(
        condition_detail(&plan, AUTH_KEYSPACE_CONDITION).map(|(r, _)| r),
        Some(REASON_DROP_PENDING.to_string())
    );
    assert!(plan.requeue_after_ms.is_some());
    keep_status(&mut w, &plan);

    // An unreachable cluster may hide a Stargate: still no drop.
    prune_stargates(&mut w);
    set_reachable(&mut w, "B", false);
    let plan = w.plan();
    assert!(drops(&plan).is_empty());
    set_reachable(&mut w, "B", true);

    let plan = w.plan();
    let d = drops(&plan);
    assert_eq!(d.len(), 1, "{:?}", plan.operations);
    let (id, ks, secret) = &d[0];
    assert_eq!(ks, AUTH_KS);
    assert_eq!(secret, "demo-superuser");
    let target = &plan.operations.iter().find(|o| &o.id == id).unwrap().target;
    assert!(
        target.pod.starts_with("demo-dc"),
        "a ready Cassandra node: {target:?}"
    );
    assert_eq!(d, drops(&w.plan()), "the same id until it has an outcome");

    // A failure is told, and retried under a new id after the backoff.
    w.result(
        id,
        Outcome::Failed("CQL 10.1.0.1:9042: connection refused".into()),
    );
    let plan = w.plan();
    assert!(drops(&plan).is_empty());
    assert_eq!(events(&plan, "StargateAuthKeyspaceDropFailed"), 1);
    w.now += 600_000;
    let plan = w.plan();
    let retry = drops(&plan);
    assert_eq!(retry.len(), 1);
    assert_ne!(&retry[0].0, id);

    w.result(&retry[0].0.clone(), Outcome::Succeeded(String::new()));
    let plan = w.plan();
    assert!(drops(&plan).is_empty());
    assert_eq!(events(&plan, "StargateAuthKeyspaceDropped"), 1);
    assert_eq!(
        condition(&plan, AUTH_KEYSPACE_CONDITION).as_deref(),
        Some("False")
    );
    assert_eq!(
        condition_detail(&plan, AUTH_KEYSPACE_CONDITION).map(|(r, _)| r),
        Some(REASON_DROPPED.to_string())
    );
    keep_status(&mut w, &plan);

    // Done for good: after a restart of the host (no results) or a spec change, nothing runs
    // again, and the keyspace is not recreated.
    w.results.clear();
    w.kc["metadata"]["generation"] = json!(4);
    for _ in 0..2 {
        let plan = w.plan();
        assert!(drops(&plan).is_empty());
        assert!(plan.operations.iter().all(|o| !matches!(&o.kind,
            OperationKind::CreateKeyspace(r) if r.keyspace == AUTH_KS)));
        assert_eq!(events(&plan, "StargateAuthKeyspaceDropped"), 0);
        assert_eq!(
            condition_detail(&plan, AUTH_KEYSPACE_CONDITION).map(|(r, _)| r),
            Some(REASON_DROPPED.to_string())
        );
        keep_status(&mut w, &plan);
    }

    // Stargate back: the keyspace is created again and the condition goes.
    w.kc["spec"]["stargate"] = json!({"size": 1});
    w.kc["metadata"]["generation"] = json!(5);
    let plan = w.plan();
    assert!(condition(&plan, AUTH_KEYSPACE_CONDITION).is_none());
}

#[test]
fn a_cluster_that_never_had_stargate_gets_no_condition() {
    let mut w = both_ready();
    w.kc["metadata"]["annotations"] = json!({AUTH_KEYSPACE_ON_REMOVAL: "drop"});
    let plan = settle_with(&mut w, &nts(&[("dc1", 3), ("dc2", 2)]));
    assert!(condition(&plan, AUTH_KEYSPACE_CONDITION).is_none());
    assert!(drops(&plan).is_empty());
}

#[test]
fn the_removal_annotation_is_checked_at_admission() {
    let mut k = two_dcs();
    k["metadata"]["annotations"] = json!({AUTH_KEYSPACE_ON_REMOVAL: "delete"});
    let v = violations(&k, None);
    assert!(
        v.iter().any(
            |(f, m)| f == &format!("metadata.annotations[{AUTH_KEYSPACE_ON_REMOVAL}]")
                && m.contains("\"keep\" or \"drop\"")
        ),
        "{v:?}"
    );
    for ok in ["keep", "drop"] {
        k["metadata"]["annotations"] = json!({AUTH_KEYSPACE_ON_REMOVAL: ok});
        assert!(violations(&k, None).is_empty(), "{ok}");
    }
}
