//! Several TestEnvs in one process: separate slots, ports and directories, independent
//! lifetimes. And a missing binary is an error, not a skip.

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use k8ssandra_testenv::{Error, TestEnv, TestEnvOptions, procscan};
use kube::api::{Api, PostParams};

fn one_cluster() -> TestEnvOptions {
    TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 3,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envs_started_together_are_independent() -> Result<()> {
    let (a, b) = tokio::join!(TestEnv::start(one_cluster()), TestEnv::start(one_cluster()));
    let (a, b) = (a?, b?);
    assert_ne!(a.cluster(0).slot(), b.cluster(0).slot());
    assert_ne!(a.cluster(0).server_url(), b.cluster(0).server_url());
    assert_ne!(a.root_dir(), b.root_dir());

    // Same context name, different clusters: an object made in one is absent in the other.
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "only-in-a" }
    }))?;
    Api::<Namespace>::all(a.cluster(0).client())
        .create(&PostParams::default(), &ns)
        .await?;
    let in_b = Api::<Namespace>::all(b.cluster(0).client())
        .get_opt("only-in-a")
        .await?;
    assert!(in_b.is_none());

    let a_root = a.root_dir().to_string_lossy().into_owned();
    drop(a);
    assert!(procscan::processes_referencing(&a_root).is_empty());
    // The other env is untouched.
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(b.cluster(0).client())
        .list(&Default::default())
        .await?;
    assert_eq!(nodes.items.len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_missing_binary_is_an_error_naming_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = TestEnv::start(TestEnvOptions {
        bin_dir: Some(empty.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    match err {
        Error::MissingBinary { name, dir } => {
            assert_eq!(name, "etcd");
            assert_eq!(dir, empty.path());
        }
        other => panic!("unexpected error: {other}"),
    }
}
