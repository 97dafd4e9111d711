//! Policy runtime: loads WebAssembly policy components and calls them in a sandbox.
//!
//! One [`PolicyRuntime`] per process owns the wasmtime `Engine` (pooling allocator with
//! copy-on-write memory images, epoch interruption), the compiled-artifact cache and the
//! set of loaded policies. Every call gets a fresh `Store` with an empty WASI context, a
//! memory cap and an epoch deadline, and runs on a fiber of the calling task that yields to
//! tokio at every epoch tick, so a looping, trapping or over-allocating policy fails that
//! one call and nothing else, without holding an async worker.
//!
//! Policies are loaded from a directory ([`PolicyRuntime::load_dir`]) and reloaded when a
//! file changes ([`PolicyRuntime::spawn_watcher`]); [`PolicyRuntime::subscribe`] tells the
//! controllers when the set changed.

pub mod bindings;
mod cache;
mod error;
mod instance;
mod store;
mod tool;
mod watch;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tracing::Instrument;
use wasmtime::component::Component;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};

pub use bindings::{Plan, PluginInfo, PolicyError, Snapshot, Violation};
pub use error::{CallError, PluginError, ToolError};
pub use tool::{inspect, parse_snapshot, plan_to_json, test_file};

use bindings::Contract;
use cache::Compiler;
use instance::{Instance, Pre};
use store::CallState;

/// Settings of the policy runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Wall-clock budget of one call (instantiation included).
    pub deadline: Duration,
    /// Granularity of the deadline: how often the engine's epoch is bumped.
    pub epoch_tick: Duration,
    /// Linear memory one call may use, in bytes.
    pub memory_limit: usize,
    /// Instances that may run at once (size of the pooling allocator and of the semaphore).
    pub max_instances: u32,
    /// Directory of precompiled artifacts; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Quiet period the directory watcher waits for before reloading, so a file being
    /// copied is read once it is complete.
    pub reload_debounce: Duration,
    /// Compile components in a child process: this program and arguments, to which the
    /// component's path and the artifact's path are appended (the operator passes itself
    /// with `plugin compile` and the settings below). Compiling a large policy needs tens
    /// of MiB the allocator would otherwise keep for the life of the process. `None`
    /// compiles in process.
    pub compile_command: Option<Vec<std::ffi::OsString>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            deadline: Duration::from_secs(2),
            epoch_tick: Duration::from_millis(10),
            memory_limit: 128 << 20,
            max_instances: 64,
            cache_dir: None,
            reload_debounce: Duration::from_millis(250),
            compile_command: None,
        }
    }
}

/// A policy component, compiled, type-checked and pre-instantiated.
pub struct LoadedPolicy {
    /// What `describe` answered when the policy was loaded.
    pub info: PluginInfo,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Hex SHA-256 of the file's content.
    pub hash: String,
    /// Whether the compiled code came from the artifact cache.
    pub from_cache: bool,
    callable: Callable,
}

impl LoadedPolicy {
    /// The policy's name (`info.name`).
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("name", &self.info.name)
            .field("version", &self.info.version)
            .field("path", &self.path)
            .field("hash", &self.hash)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

/// What a call needs.
#[derive(Clone)]
struct Callable {
    /// The name used in logs and errors: the file name until `describe` answered.
    name: Arc<str>,
    pre: Pre,
}

/// The outcome of loading one file of a directory.
#[derive(Debug)]
pub struct LoadReport {
    pub path: PathBuf,
    pub result: Result<Arc<LoadedPolicy>, PluginError>,
}

/// Handle to the policy runtime; clones share the engine and the loaded policies.
#[derive(Clone)]
pub struct PolicyRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// One linker per served contract version, in `Contract::SUPPORTED` order.
    linkers: Vec<(Contract, wasmtime::component::Linker<CallState>)>,
    compiler: Compiler,
    cfg: RuntimeConfig,
    permits: Arc<Semaphore>,
    policies: RwLock<BTreeMap<PathBuf, Arc<LoadedPolicy>>>,
    version: tokio::sync::watch::Sender<u64>,
    /// Policy files read (and hashed) by `load_file`.
    files_read: std::sync::atomic::AtomicU64,
}

impl PolicyRuntime {
    /// Creates the engine and starts its epoch ticker. Create one per process: the
    /// pooling allocator reserves address space for `max_instances` instances up front.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, PluginError> {
        let engine_err = |e: wasmtime::Error| PluginError::Engine {
            reason: format!("{e:#}"),
        };
        if cfg.epoch_tick.is_zero() || cfg.deadline < cfg.epoch_tick || cfg.max_instances == 0 {
            return Err(PluginError::Engine {
                reason: format!(
                    "need 0 < epoch_tick <= deadline and max_instances > 0 (got tick {:?}, deadline {:?}, {} instances)",
                    cfg.epoch_tick, cfg.deadline, cfg.max_instances
                ),
            });
        }
        let engine = Engine::new(&engine_config(&cfg)).map_err(engine_err)?;
        let linkers = Contract::SUPPORTED
            .into_iter()
            .map(|c| Ok((c, store::linker(&engine, c)?)))
            .collect::<wasmtime::Result<Vec<_>>>()
            .map_err(engine_err)?;
        spawn_epoch_ticker(&engine, cfg.epoch_tick)?;
        let permits = Arc::new(Semaphore::new(cfg.max_instances as usize));
        let (version, _) = tokio::sync::watch::channel(0);
        Ok(PolicyRuntime {
            inner: Arc::new(Inner {
                compiler: Compiler::new(
                    engine.clone(),
                    cfg.cache_dir.clone(),
                    cfg.compile_command.clone(),
                ),
                engine,
                linkers,
                cfg,
                permits,
                policies: RwLock::new(BTreeMap::new()),
                version,
                files_read: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.cfg
    }

    /// Components compiled by this runtime (cache misses), for tests and metrics.
    pub fn compilations(&self) -> u64 {
        self.inner.compiler.compilations()
    }

    /// Components loaded from the artifact cache.
    pub fn cache_hits(&self) -> u64 {
        self.inner.compiler.cache_hits()
    }

    /// Policy files read and hashed so far (each load, reload and directory re-sync reads
    /// every file): nothing should read them while the directory is unchanged.
    pub fn files_read(&self) -> u64 {
        self.inner
            .files_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where the precompiled artifact of this policy lives, when caching is on.
    pub fn artifact_path(&self, policy: &LoadedPolicy) -> Option<PathBuf> {
        self.inner.compiler.artifact_path(&policy.hash)
    }

    /// The loaded policies, ordered by name.
    pub fn policies(&self) -> Vec<Arc<LoadedPolicy>> {
        let mut all: Vec<_> = self.read_policies().values().cloned().collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// The loaded policy of this name.
    pub fn policy(&self, name: &str) -> Option<Arc<LoadedPolicy>> {
        self.read_policies()
            .values()
            .find(|p| p.info.name == name)
            .cloned()
    }

    /// A counter bumped every time a policy is loaded, replaced or unloaded.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Loads every `*.wasm` file of `dir` and unloads policies of `dir` whose file is gone.
    /// One bad file is reported (not logged: the caller decides) and does not stop the
    /// others; a file that fails to load
    /// while an older version of it is loaded leaves the older version serving.
    pub async fn load_dir(&self, dir: &Path) -> Vec<LoadReport> {
        let dir = absolute(dir);
        let files = match list_wasm(&dir).await {
            Ok(files) => files,
            Err(source) => {
                return vec![LoadReport {
                    path: dir.clone(),
                    result: Err(PluginError::Io { file: dir, source }),
                }];
            }
        };
        let gone: Vec<PathBuf> = self
            .read_policies()
            .keys()
            .filter(|p| p.parent() == Some(dir.as_path()) && !files.contains(p))
            .cloned()
            .collect();
        for path in gone {
            self.unload(&path);
        }
        let mut reports = Vec::with_capacity(files.len());
        for path in files {
            let result = self.load_file(&path).await;
            reports.push(LoadReport { path, result });
        }
        reports
    }

    /// Loads (or reloads) one policy file. Loading an unchanged file again is a no-op;
    /// a changed file replaces the loaded version only once the new one is ready.
    pub async fn load_file(&self, path: &Path) -> Result<Arc<LoadedPolicy>, PluginError> {
        let path = absolute(path);
        self.inner
            .files_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| PluginError::Io {
                file: path.clone(),
                source,
            })?;
        let hash = cache::content_hash(&bytes);
        if let Some(current) = self.read_policies().get(&path)
            && current.hash == hash
        {
            return Ok(current.clone());
        }
        let policy = Arc::new(self.prepare(path.clone(), bytes, hash).await?);
        {
            let mut policies = self.write_policies();
            if let Some(other) = policies
                .values()
                .find(|p| p.info.name == policy.info.name && p.path != path)
            {
                return Err(PluginError::DuplicateName {
                    file: path,
                    name: policy.info.name.clone(),
                    other: other.path.clone(),
                });
            }
            let previous = policies.insert(path.clone(), policy.clone());
            match previous {
                Some(old) => tracing::info!(
                    file = %path.display(), policy = %policy.info.name, version = %policy.info.version,
                    replaced = %old.info.name, "policy reloaded"
                ),
                None => tracing::info!(
                    file = %path.display(), policy = %policy.info.name, version = %policy.info.version,
                    from_cache = policy.from_cache, "policy loaded"
                ),
            }
        }
        self.inner.version.send_modify(|v| *v += 1);
        Ok(policy)
    }

    /// Unloads the policy loaded from `path`, if any.
    pub fn unload(&self, path: &Path) -> Option<Arc<LoadedPolicy>> {
        let path = absolute(path);
        let removed = self.write_policies().remove(&path);
        if let Some(policy) = &removed {
            tracing::info!(file = %path.display(), policy = %policy.info.name, "policy unloaded");
            self.inner.version.send_modify(|v| *v += 1);
        }
        removed
    }

    /// Compiles and describes a policy file without registering it (`plugin inspect`).
    pub async fn inspect_file(&self, path: &Path) -> Result<LoadedPolicy, PluginError> {
        let path = absolute(path);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| PluginError::Io {
                file: path.clone(),
                source,
            })?;
        let hash = cache::content_hash(&bytes);
        self.prepare(path, bytes, hash).await
    }

    /// Watches `dir` and reloads policies when a `*.wasm` file is added, changed or
    /// removed. Stops when the handle is aborted.
    pub fn spawn_watcher(&self, dir: PathBuf) -> tokio::task::JoinHandle<()> {
        tokio::spawn(watch::run(self.clone(), absolute(&dir)))
    }

    /// Runs `reconcile`. The outer error is the sandbox's (timeout, memory, trap); the
    /// inner one is the policy's own answer.
    pub async fn reconcile(
        &self,
        policy: &LoadedPolicy,
        snapshot: Snapshot,
    ) -> Result<Result<Plan, PolicyError>, CallError> {
        self.call(&policy.callable, move |p, store| {
            Box::pin(async move { p.call_reconcile(store, &snapshot).await })
        })
        .await
    }

    /// Runs `validate` on an object (JSON) and, on update, its previous version.
    pub async fn validate(
        &self,
        policy: &LoadedPolicy,
        object: String,
        old: Option<String>,
    ) -> Result<Vec<Violation>, CallError> {
        self.call(&policy.callable, move |p, store| {
            Box::pin(async move { p.call_validate(store, &object, old.as_deref()).await })
        })
        .await
    }

    /// Instantiates the policy in a fresh store and drops it: the fixed cost of every call.
    /// For the benchmark's breakdown (no slot is waited for).
    #[doc(hidden)]
    pub async fn instantiate_only(&self, policy: &LoadedPolicy) -> Result<(), CallError> {
        self.run(&policy.callable, |_, _| Box::pin(async { Ok(()) }))
            .await
    }

    /// Runs `reconcile` `n` times in one instance: the cost of the call alone (lowering the
    /// snapshot, the guest's work, lifting the plan), without instantiation. For the
    /// benchmark's breakdown; production never reuses an instance.
    #[doc(hidden)]
    pub async fn reconcile_reusing_instance(
        &self,
        policy: &LoadedPolicy,
        snapshot: &Snapshot,
        n: usize,
    ) -> Result<Vec<Result<Plan, PolicyError>>, CallError> {
        let snapshot = snapshot.clone();
        self.run(&policy.callable, move |p, store| {
            Box::pin(async move {
                let mut plans = Vec::with_capacity(n);
                for _ in 0..n {
                    plans.push(p.call_reconcile(&mut *store, &snapshot).await?);
                }
                Ok(plans)
            })
        })
        .await
    }

    /// Waits for an instance slot, then runs the call on the current task. The permit
    /// lives as long as the call's store: a caller that gives up drops both together.
    async fn call<R>(
        &self,
        callable: &Callable,
        f: impl for<'a> FnOnce(
            &'a Instance,
            &'a mut Store<CallState>,
        ) -> BoxFuture<'a, wasmtime::Result<R>>,
    ) -> Result<R, CallError> {
        let waited = self.inner.cfg.deadline;
        let _permit =
            match tokio::time::timeout(waited, self.inner.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_closed)) => {
                    return Err(CallError::Aborted {
                        policy: callable.name.to_string(),
                        message: "the runtime is shutting down".into(),
                    });
                }
                Err(_elapsed) => {
                    return Err(CallError::PoolExhausted {
                        policy: callable.name.to_string(),
                        size: self.inner.cfg.max_instances,
                        waited,
                    });
                }
            };
        let span = tracing::debug_span!("policy_call", policy = %callable.name);
        self.run(callable, f).instrument(span).await
    }

    /// Instantiates the policy in a fresh store and runs `f`, mapping every failure to the
    /// reason a user can act on.
    ///
    /// The guest runs on a fiber of the calling task rather than on tokio's blocking pool
    /// (the hand-off cost more than instantiating). It cannot hold the async worker: every
    /// epoch tick it yields to the executor, and once the deadline has passed the next
    /// tick traps instead. The deadline is wall-clock from the store's creation, whether
    /// the call was running or waiting to be polled.
    async fn run<R>(
        &self,
        callable: &Callable,
        f: impl for<'a> FnOnce(
            &'a Instance,
            &'a mut Store<CallState>,
        ) -> BoxFuture<'a, wasmtime::Result<R>>,
    ) -> Result<R, CallError> {
        let inner = &self.inner;
        let mut store = Store::new(
            &inner.engine,
            CallState::new(callable.name.clone(), inner.cfg.memory_limit),
        );
        store.limiter(|state| &mut state.limiter);
        let deadline = Instant::now() + inner.cfg.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let result = match callable.pre.instantiate_async(&mut store).await {
            Ok(instance) => f(&instance, &mut store).await,
            Err(error) if error.downcast_ref::<Trap>().is_none() => {
                let policy = callable.name.to_string();
                if store.data().limiter.refused_memory {
                    return Err(CallError::MemoryExceeded {
                        policy,
                        limit: inner.cfg.memory_limit,
                    });
                }
                if error
                    .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                    .is_some()
                {
                    return Err(CallError::PoolExhausted {
                        policy,
                        size: inner.cfg.max_instances,
                        waited: Duration::ZERO,
                    });
                }
                return Err(CallError::Instantiate {
                    policy,
                    message: format!("{error:#}"),
                });
            }
            Err(error) => Err(error),
        };
        result.map_err(|error| self.classify(callable, store.data(), error))
    }

    fn classify(
        &self,
        callable: &Callable,
        state: &CallState,
        error: wasmtime::Error,
    ) -> CallError {
        let policy = callable.name.to_string();
        let call_error = if state.limiter.refused_memory {
            // The guest's allocator fails, then Rust aborts: the trap is a consequence.
            CallError::MemoryExceeded {
                policy,
                limit: self.inner.cfg.memory_limit,
            }
        } else if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
            CallError::Timeout {
                policy,
                deadline: self.inner.cfg.deadline,
            }
        } else {
            let cause = match error.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => format!("{error:#}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            let message = match state.stderr_line() {
                Some(stderr) => format!("{cause} ({stderr})"),
                None => cause,
            };
            CallError::Trap { policy, message }
        };
        tracing::warn!(policy = %callable.name, error = %call_error, detail = %format!("{error:?}"), "policy call failed");
        call_error
    }

    /// Compiles (or loads from cache), checks the world, pre-instantiates and describes.
    async fn prepare(
        &self,
        path: PathBuf,
        bytes: Vec<u8>,
        hash: String,
    ) -> Result<LoadedPolicy, PluginError> {
        world::check_header(&path, &bytes)?;
        let rt = self.clone();
        let (compiled_path, compiled_hash) = (path.clone(), hash.clone());
        let compiled = tokio::task::spawn_blocking(move || {
            let (component, from_cache) =
                rt.inner
                    .compiler
                    .compile(&compiled_path, &bytes, &compiled_hash)?;
            let contract = world::check_world(&compiled_path, &rt.inner.engine, &component)?;
            let pre = rt.pre_instantiate(&compiled_path, &component, contract)?;
            Ok::<_, PluginError>((pre, from_cache))
        })
        .await
        .map_err(|join| PluginError::Compile {
            file: path.clone(),
            reason: join.to_string(),
        })?;
        let (pre, from_cache) = compiled?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let callable = Callable {
            name: Arc::from(file_name),
            pre,
        };
        let info = self
            .call(&callable, |p, store| {
                Box::pin(async move { p.call_describe(store).await })
            })
            .await
            .map_err(|source| PluginError::Describe {
                file: path.clone(),
                source,
            })?;
        Ok(LoadedPolicy {
            callable: Callable {
                name: Arc::from(info.name.as_str()),
                pre: callable.pre,
            },
            info,
            path,
            hash,
            from_cache,
        })
    }

    fn pre_instantiate(
        &self,
        file: &Path,
        component: &Component,
        contract: Contract,
    ) -> Result<Pre, PluginError> {
        let link = |e: wasmtime::Error| PluginError::Link {
            file: file.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let linker = self
            .inner
            .linkers
            .iter()
            .find_map(|(c, l)| (*c == contract).then_some(l))
            .ok_or_else(|| link(wasmtime::format_err!("no linker for {contract:?}")))?;
        let pre = linker.instantiate_pre(component).map_err(link)?;
        Pre::new(contract, pre).map_err(link)
    }

    fn read_policies(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<PathBuf, Arc<LoadedPolicy>>> {
        // A panic while holding the lock cannot leave the map half-updated (every write
        // is a single insert or remove), so a poisoned lock is still consistent.
        self.inner
            .policies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_policies(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<PathBuf, Arc<LoadedPolicy>>> {
        self.inner
            .policies
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Compiles one component file into an artifact for a runtime of this configuration, and
/// writes it to `output`: what the child process of [`RuntimeConfig::compile_command`]
/// runs. No runtime (and no epoch ticker or instance pool) is created.
pub fn precompile(cfg: &RuntimeConfig, input: &Path, output: &Path) -> Result<(), PluginError> {
    let engine = Engine::new(&engine_config(cfg)).map_err(|e| PluginError::Engine {
        reason: format!("{e:#}"),
    })?;
    cache::precompile_file(&engine, input, output)
}

/// Bytes of linear memory a free instance slot keeps resident (see `engine_config`).
const KEEP_RESIDENT: usize = 1 << 20;

fn engine_config(cfg: &RuntimeConfig) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Instantiation maps the initial heap copy-on-write from the compiled image instead of
    // copying data segments: this is what makes a fresh store per call cheap.
    config.memory_init_cow(true);
    let mut pool = PoolingAllocationConfig::new();
    let n = cfg.max_instances;
    pool.total_component_instances(n);
    // A Rust wasm32-wasip2 component has a handful of core instances (the program, the
    // canonical-ABI shims), one or two memories and a few tables.
    pool.total_core_instances(n.saturating_mul(8));
    pool.total_memories(n.saturating_mul(2));
    pool.total_tables(n.saturating_mul(4));
    // Slots are sized for the cap, rounded up to whole wasm pages; the limiter enforces
    // the exact number and records the refusal.
    pool.max_memory_size(cfg.memory_limit.next_multiple_of(64 << 10));
    // When a slot is reused, zero up to this much of the previous call's memory in place
    // instead of returning it to the kernel: the next call then touches resident pages
    // rather than faulting each one in again. Policies' heaps are small. Where the kernel
    // has PAGEMAP_SCAN (Linux 6.7+), only the pages the call dirtied are reset.
    pool.linear_memory_keep_resident(KEEP_RESIDENT);
    pool.table_keep_resident(64 << 10);
    // One fiber stack per running call. Stacks are not zeroed between calls: they hold
    // host and compiled-code frames only, which a guest cannot read (its data lives in its
    // linear memory, which is reset).
    pool.total_stacks(n);
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Bumps the engine's epoch every `tick` until the engine is dropped. A thread rather than
/// a tokio task: a stalled async runtime must not stall the deadlines of running policies.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) -> Result<(), PluginError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("policy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(|_| ())
        .map_err(|e| PluginError::Engine {
            reason: format!("cannot start the epoch ticker: {e}"),
        })
}

/// Paths are kept absolute so the watcher's events and the loader agree on keys.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The `*.wasm` files of a directory (hidden files excluded: editors and our own cache
/// writes use them for partial content), sorted.
async fn list_wasm(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        // `metadata` follows symlinks: a ConfigMap volume mounts files as symlinks.
        if is_policy_file(&path) && tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_policy_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
