//! The MQTT broker of `vigil serve`, driven by the `rumqttc` client over 3.1.1 and 5: reports
//! replied to on `/accepted` and `/rejected` and stored before the reply, rejected credentials and
//! topics counted as authorization failures, TLS with device certificates, and `vigil bench-mqtt`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::device::Device;
use common::{ALL_THINGS, Server, TestFolder, metric_values, retain, test_folder, wait_for_sum};
use rumqttc::mqttbytes::v4;
use rumqttc::{ConnectReturnCode, MqttOptions, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vigil_host::api::client::{ApiClient, encode};

/// A `vigil serve` with its broker, killed when dropped.
struct Broker {
    server: Server,
    mqtt: SocketAddr,
    /// The TLS listener, when the server was started with a certificate.
    mqtt_tls: Option<SocketAddr>,
}

impl Broker {
    fn start(data: &Path, credentials: &Path, extra: &[&str]) -> Broker {
        let server = Server::start(data, credentials, extra);
        let address = |prefix: &str| {
            server
                .banner
                .iter()
                .find_map(|line| line.strip_prefix(prefix))
                .map(|address| address.parse().unwrap())
        };
        let mqtt = address("vigil serve: mqtt on ").expect("an MQTT address in the banner");
        let mqtt_tls = address("vigil serve: mqtt over tls on ");
        Broker {
            server,
            mqtt,
            mqtt_tls,
        }
    }

    fn client(&self) -> ApiClient {
        self.server.client()
    }

    fn kill(self) {
        self.server.kill();
    }
}

/// A data folder whose password file lets `things` in with the password `pw-{thing}`.
fn folder_with_things(name: &str, things: &[&str]) -> (TestFolder, PathBuf) {
    let (dir, credentials) = test_folder(name);
    let lines: String = things.iter().map(|t| format!("{t}:pw-{t}\n")).collect();
    std::fs::write(dir.join("mqtt-passwords"), lines).unwrap();
    (dir, credentials)
}

/// Starts a client for `thing` with `password`, without waiting for CONNACK.
fn device(broker: &Broker, thing: &str, password: &str) -> Device {
    Device::start(
        MqttOptions::new(thing, "127.0.0.1", broker.mqtt.port()),
        thing,
        password,
    )
}

fn report(report_id: u64, bytes_out: u64) -> String {
    format!(
        r#"{{"header":{{"report_id":{report_id},"version":"1.0"}},"metrics":{{"network_stats":
        {{"bytes_in":10,"bytes_out":{bytes_out},"packets_in":1,"packets_out":2}}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_report_is_stored_before_its_reply() {
    let (dir, credentials) = folder_with_things("mqtt-accepted", &["pump-1"]);
    let broker = Broker::start(&dir, &credentials, &[]);
    retain(&mut broker.client(), &["aws:all-bytes-out"]);

    let mut device = device(&broker, "pump-1", "pw-pump-1");
    let codes = device
        .subscribe("$aws/things/pump-1/defender/metrics/json/+")
        .await;
    assert_eq!(codes, ["Success(AtLeastOnce)"]);
    device
        .client
        .publish(
            "$aws/things/pump-1/defender/metrics/json",
            QoS::AtLeastOnce,
            false,
            report(1_700_000_001, 4321),
        )
        .await
        .unwrap();
    let (topic, payload) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-1/defender/metrics/json/accepted");
    let reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(reply["thingName"], "pump-1");
    assert_eq!(reply["reportId"], 1_700_000_001u64);
    assert_eq!(reply["status"], "ACCEPTED");

    // Accepted means committed: the value is there after SIGKILL and a restart.
    broker.kill();
    let broker = Broker::start(&dir, &credentials, &[]);
    let values = metric_values(&mut broker.client(), "pump-1", "aws:all-bytes-out");
    assert_eq!(values, [4321]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_report_within_five_minutes_is_rejected_as_throttled() {
    let (dir, credentials) = folder_with_things("mqtt-throttled", &["pump-2"]);
    let broker = Broker::start(&dir, &credentials, &[]);
    let mut device = device(&broker, "pump-2", "pw-pump-2");
    device
        .subscribe("$aws/things/pump-2/defender/metrics/json/+")
        .await;
    for report_id in [1, 2] {
        device
            .client
            .publish(
                "$aws/things/pump-2/defender/metrics/json",
                QoS::AtLeastOnce,
                false,
                report(report_id, 10),
            )
            .await
            .unwrap();
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
async fn a_malformed_cbor_report_is_rejected_in_cbor() {
    let (dir, credentials) = folder_with_things("mqtt-cbor", &["pump-3"]);
    let broker = Broker::start(&dir, &credentials, &[]);
    let mut device = device(&broker, "pump-3", "pw-pump-3");
    device
        .subscribe("$aws/things/pump-3/defender/metrics/cbor/+")
        .await;
    let mut document = Vec::new();
    ciborium::into_writer(&serde_json::json!({"hed": {"v": "1.0"}}), &mut document).unwrap();
    device
        .client
        .publish(
            "$aws/things/pump-3/defender/metrics/cbor",
            QoS::AtLeastOnce,
            false,
            document,
        )
        .await
        .unwrap();
    let (topic, payload) = device.message().await;
    assert_eq!(topic, "$aws/things/pump-3/defender/metrics/cbor/rejected");
    let reply: serde_json::Value = ciborium::from_reader(&payload[..]).unwrap();
    assert_eq!(reply["status"], "REJECTED");
    assert_eq!(reply["statusDetails"]["ErrorCode"], "InvalidPayload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_topics_and_filters_count_as_authorization_failures() {
    let (dir, credentials) = folder_with_things("mqtt-refused", &["intruder", "victim"]);
    let broker = Broker::start(&dir, &credentials, &["--time-scale", "1000"]);
    let mut client = broker.client();
    retain(
        &mut client,
        &[
            "aws:num-authorization-failures",
            "aws:num-connection-attempts",
        ],
    );

    for _ in 0..3 {
        let mut device = device(&broker, "intruder", "wrong");
        let error = device.ended().await;
        assert!(error.contains("BadUserNamePassword"), "{error}");
    }
    let mut device = device(&broker, "intruder", "pw-intruder");
    let codes = device.subscribe("things/victim/#").await;
    assert_eq!(codes, ["Failure"]);
    device
        .client
        .publish("things/victim/commands", QoS::AtLeastOnce, false, "open")
        .await
        .unwrap();
    let error = device.ended().await;
    assert!(
        error.contains("closed") || error.contains("reset"),
        "{error}"
    );

    let failures = wait_for_sum(&mut client, "intruder", "aws:num-authorization-failures", 5);
    assert_eq!(failures, 5);
    let attempts = wait_for_sum(&mut client, "intruder", "aws:num-connection-attempts", 4);
    assert_eq!(attempts, 4);
    assert_eq!(
        metric_values(&mut client, "victim", "aws:num-authorization-failures"),
        Vec::<i64>::new()
    );
}

/// Connects with a bare socket, so an attacker can open hundreds of connections a second;
/// returns the stream and the CONNACK return code.
async fn raw_connect(
    address: SocketAddr,
    thing: &str,
    password: &str,
) -> (tokio::net::TcpStream, ConnectReturnCode) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    connect_over(stream, thing, Some(password)).await
}

/// Sends CONNECT for `thing` over an open stream, with the thing name as user name when a
/// password is given; returns the stream and the CONNACK return code.
async fn connect_over<S>(
    mut stream: S,
    thing: &str,
    password: Option<&str>,
) -> (S, ConnectReturnCode)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut connect = v4::Connect::new(thing);
    connect.keep_alive = 60;
    if let Some(password) = password {
        connect.set_login(thing, password);
    }
    let mut buffer = BytesMut::new();
    v4::Packet::Connect(connect)
        .write(&mut buffer, usize::MAX)
        .unwrap();
    stream.write_all(&buffer).await.unwrap();
    buffer.clear();
    loop {
        match v4::Packet::read(&mut buffer, 1024) {
            Ok(v4::Packet::ConnAck(ack)) => return (stream, ack.code),
            Ok(other) => panic!("expected CONNACK, got {other:?}"),
            Err(_) => {
                let read = stream.read_buf(&mut buffer).await.unwrap();
                assert!(read > 0, "closed before CONNACK");
            }
        }
    }
}

/// Tries wrong passwords for `thing` until `until`; returns the attempts made.
async fn stuff_credentials(address: SocketAddr, thing: &str, until: Instant) -> usize {
    let mut attempts = 0;
    while Instant::now() < until {
        let (_, code) = raw_connect(address, thing, &format!("guess-{attempts}")).await;
        assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    attempts
}

/// Connects and disconnects `thing` until `until`; returns the connections made.
async fn reconnect_in_a_loop(address: SocketAddr, thing: &str, until: Instant) -> usize {
    let mut connections = 0;
    while Instant::now() < until {
        let (mut stream, code) = raw_connect(address, thing, &format!("pw-{thing}")).await;
        assert_eq!(code, ConnectReturnCode::Success);
        stream.write_all(&[0xE0, 0x00]).await.unwrap();
        connections += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    connections
}

/// Publishes small QoS 0 messages from `thing` until `until`; returns the messages sent.
async fn flood(address: SocketAddr, thing: &str, until: Instant) -> usize {
    let (mut stream, code) = raw_connect(address, thing, &format!("pw-{thing}")).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let mut burst = BytesMut::new();
    for _ in 0..50 {
        v4::Packet::Publish(v4::Publish::new(
            format!("things/{thing}/telemetry"),
            QoS::AtMostOnce,
            vec![b'x'; 64],
        ))
        .write(&mut burst, usize::MAX)
        .unwrap();
    }
    let mut sent = 0;
    while Instant::now() < until {
        stream.write_all(&burst).await.unwrap();
        sent += 50;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sent
}

/// The ML behaviors on the cloud-side metrics the attackers drive.
const ML_BEHAVIORS: [(&str, &str); 4] = [
    ("attempts", "aws:num-connection-attempts"),
    ("failures", "aws:num-authorization-failures"),
    ("disconnects", "aws:num-disconnects"),
    ("sent", "aws:num-messages-sent"),
];

fn create_ml_profile(client: &mut ApiClient) {
    let behaviors: Vec<String> = ML_BEHAVIORS
        .iter()
        .map(|(name, metric)| {
            format!(
                r#"{{"name":"{name}","metric":"{metric}","criteria":{{"consecutiveDatapointsToAlarm":1,
                "consecutiveDatapointsToClear":1,"mlDetectionConfig":{{"confidenceLevel":"LOW"}}}}}}"#
            )
        })
        .collect();
    let body = format!(r#"{{"behaviors":[{}]}}"#, behaviors.join(","));
    let created = client
        .send("POST", "/security-profiles/ml", "", &body)
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let attached = client
        .send(
            "PUT",
            "/security-profiles/ml/targets",
            &format!("securityProfileTargetArn={}", encode(ALL_THINGS)),
            "",
        )
        .unwrap();
    assert_eq!(attached.status, 200, "{}", attached.body);
}

fn wait_for_active_models(client: &mut ApiClient, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let response = client
            .send(
                "GET",
                "/behavior-model-training/summaries",
                "securityProfileName=ml",
                "",
            )
            .unwrap();
        let summaries = response.json().unwrap()["summaries"].clone();
        let active = summaries
            .as_array()
            .unwrap()
            .iter()
            .filter(|summary| summary["modelStatus"] == "ACTIVE")
            .count();
        if active == ML_BEHAVIORS.len() {
            return;
        }
        assert!(Instant::now() < deadline, "models not active: {summaries}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Reads the thing name and behavior name of a violation or violation event.
fn thing_and_behavior(violation: &serde_json::Value) -> (String, String) {
    (
        violation["thingName"].as_str().unwrap().to_owned(),
        violation["behavior"]["name"].as_str().unwrap().to_owned(),
    )
}

/// (thing, behavior) of every active violation of the ML profile.
fn ml_violations(client: &mut ApiClient) -> Vec<(String, String)> {
    let response = client
        .send(
            "GET",
            "/active-violations",
            "securityProfileName=ml&maxResults=250",
            "",
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().unwrap()["activeViolations"]
        .as_array()
        .unwrap()
        .iter()
        .map(thing_and_behavior)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuffing_flooding_and_reconnecting_clients_raise_ml_violations() {
    let attackers = ["stuffer", "flooder", "looper"];
    let (dir, credentials) = folder_with_things("mqtt-ml", &attackers);
    let args = [
        "--simulate",
        "100",
        "--attack-after-days",
        "365",
        "--time-scale",
        "20000",
        "--ml-min-datapoints",
        "100",
    ];
    let broker = Broker::start(&dir, &credentials, &args);
    let mut client = broker.client();
    create_ml_profile(&mut client);
    let started = Instant::now();
    let mut waiting = broker.client();
    tokio::task::spawn_blocking(move || {
        wait_for_active_models(&mut waiting, Duration::from_secs(180))
    })
    .await
    .unwrap();
    eprintln!("models active after {:?}", started.elapsed());
    let before = ml_violations(&mut client);
    for thing in attackers {
        assert!(
            before.iter().all(|(violator, _)| violator != thing),
            "{thing} violated before attacking: {before:?}"
        );
    }

    let until = Instant::now() + Duration::from_secs(3);
    let address = broker.mqtt;
    let (attempts, messages, connections) = tokio::join!(
        stuff_credentials(address, "stuffer", until),
        flood(address, "flooder", until),
        reconnect_in_a_loop(address, "looper", until),
    );
    eprintln!("{attempts} wrong passwords, {messages} messages, {connections} reconnections");

    let expected = [
        ("stuffer", "failures"),
        ("flooder", "sent"),
        ("looper", "disconnects"),
    ];
    // Alarms are read from the event history: at this time scale an alarm can clear, or be
    // invalidated after two silent days, before a loaded machine polls the active ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    let alarms = loop {
        let alarms: Vec<(String, String)> = attackers
            .iter()
            .flat_map(|thing| ml_alarm_events(&mut client, thing))
            .collect();
        let all = expected
            .iter()
            .all(|(thing, behavior)| alarms.contains(&(thing.to_string(), behavior.to_string())));
        if all || Instant::now() > deadline {
            break alarms;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("attacker alarms: {alarms:?}");
    for (thing, behavior) in expected {
        assert!(
            alarms.contains(&(thing.to_owned(), behavior.to_owned())),
            "no {behavior} alarm for {thing}: {alarms:?}"
        );
    }
}

/// (thing, behavior) of every `in-alarm` event of the ML profile for `thing`, from the history.
fn ml_alarm_events(client: &mut ApiClient, thing: &str) -> Vec<(String, String)> {
    let response = client
        .send(
            "GET",
            "/violation-events",
            &format!(
                "securityProfileName=ml&thingName={thing}&startTime=0&endTime=4102444800\
                 &maxResults=250"
            ),
            "",
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    response.json().unwrap()["violationEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["violationEventType"] == "in-alarm")
        .map(thing_and_behavior)
        .collect()
}

/// `vigil bench-mqtt` at a light load: every report of every connection is accepted and timed.
#[test]
fn bench_mqtt_accepts_every_report_at_a_light_load() {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "bench-mqtt",
            "--connections",
            "40",
            "--rate",
            "200",
            "--seconds",
            "2",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let line = stdout
        .lines()
        .find(|line| line.starts_with("BENCH-MQTT "))
        .unwrap_or_else(|| panic!("no BENCH-MQTT line in {stdout}"));
    let field = |name: &str| -> f64 {
        let prefix = format!("{name}=");
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .unwrap()
    };
    // 40 devices, one report each every 0.2 s for 2 s.
    assert_eq!(field("accepted"), 400.0, "{line}");
    assert_eq!(field("rejected"), 0.0, "{line}");
    assert_eq!(field("lost"), 0.0, "{line}");
    assert!(field("p99_ms") > 0.0, "{line}");
}

/// A CA, a broker certificate and device certificates from `vigil mqtt-certs`.
fn certificates(dir: &Path, things: &[&str]) -> PathBuf {
    let certs = dir.join("certs");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.args(["mqtt-certs", "--dir"]).arg(&certs);
    for thing in things {
        command.args(["--thing", thing]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    certs
}

/// Starts a server whose TLS listener uses the files of `certs`; returns it and that listener.
fn start_with_tls(
    dir: &Path,
    credentials: &Path,
    certs: &Path,
    extra: &[&str],
) -> (Broker, SocketAddr) {
    let mut arguments = tls_arguments(certs);
    arguments.extend(extra.iter().map(|argument| argument.to_string()));
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let broker = Broker::start(dir, credentials, &arguments);
    let tls = broker.mqtt_tls.expect("a TLS listener");
    (broker, tls)
}

fn tls_arguments(certs: &Path) -> Vec<String> {
    let path = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    vec![
        "--mqtt-tls-port".into(),
        "0".into(),
        "--mqtt-tls-cert".into(),
        path("server.pem"),
        "--mqtt-tls-key".into(),
        path("server.key"),
        "--mqtt-tls-client-ca".into(),
        path("ca.pem"),
    ]
}

/// Opens a TLS connection to the broker that trusts the test CA, presenting the certificate
/// of `device` when given.
async fn tls_stream(
    address: SocketAddr,
    certs: &Path,
    device: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    #[expect(deprecated, reason = "the server uses ring too")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match device {
        Some(thing) => {
            let chain =
                vec![CertificateDer::from_pem_file(certs.join(format!("{thing}.pem"))).unwrap()];
            let key = PrivateKeyDer::from_pem_file(certs.join(format!("{thing}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_certificate_logs_in_as_its_thing_and_its_report_is_accepted() {
    let (dir, credentials) = folder_with_things("mqtt-tls-cert", &[]);
    let certs = certificates(&dir, &["meter-1"]);
    let (broker, tls) = start_with_tls(&dir, &credentials, &certs, &[]);
    retain(&mut broker.client(), &["aws:all-bytes-out"]);

    let stream = tls_stream(tls, &certs, Some("meter-1")).await.unwrap();
    let (mut stream, code) = connect_over(stream, "meter-1", None).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let mut buffer = BytesMut::new();
    v4::Packet::Subscribe(v4::Subscribe::new(
        "$aws/things/meter-1/defender/metrics/json/+",
        QoS::AtMostOnce,
    ))
    .write(&mut buffer, usize::MAX)
    .unwrap();
    v4::Packet::Publish(v4::Publish::new(
        "$aws/things/meter-1/defender/metrics/json",
        QoS::AtMostOnce,
        report(7, 4321),
    ))
    .write(&mut buffer, usize::MAX)
    .unwrap();
    stream.write_all(&buffer).await.unwrap();
    buffer.clear();
    let reply = loop {
        match v4::Packet::read(&mut buffer, 64 * 1024) {
            Ok(v4::Packet::Publish(reply)) => break reply,
            Ok(_) => {}
            Err(_) => {
                let read =
                    tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buffer))
                        .await
                        .expect("a reply within 10 s")
                        .unwrap();
                assert!(read > 0, "closed before the reply");
            }
        }
    };
    assert_eq!(
        reply.topic,
        "$aws/things/meter-1/defender/metrics/json/accepted"
    );
    assert_eq!(
        metric_values(&mut broker.client(), "meter-1", "aws:all-bytes-out"),
        [4321]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_does_not_log_in_as_another_thing() {
    let (dir, credentials) = folder_with_things("mqtt-tls-other", &["meter-2"]);
    let certs = certificates(&dir, &["meter-1"]);
    let (_broker, tls) = start_with_tls(&dir, &credentials, &certs, &[]);

    let stream = tls_stream(tls, &certs, Some("meter-1")).await.unwrap();
    let (_, code) = connect_over(stream, "meter-2", Some("pw-meter-2")).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_tls_clients_log_in_with_their_password() {
    let (dir, credentials) = folder_with_things("mqtt-tls-password", &["meter-3"]);
    let certs = certificates(&dir, &[]);
    let (_broker, tls) = start_with_tls(&dir, &credentials, &certs, &[]);

    let stream = tls_stream(tls, &certs, None).await.unwrap();
    let (_, code) = connect_over(stream, "meter-3", Some("pw-meter-3")).await;
    assert_eq!(code, ConnectReturnCode::Success);
    let stream = tls_stream(tls, &certs, None).await.unwrap();
    let (_, code) = connect_over(stream, "meter-3", Some("wrong")).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_certificates_are_required_a_client_without_one_gets_no_session() {
    let (dir, credentials) = folder_with_things("mqtt-tls-required", &["meter-4"]);
    let certs = certificates(&dir, &[]);
    let (_broker, tls) =
        start_with_tls(&dir, &credentials, &certs, &["--mqtt-require-client-cert"]);

    // TLS 1.3 servers check the client certificate after the client's handshake ends, so the
    // refusal arrives as an alert on the first read rather than from `connect`.
    let refused = match tls_stream(tls, &certs, None).await {
        Err(_) => true,
        Ok(mut stream) => {
            let mut buffer = BytesMut::new();
            let mut connect = v4::Connect::new("meter-4");
            connect.set_login("meter-4", "pw-meter-4");
            v4::Packet::Connect(connect)
                .write(&mut buffer, usize::MAX)
                .unwrap();
            let _ = stream.write_all(&buffer).await;
            let mut reply = BytesMut::new();
            let read = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut reply));
            matches!(read.await, Ok(Err(_) | Ok(0)))
        }
    };
    assert!(refused, "a client without a certificate got an answer");
}
