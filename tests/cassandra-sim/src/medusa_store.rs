//! Backups written in Medusa's own storage layout (its `local` provider: a directory per
//! bucket), so a real Medusa server reads what the simulator (or a test) wrote.
//!
//! The layout, under `<base_path>/<bucket>/<prefix>/` (no prefix directory when the
//! prefix is empty):
//!
//! - `<fqdn>/<backup>/meta/`: `schema.cql`, `tokenmap.json` (the whole datacenter's ring:
//!   `{host: {tokens, is_up, rack, dc}}`), `server_version.json`, `differential` (only for
//!   differential backups) and, once the node finished, `manifest.json` (one section per
//!   table: `{keyspace, columnfamily, objects: [{path, MD5, size}]}`);
//! - data files: `<fqdn>/data/<ks>/<table>/<file>` for differential backups (shared by
//!   every backup of the node), `<fqdn>/<backup>/data/<ks>/<table>/<file>` for full ones;
//! - the index Medusa lists backups from, `index/backup_index/<backup>/`:
//!   `tokenmap_<fqdn>.json`, `schema_<fqdn>.cql`, `started_<fqdn>_<unix>.timestamp`,
//!   `differential_<fqdn>` and, once finished, `manifest_<fqdn>.json` and
//!   `finished_<fqdn>_<unix>.timestamp`;
//! - `index/latest_backup/<fqdn>/{tokenmap.json,backup_name.txt}` for the node's latest
//!   finished backup.
//!
//! A node backup with a `started` index entry and no `finished` one is in progress (or was
//! abandoned); Medusa takes the start and finish times from the index file names.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("medusa store: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("medusa store: {0}")]
    Invalid(String),
}

/// One node of the ring as Medusa records it in `tokenmap.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TokenMapEntry {
    pub tokens: Vec<i64>,
    pub is_up: bool,
    pub rack: String,
    pub dc: String,
}

/// One SSTable component of a node backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    pub keyspace: String,
    pub table: String,
    pub name: String,
    pub contents: Vec<u8>,
}

/// One node's part of a backup.
#[derive(Debug, Clone)]
pub struct NodeBackup {
    pub backup_name: String,
    /// The node's name in storage: Medusa's `fqdn` (the pod IP or host name).
    pub fqdn: String,
    pub differential: bool,
    /// Seconds since the epoch.
    pub started: i64,
    /// Seconds since the epoch; None while the node is still uploading.
    pub finished: Option<i64>,
    /// The datacenter's ring when the backup started (every node, not only this one).
    pub tokenmap: BTreeMap<String, TokenMapEntry>,
    pub schema: String,
    pub release_version: String,
    /// Uploaded files; listed in the manifest once finished.
    pub files: Vec<BackupFile>,
}

#[derive(Serialize)]
struct ManifestObject {
    path: String,
    #[serde(rename = "MD5")]
    md5: String,
    size: usize,
}

#[derive(Serialize)]
struct ManifestSection<'a> {
    keyspace: &'a str,
    columnfamily: &'a str,
    objects: Vec<ManifestObject>,
}

/// A bucket of Medusa's `local` storage provider.
#[derive(Debug, Clone)]
pub struct MedusaStore {
    /// `<base_path>/<bucket>`: object keys are paths below it.
    root: PathBuf,
    /// `""` or `"<prefix>/"`, as Medusa prepends it to every key.
    prefix: String,
}

impl MedusaStore {
    /// `base_path` and `bucket` are medusa.ini's `[storage] base_path` and `bucket_name`;
    /// `prefix` its `prefix` (empty for none).
    pub fn new(base_path: impl Into<PathBuf>, bucket: &str, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            root: base_path.into().join(bucket),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The bucket's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn key_path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Where a node backup's own objects live (`meta/`, and `data/` for full backups):
    /// what a purge of it removes.
    pub fn node_backup_dir(&self, fqdn: &str, backup: &str) -> PathBuf {
        self.key_path(&format!("{}{fqdn}/{backup}", self.prefix))
    }

    /// The key of a data file of a node backup.
    pub fn data_key(&self, b: &NodeBackup, f: &BackupFile) -> String {
        let base = if b.differential {
            format!("{}{}/data", self.prefix, b.fqdn)
        } else {
            format!("{}{}/{}/data", self.prefix, b.fqdn, b.backup_name)
        };
        format!("{base}/{}/{}/{}", f.keyspace, f.table, f.name)
    }

    fn put(&self, key: &str, contents: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.key_path(key);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        fs::write(&path, contents).map_err(io)?;
        Ok(path)
    }

    /// Writes an object last modified at `unix` seconds: Medusa reads a node backup's
    /// start and finish times from the modification times of `meta/schema.cql` and
    /// `meta/manifest.json` where it does not go through the index (BackupStatus), and
    /// purges unlisted data files by their age.
    fn put_at(&self, key: &str, contents: &[u8], unix: i64) -> Result<PathBuf, StoreError> {
        let path = self.put(key, contents)?;
        let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or_default());
        set_mtime(&path, when)?;
        Ok(path)
    }

    fn check(b: &NodeBackup) -> Result<(), StoreError> {
        let name_ok = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains("..");
        if !name_ok(&b.backup_name) {
            return Err(StoreError::Invalid(format!(
                "backup name {:?} must be a non-empty path segment",
                b.backup_name
            )));
        }
        // Medusa finds the node in index file names by `_<fqdn>.` and `_<fqdn>_`.
        if !name_ok(&b.fqdn) || b.fqdn.contains('_') {
            return Err(StoreError::Invalid(format!(
                "fqdn {:?} must be a non-empty path segment without '_'",
                b.fqdn
            )));
        }
        if b.finished.is_some_and(|f| f < b.started) {
            return Err(StoreError::Invalid(format!(
                "backup {:?} of {}: finished before it started",
                b.backup_name, b.fqdn
            )));
        }
        Ok(())
    }

    /// Writes a node backup as Medusa leaves it: started (meta, data, start index) and,
    /// when `finished` is set, finished (manifest, finish index, latest-backup marker).
    pub fn write_node_backup(&self, b: &NodeBackup) -> Result<(), StoreError> {
        self.start_node_backup(b)?;
        if let Some(finished) = b.finished {
            self.finish_node_backup(b, finished)?;
        }
        Ok(())
    }

    /// What Medusa writes when a node's backup starts, and the uploaded data files.
    pub fn start_node_backup(&self, b: &NodeBackup) -> Result<(), StoreError> {
        Self::check(b)?;
        let p = &self.prefix;
        let (fqdn, name, t) = (&b.fqdn, &b.backup_name, b.started);
        let meta = format!("{p}{fqdn}/{name}/meta");
        let tokenmap = serde_json::to_string(&b.tokenmap)
            .map_err(|e| StoreError::Invalid(format!("tokenmap: {e}")))?;
        let version = serde_json::json!({
            "server_type": "cassandra",
            "release_version": b.release_version,
        })
        .to_string();
        self.put_at(&format!("{meta}/schema.cql"), b.schema.as_bytes(), t)?;
        self.put_at(&format!("{meta}/tokenmap.json"), tokenmap.as_bytes(), t)?;
        self.put_at(
            &format!("{meta}/server_version.json"),
            version.as_bytes(),
            t,
        )?;
        if b.differential {
            self.put_at(&format!("{meta}/differential"), b"differential", t)?;
        }
        for f in &b.files {
            self.put_at(&self.data_key(b, f), &f.contents, t)?;
        }
        let index = format!("{p}index/backup_index/{name}");
        self.put_at(
            &format!("{index}/tokenmap_{fqdn}.json"),
            tokenmap.as_bytes(),
            t,
        )?;
        self.put_at(
            &format!("{index}/schema_{fqdn}.cql"),
            b.schema.as_bytes(),
            t,
        )?;
        self.put_at(
            &format!("{index}/started_{fqdn}_{t}.timestamp"),
            t.to_string().as_bytes(),
            t,
        )?;
        if b.differential {
            self.put_at(&format!("{index}/differential_{fqdn}"), b"differential", t)?;
        }
        Ok(())
    }

    /// What Medusa writes when a node's backup has finished.
    pub fn finish_node_backup(&self, b: &NodeBackup, finished: i64) -> Result<(), StoreError> {
        Self::check(b)?;
        let p = &self.prefix;
        let (fqdn, name) = (&b.fqdn, &b.backup_name);
        let manifest = serde_json::to_string(&self.manifest(b))
            .map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        let t = finished;
        self.put_at(
            &format!("{p}{fqdn}/{name}/meta/manifest.json"),
            manifest.as_bytes(),
            t,
        )?;
        let index = format!("{p}index/backup_index/{name}");
        self.put_at(
            &format!("{index}/manifest_{fqdn}.json"),
            manifest.as_bytes(),
            t,
        )?;
        self.put_at(
            &format!("{index}/finished_{fqdn}_{t}.timestamp"),
            t.to_string().as_bytes(),
            t,
        )?;
        let tokenmap = serde_json::to_string(&b.tokenmap)
            .map_err(|e| StoreError::Invalid(format!("tokenmap: {e}")))?;
        let latest = format!("{p}index/latest_backup/{fqdn}");
        self.put_at(&format!("{latest}/tokenmap.json"), tokenmap.as_bytes(), t)?;
        self.put_at(&format!("{latest}/backup_name.txt"), name.as_bytes(), t)?;
        Ok(())
    }

    fn manifest<'a>(&self, b: &'a NodeBackup) -> Vec<ManifestSection<'a>> {
        let mut sections: Vec<ManifestSection<'a>> = Vec::new();
        for f in &b.files {
            let object = ManifestObject {
                path: self.data_key(b, f),
                md5: hex::encode(Md5::digest(&f.contents)),
                size: f.contents.len(),
            };
            match sections
                .iter_mut()
                .find(|s| s.keyspace == f.keyspace && s.columnfamily == f.table)
            {
                Some(s) => s.objects.push(object),
                None => sections.push(ManifestSection {
                    keyspace: &f.keyspace,
                    columnfamily: &f.table,
                    objects: vec![object],
                }),
            }
        }
        sections
    }

    /// A data file of a node no backup lists (left by an abandoned or purged backup),
    /// last modified `age` ago: Medusa's purge deletes such files once they are older than
    /// its grace period.
    pub fn write_orphan_file(
        &self,
        fqdn: &str,
        file: &BackupFile,
        age: Duration,
    ) -> Result<PathBuf, StoreError> {
        let key = format!(
            "{}{fqdn}/data/{}/{}/{}",
            self.prefix, file.keyspace, file.table, file.name
        );
        let path = self.put(&key, &file.contents)?;
        set_mtime(
            &path,
            SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH),
        )?;
        Ok(path)
    }
}

fn set_mtime(path: &Path, when: SystemTime) -> Result<(), StoreError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(differential: bool, finished: Option<i64>) -> NodeBackup {
        let mut tokenmap = BTreeMap::new();
        tokenmap.insert(
            "10.0.0.1".to_string(),
            TokenMapEntry {
                tokens: vec![-3, 7],
                is_up: true,
                rack: "r1".into(),
                dc: "dc1".into(),
            },
        );
        NodeBackup {
            backup_name: "b1".into(),
            fqdn: "10.0.0.1".into(),
            differential,
            started: 100,
            finished,
            tokenmap,
            schema: "CREATE KEYSPACE ks;".into(),
            release_version: "5.0.4".into(),
            files: vec![
                BackupFile {
                    keyspace: "ks".into(),
                    table: "t-1".into(),
                    name: "nb-1-big-Data.db".into(),
                    contents: b"abc".to_vec(),
                },
                BackupFile {
                    keyspace: "ks".into(),
                    table: "t-1".into(),
                    name: "nb-1-big-Index.db".into(),
                    contents: b"de".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn a_finished_differential_backup_has_medusas_keys() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = MedusaStore::new(dir.path(), "bucket", "kc");
        store.write_node_backup(&backup(true, Some(200)))?;
        let root = dir.path().join("bucket/kc");
        for key in [
            "10.0.0.1/b1/meta/schema.cql",
            "10.0.0.1/b1/meta/tokenmap.json",
            "10.0.0.1/b1/meta/manifest.json",
            "10.0.0.1/b1/meta/differential",
            "10.0.0.1/data/ks/t-1/nb-1-big-Data.db",
            "index/backup_index/b1/tokenmap_10.0.0.1.json",
            "index/backup_index/b1/started_10.0.0.1_100.timestamp",
            "index/backup_index/b1/finished_10.0.0.1_200.timestamp",
            "index/backup_index/b1/manifest_10.0.0.1.json",
            "index/backup_index/b1/differential_10.0.0.1",
            "index/latest_backup/10.0.0.1/backup_name.txt",
        ] {
            assert!(root.join(key).is_file(), "{key} missing");
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("10.0.0.1/b1/meta/manifest.json"))?)?;
        assert_eq!(manifest[0]["columnfamily"], "t-1");
        assert_eq!(
            manifest[0]["objects"][0]["path"],
            "kc/10.0.0.1/data/ks/t-1/nb-1-big-Data.db"
        );
        assert_eq!(
            manifest[0]["objects"][0]["MD5"],
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(manifest[0]["objects"][1]["size"], 2);
        let mtime = |key: &str| -> Result<u64, Box<dyn std::error::Error>> {
            Ok(fs::metadata(root.join(key))?
                .modified()?
                .duration_since(UNIX_EPOCH)?
                .as_secs())
        };
        // Medusa's BackupStatus reads the times from these files' modification times.
        assert_eq!(mtime("10.0.0.1/b1/meta/schema.cql")?, 100);
        assert_eq!(mtime("10.0.0.1/b1/meta/manifest.json")?, 200);
        let tokenmap: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("10.0.0.1/b1/meta/tokenmap.json"))?)?;
        assert_eq!(tokenmap["10.0.0.1"]["tokens"], serde_json::json!([-3, 7]));
        Ok(())
    }

    #[test]
    fn an_unfinished_full_backup_has_no_manifest_and_keeps_data_under_the_backup()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = MedusaStore::new(dir.path(), "bucket", "");
        store.write_node_backup(&backup(false, None))?;
        let root = dir.path().join("bucket");
        assert!(
            root.join("10.0.0.1/b1/data/ks/t-1/nb-1-big-Data.db")
                .is_file()
        );
        assert!(!root.join("10.0.0.1/b1/meta/manifest.json").exists());
        assert!(!root.join("10.0.0.1/b1/meta/differential").exists());
        assert!(!root.join("index/latest_backup").exists());
        assert_eq!(
            store.node_backup_dir("10.0.0.1", "b1"),
            root.join("10.0.0.1/b1")
        );
        Ok(())
    }

    #[test]
    fn bad_names_are_refused_naming_the_field() {
        let store = MedusaStore::new("/nonexistent", "b", "");
        let mut b = backup(true, None);
        b.fqdn = "a_b".into();
        let err = store.write_node_backup(&b).map_err(|e| e.to_string());
        assert!(matches!(&err, Err(m) if m.contains("fqdn")), "{err:?}");
        let mut b = backup(true, Some(1));
        b.backup_name = "../x".into();
        let err = store.write_node_backup(&b).map_err(|e| e.to_string());
        assert!(
            matches!(&err, Err(m) if m.contains("backup name")),
            "{err:?}"
        );
    }
}
