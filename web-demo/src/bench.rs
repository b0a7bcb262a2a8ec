//! The in-browser throughput benchmark, shaped like `vigil bench`: one ML behavior on
//! `aws:num-messages-sent`, one datapoint per thing per five minutes, a day of untimed training,
//! then batches of datapoints scored and learned. The page times only [`BenchRun::ingest`], so
//! generating the next batch is not counted, as in the native benchmark.

use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::Datapoint;
use vigil_core::model::{
    Behavior, ConfidenceLevel, MetricValue, ModelStatus, SecurityProfile, Timestamp,
};
use vigil_core::{Engine, EngineConfig};
use wasm_bindgen::prelude::*;

use crate::sim::Rng;

const PROFILE_NAME: &str = "bench";
const METRIC: &str = "aws:num-messages-sent";
const TARGET: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// An engine with a trained benchmark profile and a generator of timed batches.
#[wasm_bindgen]
pub struct BenchRun {
    engine: Engine,
    names: Vec<String>,
    rng: Rng,
    /// Index of the next datapoint to generate; its period is `next / things`.
    next: usize,
    batch: Vec<Datapoint>,
}

#[wasm_bindgen]
impl BenchRun {
    /// Creates the engine for `things` things and trains it on one simulated day, untimed.
    #[wasm_bindgen(constructor)]
    pub fn new(things: u32) -> Result<BenchRun, JsError> {
        if things == 0 {
            return Err(JsError::new("invalid thing count 0: use at least 1"));
        }
        let config = EngineConfig {
            ml_training_days: 1,
            ml_min_datapoints: 0,
            ..EngineConfig::default()
        };
        let mut run = BenchRun {
            engine: Engine::new(config),
            names: (0..things).map(|i| format!("bench-{i:05}")).collect(),
            rng: Rng::new(42),
            next: 0,
            batch: Vec::new(),
        };
        run.configure()
            .map_err(|e| JsError::new(&format!("failed to create the bench profile: {e}")))?;
        run.train()?;
        Ok(run)
    }

    /// Generates the next `count` datapoints, to be ingested by [`BenchRun::ingest`].
    pub fn prepare(&mut self, count: u32) {
        self.batch = self.generate(count as usize);
    }

    /// Scores and learns the prepared batch and returns how many datapoints it held.
    pub fn ingest(&mut self) -> u32 {
        self.engine.ingest_datapoints(&self.batch).accepted
    }

    /// Size of the engine snapshot in bytes, to compare state size with the native figure.
    #[wasm_bindgen(js_name = snapshotBytes)]
    pub fn snapshot_bytes(&self) -> usize {
        self.engine.snapshot().len()
    }
}

impl BenchRun {
    fn configure(&mut self) -> vigil_core::Result<()> {
        let profile = SecurityProfile {
            name: PROFILE_NAME.to_string(),
            behaviors: vec![Behavior::machine_learning(
                "messages-sent-ml",
                METRIC,
                ConfidenceLevel::High,
            )],
            ..SecurityProfile::default()
        };
        self.engine.create_security_profile(profile, 0)?;
        self.engine.attach_security_profile(PROFILE_NAME, TARGET)
    }

    /// Feeds one day and one more period, so the first daily build has run and made the model
    /// active.
    fn train(&mut self) -> Result<(), JsError> {
        let things = self.names.len();
        let training = things * (DAY_MS / PERIOD_MS) as usize + things;
        for _ in 0..training.div_ceil(10_000) {
            let count = 10_000.min(training - self.next);
            let batch = self.generate(count);
            self.engine.ingest_datapoints(&batch);
        }
        let status = self
            .engine
            .training_summaries(Some(PROFILE_NAME))
            .ok()
            .and_then(|s| s.first().map(|s| s.model_status));
        if status != Some(ModelStatus::Active) {
            return Err(JsError::new(&format!(
                "the benchmark model did not become active after training: {status:?}"
            )));
        }
        Ok(())
    }

    /// The next `count` datapoints, one per thing per period, with a daily pattern and Poisson
    /// noise.
    fn generate(&mut self, count: usize) -> Vec<Datapoint> {
        let things = self.names.len();
        let points = (self.next..self.next + count)
            .map(|i| {
                let timestamp = (i / things) as Timestamp * PERIOD_MS;
                let hour = timestamp.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
                let rate = 10.0 + 8.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
                Datapoint {
                    thing_name: self.names[i % things].clone(),
                    metric: METRIC.to_string(),
                    dimension_name: None,
                    timestamp,
                    value: MetricValue::count(self.rng.poisson(rate)),
                }
            })
            .collect();
        self.next += count;
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_then_ingests_prepared_batches() {
        let mut run = BenchRun::new(20).unwrap_or_else(|_| panic!("training succeeds"));
        run.prepare(100);
        assert_eq!(run.ingest(), 100);
        assert_eq!(run.next, 20 * 288 + 20 + 100);
    }
}
