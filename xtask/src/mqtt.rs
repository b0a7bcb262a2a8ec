//! The MQTT client tests: paho-mqtt, Debian's mosquitto clients and the collector of AWS's
//! reference device agent against `vigil serve`, from `tests/mqtt/`, and the Mosquitto broker
//! that `host/tests/serve_external_broker.rs` attaches `vigil serve` to.
//!
//! The mosquitto clients come from Debian's `mosquitto-clients` package and the broker from its
//! `mosquitto` package, each installed when missing. paho-mqtt and the agent come from PyPI into
//! their own virtual environment in `target/venv-mqtt`, at the versions pinned by
//! `tests/mqtt/requirements.txt`. A stamp file in the environment records
//! the requirements it was built from, so it is reused until that file changes.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::{Workspace, heading, run};

/// Pinned clients, relative to the workspace root.
const REQUIREMENTS: &str = "tests/mqtt/requirements.txt";

/// The test script, relative to the workspace root.
const RUNNER: &str = "tests/mqtt/run.py";

/// One of the mosquitto clients, to tell whether the package is installed.
const MOSQUITTO_RR: &str = "/usr/bin/mosquitto_rr";

/// The broker, to tell whether the `mosquitto` package is installed.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Runs the MQTT client tests against the release `vigil`.
pub fn test_mqtt_clients(workspace: &Workspace) -> anyhow::Result<()> {
    ensure_debian_package("mosquitto-clients", MOSQUITTO_RR)?;
    crate::python::run_suite(workspace, "venv-mqtt", REQUIREMENTS, RUNNER)
}

/// Installs Debian's Mosquitto broker when it is missing, for the host tests.
pub fn ensure_mosquitto_broker() -> anyhow::Result<()> {
    ensure_debian_package("mosquitto", MOSQUITTO)
}

/// Installs a Debian package with apt-get when `installed_file`, one of its files, is missing.
fn ensure_debian_package(package: &str, installed_file: &str) -> anyhow::Result<()> {
    if Path::new(installed_file).is_file() {
        return Ok(());
    }
    heading(&format!(
        "install {package} from Debian (apt-get install {package})"
    ));
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update"]))?;
    run(&mut apt(&["install", "-y", package])).with_context(|| {
        format!("failed to install {package}; install Debian's `{package}` package as root")
    })
}
