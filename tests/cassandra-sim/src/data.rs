//! What the simulated nodes hold: a version per (keyspace, table), so a test can write
//! "state A", back it up, write "state B", restore, and see state A again.
//!
//! A restore happens as Medusa's `medusa-restore` init container does it: when a pod starts
//! with `BACKUP_NAME` and `RESTORE_KEY` in that container's environment (plain `env`, or
//! `envFrom` a ConfigMap) and its node's `.last-restore` is another key, the node takes its
//! data from the backup of the source node `RESTORE_MAPPING` maps it to, records `restore`
//! in the history and keeps the key. A pod missing from the mapping is skipped, as Medusa
//! skips it.
//!
//! All keyspaces are restored, unless the environment names some in
//! `MEDUSA_RESTORE_KEYSPACES` / `MEDUSA_RESTORE_TABLES` AND puts the operator's
//! `sitecustomize.py` (the `<kc>-medusa` ConfigMap volume, `/etc/medusa`) on `PYTHONPATH`:
//! only that module makes the real Medusa restore less than the whole node, so names
//! without it restore everything here too. A name the backup does not hold makes the real
//! module stop the restore; here it is a violation and nothing is restored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A node's data: version per (keyspace, table).
pub type NodeData = BTreeMap<(String, String), String>;

/// Name of Medusa's restore init container.
pub const RESTORE_CONTAINER: &str = "medusa-restore";

/// `POST /sim/data`: every node of `cluster` now holds `version` in `keyspace.table`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataWrite {
    pub cluster: String,
    pub keyspace: String,
    pub table: String,
    pub version: String,
}

/// The restore parameters of a pod's `medusa-restore` init container, as it would see them
/// in its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreEnv {
    pub backup_name: String,
    pub restore_key: String,
    /// `RESTORE_MAPPING` (JSON), as KO writes it.
    #[serde(default)]
    pub mapping: Option<String>,
    /// `MEDUSA_RESTORE_KEYSPACES`, comma separated.
    #[serde(default)]
    pub keyspaces: Option<String>,
    /// `MEDUSA_RESTORE_TABLES`, comma separated `keyspace.table`.
    #[serde(default)]
    pub tables: Option<String>,
    /// `PYTHONPATH`: the names above count only with the module's directory on it.
    #[serde(default)]
    pub pythonpath: Option<String>,
}

/// Where Medusa's containers mount the `<kc>-medusa` ConfigMap, whose `sitecustomize.py`
/// makes a restore selective.
pub const MODULE_DIR: &str = "/etc/medusa";

impl RestoreEnv {
    /// From the container's environment variables; None unless both `BACKUP_NAME` and
    /// `RESTORE_KEY` are set and not empty (the entrypoint skips the restore then).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Option<RestoreEnv> {
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
        Some(RestoreEnv {
            backup_name: get("BACKUP_NAME")?,
            restore_key: get("RESTORE_KEY")?,
            mapping: get("RESTORE_MAPPING"),
            keyspaces: get("MEDUSA_RESTORE_KEYSPACES"),
            tables: get("MEDUSA_RESTORE_TABLES"),
            pythonpath: get("PYTHONPATH"),
        })
    }

    /// The chosen keyspaces and tables, as the module reads them; both empty (everything)
    /// when the module is not on `PYTHONPATH`.
    pub fn chosen(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let on_path = self
            .pythonpath
            .as_deref()
            .is_some_and(|p| p.split(':').any(|d| d.trim_end_matches('/') == MODULE_DIR));
        let list = |v: &Option<String>| -> BTreeSet<String> {
            v.as_deref()
                .filter(|_| on_path)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        (list(&self.keyspaces), list(&self.tables))
    }

    /// The source host the target pod `pod` (its name) restores, and whether the restore is
    /// in place. Err: the mapping does not parse. Ok(None): the pod is not in the mapping.
    pub fn source_of(&self, pod: &str) -> Result<Option<(String, bool)>, String> {
        let Some(text) = &self.mapping else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Mapping {
            #[serde(default)]
            in_place: bool,
            #[serde(default)]
            host_map: BTreeMap<String, Source>,
        }
        #[derive(Deserialize)]
        struct Source {
            source: Vec<String>,
        }
        let m: Mapping = serde_json::from_str(text)
            .map_err(|e| format!("RESTORE_MAPPING does not parse: {e}"))?;
        Ok(m.host_map
            .get(pod)
            .and_then(|s| s.source.first().cloned())
            .map(|s| (s, m.in_place)))
    }

    /// Whether `keyspace.table` is restored under the chosen keyspaces and tables.
    pub fn selects(&self, keyspace: &str, table: &str) -> bool {
        let (keyspaces, tables) = self.chosen();
        if keyspaces.is_empty() && tables.is_empty() {
            return true;
        }
        keyspaces.contains(keyspace) || tables.contains(&format!("{keyspace}.{table}"))
    }
}

/// The node's data after restoring `backup` (the source node's data at backup time) under
/// `env`: the chosen tables come from the backup, the others stay. Err names the chosen
/// keyspaces and tables the backup does not hold (nothing is restored then).
pub fn restored(
    current: &NodeData,
    backup: &NodeData,
    env: &RestoreEnv,
) -> Result<NodeData, String> {
    let (keyspaces, tables) = env.chosen();
    let missing: Vec<String> = keyspaces
        .iter()
        .filter(|k| !backup.keys().any(|(ks, _)| ks == *k))
        .chain(
            tables
                .iter()
                .filter(|t| !backup.keys().any(|(ks, tb)| format!("{ks}.{tb}") == **t)),
        )
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the restore names {} that backup {} does not hold (MEDUSA_RESTORE_KEYSPACES={:?}, \
             MEDUSA_RESTORE_TABLES={:?})",
            missing.join(", "),
            env.backup_name,
            env.keyspaces.as_deref().unwrap_or_default(),
            env.tables.as_deref().unwrap_or_default(),
        ));
    }
    let mut out: NodeData = current
        .iter()
        .filter(|((ks, t), _)| !env.selects(ks, t))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for ((ks, t), v) in backup {
        if env.selects(ks, t) {
            out.insert((ks.clone(), t.clone()), v.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &str, &str)]) -> NodeData {
        entries
            .iter()
            .map(|(k, t, v)| ((k.to_string(), t.to_string()), v.to_string()))
            .collect()
    }

    #[test]
    fn a_restore_of_one_keyspace_keeps_the_others() {
        let now = data(&[("shop", "orders", "B"), ("logs", "events", "B")]);
        let backup = data(&[("shop", "orders", "A"), ("logs", "events", "A")]);
        let mut env = RestoreEnv {
            backup_name: "b".into(),
            restore_key: "k".into(),
            pythonpath: Some("/etc/medusa:/home/cassandra".into()),
            ..Default::default()
        };
        assert_eq!(restored(&now, &backup, &env), Ok(backup.clone()));
        env.keyspaces = Some("shop".into());
        assert_eq!(
            restored(&now, &backup, &env),
            Ok(data(&[("shop", "orders", "A"), ("logs", "events", "B")]))
        );
        env.keyspaces = None;
        env.tables = Some("logs.events".into());
        assert_eq!(
            restored(&now, &backup, &env),
            Ok(data(&[("shop", "orders", "B"), ("logs", "events", "A")]))
        );
    }

    #[test]
    fn names_without_the_module_on_the_path_restore_everything() {
        let now = data(&[("shop", "orders", "B"), ("logs", "events", "B")]);
        let backup = data(&[("shop", "orders", "A"), ("logs", "events", "A")]);
        let vars: BTreeMap<String, String> = [
            ("BACKUP_NAME", "b"),
            ("RESTORE_KEY", "k"),
            ("MEDUSA_RESTORE_KEYSPACES", "shop"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = RestoreEnv::from_vars(&vars).unwrap();
        assert_eq!(restored(&now, &backup, &env), Ok(backup.clone()));
        let mut with_module = vars.clone();
        with_module.insert("PYTHONPATH".into(), "/etc/medusa:/home/cassandra".into());
        let env = RestoreEnv::from_vars(&with_module).unwrap();
        assert_eq!(
            restored(&now, &backup, &env),
            Ok(data(&[("shop", "orders", "A"), ("logs", "events", "B")]))
        );
    }

    #[test]
    fn a_name_the_backup_lacks_restores_nothing() {
        let now = data(&[("shop", "orders", "B")]);
        let backup = data(&[("shop", "orders", "A")]);
        let env = RestoreEnv {
            backup_name: "b".into(),
            restore_key: "k".into(),
            keyspaces: Some("shop,audit".into()),
            tables: Some("shop.refunds".into()),
            pythonpath: Some("/etc/medusa".into()),
            ..Default::default()
        };
        let err = restored(&now, &backup, &env).unwrap_err();
        assert!(err.contains("audit, shop.refunds"), "{err}");
    }

    #[test]
    fn the_mapping_names_each_pods_source() {
        let env = RestoreEnv {
            backup_name: "b".into(),
            restore_key: "k".into(),
            mapping: Some(
                r#"{"in_place":false,"host_map":{"c-dc1-r1-sts-0":{"source":["10.0.0.7"],"seed":false}}}"#
                    .into(),
            ),
            ..Default::default()
        };
        assert_eq!(
            env.source_of("c-dc1-r1-sts-0").unwrap(),
            Some(("10.0.0.7".to_string(), false))
        );
        assert_eq!(env.source_of("other").unwrap(), None);
        let vars: BTreeMap<String, String> = [("BACKUP_NAME".to_string(), "b".to_string())].into();
        assert_eq!(RestoreEnv::from_vars(&vars), None);
    }
}
