//! The IoT registry as plain Rust calls on [`Service`], for the mitigation plugin host. It covers
//! the certificates attached to a thing, CA certificates, policies and their versions, the v2
//! logging options and thing attributes. The input checks it shares with the AWS API live here
//! too.
//!
//! Reads see what is committed. Writes check their input against committed state and queue a
//! [`Write::Registry`] row, which becomes durable and visible with the next [`Service::commit`],
//! in the same transaction as the journal entries of that unit of work. The API handlers commit
//! after every request; any other caller must call `commit` after its writes, and before it
//! reads a change back or changes the same certificate or policy again.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};
use vigil_core::model::Timestamp;

use crate::service::{Service, Write};
use crate::store::registry::RegistryWrite;

/// A device certificate as mitigation actions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Lowercase hex SHA-256 of the certificate's DER encoding.
    pub certificate_id: String,
    /// `arn:aws:iot:REGION:ACCOUNT:cert/ID`.
    pub certificate_arn: String,
    /// AWS status name, such as `ACTIVE`.
    pub status: String,
    /// The CA certificate it was registered with, if any.
    pub ca_certificate_id: Option<String>,
}

/// A CA certificate as mitigation actions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificateInfo {
    /// Lowercase hex SHA-256 of the certificate's DER encoding.
    pub certificate_id: String,
    /// `arn:aws:iot:REGION:ACCOUNT:cacert/ID`.
    pub certificate_arn: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
}

/// One version of an IoT policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersionInfo {
    /// Version number as AWS spells it, such as `"2"`.
    pub version_id: String,
    /// Whether this is the policy's default version.
    pub is_default: bool,
    /// The JSON policy document.
    pub document: String,
}

/// The account's v2 logging options, as `SetV2LoggingOptions` takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingOptions {
    /// IAM role that allows IoT to write to CloudWatch Logs; empty when none was set.
    pub role_arn: String,
    /// `DEBUG`, `INFO`, `ERROR`, `WARN` or `DISABLED`.
    pub default_log_level: String,
    /// Whether all logs are off.
    pub disable_all_logs: bool,
}

/// Errors of registry writes, mapped by the caller to AWS errors or plugin errors.
#[derive(Debug, thiserror::Error)]
pub enum IotError {
    /// The certificate, policy, version or thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An input is invalid: an unknown status, a malformed document.
    #[error("{0}")]
    Invalid(String),
    /// The resource's state forbids the change, such as reactivating a revoked certificate.
    #[error("{0}")]
    Conflict(String),
    /// A quota is reached, such as five versions of one policy.
    #[error("{0}")]
    LimitExceeded(String),
    /// Reading the database failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Statuses `UpdateCertificate` may set. AWS rejects `PENDING_TRANSFER` and
/// `PENDING_ACTIVATION`, and Vigil has no just-in-time registration that would use
/// `REGISTER_INACTIVE`.
pub const SETTABLE_CERTIFICATE_STATUSES: [&str; 3] = ["ACTIVE", "INACTIVE", "REVOKED"];
/// Statuses of a CA certificate.
pub const CA_CERTIFICATE_STATUSES: [&str; 2] = ["ACTIVE", "INACTIVE"];
/// Log levels of the v2 logging options.
pub const LOG_LEVELS: [&str; 5] = ["DEBUG", "INFO", "ERROR", "WARN", "DISABLED"];
/// AWS keeps at most this many versions of one policy.
pub const MAX_POLICY_VERSIONS: usize = 5;
/// Largest policy document AWS's API model accepts, in characters.
pub const MAX_POLICY_DOCUMENT_CHARS: usize = 404_600;
/// AWS's limit of attributes per thing with a thing type.
// NOTE: AWS allows only 3 attributes on a thing without a thing type. Vigil has no thing types
// and applies the limit of typed things instead.
pub const MAX_THING_ATTRIBUTES: usize = 50;

impl Service {
    /// Returns the device certificates attached to `thing` as principals, sorted by ARN; an
    /// unknown thing has none.
    pub fn thing_certificates(&self, thing: &str) -> anyhow::Result<Vec<CertificateInfo>> {
        let mut certificates = Vec::new();
        for principal in self.store().thing_principals(thing)? {
            let Some(id) = certificate_id_of_arn(&principal) else {
                continue;
            };
            if let Some(record) = self.store().certificate(id)? {
                certificates.push(CertificateInfo {
                    certificate_arn: principal.clone(),
                    certificate_id: record.certificate_id,
                    status: record.status,
                    ca_certificate_id: record.ca_certificate_id,
                });
            }
        }
        Ok(certificates)
    }

    /// Returns a registered CA certificate.
    pub fn ca_certificate(
        &self,
        certificate_id: &str,
    ) -> anyhow::Result<Option<CaCertificateInfo>> {
        let record = self.store().ca_certificate(certificate_id)?;
        Ok(record.map(|record| CaCertificateInfo {
            certificate_arn: self.ca_certificate_arn(&record.certificate_id),
            certificate_id: record.certificate_id,
            status: record.status,
        }))
    }

    /// Queues a device certificate's status change: `ACTIVE`, `INACTIVE` or `REVOKED`, as
    /// `UpdateCertificate` does. A revoked certificate stays revoked ([`IotError::Conflict`]).
    /// The caller must [`Service::commit`] afterwards (see the module documentation).
    pub fn set_certificate_status(
        &mut self,
        certificate_id: &str,
        status: &str,
    ) -> Result<(), IotError> {
        check_enum("newStatus", status, &SETTABLE_CERTIFICATE_STATUSES)?;
        let record = self.store().certificate(certificate_id)?.ok_or_else(|| {
            IotError::NotFound(format!("certificate `{certificate_id}` does not exist"))
        })?;
        if record.status == "REVOKED" && status != "REVOKED" {
            return Err(IotError::Conflict(format!(
                "certificate `{certificate_id}` is revoked, and a revoked certificate cannot \
                 change its status"
            )));
        }
        let now = self.now();
        self.write(Write::Registry(RegistryWrite::CertificateStatus {
            certificate_id: certificate_id.to_owned(),
            status: status.to_owned(),
            now,
        }));
        Ok(())
    }

    /// Queues a CA certificate's status change to `ACTIVE` or `INACTIVE`. The caller must
    /// [`Service::commit`] afterwards (see the module documentation).
    pub fn set_ca_certificate_status(
        &mut self,
        certificate_id: &str,
        status: &str,
    ) -> Result<(), IotError> {
        check_enum("newStatus", status, &CA_CERTIFICATE_STATUSES)?;
        self.update_ca_certificate(certificate_id, Some(status), None)
    }

    /// Queues a change of a CA certificate's status or auto-registration status.
    pub(crate) fn update_ca_certificate(
        &mut self,
        certificate_id: &str,
        status: Option<&str>,
        auto_registration_status: Option<&str>,
    ) -> Result<(), IotError> {
        if self.store().ca_certificate(certificate_id)?.is_none() {
            return Err(IotError::NotFound(format!(
                "CA certificate `{certificate_id}` does not exist"
            )));
        }
        let now = self.now();
        self.write(Write::Registry(RegistryWrite::CaCertificateStatus {
            certificate_id: certificate_id.to_owned(),
            status: status.map(str::to_owned),
            auto_registration_status: auto_registration_status.map(str::to_owned),
            now,
        }));
        Ok(())
    }

    /// Returns the names of the policies attached to the thing's certificates or to its thing
    /// groups, sorted and without repeats. It needs `&mut self` because group membership lives
    /// in the engine, and querying the engine component needs exclusive access.
    pub fn thing_policies(&mut self, thing: &str) -> anyhow::Result<Vec<String>> {
        let mut targets = self.store().thing_principals(thing)?;
        if self.store().thing_id(thing)?.is_some() {
            let groups = self.engine().queries().list_thing_groups_for_thing(thing)?;
            targets.extend(groups.iter().map(|g| self.arn(&format!("thinggroup/{g}"))));
        }
        let mut policies = std::collections::BTreeSet::new();
        for target in targets {
            policies.extend(self.store().target_policies(&target)?);
        }
        Ok(policies.into_iter().collect())
    }

    /// Returns the versions of a policy, oldest first; an unknown policy has none.
    pub fn policy_versions(&self, policy: &str) -> anyhow::Result<Vec<PolicyVersionInfo>> {
        let Some(record) = self.store().policy(policy)? else {
            return Ok(Vec::new());
        };
        let versions = self.store().policy_versions(policy)?;
        Ok(versions
            .into_iter()
            .map(|version| PolicyVersionInfo {
                version_id: version.version.to_string(),
                is_default: version.version == record.default_version,
                document: version.document,
            })
            .collect())
    }

    /// Queues a new version of a policy and returns its id, as `CreatePolicyVersion` does. A
    /// policy with five versions takes no more ([`IotError::LimitExceeded`]): AWS does not
    /// delete old versions on its own. The caller must [`Service::commit`] afterwards (see
    /// the module documentation).
    pub fn create_policy_version(
        &mut self,
        policy: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<String, IotError> {
        check_policy_document(document)?;
        let record = self
            .store()
            .policy(policy)?
            .ok_or_else(|| IotError::NotFound(format!("policy `{policy}` does not exist")))?;
        let queued = self.queued_policy_versions(policy);
        let existing = self.store().policy_versions(policy)?.len() + queued;
        if existing >= MAX_POLICY_VERSIONS {
            return Err(IotError::LimitExceeded(format!(
                "policy `{policy}` has {existing} versions, the maximum; delete a non-default \
                 version with DeletePolicyVersion first"
            )));
        }
        let version = record.last_version + i64::try_from(queued).unwrap_or(0) + 1;
        let now = self.now();
        self.write(Write::Registry(RegistryWrite::PolicyVersion {
            policy: policy.to_owned(),
            version,
            document: document.to_owned(),
            set_as_default,
            now,
        }));
        Ok(version.to_string())
    }

    /// Counts the versions of `policy` queued since the last commit.
    fn queued_policy_versions(&self, policy: &str) -> usize {
        self.pending_writes()
            .iter()
            .filter(|write| {
                matches!(write, Write::Registry(RegistryWrite::PolicyVersion { policy: p, .. })
                    if p == policy)
            })
            .count()
    }

    /// Returns the v2 logging options, or `None` if they were never set.
    pub fn logging_options(&self) -> anyhow::Result<Option<LoggingOptions>> {
        let Some(stored) = self.store().logging_options()? else {
            return Ok(None);
        };
        let text = |key: &str| stored.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Ok(Some(LoggingOptions {
            role_arn: text("roleArn").unwrap_or_default(),
            default_log_level: text("defaultLogLevel").unwrap_or_else(|| "ERROR".to_owned()),
            disable_all_logs: stored
                .get("disableAllLogs")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }))
    }

    /// Queues new v2 logging options, replacing the old ones as `SetV2LoggingOptions` does. An
    /// empty `role_arn` stores none. The caller must [`Service::commit`] afterwards (see
    /// the module documentation).
    pub fn set_logging_options(&mut self, options: LoggingOptions) -> Result<(), IotError> {
        check_enum("defaultLogLevel", &options.default_log_level, &LOG_LEVELS)?;
        let mut stored = serde_json::json!({
            "defaultLogLevel": options.default_log_level,
            "disableAllLogs": options.disable_all_logs,
        });
        if !options.role_arn.is_empty() {
            check_role_arn(&options.role_arn)?;
            stored["roleArn"] = options.role_arn.into();
        }
        self.write(Write::Registry(RegistryWrite::LoggingOptions(stored)));
        Ok(())
    }

    /// Returns a thing's attributes, or `None` when the thing does not exist.
    pub fn thing_attributes(
        &self,
        thing: &str,
    ) -> anyhow::Result<Option<BTreeMap<String, String>>> {
        if self.store().thing_id(thing)?.is_none() {
            return Ok(None);
        }
        let stored = self.store().thing_attributes(thing)?;
        Ok(Some(
            stored.map(|(attributes, _)| attributes).unwrap_or_default(),
        ))
    }

    /// Returns the ARN of a device certificate.
    pub fn certificate_arn(&self, certificate_id: &str) -> String {
        self.arn(&format!("cert/{certificate_id}"))
    }

    /// Returns the ARN of a CA certificate.
    pub fn ca_certificate_arn(&self, certificate_id: &str) -> String {
        self.arn(&format!("cacert/{certificate_id}"))
    }
}

/// Returns the certificate id of a certificate ARN (`arn:aws:iot:…:cert/ID`).
pub fn certificate_id_of_arn(arn: &str) -> Option<&str> {
    let (prefix, id) = arn.rsplit_once(":cert/")?;
    (prefix.starts_with("arn:") && !id.is_empty()).then_some(id)
}

/// Checks that `value` is one of `allowed`.
pub fn check_enum(field: &str, value: &str, allowed: &[&str]) -> Result<(), IotError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(IotError::Invalid(format!(
            "`{field}` must be one of {}, not `{value}`",
            allowed.join(", ")
        )))
    }
}

/// Checks an IAM role ARN such as `arn:aws:iam::123456789012:role/NAME`.
pub fn check_role_arn(role_arn: &str) -> Result<(), IotError> {
    let valid = role_arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::"))
        .is_some_and(|(_, rest)| rest.contains(":role/"));
    if valid {
        Ok(())
    } else {
        Err(IotError::Invalid(format!(
            "`roleArn` must be an IAM role ARN such as arn:aws:iam::123456789012:role/NAME, not \
             `{role_arn}`"
        )))
    }
}

/// Checks that a policy document is a JSON object of at most [`MAX_POLICY_DOCUMENT_CHARS`].
pub fn check_policy_document(document: &str) -> Result<(), IotError> {
    if document.chars().count() > MAX_POLICY_DOCUMENT_CHARS {
        return Err(IotError::Invalid(format!(
            "`policyDocument` must be at most {MAX_POLICY_DOCUMENT_CHARS} characters"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(document) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(IotError::Invalid(
            "`policyDocument` must be a JSON object with `Version` and `Statement`".to_owned(),
        )),
        Err(error) => Err(IotError::Invalid(format!(
            "`policyDocument` is not valid JSON: {error}"
        ))),
    }
}

/// Checks thing attributes against AWS's patterns: names of 1 to 128 and values of up to 800
/// characters of `[a-zA-Z0-9_.,@/:#-]`, and at most [`MAX_THING_ATTRIBUTES`] of them.
pub fn check_attributes(
    field: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<(), IotError> {
    if attributes.len() > MAX_THING_ATTRIBUTES {
        return Err(IotError::Invalid(format!(
            "`{field}` has {} attributes; a thing can have at most {MAX_THING_ATTRIBUTES}",
            attributes.len()
        )));
    }
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "_.,@/:#-".contains(c);
    for (name, value) in attributes {
        if name.is_empty() || name.chars().count() > 128 || !name.chars().all(valid_char) {
            return Err(IotError::Invalid(format!(
                "attribute names in `{field}` must be 1 to 128 characters of \
                 [a-zA-Z0-9_.,@/:#-], not `{name}`"
            )));
        }
        if value.chars().count() > 800 || !value.chars().all(valid_char) {
            return Err(IotError::Invalid(format!(
                "`{field}.{name}` must be at most 800 characters of [a-zA-Z0-9_.,@/:#-]"
            )));
        }
    }
    Ok(())
}

/// A certificate read from PEM.
#[derive(Clone, Debug)]
pub struct ParsedCertificate {
    /// Lowercase hex SHA-256 of the DER encoding, which AWS uses as the certificate id.
    pub certificate_id: String,
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Start of validity, epoch milliseconds.
    pub not_before: Timestamp,
    /// End of validity, epoch milliseconds.
    pub not_after: Timestamp,
    /// Whether its basic constraints mark it as a CA.
    pub is_ca: bool,
}

/// Parses the first certificate of a PEM text; `field` names the input in the error.
pub fn parse_certificate_pem(field: &str, pem: &str) -> Result<ParsedCertificate, IotError> {
    let invalid = |reason: String| {
        IotError::Invalid(format!(
            "`{field}` is not a PEM-encoded X.509 certificate: {reason}"
        ))
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|error| invalid(error.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(invalid(format!("the PEM block is a `{}`", pem.label)));
    }
    let certificate = pem
        .parse_x509()
        .map_err(|error| invalid(error.to_string()))?;
    let is_ca = certificate
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|constraints| constraints.value.ca);
    let validity = certificate.validity();
    Ok(ParsedCertificate {
        certificate_id: hex_sha256(&pem.contents),
        not_before: validity.not_before.timestamp().saturating_mul(1000),
        not_after: validity.not_after.timestamp().saturating_mul(1000),
        is_ca,
        der: pem.contents.clone(),
    })
}

/// Returns whether the certificate `der` carries a valid signature by the key of `issuer_der`.
pub fn is_signed_by(der: &[u8], issuer_der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (Ok((_, certificate)), Ok((_, issuer))) = (
        X509Certificate::from_der(der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    certificate
        .verify_signature(Some(issuer.public_key()))
        .is_ok()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["lamp-1".to_owned()])
            .unwrap()
            .cert
            .pem()
    }

    #[test]
    fn certificate_id_is_the_sha256_of_the_der() {
        let pem = self_signed_pem();
        let parsed = parse_certificate_pem("certificatePem", &pem).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(parsed.certificate_id, hex_sha256(&block.contents));
        assert_eq!(parsed.certificate_id.len(), 64);
        assert!(parsed.not_before < parsed.not_after);
        assert!(!parsed.is_ca);
    }

    #[test]
    fn bad_pem_is_invalid_and_names_the_field() {
        let error = parse_certificate_pem("caCertificatePem", "garbage").unwrap_err();
        assert!(matches!(error, IotError::Invalid(_)), "{error:?}");
        assert!(error.to_string().contains("`caCertificatePem`"), "{error}");
    }

    #[test]
    fn a_self_signed_certificate_verifies_against_itself_only() {
        let first = parse_certificate_pem("a", &self_signed_pem()).unwrap();
        let second = parse_certificate_pem("b", &self_signed_pem()).unwrap();
        assert!(is_signed_by(&first.der, &first.der));
        assert!(!is_signed_by(&first.der, &second.der));
    }

    #[test]
    fn policy_documents_must_be_json_objects() {
        assert!(check_policy_document(r#"{"Version":"2012-10-17"}"#).is_ok());
        assert!(matches!(
            check_policy_document("[1]"),
            Err(IotError::Invalid(_))
        ));
        assert!(matches!(
            check_policy_document("{"),
            Err(IotError::Invalid(_))
        ));
    }

    #[test]
    fn attributes_follow_aws_patterns_and_count() {
        let ok = BTreeMap::from([("site".to_owned(), "b7/floor:2".to_owned())]);
        assert!(check_attributes("attributes", &ok).is_ok());
        let bad_value = BTreeMap::from([("site".to_owned(), "has space".to_owned())]);
        let error = check_attributes("attributes", &bad_value).unwrap_err();
        assert!(error.to_string().contains("`attributes.site`"), "{error}");
        let too_many: BTreeMap<_, _> = (0..51).map(|n| (format!("a{n}"), "v".to_owned())).collect();
        assert!(check_attributes("attributes", &too_many).is_err());
    }

    #[test]
    fn certificate_arns_yield_their_id() {
        let arn = "arn:aws:iot:eu-west-1:123456789012:cert/abc";
        assert_eq!(certificate_id_of_arn(arn), Some("abc"));
        assert_eq!(certificate_id_of_arn("cert/abc"), None);
        assert_eq!(
            certificate_id_of_arn("arn:aws:iot:eu-west-1:123456789012:cert/"),
            None
        );
    }
}
