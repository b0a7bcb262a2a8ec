//! Counters of what the engine has accepted and produced, kept in snapshots.

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::ingest::ReportOutcome;

/// Totals since the engine was created, carried across snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStats {
    /// Datapoints accepted from every source: datapoint batches, device reports and closed
    /// cloud-metric periods.
    pub datapoints_accepted: u64,
    /// Device reports accepted.
    pub reports_accepted: u64,
    /// Device reports rejected as malformed, throttled or naming an invalid thing.
    pub reports_rejected: u64,
    /// Violation events recorded: alarms raised, cleared and invalidated.
    pub violation_events: u64,
    /// Distinct things registered or seen in data.
    pub things: u64,
    /// Security profiles that exist now.
    pub security_profiles: u64,
    /// Retained datapoints dropped because the outbox was full when they arrived.
    pub retained_datapoints_dropped: u64,
}

/// The counts that cannot be derived from the rest of the state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Counters {
    pub(super) datapoints_accepted: u64,
    pub(super) reports_accepted: u64,
    pub(super) reports_rejected: u64,
    pub(super) retained_datapoints_dropped: u64,
}

impl Counters {
    pub(super) fn count_report(&mut self, outcome: &ReportOutcome) {
        match outcome {
            ReportOutcome::Accepted(_) => self.reports_accepted += 1,
            ReportOutcome::Rejected(_) => self.reports_rejected += 1,
        }
    }
}

impl Engine {
    /// Returns the engine's totals.
    pub fn stats(&self) -> EngineStats {
        let unregistered_seen = self
            .last_seen
            .keys()
            .filter(|thing| !self.registry.is_registered(thing))
            .count();
        EngineStats {
            datapoints_accepted: self.counters.datapoints_accepted,
            reports_accepted: self.counters.reports_accepted,
            reports_rejected: self.counters.reports_rejected,
            violation_events: self.violations.event_count() as u64,
            things: (self.registry.thing_count() + unregistered_seen) as u64,
            security_profiles: self.profiles.len() as u64,
            retained_datapoints_dropped: self.counters.retained_datapoints_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EngineStats;
    use crate::ingest::{Datapoint, DeviceReport};
    use crate::model::{
        Behavior, BehaviorCriteria, ComparisonOperator, MetricValue, SecurityProfile,
    };
    use crate::report::ReportFormat;
    use crate::{Engine, EngineConfig};

    const PERIOD_MS: i64 = crate::catalogue::PERIOD_MS;

    fn guarded_engine() -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        let behavior = Behavior {
            name: "sent".to_string(),
            metric: Some("aws:num-messages-sent".to_string()),
            metric_dimension: None,
            criteria: Some(BehaviorCriteria {
                comparison_operator: Some(ComparisonOperator::LessThanEquals),
                value: Some(MetricValue::count(100)),
                ..BehaviorCriteria::default()
            }),
            suppress_alerts: None,
            export_metric: None,
        };
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![behavior],
            ..SecurityProfile::default()
        };
        engine.create_security_profile(profile, 0).unwrap();
        let all = "arn:aws:iot:us-east-1:123456789012:all/things";
        engine.attach_security_profile("guard", all).unwrap();
        engine
    }

    fn sent(thing: &str, period: i64, count: u64) -> Datapoint {
        Datapoint {
            thing_name: thing.to_string(),
            metric: "aws:num-messages-sent".to_string(),
            dimension_name: None,
            timestamp: period * PERIOD_MS,
            value: MetricValue::count(count),
        }
    }

    fn report(thing: &str, received_at: i64, payload: &[u8]) -> DeviceReport {
        DeviceReport {
            thing_name: thing.to_string(),
            received_at,
            format: ReportFormat::Json,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn stats_count_datapoints_reports_events_and_things() {
        let mut engine = guarded_engine();
        engine.create_thing("lamp-9").unwrap();
        engine.ingest_datapoints(&[
            sent("lamp-1", 1, 500),
            sent("lamp-2", 1, 5),
            sent("lamp-1", 2, 5),
        ]);
        let valid = br#"{"header": {"report_id": 1, "version": "1.0"},
            "metrics": {"listening_tcp_ports": {"ports": [{"port": 443}], "total": 1}}}"#;
        engine.ingest_reports(&[
            report("lamp-3", 3 * PERIOD_MS, valid),
            report("lamp-3", 3 * PERIOD_MS + 1000, valid),
            report("lamp-4", 3 * PERIOD_MS, b"not json"),
        ]);

        let expected = EngineStats {
            // Three datapoints, plus the report's port list and port count.
            datapoints_accepted: 5,
            reports_accepted: 1,
            reports_rejected: 2,
            // lamp-1 raised an alarm and cleared it.
            violation_events: 2,
            // lamp-1, lamp-2 and lamp-3 sent data and lamp-9 is registered.
            things: 4,
            security_profiles: 1,
            retained_datapoints_dropped: 0,
        };
        assert_eq!(engine.stats(), expected);
    }

    #[test]
    fn stats_survive_snapshot_and_restore() {
        let mut engine = guarded_engine();
        engine.ingest_datapoints(&[sent("lamp-1", 1, 500)]);
        let restored = Engine::restore(&engine.snapshot()).unwrap();
        assert_eq!(restored.stats(), engine.stats());
        assert_eq!(restored.stats().datapoints_accepted, 1);
        assert_eq!(restored.stats().violation_events, 1);
    }
}
