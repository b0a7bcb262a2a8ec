//! The engine: configuration, ingestion, event time and queries, tying the other modules together.

mod definitions;
mod evaluation;
mod profiles;
mod retention;
mod stats;
mod tasks;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::DAY_MS;
use crate::error::{Error, Result};
use crate::ingest::{
    CloudEvent, CloudPeriods, Datapoint, DeviceReport, IngestResult, Rejection, ReportOutcome,
};
use crate::model::{
    ActiveViolation, BehaviorModelTrainingSummary, CustomMetric, Dimension, Timestamp,
    VerificationState, ViolationEvent,
};
use crate::registry::Registry;
use crate::report::{ReportRejection, parse_report};
use crate::training::TrainingConfig;
use crate::validate;
use crate::violations::{ViolationFilter, Violations};

pub use evaluation::{BehaviorState, ExpectedRange};
pub use profiles::{ProfileState, SecurityProfileFilter};
pub use retention::MAX_RETAINED_DATAPOINTS;
pub use stats::EngineStats;
pub use tasks::ExecutionFilter;

/// A thing that sends nothing for this long has its alarms invalidated.
pub const SILENCE_INVALIDATES_AFTER_MS: i64 = 2 * DAY_MS;
/// Devices may send one metrics report per this many milliseconds; faster ones are throttled.
pub const MIN_REPORT_INTERVAL_MS: i64 = 300_000;

/// Settings fixed for the life of an engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Region in the ARNs the engine builds.
    pub region: String,
    /// Account id in the ARNs the engine builds.
    pub account_id: String,
    /// Days from an ML behavior's first datapoint to its first model build; AWS uses 14.
    pub ml_training_days: i64,
    /// Datapoints the trailing training window must hold for a build; AWS uses 25,000.
    pub ml_min_datapoints: u64,
}

impl EngineConfig {
    /// Returns the ML build requirements.
    pub fn training(&self) -> TrainingConfig {
        TrainingConfig {
            days: self.ml_training_days.max(1),
            min_datapoints: self.ml_min_datapoints,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            ml_training_days: crate::training::TRAINING_DAYS,
            ml_min_datapoints: crate::training::MIN_DATAPOINTS,
        }
    }
}

/// The detection engine. See the crate documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    config: EngineConfig,
    now: Timestamp,
    profiles: BTreeMap<String, ProfileState>,
    registry: Registry,
    custom_metrics: BTreeMap<String, CustomMetric>,
    dimensions: BTreeMap<String, Dimension>,
    cloud: CloudPeriods,
    last_seen: BTreeMap<String, Timestamp>,
    last_report: BTreeMap<String, Timestamp>,
    violations: Violations,
    mitigation: crate::mitigation::Mitigation,
    counters: stats::Counters,
    /// Datapoints waiting for [`Engine::take_retained_datapoints`]. The host persists them, so
    /// they are not part of snapshots.
    #[serde(skip)]
    retained: retention::Outbox,
}

/// Leading bytes of a snapshot.
const SNAPSHOT_MAGIC: &[u8; 4] = b"VGL1";
/// Version of the snapshot layout; bump it whenever a stored type changes shape.
pub const SNAPSHOT_VERSION: u32 = 2;

impl Engine {
    /// Creates an empty engine at event time 0.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            now: 0,
            profiles: BTreeMap::new(),
            registry: Registry::default(),
            custom_metrics: BTreeMap::new(),
            dimensions: BTreeMap::new(),
            cloud: CloudPeriods::default(),
            last_seen: BTreeMap::new(),
            last_report: BTreeMap::new(),
            violations: Violations::default(),
            mitigation: crate::mitigation::Mitigation::default(),
            counters: stats::Counters::default(),
            retained: retention::Outbox::default(),
        }
    }

    /// Serializes the whole state: a 4-byte magic, a little-endian `u32` version, then MessagePack.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        let body = rmp_serde::to_vec_named(self).expect("engine state always serializes");
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Restores an engine from [`Engine::snapshot`] output. Snapshots of other versions are
    /// rejected, because version 1 stored custom metrics without their metadata and had no
    /// dimensions or counters.
    pub fn restore(bytes: &[u8]) -> Result<Self> {
        let Some(body) = bytes.strip_prefix(SNAPSHOT_MAGIC) else {
            return Err(Error::InvalidSnapshot(
                "not a Vigil engine snapshot: the magic bytes `VGL1` are missing".to_string(),
            ));
        };
        let (version, body) = body.split_at_checked(4).ok_or_else(|| {
            Error::InvalidSnapshot("snapshot is truncated before its version".to_string())
        })?;
        let version = u32::from_le_bytes(version.try_into().expect("split at 4 bytes"));
        if version != SNAPSHOT_VERSION {
            return Err(Error::InvalidSnapshot(format!(
                "snapshot version {version} is not supported; this engine reads only version \
                 {SNAPSHOT_VERSION}, so recreate the engine state from its source data"
            )));
        }
        rmp_serde::from_slice(body)
            .map_err(|e| Error::InvalidSnapshot(format!("snapshot is corrupt: {e}")))
    }

    /// Returns the engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Current event time.
    pub fn current_time(&self) -> Timestamp {
        self.now
    }

    fn arn(&self, resource: &str) -> String {
        format!(
            "arn:aws:iot:{}:{}:{resource}",
            self.config.region, self.config.account_id
        )
    }

    /// Registers a thing.
    pub fn create_thing(&mut self, thing: &str) -> Result<()> {
        reject_problems(validate::validate_thing_name(thing, "thingName"))?;
        self.registry.create_thing(thing);
        Ok(())
    }

    /// Creates a thing group and returns its ARN.
    pub fn create_thing_group(&mut self, group: &str) -> Result<String> {
        reject_problems(validate::validate_resource_name(group, "thingGroupName"))?;
        self.registry.create_group(group)?;
        Ok(self.arn(&format!("thinggroup/{group}")))
    }

    /// Deletes a thing group; alarms of things it alone kept in scope are invalidated.
    pub fn delete_thing_group(&mut self, group: &str) -> Result<Vec<ViolationEvent>> {
        self.registry.delete_group(group)?;
        Ok(self.invalidate_uncovered(self.now))
    }

    /// Adds a thing to a group.
    pub fn add_thing_to_thing_group(&mut self, thing: &str, group: &str) -> Result<()> {
        reject_problems(validate::validate_thing_name(thing, "thingName"))?;
        self.registry.add_to_group(thing, group)
    }

    /// Removes a thing from a group; alarms of profiles that no longer target it are invalidated.
    pub fn remove_thing_from_thing_group(
        &mut self,
        thing: &str,
        group: &str,
    ) -> Result<Vec<ViolationEvent>> {
        self.registry.remove_from_group(thing, group)?;
        Ok(self.invalidate_uncovered(self.now))
    }

    /// Things in a group, sorted.
    pub fn list_things_in_thing_group(&self, group: &str) -> Result<Vec<String>> {
        self.registry.members(group)
    }

    /// Groups of a thing, sorted.
    pub fn list_thing_groups_for_thing(&self, thing: &str) -> Vec<String> {
        self.registry.groups_of(thing)
    }

    /// Ingests device reports in order. Each accepted report is evaluated at its arrival time.
    pub fn ingest_reports(
        &mut self,
        reports: &[DeviceReport],
    ) -> (Vec<ReportOutcome>, Vec<ViolationEvent>) {
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut events = Vec::new();
        for report in reports {
            events.extend(self.advance_time(report.received_at));
            let outcome = self.ingest_report(report, &mut events);
            self.counters.count_report(&outcome);
            outcomes.push(outcome);
        }
        (outcomes, events)
    }

    fn ingest_report(
        &mut self,
        report: &DeviceReport,
        events: &mut Vec<ViolationEvent>,
    ) -> ReportOutcome {
        let custom = &self.custom_metrics;
        let parsed = match parse_report(&report.payload, report.format, &|name| {
            custom.get(name).map(|metric| metric.metric_type)
        }) {
            Ok(parsed) => parsed,
            Err(rejection) => return ReportOutcome::Rejected(rejection),
        };
        if let Some(rejection) =
            self.check_report_rate(&report.thing_name, report.received_at, parsed.report_id)
        {
            return ReportOutcome::Rejected(rejection);
        }
        if let Some(problem) =
            validate::validate_thing_name(&report.thing_name, "thingName").first()
        {
            return ReportOutcome::Rejected(ReportRejection {
                error_code: "InvalidPayload".to_string(),
                error_message: problem.to_string(),
                report_id: Some(parsed.report_id),
            });
        }
        self.last_report
            .insert(report.thing_name.clone(), report.received_at);
        for point in parsed.datapoints {
            let datapoint = Datapoint {
                thing_name: report.thing_name.clone(),
                metric: point.metric,
                dimension_name: None,
                timestamp: report.received_at,
                value: point.value,
            };
            events.extend(self.accept(&datapoint));
        }
        ReportOutcome::Accepted(parsed.report_id)
    }

    fn check_report_rate(
        &self,
        thing: &str,
        at: Timestamp,
        report_id: u64,
    ) -> Option<ReportRejection> {
        let last = *self.last_report.get(thing)?;
        let wait = last + MIN_REPORT_INTERVAL_MS - at;
        (wait > 0).then(|| ReportRejection {
            error_code: "Throttled".to_string(),
            error_message: format!(
                "thing `{thing}` reported {} s after its previous report; devices may report once \
                 every 300 s, so retry in {} s",
                (at - last) / 1000,
                (wait + 999) / 1000
            ),
            report_id: Some(report_id),
        })
    }

    /// Ingests per-period datapoints; each is evaluated on arrival.
    pub fn ingest_datapoints(&mut self, datapoints: &[Datapoint]) -> IngestResult {
        let mut result = IngestResult::default();
        for (index, datapoint) in datapoints.iter().enumerate() {
            if let Some(problem) =
                validate::validate_thing_name(&datapoint.thing_name, "thingName").first()
            {
                result.rejected.push(rejection(index, problem.to_string()));
                continue;
            }
            result.events.extend(self.advance_time(datapoint.timestamp));
            result.events.extend(self.accept(datapoint));
            result.accepted += 1;
        }
        result
    }

    /// Ingests broker events. They are summed per thing into five-minute periods, and each period
    /// is evaluated once event time passes its end.
    pub fn ingest_cloud_events(&mut self, cloud_events: &[CloudEvent]) -> IngestResult {
        let mut result = IngestResult::default();
        for (index, event) in cloud_events.iter().enumerate() {
            if let Some(message) = self.check_cloud_event(event) {
                result.rejected.push(rejection(index, message));
                continue;
            }
            result.events.extend(self.advance_time(event.timestamp));
            let seen = self
                .last_seen
                .entry(event.thing_name.clone())
                .or_insert(event.timestamp);
            *seen = (*seen).max(event.timestamp);
            self.cloud.add(event);
            result.accepted += 1;
        }
        result
    }

    fn check_cloud_event(&self, event: &CloudEvent) -> Option<String> {
        if let Some(problem) = validate::validate_thing_name(&event.thing_name, "thingName").first()
        {
            return Some(problem.to_string());
        }
        if event.count == 0 {
            return Some("count must be at least 1".to_string());
        }
        let period_end = (event.timestamp.div_euclid(crate::catalogue::PERIOD_MS) + 1)
            * crate::catalogue::PERIOD_MS;
        (period_end <= self.now).then(|| {
            format!(
                "event at {} ms falls in a period that closed at {period_end} ms; send events \
                 before advancing time past their period",
                event.timestamp
            )
        })
    }

    /// Moves event time to `now`, doing everything that falls due on the way in time order:
    /// ML refreshes, closing cloud-metric periods and invalidating alarms of silent things.
    /// Returns the violation events this caused. Earlier times are ignored.
    pub fn advance_time(&mut self, now: Timestamp) -> Vec<ViolationEvent> {
        let mut events = Vec::new();
        while let Some(due) = self.next_due(now) {
            events.extend(self.run_due(due));
        }
        self.now = self.now.max(now);
        events
    }

    fn next_due(&self, limit: Timestamp) -> Option<Due> {
        let refresh = self.next_refresh().map(|t| (t, Due::Refresh(t)));
        let close = self.cloud.earliest_end().map(|t| (t, Due::ClosePeriod(t)));
        let silence = self.next_silence().map(|(t, id)| (t, Due::Silence(t, id)));
        // At equal times refreshes go first, so a refresh at the end of a period counts only the
        // datapoints before it.
        [refresh, close, silence]
            .into_iter()
            .flatten()
            .filter(|(t, _)| *t <= limit)
            .min_by_key(|(t, due)| (*t, due.rank()))
            .map(|(_, due)| due)
    }

    fn run_due(&mut self, due: Due) -> Vec<ViolationEvent> {
        match due {
            Due::Refresh(at) => {
                self.now = self.now.max(at);
                self.refresh_models(at);
                Vec::new()
            }
            Due::ClosePeriod(end) => {
                self.now = self.now.max(end);
                let datapoints = self.cloud.close_ending_at(end);
                datapoints.iter().flat_map(|d| self.accept(d)).collect()
            }
            Due::Silence(at, violation_id) => {
                self.now = self.now.max(at);
                self.invalidate(&violation_id, at).into_iter().collect()
            }
        }
    }

    fn next_silence(&self) -> Option<(Timestamp, String)> {
        self.violations
            .records()
            .filter(|record| record.active)
            .filter_map(|record| {
                let seen = self.last_seen.get(&record.thing_name)?;
                Some((
                    seen + SILENCE_INVALIDATES_AFTER_MS,
                    record.violation_id.clone(),
                ))
            })
            .min()
    }

    /// Invalidates an alarm and resets the alarm counters of its behavior state.
    fn invalidate(&mut self, violation_id: &str, at: Timestamp) -> Option<ViolationEvent> {
        let record = self.violations.get(violation_id)?.clone();
        if let Some(state) =
            self.behavior_state_mut(&record.security_profile_name, &record.behavior.name)
        {
            state.reset_alarm(&record.thing_name);
        }
        self.violations.invalidate(violation_id, at)
    }

    /// Invalidates alarms of things their profile no longer targets.
    fn invalidate_uncovered(&mut self, at: Timestamp) -> Vec<ViolationEvent> {
        let uncovered: Vec<String> = self
            .violations
            .records()
            .filter(|record| record.active)
            .filter(|record| {
                let profile = self.profiles.get(&record.security_profile_name);
                !profile.is_some_and(|p| p.covers(&self.registry, &record.thing_name))
            })
            .map(|record| record.violation_id.clone())
            .collect();
        uncovered
            .iter()
            .filter_map(|id| self.invalidate(id, at))
            .collect()
    }

    /// Active violations matching `filter`.
    pub fn list_active_violations(&self, filter: &ViolationFilter) -> Vec<ActiveViolation> {
        self.violations.active(filter)
    }

    /// Violation events in `[start, end]` matching `filter`.
    pub fn list_violation_events(
        &self,
        filter: &ViolationFilter,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<ViolationEvent> {
        self.violations.events(filter, start, end)
    }

    /// Labels a violation.
    pub fn put_verification_state(
        &mut self,
        violation_id: &str,
        state: VerificationState,
        description: Option<String>,
    ) -> Result<()> {
        if let Some(description) = &description {
            let too_long = description.chars().count() > 1000;
            let control = description.chars().any(char::is_control);
            if too_long || control {
                return Err(Error::ValidationFailed(vec![crate::ValidationError::new(
                    "verificationStateDescription",
                    "must be at most 1000 characters without control characters",
                )]));
            }
        }
        self.violations
            .set_verification(violation_id, state, description)
    }

    /// Training summaries of the ML behaviors of one profile, or of all profiles.
    pub fn training_summaries(
        &self,
        profile: Option<&str>,
    ) -> Result<Vec<BehaviorModelTrainingSummary>> {
        let selected: Vec<&ProfileState> = match profile {
            Some(name) => vec![self.profile(name)?],
            None => self.profiles.values().collect(),
        };
        let summaries = selected
            .into_iter()
            .flat_map(|p| p.training_summaries(self.now))
            .collect();
        Ok(summaries)
    }

    fn profile(&self, name: &str) -> Result<&ProfileState> {
        self.profiles
            .get(name)
            .ok_or_else(|| profile_not_found(name))
    }
}

/// Work that falls due at a point in event time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Due {
    Refresh(Timestamp),
    ClosePeriod(Timestamp),
    Silence(Timestamp, String),
}

impl Due {
    fn rank(&self) -> u8 {
        match self {
            Due::Refresh(_) => 0,
            Due::ClosePeriod(_) => 1,
            Due::Silence(..) => 2,
        }
    }
}

fn rejection(index: usize, message: String) -> Rejection {
    Rejection {
        index: u32::try_from(index).unwrap_or(u32::MAX),
        message,
    }
}

fn reject_problems(problems: Vec<crate::ValidationError>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::ValidationFailed(problems))
    }
}

fn profile_not_found(name: &str) -> Error {
    Error::ResourceNotFound(format!("security profile `{name}` does not exist"))
}
