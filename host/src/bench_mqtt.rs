//! `vigil bench-mqtt`: Device Defender reports per second accepted end to end by the MQTT
//! broker of `vigil serve`, and the time from publishing a report to its `/accepted` reply.
//!
//! The benchmark starts this binary's `vigil serve` as a child process on loopback ports, with
//! a real SQLite database in a temporary folder and a security profile whose one static
//! behavior every report violates. Then it opens `--connections` MQTT 3.1.1 connections from
//! this process, each a thing with its password, and has each publish a JSON report at a fixed
//! interval, so the fleet offers `--rate` reports a second. A device waits for the reply before
//! its next report. The reply is published after the report and the violation it raised are
//! committed, so the reply latency bounds the report-to-violation latency.

use std::io::{BufRead as _, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::BytesMut;
use indicatif::{ProgressBar, ProgressStyle};
use rumqttc::mqttbytes::v4;
use rumqttc::{ConnectReturnCode, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::api::Credentials;
use crate::api::client::{ApiClient, encode};

const ACCESS_KEY: &str = "AKIDVIGILBENCH";
const SECRET_KEY: &str = "vigil-bench-secret";
const REGION: &str = "us-east-1";
const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// The shortest event time between two reports of a thing that AWS accepts, in seconds.
const MIN_REPORT_PERIOD_S: f64 = 300.0;

/// Headroom over the shortest report period, so a reply that comes late never makes the next
/// report throttled.
const PERIOD_MARGIN: f64 = 1.25;

/// The fastest event clock `vigil serve --time-scale` accepts.
const MAX_TIME_SCALE: f64 = 1_000_000.0;

/// Connections opened at once while the fleet connects.
const CONNECTS_IN_FLIGHT: usize = 256;

/// Wall-clock limit for one reply before the device counts it as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `vigil bench-mqtt`.
#[derive(clap::Args, Debug)]
pub struct BenchMqttArgs {
    /// MQTT connections, one thing each.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub connections: u32,
    /// Reports a second the fleet offers.
    #[arg(long, default_value_t = 22_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// Seconds the reports are timed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub seconds: u32,
    /// Folder for the database (default: a new folder in the system's temporary folder,
    /// removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Measurements of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttBenchResult {
    /// Connections that sent reports.
    pub connections: u32,
    /// Reports a second offered.
    pub offered_per_second: f64,
    /// Reports accepted a second: those sent in the timed window, over its length.
    pub accepted_per_second: f64,
    /// Reports accepted.
    pub accepted: usize,
    /// Reports rejected (throttled or invalid).
    pub rejected: usize,
    /// Reports without a reply in time, or on a connection that closed.
    pub lost: usize,
    /// Median publish-to-reply latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile publish-to-reply latency in milliseconds.
    pub p99_ms: f64,
}

impl MqttBenchResult {
    /// Formats the committed output line.
    pub fn line(&self) -> String {
        format!(
            "BENCH-MQTT connections={} offered_rps={:.0} accepted_rps={:.0} accepted={} \
             rejected={} lost={} p50_ms={:.2} p99_ms={:.2}",
            self.connections,
            self.offered_per_second,
            self.accepted_per_second,
            self.accepted,
            self.rejected,
            self.lost,
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// Runs the benchmark and prints one `BENCH-MQTT` line.
pub fn run(args: &BenchMqttArgs, out: &mut dyn Write) -> anyhow::Result<MqttBenchResult> {
    let (data_dir, remove_after) = match &args.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vigil-bench-mqtt-{}", std::process::id())),
            true,
        ),
    };
    if data_dir.join("vigil.db").exists() {
        bail!(
            "`{}` already contains a database; pass an empty folder to --data",
            data_dir.display()
        );
    }
    let things: Vec<String> = (0..args.connections)
        .map(|n| format!("bench-{n:05}"))
        .collect();
    let every = Duration::from_secs_f64(f64::from(args.connections) / f64::from(args.rate));
    let time_scale = (MIN_REPORT_PERIOD_S * PERIOD_MARGIN / every.as_secs_f64()).max(1.0);
    if time_scale > MAX_TIME_SCALE {
        bail!(
            "--rate {} from --connections {} sends each thing a report every {:.1} ms, which needs \
             event time {time_scale:.0} times faster than the wall clock to keep reports 300 s \
             apart; `vigil serve` allows at most {MAX_TIME_SCALE:.0}, so lower --rate or raise \
             --connections",
            args.rate,
            args.connections,
            every.as_secs_f64() * 1000.0
        );
    }
    let result = Server::start(&data_dir, &things, time_scale).and_then(|server| {
        create_violating_profile(&server)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("failed to start the async runtime")?;
        let timed = Duration::from_secs(u64::from(args.seconds));
        let outcomes = runtime.block_on(drive_fleet(server.mqtt, &things, every, timed))?;
        Ok((outcomes, timed))
    });
    if remove_after {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let (outcomes, timed) = result?;
    let result = summarize(args, &outcomes, timed);
    writeln!(out, "{}", result.line())?;
    Ok(result)
}

/// A `vigil serve` child process, killed when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
    mqtt: SocketAddr,
}

impl Server {
    /// Writes the password and credentials files for `things` and starts the server.
    fn start(data_dir: &Path, things: &[String], time_scale: f64) -> anyhow::Result<Server> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("failed to create `{}`", data_dir.display()))?;
        let passwords: String = things.iter().map(|t| format!("{t}:pw-{t}\n")).collect();
        std::fs::write(data_dir.join(crate::mqtt::PASSWORD_FILE), passwords)
            .context("failed to write the MQTT password file")?;
        let credentials = data_dir.join("credentials");
        let profile = format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        );
        std::fs::write(&credentials, profile).context("failed to write the credentials file")?;
        let binary = std::env::current_exe().context("failed to find the vigil binary")?;
        let mut child = std::process::Command::new(binary)
            .args(["serve", "--port", "0", "--data"])
            .arg(data_dir)
            .arg("--credentials")
            .arg(&credentials)
            .args(["--time-scale", &format!("{time_scale:.0}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start `vigil serve`")?;
        let stdout = child.stdout.take().context("no stdout of `vigil serve`")?;
        let (http, mqtt) = read_addresses(stdout)
            .context("`vigil serve` stopped before printing its addresses")?;
        Ok(Server { child, http, mqtt })
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(self.http, Credentials::new(ACCESS_KEY, SECRET_KEY), REGION)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the HTTP and MQTT addresses from the banner of `vigil serve`.
fn read_addresses(stdout: impl std::io::Read) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let mut http = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(address) = line.strip_prefix("vigil serve: listening on http://") {
            http = Some(address.trim_end_matches('/').parse()?);
        }
        if let Some(address) = line.strip_prefix("vigil serve: mqtt on ") {
            let http = http.context("the MQTT line came before the HTTP line")?;
            return Ok((http, address.parse()?));
        }
    }
    bail!("the banner ended without an MQTT address")
}

/// Creates a profile with one static behavior that every benchmark report violates, on every
/// thing, so each thing's first report raises a violation.
fn create_violating_profile(server: &Server) -> anyhow::Result<()> {
    let mut client = server.client();
    let body = r#"{"behaviors":[{"name":"bytes-out","metric":"aws:all-bytes-out",
        "criteria":{"comparisonOperator":"greater-than","value":{"count":1000},
        "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}]}"#;
    let created = client.send("POST", "/security-profiles/bench-mqtt", "", body)?;
    if created.status != 200 {
        bail!("failed to create the benchmark profile: {}", created.body);
    }
    let target = format!("securityProfileTargetArn={}", encode(ALL_THINGS));
    let attached = client.send("PUT", "/security-profiles/bench-mqtt/targets", &target, "")?;
    if attached.status != 200 {
        bail!("failed to attach the benchmark profile: {}", attached.body);
    }
    Ok(())
}

/// Replies one device received.
#[derive(Debug, Default)]
struct DeviceOutcome {
    latencies: Vec<Duration>,
    rejected: usize,
    lost: usize,
}

/// Connects every thing, then has each report every `every` for `timed`; returns each
/// device's outcome.
async fn drive_fleet(
    broker: SocketAddr,
    things: &[String],
    every: Duration,
    timed: Duration,
) -> anyhow::Result<Vec<DeviceOutcome>> {
    let streams = connect_fleet(broker, things).await?;
    let bar = progress_bar(timed.as_secs(), "reporting");
    let start_at = tokio::time::Instant::now() + Duration::from_millis(100);
    let until = start_at + timed;
    let count = streams.len() as f64;
    let devices: Vec<_> = streams
        .into_iter()
        .zip(things)
        .enumerate()
        .map(|(index, (stream, thing))| {
            // The first reports are spread over one interval.
            let first = start_at + every.mul_f64(index as f64 / count);
            tokio::spawn(report_until(stream, thing.clone(), first, every, until))
        })
        .collect();
    let ticker = tokio::spawn(tick_progress(bar.clone(), timed));
    let mut outcomes = Vec::with_capacity(devices.len());
    for device in devices {
        outcomes.push(device.await.context("a benchmark device panicked")?);
    }
    ticker.abort();
    bar.finish_and_clear();
    Ok(outcomes)
}

/// Opens and logs in every thing's connection, a bounded number at a time.
async fn connect_fleet(broker: SocketAddr, things: &[String]) -> anyhow::Result<Vec<TcpStream>> {
    let bar = progress_bar(things.len() as u64, "connecting");
    let permits = Arc::new(tokio::sync::Semaphore::new(CONNECTS_IN_FLIGHT));
    let tasks: Vec<_> = things
        .iter()
        .map(|thing| {
            let permits = Arc::clone(&permits);
            let thing = thing.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let stream = connect_and_subscribe(broker, &thing).await?;
                bar.inc(1);
                anyhow::Ok(stream)
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(tasks.len());
    for task in tasks {
        streams.push(task.await.context("a connecting task panicked")??);
    }
    bar.finish_and_clear();
    Ok(streams)
}

/// Logs in as `thing` with its password and subscribes to its report replies.
async fn connect_and_subscribe(broker: SocketAddr, thing: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(broker).await.with_context(|| {
        format!(
            "failed to connect `{thing}` to {broker}; is the open file limit (ulimit -n) too low?"
        )
    })?;
    stream.set_nodelay(true)?;
    let mut connect = v4::Connect::new(thing);
    connect.keep_alive = 600;
    connect.set_login(thing, format!("pw-{thing}"));
    let mut buffer = BytesMut::new();
    v4::Packet::Connect(connect).write(&mut buffer, usize::MAX)?;
    let filter = format!("$aws/things/{thing}/defender/metrics/json/+");
    v4::Packet::Subscribe(v4::Subscribe::new(filter, QoS::AtMostOnce))
        .write(&mut buffer, usize::MAX)?;
    stream.write_all(&buffer).await?;
    buffer.clear();
    loop {
        match v4::Packet::read(&mut buffer, 64 * 1024) {
            Ok(v4::Packet::ConnAck(ack)) if ack.code != ConnectReturnCode::Success => {
                bail!("`{thing}` was refused: {:?}", ack.code)
            }
            Ok(v4::Packet::SubAck(_)) => return Ok(stream),
            Ok(_) => {}
            Err(_) => {
                if stream.read_buf(&mut buffer).await? == 0 {
                    bail!("the broker closed the connection of `{thing}` while it logged in");
                }
            }
        }
    }
}

/// Sends a report every `every` from `first` until `until`, each after the previous reply. A
/// report whose time came while waiting for a reply goes out as soon as it can. It still waits
/// `every / PERIOD_MARGIN` after that reply, so its event time stays 300 s after the previous
/// report's even when the server received that one late.
async fn report_until(
    mut stream: TcpStream,
    thing: String,
    first: tokio::time::Instant,
    every: Duration,
    until: tokio::time::Instant,
) -> DeviceOutcome {
    let topic = format!("$aws/things/{thing}/defender/metrics/json");
    let mut outcome = DeviceOutcome::default();
    let mut input = BytesMut::new();
    let mut next = first;
    let mut report_id: u64 = 1;
    while next < until {
        tokio::time::sleep_until(next).await;
        let sent = tokio::time::Instant::now();
        let reply = tokio::time::timeout(
            REPLY_TIMEOUT,
            publish_and_read_reply(&mut stream, &mut input, &topic, report_id),
        )
        .await;
        match reply {
            Ok(Ok(true)) => outcome.latencies.push(sent.elapsed()),
            Ok(Ok(false)) => outcome.rejected += 1,
            Ok(Err(_)) | Err(_) => {
                outcome.lost += 1;
                return outcome;
            }
        }
        report_id += 1;
        // A fixed schedule: a late reply shortens the wait before the next report, down to the
        // shortest gap the server accepts plus 1 % for the millisecond rounding of event time.
        let earliest = tokio::time::Instant::now() + every.div_f64(PERIOD_MARGIN) + every / 100;
        next = (next + every).max(earliest);
    }
    outcome
}

/// Publishes one report and reads until its reply; returns whether it was accepted.
async fn publish_and_read_reply(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    topic: &str,
    report_id: u64,
) -> anyhow::Result<bool> {
    let mut packet = BytesMut::new();
    v4::Packet::Publish(v4::Publish::new(topic, QoS::AtMostOnce, report(report_id)))
        .write(&mut packet, usize::MAX)?;
    stream.write_all(&packet).await?;
    loop {
        match v4::Packet::read(input, 64 * 1024) {
            Ok(v4::Packet::Publish(reply)) => return Ok(reply.topic.ends_with("/accepted")),
            Ok(_) => {}
            Err(_) => {
                if stream.read_buf(input).await? == 0 {
                    bail!("the broker closed the connection");
                }
            }
        }
    }
}

/// A report whose 5,000 bytes out violate the benchmark profile.
fn report(report_id: u64) -> String {
    format!(
        r#"{{"header":{{"report_id":{report_id},"version":"1.0"}},"metrics":{{"network_stats":
        {{"bytes_in":10,"bytes_out":5000,"packets_in":1,"packets_out":2}}}}}}"#
    )
}

fn summarize(args: &BenchMqttArgs, outcomes: &[DeviceOutcome], timed: Duration) -> MqttBenchResult {
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .flat_map(|outcome| outcome.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    MqttBenchResult {
        connections: args.connections,
        offered_per_second: f64::from(args.rate),
        accepted_per_second: latencies.len() as f64 / timed.as_secs_f64(),
        accepted: latencies.len(),
        rejected: outcomes.iter().map(|outcome| outcome.rejected).sum(),
        lost: outcomes.iter().map(|outcome| outcome.lost).sum(),
        p50_ms: crate::bench_api::percentile_ms(&latencies, 0.50),
        p99_ms: crate::bench_api::percentile_ms(&latencies, 0.99),
    }
}

async fn tick_progress(bar: ProgressBar, timed: Duration) {
    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.set_position(started.elapsed().as_secs().min(timed.as_secs()));
    }
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}}")) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_gives_both_addresses() {
        let banner = "vigil serve: listening on http://127.0.0.1:4000/\n  metrics: x\n\
                      vigil serve: mqtt over tls on 127.0.0.1:4002\n\
                      vigil serve: mqtt on 127.0.0.1:4001\n";
        let (http, mqtt) = read_addresses(banner.as_bytes()).unwrap();
        assert_eq!(http, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(mqtt, "127.0.0.1:4001".parse().unwrap());
    }

    #[test]
    fn the_result_line_has_every_field() {
        let result = MqttBenchResult {
            connections: 10,
            offered_per_second: 25.0,
            accepted_per_second: 24.4,
            accepted: 490,
            rejected: 1,
            lost: 2,
            p50_ms: 1.234,
            p99_ms: 9.876,
        };
        assert_eq!(
            result.line(),
            "BENCH-MQTT connections=10 offered_rps=25 accepted_rps=24 accepted=490 rejected=1 \
             lost=2 p50_ms=1.23 p99_ms=9.88"
        );
    }
}
