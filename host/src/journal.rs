//! Commands that change the engine, applied through [`Journaled`] so each one is recorded.
//!
//! The core is deterministic: the same commands on the same snapshot give the same engine. So
//! the server persists a snapshot plus every command applied since, and a restart replays them.
//! A command enters the journal only after the engine accepted it; a rejected request leaves no
//! trace.

use serde::{Deserialize, Serialize};
use vigil_core::ingest::{CloudEvent, Datapoint, DeviceReport, IngestResult, ReportOutcome};
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{
    CustomMetric, CustomMetricType, DetectMitigationActionsTaskSummary, Dimension,
    MitigationAction, MitigationActionParams, SecurityProfile, StoredSecurityProfile, TaskRequest,
    Timestamp, VerificationState, ViolationEvent,
};

use crate::engine::CoreEngine;

/// One change to the engine, with every input it needs, including the time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateSecurityProfile {
        profile: SecurityProfile,
        now: Timestamp,
    },
    UpdateSecurityProfile {
        profile: SecurityProfile,
        expected_version: Option<u64>,
        now: Timestamp,
    },
    DeleteSecurityProfile {
        name: String,
        expected_version: Option<u64>,
        now: Timestamp,
    },
    AttachSecurityProfile {
        name: String,
        target_arn: String,
    },
    DetachSecurityProfile {
        name: String,
        target_arn: String,
        now: Timestamp,
    },
    CreateThing {
        name: String,
    },
    CreateThingGroup {
        name: String,
    },
    DeleteThingGroup {
        name: String,
    },
    AddThingToThingGroup {
        thing: String,
        group: String,
    },
    RemoveThingFromThingGroup {
        thing: String,
        group: String,
    },
    IngestDatapoints {
        datapoints: Vec<Datapoint>,
    },
    IngestCloudEvents {
        events: Vec<CloudEvent>,
    },
    IngestReports {
        reports: Vec<DeviceReport>,
    },
    AdvanceTime {
        now: Timestamp,
    },
    PutVerificationState {
        violation_id: String,
        state: VerificationState,
        description: Option<String>,
    },
    CreateMitigationAction {
        name: String,
        action_id: String,
        role_arn: String,
        params: MitigationActionParams,
        now: Timestamp,
    },
    UpdateMitigationAction {
        name: String,
        role_arn: Option<String>,
        params: Option<MitigationActionParams>,
        now: Timestamp,
    },
    DeleteMitigationAction {
        name: String,
    },
    CreateCustomMetric {
        name: String,
        metric_type: CustomMetricType,
        display_name: Option<String>,
        now: Timestamp,
    },
    UpdateCustomMetric {
        name: String,
        display_name: String,
        now: Timestamp,
    },
    DeleteCustomMetric {
        name: String,
    },
    CreateDimension {
        name: String,
        string_values: Vec<String>,
        now: Timestamp,
    },
    UpdateDimension {
        name: String,
        string_values: Vec<String>,
        now: Timestamp,
    },
    DeleteDimension {
        name: String,
    },
    StartMitigationTask {
        request: TaskRequest,
        now: Timestamp,
    },
    NextPendingExecution {
        task_id: String,
        now: Timestamp,
    },
    RecordExecutionOutcome {
        task_id: String,
        violation_id: String,
        action_name: String,
        outcome: ExecutionOutcome,
        now: Timestamp,
    },
    CancelMitigationTask {
        task_id: String,
        now: Timestamp,
    },
}

/// The engine's reply to a command.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a reply lives for one request, so boxing would only add allocations"
)]
pub enum Reply {
    Done,
    Profile(StoredSecurityProfile),
    ProfileAndEvents(StoredSecurityProfile, Vec<ViolationEvent>),
    Events(Vec<ViolationEvent>),
    GroupArn(String),
    Ingested(IngestResult),
    Reports(Vec<ReportOutcome>, Vec<ViolationEvent>),
    Action(MitigationAction),
    CustomMetric(CustomMetric),
    Dimension(Dimension),
    Task(DetectMitigationActionsTaskSummary),
    Pending(Option<PendingExecution>),
}

/// Defines `Reply` methods that return the value of one variant, or an error for any other.
macro_rules! reply_accessors {
    ($($(#[$doc:meta])* $method:ident => $variant:ident($value:ty)),* $(,)?) => {
        impl Reply {
            $(
                $(#[$doc])*
                pub fn $method(self) -> anyhow::Result<$value> {
                    match self {
                        Reply::$variant(value) => Ok(value),
                        other => Err(unexpected(other)),
                    }
                }
            )*
        }
    };
}

reply_accessors! {
    /// The stored profile of a create.
    profile => Profile(StoredSecurityProfile),
    /// The ARN of a created thing group.
    group_arn => GroupArn(String),
    /// The result of ingesting a batch.
    ingested => Ingested(IngestResult),
    /// A created or updated mitigation action.
    action => Action(MitigationAction),
    /// A created or updated custom metric.
    custom_metric => CustomMetric(CustomMetric),
    /// A created or updated dimension.
    dimension => Dimension(Dimension),
    /// A task after a change.
    task => Task(DetectMitigationActionsTaskSummary),
    /// The next execution of a task, if any.
    pending => Pending(Option<PendingExecution>),
}

impl Reply {
    /// The stored profile of an update.
    pub fn updated_profile(self) -> anyhow::Result<StoredSecurityProfile> {
        match self {
            Reply::ProfileAndEvents(stored, _) => Ok(stored),
            other => Err(unexpected(other)),
        }
    }

    /// Violation events the command caused.
    fn events(&self) -> &[ViolationEvent] {
        match self {
            Reply::ProfileAndEvents(_, events)
            | Reply::Events(events)
            | Reply::Reports(_, events) => events,
            Reply::Ingested(result) => &result.events,
            _ => &[],
        }
    }
}

impl Command {
    /// Encodes the command for the journal.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        Ok(rmp_serde::to_vec_named(self)?)
    }

    /// Decodes a journal entry.
    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(rmp_serde::from_slice(bytes)?)
    }

    /// Applies the command to `engine`.
    pub fn apply(&self, engine: &mut CoreEngine) -> anyhow::Result<Reply> {
        use Command as C;
        Ok(match self.clone() {
            C::CreateSecurityProfile { profile, now } => {
                Reply::Profile(engine.create_security_profile(profile, now)?)
            }
            C::UpdateSecurityProfile {
                profile,
                expected_version,
                now,
            } => {
                let (stored, events) =
                    engine.update_security_profile(profile, expected_version, now)?;
                Reply::ProfileAndEvents(stored, events)
            }
            C::DeleteSecurityProfile {
                name,
                expected_version,
                now,
            } => Reply::Events(engine.delete_security_profile(&name, expected_version, now)?),
            C::AttachSecurityProfile { name, target_arn } => {
                engine.attach_security_profile(&name, &target_arn)?;
                Reply::Done
            }
            C::DetachSecurityProfile {
                name,
                target_arn,
                now,
            } => Reply::Events(engine.detach_security_profile(&name, &target_arn, now)?),
            C::CreateThing { name } => {
                engine.create_thing(&name)?;
                Reply::Done
            }
            C::CreateThingGroup { name } => Reply::GroupArn(engine.create_thing_group(&name)?),
            C::DeleteThingGroup { name } => {
                engine.delete_thing_group(&name)?;
                Reply::Done
            }
            C::AddThingToThingGroup { thing, group } => {
                engine.add_thing_to_thing_group(&thing, &group)?;
                Reply::Done
            }
            C::RemoveThingFromThingGroup { thing, group } => {
                engine.remove_thing_from_thing_group(&thing, &group)?;
                Reply::Done
            }
            C::IngestDatapoints { datapoints } => {
                Reply::Ingested(engine.ingest_datapoints(datapoints)?)
            }
            C::IngestCloudEvents { events } => Reply::Ingested(engine.ingest_cloud_events(events)?),
            C::IngestReports { reports } => {
                let (outcomes, events) = engine.ingest_reports(reports)?;
                Reply::Reports(outcomes, events)
            }
            C::AdvanceTime { now } => Reply::Events(engine.advance_time(now)?),
            C::PutVerificationState {
                violation_id,
                state,
                description,
            } => {
                engine.put_verification_state(&violation_id, state, description.as_deref())?;
                Reply::Done
            }
            C::CreateMitigationAction {
                name,
                action_id,
                role_arn,
                params,
                now,
            } => Reply::Action(
                engine.create_mitigation_action(&name, &action_id, &role_arn, params, now)?,
            ),
            C::UpdateMitigationAction {
                name,
                role_arn,
                params,
                now,
            } => Reply::Action(engine.update_mitigation_action(&name, role_arn, params, now)?),
            C::DeleteMitigationAction { name } => {
                engine.delete_mitigation_action(&name)?;
                Reply::Done
            }
            C::CreateCustomMetric {
                name,
                metric_type,
                display_name,
                now,
            } => Reply::CustomMetric(engine.create_custom_metric(
                &name,
                metric_type,
                display_name,
                now,
            )?),
            C::UpdateCustomMetric {
                name,
                display_name,
                now,
            } => Reply::CustomMetric(engine.update_custom_metric(&name, display_name, now)?),
            C::DeleteCustomMetric { name } => {
                engine.delete_custom_metric(&name)?;
                Reply::Done
            }
            C::CreateDimension {
                name,
                string_values,
                now,
            } => Reply::Dimension(engine.create_dimension(&name, string_values, now)?),
            C::UpdateDimension {
                name,
                string_values,
                now,
            } => Reply::Dimension(engine.update_dimension(&name, string_values, now)?),
            C::DeleteDimension { name } => {
                engine.delete_dimension(&name)?;
                Reply::Done
            }
            C::StartMitigationTask { request, now } => {
                Reply::Task(engine.start_mitigation_task(request, now)?)
            }
            C::NextPendingExecution { task_id, now } => {
                Reply::Pending(engine.next_pending_execution(&task_id, now)?)
            }
            C::RecordExecutionOutcome {
                task_id,
                violation_id,
                action_name,
                outcome,
                now,
            } => Reply::Task(engine.record_execution_outcome(
                &task_id,
                &violation_id,
                &action_name,
                outcome,
                now,
            )?),
            C::CancelMitigationTask { task_id, now } => {
                Reply::Task(engine.cancel_mitigation_task(&task_id, now)?)
            }
        })
    }
}

/// The engine with the commands applied to it since the last commit.
pub struct Journaled {
    engine: CoreEngine,
    applied: Vec<Command>,
    events: Vec<ViolationEvent>,
}

/// Changes waiting to be committed: journal entries and the violation events they caused.
#[derive(Debug, Default)]
pub struct Uncommitted {
    /// Commands in the order they were applied.
    pub commands: Vec<Command>,
    /// Violation events in the order they happened.
    pub events: Vec<ViolationEvent>,
}

impl Journaled {
    /// Wraps an engine with nothing applied yet.
    pub fn new(engine: CoreEngine) -> Self {
        Self {
            engine,
            applied: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The engine, for queries. Changes made through it are not journaled.
    pub fn queries(&mut self) -> &mut CoreEngine {
        &mut self.engine
    }

    /// Applies `command`; on success it is kept for the next commit.
    pub fn run(&mut self, command: Command) -> anyhow::Result<Reply> {
        let reply = command.apply(&mut self.engine)?;
        self.events.extend_from_slice(reply.events());
        self.applied.push(command);
        Ok(reply)
    }

    /// Hands over the changes applied since the last call.
    pub fn take_uncommitted(&mut self) -> Uncommitted {
        Uncommitted {
            commands: std::mem::take(&mut self.applied),
            events: std::mem::take(&mut self.events),
        }
    }

    /// Whether changes wait for a commit.
    pub fn has_uncommitted(&self) -> bool {
        !self.applied.is_empty()
    }
}

impl crate::mitigate::TaskEngine for Journaled {
    fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<PendingExecution>> {
        self.run(Command::NextPendingExecution {
            task_id: task_id.to_owned(),
            now,
        })?
        .pending()
    }

    fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        self.run(Command::RecordExecutionOutcome {
            task_id: task_id.to_owned(),
            violation_id: violation_id.to_owned(),
            action_name: action_name.to_owned(),
            outcome,
            now,
        })?
        .task()
    }

    fn describe_mitigation_task(
        &mut self,
        task_id: &str,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        self.engine.describe_mitigation_task(task_id)
    }

    fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> anyhow::Result<()> {
        self.run(Command::AddThingToThingGroup {
            thing: thing.to_owned(),
            group: group.to_owned(),
        })
        .map(drop)
    }

    fn list_thing_groups_for_thing(&mut self, thing: &str) -> anyhow::Result<Vec<String>> {
        self.engine.list_thing_groups_for_thing(thing)
    }
}

/// Fails for a reply of an unexpected kind, which means the command and its reply disagree.
pub fn unexpected(reply: Reply) -> anyhow::Error {
    anyhow::anyhow!("the engine returned an unexpected reply: {reply:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::model::MetricValue;

    #[test]
    fn a_command_survives_encoding() {
        let command = Command::IngestDatapoints {
            datapoints: vec![Datapoint {
                thing_name: "t1".into(),
                metric: "aws:num-messages-sent".into(),
                dimension_name: None,
                timestamp: 1_700_000_100_123,
                value: MetricValue::count(7),
            }],
        };
        let decoded = Command::decode(&command.encode().unwrap()).unwrap();
        assert_eq!(decoded, command);
    }
}
