//! Python test suites against `vigil serve`: the real AWS CLI and boto3 from `tests/aws/`, and
//! the MQTT clients of `tests/mqtt/` (see `mqtt.rs`).
//!
//! Each suite's clients come from PyPI into its own virtual environment in `target/`, at the
//! exact versions its `requirements.txt` pins. A stamp file in the environment records the
//! requirements it was built from, so it is reused until that file changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::{Workspace, heading, run};

/// Pinned clients, relative to the workspace root.
const REQUIREMENTS: &str = "tests/aws/requirements.txt";

/// The runner of both test scripts, relative to the workspace root.
const RUNNER: &str = "tests/aws/run.py";

/// File in the virtual environment holding the requirements it was installed from.
const STAMP: &str = "vigil-requirements.txt";

/// Runs the guide and boto3 tests against the release `vigil` with the virtual environment's
/// Python, creating the environment first if needed.
pub fn test_aws_clients(workspace: &Workspace) -> anyhow::Result<()> {
    run_suite(workspace, "venv", REQUIREMENTS, RUNNER)
}

/// Runs the Python script `runner` against the release `vigil`, with the Python of
/// `target/VENV_NAME` holding the packages pinned by `requirements`.
pub fn run_suite(
    workspace: &Workspace,
    venv_name: &str,
    requirements: &str,
    runner: &str,
) -> anyhow::Result<()> {
    let python = ensure_venv(workspace, venv_name, requirements)?;

    heading(&format!("run {runner}"));
    let mut command = Command::new(python);
    command
        .arg(runner)
        .current_dir(&workspace.root)
        .env("VIGIL_BIN", workspace.target.join("release/vigil"));
    run(&mut command)
}

/// Returns the Python of `target/VENV_NAME`, after creating the environment and installing the
/// pinned requirements unless the stamp shows they are installed already.
fn ensure_venv(
    workspace: &Workspace,
    venv_name: &str,
    requirements_file: &str,
) -> anyhow::Result<PathBuf> {
    let venv = workspace.target.join(venv_name);
    let python = venv.join("bin/python");
    let stamp = venv.join(STAMP);
    let requirements_path = workspace.root.join(requirements_file);
    let requirements = fs::read_to_string(&requirements_path)
        .with_context(|| format!("failed to read `{}`", requirements_path.display()))?;

    let installed = fs::read_to_string(&stamp).ok();
    if python.is_file() && installed.as_deref() == Some(requirements.as_str()) {
        println!("reusing {} (requirements unchanged)", venv.display());
        return Ok(python);
    }

    heading(&format!(
        "create target/{venv_name} and install {requirements_file} from PyPI"
    ));
    // Start from an empty environment, so packages dropped from the requirements go too.
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .with_context(|| format!("failed to remove `{}`", venv.display()))?;
    }
    create_venv(&venv)?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--requirement",
    ])
    .arg(&requirements_path);
    run(&mut pip).with_context(|| {
        format!("failed to install `{requirements_file}` with pip; it needs access to PyPI")
    })?;

    fs::write(&stamp, &requirements)
        .with_context(|| format!("failed to write `{}`", stamp.display()))?;
    Ok(python)
}

fn create_venv(venv: &Path) -> anyhow::Result<()> {
    let mut command = Command::new("python3");
    command.args(["-m", "venv"]).arg(venv);
    run(&mut command).context(
        "failed to create a Python virtual environment; install Python 3 with its venv module \
         (Debian: `apt-get install python3-venv`)",
    )
}
