//! Rows of the IoT registry that mitigation actions act on: certificates, CA certificates,
//! thing principals, policies with their versions and targets, thing attributes and the v2
//! logging options. The engine keeps none of these, so they live only here.

use std::collections::BTreeMap;

use anyhow::Context as _;
use rusqlite::{OptionalExtension as _, Transaction, params};
use vigil_core::model::Timestamp;

use super::Store;

/// Tables of this module, created next to the others when the database opens.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certificates (
    certificate_id TEXT PRIMARY KEY,
    pem TEXT NOT NULL,
    ca_certificate_id TEXT,
    status TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    creation_date INTEGER NOT NULL,
    last_modified_date INTEGER NOT NULL,
    customer_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ca_certificates (
    certificate_id TEXT PRIMARY KEY,
    pem TEXT NOT NULL,
    status TEXT NOT NULL,
    auto_registration_status TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    creation_date INTEGER NOT NULL,
    last_modified_date INTEGER NOT NULL,
    customer_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS thing_principals (
    thing_name TEXT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (thing_name, principal)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thing_principals_by_principal ON thing_principals (principal);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    default_version INTEGER NOT NULL,
    last_version INTEGER NOT NULL,
    creation_date INTEGER NOT NULL,
    last_modified_date INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions (
    policy_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    creation_date INTEGER NOT NULL,
    PRIMARY KEY (policy_name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_targets (
    policy_name TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (policy_name, target)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS policy_targets_by_target ON policy_targets (target);
CREATE TABLE IF NOT EXISTS thing_attributes (
    thing_name TEXT PRIMARY KEY,
    attributes TEXT NOT NULL,
    version INTEGER NOT NULL
);
";

/// Key of the v2 logging options in the `meta` table.
const LOGGING_OPTIONS_KEY: &str = "v2_logging_options";

/// A registered device certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateRecord {
    /// Lowercase hex SHA-256 of the DER encoding.
    pub certificate_id: String,
    /// The PEM as registered.
    pub pem: String,
    /// The CA certificate it was registered with, if any.
    pub ca_certificate_id: Option<String>,
    /// AWS status name, such as `ACTIVE`.
    pub status: String,
    /// Start of validity, epoch milliseconds.
    pub not_before: Timestamp,
    /// End of validity, epoch milliseconds.
    pub not_after: Timestamp,
    /// Registration time.
    pub creation_date: Timestamp,
    /// Time of the last status change.
    pub last_modified_date: Timestamp,
    /// Count of changes since registration, starting at 1.
    pub customer_version: i64,
}

/// A registered CA certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct CaCertificateRecord {
    /// Lowercase hex SHA-256 of the DER encoding.
    pub certificate_id: String,
    /// The PEM as registered.
    pub pem: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `ENABLE` or `DISABLE`.
    pub auto_registration_status: String,
    /// Start of validity, epoch milliseconds.
    pub not_before: Timestamp,
    /// End of validity, epoch milliseconds.
    pub not_after: Timestamp,
    /// Registration time.
    pub creation_date: Timestamp,
    /// Time of the last change.
    pub last_modified_date: Timestamp,
    /// Count of changes since registration, starting at 1.
    pub customer_version: i64,
}

/// An IoT policy without its documents.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyRecord {
    /// The policy's name.
    pub name: String,
    /// Number of the default version.
    pub default_version: i64,
    /// Highest version number ever given, so deleted numbers are not reused.
    pub last_version: i64,
    /// Creation time.
    pub creation_date: Timestamp,
    /// Time of the last change of the default version.
    pub last_modified_date: Timestamp,
}

/// One version of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyVersionRecord {
    /// Version number, from 1.
    pub version: i64,
    /// The JSON document as sent.
    pub document: String,
    /// Creation time.
    pub creation_date: Timestamp,
}

/// A change to the registry rows, applied inside a request's transaction.
#[derive(Clone, Debug)]
pub enum RegistryWrite {
    /// Insert a device certificate.
    Certificate(CertificateRecord),
    /// Change a device certificate's status.
    CertificateStatus {
        /// The certificate.
        certificate_id: String,
        /// The new AWS status name.
        status: String,
        /// Time of the change.
        now: Timestamp,
    },
    /// Delete a device certificate, its thing attachments and its policy attachments.
    DropCertificate {
        /// The certificate.
        certificate_id: String,
        /// Its ARN, which names it as a principal and a policy target.
        certificate_arn: String,
    },
    /// Insert a CA certificate.
    CaCertificate(CaCertificateRecord),
    /// Change a CA certificate's status or auto-registration status.
    CaCertificateStatus {
        /// The CA certificate.
        certificate_id: String,
        /// The new status, if it changes.
        status: Option<String>,
        /// The new auto-registration status, if it changes.
        auto_registration_status: Option<String>,
        /// Time of the change.
        now: Timestamp,
    },
    /// Attach a principal to a thing.
    AttachPrincipal {
        /// The thing.
        thing: String,
        /// The principal's ARN.
        principal: String,
    },
    /// Detach a principal from a thing.
    DetachPrincipal {
        /// The thing.
        thing: String,
        /// The principal's ARN.
        principal: String,
    },
    /// Insert a policy version, creating the policy with it when `version` is 1.
    PolicyVersion {
        /// The policy.
        policy: String,
        /// The new version number.
        version: i64,
        /// The JSON document.
        document: String,
        /// Whether the new version becomes the default.
        set_as_default: bool,
        /// Time of creation.
        now: Timestamp,
    },
    /// Make a version the default one.
    DefaultPolicyVersion {
        /// The policy.
        policy: String,
        /// The version number.
        version: i64,
        /// Time of the change.
        now: Timestamp,
    },
    /// Delete one non-default version.
    DropPolicyVersion {
        /// The policy.
        policy: String,
        /// The version number.
        version: i64,
    },
    /// Delete a policy with its versions.
    DropPolicy(String),
    /// Attach a policy to a target ARN.
    AttachPolicy {
        /// The policy.
        policy: String,
        /// The target's ARN.
        target: String,
    },
    /// Detach a policy from a target ARN.
    DetachPolicy {
        /// The policy.
        policy: String,
        /// The target's ARN.
        target: String,
    },
    /// Detach every policy from a deleted target.
    DropPolicyTarget(String),
    /// Replace a thing's attributes and set its version.
    ThingAttributes {
        /// The thing.
        thing: String,
        /// Every attribute the thing has after the change.
        attributes: BTreeMap<String, String>,
        /// The thing's version after the change.
        version: i64,
    },
    /// Replace the v2 logging options, as a JSON object.
    LoggingOptions(serde_json::Value),
}

impl RegistryWrite {
    /// Applies the change inside `tx`.
    pub fn apply(&self, tx: &Transaction<'_>) -> anyhow::Result<()> {
        match self {
            Self::Certificate(record) => insert_certificate(tx, record),
            Self::CertificateStatus {
                certificate_id,
                status,
                now,
            } => execute(
                tx,
                "UPDATE certificates SET status = ?2, last_modified_date = ?3,
                     customer_version = customer_version + 1
                 WHERE certificate_id = ?1",
                params![certificate_id, status, now],
                "failed to update a certificate's status",
            ),
            Self::DropCertificate {
                certificate_id,
                certificate_arn,
            } => drop_certificate(tx, certificate_id, certificate_arn),
            Self::CaCertificate(record) => insert_ca_certificate(tx, record),
            Self::CaCertificateStatus {
                certificate_id,
                status,
                auto_registration_status,
                now,
            } => execute(
                tx,
                "UPDATE ca_certificates SET status = coalesce(?2, status),
                     auto_registration_status = coalesce(?3, auto_registration_status),
                     last_modified_date = ?4, customer_version = customer_version + 1
                 WHERE certificate_id = ?1",
                params![certificate_id, status, auto_registration_status, now],
                "failed to update a CA certificate",
            ),
            Self::AttachPrincipal { thing, principal } => execute(
                tx,
                "INSERT OR IGNORE INTO thing_principals (thing_name, principal) VALUES (?1, ?2)",
                params![thing, principal],
                "failed to attach a principal to a thing",
            ),
            Self::DetachPrincipal { thing, principal } => execute(
                tx,
                "DELETE FROM thing_principals WHERE thing_name = ?1 AND principal = ?2",
                params![thing, principal],
                "failed to detach a principal from a thing",
            ),
            Self::PolicyVersion {
                policy,
                version,
                document,
                set_as_default,
                now,
            } => insert_policy_version(tx, policy, *version, document, *set_as_default, *now),
            Self::DefaultPolicyVersion {
                policy,
                version,
                now,
            } => execute(
                tx,
                "UPDATE policies SET default_version = ?2, last_modified_date = ?3 WHERE name = ?1",
                params![policy, version, now],
                "failed to set a policy's default version",
            ),
            Self::DropPolicyVersion { policy, version } => execute(
                tx,
                "DELETE FROM policy_versions WHERE policy_name = ?1 AND version = ?2",
                params![policy, version],
                "failed to delete a policy version",
            ),
            Self::DropPolicy(policy) => drop_policy(tx, policy),
            Self::AttachPolicy { policy, target } => execute(
                tx,
                "INSERT OR IGNORE INTO policy_targets (policy_name, target) VALUES (?1, ?2)",
                params![policy, target],
                "failed to attach a policy",
            ),
            Self::DetachPolicy { policy, target } => execute(
                tx,
                "DELETE FROM policy_targets WHERE policy_name = ?1 AND target = ?2",
                params![policy, target],
                "failed to detach a policy",
            ),
            Self::DropPolicyTarget(target) => execute(
                tx,
                "DELETE FROM policy_targets WHERE target = ?1",
                params![target],
                "failed to detach the policies of a deleted target",
            ),
            Self::ThingAttributes {
                thing,
                attributes,
                version,
            } => execute(
                tx,
                "INSERT OR REPLACE INTO thing_attributes (thing_name, attributes, version)
                 VALUES (?1, ?2, ?3)",
                params![thing, serde_json::to_string(attributes)?, version],
                "failed to store a thing's attributes",
            ),
            Self::LoggingOptions(options) => {
                super::write::meta(tx, LOGGING_OPTIONS_KEY, &options.to_string())
            }
        }
    }
}

fn execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    failure: &'static str,
) -> anyhow::Result<()> {
    tx.execute(sql, params).context(failure)?;
    Ok(())
}

fn insert_certificate(tx: &Transaction<'_>, record: &CertificateRecord) -> anyhow::Result<()> {
    execute(
        tx,
        "INSERT INTO certificates (certificate_id, pem, ca_certificate_id, status, not_before,
             not_after, creation_date, last_modified_date, customer_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.certificate_id,
            record.pem,
            record.ca_certificate_id,
            record.status,
            record.not_before,
            record.not_after,
            record.creation_date,
            record.last_modified_date,
            record.customer_version,
        ],
        "failed to store a certificate",
    )
}

fn insert_ca_certificate(tx: &Transaction<'_>, record: &CaCertificateRecord) -> anyhow::Result<()> {
    execute(
        tx,
        "INSERT INTO ca_certificates (certificate_id, pem, status, auto_registration_status,
             not_before, not_after, creation_date, last_modified_date, customer_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.certificate_id,
            record.pem,
            record.status,
            record.auto_registration_status,
            record.not_before,
            record.not_after,
            record.creation_date,
            record.last_modified_date,
            record.customer_version,
        ],
        "failed to store a CA certificate",
    )
}

fn drop_certificate(tx: &Transaction<'_>, id: &str, arn: &str) -> anyhow::Result<()> {
    execute(
        tx,
        "DELETE FROM certificates WHERE certificate_id = ?1",
        [id],
        "failed to delete a certificate",
    )?;
    execute(
        tx,
        "DELETE FROM thing_principals WHERE principal = ?1",
        [arn],
        "failed to detach a deleted certificate from its things",
    )?;
    execute(
        tx,
        "DELETE FROM policy_targets WHERE target = ?1",
        [arn],
        "failed to detach the policies of a deleted certificate",
    )
}

fn insert_policy_version(
    tx: &Transaction<'_>,
    policy: &str,
    version: i64,
    document: &str,
    set_as_default: bool,
    now: Timestamp,
) -> anyhow::Result<()> {
    if version == 1 {
        execute(
            tx,
            "INSERT INTO policies (name, default_version, last_version, creation_date,
                 last_modified_date)
             VALUES (?1, 1, 1, ?2, ?2)",
            params![policy, now],
            "failed to store a policy",
        )?;
    } else {
        execute(
            tx,
            "UPDATE policies SET last_version = ?2,
                 default_version = CASE WHEN ?3 THEN ?2 ELSE default_version END,
                 last_modified_date = CASE WHEN ?3 THEN ?4 ELSE last_modified_date END
             WHERE name = ?1",
            params![policy, version, set_as_default, now],
            "failed to update a policy",
        )?;
    }
    execute(
        tx,
        "INSERT INTO policy_versions (policy_name, version, document, creation_date)
         VALUES (?1, ?2, ?3, ?4)",
        params![policy, version, document, now],
        "failed to store a policy version",
    )
}

fn drop_policy(tx: &Transaction<'_>, policy: &str) -> anyhow::Result<()> {
    execute(
        tx,
        "DELETE FROM policy_versions WHERE policy_name = ?1",
        [policy],
        "failed to delete a policy's versions",
    )?;
    execute(
        tx,
        "DELETE FROM policy_targets WHERE policy_name = ?1",
        [policy],
        "failed to detach a deleted policy",
    )?;
    execute(
        tx,
        "DELETE FROM policies WHERE name = ?1",
        [policy],
        "failed to delete a policy",
    )
}

fn certificate_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CertificateRecord> {
    Ok(CertificateRecord {
        certificate_id: row.get(0)?,
        pem: row.get(1)?,
        ca_certificate_id: row.get(2)?,
        status: row.get(3)?,
        not_before: row.get(4)?,
        not_after: row.get(5)?,
        creation_date: row.get(6)?,
        last_modified_date: row.get(7)?,
        customer_version: row.get(8)?,
    })
}

fn ca_certificate_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CaCertificateRecord> {
    Ok(CaCertificateRecord {
        certificate_id: row.get(0)?,
        pem: row.get(1)?,
        status: row.get(2)?,
        auto_registration_status: row.get(3)?,
        not_before: row.get(4)?,
        not_after: row.get(5)?,
        creation_date: row.get(6)?,
        last_modified_date: row.get(7)?,
        customer_version: row.get(8)?,
    })
}

fn policy_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRecord> {
    Ok(PolicyRecord {
        name: row.get(0)?,
        default_version: row.get(1)?,
        last_version: row.get(2)?,
        creation_date: row.get(3)?,
        last_modified_date: row.get(4)?,
    })
}

const CERTIFICATE_COLUMNS: &str = "certificate_id, pem, ca_certificate_id, status, not_before, \
     not_after, creation_date, last_modified_date, customer_version";
const CA_CERTIFICATE_COLUMNS: &str = "certificate_id, pem, status, auto_registration_status, \
     not_before, not_after, creation_date, last_modified_date, customer_version";
const POLICY_COLUMNS: &str = "name, default_version, last_version, creation_date, \
     last_modified_date";

impl Store {
    /// Returns a device certificate.
    pub fn certificate(&self, certificate_id: &str) -> anyhow::Result<Option<CertificateRecord>> {
        let sql =
            format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE certificate_id = ?1");
        self.connection
            .query_row(&sql, [certificate_id], certificate_from_row)
            .optional()
            .context("failed to read a certificate")
    }

    /// Returns every device certificate, oldest first.
    pub fn certificates(&self) -> anyhow::Result<Vec<CertificateRecord>> {
        let sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates ORDER BY creation_date, certificate_id"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map([], certificate_from_row)?;
        rows.collect::<Result<_, _>>()
            .context("failed to read certificates")
    }

    /// Returns a CA certificate.
    pub fn ca_certificate(
        &self,
        certificate_id: &str,
    ) -> anyhow::Result<Option<CaCertificateRecord>> {
        let sql = format!(
            "SELECT {CA_CERTIFICATE_COLUMNS} FROM ca_certificates WHERE certificate_id = ?1"
        );
        self.connection
            .query_row(&sql, [certificate_id], ca_certificate_from_row)
            .optional()
            .context("failed to read a CA certificate")
    }

    /// Returns every CA certificate, oldest first.
    pub fn ca_certificates(&self) -> anyhow::Result<Vec<CaCertificateRecord>> {
        let sql = format!(
            "SELECT {CA_CERTIFICATE_COLUMNS} FROM ca_certificates
             ORDER BY creation_date, certificate_id"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map([], ca_certificate_from_row)?;
        rows.collect::<Result<_, _>>()
            .context("failed to read CA certificates")
    }

    /// Returns the principals attached to a thing, sorted.
    pub fn thing_principals(&self, thing: &str) -> anyhow::Result<Vec<String>> {
        self.strings(
            "SELECT principal FROM thing_principals WHERE thing_name = ?1 ORDER BY principal",
            thing,
        )
        .context("failed to read a thing's principals")
    }

    /// Returns the things a principal is attached to, sorted.
    pub fn principal_things(&self, principal: &str) -> anyhow::Result<Vec<String>> {
        self.strings(
            "SELECT thing_name FROM thing_principals WHERE principal = ?1 ORDER BY thing_name",
            principal,
        )
        .context("failed to read a principal's things")
    }

    /// Returns a policy.
    pub fn policy(&self, name: &str) -> anyhow::Result<Option<PolicyRecord>> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE name = ?1");
        self.connection
            .query_row(&sql, [name], policy_from_row)
            .optional()
            .context("failed to read a policy")
    }

    /// Returns the names of every policy, oldest first.
    pub fn policy_names(&self) -> anyhow::Result<Vec<String>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT name FROM policies ORDER BY creation_date, name")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()
            .context("failed to read policies")
    }

    /// Returns the versions of a policy, oldest first.
    pub fn policy_versions(&self, policy: &str) -> anyhow::Result<Vec<PolicyVersionRecord>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT version, document, creation_date FROM policy_versions
             WHERE policy_name = ?1 ORDER BY version",
        )?;
        let rows = statement.query_map([policy], |row| {
            Ok(PolicyVersionRecord {
                version: row.get(0)?,
                document: row.get(1)?,
                creation_date: row.get(2)?,
            })
        })?;
        rows.collect::<Result<_, _>>()
            .context("failed to read policy versions")
    }

    /// Returns the targets a policy is attached to, sorted.
    pub fn policy_targets(&self, policy: &str) -> anyhow::Result<Vec<String>> {
        self.strings(
            "SELECT target FROM policy_targets WHERE policy_name = ?1 ORDER BY target",
            policy,
        )
        .context("failed to read a policy's targets")
    }

    /// Returns the policies attached to a target, sorted.
    pub fn target_policies(&self, target: &str) -> anyhow::Result<Vec<String>> {
        self.strings(
            "SELECT policy_name FROM policy_targets WHERE target = ?1 ORDER BY policy_name",
            target,
        )
        .context("failed to read the policies of a target")
    }

    /// Returns a thing's attributes and version, or `None` if they were never set.
    pub fn thing_attributes(
        &self,
        thing: &str,
    ) -> anyhow::Result<Option<(BTreeMap<String, String>, i64)>> {
        let row: Option<(String, i64)> = self
            .connection
            .query_row(
                "SELECT attributes, version FROM thing_attributes WHERE thing_name = ?1",
                [thing],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .context("failed to read a thing's attributes")?;
        row.map(|(json, version)| {
            let attributes = serde_json::from_str(&json)
                .with_context(|| format!("failed to decode the attributes of thing `{thing}`"))?;
            Ok((attributes, version))
        })
        .transpose()
    }

    /// Returns the stored v2 logging options, a JSON object.
    pub fn logging_options(&self) -> anyhow::Result<Option<serde_json::Value>> {
        self.meta(LOGGING_OPTIONS_KEY)?
            .map(|json| {
                serde_json::from_str(&json).context("failed to decode the stored logging options")
            })
            .transpose()
    }

    fn strings(&self, sql: &str, key: &str) -> anyhow::Result<Vec<String>> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let rows = statement.query_map([key], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("vigil-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    fn certificate(id: &str, created: Timestamp) -> CertificateRecord {
        CertificateRecord {
            certificate_id: id.to_owned(),
            pem: "-----BEGIN CERTIFICATE-----".to_owned(),
            ca_certificate_id: None,
            status: "ACTIVE".to_owned(),
            not_before: 0,
            not_after: 1_000,
            creation_date: created,
            last_modified_date: created,
            customer_version: 1,
        }
    }

    fn apply(store: &mut Store, writes: &[RegistryWrite]) {
        store
            .transaction(|tx| writes.iter().try_for_each(|write| write.apply(tx)))
            .unwrap();
    }

    fn policy_version(version: i64, set_as_default: bool) -> RegistryWrite {
        RegistryWrite::PolicyVersion {
            policy: "lamps".to_owned(),
            version,
            document: format!("{{\"v\":{version}}}"),
            set_as_default,
            now: 1_000 * version,
        }
    }

    #[test]
    fn certificate_status_change_bumps_the_version() {
        let (mut store, dir) = temp_store("status");
        apply(
            &mut store,
            &[RegistryWrite::Certificate(certificate("c1", 5))],
        );
        apply(
            &mut store,
            &[RegistryWrite::CertificateStatus {
                certificate_id: "c1".to_owned(),
                status: "REVOKED".to_owned(),
                now: 9,
            }],
        );
        let stored = store.certificate("c1").unwrap().unwrap();
        assert_eq!(stored.status, "REVOKED");
        assert_eq!(stored.customer_version, 2);
        assert_eq!(stored.last_modified_date, 9);
        assert_eq!(stored.creation_date, 5);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn certificates_are_listed_oldest_first() {
        let (mut store, dir) = temp_store("list");
        apply(
            &mut store,
            &[
                RegistryWrite::Certificate(certificate("b", 20)),
                RegistryWrite::Certificate(certificate("a", 30)),
                RegistryWrite::Certificate(certificate("c", 10)),
            ],
        );
        let ids: Vec<_> = store
            .certificates()
            .unwrap()
            .into_iter()
            .map(|c| c.certificate_id)
            .collect();
        assert_eq!(ids, ["c", "b", "a"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dropping_a_certificate_detaches_it_everywhere() {
        let (mut store, dir) = temp_store("drop-certificate");
        let arn = "arn:aws:iot:eu-west-1:123456789012:cert/c1";
        apply(
            &mut store,
            &[
                RegistryWrite::Certificate(certificate("c1", 1)),
                RegistryWrite::AttachPrincipal {
                    thing: "lamp-1".to_owned(),
                    principal: arn.to_owned(),
                },
                policy_version(1, true),
                RegistryWrite::AttachPolicy {
                    policy: "lamps".to_owned(),
                    target: arn.to_owned(),
                },
            ],
        );
        assert_eq!(store.principal_things(arn).unwrap(), ["lamp-1"]);
        assert_eq!(store.target_policies(arn).unwrap(), ["lamps"]);
        apply(
            &mut store,
            &[RegistryWrite::DropCertificate {
                certificate_id: "c1".to_owned(),
                certificate_arn: arn.to_owned(),
            }],
        );
        assert_eq!(store.certificate("c1").unwrap(), None);
        assert!(store.thing_principals("lamp-1").unwrap().is_empty());
        assert!(store.policy_targets("lamps").unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn policy_versions_move_the_default_only_when_asked() {
        let (mut store, dir) = temp_store("versions");
        apply(
            &mut store,
            &[policy_version(1, true), policy_version(2, false)],
        );
        assert_eq!(store.policy("lamps").unwrap().unwrap().default_version, 1);
        apply(&mut store, &[policy_version(3, true)]);
        let policy = store.policy("lamps").unwrap().unwrap();
        assert_eq!(policy.default_version, 3);
        assert_eq!(policy.last_version, 3);
        assert_eq!(policy.last_modified_date, 3_000);
        apply(
            &mut store,
            &[RegistryWrite::DropPolicyVersion {
                policy: "lamps".to_owned(),
                version: 2,
            }],
        );
        let versions: Vec<_> = store
            .policy_versions("lamps")
            .unwrap()
            .into_iter()
            .map(|v| (v.version, v.document))
            .collect();
        assert_eq!(
            versions,
            [(1, "{\"v\":1}".to_owned()), (3, "{\"v\":3}".to_owned())]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dropping_a_policy_removes_versions_and_attachments() {
        let (mut store, dir) = temp_store("drop-policy");
        apply(
            &mut store,
            &[
                policy_version(1, true),
                RegistryWrite::AttachPolicy {
                    policy: "lamps".to_owned(),
                    target: "arn:group".to_owned(),
                },
                RegistryWrite::DropPolicy("lamps".to_owned()),
            ],
        );
        assert_eq!(store.policy("lamps").unwrap(), None);
        assert!(store.policy_versions("lamps").unwrap().is_empty());
        assert!(store.target_policies("arn:group").unwrap().is_empty());
        assert!(store.policy_names().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn thing_attributes_and_logging_options_survive_reopening() {
        let (mut store, dir) = temp_store("reopen");
        let attributes = BTreeMap::from([("site".to_owned(), "b7".to_owned())]);
        let options = serde_json::json!({"defaultLogLevel": "WARN", "disableAllLogs": false});
        apply(
            &mut store,
            &[
                RegistryWrite::ThingAttributes {
                    thing: "lamp-1".to_owned(),
                    attributes: attributes.clone(),
                    version: 4,
                },
                RegistryWrite::LoggingOptions(options.clone()),
            ],
        );
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store.thing_attributes("lamp-1").unwrap(),
            Some((attributes, 4))
        );
        assert_eq!(store.thing_attributes("lamp-2").unwrap(), None);
        assert_eq!(store.logging_options().unwrap(), Some(options));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
