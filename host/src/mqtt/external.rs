//! Attach mode of `vigil serve`: instead of running its embedded broker, Vigil connects as one
//! MQTT 3.1.1 client to a broker the user already runs, reads every thing's Device Defender
//! reports there and publishes the replies. It is a client, not a broker, so it is not told
//! about the devices' connections, logins or messages. The cloud-side metrics come only from
//! AWS-style lifecycle events that the broker or a bridge publishes ([`lifecycle`]).
//!
//! Reports go through the same ingester as the embedded broker's ([`super::reports`]). Vigil
//! acknowledges a report's publish (PUBACK) only after the report is stored and its reply
//! published. Its session is persistent (clean session off, fixed client id), so the broker
//! keeps QoS 1 reports while Vigil is stopped or reconnecting, and sends unacknowledged ones
//! again when Vigil reconnects.
//!
//! Three tasks share the work, so that none waits on a task that waits on it:
//!
//! - the event loop polls the `rumqttc` connection, reconnects with a back-off, and queues
//!   reports for the ingester, waiting when its queue is full;
//! - the ingester stores reports and hands replies and acknowledgements to an unbounded queue,
//!   so it never waits on the event loop;
//! - the forwarder moves that queue into the `rumqttc` client, waiting while the event loop
//!   is busy.

mod lifecycle;
mod url;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubAck,
    SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::{Notify, mpsc, oneshot};

use super::events::{self, CloudEventLog};
use super::reports::{self, PendingReport, ReplySink};
use super::topics;
use crate::api::ApiState;
use crate::service::Clock;
pub use url::BrokerUrl;

/// Client id Vigil connects with when none is given.
pub const DEFAULT_CLIENT_ID: &str = "vigil";

/// Topic filters of the reports, subscribed at QoS 1.
const REPORT_FILTERS: [&str; 2] = [
    "$aws/things/+/defender/metrics/json",
    "$aws/things/+/defender/metrics/cbor",
];

/// Time the broker has to accept the first connection and subscription at start-up.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Waits between reconnection attempts: doubled after each failure, from the first to the last.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// A connection that lasted this long resets the wait to the first one. Shorter ones keep
/// doubling it, so that a broker that closes every connection at once, for example because
/// another client took the same client id, is not retried in a tight loop.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// Wait before reconnecting after a failed commit, so that a broken database is not retried
/// in a tight loop.
const RETRY_AFTER_FAILED_COMMIT: Duration = Duration::from_secs(1);

/// Requests the `rumqttc` client queues before the forwarder waits.
const CLIENT_QUEUE_CAPACITY: usize = 1024;

/// The MQTT maximum packet size (the largest remaining length a fixed header can encode).
/// Vigil accepts whatever the broker delivers: a smaller limit would close the connection on
/// an oversized report, and the broker would send it again after every reconnection.
const MAX_PACKET_SIZE: usize = 268_435_455;

/// Options of `vigil serve` that attach it to an external MQTT broker.
#[derive(clap::Args, Debug, Clone)]
pub struct ExternalBrokerArgs {
    /// Attach to this MQTT broker, `mqtt://HOST[:PORT]` (default port 1883), instead of running
    /// the embedded broker. Plain TCP only.
    #[arg(
        long,
        value_name = "URL",
        value_parser = BrokerUrl::parse,
        conflicts_with_all = ["mqtt_port", "mqtt_passwords", "mqtt_tls_cert"]
    )]
    pub mqtt_broker: Option<BrokerUrl>,
    /// Client id for the external broker, which keeps this id's session and queued reports
    /// while Vigil is stopped.
    #[arg(
        long,
        value_name = "ID",
        default_value = DEFAULT_CLIENT_ID,
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        requires = "mqtt_broker"
    )]
    pub mqtt_broker_client_id: String,
    /// User name for the external broker.
    #[arg(long, value_name = "NAME", requires = "mqtt_broker")]
    pub mqtt_broker_username: Option<String>,
    /// File holding the password for the external broker; one trailing newline is ignored.
    #[arg(long, value_name = "FILE", requires_all = ["mqtt_broker", "mqtt_broker_username"])]
    pub mqtt_broker_password_file: Option<PathBuf>,
}

/// Settings of the connection to an external broker.
#[derive(Clone)]
pub struct ExternalBrokerOptions {
    /// Address of the broker.
    pub url: BrokerUrl,
    /// Client id of Vigil's persistent session.
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// Event time runs this many times faster than the wall clock, as in the service.
    pub time_scale: f64,
}

impl ExternalBrokerOptions {
    /// Options from the arguments of `vigil serve`, or `None` without `--mqtt-broker`. Reads
    /// the password file.
    pub fn from_args(args: &ExternalBrokerArgs, time_scale: f64) -> anyhow::Result<Option<Self>> {
        let Some(url) = args.mqtt_broker.clone() else {
            return Ok(None);
        };
        let password = match &args.mqtt_broker_password_file {
            Some(path) => read_password(path)?,
            None => String::new(),
        };
        let credentials = args
            .mqtt_broker_username
            .clone()
            .map(|username| (username, password));
        Ok(Some(Self {
            url,
            client_id: args.mqtt_broker_client_id.clone(),
            credentials,
            time_scale,
        }))
    }
}

/// A connection to an external broker, subscribed to the reports.
#[derive(Debug)]
pub struct AttachedBroker {
    /// Address of the broker.
    pub url: BrokerUrl,
    /// The client id Vigil connected with.
    pub client_id: String,
}

/// Connects to the external broker, subscribes to the reports and lifecycle events, and starts
/// ingesting them, on the current tokio runtime. Fails if the first connection or the
/// subscription to the reports fails; after that, lost connections are retried forever.
pub async fn start(
    options: &ExternalBrokerOptions,
    state: ApiState,
) -> anyhow::Result<AttachedBroker> {
    let now = state
        .call(|service| Ok(service.now()))
        .await
        .map_err(|error| anyhow::anyhow!("failed to read the service clock: {error:?}"))?;
    let events = Arc::new(CloudEventLog::new(Clock::new(now, options.time_scale)));
    let (client, event_loop) = AsyncClient::new(mqtt_options(options), CLIENT_QUEUE_CAPACITY);
    let (requests, forwarded) = mpsc::unbounded_channel();
    let (reports, queue) = mpsc::channel(reports::QUEUE_CAPACITY);
    let connection = Arc::new(AtomicU64::new(0));
    let reconnect = Arc::new(Notify::new());
    let sink = Arc::new(ClientSink {
        requests: requests.clone(),
        reconnect: Arc::clone(&reconnect),
    });
    let (ready, first_subscription) = oneshot::channel();
    let attachment = Attachment {
        url: options.url.clone(),
        client: client.clone(),
        reports,
        requests,
        events: Arc::clone(&events),
        connection: Arc::clone(&connection),
        reconnect,
    };
    tokio::spawn(forward_forever(client, forwarded, connection));
    tokio::spawn(reports::ingest_forever(queue, state.clone(), sink));
    tokio::spawn(events::flush_forever(events, state));
    tokio::spawn(attachment.run_forever(event_loop, ready));

    let url = &options.url;
    tokio::time::timeout(FIRST_CONNECT_TIMEOUT, first_subscription)
        .await
        .with_context(|| {
            format!(
                "timed out after {FIRST_CONNECT_TIMEOUT:?} connecting to the MQTT broker at {url}"
            )
        })?
        .context("the MQTT client stopped before connecting")?
        .with_context(|| format!("failed to attach to the MQTT broker at {url}"))?;
    tracing::info!(%url, client_id = %options.client_id, "attached to the MQTT broker");
    Ok(AttachedBroker {
        url: url.clone(),
        client_id: options.client_id.clone(),
    })
}

/// Reads a password file, without one trailing newline.
fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "failed to read the MQTT broker password file `{}`",
            path.display()
        )
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&text);
    Ok(password.to_owned())
}

fn mqtt_options(options: &ExternalBrokerOptions) -> MqttOptions {
    let url = &options.url;
    let mut mqtt = MqttOptions::new(options.client_id.clone(), url.host.clone(), url.port);
    mqtt.set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
    if let Some((username, password)) = &options.credentials {
        mqtt.set_credentials(username.clone(), password.clone());
    }
    mqtt
}

/// Acknowledgement of a report delivered by the external broker.
#[derive(Debug)]
struct ClientAck {
    /// The connection the publish arrived on, counted from 1.
    connection: u64,
    /// The publish; only its QoS and packet id are used.
    publish: Publish,
}

/// Work for the forwarder.
enum ClientRequest {
    /// Publish a reply at QoS 1.
    Reply { topic: String, payload: Bytes },
    /// Acknowledge a publish.
    Ack(ClientAck),
}

/// Replies and acknowledges through the forwarder, and reconnects to have unstored reports
/// sent again.
struct ClientSink {
    requests: mpsc::UnboundedSender<ClientRequest>,
    reconnect: Arc<Notify>,
}

impl ReplySink for ClientSink {
    type Ack = ClientAck;

    fn publish_reply(&self, topic: &str, payload: Bytes) {
        let topic = topic.to_owned();
        let _ = self.requests.send(ClientRequest::Reply { topic, payload });
    }

    fn acknowledge(&self, ack: ClientAck) {
        let _ = self.requests.send(ClientRequest::Ack(ack));
    }

    /// MQTT has no negative acknowledgement, and a broker sends an unacknowledged QoS 1
    /// message again only when the session resumes, so the event loop reconnects.
    fn abandon(&self, _acks: Vec<ClientAck>) {
        self.reconnect.notify_one();
    }
}

/// Moves replies and acknowledgements into the `rumqttc` client until either side stops.
async fn forward_forever(
    client: AsyncClient,
    mut requests: mpsc::UnboundedReceiver<ClientRequest>,
    connection: Arc<AtomicU64>,
) {
    while let Some(request) = requests.recv().await {
        let sent = match request {
            ClientRequest::Reply { topic, payload } => {
                client
                    .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
                    .await
            }
            // A packet id is reused once acknowledged, so an acknowledgement from an earlier
            // connection could acknowledge a newer message. The broker sends the old one again.
            ClientRequest::Ack(ack) if ack.connection != connection.load(Ordering::Acquire) => {
                continue;
            }
            ClientRequest::Ack(ack) => client.ack(&ack.publish).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The event loop's side of the connection.
struct Attachment {
    url: BrokerUrl,
    client: AsyncClient,
    reports: mpsc::Sender<PendingReport<ClientAck>>,
    requests: mpsc::UnboundedSender<ClientRequest>,
    events: Arc<CloudEventLog>,
    connection: Arc<AtomicU64>,
    reconnect: Arc<Notify>,
}

impl Attachment {
    /// Polls the connection until the ingester stops. Until the first subscription is
    /// acknowledged, an error ends the loop and `ready` receives it. After that, errors are
    /// logged and the connection is retried.
    async fn run_forever(
        self,
        mut event_loop: EventLoop,
        ready: oneshot::Sender<anyhow::Result<()>>,
    ) {
        let mut ready = Some(ready);
        let mut retry_delay = FIRST_RETRY_DELAY;
        let mut connected_at = None;
        loop {
            let event = tokio::select! {
                event = event_loop.poll() => event,
                () = self.reconnect.notified() => {
                    tracing::warn!(
                        url = %self.url,
                        "reconnecting to the MQTT broker so that it sends the unstored reports again"
                    );
                    // Dropping the connection keeps the session on the broker.
                    event_loop.clean();
                    tokio::time::sleep(RETRY_AFTER_FAILED_COMMIT).await;
                    continue;
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    connected_at = Some(Instant::now());
                    self.connected(connack.session_present);
                }
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    let subscribed = check_subscription(&suback);
                    if let Err(error) = &subscribed {
                        tracing::error!(url = %self.url, "{error}");
                    }
                    if let Some(ready) = ready.take() {
                        let failed = subscribed.is_err();
                        let _ = ready.send(subscribed);
                        if failed {
                            return;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if self.dispatch(publish).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(connection_error(error)));
                        return;
                    }
                    let lasted = connected_at.take().map(|at: Instant| at.elapsed());
                    if lasted.is_some_and(|lasted| lasted >= STABLE_CONNECTION) {
                        retry_delay = FIRST_RETRY_DELAY;
                    }
                    tracing::warn!(
                        url = %self.url,
                        error = %connection_error(error),
                        ?lasted,
                        retry_in = ?retry_delay,
                        "lost the connection to the MQTT broker"
                    );
                    tokio::time::sleep(retry_delay).await;
                    retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Starts a new connection: counts it and subscribes again, in a task of its own because
    /// the client's queue is drained by this event loop.
    fn connected(&self, session_present: bool) {
        let connection = self.connection.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::info!(url = %self.url, connection, session_present, "connected to the MQTT broker");
        let filters = REPORT_FILTERS
            .iter()
            .map(|filter| SubscribeFilter::new((*filter).to_owned(), QoS::AtLeastOnce))
            .chain(
                lifecycle::FILTERS
                    .iter()
                    .map(|filter| SubscribeFilter::new((*filter).to_owned(), QoS::AtMostOnce)),
            )
            .collect::<Vec<_>>();
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(error) = client.subscribe_many(filters).await {
                tracing::debug!(%error, "the MQTT client stopped before subscribing");
            }
        });
    }

    /// Queues a report for the ingester, or counts a lifecycle event and acknowledges it.
    /// Fails when the ingester has stopped.
    async fn dispatch(&self, publish: Publish) -> anyhow::Result<()> {
        let ack = ClientAck {
            connection: self.connection.load(Ordering::Acquire),
            publish,
        };
        if let Some(report) = topics::report_topic(&ack.publish.topic) {
            let pending = PendingReport {
                thing: report.thing.to_owned(),
                format: report.format,
                payload: ack.publish.payload.clone(),
                ack,
            };
            return self
                .reports
                .send(pending)
                .await
                .context("the report ingester stopped");
        }
        let topic = &ack.publish.topic;
        if lifecycle::is_presence_topic(topic) {
            match lifecycle::read(topic, &ack.publish.payload) {
                Ok(presence) => self.events.record(&presence.thing, presence.kind, 0),
                Err(error) => tracing::debug!(%topic, %error, "ignored a lifecycle event"),
            }
        } else {
            tracing::debug!(%topic, "ignored a message on a topic Vigil did not subscribe to");
        }
        if ack.publish.qos != QoS::AtMostOnce {
            let _ = self.requests.send(ClientRequest::Ack(ack));
        }
        Ok(())
    }
}

/// Checks the broker's SUBACK. A rejected report filter is an error. A rejected lifecycle filter
/// and a report filter granted only QoS 0 are logged.
///
/// NOTE: Mosquitto 2.0.11 grants an MQTT 3.1.1 subscription that its ACL file denies and then
/// delivers nothing, so with Mosquitto a missing ACL entry shows only as missing reports.
fn check_subscription(suback: &SubAck) -> anyhow::Result<()> {
    let (reports, lifecycle) = suback
        .return_codes
        .split_at(REPORT_FILTERS.len().min(suback.return_codes.len()));
    for (filter, code) in REPORT_FILTERS.iter().zip(reports) {
        match code {
            SubscribeReasonCode::Success(QoS::AtMostOnce) => tracing::warn!(
                filter,
                "the MQTT broker granted QoS 0 only: reports may be lost while Vigil is \
                 stopped or reconnecting"
            ),
            SubscribeReasonCode::Success(_) => {}
            SubscribeReasonCode::Failure => {
                anyhow::bail!(
                    "the MQTT broker rejected the subscription to `{filter}`; allow the \
                     client to read `$aws/things/+/defender/metrics/#` in the broker's ACL"
                );
            }
        }
    }
    for (filter, code) in lifecycle::FILTERS.iter().zip(lifecycle) {
        if *code == SubscribeReasonCode::Failure {
            tracing::warn!(
                filter,
                "the MQTT broker rejected the subscription to lifecycle events; connections \
                 and disconnects are not counted"
            );
        }
    }
    Ok(())
}

/// Adds what to check to a `rumqttc` connection error.
fn connection_error(error: ConnectionError) -> anyhow::Error {
    match error {
        ConnectionError::ConnectionRefused(code) => anyhow::anyhow!(
            "the broker refused the connection ({code:?}); check --mqtt-broker-client-id, \
             --mqtt-broker-username and --mqtt-broker-password-file"
        ),
        other => anyhow::Error::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser, Debug)]
    struct Command {
        #[command(flatten)]
        embedded: super::super::MqttArgs,
        #[command(flatten)]
        external: ExternalBrokerArgs,
    }

    fn parse(args: &[&str]) -> Result<Command, String> {
        Command::try_parse_from(std::iter::once("vigil").chain(args.iter().copied()))
            .map_err(|error| error.to_string())
    }

    #[test]
    fn broker_url_and_client_options_are_parsed() {
        let command = parse(&[
            "--mqtt-broker",
            "mqtt://127.0.0.1:1884",
            "--mqtt-broker-client-id",
            "vigil-2",
            "--mqtt-broker-username",
            "detect",
        ])
        .unwrap();
        let external = command.external;
        assert_eq!(
            external.mqtt_broker,
            Some(BrokerUrl {
                host: "127.0.0.1".into(),
                port: 1884
            })
        );
        assert_eq!(external.mqtt_broker_client_id, "vigil-2");
        assert_eq!(external.mqtt_broker_username.as_deref(), Some("detect"));
    }

    #[test]
    fn client_id_defaults_to_vigil() {
        let command = parse(&["--mqtt-broker", "mqtt://localhost"]).unwrap();
        assert_eq!(command.external.mqtt_broker_client_id, "vigil");
    }

    #[test]
    fn invalid_url_is_cli_error() {
        let error = parse(&["--mqtt-broker", "mqtts://localhost:8883"]).unwrap_err();
        assert!(
            error.contains("unsupported scheme `mqtts://`: only plain TCP is supported"),
            "{error}"
        );
    }

    #[test]
    fn external_and_embedded_broker_options_conflict() {
        let error =
            parse(&["--mqtt-broker", "mqtt://localhost", "--mqtt-port", "1884"]).unwrap_err();
        assert!(error.contains("cannot be used with"), "{error}");
    }

    #[test]
    fn client_options_require_broker() {
        let error = parse(&["--mqtt-broker-username", "detect"]).unwrap_err();
        assert!(error.contains("--mqtt-broker <URL>"), "{error}");
    }

    #[test]
    fn password_file_requires_username() {
        let error = parse(&[
            "--mqtt-broker",
            "mqtt://localhost",
            "--mqtt-broker-password-file",
            "pw",
        ])
        .unwrap_err();
        assert!(error.contains("--mqtt-broker-username <NAME>"), "{error}");
    }

    #[test]
    fn rejected_report_filter_fails_subscription() {
        use SubscribeReasonCode::{Failure, Success};
        let granted = Success(QoS::AtLeastOnce);
        let rejected = SubAck::new(1, vec![granted, Failure, granted, granted]);
        let error = check_subscription(&rejected).unwrap_err().to_string();
        assert_eq!(
            error,
            "the MQTT broker rejected the subscription to `$aws/things/+/defender/metrics/cbor`; \
             allow the client to read `$aws/things/+/defender/metrics/#` in the broker's ACL"
        );
    }

    #[test]
    fn rejected_lifecycle_filters_still_attach() {
        use SubscribeReasonCode::{Failure, Success};
        let granted = Success(QoS::AtLeastOnce);
        let suback = SubAck::new(1, vec![granted, granted, Failure, Failure]);
        assert!(check_subscription(&suback).is_ok());
    }

    #[test]
    fn password_file_loses_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("vigil-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("password");
        for (content, expected) in [
            ("secret\n", "secret"),
            ("secret\r\n", "secret"),
            ("secret", "secret"),
            ("two words \n\n", "two words \n"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_password(&path).unwrap(), expected, "{content:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_password_file_names_path() {
        let args = ExternalBrokerArgs {
            mqtt_broker: Some(BrokerUrl::parse("mqtt://localhost").unwrap()),
            mqtt_broker_client_id: DEFAULT_CLIENT_ID.into(),
            mqtt_broker_username: Some("detect".into()),
            mqtt_broker_password_file: Some("/nonexistent/vigil-password".into()),
        };
        let error = ExternalBrokerOptions::from_args(&args, 1.0)
            .err()
            .map(|error| format!("{error:#}"))
            .unwrap();
        assert!(
            error.starts_with(
                "failed to read the MQTT broker password file `/nonexistent/vigil-password`"
            ),
            "{error}"
        );
    }
}
