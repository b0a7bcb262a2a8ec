//! The MQTT client tests: paho-mqtt, Debian's mosquitto clients and the collector of AWS's
//! reference device agent against `vigil serve`, from `tests/mqtt/`.
//!
//! The mosquitto clients come from Debian's `mosquitto-clients` package, installed when
//! missing. paho-mqtt and the agent come from PyPI into their own virtual environment in
//! `target/venv-mqtt`, at the versions pinned by `tests/mqtt/requirements.txt`. A stamp file in the environment records
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

/// Runs the MQTT client tests against the release `vigil`.
pub fn test_mqtt_clients(workspace: &Workspace) -> anyhow::Result<()> {
    ensure_mosquitto_clients()?;
    crate::python::run_suite(workspace, "venv-mqtt", REQUIREMENTS, RUNNER)
}

/// Installs Debian's mosquitto-clients package when its clients are missing.
fn ensure_mosquitto_clients() -> anyhow::Result<()> {
    if Path::new(MOSQUITTO_RR).is_file() {
        return Ok(());
    }
    heading("install the mosquitto clients from Debian (apt-get install mosquitto-clients)");
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run(&mut apt(&["update"]))?;
    run(&mut apt(&["install", "-y", "mosquitto-clients"])).context(
        "failed to install mosquitto-clients; install Debian's `mosquitto-clients` package as root",
    )
}
