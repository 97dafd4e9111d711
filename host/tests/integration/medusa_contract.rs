//! Contract test against the real Medusa gRPC server (PyPI `cassandra-medusa`, installed by
//! scripts/install-medusa.sh into a cache outside the repository; `$MEDUSA_PYTHON` names
//! its python). Backups are written in Medusa's own `local` storage layout by the
//! simulator's store (`cassandra_sim::medusa_store`); the real server reads them and our
//! host client must agree with what was written, for GetBackups, GetBackup, BackupStatus,
//! PurgeBackups, DeleteBackup and PrepareRestore, in plain text and with mutual TLS. A
//! missing Python or Medusa fails the test.
//!
//! Medusa runs as node `10.0.0.2` of a two-node datacenter (`[storage] fqdn`): BackupStatus
//! and PurgeBackups act on that node's backups, GetBackups on the whole cluster's. No
//! Cassandra runs: listing, status and purge need only the storage; PrepareRestore needs
//! a CQL connection to 127.0.0.1 to map hosts, so its success path is not reachable here
//! and the test pins how far it gets (backup found, completeness checked, then the CQL
//! connection refused).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cassandra_sim::medusa_store::{BackupFile, MedusaStore, NodeBackup, TokenMapEntry};
use k8ssandra_host::dataplane::medusa::{
    BackupNode, BackupStatus, BackupSummary, MedusaClient, MedusaDeadlines, MedusaError,
    MedusaStatus, MedusaTarget, MedusaTls, PurgeStats,
};

use crate::support;

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const DAY: i64 = 86_400;

/// Medusa's python: `$MEDUSA_PYTHON` (scripts/test.sh exports it), else the install
/// script's (quick when cached).
fn medusa_python() -> Result<String> {
    if let Ok(p) = std::env::var("MEDUSA_PYTHON") {
        return Ok(p);
    }
    // The module's tests share one answer (and one install).
    static PYTHON: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| install_medusa().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn install_medusa() -> Result<String> {
    let script = support::workspace_root().join("scripts/install-medusa.sh");
    let out = Command::new(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "the real Medusa server is required (scripts/install-medusa.sh failed): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    let python = stdout.lines().last().unwrap_or_default().trim().to_string();
    if python.is_empty() {
        bail!("scripts/install-medusa.sh printed no python path");
    }
    Ok(python)
}

/// The Medusa server process, killed on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn ring() -> BTreeMap<String, TokenMapEntry> {
    let mut ring = BTreeMap::new();
    ring.insert(
        A.to_string(),
        TokenMapEntry {
            tokens: vec![-6_148_914_691_236_517_206, 3_074_457_345_618_258_602],
            is_up: true,
            rack: "r1".into(),
            dc: "dc1".into(),
        },
    );
    ring.insert(
        B.to_string(),
        TokenMapEntry {
            tokens: vec![-3_074_457_345_618_258_603, 6_148_914_691_236_517_205],
            is_up: true,
            rack: "r2".into(),
            dc: "dc1".into(),
        },
    );
    ring
}

fn file(table: &str, name: &str, len: usize) -> BackupFile {
    BackupFile {
        keyspace: "ks1".into(),
        table: table.into(),
        name: name.into(),
        contents: vec![b'x'; len],
    }
}

fn node_backup(
    name: &str,
    fqdn: &str,
    differential: bool,
    started: i64,
    finished: Option<i64>,
    files: Vec<BackupFile>,
) -> NodeBackup {
    NodeBackup {
        backup_name: name.into(),
        fqdn: fqdn.into(),
        differential,
        started,
        finished,
        tokenmap: ring(),
        schema:
            "CREATE KEYSPACE ks1 WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2};"
                .into(),
        release_version: "5.0.4".into(),
        files,
    }
}

fn expected_nodes() -> Vec<BackupNode> {
    ring()
        .into_iter()
        .map(|(host, e)| BackupNode {
            host,
            tokens: e.tokens,
            datacenter: e.dc,
            rack: e.rack,
        })
        .collect()
}

fn size_of(b: &NodeBackup) -> i64 {
    b.files.iter().map(|f| f.contents.len() as i64).sum()
}

/// Every file below `dir` and their total size.
fn walk(dir: &Path) -> Result<(i32, i64)> {
    let (mut n, mut size) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let (m, s) = walk(&entry.path())?;
            n += m;
            size += s;
        } else {
            n += 1;
            size += entry.metadata()?.len() as i64;
        }
    }
    Ok((n, size))
}

/// What Medusa's BackupStatus prints (`%Y-%m-%d %H:%M:%S`, the server runs with TZ=UTC).
fn medusa_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `grpc_tls`: extra lines of the `[grpc]` section (Medusa's `ca_cert`, `tls_cert`,
/// `tls_key` for mutual TLS).
fn start_server(dir: &Path, port: u16, cql_port: u16, grpc_tls: &str) -> Result<Server> {
    let python = medusa_python()?;
    // Read only by PrepareRestore (Medusa's Cassandra helper parses it before connecting).
    let data = dir.join("cassandra-data");
    std::fs::create_dir_all(&data)?;
    let cassandra_yaml = dir.join("cassandra.yaml");
    std::fs::write(
        &cassandra_yaml,
        format!(
            "cluster_name: kc\n\
             data_file_directories: [{data}]\n\
             commitlog_directory: {data}/commitlog\n\
             saved_caches_directory: {data}/saved_caches\n\
             listen_address: 127.0.0.1\n\
             rpc_address: 127.0.0.1\n\
             storage_port: 7000\n\
             native_transport_port: {cql_port}\n\
             seed_provider:\n\
             \x20 - class_name: org.apache.cassandra.locator.SimpleSeedProvider\n\
             \x20   parameters:\n\
             \x20     - seeds: 127.0.0.1\n",
            data = data.display(),
        ),
    )?;
    let ini = dir.join("medusa.ini");
    std::fs::write(
        &ini,
        format!(
            "[cassandra]\n\
             config_file = {yaml}\n\
             use_sudo = False\n\
             resolve_ip_addresses = False\n\
             \n\
             [storage]\n\
             storage_provider = local\n\
             base_path = {base}\n\
             bucket_name = bucket\n\
             prefix = kc\n\
             fqdn = {B}\n\
             max_backup_age = 30\n\
             max_backup_count = 0\n\
             backup_grace_period_in_days = 10\n\
             \n\
             [grpc]\n\
             enabled = 1\n\
             port = {port}\n\
             {grpc_tls}\n\
             \n\
             [kubernetes]\n\
             enabled = False\n\
             \n\
             [logging]\n\
             level = DEBUG\n",
            yaml = cassandra_yaml.display(),
            base = dir.join("storage").display(),
        ),
    )?;
    let log = dir.join("medusa.log");
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    // The server reads its configuration path from argv[2].
    let child = Command::new(&python)
        .args(["-m", "medusa.service.grpc.server", "server"])
        .arg(&ini)
        .current_dir(dir)
        .env("TZ", "UTC")
        .env_remove("POD_IP")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {python} -m medusa.service.grpc.server"))?;
    Ok(Server { child, log })
}

#[tokio::test]
async fn the_real_medusa_server_and_our_client_agree() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = MedusaStore::new(dir.path().join("storage"), "bucket", "kc");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;

    // Three backups of different ages: a full one from 40 days ago (older than the
    // configured max age of 30 days), a finished differential one, and one where node B
    // has uploaded a file but not finished.
    let old = now - 40 * DAY;
    let mid = now - 2 * DAY;
    let new = now - 3600;
    let backups = [
        node_backup(
            "old-full",
            A,
            false,
            old,
            Some(old + 600),
            vec![
                file("t1", "nb-1-big-Data.db", 300),
                file("t1", "nb-1-big-Index.db", 40),
            ],
        ),
        node_backup(
            "old-full",
            B,
            false,
            old + 5,
            Some(old + 700),
            vec![file("t1", "nb-1-big-Data.db", 500)],
        ),
        node_backup(
            "mid-diff",
            A,
            true,
            mid,
            Some(mid + 300),
            vec![file("t1", "nb-2-big-Data.db", 1000)],
        ),
        node_backup(
            "mid-diff",
            B,
            true,
            mid + 2,
            Some(mid + 400),
            vec![
                file("t1", "nb-2-big-Data.db", 2000),
                file("t2", "nb-1-big-Data.db", 30),
            ],
        ),
        node_backup(
            "new-diff",
            A,
            true,
            new,
            Some(new + 120),
            vec![file("t1", "nb-3-big-Data.db", 64)],
        ),
        node_backup(
            "new-diff",
            B,
            true,
            new + 1,
            None,
            vec![file("t1", "nb-3-big-Data.db", 128)],
        ),
    ];
    for b in &backups {
        store.write_node_backup(b)?;
    }
    // Data files of node B no backup lists: one past the 10-day grace period, one within.
    let stale = store.write_orphan_file(
        B,
        &file("t9", "nb-9-big-Data.db", 77),
        Duration::from_secs(20 * DAY as u64),
    )?;
    let fresh = store.write_orphan_file(
        B,
        &file("t9", "nb-10-big-Data.db", 11),
        Duration::from_secs(DAY as u64),
    )?;

    let port = support::free_port();
    // Nothing listens there: PrepareRestore's CQL connection is refused.
    let cql_port = support::free_port();
    let mut server = start_server(dir.path(), port, cql_port, "")?;
    let target = MedusaTarget {
        endpoint: format!("127.0.0.1:{port}"),
        tls: None,
    };
    let client = MedusaClient::new().with_deadlines(MedusaDeadlines {
        get: Duration::from_secs(20),
        status: Duration::from_secs(20),
        purge: Duration::from_secs(60),
        prepare_restore: Duration::from_secs(60),
        ..MedusaDeadlines::default()
    });

    let listed = first_listing(&client, &target, &mut server).await?;

    // GetBackups: the whole cluster's backups, oldest first.
    let summary = |name: &str,
                   started: i64,
                   finished: i64,
                   finished_nodes: i32,
                   status,
                   kind: &str,
                   parts: &[&NodeBackup]| BackupSummary {
        backup_name: name.into(),
        start_time: started,
        finish_time: finished,
        total_nodes: 2,
        finished_nodes,
        nodes: expected_nodes(),
        status,
        backup_type: kind.into(),
        total_size: parts.iter().map(|b| size_of(b)).sum(),
        total_objects: parts.iter().map(|b| b.files.len() as i64).sum(),
    };
    let expected = vec![
        summary(
            "old-full",
            old,
            old + 700,
            2,
            MedusaStatus::Success,
            "full",
            &[&backups[0], &backups[1]],
        ),
        summary(
            "mid-diff",
            mid,
            mid + 400,
            2,
            MedusaStatus::Success,
            "differential",
            &[&backups[2], &backups[3]],
        ),
        // Unfinished: no finish time, only A counted (size and objects of finished nodes).
        summary(
            "new-diff",
            new,
            0,
            1,
            MedusaStatus::InProgress,
            "differential",
            &[&backups[4]],
        ),
    ];
    assert_eq!(
        listed,
        expected,
        "GetBackups\nmedusa log:\n{}",
        support::tail(&server.log_text(), 20)
    );

    // GetBackup: the same summary; an unknown name is an error Medusa reports as INTERNAL.
    let one = client.get_backup(&target, "mid-diff").await?;
    assert_eq!(one, expected[1]);
    let unknown = client.get_backup(&target, "no-such-backup").await;
    assert!(
        matches!(&unknown, Err(MedusaError::Call { op: "GetBackup", code, message }) if code == "Internal" && message.contains("no-such-backup")),
        "{unknown:?}"
    );

    // BackupStatus: node B's own part, times formatted by Medusa.
    let status = client.backup_status(&target, "mid-diff").await?;
    assert_eq!(
        status,
        BackupStatus {
            start_time: medusa_time(mid + 2),
            finish_time: medusa_time(mid + 400),
            status: MedusaStatus::Success,
        }
    );
    // B never finished new-diff and this server did not start it: Medusa says FAILED
    // (what a backup abandoned by a restarted Medusa looks like), with no finish time.
    let status = client.backup_status(&target, "new-diff").await?;
    assert_eq!(
        status,
        BackupStatus {
            start_time: medusa_time(new + 1),
            finish_time: String::new(),
            status: MedusaStatus::Failed,
        }
    );
    let missing = client.backup_status(&target, "no-such-backup").await;
    assert!(
        matches!(&missing, Err(MedusaError::NotFound(m)) if m.contains("no-such-backup")),
        "{missing:?}"
    );

    // PrepareRestore: an unknown backup is refused by name. A known one gets as far as
    // the CQL connection to the local node (refused: no Cassandra here), which Medusa
    // needs to map backup hosts to the ring. Medusa does not refuse an incomplete backup
    // there (its completeness check reads the string "False" of `[kubernetes] enabled`
    // as true and is skipped): the operator must check completeness itself.
    let prepare = |backup: &'static str| {
        let client = client.clone();
        let target = target.clone();
        async move {
            client
                .prepare_restore(&target, "dc1", backup, "restore-key-1")
                .await
        }
    };
    let unknown = prepare("no-such-backup").await;
    assert!(
        matches!(&unknown, Err(MedusaError::Call { op: "PrepareRestore", code, message }) if code == "Internal" && message.contains("no-such-backup") && message.contains("does not exist")),
        "{unknown:?}"
    );
    for backup in ["mid-diff", "new-diff"] {
        let refused = prepare(backup).await;
        let cql = format!("127.0.0.1:{cql_port}");
        assert!(
            matches!(&refused, Err(MedusaError::Call { op: "PrepareRestore", code, message }) if code == "Internal" && message.contains("Unable to connect") && message.contains(&cql)),
            "PrepareRestore {backup}: {refused:?}\nmedusa log:\n{}",
            support::tail(&server.log_text(), 30)
        );
    }

    // PurgeBackups on node B with max_backup_age=30 days: B's part of old-full goes
    // (every object under B/old-full), then B's data files no finished differential
    // backup lists and older than the grace period (the stale orphan). Within the grace
    // period: the fresh orphan and the file new-diff uploaded without finishing.
    let (old_objects, old_size) = walk(&store.node_backup_dir(B, "old-full"))?;
    let purged = client.purge_backups(&target).await?;
    assert_eq!(
        purged,
        PurgeStats {
            backups_purged: 1,
            objects_purged: old_objects + 1,
            total_purged_size: old_size + 77,
            objects_within_gc_grace: 2,
        },
        "medusa log:\n{}",
        support::tail(&server.log_text(), 30)
    );
    // Medusa's local storage deletes the files and leaves the directories.
    let gone = |dir: &Path| !dir.exists() || walk(dir).is_ok_and(|(n, _)| n == 0);
    assert!(gone(&store.node_backup_dir(B, "old-full")));
    assert!(
        store.node_backup_dir(A, "old-full").exists(),
        "a purge touches only its own node"
    );
    assert!(!stale.exists() && fresh.exists());

    // Afterwards old-full lacks node B: Medusa lists it as unfinished, 1 of 2 nodes.
    let listed = client.get_backups(&target).await?;
    let names: Vec<_> = listed.iter().map(|b| b.backup_name.as_str()).collect();
    assert_eq!(names, ["old-full", "mid-diff", "new-diff"]);
    assert_eq!(
        (
            listed[0].finished_nodes,
            listed[0].finish_time,
            listed[0].status
        ),
        (1, 0, MedusaStatus::InProgress)
    );
    assert_eq!(listed[1], expected[1]);

    // DeleteBackup removes a backup from every node (Medusa answers UNKNOWN on success).
    client.delete_backup(&target, "mid-diff").await?;
    let listed = client.get_backups(&target).await?;
    let names: Vec<_> = listed.iter().map(|b| b.backup_name.as_str()).collect();
    assert_eq!(names, ["old-full", "new-diff"]);
    for node in [A, B] {
        assert!(gone(&store.node_backup_dir(node, "mid-diff")), "{node}");
    }
    Ok(())
}

/// GetBackups once the server answers; a server that exited fails at once with its log.
async fn first_listing(
    client: &MedusaClient,
    target: &MedusaTarget,
    server: &mut Server,
) -> Result<Vec<BackupSummary>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client.get_backups(target).await {
            Ok(b) => return Ok(b),
            Err(MedusaError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                if let Some(exit) = server.child.try_wait()? {
                    bail!(
                        "Medusa exited ({exit}):\n{}",
                        support::tail(&server.log_text(), 40)
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!(
                "GetBackups: {e}\nmedusa log:\n{}",
                support::tail(&server.log_text(), 40)
            ),
        }
    }
}

#[tokio::test]
async fn the_real_medusa_server_takes_our_client_certificate_and_refuses_others() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = support::tls::pki()?;
    let other = support::tls::pki()?;
    let write = |name: &str, pem: &str| -> Result<PathBuf> {
        let path = dir.path().join(name);
        std::fs::write(&path, pem)?;
        Ok(path)
    };
    // As KO mounts them: the server's certificate and key, and the CA clients must chain to.
    let grpc_tls = format!(
        "ca_cert = {}\ntls_cert = {}\ntls_key = {}",
        write("ca.crt", &pki.ca)?.display(),
        write("tls.crt", &pki.server_cert)?.display(),
        write("tls.key", &pki.server_key)?.display(),
    );
    let port = support::free_port();
    let mut server = start_server(dir.path(), port, support::free_port(), &grpc_tls)?;
    let tls = |ca: &str, cert: &str, key: &str| MedusaTls {
        ca_pem: ca.as_bytes().to_vec(),
        cert_pem: cert.as_bytes().to_vec(),
        key_pem: key.as_bytes().to_vec(),
    };
    let endpoint = format!("127.0.0.1:{port}");
    let target = MedusaTarget {
        endpoint: endpoint.clone(),
        tls: Some(tls(&pki.ca, &pki.client_cert, &pki.client_key)),
    };
    let client = MedusaClient::new();
    // The server's certificate names a DNS name, not 127.0.0.1: only its chain is checked.
    let listed = first_listing(&client, &target, &mut server).await?;
    assert_eq!(listed, Vec::new(), "an empty storage has no backups");
    // A Medusa that has not yet been asked about any backup since it started refuses
    // DeleteBackup with status FAILED ("no backups on record"): an error, not a success.
    let refused = client.delete_backup(&target, "anything").await;
    assert!(
        matches!(&refused, Err(MedusaError::Call { op: "DeleteBackup", code, .. }) if code == "FAILED"),
        "{refused:?}"
    );

    // A client certificate from another CA: refused by Medusa's TLS. With TLS 1.3 the
    // client's handshake is over before the server judges its certificate, and grpcio
    // closes the connection without an alert we can read: Unavailable, not Tls.
    let stranger = MedusaTarget {
        endpoint: endpoint.clone(),
        tls: Some(tls(&pki.ca, &other.client_cert, &other.client_key)),
    };
    let refused = client.get_backups(&stranger).await;
    assert!(
        matches!(
            refused,
            Err(MedusaError::Tls(_) | MedusaError::Unavailable(_))
        ),
        "{refused:?}"
    );

    // A server whose chain does not lead to our CA: refused by our client.
    let wrong_ca = MedusaTarget {
        endpoint: endpoint.clone(),
        tls: Some(tls(&other.ca, &pki.client_cert, &pki.client_key)),
    };
    let refused = client.get_backups(&wrong_ca).await;
    assert!(matches!(refused, Err(MedusaError::Tls(_))), "{refused:?}");

    // Plain text to the TLS port fails too.
    let plain = MedusaTarget {
        endpoint,
        tls: None,
    };
    assert!(client.get_backups(&plain).await.is_err());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Selective restore: Medusa's own restore entry point (what the `medusa-restore` init
// container runs), with our `sitecustomize.py` on PYTHONPATH as the `<dc>-medusa-restore`
// ConfigMap puts it there, against a fake Cassandra data directory. Kubernetes mode is on
// (as in the pod), so Medusa neither stops nor starts Cassandra: it moves files.

/// The module the `<kc>-medusa` ConfigMap ships as `sitecustomize.py`.
const SITECUSTOMIZE: &str =
    include_str!("../../../plugins/k8ssandra-cluster/src/medusa_sitecustomize.py");

/// Table directories of the fake node: `<keyspace>/<table>-<id>` as Cassandra names them.
const TABLES: [(&str, &str); 4] = [
    ("ks1", "t1-11111111111111111111111111111111"),
    ("ks1", "t2-22222222222222222222222222222222"),
    ("ks2", "t3-33333333333333333333333333333333"),
    ("system_auth", "roles-5bc52802de2535edaeab188eecebb090"),
];

/// One SSTable per table, whose contents say which state it belongs to.
fn state_files(state: &str) -> Vec<BackupFile> {
    TABLES
        .iter()
        .map(|(ks, t)| BackupFile {
            keyspace: (*ks).into(),
            table: (*t).into(),
            name: format!("nb-{}-big-Data.db", if state == "A" { 1 } else { 7 }),
            contents: format!("{state}:{ks}.{t}").into_bytes(),
        })
        .collect()
}

/// The fake node's data directory at state B (files written after the backup), plus a
/// commit log segment.
fn write_state_b(data: &Path) -> Result<()> {
    for f in state_files("B") {
        let dir = data.join(&f.keyspace).join(&f.table);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&f.name), &f.contents)?;
    }
    std::fs::create_dir_all(data.join("../commitlog"))?;
    std::fs::write(data.join("../commitlog/CommitLog-7-1.log"), b"segment")?;
    Ok(())
}

/// `keyspace.table-id` → the files of that table directory and their contents.
fn table_state(data: &Path) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut out = BTreeMap::new();
    for (ks, t) in TABLES {
        let mut files = BTreeMap::new();
        let dir = data.join(ks).join(t);
        if dir.exists() {
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                files.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path())?,
                );
            }
        }
        out.insert(format!("{ks}.{t}"), files);
    }
    Ok(out)
}

/// The state a table directory holds after a restore of state A or at state B.
fn files_of(state: &str, ks: &str, t: &str) -> BTreeMap<String, String> {
    let n = if state == "A" { 1 } else { 7 };
    BTreeMap::from([(format!("nb-{n}-big-Data.db"), format!("{state}:{ks}.{t}"))])
}

struct RestoreRun {
    ok: bool,
    log: String,
    tables: BTreeMap<String, BTreeMap<String, String>>,
    commitlog_cleared: bool,
}

/// Runs `python -m medusa.service.grpc.restore <medusa.ini> <key>` as Medusa's entry point
/// does in the init container, on a fresh node at state B, with `env` added.
fn run_medusa_restore(dir: &Path, case: &str, env: &[(&str, &str)]) -> Result<RestoreRun> {
    let python = medusa_python()?;
    let node = dir.join(case);
    let data = node.join("data");
    write_state_b(&data)?;
    let tmp = node.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let cassandra_yaml = node.join("cassandra.yaml");
    std::fs::write(
        &cassandra_yaml,
        format!(
            "cluster_name: kc\n\
             data_file_directories: [{data}]\n\
             commitlog_directory: {commitlog}\n\
             saved_caches_directory: {node}/saved_caches\n\
             listen_address: 127.0.0.1\n\
             rpc_address: 127.0.0.1\n\
             storage_port: 7000\n\
             native_transport_port: 9042\n",
            data = data.display(),
            commitlog = node.join("commitlog").display(),
            node = node.display(),
        ),
    )?;
    // The module sits where the ConfigMap volume puts it: beside medusa.ini.
    let etc = node.join("etc-medusa");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("sitecustomize.py"), SITECUSTOMIZE)?;
    let ini = etc.join("medusa.ini");
    std::fs::write(
        &ini,
        format!(
            "[cassandra]\n\
             config_file = {yaml}\n\
             use_sudo = False\n\
             resolve_ip_addresses = False\n\
             \n\
             [storage]\n\
             storage_provider = local\n\
             base_path = {base}\n\
             bucket_name = bucket\n\
             prefix = kc\n\
             fqdn = {B}\n\
             \n\
             [grpc]\n\
             enabled = 1\n\
             \n\
             [kubernetes]\n\
             enabled = 1\n\
             use_mgmt_api = 1\n\
             cassandra_url = http://127.0.0.1:1/api/v0/ops/node/snapshots\n\
             \n\
             [logging]\n\
             level = DEBUG\n",
            yaml = cassandra_yaml.display(),
            base = dir.join("storage").display(),
        ),
    )?;
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "medusa.service.grpc.restore"])
        .arg(&ini)
        .arg("restore-key-1")
        .current_dir(&node)
        .env("BACKUP_NAME", "state-a")
        .env("MEDUSA_TMP_DIR", &tmp)
        .env("POD_NAME", "kc-dc1-r2-sts-0")
        .env_remove("POD_IP")
        .env_remove("RESTORE_MAPPING")
        .env_remove("MEDUSA_RESTORE_KEYSPACES")
        .env_remove("MEDUSA_RESTORE_TABLES")
        .stdin(Stdio::null());
    for (k, v) in env {
        // PYTHONPATH as the restore ConfigMap sets it: the ConfigMap volume first.
        let v = v.replace("/etc/medusa", &etc.display().to_string());
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {python} -m medusa.service.grpc.restore"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let commitlog_cleared = !node.join("commitlog/CommitLog-7-1.log").exists();
    Ok(RestoreRun {
        ok: out.status.success(),
        log,
        tables: table_state(&data)?,
        commitlog_cleared,
    })
}

#[test]
fn the_real_medusa_restore_restores_only_the_named_keyspaces_with_our_module() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = MedusaStore::new(dir.path().join("storage"), "bucket", "kc");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut backup = node_backup(
        "state-a",
        B,
        false,
        now - 600,
        Some(now - 300),
        state_files("A"),
    );
    backup.schema =
        "CREATE KEYSPACE ks1 WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2};\n\
         CREATE KEYSPACE ks2 WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2};"
            .into();
    store.write_node_backup(&backup)?;
    let mut a = node_backup(
        "state-a",
        A,
        false,
        now - 600,
        Some(now - 300),
        state_files("A"),
    );
    a.schema = backup.schema.clone();
    store.write_node_backup(&a)?;
    // What the restore ConfigMap adds for a selective restore.
    let pythonpath = "/etc/medusa:/home/cassandra";
    // The state (A or B) each of TABLES should be in, in TABLES' order.
    let state = |states: [&str; 4]| -> BTreeMap<String, BTreeMap<String, String>> {
        TABLES
            .iter()
            .zip(states)
            .map(|((ks, t), s)| (format!("{ks}.{t}"), files_of(s, ks, t)))
            .collect()
    };

    // One keyspace: its tables back at A, the other keyspace and system_auth at B.
    let run = run_medusa_restore(
        dir.path(),
        "keyspace",
        &[
            ("PYTHONPATH", pythonpath),
            ("MEDUSA_RESTORE_KEYSPACES", "ks1"),
        ],
    )?;
    assert!(run.ok, "restore of ks1 failed:\n{}", run.log);
    assert_eq!(run.tables, state(["A", "A", "B", "B"]), "{}", run.log);
    assert!(
        run.log.contains("selective restore of keyspaces ['ks1']"),
        "{}",
        run.log
    );

    // One table (and a keyspace given twice is one).
    let run = run_medusa_restore(
        dir.path(),
        "table",
        &[
            ("PYTHONPATH", pythonpath),
            ("MEDUSA_RESTORE_TABLES", "ks1.t2, ks1.t2"),
        ],
    )?;
    assert!(run.ok, "restore of ks1.t2 failed:\n{}", run.log);
    assert_eq!(run.tables, state(["B", "A", "B", "B"]), "{}", run.log);

    // A system keyspace only when named.
    let run = run_medusa_restore(
        dir.path(),
        "system",
        &[
            ("PYTHONPATH", pythonpath),
            ("MEDUSA_RESTORE_KEYSPACES", "ks2,system_auth"),
        ],
    )?;
    assert!(run.ok, "restore of ks2,system_auth failed:\n{}", run.log);
    assert_eq!(run.tables, state(["B", "B", "A", "A"]), "{}", run.log);

    // A keyspace the backup lacks: the restore fails before touching anything.
    let run = run_medusa_restore(
        dir.path(),
        "missing",
        &[
            ("PYTHONPATH", pythonpath),
            ("MEDUSA_RESTORE_KEYSPACES", "ks1,ks9"),
        ],
    )?;
    assert!(!run.ok, "a restore naming ks9 must fail:\n{}", run.log);
    assert!(
        run.log.contains("not in this node's backup: ks9"),
        "{}",
        run.log
    );
    assert!(
        !run.commitlog_cleared,
        "nothing may be touched:\n{}",
        run.log
    );
    assert_eq!(run.tables, state(["B", "B", "B", "B"]));

    // Whole node: the module on the path but no names, as for every restore without
    // spec.keyspaces/spec.tables, and without the module at all: everything back at A.
    for (case, env) in [
        ("whole-with-module", vec![("PYTHONPATH", pythonpath)]),
        ("whole", vec![]),
    ] {
        let run = run_medusa_restore(dir.path(), case, &env)?;
        assert!(run.ok, "{case} failed:\n{}", run.log);
        assert_eq!(
            run.tables,
            state(["A", "A", "A", "A"]),
            "{case}\n{}",
            run.log
        );
        assert!(run.commitlog_cleared, "{case}");
        assert!(!run.log.contains("selective restore"), "{case}");
    }
    Ok(())
}
