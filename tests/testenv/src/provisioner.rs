//! A tiny dynamic provisioner for the `standard` StorageClass.
//!
//! Nothing in a kubelet-less cluster provisions volumes, so StatefulSet pods would stay
//! Pending. For each pending claim of our class (once the scheduler has picked a node, as the
//! class binds on first consumer) we create a hostPath PersistentVolume pre-bound through
//! `claimRef` and pinned to the node's zone; the PV controller in kube-controller-manager then
//! binds both sides. Released volumes of our class are deleted, as `reclaimPolicy: Delete`
//! asks. The watches back off and resume on their own, so an API server restart is harmless.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

/// Name of the default StorageClass every cluster gets.
pub const STORAGE_CLASS: &str = "standard";
/// The provisioner name of that class.
pub const PROVISIONER: &str = "testenv.k8ssandra.io/hostpath";

const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

pub(crate) fn storage_class() -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(
                "storageclass.kubernetes.io/is-default-class".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        allow_volume_expansion: Some(true),
        ..Default::default()
    }
}

/// Runs until aborted.
pub(crate) async fn run(client: kube::Client, volume_root: std::path::PathBuf) {
    let claims = watch_claims(client.clone(), volume_root);
    let released = watch_released(client);
    futures::join!(claims, released);
}

async fn watch_claims(client: kube::Client, volume_root: std::path::PathBuf) {
    let pvcs: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let stream = watcher(pvcs, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(pvc) => {
                if let Err(e) = provision(&client, &pvc, &volume_root).await {
                    tracing::warn!(
                        pvc = pvc.metadata.name.as_deref().unwrap_or_default(),
                        namespace = pvc.metadata.namespace.as_deref().unwrap_or_default(),
                        error = %e,
                        "provisioning failed (retried on the next event)"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "claim watch interrupted"),
        }
    }
}

fn wants_volume(pvc: &PersistentVolumeClaim) -> bool {
    let Some(spec) = pvc.spec.as_ref() else {
        return false;
    };
    pvc.metadata.deletion_timestamp.is_none()
        && spec.storage_class_name.as_deref() == Some(STORAGE_CLASS)
        && spec.volume_name.as_deref().unwrap_or_default().is_empty()
        && pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound")
}

async fn provision(
    client: &kube::Client,
    pvc: &PersistentVolumeClaim,
    volume_root: &std::path::Path,
) -> Result<(), kube::Error> {
    if !wants_volume(pvc) {
        return Ok(());
    }
    let (Some(name), Some(namespace), Some(uid), Some(spec)) = (
        pvc.metadata.name.as_ref(),
        pvc.metadata.namespace.as_ref(),
        pvc.metadata.uid.as_ref(),
        pvc.spec.as_ref(),
    ) else {
        return Ok(());
    };
    // WaitForFirstConsumer: the scheduler names the node once a pod using the claim fits.
    let Some(node_name) = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE))
    else {
        return Ok(());
    };
    let node = Api::<Node>::all(client.clone()).get(node_name).await?;
    let zone = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ZONE_LABEL))
        .cloned();

    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_else(|| Quantity("1Gi".into()));
    let pv_name = format!("pvc-{uid}");
    let node_affinity = zone.map(|zone| VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: ZONE_LABEL.into(),
                    operator: "In".into(),
                    values: Some(vec![zone]),
                }]),
                ..Default::default()
            }],
        }),
    });
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                PROVISIONER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: spec
                .access_modes
                .clone()
                .or_else(|| Some(vec!["ReadWriteOnce".into()])),
            volume_mode: spec.volume_mode.clone(),
            storage_class_name: Some(STORAGE_CLASS.into()),
            persistent_volume_reclaim_policy: Some("Delete".into()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: volume_root.join(&pv_name).to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity,
            ..Default::default()
        }),
        status: None,
    };
    match Api::<PersistentVolume>::all(client.clone())
        .create(&PostParams::default(), &pv)
        .await
    {
        Ok(_) => {
            tracing::debug!(pv = %pv_name, pvc = %name, %namespace, "provisioned");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn watch_released(client: kube::Client) {
    let pvs: Api<PersistentVolume> = Api::all(client);
    let stream = watcher(pvs.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        let Ok(pv) = item else { continue };
        let ours = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROVISIONED_BY))
            .is_some_and(|p| p == PROVISIONER);
        let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        let delete_policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        if ours && released && delete_policy && pv.metadata.deletion_timestamp.is_none() {
            let Some(name) = pv.metadata.name.as_deref() else {
                continue;
            };
            match pvs.delete(name, &DeleteParams::default()).await {
                Ok(_) => tracing::debug!(pv = name, "deleted released volume"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!(pv = name, error = %e, "deleting released volume failed"),
            }
        }
    }
}
