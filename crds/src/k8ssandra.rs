//! placeholder
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![]
}
