//! Unit tests: snapshots in, plans out.

use k8ssandra_policy_sdk::{Object, Plan, Policy, Snapshot};
use serde_json::{Value, json};

use crate::MedusaConfigurationPolicy as P;
use crate::decide::reconcile;

const NOW: u64 = 1_700_000_000_000;

fn config(storage: Value, status: Value) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaConfiguration",
            "metadata": {"name": "shared", "namespace": "ns"},
            "spec": {"storageProperties": storage},
            "status": status,
        })
        .to_string(),
    }
}

fn s3() -> Value {
    json!({"storageProvider": "s3_compatible", "bucketName": "backups",
        "storageSecretRef": {"name": "bucket-key"}, "host": "minio", "port": 9000})
}

/// A storage Secret as the host shows it (read by name, no labels): keys only, values
/// blanked.
fn secret(name: &str, ns: &str, keys: &[&str]) -> Object {
    let data: serde_json::Map<String, Value> =
        keys.iter().map(|k| (k.to_string(), json!(""))).collect();
    Object {
        cluster: String::new(),
        json: json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "data": data})
        .to_string(),
    }
}

fn plan(parent: Object, related: Vec<Object>, now: u64) -> Plan {
    let mut s = Snapshot::for_parent(parent);
    s.related = related;
    s.now_ms = now;
    reconcile(&s).expect("plan")
}

fn cond(p: &Plan, t: &str) -> Value {
    let st: Value = serde_json::from_str(p.status.as_ref().expect("status")).unwrap();
    st["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == t).cloned())
        .unwrap_or_else(|| panic!("no {t} in {st}"))
}

#[test]
fn a_secret_with_its_credentials_key_makes_the_configuration_ready() {
    let p = plan(
        config(s3(), json!({})),
        vec![secret("bucket-key", "ns", &["credentials"])],
        NOW,
    );
    assert_eq!(cond(&p, "SecretAvailable")["status"], "True");
    assert_eq!(cond(&p, "SecretAvailable")["reason"], "SecretFound");
    assert_eq!(cond(&p, "Ready")["status"], "True");
    assert!(p.events.is_empty());
    assert!(p.apply.is_empty(), "nothing is written but the status");
    assert_eq!(p.requeue_after_ms, None);
}

#[test]
fn a_secret_without_the_credentials_key_names_the_key_and_the_field() {
    let p = plan(
        config(s3(), json!({})),
        vec![secret("bucket-key", "ns", &["aws_access_key_id"])],
        NOW,
    );
    let c = cond(&p, "SecretAvailable");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "SecretKeyMissing");
    let m = c["message"].as_str().unwrap();
    assert!(
        m.contains("spec.storageProperties.storageSecretRef.name"),
        "{m}"
    );
    assert!(m.contains("\"credentials\""), "{m}");
    assert!(m.contains("s3_compatible"), "{m}");
    let r = cond(&p, "Ready");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "SecretNotAvailable");
    assert_eq!(
        p.events.len(),
        1,
        "one Warning for one cause: {:?}",
        p.events
    );
    assert_eq!(p.events[0].reason, "SecretKeyMissing");
}

#[test]
fn a_missing_secret_or_one_in_another_namespace_is_not_found_and_looked_for_again() {
    for related in [
        vec![],
        vec![secret("bucket-key", "other", &["credentials"])],
    ] {
        let p = plan(config(s3(), json!({})), related, NOW);
        let c = cond(&p, "SecretAvailable");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "SecretNotFound");
        let m = c["message"].as_str().unwrap();
        assert!(m.contains("\"bucket-key\"") && m.contains("\"ns\""), "{m}");
        assert!(
            m.starts_with("spec.storageProperties.storageSecretRef.name"),
            "{m}"
        );
        assert_eq!(
            p.requeue_after_ms,
            Some(30_000),
            "not watched: looked at again"
        );
    }
}

#[test]
fn role_based_credentials_need_no_secret_and_exclude_one() {
    let mut st = s3();
    st.as_object_mut().unwrap().remove("storageSecretRef");
    let p = plan(config(st.clone(), json!({})), vec![], NOW);
    assert_eq!(
        cond(&p, "SecretAvailable")["reason"],
        "SecretRefMissing",
        "credential-based by default"
    );
    assert_eq!(cond(&p, "Ready")["status"], "False");

    st["credentialsType"] = json!("role-based");
    let p = plan(config(st, json!({})), vec![], NOW);
    assert_eq!(cond(&p, "SecretAvailable")["status"], "True");
    assert_eq!(cond(&p, "SecretAvailable")["reason"], "NotRequired");
    assert_eq!(cond(&p, "Ready")["status"], "True");

    let mut both = s3();
    both["credentialsType"] = json!("role-based");
    let p = plan(
        config(both, json!({})),
        vec![secret("bucket-key", "ns", &["credentials"])],
        NOW,
    );
    let c = cond(&p, "SecretAvailable");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ConflictingCredentials");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.storageProperties.credentialsType")
    );
}

#[test]
fn missing_provider_or_bucket_keeps_it_not_ready_naming_the_field() {
    for (drop, f) in [
        ("storageProvider", "spec.storageProperties.storageProvider"),
        ("bucketName", "spec.storageProperties.bucketName"),
    ] {
        let mut st = s3();
        st.as_object_mut().unwrap().remove(drop);
        let p = plan(
            config(st, json!({})),
            vec![secret("bucket-key", "ns", &["credentials"])],
            NOW,
        );
        assert_eq!(cond(&p, "SecretAvailable")["status"], "True");
        let r = cond(&p, "Ready");
        assert_eq!(r["status"], "False");
        assert_eq!(r["reason"], "InvalidSpec");
        assert!(r["message"].as_str().unwrap().starts_with(f), "{r}");
    }
}

#[test]
fn transition_times_stay_while_the_status_holds_and_move_when_it_changes() {
    let ok = vec![secret("bucket-key", "ns", &["credentials"])];
    let first = plan(config(s3(), json!({})), ok.clone(), NOW);
    let st: Value = serde_json::from_str(first.status.as_ref().unwrap()).unwrap();
    let since = cond(&first, "Ready")["lastTransitionTime"].clone();

    let later = plan(config(s3(), st.clone()), ok, NOW + 3_600_000);
    assert_eq!(cond(&later, "Ready")["lastTransitionTime"], since);
    assert_eq!(
        later.status, first.status,
        "an unchanged status writes nothing"
    );

    let broken = plan(
        config(s3(), st),
        vec![secret("bucket-key", "ns", &["other"])],
        NOW + 7_200_000,
    );
    assert_ne!(cond(&broken, "Ready")["lastTransitionTime"], since);
    // A condition already False raises no second Event.
    let st2: Value = serde_json::from_str(broken.status.as_ref().unwrap()).unwrap();
    let again = plan(config(s3(), st2), vec![], NOW + 7_300_000);
    assert_eq!(cond(&again, "SecretAvailable")["reason"], "SecretNotFound");
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn admission_refuses_values_that_never_work_and_accepts_partial_settings() {
    let check = |st: Value| {
        let obj = json!({"apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaConfiguration", "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"storageProperties": st}});
        P::validate(obj.to_string(), None)
    };
    assert!(check(s3()).is_empty());
    // Clusters that reference it may give the rest.
    assert!(check(json!({"prefix": "team-a"})).is_empty());
    let mut bad = s3();
    bad["port"] = json!(70000);
    bad["bucketName"] = json!("a\nstorage_provider = local");
    bad["transferMaxBandwidth"] = json!("fast");
    let v = check(bad);
    let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.storageProperties.bucketName",
            "spec.storageProperties.port",
            "spec.storageProperties.transferMaxBandwidth"
        ]
    );
    assert!(v[1].message.contains("1-65535"));
}

#[test]
fn describe_reads_the_named_secret_and_labelled_ones() {
    let info = P::describe();
    assert_eq!(info.name, "medusa-configuration");
    assert_eq!(info.parent.kind, "MedusaConfiguration");
    assert!(info.owns.is_empty());
    let reads: Vec<_> = info
        .reads
        .iter()
        .map(|r| (r.kind.kind.as_str(), r.selector.as_str()))
        .collect();
    assert_eq!(
        reads,
        [
            (
                "Secret",
                "ref:/spec/storageProperties/storageSecretRef/name"
            ),
            ("Secret", "k8ssandra.io/medusa-storage-secret"),
        ]
    );
}

#[test]
fn the_storage_secret_gets_upstreams_label_and_nothing_else() {
    // sha256("ns" + "bucket-key"), first 8 hex digits, as upstream's HashNameNamespace.
    assert_eq!(
        crate::decide::storage_secret_label("bucket-key", "ns"),
        "f0f54111"
    );
    let mut with_uid: Value =
        serde_json::from_str(&secret("bucket-key", "ns", &["credentials"]).json).unwrap();
    with_uid["metadata"]["uid"] = json!("uid-7");
    let related = vec![Object {
        cluster: String::new(),
        json: with_uid.to_string(),
    }];
    let p = plan(config(s3(), json!({})), related, NOW);
    assert_eq!(p.apply.len(), 1);
    let patch: Value = serde_json::from_str(&p.apply[0].json).unwrap();
    assert_eq!(
        patch,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "bucket-key", "namespace": "ns", "uid": "uid-7",
            "labels": {"k8ssandra.io/medusa-storage-secret": "f0f54111"}}})
    );
    // Also while the Secret lacks its key (it is still the storage Secret), but not when
    // it is missing.
    let p = plan(config(s3(), json!({})), vec![], NOW);
    assert!(p.apply.is_empty());
}
