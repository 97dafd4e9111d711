//! The reconcile: which CassandraTasks exist where, when the next one is created, and the
//! K8ssandraTask's status.
//!
//! # Order
//!
//! The target datacenters are `spec.datacenters` in that order, or every datacenter of the
//! K8ssandraCluster in spec order. With `dcConcurrencyPolicy: Forbid` (the default) the
//! CassandraTask of a datacenter is created only once the one before it is Complete without
//! failure; the first failure stops the run (later datacenters never get a task). With
//! `Allow` every datacenter gets its task at once.
//!
//! # What is never done
//!
//! A CassandraTask, once created, is never changed and never deleted by this policy: each
//! reconcile re-lists every existing one as it is (so the host does not prune it), and they
//! go when the K8ssandraTask goes. A task whose status records a finished datacenter is not
//! created again there if its CassandraTask disappears: that would run the job twice.
//! Nothing is created in a cluster the host cannot reach; the run waits for it.
//!
//! # Finished
//!
//! A K8ssandraTask is finished when every target's task finished (Complete=True, with
//! Failed=True too if any failed), or when a Forbid run stopped at a failure (Failed=True,
//! Running=False, Complete=False). A finished task's status is final: it is not re-evaluated
//! against a K8ssandraCluster that changed since. `template.ttlSecondsAfterFinished` (default
//! one day, 0 keeps it) later deletes the K8ssandraTask, and its CassandraTasks with it; the
//! CassandraTasks themselves get a TTL of 0 so their own operator never removes one this
//! policy would then see missing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8ssandra_api::control::{
    CassandraTaskStatus, K8ssandraTask, K8ssandraTaskStatus, condition as C,
};
use k8ssandra_api::labels;
use k8ssandra_policy_sdk::{EventType, ObjectKey, Plan, PolicyError, Snapshot, error};
use serde_json::{Value, json};

use crate::status::{self, Cond, Phase};
use crate::validate::{self, ALLOW};

/// Labels linking a CassandraTask to its K8ssandraTask (k8ssandra-operator's names).
pub const TASK_NAME_LABEL: &str = "k8ssandra.io/task-name";
pub const TASK_NAMESPACE_LABEL: &str = "k8ssandra.io/task-namespace";
pub const CREATED_BY_LABEL: &str = "app.kubernetes.io/created-by";
pub const CREATED_BY_VALUE: &str = "k8ssandratask-controller";

/// Condition (besides Running/Complete/Failed/Invalid) set while a target datacenter's
/// Kubernetes cluster cannot be reached.
pub const DATACENTER_UNREACHABLE: &str = "DatacenterUnreachable";

pub const CASSANDRA_TASK_API_VERSION: &str = "control.k8ssandra.io/v1alpha1";
pub const CASSANDRA_TASK_KIND: &str = "CassandraTask";

/// Default of `template.ttlSecondsAfterFinished`, as for a CassandraTask.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;

/// Requeue while a cluster is unreachable: its return is not an event of this parent.
const UNREACHABLE_REQUEUE_MS: u64 = 30_000;

/// Spec fields of a CassandraTask this policy writes, kept as they are once created.
const GENERATED_FIELDS: &[&str] = &[
    "datacenter",
    "scheduledTime",
    "jobs",
    "restartPolicy",
    "ttlSecondsAfterFinished",
    "concurrencyPolicy",
    "maxConcurrentPods",
    "retries",
];

/// Labels this policy sets on a CassandraTask (the host adds its ownership labels).
const OWN_LABELS: &[&str] = &[
    labels::NAME_LABEL,
    labels::PART_OF_LABEL,
    labels::COMPONENT_LABEL,
    CREATED_BY_LABEL,
    TASK_NAME_LABEL,
    TASK_NAMESPACE_LABEL,
    labels::K8SSANDRA_CLUSTER_NAME_LABEL,
    labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL,
    labels::K8SSANDRA_DATACENTER_LABEL,
];

/// A CassandraTask owned by this K8ssandraTask, as observed.
#[derive(Clone, Debug)]
pub struct Child {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub raw: Value,
    pub status: Option<CassandraTaskStatus>,
}

/// One datacenter the task runs in.
#[derive(Clone, Debug)]
pub struct Target {
    /// Name of the datacenter in the K8ssandraCluster (and of its CassandraDatacenter).
    pub dc: String,
    /// Kubernetes context; empty for the operator's own cluster.
    pub context: String,
    pub namespace: String,
    /// Name of its CassandraTask: `<task>-<dc>`.
    pub task_name: String,
}

pub fn task_name(task: &str, dc: &str) -> String {
    format!("{task}-{dc}")
}

fn where_(context: &str) -> String {
    if context.is_empty() {
        "in the operator's own cluster".into()
    } else {
        format!("in context {context:?}")
    }
}

/// Whether a status of ours describes a finished run (see the module doc).
pub fn finished(st: &K8ssandraTaskStatus) -> bool {
    let cs = st.total.conditions.as_deref();
    status::cond(cs, C::COMPLETE) == Some(true)
        || (status::cond(cs, C::FAILED) == Some(true) && status::cond(cs, C::RUNNING) != Some(true))
}

struct Ctx<'a> {
    s: &'a Snapshot,
    task: K8ssandraTask,
    name: String,
    namespace: String,
    prev: K8ssandraTaskStatus,
    children: Vec<Child>,
    plan: Plan,
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let task = validate::parse(&s.parent.json)
        .map_err(|e| error(format!("K8ssandraTask does not parse: {e}")))?;
    let name = task
        .metadata
        .name
        .clone()
        .ok_or_else(|| error("K8ssandraTask has no name"))?;
    let namespace = task.metadata.namespace.clone().unwrap_or_default();
    let prev = task.status.clone().unwrap_or_default();
    let mut children: Vec<Child> = s
        .children
        .iter()
        .filter(|o| o.kind().as_deref() == Some(CASSANDRA_TASK_KIND))
        .filter_map(|o| {
            let raw = o.value().ok()?;
            let meta = |k: &str| {
                raw.pointer(&format!("/metadata/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Some(Child {
                cluster: o.cluster.clone(),
                namespace: meta("namespace"),
                name: meta("name"),
                status: status::parse_status(&raw),
                raw,
            })
        })
        .collect();
    children.sort_by(|a, b| {
        (&a.cluster, &a.namespace, &a.name).cmp(&(&b.cluster, &b.namespace, &b.name))
    });
    let mut cx = Ctx {
        s,
        task,
        name,
        namespace,
        prev,
        children,
        plan: Plan::default(),
    };
    // Every CassandraTask that exists stays as it is, whatever else is decided.
    for c in &cx.children {
        cx.plan.apply(&c.cluster, &frozen(c))?;
    }
    if finished(&cx.prev) {
        cx.expire(None)?;
        return Ok(cx.plan);
    }
    cx.run()?;
    Ok(cx.plan)
}

/// A CassandraTask re-applied with the fields this policy wrote, at their live values.
pub fn frozen(c: &Child) -> Value {
    let mut spec = serde_json::Map::new();
    if let Some(live) = c.raw.get("spec").and_then(Value::as_object) {
        for f in GENERATED_FIELDS {
            if let Some(v) = live.get(*f) {
                spec.insert((*f).to_string(), v.clone());
            }
        }
    }
    let live_labels = c
        .raw
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let own: serde_json::Map<String, Value> = live_labels
        .into_iter()
        .filter(|(k, _)| OWN_LABELS.contains(&k.as_str()))
        .collect();
    json!({
        "apiVersion": CASSANDRA_TASK_API_VERSION,
        "kind": CASSANDRA_TASK_KIND,
        "metadata": {"name": c.name, "namespace": c.namespace, "labels": own},
        "spec": spec,
    })
}

impl Ctx<'_> {
    fn child(&self, t: &Target) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.cluster == t.context && c.namespace == t.namespace && c.name == t.task_name)
    }

    fn cluster_ref(&self) -> (String, String) {
        let c = self.task.spec.cluster.as_ref();
        (
            c.and_then(|c| c.name.clone()).unwrap_or_default(),
            c.and_then(|c| c.namespace.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.namespace.clone()),
        )
    }

    /// The referenced K8ssandraCluster's datacenters, or why they cannot be known.
    fn targets(&self) -> Result<Vec<Target>, Vec<String>> {
        let (kc_name, kc_ns) = self.cluster_ref();
        let kc = self
            .s
            .related
            .iter()
            .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some("K8ssandraCluster"))
            .filter_map(|o| o.value().ok())
            .find(|v| {
                v.pointer("/metadata/name").and_then(Value::as_str) == Some(kc_name.as_str())
                    && v.pointer("/metadata/namespace").and_then(Value::as_str)
                        == Some(kc_ns.as_str())
            })
            .ok_or_else(|| {
                vec![format!(
                    "spec.cluster.name: K8ssandraCluster {kc_ns}/{kc_name} does not exist"
                )]
            })?;
        let all: Vec<Target> = kc
            .pointer("/spec/cassandra/datacenters")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                let dc = d
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)?
                    .to_string();
                Some(Target {
                    context: d
                        .get("k8sContext")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    namespace: d
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                        .unwrap_or(&kc_ns)
                        .to_string(),
                    task_name: task_name(&self.name, &dc),
                    dc,
                })
            })
            .collect();
        if all.is_empty() {
            return Err(vec![format!(
                "spec.cluster.name: K8ssandraCluster {kc_ns}/{kc_name} has no datacenters"
            )]);
        }
        let listed = self.task.spec.datacenters.as_deref().unwrap_or_default();
        if listed.is_empty() {
            return Ok(all);
        }
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (i, dc) in listed.iter().enumerate() {
            match all.iter().find(|t| &t.dc == dc) {
                Some(t) => out.push(t.clone()),
                None => errors.push(format!(
                    "spec.datacenters[{i}]: datacenter {dc:?} is not in K8ssandraCluster {kc_ns}/{kc_name} (its datacenters: {})",
                    all.iter().map(|t| t.dc.as_str()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The CassandraTask of a target, as created: the template, with its TTL at 0 (this
    /// policy expires the whole K8ssandraTask instead).
    fn desired(&self, t: &Target) -> Result<Value, PolicyError> {
        let mut template = self.task.spec.template.clone().unwrap_or_default();
        template.ttl_seconds_after_finished = Some(0);
        let mut spec = serde_json::to_value(&template)
            .map_err(|e| error(format!("serialise template: {e}")))?;
        spec["datacenter"] = serde_json::to_value(ObjectReference {
            name: Some(t.dc.clone()),
            namespace: Some(t.namespace.clone()),
            ..Default::default()
        })
        .map_err(|e| error(format!("serialise datacenter: {e}")))?;
        let (kc_name, kc_ns) = self.cluster_ref();
        Ok(json!({
            "apiVersion": CASSANDRA_TASK_API_VERSION,
            "kind": CASSANDRA_TASK_KIND,
            "metadata": {
                "name": t.task_name,
                "namespace": t.namespace,
                "labels": {
                    labels::NAME_LABEL: labels::NAME_LABEL_VALUE,
                    labels::PART_OF_LABEL: labels::PART_OF_LABEL_VALUE,
                    labels::COMPONENT_LABEL: labels::COMPONENT_CASSANDRA,
                    CREATED_BY_LABEL: CREATED_BY_VALUE,
                    TASK_NAME_LABEL: self.name,
                    TASK_NAMESPACE_LABEL: self.namespace,
                    labels::K8SSANDRA_CLUSTER_NAME_LABEL: kc_name,
                    labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL: kc_ns,
                    labels::K8SSANDRA_DATACENTER_LABEL: t.dc,
                },
            },
            "spec": spec,
        }))
    }

    /// Status of the datacenters of existing children only (when the targets are unknown).
    fn observed_only(&self) -> BTreeMap<String, CassandraTaskStatus> {
        let mut out = BTreeMap::new();
        for c in &self.children {
            let dc = c
                .raw
                .pointer(&format!(
                    "/metadata/labels/{}",
                    labels::K8SSANDRA_DATACENTER_LABEL.replace('/', "~1")
                ))
                .or_else(|| c.raw.pointer("/spec/datacenter/name"))
                .and_then(Value::as_str)
                .unwrap_or(&c.name)
                .to_string();
            out.insert(dc, c.status.clone().unwrap_or_default());
        }
        out
    }

    fn run(&mut self) -> Result<(), PolicyError> {
        let mut errors: Vec<String> = validate::check_spec(&self.task)
            .into_iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect();
        let targets = if errors.is_empty() {
            match self.targets() {
                Ok(t) => t,
                Err(e) => {
                    errors.extend(e);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if !errors.is_empty() {
            return self.invalid(errors);
        }

        let allow = validate::dc_policy(&self.task) == ALLOW;
        let prev_dcs = self.prev.datacenters.clone().unwrap_or_default();
        let mut dcs: BTreeMap<String, CassandraTaskStatus> = BTreeMap::new();
        let mut phases: Vec<(String, Phase)> = Vec::new();
        let mut unreachable: Vec<String> = Vec::new();
        // Forbid: open while every datacenter so far succeeded.
        let mut gate = true;
        let mut stopped_by: Option<String> = None;
        for t in &targets {
            let reachable = self.s.cluster_reachable(&t.context);
            let prev = prev_dcs.get(&t.dc);
            let phase = match (reachable, self.child(t)) {
                (true, Some(c)) => {
                    let st = c.status.clone();
                    dcs.insert(t.dc.clone(), st.clone().unwrap_or_default());
                    status::phase(st.as_ref())
                }
                (true, None) if prev.is_some_and(|p| status::phase(Some(p)).finished()) => {
                    // Finished, then its CassandraTask went away: keep the record, never
                    // run it again.
                    dcs.insert(t.dc.clone(), prev.cloned().unwrap_or_default());
                    status::phase(prev)
                }
                (true, None) => Phase::NotCreated,
                (false, _) => {
                    let known = self.s.clusters.iter().any(|c| c.name == t.context);
                    let why = if known {
                        "unreachable"
                    } else {
                        "unknown: no ClientConfig provides it"
                    };
                    unreachable.push(format!(
                        "datacenter {} (context {:?}): {why}",
                        t.dc, t.context
                    ));
                    match prev {
                        Some(p) => {
                            dcs.insert(t.dc.clone(), p.clone());
                            status::phase(Some(p))
                        }
                        None => Phase::NotCreated,
                    }
                }
            };
            let mut phase = phase;
            if phase == Phase::NotCreated && reachable && (allow || gate) {
                let obj = self.desired(t)?;
                self.plan.apply(&t.context, &obj)?;
                self.plan.event(
                    EventType::Normal,
                    "CreateCassandraTask",
                    format!(
                        "Created CassandraTask {}/{} for datacenter {} {}",
                        t.namespace,
                        t.task_name,
                        t.dc,
                        where_(&t.context)
                    ),
                );
                dcs.insert(t.dc.clone(), CassandraTaskStatus::default());
                phase = Phase::Pending;
            }
            if phase.failed() && stopped_by.is_none() {
                stopped_by = Some(t.dc.clone());
            }
            if phase != Phase::Succeeded {
                gate = false;
            }
            phases.push((t.dc.clone(), phase));
        }

        let all_finished = phases.iter().all(|(_, p)| p.finished());
        let any_active = phases.iter().any(|(_, p)| {
            matches!(
                p,
                Phase::Pending | Phase::Running | Phase::Failed { finished: false }
            )
        });
        let any_failed = stopped_by.is_some();
        // Forbid stops at the first failure: finished once nothing runs any more.
        let stopped = !allow && any_failed && !any_active;
        let done = all_finished || stopped;
        let started = phases.iter().any(|(_, p)| *p != Phase::NotCreated);

        let mut total = status::totals(&dcs);
        if all_finished {
            total.completion_time = self
                .prev
                .total
                .completion_time
                .clone()
                .or_else(|| status::latest_end(&dcs))
                .or_else(|| Some(status::time(self.s.now_ms)));
        }
        let was = |t| status::cond(self.prev.total.conditions.as_deref(), t) == Some(true);
        let n = targets.len();
        let succeeded = phases
            .iter()
            .filter(|(_, p)| *p == Phase::Succeeded)
            .count();
        let running_msg = {
            let active: Vec<&str> = phases
                .iter()
                .filter(|(_, p)| {
                    matches!(
                        p,
                        Phase::Pending | Phase::Running | Phase::Failed { finished: false }
                    )
                })
                .map(|(d, _)| d.as_str())
                .collect();
            format!(
                "{succeeded} of {n} datacenters complete; running in: {}",
                if active.is_empty() {
                    "none (waiting)".to_string()
                } else {
                    active.join(", ")
                }
            )
        };
        let failed_dcs: Vec<&str> = phases
            .iter()
            .filter(|(_, p)| p.failed())
            .map(|(d, _)| d.as_str())
            .collect();
        let mut wanted = vec![
            Cond {
                type_: C::INVALID,
                status: false,
                reason: "Valid",
                message: String::new(),
            },
            if done {
                Cond {
                    type_: C::RUNNING,
                    status: false,
                    reason: "Finished",
                    message: String::new(),
                }
            } else if started {
                Cond {
                    type_: C::RUNNING,
                    status: true,
                    reason: "Running",
                    message: running_msg,
                }
            } else {
                Cond {
                    type_: C::RUNNING,
                    status: false,
                    reason: "Pending",
                    message: "no CassandraTask created yet".into(),
                }
            },
            if all_finished {
                Cond {
                    type_: C::COMPLETE,
                    status: true,
                    reason: "Completed",
                    message: format!("the CassandraTasks of all {n} datacenters finished"),
                }
            } else if stopped {
                Cond {
                    type_: C::COMPLETE,
                    status: false,
                    reason: "StoppedAfterFailure",
                    message: format!(
                        "stopped after the failure in {}: dcConcurrencyPolicy Forbid runs no further datacenter",
                        failed_dcs.join(", ")
                    ),
                }
            } else {
                Cond {
                    type_: C::COMPLETE,
                    status: false,
                    reason: "InProgress",
                    message: String::new(),
                }
            },
            if any_failed {
                Cond {
                    type_: C::FAILED,
                    status: true,
                    reason: "DatacenterFailed",
                    message: format!("the CassandraTask failed in: {}", failed_dcs.join(", ")),
                }
            } else {
                Cond {
                    type_: C::FAILED,
                    status: false,
                    reason: "NoFailure",
                    message: String::new(),
                }
            },
        ];
        let had_unreachable = self
            .prev
            .total
            .conditions
            .as_deref()
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == DATACENTER_UNREACHABLE));
        if !unreachable.is_empty() {
            let message = format!("waiting: {}", unreachable.join("; "));
            self.plan
                .event(EventType::Warning, "DatacenterUnreachable", message.clone());
            self.plan.requeue_after(UNREACHABLE_REQUEUE_MS);
            wanted.push(Cond {
                type_: DATACENTER_UNREACHABLE,
                status: true,
                reason: "ClusterUnreachable",
                message,
            });
        } else if had_unreachable {
            wanted.push(Cond {
                type_: DATACENTER_UNREACHABLE,
                status: false,
                reason: "Reachable",
                message: String::new(),
            });
        }
        if any_failed && !was(C::FAILED) {
            self.plan.event(
                EventType::Warning,
                "DatacenterTaskFailed",
                format!("the CassandraTask failed in: {}", failed_dcs.join(", ")),
            );
        }
        if all_finished && !was(C::COMPLETE) {
            self.plan.event(
                EventType::Normal,
                "Completed",
                format!("the CassandraTasks of all {n} datacenters finished"),
            );
        }
        total.conditions = Some(status::conditions(
            self.prev.total.conditions.as_deref(),
            self.s.now_ms,
            wanted,
        ));
        let st = K8ssandraTaskStatus {
            total,
            datacenters: Some(dcs),
        };
        if done && self.expire(Some((&st, &targets)))? {
            return Ok(());
        }
        self.plan.set_status(&st)
    }

    fn invalid(&mut self, errors: Vec<String>) -> Result<(), PolicyError> {
        let message = errors.join("; ");
        self.plan
            .event(EventType::Warning, "InvalidSpec", message.clone());
        let dcs = self.observed_only();
        let mut total = status::totals(&dcs);
        total.conditions = Some(status::conditions(
            self.prev.total.conditions.as_deref(),
            self.s.now_ms,
            vec![
                Cond {
                    type_: C::INVALID,
                    status: true,
                    reason: "InvalidSpec",
                    message,
                },
                Cond {
                    type_: C::RUNNING,
                    status: false,
                    reason: "Invalid",
                    message: "the task cannot run as written (see Invalid)".into(),
                },
                Cond {
                    type_: C::COMPLETE,
                    status: false,
                    reason: "Invalid",
                    message: String::new(),
                },
                Cond {
                    type_: C::FAILED,
                    status: false,
                    reason: "Invalid",
                    message: String::new(),
                },
            ],
        ));
        self.plan.set_status(&K8ssandraTaskStatus {
            total,
            datacenters: Some(dcs),
        })
    }

    /// TTL of a finished task: deletes the K8ssandraTask when it is due (its CassandraTasks
    /// go with it), else asks to be called back then. Returns whether it deletes.
    /// `fresh` is the status just computed and the targets, when the run finished in this
    /// reconcile; otherwise the stored status is used.
    fn expire(
        &mut self,
        fresh: Option<(&K8ssandraTaskStatus, &[Target])>,
    ) -> Result<bool, PolicyError> {
        let ttl_s = self
            .task
            .spec
            .template
            .as_ref()
            .and_then(|t| t.ttl_seconds_after_finished)
            .map_or(DEFAULT_TTL_SECONDS, |t| t.max(0) as u64);
        if ttl_s == 0 {
            return Ok(false);
        }
        let st = fresh.map_or(&self.prev, |(st, _)| st);
        // The run's end: its completion, else (stopped by a failure) the last datacenter's
        // end, else when this task turned Failed.
        let end_ms = st
            .total
            .completion_time
            .clone()
            .or_else(|| status::latest_end(st.datacenters.as_ref()?))
            .or_else(|| {
                st.total
                    .conditions
                    .as_deref()?
                    .iter()
                    .find(|c| c.type_ == C::FAILED && c.status == "True")
                    .map(|c| c.last_transition_time.clone())
            })
            .map(|t| status::ms(&t))
            .unwrap_or(self.s.now_ms);
        let due = end_ms.saturating_add(ttl_s.saturating_mul(1000));
        if self.s.now_ms < due {
            self.plan.requeue_after(due - self.s.now_ms);
            return Ok(false);
        }
        // The host removes the CassandraTasks where it can see them; one left in a cluster
        // it cannot reach would be stranded, so the deletion waits for every such cluster.
        let contexts: Vec<String> = match fresh {
            Some((_, targets)) => targets.iter().map(|t| t.context.clone()).collect(),
            None => match self.targets() {
                Ok(t) => t.into_iter().map(|t| t.context).collect(),
                Err(_) => self.s.clusters.iter().map(|c| c.name.clone()).collect(),
            },
        };
        let blocked: Vec<&String> = contexts
            .iter()
            .filter(|c| !self.s.cluster_reachable(c))
            .collect();
        if !blocked.is_empty() {
            self.plan.event(
                EventType::Warning,
                "DeletionDeferred",
                format!("ttlSecondsAfterFinished expired, but contexts {blocked:?} are unreachable: the task and its CassandraTasks are deleted once they are back"),
            );
            self.plan.requeue_after(UNREACHABLE_REQUEUE_MS);
            return Ok(false);
        }
        self.plan.event(
            EventType::Normal,
            "TTLExpired",
            format!("deleting the K8ssandraTask {ttl_s}s after it finished"),
        );
        self.plan.delete.push(ObjectKey {
            cluster: String::new(),
            api_version: crate::PARENT_API_VERSION.into(),
            kind: crate::PARENT_KIND.into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        });
        Ok(true)
    }
}
