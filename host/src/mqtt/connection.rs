//! One client connection: CONNECT and authentication, then the packets of the session.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use vigil_core::ingest::CloudEventKind;

use super::codec::{
    self, CloseReason, ConnectRejection, ConnectRequest, Grant, Incoming, Outgoing, PublishPacket,
    ReadError, Version, Will,
};
use super::passwords::Passwords;
use super::reports::{EmbeddedAck, PendingReport};
use super::router::{OUTBOX_CAPACITY, Outbound, Outbox, Router};
use super::topics;

/// Time a client has to send CONNECT after opening the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by every connection.
pub struct Shared {
    /// Connected clients and delivery.
    pub router: Arc<Router>,
    /// The password file.
    pub passwords: Arc<Passwords>,
    /// The report ingester's queue.
    pub reports: mpsc::Sender<PendingReport>,
}

/// Serves one client until it or the broker closes the connection. `certificate_thing` is the
/// thing named by the client's verified TLS certificate, if it presented one.
pub async fn serve<S>(stream: S, shared: Arc<Shared>, certificate_thing: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Err(error) = run(stream, &shared, certificate_thing.as_deref()).await {
        tracing::debug!(error = %format!("{error:#}"), "MQTT connection ended");
    }
}

async fn run<S>(
    mut stream: S,
    shared: &Shared,
    certificate_thing: Option<&str>,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut stream, &mut input))
        .await
        .context("no CONNECT in time")?;
    let (version, request) = match first {
        Ok(connect) => connect,
        Err(ReadError::UnsupportedVersion(level)) => {
            stream
                .write_all(&codec::unsupported_version_connack())
                .await?;
            anyhow::bail!("rejected unsupported MQTT protocol level {level}");
        }
        Err(error) => anyhow::bail!("failed to read CONNECT: {error}"),
    };
    let rejection = authenticate(&request, shared, certificate_thing);
    let mut output = BytesMut::new();
    codec::write(&Outgoing::ConnAck(rejection), version, &mut output)?;
    stream.write_all(&output).await?;
    if let Err(rejection) = rejection {
        anyhow::bail!(
            "rejected the connection of `{}`: {rejection:?}",
            request.client_id
        );
    }
    let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
    let serial = shared.router.register(&request.client_id, outbox.clone());
    let mut session = Session {
        thing: request.client_id.clone(),
        version,
        serial,
        outbox,
        next_pkid: 0,
        output: BytesMut::new(),
        shared,
    };
    let keep_alive = (request.keep_alive > 0)
        .then(|| Duration::from_millis(u64::from(request.keep_alive) * 1500));
    let end = session.run(&mut stream, input, inbox, keep_alive).await;
    shared.router.unregister(&session.thing, serial);
    shared
        .router
        .events()
        .record(&session.thing, CloudEventKind::Disconnect, 0);
    let _ = stream.shutdown().await;
    let publish_will = match &end {
        Ok(publish_will) => *publish_will,
        Err(_) => true,
    };
    if let Some(will) = request.will.filter(|_| publish_will) {
        publish_will_message(shared, &session.thing, will);
    }
    end.map(drop)
}

/// Reads bytes until the CONNECT packet is complete.
async fn read_connect<S>(
    stream: &mut S,
    input: &mut BytesMut,
) -> Result<(Version, ConnectRequest), ReadError>
where
    S: AsyncRead + Unpin,
{
    loop {
        if let Some(version) = codec::connect_version(input)? {
            match codec::read(input, version)? {
                Some(Incoming::Connect(request)) => return Ok((version, request)),
                Some(_) => return Err(ReadError::Malformed("expected CONNECT".into())),
                None => {}
            }
        }
        let read = stream
            .read_buf(input)
            .await
            .map_err(|error| ReadError::Malformed(error.to_string()))?;
        if read == 0 {
            return Err(ReadError::Malformed("closed before CONNECT".into()));
        }
    }
}

/// Checks the client id, the credentials and the will topic, recording the attempt and any
/// failure as broker events. A verified certificate replaces the password, but only for
/// the thing it names.
fn authenticate(
    request: &ConnectRequest,
    shared: &Shared,
    certificate_thing: Option<&str>,
) -> Result<(), ConnectRejection> {
    let thing = request.client_id.as_str();
    if thing.is_empty() || !vigil_core::validate::validate_thing_name(thing, "clientId").is_empty()
    {
        return Err(ConnectRejection::BadClientId);
    }
    let events = shared.router.events();
    events.record(thing, CloudEventKind::ConnectionAttempt, 0);
    let credentials_match = match certificate_thing {
        Some(certified) => certified == thing,
        None => {
            request.username.as_deref() == Some(thing)
                && request
                    .password
                    .as_deref()
                    .is_some_and(|password| shared.passwords.check(thing, password.as_bytes()))
        }
    };
    if !credentials_match {
        events.record(thing, CloudEventKind::AuthorizationFailure, 0);
        return Err(ConnectRejection::BadCredentials);
    }
    if let Some(will) = &request.will
        && !(topics::is_valid_topic(&will.topic) && topics::is_authorized(thing, &will.topic))
    {
        events.record(thing, CloudEventKind::AuthorizationFailure, 0);
        return Err(ConnectRejection::NotAuthorized);
    }
    Ok(())
}

fn publish_will_message(shared: &Shared, thing: &str, will: Will) {
    let bytes = will.payload.len() as u64;
    shared
        .router
        .events()
        .record(thing, CloudEventKind::MessageSent, bytes);
    shared
        .router
        .publish(&will.topic, will.payload, will.qos.min(1));
}

/// Next step after a packet.
enum Flow {
    Continue,
    /// Close the connection; true to publish the will.
    Close(bool),
}

/// An authenticated connection.
struct Session<'a> {
    thing: String,
    version: Version,
    serial: u64,
    outbox: Outbox,
    next_pkid: u16,
    output: BytesMut,
    shared: &'a Shared,
}

impl Session<'_> {
    /// Serves packets until the connection ends; returns whether to publish the will.
    async fn run<S>(
        &mut self,
        stream: &mut S,
        mut input: BytesMut,
        mut inbox: mpsc::Receiver<Outbound>,
        keep_alive: Option<Duration>,
    ) -> anyhow::Result<bool>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            while let Some(packet) =
                codec::read(&mut input, self.version).map_err(|error| anyhow::anyhow!("{error}"))?
            {
                if let Flow::Close(will) = self.handle(packet).await? {
                    self.flush(stream).await?;
                    return Ok(will);
                }
            }
            self.flush(stream).await?;
            let idle = keep_alive.unwrap_or(Duration::MAX);
            tokio::select! {
                read = tokio::time::timeout(idle, stream.read_buf(&mut input)) => {
                    let read = read.context("keep-alive timed out")??;
                    anyhow::ensure!(read > 0, "the client closed the connection");
                }
                Some(outbound) = inbox.recv() => {
                    if let Flow::Close(will) = self.send(outbound)? {
                        self.flush(stream).await?;
                        return Ok(will);
                    }
                    while let Ok(outbound) = inbox.try_recv() {
                        if let Flow::Close(will) = self.send(outbound)? {
                            self.flush(stream).await?;
                            return Ok(will);
                        }
                    }
                }
            }
        }
    }

    async fn flush<S>(&mut self, stream: &mut S) -> anyhow::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        if !self.output.is_empty() {
            stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(())
    }

    fn write(&mut self, packet: &Outgoing) -> anyhow::Result<()> {
        codec::write(packet, self.version, &mut self.output)
    }

    fn close(&mut self, reason: CloseReason, will: bool) -> anyhow::Result<Flow> {
        self.write(&Outgoing::Disconnect(reason))?;
        Ok(Flow::Close(will))
    }

    async fn handle(&mut self, packet: Incoming) -> anyhow::Result<Flow> {
        match packet {
            Incoming::Publish(publish) => self.publish(publish).await,
            Incoming::Subscribe(pkid, filters) => {
                let grants = filters
                    .iter()
                    .map(|(filter, qos)| self.subscribe(filter, *qos))
                    .collect();
                self.write(&Outgoing::SubAck(pkid, grants))?;
                Ok(Flow::Continue)
            }
            Incoming::Unsubscribe(pkid, filters) => {
                for filter in &filters {
                    self.shared
                        .router
                        .unsubscribe(&self.thing, self.serial, filter);
                }
                self.write(&Outgoing::UnsubAck(pkid, filters.len()))?;
                Ok(Flow::Continue)
            }
            Incoming::PingReq => {
                self.write(&Outgoing::PingResp)?;
                Ok(Flow::Continue)
            }
            Incoming::PubAck => Ok(Flow::Continue),
            Incoming::Disconnect(with_will) => Ok(Flow::Close(with_will)),
            Incoming::Connect(_) => self.close(CloseReason::ProtocolError, true),
            Incoming::Unsupported("QoS 2") => self.close(CloseReason::QosNotSupported, true),
            Incoming::Unsupported(_) => self.close(CloseReason::ProtocolError, true),
        }
    }

    async fn publish(&mut self, publish: PublishPacket) -> anyhow::Result<Flow> {
        if publish.qos > 1 {
            return self.close(CloseReason::QosNotSupported, true);
        }
        if !topics::is_valid_topic(&publish.topic) {
            return self.close(CloseReason::ProtocolError, true);
        }
        let events = self.shared.router.events();
        if !topics::is_authorized(&self.thing, &publish.topic) {
            events.record(&self.thing, CloudEventKind::AuthorizationFailure, 0);
            tracing::debug!(thing = %self.thing, topic = %publish.topic, "rejected an unauthorized publish");
            return match self.version {
                // MQTT 3.1.1 has no way to refuse a publish, so AWS IoT Core disconnects.
                Version::V311 => Ok(Flow::Close(true)),
                Version::V5 if publish.qos == 1 => {
                    self.write(&Outgoing::PubAck(publish.pkid, false))?;
                    Ok(Flow::Continue)
                }
                Version::V5 => Ok(Flow::Continue),
            };
        }
        events.record(
            &self.thing,
            CloudEventKind::MessageSent,
            publish.payload.len() as u64,
        );
        let ack = (publish.qos == 1).then_some(publish.pkid);
        if let Some(report) = topics::report_topic(&publish.topic) {
            let pending = PendingReport {
                thing: report.thing.to_owned(),
                format: report.format,
                payload: publish.payload,
                ack: EmbeddedAck {
                    origin: self.outbox.clone(),
                    pkid: ack,
                },
            };
            self.shared
                .reports
                .send(pending)
                .await
                .context("the report ingester stopped")?;
            return Ok(Flow::Continue);
        }
        self.shared
            .router
            .publish(&publish.topic, publish.payload, publish.qos);
        if let Some(pkid) = ack {
            self.write(&Outgoing::PubAck(pkid, true))?;
        }
        Ok(Flow::Continue)
    }

    fn subscribe(&self, filter: &str, qos: u8) -> Grant {
        if !topics::is_valid_filter(filter) {
            return Grant::InvalidFilter;
        }
        if !topics::is_authorized(&self.thing, filter) {
            self.shared.router.events().record(
                &self.thing,
                CloudEventKind::AuthorizationFailure,
                0,
            );
            return Grant::NotAuthorized;
        }
        let granted = qos.min(1);
        self.shared
            .router
            .subscribe(&self.thing, self.serial, filter, granted);
        Grant::Qos(granted)
    }

    /// Queues work from the broker; returns whether to close.
    fn send(&mut self, outbound: Outbound) -> anyhow::Result<Flow> {
        match outbound {
            Outbound::Packet(packet) => self.write(&packet)?,
            Outbound::Deliver {
                topic,
                payload,
                qos,
            } => {
                let pkid = if qos == 0 { 0 } else { self.next_pkid() };
                self.write(&Outgoing::Publish(PublishPacket {
                    topic,
                    payload,
                    qos,
                    pkid,
                    retain: false,
                }))?;
            }
            Outbound::Close(reason) => return self.close(reason, false),
        }
        Ok(Flow::Continue)
    }

    fn next_pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }
}
