//! A policy built against `k8ssandra:policy@1.0.0`. A host speaking 0.x must refuse it and
//! say which version it was built for.

wit_bindgen::generate!({
    path: "wit",
    world: "policy",
});

use k8ssandra::policy::types::KindRef;

struct NextMajor;

impl Guest for NextMajor {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "next-major".to_string(),
            version: "1.0.0".to_string(),
            parent: KindRef {
                api_version: "examples.k8ssandra.io/v1".to_string(),
                kind: "NextMajor".to_string(),
            },
        }
    }
}

export!(NextMajor);
