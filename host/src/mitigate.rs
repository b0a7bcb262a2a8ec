//! Runs detect mitigation tasks: the engine plans executions, plugins apply them, and the engine
//! records what the host observed.

use anyhow::Context as _;
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{DetectMitigationActionsTaskSummary, Timestamp};

use crate::bindings::plugin::exports::vigil::detect::mitigation::ExecutionContext;
use crate::engine::CoreEngine;
use crate::plugins::{PluginHost, Registry, RegistryError};

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

/// The engine's thing registry as the plugins' `thing-registry` capability.
struct EngineRegistry<'a, E: TaskEngine> {
    engine: &'a mut E,
}

impl<E: TaskEngine> Registry for EngineRegistry<'_, E> {
    fn add_thing_to_thing_group(
        &mut self,
        thing: &str,
        group: &str,
        _override_dynamic: bool,
    ) -> Result<(), RegistryError> {
        // Vigil has static thing groups only, so there are no dynamic memberships to evict.
        self.engine
            .add_thing_to_thing_group(thing, group)
            .map_err(|error| registry_error(&error, group))
    }

    fn list_thing_groups_for_thing(&mut self, thing: &str) -> Result<Vec<String>, RegistryError> {
        self.engine
            .list_thing_groups_for_thing(thing)
            .map_err(|error| RegistryError::Other(format!("{error:#}")))
    }
}

fn registry_error(error: &anyhow::Error, group: &str) -> RegistryError {
    match error.downcast_ref::<vigil_core::Error>() {
        Some(vigil_core::Error::ResourceNotFound(_)) => {
            RegistryError::ThingGroupNotFound(format!("thing group `{group}` does not exist"))
        }
        _ => RegistryError::Other(format!("{error:#}")),
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
        let context = execution_context(&pending);
        let outcome = {
            let mut registry = EngineRegistry { engine };
            plugins.apply(&mut registry, &context)
        };
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

/// Builds the plugin's view of one execution.
fn execution_context(pending: &PendingExecution) -> ExecutionContext {
    let violation = &pending.violation;
    ExecutionContext {
        task_id: pending.execution.task_id.clone(),
        action_name: pending.action.action_name.clone(),
        action_type: pending.action.action_type.into(),
        action_params: pending.action.action_params.clone().into(),
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
    }
}
