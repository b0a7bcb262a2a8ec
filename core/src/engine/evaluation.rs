//! Evaluating datapoints against behaviors, driving alarms, and refreshing ML models.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::catalogue::{self, PERIOD_MS};
use crate::ingest::Datapoint;
use crate::ml::{Scale, SeasonalModel, z_cutoff};
use crate::model::{
    Behavior, BehaviorCriteria, BehaviorCriteriaType, MetricValue, Timestamp, ViolationEvent,
    ViolationEventAdditionalInfo,
};
use crate::rules::{self, Window};
use crate::training::{RefreshOutcome, Training, TrainingConfig};
use crate::violations::Observation;

/// Datapoints a thing's own model must have learned (a day at 5 minutes) before it scores; until
/// then the fleet's model scores the thing.
const MIN_THING_SAMPLES: u32 = 288;

/// Violating datapoints in a row that the models do not learn from (a day at 5 minutes).
const MAX_UNLEARNED_STREAK: u32 = 288;

/// Evaluation state of one behavior of one profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BehaviorState {
    /// The behavior as currently defined.
    pub behavior: Behavior,
    /// Training bookkeeping; used by ML behaviors only.
    pub training: Training,
    fleet: Option<ModelPair>,
    things: BTreeMap<String, ThingState>,
    /// Fleet percentile of the current period for statistical behaviors: (period, threshold).
    statistical_cache: Option<(i64, Option<f64>)>,
}

/// A model that keeps learning and the copy frozen at the last daily refresh, which scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ModelPair {
    learner: SeasonalModel,
    scorer: Option<SeasonalModel>,
}

impl ModelPair {
    fn new(scale: Scale) -> Self {
        Self {
            learner: SeasonalModel::new(scale),
            scorer: None,
        }
    }

    fn freeze(&mut self) {
        self.scorer = Some(self.learner.clone());
    }

    /// The scoring copy once models are active, else the learning one.
    fn range_model(&self, scoring: bool) -> Option<&SeasonalModel> {
        if scoring {
            self.scorer.as_ref()
        } else {
            Some(&self.learner)
        }
    }
}

/// State of one behavior on one thing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ThingState {
    window: Window,
    /// Latest value summed over `durationSeconds`, for fleet percentiles.
    windowed: Option<(Timestamp, f64)>,
    model: Option<ModelPair>,
    violating_streak: u32,
    conforming_streak: u32,
    violation_id: Option<String>,
}

/// The verdict on one datapoint for one behavior.
struct Decision {
    violating: bool,
    observed: MetricValue,
    info: Option<ViolationEventAdditionalInfo>,
}

impl BehaviorState {
    /// Fresh state for a new behavior.
    pub fn new(behavior: &Behavior, training: TrainingConfig) -> Self {
        Self {
            behavior: behavior.clone(),
            training: Training::new(training),
            fleet: None,
            things: BTreeMap::new(),
            statistical_cache: None,
        }
    }

    /// State for `behavior` replacing `old`. Learned data survives when the metric and dimension
    /// stay the same. Returns whether `old`'s alarms stay valid: only if nothing but
    /// `suppressAlerts` or `exportMetric` changed.
    pub fn carry_over(
        old: Option<BehaviorState>,
        behavior: &Behavior,
        training: TrainingConfig,
    ) -> (Self, bool) {
        let Some(mut old) = old else {
            return (Self::new(behavior, training), true);
        };
        let same_metric = old.behavior.metric == behavior.metric
            && old.behavior.metric_dimension == behavior.metric_dimension;
        let same_kind = old.behavior.criteria_type() == behavior.criteria_type();
        let alarms_valid = same_metric && old.behavior.criteria == behavior.criteria;
        if !(same_metric && same_kind) {
            return (Self::new(behavior, training), alarms_valid);
        }
        if !alarms_valid {
            for thing in old.things.values_mut() {
                thing.reset_alarm();
            }
        }
        old.behavior = behavior.clone();
        old.statistical_cache = None;
        (old, alarms_valid)
    }

    /// Forgets the alarm counters of one thing after its alarm was invalidated.
    pub fn reset_alarm(&mut self, thing: &str) {
        if let Some(state) = self.things.get_mut(thing) {
            state.reset_alarm();
        }
    }

    fn matches(&self, datapoint: &Datapoint) -> bool {
        let metric = self.behavior.metric.as_deref() == Some(datapoint.metric.as_str());
        let dimension = self
            .behavior
            .metric_dimension
            .as_ref()
            .map(|d| d.dimension_name.as_str());
        metric && dimension == datapoint.dimension_name.as_deref()
    }
}

impl ThingState {
    fn reset_alarm(&mut self) {
        self.violating_streak = 0;
        self.conforming_streak = 0;
        self.violation_id = None;
    }
}

impl Engine {
    /// Evaluates one datapoint against every behavior that targets its thing and metric.
    pub(super) fn evaluate(&mut self, datapoint: &Datapoint) -> Vec<ViolationEvent> {
        let thing = datapoint.thing_name.as_str();
        let seen = self
            .last_seen
            .entry(thing.to_string())
            .or_insert(datapoint.timestamp);
        *seen = (*seen).max(datapoint.timestamp);

        let mut events = Vec::new();
        let profile_names: Vec<String> = self
            .profiles
            .values()
            .filter(|p| p.covers(&self.registry, thing))
            .map(|p| p.stored.profile.name.clone())
            .collect();
        for profile_name in profile_names {
            let behaviors = self.profiles[&profile_name].behaviors.len();
            for index in 0..behaviors {
                if !self.profiles[&profile_name].behaviors[index].matches(datapoint) {
                    continue;
                }
                let state = &mut self
                    .profiles
                    .get_mut(&profile_name)
                    .expect("listed above")
                    .behaviors[index];
                let Some(decision) = decide(state, datapoint) else {
                    continue;
                };
                events.extend(self.apply_decision(&profile_name, index, datapoint, decision));
            }
        }
        events
    }

    /// Moves a thing's alarm through the lifecycle after one decided datapoint.
    fn apply_decision(
        &mut self,
        profile_name: &str,
        index: usize,
        datapoint: &Datapoint,
        decision: Decision,
    ) -> Option<ViolationEvent> {
        let state = &mut self.profiles.get_mut(profile_name)?.behaviors[index];
        let criteria = state.behavior.criteria.clone().unwrap_or_default();
        let behavior = state.behavior.clone();
        let thing = state
            .things
            .entry(datapoint.thing_name.clone())
            .or_default();
        let observation = Observation {
            time: datapoint.timestamp,
            value: Some(decision.observed),
            info: decision.info,
        };

        if decision.violating {
            thing.violating_streak += 1;
            thing.conforming_streak = 0;
            if let Some(id) = &thing.violation_id {
                self.violations.extend(id, observation);
                return None;
            }
            if thing.violating_streak < criteria.datapoints_to_alarm() {
                return None;
            }
            let event =
                self.violations
                    .raise(&datapoint.thing_name, profile_name, &behavior, observation);
            thing.violation_id = Some(event.violation_id.clone());
            return Some(event);
        }

        thing.conforming_streak += 1;
        thing.violating_streak = 0;
        let id = thing.violation_id.clone()?;
        if thing.conforming_streak < criteria.datapoints_to_clear() {
            return None;
        }
        thing.violation_id = None;
        self.violations.clear(&id, observation)
    }

    /// Earliest ML refresh due across all behaviors.
    pub(super) fn next_refresh(&self) -> Option<Timestamp> {
        self.profiles
            .values()
            .flat_map(|p| p.behaviors.iter())
            .filter(|s| s.behavior.criteria_type() == Some(BehaviorCriteriaType::MachineLearning))
            .filter_map(|s| s.training.next_refresh())
            .min()
    }

    /// Runs every ML refresh due at `at`; a successful one freezes the learned models for scoring.
    pub(super) fn refresh_models(&mut self, at: Timestamp) {
        let states = self
            .profiles
            .values_mut()
            .flat_map(|p| p.behaviors.iter_mut());
        for state in states {
            let is_ml =
                state.behavior.criteria_type() == Some(BehaviorCriteriaType::MachineLearning);
            if !is_ml || state.training.next_refresh() != Some(at) {
                continue;
            }
            if let RefreshOutcome::Built(_) = state.training.refresh(at) {
                freeze_models(state);
            }
        }
    }

    pub(super) fn behavior_state_mut(
        &mut self,
        profile: &str,
        behavior: &str,
    ) -> Option<&mut BehaviorState> {
        self.profiles
            .get_mut(profile)?
            .behaviors
            .iter_mut()
            .find(|s| s.behavior.name == behavior)
    }
}

/// The range of values an ML behavior accepts from one thing at one time of day.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectedRange {
    /// Lower end, in the metric's own units.
    pub low: f64,
    /// Upper end, in the metric's own units.
    pub high: f64,
    /// Whether the range comes from the model that scores datapoints (frozen at the last
    /// refresh) rather than from the model still learning before the first build.
    pub scoring: bool,
}

impl Engine {
    /// Returns the range an ML behavior accepts from `thing` at `timestamp` at the behavior's
    /// confidence level: the same `expectedLow` and `expectedHigh` a violation would carry.
    /// Before the first successful build it is the range of the learning model instead. Returns
    /// `None` for unknown names, non-ML behaviors and models without data.
    pub fn ml_expected_range(
        &self,
        profile: &str,
        behavior: &str,
        thing: &str,
        timestamp: Timestamp,
    ) -> Option<ExpectedRange> {
        let state = self
            .profiles
            .get(profile)?
            .behaviors
            .iter()
            .find(|s| s.behavior.name == behavior)?;
        let criteria = state.behavior.criteria.as_ref()?;
        let level = criteria.ml_detection_config.as_ref()?.confidence_level;
        let (model, scoring) = state.range_model(thing)?;
        let explanation = model.explain(timestamp, 0.0, level);
        Some(ExpectedRange {
            low: explanation.expected_low,
            high: explanation.expected_high,
            scoring,
        })
    }
}

impl BehaviorState {
    /// Picks the model the way scoring does: the thing's own once it has learned enough, else
    /// the fleet's. Before the first build, the learning copies stand in.
    fn range_model(&self, thing: &str) -> Option<(&SeasonalModel, bool)> {
        let scoring = self.training.is_active();
        let pick = |pair| ModelPair::range_model(pair, scoring);
        let own = self
            .things
            .get(thing)
            .and_then(|t| t.model.as_ref())
            .and_then(pick)
            .filter(|m| m.samples() >= MIN_THING_SAMPLES);
        let fleet = self.fleet.as_ref().and_then(pick);
        own.or(fleet)
            .filter(|m| m.samples() > 0)
            .map(|m| (m, scoring))
    }
}

fn freeze_models(state: &mut BehaviorState) {
    if let Some(fleet) = &mut state.fleet {
        fleet.freeze();
    }
    for thing in state.things.values_mut() {
        if let Some(model) = &mut thing.model {
            model.freeze();
        }
    }
}

/// Decides whether a datapoint violates the behavior. Returns `None` when no decision is possible
/// yet: the behavior only retains its metric, the ML model is still training, the fleet has no
/// data, or the values cannot be compared.
fn decide(state: &mut BehaviorState, datapoint: &Datapoint) -> Option<Decision> {
    let criteria = state.behavior.criteria.clone()?;
    match criteria.criteria_type() {
        BehaviorCriteriaType::Static => decide_static(state, &criteria, datapoint),
        BehaviorCriteriaType::Statistical => decide_statistical(state, &criteria, datapoint),
        BehaviorCriteriaType::MachineLearning => decide_ml(state, &criteria, datapoint),
    }
}

fn decide_static(
    state: &mut BehaviorState,
    criteria: &BehaviorCriteria,
    datapoint: &Datapoint,
) -> Option<Decision> {
    let operator = criteria.comparison_operator?;
    let expected = criteria.value.as_ref()?;
    let observed = match criteria.duration_seconds {
        Some(seconds) => windowed_value(state, datapoint, seconds)?,
        None => datapoint.value.clone(),
    };
    let conforms = rules::conforms(operator, expected, &observed)?;
    Some(Decision {
        violating: !conforms,
        observed,
        info: None,
    })
}

/// Sums the thing's scalar datapoints over the window and returns the sum in the value's member.
fn windowed_value(
    state: &mut BehaviorState,
    datapoint: &Datapoint,
    seconds: i64,
) -> Option<MetricValue> {
    let value = datapoint.value.as_scalar()?;
    let thing = state
        .things
        .entry(datapoint.thing_name.clone())
        .or_default();
    let sum = thing
        .window
        .push(datapoint.timestamp, value, seconds * 1000);
    thing.windowed = Some((datapoint.timestamp, sum));
    Some(if datapoint.value.count.is_some() {
        MetricValue::count(sum.round() as u64)
    } else {
        MetricValue::number(sum)
    })
}

fn decide_statistical(
    state: &mut BehaviorState,
    criteria: &BehaviorCriteria,
    datapoint: &Datapoint,
) -> Option<Decision> {
    let operator = criteria.comparison_operator?;
    let duration_ms = criteria.duration_seconds? * 1000;
    let fraction = catalogue::statistic_fraction(
        criteria
            .statistical_threshold
            .as_ref()?
            .statistic
            .as_deref()?,
    )?;
    let threshold = fleet_percentile(state, datapoint.timestamp, duration_ms, fraction);
    let observed = windowed_value(state, datapoint, duration_ms / 1000)?;
    let threshold = MetricValue::number(threshold?);
    let comparable = MetricValue::number(observed.as_scalar()?);
    let conforms = rules::conforms(operator, &threshold, &comparable)?;
    Some(Decision {
        violating: !conforms,
        observed,
        info: None,
    })
}

/// Computes the percentile of every targeted thing's windowed value as of the start of the
/// datapoint's period, so every thing in one period is judged against the same threshold.
fn fleet_percentile(
    state: &mut BehaviorState,
    timestamp: Timestamp,
    duration_ms: i64,
    fraction: f64,
) -> Option<f64> {
    let period = timestamp.div_euclid(PERIOD_MS);
    if let Some((cached_period, threshold)) = state.statistical_cache
        && cached_period == period
    {
        return threshold;
    }
    let period_start = period * PERIOD_MS;
    let mut values: Vec<f64> = state
        .things
        .values()
        .filter_map(|t| t.windowed)
        .filter(|(t, _)| *t < period_start && *t >= period_start - duration_ms)
        .map(|(_, v)| v)
        .collect();
    let threshold = rules::percentile(&mut values, fraction);
    state.statistical_cache = Some((period, threshold));
    threshold
}

fn decide_ml(
    state: &mut BehaviorState,
    criteria: &BehaviorCriteria,
    datapoint: &Datapoint,
) -> Option<Decision> {
    let level = criteria.ml_detection_config.as_ref()?.confidence_level;
    let value = datapoint.value.as_scalar()?;
    let scale = if datapoint.value.count.is_some() {
        Scale::Count
    } else {
        Scale::Real
    };
    let timestamp = datapoint.timestamp;

    // Score with the models frozen at the last refresh, before learning from the datapoint.
    let decision = state.training.is_active().then(|| {
        let thing_scorer = state
            .things
            .get(&datapoint.thing_name)
            .and_then(|t| t.model.as_ref())
            .and_then(|m| m.scorer.as_ref())
            .filter(|m| m.samples() >= MIN_THING_SAMPLES);
        let fleet_scorer = state.fleet.as_ref().and_then(|f| f.scorer.as_ref());
        thing_scorer.or(fleet_scorer).map(|model| {
            let explanation = model.explain(timestamp, value, level);
            Decision {
                violating: model.score(timestamp, value).z > z_cutoff(level),
                observed: datapoint.value.clone(),
                info: Some(ViolationEventAdditionalInfo {
                    confidence_level: Some(level),
                    explanation: Some(explanation),
                }),
            }
        })
    });

    let decision = decision.flatten();
    state.training.record_datapoint(timestamp);
    let thing = state
        .things
        .entry(datapoint.thing_name.clone())
        .or_default();

    // Keep alarming datapoints out of the models, so an attack does not become the new normal.
    // A change that lasts longer than a day is accepted as one.
    let violating = decision.as_ref().is_some_and(|d| d.violating);
    if violating && thing.violating_streak < MAX_UNLEARNED_STREAK {
        return decision;
    }
    thing
        .model
        .get_or_insert_with(|| ModelPair::new(scale))
        .learner
        .learn(timestamp, value);
    state
        .fleet
        .get_or_insert_with(|| ModelPair::new(scale))
        .learner
        .learn(timestamp, value);
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;
    use crate::model::{ConfidenceLevel, SecurityProfile};

    const THING: &str = "sensor-1";

    fn learning_engine() -> Engine {
        let config = EngineConfig {
            ml_training_days: 1,
            ml_min_datapoints: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(config);
        let behavior =
            Behavior::machine_learning("messages", "aws:num-messages-sent", ConfidenceLevel::High);
        let profile = SecurityProfile {
            name: "guard".to_string(),
            behaviors: vec![behavior],
            ..SecurityProfile::default()
        };
        engine.create_security_profile(profile, 0).unwrap();
        engine
            .attach_security_profile("guard", "arn:aws:iot:us-east-1:123456789012:all/things")
            .unwrap();
        engine
    }

    fn send_periods(engine: &mut Engine, periods: std::ops::Range<i64>) {
        let points: Vec<Datapoint> = periods
            .map(|k| Datapoint {
                thing_name: THING.to_string(),
                metric: "aws:num-messages-sent".to_string(),
                dimension_name: None,
                timestamp: (k + 1) * PERIOD_MS,
                value: MetricValue::count(20 + (k % 5) as u64),
            })
            .collect();
        engine.ingest_datapoints(&points);
    }

    #[test]
    fn expected_range_follows_learner_then_scorer() {
        let mut engine = learning_engine();
        assert_eq!(
            engine.ml_expected_range("guard", "messages", THING, 0),
            None
        );

        send_periods(&mut engine, 0..100);
        let learning = engine
            .ml_expected_range("guard", "messages", THING, 100 * PERIOD_MS)
            .unwrap();
        assert!(!learning.scoring);
        assert!(learning.low <= 20.0, "low {}", learning.low);
        assert!(learning.high >= 24.0, "high {}", learning.high);

        send_periods(&mut engine, 100..600);
        let scoring = engine
            .ml_expected_range("guard", "messages", THING, 600 * PERIOD_MS)
            .unwrap();
        assert!(scoring.scoring);
        assert!(scoring.low <= 20.0, "low {}", scoring.low);
        assert!(scoring.high >= 24.0, "high {}", scoring.high);
    }

    #[test]
    fn expected_range_is_none_for_unknown_names() {
        let mut engine = learning_engine();
        send_periods(&mut engine, 0..10);
        let at = 10 * PERIOD_MS;
        assert_eq!(
            engine.ml_expected_range("other", "messages", THING, at),
            None
        );
        assert_eq!(engine.ml_expected_range("guard", "other", THING, at), None);
    }
}
