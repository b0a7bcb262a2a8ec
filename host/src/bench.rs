//! `vigil bench`: datapoints scored and learned per second by one ML behavior, and by the
//! streaming series detector that `vigil nab` scores, natively and through the wasmtime
//! component, in the same run.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::detector::StreamingDetector;
use vigil_core::ingest::Datapoint;
use vigil_core::ml::Scale;
use vigil_core::model::{
    Behavior, ConfidenceLevel, MetricValue, ModelStatus, SecurityProfile, Timestamp,
};
use vigil_core::{Engine, EngineConfig};

use crate::engine::{CoreEngine, CoreSeriesDetector};
use crate::sim::Rng;

const PROFILE_NAME: &str = "bench";
const METRIC: &str = "aws:num-messages-sent";
const TARGET: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// Arguments of `vigil bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Things, each with one ML-scored metric (1 to 100,000).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub things: u32,
    /// Datapoints timed after the models are active (1,000 to 20,000,000); also the length of
    /// the series the series detector scores.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u32).range(1_000..=20_000_000))]
    pub datapoints: u32,
    /// Datapoints per engine call (1 to 1,000,000). The series detector's component calls always
    /// take 10,000.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
}

/// Measured throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchResult {
    /// Datapoints per second, native engine.
    pub native_per_second: f64,
    /// Datapoints per second, engine component in wasmtime.
    pub wasm_per_second: f64,
    /// Engine snapshot bytes per (thing, metric) after the run.
    pub state_bytes_per_series: f64,
}

/// Runs the benchmark and prints the figures.
pub fn run(args: &BenchArgs, core: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.things > 0 && args.batch > 0 && args.datapoints > 0,
        "--things and --batch must be positive"
    );
    let result = measure(args, core)?;
    writeln!(
        out,
        "bench: {} things, 1 ML behavior, {} datapoints scored and learned after one training day, batches of {}",
        args.things, args.datapoints, args.batch
    )?;
    writeln!(
        out,
        "native engine:     {:>12.0} datapoints/s",
        result.native_per_second
    )?;
    writeln!(
        out,
        "wasmtime component:{:>12.0} datapoints/s",
        result.wasm_per_second
    )?;
    writeln!(
        out,
        "ratio (wasmtime / native): {:.2}",
        result.wasm_per_second / result.native_per_second
    )?;
    writeln!(
        out,
        "model state: {:.0} bytes per (thing, metric), measured as snapshot size / things",
        result.state_bytes_per_series
    )?;
    writeln!(
        out,
        "BENCH native_dps={:.0} wasm_dps={:.0} ratio={:.3} state_bytes_per_series={:.0}",
        result.native_per_second,
        result.wasm_per_second,
        result.wasm_per_second / result.native_per_second,
        result.state_bytes_per_series
    )?;
    let detector = measure_series_detector(args.datapoints as usize, core)?;
    print_series_detector(&detector, args.datapoints, out)?;
    Ok(())
}

/// Measured throughput of the streaming series detector on one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesDetectorResult {
    /// Datapoints per second, native detector.
    pub native_per_second: f64,
    /// Datapoints per second, detector inside the core component in wasmtime.
    pub wasm_per_second: f64,
    /// 99th percentile of the native time per datapoint, in nanoseconds.
    pub native_p99_ns: f64,
    /// Serialized detector state after the run, in bytes.
    pub state_bytes: usize,
}

/// Datapoints per component call when the series detector runs in wasmtime.
const SERIES_BATCH: usize = 10_000;
/// Datapoints timed one by one for the latency percentile.
const LATENCY_SAMPLES: usize = 200_000;

/// Runs the series detector over one series of `datapoints` datapoints natively and in
/// wasmtime, then times single datapoints natively for the latency percentile.
pub fn measure_series_detector(
    datapoints: usize,
    core: &Path,
) -> anyhow::Result<SeriesDetectorResult> {
    let series = series_values(datapoints + LATENCY_SAMPLES);
    let (timed, latency_part) = series.split_at(datapoints);

    let mut native = StreamingDetector::new(Scale::Real);
    let clock = Instant::now();
    let mut reports = 0_usize;
    for &(timestamp, value) in timed {
        reports += usize::from(native.observe(timestamp, value).anomaly_score > 0.0);
    }
    let native_seconds = clock.elapsed().as_secs_f64();
    let native_p99_ns = latency_p99_ns(&mut native, latency_part);
    let state_bytes = rmp_serde::to_vec_named(&native)
        .map_err(|e| anyhow::anyhow!("failed to serialize the series detector: {e}"))?
        .len();

    let mut component = CoreSeriesDetector::load(core, Scale::Real)?;
    let clock = Instant::now();
    let mut component_reports = 0_usize;
    for chunk in timed.chunks(SERIES_BATCH) {
        let verdicts = component.observe(chunk)?;
        component_reports += verdicts.iter().filter(|v| v.anomaly_score > 0.0).count();
    }
    let wasm_seconds = clock.elapsed().as_secs_f64();
    anyhow::ensure!(
        reports == component_reports,
        "the native detector made {reports} reports but the component made {component_reports}"
    );
    Ok(SeriesDetectorResult {
        native_per_second: timed.len() as f64 / native_seconds,
        wasm_per_second: timed.len() as f64 / wasm_seconds,
        native_p99_ns,
        state_bytes,
    })
}

fn latency_p99_ns(detector: &mut StreamingDetector, points: &[(Timestamp, f64)]) -> f64 {
    let mut nanos: Vec<u128> = points
        .iter()
        .map(|&(timestamp, value)| {
            let clock = Instant::now();
            std::hint::black_box(detector.observe(timestamp, value));
            clock.elapsed().as_nanos()
        })
        .collect();
    nanos.sort_unstable();
    nanos.get(nanos.len() * 99 / 100).map_or(0.0, |&n| n as f64)
}

fn print_series_detector(
    result: &SeriesDetectorResult,
    datapoints: u32,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "series detector: one series of {datapoints} datapoints scored and learned, natively and in wasmtime"
    )?;
    writeln!(
        out,
        "native detector:   {:>12.0} datapoints/s, p99 {:.0} ns per datapoint",
        result.native_per_second, result.native_p99_ns
    )?;
    writeln!(
        out,
        "wasmtime detector: {:>12.0} datapoints/s",
        result.wasm_per_second
    )?;
    writeln!(
        out,
        "detector state: {} bytes per series, MessagePack with field names, as engine snapshots store state",
        result.state_bytes
    )?;
    writeln!(
        out,
        "BENCH-DETECTOR native_dps={:.0} wasm_dps={:.0} ratio={:.3} p99_ns={:.0} state_bytes_per_series={}",
        result.native_per_second,
        result.wasm_per_second,
        result.wasm_per_second / result.native_per_second,
        result.native_p99_ns,
        result.state_bytes
    )?;
    Ok(())
}

/// Generates a 5-minute series with a daily rhythm, Gaussian noise, a spike every few days and a level
/// shift every three weeks, so every step of the detector runs.
fn series_values(count: usize) -> Vec<(Timestamp, f64)> {
    let mut rng = Rng::new(7);
    (0..count)
        .map(|i| {
            let timestamp = i as i64 * PERIOD_MS;
            let hour = (timestamp.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
            let rhythm = 50.0 + 20.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
            let spike = if i % 1_009 == 1_000 { 300.0 } else { 0.0 };
            let shift = if (i / 6_048) % 2 == 1 { 15.0 } else { 0.0 };
            (timestamp, rhythm + 5.0 * rng.normal() + spike + shift)
        })
        .collect()
}

/// Runs both engines over the same datapoints and times the part after training.
pub fn measure(args: &BenchArgs, core: &Path) -> anyhow::Result<BenchResult> {
    let (things, datapoints, batch_size) = (
        args.things as usize,
        args.datapoints as usize,
        args.batch as usize,
    );
    let training = generate(things, things * (DAY_MS / PERIOD_MS) as usize + things, 0);
    let start = training.last().map_or(0, |d| d.timestamp + PERIOD_MS);
    let timed = generate(things, datapoints, start);

    let mut native = Engine::new(bench_config());
    configure_native(&mut native)?;
    for batch in training.chunks(batch_size) {
        native.ingest_datapoints(batch);
    }
    ensure_active(
        native
            .training_summaries(Some(PROFILE_NAME))?
            .first()
            .map(|s| s.model_status),
    )?;
    let clock = Instant::now();
    for batch in timed.chunks(batch_size) {
        native.ingest_datapoints(batch);
    }
    let native_seconds = clock.elapsed().as_secs_f64();

    let mut component = CoreEngine::load(core, bench_config())?;
    configure_component(&mut component)?;
    for batch in training.chunks(batch_size) {
        component.ingest_datapoints(batch.to_vec())?;
    }
    let clock = Instant::now();
    for batch in timed.chunks(batch_size) {
        component.ingest_datapoints(batch.to_vec())?;
    }
    let wasm_seconds = clock.elapsed().as_secs_f64();

    Ok(BenchResult {
        native_per_second: timed.len() as f64 / native_seconds,
        wasm_per_second: timed.len() as f64 / wasm_seconds,
        state_bytes_per_series: native.snapshot().len() as f64 / things as f64,
    })
}

fn ensure_active(status: Option<ModelStatus>) -> anyhow::Result<()> {
    anyhow::ensure!(
        status == Some(ModelStatus::Active),
        "the benchmark model did not become active after training: {status:?}"
    );
    Ok(())
}

fn bench_config() -> EngineConfig {
    EngineConfig {
        ml_training_days: 1,
        ml_min_datapoints: 0,
        ..EngineConfig::default()
    }
}

fn bench_profile() -> SecurityProfile {
    SecurityProfile {
        name: PROFILE_NAME.to_string(),
        behaviors: vec![Behavior::machine_learning(
            "messages-sent-ml",
            METRIC,
            ConfidenceLevel::High,
        )],
        ..SecurityProfile::default()
    }
}

fn configure_native(engine: &mut Engine) -> anyhow::Result<()> {
    engine.create_security_profile(bench_profile(), 0)?;
    engine.attach_security_profile(PROFILE_NAME, TARGET)?;
    Ok(())
}

fn configure_component(engine: &mut CoreEngine) -> anyhow::Result<()> {
    engine.create_security_profile(bench_profile(), 0)?;
    engine.attach_security_profile(PROFILE_NAME, TARGET)
}

/// `count` datapoints for `things` things, one per thing per period from `start`, with a daily
/// pattern and Poisson noise.
fn generate(things: usize, count: usize, start: Timestamp) -> Vec<Datapoint> {
    let mut rng = Rng::new(42);
    let names: Vec<String> = (0..things).map(|i| format!("bench-{i:05}")).collect();
    (0..count)
        .map(|i| {
            let timestamp = start + (i / things) as i64 * PERIOD_MS;
            let hour = (timestamp.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
            let rate = 10.0 + 8.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
            Datapoint {
                thing_name: names[i % things].clone(),
                metric: METRIC.to_string(),
                dimension_name: None,
                timestamp,
                value: MetricValue::count(rng.poisson(rate)),
            }
        })
        .collect()
}
