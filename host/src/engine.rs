//! The core engine component, loaded into wasmtime and wrapped in a typed API that speaks
//! `vigil-core` types. Callers never see the WIT-generated types.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use vigil_core::ingest::{CloudEvent, Datapoint, DeviceReport, IngestResult, ReportOutcome};
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{
    ActiveViolation, Behavior, BehaviorModelTrainingSummary, CustomMetric, CustomMetricType,
    DetectMitigationActionExecution, DetectMitigationActionsTaskSummary, Dimension,
    MitigationAction, MitigationActionParams, SecurityProfile, StoredSecurityProfile, TaskRequest,
    Timestamp, VerificationState, ViolationEvent,
};
use vigil_core::violations::ViolationFilter;
use vigil_core::{
    EngineConfig, EngineStats, ExecutionFilter, SecurityProfileFilter, ValidationError,
};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::engine as wit_engine;
use wit_engine::exports::vigil::detect::detector as witd;
use wit_engine::vigil::detect::types as wit;

vigil_core::impl_wit_conversions!(
    crate::bindings::engine::vigil::detect::types,
    crate::bindings::engine::exports::vigil::detect::detector
);

/// File name of the core component, looked up next to the `vigil` binary.
pub const CORE_WASM_NAME: &str = "vigil-core.wasm";

const BUILD_HINT: &str = "build it with `cargo xtask build` (or `cargo xtask build-wasm`, \
                          which writes target/wasm/vigil-core.wasm)";

/// Store data of the engine instance: a WASI context with nothing granted, because the core
/// does no I/O but its standard library still imports WASI.
struct EngineState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for EngineState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The engine component with one `engine` resource instantiated.
pub struct CoreEngine {
    store: Store<EngineState>,
    bindings: wit_engine::Engine,
    handle: ResourceAny,
}

/// Finds the core component: `explicit` if given, else next to the running binary, else in
/// `target/wasm/` of the source tree.
pub fn locate_core_wasm(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!(
                "core component `{}` does not exist; {BUILD_HINT}",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join(CORE_WASM_NAME));
        candidates.push(dir.join("../wasm").join(CORE_WASM_NAME));
        candidates.push(dir.join("../../wasm").join(CORE_WASM_NAME));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm")
            .join(CORE_WASM_NAME),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("core component `{CORE_WASM_NAME}` not found next to the `vigil` binary or in target/wasm; {BUILD_HINT}, or pass --core PATH"))
}

macro_rules! call {
    ($self:ident, $method:ident $(, $arg:expr)*) => {{
        let detector = $self.bindings.vigil_detect_detector().engine();
        detector
            .$method(&mut $self.store, $self.handle $(, $arg)*)
            .map_err(|e| anyhow!("{e:?}"))
            .context(concat!("failed to call `", stringify!($method), "` on the core component"))
    }};
}

fn engine_result<T, U: From<T>>(result: Result<T, wit::EngineError>) -> anyhow::Result<U> {
    result
        .map(U::from)
        .map_err(|e| anyhow::Error::new(vigil_core::Error::from(e)))
}

fn convert<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

mod lifecycle;
mod series;

pub use series::CoreSeriesDetector;

impl CoreEngine {
    /// Loads the component at `path` and creates an empty engine.
    pub fn load(path: &Path, config: EngineConfig) -> anyhow::Result<Self> {
        let (mut store, bindings) = instantiate(path)?;
        let handle = bindings
            .vigil_detect_detector()
            .engine()
            .call_constructor(&mut store, &config.into())
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to create the engine inside the core component")?;
        Ok(Self {
            store,
            bindings,
            handle,
        })
    }

    /// Loads the component at `path` and restores an engine from a snapshot.
    pub fn restore(path: &Path, snapshot: &[u8]) -> anyhow::Result<Self> {
        let (mut store, bindings) = instantiate(path)?;
        let restored = bindings
            .vigil_detect_detector()
            .engine()
            .call_restore(&mut store, snapshot)
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to call `restore` on the core component")?;
        let handle = restored
            .map_err(|e| anyhow::Error::new(vigil_core::Error::from(e)))
            .context("failed to restore the engine snapshot")?;
        Ok(Self {
            store,
            bindings,
            handle,
        })
    }

    /// Serializes the engine state.
    pub fn snapshot(&mut self) -> anyhow::Result<Vec<u8>> {
        call!(self, call_snapshot)
    }

    /// Validates behaviors.
    pub fn validate_behaviors(
        &mut self,
        behaviors: Vec<Behavior>,
    ) -> anyhow::Result<Vec<ValidationError>> {
        let behaviors: Vec<wit::Behavior> = convert(behaviors);
        Ok(convert(call!(self, call_validate_behaviors, &behaviors)?))
    }

    /// Creates a security profile.
    pub fn create_security_profile(
        &mut self,
        profile: SecurityProfile,
        now: Timestamp,
    ) -> anyhow::Result<StoredSecurityProfile> {
        engine_result(call!(
            self,
            call_create_security_profile,
            &profile.into(),
            now
        )?)
    }

    /// Replaces a security profile.
    pub fn update_security_profile(
        &mut self,
        profile: SecurityProfile,
        expected_version: Option<u64>,
        now: Timestamp,
    ) -> anyhow::Result<(StoredSecurityProfile, Vec<ViolationEvent>)> {
        let result = call!(
            self,
            call_update_security_profile,
            &profile.into(),
            expected_version,
            now
        )?;
        let (stored, events) =
            result.map_err(|e| anyhow::Error::new(vigil_core::Error::from(e)))?;
        Ok((stored.into(), convert(events)))
    }

    /// Returns a stored profile.
    pub fn describe_security_profile(
        &mut self,
        name: &str,
    ) -> anyhow::Result<StoredSecurityProfile> {
        engine_result(call!(self, call_describe_security_profile, name)?)
    }

    /// Returns the names of the profiles matching a filter, sorted.
    pub fn list_security_profiles(
        &mut self,
        filter: SecurityProfileFilter,
    ) -> anyhow::Result<Vec<String>> {
        engine_result(call!(self, call_list_security_profiles, &filter.into())?)
    }

    /// Returns the names of the profiles attached directly to a target ARN, sorted.
    pub fn list_security_profiles_for_target(
        &mut self,
        target_arn: &str,
    ) -> anyhow::Result<Vec<String>> {
        engine_result(call!(
            self,
            call_list_security_profiles_for_target,
            target_arn
        )?)
    }

    /// Attaches a profile to a target ARN.
    pub fn attach_security_profile(&mut self, name: &str, target_arn: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_attach_security_profile, name, target_arn)?)
    }

    /// Creates a custom metric.
    pub fn create_custom_metric(
        &mut self,
        name: &str,
        metric_type: CustomMetricType,
        display_name: Option<String>,
        now: Timestamp,
    ) -> anyhow::Result<CustomMetric> {
        engine_result(call!(
            self,
            call_create_custom_metric,
            name,
            metric_type.into(),
            display_name.as_deref(),
            now
        )?)
    }

    /// Returns a custom metric.
    pub fn describe_custom_metric(&mut self, name: &str) -> anyhow::Result<CustomMetric> {
        engine_result(call!(self, call_describe_custom_metric, name)?)
    }

    /// Sets a custom metric's display name.
    pub fn update_custom_metric(
        &mut self,
        name: &str,
        display_name: String,
        now: Timestamp,
    ) -> anyhow::Result<CustomMetric> {
        engine_result(call!(
            self,
            call_update_custom_metric,
            name,
            &display_name,
            now
        )?)
    }

    /// Deletes a custom metric that no profile uses.
    pub fn delete_custom_metric(&mut self, name: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_delete_custom_metric, name)?)
    }

    /// Returns the names of all custom metrics, sorted.
    pub fn list_custom_metrics(&mut self) -> anyhow::Result<Vec<String>> {
        call!(self, call_list_custom_metrics)
    }

    /// Creates a topic-filter dimension.
    pub fn create_dimension(
        &mut self,
        name: &str,
        string_values: Vec<String>,
        now: Timestamp,
    ) -> anyhow::Result<Dimension> {
        engine_result(call!(
            self,
            call_create_dimension,
            name,
            &string_values,
            now
        )?)
    }

    /// Returns a dimension.
    pub fn describe_dimension(&mut self, name: &str) -> anyhow::Result<Dimension> {
        engine_result(call!(self, call_describe_dimension, name)?)
    }

    /// Replaces a dimension's values.
    pub fn update_dimension(
        &mut self,
        name: &str,
        string_values: Vec<String>,
        now: Timestamp,
    ) -> anyhow::Result<Dimension> {
        engine_result(call!(
            self,
            call_update_dimension,
            name,
            &string_values,
            now
        )?)
    }

    /// Deletes a dimension that no profile uses.
    pub fn delete_dimension(&mut self, name: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_delete_dimension, name)?)
    }

    /// Returns the names of all dimensions, sorted.
    pub fn list_dimensions(&mut self) -> anyhow::Result<Vec<String>> {
        call!(self, call_list_dimensions)
    }

    /// Registers a thing.
    pub fn create_thing(&mut self, thing: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_create_thing, thing)?)
    }

    /// Creates a thing group and returns its ARN.
    pub fn create_thing_group(&mut self, group: &str) -> anyhow::Result<String> {
        engine_result(call!(self, call_create_thing_group, group)?)
    }

    /// Adds a thing to a group.
    pub fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_add_thing_to_thing_group, thing, group)?)
    }

    /// Things in a group.
    pub fn list_things_in_thing_group(&mut self, group: &str) -> anyhow::Result<Vec<String>> {
        engine_result(call!(self, call_list_things_in_thing_group, group)?)
    }

    /// Groups of a thing.
    pub fn list_thing_groups_for_thing(&mut self, thing: &str) -> anyhow::Result<Vec<String>> {
        call!(self, call_list_thing_groups_for_thing, thing)
    }

    /// Ingests device reports.
    pub fn ingest_reports(
        &mut self,
        reports: Vec<DeviceReport>,
    ) -> anyhow::Result<(Vec<ReportOutcome>, Vec<ViolationEvent>)> {
        let reports: Vec<witd::DeviceReport> = convert(reports);
        let (outcomes, events) = call!(self, call_ingest_reports, &reports)?;
        Ok((convert(outcomes), convert(events)))
    }

    /// Ingests per-period datapoints.
    pub fn ingest_datapoints(
        &mut self,
        datapoints: Vec<Datapoint>,
    ) -> anyhow::Result<IngestResult> {
        let datapoints: Vec<witd::Datapoint> = convert(datapoints);
        Ok(call!(self, call_ingest_datapoints, &datapoints)?.into())
    }

    /// Ingests broker events.
    pub fn ingest_cloud_events(&mut self, events: Vec<CloudEvent>) -> anyhow::Result<IngestResult> {
        let events: Vec<witd::CloudEvent> = convert(events);
        Ok(call!(self, call_ingest_cloud_events, &events)?.into())
    }

    /// Moves event time forward.
    pub fn advance_time(&mut self, now: Timestamp) -> anyhow::Result<Vec<ViolationEvent>> {
        Ok(convert(call!(self, call_advance_time, now)?))
    }

    /// Removes and returns the retained datapoints accepted since the last call, oldest first.
    pub fn take_retained_datapoints(&mut self) -> anyhow::Result<Vec<Datapoint>> {
        Ok(convert(call!(self, call_take_retained_datapoints)?))
    }

    /// Returns the engine's totals.
    pub fn stats(&mut self) -> anyhow::Result<EngineStats> {
        Ok(call!(self, call_stats)?.into())
    }

    /// Active violations.
    pub fn list_active_violations(
        &mut self,
        filter: ViolationFilter,
    ) -> anyhow::Result<Vec<ActiveViolation>> {
        Ok(convert(call!(
            self,
            call_list_active_violations,
            &filter.into()
        )?))
    }

    /// Violation events in a time range.
    pub fn list_violation_events(
        &mut self,
        filter: ViolationFilter,
        start: Timestamp,
        end: Timestamp,
    ) -> anyhow::Result<Vec<ViolationEvent>> {
        Ok(convert(call!(
            self,
            call_list_violation_events,
            &filter.into(),
            start,
            end
        )?))
    }

    /// Labels a violation.
    pub fn put_verification_state(
        &mut self,
        violation_id: &str,
        state: VerificationState,
        description: Option<&str>,
    ) -> anyhow::Result<()> {
        engine_result(call!(
            self,
            call_put_verification_state,
            violation_id,
            state.into(),
            description
        )?)
    }

    /// Training summaries.
    pub fn training_summaries(
        &mut self,
        profile: Option<&str>,
    ) -> anyhow::Result<Vec<BehaviorModelTrainingSummary>> {
        let summaries: Vec<witd::TrainingSummary> =
            engine_result(call!(self, call_get_training_summaries, profile)?)?;
        Ok(convert(summaries))
    }

    /// Creates a mitigation action.
    pub fn create_mitigation_action(
        &mut self,
        name: &str,
        action_id: &str,
        role_arn: &str,
        params: MitigationActionParams,
        now: Timestamp,
    ) -> anyhow::Result<MitigationAction> {
        let params: wit::MitigationActionParams = params.into();
        engine_result(call!(
            self,
            call_create_mitigation_action,
            name,
            action_id,
            role_arn,
            &params,
            now
        )?)
    }

    /// Updates a mitigation action's role, parameters or both.
    pub fn update_mitigation_action(
        &mut self,
        name: &str,
        role_arn: Option<String>,
        params: Option<MitigationActionParams>,
        now: Timestamp,
    ) -> anyhow::Result<MitigationAction> {
        let params: Option<wit::MitigationActionParams> = params.map(Into::into);
        engine_result(call!(
            self,
            call_update_mitigation_action,
            name,
            role_arn.as_deref(),
            params.as_ref(),
            now
        )?)
    }

    /// Starts a detect mitigation task.
    pub fn start_mitigation_task(
        &mut self,
        request: TaskRequest,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        engine_result(call!(
            self,
            call_start_mitigation_task,
            &request.into(),
            now
        )?)
    }

    /// Hands out the next pending execution of a task.
    pub fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<PendingExecution>> {
        let pending: Option<witd::PendingExecution> =
            engine_result(call!(self, call_next_pending_execution, task_id, now)?)?;
        Ok(pending.map(Into::into))
    }

    /// Records the outcome of an execution.
    pub fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        let outcome: witd::ExecutionOutcome = outcome.into();
        engine_result(call!(
            self,
            call_record_execution_outcome,
            task_id,
            violation_id,
            action_name,
            &outcome,
            now
        )?)
    }

    /// Returns a task.
    pub fn describe_mitigation_task(
        &mut self,
        task_id: &str,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        engine_result(call!(self, call_describe_mitigation_task, task_id)?)
    }

    /// Executions matching a filter.
    pub fn list_mitigation_executions(
        &mut self,
        filter: ExecutionFilter,
    ) -> anyhow::Result<Vec<DetectMitigationActionExecution>> {
        Ok(convert(call!(
            self,
            call_list_mitigation_executions,
            &filter.into()
        )?))
    }
}

fn instantiate(path: &Path) -> anyhow::Result<(Store<EngineState>, wit_engine::Engine)> {
    let engine = wasmtime::Engine::new(&Config::new())
        .map_err(|e| anyhow!("{e:?}"))
        .context("failed to create the wasmtime engine")?;
    let component = Component::from_file(&engine, path)
        .map_err(|e| anyhow!("{e:?}"))
        .with_context(|| {
            format!(
                "failed to load core component `{}`; {BUILD_HINT}",
                path.display()
            )
        })?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| anyhow!("{e:?}"))
        .context("failed to link WASI for the core component")?;
    let state = EngineState {
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, state);
    let bindings = wit_engine::Engine::instantiate(&mut store, &component, &linker)
        .map_err(|e| anyhow!("{e:?}"))
        .with_context(|| {
            format!(
                "failed to instantiate `{}`: it is not a compatible `vigil:detect/engine` component; {BUILD_HINT}",
                path.display()
            )
        })?;
    Ok((store, bindings))
}
