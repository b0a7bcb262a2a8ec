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

    /// Updates a mitigation action's role, parameters or both, validated as on creation. The
    /// action type follows the new parameters, while the name, id and creation date stay.
    pub fn update_mitigation_action(
        &mut self,
        action_name: &str,
        role_arn: Option<String>,
        params: Option<MitigationActionParams>,
        now: Timestamp,
    ) -> Result<MitigationAction> {
        let mut action = self.mitigation.action(action_name)?.clone();
        if let Some(role_arn) = role_arn {
            action.role_arn = role_arn;
        }
        if let Some(params) = params {
            action.action_params = params;
        }
        let problems = validate::validate_mitigation_action(
            action_name,
            &action.role_arn,
            &action.action_params,
        );
        if !problems.is_empty() {
            return Err(Error::ValidationFailed(problems));
        }
        action.action_type = action.action_params.set_types()[0];
        action.last_modified_date = now;
        self.mitigation.replace_action(action)
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

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::model::{
        AddThingsToThingGroupParams, MitigationActionParams, MitigationActionType,
        PublishFindingToSnsParams,
    };
    use crate::{Engine, EngineConfig};

    const ROLE: &str = "arn:aws:iam::123456789012:role/mitigation";
    const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/other-role";

    fn quarantine_params(groups: Vec<String>) -> MitigationActionParams {
        MitigationActionParams {
            add_things_to_thing_group_params: Some(AddThingsToThingGroupParams {
                thing_group_names: groups,
                override_dynamic_groups: None,
            }),
            ..MitigationActionParams::default()
        }
    }

    fn engine_with_quarantine() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let params = quarantine_params(vec!["quarantine".to_string()]);
        engine
            .create_mitigation_action("quarantine", "id-1", ROLE, params, 1000)
            .unwrap();
        engine
    }

    #[test]
    fn update_mitigation_action_changes_type_with_params() {
        let mut engine = engine_with_quarantine();
        let sns = MitigationActionParams {
            publish_finding_to_sns_params: Some(PublishFindingToSnsParams {
                topic_arn: "arn:aws:sns:us-east-1:123456789012:findings".to_string(),
            }),
            ..MitigationActionParams::default()
        };
        let updated = engine
            .update_mitigation_action("quarantine", None, Some(sns.clone()), 5000)
            .unwrap();
        assert_eq!(
            updated.action_type,
            MitigationActionType::PublishFindingToSns
        );
        assert_eq!(updated.action_params, sns);
        assert_eq!(updated.role_arn, ROLE);
        assert_eq!(updated.action_id, "id-1");
        assert_eq!(updated.creation_date, 1000);
        assert_eq!(updated.last_modified_date, 5000);
        assert_eq!(engine.describe_mitigation_action("quarantine"), Ok(updated));
    }

    #[test]
    fn update_mitigation_action_changes_only_role() {
        let mut engine = engine_with_quarantine();
        let updated = engine
            .update_mitigation_action("quarantine", Some(OTHER_ROLE.to_string()), None, 2000)
            .unwrap();
        assert_eq!(updated.role_arn, OTHER_ROLE);
        assert_eq!(
            updated.action_type,
            MitigationActionType::AddThingsToThingGroup
        );
        assert_eq!(updated.last_modified_date, 2000);
    }

    #[test]
    fn invalid_update_leaves_mitigation_action_unchanged() {
        let mut engine = engine_with_quarantine();
        let before = engine.describe_mitigation_action("quarantine").unwrap();
        let error = engine
            .update_mitigation_action(
                "quarantine",
                Some("short".to_string()),
                Some(quarantine_params(vec![])),
                2000,
            )
            .unwrap_err();
        let Error::ValidationFailed(problems) = error else {
            panic!("expected a validation error, got {error:?}");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "roleArn",
                "actionParams.addThingsToThingGroupParams.thingGroupNames"
            ]
        );
        assert_eq!(engine.describe_mitigation_action("quarantine"), Ok(before));
    }

    #[test]
    fn updating_missing_mitigation_action_is_not_found() {
        let mut engine = Engine::new(EngineConfig::default());
        let error = engine.update_mitigation_action("nope", None, None, 0);
        assert_eq!(
            error,
            Err(Error::ResourceNotFound(
                "mitigation action `nope` does not exist".to_string()
            ))
        );
    }
}
