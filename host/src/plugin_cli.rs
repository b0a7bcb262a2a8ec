//! `vigil plugin`: list the plugins a server would load, install a custom plugin into a data
//! folder and bind it to a mitigation action name, and dry-run a plugin on a violation.
//!
//! # Installations
//!
//! `vigil plugin install` copies the component to `DATA/plugins/NAME.wasm` and records it in
//! `DATA/plugins/installed.json` with its grants and action bindings. `vigil serve --data DATA`
//! loads the bundled plugins first, then every installed one with exactly the recorded grants,
//! and binds the recorded action names. The file is rewritten whole through a temporary file and
//! a rename, so a crash leaves either the old or the new version.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::plugins::records::{
    CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate, PolicyVersion,
};
use crate::plugins::{
    ActionBinding, ApplyOutcome, Capability, CapabilityError, ExecutionContext, Grants,
    MitigationActionType, PluginHost, PluginInfo, PluginLimits, Registry, StagedOperation,
    ThingSnapshot, action_type_name,
};

/// Folder of installed plugins inside a data folder.
const INSTALL_DIR: &str = "plugins";

/// Folder of the installed plugins' state folders inside [`INSTALL_DIR`].
const STATE_DIR: &str = "state";

/// The installation record inside [`INSTALL_DIR`].
const INSTALLED_FILE: &str = "installed.json";

/// Account and region of the example ARNs a dry run uses.
const TEST_ARN_PREFIX: &str = "arn:aws:iot:us-east-1:123456789012";

/// Arguments of `vigil plugin`.
#[derive(clap::Args, Debug)]
pub struct PluginArgs {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The `vigil plugin` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// List the plugins `vigil serve` would load: versions, API version, imports, grants,
    /// action types and bound action names.
    List(ListArgs),
    /// Check a plugin component, copy it into a data folder and bind it to an action name.
    Install(InstallArgs),
    /// Remove an action binding, or an installed plugin with all its bindings.
    Uninstall(UninstallArgs),
    /// Run a plugin once on a violation without touching any registry, and print what the host
    /// would perform.
    Test(TestArgs),
}

/// Arguments of `vigil plugin list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Data folder whose installed plugins to include.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Directory of bundled plugin components (default: plugins/ next to this binary, then
    /// target/wasm/plugins).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
}

/// Grants for a custom plugin, from the command line.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GrantArgs {
    /// Capabilities the plugin may import, comma-separated: thing-registry, certificates,
    /// policies, iot-logging, notifications, outbound-http, logging, and wasi-filesystem for a
    /// private state folder at /state.
    #[arg(long = "grant", value_name = "CAPABILITY,...", value_delimiter = ',')]
    pub grants: Vec<String>,
    /// URL prefix `outbound-http` may post to (repeatable), for example
    /// http://127.0.0.1:9000/hooks/.
    #[arg(long = "allow-url", value_name = "PREFIX")]
    pub allowed_urls: Vec<String>,
    /// SNS topic ARN `notifications` may publish to (repeatable); without it every topic.
    #[arg(long = "allow-topic", value_name = "ARN")]
    pub allowed_topics: Vec<String>,
}

/// Arguments of `vigil plugin install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The plugin component, built for wasm32-wasip2.
    #[arg(value_name = "PLUGIN.wasm")]
    pub plugin: PathBuf,
    /// Data folder of the server that will load it.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Mitigation action name to bind to the plugin; create the action with
    /// create-mitigation-action as usual.
    #[arg(long, value_name = "NAME")]
    pub action: String,
    /// Directory of bundled plugin components, whose names an installed plugin may not take
    /// (default: plugins/ next to this binary, then target/wasm/plugins).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// The plugin's own parameters for this action, JSON, checked against its schema.
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// Grants for the plugin.
    #[command(flatten)]
    pub grants: GrantArgs,
}

/// Arguments of `vigil plugin uninstall`.
#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    /// Name of the installed plugin, as `vigil plugin list` shows it.
    #[arg(value_name = "PLUGIN")]
    pub plugin: String,
    /// Data folder the plugin is installed in.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Remove only this action's binding; the plugin goes too when it was its last one.
    #[arg(long, value_name = "NAME")]
    pub action: Option<String>,
}

/// Arguments of `vigil plugin test`.
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The plugin component, built for wasm32-wasip2.
    #[arg(value_name = "PLUGIN.wasm")]
    pub plugin: PathBuf,
    /// A violation as JSON: one entry of `aws iot list-active-violations` or
    /// `list-violation-events` output.
    #[arg(long, value_name = "FILE")]
    pub violation: PathBuf,
    /// Mitigation action parameters as in create-mitigation-action (default: example parameters
    /// for the plugin's first action type).
    #[arg(long, value_name = "JSON")]
    pub action_params: Option<String>,
    /// Mitigation action name.
    #[arg(long, value_name = "NAME", default_value = "vigil-plugin-test")]
    pub action_name: String,
    /// The plugin's own parameters, JSON, checked against its schema.
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// The violating thing's registry state as JSON (default: one active certificate from one
    /// CA and one policy with one version, no groups, no attributes, logging off).
    #[arg(long, value_name = "FILE")]
    pub thing_state: Option<PathBuf>,
    /// Without --grant, the plugin is granted what a bundled plugin for its action types gets.
    #[command(flatten)]
    pub grants: GrantArgs,
    /// Folder preopened as /state for a plugin granted wasi-filesystem (default: a new folder in
    /// the system's temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Runs one `vigil plugin` subcommand.
pub fn run(args: PluginArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match args.command {
        PluginCommand::List(args) => list(&args, out),
        PluginCommand::Install(args) => install(&args, out),
        PluginCommand::Uninstall(args) => uninstall(&args, out),
        PluginCommand::Test(args) => test(&args, out),
    }
}

/// One installed plugin in `installed.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Installation {
    /// Plugin name from its metadata.
    pub name: String,
    /// Version from its metadata, for listings.
    pub version: String,
    /// Component file name inside the installation folder.
    pub file: String,
    /// Lowercase hex SHA-256 of the component, checked at load.
    pub sha256: String,
    /// Granted capabilities by WIT name.
    pub grants: Vec<String>,
    /// URL prefixes `outbound-http` may post to.
    #[serde(default)]
    pub allowed_urls: Vec<String>,
    /// SNS topics `notifications` may publish to; empty allows every topic.
    #[serde(default)]
    pub allowed_topics: Vec<String>,
    /// Action names bound to the plugin, with its parameters for each.
    pub bindings: BTreeMap<String, Option<Value>>,
}

/// The contents of `installed.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Installations {
    /// Installed plugins by name.
    pub plugins: BTreeMap<String, Installation>,
}

impl Installations {
    /// Reads the installations of a data folder; a folder without any has none.
    pub fn read(data_dir: &Path) -> anyhow::Result<Self> {
        let path = installed_path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "failed to read `{}`: it is not a valid plugin installation record; fix it, \
                     or move it away and install the plugins again with `vigil plugin install`",
                    path.display()
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => {
                Err(error).with_context(|| format!("failed to read `{}`", path.display()))
            }
        }
    }

    /// Writes the installations through a temporary file and a rename.
    fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = installed_path(data_dir);
        let temporary = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("failed to encode installations")?;
        std::fs::write(&temporary, text + "\n")
            .with_context(|| format!("failed to write `{}`", temporary.display()))?;
        std::fs::rename(&temporary, &path)
            .with_context(|| format!("failed to replace `{}`", path.display()))
    }

    /// Loads every installed plugin into `host` with its grants and binds its action names.
    pub fn load_into(&self, data_dir: &Path, host: &mut PluginHost) -> anyhow::Result<()> {
        for (key, installation) in &self.plugins {
            check_record(key, installation)?;
            let path = data_dir.join(INSTALL_DIR).join(&installation.file);
            check_digest(&path, &installation.sha256)?;
            let grants = installation_grants(data_dir, installation)?;
            let info = host.load_installed(&path, grants)?;
            if info.name != installation.name {
                bail!(
                    "`{}` contains plugin `{}`, but its installation record names `{}`; install it \
                     again with `vigil plugin install`",
                    path.display(),
                    info.name,
                    installation.name
                );
            }
            for (action_name, params) in &installation.bindings {
                host.bind(ActionBinding {
                    action_name: action_name.clone(),
                    plugin: installation.name.clone(),
                    params: params.clone(),
                })?;
            }
        }
        Ok(())
    }
}

/// Checks the fields of a record that name files, since they come from a file anyone with write
/// access to the data folder can edit.
fn check_record(key: &str, installation: &Installation) -> anyhow::Result<()> {
    crate::plugins::check_plugin_name(key)
        .and_then(|()| crate::plugins::check_plugin_name(&installation.name))
        .context("failed to read the installation record")?;
    let expected_file = format!("{}.wasm", installation.name);
    if key != installation.name || installation.file != expected_file {
        bail!(
            "the installation record of `{key}` names plugin `{}` in file `{}`; expected `{key}` in \
             `{key}.wasm`; install the plugin again with `vigil plugin install`",
            installation.name,
            installation.file
        );
    }
    Ok(())
}

fn installed_path(data_dir: &Path) -> PathBuf {
    data_dir.join(INSTALL_DIR).join(INSTALLED_FILE)
}

fn installation_grants(data_dir: &Path, installation: &Installation) -> anyhow::Result<Grants> {
    Ok(Grants {
        capabilities: parse_capabilities(&installation.grants)?,
        allowed_urls: installation.allowed_urls.clone(),
        allowed_topics: installation.allowed_topics.clone(),
        state_dir: Some(state_dir(data_dir, &installation.name)),
    })
}

/// Returns the folder preopened as `/state` for an installed plugin granted `wasi-filesystem`.
fn state_dir(data_dir: &Path, plugin: &str) -> PathBuf {
    data_dir.join(INSTALL_DIR).join(STATE_DIR).join(plugin)
}

fn check_digest(path: &Path, expected: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("failed to read plugin `{}`", path.display()))?;
    let actual = hex_sha256(&bytes);
    if actual != expected {
        bail!(
            "plugin `{}` changed since it was installed (SHA-256 {actual}, recorded {expected}); \
             install it again with `vigil plugin install`",
            path.display()
        );
    }
    Ok(())
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn parse_capabilities(names: &[String]) -> anyhow::Result<Vec<Capability>> {
    let mut capabilities = Vec::with_capacity(names.len());
    for name in names.iter().map(|name| name.trim()) {
        let Some(capability) = Capability::from_name(name) else {
            let known: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
            bail!(
                "unknown capability `{name}`; expected one of {}",
                known.join(", ")
            );
        };
        capabilities.push(capability);
    }
    capabilities.sort();
    capabilities.dedup();
    Ok(capabilities)
}

impl GrantArgs {
    fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.allowed_urls.is_empty() && self.allowed_topics.is_empty()
    }

    fn to_grants(&self) -> anyhow::Result<Grants> {
        for prefix in &self.allowed_urls {
            crate::alerts::WebhookUrl::parse(prefix)
                .with_context(|| format!("--allow-url `{prefix}` is not usable"))?;
        }
        let mut capabilities = parse_capabilities(&self.grants)?;
        if !capabilities.contains(&Capability::Logging) {
            capabilities.push(Capability::Logging);
            capabilities.sort();
        }
        Ok(Grants {
            capabilities,
            allowed_urls: self.allowed_urls.clone(),
            allowed_topics: self.allowed_topics.clone(),
            state_dir: None,
        })
    }
}

fn parse_params(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    text.map(|text| {
        serde_json::from_str(text).with_context(|| format!("--params is not JSON: `{text}`"))
    })
    .transpose()
}

fn install(args: &InstallArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    check_action_name(&args.action)?;
    let mut grants = args.grants.to_grants()?;
    let params = parse_params(args.params.as_deref())?;
    let mut host = PluginHost::new(PluginLimits::default())?;
    // Loading the bundled plugins first makes a custom plugin that reuses one of their names
    // fail here rather than when the server starts.
    let bundled = crate::plugins::locate_plugins_dir(args.plugins.as_deref())?;
    host.load(&bundled).with_context(|| {
        format!(
            "failed to load the bundled plugins in `{}`",
            bundled.display()
        )
    })?;
    // The plugin's real state folder is named after it, which is known only once it loaded.
    let scratch = ScratchDir::new("install")?;
    grants.state_dir = Some(scratch.path.clone());
    let info = host.load_installed(&args.plugin, grants.clone())?;
    drop(scratch);
    grants.state_dir = None;
    host.bind(ActionBinding {
        action_name: args.action.clone(),
        plugin: info.name.clone(),
        params: params.clone(),
    })?;

    let mut installations = Installations::read(&args.data)?;
    check_action_free(&installations, &args.action, &info.name)?;
    let bytes = std::fs::read(&args.plugin)
        .with_context(|| format!("failed to read `{}`", args.plugin.display()))?;
    let file = format!("{}.wasm", info.name);
    let folder = args.data.join(INSTALL_DIR);
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("failed to create `{}`", folder.display()))?;
    std::fs::write(folder.join(&file), &bytes)
        .with_context(|| format!("failed to copy the plugin into `{}`", folder.display()))?;

    let previous = installations.plugins.get(&info.name).cloned();
    if let Some(previous) = &previous {
        check_existing_bindings(&mut host, previous, &args.action)?;
    }
    let mut bindings = previous
        .as_ref()
        .map(|installed| installed.bindings.clone())
        .unwrap_or_default();
    bindings.insert(args.action.clone(), params);
    installations.plugins.insert(
        info.name.clone(),
        Installation {
            name: info.name.clone(),
            version: info.version.clone(),
            file,
            sha256: hex_sha256(&bytes),
            grants: grants
                .capabilities
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            allowed_urls: grants.allowed_urls,
            allowed_topics: grants.allowed_topics,
            bindings,
        },
    );
    installations.write(&args.data)?;
    if let Some(previous) = previous {
        report_changed_grants(out, &previous, &installations.plugins[&info.name])?;
    }
    writeln!(
        out,
        "installed plugin `{}` {} into `{}`, bound to action `{}`; restart `vigil serve --data {}` \
         to load it",
        info.name,
        info.version,
        folder.display(),
        args.action,
        args.data.display()
    )?;
    Ok(())
}

/// Checks an action name as create-mitigation-action does: 1 to 128 characters of
/// `[a-zA-Z0-9_-]`.
fn check_action_name(action: &str) -> anyhow::Result<()> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    if action.is_empty() || action.len() > 128 || !action.chars().all(valid) {
        bail!(
            "invalid --action {action:?}: a mitigation action name is 1 to 128 characters of \
             [a-zA-Z0-9_-]"
        );
    }
    Ok(())
}

/// Tells the user when a reinstall changed the grants, which apply to every binding.
fn report_changed_grants(
    out: &mut dyn Write,
    previous: &Installation,
    current: &Installation,
) -> anyhow::Result<()> {
    let unchanged = previous.grants == current.grants
        && previous.allowed_urls == current.allowed_urls
        && previous.allowed_topics == current.allowed_topics;
    if unchanged {
        return Ok(());
    }
    let actions: Vec<&str> = current.bindings.keys().map(String::as_str).collect();
    writeln!(
        out,
        "replaced the grants of plugin `{}`; grants belong to the plugin, so they now apply to \
         every action bound to it: {}",
        current.name,
        actions.join(", ")
    )?;
    Ok(())
}

/// Binds the plugin's other recorded actions to the new component, so an install that would break
/// them fails now instead of when the server starts.
fn check_existing_bindings(
    host: &mut PluginHost,
    previous: &Installation,
    action: &str,
) -> anyhow::Result<()> {
    for (other, params) in previous.bindings.iter().filter(|(name, _)| *name != action) {
        host.bind(ActionBinding {
            action_name: other.clone(),
            plugin: previous.name.clone(),
            params: params.clone(),
        })
        .with_context(|| {
            format!(
                "the new component would break the recorded binding of action `{other}`; \
                 uninstall that binding first with `vigil plugin uninstall {} --action {other}`",
                previous.name
            )
        })?;
    }
    Ok(())
}

fn uninstall(args: &UninstallArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut installations = Installations::read(&args.data)?;
    let Some(installed) = installations.plugins.get_mut(&args.plugin) else {
        let names: Vec<&str> = installations.plugins.keys().map(String::as_str).collect();
        bail!(
            "no plugin named `{}` is installed in `{}` (installed: {})",
            args.plugin,
            args.data.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    if let Some(action) = &args.action {
        if installed.bindings.remove(action).is_none() {
            bail!("plugin `{}` is not bound to action `{action}`", args.plugin);
        }
        writeln!(
            out,
            "removed the binding of action `{action}` to plugin `{}`",
            args.plugin
        )?;
        if !installed.bindings.is_empty() {
            installations.write(&args.data)?;
            return Ok(());
        }
    }
    let removed = installations
        .plugins
        .remove(&args.plugin)
        .expect("the plugin was found above");
    installations.write(&args.data)?;
    let file = args.data.join(INSTALL_DIR).join(&removed.file);
    std::fs::remove_file(&file)
        .with_context(|| format!("failed to remove `{}`", file.display()))?;
    writeln!(
        out,
        "uninstalled plugin `{}`; its state folder, if any, stays in `{}`; restart `vigil serve` \
         to unload it",
        removed.name,
        state_dir(&args.data, &removed.name).display()
    )?;
    Ok(())
}

/// Fails when another installed plugin is already bound to `action`.
fn check_action_free(
    installations: &Installations,
    action: &str,
    plugin: &str,
) -> anyhow::Result<()> {
    let holder = installations
        .plugins
        .values()
        .find(|installed| installed.name != plugin && installed.bindings.contains_key(action));
    if let Some(holder) = holder {
        bail!(
            "action `{action}` is already bound to installed plugin `{}`; choose another action \
             name",
            holder.name
        );
    }
    Ok(())
}

fn list(args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut host = PluginHost::new(PluginLimits::default())?;
    let bundled = crate::plugins::locate_plugins_dir(args.plugins.as_deref())?;
    host.load(&bundled)
        .with_context(|| format!("failed to load the plugins in `{}`", bundled.display()))?;
    if let Some(data) = &args.data {
        Installations::read(data)?.load_into(data, &mut host)?;
    }
    for info in host.plugins() {
        write_plugin(out, info, host.bindings())?;
    }
    Ok(())
}

fn write_plugin(
    out: &mut dyn Write,
    info: &PluginInfo,
    bindings: &[ActionBinding],
) -> anyhow::Result<()> {
    let names = |capabilities: &[Capability]| {
        let names: Vec<&str> = capabilities.iter().map(|c| c.name()).collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let action_types: Vec<&str> = info
        .action_types
        .iter()
        .map(|t| wire_action_type(*t))
        .collect();
    let bound: Vec<&str> = bindings
        .iter()
        .filter(|binding| binding.plugin == info.name)
        .map(|binding| binding.action_name.as_str())
        .collect();
    let list_or_dash = |items: &[&str]| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(", ")
        }
    };
    writeln!(
        out,
        "{} {} (plugin API {})",
        info.name, info.version, info.api_version
    )?;
    if !info.description.is_empty() {
        writeln!(out, "  {}", info.description)?;
    }
    writeln!(out, "  file:         {}", info.path.display())?;
    if info.handles_action_types {
        writeln!(out, "  action types: {}", list_or_dash(&action_types))?;
    } else {
        writeln!(
            out,
            "  action types: none, installed plugins apply only their bound actions"
        )?;
    }
    writeln!(out, "  bound to:     {}", list_or_dash(&bound))?;
    writeln!(out, "  imports:      {}", names(&info.imports))?;
    writeln!(out, "  granted:      {}", names(&info.grants.capabilities))?;
    if !info.grants.allowed_urls.is_empty() {
        writeln!(
            out,
            "  urls:         {}",
            info.grants.allowed_urls.join(", ")
        )?;
    }
    if !info.grants.allowed_topics.is_empty() {
        writeln!(
            out,
            "  topics:       {}",
            info.grants.allowed_topics.join(", ")
        )?;
    }
    Ok(())
}

/// The AWS name of an action type, for example `ADD_THINGS_TO_THING_GROUP`.
fn wire_action_type(action_type: MitigationActionType) -> &'static str {
    match action_type {
        MitigationActionType::UpdateDeviceCertificate => "UPDATE_DEVICE_CERTIFICATE",
        MitigationActionType::UpdateCaCertificate => "UPDATE_CA_CERTIFICATE",
        MitigationActionType::AddThingsToThingGroup => "ADD_THINGS_TO_THING_GROUP",
        MitigationActionType::ReplaceDefaultPolicyVersion => "REPLACE_DEFAULT_POLICY_VERSION",
        MitigationActionType::EnableIotLogging => "ENABLE_IOT_LOGGING",
        MitigationActionType::PublishFindingToSns => "PUBLISH_FINDING_TO_SNS",
    }
}

fn test(args: &TestArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let violation = read_violation(&args.violation)?;
    let mut host = PluginHost::new(PluginLimits::default())?;
    let scratch = ScratchDir::new("test")?;
    let info = if args.grants.is_empty() {
        host.load(&args.plugin)?.remove(0)
    } else {
        let mut grants = args.grants.to_grants()?;
        grants.state_dir = Some(
            args.state_dir
                .clone()
                .unwrap_or_else(|| scratch.path.clone()),
        );
        host.load_with_grants(&args.plugin, grants)?
    };
    let params = parse_params(args.params.as_deref())?;
    host.bind(ActionBinding {
        action_name: args.action_name.clone(),
        plugin: info.name.clone(),
        params,
    })?;
    let action_params = action_params(args.action_params.as_deref(), &info)?;
    let snapshot = match &args.thing_state {
        Some(path) => read_thing_state(path)?,
        None => example_snapshot(&violation.thing_name),
    };
    let context = test_context(&args.action_name, action_params, &violation)?;
    let mut registry = DryRun {
        snapshot,
        thing: violation.thing_name.clone(),
    };

    let outcome = host.apply(&mut registry, &context);
    drop(scratch);
    write_test_report(out, &info, &context, &outcome)?;
    if let Some(failure) = &outcome.failure {
        bail!(
            "the execution failed with {}: {}",
            failure.code,
            failure.message
        );
    }
    Ok(())
}

/// A new, empty folder in the system's temporary folder, removed when dropped. Its name is
/// unique and it is created with `create_dir`, so a folder or link planted under a predictable
/// name cannot take its place.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new(purpose: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let name = format!("vigil-plugin-{purpose}-{}-{nanos}", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path)
            .with_context(|| format!("failed to create the scratch folder `{}`", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A registry that reads from a fixed snapshot and performs nothing, for a dry run.
struct DryRun {
    snapshot: ThingSnapshot,
    thing: String,
}

impl Registry for DryRun {
    fn snapshot(&mut self, thing: &str) -> Result<ThingSnapshot, CapabilityError> {
        if thing != self.thing {
            return Err(CapabilityError::ThingNotFound(format!(
                "thing `{thing}` does not exist"
            )));
        }
        Ok(self.snapshot.clone())
    }

    fn perform(&mut self, _: &StagedOperation) -> Result<(), CapabilityError> {
        Ok(())
    }
}

/// The fields of a violation that reach a plugin, from `list-active-violations` or
/// `list-violation-events` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViolationFile {
    violation_id: String,
    thing_name: String,
    security_profile_name: String,
    behavior: vigil_core::model::Behavior,
    #[serde(default, alias = "metricValue")]
    last_violation_value: Option<vigil_core::model::MetricValue>,
    #[serde(default)]
    violation_event_additional_info: Option<vigil_core::model::ViolationEventAdditionalInfo>,
    #[serde(default, alias = "violationEventTime")]
    violation_start_time: Option<Value>,
}

fn read_violation(path: &Path) -> anyhow::Result<ViolationFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read violation file `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a violation: expected one entry of `aws iot list-active-violations` or \
             `list-violation-events` output with violationId, thingName, securityProfileName \
             and behavior",
            path.display()
        )
    })
}

/// Reads epoch seconds or an ISO-8601 time as milliseconds.
fn violation_time(value: Option<&Value>) -> anyhow::Result<i64> {
    match value {
        None => Ok(0),
        Some(Value::Number(seconds)) => {
            let seconds = seconds.as_f64().unwrap_or(f64::NAN);
            if !(0.0..1e11).contains(&seconds) {
                bail!("violationStartTime {seconds} is not epoch seconds between 1970 and 5138");
            }
            Ok((seconds * 1000.0).round() as i64)
        }
        Some(Value::String(text)) => crate::output::parse_datetime(text)
            .with_context(|| format!("violationStartTime `{text}` is not an ISO-8601 time")),
        Some(other) => bail!("violationStartTime `{other}` is neither epoch seconds nor a time"),
    }
}

fn test_context(
    action_name: &str,
    action_params: vigil_core::model::MitigationActionParams,
    violation: &ViolationFile,
) -> anyhow::Result<ExecutionContext> {
    let action_type = action_params
        .set_types()
        .first()
        .copied()
        .unwrap_or(vigil_core::model::MitigationActionType::PublishFindingToSns);
    let start = violation_time(violation.violation_start_time.as_ref())?;
    Ok(ExecutionContext {
        task_id: "vigil-plugin-test".to_string(),
        action_name: action_name.to_string(),
        action_type: action_type.into(),
        action_params: action_params.into(),
        plugin_params: None,
        role_arn: "arn:aws:iam::123456789012:role/vigil-plugin-test".to_string(),
        violation_id: violation.violation_id.clone(),
        thing_name: violation.thing_name.clone(),
        security_profile_name: violation.security_profile_name.clone(),
        behavior: violation.behavior.clone().into(),
        observed_value: violation.last_violation_value.clone().map(Into::into),
        additional_info: violation
            .violation_event_additional_info
            .clone()
            .map(Into::into),
        violation_start_time: start,
        execution_time: start,
    })
}

/// Parses and validates action parameters, or builds example ones for the plugin.
fn action_params(
    text: Option<&str>,
    info: &PluginInfo,
) -> anyhow::Result<vigil_core::model::MitigationActionParams> {
    let value = match text {
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("--action-params is not JSON: `{text}`"))?,
        None => example_action_params(info.action_types.first().copied()),
    };
    let params: vigil_core::model::MitigationActionParams = serde_json::from_value(value)
        .context("--action-params is not a mitigation action's actionParams")?;
    let problems = vigil_core::validate::validate_mitigation_action(
        "vigil-plugin-test",
        "arn:aws:iam::123456789012:role/vigil-plugin-test",
        &params,
    );
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!("--action-params is not valid: {}", problems.join("; "));
    }
    Ok(params)
}

fn example_action_params(action_type: Option<MitigationActionType>) -> Value {
    let topic = "arn:aws:sns:us-east-1:123456789012:vigil-plugin-test";
    match action_type {
        Some(MitigationActionType::AddThingsToThingGroup) => {
            serde_json::json!({"addThingsToThingGroupParams": {"thingGroupNames": ["quarantine"]}})
        }
        Some(MitigationActionType::UpdateDeviceCertificate) => {
            serde_json::json!({"updateDeviceCertificateParams": {"action": "DEACTIVATE"}})
        }
        Some(MitigationActionType::UpdateCaCertificate) => {
            serde_json::json!({"updateCACertificateParams": {"action": "DEACTIVATE"}})
        }
        Some(MitigationActionType::ReplaceDefaultPolicyVersion) => serde_json::json!({
            "replaceDefaultPolicyVersionParams": {"templateName": "BLANK_POLICY"}
        }),
        Some(MitigationActionType::EnableIotLogging) => serde_json::json!({
            "enableIoTLoggingParams": {
                "roleArnForLogging": "arn:aws:iam::123456789012:role/vigil-plugin-test",
                "logLevel": "ERROR"
            }
        }),
        Some(MitigationActionType::PublishFindingToSns) | None => {
            serde_json::json!({"publishFindingToSnsParams": {"topicArn": topic}})
        }
    }
}

/// One active certificate from one CA and one policy with one version.
fn example_snapshot(thing: &str) -> ThingSnapshot {
    let certificate_id = hex_sha256(format!("certificate of {thing}").as_bytes());
    let ca_id = hex_sha256(b"vigil plugin test CA");
    ThingSnapshot {
        certificates: vec![DeviceCertificate {
            certificate_arn: format!("{TEST_ARN_PREFIX}:cert/{certificate_id}"),
            certificate_id,
            status: CertificateStatus::Active,
            ca_certificate_id: Some(ca_id.clone()),
        }],
        ca_certificates: vec![CaCertificate {
            certificate_arn: format!("{TEST_ARN_PREFIX}:cacert/{ca_id}"),
            certificate_id: ca_id,
            status: CaCertificateStatus::Active,
        }],
        policies: BTreeMap::from([(
            "vigil-plugin-test-policy".to_string(),
            vec![PolicyVersion {
                version_id: "1".to_string(),
                is_default_version: true,
                document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#
                    .to_string(),
            }],
        )]),
        ..ThingSnapshot::default()
    }
}

/// The registry state a `--thing-state` file describes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThingState {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    thing_groups: Vec<String>,
    #[serde(default)]
    certificates: Vec<CertificateState>,
    #[serde(default)]
    policies: BTreeMap<String, Vec<String>>,
}

/// A certificate in a `--thing-state` file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateState {
    certificate_id: String,
    status: String,
    #[serde(default)]
    ca_certificate_id: Option<String>,
}

fn read_thing_state(path: &Path) -> anyhow::Result<ThingSnapshot> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let state: ThingState = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not a thing state: expected attributes, thingGroups, certificates \
             (certificateId, status, caCertificateId) and policies (name to documents, oldest \
             first, the last one the default)",
            path.display()
        )
    })?;
    let mut snapshot = ThingSnapshot {
        attributes: state.attributes,
        groups: state.thing_groups,
        ..ThingSnapshot::default()
    };
    for certificate in state.certificates {
        if let Some(ca) = &certificate.ca_certificate_id
            && !snapshot
                .ca_certificates
                .iter()
                .any(|c| &c.certificate_id == ca)
        {
            snapshot.ca_certificates.push(CaCertificate {
                certificate_arn: format!("{TEST_ARN_PREFIX}:cacert/{ca}"),
                certificate_id: ca.clone(),
                status: CaCertificateStatus::Active,
            });
        }
        snapshot.certificates.push(DeviceCertificate {
            certificate_arn: format!("{TEST_ARN_PREFIX}:cert/{}", certificate.certificate_id),
            status: certificate_status(&certificate.status)?,
            certificate_id: certificate.certificate_id,
            ca_certificate_id: certificate.ca_certificate_id,
        });
    }
    for (policy, documents) in state.policies {
        let mut versions = Vec::new();
        for document in &documents {
            crate::plugins::add_version(&mut versions, document, true);
        }
        snapshot.policies.insert(policy, versions);
    }
    Ok(snapshot)
}

fn certificate_status(name: &str) -> anyhow::Result<CertificateStatus> {
    crate::plugins::parse_certificate_status(name).with_context(|| {
        format!(
            "certificate status `{name}` is not one of ACTIVE, INACTIVE, REVOKED, \
             PENDING_TRANSFER, REGISTER_INACTIVE, PENDING_ACTIVATION"
        )
    })
}

fn write_test_report(
    out: &mut dyn Write,
    info: &PluginInfo,
    context: &ExecutionContext,
    outcome: &ApplyOutcome,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "plugin:   {} {} (plugin API {})",
        info.name, info.version, info.api_version
    )?;
    writeln!(
        out,
        "action:   {} ({})",
        context.action_name,
        action_type_name(context.action_type)
    )?;
    writeln!(
        out,
        "thing:    {} (violation {})",
        context.thing_name, context.violation_id
    )?;
    let status = match &outcome.failure {
        None => "SUCCESSFUL".to_string(),
        Some(failure) => format!("FAILED {}: {}", failure.code, failure.message),
    };
    writeln!(out, "result:   {status}")?;
    writeln!(out, "fuel:     {}", outcome.fuel_consumed)?;
    if outcome.performed.is_empty() {
        writeln!(out, "would perform: nothing")?;
        return Ok(());
    }
    writeln!(out, "would perform:")?;
    for (index, operation) in outcome.performed.iter().enumerate() {
        writeln!(out, "  {}. {}", index + 1, operation.summary())?;
        if let Some(detail) = operation_detail(operation) {
            for line in detail.lines() {
                writeln!(out, "     {line}")?;
            }
        }
    }
    Ok(())
}

/// The payload of an operation that carries one, on one line.
fn operation_detail(operation: &StagedOperation) -> Option<String> {
    match operation {
        StagedOperation::CreatePolicyVersion {
            document,
            set_as_default,
            ..
        } => Some(format!("document {document}, default {set_as_default}")),
        StagedOperation::Publish {
            subject, message, ..
        } => Some(format!(
            "subject {:?}, message {message}",
            subject.as_deref().unwrap_or("")
        )),
        StagedOperation::HttpPost {
            content_type, body, ..
        } => Some(format!("{content_type}: {}", String::from_utf8_lossy(body))),
        _ => None,
    }
}
