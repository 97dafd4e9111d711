//! A policy instance of whichever contract version its component was built against, with
//! the three exports called in the host's (newest) types.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{self, Contract, Plan, PluginInfo, PolicyError, Snapshot, Violation, compat};
use super::store::CallState;

/// A component pre-instantiated against the linker of its contract version.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_4(bindings::PolicyPre<CallState>),
    V0_3(bindings::v0_3::PolicyPre<CallState>),
    V0_2(bindings::v0_2::PolicyPre<CallState>),
    V0_1(bindings::v0_1::PolicyPre<CallState>),
}

impl Pre {
    pub(crate) fn new(contract: Contract, pre: InstancePre<CallState>) -> wasmtime::Result<Pre> {
        Ok(match contract {
            Contract::V0_4 => Pre::V0_4(bindings::PolicyPre::new(pre)?),
            Contract::V0_3 => Pre::V0_3(bindings::v0_3::PolicyPre::new(pre)?),
            Contract::V0_2 => Pre::V0_2(bindings::v0_2::PolicyPre::new(pre)?),
            Contract::V0_1 => Pre::V0_1(bindings::v0_1::PolicyPre::new(pre)?),
        })
    }

    pub(crate) async fn instantiate_async(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_4(pre) => Instance::V0_4(pre.instantiate_async(store).await?),
            Pre::V0_3(pre) => Instance::V0_3(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

/// One instantiated policy.
pub(crate) enum Instance {
    V0_4(bindings::Policy),
    V0_3(bindings::v0_3::Policy),
    V0_2(bindings::v0_2::Policy),
    V0_1(bindings::v0_1::Policy),
}

impl Instance {
    pub(crate) async fn call_describe(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<PluginInfo> {
        match self {
            Instance::V0_4(p) => p.call_describe(store).await,
            Instance::V0_3(p) => Ok(compat::convert(&p.call_describe(store).await?)?),
            Instance::V0_2(p) => Ok(compat::convert(&p.call_describe(store).await?)?),
            Instance::V0_1(p) => Ok(compat::convert(&p.call_describe(store).await?)?),
        }
    }

    pub(crate) async fn call_reconcile(
        &self,
        store: &mut Store<CallState>,
        snapshot: &Snapshot,
    ) -> wasmtime::Result<Result<Plan, PolicyError>> {
        match self {
            Instance::V0_4(p) => p.call_reconcile(store, snapshot).await,
            Instance::V0_3(p) => {
                let (old, held_back) = compat::snapshot_to(Contract::V0_3, snapshot)?;
                Ok(match p.call_reconcile(store, &old).await? {
                    Ok(plan) => Ok(compat::plan_from(&plan, held_back)?),
                    Err(e) => Err(compat::convert(&e)?),
                })
            }
            Instance::V0_2(p) => {
                let (old, held_back) = compat::snapshot_to(Contract::V0_2, snapshot)?;
                Ok(match p.call_reconcile(store, &old).await? {
                    Ok(plan) => Ok(compat::plan_from(&plan, held_back)?),
                    Err(e) => Err(compat::convert(&e)?),
                })
            }
            Instance::V0_1(p) => {
                let (old, held_back) = compat::snapshot_to(Contract::V0_1, snapshot)?;
                Ok(match p.call_reconcile(store, &old).await? {
                    Ok(plan) => Ok(compat::plan_from(&plan, held_back)?),
                    Err(e) => Err(compat::convert(&e)?),
                })
            }
        }
    }

    pub(crate) async fn call_validate(
        &self,
        store: &mut Store<CallState>,
        object: &str,
        old: Option<&str>,
    ) -> wasmtime::Result<Vec<Violation>> {
        match self {
            Instance::V0_4(p) => p.call_validate(store, object, old).await,
            Instance::V0_3(p) => Ok(compat::convert(
                &p.call_validate(store, object, old).await?,
            )?),
            Instance::V0_2(p) => Ok(compat::convert(
                &p.call_validate(store, object, old).await?,
            )?),
            Instance::V0_1(p) => Ok(compat::convert(
                &p.call_validate(store, object, old).await?,
            )?),
        }
    }
}
