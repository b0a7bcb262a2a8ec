//! An MQTT test client whose `rumqttc` event loop runs in a task and forwards what it receives.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Time a test waits for the next event before it fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client saw.
#[derive(Debug)]
pub enum Seen {
    Connected,
    Subscribed(Vec<String>),
    PublishAcknowledged,
    Message(String, Vec<u8>),
    Ended(String),
}

/// A connected or connecting client.
pub struct Device {
    pub client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Device {
    /// Starts a client with `options` and the user name `user` with the password `password`,
    /// without waiting for CONNACK.
    pub fn start(mut options: MqttOptions, user: &str, password: &str) -> Device {
        options.set_credentials(user, password);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 16);
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let seen = match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::Subscribed(
                        ack.return_codes.iter().map(|c| format!("{c:?}")).collect(),
                    ),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PublishAcknowledged,
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        Seen::Message(publish.topic, publish.payload.to_vec())
                    }
                    Ok(_) => continue,
                    Err(error) => {
                        let _ = tx.send(Seen::Ended(error.to_string()));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Device { client, seen }
    }

    /// Returns the next event.
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(EVENT_TIMEOUT, self.seen.recv())
            .await
            .expect("an event within 10 s")
            .expect("the event loop is running")
    }

    /// Waits for CONNACK; fails the test when the connection ends first.
    pub async fn connected(mut self) -> Device {
        match self.next().await {
            Seen::Connected => self,
            other => panic!("the client did not connect: {other:?}"),
        }
    }

    /// Subscribes at QoS 1 and returns the SUBACK's return codes.
    pub async fn subscribe(&mut self, filter: &str) -> Vec<String> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        self.wait_for(|seen| match seen {
            Seen::Subscribed(codes) => Some(codes),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
        self.wait_for(|seen| matches!(seen, Seen::PublishAcknowledged).then_some(()))
            .await;
    }

    /// Returns the next message's topic and payload.
    pub async fn message(&mut self) -> (String, Vec<u8>) {
        self.wait_for(|seen| match seen {
            Seen::Message(topic, payload) => Some((topic, payload)),
            _ => None,
        })
        .await
    }

    /// Waits until the connection ends and returns the error.
    pub async fn ended(&mut self) -> String {
        loop {
            if let Seen::Ended(error) = self.next().await {
                return error;
            }
        }
    }

    /// Skips events until `pick` takes one; fails the test when the connection ends first.
    async fn wait_for<T>(&mut self, mut pick: impl FnMut(Seen) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Seen::Ended(error) => panic!("connection ended: {error}"),
                seen => {
                    if let Some(value) = pick(seen) {
                        return value;
                    }
                }
            }
        }
    }
}
