//! Default container images, as cass-operator's shipped image configuration
//! (`config/imageconfig/image_config.yaml` of release v1.32.0) resolves them.
//!
//! Upstream reads that file from a ConfigMap of the operator; a policy has no such
//! operator-level input, so the defaults are constants here and a datacenter overrides them
//! through its own fields: `spec.serverImage`, `spec.configBuilderImage`,
//! `spec.systemLoggerImage`, and for the k8ssandra-client config builder (which has no
//! field upstream either) an init container named `server-config-init` with an `image` in
//! `spec.podTemplateSpec.initContainers`.

use k8ssandra_api::cassandra::ServerType;

use crate::model::Dc;

/// Registry of every default image (`defaults.registry` upstream).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// `defaults.pullPolicy` upstream, set on every container whose image the operator picked.
pub const DEFAULT_PULL_POLICY: &str = "IfNotPresent";
/// The legacy config builder, used below Cassandra 4.1 and for DSE.
pub const DEFAULT_CONFIG_BUILDER_IMAGE: &str = "docker.io/datastax/cass-config-builder:1.0-ubi";
/// k8ssandra-client, whose `config build` renders the configuration from Cassandra 4.1 on
/// and for HCD.
pub const DEFAULT_CLIENT_IMAGE: &str = "docker.io/k8ssandra/k8ssandra-client:v0.8.12";
/// The Vector-based log tailer of the `server-system-logger` container; upstream tags it
/// with the operator's own release.
pub const DEFAULT_SYSTEM_LOGGER_IMAGE: &str = "docker.io/k8ssandra/system-logger:v1.32.0";

/// Repository and tag suffix of the management-API image of a server type (`types` upstream).
/// HCD is commented out in upstream's shipped file (it then refuses an HCD datacenter without
/// `serverImage`); the values here are those of that commented entry.
fn server_repository(server_type: ServerType) -> (&'static str, &'static str) {
    match server_type {
        ServerType::Cassandra => ("k8ssandra/cass-management-api", "-ubi"),
        ServerType::Dse => ("datastax/dse-mgmtapi-6_8", "-ubi"),
        ServerType::Hcd => ("datastax/hcd", "-ubi"),
    }
}

/// The server image of a version, without any override.
pub fn default_server_image(server_type: ServerType, version: &str) -> String {
    let (repo, suffix) = server_repository(server_type);
    format!("{DEFAULT_REGISTRY}/{repo}:{version}{suffix}")
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The image of the `cassandra` container (and of `server-config-init-base`):
/// `spec.serverImage`, else the default of the server type and version.
pub fn server_image(dc: &Dc) -> String {
    let spec = &dc.obj.spec;
    non_empty(&spec.server_image)
        .map(str::to_string)
        .unwrap_or_else(|| default_server_image(dc.server_type(), &spec.server_version))
}

/// The legacy config builder: `spec.configBuilderImage`, else the default.
pub fn config_builder_image(dc: &Dc) -> String {
    non_empty(&dc.obj.spec.config_builder_image)
        .unwrap_or(DEFAULT_CONFIG_BUILDER_IMAGE)
        .to_string()
}

/// The system logger: `spec.systemLoggerImage`, else the default.
pub fn system_logger_image(dc: &Dc) -> String {
    non_empty(&dc.obj.spec.system_logger_image)
        .unwrap_or(DEFAULT_SYSTEM_LOGGER_IMAGE)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_images_follow_the_ubi_scheme() {
        assert_eq!(
            default_server_image(ServerType::Cassandra, "4.1.9"),
            "docker.io/k8ssandra/cass-management-api:4.1.9-ubi"
        );
        assert_eq!(
            default_server_image(ServerType::Dse, "6.9.3"),
            "docker.io/datastax/dse-mgmtapi-6_8:6.9.3-ubi"
        );
        assert_eq!(
            default_server_image(ServerType::Hcd, "1.2.1"),
            "docker.io/datastax/hcd:1.2.1-ubi"
        );
    }
}
