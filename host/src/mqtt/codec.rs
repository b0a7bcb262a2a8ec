//! MQTT 3.1.1 and 5 packets, read and written with `rumqttc`'s packet codec and reduced to the
//! few shapes the broker needs, so the rest of the broker does not depend on the version.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as v4_bytes, QoS, v4};
use rumqttc::v5::mqttbytes::{self as v5_bytes, v5};

/// Largest packet accepted; AWS IoT Core's payload limit is 128 KiB.
pub const MAX_PACKET_BYTES: usize = 128 * 1024 + 1024;

/// The protocol version of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// A message a client asks the broker to publish when it goes away without DISCONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// Topic of the message.
    pub topic: String,
    /// The message.
    pub payload: Bytes,
    /// Requested QoS, 0 to 2.
    pub qos: u8,
}

/// A CONNECT packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Client identifier, the thing name.
    pub client_id: String,
    /// User name, if sent.
    pub username: Option<String>,
    /// Password, if sent.
    pub password: Option<String>,
    /// Keep-alive interval in seconds, 0 for none.
    pub keep_alive: u16,
    /// The will message.
    pub will: Option<Will>,
}

/// A PUBLISH packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishPacket {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS, 0 to 2.
    pub qos: u8,
    /// Packet identifier, 0 for QoS 0.
    pub pkid: u16,
    /// Retain flag.
    pub retain: bool,
}

/// A packet from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// CONNECT.
    Connect(ConnectRequest),
    /// PUBLISH.
    Publish(PublishPacket),
    /// PUBACK for a message the broker delivered.
    PubAck,
    /// SUBSCRIBE with its filters and requested QoS.
    Subscribe(u16, Vec<(String, u8)>),
    /// UNSUBSCRIBE with its filters.
    Unsubscribe(u16, Vec<String>),
    /// PINGREQ.
    PingReq,
    /// DISCONNECT; true when an MQTT 5 client asks for its will to be published.
    Disconnect(bool),
    /// A packet a client may not send, or one for QoS 2, which the broker does not support.
    Unsupported(&'static str),
}

/// Reason a connection was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectRejection {
    /// The client id is empty or not a valid thing name.
    BadClientId,
    /// Wrong or missing user name or password.
    BadCredentials,
    /// The will topic is outside the thing's topics.
    NotAuthorized,
}

/// The result of one filter of a SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Subscribed with this QoS.
    Qos(u8),
    /// The filter is outside the thing's topics.
    NotAuthorized,
    /// The filter is malformed.
    InvalidFilter,
}

/// Reason the broker closes a connection, sent as DISCONNECT to MQTT 5 clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// A newer connection took the client id over.
    SessionTakenOver,
    /// The client published where it may not.
    NotAuthorized,
    /// The client sent a packet for QoS 2.
    QosNotSupported,
    /// The client broke the protocol.
    ProtocolError,
    /// The report could not be stored; the client should retry.
    Unavailable,
}

/// A packet to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// CONNACK: accepted, or rejected.
    ConnAck(Result<(), ConnectRejection>),
    /// PUBLISH of a message to a subscriber.
    Publish(PublishPacket),
    /// PUBACK; false when the publish was refused as not authorized (MQTT 5 only).
    PubAck(u16, bool),
    /// SUBACK.
    SubAck(u16, Vec<Grant>),
    /// UNSUBACK for this many filters.
    UnsubAck(u16, usize),
    /// PINGRESP.
    PingResp,
    /// DISCONNECT from the server (MQTT 5 only).
    Disconnect(CloseReason),
}

/// A packet that could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The first packet is a CONNECT for a protocol version other than 3.1.1 and 5.
    UnsupportedVersion(u8),
    /// The bytes are not an MQTT packet.
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::UnsupportedVersion(level) => {
                write!(f, "unsupported MQTT protocol level {level}")
            }
            ReadError::Malformed(problem) => write!(f, "malformed packet: {problem}"),
        }
    }
}

/// Reads the protocol level of the CONNECT packet at the start of `buffer`; `Ok(None)` when more
/// bytes are needed.
pub fn connect_version(buffer: &[u8]) -> Result<Option<Version>, ReadError> {
    let Some(&first) = buffer.first() else {
        return Ok(None);
    };
    if first != 0x10 {
        return Err(ReadError::Malformed(
            "the first packet is not CONNECT".into(),
        ));
    }
    let mut offset = 1;
    loop {
        let Some(&byte) = buffer.get(offset) else {
            return Ok(None);
        };
        offset += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if offset > 4 {
            return Err(ReadError::Malformed("remaining length too long".into()));
        }
    }
    let (Some(&high), Some(&low)) = (buffer.get(offset), buffer.get(offset + 1)) else {
        return Ok(None);
    };
    let name_len = usize::from(u16::from_be_bytes([high, low]));
    let Some(&level) = buffer.get(offset + 2 + name_len) else {
        return Ok(None);
    };
    match level {
        4 => Ok(Some(Version::V311)),
        5 => Ok(Some(Version::V5)),
        other => Err(ReadError::UnsupportedVersion(other)),
    }
}

/// Takes the next complete packet out of `buffer`; `Ok(None)` when more bytes are needed.
pub fn read(buffer: &mut BytesMut, version: Version) -> Result<Option<Incoming>, ReadError> {
    match version {
        Version::V311 => match v4::Packet::read(buffer, MAX_PACKET_BYTES) {
            Ok(packet) => Ok(Some(from_v4(packet))),
            Err(v4_bytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(error) => Err(ReadError::Malformed(error.to_string())),
        },
        Version::V5 => {
            // A DISCONNECT without reason code is valid MQTT 5, but the codec refuses it.
            if buffer.starts_with(&[0xE0, 0x00]) {
                let _ = buffer.split_to(2);
                return Ok(Some(Incoming::Disconnect(false)));
            }
            match v5::Packet::read(buffer, Some(MAX_PACKET_BYTES as u32)) {
                Ok(packet) => Ok(Some(from_v5(packet))),
                Err(v5_bytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(error) => Err(ReadError::Malformed(error.to_string())),
            }
        }
    }
}

fn from_v4(packet: v4::Packet) -> Incoming {
    match packet {
        v4::Packet::Connect(connect) => Incoming::Connect(ConnectRequest {
            client_id: connect.client_id,
            username: connect.login.as_ref().map(|login| login.username.clone()),
            password: connect.login.map(|login| login.password),
            keep_alive: connect.keep_alive,
            will: connect.last_will.map(|will| Will {
                topic: will.topic,
                payload: will.message,
                qos: will.qos as u8,
            }),
        }),
        v4::Packet::Publish(publish) => Incoming::Publish(PublishPacket {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos as u8,
            pkid: publish.pkid,
            retain: publish.retain,
        }),
        v4::Packet::PubAck(_) => Incoming::PubAck,
        v4::Packet::Subscribe(subscribe) => Incoming::Subscribe(
            subscribe.pkid,
            subscribe
                .filters
                .into_iter()
                .map(|filter| (filter.path, filter.qos as u8))
                .collect(),
        ),
        v4::Packet::Unsubscribe(unsubscribe) => {
            Incoming::Unsubscribe(unsubscribe.pkid, unsubscribe.topics)
        }
        v4::Packet::PingReq => Incoming::PingReq,
        v4::Packet::Disconnect => Incoming::Disconnect(false),
        v4::Packet::PubRec(_) | v4::Packet::PubRel(_) | v4::Packet::PubComp(_) => {
            Incoming::Unsupported("QoS 2")
        }
        _ => Incoming::Unsupported("a server-to-client packet"),
    }
}

fn from_v5(packet: v5::Packet) -> Incoming {
    match packet {
        v5::Packet::Connect(connect, will, login) => Incoming::Connect(ConnectRequest {
            client_id: connect.client_id,
            username: login.as_ref().map(|login| login.username.clone()),
            password: login.map(|login| login.password),
            keep_alive: connect.keep_alive,
            will: will.map(|will| Will {
                topic: String::from_utf8_lossy(&will.topic).into_owned(),
                payload: will.message,
                qos: will.qos as u8,
            }),
        }),
        v5::Packet::Publish(publish) => match String::from_utf8(publish.topic.to_vec()) {
            Ok(topic) => Incoming::Publish(PublishPacket {
                topic,
                payload: publish.payload,
                qos: publish.qos as u8,
                pkid: publish.pkid,
                retain: publish.retain,
            }),
            Err(_) => Incoming::Unsupported("a topic that is not UTF-8"),
        },
        v5::Packet::PubAck(_) => Incoming::PubAck,
        v5::Packet::Subscribe(subscribe) => Incoming::Subscribe(
            subscribe.pkid,
            subscribe
                .filters
                .into_iter()
                .map(|filter| (filter.path, filter.qos as u8))
                .collect(),
        ),
        v5::Packet::Unsubscribe(unsubscribe) => {
            Incoming::Unsubscribe(unsubscribe.pkid, unsubscribe.filters)
        }
        v5::Packet::PingReq(_) => Incoming::PingReq,
        v5::Packet::Disconnect(disconnect) => Incoming::Disconnect(
            disconnect.reason_code == v5::DisconnectReasonCode::DisconnectWithWillMessage,
        ),
        v5::Packet::PubRec(_) | v5::Packet::PubRel(_) | v5::Packet::PubComp(_) => {
            Incoming::Unsupported("QoS 2")
        }
        v5::Packet::Auth(_) => Incoming::Unsupported("AUTH"),
        _ => Incoming::Unsupported("a server-to-client packet"),
    }
}

/// Appends `packet` to `buffer` in the encoding of `version`.
pub fn write(packet: &Outgoing, version: Version, buffer: &mut BytesMut) -> anyhow::Result<()> {
    match version {
        Version::V311 => {
            if let Some(packet) = to_v4(packet) {
                packet.write(buffer, usize::MAX)?;
            }
        }
        // rumqttc's DISCONNECT writer adds a property length its remaining length leaves out.
        Version::V5 => match packet {
            Outgoing::Disconnect(reason) => {
                buffer.extend_from_slice(&[0xE0, 0x01, disconnect_code(*reason) as u8]);
            }
            packet => {
                to_v5(packet).write(buffer, None)?;
            }
        },
    }
    Ok(())
}

fn disconnect_code(reason: CloseReason) -> v5::DisconnectReasonCode {
    match reason {
        CloseReason::SessionTakenOver => v5::DisconnectReasonCode::SessionTakenOver,
        CloseReason::NotAuthorized => v5::DisconnectReasonCode::NotAuthorized,
        CloseReason::QosNotSupported => v5::DisconnectReasonCode::QoSNotSupported,
        CloseReason::ProtocolError => v5::DisconnectReasonCode::ProtocolError,
        CloseReason::Unavailable => v5::DisconnectReasonCode::ServerBusy,
    }
}

/// The CONNACK refusing an unsupported protocol version, in the 3.1.1 encoding every version
/// understands.
pub fn unsupported_version_connack() -> [u8; 4] {
    [0x20, 0x02, 0x00, 0x01]
}

fn v4_qos(qos: u8) -> QoS {
    if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn v5_qos(qos: u8) -> v5_bytes::QoS {
    if qos == 0 {
        v5_bytes::QoS::AtMostOnce
    } else {
        v5_bytes::QoS::AtLeastOnce
    }
}

/// The 3.1.1 form of `packet`; `None` for packets 3.1.1 lacks, such as a server DISCONNECT.
fn to_v4(packet: &Outgoing) -> Option<v4::Packet> {
    Some(match packet {
        Outgoing::ConnAck(outcome) => {
            let code = match outcome {
                Ok(()) => v4::ConnectReturnCode::Success,
                Err(ConnectRejection::BadClientId) => v4::ConnectReturnCode::BadClientId,
                Err(ConnectRejection::BadCredentials) => v4::ConnectReturnCode::BadUserNamePassword,
                Err(ConnectRejection::NotAuthorized) => v4::ConnectReturnCode::NotAuthorized,
            };
            v4::Packet::ConnAck(v4::ConnAck::new(code, false))
        }
        Outgoing::Publish(publish) => {
            let mut packet = v4::Publish::from_bytes(
                &publish.topic,
                v4_qos(publish.qos),
                publish.payload.clone(),
            );
            packet.pkid = publish.pkid;
            v4::Packet::Publish(packet)
        }
        Outgoing::PubAck(pkid, _) => v4::Packet::PubAck(v4::PubAck::new(*pkid)),
        Outgoing::SubAck(pkid, grants) => v4::Packet::SubAck(v4::SubAck::new(
            *pkid,
            grants
                .iter()
                .map(|grant| match grant {
                    Grant::Qos(qos) => v4::SubscribeReasonCode::Success(v4_qos(*qos)),
                    Grant::NotAuthorized | Grant::InvalidFilter => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        Outgoing::UnsubAck(pkid, _) => v4::Packet::UnsubAck(v4::UnsubAck::new(*pkid)),
        Outgoing::PingResp => v4::Packet::PingResp,
        Outgoing::Disconnect(_) => return None,
    })
}

fn to_v5(packet: &Outgoing) -> v5::Packet {
    match packet {
        Outgoing::ConnAck(outcome) => {
            let code = match outcome {
                Ok(()) => v5::ConnectReturnCode::Success,
                Err(ConnectRejection::BadClientId) => {
                    v5::ConnectReturnCode::ClientIdentifierNotValid
                }
                Err(ConnectRejection::BadCredentials) => v5::ConnectReturnCode::BadUserNamePassword,
                Err(ConnectRejection::NotAuthorized) => v5::ConnectReturnCode::NotAuthorized,
            };
            v5::Packet::ConnAck(v5::ConnAck {
                session_present: false,
                code,
                properties: outcome.is_ok().then(connack_properties),
            })
        }
        Outgoing::Publish(publish) => {
            let mut packet = v5::Publish::new(
                publish.topic.as_str(),
                v5_qos(publish.qos),
                publish.payload.clone(),
                None,
            );
            packet.pkid = publish.pkid;
            v5::Packet::Publish(packet)
        }
        Outgoing::PubAck(pkid, authorized) => v5::Packet::PubAck(v5::PubAck {
            pkid: *pkid,
            reason: if *authorized {
                v5::PubAckReason::Success
            } else {
                v5::PubAckReason::NotAuthorized
            },
            properties: None,
        }),
        Outgoing::SubAck(pkid, grants) => v5::Packet::SubAck(v5::SubAck {
            pkid: *pkid,
            return_codes: grants
                .iter()
                .map(|grant| match grant {
                    Grant::Qos(qos) => v5::SubscribeReasonCode::Success(v5_qos(*qos)),
                    Grant::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                    Grant::InvalidFilter => v5::SubscribeReasonCode::TopicFilterInvalid,
                })
                .collect(),
            properties: None,
        }),
        Outgoing::UnsubAck(pkid, count) => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid: *pkid,
            reasons: vec![v5::UnsubAckReason::Success; *count],
            properties: None,
        }),
        Outgoing::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outgoing::Disconnect(reason) => {
            v5::Packet::Disconnect(v5::Disconnect::new(disconnect_code(*reason)))
        }
    }
}

/// Features of the broker, sent to MQTT 5 clients: QoS 0 and 1, no retained messages, no
/// shared subscriptions and no subscription identifiers, like AWS IoT Core.
fn connack_properties() -> v5::ConnAckProperties {
    v5::ConnAckProperties {
        session_expiry_interval: None,
        receive_max: None,
        max_qos: Some(1),
        retain_available: Some(0),
        max_packet_size: Some(MAX_PACKET_BYTES as u32),
        assigned_client_identifier: None,
        topic_alias_max: None,
        reason_string: None,
        user_properties: Vec::new(),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(0),
        server_keep_alive: None,
        response_information: None,
        server_reference: None,
        authentication_method: None,
        authentication_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_level_picks_the_version() {
        let mut buffer = BytesMut::new();
        v4::Packet::Connect(v4::Connect::new("pump-1"))
            .write(&mut buffer, usize::MAX)
            .unwrap();
        assert_eq!(connect_version(&buffer).unwrap(), Some(Version::V311));
        assert_eq!(connect_version(&buffer[..5]).unwrap(), None);
        let mut mqisdp = vec![0x10, 0x10, 0x00, 0x06];
        mqisdp.extend_from_slice(b"MQIsdp\x03");
        assert!(matches!(
            connect_version(&mqisdp),
            Err(ReadError::UnsupportedVersion(3))
        ));
    }

    #[test]
    fn a_connect_is_read_with_its_login() {
        let mut connect = v4::Connect::new("pump-1");
        connect.set_login("pump-1", "s3cret");
        let mut buffer = BytesMut::new();
        v4::Packet::Connect(connect)
            .write(&mut buffer, usize::MAX)
            .unwrap();
        let packet = read(&mut buffer, Version::V311).unwrap().unwrap();
        let Incoming::Connect(request) = packet else {
            panic!("{packet:?}")
        };
        assert_eq!(request.client_id, "pump-1");
        assert_eq!(request.password.as_deref(), Some("s3cret"));
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_bare_mqtt5_disconnect_is_read() {
        let mut buffer = BytesMut::from(&[0xE0, 0x00][..]);
        assert_eq!(
            read(&mut buffer, Version::V5).unwrap(),
            Some(Incoming::Disconnect(false))
        );
    }

    #[test]
    fn a_partial_packet_waits_for_more_bytes() {
        let mut buffer = BytesMut::from(&[0x30, 0x0A, 0x00][..]);
        assert_eq!(read(&mut buffer, Version::V311).unwrap(), None);
        assert_eq!(buffer.len(), 3);
    }

    #[test]
    fn mqtt311_has_no_server_disconnect() {
        let mut buffer = BytesMut::new();
        write(
            &Outgoing::Disconnect(CloseReason::NotAuthorized),
            Version::V311,
            &mut buffer,
        )
        .unwrap();
        assert!(buffer.is_empty());
        write(
            &Outgoing::Disconnect(CloseReason::NotAuthorized),
            Version::V5,
            &mut buffer,
        )
        .unwrap();
        assert_eq!(&buffer[..], &[0xE0, 0x01, 0x87]);
    }
}
