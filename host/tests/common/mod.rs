//! A `vigil serve` process for integration tests, with a signed client and helpers that store
//! and read metric values through the API.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod device;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use vigil_host::api::Credentials;
use vigil_host::api::client::{ApiClient, encode};

/// Target ARN of every thing, in the default region and account.
pub const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// Access key the test servers accept.
pub const ACCESS_KEY: &str = "AKIDVIGILTEST";
/// Its secret.
pub const SECRET_KEY: &str = "vigil-test-secret";

/// A running `vigil serve`, killed with SIGKILL when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// The banner's lines, from `vigil serve: listening on ...` to the line that names the MQTT
    /// broker.
    pub banner: Vec<String>,
}

impl Server {
    /// Starts `vigil serve` on a free port with the data folder `data` and `extra` arguments,
    /// and reads its banner.
    pub fn start(data: &Path, credentials: &Path, extra: &[&str]) -> Server {
        let mut child = serve_command(data, credentials, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("vigil serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        // The banner ends with the plain MQTT line or the attached broker's line; the TLS
        // listener's line comes before them.
        let ends_banner = |line: &String| {
            line.starts_with("vigil serve: mqtt ")
                && !line.starts_with("vigil serve: mqtt over tls on ")
        };
        while !banner.last().is_some_and(ends_banner) {
            match lines.next() {
                Some(line) => banner.push(line.unwrap()),
                None => panic!("vigil serve exited during its banner: {banner:?}"),
            }
        }
        let address = banner[0]
            .trim()
            .trim_end_matches('/')
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {:?}", banner[0]));
        Server {
            child,
            address,
            banner,
        }
    }

    /// A signed client for this server.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(
            self.address,
            Credentials::new(ACCESS_KEY, SECRET_KEY),
            "us-east-1",
        )
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the command `vigil serve --port 0 --data DATA --credentials CREDENTIALS EXTRA...`.
pub fn serve_command(data: &Path, credentials: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .args(["serve", "--port", "0", "--data"])
        .arg(data)
        .arg("--credentials")
        .arg(credentials)
        .args(extra);
    command
}

/// A test's scratch folder, removed when dropped unless the test is failing, so a failure
/// leaves its server's data behind to inspect.
pub struct TestFolder(PathBuf);

impl std::ops::Deref for TestFolder {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestFolder {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestFolder {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh folder with a credentials file for [`ACCESS_KEY`]; returns (folder, credentials).
pub fn test_folder(name: &str) -> (TestFolder, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let credentials = dir.join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    (TestFolder(dir), credentials)
}

/// Creates the profile `retain`, whose behaviors never alarm but make the server retain
/// `metrics` for every thing.
pub fn retain(client: &mut ApiClient, metrics: &[&str]) {
    let behaviors: Vec<String> = metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            format!(
                r#"{{"name":"retain-{index}","metric":"{metric}","criteria":{{"comparisonOperator":
                "greater-than","value":{{"count":1000000000}},"consecutiveDatapointsToAlarm":1,
                "consecutiveDatapointsToClear":1}}}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"behaviors":[{}]}}"#, behaviors.join(","));
    let created = client
        .send("POST", "/security-profiles/retain", "", &body)
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let attached = client
        .send(
            "PUT",
            "/security-profiles/retain/targets",
            &format!("securityProfileTargetArn={}", encode(ALL_THINGS)),
            "",
        )
        .unwrap();
    assert_eq!(attached.status, 200, "{}", attached.body);
}

/// Reads the stored `count` values of one metric of one thing.
pub fn metric_values(client: &mut ApiClient, thing: &str, metric: &str) -> Vec<i64> {
    let query = format!(
        "thingName={thing}&metricName={}&startTime=0&endTime=4000000000",
        encode(metric)
    );
    let response = client.send("GET", "/metric-values", &query, "").unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().unwrap()["metricDatumList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|datum| datum["value"]["count"].as_i64().unwrap())
        .collect()
}

/// Polls for up to 20 s until the summed values of `metric` reach `expected`; returns the sum
/// seen last.
pub fn wait_for_sum(client: &mut ApiClient, thing: &str, metric: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sum = metric_values(client, thing, metric).iter().sum();
        if sum >= expected || Instant::now() > deadline {
            return sum;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
