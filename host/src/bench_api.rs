//! `vigil bench-api`: requests per second and latency of the AWS API served by `vigil serve`,
//! with 1,000 stored security profiles and 100,000 stored violation events.
//!
//! The server runs in this process on a loopback port with a real SQLite database in a
//! temporary folder; clients are threads with one kept-alive, SigV4-signed connection each, so
//! every request pays for signing, verification, the engine call and the database.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use vigil_core::EngineConfig;

use crate::api::client::{ApiClient, encode};
use crate::api::{ApiState, Credentials};
use crate::plugins::{PluginHost, PluginLimits};
use crate::service::{Service, ServiceOptions, wall_clock_ms};

const ACCESS_KEY: &str = "AKIDVIGILBENCH";
const SECRET_KEY: &str = "vigil-bench-secret";
const REGION: &str = "us-east-1";
const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";
const DATAPOINTS_PER_BATCH: usize = 5_000;

/// Arguments of `vigil bench-api`.
#[derive(clap::Args, Debug)]
pub struct BenchApiArgs {
    /// Security profiles stored before the reads are timed.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub profiles: u32,
    /// Violation events stored before the reads are timed.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    pub violation_events: u32,
    /// Requests timed per read operation.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub requests: u32,
    /// Client threads, each with its own connection.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Folder for the database (default: a new folder in the system's temporary folder,
    /// removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// Latency and throughput of one operation.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationResult {
    /// Operation name, as the AWS CLI spells it.
    pub operation: String,
    /// Requests answered.
    pub requests: usize,
    /// Requests per second over the timed run.
    pub per_second: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
}

impl OperationResult {
    /// The committed output line.
    pub fn line(&self, concurrency: u32) -> String {
        format!(
            "BENCH-API op={} requests={} concurrency={concurrency} rps={:.0} p50_ms={:.2} p99_ms={:.2}",
            self.operation, self.requests, self.per_second, self.p50_ms, self.p99_ms
        )
    }
}

/// Runs the benchmark and prints one `BENCH-API` line per operation.
pub fn run(
    args: &BenchApiArgs,
    core_path: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<OperationResult>> {
    let (data_dir, remove_after) = match &args.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vigil-bench-api-{}", std::process::id())),
            true,
        ),
    };
    if data_dir.join("vigil.db").exists() {
        bail!(
            "`{}` already contains a database; pass an empty folder to --data",
            data_dir.display()
        );
    }
    let address = start_server(&data_dir, core_path)?;
    let results = measure(args, address, out);
    if remove_after {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    results
}

fn measure(
    args: &BenchApiArgs,
    address: SocketAddr,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<OperationResult>> {
    let client = || ApiClient::new(address, Credentials::new(ACCESS_KEY, SECRET_KEY), REGION);
    let profiles = args.profiles as usize;
    let mut results = Vec::new();

    let create = timed(
        "create-security-profile",
        profiles,
        args.concurrency,
        &client,
        &|client: &mut ApiClient, n: usize| {
            let body = r#"{"behaviors":[{"name":"messages","metric":"aws:num-messages-sent",
                "criteria":{"comparisonOperator":"less-than","value":{"count":100},
                "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}]}"#;
            expect_ok(client.send(
                "POST",
                &format!("/security-profiles/profile-{n:06}"),
                "",
                body,
            ))
        },
    )?;
    writeln!(out, "{}", create.line(args.concurrency))?;
    results.push(create);

    let (first_event, last_event) = store_violation_events(&mut client(), args.violation_events)?;
    let requests = args.requests as usize;
    let event_range = format!("startTime={first_event}&endTime={last_event}");

    let reads: [(&str, ReadRequest); 4] = [
        ("describe-security-profile", &|client, n| {
            let name = format!("profile-{:06}", n * 7919 % profiles);
            expect_ok(client.send("GET", &format!("/security-profiles/{name}"), "", ""))
        }),
        ("list-security-profiles", &|client, _| {
            expect_ok(client.send("GET", "/security-profiles", "maxResults=250", ""))
        }),
        ("list-violation-events", &|client, _| {
            let query = format!("{event_range}&maxResults=250");
            expect_ok(client.send("GET", "/violation-events", &query, ""))
        }),
        ("list-violation-events-for-thing", &|client, n| {
            let query = format!(
                "{event_range}&thingName=bench-{:04}&maxResults=250",
                n % 1000
            );
            expect_ok(client.send("GET", "/violation-events", &query, ""))
        }),
    ];
    for (operation, request) in reads {
        let result = timed(operation, requests, args.concurrency, &client, request)?;
        writeln!(out, "{}", result.line(args.concurrency))?;
        results.push(result);
    }
    Ok(results)
}

type ReadRequest<'a> = &'a (dyn Fn(&mut ApiClient, usize) -> anyhow::Result<()> + Sync);

fn expect_ok(response: anyhow::Result<crate::api::client::ClientResponse>) -> anyhow::Result<()> {
    let response = response?;
    if response.status != 200 {
        bail!(
            "the server responded {}: {}",
            response.status,
            response.body
        );
    }
    Ok(())
}

/// Starts the server on a loopback port in background threads and returns its address.
fn start_server(data_dir: &Path, core_path: &Path) -> anyhow::Result<SocketAddr> {
    let options = ServiceOptions {
        data_dir: data_dir.to_path_buf(),
        core_path: core_path.to_path_buf(),
        engine: EngineConfig::default(),
        engine_settings_given: false,
        time_scale: 1.0,
        simulate: 0,
        attack_after_days: 0,
    };
    let service = Service::open(&options, PluginHost::new(PluginLimits::default())?)?;
    let state = ApiState::new(Arc::new(Mutex::new(service)));
    let credentials = Arc::new(Credentials::new(ACCESS_KEY, SECRET_KEY));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("failed to listen on a loopback port")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let app = crate::serve::router(state, credentials, None);
            axum::serve(listener, app).await
        })
    });
    Ok(address)
}

/// Stores at least `count` violation events: a static behavior over every thing and
/// datapoints that alternate between violating and conforming, so each one raises or clears an
/// alarm. Returns the first and last event time in epoch seconds.
fn store_violation_events(client: &mut ApiClient, count: u32) -> anyhow::Result<(i64, i64)> {
    expect_ok(client.send(
        "POST",
        "/security-profiles/alarms",
        "",
        r#"{"behaviors":[{"name":"messages","metric":"aws:num-messages-sent",
            "criteria":{"comparisonOperator":"less-than","value":{"count":10},
            "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}]}"#,
    ))?;
    expect_ok(client.send(
        "PUT",
        "/security-profiles/alarms/targets",
        &format!("securityProfileTargetArn={}", encode(ALL_THINGS)),
        "",
    ))?;
    let things = 1000_usize;
    let periods = (count as usize).div_ceil(things);
    // Recent times, so alarms stay active rather than invalidated for silence.
    let first = wall_clock_ms() / 1000 - 300 * periods as i64;
    let progress = progress_bar(periods as u64 * things as u64);
    let mut batch = Vec::with_capacity(DATAPOINTS_PER_BATCH);
    for period in 0..periods {
        for thing in 0..things {
            let count = if period % 2 == 0 { 500 } else { 1 };
            batch.push(format!(
                r#"{{"thingName":"bench-{thing:04}","metricName":"aws:num-messages-sent","timestamp":{},"value":{{"count":{count}}}}}"#,
                first + 300 * period as i64
            ));
            if batch.len() == DATAPOINTS_PER_BATCH {
                send_batch(client, &mut batch)?;
                progress.inc(DATAPOINTS_PER_BATCH as u64);
            }
        }
    }
    send_batch(client, &mut batch)?;
    progress.finish_and_clear();
    Ok((first - 1, first + 300 * periods as i64 + 1))
}

fn send_batch(client: &mut ApiClient, batch: &mut Vec<String>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let body = format!(r#"{{"datapoints":[{}]}}"#, batch.join(","));
    batch.clear();
    expect_ok(client.send("POST", "/vigil/datapoints", "", &body))
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("storing violation events {bar:40} {pos}/{len}")
    {
        bar.set_style(style);
    }
    bar
}

/// Sends `requests` requests from `concurrency` threads and measures them.
fn timed(
    operation: &str,
    requests: usize,
    concurrency: u32,
    client: &(dyn Fn() -> ApiClient + Sync),
    request: ReadRequest<'_>,
) -> anyhow::Result<OperationResult> {
    let threads = concurrency as usize;
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut client = client();
                    let mut latencies = Vec::new();
                    for n in (worker..requests).step_by(threads) {
                        let sent = Instant::now();
                        request(&mut client, n)
                            .with_context(|| format!("request {n} of {operation} failed"))?;
                        latencies.push(sent.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("benchmark threads do not panic"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = latencies.into_iter().flatten().collect();
    latencies.sort();
    Ok(OperationResult {
        operation: operation.to_owned(),
        requests: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
    })
}

/// The latency at quantile `q` of sorted latencies, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_sample_at_the_quantile() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted[..1], 0.99), 1.0);
    }
}
