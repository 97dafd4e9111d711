//! `spec.medusa`: the purge MedusaBackupSchedule of each datacenter.

use super::*;

fn medusa() -> Value {
    json!({"storageProperties": {
        "storageProvider": "s3_compatible",
        "bucketName": "backups",
        "storageSecretRef": {"name": "medusa-bucket-key"},
        "host": "minio.storage.svc",
        "port": 9000,
    }})
}

fn schedules(plan: &Plan) -> Vec<(String, Value)> {
    plan.apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("MedusaBackupSchedule"))
        .map(|o| (o.cluster.clone(), o.value().unwrap()))
        .collect()
}

/// Both datacenters Ready, with `spec.medusa`.
fn ready_with(m: Value) -> World {
    let mut w = both_ready();
    w.kc["spec"]["medusa"] = m;
    w
}

/// What the host's apply leaves behind: the schedules of the plan exist.
fn keep_schedules(w: &mut World, plan: &Plan) {
    for o in plan
        .apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("MedusaBackupSchedule"))
    {
        let mut v = o.value().unwrap();
        v["status"] = json!({"lastExecution": "2023-11-14T00:00:00Z"});
        w.children
            .retain(|c| !(c.cluster == o.cluster && c.name() == o.name()));
        w.children.push(Object {
            cluster: o.cluster.clone(),
            json: v.to_string(),
        });
    }
}

#[test]
fn a_ready_datacenter_gets_a_daily_purge_schedule_beside_it() {
    let plan = ready_with(medusa()).plan();
    let got = schedules(&plan);
    assert_eq!(got.len(), 2, "one per datacenter: {got:?}");
    let (ctx, s) = got
        .iter()
        .find(|(_, s)| s["metadata"]["name"] == "demo-dc2-medusa-purge")
        .expect("dc2's schedule");
    assert_eq!(ctx, "B", "in the datacenter's cluster");
    assert_eq!(s["apiVersion"], "medusa.k8ssandra.io/v1alpha1");
    assert_eq!(s["metadata"]["namespace"], NS);
    assert_eq!(
        s["spec"],
        json!({"cronSchedule": "0 0 * * *", "operationType": "purge",
            "backupSpec": {"cassandraDatacenter": "dc2"}})
    );
    let labels = &s["metadata"]["labels"];
    assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
    assert_eq!(labels["k8ssandra.io/cluster-namespace"], NS);
    assert_eq!(labels["k8ssandra.io/datacenter"], "dc2");
    assert_eq!(
        labels["k8ssandra.io/cleaned-up-by"],
        "k8ssandracluster-controller"
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "CreatingMedusaPurgeSchedule"
                && e.message.contains("demo-dc1-medusa-purge")),
        "{:?}",
        plan.events
    );
}

#[test]
fn no_schedule_before_the_datacenter_is_ready_or_while_it_is_stopped() {
    let mut kc = two_dcs();
    kc["spec"]["medusa"] = medusa();
    let mut w = World::new(kc);
    w.secret("");
    w.secret("A");
    w.secret("B");
    let plan = w.plan();
    assert!(schedules(&plan).is_empty(), "no datacenter yet");
    w.create(&plan, "dc1", false);
    assert!(schedules(&w.plan()).is_empty(), "dc1 not Ready yet");
    w.set_ready("dc1", true);
    let got = schedules(&w.plan());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["metadata"]["name"], "demo-dc1-medusa-purge");

    let mut w = ready_with(medusa());
    w.kc["spec"]["cassandra"]["datacenters"][1]["stopped"] = json!(true);
    let got = schedules(&w.plan());
    assert_eq!(got.len(), 1, "the stopped dc2 gets none: {got:?}");
    assert_eq!(got[0].0, "A");
}

#[test]
fn an_existing_schedule_stays_while_its_datacenter_rolls_or_stops() {
    let mut w = ready_with(medusa());
    let plan = w.plan();
    keep_schedules(&mut w, &plan);
    w.set_ready("dc1", false);
    w.kc["spec"]["cassandra"]["datacenters"][1]["stopped"] = json!(true);
    let plan = w.plan();
    let got = schedules(&plan);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        plan.events
            .iter()
            .all(|e| e.reason != "CreatingMedusaPurgeSchedule")
    );
}

#[test]
fn purge_backups_false_or_no_medusa_drops_the_schedule_and_nothing_else() {
    let mut w = ready_with(medusa());
    let with = w.plan();
    keep_schedules(&mut w, &with);

    let mut m = medusa();
    m["purgeBackups"] = json!(false);
    w.kc["spec"]["medusa"] = m;
    let without = w.plan();
    // Not listed: the host prunes them.
    assert!(schedules(&without).is_empty());
    // The datacenters and the ConfigMaps are what they were: no pod restarts.
    for dc in ["dc1", "dc2"] {
        assert_eq!(dc_obj(&with, dc), dc_obj(&without, dc), "{dc}");
    }
    let cms = |p: &Plan| {
        p.apply
            .iter()
            .filter(|o| o.kind().as_deref() == Some("ConfigMap"))
            .map(|o| o.json.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(cms(&with), cms(&without));

    w.kc["spec"]
        .as_object_mut()
        .unwrap()
        .remove("medusa")
        .unwrap();
    assert!(schedules(&w.plan()).is_empty());
}

#[test]
fn a_refused_medusa_spec_keeps_the_live_schedules() {
    let mut w = ready_with(medusa());
    let plan = w.plan();
    keep_schedules(&mut w, &plan);
    w.kc["spec"]["medusa"]["storageProperties"]["port"] = json!(70000);
    let got = schedules(&w.plan());
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|(_, s)| s["spec"]["operationType"] == "purge")
    );
}

#[test]
fn nothing_is_decided_in_an_unreachable_cluster() {
    let mut w = ready_with(medusa());
    w.clusters = vec![("".into(), true), ("A".into(), true), ("B".into(), false)];
    let got = schedules(&w.plan());
    assert!(got.iter().all(|(c, _)| c != "B"), "{got:?}");
}
