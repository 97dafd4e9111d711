//! Host-side bindings of every `k8ssandra:policy` version this host serves.
//!
//! The host works in the newest version (`wit/policy.wit`); its types are re-exported at
//! this module's root. Components built against an earlier minor version are called
//! through that version's own bindings ([`v0_1`], [`v0_2`], [`v0_3`]), with their inputs and outputs
//! converted at the boundary ([`compat`]), so they keep loading and behaving as they did.

wasmtime::component::bindgen!({
    path: "../wit/policy.wit",
    world: "policy",
    // Exports are called on a fiber so a call can yield to tokio at every epoch tick; the
    // `log` import stays synchronous.
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use k8ssandra::policy::types::*;

/// `k8ssandra:policy@0.1.0`, as released (`wit/released/policy@0.1.0.wit`).
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/released/policy@0.1.0.wit",
        world: "policy",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });

    pub use k8ssandra::policy::types::*;
}

/// `k8ssandra:policy@0.2.0`, as released (`wit/released/policy@0.2.0.wit`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/released/policy@0.2.0.wit",
        world: "policy",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });

    pub use k8ssandra::policy::types::*;
}

/// `k8ssandra:policy@0.3.0`, as released (`wit/released/policy@0.3.0.wit`).
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../wit/released/policy@0.3.0.wit",
        world: "policy",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });

    pub use k8ssandra::policy::types::*;
}

/// The WIT package every policy is built against.
pub const WIT_PACKAGE: &str = "k8ssandra:policy";
/// The version the host works in: the newest one.
pub const WIT_VERSION: &str = "0.4.0";

/// A contract version this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V0_1,
    V0_2,
    V0_3,
    V0_4,
}

impl Contract {
    /// Every version served, newest first; each is kept in `wit/released/`.
    pub const SUPPORTED: [Contract; 4] = [
        Contract::V0_4,
        Contract::V0_3,
        Contract::V0_2,
        Contract::V0_1,
    ];

    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
            Contract::V0_3 => "0.3.0",
            Contract::V0_4 => WIT_VERSION,
        }
    }

    /// Whether a component of this version can be handed an operation of this kind (in a
    /// decorated base plan).
    pub fn knows(self, kind: &OperationKind) -> bool {
        let since = match kind {
            OperationKind::CreateTable(_)
            | OperationKind::SetFullQueryLogging(_)
            | OperationKind::GetFullQueryLogging => Contract::V0_2,
            OperationKind::MedusaBackup(_)
            | OperationKind::MedusaBackupStatus(_)
            | OperationKind::MedusaGetBackups
            | OperationKind::MedusaDeleteBackup(_)
            | OperationKind::MedusaPurgeBackups
            | OperationKind::MedusaPrepareRestore(_) => Contract::V0_3,
            OperationKind::ReaperListClusters(_)
            | OperationKind::ReaperAddCluster(_)
            | OperationKind::ReaperRemoveCluster(_)
            | OperationKind::ReaperListSchedules(_)
            | OperationKind::ReaperCreateSchedule(_)
            | OperationKind::ReaperUpdateSchedule(_)
            | OperationKind::ReaperSetScheduleState(_)
            | OperationKind::ReaperDeleteSchedule(_)
            | OperationKind::ReaperListRuns(_)
            | OperationKind::ReaperRepair(_)
            | OperationKind::DropKeyspace(_) => Contract::V0_4,
            _ => Contract::V0_1,
        };
        self.rank() >= since.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Contract::V0_1 => 1,
            Contract::V0_2 => 2,
            Contract::V0_3 => 3,
            Contract::V0_4 => 4,
        }
    }
}

/// Conversions between the newest types and those of earlier versions.
///
/// An earlier version's types are a subset of the newest ones with the same names, so one
/// serde pass maps them; what an older component cannot express (a newer operation kind in
/// a decorated base plan) is held back from it and put back into its answer unchanged.
pub mod compat {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Contract, Operation, Plan, Snapshot};

    /// Why a value could not cross between versions. Only a bug can cause it (the types
    /// are designed to map), so it is reported as a failed call, never silently dropped.
    #[derive(Debug, thiserror::Error)]
    #[error("converting between contract versions: {0}")]
    pub struct ConvertError(#[from] serde_json::Error);

    /// A value of one version as the same-named type of another.
    pub fn convert<A: Serialize, B: DeserializeOwned>(a: &A) -> Result<B, ConvertError> {
        Ok(serde_json::from_value(serde_json::to_value(a)?)?)
    }

    /// The snapshot for a component of an earlier version, and the base-plan operations
    /// held back from it.
    pub fn snapshot_to<Old: DeserializeOwned>(
        contract: Contract,
        snapshot: &Snapshot,
    ) -> Result<(Old, Vec<Operation>), ConvertError> {
        let mut held_back = Vec::new();
        let converted = match &snapshot.base_plan {
            Some(plan) if plan.operations.iter().any(|op| !contract.knows(&op.kind)) => {
                let mut visible = snapshot.clone();
                if let Some(plan) = visible.base_plan.as_mut() {
                    let (keep, hold): (Vec<_>, Vec<_>) = plan
                        .operations
                        .drain(..)
                        .partition(|op| contract.knows(&op.kind));
                    plan.operations = keep;
                    held_back = hold;
                }
                convert(&visible)?
            }
            _ => convert(snapshot)?,
        };
        Ok((converted, held_back))
    }

    /// An earlier component's answer, with the held-back operations put back unless the
    /// component planned an operation of the same id itself.
    pub fn plan_from<Old: Serialize>(
        plan: &Old,
        held_back: Vec<Operation>,
    ) -> Result<Plan, ConvertError> {
        let mut plan: Plan = convert(plan)?;
        for op in held_back {
            if !plan.operations.iter().any(|o| o.id == op.id) {
                plan.operations.push(op);
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::compat::*;
    use super::*;

    fn op(id: &str, kind: OperationKind) -> Operation {
        Operation {
            id: id.into(),
            target: NodeRef {
                cluster: String::new(),
                namespace: "ns".into(),
                pod: "p-0".into(),
            },
            kind,
        }
    }

    fn snapshot(base_plan: Option<Plan>) -> Snapshot {
        Snapshot {
            parent: Object {
                cluster: String::new(),
                json: "{}".into(),
            },
            children: vec![],
            related: vec![],
            nodes: vec![NodeState {
                node: NodeRef {
                    cluster: "c".into(),
                    namespace: "ns".into(),
                    pod: "p-0".into(),
                },
                address: Some("127.0.0.2".into()),
                reachable: true,
                error: None,
                alive: true,
                ready: false,
                endpoints: None,
            }],
            results: vec![OperationResult {
                id: "start/p-0".into(),
                outcome: Outcome::Running("job-1".into()),
                at_ms: 7,
            }],
            clusters: vec![],
            now_ms: 42,
            base_plan,
        }
    }

    fn plan(operations: Vec<Operation>) -> Plan {
        Plan {
            apply: vec![],
            delete: vec![],
            operations,
            secrets: vec![],
            status: Some("{}".into()),
            finalizers: None,
            events: vec![],
            requeue_after_ms: Some(5),
        }
    }

    #[test]
    fn a_snapshot_crosses_to_0_1_unchanged() {
        let s = snapshot(Some(plan(vec![op("drain", OperationKind::Drain)])));
        let (old, held): (v0_1::Snapshot, _) = snapshot_to(Contract::V0_1, &s).unwrap();
        assert!(held.is_empty());
        assert_eq!(old.now_ms, 42);
        assert_eq!(old.nodes[0].address.as_deref(), Some("127.0.0.2"));
        assert!(matches!(old.results[0].outcome, v0_1::Outcome::Running(ref j) if j == "job-1"));
        let base = old.base_plan.unwrap();
        assert!(matches!(
            base.operations[0].kind,
            v0_1::OperationKind::Drain
        ));
    }

    #[test]
    fn newer_operations_are_held_back_from_a_0_1_decorator_and_kept() {
        let table = TableDef {
            keyspace: "ks".into(),
            name: "t".into(),
            columns: vec![ColumnDef {
                name: "k".into(),
                cql_type: "uuid".into(),
                kind: ColumnKind::PartitionKey,
                position: 0,
                descending: false,
            }],
            options: vec![],
        };
        let s = snapshot(Some(plan(vec![
            op("drain", OperationKind::Drain),
            op("table", OperationKind::CreateTable(table.clone())),
            op("fql", OperationKind::SetFullQueryLogging(true)),
        ])));
        let (old, held): (v0_1::Snapshot, _) = snapshot_to(Contract::V0_1, &s).unwrap();
        assert_eq!(old.base_plan.as_ref().unwrap().operations.len(), 1);
        assert_eq!(held.len(), 2);

        // The decorator returns the base plan it saw plus its own operation.
        let mut answer = old.base_plan.unwrap();
        answer.operations.push(v0_1::Operation {
            id: "mine".into(),
            target: answer.operations[0].target.clone(),
            kind: v0_1::OperationKind::ReloadSeeds,
        });
        let back = plan_from(&answer, held).unwrap();
        let ids: Vec<&str> = back.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["drain", "mine", "table", "fql"]);
        assert!(matches!(&back.operations[2].kind, OperationKind::CreateTable(t) if *t == table));
        assert_eq!(back.requeue_after_ms, Some(5));
    }

    #[test]
    fn medusa_operations_are_held_back_from_a_0_2_decorator_only() {
        let backup = OperationKind::MedusaBackup(MedusaBackup {
            name: "b1".into(),
            mode: MedusaBackupMode::Full,
        });
        let s = snapshot(Some(plan(vec![
            op(
                "table",
                OperationKind::CreateTable(TableDef {
                    keyspace: "ks".into(),
                    name: "t".into(),
                    columns: vec![],
                    options: vec![],
                }),
            ),
            op("backup", backup.clone()),
        ])));
        let (old, held): (v0_2::Snapshot, _) = snapshot_to(Contract::V0_2, &s).unwrap();
        let seen: Vec<&str> = old
            .base_plan
            .as_ref()
            .unwrap()
            .operations
            .iter()
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(seen, ["table"]);
        assert_eq!(held.len(), 1);
        let back = plan_from(old.base_plan.as_ref().unwrap(), held).unwrap();
        assert!(matches!(&back.operations[1].kind, k if *k == backup));
        assert!(Contract::V0_3.knows(&backup));
        assert!(!Contract::V0_1.knows(&OperationKind::GetFullQueryLogging));
    }

    #[test]
    fn reaper_and_cql_operations_are_held_back_from_a_0_3_decorator_only() {
        let drop = OperationKind::DropKeyspace(KeyspaceDrop {
            keyspace: "data_endpoint_auth".into(),
            credentials_secret: "c-superuser".into(),
        });
        let list = OperationKind::ReaperListClusters(ReaperAccess { ui_secret: None });
        let backup = OperationKind::MedusaBackup(MedusaBackup {
            name: "b1".into(),
            mode: MedusaBackupMode::Differential,
        });
        let s = snapshot(Some(plan(vec![
            op("backup", backup),
            op("drop", drop.clone()),
            op("list", list),
        ])));
        let (old, held): (v0_3::Snapshot, _) = snapshot_to(Contract::V0_3, &s).unwrap();
        assert_eq!(old.base_plan.as_ref().unwrap().operations.len(), 1);
        let held_ids: Vec<&str> = held.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(held_ids, ["drop", "list"]);
        let back = plan_from(old.base_plan.as_ref().unwrap(), held).unwrap();
        assert_eq!(back.operations.len(), 3);
        assert!(matches!(&back.operations[1].kind, k if *k == drop));
        assert!(Contract::V0_4.knows(&drop));
    }
}
