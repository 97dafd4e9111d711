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

/// Our types whose schema is a Kubernetes type's (copied from k8s-openapi, not derived), so
/// they are treated like the Kubernetes types themselves.
const KUBERNETES_SHAPED: &[&str] = &["VolumeSource"];

/// Whether a schemars definition name is a Kubernetes API type (k8s-openapi names its
/// schemas after the OpenAPI definitions: `io.k8s.api.core.v1.Container`, ...).
fn is_kubernetes_type(name: &str) -> bool {
    name.starts_with("io.k8s.") || KUBERNETES_SHAPED.contains(&name)
}

/// A place where a kind's schema embeds a Kubernetes API type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EmbeddedType {
    /// Path of the embedded schema, in the syntax of [`at`] (`spec.podTemplateSpec`,
    /// `spec.racks[].affinity`, `spec.resources.requests{}`).
    pub path: String,
    /// The schema name of the Kubernetes type (`io.k8s.api.core.v1.PodTemplateSpec`).
    pub type_name: String,
    /// Whether our field documents itself (a doc comment on the field embedding the type);
    /// false for list items and map values, whose field is documented one level up.
    pub described_by_us: bool,
}

/// Every place where the schema of `K` embeds a Kubernetes API type, outermost only (what a
/// Kubernetes type embeds is part of it).
///
/// The schema is generated with definitions kept apart (not inlined, unlike the CRD), so each
/// `$ref` names the type behind it; the walk follows our own types and stops at Kubernetes
/// ones. Paths are those of the inlined CRD schema, where kube's structural rewriting keeps
/// property names, list items and map values where they were.
pub fn embedded_kubernetes_types<K: schemars::JsonSchema>() -> Vec<EmbeddedType> {
    use serde_json::Value;
    use std::collections::BTreeSet;

    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.meta_schema = None)
        .into_generator();
    let root = generator.into_root_schema_for::<K>().to_value();
    let empty = serde_json::Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    fn ref_name(schema: &Value) -> Option<&str> {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
    }

    /// The Kubernetes type this node is: a `$ref` to it, or a wrapper (`Option`'s `anyOf`
    /// with null) around such a `$ref`.
    fn kubernetes_ref(node: &Value) -> Option<String> {
        let decoded = |n: &str| n.replace("~1", "/").replace("~0", "~");
        if let Some(name) = ref_name(node).map(decoded) {
            return is_kubernetes_type(&name).then_some(name);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for branch in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = kubernetes_ref(branch) {
                    return Some(name);
                }
            }
        }
        None
    }

    fn walk(
        defs: &serde_json::Map<String, Value>,
        node: &Value,
        path: &str,
        property: bool,
        out: &mut BTreeSet<EmbeddedType>,
    ) {
        if !path.is_empty()
            && let Some(type_name) = kubernetes_ref(node)
        {
            out.insert(EmbeddedType {
                path: path.to_string(),
                type_name,
                // A description next to the `$ref` is the field's own (the referenced
                // type's lives in its definition).
                described_by_us: property && node.get("description").is_some(),
            });
            return;
        }
        if let Some(def) = ref_name(node).and_then(|n| defs.get(n)) {
            walk(defs, def, path, property, out);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for branch in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(defs, branch, path, property, out);
            }
        }
        for (name, p) in node
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(defs, p, &child, true, out);
        }
        if let Some(items) = node.get("items").filter(|i| i.is_object()) {
            walk(defs, items, &format!("{path}[]"), false, out);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            walk(defs, values, &format!("{path}{{}}"), false, out);
        }
    }

    let mut out = BTreeSet::new();
    walk(defs, &root, "", false, &mut out);
    out.into_iter().collect()
}

/// Removes every `description` at and below `schema`.
fn strip_descriptions(schema: &mut JSONSchemaProps) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    schema.description = None;
    for p in schema.properties.iter_mut().flat_map(|m| m.values_mut()) {
        strip_descriptions(p);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => strip_descriptions(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter_mut().for_each(strip_descriptions),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        strip_descriptions(s);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_items.as_mut() {
        strip_descriptions(s);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        list.iter_mut().flatten().for_each(strip_descriptions);
    }
    if let Some(not) = schema.not.as_mut() {
        strip_descriptions(not);
    }
}

/// How k8s-openapi describes the `name` of a `LocalObjectReference`, also where the type is
/// inlined (`SecretKeySelector`, `ConfigMapKeySelector`, `SecretEnvSource`, ...).
const LOCAL_OBJECT_REFERENCE_NAME: &str = "Name of the referent. This field is effectively required, but due to backwards compatibility is allowed to be empty.";

/// Makes the `name` of every (inlined) `LocalObjectReference` at and below `schema` what
/// Kubernetes declares (`+default=""`, optional) and upstream's CRDs carry: not required,
/// `default: ""`. k8s-openapi turns a defaulted field into a required one, which refused
/// manifests upstream accepts (`perNodeConfigMapRef: {}`). Found by the field's own
/// description, so it runs before descriptions are stripped.
fn relax_local_object_references(schema: &mut JSONSchemaProps) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSON, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    let reference_name = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("name"))
        .and_then(|n| n.description.as_deref())
        .is_some_and(|d| d.starts_with(LOCAL_OBJECT_REFERENCE_NAME));
    if reference_name {
        if let Some(required) = schema.required.as_mut() {
            required.retain(|r| r != "name");
            if required.is_empty() {
                schema.required = None;
            }
        }
        if let Some(name) = schema.properties.as_mut().and_then(|p| p.get_mut("name")) {
            name.default = Some(JSON(serde_json::Value::String(String::new())));
        }
    }
    for p in schema.properties.iter_mut().flat_map(|m| m.values_mut()) {
        relax_local_object_references(p);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => relax_local_object_references(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => {
            list.iter_mut().for_each(relax_local_object_references)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        relax_local_object_references(s);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        list.iter_mut()
            .flatten()
            .for_each(relax_local_object_references);
    }
}

/// The CRD of `K`, without the descriptions of the Kubernetes API types it embeds.
///
/// Those descriptions (pod templates, containers, affinity, volumes, ...) made up most of the
/// generated YAML: with them the K8ssandraCluster CRD alone was 2.1 MB and the chart's Helm
/// release did not fit the 1 MiB of a Secret. They document Kubernetes, not this API; the
/// fields our types define keep theirs, and so does each of our fields that embeds a
/// Kubernetes type. Only `description` is removed: types, validations and `x-kubernetes-*`
/// markers stay as generated.
pub fn crd<K>() -> CustomResourceDefinition
where
    K: kube::CustomResourceExt + schemars::JsonSchema,
{
    let mut crd = K::crd();
    for embedded in embedded_kubernetes_types::<K>() {
        let node = at(&mut crd, &embedded.path);
        relax_local_object_references(node);
        let own = node.description.take().filter(|_| embedded.described_by_us);
        strip_descriptions(node);
        node.description = own;
    }
    crd
}
