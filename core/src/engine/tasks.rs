//! Mitigation actions and detect mitigation tasks.

use super::Engine;
use crate::error::{Error, Result};
use crate::mitigation::{Candidate, ExecutionOutcome, PendingExecution};
use crate::model::{
    DetectMitigationActionExecution, DetectMitigationActionsTaskSummary, MitigationAction,
    MitigationActionParams, TaskRequest, Timestamp, ViolationEvent, ViolationEventType,
};
use crate::validate;
use crate::violations::ViolationRecord;

/// Filters for listing executions; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionFilter {
    /// Only this task.
    pub task_id: Option<String>,
    /// Only this violation.
    pub violation_id: Option<String>,
    /// Only this thing.
    pub thing_name: Option<String>,
    /// Only executions started at or after this time.
    pub start_time: Option<Timestamp>,
    /// Only executions started at or before this time.
    pub end_time: Option<Timestamp>,
}

impl Engine {
    /// Creates a mitigation action with a caller-chosen UUID.
    pub fn create_mitigation_action(
        &mut self,
        action_name: &str,
        action_id: &str,
        role_arn: &str,
        params: MitigationActionParams,
        now: Timestamp,
    ) -> Result<MitigationAction> {
        let problems = validate::validate_mitigation_action(action_name, role_arn, &params);
        if !problems.is_empty() {
            return Err(Error::ValidationFailed(problems));
        }
        let action_type = params.set_types()[0];
        let action = MitigationAction {
            action_name: action_name.to_string(),
            action_id: action_id.to_string(),
            action_arn: self.arn(&format!("mitigationaction/{action_name}")),
            role_arn: role_arn.to_string(),
            action_params: params,
            action_type,
            creation_date: now,
            last_modified_date: now,
        };
        self.mitigation.create_action(action)
    }

    /// Returns a mitigation action.
    pub fn describe_mitigation_action(&self, action_name: &str) -> Result<MitigationAction> {
        self.mitigation.action(action_name).cloned()
    }

    /// Deletes a mitigation action.
    pub fn delete_mitigation_action(&mut self, action_name: &str) -> Result<()> {
        self.mitigation.delete_action(action_name)
    }

    /// Returns every mitigation action, by name.
    pub fn list_mitigation_actions(&self) -> Vec<MitigationAction> {
        self.mitigation.actions()
    }

    /// Starts a detect mitigation task.
    pub fn start_mitigation_task(
        &mut self,
        request: &TaskRequest,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        let problems = validate::validate_task_request(request);
        if !problems.is_empty() {
            return Err(Error::ValidationFailed(problems));
        }
        let candidates = self.task_candidates(request)?;
        self.mitigation.start_task(request, candidates, now)
    }

    /// Resolves the violations a task acts on, oldest first, each marked if the task's flags
    /// exclude it.
    fn task_candidates(&self, request: &TaskRequest) -> Result<Vec<Candidate>> {
        let mut records: Vec<&ViolationRecord> = match &request.target.violation_ids {
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.violations.get(id).ok_or_else(|| {
                        Error::InvalidRequest(format!("violation `{id}` does not exist"))
                    })
                })
                .collect::<Result<_>>()?,
            None => self
                .violations
                .records()
                .filter(|r| {
                    Some(&r.security_profile_name) == request.target.security_profile_name.as_ref()
                })
                .filter(|r| {
                    let behavior = request.target.behavior_name.as_ref();
                    behavior.is_none_or(|b| *b == r.behavior.name)
                })
                .collect(),
        };
        if let Some(range) = request.violation_event_occurrence_range {
            records.retain(|r| {
                self.violations
                    .has_event_between(&r.violation_id, range.start_time, range.end_time)
            });
        }
        records.sort_by(|a, b| (a.start, &a.violation_id).cmp(&(b.start, &b.violation_id)));
        records.dedup_by(|a, b| a.violation_id == b.violation_id);
        Ok(records.into_iter().map(|r| candidate(request, r)).collect())
    }

    /// Hands out the next execution of a task waiting for the host.
    pub fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> Result<Option<PendingExecution>> {
        self.mitigation.next_pending(task_id, now)
    }

    /// Records the outcome of a handed-out execution.
    pub fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        self.mitigation
            .record_outcome(task_id, violation_id, action_name, outcome, now)
    }

    /// Cancels a task.
    pub fn cancel_mitigation_task(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        self.mitigation.cancel(task_id, now)
    }

    /// Returns a task.
    pub fn describe_mitigation_task(
        &self,
        task_id: &str,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        self.mitigation.task(task_id)
    }

    /// Tasks started in `[start, end]`.
    pub fn list_mitigation_tasks(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<DetectMitigationActionsTaskSummary> {
        self.mitigation.tasks(start, end)
    }

    /// Executions matching `filter`.
    pub fn list_mitigation_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Vec<DetectMitigationActionExecution> {
        self.mitigation
            .executions()
            .into_iter()
            .filter(|e| filter.task_id.as_ref().is_none_or(|t| *t == e.task_id))
            .filter(|e| {
                filter
                    .violation_id
                    .as_ref()
                    .is_none_or(|v| *v == e.violation_id)
            })
            .filter(|e| {
                filter
                    .thing_name
                    .as_ref()
                    .is_none_or(|t| *t == e.thing_name)
            })
            .filter(|e| {
                let started = e.execution_start_date;
                filter
                    .start_time
                    .is_none_or(|s| started.is_some_and(|t| t >= s))
                    && filter
                        .end_time
                        .is_none_or(|end| started.is_some_and(|t| t <= end))
            })
            .collect()
    }
}

fn candidate(request: &TaskRequest, record: &ViolationRecord) -> Candidate {
    let excluded_because = if request.include_only_active_violations && !record.active {
        Some("the violation is no longer active and includeOnlyActiveViolations is set".to_string())
    } else if !request.include_suppressed_alerts && record.behavior.is_suppressed() {
        Some(format!(
            "alerts of behavior `{}` are suppressed and includeSuppressedAlerts is not set",
            record.behavior.name
        ))
    } else {
        None
    };
    Candidate {
        violation: snapshot_of(record),
        excluded_because,
    }
}

/// Builds an `in-alarm` event for the violation, carrying its latest violating value.
fn snapshot_of(record: &ViolationRecord) -> ViolationEvent {
    ViolationEvent {
        violation_id: record.violation_id.clone(),
        thing_name: record.thing_name.clone(),
        security_profile_name: record.security_profile_name.clone(),
        behavior: record.behavior.clone(),
        metric_value: record.last_value.clone(),
        violation_event_additional_info: record.info.clone(),
        violation_event_type: ViolationEventType::InAlarm,
        verification_state: record.verification_state,
        verification_state_description: record.verification_description.clone(),
        violation_event_time: record.start,
    }
}
