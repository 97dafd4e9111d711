//! Per-call store state: an empty WASI context, the memory limiter, and the host side of
//! the `log` import.

use std::sync::Arc;

use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView,
    WasiView,
};

use super::bindings::{self, Level};

/// Longest log line (bytes) accepted from a policy; longer ones are cut, so a policy cannot
/// flood the operator's log.
pub(crate) const MAX_LOG_LINE: usize = 4096;
/// Log lines accepted from one call; a policy logging in a loop is cut off after this.
const MAX_LOG_LINES: u32 = 256;
/// How much of a policy's stderr is kept per call (enough for a panic message).
const STDERR_CAPACITY: usize = 8192;
/// The bytes a policy's random source repeats.
const RANDOM_BYTES: [u8; 8] = [0x6b, 0x38, 0x73, 0x73, 0x61, 0x6e, 0x64, 0x72];
/// The `wasi:clocks` version wasmtime-wasi links; the waits are shadowed under this exact
/// name (the `sleeping_policy_*` test fails if an upgrade changes it).
const WASI_CLOCKS_MONOTONIC: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The data of one `Store`: lives for exactly one call.
pub(crate) struct CallState {
    pub(crate) policy: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    log_lines: u32,
    /// Rust's std writes panic messages to stderr; keeping it lets a trap say why.
    pub(crate) stderr: MemoryOutputPipe,
}

impl CallState {
    pub(crate) fn new(policy: Arc<str>, memory_limit: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // A policy is a pure function: no preopened directories, no environment, no
        // arguments, no stdin (closed by default), stdout discarded (the default), and
        // no network at all, even though `wasi:sockets` must be linked for std's imports.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            // Time stands still and randomness repeats: a policy's only clock is
            // `snapshot.now-ms`, and the same snapshot must give the same plan (std's
            // HashMap seeds come from here too).
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(RANDOM_BYTES.to_vec()))
            .insecure_random(Deterministic::new(RANDOM_BYTES.to_vec()))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        CallState {
            policy,
            wasi,
            table: ResourceTable::new(),
            limiter: CallLimiter::new(memory_limit),
            log_lines: 0,
            stderr,
        }
    }

    /// What the guest wrote to stderr, on one line, bounded.
    pub(crate) fn stderr_line(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
            .collect::<Vec<_>>()
            .join(" ");
        (!line.is_empty()).then(|| truncate(line, 512))
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and tables for one call, and remembers that it refused a growth so a
/// resulting trap can be reported as `MemoryExceeded` rather than a generic crash.
pub(crate) struct CallLimiter {
    memory_limit: usize,
    pub(crate) refused_memory: bool,
}

/// Table elements allowed per table; generous for Rust guests (their tables hold function
/// pointers), small enough to bound host memory.
const TABLE_ELEMENTS_LIMIT: usize = 100_000;

impl CallLimiter {
    fn new(memory_limit: usize) -> Self {
        CallLimiter {
            memory_limit,
            refused_memory: false,
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allow = desired <= self.memory_limit && maximum.is_none_or(|max| desired <= max);
        if !allow {
            self.refused_memory = true;
        }
        Ok(allow)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_LIMIT && maximum.is_none_or(|max| desired <= max))
    }
}

/// Marker for the `log` import's host implementation.
pub(crate) struct PolicyHost;

impl HasData for PolicyHost {
    type Data<'a> = &'a mut CallState;
}

impl bindings::PolicyImports for CallState {
    fn log(&mut self, level: Level, message: String) {
        self.log_lines = self.log_lines.saturating_add(1);
        let policy: &str = &self.policy;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(
                    policy,
                    limit = MAX_LOG_LINES,
                    "policy logs too much; dropping its further lines for this call"
                );
            }
            return;
        }
        let message = truncate(message, MAX_LOG_LINE);
        match level {
            Level::Trace => tracing::trace!(policy, "{message}"),
            Level::Debug => tracing::debug!(policy, "{message}"),
            Level::Info => tracing::info!(policy, "{message}"),
            Level::Warn => tracing::warn!(policy, "{message}"),
            Level::Error => tracing::error!(policy, "{message}"),
        }
    }
}

impl bindings::Host for CallState {}

/// The `log` import of an earlier version, with its own `level` type.
macro_rules! log_import_of {
    ($v:ident) => {
        impl bindings::$v::PolicyImports for CallState {
            fn log(&mut self, level: bindings::$v::Level, message: String) {
                use bindings::$v::Level as Old;
                let level = match level {
                    Old::Trace => Level::Trace,
                    Old::Debug => Level::Debug,
                    Old::Info => Level::Info,
                    Old::Warn => Level::Warn,
                    Old::Error => Level::Error,
                };
                bindings::PolicyImports::log(self, level, message);
            }
        }

        impl bindings::$v::Host for CallState {}
    };
}

log_import_of!(v0_1);
log_import_of!(v0_2);
log_import_of!(v0_3);

/// The linker every policy built against `contract` is instantiated against: WASI (without
/// capabilities) plus that version's `log` import. One linker per version, because every
/// version names its own `log` at the component's root.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    contract: bindings::Contract,
) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    // Rust's std on wasm32-wasip2 imports WASI interfaces even when a policy never uses
    // them; linking them keeps ordinary policies loadable, and the context above grants
    // nothing.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    shadow_clock_waits(&mut linker)?;
    match contract {
        bindings::Contract::V0_4 => {
            bindings::Policy::add_to_linker::<CallState, PolicyHost>(&mut linker, |state| state)?
        }
        bindings::Contract::V0_3 => {
            bindings::v0_3::Policy::add_to_linker::<CallState, PolicyHost>(&mut linker, |state| {
                state
            })?
        }
        bindings::Contract::V0_2 => {
            bindings::v0_2::Policy::add_to_linker::<CallState, PolicyHost>(&mut linker, |state| {
                state
            })?
        }
        bindings::Contract::V0_1 => {
            bindings::v0_1::Policy::add_to_linker::<CallState, PolicyHost>(&mut linker, |state| {
                state
            })?
        }
    }
    Ok(linker)
}

/// A wait on the monotonic clock (`std::thread::sleep`, poll timeouts) blocks in host
/// code, where the epoch deadline cannot interrupt it: a sleeping policy would hold its
/// thread and instance slot for as long as it asks. Time is frozen for policies anyway,
/// so every wait is over at once; a policy that waits in a loop becomes a busy loop, which
/// the deadline stops.
fn shadow_clock_waits(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    fn elapsed(
        mut store: StoreContextMut<'_, CallState>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let table = &mut store.data_mut().table;
        let pollable = table.push(Elapsed)?;
        subscribe(table, pollable)
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance(WASI_CLOCKS_MONOTONIC)?;
    clock.func_wrap("subscribe-duration", |store, (_,): (u64,)| {
        Ok((elapsed(store)?,))
    })?;
    clock.func_wrap("subscribe-instant", |store, (_,): (u64,)| {
        Ok((elapsed(store)?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable that is always ready.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

/// A clock that always reads zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
