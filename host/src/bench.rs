//! `vigil bench`: datapoints scored and learned per second by one ML behavior, natively and
//! through the wasmtime component, in the same run.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::Datapoint;
use vigil_core::model::{
    Behavior, ConfidenceLevel, MetricValue, ModelStatus, SecurityProfile, Timestamp,
};
use vigil_core::{Engine, EngineConfig};

use crate::engine::CoreEngine;
use crate::sim::Rng;

const PROFILE_NAME: &str = "bench";
const METRIC: &str = "aws:num-messages-sent";
const TARGET: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// Arguments of `vigil bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Things, each with one ML-scored metric.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub things: u32,
    /// Datapoints timed after the models are active.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u32).range(1_000..=20_000_000))]
    pub datapoints: u32,
    /// Datapoints per engine call.
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
    Ok(())
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
