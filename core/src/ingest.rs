//! Input records: device reports, per-period datapoints and broker events, and what ingesting
//! them returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::PERIOD_MS;
use crate::model::{MetricValue, Timestamp, ViolationEvent};
use crate::report::{ReportFormat, ReportRejection};

/// A device-side metrics report as the device published it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// Thing named in the topic.
    pub thing_name: String,
    /// Arrival time.
    pub received_at: Timestamp,
    /// JSON or CBOR.
    pub format: ReportFormat,
    /// The document.
    pub payload: Vec<u8>,
}

/// Outcome of one report.
#[derive(Clone, Debug, PartialEq)]
pub enum ReportOutcome {
    /// Accepted and evaluated, with the report id.
    Accepted(u64),
    /// Rejected, with the reply for the `/rejected` topic.
    Rejected(ReportRejection),
}

/// One value for one thing and period, already aggregated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    /// The thing.
    pub thing_name: String,
    /// An `aws:` metric or a custom metric.
    pub metric: String,
    /// The dimension the value was computed for.
    pub dimension_name: Option<String>,
    /// End of the period.
    pub timestamp: Timestamp,
    /// The value.
    pub value: MetricValue,
}

/// Kinds of broker events behind the cloud-side metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloudEventKind {
    /// Counts toward `aws:num-connection-attempts`.
    ConnectionAttempt,
    /// Counts toward `aws:num-disconnects`.
    Disconnect,
    /// Counts toward `aws:num-authorization-failures`.
    AuthorizationFailure,
    /// Counts toward `aws:num-messages-sent` and `aws:message-byte-size`.
    MessageSent,
    /// Counts toward `aws:num-messages-received`.
    MessageReceived,
}

/// One or more identical broker events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// The thing (client id).
    pub thing_name: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// What happened.
    pub kind: CloudEventKind,
    /// How many times, at least 1.
    pub count: u32,
    /// Size of each message, for message events.
    pub message_bytes: u64,
}

/// An item of a batch that was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Position in the batch.
    pub index: u32,
    /// Why.
    pub message: String,
}

/// Outcome of ingesting a batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestResult {
    /// Items accepted.
    pub accepted: u32,
    /// Items rejected.
    pub rejected: Vec<Rejection>,
    /// Violation events caused, oldest first.
    pub events: Vec<ViolationEvent>,
}

/// Broker event counts of one thing in one five-minute period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodCounters {
    connection_attempts: u64,
    disconnects: u64,
    authorization_failures: u64,
    messages_sent: u64,
    messages_received: u64,
    largest_message_bytes: u64,
}

impl PeriodCounters {
    fn add(&mut self, event: &CloudEvent) {
        let count = u64::from(event.count);
        match event.kind {
            CloudEventKind::ConnectionAttempt => self.connection_attempts += count,
            CloudEventKind::Disconnect => self.disconnects += count,
            CloudEventKind::AuthorizationFailure => self.authorization_failures += count,
            CloudEventKind::MessageReceived => self.messages_received += count,
            CloudEventKind::MessageSent => {
                self.messages_sent += count;
                self.largest_message_bytes = self.largest_message_bytes.max(event.message_bytes);
            }
        }
    }

    /// Returns the period's datapoints. `aws:message-byte-size` is the largest message of the
    /// period and is present only when the thing sent messages.
    fn datapoints(&self) -> Vec<(&'static str, u64)> {
        let mut points = vec![
            ("aws:num-connection-attempts", self.connection_attempts),
            ("aws:num-disconnects", self.disconnects),
            (
                "aws:num-authorization-failures",
                self.authorization_failures,
            ),
            ("aws:num-messages-sent", self.messages_sent),
            ("aws:num-messages-received", self.messages_received),
        ];
        if self.messages_sent > 0 {
            points.push(("aws:message-byte-size", self.largest_message_bytes));
        }
        points
    }
}

/// Open five-minute periods of broker events, keyed by (period index, thing).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudPeriods {
    open: BTreeMap<(i64, String), PeriodCounters>,
}

impl CloudPeriods {
    /// Adds an event to its period.
    pub fn add(&mut self, event: &CloudEvent) {
        let period = event.timestamp.div_euclid(PERIOD_MS);
        let key = (period, event.thing_name.clone());
        self.open.entry(key).or_default().add(event);
    }

    /// End of the earliest open period.
    pub fn earliest_end(&self) -> Option<Timestamp> {
        self.open
            .keys()
            .next()
            .map(|(period, _)| (period + 1) * PERIOD_MS)
    }

    /// Closes every period that ends at `end` and returns its datapoints.
    pub fn close_ending_at(&mut self, end: Timestamp) -> Vec<Datapoint> {
        let period = end / PERIOD_MS - 1;
        let still_open = self.open.split_off(&(period + 1, String::new()));
        let closed = std::mem::replace(&mut self.open, still_open);
        closed
            .into_iter()
            .flat_map(|((_, thing), counters)| {
                counters
                    .datapoints()
                    .into_iter()
                    .map(move |(metric, value)| Datapoint {
                        thing_name: thing.clone(),
                        metric: metric.to_string(),
                        dimension_name: None,
                        timestamp: end,
                        value: MetricValue::count(value),
                    })
            })
            .collect()
    }
}
