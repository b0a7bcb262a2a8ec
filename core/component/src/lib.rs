//! The Vigil engine exported as a WebAssembly component implementing world `vigil:detect/engine`.
//!
//! This crate is glue only: each exported method converts its WIT arguments to `vigil-core`
//! types, calls the engine and converts the result back. It builds for `wasm32-wasip2` only.

#![allow(
    unsafe_code,
    reason = "wit-bindgen generates the unsafe canonical ABI glue"
)]

use std::cell::RefCell;

use vigil_core::Engine;

wit_bindgen::generate!({
    path: "../../wit",
    world: "vigil:detect/engine",
});

use exports::vigil::detect::detector as witd;
use vigil::detect::types as wit;

vigil_core::impl_wit_conversions!(vigil::detect::types, exports::vigil::detect::detector);

type WitResult<T> = Result<T, wit::EngineError>;

struct Component;

impl witd::Guest for Component {
    type Engine = EngineResource;
    type SeriesDetector = SeriesDetectorResource;
}

/// One streaming series detector, in a `RefCell` for the same reason as the engine.
struct SeriesDetectorResource(RefCell<vigil_core::detector::StreamingDetector>);

impl witd::GuestSeriesDetector for SeriesDetectorResource {
    fn new(scale: witd::ValueScale) -> Self {
        let detector = vigil_core::detector::StreamingDetector::new(scale.into());
        Self(RefCell::new(detector))
    }

    fn observe(&self, points: Vec<witd::SeriesPoint>) -> Vec<witd::AnomalyVerdict> {
        let mut detector = self.0.borrow_mut();
        points
            .into_iter()
            .map(|point| detector.observe(point.timestamp, point.value).into())
            .collect()
    }
}

/// One engine. Component methods take `&self`, so the engine sits in a `RefCell`; the component
/// model never calls into one instance re-entrantly.
struct EngineResource(RefCell<Engine>);

fn convert<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

fn lift<T, U: From<T>>(result: vigil_core::Result<T>) -> WitResult<U> {
    result.map(U::from).map_err(wit::EngineError::from)
}

impl witd::GuestEngine for EngineResource {
    fn new(config: witd::EngineConfig) -> Self {
        Self(RefCell::new(Engine::new(config.into())))
    }

    fn restore(snapshot: Vec<u8>) -> WitResult<witd::Engine> {
        let engine = Engine::restore(&snapshot)?;
        Ok(witd::Engine::new(Self(RefCell::new(engine))))
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.borrow().snapshot()
    }

    fn validate_behaviors(&self, behaviors: Vec<wit::Behavior>) -> Vec<wit::ValidationError> {
        let behaviors: Vec<vigil_core::model::Behavior> = convert(behaviors);
        convert(self.0.borrow().validate_behaviors(&behaviors))
    }

    fn create_security_profile(
        &self,
        profile: wit::SecurityProfile,
        now: wit::Timestamp,
    ) -> WitResult<wit::StoredSecurityProfile> {
        lift(
            self.0
                .borrow_mut()
                .create_security_profile(profile.into(), now),
        )
    }

    fn update_security_profile(
        &self,
        profile: wit::SecurityProfile,
        expected_version: Option<u64>,
        now: wit::Timestamp,
    ) -> WitResult<(wit::StoredSecurityProfile, Vec<wit::ViolationEvent>)> {
        let mut engine = self.0.borrow_mut();
        let (stored, events) =
            engine.update_security_profile(profile.into(), expected_version, now)?;
        Ok((stored.into(), convert(events)))
    }

    fn delete_security_profile(
        &self,
        name: String,
        expected_version: Option<u64>,
        now: wit::Timestamp,
    ) -> WitResult<Vec<wit::ViolationEvent>> {
        let events = self
            .0
            .borrow_mut()
            .delete_security_profile(&name, expected_version, now)?;
        Ok(convert(events))
    }

    fn describe_security_profile(&self, name: String) -> WitResult<wit::StoredSecurityProfile> {
        lift(self.0.borrow().describe_security_profile(&name))
    }

    fn list_security_profiles(
        &self,
        filter: witd::SecurityProfileFilter,
    ) -> WitResult<Vec<String>> {
        lift(self.0.borrow().list_security_profiles(&filter.into()))
    }

    fn list_security_profiles_for_target(&self, target_arn: String) -> WitResult<Vec<String>> {
        lift(
            self.0
                .borrow()
                .list_security_profiles_for_target(&target_arn),
        )
    }

    fn attach_security_profile(&self, name: String, target_arn: String) -> WitResult<()> {
        lift(
            self.0
                .borrow_mut()
                .attach_security_profile(&name, &target_arn),
        )
    }

    fn detach_security_profile(
        &self,
        name: String,
        target_arn: String,
        now: wit::Timestamp,
    ) -> WitResult<Vec<wit::ViolationEvent>> {
        let events = self
            .0
            .borrow_mut()
            .detach_security_profile(&name, &target_arn, now)?;
        Ok(convert(events))
    }

    fn list_targets_for_security_profile(&self, name: String) -> WitResult<Vec<String>> {
        lift(self.0.borrow().list_targets_for_security_profile(&name))
    }

    fn create_custom_metric(
        &self,
        metric_name: String,
        metric_type: witd::CustomMetricType,
        display_name: Option<String>,
        now: wit::Timestamp,
    ) -> WitResult<witd::CustomMetric> {
        let mut engine = self.0.borrow_mut();
        lift(engine.create_custom_metric(&metric_name, metric_type.into(), display_name, now))
    }

    fn describe_custom_metric(&self, metric_name: String) -> WitResult<witd::CustomMetric> {
        lift(self.0.borrow().describe_custom_metric(&metric_name))
    }

    fn update_custom_metric(
        &self,
        metric_name: String,
        display_name: String,
        now: wit::Timestamp,
    ) -> WitResult<witd::CustomMetric> {
        let mut engine = self.0.borrow_mut();
        lift(engine.update_custom_metric(&metric_name, display_name, now))
    }

    fn delete_custom_metric(&self, metric_name: String) -> WitResult<()> {
        lift(self.0.borrow_mut().delete_custom_metric(&metric_name))
    }

    fn list_custom_metrics(&self) -> Vec<String> {
        self.0.borrow().list_custom_metrics()
    }

    fn create_dimension(
        &self,
        name: String,
        string_values: Vec<String>,
        now: wit::Timestamp,
    ) -> WitResult<witd::Dimension> {
        lift(
            self.0
                .borrow_mut()
                .create_dimension(&name, string_values, now),
        )
    }

    fn describe_dimension(&self, name: String) -> WitResult<witd::Dimension> {
        lift(self.0.borrow().describe_dimension(&name))
    }

    fn update_dimension(
        &self,
        name: String,
        string_values: Vec<String>,
        now: wit::Timestamp,
    ) -> WitResult<witd::Dimension> {
        lift(
            self.0
                .borrow_mut()
                .update_dimension(&name, string_values, now),
        )
    }

    fn delete_dimension(&self, name: String) -> WitResult<()> {
        lift(self.0.borrow_mut().delete_dimension(&name))
    }

    fn list_dimensions(&self) -> Vec<String> {
        self.0.borrow().list_dimensions()
    }

    fn create_thing(&self, thing_name: String) -> WitResult<()> {
        lift(self.0.borrow_mut().create_thing(&thing_name))
    }

    fn create_thing_group(&self, group_name: String) -> WitResult<String> {
        lift(self.0.borrow_mut().create_thing_group(&group_name))
    }

    fn delete_thing_group(&self, group_name: String) -> WitResult<()> {
        self.0.borrow_mut().delete_thing_group(&group_name)?;
        Ok(())
    }

    fn add_thing_to_thing_group(&self, thing_name: String, group_name: String) -> WitResult<()> {
        lift(
            self.0
                .borrow_mut()
                .add_thing_to_thing_group(&thing_name, &group_name),
        )
    }

    fn remove_thing_from_thing_group(
        &self,
        thing_name: String,
        group_name: String,
    ) -> WitResult<()> {
        let mut engine = self.0.borrow_mut();
        engine.remove_thing_from_thing_group(&thing_name, &group_name)?;
        Ok(())
    }

    fn list_things_in_thing_group(&self, group_name: String) -> WitResult<Vec<String>> {
        lift(self.0.borrow().list_things_in_thing_group(&group_name))
    }

    fn list_thing_groups_for_thing(&self, thing_name: String) -> Vec<String> {
        self.0.borrow().list_thing_groups_for_thing(&thing_name)
    }

    fn ingest_reports(
        &self,
        reports: Vec<witd::DeviceReport>,
    ) -> (Vec<witd::ReportOutcome>, Vec<wit::ViolationEvent>) {
        let reports: Vec<vigil_core::ingest::DeviceReport> = convert(reports);
        let (outcomes, events) = self.0.borrow_mut().ingest_reports(&reports);
        (convert(outcomes), convert(events))
    }

    fn ingest_datapoints(&self, datapoints: Vec<witd::Datapoint>) -> witd::IngestResult {
        let datapoints: Vec<vigil_core::ingest::Datapoint> = convert(datapoints);
        self.0.borrow_mut().ingest_datapoints(&datapoints).into()
    }

    fn ingest_cloud_events(&self, events: Vec<witd::CloudEvent>) -> witd::IngestResult {
        let events: Vec<vigil_core::ingest::CloudEvent> = convert(events);
        self.0.borrow_mut().ingest_cloud_events(&events).into()
    }

    fn advance_time(&self, now: wit::Timestamp) -> Vec<wit::ViolationEvent> {
        convert(self.0.borrow_mut().advance_time(now))
    }

    fn current_time(&self) -> wit::Timestamp {
        self.0.borrow().current_time()
    }

    fn take_retained_datapoints(&self) -> Vec<witd::Datapoint> {
        convert(self.0.borrow_mut().take_retained_datapoints())
    }

    fn stats(&self) -> witd::EngineStats {
        self.0.borrow().stats().into()
    }

    fn list_active_violations(&self, filter: witd::ViolationFilter) -> Vec<wit::ActiveViolation> {
        convert(self.0.borrow().list_active_violations(&filter.into()))
    }

    fn list_violation_events(
        &self,
        filter: witd::ViolationFilter,
        start_time: wit::Timestamp,
        end_time: wit::Timestamp,
    ) -> Vec<wit::ViolationEvent> {
        let engine = self.0.borrow();
        convert(engine.list_violation_events(&filter.into(), start_time, end_time))
    }

    fn put_verification_state(
        &self,
        violation_id: String,
        state: wit::VerificationState,
        description: Option<String>,
    ) -> WitResult<()> {
        let mut engine = self.0.borrow_mut();
        lift(engine.put_verification_state(&violation_id, state.into(), description))
    }

    fn get_training_summaries(
        &self,
        security_profile_name: Option<String>,
    ) -> WitResult<Vec<witd::TrainingSummary>> {
        let summaries = self
            .0
            .borrow()
            .training_summaries(security_profile_name.as_deref())?;
        Ok(convert(summaries))
    }

    fn create_mitigation_action(
        &self,
        action_name: String,
        action_id: String,
        role_arn: String,
        params: wit::MitigationActionParams,
        now: wit::Timestamp,
    ) -> WitResult<witd::MitigationAction> {
        let mut engine = self.0.borrow_mut();
        let action = engine.create_mitigation_action(
            &action_name,
            &action_id,
            &role_arn,
            params.into(),
            now,
        );
        lift(action)
    }

    fn update_mitigation_action(
        &self,
        action_name: String,
        role_arn: Option<String>,
        params: Option<wit::MitigationActionParams>,
        now: wit::Timestamp,
    ) -> WitResult<witd::MitigationAction> {
        let mut engine = self.0.borrow_mut();
        let params = params.map(Into::into);
        lift(engine.update_mitigation_action(&action_name, role_arn, params, now))
    }

    fn describe_mitigation_action(&self, action_name: String) -> WitResult<witd::MitigationAction> {
        lift(self.0.borrow().describe_mitigation_action(&action_name))
    }

    fn delete_mitigation_action(&self, action_name: String) -> WitResult<()> {
        lift(self.0.borrow_mut().delete_mitigation_action(&action_name))
    }

    fn list_mitigation_actions(&self) -> Vec<witd::MitigationAction> {
        convert(self.0.borrow().list_mitigation_actions())
    }

    fn start_mitigation_task(
        &self,
        request: witd::TaskRequest,
        now: wit::Timestamp,
    ) -> WitResult<witd::TaskSummary> {
        lift(
            self.0
                .borrow_mut()
                .start_mitigation_task(&request.into(), now),
        )
    }

    fn next_pending_execution(
        &self,
        task_id: String,
        now: wit::Timestamp,
    ) -> WitResult<Option<witd::PendingExecution>> {
        let pending = self.0.borrow_mut().next_pending_execution(&task_id, now)?;
        Ok(pending.map(Into::into))
    }

    fn record_execution_outcome(
        &self,
        task_id: String,
        violation_id: String,
        action_name: String,
        outcome: witd::ExecutionOutcome,
        now: wit::Timestamp,
    ) -> WitResult<witd::TaskSummary> {
        let mut engine = self.0.borrow_mut();
        let summary = engine.record_execution_outcome(
            &task_id,
            &violation_id,
            &action_name,
            outcome.into(),
            now,
        );
        lift(summary)
    }

    fn cancel_mitigation_task(
        &self,
        task_id: String,
        now: wit::Timestamp,
    ) -> WitResult<witd::TaskSummary> {
        lift(self.0.borrow_mut().cancel_mitigation_task(&task_id, now))
    }

    fn describe_mitigation_task(&self, task_id: String) -> WitResult<witd::TaskSummary> {
        lift(self.0.borrow().describe_mitigation_task(&task_id))
    }

    fn list_mitigation_tasks(
        &self,
        start_time: wit::Timestamp,
        end_time: wit::Timestamp,
    ) -> Vec<witd::TaskSummary> {
        convert(self.0.borrow().list_mitigation_tasks(start_time, end_time))
    }

    fn list_mitigation_executions(&self, filter: witd::ExecutionFilter) -> Vec<witd::Execution> {
        convert(self.0.borrow().list_mitigation_executions(&filter.into()))
    }
}

export!(Component);
