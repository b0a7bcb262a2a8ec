//! One plugin instance in its own store: the resource limits, the WASI context with nothing in
//! it, and the calls into either plugin API version.

use std::fmt;
use std::path::Path;

use tracing::debug;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capabilities::CallScope;
use crate::bindings::plugin::exports::vigil::detect::mitigation::{
    ExecutionContext, MitigationError, PluginMetadata,
};
use crate::bindings::plugin::{MitigationPlugin, MitigationPluginPre};
use crate::bindings::plugin_v0_1 as v0_1;
use crate::bindings::plugin_v0_1::exports::vigil::detect::mitigation as v0_1_mitigation;

/// Bytes of plugin stderr kept per instance, enough for a panic message and its location.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Where a plugin granted `wasi-filesystem` finds its state folder.
pub const STATE_GUEST_PATH: &str = "/state";

/// Characters of captured stderr quoted in a trap message.
const STDERR_QUOTE_CHARS: usize = 512;

/// Resource limits applied to every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Fuel for one call (`metadata` or `apply`), and for instantiating the plugin. One unit is
    /// roughly one WebAssembly instruction. Running out fails the call with `PLUGIN_TIMEOUT`.
    pub fuel_per_call: u64,
    /// Maximum size in bytes of each linear memory. Growth past it fails inside the plugin, and a
    /// call that then traps fails with `PLUGIN_OUT_OF_MEMORY`.
    pub memory_bytes: usize,
    /// Maximum number of core and component instances in one plugin's store.
    pub instances: usize,
    /// Maximum number of tables in one plugin's store.
    pub tables: usize,
    /// Maximum number of linear memories in one plugin's store.
    pub memories: usize,
    /// Maximum number of elements in each table.
    pub table_elements: usize,
    /// Maximum number of host calls (capabilities and logging) in one `apply`. The call that
    /// goes past it traps, which fails the execution with `PLUGIN_TRAP`.
    pub host_calls_per_apply: u32,
    /// Maximum size in bytes of the strings a plugin returns: its metadata and its error
    /// message. A larger return value fails the call with `PLUGIN_OUTPUT_TOO_LARGE`.
    pub output_bytes: usize,
    /// Maximum number of WASI handles (open files, streams, pollables) one instance holds at a
    /// time. Past it, opening another fails inside the plugin, so a plugin cannot use up the
    /// host's file descriptors.
    pub handles: usize,
}

impl Default for PluginLimits {
    /// Limits well above what the bundled plugins need. Measured on the release build of
    /// `add-things-to-thing-group` with the tests in `host/tests/plugins.rs`: `apply` with ten
    /// groups uses about 16,000 fuel, and an instance needs 1.1 MiB of memory, 3 instances, 2
    /// tables with at most 64 elements and 1 memory. The fuel budget is about 1000 times the
    /// ten-group cost. Fuel counts instructions, not time: the hostile fixture's endless loop
    /// burns 20 million units in well under a millisecond.
    fn default() -> Self {
        Self {
            fuel_per_call: 20_000_000,
            memory_bytes: 64 * 1024 * 1024,
            instances: 32,
            tables: 16,
            memories: 4,
            table_elements: 10_000,
            host_calls_per_apply: 1_000,
            output_bytes: 64 * 1024,
            handles: 256,
        }
    }
}

/// A compiled plugin ready to instantiate, for the API version it was built against.
pub(crate) enum PluginPre {
    /// `vigil:detect/mitigation-plugin@0.2.0`.
    Current(MitigationPluginPre<PluginState>),
    /// `vigil:detect/mitigation-plugin@0.1.0`.
    V0_1(v0_1::MitigationPluginPre<PluginState>),
}

impl PluginPre {
    /// Prepares `component` for the API version whose world it implements.
    pub(crate) fn new(
        linker: &Linker<PluginState>,
        component: &Component,
    ) -> wasmtime::Result<Self> {
        let pre = linker.instantiate_pre(component)?;
        match MitigationPluginPre::new(pre.clone()) {
            Ok(current) => Ok(Self::Current(current)),
            Err(current_error) => v0_1::MitigationPluginPre::new(pre)
                .map(Self::V0_1)
                .map_err(|_| current_error),
        }
    }

    /// The API version, for listings.
    pub(crate) fn api_version(&self) -> &'static str {
        match self {
            PluginPre::Current(_) => "0.2.0",
            PluginPre::V0_1(_) => "0.1.0",
        }
    }
}

/// The bindings of one instance.
enum Instance {
    Current(MitigationPlugin),
    V0_1(v0_1::MitigationPlugin),
}

/// An instance of a plugin in its own store.
pub(crate) struct Sandbox {
    pub(crate) store: Store<PluginState>,
    instance: Instance,
}

impl Sandbox {
    /// Creates a store with the plugin's limits and instantiates the plugin in it.
    /// With `state_dir`, the plugin sees that folder as `/state`, read and write.
    pub(crate) fn new(
        pre: &PluginPre,
        plugin: &str,
        limits: &PluginLimits,
        state_dir: Option<&Path>,
    ) -> wasmtime::Result<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = state_dir {
            builder.preopened_dir(dir, STATE_GUEST_PATH, FsPerms::ReadWrite)?;
        }
        let wasi = builder.build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.handles);
        let state = PluginState {
            plugin: plugin.to_string(),
            wasi,
            table,
            limits: SandboxLimits::new(limits),
            stderr,
            call: None,
        };

        let engine = match pre {
            PluginPre::Current(pre) => pre.engine(),
            PluginPre::V0_1(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_fuel(limits.fuel_per_call)?;
        let instance = match pre {
            PluginPre::Current(pre) => Instance::Current(pre.instantiate(&mut store)?),
            PluginPre::V0_1(pre) => Instance::V0_1(pre.instantiate(&mut store)?),
        };
        Ok(Self { store, instance })
    }

    /// Calls the plugin's `metadata` (or `describe` in API 0.1.0).
    pub(crate) fn metadata(&mut self) -> wasmtime::Result<PluginMetadata> {
        match &self.instance {
            Instance::Current(bindings) => bindings
                .vigil_detect_mitigation()
                .call_metadata(&mut self.store),
            Instance::V0_1(bindings) => {
                let description = bindings
                    .vigil_detect_mitigation()
                    .call_describe(&mut self.store)?;
                Ok(PluginMetadata {
                    name: description.name,
                    version: description.version,
                    description: String::new(),
                    action_types: description.action_types,
                    parameters_schema: None,
                })
            }
        }
    }

    /// Calls the plugin's `apply`.
    pub(crate) fn apply(
        &mut self,
        context: &ExecutionContext,
    ) -> wasmtime::Result<Result<(), MitigationError>> {
        match &self.instance {
            Instance::Current(bindings) => bindings
                .vigil_detect_mitigation()
                .call_apply(&mut self.store, context),
            Instance::V0_1(bindings) => {
                let result = bindings
                    .vigil_detect_mitigation()
                    .call_apply(&mut self.store, &to_v0_1_context(context))?;
                Ok(result.map_err(from_v0_1_error))
            }
        }
    }
}

/// The 0.1.0 view of an execution: the same fields without the plugin parameters and the
/// execution time.
fn to_v0_1_context(context: &ExecutionContext) -> v0_1_mitigation::ExecutionContext {
    v0_1_mitigation::ExecutionContext {
        task_id: context.task_id.clone(),
        action_name: context.action_name.clone(),
        action_type: context.action_type,
        action_params: context.action_params.clone(),
        role_arn: context.role_arn.clone(),
        violation_id: context.violation_id.clone(),
        thing_name: context.thing_name.clone(),
        security_profile_name: context.security_profile_name.clone(),
        behavior: context.behavior.clone(),
        observed_value: context.observed_value.clone(),
        additional_info: context.additional_info,
        violation_start_time: context.violation_start_time,
    }
}

fn from_v0_1_error(error: v0_1_mitigation::MitigationError) -> MitigationError {
    use v0_1_mitigation::MitigationError as Old;
    match error {
        Old::InvalidParameters(message) => MitigationError::InvalidParameters(message),
        Old::TargetNotFound(message) => MitigationError::TargetNotFound(message),
        Old::CapabilityFailed(message) => MitigationError::CapabilityFailed(message),
        Old::Other(message) => MitigationError::Other(message),
    }
}

/// Store data of one plugin instance.
pub(crate) struct PluginState {
    /// Plugin name for log records; the file path until `metadata` returns.
    pub(crate) plugin: String,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: SandboxLimits,
    stderr: MemoryOutputPipe,
    /// State of the `apply` call in progress; `None` outside `apply`.
    pub(crate) call: Option<CallScope>,
}

impl PluginState {
    pub(crate) fn begin_call(&mut self, call: CallScope) {
        self.limits.memory_denied = false;
        self.call = Some(call);
    }

    pub(crate) fn end_call(&mut self) -> Option<CallScope> {
        self.call.take()
    }

    /// Bytes written to stderr so far.
    pub(crate) fn stderr_len(&self) -> usize {
        self.stderr.contents().len()
    }

    /// Returns what the plugin wrote to stderr since byte `start`, on one line.
    pub(crate) fn stderr_since(&self, start: usize) -> String {
        let contents = self.stderr.contents();
        let written = String::from_utf8_lossy(contents.get(start..).unwrap_or_default());
        // Rust's panic handler adds a hint about `RUST_BACKTRACE`, which a plugin cannot use.
        let useful_lines = written
            .lines()
            .filter(|line| !line.contains("RUST_BACKTRACE"));
        let line = useful_lines
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ");
        super::truncate_chars(&line, STDERR_QUOTE_CHARS).to_string()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Memory limits of one store, recording whether a memory growth was rejected.
pub(crate) struct SandboxLimits {
    limits: StoreLimits,
    max_memory_bytes: usize,
    /// Set when a growth was rejected during the current call.
    pub(crate) memory_denied: bool,
}

impl SandboxLimits {
    fn new(limits: &PluginLimits) -> Self {
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .instances(limits.instances)
            .tables(limits.tables)
            .memories(limits.memories)
            .build();
        Self {
            limits: store_limits,
            max_memory_bytes: limits.memory_bytes,
            memory_denied: false,
        }
    }
}

impl ResourceLimiter for SandboxLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            debug!(
                current,
                desired,
                limit = self.max_memory_bytes,
                "rejected plugin memory growth"
            );
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_denied = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Trap raised when a plugin makes more host calls in one `apply` than its limits allow.
#[derive(Debug)]
pub(crate) struct HostCallLimitExceeded(pub(crate) u32);

impl fmt::Display for HostCallLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "made more than {} host calls in one `apply`", self.0)
    }
}

impl std::error::Error for HostCallLimitExceeded {}
