//! A simulated fleet for the browser demo: four device classes with daily rhythms and noise,
//! attacks injected on demand, and the recent history of every thing's metrics for charts.
//!
//! The fleet produces one datapoint per thing, metric and five-minute period, and feeds them to a
//! [`WebEngine`] inside WebAssembly, so a simulated period costs no conversion to JavaScript.
//! What each thing does in a period comes from the `vigil-sim` crate, which `vigil demo` shares.

use serde::Serialize;
use vigil_core::Engine;
use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::ingest::Datapoint;
use vigil_core::model::{MetricValue, Timestamp, ViolationEvent};
use wasm_bindgen::prelude::*;

use crate::{WebEngine, to_js};
pub(crate) use vigil_sim::Rng;
use vigil_sim::{AttackKind, DeviceClass};

/// The metrics each thing reports, in the order of [`PeriodValues::as_array`].
pub const METRICS: [&str; 5] = [
    "aws:num-messages-sent",
    "aws:message-byte-size",
    "aws:num-authorization-failures",
    "aws:num-connection-attempts",
    "aws:num-disconnects",
];

/// Periods of history kept per thing and metric: three days of five-minute periods.
pub const HISTORY_PERIODS: usize = 3 * 288;

/// Largest fleet the simulator accepts; the history alone takes about 17 MB at this size.
pub const MAX_THINGS: u32 = 1_000;

/// A fleet of simulated things feeding a [`WebEngine`].
#[wasm_bindgen]
pub struct SimulatedFleet {
    things: Vec<SimThing>,
    rng: Rng,
    start: Timestamp,
    /// Periods simulated so far.
    periods: i64,
    /// Ring buffers of `HISTORY_PERIODS` values per (thing, metric); NaN where nothing was sent.
    history: Vec<f32>,
}

#[derive(Clone, Debug)]
struct SimThing {
    name: String,
    class: DeviceClass,
    /// Per-thing scale of the message rate, so things of one class differ.
    rate_scale: f64,
    attack: Option<AttackKind>,
    /// Whether the thing was cut off (quarantined) and sends nothing more.
    disconnected: bool,
}

/// One thing's values for one period.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PeriodValues {
    messages_sent: u64,
    largest_message_bytes: u64,
    authorization_failures: u64,
    connection_attempts: u64,
    disconnects: u64,
}

impl PeriodValues {
    fn as_array(self) -> [u64; 5] {
        [
            self.messages_sent,
            self.largest_message_bytes,
            self.authorization_failures,
            self.connection_attempts,
            self.disconnects,
        ]
    }
}

/// A thing as the page lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThingInfo<'a> {
    thing_name: &'a str,
    device_class: &'static str,
    attack: Option<&'static str>,
    disconnected: bool,
}

/// One metric of one thing over the history window, for a uPlot chart.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartData {
    /// Period ends in epoch seconds, as uPlot expects.
    times: Vec<f64>,
    observed: Vec<Option<f64>>,
    expected_low: Vec<Option<f64>>,
    expected_high: Vec<Option<f64>>,
    /// Whether each band value came from the scoring model rather than the one training.
    scoring: Vec<bool>,
}

#[wasm_bindgen]
impl SimulatedFleet {
    /// Creates `size` things (1 to 1000) spread over the device classes, starting at `startMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(size: u32, seed: u32, start_ms: f64) -> Result<SimulatedFleet, JsError> {
        if !(1..=MAX_THINGS).contains(&size) {
            return Err(JsError::new(&format!(
                "invalid fleet size {size}: choose 1 to {MAX_THINGS} things"
            )));
        }
        let mut rng = Rng::new(u64::from(seed));
        let things: Vec<SimThing> = (0..size as usize)
            .map(|i| {
                let class = DeviceClass::ALL[i % DeviceClass::ALL.len()];
                SimThing {
                    name: format!("{}-{:04}", class.name(), i / DeviceClass::ALL.len() + 1),
                    class,
                    rate_scale: (0.3 * rng.normal()).exp(),
                    attack: None,
                    disconnected: false,
                }
            })
            .collect();
        let history = vec![f32::NAN; things.len() * METRICS.len() * HISTORY_PERIODS];
        Ok(SimulatedFleet {
            things,
            rng,
            start: start_ms as Timestamp,
            periods: 0,
            history,
        })
    }

    /// The metrics every thing reports.
    pub fn metrics() -> Vec<String> {
        METRICS.iter().map(|m| m.to_string()).collect()
    }

    /// Returns `[{thingName, deviceClass, attack, disconnected}]` in fleet order.
    pub fn things(&self) -> Result<JsValue, JsError> {
        let things: Vec<ThingInfo> = self
            .things
            .iter()
            .map(|t| ThingInfo {
                thing_name: &t.name,
                device_class: t.class.name(),
                attack: t.attack.map(AttackKind::slug),
                disconnected: t.disconnected,
            })
            .collect();
        to_js(&things)
    }

    /// Start of the next period to simulate, in milliseconds.
    pub fn now(&self) -> f64 {
        (self.start + self.periods * PERIOD_MS) as f64
    }

    /// Starts an attack on `thing` from the next period: `message-flood`, `credential-stuffing`,
    /// `reconnect-storm` or `data-exfiltration`.
    pub fn inject(&mut self, thing: &str, kind: &str) -> Result<(), JsError> {
        let kind = AttackKind::parse(kind).ok_or_else(|| {
            JsError::new(&format!(
                "unknown attack `{kind}`: use message-flood, credential-stuffing, \
                 reconnect-storm or data-exfiltration"
            ))
        })?;
        self.thing_mut(thing)?.attack = Some(kind);
        Ok(())
    }

    /// Cuts `thing` off, as a quarantine policy would: from the next period it sends nothing.
    pub fn disconnect(&mut self, thing: &str) -> Result<(), JsError> {
        self.thing_mut(thing)?.disconnected = true;
        Ok(())
    }

    /// Simulates `periods` five-minute periods, feeding every datapoint to `engine`, and returns
    /// the violation events they caused.
    pub fn run(&mut self, engine: &mut WebEngine, periods: u32) -> Result<JsValue, JsError> {
        let mut events = Vec::new();
        for _ in 0..periods {
            events.extend(self.run_period(engine.engine_mut()));
        }
        to_js(&events)
    }

    /// Returns `{times, observed, expectedLow, expectedHigh, scoring}` for one metric of one
    /// thing over the history window. The band is what `behavior` of `profile` expects now at
    /// each time of day; it is missing where its model has no data.
    pub fn chart(
        &self,
        engine: &WebEngine,
        thing: &str,
        metric: &str,
        profile: &str,
        behavior: &str,
    ) -> Result<JsValue, JsError> {
        let index = self.thing_index(thing)?;
        let metric_index = METRICS.iter().position(|m| *m == metric).ok_or_else(|| {
            JsError::new(&format!(
                "unknown metric `{metric}`: use one of {METRICS:?}"
            ))
        })?;
        let first = (self.periods - HISTORY_PERIODS as i64).max(0);
        let mut chart = ChartData {
            times: Vec::new(),
            observed: Vec::new(),
            expected_low: Vec::new(),
            expected_high: Vec::new(),
            scoring: Vec::new(),
        };
        for period in first..self.periods {
            let end = self.start + (period + 1) * PERIOD_MS;
            let value = self.history[self.history_slot(index, metric_index, period)];
            let range = engine
                .engine()
                .ml_expected_range(profile, behavior, thing, end);
            chart.times.push(end as f64 / 1000.0);
            chart
                .observed
                .push((!value.is_nan()).then_some(f64::from(value)));
            chart.expected_low.push(range.map(|r| r.low));
            chart.expected_high.push(range.map(|r| r.high));
            chart.scoring.push(range.is_some_and(|r| r.scoring));
        }
        to_js(&chart)
    }
}

impl SimulatedFleet {
    fn thing_index(&self, thing: &str) -> Result<usize, JsError> {
        self.things
            .iter()
            .position(|t| t.name == thing)
            .ok_or_else(|| JsError::new(&format!("thing `{thing}` is not in the fleet")))
    }

    fn thing_mut(&mut self, thing: &str) -> Result<&mut SimThing, JsError> {
        let index = self.thing_index(thing)?;
        Ok(&mut self.things[index])
    }

    fn history_slot(&self, thing: usize, metric: usize, period: i64) -> usize {
        let ring = period.rem_euclid(HISTORY_PERIODS as i64) as usize;
        (thing * METRICS.len() + metric) * HISTORY_PERIODS + ring
    }

    /// Generates, records and ingests one period, then moves event time to its end.
    fn run_period(&mut self, engine: &mut Engine) -> Vec<ViolationEvent> {
        let start = self.start + self.periods * PERIOD_MS;
        let end = start + PERIOD_MS;
        let mut points = Vec::with_capacity(self.things.len() * METRICS.len());
        for index in 0..self.things.len() {
            let values = self.period_values(index, start);
            for metric in 0..METRICS.len() {
                let slot = self.history_slot(index, metric, self.periods);
                self.history[slot] = values.map_or(f32::NAN, |v| v.as_array()[metric] as f32);
            }
            let Some(values) = values else { continue };
            let thing = &self.things[index].name;
            points.extend(
                METRICS
                    .iter()
                    .zip(values.as_array())
                    .map(|(metric, value)| Datapoint {
                        thing_name: thing.clone(),
                        metric: metric.to_string(),
                        dimension_name: None,
                        timestamp: end,
                        value: MetricValue::count(value),
                    }),
            );
        }
        self.periods += 1;

        let mut events = engine.ingest_datapoints(&points).events;
        events.extend(engine.advance_time(end));
        events
    }

    /// What thing `index` sends in the period from `start`, or `None` once it is disconnected.
    fn period_values(&mut self, index: usize, start: Timestamp) -> Option<PeriodValues> {
        let thing = &self.things[index];
        if thing.disconnected {
            return None;
        }
        let hour = start.rem_euclid(DAY_MS) as f64 / 3_600_000.0;
        let activity = vigil_sim::period_activity(
            thing.class,
            thing.rate_scale,
            hour,
            thing.attack,
            &mut self.rng,
        );
        Some(PeriodValues {
            messages_sent: activity.messages_sent,
            largest_message_bytes: activity.largest_message_bytes,
            authorization_failures: activity.authorization_failures,
            connection_attempts: activity.reconnects,
            disconnects: activity.reconnects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(size: u32) -> SimulatedFleet {
        SimulatedFleet::new(size, 7, 0.0).unwrap_or_else(|_| panic!("size {size} is valid"))
    }

    #[test]
    fn names_things_by_class() {
        let fleet = fleet(5);
        let names: Vec<&str> = fleet.things.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "smart-light-0001",
                "thermostat-0001",
                "camera-0001",
                "door-lock-0001",
                "smart-light-0002"
            ]
        );
    }

    #[test]
    fn flood_multiplies_messages() {
        let mut fleet = fleet(8);
        fleet.things[4].attack = Some(AttackKind::MessageFlood);
        let evening = 20 * 3_600_000;
        let flooded = fleet.period_values(4, evening).map(|v| v.messages_sent);
        let quiet = fleet.period_values(0, evening).map(|v| v.messages_sent);
        assert!(flooded.unwrap_or(0) > 5 * quiet.unwrap_or(0).max(10));
    }

    #[test]
    fn disconnected_thing_sends_nothing() {
        let mut fleet = fleet(4);
        fleet.things[2].disconnected = true;
        assert_eq!(fleet.period_values(2, 0), None);
        assert!(fleet.period_values(1, 0).is_some());
    }

    #[test]
    fn run_records_history_for_each_metric() {
        let mut fleet = fleet(4);
        let mut engine = Engine::new(vigil_core::EngineConfig::default());
        for _ in 0..3 {
            fleet.run_period(&mut engine);
        }
        assert_eq!(fleet.periods, 3);
        assert_eq!(engine.current_time(), 3 * PERIOD_MS);
        let sent = fleet.history[fleet.history_slot(1, 0, 2)];
        assert!(sent >= 1.0, "messages sent {sent}");
        let untouched = fleet.history[fleet.history_slot(1, 0, 3)];
        assert!(untouched.is_nan());
    }

    #[test]
    fn parses_every_attack_name() {
        for kind in [
            AttackKind::MessageFlood,
            AttackKind::CredentialStuffing,
            AttackKind::ReconnectStorm,
            AttackKind::DataExfiltration,
        ] {
            assert_eq!(AttackKind::parse(kind.slug()), Some(kind));
        }
        assert_eq!(AttackKind::parse("flood"), None);
    }
}
