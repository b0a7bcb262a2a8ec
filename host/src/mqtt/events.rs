//! Broker events on their way to the engine as cloud events.
//!
//! Connections record what happens (connection attempts, disconnects, authorization failures,
//! messages sent and received) in a [`CloudEventLog`], which sums them per thing, kind and
//! five-minute period. A flusher hands the sums to the engine several times a second as one
//! `IngestCloudEvents` command, so a flood of messages costs a handful of journal entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use vigil_core::catalogue::PERIOD_MS;
use vigil_core::ingest::{CloudEvent, CloudEventKind};
use vigil_core::model::Timestamp;

use crate::api::{ApiError, ApiState};
use crate::journal::Command;
use crate::service::Clock;

/// How often recorded events are handed to the engine.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Events of one thing, kind and period, summed.
#[derive(Clone, Copy, Debug)]
struct Sum {
    kind: CloudEventKind,
    count: u64,
    largest_message_bytes: u64,
    last: Timestamp,
}

/// Broker events not yet handed to the engine.
pub struct CloudEventLog {
    clock: Clock,
    pending: Mutex<HashMap<(String, u8, Timestamp), Sum>>,
}

impl CloudEventLog {
    /// A log that stamps events with `clock`, which must run like the service's clock.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Records one event of `kind` for `thing`; `message_bytes` is the payload size of a message.
    pub fn record(&self, thing: &str, kind: CloudEventKind, message_bytes: u64) {
        let now = self.clock.now();
        let key = (thing.to_owned(), kind_index(kind), period_start(now));
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let sum = pending.entry(key).or_insert(Sum {
            kind,
            count: 0,
            largest_message_bytes: 0,
            last: now,
        });
        sum.count += 1;
        sum.largest_message_bytes = sum.largest_message_bytes.max(message_bytes);
        sum.last = now;
    }

    /// Takes the recorded events as cloud events. An event whose period closed before `now`
    /// moves to the start of the current period, because the engine evaluated the closed one.
    pub fn take(&self, now: Timestamp) -> Vec<CloudEvent> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let open_from = period_start(now);
        let mut events = Vec::with_capacity(pending.len());
        for ((thing, _, _), sum) in pending {
            let mut left = sum.count;
            while left > 0 {
                let count = u32::try_from(left).unwrap_or(u32::MAX);
                left -= u64::from(count);
                events.push(CloudEvent {
                    thing_name: thing.clone(),
                    timestamp: sum.last.max(open_from),
                    kind: sum.kind,
                    count,
                    message_bytes: sum.largest_message_bytes,
                });
            }
        }
        // Oldest first, so the engine closes periods in order.
        events.sort_by(|a, b| (a.timestamp, &a.thing_name).cmp(&(b.timestamp, &b.thing_name)));
        events
    }
}

/// Hands recorded events to the engine until the server stops.
pub async fn flush_forever(log: std::sync::Arc<CloudEventLog>, state: ApiState) {
    let mut interval = tokio::time::interval(FLUSH_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let log = std::sync::Arc::clone(&log);
        let result = state
            .call(move |service| {
                let events = log.take(service.now());
                if events.is_empty() {
                    return Ok(0);
                }
                let count = events.len();
                service
                    .engine()
                    .run(Command::IngestCloudEvents { events })
                    .map_err(ApiError::from)?;
                Ok(count)
            })
            .await;
        if let Err(error) = result {
            tracing::error!(?error, "failed to hand broker events to the engine");
        }
    }
}

fn period_start(at: Timestamp) -> Timestamp {
    at - at.rem_euclid(PERIOD_MS)
}

fn kind_index(kind: CloudEventKind) -> u8 {
    match kind {
        CloudEventKind::ConnectionAttempt => 0,
        CloudEventKind::Disconnect => 1,
        CloudEventKind::AuthorizationFailure => 2,
        CloudEventKind::MessageSent => 3,
        CloudEventKind::MessageReceived => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_summed_per_thing_and_kind() {
        let log = CloudEventLog::new(Clock::new(1_800_000_000_000, 1.0));
        log.record("pump-1", CloudEventKind::MessageSent, 10);
        log.record("pump-1", CloudEventKind::MessageSent, 250);
        log.record("pump-1", CloudEventKind::ConnectionAttempt, 0);
        log.record("pump-2", CloudEventKind::MessageSent, 5);
        let mut events = log.take(1_800_000_000_000);
        events.sort_by_key(|e| (e.thing_name.clone(), kind_index(e.kind)));
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.thing_name.as_str(), e.kind, e.count, e.message_bytes))
            .collect();
        assert_eq!(
            summary,
            [
                ("pump-1", CloudEventKind::ConnectionAttempt, 1, 0),
                ("pump-1", CloudEventKind::MessageSent, 2, 250),
                ("pump-2", CloudEventKind::MessageSent, 1, 5),
            ]
        );
        assert!(log.take(1_800_000_000_000).is_empty());
    }

    #[test]
    fn an_event_of_a_closed_period_moves_to_the_open_one() {
        let origin = 1_800_000_000_000;
        let log = CloudEventLog::new(Clock::new(origin, 1.0));
        log.record("pump-1", CloudEventKind::Disconnect, 0);
        let later = origin + 3 * PERIOD_MS;
        let events = log.take(later);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].timestamp, period_start(later));
    }
}
