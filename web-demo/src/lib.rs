//! The Vigil engine for browsers, through wasm-bindgen. A thin layer: JavaScript values go in and
//! out in the AWS JSON shapes (camelCase fields, epoch-second timestamps) and every call is
//! forwarded to [`vigil_core::Engine`]. Times passed in are milliseconds since the epoch, like
//! `Date.now()`.
//!
//! Besides the engine, the module holds what the browser demo page needs and the core does not
//! have: a simulated fleet ([`sim::SimulatedFleet`]), a throughput benchmark
//! ([`bench::BenchRun`]), and the in-page execution of the `ADD_THINGS_TO_THING_GROUP`
//! mitigation action, which the `vigil` host runs through a plugin instead.
//!
//! Build with `cargo xtask build-web`, which runs `cargo build --target wasm32-unknown-unknown`
//! and then `wasm-bindgen --target web` on the output.

pub mod bench;
pub mod sim;

use serde::{Deserialize, Serialize};
use vigil_core::ingest::Datapoint;
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{
    MetricValue, MitigationActionParams, SecurityProfile, StoredSecurityProfile, TaskRequest,
    Timestamp, VerificationState, ViolationEvent,
};
use vigil_core::violations::ViolationFilter;
use vigil_core::{Engine, EngineConfig, ExecutionFilter};
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

/// What `updateSecurityProfile` returns.
#[derive(Serialize)]
struct ProfileUpdate {
    profile: StoredSecurityProfile,
    events: Vec<ViolationEvent>,
}

/// A detection engine living in the page or a worker.
#[wasm_bindgen]
pub struct WebEngine {
    engine: Engine,
}

/// Converts a result to plain JavaScript values: objects for maps, `null` for absent values.
fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
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

    /// Current event time in milliseconds.
    #[wasm_bindgen(js_name = currentTime)]
    pub fn current_time(&self) -> f64 {
        self.engine.current_time() as f64
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

    /// Returns a stored security profile.
    #[wasm_bindgen(js_name = describeSecurityProfile)]
    pub fn describe_security_profile(&self, name: &str) -> Result<JsValue, JsError> {
        to_js(
            &self
                .engine
                .describe_security_profile(name)
                .map_err(engine_error)?,
        )
    }

    /// Replaces a profile's contents, as `update-security-profile` does. Returns the stored
    /// profile and the `alarm-invalidated` events of alarms the change ended, as
    /// `{profile, events}`.
    #[wasm_bindgen(js_name = updateSecurityProfile)]
    pub fn update_security_profile(
        &mut self,
        profile: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsError> {
        let profile: SecurityProfile = from_js(profile, "security profile")?;
        let (stored, events) = self
            .engine
            .update_security_profile(profile, None, now_ms as Timestamp)
            .map_err(engine_error)?;
        to_js(&ProfileUpdate {
            profile: stored,
            events,
        })
    }

    /// Attaches a profile to a target ARN such as `arn:aws:iot:us-east-1:123456789012:all/things`.
    #[wasm_bindgen(js_name = attachSecurityProfile)]
    pub fn attach_security_profile(&mut self, name: &str, target_arn: &str) -> Result<(), JsError> {
        self.engine
            .attach_security_profile(name, target_arn)
            .map_err(engine_error)
    }

    /// Creates a thing group and returns its ARN.
    #[wasm_bindgen(js_name = createThingGroup)]
    pub fn create_thing_group(&mut self, group: &str) -> Result<String, JsError> {
        self.engine.create_thing_group(group).map_err(engine_error)
    }

    /// Adds a thing to a thing group.
    #[wasm_bindgen(js_name = addThingToThingGroup)]
    pub fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> Result<(), JsError> {
        self.engine
            .add_thing_to_thing_group(thing, group)
            .map_err(engine_error)
    }

    /// Returns the things in a thing group, sorted.
    #[wasm_bindgen(js_name = listThingsInThingGroup)]
    pub fn list_things_in_thing_group(&self, group: &str) -> Result<Vec<String>, JsError> {
        self.engine
            .list_things_in_thing_group(group)
            .map_err(engine_error)
    }

    /// Returns the groups of a thing, sorted.
    #[wasm_bindgen(js_name = listThingGroupsForThing)]
    pub fn list_thing_groups_for_thing(&self, thing: &str) -> Vec<String> {
        self.engine.list_thing_groups_for_thing(thing)
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

    /// Returns the violation events between `startMs` and `endMs`, both included, oldest first.
    #[wasm_bindgen(js_name = listViolationEvents)]
    pub fn list_violation_events(&self, start_ms: f64, end_ms: f64) -> Result<JsValue, JsError> {
        let events = self.engine.list_violation_events(
            &ViolationFilter::default(),
            start_ms as Timestamp,
            end_ms as Timestamp,
        );
        to_js(&events)
    }

    /// Labels a violation: `state` is `TRUE_POSITIVE`, `BENIGN_POSITIVE`, `FALSE_POSITIVE` or
    /// `UNKNOWN`.
    #[wasm_bindgen(js_name = putVerificationState)]
    pub fn put_verification_state(
        &mut self,
        violation_id: &str,
        state: JsValue,
        description: Option<String>,
    ) -> Result<(), JsError> {
        let state: VerificationState = from_js(state, "verification state")?;
        self.engine
            .put_verification_state(violation_id, state, description)
            .map_err(engine_error)
    }

    /// Returns the training summaries of every ML behavior.
    #[wasm_bindgen(js_name = trainingSummaries)]
    pub fn training_summaries(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.training_summaries(None).map_err(engine_error)?)
    }

    /// Returns `{low, high, scoring}`: the range an ML behavior accepts from `thing` at
    /// `timestampMs`, or `null` while its model has no data. `scoring` is false while the
    /// range comes from the model still training.
    #[wasm_bindgen(js_name = expectedRange)]
    pub fn expected_range(
        &self,
        profile: &str,
        behavior: &str,
        thing: &str,
        timestamp_ms: f64,
    ) -> Result<JsValue, JsError> {
        let range =
            self.engine
                .ml_expected_range(profile, behavior, thing, timestamp_ms as Timestamp);
        to_js(&range)
    }

    /// Creates a mitigation action from `actionParams` in the AWS shape, for example
    /// `{addThingsToThingGroupParams: {thingGroupNames: ["quarantine"]}}`. The action id is
    /// derived from the name.
    #[wasm_bindgen(js_name = createMitigationAction)]
    pub fn create_mitigation_action(
        &mut self,
        action_name: &str,
        role_arn: &str,
        action_params: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsError> {
        let params: MitigationActionParams = from_js(action_params, "action parameters")?;
        let action_id = uuid_from_name(action_name);
        let action = self
            .engine
            .create_mitigation_action(
                action_name,
                &action_id,
                role_arn,
                params,
                now_ms as Timestamp,
            )
            .map_err(engine_error)?;
        to_js(&action)
    }

    /// Returns every mitigation action, by name.
    #[wasm_bindgen(js_name = listMitigationActions)]
    pub fn list_mitigation_actions(&self) -> Result<JsValue, JsError> {
        to_js(&self.engine.list_mitigation_actions())
    }

    /// Starts a detect mitigation task from a `start-detect-mitigation-actions-task` request
    /// (`{taskId, target, actions, includeOnlyActiveViolations, includeSuppressedAlerts}`) and
    /// runs its executions in the page. See [`WebEngine::run_mitigation_task`].
    #[wasm_bindgen(js_name = startMitigationTask)]
    pub fn start_mitigation_task(
        &mut self,
        request: JsValue,
        now_ms: f64,
    ) -> Result<JsValue, JsError> {
        let request: TaskRequest = from_js(request, "mitigation task request")?;
        let now = now_ms as Timestamp;
        self.engine
            .start_mitigation_task(&request, now)
            .map_err(engine_error)?;
        self.run_mitigation_task(&request.task_id, now_ms)
    }

    /// Applies every pending execution of a task and returns the task summary.
    /// `ADD_THINGS_TO_THING_GROUP` adds the violating thing to the action's groups in the
    /// engine's registry. Other action types act outside the engine, so their executions fail
    /// with `UnsupportedInBrowser`.
    #[wasm_bindgen(js_name = runMitigationTask)]
    pub fn run_mitigation_task(&mut self, task_id: &str, now_ms: f64) -> Result<JsValue, JsError> {
        let now = now_ms as Timestamp;
        while let Some(pending) = self
            .engine
            .next_pending_execution(task_id, now)
            .map_err(engine_error)?
        {
            let outcome = apply_in_page(&mut self.engine, &pending);
            let execution = &pending.execution;
            self.engine
                .record_execution_outcome(
                    task_id,
                    &execution.violation_id,
                    &execution.action_name,
                    outcome,
                    now,
                )
                .map_err(engine_error)?;
        }
        to_js(
            &self
                .engine
                .describe_mitigation_task(task_id)
                .map_err(engine_error)?,
        )
    }

    /// Returns the executions of one task.
    #[wasm_bindgen(js_name = listMitigationExecutions)]
    pub fn list_mitigation_executions(&self, task_id: &str) -> Result<JsValue, JsError> {
        let filter = ExecutionFilter {
            task_id: Some(task_id.to_string()),
            ..ExecutionFilter::default()
        };
        to_js(&self.engine.list_mitigation_executions(&filter))
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

impl WebEngine {
    /// The wrapped engine, for the simulator and the benchmark.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The wrapped engine, read-only.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Applies one execution inside the page. Only `ADD_THINGS_TO_THING_GROUP` changes engine state.
fn apply_in_page(engine: &mut Engine, pending: &PendingExecution) -> ExecutionOutcome {
    let Some(params) = &pending
        .action
        .action_params
        .add_things_to_thing_group_params
    else {
        return ExecutionOutcome::Failed {
            error_code: "UnsupportedInBrowser".to_string(),
            message: format!(
                "action type `{:?}` acts outside the engine and needs the `vigil` host",
                pending.action.action_type
            ),
        };
    };
    let thing = &pending.violation.thing_name;
    for group in &params.thing_group_names {
        if let Err(error) = engine.add_thing_to_thing_group(thing, group) {
            return ExecutionOutcome::Failed {
                error_code: "ResourceNotFoundException".to_string(),
                message: error.to_string(),
            };
        }
    }
    ExecutionOutcome::Successful
}

/// Formats a version-4-shaped UUID from an FNV-1a hash of `name`, so the same action name always
/// gets the same id.
fn uuid_from_name(name: &str) -> String {
    let hash = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let high = hash(0xcbf2_9ce4_8422_2325);
    let low = hash(0x8422_2325_cbf2_9ce4);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xfff,
        low >> 52,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_stable_uuids() {
        let id = uuid_from_name("quarantine");
        assert_eq!(id, uuid_from_name("quarantine"));
        assert_ne!(id, uuid_from_name("quarantine2"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
