//! Deleting, detaching, cancelling and listing: the engine calls the AWS API needs beyond the
//! ones the demo uses.

use anyhow::{Context as _, anyhow};
use vigil_core::model::{
    DetectMitigationActionsTaskSummary, MitigationAction, Timestamp, ViolationEvent,
};

use super::{CoreEngine, convert, engine_result, witd};

/// Turns an engine result carrying violation events into `vigil-core` events.
fn events_result(
    result: Result<Vec<super::wit::ViolationEvent>, super::wit::EngineError>,
) -> anyhow::Result<Vec<ViolationEvent>> {
    result
        .map(convert)
        .map_err(|e| anyhow::Error::new(vigil_core::Error::from(e)))
}

impl CoreEngine {
    /// Deletes a profile; its alarms end as invalidated.
    pub fn delete_security_profile(
        &mut self,
        name: &str,
        expected_version: Option<u64>,
        now: Timestamp,
    ) -> anyhow::Result<Vec<ViolationEvent>> {
        events_result(call!(
            self,
            call_delete_security_profile,
            name,
            expected_version,
            now
        )?)
    }

    /// Detaches a profile from a target; alarms of things no longer covered are invalidated.
    pub fn detach_security_profile(
        &mut self,
        name: &str,
        target_arn: &str,
        now: Timestamp,
    ) -> anyhow::Result<Vec<ViolationEvent>> {
        events_result(call!(
            self,
            call_detach_security_profile,
            name,
            target_arn,
            now
        )?)
    }

    /// Lists the target ARNs of a profile.
    pub fn list_targets_for_security_profile(&mut self, name: &str) -> anyhow::Result<Vec<String>> {
        engine_result(call!(self, call_list_targets_for_security_profile, name)?)
    }

    /// Deletes a thing group.
    pub fn delete_thing_group(&mut self, group: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_delete_thing_group, group)?)
    }

    /// Removes a thing from a group.
    pub fn remove_thing_from_thing_group(
        &mut self,
        thing: &str,
        group: &str,
    ) -> anyhow::Result<()> {
        engine_result(call!(
            self,
            call_remove_thing_from_thing_group,
            thing,
            group
        )?)
    }

    /// Returns a mitigation action.
    pub fn describe_mitigation_action(&mut self, name: &str) -> anyhow::Result<MitigationAction> {
        engine_result(call!(self, call_describe_mitigation_action, name)?)
    }

    /// Deletes a mitigation action.
    pub fn delete_mitigation_action(&mut self, name: &str) -> anyhow::Result<()> {
        engine_result(call!(self, call_delete_mitigation_action, name)?)
    }

    /// Lists every mitigation action, sorted by name.
    pub fn list_mitigation_actions(&mut self) -> anyhow::Result<Vec<MitigationAction>> {
        let actions: Vec<witd::MitigationAction> = call!(self, call_list_mitigation_actions)?;
        Ok(convert(actions))
    }

    /// Cancels a task; pending executions end as skipped.
    pub fn cancel_mitigation_task(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        engine_result(call!(self, call_cancel_mitigation_task, task_id, now)?)
    }

    /// Lists tasks started between two times.
    pub fn list_mitigation_tasks(
        &mut self,
        start: Timestamp,
        end: Timestamp,
    ) -> anyhow::Result<Vec<DetectMitigationActionsTaskSummary>> {
        let tasks: Vec<witd::TaskSummary> = call!(self, call_list_mitigation_tasks, start, end)?;
        Ok(convert(tasks))
    }

    /// Current event time of the engine.
    pub fn current_time(&mut self) -> anyhow::Result<Timestamp> {
        call!(self, call_current_time)
    }
}
