//! `vigil serve`: the HTTP server. It serves the AWS IoT Device Defender Detect API (see
//! [`crate::api`]) backed by the core engine and a SQLite database, Prometheus metrics at
//! `/metrics`, and the browser demo, a static folder, at `/demo/`.
//!
//! The server binds to 127.0.0.1 unless `--bind` names another address. API requests must be
//! signed with SigV4 by the credentials the server was given or generated.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use tower_http::services::ServeDir;
use vigil_core::EngineConfig;

use crate::api::{self, ApiState, Credentials};
use crate::mqtt::external::ExternalBrokerOptions;
use crate::plugins::{PluginHost, PluginLimits};
use crate::service::{Service, ServiceOptions};

/// Path the demo is served under; the trailing slash matters, because the page loads its files
/// by relative URL.
pub const DEMO_PATH: &str = "/demo/";

/// Environment variables holding the API credentials when no --credentials file is given.
const ACCESS_KEY_ENV: &str = "VIGIL_ACCESS_KEY_ID";
const SECRET_KEY_ENV: &str = "VIGIL_SECRET_ACCESS_KEY";

/// How often event time advances and the simulated fleet is fed.
const TICK: Duration = Duration::from_millis(200);

/// Arguments of `vigil serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TCP port to listen on; 0 picks a free port, printed at start.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on. Anything other than a loopback address exposes the server to the
    /// network.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Folder of the database (created if missing). Everything the API stores lives there.
    #[arg(long, value_name = "DIR", default_value = "vigil-data")]
    pub data: PathBuf,
    /// AWS shared-credentials file whose `[default]` profile signs API requests (default: the
    /// VIGIL_ACCESS_KEY_ID and VIGIL_SECRET_ACCESS_KEY variables, else DIR/credentials, created
    /// with a random key pair on first start).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Region in the ARNs of a new database (default: us-east-1). A database keeps the region
    /// it was created with.
    #[arg(long)]
    pub region: Option<String>,
    /// Account id in the ARNs of a new database, 12 digits (default: 123456789012).
    #[arg(long)]
    pub account_id: Option<String>,
    /// Datapoints an ML model needs in its training window before its first build, for a new
    /// database (default: 25,000, as AWS).
    #[arg(long)]
    pub ml_min_datapoints: Option<u64>,
    /// Simulated things to feed with cloud-side traffic (0 for none, at most 10,000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub simulate: u32,
    /// Simulated days after start-up when attacks begin on a tenth of the simulated things.
    #[arg(long, default_value_t = 18, value_parser = clap::value_parser!(i64).range(0..=365))]
    pub attack_after_days: i64,
    /// Event time runs this many times faster than the wall clock (1 to 1,000,000).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Directory of mitigation plugin components (default: plugins/ next to this binary, then
    /// target/wasm/plugins).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Folder of the built browser demo (default: web-demo/ next to this binary, then
    /// target/web-demo of the source tree); without one, /demo/ is not served.
    #[arg(long, value_name = "DIR")]
    pub demo_dir: Option<PathBuf>,
    /// Post the SNS alerts of a topic to a webhook, in the envelope of an SNS HTTP
    /// subscription: TOPIC_ARN=http://HOST:PORT/PATH (repeatable).
    #[arg(long = "alert-webhook", value_name = "TOPIC_ARN=URL")]
    pub alert_webhooks: Vec<String>,
    /// The MQTT broker.
    #[command(flatten)]
    pub mqtt: crate::mqtt::MqttArgs,
    /// An external MQTT broker to attach to instead of the embedded one.
    #[command(flatten)]
    pub external_broker: crate::mqtt::external::ExternalBrokerArgs,
}

/// Serves until the process is interrupted. The first line on `out` is
/// `vigil serve: listening on http://ADDRESS/`, so scripts that pass `--port 0` can read the
/// port.
pub fn run(args: &ServeArgs, core_path: &Path, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.time_scale.is_finite() && (1.0..=1_000_000.0).contains(&args.time_scale),
        "--time-scale must be between 1 and 1000000, not {}",
        args.time_scale
    );
    let demo_dir = match locate_demo_dir(args.demo_dir.as_deref()) {
        Ok(dir) => Some(dir),
        Err(error) if args.demo_dir.is_some() => return Err(error),
        Err(_) => None,
    };
    // Options are checked before anything is written to the data folder.
    let webhooks = crate::alerts::Webhooks::parse(&args.alert_webhooks)?;
    if let Some(settings) = args.mqtt.tls_settings() {
        crate::mqtt::tls::server_config(&settings)?;
    }
    // The port is taken before the data folder is created, so a busy port leaves no trace.
    let address = SocketAddr::new(args.bind, args.port);
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("failed to listen on `{address}`; pick another --port"))?;
    listener
        .set_nonblocking(true)
        .context("failed to make the listening socket non-blocking")?;
    let credentials = load_credentials(args)?;
    let service = open_service(args, core_path)?;
    let plugins_line = plugins_line(service.plugins());
    let state = ApiState::new(Arc::new(Mutex::new(service)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("failed to hand the listening socket to the async runtime")?;
        let local = listener
            .local_addr()
            .context("failed to read the listening address")?;
        let mqtt = start_mqtt(args, state.clone()).await?;
        // One write, so a reader that stops after the first line cannot make a later line fail.
        let banner = banner(
            local,
            &credentials,
            demo_dir.is_some(),
            &plugins_line,
            &mqtt,
        );
        out.write_all(banner.as_bytes())?;
        out.flush().context("failed to write to stdout")?;
        tracing::info!(%local, "serving");

        let ticker = tokio::spawn(tick_forever(state.clone()));
        let alerts = tokio::spawn(crate::alerts::deliver_forever(state.clone(), webhooks));
        let app = router(state, Arc::new(credentials), demo_dir.as_deref());
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the HTTP server failed");
        ticker.abort();
        alerts.abort();
        served?;
        // The banner's reader may have closed stdout since; that is no reason to fail.
        let _ = writeln!(out, "vigil serve: stopped").and_then(|()| out.flush());
        Ok(())
    })
}

/// Starts the embedded MQTT broker, or attaches to the external one; returns the banner lines
/// that name it. Scripts read the embedded broker's address from `vigil serve: mqtt on ADDRESS`.
async fn start_mqtt(args: &ServeArgs, state: ApiState) -> anyhow::Result<String> {
    let external = ExternalBrokerOptions::from_args(&args.external_broker, args.time_scale)?;
    if let Some(options) = external {
        let attached = crate::mqtt::external::start(&options, state).await?;
        return Ok(format!(
            "vigil serve: mqtt attached to {} as client id {}\n",
            attached.url, attached.client_id
        ));
    }
    let options = crate::mqtt::BrokerOptions::from_args(
        &args.mqtt,
        args.bind,
        args.port,
        &args.data,
        args.time_scale,
    );
    let broker = crate::mqtt::start(&options, state).await?;
    // The plain MQTT line comes last: clients that read up to it have seen every address.
    let mut lines = String::new();
    if let Some(tls) = broker.tls_address {
        lines.push_str(&format!("vigil serve: mqtt over tls on {tls}\n"));
    }
    lines.push_str(&format!("vigil serve: mqtt on {}\n", broker.address));
    Ok(lines)
}

/// Builds the lines printed at start: the first names the address and the last the MQTT broker.
fn banner(
    local: SocketAddr,
    credentials: &Credentials,
    demo: bool,
    plugins_line: &str,
    mqtt_line: &str,
) -> String {
    let mut text = format!(
        "vigil serve: listening on http://{local}/\n  AWS API:     --endpoint-url http://{local}\n  \
         credentials: access key id {}\n",
        credentials.access_key_id
    );
    if demo {
        text.push_str(&format!("  demo:        http://{local}{DEMO_PATH}\n"));
    }
    text.push_str(&format!("  metrics:     http://{local}/metrics\n"));
    text.push_str(plugins_line);
    text.push_str(mqtt_line);
    text
}

/// Builds the banner line that counts the loaded plugins and names the action names bound to
/// installed ones, for example `  plugins:     6 bundled, 1 installed (bound: notify-ops)`.
fn plugins_line(plugins: &PluginHost) -> String {
    let bundled = plugins.plugins().filter(|p| p.handles_action_types).count();
    let installed = plugins.plugins().count() - bundled;
    let mut line = format!("  plugins:     {bundled} bundled, {installed} installed");
    if !plugins.bindings().is_empty() {
        let actions: Vec<&str> = plugins
            .bindings()
            .iter()
            .map(|binding| binding.action_name.as_str())
            .collect();
        line.push_str(&format!(" (bound: {})", actions.join(", ")));
    }
    line.push('\n');
    line
}

fn open_service(args: &ServeArgs, core_path: &Path) -> anyhow::Result<Service> {
    let mut plugins = PluginHost::new(PluginLimits::default())?;
    let plugins_dir = crate::plugins::locate_plugins_dir(args.plugins.as_deref())?;
    plugins
        .load(&plugins_dir)
        .with_context(|| format!("failed to load the plugins in `{}`", plugins_dir.display()))?;
    crate::plugin_cli::Installations::read(&args.data)?
        .load_into(&args.data, &mut plugins)
        .with_context(|| {
            format!(
                "failed to load the plugins installed in `{}`",
                args.data.display()
            )
        })?;
    let options = ServiceOptions {
        data_dir: args.data.clone(),
        core_path: core_path.to_path_buf(),
        engine: engine_config(args),
        engine_settings_given: args.region.is_some()
            || args.account_id.is_some()
            || args.ml_min_datapoints.is_some(),
        time_scale: args.time_scale,
        simulate: args.simulate as usize,
        attack_after_days: args.attack_after_days,
    };
    Service::open(&options, plugins)
}

/// The engine settings for a new database: the defaults with what the command line sets.
fn engine_config(args: &ServeArgs) -> EngineConfig {
    let defaults = EngineConfig::default();
    EngineConfig {
        region: args.region.clone().unwrap_or(defaults.region),
        account_id: args.account_id.clone().unwrap_or(defaults.account_id),
        ml_min_datapoints: args.ml_min_datapoints.unwrap_or(defaults.ml_min_datapoints),
        ml_training_days: defaults.ml_training_days,
    }
}

/// Credentials from --credentials, else the environment, else DIR/credentials (created with a
/// random key pair if missing).
fn load_credentials(args: &ServeArgs) -> anyhow::Result<Credentials> {
    if let Some(path) = &args.credentials {
        return Credentials::from_file(path);
    }
    if let (Ok(key), Ok(secret)) = (std::env::var(ACCESS_KEY_ENV), std::env::var(SECRET_KEY_ENV)) {
        return Ok(Credentials::new(key, secret));
    }
    let path = args.data.join("credentials");
    if path.is_file() {
        return Credentials::from_file(&path);
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("failed to create the data folder `{}`", args.data.display()))?;
    let credentials = Credentials::generate(&path)?;
    let path = std::path::absolute(&path).unwrap_or(path);
    eprintln!(
        "vigil serve: created API credentials in `{}`; point the AWS CLI at them with \
         AWS_SHARED_CREDENTIALS_FILE={}",
        path.display(),
        path.display()
    );
    Ok(credentials)
}

/// Advances event time and feeds the simulation until the server stops.
async fn tick_forever(state: ApiState) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let result = state
            .call(|service| service.tick().map_err(api::ApiError::from))
            .await;
        if let Err(error) = result {
            tracing::error!(?error, "failed to advance event time");
        }
    }
}

/// Builds the router with every route of the server.
pub fn router(state: ApiState, credentials: Arc<Credentials>, demo_dir: Option<&Path>) -> Router {
    let api = api::routes(state.clone()).layer(axum::middleware::from_fn_with_state(
        credentials,
        api::sigv4::verify,
    ));
    let mut router = Router::new().merge(api).route(
        "/metrics",
        get(api::render_metrics).with_state(state.clone()),
    );
    if let Some(dir) = demo_dir {
        router = router.merge(demo_routes(dir));
    }
    router
        .layer(axum::middleware::from_fn_with_state(
            state,
            api::track_metrics,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Builds the browser demo's routes: the static files under `/demo/`, with `/` and `/demo`
/// redirecting there.
pub fn demo_routes(demo_dir: &Path) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(DEMO_PATH) }))
        .route("/demo", get(|| async { Redirect::permanent(DEMO_PATH) }))
        .nest_service(DEMO_PATH, ServeDir::new(demo_dir))
}

/// Finds the built demo: `explicit`, else `web-demo/` next to the binary, else `target/web-demo`
/// of the source tree.
pub fn locate_demo_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        anyhow::ensure!(
            dir.join("index.html").is_file(),
            "no index.html in `{}`; pass the folder `cargo xtask build-web` writes",
            dir.display()
        );
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("failed to find the path of the `vigil` binary")?;
    let beside = exe.parent().map(|dir| dir.join("web-demo"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-demo");
    beside
        .into_iter()
        .chain([source])
        .find(|dir| dir.join("index.html").is_file())
        .context(
            "no built demo next to the `vigil` binary or in target/web-demo; build it with \
             `cargo xtask build-web` or pass --demo-dir DIR",
        )
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "failed to listen for Ctrl-C; stop the server with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "failed to listen for SIGTERM; stop the server with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("stopping the server");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A demo folder with a page and a module, removed when dropped.
    struct DemoDir(PathBuf);

    impl DemoDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("vigil-serve-{name}-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("pkg")).unwrap();
            std::fs::write(dir.join("index.html"), "<title>demo</title>").unwrap();
            std::fs::write(dir.join("pkg/vigil_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
            Self(dir)
        }
    }

    impl Drop for DemoDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Serves `dir` on a free loopback port, sends one GET for `path` and returns the response.
    async fn get(dir: &Path, path: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, demo_routes(dir)).into_future());
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        server.abort();
        String::from_utf8_lossy(&response).into_owned()
    }

    fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
        response.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    #[tokio::test]
    async fn demo_without_slash_redirects() {
        let dir = DemoDir::new("redirect");
        let response = get(&dir.0, "/demo").await;
        assert!(response.starts_with("HTTP/1.1 308"), "{response}");
        assert_eq!(header(&response, "location"), Some("/demo/"));
    }

    #[tokio::test]
    async fn demo_serves_index_page() {
        let dir = DemoDir::new("index");
        let response = get(&dir.0, "/demo/").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("<title>demo</title>"), "{response}");
    }

    #[tokio::test]
    async fn wasm_has_wasm_content_type() {
        let dir = DemoDir::new("wasm");
        let response = get(&dir.0, "/demo/pkg/vigil_web_bg.wasm").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(header(&response, "content-type"), Some("application/wasm"));
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let dir = DemoDir::new("missing");
        let response = get(&dir.0, "/demo/nothing.js").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    }

    #[tokio::test]
    async fn path_outside_demo_is_not_served() {
        let dir = DemoDir::new("traversal");
        let response = get(&dir.0, "/demo/../Cargo.toml").await;
        assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
    }
}
