//! Connected clients, their subscriptions and message delivery.
//!
//! Clients subscribe only inside their own thing's topics (see [`super::topics`]), so the
//! recipient of a message is found from its topic alone: the thing that owns it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use vigil_core::ingest::CloudEventKind;

use super::codec::{CloseReason, Outgoing};
use super::events::CloudEventLog;
use super::topics;

/// Messages a connection's task queues before new ones are dropped.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Work for a connection's task.
#[derive(Debug)]
pub enum Outbound {
    /// Send this packet.
    Packet(Outgoing),
    /// Deliver a message to the client with this QoS; the task assigns the packet id.
    Deliver {
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Bytes,
        /// QoS 0 or 1.
        qos: u8,
    },
    /// Close the connection, telling an MQTT 5 client why.
    Close(CloseReason),
}

/// A connection's queue.
pub type Outbox = mpsc::Sender<Outbound>;

struct Client {
    serial: u64,
    outbox: Outbox,
    subscriptions: Vec<(String, u8)>,
}

/// The connected clients by thing name.
pub struct Router {
    clients: Mutex<HashMap<String, Client>>,
    next_serial: std::sync::atomic::AtomicU64,
    events: Arc<CloudEventLog>,
}

impl Router {
    /// An empty router that records deliveries in `events`.
    pub fn new(events: Arc<CloudEventLog>) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            next_serial: std::sync::atomic::AtomicU64::new(1),
            events,
        }
    }

    /// The log of broker events.
    pub fn events(&self) -> &CloudEventLog {
        &self.events
    }

    /// Registers the connection of `thing` and returns its serial. A connection already
    /// registered for the thing gets a close request, because the newer one takes the client
    /// id over.
    pub fn register(&self, thing: &str, outbox: Outbox) -> u64 {
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = Client {
            serial,
            outbox,
            subscriptions: Vec::new(),
        };
        let previous = self.lock().insert(thing.to_owned(), client);
        if let Some(previous) = previous {
            let _ = previous
                .outbox
                .try_send(Outbound::Close(CloseReason::SessionTakenOver));
        }
        serial
    }

    /// Removes the connection `serial` of `thing`, unless a newer one took its place.
    pub fn unregister(&self, thing: &str, serial: u64) {
        let mut clients = self.lock();
        if clients
            .get(thing)
            .is_some_and(|client| client.serial == serial)
        {
            clients.remove(thing);
        }
    }

    /// Adds or replaces a subscription of connection `serial`.
    pub fn subscribe(&self, thing: &str, serial: u64, filter: &str, qos: u8) {
        self.with_client(thing, serial, |client| {
            client
                .subscriptions
                .retain(|(existing, _)| existing != filter);
            client.subscriptions.push((filter.to_owned(), qos));
        });
    }

    /// Removes a subscription of connection `serial`.
    pub fn unsubscribe(&self, thing: &str, serial: u64, filter: &str) {
        self.with_client(thing, serial, |client| {
            client
                .subscriptions
                .retain(|(existing, _)| existing != filter);
        });
    }

    /// Delivers a message to the thing that owns `topic`, if it subscribed to it; returns
    /// whether it was queued.
    pub fn publish(&self, topic: &str, payload: Bytes, qos: u8) -> bool {
        let Some(owner) = topics::owner(topic) else {
            return false;
        };
        let clients = self.lock();
        let Some(client) = clients.get(owner) else {
            return false;
        };
        let granted = client
            .subscriptions
            .iter()
            .filter(|(filter, _)| topics::matches(topic, filter))
            .map(|(_, granted)| *granted)
            .max();
        let Some(granted) = granted else {
            return false;
        };
        let bytes = payload.len() as u64;
        let queued = client
            .outbox
            .try_send(Outbound::Deliver {
                topic: topic.to_owned(),
                payload,
                qos: qos.min(granted),
            })
            .is_ok();
        drop(clients);
        if queued {
            self.events
                .record(owner, CloudEventKind::MessageReceived, bytes);
        } else {
            tracing::warn!(thing = owner, topic, "dropped a message for a slow client");
        }
        queued
    }

    /// Number of connected clients.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    fn with_client(&self, thing: &str, serial: u64, change: impl FnOnce(&mut Client)) {
        let mut clients = self.lock();
        if let Some(client) = clients.get_mut(thing).filter(|c| c.serial == serial) {
            change(client);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}
