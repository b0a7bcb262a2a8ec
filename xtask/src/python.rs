//! The AWS client tests: the real AWS CLI and boto3 against `vigil serve`, from `tests/aws/`.
//!
//! The clients come from PyPI into a virtual environment in `target/venv`, at the exact versions
//! pinned by `tests/aws/requirements.txt`. A stamp file in the environment records the
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
    let python = ensure_venv(workspace)?;

    heading(&format!("run the AWS CLI and boto3 tests ({RUNNER})"));
    let mut runner = Command::new(python);
    runner
        .arg(RUNNER)
        .current_dir(&workspace.root)
        .env("VIGIL_BIN", workspace.target.join("release/vigil"));
    run(&mut runner)
}

/// Returns the Python of `target/venv`, after creating the environment and installing the
/// pinned requirements unless the stamp shows they are installed already.
fn ensure_venv(workspace: &Workspace) -> anyhow::Result<PathBuf> {
    let venv = workspace.target.join("venv");
    let python = venv.join("bin/python");
    let stamp = venv.join(STAMP);
    let requirements_path = workspace.root.join(REQUIREMENTS);
    let requirements = fs::read_to_string(&requirements_path)
        .with_context(|| format!("failed to read `{}`", requirements_path.display()))?;

    let installed = fs::read_to_string(&stamp).ok();
    if python.is_file() && installed.as_deref() == Some(requirements.as_str()) {
        println!("reusing {} (requirements unchanged)", venv.display());
        return Ok(python);
    }

    heading(&format!(
        "create target/venv and install {REQUIREMENTS} from PyPI"
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
        format!("failed to install `{REQUIREMENTS}` with pip; it needs access to PyPI")
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
