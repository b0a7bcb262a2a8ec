//! AWS IoT lifecycle events, published by the external broker or a bridge, as cloud events.
//!
//! AWS IoT Core publishes a JSON document on `$aws/events/presence/connected/{clientId}` and
//! `$aws/events/presence/disconnected/{clientId}` when a client connects or disconnects
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>). Vigil reads
//! the `clientId` and `eventType` fields of such documents, takes the client id as the thing
//! name, as its embedded broker does, and counts a connection attempt or a disconnect. The
//! event's own `timestamp` is not used: events are stamped on receipt, like the embedded
//! broker's.

use serde::Deserialize;
use vigil_core::ingest::CloudEventKind;

/// Topic filters of the lifecycle events Vigil reads.
pub const FILTERS: [&str; 2] = [
    "$aws/events/presence/connected/+",
    "$aws/events/presence/disconnected/+",
];

/// Prefix of the lifecycle event topics.
const PRESENCE: &str = "$aws/events/presence/";

/// The fields Vigil reads from a lifecycle event; AWS sends more.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleEvent {
    client_id: String,
    event_type: String,
}

/// A lifecycle event read as a cloud event.
#[derive(Debug, PartialEq, Eq)]
pub struct Presence {
    /// The thing, named by the event's client id.
    pub thing: String,
    /// A connection attempt or a disconnect.
    pub kind: CloudEventKind,
}

/// Returns whether `topic` is a lifecycle event topic that Vigil reads.
pub fn is_presence_topic(topic: &str) -> bool {
    event_type_of(topic).is_some()
}

/// Reads a lifecycle event published on `topic`. The error explains why the message is not one:
/// malformed JSON, an event type that does not match the topic, or a client id that differs
/// from the topic's or is not a valid thing name.
pub fn read(topic: &str, payload: &[u8]) -> Result<Presence, String> {
    let (event_type, topic_client_id) =
        event_type_of(topic).ok_or_else(|| format!("`{topic}` is not a lifecycle topic"))?;
    let event: LifecycleEvent = serde_json::from_slice(payload)
        .map_err(|error| format!("invalid lifecycle event: {error}"))?;
    if event.event_type != event_type {
        return Err(format!(
            "eventType `{}` does not match the topic `{topic}`",
            event.event_type
        ));
    }
    if event.client_id != topic_client_id {
        return Err(format!(
            "clientId `{}` does not match the topic `{topic}`",
            event.client_id
        ));
    }
    let errors = vigil_core::validate::validate_thing_name(&event.client_id, "clientId");
    if !errors.is_empty() {
        return Err(format!(
            "clientId `{}` is not a valid thing name",
            event.client_id
        ));
    }
    let kind = match event_type {
        "connected" => CloudEventKind::ConnectionAttempt,
        _ => CloudEventKind::Disconnect,
    };
    Ok(Presence {
        thing: event.client_id,
        kind,
    })
}

/// Splits `$aws/events/presence/{connected|disconnected}/{clientId}`.
fn event_type_of(topic: &str) -> Option<(&'static str, &str)> {
    let rest = topic.strip_prefix(PRESENCE)?;
    let (event_type, client_id) = rest.split_once('/')?;
    let event_type = match event_type {
        "connected" => "connected",
        "disconnected" => "disconnected",
        _ => return None,
    };
    (!client_id.is_empty() && !client_id.contains('/')).then_some((event_type, client_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTED: &str = r#"{"clientId":"pump-1","timestamp":1573002230757,
        "eventType":"connected","sessionIdentifier":"a4666d2a7d844ae4ac5d7b38c9cb7967",
        "principalIdentifier":"12345678901234567890123456789012","ipAddress":"192.0.2.0",
        "versionNumber":0}"#;

    const DISCONNECTED: &str = r#"{"clientId":"pump-1","timestamp":1573002340451,
        "eventType":"disconnected","sessionIdentifier":"a4666d2a7d844ae4ac5d7b38c9cb7967",
        "principalIdentifier":"12345678901234567890123456789012",
        "clientInitiatedDisconnect":true,"disconnectReason":"CLIENT_INITIATED_DISCONNECT",
        "versionNumber":0}"#;

    #[test]
    fn aws_connect_and_disconnect_events_are_read() {
        let connected = read(
            "$aws/events/presence/connected/pump-1",
            CONNECTED.as_bytes(),
        );
        assert_eq!(
            connected,
            Ok(Presence {
                thing: "pump-1".into(),
                kind: CloudEventKind::ConnectionAttempt,
            })
        );
        let disconnected = read(
            "$aws/events/presence/disconnected/pump-1",
            DISCONNECTED.as_bytes(),
        );
        assert_eq!(
            disconnected,
            Ok(Presence {
                thing: "pump-1".into(),
                kind: CloudEventKind::Disconnect,
            })
        );
    }

    #[test]
    fn mismatched_or_malformed_events_are_rejected() {
        let cases = [
            (
                "$aws/events/presence/disconnected/pump-1",
                CONNECTED,
                "eventType `connected` does not match",
            ),
            (
                "$aws/events/presence/connected/pump-2",
                CONNECTED,
                "clientId `pump-1` does not match",
            ),
            (
                "$aws/events/presence/connected/pump-1",
                r#"{"clientId":"pump-1"}"#,
                "invalid lifecycle event: missing field `eventType`",
            ),
            (
                "$aws/events/presence/connected/pump-1",
                "not json",
                "invalid lifecycle event",
            ),
        ];
        for (topic, payload, expected) in cases {
            let error = read(topic, payload.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{topic} {payload}: {error}");
        }
    }

    #[test]
    fn only_connect_and_disconnect_topics_are_presence_topics() {
        assert!(is_presence_topic("$aws/events/presence/connected/pump-1"));
        assert!(is_presence_topic(
            "$aws/events/presence/disconnected/pump-1"
        ));
        assert!(!is_presence_topic(
            "$aws/events/subscriptions/subscribed/pump-1"
        ));
        assert!(!is_presence_topic("$aws/events/presence/connected/"));
        assert!(!is_presence_topic("$aws/events/presence/connected/a/b"));
    }
}
