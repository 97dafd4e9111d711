//! `spec.reaper`: Secrets, the role in the datacenters, the keyspace, Reaper objects.

use super::*;

fn reapers_in(plan: &Plan) -> Vec<(String, Value)> {
    plan.apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("Reaper"))
        .map(|o| (o.cluster.clone(), o.value().unwrap()))
        .collect()
}

/// Runs plans, answering every operation with `replication`, and returns every operation
/// kind seen.
fn drain(w: &mut World, replication: &str) -> Vec<OperationKind> {
    let mut kinds = Vec::new();
    for _ in 0..10 {
        let plan = w.plan();
        if plan.operations.is_empty() {
            return kinds;
        }
        kinds.extend(plan.operations.iter().map(|o| o.kind.clone()));
        w.answer(&plan, |_| Outcome::Succeeded(replication.to_string()));
    }
    panic!("operations never settle: {:?}", w.plan().operations);
}

#[test]
fn reaper_secrets_role_keyspace_then_one_reaper_per_datacenter() {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    settle_with(&mut w, &want);

    w.kc["spec"]["reaper"] = json!({});
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    // Both Secrets, labelled so the cluster's ReplicatedSecret copies them.
    let reaper_secrets: Vec<_> = plan
        .secrets
        .iter()
        .filter(|s| s.name.contains("reaper"))
        .collect();
    let mut names: Vec<_> = reaper_secrets.iter().map(|s| s.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["demo-reaper", "demo-reaper-ui"]);
    for s in reaper_secrets {
        assert!(s.random_keys.contains(&"password".to_string()));
        assert!(s.labels.contains(&(
            "k8ssandra.io/replicated-by".into(),
            "k8ssandracluster-controller".into()
        )));
    }
    // The role, a superuser, in every datacenter.
    for d in ["dc1", "dc2"] {
        assert_eq!(
            dc_obj(&plan, d)["spec"]["users"],
            json!([{"secretName": "demo-reaper", "superuser": true}]),
            "{d}"
        );
    }
    assert!(
        reapers_in(&plan).is_empty(),
        "no Reaper before its keyspace"
    );
    w.sync(&plan);

    let kinds = drain(&mut w, &want);
    assert!(kinds.iter().any(|k| matches!(k, OperationKind::CreateKeyspace(r)
        if r.keyspace == "reaper_db" && r.replicas == [("dc1".to_string(), 3), ("dc2".to_string(), 2)])));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, OperationKind::GetReplication(ks) if ks == "reaper_db"))
    );

    let plan = w.plan();
    let reapers = reapers_in(&plan);
    assert_eq!(reapers.len(), 2);
    let (ctx, r2) = reapers
        .iter()
        .find(|(_, v)| v["spec"]["datacenterRef"]["name"] == "dc2")
        .unwrap();
    assert_eq!(ctx, "B", "in the datacenter's cluster");
    assert_eq!(r2["metadata"]["name"], "demo-dc2-reaper");
    assert_eq!(r2["metadata"]["namespace"], NS);
    assert_eq!(
        r2["metadata"]["labels"]["app.kubernetes.io/component"],
        "reaper"
    );
    assert_eq!(
        r2["metadata"]["labels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
    assert_eq!(r2["spec"]["datacenterAvailability"], "EACH");
    assert_eq!(
        r2["spec"]["cassandraUserSecretRef"],
        json!({"name": "demo-reaper"})
    );
    assert_eq!(
        r2["spec"]["uiUserSecretRef"],
        json!({"name": "demo-reaper-ui"})
    );

    // Its status is mirrored into status.datacenters.
    let mut live = r2.clone();
    live["status"] = json!({"progress": "Configuring",
        "conditions": [{"type": "Ready", "status": "False", "reason": "RegistrationNotImplemented"}]});
    w.children.push(Object {
        cluster: "B".into(),
        json: live.to_string(),
    });
    let plan = w.plan();
    assert_eq!(
        status(&plan)["datacenters"]["dc2"]["reaper"]["progress"],
        "Configuring"
    );

    // SINGLE: only the first datacenter, reaching every datacenter.
    w.kc["spec"]["reaper"] = json!({"deploymentMode": "SINGLE"});
    w.kc["metadata"]["generation"] = json!(3);
    drain(&mut w, &want);
    let reapers = reapers_in(&w.plan());
    assert_eq!(reapers.len(), 1);
    assert_eq!(reapers[0].1["spec"]["datacenterRef"]["name"], "dc1");
    assert_eq!(reapers[0].1["spec"]["datacenterAvailability"], "ALL");

    // Removing spec.reaper: no Reaper left in the plan, the role stays.
    w.kc["spec"]["reaper"] = Value::Null;
    w.kc["metadata"]["generation"] = json!(4);
    let plan = w.plan();
    assert!(reapers_in(&plan).is_empty());
    assert!(plan.operations.iter().all(|o| !matches!(&o.kind,
        OperationKind::CreateKeyspace(r) if r.keyspace == "reaper_db")));
}

#[test]
fn no_reaper_while_a_datacenter_is_not_ready() {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    settle_with(&mut w, &want);
    w.kc["spec"]["reaper"] = json!({"keyspace": "repairs"});
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    w.sync(&plan);
    w.set_ready("dc2", false);
    let kinds = drain(&mut w, &want);
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, OperationKind::CreateKeyspace(r) if r.keyspace == "repairs")),
        "the keyspace waits for every datacenter"
    );
    assert!(reapers_in(&w.plan()).is_empty());
    w.set_ready("dc2", true);
    let kinds = drain(&mut w, &want);
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, OperationKind::CreateKeyspace(r) if r.keyspace == "repairs"))
    );
    assert_eq!(reapers_in(&w.plan()).len(), 2);
}

#[test]
fn reaper_ref_and_auth_off() {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    settle_with(&mut w, &want);
    w.kc["spec"]["reaper"] = json!({"reaperRef": {"name": "shared", "namespace": "ops"}});
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    // The shared Reaper logs in with this cluster's role, whose Secret is generated (and
    // replicated) as without reaperRef: the datacenters would wait for it otherwise.
    let secret = plan.secrets.iter().find(|s| s.name == "demo-reaper");
    assert!(
        secret.is_some_and(|s| s
            .labels
            .iter()
            .any(|(k, _)| k == "k8ssandra.io/cluster-name")),
        "{:?}",
        plan.secrets
    );
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["users"],
        json!([{"secretName": "demo-reaper", "superuser": true}])
    );
    w.sync(&plan);
    let kinds = drain(&mut w, &want);
    assert!(
        !kinds
            .iter()
            .any(|k| matches!(k, OperationKind::CreateKeyspace(r) if r.keyspace == "reaper_db"))
    );
    assert!(reapers_in(&w.plan()).is_empty());

    w.kc["spec"]["reaper"] = json!({});
    w.kc["spec"]["auth"] = json!(false);
    w.kc["metadata"]["generation"] = json!(3);
    let plan = w.plan();
    assert!(plan.secrets.iter().all(|s| !s.name.contains("reaper")));
    assert_eq!(dc_obj(&plan, "dc1")["spec"]["users"], Value::Null);
}

#[test]
fn per_dc_with_local_storage_is_an_error_and_keeps_live_reapers() {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    settle_with(&mut w, &want);
    w.kc["spec"]["reaper"] = json!({});
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    w.sync(&plan);
    drain(&mut w, &want);
    for (c, v) in reapers_in(&w.plan()) {
        w.children.push(Object {
            cluster: c,
            json: v.to_string(),
        });
    }
    w.kc["spec"]["reaper"] = json!({"storageType": "local", "storageConfig": {}});
    w.kc["metadata"]["generation"] = json!(3);
    let plan = w.plan();
    let kept = reapers_in(&plan);
    assert_eq!(kept.len(), 2, "nothing deleted");
    assert!(
        kept.iter()
            .all(|(_, v)| v["spec"].get("storageType").is_none())
    );
    let st = status(&plan);
    assert!(
        st["error"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.reaper.deploymentMode")
            || st.to_string().contains("spec.reaper.deploymentMode"),
        "{st}"
    );
}
