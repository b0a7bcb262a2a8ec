//! Durable storage of `vigil serve` in one SQLite database (WAL, `synchronous=FULL`).
//!
//! The engine's state is an rmp-serde snapshot plus a journal of the commands applied since it.
//! Because the core is deterministic, replaying the journal on the snapshot rebuilds the engine
//! exactly. Next to them live the rows the API lists without asking the engine: violation
//! events, retained metric values, tags, thing and group metadata, idempotency tokens and the
//! registry rows of [`registry`]. One request commits its journal entries and its rows in one
//! transaction, so a crash leaves either all of a request or none of it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use vigil_core::ingest::Datapoint;
use vigil_core::model::{MetricValue, Timestamp, VerificationState, ViolationEvent};

pub mod registry;

/// Version of the schema below; a database written by a newer Vigil is refused.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    command BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    engine BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS violation_events (
    id INTEGER PRIMARY KEY,
    violation_id TEXT NOT NULL,
    thing_name TEXT NOT NULL,
    security_profile_name TEXT NOT NULL,
    criteria_type TEXT,
    suppressed INTEGER NOT NULL,
    verification_state TEXT NOT NULL,
    event_time INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS violation_events_by_time ON violation_events (event_time, id);
CREATE INDEX IF NOT EXISTS violation_events_by_violation ON violation_events (violation_id);
CREATE INDEX IF NOT EXISTS violation_events_by_thing ON violation_events (thing_name, id);
CREATE INDEX IF NOT EXISTS violation_events_by_profile ON violation_events (security_profile_name, id);
CREATE TABLE IF NOT EXISTS metric_values (
    thing_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    dimension TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (thing_name, metric, dimension, timestamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (arn, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_groups (
    name TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    description TEXT,
    creation_date INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS things (
    name TEXT PRIMARY KEY,
    thing_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_tokens (
    scope TEXT NOT NULL,
    token TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (scope, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profile_extras (
    name TEXT PRIMARY KEY,
    extras TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_arn TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS notifications_by_topic ON notifications (topic_arn, id);
CREATE INDEX IF NOT EXISTS notifications_undelivered ON notifications (id)
    WHERE delivered_at IS NULL;
";

/// The database of one `--data` folder.
pub struct Store {
    connection: Connection,
    path: PathBuf,
    /// Held open with an exclusive lock, so a second server cannot share the folder.
    _lock: std::fs::File,
}

/// A stored alert notification.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredNotification {
    /// Ascending id, in the order notifications were stored.
    pub id: i64,
    /// ARN of the SNS topic.
    pub topic_arn: String,
    /// The JSON message.
    pub message: serde_json::Value,
    /// Wall-clock time it was stored, in epoch milliseconds.
    pub created_at: Timestamp,
    /// Wall-clock time a webhook took it, if one did.
    pub delivered_at: Option<Timestamp>,
    /// Failed and successful posts so far.
    pub attempts: i64,
}

fn notification_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredNotification> {
    let message: String = row.get(2)?;
    Ok(StoredNotification {
        id: row.get(0)?,
        topic_arn: row.get(1)?,
        message: serde_json::from_str(&message).unwrap_or(serde_json::Value::String(message)),
        created_at: row.get(3)?,
        delivered_at: row.get(4)?,
        attempts: row.get(5)?,
    })
}

/// Metadata of a thing group that the engine does not keep.
#[derive(Clone, Debug, PartialEq)]
pub struct ThingGroupRecord {
    /// The group's id, a UUID.
    pub group_id: String,
    /// Free text set at creation.
    pub description: Option<String>,
    /// Creation time.
    pub creation_date: Timestamp,
}

/// Filters of a violation event query, as `ListViolationEvents` takes them.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Earliest event time, inclusive.
    pub start_time: Timestamp,
    /// Latest event time, inclusive.
    pub end_time: Timestamp,
    /// Only this thing.
    pub thing_name: Option<String>,
    /// Only this profile.
    pub security_profile_name: Option<String>,
    /// Only this criteria type, as its wire name.
    pub criteria_type: Option<String>,
    /// `Some(false)` leaves out events of behaviors with suppressed alerts.
    pub list_suppressed_alerts: Option<bool>,
    /// Only this verification state.
    pub verification_state: Option<VerificationState>,
}

impl Store {
    /// Opens or creates `data_dir/vigil.db`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!("failed to create the data folder `{}`", data_dir.display())
        })?;
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join("vigil.db");
        let connection = Connection::open(&path)
            .with_context(|| format!("failed to open the database `{}`", path.display()))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .context("failed to switch the database to WAL mode")?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .context("failed to set synchronous=FULL")?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .context("failed to set the busy timeout")?;
        connection
            .execute_batch(SCHEMA)
            .context("failed to create the database schema")?;
        connection
            .execute_batch(registry::SCHEMA)
            .context("failed to create the registry tables")?;
        let store = Self {
            connection,
            path,
            _lock: lock,
        };
        store.check_schema_version()?;
        Ok(store)
    }

    /// Notifications after `after_id`, oldest first, of one topic or of all.
    pub fn notifications(
        &self,
        topic_arn: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredNotification>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, topic_arn, message, created_at, delivered_at, attempts FROM notifications
             WHERE id > ?1 AND (?2 IS NULL OR topic_arn = ?2) ORDER BY id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![after_id, topic_arn, limit as i64],
            notification_from_row,
        )?;
        rows.collect::<Result<_, _>>()
            .context("failed to read notifications")
    }

    /// Undelivered notifications of `topics` with attempts left, oldest first.
    pub fn undelivered_notifications(
        &self,
        topics: &[String],
        limit: usize,
    ) -> anyhow::Result<Vec<StoredNotification>> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, topic_arn, message, created_at, delivered_at, attempts FROM notifications
             WHERE delivered_at IS NULL AND attempts < ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![crate::alerts::MAX_ATTEMPTS, limit as i64],
            notification_from_row,
        )?;
        let mut pending = Vec::new();
        for row in rows {
            let notification = row.context("failed to read notifications")?;
            if topics.contains(&notification.topic_arn) {
                pending.push(notification);
            }
        }
        Ok(pending)
    }

    /// Counts one post of a notification, and marks it delivered when the post succeeded.
    pub fn record_delivery(&mut self, id: i64, delivered: bool) -> anyhow::Result<()> {
        let delivered_at = delivered.then(crate::service::wall_clock_ms);
        self.connection
            .execute(
                "UPDATE notifications SET attempts = attempts + 1,
                     delivered_at = COALESCE(?2, delivered_at) WHERE id = ?1",
                params![id, delivered_at],
            )
            .context("failed to record a notification delivery")?;
        Ok(())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema_version(&self) -> anyhow::Result<()> {
        let stored: Option<String> = self.meta("schema_version")?;
        match stored.map(|v| v.parse::<i64>()) {
            None => {
                self.connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )?;
                Ok(())
            }
            Some(Ok(SCHEMA_VERSION)) => Ok(()),
            Some(other) => bail!(
                "the database `{}` has schema version {other:?}, but this Vigil reads version \
                 {SCHEMA_VERSION}; use the Vigil that wrote it or start with an empty --data folder",
                self.path.display()
            ),
        }
    }

    /// Reads a metadata value.
    pub fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        self.connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .with_context(|| format!("failed to read `{key}` from the database"))
    }

    /// Writes a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.connection
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .with_context(|| format!("failed to write `{key}` to the database"))?;
        Ok(())
    }

    /// Returns the newest snapshot and the journal sequence number it includes.
    pub fn latest_snapshot(&self) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
        self.connection
            .query_row(
                "SELECT seq, engine FROM snapshots ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .context("failed to read the engine snapshot")
    }

    /// Returns the journal entries after `seq`, oldest first.
    pub fn journal_after(&self, seq: i64) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
        let mut statement = self
            .connection
            .prepare("SELECT seq, command FROM journal WHERE seq > ?1 ORDER BY seq")?;
        let rows = statement
            .query_map([seq], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()
            .context("failed to read the journal")?;
        Ok(rows)
    }

    /// Returns the sequence number of the newest journal entry, or of the newest snapshot when
    /// the journal is empty.
    pub fn last_journal_seq(&self) -> anyhow::Result<i64> {
        self.connection
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM journal), 0),
                            coalesce((SELECT max(seq) FROM snapshots), 0))",
                [],
                |row| row.get(0),
            )
            .context("failed to read the journal's newest entry")
    }

    /// Stores a snapshot that includes every journal entry up to `seq`, and drops those entries
    /// and older snapshots.
    pub fn save_snapshot(&mut self, seq: i64, engine: &[u8]) -> anyhow::Result<()> {
        let tx = self.connection.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO snapshots (seq, engine) VALUES (?1, ?2)",
            params![seq, engine],
        )?;
        tx.execute("DELETE FROM snapshots WHERE seq < ?1", [seq])?;
        tx.execute("DELETE FROM journal WHERE seq <= ?1", [seq])?;
        tx.commit().context("failed to store the engine snapshot")
    }

    /// Runs `write` in one transaction and commits it.
    pub fn transaction<T>(
        &mut self,
        write: impl FnOnce(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let tx = self
            .connection
            .transaction()
            .context("failed to begin a database transaction")?;
        let value = write(&tx)?;
        tx.commit()
            .context("failed to commit to the database; nothing of this request was stored")?;
        Ok(value)
    }

    /// Returns violation events matching `query` after the row `after_id`, up to `limit`,
    /// with their row ids.
    pub fn violation_events(
        &self,
        query: &EventQuery,
        after_id: i64,
        limit: usize,
    ) -> anyhow::Result<Vec<(i64, ViolationEvent)>> {
        // Only the filters given enter the SQL, so SQLite can use the matching index. The unary
        // `+` keeps it off the time index: walking ids in order and stopping at the page's end
        // beats sorting every event of the range.
        let mut sql = String::from(
            "SELECT id, event FROM violation_events \
             WHERE id > ? AND +event_time >= ? AND +event_time <= ?",
        );
        let mut values: Vec<rusqlite::types::Value> = vec![
            after_id.into(),
            query.start_time.into(),
            query.end_time.into(),
        ];
        let mut filter = |column: &str, value: Option<String>| {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                values.push(value.into());
            }
        };
        filter("thing_name", query.thing_name.clone());
        filter("security_profile_name", query.security_profile_name.clone());
        filter("criteria_type", query.criteria_type.clone());
        filter(
            "verification_state",
            query.verification_state.map(verification_state_name),
        );
        if query.list_suppressed_alerts == Some(false) {
            sql.push_str(" AND suppressed = 0");
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        let mut statement = self.connection.prepare_cached(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (id, json) = row.context("failed to read violation events")?;
            let event = serde_json::from_str(&json)
                .with_context(|| format!("failed to decode stored violation event {id}"))?;
            events.push((id, event));
        }
        Ok(events)
    }

    /// Counts stored violation events.
    pub fn violation_event_count(&self) -> anyhow::Result<u64> {
        let count: i64 =
            self.connection
                .query_row("SELECT count(*) FROM violation_events", [], |row| {
                    row.get(0)
                })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Returns retained values of one series between two times, after `after` (a timestamp),
    /// up to `limit`.
    pub fn metric_values(
        &self,
        series: (&str, &str, Option<&str>),
        range: (Timestamp, Timestamp),
        after: Option<Timestamp>,
        limit: usize,
    ) -> anyhow::Result<Vec<(Timestamp, MetricValue)>> {
        let (thing, metric, dimension) = series;
        let mut statement = self.connection.prepare_cached(
            "SELECT timestamp, value FROM metric_values
             WHERE thing_name = ?1 AND metric = ?2 AND dimension = ?3
               AND timestamp >= ?4 AND timestamp <= ?5 AND timestamp > ?6
             ORDER BY timestamp LIMIT ?7",
        )?;
        let rows = statement.query_map(
            params![
                thing,
                metric,
                dimension.unwrap_or(""),
                range.0,
                range.1,
                after.unwrap_or(i64::MIN),
                i64::try_from(limit).unwrap_or(i64::MAX),
            ],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )?;
        let mut values = Vec::new();
        for row in rows {
            let (timestamp, json) = row.context("failed to read metric values")?;
            let value = serde_json::from_str(&json).with_context(|| {
                format!("failed to decode a stored metric value at {timestamp}")
            })?;
            values.push((timestamp, value));
        }
        Ok(values)
    }

    /// Returns the tags of a resource, sorted by key.
    pub fn tags(&self, arn: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT key, value FROM tags WHERE arn = ?1 ORDER BY key")?;
        let rows = statement
            .query_map([arn], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()
            .context("failed to read tags")?;
        Ok(rows)
    }

    /// Returns the metadata of a thing group.
    pub fn thing_group(&self, name: &str) -> anyhow::Result<Option<ThingGroupRecord>> {
        self.connection
            .query_row(
                "SELECT group_id, description, creation_date FROM thing_groups WHERE name = ?1",
                [name],
                |row| {
                    Ok(ThingGroupRecord {
                        group_id: row.get(0)?,
                        description: row.get(1)?,
                        creation_date: row.get(2)?,
                    })
                },
            )
            .optional()
            .context("failed to read a thing group")
    }

    /// Returns the id of a thing, if the API created it.
    pub fn thing_id(&self, name: &str) -> anyhow::Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT thing_id FROM things WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .context("failed to read a thing")
    }

    /// Returns the stored response of an idempotent request, if the token was used before.
    pub fn request_token(&self, scope: &str, token: &str) -> anyhow::Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT response FROM request_tokens WHERE scope = ?1 AND token = ?2",
                [scope, token],
                |row| row.get(0),
            )
            .optional()
            .context("failed to read a client request token")
    }

    /// Returns the extra fields stored with a security profile.
    pub fn profile_extras(&self, name: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let json: Option<String> = self
            .connection
            .query_row(
                "SELECT extras FROM profile_extras WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()
            .context("failed to read a security profile's extra fields")?;
        json.map(|json| serde_json::from_str(&json).context("failed to decode stored extra fields"))
            .transpose()
    }
}

/// Takes an exclusive lock on `data_dir/vigil.lock`, held until the store is dropped. Two
/// servers writing one database would each replay only their own journal entries.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("vigil.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open the lock file `{}`", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another vigil process is using the data folder `{}`; stop it or pass another --data",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => Err(anyhow::Error::new(error))
            .with_context(|| format!("failed to lock `{}`", path.display())),
    }
}

/// Writes inside a request's transaction.
pub mod write {
    use super::*;

    /// Writes a metadata value.
    pub fn meta(tx: &Transaction<'_>, key: &str, value: &str) -> anyhow::Result<()> {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )
        .with_context(|| format!("failed to write `{key}` to the database"))?;
        Ok(())
    }

    /// Stores an alert notification, stamped with the wall clock.
    pub fn notification(
        tx: &Transaction<'_>,
        notification: &crate::alerts::Notification,
    ) -> anyhow::Result<()> {
        tx.prepare_cached(
            "INSERT INTO notifications (topic_arn, message, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            notification.topic_arn,
            notification.message.to_string(),
            crate::service::wall_clock_ms()
        ])
        .context("failed to store an alert notification")?;
        Ok(())
    }

    /// Appends a journal entry.
    pub fn journal(tx: &Transaction<'_>, command: &[u8]) -> anyhow::Result<i64> {
        tx.execute("INSERT INTO journal (command) VALUES (?1)", [command])
            .context("failed to append to the journal")?;
        Ok(tx.last_insert_rowid())
    }

    /// Stores a violation event.
    pub fn violation_event(tx: &Transaction<'_>, event: &ViolationEvent) -> anyhow::Result<()> {
        let json = serde_json::to_string(event).context("failed to encode a violation event")?;
        let criteria = event
            .behavior
            .criteria_type()
            .map(|kind| wire_name(&kind))
            .transpose()?;
        tx.prepare_cached(
            "INSERT INTO violation_events (violation_id, thing_name, security_profile_name,
                 criteria_type, suppressed, verification_state, event_time, event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            event.violation_id,
            event.thing_name,
            event.security_profile_name,
            criteria,
            event.behavior.is_suppressed(),
            verification_state_name(event.verification_state),
            event.violation_event_time,
            json,
        ])
        .context("failed to store a violation event")?;
        Ok(())
    }

    /// Sets the verification state on every stored event of a violation.
    pub fn verification_state(
        tx: &Transaction<'_>,
        violation_id: &str,
        state: VerificationState,
        description: Option<&str>,
    ) -> anyhow::Result<()> {
        tx.execute(
            "UPDATE violation_events
             SET verification_state = ?2,
                 event = json_set(json_remove(event, '$.verificationStateDescription'),
                                  '$.verificationState', ?2)
             WHERE violation_id = ?1",
            params![violation_id, verification_state_name(state)],
        )?;
        if let Some(description) = description {
            tx.execute(
                "UPDATE violation_events
                 SET event = json_set(event, '$.verificationStateDescription', ?2)
                 WHERE violation_id = ?1",
                params![violation_id, description],
            )?;
        }
        Ok(())
    }

    /// Stores a retained datapoint; a value already stored for the same series and time is kept.
    pub fn metric_value(tx: &Transaction<'_>, datapoint: &Datapoint) -> anyhow::Result<()> {
        let json =
            serde_json::to_string(&datapoint.value).context("failed to encode a metric value")?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO metric_values (thing_name, metric, dimension, timestamp, value)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            datapoint.thing_name,
            datapoint.metric,
            datapoint.dimension_name.as_deref().unwrap_or(""),
            datapoint.timestamp,
            json,
        ])
        .context("failed to store a metric value")?;
        Ok(())
    }

    /// Sets tags on a resource, replacing values of keys it already has.
    pub fn tags(tx: &Transaction<'_>, arn: &str, tags: &[(String, String)]) -> anyhow::Result<()> {
        for (key, value) in tags {
            tx.execute(
                "INSERT INTO tags (arn, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value",
                params![arn, key, value],
            )
            .context("failed to store a tag")?;
        }
        Ok(())
    }

    /// Removes tag keys from a resource.
    pub fn untag(tx: &Transaction<'_>, arn: &str, keys: &[String]) -> anyhow::Result<()> {
        for key in keys {
            tx.execute(
                "DELETE FROM tags WHERE arn = ?1 AND key = ?2",
                params![arn, key],
            )
            .context("failed to remove a tag")?;
        }
        Ok(())
    }

    /// Removes every tag of a deleted resource.
    pub fn drop_tags(tx: &Transaction<'_>, arn: &str) -> anyhow::Result<()> {
        tx.execute("DELETE FROM tags WHERE arn = ?1", [arn])
            .context("failed to remove tags")?;
        Ok(())
    }

    /// Records a thing group's metadata.
    pub fn thing_group(
        tx: &Transaction<'_>,
        name: &str,
        record: &ThingGroupRecord,
    ) -> anyhow::Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO thing_groups (name, group_id, description, creation_date)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                name,
                record.group_id,
                record.description,
                record.creation_date
            ],
        )
        .context("failed to store a thing group")?;
        Ok(())
    }

    /// Removes a thing group's metadata.
    pub fn drop_thing_group(tx: &Transaction<'_>, name: &str) -> anyhow::Result<()> {
        tx.execute("DELETE FROM thing_groups WHERE name = ?1", [name])
            .context("failed to remove a thing group")?;
        Ok(())
    }

    /// Records a thing's id.
    pub fn thing(tx: &Transaction<'_>, name: &str, thing_id: &str) -> anyhow::Result<()> {
        tx.execute(
            "INSERT OR IGNORE INTO things (name, thing_id) VALUES (?1, ?2)",
            params![name, thing_id],
        )
        .context("failed to store a thing")?;
        Ok(())
    }

    /// Remembers the response of an idempotent request.
    pub fn request_token(
        tx: &Transaction<'_>,
        scope: &str,
        token: &str,
        response: &str,
    ) -> anyhow::Result<()> {
        tx.execute(
            "INSERT OR REPLACE INTO request_tokens (scope, token, response) VALUES (?1, ?2, ?3)",
            params![scope, token, response],
        )
        .context("failed to store a client request token")?;
        Ok(())
    }

    /// Stores or clears the extra fields of a security profile.
    pub fn profile_extras(
        tx: &Transaction<'_>,
        name: &str,
        extras: Option<&serde_json::Value>,
    ) -> anyhow::Result<()> {
        match extras {
            Some(extras) => tx.execute(
                "INSERT OR REPLACE INTO profile_extras (name, extras) VALUES (?1, ?2)",
                params![name, extras.to_string()],
            ),
            None => tx.execute("DELETE FROM profile_extras WHERE name = ?1", [name]),
        }
        .context("failed to store a security profile's extra fields")?;
        Ok(())
    }
}

/// Returns the wire name of a verification state.
pub fn verification_state_name(state: VerificationState) -> String {
    wire_name(&state).unwrap_or_else(|_| "UNKNOWN".to_owned())
}

/// Returns the JSON string a unit enum serializes to.
fn wire_name<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    match serde_json::to_value(value).context("failed to encode an enum")? {
        serde_json::Value::String(name) => Ok(name),
        other => bail!("expected an enum name, got {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("vigil-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    #[test]
    fn snapshot_drops_the_journal_it_includes() {
        let (mut store, dir) = temp_store("snapshot");
        let seqs: Vec<i64> = (0..3)
            .map(|i| store.transaction(|tx| write::journal(tx, &[i])).unwrap())
            .collect();
        store.save_snapshot(seqs[1], b"engine").unwrap();
        assert_eq!(
            store.latest_snapshot().unwrap(),
            Some((seqs[1], b"engine".to_vec()))
        );
        assert_eq!(
            store.journal_after(seqs[1]).unwrap(),
            vec![(seqs[2], vec![2])]
        );
        assert_eq!(store.journal_after(0).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn journal_numbers_keep_rising_after_a_snapshot_empties_the_journal() {
        let (mut store, dir) = temp_store("rising");
        let first = store.transaction(|tx| write::journal(tx, b"a")).unwrap();
        store.save_snapshot(first, b"engine").unwrap();
        let second = store.transaction(|tx| write::journal(tx, b"b")).unwrap();
        assert!(second > first, "{second} after {first}");
        assert_eq!(
            store.journal_after(first).unwrap(),
            vec![(second, b"b".to_vec())]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_transaction_leaves_nothing_behind() {
        let (mut store, dir) = temp_store("rollback");
        let result: anyhow::Result<()> = store.transaction(|tx| {
            write::journal(tx, b"first")?;
            bail!("the request failed after its first write")
        });
        assert!(result.is_err());
        assert!(store.journal_after(0).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_metric_value_is_stored_once_per_series_and_time() {
        let (mut store, dir) = temp_store("metric-values");
        let point = |count| Datapoint {
            thing_name: "t1".into(),
            metric: "aws:num-messages-sent".into(),
            dimension_name: None,
            timestamp: 300_000,
            value: MetricValue::count(count),
        };
        store
            .transaction(|tx| {
                write::metric_value(tx, &point(3))?;
                write::metric_value(tx, &point(4))
            })
            .unwrap();
        let values = store
            .metric_values(
                ("t1", "aws:num-messages-sent", None),
                (0, i64::MAX),
                None,
                10,
            )
            .unwrap();
        assert_eq!(values, vec![(300_000, MetricValue::count(3))]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_store_on_one_folder_is_refused() {
        let (store, dir) = temp_store("lock");
        let error = Store::open(&dir).err().unwrap();
        assert!(
            format!("{error:#}").contains("another vigil process"),
            "{error:#}"
        );
        drop(store);
        assert!(Store::open(&dir).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reopening_keeps_what_was_committed() {
        let (mut store, dir) = temp_store("reopen");
        store
            .transaction(|tx| write::tags(tx, "arn:x", &[("k".into(), "v".into())]))
            .unwrap();
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.tags("arn:x").unwrap(), vec![("k".into(), "v".into())]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
