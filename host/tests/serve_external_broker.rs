//! `vigil serve --mqtt-broker`: Vigil attached to a real Mosquitto broker (Debian's `mosquitto`
//! package), with `rumqttc` devices publishing reports to Mosquitto. Checks the replies on
//! `/accepted` and `/rejected`, the stored values, a report kept by Mosquitto while Vigil is
//! stopped, a new subscription after the broker restarts, lifecycle events counted as
//! cloud-side metrics, and a wrong broker password.
//!
//! Each test starts its own Mosquitto on a free loopback port, with a password file and an ACL
//! that lets each device use only `$aws/things/{its client id}/#`.

mod common;

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::device::Device;
use common::{Server, TestFolder, metric_values, retain, serve_command, test_folder, wait_for_sum};
use rumqttc::MqttOptions;

/// The broker from Debian's `mosquitto` package.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Its password file tool, from the same package.
const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// Vigil's user name and password on the test broker.
const VIGIL_USER: &str = "vigil";
const VIGIL_PASSWORD: &str = "vigil-broker-secret";

/// A user that publishes lifecycle events, as a bridge from another broker would.
const BRIDGE_USER: &str = "bridge";

/// Lets Vigil read every report and lifecycle event and publish replies, the bridge publish
/// lifecycle events, and each device use its own thing's topics.
const ACL: &str = "\
user vigil
topic read $aws/things/+/defender/metrics/json
topic read $aws/things/+/defender/metrics/cbor
topic write $aws/things/+/defender/metrics/json/accepted
topic write $aws/things/+/defender/metrics/json/rejected
topic write $aws/things/+/defender/metrics/cbor/accepted
topic write $aws/things/+/defender/metrics/cbor/rejected
topic read $aws/events/presence/connected/+
topic read $aws/events/presence/disconnected/+

user bridge
topic write $aws/events/presence/#

pattern readwrite $aws/things/%u/#
";

/// A Mosquitto broker on a free loopback port, killed when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto with its files in `dir`: Vigil, the bridge and `things` as users (the
    /// password of a thing is `pw-{thing}`), and [`ACL`].
    fn start(dir: &Path, things: &[&str]) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).is_file() && Path::new(MOSQUITTO_PASSWD).is_file(),
            "Mosquitto is not installed: `{MOSQUITTO}` or `{MOSQUITTO_PASSWD}` is missing. Install \
             Debian's `mosquitto` package (`apt-get install mosquitto`); `cargo xtask test` \
             installs it when missing"
        );
        let passwords = dir.join("mosquitto-passwords");
        let mut users = vec![
            (VIGIL_USER.to_owned(), VIGIL_PASSWORD.to_owned()),
            (BRIDGE_USER.to_owned(), format!("pw-{BRIDGE_USER}")),
        ];
        users.extend(things.iter().map(|t| (t.to_string(), format!("pw-{t}"))));
        for (index, (user, password)) in users.iter().enumerate() {
            let mut command = Command::new(MOSQUITTO_PASSWD);
            if index == 0 {
                command.arg("-c");
            }
            let status = command
                .arg("-b")
                .arg(&passwords)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd runs");
            assert!(status.success(), "mosquitto_passwd failed for {user}");
        }
        let acl_path = dir.join("mosquitto-acl");
        std::fs::write(&acl_path, ACL).unwrap();
        // Mosquitto started as root reads these files as the `mosquitto` user.
        make_readable(&passwords);
        make_readable(&acl_path);

        let port = free_port();
        let config = dir.join("mosquitto.conf");
        let settings = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             persistence false\nlog_dest stderr\nlog_type all\n",
            passwords.display(),
            acl_path.display()
        );
        std::fs::write(&config, settings).unwrap();
        make_readable(&config);
        let log = dir.join("mosquitto.log");
        let child = spawn_mosquitto(&config, &log);
        let mut broker = Mosquitto {
            child,
            port,
            config,
            log,
        };
        broker.wait_until_listening();
        broker
    }

    /// Kills Mosquitto, which loses every session because persistence is off, and starts it
    /// again on the same port with a fresh log.
    fn restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn_mosquitto(&self.config, &self.log);
        self.wait_until_listening();
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mosquitto exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto is not listening after 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the `--mqtt-broker` URL.
    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Reads what Mosquitto logged so far, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn spawn_mosquitto(config: &Path, log: &Path) -> Child {
    Command::new(MOSQUITTO)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("mosquitto starts")
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Returns a loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test folder, a Mosquitto for `things` and the file holding Vigil's broker password;
/// returns (folder, API credentials, broker, Vigil's arguments).
fn attached_setup(name: &str, things: &[&str]) -> (TestFolder, PathBuf, Mosquitto, Vec<String>) {
    let (dir, credentials) = test_folder(name);
    let broker = Mosquitto::start(&dir, things);
    let password_file = dir.join("broker-password");
    std::fs::write(&password_file, format!("{VIGIL_PASSWORD}\n")).unwrap();
    let args = vec![
        "--mqtt-broker".to_owned(),
        broker.url(),
        "--mqtt-broker-username".to_owned(),
        VIGIL_USER.to_owned(),
        "--mqtt-broker-password-file".to_owned(),
        password_file.display().to_string(),
    ];
    (dir, credentials, broker, args)
}

fn start_vigil(dir: &Path, credentials: &Path, args: &[String], extra: &[&str]) -> Server {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(extra);
    Server::start(dir, credentials, &all)
}

/// Connects `client_id` to Mosquitto with the user name and password `user`, `pw-{user}`.
async fn connect(broker: &Mosquitto, client_id: &str, user: &str) -> Device {
    let options = MqttOptions::new(client_id, "127.0.0.1", broker.port);
    Device::start(options, user, &format!("pw-{user}"))
        .connected()
        .await
}

fn report(report_id: u64, bytes_out: u64) -> String {
    format!(
        r#"{{"header":{{"report_id":{report_id},"version":"1.0"}},"metrics":{{"network_stats":
        {{"bytes_in":10,"bytes_out":{bytes_out},"packets_in":1,"packets_out":2}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_is_accepted_and_stored() {
    let (dir, credentials, broker, args) = attached_setup("external-accepted", &["pump-1"]);
    let vigil = start_vigil(&dir, &credentials, &args, &[]);
    assert_eq!(
        vigil.banner.last().unwrap(),
        &format!(
            "vigil serve: mqtt attached to {} as client id vigil",
            broker.url()
        )
    );
    retain(&mut vigil.client(), &["aws:all-bytes-out"]);

    let mut device = connect(&broker, "pump-1", "pump-1").await;
    let codes = device
        .subscribe("$aws/things/pump-1/defender/metrics/json/+")
        .await;
    assert_eq!(codes, ["Success(AtLeastOnce)"]);
    device
        .publish(
            "$aws/things/pump-1/defender/metrics/json",
            report(1_700_000_001, 4321),
        )
        .await;
    let (topic, payload) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-1/defender/metrics/json/accepted");
    let reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(reply["thingName"], "pump-1");
    assert_eq!(reply["reportId"], 1_700_000_001u64);
    assert_eq!(reply["status"], "ACCEPTED");

    // Accepted means committed: the value is there after SIGKILL and a restart.
    vigil.kill();
    let vigil = start_vigil(&dir, &credentials, &args, &[]);
    let values = metric_values(&mut vigil.client(), "pump-1", "aws:all-bytes-out");
    assert_eq!(values, [4321], "mosquitto log:\n{}", broker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_report_within_300_s_is_throttled() {
    let (dir, credentials, broker, args) = attached_setup("external-throttled", &["pump-2"]);
    let _vigil = start_vigil(&dir, &credentials, &args, &[]);
    let mut device = connect(&broker, "pump-2", "pump-2").await;
    device
        .subscribe("$aws/things/pump-2/defender/metrics/json/+")
        .await;
    for report_id in [1, 2] {
        device
            .publish(
                "$aws/things/pump-2/defender/metrics/json",
                report(report_id, 10),
            )
            .await;
    }
    let (first, _) = device.message().await;
    assert_eq!(first, "$aws/things/pump-2/defender/metrics/json/accepted");
    let (second, payload) = device.message().await;
    assert_eq!(second, "$aws/things/pump-2/defender/metrics/json/rejected");
    let reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(reply["status"], "REJECTED");
    assert_eq!(reply["statusDetails"]["ErrorCode"], "Throttled");
    assert_eq!(reply["reportId"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cbor_report_gets_a_cbor_rejection() {
    let (dir, credentials, broker, args) = attached_setup("external-cbor", &["pump-3"]);
    let _vigil = start_vigil(&dir, &credentials, &args, &[]);
    let mut device = connect(&broker, "pump-3", "pump-3").await;
    device
        .subscribe("$aws/things/pump-3/defender/metrics/cbor/+")
        .await;
    let mut document = Vec::new();
    ciborium::into_writer(&serde_json::json!({"hed": {"v": "1.0"}}), &mut document).unwrap();
    device
        .publish("$aws/things/pump-3/defender/metrics/cbor", document)
        .await;
    let (topic, payload) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-3/defender/metrics/cbor/rejected");
    let reply: serde_json::Value = ciborium::from_reader(&payload[..]).unwrap();
    assert_eq!(reply["thingName"], "pump-3");
    assert_eq!(reply["status"], "REJECTED");
    assert_eq!(reply["statusDetails"]["ErrorCode"], "InvalidPayload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_sent_while_vigil_is_down_is_accepted() {
    let (dir, credentials, broker, args) = attached_setup("external-restart", &["pump-4"]);
    let vigil = start_vigil(&dir, &credentials, &args, &[]);
    retain(&mut vigil.client(), &["aws:all-bytes-out"]);
    let mut device = connect(&broker, "pump-4", "pump-4").await;
    device
        .subscribe("$aws/things/pump-4/defender/metrics/json/+")
        .await;

    // Mosquitto keeps the report for Vigil's persistent session while Vigil is down.
    vigil.kill();
    device
        .publish("$aws/things/pump-4/defender/metrics/json", report(7, 2024))
        .await;
    let vigil = start_vigil(&dir, &credentials, &args, &[]);

    let (topic, payload) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-4/defender/metrics/json/accepted");
    let reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(reply["reportId"], 7);
    let values = metric_values(&mut vigil.client(), "pump-4", "aws:all-bytes-out");
    assert_eq!(values, [2024]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_subscribes_again_after_the_broker_restarts() {
    let (dir, credentials, mut broker, args) = attached_setup("external-reconnect", &["pump-5"]);
    let _vigil = start_vigil(&dir, &credentials, &args, &[]);

    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !broker.log().contains("Received SUBSCRIBE from vigil") {
        assert!(
            Instant::now() < deadline,
            "vigil did not subscribe again within 30 s:\n{}",
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut device = connect(&broker, "pump-5", "pump-5").await;
    device
        .subscribe("$aws/things/pump-5/defender/metrics/json/+")
        .await;
    device
        .publish("$aws/things/pump-5/defender/metrics/json", report(5, 10))
        .await;
    let (topic, _) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-5/defender/metrics/json/accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_count_as_connection_attempts_and_disconnects() {
    let (dir, credentials, broker, args) = attached_setup("external-lifecycle", &[]);
    let vigil = start_vigil(&dir, &credentials, &args, &["--time-scale", "1000"]);
    let mut client = vigil.client();
    retain(
        &mut client,
        &["aws:num-connection-attempts", "aws:num-disconnects"],
    );

    let mut bridge = connect(&broker, "bridge-1", BRIDGE_USER).await;
    // A document whose event type does not match its topic is not counted.
    bridge
        .publish(
            "$aws/events/presence/connected/door-7",
            r#"{"clientId":"door-7","eventType":"disconnected"}"#,
        )
        .await;
    let events = [
        (
            "connected",
            r#""eventType":"connected","ipAddress":"192.0.2.0""#,
        ),
        (
            "connected",
            r#""eventType":"connected","ipAddress":"192.0.2.0""#,
        ),
        (
            "disconnected",
            r#""eventType":"disconnected","clientInitiatedDisconnect":true"#,
        ),
    ];
    for (topic_kind, fields) in events {
        let body = format!(
            r#"{{"clientId":"door-7","timestamp":1573002230757,{fields},"versionNumber":0}}"#
        );
        bridge
            .publish(&format!("$aws/events/presence/{topic_kind}/door-7"), body)
            .await;
    }

    // Vigil reads the events in order, so once the last one is counted, all are.
    let disconnects = wait_for_sum(&mut client, "door-7", "aws:num-disconnects", 1);
    assert_eq!(disconnects, 1, "mosquitto log:\n{}", broker.log());
    let attempts = wait_for_sum(&mut client, "door-7", "aws:num-connection-attempts", 2);
    assert_eq!(attempts, 2);
}

#[test]
fn wrong_broker_password_stops_start_up() {
    let (dir, credentials, broker, mut args) = attached_setup("external-wrong-password", &[]);
    let wrong = dir.join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    *args.last_mut().unwrap() = wrong.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let output = run_to_exit(serve_command(&dir, &credentials, &args));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("failed to attach to the MQTT broker at {}", broker.url());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("the broker refused the connection"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "banner printed: {output:?}");
}

/// Runs `command` with its output captured; fails the test if it runs for more than 30 s.
fn run_to_exit(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!("still running after 30 s: {output:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
