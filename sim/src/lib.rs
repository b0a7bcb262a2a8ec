//! A deterministic simulated fleet: device classes with daily rhythms and noise, and the attacks
//! the demos inject. It only computes what one thing does in one five-minute period; the
//! `vigil demo` host and the browser demo turn that into broker events or datapoints.
//!
//! The crate has no dependencies and does no I/O, so it builds for every target the core does.

/// A small, fast, seedable random number generator (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Creates a generator seeded with `seed`.
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

    /// Returns a Poisson-distributed count with mean `lambda`, by a normal approximation above 30.
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
    /// Busy traffic and large messages.
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

    /// Returns the name used in thing names.
    pub fn name(self) -> &'static str {
        match self {
            DeviceClass::SmartLight => "smart-light",
            DeviceClass::Thermostat => "thermostat",
            DeviceClass::Camera => "camera",
            DeviceClass::DoorLock => "door-lock",
        }
    }

    /// Returns the mean number of messages sent per five-minute period at `hour` (UTC).
    pub fn message_rate(self, hour: f64) -> f64 {
        let bump = |center: f64, width: f64| (-((hour - center) / width).powi(2)).exp();
        match self {
            DeviceClass::SmartLight => 2.0 + 30.0 * bump(20.0, 2.5),
            DeviceClass::Thermostat => 12.0 + 4.0 * bump(13.0, 4.0),
            DeviceClass::Camera => 20.0 + 25.0 * bump(15.0, 5.0),
            DeviceClass::DoorLock => 1.0 + 10.0 * bump(7.5, 1.0) + 12.0 * bump(18.5, 1.5),
        }
    }

    /// Returns the typical message size in bytes.
    pub fn message_bytes(self) -> f64 {
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
    /// 25 times the usual number of messages.
    MessageFlood,
    /// Dozens of failed authorizations per period.
    CredentialStuffing,
    /// Dozens of connects and disconnects per period.
    ReconnectStorm,
    /// Usual message counts, but messages 12 times larger.
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

    /// Returns a name for people, such as `message flood`.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::MessageFlood => "message flood",
            AttackKind::CredentialStuffing => "credential stuffing",
            AttackKind::ReconnectStorm => "reconnect storm",
            AttackKind::DataExfiltration => "data exfiltration",
        }
    }

    /// Returns the identifier used in URLs and option values, such as `message-flood`.
    pub fn slug(self) -> &'static str {
        match self {
            AttackKind::MessageFlood => "message-flood",
            AttackKind::CredentialStuffing => "credential-stuffing",
            AttackKind::ReconnectStorm => "reconnect-storm",
            AttackKind::DataExfiltration => "data-exfiltration",
        }
    }

    /// Parses a [`slug`](Self::slug).
    pub fn parse(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.slug() == slug)
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

/// Activity of one thing in one five-minute period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodActivity {
    /// Messages sent, at least 1 because every thing keeps a heartbeat.
    pub messages_sent: u64,
    /// Size of the largest message sent, in bytes.
    pub largest_message_bytes: u64,
    /// Messages delivered to the thing, at least 1.
    pub messages_received: u64,
    /// Denied requests.
    pub authorization_failures: u64,
    /// Connection attempts, each followed by a disconnect.
    pub reconnects: u64,
}

/// Draws what a thing of `class` does in a period starting at `hour` (UTC, fractional), with its
/// own `rate_scale` and an optional running attack.
pub fn period_activity(
    class: DeviceClass,
    rate_scale: f64,
    hour: f64,
    attack: Option<AttackKind>,
    rng: &mut Rng,
) -> PeriodActivity {
    let mut rate = class.message_rate(hour) * rate_scale;
    let mut size = class.message_bytes() * (1.0 + 0.08 * rng.normal()).max(0.5);
    let mut authorization_failures = rng.poisson(0.01);
    let mut reconnects = rng.poisson(0.004);
    match attack {
        Some(AttackKind::MessageFlood) => rate *= 25.0,
        Some(AttackKind::CredentialStuffing) => authorization_failures += 40 + rng.poisson(20.0),
        Some(AttackKind::ReconnectStorm) => reconnects += 25 + rng.poisson(10.0),
        Some(AttackKind::DataExfiltration) => size *= 12.0,
        None => {}
    }
    PeriodActivity {
        messages_sent: rng.poisson(rate).max(1),
        largest_message_bytes: size.round() as u64,
        messages_received: rng.poisson(rate * 0.3).max(1),
        authorization_failures,
        reconnects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn same_seed_gives_same_activity() {
        let draw = || period_activity(DeviceClass::Camera, 1.0, 15.0, None, &mut Rng::new(9));
        assert_eq!(draw(), draw());
    }

    #[test]
    fn attacks_change_their_metric() {
        let normal = period_activity(DeviceClass::Thermostat, 1.0, 12.0, None, &mut Rng::new(3));
        let attacked = |kind| {
            period_activity(
                DeviceClass::Thermostat,
                1.0,
                12.0,
                Some(kind),
                &mut Rng::new(3),
            )
        };
        let flood = attacked(AttackKind::MessageFlood);
        assert!(flood.messages_sent > 10 * normal.messages_sent);
        assert!(attacked(AttackKind::CredentialStuffing).authorization_failures >= 40);
        assert!(attacked(AttackKind::ReconnectStorm).reconnects >= 25);
        let exfiltration = attacked(AttackKind::DataExfiltration);
        assert!(exfiltration.largest_message_bytes > 10 * normal.largest_message_bytes);
    }

    #[test]
    fn slugs_parse_back() {
        for kind in AttackKind::ALL {
            assert_eq!(AttackKind::parse(kind.slug()), Some(kind));
        }
        assert_eq!(AttackKind::parse("flood"), None);
    }
}
