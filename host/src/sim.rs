//! A deterministic simulated fleet: device classes with daily patterns and noise, producing the
//! broker events behind the cloud-side metrics, plus injectable attacks.

use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::{CloudEvent, CloudEventKind};
use vigil_core::model::Timestamp;

/// A small, fast, seedable random number generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Returns a standard normal number (Box-Muller transform).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Returns a Poisson-distributed count with mean `lambda`.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            let sample = lambda + lambda.sqrt() * self.normal();
            return sample.round().max(0.0) as u64;
        }
        // Knuth's method: multiply uniforms until the product drops below e^-lambda.
        let limit = (-lambda).exp();
        let mut product = self.unit();
        let mut count = 0;
        while product > limit {
            product *= self.unit();
            count += 1;
        }
        count
    }
}

/// A kind of device with its own daily rhythm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceClass {
    /// Busy in the evening, nearly idle at night.
    SmartLight,
    /// Steady around the clock, a little busier by day.
    Thermostat,
    /// Bursty traffic and large messages.
    Camera,
    /// Peaks in the morning and the evening.
    DoorLock,
}

impl DeviceClass {
    /// All classes, in the order things are assigned to them.
    pub const ALL: [DeviceClass; 4] = [
        DeviceClass::SmartLight,
        DeviceClass::Thermostat,
        DeviceClass::Camera,
        DeviceClass::DoorLock,
    ];

    /// Name used in thing names.
    pub fn name(self) -> &'static str {
        match self {
            DeviceClass::SmartLight => "smart-light",
            DeviceClass::Thermostat => "thermostat",
            DeviceClass::Camera => "camera",
            DeviceClass::DoorLock => "door-lock",
        }
    }

    /// Mean messages sent per 5-minute period at `hour` (UTC).
    fn message_rate(self, hour: f64) -> f64 {
        let bump = |center: f64, width: f64| (-((hour - center) / width).powi(2)).exp();
        match self {
            DeviceClass::SmartLight => 2.0 + 30.0 * bump(20.0, 2.5),
            DeviceClass::Thermostat => 12.0 + 4.0 * bump(13.0, 4.0),
            DeviceClass::Camera => 20.0 + 25.0 * bump(15.0, 5.0),
            DeviceClass::DoorLock => 1.0 + 10.0 * bump(7.5, 1.0) + 12.0 * bump(18.5, 1.5),
        }
    }

    /// Typical message size in bytes.
    fn message_bytes(self) -> f64 {
        match self {
            DeviceClass::SmartLight => 180.0,
            DeviceClass::Thermostat => 320.0,
            DeviceClass::Camera => 4_000.0,
            DeviceClass::DoorLock => 240.0,
        }
    }
}

/// An attack that changes what a thing sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackKind {
    /// Many times the usual number of messages.
    MessageFlood,
    /// Repeated failed authorizations.
    CredentialStuffing,
    /// Connect, drop, reconnect, again and again.
    ReconnectStorm,
    /// Normal message counts, but much larger messages.
    DataExfiltration,
}

impl AttackKind {
    /// All kinds.
    pub const ALL: [AttackKind; 4] = [
        AttackKind::MessageFlood,
        AttackKind::CredentialStuffing,
        AttackKind::ReconnectStorm,
        AttackKind::DataExfiltration,
    ];

    /// Returns a short name for output.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::MessageFlood => "message flood",
            AttackKind::CredentialStuffing => "credential stuffing",
            AttackKind::ReconnectStorm => "reconnect storm",
            AttackKind::DataExfiltration => "data exfiltration",
        }
    }

    /// Returns the metric the attack shows up in first.
    pub fn metric(self) -> &'static str {
        match self {
            AttackKind::MessageFlood => "aws:num-messages-sent",
            AttackKind::CredentialStuffing => "aws:num-authorization-failures",
            AttackKind::ReconnectStorm => "aws:num-connection-attempts",
            AttackKind::DataExfiltration => "aws:message-byte-size",
        }
    }
}

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
        let rng = &mut self.rng;
        let hour = (period_start.rem_euclid(DAY_MS)) as f64 / 3_600_000.0;
        let attack = thing
            .attack
            .filter(|(_, start)| period_start >= *start)
            .map(|(kind, _)| kind);
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

        let mut rate = thing.class.message_rate(hour) * thing.rate_scale;
        let mut size = thing.class.message_bytes() * (1.0 + 0.08 * rng.normal()).max(0.5);
        let mut auth_failures = rng.poisson(0.01);
        let mut reconnects = rng.poisson(0.004);
        match attack {
            Some(AttackKind::MessageFlood) => rate *= 25.0,
            Some(AttackKind::CredentialStuffing) => auth_failures += 40 + rng.poisson(20.0),
            Some(AttackKind::ReconnectStorm) => reconnects += 25 + rng.poisson(10.0),
            Some(AttackKind::DataExfiltration) => size *= 12.0,
            None => {}
        }

        // Every thing keeps at least a heartbeat, so each period has a datapoint.
        let sent = rng.poisson(rate).max(1);
        push(CloudEventKind::MessageSent, sent, size.round() as u64);
        push(
            CloudEventKind::MessageReceived,
            rng.poisson(rate * 0.3).max(1),
            0,
        );
        push(CloudEventKind::AuthorizationFailure, auth_failures, 0);
        push(CloudEventKind::ConnectionAttempt, reconnects, 0);
        push(CloudEventKind::Disconnect, reconnects, 0);
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
    fn poisson_mean_is_close_to_lambda() {
        let mut rng = Rng::new(1);
        for lambda in [0.5, 5.0, 80.0] {
            let mean = (0..20_000).map(|_| rng.poisson(lambda) as f64).sum::<f64>() / 20_000.0;
            assert!(
                (mean - lambda).abs() < lambda * 0.05 + 0.02,
                "lambda {lambda} gave {mean}"
            );
        }
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
