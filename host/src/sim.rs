//! A deterministic simulated fleet for `vigil demo`: the things, their device classes and the
//! attacks scheduled on them, turned into the broker events behind the cloud-side metrics. What
//! each thing does in a period comes from the `vigil-sim` crate, which the browser demo shares.

use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::{CloudEvent, CloudEventKind};
use vigil_core::model::Timestamp;
pub use vigil_sim::{AttackKind, DeviceClass, Rng};

/// One simulated thing.
#[derive(Clone, Debug)]
pub struct SimThing {
    /// Thing name.
    pub name: String,
    /// Device class.
    pub class: DeviceClass,
    /// Per-thing scale of the message rate, so things of one class differ.
    pub rate_scale: f64,
    /// Attack on this thing and when it starts, if any.
    pub attack: Option<(AttackKind, Timestamp)>,
}

/// A fleet of simulated things.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// The things, in name order within each class.
    pub things: Vec<SimThing>,
    rng: Rng,
}

impl Fleet {
    /// `size` things spread over the device classes, seeded with `seed`.
    pub fn new(size: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let things = (0..size)
            .map(|i| {
                let class = DeviceClass::ALL[i % DeviceClass::ALL.len()];
                let rate_scale = (0.3 * rng.normal()).exp();
                SimThing {
                    name: format!("{}-{:04}", class.name(), i / DeviceClass::ALL.len() + 1),
                    class,
                    rate_scale,
                    attack: None,
                }
            })
            .collect();
        Self { things, rng }
    }

    /// Schedules `kind` on the thing at `index` from `start`.
    pub fn inject(&mut self, index: usize, kind: AttackKind, start: Timestamp) {
        self.things[index].attack = Some((kind, start));
    }

    /// Generates the broker events of every thing during the period starting at `period_start`.
    pub fn period_events(&mut self, period_start: Timestamp) -> Vec<CloudEvent> {
        let mut events = Vec::with_capacity(self.things.len() * 4);
        for index in 0..self.things.len() {
            let thing = self.things[index].clone();
            self.thing_events(&thing, period_start, &mut events);
        }
        events
    }

    fn thing_events(
        &mut self,
        thing: &SimThing,
        period_start: Timestamp,
        events: &mut Vec<CloudEvent>,
    ) {
        let hour = (period_start.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
        let attack = thing
            .attack
            .filter(|(_, start)| period_start >= *start)
            .map(|(kind, _)| kind);
        let activity =
            vigil_sim::period_activity(thing.class, thing.rate_scale, hour, attack, &mut self.rng);

        // Events happen at the middle of the period.
        let at = period_start + PERIOD_MS / 2;
        let mut push = |kind, count: u64, message_bytes: u64| {
            if count > 0 {
                events.push(CloudEvent {
                    thing_name: thing.name.clone(),
                    timestamp: at,
                    kind,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    message_bytes,
                });
            }
        };
        push(
            CloudEventKind::MessageSent,
            activity.messages_sent,
            activity.largest_message_bytes,
        );
        push(
            CloudEventKind::MessageReceived,
            activity.messages_received,
            0,
        );
        push(
            CloudEventKind::AuthorizationFailure,
            activity.authorization_failures,
            0,
        );
        push(CloudEventKind::ConnectionAttempt, activity.reconnects, 0);
        push(CloudEventKind::Disconnect, activity.reconnects, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_events() {
        let mut a = Fleet::new(8, 7);
        let mut b = Fleet::new(8, 7);
        assert_eq!(a.period_events(0), b.period_events(0));
        assert_eq!(a.period_events(PERIOD_MS), b.period_events(PERIOD_MS));
    }

    #[test]
    fn flood_multiplies_messages() {
        let mut fleet = Fleet::new(4, 3);
        fleet.inject(1, AttackKind::MessageFlood, 0);
        let events = fleet.period_events(20 * 3_600_000);
        let sent = |name: &str| {
            events
                .iter()
                .find(|e| e.thing_name == name && e.kind == CloudEventKind::MessageSent)
                .map(|e| e.count)
                .unwrap()
        };
        assert!(sent(&fleet.things[1].name) > 5 * sent(&fleet.things[0].name).max(10));
    }
}
