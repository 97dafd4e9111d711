//! The Vector sidecars of the Reaper and Stargate a cluster makes, refused at admission
//! where the user wrote them.

use k8ssandra_policy_sdk::Policy;
use serde_json::json;

use super::two_dcs;
use crate::K8ssandraClusterPolicy as P;

fn vector(transform_input: &str) -> serde_json::Value {
    json!({"vector": {"enabled": true, "components": {
        "transforms": [{"name": "tag", "type": "remap", "inputs": [transform_input],
            "config": "source = \".x = 1\""}],
        "sinks": [{"name": "out", "type": "console", "inputs": ["tag"]}],
    }}})
}

#[test]
fn a_bad_reaper_or_stargate_pipeline_is_refused_naming_its_field() {
    let mut kc = two_dcs();
    kc["spec"]["reaper"] = json!({"telemetry": vector("nothing_here")});
    kc["spec"]["cassandra"]["datacenters"][1]["stargate"] =
        json!({"size": 1, "telemetry": vector("nothing_either")});
    let v = P::validate(kc.to_string(), None);
    let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.reaper.telemetry.vector.")),
        "{v:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.cassandra.datacenters[1].stargate.telemetry.vector.")),
        "{v:?}"
    );

    // The same pipelines reading their component's own metrics are admitted.
    kc["spec"]["reaper"] = json!({"telemetry": vector("reaper_metrics")});
    kc["spec"]["cassandra"]["datacenters"][1]["stargate"] =
        json!({"size": 1, "telemetry": vector("stargate_metrics")});
    let v = P::validate(kc.to_string(), None);
    assert!(v.is_empty(), "{v:?}");
}
