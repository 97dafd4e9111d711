//! Facts about pods that several policies need alike.

use k8s_openapi::api::core::v1::Pod;

/// Whether a pod can take a call now: not terminating, with an address, and Ready.
pub fn serving(p: &Pod) -> bool {
    let st = p.status.as_ref();
    p.metadata.deletion_timestamp.is_none()
        && st
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty())
        && st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_a_ready_pod_with_an_address_that_is_not_going_serves() {
        let ready = serde_json::json!({"metadata": {"name": "p"},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(serving(&pod(ready.clone())));
        let mut no_ip = ready.clone();
        no_ip["status"]["podIP"] = "".into();
        assert!(!serving(&pod(no_ip)));
        let mut unready = ready.clone();
        unready["status"]["conditions"][0]["status"] = "False".into();
        assert!(!serving(&pod(unready)));
        let mut going = ready;
        going["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z".into();
        assert!(!serving(&pod(going)));
    }
}
