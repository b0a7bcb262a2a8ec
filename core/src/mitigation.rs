//! Mitigation actions and detect mitigation tasks as pure bookkeeping. The engine plans the
//! executions of a task; the host applies each one and reports the outcome back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    DetectMitigationActionExecution, DetectMitigationActionsTaskSummary, ExecutionStatus,
    MitigationAction, TaskRequest, TaskStatistics, TaskStatus, Timestamp, ViolationEvent,
};

/// Outcome of one execution, as reported by the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionOutcome {
    /// The action took effect.
    Successful,
    /// The action failed.
    Failed {
        /// Machine-readable code.
        error_code: String,
        /// Readable reason.
        message: String,
    },
}

/// Everything the host needs to apply one execution.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingExecution {
    /// The execution, `IN_PROGRESS`.
    pub execution: DetectMitigationActionExecution,
    /// The action as it was when the task started.
    pub action: MitigationAction,
    /// The violation as it was when the task started.
    pub violation: ViolationEvent,
}

/// A violation chosen by a task, with whether the task's flags exclude it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The violation as it is now, as an event-shaped snapshot.
    pub violation: ViolationEvent,
    /// Reason the task's flags exclude it, if they do.
    pub excluded_because: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Task {
    summary: DetectMitigationActionsTaskSummary,
    executions: Vec<DetectMitigationActionExecution>,
    /// Violation snapshots keyed by violation id.
    violations: BTreeMap<String, ViolationEvent>,
    /// Indexes of executions handed to the host and not yet reported.
    handed_out: Vec<usize>,
}

/// Mitigation actions and tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mitigation {
    actions: BTreeMap<String, MitigationAction>,
    tasks: BTreeMap<String, Task>,
}

impl Mitigation {
    /// Stores a new action.
    pub fn create_action(&mut self, action: MitigationAction) -> Result<MitigationAction> {
        if self.actions.contains_key(&action.action_name) {
            return Err(Error::ResourceAlreadyExists(format!(
                "mitigation action `{}` already exists",
                action.action_name
            )));
        }
        self.actions
            .insert(action.action_name.clone(), action.clone());
        Ok(action)
    }

    /// Looks up an action.
    pub fn action(&self, name: &str) -> Result<&MitigationAction> {
        self.actions.get(name).ok_or_else(|| {
            Error::ResourceNotFound(format!("mitigation action `{name}` does not exist"))
        })
    }

    /// Replaces a stored action with `action`, which has the same name.
    pub fn replace_action(&mut self, action: MitigationAction) -> Result<MitigationAction> {
        let stored = self.actions.get_mut(&action.action_name).ok_or_else(|| {
            Error::ResourceNotFound(format!(
                "mitigation action `{}` does not exist",
                action.action_name
            ))
        })?;
        *stored = action.clone();
        Ok(action)
    }

    /// Deletes an action.
    pub fn delete_action(&mut self, name: &str) -> Result<()> {
        self.actions.remove(name).map(|_| ()).ok_or_else(|| {
            Error::ResourceNotFound(format!("mitigation action `{name}` does not exist"))
        })
    }

    /// Returns every action, by name.
    pub fn actions(&self) -> Vec<MitigationAction> {
        self.actions.values().cloned().collect()
    }

    /// Starts a task over `candidates`, planning one execution per violation and action in
    /// action order. Excluded violations get `SKIPPED` executions at once.
    pub fn start_task(
        &mut self,
        request: &TaskRequest,
        candidates: Vec<Candidate>,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        if self.tasks.contains_key(&request.task_id) {
            return Err(Error::TaskAlreadyExists(format!(
                "mitigation task `{}` already exists; choose another task id",
                request.task_id
            )));
        }
        let actions = self.resolve_actions(&request.actions)?;
        let mut task = Task {
            summary: new_summary(request, actions.clone(), now),
            executions: Vec::new(),
            violations: BTreeMap::new(),
            handed_out: Vec::new(),
        };
        for candidate in candidates {
            plan_executions(&mut task, &actions, candidate, now);
        }
        task.finish_if_done(now);
        let summary = task.summary.clone();
        self.tasks.insert(request.task_id.clone(), task);
        Ok(summary)
    }

    fn resolve_actions(&self, names: &[String]) -> Result<Vec<MitigationAction>> {
        names
            .iter()
            .map(|name| {
                self.actions.get(name).cloned().ok_or_else(|| {
                    Error::InvalidRequest(format!("mitigation action `{name}` does not exist"))
                })
            })
            .collect()
    }

    /// Hands out the next execution waiting for the host.
    pub fn next_pending(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> Result<Option<PendingExecution>> {
        let task = self.task_mut(task_id)?;
        let next = task
            .executions
            .iter()
            .enumerate()
            .position(|(index, execution)| {
                execution.status == ExecutionStatus::InProgress && !task.handed_out.contains(&index)
            });
        let Some(index) = next else {
            return Ok(None);
        };
        task.handed_out.push(index);
        let execution = &mut task.executions[index];
        execution.execution_start_date = Some(now);
        let pending = PendingExecution {
            execution: execution.clone(),
            action: task
                .summary
                .actions_definition
                .iter()
                .find(|a| a.action_name == execution.action_name)
                .cloned()
                .expect("executions only name actions of their task"),
            violation: task.violations[&execution.violation_id].clone(),
        };
        Ok(Some(pending))
    }

    /// Records the outcome of a handed-out execution.
    pub fn record_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        let task = self.task_mut(task_id)?;
        let index = task
            .executions
            .iter()
            .position(|e| e.violation_id == violation_id && e.action_name == action_name)
            .ok_or_else(|| {
                Error::ResourceNotFound(format!(
                    "task `{task_id}` has no execution of `{action_name}` on violation `{violation_id}`"
                ))
            })?;
        if task.executions[index].status != ExecutionStatus::InProgress {
            return Err(Error::InvalidRequest(format!(
                "execution of `{action_name}` on violation `{violation_id}` already ended"
            )));
        }
        task.handed_out.retain(|&i| i != index);
        task.apply_outcome(index, outcome, now);
        task.finish_if_done(now);
        Ok(task.summary.clone())
    }

    /// Cancels a task; executions not yet ended are skipped.
    pub fn cancel(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> Result<DetectMitigationActionsTaskSummary> {
        let task = self.task_mut(task_id)?;
        // Cancelling a task that already ended changes nothing, as in AWS.
        if task.summary.task_status != TaskStatus::InProgress {
            return Ok(task.summary.clone());
        }
        for index in 0..task.executions.len() {
            if task.executions[index].status == ExecutionStatus::InProgress {
                task.skip(index, "the task was canceled".to_string(), now);
            }
        }
        task.handed_out.clear();
        task.summary.task_status = TaskStatus::Canceled;
        task.summary.task_end_time = Some(now);
        Ok(task.summary.clone())
    }

    /// Looks up a task.
    pub fn task(&self, task_id: &str) -> Result<DetectMitigationActionsTaskSummary> {
        self.tasks
            .get(task_id)
            .map(|t| t.summary.clone())
            .ok_or_else(|| task_not_found(task_id))
    }

    fn task_mut(&mut self, task_id: &str) -> Result<&mut Task> {
        self.tasks
            .get_mut(task_id)
            .ok_or_else(|| task_not_found(task_id))
    }

    /// Tasks started in `[start, end]`, oldest first.
    pub fn tasks(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<DetectMitigationActionsTaskSummary> {
        let mut tasks: Vec<_> = self
            .tasks
            .values()
            .filter(|t| t.summary.task_start_time >= start && t.summary.task_start_time <= end)
            .map(|t| t.summary.clone())
            .collect();
        tasks.sort_by(|a, b| (a.task_start_time, &a.task_id).cmp(&(b.task_start_time, &b.task_id)));
        tasks
    }

    /// Returns every execution of every task, tasks by start time and executions in plan order.
    pub fn executions(&self) -> Vec<DetectMitigationActionExecution> {
        let mut tasks: Vec<&Task> = self.tasks.values().collect();
        tasks.sort_by_key(|t| t.summary.task_start_time);
        tasks
            .iter()
            .flat_map(|t| t.executions.iter().cloned())
            .collect()
    }
}

fn task_not_found(task_id: &str) -> Error {
    Error::ResourceNotFound(format!("mitigation task `{task_id}` does not exist"))
}

fn new_summary(
    request: &TaskRequest,
    actions: Vec<MitigationAction>,
    now: Timestamp,
) -> DetectMitigationActionsTaskSummary {
    DetectMitigationActionsTaskSummary {
        task_id: request.task_id.clone(),
        task_status: TaskStatus::InProgress,
        task_start_time: now,
        task_end_time: None,
        target: request.target.clone(),
        violation_event_occurrence_range: request.violation_event_occurrence_range,
        only_active_violations_included: request.include_only_active_violations,
        suppressed_alerts_included: request.include_suppressed_alerts,
        actions_definition: actions,
        task_statistics: TaskStatistics::default(),
    }
}

fn plan_executions(
    task: &mut Task,
    actions: &[MitigationAction],
    candidate: Candidate,
    now: Timestamp,
) {
    let violation = candidate.violation;
    for action in actions {
        let execution = DetectMitigationActionExecution {
            task_id: task.summary.task_id.clone(),
            violation_id: violation.violation_id.clone(),
            action_name: action.action_name.clone(),
            thing_name: violation.thing_name.clone(),
            execution_start_date: None,
            execution_end_date: None,
            status: ExecutionStatus::InProgress,
            error_code: None,
            message: None,
        };
        task.executions.push(execution);
        if let Some(reason) = &candidate.excluded_because {
            let index = task.executions.len() - 1;
            task.skip(index, reason.clone(), now);
        }
    }
    task.violations
        .insert(violation.violation_id.clone(), violation);
}

impl Task {
    fn skip(&mut self, index: usize, reason: String, now: Timestamp) {
        let execution = &mut self.executions[index];
        execution.status = ExecutionStatus::Skipped;
        execution.message = Some(reason);
        execution.execution_start_date.get_or_insert(now);
        execution.execution_end_date = Some(now);
        self.summary.task_statistics.actions_skipped += 1;
    }

    fn apply_outcome(&mut self, index: usize, outcome: ExecutionOutcome, now: Timestamp) {
        let statistics = &mut self.summary.task_statistics;
        statistics.actions_executed += 1;
        let execution = &mut self.executions[index];
        execution.execution_end_date = Some(now);
        let ExecutionOutcome::Failed {
            error_code,
            message,
        } = outcome
        else {
            execution.status = ExecutionStatus::Successful;
            return;
        };
        execution.status = ExecutionStatus::Failed;
        execution.error_code = Some(error_code);
        execution.message = Some(truncate(message, 2048));
        statistics.actions_failed += 1;
        self.skip_rest_of_violation(index, now);
    }

    /// After a failure, the later actions for the same violation do not run.
    fn skip_rest_of_violation(&mut self, failed: usize, now: Timestamp) {
        let violation_id = self.executions[failed].violation_id.clone();
        let reason = format!(
            "skipped because action `{}` failed for this violation",
            self.executions[failed].action_name
        );
        for index in failed + 1..self.executions.len() {
            let execution = &self.executions[index];
            if execution.violation_id == violation_id
                && execution.status == ExecutionStatus::InProgress
                && !self.handed_out.contains(&index)
            {
                self.skip(index, reason.clone(), now);
            }
        }
    }

    fn finish_if_done(&mut self, now: Timestamp) {
        let pending = self
            .executions
            .iter()
            .any(|e| e.status == ExecutionStatus::InProgress);
        if pending || self.summary.task_status != TaskStatus::InProgress {
            return;
        }
        let failed = self.summary.task_statistics.actions_failed > 0;
        self.summary.task_status = if failed {
            TaskStatus::Failed
        } else {
            TaskStatus::Successful
        };
        self.summary.task_end_time = Some(now);
    }
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(index);
    }
    text
}
