//! The mitigation plugin runtime: loads plugin components, checks what they import against what
//! their configuration grants, runs each one in its own sandbox and turns every way a plugin can
//! misbehave into a failed [`ApplyOutcome`] instead of a host panic.
//!
//! # Sandbox
//!
//! Each plugin gets its own [`Store`](wasmtime::Store) with a fuel budget per call and caps on
//! linear memory, instances, tables, WASI handles and the size of what it returns. Its WASI
//! context has no network, no environment variables, no inherited stdio and no preopened
//! directory unless it was granted a state folder. The plugin's stderr goes to a small in-memory buffer, and the host quotes it in trap
//! messages so a panic message reaches the operator. After a trap the store is dropped, and the
//! next call builds a fresh instance from the compiled component, so a plugin that trapped once
//! keeps working.
//!
//! # Least privilege
//!
//! Every capability is its own WIT interface, and a component imports only the interfaces it
//! uses. At load the host compares the imports with the plugin's [`Grants`] and refuses a plugin
//! that imports a capability it was not granted. A bundled plugin is granted `logging` plus the
//! capability its action types need; an installed plugin is granted what its installation lists.
//! At run time a call outside the execution's thing or the granted URLs and topics returns
//! `denied`.
//!
//! # What the host records
//!
//! A plugin never gets access to the caller's [`Registry`]: `apply` reads a snapshot of the
//! execution's thing before the call, answers the plugin's reads from it, stages its writes, and
//! performs them itself after the plugin returns success (see [`capabilities`]).
//! [`ApplyOutcome::performed`] lists only the operations the registry accepted. A plugin that
//! traps, runs out of fuel or memory, or returns an error changes nothing, and a plugin that
//! reports success without asking for anything has changed nothing either.
//!
//! # API versions
//!
//! Plugins built against `vigil:detect/mitigation-plugin@0.1.0` still load: the host links both
//! versions and adapts the old `describe` and `apply` to the current ones.

mod capabilities;
mod host_calls;
pub mod http;
mod sandbox;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tracing::{debug, warn};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Trap};

use crate::bindings::engine::exports::vigil::detect::detector::ExecutionOutcome;
use crate::bindings::plugin::MitigationPlugin;
use crate::bindings::plugin::exports::vigil::detect::mitigation::{
    MitigationError, PluginMetadata,
};
use crate::bindings::plugin_v0_1;
use sandbox::{HostCallLimitExceeded, PluginPre, PluginState, Sandbox};
use schema::ParameterSchema;

pub use crate::bindings::engine::vigil::detect::types::MitigationActionType;
pub use crate::bindings::plugin::exports::vigil::detect::mitigation::ExecutionContext;
pub use capabilities::{
    Capability, CapabilityError, Grants, MAX_MESSAGE_BYTES, Registry, StagedOperation,
    ThingSnapshot, add_version, ca_certificate_status_name, certificate_status_name,
    log_level_name, parse_certificate_status, parse_log_level,
};
pub use sandbox::PluginLimits;

/// Records that capability calls return, re-exported for [`Registry`] implementations.
pub mod records {
    pub use crate::bindings::engine::vigil::detect::types::IotLogLevel;
    pub use crate::bindings::plugin::vigil::detect::certificates::{
        CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate,
    };
    pub use crate::bindings::plugin::vigil::detect::iot_logging::LoggingOptions;
    pub use crate::bindings::plugin::vigil::detect::policies::PolicyVersion;
}

/// How to build the plugins when a plugin file is missing or unusable.
const BUILD_HINT: &str = "build the plugins with `cargo xtask build-wasm`";

/// Maximum length of an execution message, as in AWS IoT Device Defender.
const MAX_EXECUTION_MESSAGE_CHARS: usize = 2048;

/// Maximum length of a plugin name.
const MAX_PLUGIN_NAME_CHARS: usize = 64;

/// Maximum length of a plugin version.
const MAX_VERSION_CHARS: usize = 64;

/// Maximum length of a plugin description.
const MAX_DESCRIPTION_CHARS: usize = 512;

/// Interfaces of `vigil:detect` that hold only types and need no grant.
const TYPE_ONLY_INTERFACES: [&str; 2] = ["types", "capability-types"];

/// A loaded plugin, as its `metadata` export and its imports describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name, unique among loaded plugins.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// One-sentence description of the plugin, empty for API 0.1.0 plugins.
    pub description: String,
    /// Action types the plugin applies by default; no other loaded plugin handles them.
    pub action_types: Vec<MitigationActionType>,
    /// JSON Schema of the plugin's own parameters.
    pub parameters_schema: Option<String>,
    /// Version of the plugin API the plugin was built against, for example `0.2.0`.
    pub api_version: &'static str,
    /// Capabilities the component imports, in WIT order.
    pub imports: Vec<Capability>,
    /// Grants from the plugin's configuration.
    pub grants: Grants,
    /// Whether the plugin applies its action types; an installed plugin applies only the action
    /// names bound to it.
    pub handles_action_types: bool,
    /// The `.wasm` file the plugin was loaded from.
    pub path: PathBuf,
}

/// An action name bound to a plugin, with the plugin's own parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionBinding {
    /// The mitigation action's name.
    pub action_name: String,
    /// The plugin that applies it.
    pub plugin: String,
    /// Parameters passed to the plugin as `plugin-params`, already checked against its schema.
    pub params: Option<Value>,
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
    /// The plugin returned more bytes than its limits allow.
    PluginOutputTooLarge,
    /// The plugin returned a `mitigation-error`.
    PluginError,
    /// The registry or a sink rejected an operation the plugin requested.
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
            FailureCode::PluginOutputTooLarge => "PLUGIN_OUTPUT_TOO_LARGE",
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

/// Result of one [`PluginHost::apply`], built from what the host observed and did, never from
/// what the plugin claims.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyOutcome {
    /// Name of the plugin that handled the call; absent when no plugin handles the action.
    pub plugin: Option<String>,
    /// Operations the host performed, in order.
    pub performed: Vec<StagedOperation>,
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
    bindings: Vec<ActionBinding>,
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
        plugin_v0_1::MitigationPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(
            &mut linker,
            |s| s,
        )
        .map_err(to_anyhow)
        .context("failed to link the plugin API 0.1.0 capabilities")?;
        linker
            .instance("vigil:detect/types@0.1.0")
            .map_err(to_anyhow)
            .context("failed to link the plugin API 0.1.0 types")?;

        Ok(Self {
            engine,
            linker,
            limits,
            plugins: Vec::new(),
            bindings: Vec::new(),
        })
    }

    /// Returns the limits every plugin call runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Loads the bundled plugin at `path`, or every `*.wasm` file in it when `path` is a
    /// directory, in file name order, granting each one `logging` and the capabilities its
    /// action types need. Returns the plugins loaded by this call.
    ///
    /// Fails on the first file that is missing, is not a mitigation plugin component, imports a
    /// capability it is not granted, traps in `metadata`, or reuses a plugin name or an action
    /// type that a loaded plugin already has. Plugins loaded before the failing file stay
    /// loaded.
    pub fn load(&mut self, path: impl AsRef<Path>) -> anyhow::Result<Vec<PluginInfo>> {
        let path = path.as_ref();
        if !path.exists() {
            bail!(
                "plugin path `{}` does not exist; {BUILD_HINT}",
                path.display()
            );
        }
        if !path.is_dir() {
            return Ok(vec![self.load_file(path, None)?]);
        }

        let files = wasm_files_in(path)?;
        let mut loaded = Vec::with_capacity(files.len());
        for file in files {
            loaded.push(self.load_file(&file, None)?);
        }
        Ok(loaded)
    }

    /// Loads one plugin file with explicit grants. It applies its action types like a bundled
    /// plugin.
    pub fn load_with_grants(
        &mut self,
        path: impl AsRef<Path>,
        grants: Grants,
    ) -> anyhow::Result<PluginInfo> {
        self.load_file(path.as_ref(), Some(grants))
    }

    /// Loads an installed plugin with the grants its installation records. It applies only the
    /// action names later bound to it with [`PluginHost::bind`], so it never competes with a
    /// bundled plugin for an action type.
    pub fn load_installed(
        &mut self,
        path: impl AsRef<Path>,
        grants: Grants,
    ) -> anyhow::Result<PluginInfo> {
        self.load_plugin(path.as_ref(), Some(grants), false)
    }

    /// Binds a mitigation action name to a loaded plugin with the plugin's own parameters,
    /// checked against its schema. The binding takes precedence over the action type.
    pub fn bind(&mut self, binding: ActionBinding) -> anyhow::Result<()> {
        let Some(plugin) = self.plugins.iter().find(|p| p.info.name == binding.plugin) else {
            bail!(
                "failed to bind action `{}`: no loaded plugin is named `{}`",
                binding.action_name,
                binding.plugin
            );
        };
        check_params(&plugin.info, &binding)?;
        if let Some(existing) = self
            .bindings
            .iter()
            .find(|b| b.action_name == binding.action_name)
        {
            bail!(
                "failed to bind action `{}` to plugin `{}`: it is already bound to plugin `{}`",
                binding.action_name,
                binding.plugin,
                existing.plugin
            );
        }
        self.bindings.push(binding);
        Ok(())
    }

    /// Returns the loaded plugins in load order.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.iter().map(|plugin| &plugin.info)
    }

    /// Returns the action bindings in the order they were made.
    pub fn bindings(&self) -> &[ActionBinding] {
        &self.bindings
    }

    /// Returns the plugin that handles `action_type`, if one is loaded.
    pub fn plugin_for(&self, action_type: MitigationActionType) -> Option<&PluginInfo> {
        self.plugins
            .iter()
            .map(|plugin| &plugin.info)
            .find(|info| info.handles_action_types && info.action_types.contains(&action_type))
    }

    /// Applies the action in `context` through the plugin bound to its action name, or else
    /// the plugin for its action type, then performs the operations the plugin staged. A trap,
    /// fuel or memory exhaustion, an oversize return value or a plugin error is reported in the
    /// outcome, and the host goes on serving calls.
    pub fn apply(
        &mut self,
        registry: &mut dyn Registry,
        context: &ExecutionContext,
    ) -> ApplyOutcome {
        let action_type = action_type_name(context.action_type);
        let Some((index, params)) = self.handler(context) else {
            warn!(action_type, task_id = %context.task_id, "no loaded plugin handles the action");
            return no_plugin_outcome(&context.action_name, action_type);
        };
        let mut context = context.clone();
        context.plugin_params = params;

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

        let outcome = plugin.apply(registry, &context, &self.limits);
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

    /// Finds the plugin for an execution and the parameters bound for it.
    fn handler(&self, context: &ExecutionContext) -> Option<(usize, Option<String>)> {
        if let Some(binding) = self
            .bindings
            .iter()
            .find(|b| b.action_name == context.action_name)
        {
            let index = self
                .plugins
                .iter()
                .position(|p| p.info.name == binding.plugin)?;
            let params = binding.params.as_ref().map(Value::to_string);
            return Some((index, params));
        }
        let index = self.plugins.iter().position(|plugin| {
            plugin.info.handles_action_types
                && plugin.info.action_types.contains(&context.action_type)
        })?;
        Some((index, None))
    }

    /// Compiles the plugin, checks its imports against its grants, instantiates it, reads its
    /// metadata and indexes it. Without explicit grants the action types decide them.
    fn load_file(&mut self, path: &Path, grants: Option<Grants>) -> anyhow::Result<PluginInfo> {
        self.load_plugin(path, grants, true)
    }

    fn load_plugin(
        &mut self,
        path: &Path,
        grants: Option<Grants>,
        handles_action_types: bool,
    ) -> anyhow::Result<PluginInfo> {
        let failed = || format!("failed to load plugin `{}`", path.display());
        let component = Component::from_file(&self.engine, path)
            .map_err(to_anyhow)
            .with_context(|| {
                format!(
                    "{}: it is not a WebAssembly component; {BUILD_HINT}",
                    failed()
                )
            })?;
        let imports = imported_capabilities(&self.engine, &component).with_context(failed)?;
        let pre = PluginPre::new(&self.linker, &component)
            .map_err(to_anyhow)
            .with_context(|| {
                format!(
                    "{}: it implements neither `vigil:detect/mitigation-plugin@0.2.0` nor \
                     `@0.1.0`; {BUILD_HINT}",
                    failed()
                )
            })?;

        let mut plugin = LoadedPlugin::load(pre, path, imports, grants, &self.limits)?;
        plugin.info.handles_action_types = handles_action_types;
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
            if !candidate.handles_action_types || !loaded.handles_action_types {
                continue;
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
}

/// One plugin: its compiled component, ready to instantiate, and its current instance.
struct LoadedPlugin {
    info: PluginInfo,
    pre: PluginPre,
    /// `None` after a trap, until the next call instantiates the plugin again.
    sandbox: Option<Sandbox>,
}

impl LoadedPlugin {
    /// Instantiates the plugin, reads its metadata and checks its imports against its grants;
    /// `path` is only for messages.
    fn load(
        pre: PluginPre,
        path: &Path,
        imports: Vec<Capability>,
        grants: Option<Grants>,
        limits: &PluginLimits,
    ) -> anyhow::Result<Self> {
        let failed = || format!("failed to load plugin `{}`", path.display());
        let state_dir = grants.as_ref().and_then(Grants::granted_state_dir);
        if let Some(dir) = state_dir {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "{}: failed to create its state folder `{}`",
                    failed(),
                    dir.display()
                )
            })?;
        }
        let mut sandbox = Sandbox::new(&pre, &path.display().to_string(), limits, state_dir)
            .map_err(to_anyhow)
            .with_context(|| format!("{}: instantiation failed", failed()))?;

        sandbox
            .store
            .set_fuel(limits.fuel_per_call)
            .map_err(to_anyhow)?;
        let metadata = sandbox
            .metadata()
            .map_err(to_anyhow)
            .with_context(|| format!("{}: `metadata` trapped", failed()))?;
        check_metadata(&metadata, limits).with_context(failed)?;
        if let Some(schema) = &metadata.parameters_schema {
            ParameterSchema::parse(schema)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{}: its parameters schema is unusable", failed()))?;
        }

        let grants = grants.unwrap_or_else(|| implied_grants(&metadata.action_types));
        check_grants(&metadata.name, &imports, &grants).with_context(failed)?;
        sandbox.store.data_mut().plugin = metadata.name.clone();

        let info = PluginInfo {
            name: metadata.name,
            version: metadata.version,
            description: metadata.description,
            action_types: metadata.action_types,
            parameters_schema: metadata.parameters_schema,
            api_version: pre.api_version(),
            imports,
            grants,
            handles_action_types: true,
            path: path.to_path_buf(),
        };
        Ok(Self {
            info,
            pre,
            sandbox: Some(sandbox),
        })
    }

    /// Runs `apply` in the sandbox, then performs the staged operations.
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

        let call = capabilities::CallScope::new(
            registry,
            &context.thing_name,
            self.info.grants.clone(),
            limits.host_calls_per_apply,
        );
        let staged = match self.call_apply(context, call, limits, &mut outcome.fuel_consumed) {
            Ok(staged) => staged,
            Err(failure) => {
                outcome.failure = Some(failure);
                return outcome;
            }
        };

        for operation in staged {
            match registry.perform(&operation) {
                Ok(()) => outcome.performed.push(operation),
                Err(error) => {
                    outcome.failure = Some(ApplyFailure {
                        code: FailureCode::RegistryError,
                        message: format!("failed to {}: {error}", operation.summary()),
                    });
                    break;
                }
            }
        }
        outcome
    }

    /// Calls the plugin's `apply` and returns the operations it staged. Drops the sandbox on a
    /// trap so that the next call starts from a fresh instance.
    fn call_apply(
        &mut self,
        context: &ExecutionContext,
        call: capabilities::CallScope,
        limits: &PluginLimits,
        fuel_consumed: &mut u64,
    ) -> Result<Vec<StagedOperation>, ApplyFailure> {
        let name = self.info.name.clone();
        let sandbox = self.sandbox_or_instantiate(limits)?;
        let stderr_start = sandbox.store.data().stderr_len();
        sandbox.store.data_mut().begin_call(call);
        sandbox
            .store
            .set_fuel(limits.fuel_per_call)
            .map_err(|error| ApplyFailure {
                code: FailureCode::PluginTrap,
                message: format!("failed to set the fuel budget: {error}"),
            })?;

        let result = sandbox.apply(context);

        let remaining = sandbox.store.get_fuel().unwrap_or(0);
        *fuel_consumed = limits.fuel_per_call.saturating_sub(remaining);
        let state = sandbox.store.data_mut();
        let call = state.end_call();

        match result {
            Ok(Ok(())) => Ok(call.map(|call| call.staged).unwrap_or_default()),
            Ok(Err(error)) => Err(plugin_error(&name, &error, limits)),
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
            let state_dir = self.info.grants.granted_state_dir();
            let sandbox =
                Sandbox::new(&self.pre, &self.info.name, limits, state_dir).map_err(|error| {
                    ApplyFailure {
                        code: FailureCode::PluginTrap,
                        message: format!(
                            "failed to instantiate plugin `{}` again after a trap: {error}",
                            self.info.name
                        ),
                    }
                })?;
            debug!("re-created plugin instance");
            self.sandbox = Some(sandbox);
        }
        Ok(self.sandbox.as_mut().expect("the sandbox was just created"))
    }
}

/// Logs what the host performed for a successful execution on a real registry, one record per
/// operation, beside the plugin's own records, so the log shows what changed even when nothing
/// did. Dry runs do not call it, because their registry performs nothing.
pub fn log_performed(plugin: &str, performed: &[StagedOperation]) {
    if performed.is_empty() {
        tracing::info!(target: "vigil::plugin::performed", plugin, "the plugin succeeded and changed nothing");
    }
    for operation in performed {
        tracing::info!(target: "vigil::plugin::performed", plugin, "the host performed: {}", operation.summary());
    }
}

/// Returns the capabilities a component imports, refusing imports Vigil does not provide.
fn imported_capabilities(
    engine: &Engine,
    component: &Component,
) -> anyhow::Result<Vec<Capability>> {
    let mut capabilities = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        if let Some(wasi) = wasi_capability(name)? {
            capabilities.extend(wasi);
            continue;
        }
        let interface = name
            .strip_prefix("vigil:detect/")
            .map(|rest| rest.split('@').next().unwrap_or(rest));
        let Some(interface) = interface else {
            bail!("it imports `{name}`, which Vigil does not provide to plugins");
        };
        if TYPE_ONLY_INTERFACES.contains(&interface) {
            continue;
        }
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            bail!("it imports `{name}` as something other than an interface");
        }
        let Some(capability) = Capability::from_name(interface) else {
            bail!("it imports `{name}`, which is not a capability of the plugin API");
        };
        capabilities.push(capability);
    }
    capabilities.sort();
    capabilities.dedup();
    Ok(capabilities)
}

/// Classifies a WASI import: `Some(None)` for the interfaces every plugin gets (command line,
/// I/O streams, random), `Some(Some(_))` for the filesystem, which needs a grant, and `None` for
/// an import outside WASI. Sockets and HTTP are rejected, because plugins post through
/// `outbound-http`, whose URLs the host checks. The monotonic clock is rejected too: fuel bounds
/// computing, not waiting, and its timers would let a plugin sleep, holding a mitigation task and
/// the server with it. The wall clock has no timers; the filesystem needs its `datetime`.
fn wasi_capability(name: &str) -> anyhow::Result<Option<Option<Capability>>> {
    let Some(interface) = name.strip_prefix("wasi:") else {
        return Ok(None);
    };
    let package = interface.split('/').next().unwrap_or_default();
    if interface.starts_with("clocks/monotonic-clock") {
        bail!(
            "it imports `{name}`, but plugins get no timers, so they cannot sleep; use the \
             execution's `execution-time` for the time"
        );
    }
    match package {
        "filesystem" => Ok(Some(Some(Capability::WasiFilesystem))),
        "sockets" | "http" => bail!(
            "it imports `{name}`, but plugins get no sockets or HTTP from WASI; post through the \
             `outbound-http` capability instead"
        ),
        _ => Ok(Some(None)),
    }
}

/// The grants of a bundled plugin: `logging` and the capability each action type needs.
fn implied_grants(action_types: &[MitigationActionType]) -> Grants {
    let mut capabilities = vec![Capability::Logging];
    for action_type in action_types {
        capabilities.push(match action_type {
            MitigationActionType::AddThingsToThingGroup => Capability::ThingRegistry,
            MitigationActionType::UpdateDeviceCertificate
            | MitigationActionType::UpdateCaCertificate => Capability::Certificates,
            MitigationActionType::ReplaceDefaultPolicyVersion => Capability::Policies,
            MitigationActionType::EnableIotLogging => Capability::IotLogging,
            MitigationActionType::PublishFindingToSns => Capability::Notifications,
        });
    }
    capabilities.sort();
    capabilities.dedup();
    Grants::of(&capabilities)
}

/// Refuses a plugin that imports a capability its grants leave out.
fn check_grants(plugin: &str, imports: &[Capability], grants: &Grants) -> anyhow::Result<()> {
    let denied: Vec<&str> = imports
        .iter()
        .filter(|capability| !grants.allows(**capability))
        .map(|capability| capability.name())
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let granted: Vec<&str> = grants.capabilities.iter().map(|c| c.name()).collect();
    let pronoun = if denied.len() == 1 { "it" } else { "them" };
    bail!(
        "plugin `{plugin}` imports {}, which its configuration does not grant (granted: {}); \
         grant {pronoun} with `--grant {}` or rebuild the plugin without {pronoun}",
        quoted_list(&denied),
        if granted.is_empty() {
            "nothing".to_string()
        } else {
            granted.join(", ")
        },
        denied.join(",")
    )
}

/// Checks the metadata a plugin returned: a usable name and a bounded size.
fn check_metadata(metadata: &PluginMetadata, limits: &PluginLimits) -> anyhow::Result<()> {
    let size = metadata.name.len()
        + metadata.version.len()
        + metadata.description.len()
        + metadata.parameters_schema.as_ref().map_or(0, String::len);
    if size > limits.output_bytes {
        bail!(
            "`metadata` returned {size} bytes, more than the {} allowed",
            limits.output_bytes
        );
    }
    check_plugin_name(&metadata.name)?;
    let version = &metadata.version;
    let version_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+');
    if version.is_empty() || version.len() > MAX_VERSION_CHARS || !version.chars().all(version_char)
    {
        bail!(
            "`metadata` returned the version {version:?}; a version is 1 to {MAX_VERSION_CHARS} \
             characters of letters, digits, `.`, `-` and `+`, such as 1.2.0"
        );
    }
    let description = &metadata.description;
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description.chars().any(char::is_control)
    {
        bail!(
            "`metadata` returned a description longer than {MAX_DESCRIPTION_CHARS} characters or \
             with control characters; a description is one line"
        );
    }
    Ok(())
}

/// Checks a plugin name: 1 to 64 characters of lowercase letters, digits and `-`.
pub fn check_plugin_name(name: &str) -> anyhow::Result<()> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME_CHARS || !name.chars().all(valid) {
        bail!(
            "invalid plugin name {:?}; a plugin name is 1 to {MAX_PLUGIN_NAME_CHARS} characters of \
             lowercase letters, digits and `-`",
            truncate_chars(name, MAX_PLUGIN_NAME_CHARS + 8)
        );
    }
    Ok(())
}

/// Checks an action binding's parameters against the plugin's schema.
fn check_params(plugin: &PluginInfo, binding: &ActionBinding) -> anyhow::Result<()> {
    let failed = || {
        format!(
            "failed to bind action `{}` to plugin `{}`",
            binding.action_name, plugin.name
        )
    };
    let Some(schema_text) = &plugin.parameters_schema else {
        if binding.params.is_some() {
            bail!("{}: the plugin takes no parameters", failed());
        }
        return Ok(());
    };
    let schema = ParameterSchema::parse(schema_text).map_err(anyhow::Error::msg)?;
    let params = binding
        .params
        .clone()
        .unwrap_or(Value::Object(Default::default()));
    let violations = schema.violations(&params);
    if !violations.is_empty() {
        bail!("{}: {}", failed(), violations.join("; "));
    }
    Ok(())
}

/// Fails an execution whose plugin returned an error, unless the message is oversize.
fn plugin_error(name: &str, error: &MitigationError, limits: &PluginLimits) -> ApplyFailure {
    let message = match error {
        MitigationError::InvalidParameters(message)
        | MitigationError::TargetNotFound(message)
        | MitigationError::CapabilityFailed(message)
        | MitigationError::Declined(message)
        | MitigationError::Other(message) => message,
    };
    if message.len() > limits.output_bytes {
        return ApplyFailure {
            code: FailureCode::PluginOutputTooLarge,
            message: format!(
                "plugin `{name}` returned an error message of {} bytes, more than the {} allowed",
                message.len(),
                limits.output_bytes
            ),
        };
    }
    ApplyFailure {
        code: FailureCode::PluginError,
        message: format!("plugin `{name}` failed: {}", describe_error(error)),
    }
}

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

fn no_plugin_outcome(action_name: &str, action_type: &str) -> ApplyOutcome {
    ApplyOutcome {
        plugin: None,
        performed: Vec::new(),
        failure: Some(ApplyFailure {
            code: FailureCode::NoPlugin,
            message: format!(
                "no loaded plugin is bound to action `{action_name}` or handles action type \
                 `{action_type}`"
            ),
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
        MitigationError::Declined(message) => format!("declined: {message}"),
        MitigationError::Other(message) => message.clone(),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
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

    #[test]
    fn wasi_imports_are_classified() {
        let filesystem = wasi_capability("wasi:filesystem/preopens@0.2.6").expect("grantable");
        let streams = wasi_capability("wasi:io/streams@0.2.6").expect("always granted");
        let outside = wasi_capability("vigil:detect/logging@0.2.0").expect("not WASI");

        assert_eq!(filesystem, Some(Some(Capability::WasiFilesystem)));
        assert_eq!(streams, Some(None));
        assert_eq!(outside, None);
        for rejected in [
            "wasi:clocks/monotonic-clock@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
        ] {
            assert!(wasi_capability(rejected).is_err(), "{rejected}");
        }
    }

    #[test]
    fn bundled_grants_follow_the_action_types() {
        let grants = implied_grants(&[
            MitigationActionType::UpdateDeviceCertificate,
            MitigationActionType::UpdateCaCertificate,
        ]);

        assert_eq!(
            grants.capabilities,
            vec![Capability::Certificates, Capability::Logging]
        );
    }

    #[test]
    fn ungranted_import_names_the_capability_and_the_fix() {
        let grants = Grants::of(&[Capability::Logging]);

        let error = check_grants(
            "webhook",
            &[Capability::OutboundHttp, Capability::Logging],
            &grants,
        )
        .expect_err("outbound-http is not granted");

        assert_eq!(
            error.to_string(),
            "plugin `webhook` imports `outbound-http`, which its configuration does not grant \
             (granted: logging); grant it with `--grant outbound-http` or rebuild the plugin \
             without it"
        );
    }
}
