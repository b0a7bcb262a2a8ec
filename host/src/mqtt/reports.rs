//! Device Defender metrics reports: batched into the engine, committed, then replied to.
//!
//! The receiver of a report published on `$aws/things/{thing}/defender/metrics/{json|cbor}`
//! queues it: a connection of the embedded broker, or the client attached to an external
//! broker. The ingester takes every report waiting, runs them as one `IngestReports` command and
//! commits it with [`ApiState::call`]. Only after the commit does it publish the replies on
//! `/accepted` and `/rejected` and acknowledge QoS 1 publishes, through a [`ReplySink`], so an
//! accepted report is a stored one. If the commit fails, the sink drops the reports without a
//! reply so that they are sent again.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use vigil_core::ingest::{DeviceReport, ReportOutcome};
use vigil_core::model::Timestamp;
use vigil_core::report::ReportFormat;

use super::codec::{CloseReason, Outgoing};
use super::router::{Outbound, Outbox, Router};
use super::topics::ReportTopic;
use crate::api::{ApiError, ApiState};
use crate::journal::{Command, Reply, unexpected};

/// Maximum reports in one command and one database transaction.
pub const MAX_BATCH: usize = 4096;

/// Reports waiting for the ingester before publishers wait.
pub const QUEUE_CAPACITY: usize = 16_384;

/// A report waiting to be ingested, with what acknowledges its publish once it is stored.
#[derive(Debug)]
pub struct PendingReport<A = EmbeddedAck> {
    /// The thing named in the topic.
    pub thing: String,
    /// JSON or CBOR.
    pub format: ReportFormat,
    /// The document.
    pub payload: Bytes,
    /// Acknowledges the publish that carried the report.
    pub ack: A,
}

/// The acknowledgement of a report published to the embedded broker.
#[derive(Debug)]
pub struct EmbeddedAck {
    /// The publishing connection.
    pub origin: Outbox,
    /// Packet id of a QoS 1 publish, acknowledged once the report is stored.
    pub pkid: Option<u16>,
}

/// Destination of the replies to stored reports, which also acknowledges their publishes.
pub trait ReplySink: Send + Sync + 'static {
    /// Acknowledgement of one report's publish.
    type Ack: Send + 'static;

    /// Publishes a reply at QoS 1.
    fn publish_reply(&self, topic: &str, payload: Bytes);

    /// Acknowledges the publish of a stored report, after its reply.
    fn acknowledge(&self, ack: Self::Ack);

    /// Drops reports that could not be stored, without acknowledging them, so that they are
    /// sent again.
    fn abandon(&self, acks: Vec<Self::Ack>);
}

/// The embedded broker replies through its router and acknowledges on the publishing
/// connection.
impl ReplySink for Router {
    type Ack = EmbeddedAck;

    fn publish_reply(&self, topic: &str, payload: Bytes) {
        self.publish(topic, payload, 1);
    }

    fn acknowledge(&self, ack: EmbeddedAck) {
        if let Some(pkid) = ack.pkid {
            let _ = ack
                .origin
                .try_send(Outbound::Packet(Outgoing::PubAck(pkid, true)));
        }
    }

    /// Closes the reporting connections, because MQTT has no negative acknowledgement for a
    /// QoS 1 publish: their clients send the reports again after reconnecting.
    fn abandon(&self, acks: Vec<EmbeddedAck>) {
        for ack in acks {
            let _ = ack
                .origin
                .try_send(Outbound::Close(CloseReason::Unavailable));
        }
    }
}

/// Ingests queued reports until every sender is gone.
pub async fn ingest_forever<S: ReplySink>(
    mut queue: mpsc::Receiver<PendingReport<S::Ack>>,
    state: ApiState,
    sink: Arc<S>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pending = std::mem::take(&mut batch);
        let reports: Vec<(String, ReportFormat, Bytes)> = pending
            .iter()
            .map(|report| (report.thing.clone(), report.format, report.payload.clone()))
            .collect();
        match state.call(move |service| ingest(service, reports)).await {
            Ok((outcomes, received_at)) => {
                for (report, outcome) in pending.into_iter().zip(outcomes) {
                    answer(&*sink, report, &outcome, received_at);
                }
            }
            Err(error) => {
                tracing::error!(?error, reports = pending.len(), "failed to store reports");
                sink.abandon(pending.into_iter().map(|report| report.ack).collect());
            }
        }
    }
}

/// Runs the reports through the engine, stamped with the service's current time.
fn ingest(
    service: &mut crate::service::Service,
    reports: Vec<(String, ReportFormat, Bytes)>,
) -> Result<(Vec<ReportOutcome>, Timestamp), ApiError> {
    let received_at = service.now();
    let reports = reports
        .into_iter()
        .map(|(thing_name, format, payload)| DeviceReport {
            thing_name,
            received_at,
            format,
            payload: payload.to_vec(),
        })
        .collect();
    match service.engine().run(Command::IngestReports { reports })? {
        Reply::Reports(outcomes, _) => Ok((outcomes, received_at)),
        other => Err(unexpected(other).into()),
    }
}

/// Publishes the reply to a stored report and acknowledges its publish.
fn answer<S: ReplySink>(
    sink: &S,
    report: PendingReport<S::Ack>,
    outcome: &ReportOutcome,
    at: Timestamp,
) {
    let topic = ReportTopic {
        thing: &report.thing,
        format: report.format,
    };
    let accepted = matches!(outcome, ReportOutcome::Accepted(_));
    let body = reply_body(&report.thing, outcome, at);
    match encode(&body, report.format) {
        Ok(payload) => sink.publish_reply(&topic.reply_topic(accepted), payload),
        Err(error) => tracing::error!(error = %format!("{error:#}"), "failed to encode a reply"),
    }
    sink.acknowledge(report.ack);
}

/// Builds the reply document of AWS IoT Device Defender.
pub fn reply_body(thing: &str, outcome: &ReportOutcome, at: Timestamp) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("thingName".into(), thing.into());
    match outcome {
        ReportOutcome::Accepted(report_id) => {
            body.insert("reportId".into(), (*report_id).into());
            body.insert("status".into(), "ACCEPTED".into());
        }
        ReportOutcome::Rejected(rejection) => {
            if let Some(report_id) = rejection.report_id {
                body.insert("reportId".into(), report_id.into());
            }
            body.insert("status".into(), "REJECTED".into());
            body.insert(
                "statusDetails".into(),
                serde_json::json!({
                    "ErrorCode": rejection.error_code,
                    "ErrorMessage": rejection.error_message,
                }),
            );
        }
    }
    body.insert("timestamp".into(), at.into());
    serde_json::Value::Object(body)
}

/// Encodes a reply as JSON, or as CBOR for reports sent as CBOR.
fn encode(body: &serde_json::Value, format: ReportFormat) -> anyhow::Result<Bytes> {
    Ok(match format {
        ReportFormat::Json => serde_json::to_vec(body)?.into(),
        ReportFormat::Cbor => {
            let mut bytes = Vec::new();
            ciborium::into_writer(body, &mut bytes)?;
            bytes.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::report::ReportRejection;

    #[test]
    fn an_accepted_reply_echoes_the_report_id() {
        let body = reply_body("pump-1", &ReportOutcome::Accepted(1_700_000_000), 42);
        assert_eq!(
            body.to_string(),
            r#"{"thingName":"pump-1","reportId":1700000000,"status":"ACCEPTED","timestamp":42}"#
        );
    }

    #[test]
    fn a_rejected_reply_carries_the_error_code() {
        let rejection = ReportRejection {
            error_code: "Throttled".into(),
            error_message: "wait".into(),
            report_id: Some(7),
        };
        let body = reply_body("pump-1", &ReportOutcome::Rejected(rejection), 42);
        assert_eq!(
            body.to_string(),
            r#"{"thingName":"pump-1","reportId":7,"status":"REJECTED","statusDetails":{"ErrorCode":"Throttled","ErrorMessage":"wait"},"timestamp":42}"#
        );
    }

    #[test]
    fn a_cbor_reply_decodes_to_the_same_document() {
        let body = reply_body("pump-1", &ReportOutcome::Accepted(9), 42);
        let bytes = encode(&body, ReportFormat::Cbor).unwrap();
        let decoded: serde_json::Value = ciborium::from_reader(&bytes[..]).unwrap();
        assert_eq!(decoded, body);
    }
}
