//! The server as a mitigation task sees it: the journaled engine for executions and thing groups,
//! and the registry in the database for attributes, certificates, policies, logging options and
//! notifications, which the engine does not keep.

use std::collections::BTreeMap;

use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{DetectMitigationActionsTaskSummary, Timestamp};

use crate::iot::{CertificateInfo, IotError, LoggingOptions as StoredLogging};
use crate::mitigate::TaskEngine;
use crate::plugins::records::{
    CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate, IotLogLevel,
    LoggingOptions, PolicyVersion,
};
use crate::plugins::{
    CapabilityError, StagedOperation, ThingSnapshot, ca_certificate_status_name,
    certificate_status_name, log_level_name, parse_certificate_status, parse_log_level,
};
use crate::service::{Service, Write};

/// A service borrowed for one mitigation task.
///
/// FIXME: a task is run to its end inside the request that starts it, so a server killed during a
/// task leaves it `IN_PROGRESS` after a restart until it is canceled; pending executions should
/// resume when the server starts.
pub struct ServiceTasks<'a> {
    service: &'a mut Service,
}

impl<'a> ServiceTasks<'a> {
    /// Borrows `service` for a task.
    pub fn new(service: &'a mut Service) -> Self {
        Self { service }
    }

    /// Commits what earlier executions queued, so the next snapshot reads it back.
    fn commit(&mut self) -> anyhow::Result<()> {
        self.service.commit()
    }

    fn certificates(&self, thing: &str) -> anyhow::Result<Vec<DeviceCertificate>> {
        let stored = self.service.thing_certificates(thing)?;
        Ok(stored.into_iter().map(device_certificate).collect())
    }

    /// The registered CA certificates that issued `certificates`, each once.
    fn issuers(&self, certificates: &[DeviceCertificate]) -> anyhow::Result<Vec<CaCertificate>> {
        let mut issuers: Vec<CaCertificate> = Vec::new();
        for id in certificates
            .iter()
            .filter_map(|c| c.ca_certificate_id.as_deref())
        {
            if issuers.iter().any(|issuer| issuer.certificate_id == id) {
                continue;
            }
            if let Some(stored) = self.service.ca_certificate(id)? {
                issuers.push(CaCertificate {
                    status: if stored.status == "ACTIVE" {
                        CaCertificateStatus::Active
                    } else {
                        CaCertificateStatus::Inactive
                    },
                    certificate_id: stored.certificate_id,
                    certificate_arn: stored.certificate_arn,
                });
            }
        }
        Ok(issuers)
    }

    fn policies(&mut self, thing: &str) -> anyhow::Result<BTreeMap<String, Vec<PolicyVersion>>> {
        let mut policies = BTreeMap::new();
        for policy in self.service.thing_policies(thing)? {
            let mut versions: Vec<PolicyVersion> = self
                .service
                .policy_versions(&policy)?
                .into_iter()
                .map(|version| PolicyVersion {
                    version_id: version.version_id,
                    is_default_version: version.is_default,
                    document: version.document,
                })
                .collect();
            versions.sort_by_key(|version| version.version_id.parse::<u64>().unwrap_or(0));
            policies.insert(policy, versions);
        }
        Ok(policies)
    }

    fn logging(&self) -> anyhow::Result<Option<LoggingOptions>> {
        let Some(stored) = self.service.logging_options()? else {
            return Ok(None);
        };
        Ok(Some(LoggingOptions {
            role_arn: stored.role_arn,
            default_log_level: log_level(&stored.default_log_level),
            disable_all_logs: stored.disable_all_logs,
        }))
    }

    // FIXME: the subject a plugin publishes with is not stored, so the webhook delivery of a
    // plugin's notification carries no SNS `Subject`.
    fn publish(&mut self, topic_arn: &str, message: &str) {
        let message = serde_json::from_str(message)
            .unwrap_or_else(|_| serde_json::Value::String(message.to_string()));
        self.service
            .write(Write::Notification(crate::alerts::Notification {
                topic_arn: topic_arn.to_string(),
                message,
            }));
    }
}

impl TaskEngine for ServiceTasks<'_> {
    fn next_pending_execution(
        &mut self,
        task_id: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<PendingExecution>> {
        self.service.engine().next_pending_execution(task_id, now)
    }

    fn record_execution_outcome(
        &mut self,
        task_id: &str,
        violation_id: &str,
        action_name: &str,
        outcome: ExecutionOutcome,
        now: Timestamp,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        self.service.engine().record_execution_outcome(
            task_id,
            violation_id,
            action_name,
            outcome,
            now,
        )
    }

    fn describe_mitigation_task(
        &mut self,
        task_id: &str,
    ) -> anyhow::Result<DetectMitigationActionsTaskSummary> {
        TaskEngine::describe_mitigation_task(self.service.engine(), task_id)
    }

    fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> anyhow::Result<()> {
        TaskEngine::add_thing_to_thing_group(self.service.engine(), thing, group)
    }

    fn list_thing_groups_for_thing(&mut self, thing: &str) -> anyhow::Result<Vec<String>> {
        TaskEngine::list_thing_groups_for_thing(self.service.engine(), thing)
    }

    fn thing_extras(&mut self, thing: &str) -> anyhow::Result<ThingSnapshot> {
        self.commit()?;
        let certificates = self.certificates(thing)?;
        Ok(ThingSnapshot {
            attributes: self.service.thing_attributes(thing)?.unwrap_or_default(),
            groups: Vec::new(),
            ca_certificates: self.issuers(&certificates)?,
            certificates,
            policies: self.policies(thing)?,
            logging: self.logging()?,
        })
    }

    fn perform_extra(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError> {
        let result = match operation {
            StagedOperation::UpdateCertificate {
                certificate_id,
                status,
            } => self
                .service
                .set_certificate_status(certificate_id, certificate_status_name(*status)),
            StagedOperation::UpdateCaCertificate {
                certificate_id,
                status,
            } => self
                .service
                .set_ca_certificate_status(certificate_id, ca_certificate_status_name(*status)),
            StagedOperation::CreatePolicyVersion {
                policy,
                document,
                set_as_default,
            } => self
                .service
                .create_policy_version(policy, document, *set_as_default)
                .map(drop),
            StagedOperation::SetLoggingOptions { role_arn, level } => {
                self.service.set_logging_options(StoredLogging {
                    role_arn: role_arn.clone(),
                    default_log_level: log_level_name(*level).to_string(),
                    disable_all_logs: false,
                })
            }
            StagedOperation::Publish {
                topic_arn, message, ..
            } => {
                self.publish(topic_arn, message);
                Ok(())
            }
            other => {
                return Err(CapabilityError::Other(format!(
                    "the server cannot {}",
                    other.summary()
                )));
            }
        };
        result.map_err(capability_error)
    }
}

fn capability_error(error: IotError) -> CapabilityError {
    match error {
        IotError::NotFound(message) => CapabilityError::NotFound(message),
        IotError::Invalid(message)
        | IotError::Conflict(message)
        | IotError::LimitExceeded(message) => CapabilityError::InvalidArgument(message),
        IotError::Internal(error) => CapabilityError::Other(format!("{error:#}")),
    }
}

fn device_certificate(stored: CertificateInfo) -> DeviceCertificate {
    DeviceCertificate {
        status: certificate_status(&stored.status),
        certificate_id: stored.certificate_id,
        certificate_arn: stored.certificate_arn,
        ca_certificate_id: stored.ca_certificate_id,
    }
}

fn certificate_status(name: &str) -> CertificateStatus {
    parse_certificate_status(name).unwrap_or(CertificateStatus::Inactive)
}

fn log_level(name: &str) -> IotLogLevel {
    parse_log_level(name).unwrap_or(IotLogLevel::Error)
}
