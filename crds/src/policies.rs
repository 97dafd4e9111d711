//! Validation rules that a CRD schema cannot hold, as ValidatingAdmissionPolicies (CEL run by
//! the API server at admission, no webhook to deploy).
//!
//! CEL rules inside a CRD cannot read `metadata.annotations`, nor fields kept by
//! `x-kubernetes-preserve-unknown-fields` (cassandra.yaml settings, the CassandraDatacenter
//! `config`). The upstream webhooks check some of those; these policies do the same:
//! the values of the `autoupdate-spec` annotations, data volume changes only with
//! `cassandra.datastax.com/allow-storage-changes: "true"`, configuration files that match the
//! server version, and `num_tokens` of an existing datacenter. As upstream, the
//! CassandraDatacenter checks are skipped when `cassandra.datastax.com/bypass-webhook-validations`
//! is `"true"`.
//!
//! Written to `crds/policies/` (one file per policy, with its binding) by the same generator as
//! the CRDs; `kubectl apply -k crds/policies`.

use serde_json::{Value, json};

/// CEL: `obj` has annotation `key` (a string literal without quotes).
fn annotation(obj: &str, key: &str) -> String {
    format!("(has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations)")
}

/// CEL: the annotation `key` of `obj` equals `value`.
fn annotation_is(obj: &str, key: &str, value: &str) -> String {
    format!(
        "({} && {obj}.metadata.annotations['{key}'] == '{value}')",
        annotation(obj, key)
    )
}

fn autoupdate_rule(key: &str) -> Value {
    json!({
        "expression": format!(
            "!{} || object.metadata.annotations['{key}'] in ['once', 'always']",
            annotation("object", key)
        ),
        "message": format!("metadata.annotations[{key}] must be once or always"),
        "reason": "Invalid",
    })
}

/// A policy on `resource` of `group/version`, and its binding that denies violations.
fn policy(
    name: &str,
    group: &str,
    version: &str,
    resource: &str,
    match_conditions: Vec<Value>,
    variables: Vec<Value>,
    validations: Vec<Value>,
) -> [Value; 2] {
    let mut spec = json!({
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{
            "apiGroups": [group],
            "apiVersions": [version],
            "operations": ["CREATE", "UPDATE"],
            "resources": [resource],
        }]},
        "validations": validations,
    });
    if !match_conditions.is_empty() {
        spec["matchConditions"] = Value::Array(match_conditions);
    }
    if !variables.is_empty() {
        spec["variables"] = Value::Array(variables);
    }
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        }),
    ]
}

/// CEL: the CassandraDatacenter `obj` has a data volume claim with resources.
fn has_claim_resources(obj: &str) -> String {
    format!(
        "(has({obj}.spec.storageConfig) && has({obj}.spec.storageConfig.cassandraDataVolumeClaimSpec) && \
         has({obj}.spec.storageConfig.cassandraDataVolumeClaimSpec.resources))"
    )
}

/// The message of the CassandraDatacenter `num_tokens` rule (also the policy's own
/// validation, `cassandra-datacenter`'s `check_update`).
pub const DC_NUM_TOKENS_MESSAGE: &str = "spec.config.cassandra-yaml.num_tokens cannot change: a node refuses to start with a num_tokens other than the tokens it saved (unset means the server version's default; for DSE and HCD, whose images' defaults are not known here, an unset value may be set once)";

/// CEL: the effective `num_tokens` of the CassandraDatacenter `obj`, as a string: its
/// `cassandra-yaml` value, else the image's default where it is known (Cassandra 3.11: 256,
/// 4.0 and later: 16); the empty string for DSE and HCD without a value (their images'
/// defaults are not known here: setting the value the nodes run with stays possible).
fn dc_num_tokens(obj: &str) -> String {
    format!(
        "((has({obj}.spec.config) && 'cassandra-yaml' in {obj}.spec.config && \
         'num_tokens' in {obj}.spec.config['cassandra-yaml']) ? \
         string({obj}.spec.config['cassandra-yaml']['num_tokens']) : \
         ({obj}.spec.serverType == 'dse' || {obj}.spec.serverType == 'hcd' ? '' : \
         ({obj}.spec.serverVersion.startsWith('3.') ? '256' : '16')))"
    )
}

fn cassandra_datacenter_policy() -> [Value; 2] {
    let claim = "spec.storageConfig.cassandraDataVolumeClaimSpec";
    let config_file =
        |file: &str| format!("(has(object.spec.config) && '{file}' in object.spec.config)");
    policy(
        "cassandradatacenters.cassandra.datastax.com",
        "cassandra.datastax.com",
        "v1beta1",
        "cassandradatacenters",
        vec![json!({
            "name": "not-bypassed",
            "expression": format!(
                "!{}",
                annotation_is("object", crate::labels::BYPASS_WEBHOOK_VALIDATIONS_ANNOTATION, "true")
            ),
        })],
        vec![json!({
            "name": "cassandra3",
            "expression": "object.spec.serverType == 'cassandra' && object.spec.serverVersion.startsWith('3.')",
        })],
        vec![
            autoupdate_rule(crate::labels::UPDATE_ALLOWED_ANNOTATION),
            json!({
                "expression": format!(
                    "oldObject == null || !{old} || !{new} || \
                     object.{claim}.resources == oldObject.{claim}.resources || {allowed}",
                    old = has_claim_resources("oldObject"),
                    new = has_claim_resources("object"),
                    allowed = annotation_is("object", crate::labels::ALLOW_STORAGE_CHANGES_ANNOTATION, "true"),
                ),
                "message": format!(
                    "{claim}.resources can only change with the annotation {}: \"true\"",
                    crate::labels::ALLOW_STORAGE_CHANGES_ANNOTATION
                ),
                "reason": "Forbidden",
            }),
            json!({
                "expression": format!(
                    "oldObject == null || {old} == '' || {new} == {old}",
                    new = dc_num_tokens("object"),
                    old = dc_num_tokens("oldObject")
                ),
                "message": DC_NUM_TOKENS_MESSAGE,
                "reason": "Forbidden",
            }),
            json!({
                "expression": format!("!{} || variables.cassandra3", config_file("jvm-options")),
                "message": "spec.config.jvm-options is for Cassandra 3.11 only; use jvm-server-options",
                "reason": "Invalid",
            }),
            json!({
                "expression": format!("!{} || !variables.cassandra3", config_file("jvm-server-options")),
                "message": "spec.config.jvm-server-options is not for Cassandra 3.11; use jvm-options",
                "reason": "Invalid",
            }),
            json!({
                "expression": format!("!{} || object.spec.serverType == 'dse'", config_file("dse-yaml")),
                "message": "spec.config.dse-yaml requires spec.serverType dse",
                "reason": "Invalid",
            }),
        ],
    )
}

fn k8ssandra_cluster_policy() -> [Value; 2] {
    // num_tokens of a datacenter: its own cassandraYaml value, else the cluster-level one,
    // as a string ('' when neither is set).
    let tokens = |obj: &str, dc: &str| {
        format!(
            "((has({dc}.config) && has({dc}.config.cassandraYaml) && 'num_tokens' in {dc}.config.cassandraYaml) ? \
             string({dc}.config.cassandraYaml['num_tokens']) : \
             ((has({obj}.spec.cassandra.config) && has({obj}.spec.cassandra.config.cassandraYaml) && \
             'num_tokens' in {obj}.spec.cassandra.config.cassandraYaml) ? \
             string({obj}.spec.cassandra.config.cassandraYaml['num_tokens']) : ''))"
        )
    };
    let has_dcs =
        |obj: &str| format!("(has({obj}.spec.cassandra) && has({obj}.spec.cassandra.datacenters))");
    policy(
        "k8ssandraclusters.k8ssandra.io",
        "k8ssandra.io",
        "v1alpha1",
        "k8ssandraclusters",
        vec![],
        vec![],
        vec![
            autoupdate_rule(crate::labels::K8SSANDRA_AUTOUPDATE_ANNOTATION),
            json!({
                "expression": format!(
                    "oldObject == null || !{old_dcs} || !{new_dcs} || \
                     object.spec.cassandra.datacenters.all(d, oldObject.spec.cassandra.datacenters.all(o, \
                     o.metadata.name != d.metadata.name || {new_tokens} == {old_tokens}))",
                    old_dcs = has_dcs("oldObject"),
                    new_dcs = has_dcs("object"),
                    new_tokens = tokens("object", "d"),
                    old_tokens = tokens("oldObject", "o"),
                ),
                "message": "num_tokens (config.cassandraYaml) of an existing datacenter cannot change",
                "reason": "Forbidden",
            }),
        ],
    )
}

/// Every policy and binding, in a stable order.
pub fn admission_policies() -> Vec<Value> {
    let mut out = Vec::new();
    out.extend(k8ssandra_cluster_policy());
    out.extend(cassandra_datacenter_policy());
    out
}

/// Every policy with its binding, one multi-document YAML stream.
pub fn admission_policies_yaml() -> String {
    admission_policies()
        .iter()
        .map(|p| {
            format!(
                "---\n{}",
                serde_yaml::to_string(p).expect("JSON values always serialise to YAML")
            )
        })
        .collect()
}

/// The files under `crds/policies/`: one per policy (with its binding), and a kustomization.
pub fn policy_files() -> Vec<(String, String)> {
    let docs = admission_policies();
    let mut files: Vec<(String, String)> = docs
        .chunks(2)
        .map(|pair| {
            let name = pair[0]["metadata"]["name"].as_str().unwrap_or_default();
            let yaml: String = pair
                .iter()
                .map(|p| {
                    format!(
                        "---\n{}",
                        serde_yaml::to_string(p).expect("JSON values always serialise to YAML")
                    )
                })
                .collect();
            (format!("{name}.yaml"), yaml)
        })
        .collect();
    let mut kustomization = String::from(
        "# Generated by k8ssandra-api (crds/tests/generated.rs); do not edit.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n",
    );
    for (name, _) in &files {
        kustomization.push_str(&format!("  - {name}\n"));
    }
    files.push(("kustomization.yaml".into(), kustomization));
    files
}

/// The messages of every policy rule (for tests matching expected rejections).
pub fn messages() -> Vec<String> {
    admission_policies()
        .iter()
        .flat_map(|p| {
            p["spec"]["validations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect()
}
