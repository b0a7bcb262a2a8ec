//! The mitigation plugin runtime: loads plugin components, runs each one in its own sandbox and
//! turns every way a plugin can misbehave into a failed [`ApplyOutcome`] instead of a host panic.
//!
//! # Sandbox
//!
//! Each plugin gets its own [`Store`] with a fuel budget per call, a cap on linear memory, on
//! instances and on tables, and a WASI context with no preopened directories, no network, no
//! environment variables and no inherited stdio. The plugin's stderr goes to a small in-memory
//! buffer, and the host quotes it in trap messages so a panic message reaches the operator. After a
//! trap the store is dropped, and the next call builds a fresh instance from the compiled
//! component, so a plugin that trapped once keeps working.
//!
//! # Registry access
//!
//! A plugin never gets access to the caller's [`Registry`]. Store data must be `'static`, so it cannot
//! borrow the registry, and the host never trusts plugin output anyway. Instead, `apply` stages
//! the plugin's registry calls and applies them itself:
//!
//! 1. Before the call, the host reads the groups of the execution's thing from the registry.
//! 2. During the call, `add-thing-to-thing-group` checks the request and stages it, and
//!    `list-thing-groups-for-thing` returns the groups read in step 1 plus the staged
//!    additions. A plugin may act only on the execution's thing: any other thing is `denied`.
//! 3. When the plugin returns success, the host performs the staged operations on the registry
//!    in order and stops at the first error.
//!
//! [`ApplyOutcome::performed`] lists only the operations the registry accepted. A plugin that
//! traps, runs out of fuel or memory, or returns an error changes nothing, and a plugin that
//! reports success without asking for anything has changed nothing either. The registry's answers
//! during the call are provisional: an addition that the registry rejects in step 3 looked
//! successful to the plugin.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tracing::{debug, warn};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::engine::exports::vigil::detect::detector::ExecutionOutcome;
use crate::bindings::plugin::exports::vigil::detect::mitigation::MitigationError;
use crate::bindings::plugin::vigil::detect::{logging, thing_registry};
use crate::bindings::plugin::{MitigationPlugin, MitigationPluginPre};

pub use crate::bindings::engine::vigil::detect::types::MitigationActionType;
pub use crate::bindings::plugin::exports::vigil::detect::mitigation::ExecutionContext;
pub use crate::bindings::plugin::vigil::detect::thing_registry::RegistryError;

/// How to build the plugins when a plugin file is missing or unusable.
const BUILD_HINT: &str = "build the plugins with `cargo xtask build-wasm`";

/// Bytes of plugin stderr kept per instance, enough for a panic message and its location.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Characters of captured stderr quoted in a trap message.
const STDERR_QUOTE_CHARS: usize = 512;

/// Bytes of one plugin log message that reach the host log; the rest is cut.
const MAX_LOG_MESSAGE_BYTES: usize = 2048;

/// Maximum length of an execution message, as in AWS IoT Device Defender.
const MAX_EXECUTION_MESSAGE_CHARS: usize = 2048;

/// Maximum length of a thing group name, as in AWS IoT.
const MAX_THING_GROUP_NAME_CHARS: usize = 128;

/// The thing registry a plugin acts on, supplied by the caller for one [`PluginHost::apply`].
pub trait Registry {
    /// Adds a thing to a static thing group.
    fn add_thing_to_thing_group(
        &mut self,
        thing: &str,
        group: &str,
        override_dynamic: bool,
    ) -> Result<(), RegistryError>;

    /// Returns the groups a thing is in, sorted.
    fn list_thing_groups_for_thing(&mut self, thing: &str) -> Result<Vec<String>, RegistryError>;
}

/// Resource limits applied to every plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Fuel for one call (`describe` or `apply`), and for instantiating the plugin. One unit is
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
    /// Maximum number of host calls (registry and logging) in one `apply`. The call that goes
    /// past it traps, which fails the execution with `PLUGIN_TRAP`.
    pub host_calls_per_apply: u32,
}

impl Default for PluginLimits {
    /// Limits well above what `add-things-to-thing-group` needs. Measured on its release build
    /// with the tests in `host/tests/plugins.rs`: `apply` with ten groups uses about 16,000
    /// fuel, and an instance needs 1.1 MiB of memory, 3 instances, 2 tables with at most 64
    /// elements and 1 memory. The fuel budget is about 1000 times the ten-group cost. Fuel
    /// counts instructions, not time: the hostile fixture's endless loop burns 20 million units
    /// in well under a millisecond.
    fn default() -> Self {
        Self {
            fuel_per_call: 20_000_000,
            memory_bytes: 64 * 1024 * 1024,
            instances: 32,
            tables: 16,
            memories: 4,
            table_elements: 10_000,
            host_calls_per_apply: 1_000,
        }
    }
}

/// A loaded plugin, as its `describe` export reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Plugin name, unique among loaded plugins.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Action types the plugin applies; no other loaded plugin handles them.
    pub action_types: Vec<MitigationActionType>,
    /// The `.wasm` file the plugin was loaded from.
    pub path: PathBuf,
}

/// Machine-readable reason an execution failed, used as the execution's `errorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// No loaded plugin handles the action type.
    NoPlugin,
    /// The plugin trapped: a panic, a stack overflow, an invalid memory access or too many host
    /// calls.
    PluginTrap,
    /// The plugin used up its fuel, which usually means an endless loop.
    PluginTimeout,
    /// The plugin trapped after the host rejected a memory growth past the limit.
    PluginOutOfMemory,
    /// The plugin returned a `mitigation-error`.
    PluginError,
    /// The registry rejected an operation the plugin requested.
    RegistryError,
}

impl FailureCode {
    /// Returns the code as it appears in an execution's `errorCode`, for example `PLUGIN_TRAP`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::NoPlugin => "NO_PLUGIN",
            FailureCode::PluginTrap => "PLUGIN_TRAP",
            FailureCode::PluginTimeout => "PLUGIN_TIMEOUT",
            FailureCode::PluginOutOfMemory => "PLUGIN_OUT_OF_MEMORY",
            FailureCode::PluginError => "PLUGIN_ERROR",
            FailureCode::RegistryError => "REGISTRY_ERROR",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reason an execution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Machine-readable reason.
    pub code: FailureCode,
    /// Description of the failure for people.
    pub message: String,
}

/// A registry operation the host performed for a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryOperation {
    /// The thing was added to a static thing group.
    AddThingToThingGroup {
        /// The thing.
        thing: String,
        /// The group.
        group: String,
        /// Whether dynamic group memberships could be evicted to make room.
        override_dynamic_groups: bool,
    },
}

/// Result of one [`PluginHost::apply`], built from what the host observed and did, never from
/// what the plugin claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Name of the plugin that handled the call; absent when no plugin handles the action type.
    pub plugin: Option<String>,
    /// Registry operations the host performed, in order.
    pub performed: Vec<RegistryOperation>,
    /// Reason the execution failed; absent when it succeeded.
    pub failure: Option<ApplyFailure>,
    /// Fuel the plugin used in `apply`.
    pub fuel_consumed: u64,
}

impl ApplyOutcome {
    /// Returns whether the action took effect.
    pub fn is_successful(&self) -> bool {
        self.failure.is_none()
    }

    /// Converts the outcome to the engine's execution outcome, cutting the message to the
    /// 2048 characters an execution can hold.
    pub fn to_execution_outcome(&self) -> ExecutionOutcome {
        match &self.failure {
            None => ExecutionOutcome::Successful,
            Some(failure) => {
                let message = truncate_chars(&failure.message, MAX_EXECUTION_MESSAGE_CHARS);
                ExecutionOutcome::Failed((failure.code.as_str().to_string(), message.to_string()))
            }
        }
    }
}

/// Loads mitigation plugins and applies actions through them, each plugin in its own sandbox.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<PluginState>,
    limits: PluginLimits,
    plugins: Vec<LoadedPlugin>,
}

impl PluginHost {
    /// Creates a host with no plugins loaded.
    pub fn new(limits: PluginLimits) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config)
            .map_err(to_anyhow)
            .context("failed to create engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(to_anyhow)
            .context("failed to link WASI into the plugin linker")?;
        MitigationPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(to_anyhow)
            .context("failed to link the plugin host capabilities")?;

        Ok(Self {
            engine,
            linker,
            limits,
            plugins: Vec::new(),
        })
    }

    /// Returns the limits every plugin call runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Loads the plugin at `path`, or every `*.wasm` file in it when `path` is a directory, in
    /// file name order. Returns the plugins loaded by this call.
    ///
    /// Fails on the first file that is missing, is not a `vigil:detect/mitigation-plugin`
    /// component, traps in `describe`, or reuses a plugin name or an action type that a loaded
    /// plugin already has. Plugins loaded before the failing file stay loaded.
    pub fn load(&mut self, path: impl AsRef<Path>) -> anyhow::Result<Vec<PluginInfo>> {
        let path = path.as_ref();
        if !path.exists() {
            bail!(
                "plugin path `{}` does not exist; {BUILD_HINT}",
                path.display()
            );
        }
        if !path.is_dir() {
            return Ok(vec![self.load_file(path)?]);
        }

        let files = wasm_files_in(path)?;
        let mut loaded = Vec::with_capacity(files.len());
        for file in files {
            loaded.push(self.load_file(&file)?);
        }
        Ok(loaded)
    }

    /// Returns the loaded plugins in load order.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.iter().map(|plugin| &plugin.info)
    }

    /// Returns the plugin that handles `action_type`, if one is loaded.
    pub fn plugin_for(&self, action_type: MitigationActionType) -> Option<&PluginInfo> {
        self.plugins
            .iter()
            .map(|plugin| &plugin.info)
            .find(|info| info.action_types.contains(&action_type))
    }

    /// Applies the action in `context` through the plugin for `context.action_type`, then
    /// performs the registry operations the plugin staged. A trap, fuel or memory exhaustion,
    /// or a plugin error is reported in the outcome, and the host goes on serving calls.
    pub fn apply(
        &mut self,
        registry: &mut dyn Registry,
        context: &ExecutionContext,
    ) -> ApplyOutcome {
        let action_type = action_type_name(context.action_type);
        let Some(index) = self.plugin_index(context.action_type) else {
            warn!(action_type, task_id = %context.task_id, "no loaded plugin handles the action");
            return no_plugin_outcome(action_type);
        };

        let plugin = &mut self.plugins[index];
        let span = tracing::info_span!(
            "host.plugin.apply",
            plugin = %plugin.info.name,
            action_type,
            task_id = %context.task_id,
            violation_id = %context.violation_id,
            thing = %context.thing_name,
        );
        let _entered = span.enter();

        let outcome = plugin.apply(registry, context, &self.limits);
        match &outcome.failure {
            None => debug!(
                performed = outcome.performed.len(),
                "plugin applied the action"
            ),
            Some(failure) => {
                warn!(code = %failure.code, message = %failure.message, "plugin failed")
            }
        }
        outcome
    }

    /// Compiles, instantiates and describes one plugin file, then indexes it.
    fn load_file(&mut self, path: &Path) -> anyhow::Result<PluginInfo> {
        let component = Component::from_file(&self.engine, path)
            .map_err(to_anyhow)
            .with_context(|| {
                format!(
                    "failed to compile plugin `{}` as a WebAssembly component; {BUILD_HINT}",
                    path.display()
                )
            })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(MitigationPluginPre::new)
            .map_err(to_anyhow)
            .with_context(|| {
                format!(
                    "failed to load plugin `{}`: it does not implement world \
                     `vigil:detect/mitigation-plugin@0.1.0`; {BUILD_HINT}",
                    path.display()
                )
            })?;

        let plugin = LoadedPlugin::describe(pre, path, &self.limits)?;
        self.check_unique(&plugin.info)?;
        debug!(plugin = %plugin.info.name, path = %path.display(), "loaded plugin");

        let info = plugin.info.clone();
        self.plugins.push(plugin);
        Ok(info)
    }

    /// Fails when a loaded plugin has the same name or handles one of the same action types.
    fn check_unique(&self, candidate: &PluginInfo) -> anyhow::Result<()> {
        for loaded in self.plugins() {
            if loaded.name == candidate.name {
                bail!(
                    "failed to load plugin `{}`: a plugin named `{}` is already loaded from `{}`",
                    candidate.path.display(),
                    candidate.name,
                    loaded.path.display()
                );
            }
            let shared = candidate
                .action_types
                .iter()
                .find(|t| loaded.action_types.contains(t));
            if let Some(action_type) = shared {
                bail!(
                    "failed to load plugin `{}`: action type `{}` is already handled by plugin `{}`",
                    candidate.path.display(),
                    action_type_name(*action_type),
                    loaded.name
                );
            }
        }
        Ok(())
    }

    fn plugin_index(&self, action_type: MitigationActionType) -> Option<usize> {
        self.plugins
            .iter()
            .position(|plugin| plugin.info.action_types.contains(&action_type))
    }
}

/// One plugin: its compiled component, ready to instantiate, and its current instance.
struct LoadedPlugin {
    info: PluginInfo,
    pre: MitigationPluginPre<PluginState>,
    /// `None` after a trap, until the next call instantiates the plugin again.
    sandbox: Option<Sandbox>,
}

/// An instance of a plugin in its own store.
struct Sandbox {
    store: Store<PluginState>,
    bindings: MitigationPlugin,
}

impl LoadedPlugin {
    /// Instantiates the plugin and calls `describe`; `path` is only for messages.
    fn describe(
        pre: MitigationPluginPre<PluginState>,
        path: &Path,
        limits: &PluginLimits,
    ) -> anyhow::Result<Self> {
        let failed = || format!("failed to load plugin `{}`", path.display());
        let mut sandbox = Sandbox::new(&pre, &path.display().to_string(), limits)
            .map_err(to_anyhow)
            .with_context(|| format!("{}: instantiation failed", failed()))?;

        sandbox
            .store
            .set_fuel(limits.fuel_per_call)
            .map_err(to_anyhow)?;
        let description = sandbox
            .bindings
            .vigil_detect_mitigation()
            .call_describe(&mut sandbox.store)
            .map_err(to_anyhow)
            .with_context(|| format!("{}: `describe` trapped", failed()))?;

        if description.name.is_empty() {
            bail!("{}: `describe` returned an empty plugin name", failed());
        }
        if description.action_types.is_empty() {
            bail!("{}: `describe` returned no action types", failed());
        }
        sandbox.store.data_mut().plugin = description.name.clone();

        let info = PluginInfo {
            name: description.name,
            version: description.version,
            action_types: description.action_types,
            path: path.to_path_buf(),
        };
        Ok(Self {
            info,
            pre,
            sandbox: Some(sandbox),
        })
    }

    /// Runs `apply` in the sandbox, then performs the staged registry operations.
    fn apply(
        &mut self,
        registry: &mut dyn Registry,
        context: &ExecutionContext,
        limits: &PluginLimits,
    ) -> ApplyOutcome {
        let mut outcome = ApplyOutcome {
            plugin: Some(self.info.name.clone()),
            performed: Vec::new(),
            failure: None,
            fuel_consumed: 0,
        };

        let call = CallScope::new(registry, context, limits.host_calls_per_apply);
        let staged = match self.call_apply(context, call, limits, &mut outcome.fuel_consumed) {
            Ok(staged) => staged,
            Err(failure) => {
                outcome.failure = Some(failure);
                return outcome;
            }
        };

        for operation in staged {
            match perform(registry, &operation) {
                Ok(()) => outcome.performed.push(operation),
                Err(failure) => {
                    outcome.failure = Some(failure);
                    break;
                }
            }
        }
        outcome
    }

    /// Calls the plugin's `apply` and returns the registry operations it staged. Drops the
    /// sandbox on a trap so that the next call starts from a fresh instance.
    fn call_apply(
        &mut self,
        context: &ExecutionContext,
        call: CallScope,
        limits: &PluginLimits,
        fuel_consumed: &mut u64,
    ) -> Result<Vec<RegistryOperation>, ApplyFailure> {
        let name = self.info.name.clone();
        let sandbox = self.sandbox_or_instantiate(limits)?;
        let stderr_start = sandbox.store.data().stderr.contents().len();
        sandbox.store.data_mut().begin_call(call);
        sandbox
            .store
            .set_fuel(limits.fuel_per_call)
            .map_err(|error| ApplyFailure {
                code: FailureCode::PluginTrap,
                message: format!("failed to set the fuel budget: {error}"),
            })?;

        let result = sandbox
            .bindings
            .vigil_detect_mitigation()
            .call_apply(&mut sandbox.store, context);

        let remaining = sandbox.store.get_fuel().unwrap_or(0);
        *fuel_consumed = limits.fuel_per_call.saturating_sub(remaining);
        let state = sandbox.store.data_mut();
        let call = state.end_call();

        match result {
            Ok(Ok(())) => Ok(call.map(|call| call.staged).unwrap_or_default()),
            Ok(Err(error)) => Err(ApplyFailure {
                code: FailureCode::PluginError,
                message: format!("plugin `{name}` failed: {}", describe_error(&error)),
            }),
            Err(error) => {
                let stderr = state.stderr_since(stderr_start);
                let failure = classify_trap(&name, &error, state, limits, &stderr);
                warn!(error = ?error, "plugin trapped; its instance will be re-created");
                self.sandbox = None;
                Err(failure)
            }
        }
    }

    /// Returns the live sandbox, instantiating the plugin again if a trap dropped it.
    fn sandbox_or_instantiate(
        &mut self,
        limits: &PluginLimits,
    ) -> Result<&mut Sandbox, ApplyFailure> {
        if self.sandbox.is_none() {
            let sandbox =
                Sandbox::new(&self.pre, &self.info.name, limits).map_err(|error| ApplyFailure {
                    code: FailureCode::PluginTrap,
                    message: format!(
                        "failed to instantiate plugin `{}` again after a trap: {error}",
                        self.info.name
                    ),
                })?;
            debug!("re-created plugin instance");
            self.sandbox = Some(sandbox);
        }
        Ok(self.sandbox.as_mut().expect("the sandbox was just created"))
    }
}

impl Sandbox {
    /// Creates a store with the plugin's limits and instantiates the plugin in it.
    fn new(
        pre: &MitigationPluginPre<PluginState>,
        plugin: &str,
        limits: &PluginLimits,
    ) -> wasmtime::Result<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = PluginState {
            plugin: plugin.to_string(),
            wasi,
            table: ResourceTable::new(),
            limits: SandboxLimits::new(limits),
            stderr,
            call: None,
        };

        let mut store = Store::new(pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.set_fuel(limits.fuel_per_call)?;
        let bindings = pre.instantiate(&mut store)?;
        Ok(Self { store, bindings })
    }
}

/// Store data of one plugin instance.
struct PluginState {
    /// Plugin name for log records; the file path until `describe` returns.
    plugin: String,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: SandboxLimits,
    stderr: MemoryOutputPipe,
    /// State of the `apply` call in progress; `None` outside `apply`.
    call: Option<CallScope>,
}

impl PluginState {
    fn begin_call(&mut self, call: CallScope) {
        self.limits.memory_denied = false;
        self.call = Some(call);
    }

    fn end_call(&mut self) -> Option<CallScope> {
        self.call.take()
    }

    /// Returns what the plugin wrote to stderr since byte `start`, on one line.
    fn stderr_since(&self, start: usize) -> String {
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
        truncate_chars(&line, STDERR_QUOTE_CHARS).to_string()
    }

    /// Counts one host call against the per-call budget; past the budget the call traps.
    fn count_host_call(&mut self) -> wasmtime::Result<Option<&mut CallScope>> {
        let Some(call) = self.call.as_mut() else {
            return Ok(None);
        };
        if call.host_calls >= call.max_host_calls {
            return Err(wasmtime::Error::new(HostCallLimitExceeded(
                call.max_host_calls,
            )));
        }
        call.host_calls += 1;
        Ok(Some(call))
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

impl crate::bindings::engine::vigil::detect::types::Host for PluginState {}

impl thing_registry::Host for PluginState {
    fn add_thing_to_thing_group(
        &mut self,
        thing_name: String,
        thing_group_name: String,
        override_dynamic_groups: bool,
    ) -> wasmtime::Result<Result<(), RegistryError>> {
        let Some(call) = self.count_host_call()? else {
            return Ok(Err(outside_apply()));
        };
        Ok(call.stage_addition(thing_name, thing_group_name, override_dynamic_groups))
    }

    fn list_thing_groups_for_thing(
        &mut self,
        thing_name: String,
    ) -> wasmtime::Result<Result<Vec<String>, RegistryError>> {
        let Some(call) = self.count_host_call()? else {
            return Ok(Err(outside_apply()));
        };
        Ok(call.list_groups(&thing_name))
    }
}

impl logging::Host for PluginState {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        self.count_host_call()?;
        let plugin = self.plugin.as_str();
        let message = truncate_bytes(&message, MAX_LOG_MESSAGE_BYTES);
        match level {
            logging::Level::Trace => tracing::trace!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Debug => tracing::debug!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Info => tracing::info!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Warn => tracing::warn!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Error => tracing::error!(target: "vigil::plugin", plugin, "{message}"),
        }
        Ok(())
    }
}

/// Registry state of one `apply` call: the execution's thing, its groups as read
/// before the call, and the operations staged so far.
struct CallScope {
    thing: String,
    groups_before: Result<Vec<String>, RegistryError>,
    staged: Vec<RegistryOperation>,
    host_calls: u32,
    max_host_calls: u32,
}

impl CallScope {
    fn new(registry: &mut dyn Registry, context: &ExecutionContext, max_host_calls: u32) -> Self {
        let groups_before = registry.list_thing_groups_for_thing(&context.thing_name);
        Self {
            thing: context.thing_name.clone(),
            groups_before,
            staged: Vec::new(),
            host_calls: 0,
            max_host_calls,
        }
    }

    /// Checks an addition and stages it; a repeat of a staged addition is accepted once.
    fn stage_addition(
        &mut self,
        thing: String,
        group: String,
        override_dynamic_groups: bool,
    ) -> Result<(), RegistryError> {
        self.check_thing(&thing)?;
        check_group_name(&group)?;

        let operation = RegistryOperation::AddThingToThingGroup {
            thing,
            group,
            override_dynamic_groups,
        };
        if !self.staged.contains(&operation) {
            self.staged.push(operation);
        }
        Ok(())
    }

    /// Returns the thing's groups before the call plus the staged additions, sorted.
    fn list_groups(&self, thing: &str) -> Result<Vec<String>, RegistryError> {
        self.check_thing(thing)?;
        let mut groups = self.groups_before.clone()?;
        for RegistryOperation::AddThingToThingGroup { group, .. } in &self.staged {
            groups.push(group.clone());
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    fn check_thing(&self, thing: &str) -> Result<(), RegistryError> {
        if thing == self.thing {
            return Ok(());
        }
        Err(RegistryError::Denied(format!(
            "plugins may act only on the execution's thing `{}`, not `{thing}`",
            self.thing
        )))
    }
}

/// Rejects group names that no thing group can have: AWS IoT allows 1 to 128 characters of
/// `[a-zA-Z0-9:_-]`.
fn check_group_name(group: &str) -> Result<(), RegistryError> {
    let length = group.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-');
    if (1..=MAX_THING_GROUP_NAME_CHARS).contains(&length) && group.chars().all(allowed) {
        return Ok(());
    }
    Err(RegistryError::Other(format!(
        "invalid thing group name `{group}`: expected 1 to {MAX_THING_GROUP_NAME_CHARS} \
         characters of [a-zA-Z0-9:_-]"
    )))
}

fn outside_apply() -> RegistryError {
    RegistryError::Denied("the thing registry is available only during `apply`".to_string())
}

/// Performs one staged operation on the caller's registry.
fn perform(registry: &mut dyn Registry, operation: &RegistryOperation) -> Result<(), ApplyFailure> {
    let RegistryOperation::AddThingToThingGroup {
        thing,
        group,
        override_dynamic_groups,
    } = operation;
    registry
        .add_thing_to_thing_group(thing, group, *override_dynamic_groups)
        .map_err(|error| ApplyFailure {
            code: FailureCode::RegistryError,
            message: format!(
                "failed to add thing `{thing}` to thing group `{group}`: {}",
                describe_registry_error(&error)
            ),
        })
}

/// Memory limits of one store, recording whether a memory growth was rejected.
struct SandboxLimits {
    limits: StoreLimits,
    max_memory_bytes: usize,
    /// Set when a growth was rejected during the current call.
    memory_denied: bool,
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
struct HostCallLimitExceeded(u32);

impl fmt::Display for HostCallLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "made more than {} host calls in one `apply`", self.0)
    }
}

impl std::error::Error for HostCallLimitExceeded {}

/// Turns a trap into a failure code and message, quoting the plugin's stderr if it wrote any.
fn classify_trap(
    plugin: &str,
    error: &wasmtime::Error,
    state: &PluginState,
    limits: &PluginLimits,
    stderr: &str,
) -> ApplyFailure {
    let trap = error.downcast_ref::<Trap>();
    let (code, mut message) = if matches!(trap, Some(Trap::OutOfFuel)) {
        let fuel = limits.fuel_per_call;
        (
            FailureCode::PluginTimeout,
            format!("plugin `{plugin}` ran out of fuel ({fuel} units)"),
        )
    } else if state.limits.memory_denied {
        let mib = limits.memory_bytes / (1024 * 1024);
        let message = format!("plugin `{plugin}` ran out of memory (limit {mib} MiB)");
        (FailureCode::PluginOutOfMemory, message)
    } else if let Some(exceeded) = error.downcast_ref::<HostCallLimitExceeded>() {
        (
            FailureCode::PluginTrap,
            format!("plugin `{plugin}` trapped: {exceeded}"),
        )
    } else if let Some(trap) = trap {
        (
            FailureCode::PluginTrap,
            format!("plugin `{plugin}` trapped: {trap}"),
        )
    } else {
        (
            FailureCode::PluginTrap,
            format!("plugin `{plugin}` failed: {error}"),
        )
    };

    if !stderr.is_empty() {
        message.push_str(&format!("; stderr: {stderr}"));
    }
    ApplyFailure { code, message }
}

fn no_plugin_outcome(action_type: &str) -> ApplyOutcome {
    ApplyOutcome {
        plugin: None,
        performed: Vec::new(),
        failure: Some(ApplyFailure {
            code: FailureCode::NoPlugin,
            message: format!("no loaded plugin handles action type `{action_type}`"),
        }),
        fuel_consumed: 0,
    }
}

/// Returns the `*.wasm` files directly in `dir`, sorted by name.
fn wasm_files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read plugin directory `{}`", dir.display()))?;

    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("failed to read plugin directory `{}`", dir.display()))?
            .path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|extension| extension == "wasm")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Returns the WIT name of an action type, for example `add-things-to-thing-group`.
pub fn action_type_name(action_type: MitigationActionType) -> &'static str {
    match action_type {
        MitigationActionType::UpdateDeviceCertificate => "update-device-certificate",
        MitigationActionType::UpdateCaCertificate => "update-ca-certificate",
        MitigationActionType::AddThingsToThingGroup => "add-things-to-thing-group",
        MitigationActionType::ReplaceDefaultPolicyVersion => "replace-default-policy-version",
        MitigationActionType::EnableIotLogging => "enable-iot-logging",
        MitigationActionType::PublishFindingToSns => "publish-finding-to-sns",
    }
}

fn describe_error(error: &MitigationError) -> String {
    match error {
        MitigationError::InvalidParameters(message) => format!("invalid parameters: {message}"),
        MitigationError::TargetNotFound(message) => format!("target not found: {message}"),
        MitigationError::CapabilityFailed(message) => format!("capability failed: {message}"),
        MitigationError::Other(message) => message.clone(),
    }
}

fn describe_registry_error(error: &RegistryError) -> String {
    match error {
        RegistryError::ThingNotFound(message) => format!("thing not found: {message}"),
        RegistryError::ThingGroupNotFound(message) => format!("thing group not found: {message}"),
        RegistryError::Denied(message) => format!("denied: {message}"),
        RegistryError::Other(message) => message.clone(),
    }
}

/// Converts a wasmtime error, keeping its source chain.
fn to_anyhow(error: wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from_boxed(error.into_boxed_dyn_error())
}

fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn truncate_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Finds the plugins directory: `explicit`, else `plugins/` next to the binary, else
/// `target/wasm/plugins` of the source tree.
pub fn locate_plugins_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("failed to find the path of the `vigil` binary")?;
    let beside = exe.parent().map(|dir| dir.join("plugins"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm/plugins");
    beside
        .into_iter()
        .chain([source])
        .find(|dir| dir.is_dir())
        .context(
            "no plugins directory next to the `vigil` binary or in target/wasm/plugins; build \
             the plugins with `cargo xtask build` or pass --plugins DIR",
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::engine::vigil::detect::types::{Behavior, MitigationActionParams};

    /// A registry that reports `groups` for every thing and accepts every addition.
    struct FixedRegistry {
        groups: Vec<String>,
    }

    impl Registry for FixedRegistry {
        fn add_thing_to_thing_group(
            &mut self,
            _: &str,
            _: &str,
            _: bool,
        ) -> Result<(), RegistryError> {
            Ok(())
        }

        fn list_thing_groups_for_thing(&mut self, _: &str) -> Result<Vec<String>, RegistryError> {
            Ok(self.groups.clone())
        }
    }

    fn context(thing: &str) -> ExecutionContext {
        ExecutionContext {
            task_id: "task-1".to_string(),
            action_name: "quarantine-action".to_string(),
            action_type: MitigationActionType::AddThingsToThingGroup,
            action_params: MitigationActionParams {
                update_device_certificate_params: None,
                update_ca_certificate_params: None,
                add_things_to_thing_group_params: None,
                replace_default_policy_version_params: None,
                enable_iot_logging_params: None,
                publish_finding_to_sns_params: None,
            },
            role_arn: "arn:aws:iam::123456789012:role/mitigation".to_string(),
            violation_id: "0123456789abcdef0123456789abcdef".to_string(),
            thing_name: thing.to_string(),
            security_profile_name: "fleet-baseline".to_string(),
            behavior: Behavior {
                name: "too-many-messages".to_string(),
                metric: None,
                metric_dimension: None,
                criteria: None,
                suppress_alerts: None,
                export_metric: None,
            },
            observed_value: None,
            additional_info: None,
            violation_start_time: 0,
        }
    }

    fn scope(thing: &str, groups: &[&str]) -> CallScope {
        let groups = groups.iter().map(|group| group.to_string()).collect();
        CallScope::new(&mut FixedRegistry { groups }, &context(thing), 10)
    }

    fn addition(thing: &str, group: &str) -> RegistryOperation {
        RegistryOperation::AddThingToThingGroup {
            thing: thing.to_string(),
            group: group.to_string(),
            override_dynamic_groups: false,
        }
    }

    #[test]
    fn addition_for_another_thing_is_denied() {
        let mut scope = scope("sensor-1", &[]);

        let result = scope.stage_addition("sensor-2".to_string(), "quarantine".to_string(), false);

        assert!(matches!(result, Err(RegistryError::Denied(_))));
        assert!(scope.staged.is_empty());
    }

    #[test]
    fn listing_another_thing_is_denied() {
        let scope = scope("sensor-1", &["fleet"]);

        let result = scope.list_groups("sensor-2");

        assert!(matches!(result, Err(RegistryError::Denied(_))));
    }

    #[test]
    fn invalid_group_name_is_rejected() {
        let mut scope = scope("sensor-1", &[]);

        for group in ["", "has space", "slash/inside", &"g".repeat(129)] {
            let result = scope.stage_addition("sensor-1".to_string(), group.to_string(), false);
            assert!(
                matches!(result, Err(RegistryError::Other(_))),
                "group {group:?}"
            );
        }
        assert!(scope.staged.is_empty());
    }

    #[test]
    fn repeated_addition_is_staged_once() {
        let mut scope = scope("sensor-1", &[]);

        for _ in 0..2 {
            let result =
                scope.stage_addition("sensor-1".to_string(), "quarantine".to_string(), false);
            assert!(result.is_ok());
        }

        assert_eq!(scope.staged, vec![addition("sensor-1", "quarantine")]);
    }

    #[test]
    fn listing_includes_staged_additions_sorted() {
        let mut scope = scope("sensor-1", &["fleet", "zone-a"]);
        let staged = scope.stage_addition("sensor-1".to_string(), "quarantine".to_string(), false);
        assert!(staged.is_ok());

        let groups = scope.list_groups("sensor-1").expect("groups");

        assert_eq!(groups, vec!["fleet", "quarantine", "zone-a"]);
    }

    #[test]
    fn execution_message_is_cut_to_2048_characters() {
        let outcome = ApplyOutcome {
            plugin: None,
            performed: Vec::new(),
            failure: Some(ApplyFailure {
                code: FailureCode::PluginError,
                message: "é".repeat(3000),
            }),
            fuel_consumed: 0,
        };

        let ExecutionOutcome::Failed((code, message)) = outcome.to_execution_outcome() else {
            panic!("expected a failed execution outcome");
        };

        assert_eq!(code, "PLUGIN_ERROR");
        assert_eq!(message.chars().count(), 2048);
    }

    #[test]
    fn byte_truncation_keeps_whole_characters() {
        assert_eq!(truncate_bytes("aé", 2), "a");
        assert_eq!(truncate_bytes("abc", 5), "abc");
    }
}
