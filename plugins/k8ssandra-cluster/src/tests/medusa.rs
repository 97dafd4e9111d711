//! `spec.medusa`: the CQL Secret and role, ConfigMap `<kc>-medusa`, the containers and
//! volumes in the datacenters' pod template, bad settings.

use super::*;

fn medusa_s3() -> Value {
    json!({
        "storageProperties": {
            "storageProvider": "s3_compatible",
            "bucketName": "backups",
            "storageSecretRef": {"name": "medusa-bucket-key"},
            "host": "minio.storage.svc",
            "port": 9000,
            "secure": false,
            "region": "us-east-1",
            "maxBackupCount": 7,
            "transferMaxBandwidth": "50MB/s",
        }
    })
}

/// Two datacenters (contexts A and B), the superuser Secret replicated, dc1 created.
fn world_with(medusa: Value) -> World {
    let mut kc = two_dcs();
    kc["spec"]["medusa"] = medusa;
    let mut w = World::new(kc);
    w.secret("");
    w.secret("A");
    w.secret("B");
    w
}

fn config_maps(plan: &Plan) -> Vec<(String, Value)> {
    plan.apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("ConfigMap"))
        .map(|o| (o.cluster.clone(), o.value().unwrap()))
        .collect()
}

fn ini(plan: &Plan, cluster: &str) -> String {
    config_maps(plan)
        .into_iter()
        .find(|(c, _)| c == cluster)
        .map(|(_, v)| v["data"]["medusa.ini"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no ConfigMap in {cluster:?}"))
}

/// The lines of one `[section]` of an ini text.
fn section(ini: &str, name: &str) -> Vec<String> {
    ini.split("\n\n")
        .find(|s| s.starts_with(&format!("[{name}]")))
        .unwrap_or_else(|| panic!("no [{name}] in {ini}"))
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[test]
fn config_map_holds_the_s3_compatible_settings() {
    let w = world_with(medusa_s3());
    let plan = w.plan();
    let cms = config_maps(&plan);
    assert_eq!(cms.len(), 1, "only dc1 is planned so far");
    let (ctx, cm) = &cms[0];
    assert_eq!(ctx, "A");
    assert_eq!(cm["metadata"]["name"], "demo-medusa");
    assert_eq!(cm["metadata"]["namespace"], NS);
    let text = ini(&plan, "A");
    assert_eq!(section(&text, "cassandra"), ["use_sudo = false"]);
    assert_eq!(
        section(&text, "storage"),
        [
            "use_sudo_for_restore = false",
            "storage_provider = s3_compatible",
            "bucket_name = backups",
            "key_file = /etc/medusa-secrets/credentials",
            "prefix = demo",
            "max_backup_age = 0",
            "max_backup_count = 7",
            "region = us-east-1",
            "host = minio.storage.svc",
            "port = 9000",
            "secure = False",
            "ssl_verify = False",
            "transfer_max_bandwidth = 50MB/s",
            "concurrent_transfers = 1",
        ]
    );
    assert_eq!(section(&text, "grpc"), ["enabled = 1"]);
    assert_eq!(section(&text, "logging"), ["level = DEBUG"]);
    assert_eq!(
        section(&text, "kubernetes"),
        [
            "use_mgmt_api = 1",
            "enabled = 1",
            "cassandra_url = http://127.0.0.1:8080/api/v0/ops/node/snapshots",
        ]
    );
}

#[test]
fn grpc_port_tls_and_management_api_tls_reach_the_ini_and_the_container() {
    let mut m = medusa_s3();
    m["storageProperties"]["secure"] = json!(true);
    m["storageProperties"]["sslVerify"] = json!(true);
    m["storageProperties"]["prefix"] = json!("team-a");
    m["serviceProperties"] = json!({"grpcPort": 50055, "encryption": {
        "clientSecretName": "medusa-client", "serverSecretName": "medusa-server"}});
    let mut w = world_with(m);
    w.kc["spec"]["cassandra"]["managementApiAuth"] =
        json!({"manual": {"clientSecretName": "mgmt-client", "serverSecretName": "mgmt-server"}});
    let plan = w.plan();
    let text = ini(&plan, "A");
    let storage = section(&text, "storage");
    assert!(storage.contains(&"secure = True".to_string()));
    assert!(storage.contains(&"ssl_verify = True".to_string()));
    assert!(storage.contains(&"prefix = team-a".to_string()));
    assert_eq!(
        section(&text, "grpc"),
        [
            "enabled = 1",
            "port = 50055",
            "ca_cert = /etc/certificates/grpc-server-certs/ca.crt",
            "tls_cert = /etc/certificates/grpc-server-certs/tls.crt",
            "tls_key = /etc/certificates/grpc-server-certs/tls.key",
        ]
    );
    let k = section(&text, "kubernetes");
    assert!(k.contains(&"cassandra_url = https://127.0.0.1:8080/api/v0/ops/node/snapshots".into()));
    assert!(k.contains(&"ca_cert = /etc/encryption/mgmt/ca.crt".into()));

    let dc1 = dc_obj(&plan, "dc1");
    let pod = &dc1["spec"]["podTemplateSpec"]["spec"];
    let medusa = named(&pod["containers"], "medusa");
    assert_eq!(
        medusa["ports"],
        json!([{"name": "grpc", "containerPort": 50055, "protocol": "TCP"}])
    );
    assert_eq!(
        medusa["readinessProbe"]["exec"]["command"],
        json!([
            "/bin/grpc_health_probe",
            "--addr=:50055",
            "--tls",
            "--tls-ca-cert=/etc/certificates/grpc-server-certs/ca.crt",
            "--tls-client-cert=/etc/certificates/grpc-server-certs/tls.crt",
            "--tls-client-key=/etc/certificates/grpc-server-certs/tls.key",
        ])
    );
    assert_eq!(
        named(&pod["volumes"], "grpc-server-certs")["secret"]["secretName"],
        "medusa-server"
    );
    assert_eq!(
        named(&pod["volumes"], "mgmt-encryption")["secret"]["secretName"],
        "mgmt-client"
    );
    let ann = &dc1["metadata"]["annotations"];
    assert_eq!(ann["medusa.k8ssandra.io/grpc-port"], "50055");
    assert_eq!(
        ann["medusa.k8ssandra.io/grpc-client-secret-name"],
        "medusa-client"
    );
}

#[test]
fn medusa_configuration_settings_are_merged_under_the_clusters_own() {
    let mut w = world_with(json!({
        "medusaConfigurationRef": {"name": "shared"},
        "storageProperties": {"prefix": "demo-prefix", "bucketName": "own-bucket", "port": 9001},
    }));
    w.related.push(Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaConfiguration",
            "metadata": {"name": "shared", "namespace": NS},
            "spec": {"storageProperties": {
                "storageProvider": "s3_compatible",
                "bucketName": "shared-bucket",
                "host": "s3.shared",
                "port": 9000,
                "storageSecretRef": {"name": "shared-key"},
                "concurrentTransfers": 4,
            }},
        })
        .to_string(),
    });
    let plan = w.plan();
    let storage = section(&ini(&plan, "A"), "storage");
    for want in [
        "storage_provider = s3_compatible",
        "bucket_name = own-bucket",
        "prefix = demo-prefix",
        "host = s3.shared",
        "port = 9001",
        "concurrent_transfers = 4",
        "key_file = /etc/medusa-secrets/credentials",
    ] {
        assert!(storage.contains(&want.to_string()), "{want} in {storage:?}");
    }
    // The configuration's storage Secret is mounted.
    let dc1 = dc_obj(&plan, "dc1");
    let pod = &dc1["spec"]["podTemplateSpec"]["spec"];
    assert_eq!(
        named(&pod["volumes"], "shared-key")["secret"]["secretName"],
        "shared-key"
    );
    assert_eq!(condition(&plan, "Valid").as_deref(), Some("True"));
}

#[test]
fn the_datacenter_gets_the_containers_volumes_and_role() {
    let w = world_with(medusa_s3());
    let plan = w.plan();
    let dc1 = dc_obj(&plan, "dc1");
    assert_eq!(
        dc1["spec"]["users"],
        json!([{"secretName": "demo-medusa", "superuser": true}])
    );
    let pod = &dc1["spec"]["podTemplateSpec"]["spec"];
    let medusa = named(&pod["containers"], "medusa");
    assert_eq!(medusa["image"], "docker.io/k8ssandra/medusa:0.29.1");
    assert_eq!(medusa["imagePullPolicy"], "IfNotPresent");
    let cql = |c: &Value| {
        json!([
            {"name": "CQL_USERNAME", "valueFrom": {"secretKeyRef": {"name": "demo-medusa", "key": "username"}}},
            {"name": "CQL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "demo-medusa", "key": "password"}}},
        ]) == json!(c["env"].as_array().unwrap()[3..])
    };
    assert_eq!(
        medusa["env"].as_array().unwrap()[..3],
        [
            json!({"name": "MEDUSA_MODE", "value": "GRPC"}),
            json!({"name": "MEDUSA_TMP_DIR", "value": "/var/lib/cassandra"}),
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        ]
    );
    assert!(cql(medusa));
    assert_eq!(
        medusa["ports"],
        json!([{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}])
    );
    for p in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            medusa[p],
            json!({"exec": {"command": ["/bin/grpc_health_probe", "--addr=:50051"]},
                "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 10})
        );
    }
    assert_eq!(
        medusa["resources"],
        json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"memory": "8Gi"}})
    );
    let want_mounts = json!([
        {"name": "server-config", "mountPath": "/etc/cassandra"},
        {"name": "server-data", "mountPath": "/var/lib/cassandra"},
        {"name": "demo-medusa", "mountPath": "/etc/medusa"},
        {"name": "podinfo", "mountPath": "/etc/podinfo"},
        {"name": "medusa-tmp", "mountPath": "/tmp"},
        {"name": "medusa-bucket-key", "mountPath": "/etc/medusa-secrets"},
    ]);
    assert_eq!(medusa["volumeMounts"], want_mounts);

    // medusa-restore runs after server-config-init, same image and mounts.
    let inits: Vec<_> = pod["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(inits, ["server-config-init", "medusa-restore"]);
    let restore = named(&pod["initContainers"], "medusa-restore");
    assert_eq!(restore["image"], medusa["image"]);
    assert_eq!(
        restore["env"][0],
        json!({"name": "MEDUSA_MODE", "value": "RESTORE"})
    );
    assert!(cql(restore));
    assert_eq!(restore["volumeMounts"], want_mounts);
    // A restore's parameters come only from the restore job's ConfigMap (optional: absent
    // between restores), never from the template.
    assert_eq!(
        restore["envFrom"],
        json!([{"configMapRef": {"name": format!("{}-medusa-restore", dc1["metadata"]["name"].as_str().unwrap()), "optional": true}}])
    );
    assert!(restore["env"].as_array().unwrap().iter().all(|e| {
        !["BACKUP_NAME", "RESTORE_KEY", "RESTORE_MAPPING"]
            .contains(&e["name"].as_str().unwrap_or_default())
    }));

    assert_eq!(
        named(&pod["volumes"], "demo-medusa"),
        &json!({"name": "demo-medusa", "configMap": {"name": "demo-medusa"}})
    );
    assert_eq!(
        named(&pod["volumes"], "medusa-bucket-key"),
        &json!({"name": "medusa-bucket-key", "secret": {"secretName": "medusa-bucket-key"}})
    );
    assert_eq!(
        named(&pod["volumes"], "podinfo")["downwardAPI"]["items"],
        json!([{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}])
    );
    assert_eq!(
        named(&pod["volumes"], "medusa-tmp"),
        &json!({"name": "medusa-tmp", "emptyDir": {}})
    );
}

#[test]
fn the_cql_secret_is_generated_and_replicated_like_the_superuser_secret() {
    let w = world_with(medusa_s3());
    let plan = w.plan();
    let s = plan
        .secrets
        .iter()
        .find(|s| s.name == "demo-medusa")
        .expect("medusa Secret generated");
    assert_eq!((s.cluster.as_str(), s.namespace.as_str()), ("", NS));
    assert_eq!(
        s.fixed,
        [("username".to_string(), "demo-medusa".to_string())]
    );
    assert_eq!(s.random_keys, ["password"]);
    let superuser = plan
        .secrets
        .iter()
        .find(|s| s.name == "demo-superuser")
        .map(|s| s.labels.clone());
    // Same labels: the cluster's one ReplicatedSecret copies it to A and B.
    let mut got = s.labels.clone();
    got.sort();
    let mut want = superuser.unwrap_or_else(|| {
        vec![
            ("k8ssandra.io/cluster-name".into(), "demo".into()),
            ("k8ssandra.io/cluster-namespace".into(), NS.into()),
            (
                "k8ssandra.io/replicated-by".into(),
                "k8ssandracluster-controller".into(),
            ),
        ]
    });
    want.sort();
    assert_eq!(got, want);
    let rs = plan
        .apply
        .iter()
        .find(|o| o.kind().as_deref() == Some("ReplicatedSecret"))
        .expect("ReplicatedSecret")
        .value()
        .unwrap();
    for (k, v) in &got {
        assert_eq!(rs["spec"]["selector"]["matchLabels"][k], json!(v), "{k}");
    }
}

#[test]
fn a_given_user_secret_or_external_secrets_generate_nothing() {
    let mut m = medusa_s3();
    m["cassandraUserSecretRef"] = json!({"name": "my-medusa-user"});
    let plan = world_with(m).plan();
    assert!(plan.secrets.iter().all(|s| !s.name.contains("medusa")));
    let dc1 = dc_obj(&plan, "dc1");
    assert_eq!(
        dc1["spec"]["users"],
        json!([{"secretName": "my-medusa-user", "superuser": true}])
    );
    let medusa = named(
        &dc1["spec"]["podTemplateSpec"]["spec"]["containers"],
        "medusa",
    );
    assert_eq!(
        medusa["env"][3]["valueFrom"]["secretKeyRef"]["name"],
        "my-medusa-user"
    );

    let mut w = world_with(medusa_s3());
    w.kc["spec"]["secretsProvider"] = json!("external");
    let plan = w.plan();
    assert!(plan.secrets.iter().all(|s| !s.name.contains("medusa")));
    let dc1 = dc_obj(&plan, "dc1");
    assert!(dc1["spec"].get("users").is_none());
    let medusa = named(
        &dc1["spec"]["podTemplateSpec"]["spec"]["containers"],
        "medusa",
    );
    assert_eq!(medusa["env"].as_array().unwrap().len(), 3);
}

#[test]
fn enabling_medusa_on_a_running_cluster_changes_the_pod_template_once() {
    let mut w = both_ready();
    let before = dc_obj(&w.plan(), "dc1");
    w.kc["spec"]["medusa"] = medusa_s3();
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    let after = dc_obj(&plan, "dc1");
    assert_ne!(
        before["spec"]["podTemplateSpec"],
        after["spec"]["podTemplateSpec"]
    );
    // Everything else of the datacenter stays as it was.
    for f in ["size", "config", "storageConfig", "serverVersion", "racks"] {
        assert_eq!(before["spec"][f], after["spec"][f], "{f}");
    }
    assert_eq!(config_maps(&plan).len(), 2, "a ConfigMap per datacenter");
    // Applied once, the next plan asks for the same template: no second roll.
    w.sync(&plan);
    let again = dc_obj(&w.plan(), "dc1");
    assert_eq!(
        again["spec"]["podTemplateSpec"],
        after["spec"]["podTemplateSpec"]
    );
}

#[test]
fn a_container_image_overrides_the_default_field_by_field() {
    let mut m = medusa_s3();
    m["containerImage"] = json!({"registry": "registry.example.com:5000", "tag": "0.30.0",
        "pullSecretRef": {"name": "regcred"}});
    let plan = world_with(m).plan();
    let dc1 = dc_obj(&plan, "dc1");
    let pod = &dc1["spec"]["podTemplateSpec"]["spec"];
    for (list, name) in [
        ("containers", "medusa"),
        ("initContainers", "medusa-restore"),
    ] {
        assert_eq!(
            named(&pod[list], name)["image"],
            "registry.example.com:5000/k8ssandra/medusa:0.30.0"
        );
    }
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
}

#[test]
fn a_users_medusa_restore_keeps_its_place_and_other_fields() {
    let mut w = world_with(medusa_s3());
    w.kc["spec"]["cassandra"]["initContainers"] = json!([
        {"name": "medusa-restore", "imagePullPolicy": "Always", "args": ["--debug"]},
        {"name": "server-config-init"},
    ]);
    let plan = w.plan();
    let dc1 = dc_obj(&plan, "dc1");
    let inits = &dc1["spec"]["podTemplateSpec"]["spec"]["initContainers"];
    let names: Vec<_> = inits
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["medusa-restore", "server-config-init"]);
    let r = named(inits, "medusa-restore");
    assert_eq!(r["args"], json!(["--debug"]));
    assert_eq!(r["image"], "docker.io/k8ssandra/medusa:0.29.1");
}

/// (reason, message) of Valid, and the datacenter as it runs: nothing changed.
fn refused(medusa: Value, related: Vec<Object>) -> (String, String) {
    let mut w = both_ready();
    let before = dc_obj(&w.plan(), "dc1");
    w.kc["spec"]["medusa"] = medusa;
    w.kc["metadata"]["generation"] = json!(2);
    w.related.extend(related);
    let plan = w.plan();
    assert_eq!(condition(&plan, "Valid").as_deref(), Some("False"));
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"],
        before["spec"],
        "dc1 unchanged"
    );
    assert!(config_maps(&plan).is_empty());
    condition_detail(&plan, "Valid").unwrap()
}

#[test]
fn bad_settings_name_the_field_and_change_nothing() {
    let mut m = medusa_s3();
    m["storageProperties"]
        .as_object_mut()
        .unwrap()
        .remove("bucketName");
    let (_, msg) = refused(m, vec![]);
    assert!(
        msg.contains("spec.medusa.storageProperties.bucketName"),
        "{msg}"
    );

    let mut m = medusa_s3();
    m["storageProperties"]["transferMaxBandwidth"] = json!("fast");
    let (_, msg) = refused(m, vec![]);
    assert!(
        msg.contains("spec.medusa.storageProperties.transferMaxBandwidth"),
        "{msg}"
    );

    let mut m = medusa_s3();
    m["storageProperties"]["port"] = json!(70000);
    let (_, msg) = refused(m, vec![]);
    assert!(msg.contains("spec.medusa.storageProperties.port"), "{msg}");

    let mut m = medusa_s3();
    m["storageProperties"]["bucketName"] = json!("b\n[grpc]");
    let (_, msg) = refused(m, vec![]);
    assert!(
        msg.contains("spec.medusa.storageProperties.bucketName: must be a single line"),
        "{msg}"
    );

    let mut m = medusa_s3();
    m["readinessProbe"] = json!({"httpGet": {"port": 8080, "path": "/"}});
    let (_, msg) = refused(m, vec![]);
    assert!(msg.contains("spec.medusa.readinessProbe"), "{msg}");

    // A MedusaConfiguration that does not exist, and one that lacks the provider.
    let m = json!({"medusaConfigurationRef": {"name": "nope"},
        "storageProperties": {"prefix": "p"}});
    let (_, msg) = refused(m, vec![]);
    assert!(
        msg.contains("spec.medusa.medusaConfigurationRef.name") && msg.contains("\"nope\""),
        "{msg}"
    );
    let m = json!({"medusaConfigurationRef": {"name": "shared"},
        "storageProperties": {"prefix": "p"}});
    let config = Object {
        cluster: String::new(),
        json: json!({"apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaConfiguration",
            "metadata": {"name": "shared", "namespace": NS},
            "spec": {"storageProperties": {"bucketName": "b"}}})
        .to_string(),
    };
    let (_, msg) = refused(m, vec![config]);
    assert!(
        msg.contains("spec.medusa.storageProperties.storageProvider"),
        "{msg}"
    );
}

#[test]
fn a_refused_spec_keeps_the_live_config_maps() {
    let mut w = both_ready();
    w.kc["spec"]["medusa"] = medusa_s3();
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    w.sync(&plan);
    for (cluster, cm) in config_maps(&plan) {
        w.children.push(Object {
            cluster,
            json: cm.to_string(),
        });
    }
    w.kc["spec"]["medusa"]["storageProperties"]["port"] = json!(-1);
    w.kc["metadata"]["generation"] = json!(3);
    let refused = w.plan();
    assert_eq!(condition(&refused, "Valid").as_deref(), Some("False"));
    let kept = config_maps(&refused);
    assert_eq!(kept.len(), 2);
    assert_eq!(
        kept[0].1["data"]["medusa.ini"],
        config_maps(&plan)[0].1["data"]["medusa.ini"]
    );
    assert_eq!(
        dc_obj(&refused, "dc1")["spec"],
        dc_obj(&plan, "dc1")["spec"]
    );
}

#[test]
fn the_config_map_ships_the_selective_restore_module_beside_medusa_ini() {
    let plan = world_with(medusa_s3()).plan();
    let (_, cm) = &config_maps(&plan)[0];
    let module = cm["data"]["sitecustomize.py"].as_str().unwrap_or_default();
    // The volume the init container already mounts at /etc/medusa carries it: no template
    // change. It acts only on the restore's names.
    assert!(
        module.contains("MEDUSA_RESTORE_KEYSPACES") && module.contains("MEDUSA_RESTORE_TABLES")
    );
    assert!(module.contains("medusa.restore_node"));
    let data: Vec<&String> = cm["data"].as_object().unwrap().keys().collect();
    assert_eq!(data, ["medusa.ini", "sitecustomize.py"]);
}
