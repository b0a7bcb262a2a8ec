//! The Vigil engine for browsers, through wasm-bindgen. A thin layer: JavaScript values go in and
//! out in the AWS JSON shapes (camelCase fields, epoch-second timestamps) and every call is
//! forwarded to [`vigil_core::Engine`].
//!
//! Build with `cargo build --target wasm32-unknown-unknown -p vigil-web`, then
//! `wasm-bindgen --target web` on the output.

use serde::Deserialize;
use vigil_core::ingest::Datapoint;
use vigil_core::model::{MetricValue, SecurityProfile, Timestamp};
use vigil_core::violations::ViolationFilter;
use vigil_core::{Engine, EngineConfig};
use wasm_bindgen::prelude::*;

/// One datapoint as JavaScript passes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsDatapoint {
    thing_name: String,
    metric: String,
    #[serde(default)]
    dimension_name: Option<String>,
    /// Milliseconds since the epoch, like `Date.now()`.
    timestamp: f64,
    value: MetricValue,
}

impl From<JsDatapoint> for Datapoint {
    fn from(point: JsDatapoint) -> Self {
        Datapoint {
            thing_name: point.thing_name,
            metric: point.metric,
            dimension_name: point.dimension_name,
            timestamp: point.timestamp as Timestamp,
            value: point.value,
        }
    }
}

/// A detection engine living in the page or a worker.
#[wasm_bindgen]
pub struct WebEngine {
    engine: Engine,
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    serde_wasm_bindgen::to_value(value)
        .map_err(|e| JsError::new(&format!("failed to convert a result to JavaScript: {e}")))
}

fn from_js<T: serde::de::DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("invalid {what}: {e}")))
}

fn engine_error(error: vigil_core::Error) -> JsError {
    JsError::new(&error.to_string())
}

#[wasm_bindgen]
impl WebEngine {
    /// Creates an engine whose ML models build after `trainingDays` days and `minDatapoints`
    /// datapoints (AWS: 14 and 25000).
    #[wasm_bindgen(constructor)]
    pub fn new(training_days: u32, min_datapoints: u32) -> WebEngine {
        let config = EngineConfig {
            ml_training_days: i64::from(training_days),
            ml_min_datapoints: u64::from(min_datapoints),
            ..EngineConfig::default()
        };
        WebEngine {
            engine: Engine::new(config),
        }
    }

    /// Creates a security profile from `{securityProfileName, behaviors, ...}`.
    #[wasm_bindgen(js_name = createSecurityProfile)]
    pub fn create_security_profile(
        &mut self,
        profile: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsError> {
        let profile: SecurityProfile = from_js(profile, "security profile")?;
        let stored = self
            .engine
            .create_security_profile(profile, now_ms as Timestamp)
            .map_err(engine_error)?;
        to_js(&stored)
    }

    /// Attaches a profile to a target ARN such as `arn:aws:iot:us-east-1:123456789012:all/things`.
    #[wasm_bindgen(js_name = attachSecurityProfile)]
    pub fn attach_security_profile(&mut self, name: &str, target_arn: &str) -> Result<(), JsError> {
        self.engine
            .attach_security_profile(name, target_arn)
            .map_err(engine_error)
    }

    /// Ingests an array of `{thingName, metric, timestamp, value}` and returns the violation
    /// events they caused.
    #[wasm_bindgen(js_name = ingestDatapoints)]
    pub fn ingest_datapoints(&mut self, datapoints: JsValue) -> Result<JsValue, JsError> {
        let points: Vec<JsDatapoint> = from_js(datapoints, "datapoints")?;
        let points: Vec<Datapoint> = points.into_iter().map(Datapoint::from).collect();
        let result = self.engine.ingest_datapoints(&points);
        if let Some(rejection) = result.rejected.first() {
            return Err(JsError::new(&format!(
                "datapoint {} rejected: {}",
                rejection.index, rejection.message
            )));
        }
        to_js(&result.events)
    }

    /// Moves event time to `nowMs` and returns the violation events that fell due.
    #[wasm_bindgen(js_name = advanceTime)]
    pub fn advance_time(&mut self, now_ms: f64) -> Result<JsValue, JsError> {
        to_js(&self.engine.advance_time(now_ms as Timestamp))
    }

    /// Returns the active violations.
    #[wasm_bindgen(js_name = listActiveViolations)]
    pub fn list_active_violations(&self) -> Result<JsValue, JsError> {
        to_js(
            &self
                .engine
                .list_active_violations(&ViolationFilter::default()),
        )
    }

    /// Returns the training summaries of every ML behavior.
    #[wasm_bindgen(js_name = trainingSummaries)]
    pub fn training_summaries(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.training_summaries(None).map_err(engine_error)?)
    }

    /// Serializes the engine, for `WebEngine.restore`.
    pub fn snapshot(&self) -> Vec<u8> {
        self.engine.snapshot()
    }

    /// Restores an engine from `snapshot` output.
    pub fn restore(snapshot: &[u8]) -> Result<WebEngine, JsError> {
        let engine = Engine::restore(snapshot).map_err(engine_error)?;
        Ok(WebEngine { engine })
    }
}
