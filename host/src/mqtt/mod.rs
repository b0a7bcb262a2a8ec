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
//! MQTT 3.1.1 and 5 over TCP; QoS 0 and 1 (AWS IoT Core has no QoS 2, and neither does this
//! broker); clean sessions only; will messages; no retained messages. Authentication is by
//! user name and password from the password file ([`passwords`]); the client id and the user
//! name must both be the thing name. A thing publishes and subscribes only inside its own
//! topics ([`topics`]). See `docs/mqtt.md`.

pub mod codec;
pub mod connection;
pub mod events;
pub mod external;
pub mod passwords;
pub mod reports;
pub mod router;
pub mod topics;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::api::ApiState;
use crate::service::Clock;
use connection::Shared;
use events::CloudEventLog;
use passwords::Passwords;
use router::Router;

/// The broker's port when none is given and the HTTP port is not 0.
pub const DEFAULT_PORT: u16 = 1883;

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
}

impl MqttArgs {
    /// The port to listen on, given the HTTP port.
    pub fn port(&self, http_port: u16) -> u16 {
        self.mqtt_port
            .unwrap_or(if http_port == 0 { 0 } else { DEFAULT_PORT })
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
    /// Event time runs this many times faster than the wall clock, as in the service.
    pub time_scale: f64,
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
            time_scale,
        }
    }
}

/// A started broker.
pub struct Broker {
    /// The address it listens on.
    pub address: SocketAddr,
    /// Connected clients.
    pub router: Arc<Router>,
}

/// Binds the broker and starts accepting connections, ingesting reports and feeding broker
/// events to the engine, on the current tokio runtime.
pub async fn start(options: &BrokerOptions, state: ApiState) -> anyhow::Result<Broker> {
    let passwords = Arc::new(Passwords::open(&options.passwords)?);
    let listener = TcpListener::bind(options.address)
        .await
        .with_context(|| format!("failed to listen for MQTT on `{}`", options.address))?;
    let address = listener
        .local_addr()
        .context("failed to read the MQTT listening address")?;
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
    tokio::spawn(accept_forever(listener, shared));
    tracing::info!(%address, "MQTT broker listening");
    Ok(Broker { address, router })
}

async fn accept_forever(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(stream, Arc::clone(&shared)));
            }
            Err(error) => {
                // Out of file descriptors, usually: wait for connections to close.
                tracing::warn!(%error, "failed to accept an MQTT connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
