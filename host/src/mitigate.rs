//! Runs detect mitigation tasks: the engine plans executions, plugins apply them, and the engine
//! records what the host observed.

use anyhow::Context as _;
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{DetectMitigationActionsTaskSummary, Timestamp};

use crate::bindings::plugin::exports::vigil::detect::mitigation::ExecutionContext;
use crate::engine::CoreEngine;
use crate::plugins::{CapabilityError, PluginHost, Registry, StagedOperation, ThingSnapshot, http};

/// The engine calls a mitigation task makes, so tasks run on a bare engine (the demo) and on a
/// journaled one (the server) alike.
pub trait TaskEngine {
    /// Marks the next execution of a task as started and returns it.
    fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<PendingExecution>>;
    /// Records what applying an execution did.
    fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary>;
    /// Returns a task.
    fn describe_mitigation_task(
        &mut self,
        task_id: &str,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary>;
    /// Adds a thing to a group for a plugin.
    fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> anyhow::Result<()>;
    /// Lists a thing's groups for a plugin.
    fn list_thing_groups_for_thing(&mut self, thing: &str) -> anyhow::Result<Vec<String>>;
    /// Reads what a plugin may see about a thing beyond its groups: attributes, certificates,
    /// policies and logging options. The engine alone keeps none of them.
    fn thing_extras(&mut self, _thing: &str) -> anyhow::Result<ThingSnapshot> {
        Ok(ThingSnapshot::default())
    }
    /// Performs a staged operation on certificates, policies, logging options or notification
    /// sinks. The engine alone has none of them.
    fn perform_extra(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError> {
        Err(CapabilityError::Other(format!(
            "cannot {}: this mode has no certificates, policies, logging options or \
             notification sinks; run `vigil serve` for them",
            operation.summary()
        )))
    }
}

impl TaskEngine for CoreEngine {
    fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<PendingExecution>> {
        CoreEngine::next_pending_execution(self, task_id, now)
    }

    fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        CoreEngine::record_execution_outcome(self, task_id, violation_id, action_name, outcome, now)
    }

    fn describe_mitigation_task(
        &mut self,
        task_id: &str,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        CoreEngine::describe_mitigation_task(self, task_id)
    }

    fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> anyhow::Result<()> {
        CoreEngine::add_thing_to_thing_group(self, thing, group)
    }

    fn list_thing_groups_for_thing(&mut self, thing: &str) -> anyhow::Result<Vec<String>> {
        CoreEngine::list_thing_groups_for_thing(self, thing)
    }
}

/// The engine's registry, and whatever else its [`TaskEngine`] keeps, as the plugins' capabilities.
struct EngineRegistry<'a, E: TaskEngine> {
    engine: &'a mut E,
}

impl<E: TaskEngine> Registry for EngineRegistry<'_, E> {
    fn snapshot(&mut self, thing: &str) -> Result<ThingSnapshot, CapabilityError> {
        let groups = self
            .engine
            .list_thing_groups_for_thing(thing)
            .map_err(|error| thing_error(&error, thing))?;
        let extras = self
            .engine
            .thing_extras(thing)
            .map_err(|error| CapabilityError::Other(format!("{error:#}")))?;
        Ok(ThingSnapshot { groups, ..extras })
    }

    fn perform(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError> {
        match operation {
            // Vigil has static thing groups only, so there are no dynamic memberships to evict.
            StagedOperation::AddThingToThingGroup { thing, group, .. } => self
                .engine
                .add_thing_to_thing_group(thing, group)
                .map_err(|error| group_error(&error, group)),
            StagedOperation::HttpPost {
                url,
                content_type,
                body,
            } => http::post(url, content_type, body),
            other => self.engine.perform_extra(other),
        }
    }
}

fn is_not_found(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<vigil_core::Error>(),
        Some(vigil_core::Error::ResourceNotFound(_))
    )
}

fn thing_error(error: &anyhow::Error, thing: &str) -> CapabilityError {
    if is_not_found(error) {
        CapabilityError::ThingNotFound(format!("thing `{thing}` does not exist"))
    } else {
        CapabilityError::Other(format!("{error:#}"))
    }
}

fn group_error(error: &anyhow::Error, group: &str) -> CapabilityError {
    if is_not_found(error) {
        CapabilityError::NotFound(format!("thing group `{group}` does not exist"))
    } else {
        CapabilityError::Other(format!("{error:#}"))
    }
}

/// Applies every pending execution of `task_id` through the plugins, at event time `now`, and
/// returns the finished task.
pub fn run_task<E: TaskEngine>(
    engine: &mut E,
    plugins: &mut PluginHost,
    task_id: &str,
    now: Timestamp,
) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
    while let Some(pending) = engine.next_pending_execution(task_id, now)? {
        let context = execution_context(&pending, now);
        let outcome = {
            let mut registry = EngineRegistry { engine };
            plugins.apply(&mut registry, &context)
        };
        if outcome.is_successful()
            && let Some(plugin) = &outcome.plugin
        {
            crate::plugins::log_performed(plugin, &outcome.performed);
        }
        let outcome: ExecutionOutcome = outcome.to_execution_outcome().into();
        let execution = &pending.execution;
        engine
            .record_execution_outcome(
                task_id,
                &execution.violation_id,
                &execution.action_name,
                outcome,
                now,
            )
            .with_context(|| {
                format!(
                    "failed to record the outcome of `{}`",
                    execution.action_name
                )
            })?;
    }
    engine.describe_mitigation_task(task_id)
}

/// Builds the plugin's view of one execution at event time `now`; the host adds the plugin's
/// bound parameters.
fn execution_context(pending: &PendingExecution, now: Timestamp) -> ExecutionContext {
    let violation = &pending.violation;
    ExecutionContext {
        task_id: pending.execution.task_id.clone(),
        action_name: pending.action.action_name.clone(),
        action_type: pending.action.action_type.into(),
        action_params: pending.action.action_params.clone().into(),
        plugin_params: None,
        role_arn: pending.action.role_arn.clone(),
        violation_id: violation.violation_id.clone(),
        thing_name: violation.thing_name.clone(),
        security_profile_name: violation.security_profile_name.clone(),
        behavior: violation.behavior.clone().into(),
        observed_value: violation.metric_value.clone().map(Into::into),
        additional_info: violation
            .violation_event_additional_info
            .clone()
            .map(Into::into),
        violation_start_time: violation.violation_event_time,
        execution_time: now,
    }
}
