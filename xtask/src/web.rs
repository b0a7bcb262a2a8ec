//! The browser demo: building it with wasm-bindgen and npm into `target/web-demo/`, and testing
//! it in headless Chromium against `vigil serve`.
//!
//! Every tool comes from a package registry: the wasm-bindgen CLI from crates.io, uPlot and
//! playwright-core from npm (pinned by `web-demo/package-lock.json`), and Chromium from Debian.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::{
    CHROMIUM, WASM_BINDGEN_VERSION, Workspace, collect, guest_build_args, heading, run, setup,
};

/// Files of the page, copied from `web-demo/www/` as they are.
const PAGE_FILES: [&str; 6] = [
    "index.html",
    "style.css",
    "main.js",
    "worker.js",
    "bench.html",
    "bench.js",
];

/// Files of uPlot's npm package that the page loads, with their names under `vendor/`.
const UPLOT_FILES: [(&str, &str); 3] = [
    ("dist/uPlot.esm.js", "uPlot.esm.js"),
    ("dist/uPlot.min.css", "uPlot.min.css"),
    ("LICENSE", "uPlot.LICENSE"),
];

/// Builds the web module, runs wasm-bindgen on it, vendors uPlot and assembles the demo folder.
pub fn build_web(workspace: &Workspace) -> anyhow::Result<()> {
    setup()?;
    heading("build the web module for wasm32-unknown-unknown");
    let target = "wasm32-unknown-unknown";
    run(&mut workspace.cargo(&guest_build_args(target, &["vigil-web"])))?;
    let module = workspace.guest_out(target).join("vigil_web.wasm");

    // Start from an empty folder, so files removed from the page do not linger.
    let out = workspace.web_demo_dir();
    reset_dir(&out)?;

    heading("generate the JavaScript bindings with wasm-bindgen --target web");
    let wasm_bindgen = wasm_bindgen_cli(workspace)?;
    let mut bindgen = Command::new(wasm_bindgen);
    bindgen
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(out.join("pkg"))
        .arg(&module);
    run(&mut bindgen)?;

    heading("install uPlot and playwright-core with npm ci");
    let web = workspace.root.join("web-demo");
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&web);
    run(&mut npm).context("failed to install the npm packages; the demo needs Node.js and npm")?;

    heading("assemble the demo in target/web-demo");
    for file in PAGE_FILES {
        collect(&web.join("www").join(file), &out.join(file))?;
    }
    for (from, to) in UPLOT_FILES {
        collect(
            &web.join("node_modules/uplot").join(from),
            &out.join("vendor").join(to),
        )?;
    }
    for file in ["vigil_web.js", "vigil_web_bg.wasm"] {
        print_size(&out.join("pkg").join(file))?;
    }
    Ok(())
}

/// Copies the built demo folder to `to`, replacing what was there.
pub fn replace_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    reset_dir(to)?;
    copy_tree(from, to)
}

/// Tests the demo in headless Chromium, then runs the in-browser benchmark and `vigil bench`
/// and prints both `BENCH` lines.
pub fn test_in_browser(workspace: &Workspace) -> anyhow::Result<()> {
    ensure_chromium()?;
    let server = DemoServer::start(workspace)?;
    let output_dir = workspace.target.join("web-demo-test");
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("failed to create `{}`", output_dir.display()))?;

    heading("run the browser test (web-demo/tests/demo.test.mjs)");
    let mut test = node(workspace, &server.url);
    test.args(["--test", "web-demo/tests/demo.test.mjs"])
        .env("VIGIL_TEST_OUTPUT", &output_dir);
    run(&mut test)?;

    heading("run the benchmark page (web-demo/tests/bench.mjs)");
    let mut bench = node(workspace, &server.url);
    bench.arg("web-demo/tests/bench.mjs");
    let browser = bench_line(&mut bench, "BENCH browser_dps=")?;
    drop(server);

    heading("run the native benchmark (vigil bench)");
    let mut native = Command::new(workspace.target.join("release/vigil"));
    native.arg("bench").current_dir(&workspace.root);
    let native = bench_lines(&mut native, &["BENCH native_dps=", "BENCH-DETECTOR "])?;

    heading("benchmark figures");
    println!("{}\n{browser}", native.join("\n"));
    Ok(())
}

/// Returns the wasm-bindgen CLI of the exact version: from `PATH`, else from `target/tools`,
/// else installed there from crates.io.
fn wasm_bindgen_cli(workspace: &Workspace) -> anyhow::Result<PathBuf> {
    let local_root = workspace.target.join("tools");
    let local = local_root.join("bin/wasm-bindgen");
    for candidate in [PathBuf::from("wasm-bindgen"), local.clone()] {
        if cli_version(&candidate).is_some_and(|v| v == WASM_BINDGEN_VERSION) {
            return Ok(candidate);
        }
    }

    heading(&format!(
        "install wasm-bindgen-cli {WASM_BINDGEN_VERSION} into target/tools"
    ));
    // No `--locked`: the lock file of this release pins a webpki-roots version that is no
    // longer on crates.io.
    let mut install = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    install
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ])
        .arg("--root")
        .arg(&local_root);
    run(&mut install)?;
    Ok(local)
}

/// The version a `wasm-bindgen --version` prints, or `None` if it does not run.
fn cli_version(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_string)
}

/// Installs Debian's chromium package when the browser is missing.
fn ensure_chromium() -> anyhow::Result<()> {
    if Path::new(CHROMIUM).is_file() {
        return Ok(());
    }
    heading("install Chromium from Debian (apt-get install chromium)");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update"]))?;
    run(&mut apt(&["install", "-y", "chromium"]))
        .context("failed to install chromium; install Debian's `chromium` package as root")
}

/// `node` in the workspace root, pointed at the demo server and the browser.
fn node(workspace: &Workspace, url: &str) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(&workspace.root)
        .env("VIGIL_DEMO_URL", url)
        .env("CHROMIUM_PATH", CHROMIUM);
    command
}

/// Runs `command`, echoes its output, and returns the last line starting with `prefix`.
fn bench_line(command: &mut Command, prefix: &str) -> anyhow::Result<String> {
    let mut lines = bench_lines(command, &[prefix])?;
    Ok(lines.remove(0))
}

/// Runs `command`, echoes its output, and returns the last line starting with each prefix, in
/// the order of `prefixes`.
fn bench_lines(command: &mut Command, prefixes: &[&str]) -> anyhow::Result<Vec<String>> {
    let command_line = crate::command_line_of(command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("failed to start `{command_line}`"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        bail!("failed to run `{command_line}`: {}", output.status);
    }
    prefixes
        .iter()
        .map(|prefix| {
            stdout
                .lines()
                .rev()
                .find(|line| line.starts_with(prefix))
                .map(str::to_string)
                .with_context(|| {
                    format!("`{command_line}` printed no line starting with `{prefix}`")
                })
        })
        .collect()
}

/// `vigil serve` on a free loopback port, stopped when dropped.
struct DemoServer {
    child: Child,
    url: String,
}

impl DemoServer {
    fn start(workspace: &Workspace) -> anyhow::Result<Self> {
        let vigil = workspace.target.join("release/vigil");
        let mut child = Command::new(&vigil)
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--demo-dir"])
            .arg(workspace.web_demo_dir())
            .arg("--data")
            .arg(fresh_dir(&workspace.target.join("browser-test-data"))?)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start `{} serve`", vigil.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("failed to read `vigil serve` output")?;

        // The first line names the address, because the port is chosen by the system.
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("failed to read the address `vigil serve` listens on")?;
        // The first line names the server's root; the demo lives under /demo/.
        let url = format!(
            "{}demo/",
            line.trim().rsplit(' ').next().unwrap_or_default()
        );
        let server = Self { child, url };
        if !server.url.starts_with("http://127.0.0.1:") {
            bail!("`vigil serve` did not print its address; it printed {line:?}");
        }
        println!("vigil serve is listening on {}", server.url);
        Ok(server)
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("failed to remove `{}`", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(from).with_context(|| format!("failed to read `{}`", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read `{}`", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("failed to create `{}`", target.display()))?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "failed to copy `{}` to `{}`",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

fn print_size(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?
        .len();
    println!("{:>10.1} KiB  {}", bytes as f64 / 1024.0, path.display());
    Ok(())
}

/// Empties `dir` (creating it if needed) and returns it.
fn fresh_dir(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("failed to empty `{}`", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    Ok(dir.to_path_buf())
}
