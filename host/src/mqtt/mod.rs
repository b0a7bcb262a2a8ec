//! The MQTT broker of `vigil serve`: devices connect with their thing name as client id,
//! publish Device Defender metrics reports and get AWS's replies, and everything they do on
//! the broker becomes the cloud-side metrics of the engine.
//!
//! # Why a broker of our own
//!
//! Vigil needs four things from a broker: every connection attempt with its client id, the
//! verdict of authentication, every publish before it is routed (to refuse topics of other
//! things and count the rejection), and every disconnect. It also has to reply to a report only
//! after the report is committed to the journal. `rumqttd` 0.20 has a connect-time
//! authentication hook (`external_auth`), but no per-publish authorization hook that we could
//! find, and `rmqtt` 0.24 is a complete broker with its own plugin system and runtime stack,
//! far more than a report endpoint needs. Neither was tried. So this module is a small broker
//! on tokio, and the MQTT 3.1.1 and 5 packet codec comes from the maintained `rumqttc` crate
//! (without its client or TLS parts) in [`codec`].
//!
//! # What it supports
//!
//! MQTT 3.1.1 and 5 over TCP, and over TLS when a server certificate is given ([`tls`]). QoS
//! 0 and 1 only, because AWS IoT Core has no QoS 2 either. Clean sessions only, will messages,
//! no retained messages. A device authenticates with a certificate signed by the
//! configured CA, whose common name is the thing name, or with user name and password from the
//! password file ([`passwords`]); either way the client id must be the thing name. A thing
//! publishes and subscribes only inside its own topics ([`topics`]). See `docs/mqtt.md`.

pub mod codec;
pub mod connection;
pub mod events;
pub mod external;
pub mod passwords;
pub mod reports;
pub mod router;
pub mod tls;
pub mod topics;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::api::ApiState;
use crate::service::Clock;
use connection::Shared;
use events::CloudEventLog;
use passwords::Passwords;
use router::Router;
use tls::TlsSettings;

/// The broker's port when none is given and the HTTP port is not 0.
pub const DEFAULT_PORT: u16 = 1883;

/// The broker's TLS port when TLS is on, none is given and the HTTP port is not 0.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Name of the password file in the data folder.
pub const PASSWORD_FILE: &str = "mqtt-passwords";

/// Broker options of `vigil serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct MqttArgs {
    /// MQTT port; 0 picks a free port. Default: 1883, or a free port when --port is 0.
    #[arg(long, value_name = "PORT")]
    pub mqtt_port: Option<u16>,
    /// Password file of the MQTT broker, one `thing:password` line per thing (default:
    /// DIR/mqtt-passwords, created empty on first start).
    #[arg(long, value_name = "FILE")]
    pub mqtt_passwords: Option<PathBuf>,
    /// Server certificate chain (PEM) for MQTT over TLS; turns the TLS listener on.
    #[arg(long, value_name = "FILE", requires = "mqtt_tls_key")]
    pub mqtt_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --mqtt-tls-cert.
    #[arg(long, value_name = "FILE", requires = "mqtt_tls_cert")]
    pub mqtt_tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign device certificates. A device presenting a certificate
    /// signed by one of them is the thing its subject's common name names.
    #[arg(long, value_name = "FILE", requires = "mqtt_tls_cert")]
    pub mqtt_tls_client_ca: Option<PathBuf>,
    /// Refuse TLS clients without a device certificate, as AWS IoT Core does on port 8883.
    #[arg(long, requires = "mqtt_tls_client_ca")]
    pub mqtt_require_client_cert: bool,
    /// MQTT over TLS port; 0 picks a free port. Default: 8883, or a free port when --port is 0.
    #[arg(long, value_name = "PORT", requires = "mqtt_tls_cert")]
    pub mqtt_tls_port: Option<u16>,
}

impl MqttArgs {
    /// The port to listen on, given the HTTP port.
    pub fn port(&self, http_port: u16) -> u16 {
        self.mqtt_port
            .unwrap_or(if http_port == 0 { 0 } else { DEFAULT_PORT })
    }

    /// Returns the TLS port to listen on, given the HTTP port.
    pub fn tls_port(&self, http_port: u16) -> u16 {
        self.mqtt_tls_port
            .unwrap_or(if http_port == 0 { 0 } else { DEFAULT_TLS_PORT })
    }

    /// Returns the paths of the TLS listener's files, when TLS is on.
    pub fn tls_settings(&self) -> Option<TlsSettings> {
        let (certificate, key) = self.mqtt_tls_cert.clone().zip(self.mqtt_tls_key.clone())?;
        Some(TlsSettings {
            certificate,
            key,
            client_ca: self.mqtt_tls_client_ca.clone(),
            require_client_certificate: self.mqtt_require_client_cert,
        })
    }

    /// The password file, given the data folder.
    pub fn password_file(&self, data: &Path) -> PathBuf {
        self.mqtt_passwords
            .clone()
            .unwrap_or_else(|| data.join(PASSWORD_FILE))
    }
}

/// Settings of a broker.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// Address to listen on.
    pub address: SocketAddr,
    /// The password file.
    pub passwords: PathBuf,
    /// The user named the password file, so it must exist; the default one is created.
    pub passwords_named: bool,
    /// Event time runs this many times faster than the wall clock, as in the service.
    pub time_scale: f64,
    /// The TLS listener's address and files, when TLS is on.
    pub tls: Option<(SocketAddr, TlsSettings)>,
}

impl BrokerOptions {
    /// Options from the arguments of `vigil serve`.
    pub fn from_args(
        args: &MqttArgs,
        bind: IpAddr,
        http_port: u16,
        data: &Path,
        time_scale: f64,
    ) -> Self {
        Self {
            address: SocketAddr::new(bind, args.port(http_port)),
            passwords: args.password_file(data),
            passwords_named: args.mqtt_passwords.is_some(),
            time_scale,
            tls: args
                .tls_settings()
                .map(|settings| (SocketAddr::new(bind, args.tls_port(http_port)), settings)),
        }
    }
}

/// A started broker.
pub struct Broker {
    /// The address it listens on.
    pub address: SocketAddr,
    /// The address of its TLS listener, when TLS is on.
    pub tls_address: Option<SocketAddr>,
    /// Connected clients.
    pub router: Arc<Router>,
}

/// Binds the broker and starts accepting connections, ingesting reports and feeding broker
/// events to the engine, on the current tokio runtime.
pub async fn start(options: &BrokerOptions, state: ApiState) -> anyhow::Result<Broker> {
    let passwords = if options.passwords_named {
        Passwords::open_existing(&options.passwords)?
    } else {
        Passwords::open(&options.passwords)?
    };
    let passwords = Arc::new(passwords);
    let (listener, address) = bind(options.address, "MQTT").await?;
    let tls = match &options.tls {
        Some((tls_address, settings)) => {
            let acceptor = TlsAcceptor::from(tls::server_config(settings)?);
            Some((bind(*tls_address, "MQTT over TLS").await?, acceptor))
        }
        None => None,
    };
    let now = state
        .call(|service| Ok(service.now()))
        .await
        .map_err(|error| anyhow::anyhow!("failed to read the service clock: {error:?}"))?;
    let events = Arc::new(CloudEventLog::new(Clock::new(now, options.time_scale)));
    let router = Arc::new(Router::new(Arc::clone(&events)));
    let (reports, queue) = mpsc::channel(reports::QUEUE_CAPACITY);
    let shared = Arc::new(Shared {
        router: Arc::clone(&router),
        passwords,
        reports,
    });
    tokio::spawn(reports::ingest_forever(
        queue,
        state.clone(),
        Arc::clone(&router),
    ));
    tokio::spawn(events::flush_forever(events, state));
    let tls_address = tls.as_ref().map(|((_, tls_address), _)| *tls_address);
    if let Some(((tls_listener, tls_address), acceptor)) = tls {
        tokio::spawn(accept_forever(
            tls_listener,
            Arc::clone(&shared),
            move |stream, shared| {
                tokio::spawn(serve_tls(stream, acceptor.clone(), shared));
            },
        ));
        tracing::info!(address = %tls_address, "MQTT over TLS listening");
    }
    tokio::spawn(accept_forever(listener, shared, |stream, shared| {
        tokio::spawn(connection::serve(stream, shared, None));
    }));
    tracing::info!(%address, "MQTT broker listening");
    Ok(Broker {
        address,
        tls_address,
        router,
    })
}

/// Binds a listener and reads back its address, which has the chosen port when 0 was requested.
async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen for {what} on `{address}`"))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("failed to read the {what} listening address"))?;
    Ok((listener, bound))
}

async fn accept_forever(
    listener: TcpListener,
    shared: Arc<Shared>,
    serve: impl Fn(TcpStream, Arc<Shared>),
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                serve(stream, Arc::clone(&shared));
            }
            Err(error) => {
                // Out of file descriptors, usually: wait for connections to close.
                tracing::warn!(%error, "failed to accept an MQTT connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Completes the TLS handshake, then serves the client as the thing of its verified
/// certificate, if it presented one.
async fn serve_tls(stream: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, "MQTT TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("MQTT TLS handshake timed out");
            return;
        }
    };
    let certificate_thing = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(tls::thing_of_certificate);
    connection::serve(stream, shared, certificate_thing).await;
}
