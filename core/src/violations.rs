//! Violations and their history: raising, clearing and invalidating alarms, and the queries
//! behind `list-active-violations` and `list-violation-events`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::hex_id;
use crate::model::{
    ActiveViolation, Behavior, BehaviorCriteriaType, MetricValue, Timestamp, VerificationState,
    ViolationEvent, ViolationEventAdditionalInfo, ViolationEventType,
};

/// Filters for violation queries; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViolationFilter {
    /// Only this thing.
    pub thing_name: Option<String>,
    /// Only this profile.
    pub security_profile_name: Option<String>,
    /// Only this kind of criteria.
    pub behavior_criteria_type: Option<BehaviorCriteriaType>,
    /// `Some(false)` leaves out violations of behaviors with `suppressAlerts`.
    pub list_suppressed_alerts: Option<bool>,
    /// Only this verification state.
    pub verification_state: Option<VerificationState>,
}

/// The datapoint behind a transition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Event time of the datapoint.
    pub time: Timestamp,
    /// Its value.
    pub value: Option<MetricValue>,
    /// ML details, for ML behaviors.
    pub info: Option<ViolationEventAdditionalInfo>,
}

/// One violation, active or past.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViolationRecord {
    /// 32 hex characters.
    pub violation_id: String,
    /// The thing.
    pub thing_name: String,
    /// The profile.
    pub security_profile_name: String,
    /// The behavior when the alarm was raised, updated while it stays active.
    pub behavior: Behavior,
    /// When the alarm was raised.
    pub start: Timestamp,
    /// Latest violating datapoint.
    pub last_violation_time: Timestamp,
    /// Latest violating value.
    pub last_value: Option<MetricValue>,
    /// ML details of the latest violating datapoint.
    pub info: Option<ViolationEventAdditionalInfo>,
    /// Human label.
    pub verification_state: VerificationState,
    /// Free text with the label.
    pub verification_description: Option<String>,
    /// Whether the alarm is still raised.
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StoredEvent {
    violation_id: String,
    event_type: ViolationEventType,
    time: Timestamp,
    behavior: Behavior,
    value: Option<MetricValue>,
    info: Option<ViolationEventAdditionalInfo>,
}

/// Every violation and its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    records: BTreeMap<String, ViolationRecord>,
    // NOTE: the history is kept in memory without a retention limit; a long-running host
    // should persist and prune it.
    events: Vec<StoredEvent>,
}

impl Violations {
    /// Returns how many events have been recorded.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Raises a new alarm and returns its `in-alarm` event.
    pub fn raise(
        &mut self,
        thing: &str,
        profile: &str,
        behavior: &Behavior,
        observation: Observation,
    ) -> ViolationEvent {
        let violation_id = self.new_id(thing, profile, &behavior.name, observation.time);
        let record = ViolationRecord {
            violation_id: violation_id.clone(),
            thing_name: thing.to_string(),
            security_profile_name: profile.to_string(),
            behavior: behavior.clone(),
            start: observation.time,
            last_violation_time: observation.time,
            last_value: observation.value.clone(),
            info: observation.info.clone(),
            verification_state: VerificationState::Unknown,
            verification_description: None,
            active: true,
        };
        self.records.insert(violation_id.clone(), record);
        self.push_event(&violation_id, ViolationEventType::InAlarm, observation)
    }

    /// Picks an id from the alarm's identity, skipping the rare collision.
    fn new_id(&self, thing: &str, profile: &str, behavior: &str, time: Timestamp) -> String {
        let time = time.to_string();
        let mut attempt = 0u32;
        loop {
            let salt = attempt.to_string();
            let id = hex_id(&[thing, profile, behavior, &time, &salt]);
            if !self.records.contains_key(&id) {
                return id;
            }
            attempt += 1;
        }
    }

    /// Records another violating datapoint of an active alarm.
    pub fn extend(&mut self, violation_id: &str, observation: Observation) {
        if let Some(record) = self.records.get_mut(violation_id) {
            record.last_violation_time = observation.time;
            record.last_value = observation.value;
            record.info = observation.info;
        }
    }

    /// Clears an alarm and returns its `alarm-cleared` event.
    pub fn clear(
        &mut self,
        violation_id: &str,
        observation: Observation,
    ) -> Option<ViolationEvent> {
        self.close(violation_id, ViolationEventType::AlarmCleared, observation)
    }

    /// Invalidates an alarm and returns its `alarm-invalidated` event.
    pub fn invalidate(&mut self, violation_id: &str, time: Timestamp) -> Option<ViolationEvent> {
        let observation = Observation {
            time,
            ..Observation::default()
        };
        self.close(
            violation_id,
            ViolationEventType::AlarmInvalidated,
            observation,
        )
    }

    fn close(
        &mut self,
        violation_id: &str,
        event_type: ViolationEventType,
        observation: Observation,
    ) -> Option<ViolationEvent> {
        let record = self.records.get_mut(violation_id)?;
        if !record.active {
            return None;
        }
        record.active = false;
        Some(self.push_event(violation_id, event_type, observation))
    }

    /// Updates the behavior snapshot of an active alarm after a change that keeps it valid, such
    /// as toggling `suppressAlerts`.
    pub fn update_behavior(&mut self, violation_id: &str, behavior: &Behavior) {
        if let Some(record) = self.records.get_mut(violation_id) {
            record.behavior = behavior.clone();
        }
    }

    fn push_event(
        &mut self,
        violation_id: &str,
        event_type: ViolationEventType,
        observation: Observation,
    ) -> ViolationEvent {
        let behavior = self.records[violation_id].behavior.clone();
        let stored = StoredEvent {
            violation_id: violation_id.to_string(),
            event_type,
            time: observation.time,
            behavior,
            value: observation.value,
            info: observation.info,
        };
        let event = self.to_event(&stored);
        self.events.push(stored);
        event
    }

    fn to_event(&self, stored: &StoredEvent) -> ViolationEvent {
        let record = &self.records[&stored.violation_id];
        ViolationEvent {
            violation_id: stored.violation_id.clone(),
            thing_name: record.thing_name.clone(),
            security_profile_name: record.security_profile_name.clone(),
            behavior: stored.behavior.clone(),
            metric_value: stored.value.clone(),
            violation_event_additional_info: stored.info.clone(),
            violation_event_type: stored.event_type,
            verification_state: record.verification_state,
            verification_state_description: record.verification_description.clone(),
            violation_event_time: stored.time,
        }
    }

    /// Looks up a violation.
    pub fn get(&self, violation_id: &str) -> Option<&ViolationRecord> {
        self.records.get(violation_id)
    }

    /// Returns every violation, in id order.
    pub fn records(&self) -> impl Iterator<Item = &ViolationRecord> {
        self.records.values()
    }

    /// Returns whether the violation had an event in `[start, end]`.
    pub fn has_event_between(&self, violation_id: &str, start: Timestamp, end: Timestamp) -> bool {
        self.events
            .iter()
            .any(|e| e.violation_id == violation_id && e.time >= start && e.time <= end)
    }

    /// Sets the verification state of a violation.
    pub fn set_verification(
        &mut self,
        violation_id: &str,
        state: VerificationState,
        description: Option<String>,
    ) -> Result<()> {
        let record = self.records.get_mut(violation_id).ok_or_else(|| {
            Error::ResourceNotFound(format!("violation `{violation_id}` does not exist"))
        })?;
        record.verification_state = state;
        record.verification_description = description;
        Ok(())
    }

    /// Active violations matching `filter`, oldest first.
    pub fn active(&self, filter: &ViolationFilter) -> Vec<ActiveViolation> {
        let mut active: Vec<ActiveViolation> = self
            .records
            .values()
            .filter(|r| r.active && matches(filter, r, &r.behavior))
            .map(to_active)
            .collect();
        active.sort_by(|a, b| {
            (a.violation_start_time, &a.violation_id)
                .cmp(&(b.violation_start_time, &b.violation_id))
        });
        active
    }

    /// Events in `[start, end]` matching `filter`, oldest first.
    pub fn events(
        &self,
        filter: &ViolationFilter,
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<ViolationEvent> {
        let mut events: Vec<ViolationEvent> = self
            .events
            .iter()
            .filter(|e| e.time >= start && e.time <= end)
            .filter(|e| matches(filter, &self.records[&e.violation_id], &e.behavior))
            .map(|e| self.to_event(e))
            .collect();
        events.sort_by_key(|e| e.violation_event_time);
        events
    }
}

fn matches(filter: &ViolationFilter, record: &ViolationRecord, behavior: &Behavior) -> bool {
    let thing = filter
        .thing_name
        .as_ref()
        .is_none_or(|t| *t == record.thing_name);
    let profile = filter
        .security_profile_name
        .as_ref()
        .is_none_or(|p| *p == record.security_profile_name);
    let kind = filter
        .behavior_criteria_type
        .is_none_or(|k| behavior.criteria_type() == Some(k));
    let suppressed = filter.list_suppressed_alerts != Some(false) || !behavior.is_suppressed();
    let state = filter
        .verification_state
        .is_none_or(|s| s == record.verification_state);
    thing && profile && kind && suppressed && state
}

fn to_active(record: &ViolationRecord) -> ActiveViolation {
    ActiveViolation {
        violation_id: record.violation_id.clone(),
        thing_name: record.thing_name.clone(),
        security_profile_name: record.security_profile_name.clone(),
        behavior: record.behavior.clone(),
        last_violation_value: record.last_value.clone(),
        violation_event_additional_info: record.info.clone(),
        verification_state: record.verification_state,
        verification_state_description: record.verification_description.clone(),
        last_violation_time: record.last_violation_time,
        violation_start_time: record.start,
    }
}
