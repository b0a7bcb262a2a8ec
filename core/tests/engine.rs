//! End-to-end tests of the detection engine through its public API: static and statistical
//! alarms, invalidation, ML Detect training and scoring, mitigation planning, snapshots, device
//! reports and profile validation.
//!
//! Every input comes from a fixed formula, so every run ingests the same datapoints.

use std::ops::RangeInclusive;

use serde_json::json;
use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::{CloudEvent, CloudEventKind, Datapoint, DeviceReport, ReportOutcome};
use vigil_core::mitigation::{ExecutionOutcome, PendingExecution};
use vigil_core::model::{
    ActiveViolation, AddThingsToThingGroupParams, Behavior, BehaviorCriteria,
    BehaviorModelTrainingSummary, ComparisonOperator, ConfidenceLevel,
    DetectMitigationActionsTaskTarget, ExecutionStatus, MetricValue, MitigationActionParams,
    ModelStatus, SecurityProfile, StatisticalThreshold, TaskRequest, TaskStatistics, TaskStatus,
    Timestamp, ViolationEvent, ViolationEventType,
};
use vigil_core::report::ReportFormat;
use vigil_core::violations::ViolationFilter;
use vigil_core::{
    Engine, EngineConfig, EngineStats, Error, ExecutionFilter, SecurityProfileFilter,
};

/// 2023-11-14T00:00:00Z: a UTC midnight, so also the start of a five-minute period.
const T0: Timestamp = 1_699_920_000_000;
const HOUR_MS: i64 = 3_600_000;
const PERIODS_PER_DAY: i64 = DAY_MS / PERIOD_MS;

const GROUP: &str = "fleet";
const PROFILE: &str = "guard";
const LAMP: &str = "lamp-1";
const MESSAGES_SENT: &str = "aws:num-messages-sent";
const MESSAGES_RECEIVED: &str = "aws:num-messages-received";
const ACTION_ROLE: &str = "arn:aws:iam::123456789012:role/vigil-mitigation";

// ---------------------------------------------------------------------------------------------
// Helpers: profiles, engines and inputs.
// ---------------------------------------------------------------------------------------------

/// End of the `k`-th five-minute period after `T0`, the timestamp of that period's datapoints.
fn period_end(k: i64) -> Timestamp {
    T0 + k * PERIOD_MS
}

/// Builds a static behavior that expects `metric` to stay at or below `max` per period.
fn at_most(name: &str, metric: &str, max: u64) -> Behavior {
    Behavior {
        name: name.to_string(),
        metric: Some(metric.to_string()),
        metric_dimension: None,
        criteria: Some(BehaviorCriteria {
            comparison_operator: Some(ComparisonOperator::LessThanEquals),
            value: Some(MetricValue::count(max)),
            ..BehaviorCriteria::default()
        }),
        suppress_alerts: None,
        export_metric: None,
    }
}

fn with_hysteresis(mut behavior: Behavior, to_alarm: i64, to_clear: i64) -> Behavior {
    let criteria = behavior.criteria.as_mut().expect("behavior has criteria");
    criteria.consecutive_datapoints_to_alarm = Some(to_alarm);
    criteria.consecutive_datapoints_to_clear = Some(to_clear);
    behavior
}

fn with_duration(mut behavior: Behavior, seconds: i64) -> Behavior {
    let criteria = behavior.criteria.as_mut().expect("behavior has criteria");
    criteria.duration_seconds = Some(seconds);
    behavior
}

/// Builds a statistical behavior: each thing's `aws:num-messages-sent` must stay at or below the
/// fleet's `statistic` over 300 s.
fn at_most_percentile(name: &str, statistic: &str) -> Behavior {
    Behavior {
        name: name.to_string(),
        metric: Some(MESSAGES_SENT.to_string()),
        metric_dimension: None,
        criteria: Some(BehaviorCriteria {
            comparison_operator: Some(ComparisonOperator::LessThanEquals),
            duration_seconds: Some(300),
            statistical_threshold: Some(StatisticalThreshold {
                statistic: Some(statistic.to_string()),
            }),
            ..BehaviorCriteria::default()
        }),
        suppress_alerts: None,
        export_metric: None,
    }
}

/// Builds an ML Detect behavior on `aws:num-messages-sent` with confidence `HIGH`.
fn learned_messages(name: &str) -> Behavior {
    Behavior::machine_learning(name, MESSAGES_SENT, ConfidenceLevel::High)
}

/// Builds a static behavior that expects only port 443 to listen.
fn only_https_listening() -> Behavior {
    Behavior {
        name: "ports".to_string(),
        metric: Some("aws:listening-tcp-ports".to_string()),
        metric_dimension: None,
        criteria: Some(BehaviorCriteria {
            comparison_operator: Some(ComparisonOperator::InPortSet),
            value: Some(MetricValue {
                ports: Some(vec![443]),
                ..MetricValue::default()
            }),
            ..BehaviorCriteria::default()
        }),
        suppress_alerts: None,
        export_metric: None,
    }
}

fn guard_profile(behaviors: Vec<Behavior>) -> SecurityProfile {
    SecurityProfile {
        name: PROFILE.to_string(),
        behaviors,
        ..SecurityProfile::default()
    }
}

/// Creates an engine whose profile `guard` with `behaviors` targets the group `fleet`, which
/// contains `things`.
fn guarded_engine(config: EngineConfig, things: &[String], behaviors: Vec<Behavior>) -> Engine {
    let mut engine = Engine::new(config);
    let group_arn = engine
        .create_thing_group(GROUP)
        .expect("group name is valid");
    for thing in things {
        engine
            .add_thing_to_thing_group(thing, GROUP)
            .expect("group exists");
    }
    engine
        .create_security_profile(guard_profile(behaviors), T0)
        .expect("profile is valid");
    engine
        .attach_security_profile(PROFILE, &group_arn)
        .expect("group exists");
    engine
}

fn group_arn(engine: &Engine) -> String {
    let config = engine.config();
    format!(
        "arn:aws:iot:{}:{}:thinggroup/{GROUP}",
        config.region, config.account_id
    )
}

/// Returns `count` thing names such as `sensor-007`.
fn thing_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:03}")).collect()
}

fn things(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

fn datapoint(thing: &str, metric: &str, timestamp: Timestamp, count: u64) -> Datapoint {
    Datapoint {
        thing_name: thing.to_string(),
        metric: metric.to_string(),
        dimension_name: None,
        timestamp,
        value: MetricValue::count(count),
    }
}

fn messages_sent(thing: &str, timestamp: Timestamp, count: u64) -> Datapoint {
    datapoint(thing, MESSAGES_SENT, timestamp, count)
}

fn cloud_event(thing: &str, kind: CloudEventKind, timestamp: Timestamp, count: u64) -> CloudEvent {
    CloudEvent {
        thing_name: thing.to_string(),
        timestamp,
        kind,
        count: u32::try_from(count).expect("test counts fit in u32"),
        message_bytes: 128,
    }
}

/// Ingests datapoints that must all be accepted and returns the violation events they caused.
#[track_caller]
fn ingest(engine: &mut Engine, datapoints: &[Datapoint]) -> Vec<ViolationEvent> {
    let result = engine.ingest_datapoints(datapoints);
    assert!(
        result.rejected.is_empty(),
        "datapoints rejected: {:?}",
        result.rejected
    );
    result.events
}

/// Ingests broker events that must all be accepted and returns the violation events they caused.
#[track_caller]
fn ingest_cloud(engine: &mut Engine, events: &[CloudEvent]) -> Vec<ViolationEvent> {
    let result = engine.ingest_cloud_events(events);
    assert!(
        result.rejected.is_empty(),
        "broker events rejected: {:?}",
        result.rejected
    );
    result.events
}

fn active_violations(engine: &Engine) -> Vec<ActiveViolation> {
    engine.list_active_violations(&ViolationFilter::default())
}

fn is_violation_id(id: &str) -> bool {
    id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

#[track_caller]
fn assert_no_events(events: &[ViolationEvent]) {
    assert!(
        events.is_empty(),
        "expected no violation events, got {events:#?}"
    );
}

/// Asserts that `events` is exactly one event of `event_type` and returns it.
#[track_caller]
fn single_event(events: &[ViolationEvent], event_type: ViolationEventType) -> &ViolationEvent {
    assert_eq!(
        events.len(),
        1,
        "expected one {event_type:?} event, got {events:#?}"
    );
    assert_eq!(events[0].violation_event_type, event_type);
    &events[0]
}

// ---------------------------------------------------------------------------------------------
// Static rules.
// ---------------------------------------------------------------------------------------------

/// A function that sends `lamp-1`'s `aws:num-messages-sent` for period `k` and returns the
/// violation events it caused.
type SendPeriod = fn(&mut Engine, i64, u64) -> Vec<ViolationEvent>;

fn send_datapoint(engine: &mut Engine, k: i64, count: u64) -> Vec<ViolationEvent> {
    ingest(engine, &[messages_sent(LAMP, period_end(k), count)])
}

/// Sends the period's messages as two broker events, then moves time to the period's end, which
/// closes the period and evaluates its sum.
fn send_cloud_events(engine: &mut Engine, k: i64, count: u64) -> Vec<ViolationEvent> {
    let period_start = period_end(k - 1);
    let first = count / 2;
    let events = [
        cloud_event(
            LAMP,
            CloudEventKind::MessageSent,
            period_start + 1_000,
            first,
        ),
        cloud_event(
            LAMP,
            CloudEventKind::MessageSent,
            period_start + 200_000,
            count - first,
        ),
    ];
    let mut violations = ingest_cloud(engine, &events);
    violations.extend(engine.advance_time(period_end(k)));
    violations
}

/// Drives `less-than-equals 50` with two datapoints to alarm and two to clear through a full
/// alarm lifecycle and back into alarm.
fn assert_static_alarm_lifecycle(send: SendPeriod) {
    let behavior = with_hysteresis(at_most("messages", MESSAGES_SENT, 50), 2, 2);
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), vec![behavior]);

    // One violating datapoint is not enough.
    assert_no_events(&send(&mut engine, 1, 60));

    // The second raises the alarm.
    let events = send(&mut engine, 2, 70);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert!(
        is_violation_id(&raised.violation_id),
        "bad id {:?}",
        raised.violation_id
    );
    assert_eq!(raised.thing_name, LAMP);
    assert_eq!(raised.security_profile_name, PROFILE);
    assert_eq!(raised.behavior.name, "messages");
    assert_eq!(raised.metric_value, Some(MetricValue::count(70)));
    assert_eq!(raised.violation_event_time, period_end(2));
    let first_id = raised.violation_id.clone();

    // Further violating datapoints update the same alarm.
    assert_no_events(&send(&mut engine, 3, 80));
    let active = active_violations(&engine);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].violation_id, first_id);
    assert_eq!(active[0].last_violation_value, Some(MetricValue::count(80)));
    assert_eq!(active[0].last_violation_time, period_end(3));
    assert_eq!(active[0].violation_start_time, period_end(2));

    // One conforming datapoint does not clear.
    assert_no_events(&send(&mut engine, 4, 10));
    assert_eq!(active_violations(&engine).len(), 1);

    // The second does.
    let events = send(&mut engine, 5, 10);
    let cleared = single_event(&events, ViolationEventType::AlarmCleared);
    assert_eq!(cleared.violation_id, first_id);
    assert_eq!(cleared.metric_value, Some(MetricValue::count(10)));
    assert_eq!(cleared.violation_event_time, period_end(5));
    assert!(active_violations(&engine).is_empty());

    // The next alarm is a new violation.
    assert_no_events(&send(&mut engine, 6, 60));
    let events = send(&mut engine, 7, 60);
    let raised_again = single_event(&events, ViolationEventType::InAlarm);
    assert!(is_violation_id(&raised_again.violation_id));
    assert_ne!(raised_again.violation_id, first_id);
    assert_eq!(raised_again.violation_event_time, period_end(7));
}

#[test]
fn datapoints_drive_static_alarm_lifecycle() {
    assert_static_alarm_lifecycle(send_datapoint);
}

#[test]
fn cloud_events_drive_static_alarm_lifecycle() {
    assert_static_alarm_lifecycle(send_cloud_events);
}

#[test]
fn cloud_period_sum_is_evaluated_at_end() {
    let behavior = at_most("messages", MESSAGES_SENT, 50);
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), vec![behavior]);

    // Three events of 20 messages each, none above the limit on its own.
    let events: Vec<CloudEvent> = [10_000, 100_000, 290_000]
        .into_iter()
        .map(|offset| cloud_event(LAMP, CloudEventKind::MessageSent, T0 + offset, 20))
        .collect();
    assert_no_events(&ingest_cloud(&mut engine, &events));

    // The period stays open until time reaches its end.
    assert_no_events(&engine.advance_time(period_end(1) - 1));
    let events = engine.advance_time(period_end(1));
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_eq!(raised.metric_value, Some(MetricValue::count(60)));
    assert_eq!(raised.violation_event_time, period_end(1));
}

#[test]
fn cloud_event_for_closed_period_is_rejected() {
    let behavior = at_most("messages", MESSAGES_SENT, 50);
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), vec![behavior]);
    engine.advance_time(period_end(1));

    let late = cloud_event(LAMP, CloudEventKind::MessageSent, T0 + 1_000, 60);
    let result = engine.ingest_cloud_events(&[late]);

    assert_eq!(result.accepted, 0);
    assert_eq!(result.rejected.len(), 1);
    assert!(
        result.rejected[0].message.contains("closed"),
        "{:?}",
        result.rejected[0]
    );
}

#[test]
fn duration_window_sums_two_periods() {
    let behavior = with_duration(at_most("messages", MESSAGES_SENT, 100), 600);
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), vec![behavior]);

    // 60 alone conforms, but 60 + 60 over 600 s does not.
    assert_no_events(&send_datapoint(&mut engine, 1, 60));
    let events = send_datapoint(&mut engine, 2, 60);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_eq!(raised.metric_value, Some(MetricValue::count(120)));

    // The first period leaves the window: 60 + 30 conforms and clears.
    let events = send_datapoint(&mut engine, 3, 30);
    let cleared = single_event(&events, ViolationEventType::AlarmCleared);
    assert_eq!(cleared.metric_value, Some(MetricValue::count(90)));
}

/// Sends one period of `aws:num-messages-sent` for every thing, `count(thing index)` each.
fn send_fleet_period(
    engine: &mut Engine,
    fleet: &[String],
    k: i64,
    count: impl Fn(usize) -> u64,
) -> Vec<ViolationEvent> {
    let batch: Vec<Datapoint> = fleet
        .iter()
        .enumerate()
        .map(|(index, thing)| messages_sent(thing, period_end(k), count(index)))
        .collect();
    ingest(engine, &batch)
}

#[test]
fn statistical_threshold_alarms_only_fleet_outliers() {
    let fleet = thing_names("meter", 10);
    let behavior = at_most_percentile("fleet-p90", "p90");
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, vec![behavior]);

    // The first period has no earlier fleet values, so nothing is judged.
    assert_no_events(&send_fleet_period(&mut engine, &fleet, 1, |i| i as u64 + 1));

    // p90 of 1..=10 is 9, so only the thing sending 10 alarms.
    let events = send_fleet_period(&mut engine, &fleet, 2, |i| i as u64 + 1);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_eq!(raised.thing_name, "meter-009");
    assert_eq!(raised.metric_value, Some(MetricValue::count(10)));
}

#[test]
fn statistical_threshold_uses_previous_period() {
    let fleet = thing_names("meter", 10);
    let behavior = at_most_percentile("fleet-p90", "p90");
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, vec![behavior]);
    assert_no_events(&send_fleet_period(&mut engine, &fleet, 1, |i| i as u64 + 1));

    // The whole fleet jumps to 100. Judged against the previous period's p90 of 9, every thing
    // alarms. Judged against its own period's p90 of 100, none would.
    let events = send_fleet_period(&mut engine, &fleet, 2, |_| 100);
    let alarmed: Vec<&str> = events
        .iter()
        .filter(|e| e.violation_event_type == ViolationEventType::InAlarm)
        .map(|e| e.thing_name.as_str())
        .collect();
    assert_eq!(alarmed, fleet);
    assert_eq!(events.len(), fleet.len());
}

// ---------------------------------------------------------------------------------------------
// Invalidation.
// ---------------------------------------------------------------------------------------------

/// Creates an engine where `lamp-1` is in alarm on `guard`/`messages` (`less-than-equals 50`) since
/// period 1. Returns the violation id.
fn engine_with_alarm() -> (Engine, String) {
    let behavior = at_most("messages", MESSAGES_SENT, 50);
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), vec![behavior]);
    let events = send_datapoint(&mut engine, 1, 60);
    let id = single_event(&events, ViolationEventType::InAlarm)
        .violation_id
        .clone();
    (engine, id)
}

/// Asserts that `events` invalidates exactly the violation `id` at `time` and nothing stays active.
#[track_caller]
fn assert_invalidated(engine: &Engine, events: &[ViolationEvent], id: &str, time: Timestamp) {
    let invalidated = single_event(events, ViolationEventType::AlarmInvalidated);
    assert_eq!(invalidated.violation_id, id);
    assert_eq!(invalidated.violation_event_time, time);
    assert_eq!(invalidated.metric_value, None);
    assert!(active_violations(engine).is_empty());
}

#[test]
fn silent_thing_alarm_invalidates_after_two_days() {
    let (mut engine, id) = engine_with_alarm();
    let last_datapoint = period_end(1);

    // Jumping far ahead invalidates at the exact moment the silence reached two days.
    let events = engine.advance_time(last_datapoint + 10 * DAY_MS);
    assert_invalidated(&engine, &events, &id, last_datapoint + 2 * DAY_MS);

    // The thing starts over: its next violating datapoint raises a new alarm.
    let resumed = last_datapoint + 10 * DAY_MS + PERIOD_MS;
    let events = ingest(&mut engine, &[messages_sent(LAMP, resumed, 60)]);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_ne!(raised.violation_id, id);
}

#[test]
fn thing_silent_under_two_days_keeps_alarm() {
    let (mut engine, id) = engine_with_alarm();

    assert_no_events(&engine.advance_time(period_end(1) + 2 * DAY_MS - 1));

    let active = active_violations(&engine);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].violation_id, id);
}

#[test]
fn removing_behavior_invalidates_its_alarm() {
    let (mut engine, id) = engine_with_alarm();
    let now = period_end(2);
    let replacement = at_most("received", MESSAGES_RECEIVED, 50);

    let (stored, events) = engine
        .update_security_profile(guard_profile(vec![replacement]), Some(1), now)
        .expect("update is valid");

    assert_eq!(stored.version, 2);
    assert_invalidated(&engine, &events, &id, now);
}

#[test]
fn changing_criteria_invalidates_alarm() {
    let (mut engine, id) = engine_with_alarm();
    let now = period_end(2);
    let stricter = at_most("messages", MESSAGES_SENT, 40);

    let (_, events) = engine
        .update_security_profile(guard_profile(vec![stricter]), Some(1), now)
        .expect("update is valid");
    assert_invalidated(&engine, &events, &id, now);

    // The counters start over, so the next violating datapoint raises a new alarm at once.
    let events = send_datapoint(&mut engine, 3, 45);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_ne!(raised.violation_id, id);
}

#[test]
fn toggling_suppress_alerts_keeps_alarm_active() {
    let (mut engine, id) = engine_with_alarm();
    let mut suppressed = at_most("messages", MESSAGES_SENT, 50);
    suppressed.suppress_alerts = Some(true);

    let (_, events) = engine
        .update_security_profile(
            guard_profile(vec![suppressed.clone()]),
            Some(1),
            period_end(2),
        )
        .expect("update is valid");

    assert_no_events(&events);
    let active = active_violations(&engine);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].violation_id, id);
    assert_eq!(active[0].behavior, suppressed);
}

#[test]
fn detaching_profile_invalidates_alarm() {
    let (mut engine, id) = engine_with_alarm();
    let now = period_end(2);
    let target = group_arn(&engine);

    let events = engine
        .detach_security_profile(PROFILE, &target, now)
        .expect("profile is attached");

    assert_invalidated(&engine, &events, &id, now);
}

#[test]
fn removing_thing_from_group_invalidates_alarm() {
    let (mut engine, id) = engine_with_alarm();
    engine.advance_time(period_end(2));

    let events = engine
        .remove_thing_from_thing_group(LAMP, GROUP)
        .expect("group exists");

    assert_invalidated(&engine, &events, &id, period_end(2));
}

#[test]
fn deleting_profile_invalidates_alarm() {
    let (mut engine, id) = engine_with_alarm();
    let now = period_end(2);

    let events = engine
        .delete_security_profile(PROFILE, Some(1), now)
        .expect("profile exists");

    assert_invalidated(&engine, &events, &id, now);
}

// ---------------------------------------------------------------------------------------------
// ML Detect.
// ---------------------------------------------------------------------------------------------

/// Messages thing number `thing` sends in the period ending at `timestamp`: a quiet level before
/// 18:00 UTC, five times that in the evening, plus a ripple of 0 to 2.
fn daily_messages(thing: usize, timestamp: Timestamp) -> u64 {
    let hour = timestamp.rem_euclid(DAY_MS) / HOUR_MS;
    let quiet = 20 + 5 * (thing as u64 % 4);
    let level = if hour >= 18 { quiet * 5 } else { quiet };
    let ripple = (timestamp / PERIOD_MS + thing as i64).rem_euclid(3) as u64;
    level + ripple
}

/// Ingests one datapoint per thing for every period ending in `[from, until)`, with values from
/// `count(thing index, timestamp)`.
fn feed_fleet(
    engine: &mut Engine,
    fleet: &[String],
    from: Timestamp,
    until: Timestamp,
    count: impl Fn(usize, Timestamp) -> u64,
) -> Vec<ViolationEvent> {
    let mut events = Vec::new();
    let mut timestamp = from;
    while timestamp < until {
        let batch: Vec<Datapoint> = fleet
            .iter()
            .enumerate()
            .map(|(index, thing)| messages_sent(thing, timestamp, count(index, timestamp)))
            .collect();
        events.extend(ingest(engine, &batch));
        timestamp += PERIOD_MS;
    }
    events
}

fn feed_daily_pattern(
    engine: &mut Engine,
    fleet: &[String],
    from: Timestamp,
    until: Timestamp,
) -> Vec<ViolationEvent> {
    feed_fleet(engine, fleet, from, until, daily_messages)
}

#[track_caller]
fn training_summary(engine: &Engine) -> BehaviorModelTrainingSummary {
    let mut summaries = engine
        .training_summaries(Some(PROFILE))
        .expect("profile exists");
    assert_eq!(
        summaries.len(),
        1,
        "expected one ML behavior: {summaries:#?}"
    );
    summaries.remove(0)
}

/// First build of a model whose collection starts at `T0` with the default 14 days.
const BUILD_AT: Timestamp = T0 + 14 * DAY_MS;

#[test]
fn ml_model_activates_after_fourteen_days() {
    let fleet = thing_names("sensor", 100);
    let behaviors = vec![learned_messages("messages-ml")];
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, behaviors);

    // Collection starts with the first datapoint.
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::PendingBuild);
    assert_eq!(summary.training_data_collection_start_date, None);

    // Halfway through, the time requirement is the slower one: 7 of 14 days.
    let halfway = T0 + 7 * DAY_MS;
    assert_no_events(&feed_daily_pattern(&mut engine, &fleet, T0, halfway));
    engine.advance_time(halfway);
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::PendingBuild);
    assert_eq!(summary.training_data_collection_start_date, Some(T0));
    assert_eq!(summary.datapoints_collection_percentage, 50.0);

    // 100 things give 403,200 datapoints in 14 days, but the build waits for day 14.
    assert_no_events(&feed_daily_pattern(&mut engine, &fleet, halfway, BUILD_AT));
    engine.advance_time(BUILD_AT - 1);
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::PendingBuild);
    assert_eq!(summary.last_model_refresh_date, None);

    engine.advance_time(BUILD_AT);
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::Active);
    assert_eq!(summary.last_model_refresh_date, Some(BUILD_AT));
    assert_eq!(summary.training_data_collection_start_date, Some(T0));
}

#[test]
fn active_ml_model_flags_only_flood() {
    let fleet = thing_names("sensor", 100);
    let behaviors = vec![learned_messages("messages-ml")];
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, behaviors);
    assert_no_events(&feed_daily_pattern(&mut engine, &fleet, T0, BUILD_AT));
    engine.advance_time(BUILD_AT);
    assert_eq!(training_summary(&engine).model_status, ModelStatus::Active);

    // Two more days, with one period of thirty times the usual traffic from sensor-007 at 08:00.
    let flooder = 7;
    let flood_at = BUILD_AT + 8 * HOUR_MS;
    let normal = daily_messages(flooder, flood_at);
    let flood = normal * 30;
    let flood_once = |thing: usize, timestamp: Timestamp| {
        if thing == flooder && timestamp == flood_at {
            flood
        } else {
            daily_messages(thing, timestamp)
        }
    };
    let events = feed_fleet(
        &mut engine,
        &fleet,
        BUILD_AT,
        BUILD_AT + 2 * DAY_MS,
        flood_once,
    );

    let from_clean_things: Vec<&ViolationEvent> = events
        .iter()
        .filter(|e| e.thing_name != fleet[flooder])
        .collect();
    assert!(
        from_clean_things.is_empty(),
        "clean things alarmed: {from_clean_things:#?}"
    );
    assert_eq!(
        events.len(),
        2,
        "expected the flood to alarm and clear: {events:#?}"
    );

    let raised = &events[0];
    assert_eq!(raised.violation_event_type, ViolationEventType::InAlarm);
    assert_eq!(raised.violation_event_time, flood_at);
    assert_eq!(raised.metric_value, Some(MetricValue::count(flood)));
    let info = raised
        .violation_event_additional_info
        .as_ref()
        .expect("ML alarms carry additional info");
    assert_eq!(info.confidence_level, Some(ConfidenceLevel::High));
    let explanation = info
        .explanation
        .as_ref()
        .expect("ML alarms carry an explanation");
    assert!(
        explanation.expected_low <= normal as f64,
        "{explanation:?} vs normal {normal}"
    );
    assert!(
        normal as f64 <= explanation.expected_high,
        "{explanation:?} vs normal {normal}"
    );
    assert_eq!(explanation.observed, flood as f64);

    // The next, normal period clears the alarm.
    let cleared = &events[1];
    assert_eq!(
        cleared.violation_event_type,
        ViolationEventType::AlarmCleared
    );
    assert_eq!(cleared.violation_id, raised.violation_id);
    assert_eq!(cleared.violation_event_time, flood_at + PERIOD_MS);
}

#[test]
fn ml_model_expires_after_thirty_failed_builds() {
    // Six things give 6 × 288 × 14 = 24,192 datapoints per 14 days, short of 25,000.
    let fleet = thing_names("sensor", 6);
    let behaviors = vec![learned_messages("messages-ml")];
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, behaviors);
    let expires_at = T0 + (14 + 29) * DAY_MS;

    // The first build, on day 14, fails.
    assert_no_events(&feed_daily_pattern(
        &mut engine,
        &fleet,
        T0,
        T0 + 15 * DAY_MS,
    ));
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::PendingBuild);
    assert_eq!(summary.training_data_collection_start_date, Some(T0));

    // Builds are retried daily, and the 30th failure, on day 43, expires the model.
    assert_no_events(&feed_daily_pattern(
        &mut engine,
        &fleet,
        T0 + 15 * DAY_MS,
        expires_at,
    ));
    engine.advance_time(expires_at - 1);
    assert_eq!(
        training_summary(&engine).model_status,
        ModelStatus::PendingBuild
    );

    engine.advance_time(expires_at);
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::Expired);
    assert_eq!(summary.last_model_refresh_date, None);
}

#[test]
fn short_training_config_activates_after_one_day() {
    let config = EngineConfig {
        ml_training_days: 1,
        ml_min_datapoints: 0,
        ..EngineConfig::default()
    };
    let fleet = thing_names("sensor", 1);
    let mut engine = guarded_engine(config, &fleet, vec![learned_messages("messages-ml")]);

    assert_no_events(&feed_daily_pattern(&mut engine, &fleet, T0, T0 + DAY_MS));
    engine.advance_time(T0 + DAY_MS - 1);
    assert_eq!(
        training_summary(&engine).model_status,
        ModelStatus::PendingBuild
    );

    engine.advance_time(T0 + DAY_MS);
    let summary = training_summary(&engine);
    assert_eq!(summary.model_status, ModelStatus::Active);
    assert_eq!(summary.last_model_refresh_date, Some(T0 + DAY_MS));
}

// ---------------------------------------------------------------------------------------------
// Mitigation planning.
// ---------------------------------------------------------------------------------------------

/// Time the mitigation tests start their tasks, after every violation of the setup.
const TASK_START: Timestamp = T0 + HOUR_MS;

fn create_group_action(engine: &mut Engine, name: &str, action_id: &str, group: &str) {
    let params = MitigationActionParams {
        add_things_to_thing_group_params: Some(AddThingsToThingGroupParams {
            thing_group_names: vec![group.to_string()],
            override_dynamic_groups: None,
        }),
        ..MitigationActionParams::default()
    };
    engine
        .create_mitigation_action(name, action_id, ACTION_ROLE, params, T0)
        .expect("action is valid");
}

/// Builds a request for a task over every violation of `guard`.
fn profile_task(
    task_id: &str,
    actions: &[&str],
    only_active: bool,
    suppressed: bool,
) -> TaskRequest {
    TaskRequest {
        task_id: task_id.to_string(),
        target: DetectMitigationActionsTaskTarget {
            security_profile_name: Some(PROFILE.to_string()),
            ..DetectMitigationActionsTaskTarget::default()
        },
        actions: actions.iter().map(|a| a.to_string()).collect(),
        violation_event_occurrence_range: None,
        include_only_active_violations: only_active,
        include_suppressed_alerts: suppressed,
    }
}

/// Creates an engine with actions `quarantine` and `isolate` and three violations of
/// `guard`/`messages`: `lamp-c`'s, raised and cleared, then the active ones of `lamp-a` and
/// `lamp-b`. Returns the ids in that order, which is also their start order.
fn engine_with_three_violations() -> (Engine, [String; 3]) {
    let fleet = things(&["lamp-a", "lamp-b", "lamp-c"]);
    let behavior = at_most("messages", MESSAGES_SENT, 50);
    let mut engine = guarded_engine(EngineConfig::default(), &fleet, vec![behavior]);

    let raise = |engine: &mut Engine, thing: &str, k: i64| {
        let events = ingest(engine, &[messages_sent(thing, period_end(k), 60)]);
        single_event(&events, ViolationEventType::InAlarm)
            .violation_id
            .clone()
    };
    let cleared = raise(&mut engine, "lamp-c", 1);
    let events = ingest(&mut engine, &[messages_sent("lamp-c", period_end(2), 10)]);
    single_event(&events, ViolationEventType::AlarmCleared);
    let first = raise(&mut engine, "lamp-a", 3);
    let second = raise(&mut engine, "lamp-b", 4);

    create_group_action(
        &mut engine,
        "quarantine",
        "7b1f2e0c-3d4a-4f5b-8c6d-9e0f1a2b3c4d",
        "quarantine",
    );
    create_group_action(
        &mut engine,
        "isolate",
        "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d",
        "isolated",
    );
    (engine, [cleared, first, second])
}

/// Lists (violation id, action name, status) of every execution of a task, in plan order.
fn execution_statuses(engine: &Engine, task_id: &str) -> Vec<(String, String, ExecutionStatus)> {
    let filter = ExecutionFilter {
        task_id: Some(task_id.to_string()),
        ..ExecutionFilter::default()
    };
    engine
        .list_mitigation_executions(&filter)
        .into_iter()
        .map(|e| (e.violation_id, e.action_name, e.status))
        .collect()
}

fn planned(
    violation_id: &str,
    action: &str,
    status: ExecutionStatus,
) -> (String, String, ExecutionStatus) {
    (violation_id.to_string(), action.to_string(), status)
}

#[track_caller]
fn next_execution(engine: &mut Engine, task_id: &str, now: Timestamp) -> PendingExecution {
    engine
        .next_pending_execution(task_id, now)
        .expect("task exists")
        .expect("an execution is pending")
}

fn failure() -> ExecutionOutcome {
    ExecutionOutcome::Failed {
        error_code: "ResourceNotFoundException".to_string(),
        message: "thing group `quarantine` does not exist".to_string(),
    }
}

#[test]
fn only_active_task_skips_cleared_violation() {
    let (mut engine, [cleared, first, second]) = engine_with_three_violations();
    let request = profile_task("task-1", &["quarantine", "isolate"], true, false);

    let summary = engine
        .start_mitigation_task(&request, TASK_START)
        .expect("task is valid");

    assert_eq!(summary.task_status, TaskStatus::InProgress);
    assert_eq!(summary.task_statistics.actions_skipped, 2);
    use ExecutionStatus::{InProgress, Skipped};
    let expected = vec![
        planned(&cleared, "quarantine", Skipped),
        planned(&cleared, "isolate", Skipped),
        planned(&first, "quarantine", InProgress),
        planned(&first, "isolate", InProgress),
        planned(&second, "quarantine", InProgress),
        planned(&second, "isolate", InProgress),
    ];
    assert_eq!(execution_statuses(&engine, "task-1"), expected);

    let filter = ExecutionFilter {
        violation_id: Some(cleared),
        ..ExecutionFilter::default()
    };
    for execution in engine.list_mitigation_executions(&filter) {
        let message = execution.message.unwrap_or_default();
        assert!(
            message.contains("includeOnlyActiveViolations"),
            "skip reason: {message:?}"
        );
    }
}

#[test]
fn failed_action_skips_rest_of_its_violation() {
    let (mut engine, [cleared, first, second]) = engine_with_three_violations();
    let request = profile_task("task-1", &["quarantine", "isolate"], true, false);
    engine
        .start_mitigation_task(&request, TASK_START)
        .expect("task is valid");

    // The oldest active violation's first action goes out first, with its snapshots.
    let pending = next_execution(&mut engine, "task-1", TASK_START + 1);
    assert_eq!(pending.execution.violation_id, first);
    assert_eq!(pending.execution.action_name, "quarantine");
    assert_eq!(pending.execution.thing_name, "lamp-a");
    assert_eq!(pending.execution.execution_start_date, Some(TASK_START + 1));
    assert_eq!(pending.action.action_name, "quarantine");
    assert_eq!(pending.violation.violation_id, first);
    let summary = engine
        .record_execution_outcome("task-1", &first, "quarantine", failure(), TASK_START + 2)
        .expect("execution was handed out");
    assert_eq!(summary.task_status, TaskStatus::InProgress);

    // The failure skips lamp-a's `isolate`, so lamp-b's actions come next, in order.
    for (offset, action) in [(3, "quarantine"), (5, "isolate")] {
        let pending = next_execution(&mut engine, "task-1", TASK_START + offset);
        assert_eq!(pending.execution.violation_id, second);
        assert_eq!(pending.execution.action_name, action);
        engine
            .record_execution_outcome(
                "task-1",
                &second,
                action,
                ExecutionOutcome::Successful,
                TASK_START + offset + 1,
            )
            .expect("execution was handed out");
    }
    let next = engine
        .next_pending_execution("task-1", TASK_START + 7)
        .expect("task exists");
    assert_eq!(next, None);

    use ExecutionStatus::{Failed, Skipped, Successful};
    let expected = vec![
        planned(&cleared, "quarantine", Skipped),
        planned(&cleared, "isolate", Skipped),
        planned(&first, "quarantine", Failed),
        planned(&first, "isolate", Skipped),
        planned(&second, "quarantine", Successful),
        planned(&second, "isolate", Successful),
    ];
    assert_eq!(execution_statuses(&engine, "task-1"), expected);

    let summary = engine
        .describe_mitigation_task("task-1")
        .expect("task exists");
    assert_eq!(summary.task_status, TaskStatus::Failed);
    assert_eq!(summary.task_end_time, Some(TASK_START + 6));
    // Every action that ran counts as executed, the failed one included.
    let statistics = TaskStatistics {
        actions_executed: 3,
        actions_skipped: 3,
        actions_failed: 1,
    };
    assert_eq!(summary.task_statistics, statistics);
}

#[test]
fn reused_task_id_is_rejected() {
    let (mut engine, _) = engine_with_three_violations();
    let request = profile_task("task-1", &["quarantine"], true, false);
    engine
        .start_mitigation_task(&request, TASK_START)
        .expect("task is valid");

    let error = engine
        .start_mitigation_task(&request, TASK_START + 1)
        .unwrap_err();

    assert!(matches!(error, Error::TaskAlreadyExists(_)), "{error:?}");
}

#[test]
fn canceling_task_skips_pending_executions() {
    let (mut engine, [_, first, second]) = engine_with_three_violations();
    let request = TaskRequest {
        target: DetectMitigationActionsTaskTarget {
            violation_ids: Some(vec![first.clone(), second.clone()]),
            ..DetectMitigationActionsTaskTarget::default()
        },
        ..profile_task("task-2", &["quarantine", "isolate"], false, false)
    };
    engine
        .start_mitigation_task(&request, TASK_START)
        .expect("task is valid");
    next_execution(&mut engine, "task-2", TASK_START + 1);

    let summary = engine
        .cancel_mitigation_task("task-2", TASK_START + 2)
        .expect("task is in progress");

    assert_eq!(summary.task_status, TaskStatus::Canceled);
    assert_eq!(summary.task_end_time, Some(TASK_START + 2));
    let statistics = TaskStatistics {
        actions_executed: 0,
        actions_skipped: 4,
        actions_failed: 0,
    };
    assert_eq!(summary.task_statistics, statistics);
    use ExecutionStatus::Skipped;
    let expected = vec![
        planned(&first, "quarantine", Skipped),
        planned(&first, "isolate", Skipped),
        planned(&second, "quarantine", Skipped),
        planned(&second, "isolate", Skipped),
    ];
    assert_eq!(execution_statuses(&engine, "task-2"), expected);
    let next = engine
        .next_pending_execution("task-2", TASK_START + 3)
        .expect("task exists");
    assert_eq!(next, None);
}

#[test]
fn suppressed_behavior_needs_include_suppressed_alerts() {
    let mut quiet = at_most("quiet", MESSAGES_RECEIVED, 50);
    quiet.suppress_alerts = Some(true);
    let behaviors = vec![at_most("loud", MESSAGES_SENT, 50), quiet];
    let mut engine = guarded_engine(EngineConfig::default(), &things(&[LAMP]), behaviors);
    let events = ingest(
        &mut engine,
        &[
            messages_sent(LAMP, period_end(1), 60),
            datapoint(LAMP, MESSAGES_RECEIVED, period_end(2), 60),
        ],
    );
    assert_eq!(events.len(), 2, "both behaviors alarm: {events:#?}");
    let (loud_id, quiet_id) = (
        events[0].violation_id.clone(),
        events[1].violation_id.clone(),
    );
    create_group_action(
        &mut engine,
        "quarantine",
        "7b1f2e0c-3d4a-4f5b-8c6d-9e0f1a2b3c4d",
        "quarantine",
    );

    // Without includeSuppressedAlerts the suppressed behavior's violation is skipped.
    let request = profile_task("without-suppressed", &["quarantine"], false, false);
    engine
        .start_mitigation_task(&request, TASK_START)
        .expect("task is valid");
    let expected = vec![
        planned(&loud_id, "quarantine", ExecutionStatus::InProgress),
        planned(&quiet_id, "quarantine", ExecutionStatus::Skipped),
    ];
    assert_eq!(execution_statuses(&engine, "without-suppressed"), expected);

    // With it, both are planned.
    let request = profile_task("with-suppressed", &["quarantine"], false, true);
    engine
        .start_mitigation_task(&request, TASK_START + 1)
        .expect("task is valid");
    let expected = vec![
        planned(&loud_id, "quarantine", ExecutionStatus::InProgress),
        planned(&quiet_id, "quarantine", ExecutionStatus::InProgress),
    ];
    assert_eq!(execution_statuses(&engine, "with-suppressed"), expected);
}

// ---------------------------------------------------------------------------------------------
// Snapshots and determinism.
// ---------------------------------------------------------------------------------------------

/// Periods of the snapshot scenario: two days.
const SCENARIO_PERIODS: i64 = 2 * PERIODS_PER_DAY;

/// Creates an engine with a one-day ML behavior on messages sent and a static limit of 40 on
/// messages received, over four meters.
fn scenario_engine() -> Engine {
    let config = EngineConfig {
        ml_training_days: 1,
        ml_min_datapoints: 0,
        ..EngineConfig::default()
    };
    let behaviors = vec![
        learned_messages("messages-ml"),
        at_most("received", MESSAGES_RECEIVED, 40),
    ];
    guarded_engine(config, &thing_names("meter", 4), behaviors)
}

/// Broker events of period `k`: every meter sends its daily pattern and receives a few messages.
/// On day 2 meter-001 floods once, and meter-002 receives a burst every 100 periods.
fn scenario_events(k: i64) -> Vec<CloudEvent> {
    let period_start = period_end(k - 1);
    let mut events = Vec::new();
    for (index, thing) in thing_names("meter", 4).iter().enumerate() {
        let mut sent = daily_messages(index, period_end(k));
        if index == 1 && k == PERIODS_PER_DAY + 100 {
            sent *= 30;
        }
        let received = if index == 2 && k % 100 == 0 {
            100
        } else {
            5 + (k as u64 + index as u64) % 4
        };
        let at = period_start + 1_000 * (index as i64 + 1);
        events.push(cloud_event(thing, CloudEventKind::MessageSent, at, sent));
        events.push(cloud_event(
            thing,
            CloudEventKind::MessageReceived,
            at + 500,
            received,
        ));
    }
    events
}

/// Feeds the broker events of `periods`. The last period stays open until time moves on.
fn run_scenario(engine: &mut Engine, periods: RangeInclusive<i64>) -> Vec<ViolationEvent> {
    periods
        .flat_map(|k| ingest_cloud(engine, &scenario_events(k)))
        .collect()
}

/// Feeds the second half of the scenario and closes its last period.
fn finish_scenario(engine: &mut Engine) -> Vec<ViolationEvent> {
    let mut events = run_scenario(engine, SCENARIO_PERIODS / 2 + 1..=SCENARIO_PERIODS);
    events.extend(engine.advance_time(period_end(SCENARIO_PERIODS)));
    events
}

#[test]
fn restored_snapshot_continues_like_original() {
    let mut original = scenario_engine();
    // Stop halfway, with the last period's broker events still open.
    run_scenario(&mut original, 1..=SCENARIO_PERIODS / 2);
    let snapshot = original.snapshot();

    let mut restored = Engine::restore(&snapshot).expect("snapshot is valid");
    // Retained datapoints wait for the host outside the snapshot, so only the original has them.
    assert!(!original.take_retained_datapoints().is_empty());
    assert!(
        restored == original,
        "restored engine differs from the original"
    );

    let original_events = finish_scenario(&mut original);
    let restored_events = finish_scenario(&mut restored);
    assert!(
        !original_events.is_empty(),
        "the second half should raise violations"
    );
    assert_eq!(restored_events, original_events);

    let original_summaries = original.training_summaries(None).expect("all profiles");
    let restored_summaries = restored.training_summaries(None).expect("all profiles");
    assert_eq!(original_summaries[0].model_status, ModelStatus::Active);
    assert_eq!(restored_summaries, original_summaries);
    assert!(
        restored.snapshot() == original.snapshot(),
        "final snapshots differ"
    );
}

#[test]
fn same_input_gives_identical_snapshots() {
    let mut first = scenario_engine();
    let mut second = scenario_engine();

    let first_events = run_scenario(&mut first, 1..=SCENARIO_PERIODS / 2);
    let second_events = run_scenario(&mut second, 1..=SCENARIO_PERIODS / 2);

    assert_eq!(first_events, second_events);
    assert!(first.snapshot() == second.snapshot(), "snapshots differ");
}

/// The message of the `InvalidSnapshot` error that restoring `bytes` must give.
#[track_caller]
fn restore_error(bytes: &[u8]) -> String {
    match Engine::restore(bytes) {
        Err(Error::InvalidSnapshot(message)) => message,
        Err(other) => panic!("expected InvalidSnapshot, got {other:?}"),
        Ok(_) => panic!("restoring {} bytes should fail", bytes.len()),
    }
}

#[test]
fn restore_rejects_garbage_bytes() {
    let message = restore_error(b"definitely not a snapshot");

    assert!(message.contains("not a Vigil engine snapshot"), "{message}");
}

#[test]
fn restore_rejects_wrong_magic() {
    let mut bytes = Engine::new(EngineConfig::default()).snapshot();
    bytes[..4].copy_from_slice(b"VGL0");

    let message = restore_error(&bytes);

    assert!(message.contains("magic"), "{message}");
}

#[test]
fn restore_rejects_unsupported_version() {
    let mut bytes = Engine::new(EngineConfig::default()).snapshot();
    bytes[4..8].copy_from_slice(&99u32.to_le_bytes());

    let message = restore_error(&bytes);

    assert!(message.contains("version 99"), "{message}");
    assert!(message.contains("not supported"), "{message}");
}

#[test]
fn restore_rejects_version_1_snapshot() {
    let mut bytes = Engine::new(EngineConfig::default()).snapshot();
    bytes[4..8].copy_from_slice(&1u32.to_le_bytes());

    let message = restore_error(&bytes);

    assert_eq!(
        message,
        "snapshot version 1 is not supported; this engine reads only version 2, so recreate the \
         engine state from its source data"
    );
}

#[test]
fn restore_rejects_corrupt_body() {
    let mut bytes = Engine::new(EngineConfig::default()).snapshot();
    bytes.truncate(bytes.len() / 2);

    let message = restore_error(&bytes);

    assert!(message.contains("corrupt"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Device reports.
// ---------------------------------------------------------------------------------------------

const GATEWAY: &str = "gateway-1";

fn ports_report(report_id: u64, ports: &[u16], received_at: Timestamp) -> DeviceReport {
    let listening: Vec<serde_json::Value> = ports
        .iter()
        .map(|port| json!({"interface": "eth0", "port": port}))
        .collect();
    let document = json!({
        "header": {"report_id": report_id, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": listening, "total": ports.len()}},
    });
    DeviceReport {
        thing_name: GATEWAY.to_string(),
        received_at,
        format: ReportFormat::Json,
        payload: document.to_string().into_bytes(),
    }
}

fn gateway_engine() -> Engine {
    guarded_engine(
        EngineConfig::default(),
        &things(&[GATEWAY]),
        vec![only_https_listening()],
    )
}

#[track_caller]
fn rejection_code(outcome: &ReportOutcome) -> &str {
    match outcome {
        ReportOutcome::Rejected(rejection) => &rejection.error_code,
        ReportOutcome::Accepted(id) => panic!("report {id} should be rejected"),
    }
}

#[test]
fn report_with_unexpected_port_raises_alarm() {
    let mut engine = gateway_engine();

    let (outcomes, events) = engine.ingest_reports(&[ports_report(1, &[443, 22], T0)]);

    assert_eq!(outcomes, [ReportOutcome::Accepted(1)]);
    let raised = single_event(&events, ViolationEventType::InAlarm);
    assert_eq!(raised.thing_name, GATEWAY);
    assert_eq!(raised.behavior.name, "ports");
    assert_eq!(
        raised.metric_value.as_ref().and_then(|v| v.ports.clone()),
        Some(vec![443, 22])
    );
    assert_eq!(raised.violation_event_time, T0);

    // Once port 22 closes, the next report clears the alarm.
    let (outcomes, events) = engine.ingest_reports(&[ports_report(2, &[443], T0 + 300_000)]);
    assert_eq!(outcomes, [ReportOutcome::Accepted(2)]);
    single_event(&events, ViolationEventType::AlarmCleared);
}

#[test]
fn report_within_300_seconds_is_throttled() {
    let mut engine = gateway_engine();
    engine.ingest_reports(&[ports_report(1, &[443, 22], T0)]);

    let (outcomes, events) = engine.ingest_reports(&[ports_report(2, &[443], T0 + 299_000)]);

    assert_eq!(rejection_code(&outcomes[0]), "Throttled");
    let ReportOutcome::Rejected(rejection) = &outcomes[0] else {
        unreachable!()
    };
    assert_eq!(rejection.report_id, Some(2));
    assert_no_events(&events);
    assert_eq!(active_violations(&engine).len(), 1);

    // The throttled report does not restart the interval.
    let (outcomes, _) = engine.ingest_reports(&[ports_report(3, &[443], T0 + 300_000)]);
    assert_eq!(outcomes, [ReportOutcome::Accepted(3)]);
}

#[test]
fn malformed_report_changes_only_rejection_count() {
    let mut engine = gateway_engine();
    engine.advance_time(T0);
    let before = engine.stats();
    // A report that is not JSON at all shows what any rejection changes: one counter.
    let mut reference = engine.clone();
    let garbage = DeviceReport {
        payload: b"{".to_vec(),
        ..ports_report(1, &[], T0)
    };
    reference.ingest_reports(&[garbage]);
    // A port must be a number from 0 to 65535.
    let document = json!({
        "header": {"report_id": 1, "version": "1.0"},
        "metrics": {"listening_tcp_ports": {"ports": [{"port": "ssh"}]}},
    });
    let malformed = DeviceReport {
        payload: document.to_string().into_bytes(),
        ..ports_report(1, &[], T0)
    };

    let (outcomes, events) = engine.ingest_reports(&[malformed]);

    assert_eq!(rejection_code(&outcomes[0]), "InvalidPayload");
    assert_no_events(&events);
    let expected = EngineStats {
        reports_rejected: before.reports_rejected + 1,
        ..before
    };
    assert_eq!(engine.stats(), expected);
    assert!(
        engine.snapshot() == reference.snapshot(),
        "a rejected report changed more than the rejection count"
    );

    // The rejected report does not count toward throttling either.
    let (outcomes, _) = engine.ingest_reports(&[ports_report(2, &[443, 22], T0)]);
    assert_eq!(outcomes, [ReportOutcome::Accepted(2)]);
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_profile_lists_every_problem() {
    let mut engine = Engine::new(EngineConfig::default());
    let unknown_metric = Behavior {
        metric: Some("aws:num-carrier-pigeons".to_string()),
        criteria: None,
        ..at_most("pigeons", MESSAGES_SENT, 1)
    };
    let too_patient = with_hysteresis(at_most("messages", MESSAGES_SENT, 50), 11, 1);
    let profile = SecurityProfile {
        name: "guard profile".to_string(),
        behaviors: vec![unknown_metric, too_patient],
        ..SecurityProfile::default()
    };

    let error = engine.create_security_profile(profile, T0).unwrap_err();

    let Error::ValidationFailed(problems) = error else {
        panic!("expected ValidationFailed, got {error:?}");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    let expected = [
        "securityProfileName",
        "behaviors[0].metric",
        "behaviors[1].criteria.consecutiveDatapointsToAlarm",
    ];
    assert_eq!(fields, expected, "problems: {problems:#?}");
    let profiles = engine.list_security_profiles(&SecurityProfileFilter::default());
    assert_eq!(profiles, Ok(vec![]));
}
