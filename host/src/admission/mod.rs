//! The validating admission webhook: the API server sends every create and update of a kind
//! a loaded policy owns, and the answer is that policy's `validate` (and its decorators'),
//! called with the new object and, on update, the old one.
//!
//! - [`review`]: one AdmissionReview in, one out. Violations deny the request, every one
//!   listed with its field; a policy that traps or runs out of time denies (`Fail`) or admits
//!   with a warning (`Ignore`), as configured.
//! - `server`: HTTPS (rustls) on its own port; every replica serves, since `validate` is pure.
//! - `certs`: the serving certificate, either files the user provides (cert-manager, …),
//!   re-read when they change, or one the operator makes, keeps in a Secret shared by the
//!   replicas, rotates before expiry, and whose CA it keeps in the webhook configuration's
//!   `caBundle`.

mod args;
mod certs;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind};

use crate::plugin::{CallError, LoadedPolicy, PolicyRuntime, Violation};

pub use args::{ArgsError, WebhookArgs};
pub use certs::{
    CertError, CertSource, GeneratedCerts, Material, Resolver, Rotation, next_material,
};
pub use server::{ServeError, serve};

/// What to answer when a policy cannot give its verdict (it trapped, ran out of time or
/// memory, or the host's own deadline passed): the webhook's `failurePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Deny the request (fail closed).
    #[value(name = "Fail")]
    Fail,
    /// Admit it with a warning (fail open).
    #[value(name = "Ignore")]
    Ignore,
}

/// Settings of the webhook.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Answer when a policy fails.
    pub failure_policy: FailurePolicy,
    /// The host's own budget for one review, every policy included. Below the webhook's
    /// `timeoutSeconds`, so the API server gets our answer rather than its own timeout.
    pub deadline: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            failure_policy: FailurePolicy::Fail,
            deadline: Duration::from_secs(8),
        }
    }
}

/// Where the webhook's serving certificate comes from and where it listens.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub addr: std::net::SocketAddr,
    pub certs: CertSource,
    pub review: AdmissionConfig,
}

/// Annotation that skips the CassandraDatacenter checks, as upstream (and as the
/// ValidatingAdmissionPolicy of `crds/policies` does).
const BYPASS: &str = k8ssandra_api::labels::BYPASS_WEBHOOK_VALIDATIONS_ANNOTATION;

fn kind_matches(policy: &LoadedPolicy, kind: &GroupVersionKind) -> bool {
    let api_version = if kind.group.is_empty() {
        kind.version.clone()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    policy.info.parent.api_version == api_version && policy.info.parent.kind == kind.kind
}

/// The policies that judge `kind`: its owner, then the decorators of that owner.
pub fn policies_for(
    runtime: &PolicyRuntime,
    kind: &GroupVersionKind,
) -> Vec<std::sync::Arc<LoadedPolicy>> {
    let all = runtime.policies();
    let owners: Vec<_> = all
        .iter()
        .filter(|p| p.info.decorates.is_none() && kind_matches(p, kind))
        .cloned()
        .collect();
    let mut out = owners.clone();
    for owner in &owners {
        out.extend(
            all.iter()
                .filter(|p| p.info.decorates.as_deref() == Some(owner.name()))
                .cloned(),
        );
    }
    out
}

/// Why a request is admitted without asking any policy, if it is.
fn skip_reason(req: &AdmissionRequest<DynamicObject>) -> Option<&'static str> {
    match req.operation {
        Operation::Create | Operation::Update => {}
        Operation::Delete | Operation::Connect => return Some("not a create or update"),
    }
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return Some("a subresource");
    }
    let Some(object) = &req.object else {
        return Some("no object");
    };
    // An object being deleted only loses finalizers: refusing that would leave it stuck
    // in deletion, whatever is wrong with its spec.
    if object.metadata.deletion_timestamp.is_some() {
        return Some("being deleted");
    }
    if let Some(old) = &req.old_object
        && old.data.get("spec") == object.data.get("spec")
        && old.metadata.annotations == object.metadata.annotations
    {
        // Labels, finalizers, owner references: what the rules judge is unchanged, and an
        // object admitted before a rule existed must still be able to lose its finalizer.
        return Some("spec and annotations unchanged");
    }
    if req.kind.group == "cassandra.datastax.com"
        && object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BYPASS))
            .is_some_and(|v| v == "true")
    {
        return Some("bypass-webhook-validations annotation");
    }
    None
}

/// One policy's verdict.
enum Verdict {
    Violations(Vec<Violation>),
    Failed(String),
}

/// Answers one AdmissionReview.
pub async fn review(
    runtime: &PolicyRuntime,
    config: &AdmissionConfig,
    review: AdmissionReview<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(req) => req,
        Err(_) => {
            return AdmissionResponse::invalid("the AdmissionReview has no request").into_review();
        }
    };
    respond(runtime, config, &req).await.into_review()
}

async fn respond(
    runtime: &PolicyRuntime,
    config: &AdmissionConfig,
    req: &AdmissionRequest<DynamicObject>,
) -> AdmissionResponse {
    let response = AdmissionResponse::from(req);
    let what = format!(
        "{} {}/{}",
        req.kind.kind,
        req.namespace.as_deref().unwrap_or_default(),
        req.name
    );
    if let Some(reason) = skip_reason(req) {
        tracing::debug!(object = %what, reason, "admitted without validation");
        return response;
    }
    let policies = policies_for(runtime, &req.kind);
    if policies.is_empty() {
        // The webhook configuration names more kinds than are loaded (a custom policy
        // not installed yet): nothing judges this kind.
        tracing::debug!(object = %what, "no policy validates this kind");
        return response;
    }
    let (object, old) = match (
        req.object.as_ref().map(serde_json::to_string).transpose(),
        req.old_object
            .as_ref()
            .map(serde_json::to_string)
            .transpose(),
    ) {
        (Ok(Some(object)), Ok(old)) => (object, old),
        (Err(e), _) | (_, Err(e)) => {
            return fail(
                response,
                config,
                &what,
                &[format!("the object does not serialise: {e}")],
            );
        }
        (Ok(None), _) => return response,
    };
    let calls = policies.iter().map(|policy| {
        let (object, old) = (object.clone(), old.clone());
        async move {
            let verdict = match runtime.validate(policy, object, old).await {
                Ok(v) => Verdict::Violations(v),
                Err(e) => Verdict::Failed(describe_failure(&e)),
            };
            (policy.name().to_string(), verdict)
        }
    });
    let verdicts =
        match tokio::time::timeout(config.deadline, futures::future::join_all(calls)).await {
            Ok(v) => v,
            Err(_) => {
                let names: Vec<&str> = policies.iter().map(|p| p.name()).collect();
                let failure = format!(
                    "{} did not answer within the webhook's deadline of {:?}",
                    names.join(", "),
                    config.deadline
                );
                return fail(response, config, &what, &[failure]);
            }
        };
    let mut violations: BTreeMap<String, Vec<Violation>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, verdict) in verdicts {
        match verdict {
            Verdict::Violations(v) if v.is_empty() => {}
            Verdict::Violations(v) => {
                violations.insert(name, v);
            }
            Verdict::Failed(reason) => failures.push(format!("policy {name} failed: {reason}")),
        }
    }
    if !violations.is_empty() {
        tracing::info!(object = %what, violations = violations.values().map(Vec::len).sum::<usize>(), "denied");
        return deny(response, &violations, &failures);
    }
    if !failures.is_empty() {
        return fail(response, config, &what, &failures);
    }
    response
}

fn describe_failure(e: &CallError) -> String {
    e.to_string()
}

/// The message lists every violation as `field: rule`, per policy.
fn deny(
    mut response: AdmissionResponse,
    violations: &BTreeMap<String, Vec<Violation>>,
    failures: &[String],
) -> AdmissionResponse {
    let mut parts = Vec::new();
    let mut causes = Vec::new();
    for (policy, list) in violations {
        let rules: Vec<String> = list
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect();
        parts.push(format!("policy {policy}: {}", rules.join("; ")));
        causes.extend(list.iter().map(|v| kube::core::response::StatusCause {
            reason: "FieldValueInvalid".into(),
            message: v.message.clone(),
            field: v.field.clone(),
        }));
    }
    parts.extend(failures.iter().cloned());
    response = response.deny(parts.join("; "));
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    response.result.details = Some(kube::core::response::StatusDetails {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        uid: String::new(),
        causes,
        retry_after_seconds: 0,
    });
    response
}

/// A policy could not judge: deny or admit with a warning, as configured.
fn fail(
    mut response: AdmissionResponse,
    config: &AdmissionConfig,
    what: &str,
    failures: &[String],
) -> AdmissionResponse {
    let message = failures.join("; ");
    match config.failure_policy {
        FailurePolicy::Fail => {
            tracing::warn!(object = %what, %message, "denied: a policy could not validate (failurePolicy Fail)");
            response = response.deny(format!("{message} (failurePolicy Fail)"));
            response.result.code = 500;
            response.result.reason = "InternalError".into();
            response
        }
        FailurePolicy::Ignore => {
            tracing::warn!(object = %what, %message, "admitted unvalidated: a policy could not validate (failurePolicy Ignore)");
            response.warnings = Some(vec![format!(
                "admitted without validation: {message} (failurePolicy Ignore)"
            )]);
            response
        }
    }
}

/// How often the user's certificate files are compared with what is served.
const FILE_RELOAD: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook certificate: {0}")]
    Cert(#[from] CertError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The running webhook: its address and its tasks, stopped when this is dropped.
pub struct Webhook {
    pub addr: std::net::SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts serving the webhook and keeping its certificate current. The user's files must
/// be readable now; a made certificate appears as soon as its Secret is written (until
/// then TLS handshakes fail, which the API server treats as the failurePolicy says).
pub async fn start(
    options: WebhookOptions,
    client: kube::Client,
    runtime: PolicyRuntime,
) -> Result<Webhook, WebhookError> {
    let resolver = std::sync::Arc::new(Resolver::default());
    let mut tasks = Vec::new();
    match options.certs {
        CertSource::Files { dir } => {
            certs::load_files(&dir, &resolver).await?;
            tasks.push(tokio::spawn(certs::watch_files(
                dir,
                resolver.clone(),
                FILE_RELOAD,
            )));
        }
        CertSource::Generated(generated) => {
            tasks.push(tokio::spawn(certs::manage(
                client,
                generated,
                resolver.clone(),
            )));
        }
    }
    let (addr, server) = serve(options.addr, runtime, options.review, resolver).await?;
    tasks.push(server);
    Ok(Webhook { addr, tasks })
}

/// Where the user's certificate files live (cert-manager's Secret mounted as a volume).
pub fn user_cert_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    (dir.join("tls.crt"), dir.join("tls.key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        op: &str,
        object: serde_json::Value,
        old: Option<serde_json::Value>,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "cassandra.datastax.com", "version": "v1beta1", "kind": "CassandraDatacenter"},
                "resource": {"group": "cassandra.datastax.com", "version": "v1beta1", "resource": "cassandradatacenters"},
                "name": "dc1",
                "namespace": "ops",
                "operation": op,
                "userInfo": {},
                "object": object,
                "oldObject": old,
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn dc(spec: serde_json::Value, meta: serde_json::Value) -> serde_json::Value {
        let mut m = serde_json::json!({"name": "dc1", "namespace": "ops"});
        m.as_object_mut()
            .unwrap()
            .extend(meta.as_object().cloned().unwrap_or_default());
        serde_json::json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": m,
            "spec": spec,
        })
    }

    #[test]
    fn what_is_not_judged() {
        let spec = serde_json::json!({"size": 3});
        let none = serde_json::json!({});
        assert_eq!(
            skip_reason(&request("CREATE", dc(spec.clone(), none.clone()), None)),
            None
        );
        // A finalizer removed: spec and annotations unchanged.
        let old = dc(spec.clone(), serde_json::json!({"finalizers": ["x"]}));
        assert!(
            skip_reason(&request(
                "UPDATE",
                dc(spec.clone(), none.clone()),
                Some(old.clone())
            ))
            .is_some()
        );
        // A spec change is judged.
        let changed = dc(serde_json::json!({"size": 4}), none.clone());
        assert_eq!(skip_reason(&request("UPDATE", changed, Some(old))), None);
        // Being deleted, or bypassed by annotation.
        let deleting = dc(
            spec.clone(),
            serde_json::json!({"deletionTimestamp": "2026-01-01T00:00:00Z"}),
        );
        assert!(skip_reason(&request("CREATE", deleting, None)).is_some());
        let bypass = dc(spec, serde_json::json!({"annotations": {BYPASS: "true"}}));
        assert!(skip_reason(&request("CREATE", bypass, None)).is_some());
    }

    #[test]
    fn a_denial_lists_every_violation_with_its_field() {
        let req = request(
            "CREATE",
            dc(serde_json::json!({}), serde_json::json!({})),
            None,
        );
        let violations = BTreeMap::from([(
            "cassandra-datacenter".to_string(),
            vec![
                Violation {
                    field: "spec.size".into(),
                    message: "must be at least 1".into(),
                },
                Violation {
                    field: "spec.clusterName".into(),
                    message: "must not be empty".into(),
                },
            ],
        )]);
        let r = deny(AdmissionResponse::from(&req), &violations, &[]);
        assert!(!r.allowed);
        assert_eq!(
            r.result.message,
            "policy cassandra-datacenter: spec.size: must be at least 1; spec.clusterName: must not be empty"
        );
        let causes = r.result.details.unwrap().causes;
        assert_eq!(causes[1].field, "spec.clusterName");
        // A policy that cannot judge: Fail denies, Ignore admits with a warning.
        let fail = |policy| {
            let config = AdmissionConfig {
                failure_policy: policy,
                ..Default::default()
            };
            fail(
                AdmissionResponse::from(&req),
                &config,
                "dc",
                &["policy x failed: trap".to_string()],
            )
        };
        assert!(!fail(FailurePolicy::Fail).allowed);
        let open = fail(FailurePolicy::Ignore);
        assert!(open.allowed);
        assert!(open.warnings.unwrap()[0].contains("policy x failed: trap"));
    }
}
