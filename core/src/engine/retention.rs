//! Accepting datapoints, and the outbox of retained metric values the host stores for
//! `ListMetricValues`.

use std::collections::VecDeque;

use super::Engine;
use crate::ingest::Datapoint;
use crate::model::ViolationEvent;

/// Most datapoints the outbox holds. A host that never drains it, such as a demo, keeps only the
/// newest ones, and `EngineStats::retained_datapoints_dropped` counts the rest.
pub const MAX_RETAINED_DATAPOINTS: usize = 100_000;

/// Retained datapoints, oldest first, waiting to be taken by the host.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Outbox(VecDeque<Datapoint>);

impl Outbox {
    /// Appends a datapoint and returns whether the oldest one was dropped to make room.
    fn push(&mut self, datapoint: Datapoint) -> bool {
        let full = self.0.len() >= MAX_RETAINED_DATAPOINTS;
        if full {
            self.0.pop_front();
        }
        self.0.push_back(datapoint);
        full
    }
}

impl Engine {
    /// Accepts one datapoint: counts it, retains it when a profile covering its thing uses its
    /// metric, and evaluates it.
    pub(super) fn accept(&mut self, datapoint: &Datapoint) -> Vec<ViolationEvent> {
        self.counters.datapoints_accepted += 1;
        if self.is_retained(datapoint) && self.retained.push(datapoint.clone()) {
            self.counters.retained_datapoints_dropped += 1;
        }
        self.evaluate(datapoint)
    }

    /// Returns whether a security profile covering the datapoint's thing evaluates its metric in
    /// a behavior or lists it among the metrics to retain, with the same dimension.
    fn is_retained(&self, datapoint: &Datapoint) -> bool {
        let dimension = datapoint.dimension_name.as_deref();
        self.profiles
            .values()
            .filter(|p| {
                p.stored
                    .profile
                    .metric_uses()
                    .any(|used| used == (datapoint.metric.as_str(), dimension))
            })
            .any(|p| p.covers(&self.registry, &datapoint.thing_name))
    }

    /// Removes and returns the retained datapoints accepted since the last call, oldest first.
    /// The outbox is not part of snapshots, so a restored engine starts with an empty one.
    pub fn take_retained_datapoints(&mut self) -> Vec<Datapoint> {
        std::mem::take(&mut self.retained.0).into()
    }
}

#[cfg(test)]
mod tests {
    use crate::ingest::{CloudEvent, CloudEventKind, Datapoint, DeviceReport};
    use crate::model::{
        Behavior, BehaviorCriteria, ComparisonOperator, MetricDimension, MetricToRetain,
        MetricValue, SecurityProfile,
    };
    use crate::report::ReportFormat;
    use crate::{Engine, EngineConfig};

    const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";
    const PERIOD_MS: i64 = crate::catalogue::PERIOD_MS;

    fn sent_at_most(max: u64) -> Behavior {
        Behavior {
            name: "sent".to_string(),
            metric: Some("aws:num-messages-sent".to_string()),
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

    fn engine_with(profile: SecurityProfile, target: &str) -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        engine
            .create_dimension("topics", vec!["sensors/#".to_string()], 0)
            .unwrap();
        let name = profile.name.clone();
        engine.create_security_profile(profile, 0).unwrap();
        engine.attach_security_profile(&name, target).unwrap();
        engine
    }

    fn datapoint(metric: &str, dimension: Option<&str>, count: u64) -> Datapoint {
        Datapoint {
            thing_name: "lamp-1".to_string(),
            metric: metric.to_string(),
            dimension_name: dimension.map(str::to_string),
            timestamp: PERIOD_MS,
            value: MetricValue::count(count),
        }
    }

    #[test]
    fn datapoint_of_behavior_metric_is_retained_once() {
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![sent_at_most(100)],
            additional_metrics_to_retain: vec!["aws:num-messages-sent".to_string()],
            ..SecurityProfile::default()
        };
        let mut engine = engine_with(profile, ALL_THINGS);
        let sent = datapoint("aws:num-messages-sent", None, 7);
        let received = datapoint("aws:num-messages-received", None, 3);
        engine.ingest_datapoints(&[sent.clone(), received]);

        assert_eq!(engine.take_retained_datapoints(), vec![sent]);
        assert_eq!(engine.take_retained_datapoints(), vec![]);
    }

    #[test]
    fn retained_metric_must_match_its_dimension() {
        let retained = MetricToRetain {
            metric: "aws:num-messages-sent".to_string(),
            metric_dimension: Some(MetricDimension {
                dimension_name: "topics".to_string(),
                operator: None,
            }),
            export_metric: None,
        };
        let profile = SecurityProfile {
            name: "guard".to_string(),
            additional_metrics_to_retain_v2: vec![retained],
            ..SecurityProfile::default()
        };
        let mut engine = engine_with(profile, ALL_THINGS);
        let plain = datapoint("aws:num-messages-sent", None, 7);
        let narrowed = datapoint("aws:num-messages-sent", Some("topics"), 5);
        engine.ingest_datapoints(&[plain, narrowed.clone()]);

        assert_eq!(engine.take_retained_datapoints(), vec![narrowed]);
    }

    #[test]
    fn datapoint_of_uncovered_thing_is_not_retained() {
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![sent_at_most(100)],
            ..SecurityProfile::default()
        };
        let registered = "arn:aws:iot:us-east-1:123456789012:all/registered-things";
        let mut engine = engine_with(profile, registered);
        engine.ingest_datapoints(&[datapoint("aws:num-messages-sent", None, 7)]);

        assert_eq!(engine.take_retained_datapoints(), vec![]);
        assert_eq!(engine.stats().datapoints_accepted, 1);
    }

    #[test]
    fn report_and_cloud_datapoints_are_retained() {
        let profile = SecurityProfile {
            name: "guard".to_string(),
            additional_metrics_to_retain: vec![
                "aws:num-connection-attempts".to_string(),
                "aws:num-listening-tcp-ports".to_string(),
            ],
            ..SecurityProfile::default()
        };
        let mut engine = engine_with(profile, ALL_THINGS);
        let report = br#"{"header": {"report_id": 1, "version": "1.0"},
            "metrics": {"listening_tcp_ports": {"ports": [{"port": 443}], "total": 1}}}"#;
        engine.ingest_reports(&[DeviceReport {
            thing_name: "lamp-1".to_string(),
            received_at: 1000,
            format: ReportFormat::Json,
            payload: report.to_vec(),
        }]);
        engine.ingest_cloud_events(&[CloudEvent {
            thing_name: "lamp-1".to_string(),
            timestamp: 2000,
            kind: CloudEventKind::ConnectionAttempt,
            count: 2,
            message_bytes: 0,
        }]);
        engine.advance_time(PERIOD_MS);

        let retained: Vec<(String, MetricValue)> = engine
            .take_retained_datapoints()
            .into_iter()
            .map(|d| (d.metric, d.value))
            .collect();
        assert_eq!(
            retained,
            vec![
                (
                    "aws:num-listening-tcp-ports".to_string(),
                    MetricValue::count(1)
                ),
                (
                    "aws:num-connection-attempts".to_string(),
                    MetricValue::count(2)
                ),
            ]
        );
    }

    #[test]
    fn restored_engine_starts_with_empty_outbox() {
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![sent_at_most(100)],
            ..SecurityProfile::default()
        };
        let mut engine = engine_with(profile, ALL_THINGS);
        engine.ingest_datapoints(&[datapoint("aws:num-messages-sent", None, 7)]);

        let mut restored = Engine::restore(&engine.snapshot()).unwrap();
        assert_eq!(restored.take_retained_datapoints(), vec![]);
        assert_eq!(engine.take_retained_datapoints().len(), 1);
        assert_eq!(restored, engine);
    }

    #[test]
    fn full_outbox_drops_oldest_and_counts_it() {
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![sent_at_most(u64::MAX)],
            ..SecurityProfile::default()
        };
        let mut engine = engine_with(profile, ALL_THINGS);
        let extra = 3;
        let datapoints: Vec<Datapoint> = (0..super::MAX_RETAINED_DATAPOINTS + extra)
            .map(|i| datapoint("aws:num-messages-sent", None, i as u64))
            .collect();
        engine.ingest_datapoints(&datapoints);

        let retained = engine.take_retained_datapoints();
        assert_eq!(retained.len(), super::MAX_RETAINED_DATAPOINTS);
        assert_eq!(retained[0].value, MetricValue::count(extra as u64));
        assert_eq!(engine.stats().retained_datapoints_dropped, extra as u64);
    }
}
