//! Helpers for the generated OpenAPI schemas: open objects, and the post-processing that adds
//! what derive attributes cannot express well (CEL rules across fields and list items, list
//! bounds that keep the rules under the API server's cost limit).
//!
//! Rules are attached after `CustomResourceExt::crd()` by path (`spec.racks[]` walks into the
//! items of `racks`, `spec.nodeStatuses{}` into map values), so every rule of a kind is listed in
//! one place next to the kind, with the message the user will see.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, ValidationRule,
};
use schemars::{Schema, SchemaGenerator, json_schema};

/// Schema of a free-form object (configuration blobs): any keys, any values, kept as given.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A CEL validation rule (`x-kubernetes-validations`).
#[derive(Clone, Debug)]
pub struct Rule {
    /// The CEL expression; `self` is the value at the rule's path, `oldSelf` its previous value.
    pub rule: String,
    /// What the user sees when the rule fails. Names the field and the rule.
    pub message: String,
    /// Machine-readable reason: `FieldValueInvalid` (default), `FieldValueForbidden`, ...
    pub reason: Option<&'static str>,
}

impl Rule {
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Rule {
            rule: rule.into(),
            message: message.into(),
            reason: None,
        }
    }

    /// A rule about a change (it uses `oldSelf`): reported as `FieldValueForbidden`.
    pub fn transition(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Rule {
            rule: rule.into(),
            message: message.into(),
            reason: Some("FieldValueForbidden"),
        }
    }
}

/// CEL: the string field `field` of `a` and `b` is equal, an absent field counting as empty.
pub fn same_string(a: &str, b: &str, field: &str) -> String {
    format!("(has({a}.{field}) ? {a}.{field} : '') == (has({b}.{field}) ? {b}.{field} : '')")
}

/// CEL: the boolean field `field` of `a` and `b` is equal, an absent field counting as false.
pub fn same_bool(a: &str, b: &str, field: &str) -> String {
    format!("(has({a}.{field}) && {a}.{field}) == (has({b}.{field}) && {b}.{field})")
}

/// CEL: field `field` is absent in both `a` and `b`, or present and equal in both.
pub fn same_optional(a: &str, b: &str, field: &str) -> String {
    format!(
        "has({a}.{field}) == has({b}.{field}) && (!has({a}.{field}) || {a}.{field} == {b}.{field})"
    )
}

/// CEL: the storage request of the PersistentVolumeClaimSpec `spec`, or `None`-guard
/// expression: true when `spec` requests storage.
pub fn has_storage_request(spec: &str) -> String {
    format!(
        "has({spec}.resources) && has({spec}.resources.requests) && 'storage' in {spec}.resources.requests"
    )
}

/// CEL: the storage request of PVC spec `new` is not smaller than that of `old`.
pub fn storage_not_shrunk(new: &str, old: &str) -> String {
    format!(
        "!({old_has}) || (({new_has}) && quantity(string({new}.resources.requests['storage'])).compareTo(quantity(string({old}.resources.requests['storage']))) >= 0)",
        old_has = has_storage_request(old),
        new_has = has_storage_request(new),
    )
}

/// CEL: PVC specs `new` and `old` are equal except for `resources.requests` (the size).
///
/// Compares what decides the volume a node gets (access modes, storage class, volume mode,
/// volume name and attributes class, limits). Selector and data sources are left out: they
/// only matter when a volume is first provisioned, and comparing these open structures
/// would exceed the API server's CEL cost budget.
pub fn pvc_unchanged_but_size(new: &str, old: &str) -> String {
    let mut clauses: Vec<String> = [
        "accessModes",
        "storageClassName",
        "volumeMode",
        "volumeName",
        "volumeAttributesClassName",
    ]
    .iter()
    .map(|f| format!("({})", same_optional(new, old, f)))
    .collect();
    clauses.push(format!(
        "((has({new}.resources) && has({new}.resources.limits)) == (has({old}.resources) && has({old}.resources.limits)) && (!(has({new}.resources) && has({new}.resources.limits)) || {new}.resources.limits == {old}.resources.limits))"
    ));
    clauses.join(" && ")
}

/// Bound the fields of the PersistentVolumeClaimSpec at `path` that the storage rules read,
/// so the API server can estimate their cost. The bounds are far above real values.
pub fn bound_pvc(crd: &mut CustomResourceDefinition, path: &str) {
    max_items(crd, &format!("{path}.accessModes"), 4);
    max_length(crd, &format!("{path}.accessModes[]"), 32);
    max_length(crd, &format!("{path}.storageClassName"), 253);
    max_length(crd, &format!("{path}.volumeMode"), 32);
    max_length(crd, &format!("{path}.volumeName"), 253);
    max_length(crd, &format!("{path}.volumeAttributesClassName"), 253);
    for m in ["requests", "limits"] {
        max_properties(crd, &format!("{path}.resources.{m}"), 16);
        max_length(crd, &format!("{path}.resources.{m}{{}}"), 64);
    }
}

/// The schema of the first version of a CRD (every CRD here has exactly one version).
pub fn root_schema(crd: &mut CustomResourceDefinition) -> &mut JSONSchemaProps {
    crd.spec.versions[0]
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .expect("derived CRDs always carry an openAPIV3Schema")
}

/// The sub-schema at `path` (dot-separated property names; `[]` after a name enters the list
/// items, `{}` the map values). Panics with the path when it does not exist: a rule attached to
/// a misspelt path must fail the build's tests, not be silently dropped.
pub fn at<'a>(crd: &'a mut CustomResourceDefinition, path: &str) -> &'a mut JSONSchemaProps {
    match try_at(root_schema(crd), path) {
        Ok(s) => s,
        Err(e) => panic!("schema path {path}: {e}"),
    }
}

fn try_at<'a>(
    mut cur: &'a mut JSONSchemaProps,
    path: &str,
) -> Result<&'a mut JSONSchemaProps, String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    if path.is_empty() {
        return Ok(cur);
    }
    for segment in path.split('.') {
        let (name, suffix) = match segment.find(['[', '{']) {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        cur = cur
            .properties
            .as_mut()
            .and_then(|p| p.get_mut(name))
            .ok_or_else(|| format!("no property {name}"))?;
        let mut rest = suffix;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("[]") {
                cur = match cur.items.as_mut() {
                    Some(JSONSchemaPropsOrArray::Schema(s)) => s,
                    _ => return Err(format!("{name} is not a list")),
                };
                rest = r;
            } else if let Some(r) = rest.strip_prefix("{}") {
                cur = match cur.additional_properties.as_mut() {
                    Some(JSONSchemaPropsOrBool::Schema(s)) => s,
                    _ => return Err(format!("{name} is not a map")),
                };
                rest = r;
            } else {
                return Err(format!("bad segment {segment}"));
            }
        }
    }
    Ok(cur)
}

/// Attach CEL rules to the schema at `path`.
pub fn add_rules(crd: &mut CustomResourceDefinition, path: &str, rules: &[Rule]) {
    let schema = at(crd, path);
    let list = schema.x_kubernetes_validations.get_or_insert_with(Vec::new);
    for r in rules {
        list.push(ValidationRule {
            rule: r.rule.clone(),
            message: Some(r.message.clone()),
            reason: r.reason.map(str::to_string),
            ..Default::default()
        });
    }
}

/// Bound a list at `path` to `max` items, so CEL rules iterating over it have a known cost.
pub fn max_items(crd: &mut CustomResourceDefinition, path: &str, max: i64) {
    at(crd, path).max_items = Some(max);
}

/// Bound a string at `path` to `max` characters (CEL cost estimation, DNS label limits).
pub fn max_length(crd: &mut CustomResourceDefinition, path: &str, max: i64) {
    at(crd, path).max_length = Some(max);
}

/// Bound a map at `path` to `max` keys (CEL cost estimation).
pub fn max_properties(crd: &mut CustomResourceDefinition, path: &str, max: i64) {
    at(crd, path).max_properties = Some(max);
}

/// Every CEL rule of a CRD with the path it is attached to, for tests and documentation.
pub fn rules_of(crd: &CustomResourceDefinition) -> Vec<(String, ValidationRule)> {
    fn walk(s: &JSONSchemaProps, path: String, out: &mut Vec<(String, ValidationRule)>) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
            JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
        };
        for r in s.x_kubernetes_validations.iter().flatten() {
            out.push((path.clone(), r.clone()));
        }
        for (name, p) in s.properties.iter().flatten() {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(p, child, out);
        }
        if let Some(JSONSchemaPropsOrArray::Schema(i)) = &s.items {
            walk(i, format!("{path}[]"), out);
        }
        if let Some(JSONSchemaPropsOrBool::Schema(a)) = &s.additional_properties {
            walk(a, format!("{path}{{}}"), out);
        }
    }
    let mut out = Vec::new();
    if let Some(s) = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    {
        walk(s, String::new(), &mut out);
    }
    out
}

/// Whether the schema has a property at `path` (for rules on types owned by other modules).
pub fn has_path(crd: &mut CustomResourceDefinition, path: &str) -> bool {
    try_at(root_schema(crd), path).is_ok()
}
