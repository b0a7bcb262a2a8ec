//! Host capabilities as plugins see them: what a plugin may read about its execution's thing,
//! the writes it stages, and the checks that keep it inside its execution and its grants.
//!
//! Before `apply`, the host reads a [`ThingSnapshot`] of the execution's thing from the caller's
//! [`Registry`]. During the call every read is served from that snapshot plus the writes staged
//! so far, and every write is checked and staged as a [`StagedOperation`]. After `apply` returns
//! success, the host performs the staged operations itself, in order. A plugin therefore never
//! touches the registry, and what the host records is what the host did.

use std::collections::BTreeMap;
use std::fmt;

use crate::alerts::WebhookUrl;
use crate::bindings::engine::vigil::detect::types::IotLogLevel;
use crate::bindings::plugin::vigil::detect::certificates::{
    CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate,
};
use crate::bindings::plugin::vigil::detect::iot_logging::LoggingOptions;
use crate::bindings::plugin::vigil::detect::policies::PolicyVersion;

/// Maximum length of a thing group name, as in AWS IoT.
const MAX_THING_GROUP_NAME_CHARS: usize = 128;

/// Maximum size of a notification message or an HTTP body, as for an SNS message.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Maximum number of versions a policy holds, as in AWS IoT.
const MAX_POLICY_VERSIONS: usize = 5;

/// Maximum size of a policy document, as in AWS IoT.
const MAX_POLICY_DOCUMENT_BYTES: usize = 2048;

/// A host capability a plugin can import, one per WIT interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `thing-registry`: thing groups and attributes of the execution's thing.
    ThingRegistry,
    /// `certificates`: the execution's thing's device certificates and their CA certificates.
    Certificates,
    /// `policies`: versions of the policies attached to the execution's thing.
    Policies,
    /// `iot-logging`: the account's IoT logging options.
    IotLogging,
    /// `notifications`: publishing to SNS topics.
    Notifications,
    /// `outbound-http`: posting to granted URL prefixes.
    OutboundHttp,
    /// `logging`: records in the host's log.
    Logging,
    /// `wasi:filesystem`: a private state folder, preopened as `/state`.
    WasiFilesystem,
}

impl Capability {
    /// Every capability: the WIT interfaces in WIT order, then WASI.
    pub const ALL: [Capability; 8] = [
        Capability::ThingRegistry,
        Capability::Certificates,
        Capability::Policies,
        Capability::IotLogging,
        Capability::Notifications,
        Capability::OutboundHttp,
        Capability::Logging,
        Capability::WasiFilesystem,
    ];

    /// The WIT interface name, for example `thing-registry`.
    pub fn name(self) -> &'static str {
        match self {
            Capability::ThingRegistry => "thing-registry",
            Capability::Certificates => "certificates",
            Capability::Policies => "policies",
            Capability::IotLogging => "iot-logging",
            Capability::Notifications => "notifications",
            Capability::OutboundHttp => "outbound-http",
            Capability::Logging => "logging",
            Capability::WasiFilesystem => "wasi-filesystem",
        }
    }

    /// Parses a WIT interface name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|capability| capability.name() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reason a capability call failed: the host's form of the WIT `capability-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityError {
    /// Outside the execution's thing or the plugin's grants.
    Denied(String),
    /// The thing does not exist.
    ThingNotFound(String),
    /// A group, certificate or policy does not exist.
    NotFound(String),
    /// An argument is not valid.
    InvalidArgument(String),
    /// Any other failure.
    Other(String),
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapabilityError::Denied(message) => write!(f, "denied: {message}"),
            CapabilityError::ThingNotFound(message) | CapabilityError::NotFound(message) => {
                write!(f, "not found: {message}")
            }
            CapabilityError::InvalidArgument(message) => write!(f, "invalid argument: {message}"),
            CapabilityError::Other(message) => f.write_str(message),
        }
    }
}

/// The registry state of an execution's thing that its plugin may read, taken before `apply`.
#[derive(Debug, Clone, Default)]
pub struct ThingSnapshot {
    /// Attribute names and values.
    pub attributes: BTreeMap<String, String>,
    /// Thing groups the thing is in.
    pub groups: Vec<String>,
    /// Device certificates attached to the thing.
    pub certificates: Vec<DeviceCertificate>,
    /// CA certificates that issued the thing's certificates.
    pub ca_certificates: Vec<CaCertificate>,
    /// Policies attached to the thing, with their versions oldest first.
    pub policies: BTreeMap<String, Vec<PolicyVersion>>,
    /// The account's logging options.
    pub logging: Option<LoggingOptions>,
}

/// A write a plugin asked for, performed by the host after `apply` succeeds.
#[derive(Debug, Clone, PartialEq)]
pub enum StagedOperation {
    /// Add the thing to a static thing group.
    AddThingToThingGroup {
        /// The thing.
        thing: String,
        /// The group.
        group: String,
        /// Whether dynamic group memberships could be evicted to make room.
        override_dynamic_groups: bool,
    },
    /// Set a device certificate's status.
    UpdateCertificate {
        /// The certificate id.
        certificate_id: String,
        /// The new status.
        status: CertificateStatus,
    },
    /// Set a CA certificate's status.
    UpdateCaCertificate {
        /// The CA certificate id.
        certificate_id: String,
        /// The new status.
        status: CaCertificateStatus,
    },
    /// Add a policy version.
    CreatePolicyVersion {
        /// The policy.
        policy: String,
        /// The policy document, JSON.
        document: String,
        /// Whether the new version becomes the default.
        set_as_default: bool,
    },
    /// Turn IoT logging on.
    SetLoggingOptions {
        /// Role IoT logs as.
        role_arn: String,
        /// Level for every resource.
        level: IotLogLevel,
    },
    /// Publish a message to an SNS topic.
    Publish {
        /// The topic.
        topic_arn: String,
        /// Subject line, if any.
        subject: Option<String>,
        /// The message.
        message: String,
    },
    /// Post a body to a URL.
    HttpPost {
        /// The URL, under a granted prefix.
        url: String,
        /// Content type of the body.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
}

impl StagedOperation {
    /// Describes the operation for execution messages and logs.
    pub fn summary(&self) -> String {
        match self {
            StagedOperation::AddThingToThingGroup { thing, group, .. } => {
                format!("add thing `{thing}` to thing group `{group}`")
            }
            StagedOperation::UpdateCertificate {
                certificate_id,
                status,
            } => format!(
                "set certificate `{certificate_id}` to {}",
                certificate_status_name(*status)
            ),
            StagedOperation::UpdateCaCertificate {
                certificate_id,
                status,
            } => format!(
                "set CA certificate `{certificate_id}` to {}",
                ca_certificate_status_name(*status)
            ),
            StagedOperation::CreatePolicyVersion { policy, .. } => {
                format!("create a version of policy `{policy}`")
            }
            StagedOperation::SetLoggingOptions { level, .. } => {
                format!("set the IoT log level to {}", log_level_name(*level))
            }
            StagedOperation::Publish { topic_arn, .. } => format!("publish to `{topic_arn}`"),
            StagedOperation::HttpPost { url, .. } => format!("post to `{url}`"),
        }
    }
}

/// The registry and sinks a plugin acts on, supplied by the caller for one
/// [`PluginHost::apply`](super::PluginHost::apply).
pub trait Registry {
    /// Reads what a plugin may see about `thing`.
    fn snapshot(&mut self, thing: &str) -> Result<ThingSnapshot, CapabilityError>;

    /// Performs one operation a plugin staged.
    fn perform(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError>;
}

/// What a plugin's configuration allows beyond the capabilities it may import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Capabilities the plugin may import.
    pub capabilities: Vec<Capability>,
    /// URL prefixes `outbound-http` may post to.
    pub allowed_urls: Vec<String>,
    /// SNS topic ARNs `notifications` may publish to; empty allows every topic.
    pub allowed_topics: Vec<String>,
    /// Host folder preopened as `/state` when `wasi-filesystem` is granted.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Grants {
    /// Grants exactly `capabilities`, with no URLs and every topic.
    pub fn of(capabilities: &[Capability]) -> Self {
        Self {
            capabilities: capabilities.to_vec(),
            ..Self::default()
        }
    }

    /// Returns whether `capability` is granted.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Returns the state folder to preopen, if `wasi-filesystem` is granted with one.
    pub fn granted_state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir
            .as_deref()
            .filter(|_| self.allows(Capability::WasiFilesystem))
    }
}

/// State of one `apply` call: the execution's thing, what it looked like before the call, the
/// operations staged so far, and the host-call budget.
pub(crate) struct CallScope {
    thing: String,
    before: Result<ThingSnapshot, CapabilityError>,
    grants: Grants,
    pub(crate) staged: Vec<StagedOperation>,
    host_calls: u32,
    max_host_calls: u32,
}

impl CallScope {
    /// Reads the thing's snapshot and opens the scope.
    pub(crate) fn new(
        registry: &mut dyn Registry,
        thing: &str,
        grants: Grants,
        max_host_calls: u32,
    ) -> Self {
        Self {
            thing: thing.to_string(),
            before: registry.snapshot(thing),
            grants,
            staged: Vec::new(),
            host_calls: 0,
            max_host_calls,
        }
    }

    /// Counts one host call; returns `false` once the budget is spent.
    pub(crate) fn count_call(&mut self) -> bool {
        if self.host_calls >= self.max_host_calls {
            return false;
        }
        self.host_calls += 1;
        true
    }

    /// The host-call budget of one `apply`.
    pub(crate) fn max_host_calls(&self) -> u32 {
        self.max_host_calls
    }

    fn stage(&mut self, operation: StagedOperation) {
        if !self.staged.contains(&operation) {
            self.staged.push(operation);
        }
    }

    fn check_thing(&self, thing: &str) -> Result<(), CapabilityError> {
        if thing == self.thing {
            return Ok(());
        }
        Err(CapabilityError::Denied(format!(
            "plugins may act only on the execution's thing `{}`, not `{thing}`",
            self.thing
        )))
    }

    fn snapshot(&self) -> Result<&ThingSnapshot, CapabilityError> {
        self.before.as_ref().map_err(Clone::clone)
    }

    /// Stages an addition to a thing group; a repeat of a staged addition is accepted once.
    pub(crate) fn add_to_group(
        &mut self,
        thing: String,
        group: String,
        override_dynamic_groups: bool,
    ) -> Result<(), CapabilityError> {
        self.check_thing(&thing)?;
        check_group_name(&group)?;
        self.stage(StagedOperation::AddThingToThingGroup {
            thing,
            group,
            override_dynamic_groups,
        });
        Ok(())
    }

    /// Returns the thing's groups before the call plus the staged additions, sorted.
    pub(crate) fn groups(&self, thing: &str) -> Result<Vec<String>, CapabilityError> {
        self.check_thing(thing)?;
        let mut groups = self.snapshot()?.groups.clone();
        for operation in &self.staged {
            if let StagedOperation::AddThingToThingGroup { group, .. } = operation {
                groups.push(group.clone());
            }
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// Returns the thing's attributes, sorted by name.
    pub(crate) fn attributes(&self, thing: &str) -> Result<Vec<(String, String)>, CapabilityError> {
        self.check_thing(thing)?;
        let attributes = &self.snapshot()?.attributes;
        Ok(attributes
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect())
    }

    /// Returns the thing's certificates with staged status changes applied.
    pub(crate) fn certificates(
        &self,
        thing: &str,
    ) -> Result<Vec<DeviceCertificate>, CapabilityError> {
        self.check_thing(thing)?;
        let mut certificates = self.snapshot()?.certificates.clone();
        for certificate in &mut certificates {
            for operation in &self.staged {
                if let StagedOperation::UpdateCertificate {
                    certificate_id,
                    status,
                } = operation
                    && *certificate_id == certificate.certificate_id
                {
                    certificate.status = *status;
                }
            }
        }
        Ok(certificates)
    }

    /// Returns a CA certificate of the thing's certificates with staged status changes applied.
    pub(crate) fn ca_certificate(&self, id: &str) -> Result<CaCertificate, CapabilityError> {
        let mut certificate = self.find_ca_certificate(id)?.clone();
        for operation in &self.staged {
            if let StagedOperation::UpdateCaCertificate {
                certificate_id,
                status,
            } = operation
                && certificate_id == id
            {
                certificate.status = *status;
            }
        }
        Ok(certificate)
    }

    /// Stages a device certificate status change.
    pub(crate) fn update_certificate(
        &mut self,
        certificate_id: String,
        status: CertificateStatus,
    ) -> Result<(), CapabilityError> {
        let attached = self
            .snapshot()?
            .certificates
            .iter()
            .any(|certificate| certificate.certificate_id == certificate_id);
        if !attached {
            return Err(CapabilityError::Denied(format!(
                "certificate `{certificate_id}` is not attached to the execution's thing `{}`",
                self.thing
            )));
        }
        self.stage(StagedOperation::UpdateCertificate {
            certificate_id,
            status,
        });
        Ok(())
    }

    /// Stages a CA certificate status change.
    pub(crate) fn update_ca_certificate(
        &mut self,
        certificate_id: String,
        status: CaCertificateStatus,
    ) -> Result<(), CapabilityError> {
        self.find_ca_certificate(&certificate_id)?;
        self.stage(StagedOperation::UpdateCaCertificate {
            certificate_id,
            status,
        });
        Ok(())
    }

    fn find_ca_certificate(&self, id: &str) -> Result<&CaCertificate, CapabilityError> {
        self.snapshot()?
            .ca_certificates
            .iter()
            .find(|certificate| certificate.certificate_id == id)
            .ok_or_else(|| {
                CapabilityError::Denied(format!(
                    "CA certificate `{id}` did not issue a certificate of the execution's thing `{}`",
                    self.thing
                ))
            })
    }

    /// Returns the names of the thing's policies, sorted.
    pub(crate) fn policies(&self, thing: &str) -> Result<Vec<String>, CapabilityError> {
        self.check_thing(thing)?;
        Ok(self.snapshot()?.policies.keys().cloned().collect())
    }

    /// Returns a policy's versions with staged versions appended.
    pub(crate) fn policy_versions(
        &self,
        policy: &str,
    ) -> Result<Vec<PolicyVersion>, CapabilityError> {
        let mut versions = self.find_policy(policy)?.clone();
        for operation in &self.staged {
            if let StagedOperation::CreatePolicyVersion {
                policy: staged_policy,
                document,
                set_as_default,
            } = operation
                && staged_policy == policy
            {
                add_version(&mut versions, document, *set_as_default);
            }
        }
        Ok(versions)
    }

    /// Stages a new policy version after checking the document and the version limit.
    pub(crate) fn create_policy_version(
        &mut self,
        policy: String,
        document: String,
        set_as_default: bool,
    ) -> Result<(), CapabilityError> {
        let versions = self.policy_versions(&policy)?;
        if versions.len() >= MAX_POLICY_VERSIONS {
            return Err(CapabilityError::InvalidArgument(format!(
                "policy `{policy}` already has {MAX_POLICY_VERSIONS} versions"
            )));
        }
        check_policy_document(&document)?;
        self.staged.push(StagedOperation::CreatePolicyVersion {
            policy,
            document,
            set_as_default,
        });
        Ok(())
    }

    fn find_policy(&self, policy: &str) -> Result<&Vec<PolicyVersion>, CapabilityError> {
        self.snapshot()?.policies.get(policy).ok_or_else(|| {
            CapabilityError::Denied(format!(
                "policy `{policy}` is not attached to the execution's thing `{}`",
                self.thing
            ))
        })
    }

    /// Returns the logging options with a staged change applied.
    pub(crate) fn logging_options(&self) -> Result<Option<LoggingOptions>, CapabilityError> {
        let mut options = self.snapshot()?.logging.clone();
        for operation in &self.staged {
            if let StagedOperation::SetLoggingOptions { role_arn, level } = operation {
                options = Some(LoggingOptions {
                    role_arn: role_arn.clone(),
                    default_log_level: *level,
                    disable_all_logs: false,
                });
            }
        }
        Ok(options)
    }

    /// Stages a logging options change.
    pub(crate) fn set_logging_options(
        &mut self,
        role_arn: String,
        level: IotLogLevel,
    ) -> Result<(), CapabilityError> {
        if !role_arn.starts_with("arn:") || !(20..=2048).contains(&role_arn.len()) {
            return Err(CapabilityError::InvalidArgument(format!(
                "`{role_arn}` is not a role ARN of 20 to 2048 characters"
            )));
        }
        self.stage(StagedOperation::SetLoggingOptions { role_arn, level });
        Ok(())
    }

    /// Stages a publish to an SNS topic the grants allow.
    pub(crate) fn publish(
        &mut self,
        topic_arn: String,
        subject: Option<String>,
        message: String,
    ) -> Result<(), CapabilityError> {
        if !topic_arn.starts_with("arn:aws:sns:") || topic_arn.split(':').count() != 6 {
            return Err(CapabilityError::InvalidArgument(format!(
                "`{topic_arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )));
        }
        let allowed = &self.grants.allowed_topics;
        if !allowed.is_empty() && !allowed.contains(&topic_arn) {
            return Err(CapabilityError::Denied(format!(
                "topic `{topic_arn}` is not among the plugin's granted topics"
            )));
        }
        check_message_size("message", message.len())?;
        if subject.as_ref().is_some_and(|subject| subject.len() > 100) {
            return Err(CapabilityError::InvalidArgument(
                "the subject is longer than 100 characters".to_string(),
            ));
        }
        self.staged.push(StagedOperation::Publish {
            topic_arn,
            subject,
            message,
        });
        Ok(())
    }

    /// Stages a post to a URL under a granted prefix.
    pub(crate) fn post(
        &mut self,
        url: String,
        content_type: String,
        body: Vec<u8>,
    ) -> Result<(), CapabilityError> {
        let granted = self
            .grants
            .allowed_urls
            .iter()
            .any(|prefix| url_is_under(&url, prefix));
        if !granted {
            return Err(CapabilityError::Denied(format!(
                "`{url}` is not under a URL prefix granted to the plugin"
            )));
        }
        check_message_size("body", body.len())?;
        if content_type.is_empty()
            || content_type.len() > 256
            || content_type.contains(['\r', '\n'])
        {
            return Err(CapabilityError::InvalidArgument(
                "the content type must be 1 to 256 characters on one line".to_string(),
            ));
        }
        self.staged.push(StagedOperation::HttpPost {
            url,
            content_type,
            body,
        });
        Ok(())
    }
}

/// Returns whether `url` is under the granted `prefix`: the same host and port, and a path that
/// starts with the prefix's path at a segment boundary. A path with `.` or `..` segments, plain
/// or percent-encoded, is never under a prefix, because the server would resolve it elsewhere.
fn url_is_under(url: &str, prefix: &str) -> bool {
    let (Ok(url), Ok(prefix)) = (WebhookUrl::parse(url), WebhookUrl::parse(prefix)) else {
        return false;
    };
    if !url.authority.eq_ignore_ascii_case(&prefix.authority) {
        return false;
    }
    let path = url.path.split(['?', '#']).next().unwrap_or_default();
    let dot_segment = path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return false;
    }
    if prefix.path.ends_with('/') {
        path.starts_with(&prefix.path)
    } else {
        path == prefix.path || path.starts_with(&format!("{}/", prefix.path))
    }
}

/// Pairs of AWS certificate status names and their WIT values.
const CERTIFICATE_STATUSES: [(&str, CertificateStatus); 6] = [
    ("ACTIVE", CertificateStatus::Active),
    ("INACTIVE", CertificateStatus::Inactive),
    ("REVOKED", CertificateStatus::Revoked),
    ("PENDING_TRANSFER", CertificateStatus::PendingTransfer),
    ("REGISTER_INACTIVE", CertificateStatus::RegisterInactive),
    ("PENDING_ACTIVATION", CertificateStatus::PendingActivation),
];

/// Pairs of AWS log level names and their WIT values.
const LOG_LEVELS: [(&str, IotLogLevel); 5] = [
    ("DEBUG", IotLogLevel::Debug),
    ("INFO", IotLogLevel::Info),
    ("ERROR", IotLogLevel::Error),
    ("WARN", IotLogLevel::Warn),
    ("DISABLED", IotLogLevel::Disabled),
];

/// Returns the AWS name of a certificate status, for example `INACTIVE`.
pub fn certificate_status_name(status: CertificateStatus) -> &'static str {
    CERTIFICATE_STATUSES
        .iter()
        .find(|(_, known)| *known == status)
        .map_or("INACTIVE", |(name, _)| name)
}

/// Parses an AWS certificate status name.
pub fn parse_certificate_status(name: &str) -> Option<CertificateStatus> {
    CERTIFICATE_STATUSES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, status)| *status)
}

/// Returns the AWS name of a CA certificate status.
pub fn ca_certificate_status_name(status: CaCertificateStatus) -> &'static str {
    match status {
        CaCertificateStatus::Active => "ACTIVE",
        CaCertificateStatus::Inactive => "INACTIVE",
    }
}

/// Returns the AWS name of a log level, for example `ERROR`.
pub fn log_level_name(level: IotLogLevel) -> &'static str {
    LOG_LEVELS
        .iter()
        .find(|(_, known)| *known == level)
        .map_or("ERROR", |(name, _)| name)
}

/// Parses an AWS log level name.
pub fn parse_log_level(name: &str) -> Option<IotLogLevel> {
    LOG_LEVELS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, level)| *level)
}

/// Appends a version numbered after the highest one, making it the default if asked.
pub fn add_version(versions: &mut Vec<PolicyVersion>, document: &str, set_as_default: bool) {
    let next = versions
        .iter()
        .filter_map(|version| version.version_id.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    if set_as_default {
        for version in versions.iter_mut() {
            version.is_default_version = false;
        }
    }
    versions.push(PolicyVersion {
        version_id: next.to_string(),
        is_default_version: set_as_default,
        document: document.to_string(),
    });
}

/// Rejects group names that no thing group can have: AWS IoT allows 1 to 128 characters of
/// `[a-zA-Z0-9:_-]`.
fn check_group_name(group: &str) -> Result<(), CapabilityError> {
    let length = group.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-');
    if (1..=MAX_THING_GROUP_NAME_CHARS).contains(&length) && group.chars().all(allowed) {
        return Ok(());
    }
    Err(CapabilityError::InvalidArgument(format!(
        "invalid thing group name `{group}`: expected 1 to {MAX_THING_GROUP_NAME_CHARS} \
         characters of [a-zA-Z0-9:_-]"
    )))
}

fn check_policy_document(document: &str) -> Result<(), CapabilityError> {
    if document.len() > MAX_POLICY_DOCUMENT_BYTES {
        return Err(CapabilityError::InvalidArgument(format!(
            "the policy document is longer than {MAX_POLICY_DOCUMENT_BYTES} bytes"
        )));
    }
    serde_json::from_str::<serde_json::Value>(document)
        .map(drop)
        .map_err(|error| {
            CapabilityError::InvalidArgument(format!("the policy document is not JSON: {error}"))
        })
}

fn check_message_size(what: &str, bytes: usize) -> Result<(), CapabilityError> {
    if bytes > MAX_MESSAGE_BYTES {
        return Err(CapabilityError::InvalidArgument(format!(
            "the {what} is {bytes} bytes, more than the {MAX_MESSAGE_BYTES} allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that returns one snapshot for every thing and accepts every operation.
    struct FixedRegistry(ThingSnapshot);

    impl Registry for FixedRegistry {
        fn snapshot(&mut self, _: &str) -> Result<ThingSnapshot, CapabilityError> {
            Ok(self.0.clone())
        }

        fn perform(&mut self, _: &StagedOperation) -> Result<(), CapabilityError> {
            Ok(())
        }
    }

    fn certificate(id: &str) -> DeviceCertificate {
        DeviceCertificate {
            certificate_id: id.to_string(),
            certificate_arn: format!("arn:aws:iot:eu-west-1:123456789012:cert/{id}"),
            status: CertificateStatus::Active,
            ca_certificate_id: Some("ca-1".to_string()),
        }
    }

    fn scope_with(snapshot: ThingSnapshot, grants: Grants) -> CallScope {
        CallScope::new(&mut FixedRegistry(snapshot), "sensor-1", grants, 10)
    }

    fn scope(groups: &[&str]) -> CallScope {
        let snapshot = ThingSnapshot {
            groups: groups.iter().map(|group| group.to_string()).collect(),
            ..ThingSnapshot::default()
        };
        scope_with(snapshot, Grants::default())
    }

    #[test]
    fn addition_for_another_thing_is_denied() {
        let mut scope = scope(&[]);

        let result = scope.add_to_group("sensor-2".to_string(), "quarantine".to_string(), false);

        assert!(matches!(result, Err(CapabilityError::Denied(_))));
        assert!(scope.staged.is_empty());
    }

    #[test]
    fn listing_another_thing_is_denied() {
        let scope = scope(&["fleet"]);

        assert!(matches!(
            scope.groups("sensor-2"),
            Err(CapabilityError::Denied(_))
        ));
    }

    #[test]
    fn invalid_group_name_is_rejected() {
        let mut scope = scope(&[]);

        for group in ["", "has space", "slash/inside", &"g".repeat(129)] {
            let result = scope.add_to_group("sensor-1".to_string(), group.to_string(), false);
            assert!(
                matches!(result, Err(CapabilityError::InvalidArgument(_))),
                "group {group:?}"
            );
        }
        assert!(scope.staged.is_empty());
    }

    #[test]
    fn repeated_addition_is_staged_once() {
        let mut scope = scope(&[]);

        for _ in 0..2 {
            let result =
                scope.add_to_group("sensor-1".to_string(), "quarantine".to_string(), false);
            assert!(result.is_ok());
        }

        assert_eq!(scope.staged.len(), 1);
    }

    #[test]
    fn listing_includes_staged_additions_sorted() {
        let mut scope = scope(&["fleet", "zone-a"]);
        let staged = scope.add_to_group("sensor-1".to_string(), "quarantine".to_string(), false);
        assert!(staged.is_ok());

        let groups = scope.groups("sensor-1").expect("groups");

        assert_eq!(groups, vec!["fleet", "quarantine", "zone-a"]);
    }

    #[test]
    fn certificate_of_another_thing_cannot_be_updated() {
        let snapshot = ThingSnapshot {
            certificates: vec![certificate("aaa")],
            ..ThingSnapshot::default()
        };
        let mut scope = scope_with(snapshot, Grants::default());

        let denied = scope.update_certificate("bbb".to_string(), CertificateStatus::Inactive);
        let staged = scope.update_certificate("aaa".to_string(), CertificateStatus::Inactive);

        assert!(matches!(denied, Err(CapabilityError::Denied(_))));
        assert!(staged.is_ok());
        let certificates = scope.certificates("sensor-1").expect("certificates");
        assert_eq!(certificates[0].status, CertificateStatus::Inactive);
    }

    #[test]
    fn staged_policy_version_becomes_the_default_in_reads() {
        let versions = vec![PolicyVersion {
            version_id: "1".to_string(),
            is_default_version: true,
            document: "{}".to_string(),
        }];
        let snapshot = ThingSnapshot {
            policies: BTreeMap::from([("device".to_string(), versions)]),
            ..ThingSnapshot::default()
        };
        let mut scope = scope_with(snapshot, Grants::default());

        let staged =
            scope.create_policy_version("device".to_string(), "{\"a\":1}".to_string(), true);
        let versions = scope.policy_versions("device").expect("versions");

        assert!(staged.is_ok());
        let defaults: Vec<_> = versions
            .iter()
            .map(|version| (version.version_id.as_str(), version.is_default_version))
            .collect();
        assert_eq!(defaults, vec![("1", false), ("2", true)]);
    }

    #[test]
    fn policy_document_must_be_json() {
        let snapshot = ThingSnapshot {
            policies: BTreeMap::from([("device".to_string(), Vec::new())]),
            ..ThingSnapshot::default()
        };
        let mut scope = scope_with(snapshot, Grants::default());

        let result = scope.create_policy_version("device".to_string(), "{".to_string(), true);

        assert!(matches!(result, Err(CapabilityError::InvalidArgument(_))));
    }

    #[test]
    fn post_outside_granted_prefixes_is_denied() {
        let grants = Grants {
            allowed_urls: vec!["http://127.0.0.1:9000/hooks/".to_string()],
            ..Grants::default()
        };
        let mut scope = scope_with(ThingSnapshot::default(), grants);

        let denied = scope.post(
            "http://127.0.0.1:9000/admin".to_string(),
            "application/json".to_string(),
            b"{}".to_vec(),
        );
        let staged = scope.post(
            "http://127.0.0.1:9000/hooks/ops".to_string(),
            "application/json".to_string(),
            b"{}".to_vec(),
        );

        assert!(matches!(denied, Err(CapabilityError::Denied(_))));
        assert!(staged.is_ok());
    }

    #[test]
    fn url_prefix_matches_host_and_whole_segments_only() {
        let prefix = "http://127.0.0.1:9000/hooks";
        let cases = [
            ("http://127.0.0.1:9000/hooks", true),
            ("http://127.0.0.1:9000/hooks/ops?team=a", true),
            ("http://127.0.0.1:9000/hooksmith", false),
            ("http://127.0.0.1:9000/hooks/../admin", false),
            ("http://127.0.0.1:9000/hooks/%2E%2e/admin", false),
            ("http://127.0.0.1:9001/hooks/ops", false),
            ("http://127.0.0.1:9000.attacker.example/hooks", false),
        ];

        for (url, expected) in cases {
            assert_eq!(url_is_under(url, prefix), expected, "{url}");
        }
        assert!(!url_is_under(
            "http://localhost.attacker.example/steal",
            "http://localhost"
        ));
    }

    #[test]
    fn publish_to_an_ungranted_topic_is_denied() {
        let grants = Grants {
            allowed_topics: vec!["arn:aws:sns:eu-west-1:123456789012:ops".to_string()],
            ..Grants::default()
        };
        let mut scope = scope_with(ThingSnapshot::default(), grants);

        let result = scope.publish(
            "arn:aws:sns:eu-west-1:123456789012:other".to_string(),
            None,
            "finding".to_string(),
        );

        assert!(matches!(result, Err(CapabilityError::Denied(_))));
    }

    #[test]
    fn oversize_message_is_rejected() {
        let mut scope = scope_with(ThingSnapshot::default(), Grants::default());

        let result = scope.publish(
            "arn:aws:sns:eu-west-1:123456789012:ops".to_string(),
            None,
            "x".repeat(MAX_MESSAGE_BYTES + 1),
        );

        assert!(matches!(result, Err(CapabilityError::InvalidArgument(_))));
    }

    #[test]
    fn host_call_budget_runs_out() {
        let mut scope = CallScope::new(
            &mut FixedRegistry(ThingSnapshot::default()),
            "sensor-1",
            Grants::default(),
            2,
        );

        let calls: Vec<bool> = (0..3).map(|_| scope.count_call()).collect();

        assert_eq!(calls, vec![true, true, false]);
    }
}
