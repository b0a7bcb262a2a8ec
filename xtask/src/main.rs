//! `cargo xtask`: build and test automation for Vigil, written in Rust so it runs wherever cargo
//! does. Run `cargo xtask --help` for the commands.
//!
//! The guest crates (the core component, the plugins and the test fixtures) only build for wasm
//! targets, so plain `cargo build` skips them. `cargo xtask build-wasm` builds them and collects
//! the artifacts in `target/wasm/`, where the host and its tests look for them.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod mqtt;
mod python;
mod web;

use web::{build_web, replace_dir};

/// WebAssembly targets the workspace builds for.
const WASM_TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip2"];

/// Cargo profile for guest builds, optimized for size.
const WASM_PROFILE: &str = "wasm-release";

/// Plugin, example and fixture crates with the place of their component under `target/wasm/`,
/// built before the core so that a broken core does not block them. Only `plugins/` is loaded
/// with bundled grants, so examples go to `examples/`, which nothing loads by default.
const PLUGIN_PACKAGES: [(&str, &str); 12] = [
    (
        "vigil-plugin-add-things-to-thing-group",
        "plugins/add-things-to-thing-group.wasm",
    ),
    (
        "vigil-plugin-update-device-certificate",
        "plugins/update-device-certificate.wasm",
    ),
    (
        "vigil-plugin-update-ca-certificate",
        "plugins/update-ca-certificate.wasm",
    ),
    (
        "vigil-plugin-replace-default-policy-version",
        "plugins/replace-default-policy-version.wasm",
    ),
    (
        "vigil-plugin-enable-iot-logging",
        "plugins/enable-iot-logging.wasm",
    ),
    (
        "vigil-plugin-publish-finding-to-sns",
        "plugins/publish-finding-to-sns.wasm",
    ),
    (
        "vigil-example-webhook-notifier",
        "examples/webhook-notifier.wasm",
    ),
    ("vigil-example-rate-limiter", "examples/rate-limiter.wasm"),
    ("vigil-plugin-template", "examples/template.wasm"),
    (
        "vigil-fixture-hostile-plugin",
        "fixtures/hostile-plugin.wasm",
    ),
    ("vigil-fixture-legacy-plugin", "fixtures/legacy-plugin.wasm"),
    ("vigil-fixture-state-plugin", "fixtures/state-plugin.wasm"),
];

/// The bindings and helpers the bundled plugins share.
const PLUGIN_SDK_PACKAGE: &str = "vigil-plugin-sdk";

/// The core engine as a component.
const CORE_COMPONENT_PACKAGE: &str = "vigil-core-component";

/// Crates that must build for `wasm32-unknown-unknown`, which proves the core is portable.
const BROWSER_PACKAGES: [&str; 2] = ["vigil-web", "vigil-core"];

/// The wasm-bindgen CLI must be exactly the version of the `wasm-bindgen` crate in Cargo.lock.
const WASM_BINDGEN_VERSION: &str = "0.2.130";

/// Debian's Chromium, which the browser test drives through playwright-core.
const CHROMIUM: &str = "/usr/bin/chromium";

#[derive(Parser)]
#[command(
    bin_name = "cargo xtask",
    about = "Build and test automation for Vigil"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Installs the wasm32-unknown-unknown and wasm32-wasip2 targets with rustup if missing.
    Setup,
    /// Builds the core component, plugins, test fixtures and web module into `target/wasm/`.
    BuildWasm,
    /// Builds the browser demo into `target/web-demo/`: the web module through wasm-bindgen,
    /// the page, and uPlot from npm.
    BuildWeb,
    /// Runs build-wasm, builds the release `vigil` host and the browser demo, and copies the
    /// core component, plugins and demo next to the host in `target/release/`.
    Build,
    /// Runs build, then `target/release/vigil demo` with the given arguments.
    Demo {
        /// Arguments passed to `vigil demo` unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Runs build, then rustfmt, clippy for the host and guest crates, the tests, the browser
    /// demo test and benchmark in headless Chromium, and the AWS CLI and boto3 tests.
    Test,
    /// Runs build, then only the browser demo test and benchmark in headless Chromium.
    TestWeb,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let workspace = Workspace::locate()?;
    match cli.command {
        Task::Setup => setup(),
        Task::BuildWasm => build_wasm(&workspace),
        Task::BuildWeb => build_web(&workspace),
        Task::Build => build(&workspace),
        Task::Demo { args } => demo(&workspace, &args),
        Task::Test => test(&workspace),
        Task::TestWeb => {
            build(&workspace)?;
            browser_step(&workspace)
        }
    }
}

/// Paths of the workspace this xtask belongs to.
struct Workspace {
    root: PathBuf,
    target: PathBuf,
}

impl Workspace {
    fn locate() -> anyhow::Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .context("failed to find the workspace root above the xtask crate")?
            .to_path_buf();
        let target = root.join("target");
        Ok(Self { root, target })
    }

    /// Directory where build-wasm collects the WebAssembly artifacts.
    fn wasm_dir(&self) -> PathBuf {
        self.target.join("wasm")
    }

    /// Directory where build-web assembles the browser demo.
    fn web_demo_dir(&self) -> PathBuf {
        self.target.join("web-demo")
    }

    /// Directory of a guest build's outputs.
    fn guest_out(&self, wasm_target: &str) -> PathBuf {
        self.target.join(wasm_target).join(WASM_PROFILE)
    }

    /// Returns `cargo` with `args`, run from the workspace root.
    fn cargo(&self, args: &[&str]) -> Command {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(args).current_dir(&self.root);
        command
    }
}

fn setup() -> anyhow::Result<()> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("failed to run `rustup target list --installed`; install rustup first")?;
    if !output.status.success() {
        bail!(
            "failed to list installed targets: `rustup` exited with {}",
            output.status
        );
    }

    let installed = String::from_utf8_lossy(&output.stdout);
    let missing: Vec<&str> = WASM_TARGETS
        .into_iter()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if missing.is_empty() {
        println!(
            "wasm targets already installed: {}",
            WASM_TARGETS.join(", ")
        );
        return Ok(());
    }

    let mut add = Command::new("rustup");
    add.args(["target", "add"]).args(&missing);
    run(&mut add)
}

fn build_wasm(workspace: &Workspace) -> anyhow::Result<()> {
    setup()?;
    let wasip2_out = workspace.guest_out("wasm32-wasip2");
    let wasm_dir = workspace.wasm_dir();

    heading("build plugins and test fixtures for wasm32-wasip2");
    let packages: Vec<&str> = PLUGIN_PACKAGES
        .iter()
        .map(|(package, _)| *package)
        .collect();
    run(&mut workspace.cargo(&guest_build_args("wasm32-wasip2", &packages)))?;
    for (package, destination) in PLUGIN_PACKAGES {
        let artifact = format!("{}.wasm", package.replace('-', "_"));
        collect(&wasip2_out.join(artifact), &wasm_dir.join(destination))?;
    }

    heading("build the core component for wasm32-wasip2");
    run(&mut workspace.cargo(&guest_build_args(
        "wasm32-wasip2",
        &[CORE_COMPONENT_PACKAGE],
    )))
    .with_context(|| format!("failed to build the core component `{CORE_COMPONENT_PACKAGE}`"))?;
    collect(
        &wasip2_out.join("vigil_core_component.wasm"),
        &wasm_dir.join("vigil-core.wasm"),
    )?;

    heading("build the core and the web module for wasm32-unknown-unknown");
    run(&mut workspace.cargo(&guest_build_args(
        "wasm32-unknown-unknown",
        &BROWSER_PACKAGES,
    )))
    .context("failed to build the core for wasm32-unknown-unknown")?;
    collect(
        &workspace
            .guest_out("wasm32-unknown-unknown")
            .join("vigil_web.wasm"),
        &wasm_dir.join("vigil_web.wasm"),
    )
}

fn build(workspace: &Workspace) -> anyhow::Result<()> {
    build_wasm(workspace)?;

    heading("build the vigil host");
    run(&mut workspace.cargo(&["build", "--release", "-p", "vigil-host"]))?;

    let release = workspace.target.join("release");
    let wasm_dir = workspace.wasm_dir();
    collect(
        &wasm_dir.join("vigil-core.wasm"),
        &release.join("vigil-core.wasm"),
    )?;
    for plugin in wasm_files_in(&wasm_dir.join("plugins"))? {
        let file_name = plugin.file_name().context("failed to name a plugin file")?;
        collect(&plugin, &release.join("plugins").join(file_name))?;
    }

    build_web(workspace)?;
    let demo = release.join("web-demo");
    replace_dir(&workspace.web_demo_dir(), &demo)?;
    println!("{:>14}  {}", "web demo", demo.display());
    Ok(())
}

fn demo(workspace: &Workspace, args: &[OsString]) -> anyhow::Result<()> {
    build(workspace)?;

    heading("run vigil demo");
    let mut command = Command::new(workspace.target.join("release/vigil"));
    command.arg("demo").args(args).current_dir(&workspace.root);
    run(&mut command)
}

fn test(workspace: &Workspace) -> anyhow::Result<()> {
    step("build", || build(workspace))?;
    step("rustfmt", || {
        run(&mut workspace.cargo(&["fmt", "--all", "--check"]))
    })?;

    // Without `--workspace`, cargo picks the default members, which are the host crates.
    step("clippy (host crates)", || {
        let args = [
            "clippy",
            "--all-targets",
            "--release",
            "--",
            "-D",
            "warnings",
        ];
        run(&mut workspace.cargo(&args))
    })?;
    step("clippy (guest crates, wasm32-wasip2)", || {
        let mut args = vec![
            "clippy",
            "--all-targets",
            "--release",
            "--target",
            "wasm32-wasip2",
        ];
        let plugins = PLUGIN_PACKAGES.iter().map(|(package, _)| *package);
        let shared = [CORE_COMPONENT_PACKAGE, PLUGIN_SDK_PACKAGE];
        for package in shared.into_iter().chain(plugins) {
            args.extend(["-p", package]);
        }
        args.extend(["--", "-D", "warnings"]);
        run(&mut workspace.cargo(&args))
    })?;
    step("tests", || {
        // `host/tests/serve_external_broker.rs` starts a Mosquitto broker.
        mqtt::ensure_mosquitto_broker()?;
        run(&mut workspace.cargo(&["test", "--release"]))
    })?;
    browser_step(workspace)?;
    step("AWS CLI and boto3 against vigil serve", || {
        python::test_aws_clients(workspace)
    })?;
    step("MQTT clients against vigil serve", || {
        mqtt::test_mqtt_clients(workspace)
    })
}

/// Runs the browser demo test and benchmark, for `test` and `test-web`.
fn browser_step(workspace: &Workspace) -> anyhow::Result<()> {
    step(
        "browser demo test and benchmark (headless Chromium)",
        || web::test_in_browser(workspace),
    )
}

/// Runs one step of `test` under a heading, naming the step if it fails.
fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    heading(name);
    body().with_context(|| format!("step `{name}` failed"))
}

fn guest_build_args<'a>(wasm_target: &'a str, packages: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", "--target", wasm_target, "--profile", WASM_PROFILE];
    for package in packages {
        args.extend(["-p", package]);
    }
    args
}

fn heading(title: &str) {
    println!("==> {title}");
}

/// Runs a command with inherited stdio and fails unless it exits successfully.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let command_line = command_line_of(command);
    let status = command
        .status()
        .with_context(|| format!("failed to start `{command_line}`"))?;
    if !status.success() {
        bail!("failed to run `{command_line}`: {status}");
    }
    Ok(())
}

fn command_line_of(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let args = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned());
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Copies a build output to its place and prints the destination with its size.
fn collect(from: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("failed to create directory `{}`", parent.display()))?;
    }
    let bytes = fs::copy(from, to)
        .with_context(|| format!("failed to copy `{}` to `{}`", from.display(), to.display()))?;
    let relative = to
        .strip_prefix(env::current_dir().unwrap_or_default())
        .unwrap_or(to);
    println!(
        "{:>10.1} KiB  {}",
        bytes as f64 / 1024.0,
        relative.display()
    );
    Ok(())
}

fn wasm_files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir)
        .with_context(|| format!("failed to read directory `{}`", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("failed to read directory `{}`", dir.display()))?
            .path();
        if path
            .extension()
            .is_some_and(|extension| extension == "wasm")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
