//! Security profile configuration: create, update, delete, attach and detach.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::definitions::{custom_metric_not_found, dimension_not_found};
use super::{Engine, profile_not_found};
use crate::ValidationError;
use crate::error::{Error, Result};
use crate::model::{
    Behavior, BehaviorCriteriaType, BehaviorModelTrainingSummary, SecurityProfile,
    StoredSecurityProfile, Timestamp, ViolationEvent,
};
use crate::registry::{Registry, Target};
use crate::validate;

use super::evaluation::BehaviorState;

/// Most profiles one target may have attached.
pub const MAX_PROFILES_PER_TARGET: usize = 5;

/// Narrows `list_security_profiles` to the profiles that use one dimension or one custom metric.
/// At most one field may be set, and with neither set every profile matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityProfileFilter {
    /// Only profiles with a behavior or metric to retain narrowed by this dimension.
    pub dimension_name: Option<String>,
    /// Only profiles with a behavior or metric to retain on this custom metric.
    pub metric_name: Option<String>,
}

/// A stored profile with its targets and the evaluation state of each behavior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// The profile as stored.
    pub stored: StoredSecurityProfile,
    /// Target ARNs as attached.
    pub targets: BTreeSet<String>,
    /// Evaluation state, one per behavior in profile order.
    pub behaviors: Vec<BehaviorState>,
}

impl ProfileState {
    /// Returns whether any target covers `thing`.
    pub fn covers(&self, registry: &Registry, thing: &str) -> bool {
        self.targets
            .iter()
            .filter_map(|arn| Target::parse(arn).ok())
            .any(|target| registry.covers(&target, thing))
    }

    /// Training summaries of the ML behaviors.
    pub fn training_summaries(&self, now: Timestamp) -> Vec<BehaviorModelTrainingSummary> {
        self.behaviors
            .iter()
            .filter(|state| {
                state.behavior.criteria_type() == Some(BehaviorCriteriaType::MachineLearning)
            })
            .map(|state| BehaviorModelTrainingSummary {
                security_profile_name: self.stored.profile.name.clone(),
                behavior_name: state.behavior.name.clone(),
                training_data_collection_start_date: state.training.start(),
                model_status: state.training.status(),
                datapoints_collection_percentage: state.training.collection_percentage(now),
                last_model_refresh_date: state.training.last_refresh(),
            })
            .collect()
    }
}

impl Engine {
    /// Checks behaviors the way `validate-security-profile-behaviors` does.
    pub fn validate_behaviors(&self, behaviors: &[Behavior]) -> Vec<crate::ValidationError> {
        validate::validate_behaviors(behaviors, &self.defined_names())
    }

    fn check_profile(&self, profile: &SecurityProfile) -> Result<()> {
        let problems = validate::validate_security_profile(profile, &self.defined_names());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::ValidationFailed(problems))
        }
    }

    /// Creates a security profile.
    pub fn create_security_profile(
        &mut self,
        profile: SecurityProfile,
        now: Timestamp,
    ) -> Result<StoredSecurityProfile> {
        self.check_profile(&profile)?;
        if self.profiles.contains_key(&profile.name) {
            return Err(Error::ResourceAlreadyExists(format!(
                "security profile `{}` already exists",
                profile.name
            )));
        }
        let stored = StoredSecurityProfile {
            arn: self.arn(&format!("securityprofile/{}", profile.name)),
            profile,
            version: 1,
            creation_date: now,
            last_modified_date: now,
        };
        let training = self.config.training();
        let behaviors = stored
            .profile
            .behaviors
            .iter()
            .map(|b| BehaviorState::new(b, training))
            .collect();
        let state = ProfileState {
            stored: stored.clone(),
            targets: BTreeSet::new(),
            behaviors,
        };
        self.profiles.insert(stored.profile.name.clone(), state);
        Ok(stored)
    }

    /// Returns a stored profile.
    pub fn describe_security_profile(&self, name: &str) -> Result<StoredSecurityProfile> {
        Ok(self.profile(name)?.stored.clone())
    }

    /// Returns the names of the profiles matching `filter`, sorted. Fails when both filter fields are set or
    /// when the named dimension or custom metric does not exist.
    pub fn list_security_profiles(&self, filter: &SecurityProfileFilter) -> Result<Vec<String>> {
        match (&filter.dimension_name, &filter.metric_name) {
            (Some(_), Some(_)) => Err(Error::InvalidRequest(
                "dimensionName and metricName cannot be used together; filter by one of them"
                    .to_string(),
            )),
            (Some(dimension), None) => {
                if !self.dimensions.contains_key(dimension) {
                    return Err(dimension_not_found(dimension));
                }
                Ok(self.profiles_using(|_, used| used == Some(dimension.as_str())))
            }
            (None, Some(metric)) => {
                if !self.custom_metrics.contains_key(metric) {
                    return Err(custom_metric_not_found(metric));
                }
                Ok(self.profiles_using(|used, _| used == metric))
            }
            (None, None) => Ok(self.profiles.keys().cloned().collect()),
        }
    }

    /// Replaces a profile's contents. Behaviors keep their learned state when their metric and
    /// dimension stay the same. Alarms of removed behaviors, and of behaviors whose metric or
    /// criteria changed, are invalidated.
    pub fn update_security_profile(
        &mut self,
        profile: SecurityProfile,
        expected_version: Option<u64>,
        now: Timestamp,
    ) -> Result<(StoredSecurityProfile, Vec<ViolationEvent>)> {
        self.check_profile(&profile)?;
        let state = self.profile(&profile.name)?;
        check_version(&profile.name, state.stored.version, expected_version)?;

        // Carry each behavior's state over by name, deciding which alarms stay valid.
        let training = self.config.training();
        let mut old_states = state.behaviors.clone();
        let mut invalidated_behaviors = Vec::new();
        let mut new_states = Vec::with_capacity(profile.behaviors.len());
        for behavior in &profile.behaviors {
            let old = old_states
                .iter()
                .position(|s| s.behavior.name == behavior.name)
                .map(|i| old_states.remove(i));
            let (new_state, alarms_valid) = BehaviorState::carry_over(old, behavior, training);
            if !alarms_valid {
                invalidated_behaviors.push(behavior.name.clone());
            }
            new_states.push(new_state);
        }
        invalidated_behaviors.extend(old_states.into_iter().map(|s| s.behavior.name));

        let events = self.invalidate_behaviors(&profile.name, &invalidated_behaviors, now);
        let state = self.profiles.get_mut(&profile.name).expect("checked above");
        state.stored.profile = profile;
        state.stored.version += 1;
        state.stored.last_modified_date = now;
        state.behaviors = new_states;
        let stored = state.stored.clone();
        self.refresh_violation_behaviors(&stored.profile);
        Ok((stored, events))
    }

    /// Points active alarms at the current behavior definitions.
    fn refresh_violation_behaviors(&mut self, profile: &SecurityProfile) {
        let active: Vec<(String, Behavior)> = self
            .violations
            .records()
            .filter(|r| r.active && r.security_profile_name == profile.name)
            .filter_map(|r| {
                let behavior = profile
                    .behaviors
                    .iter()
                    .find(|b| b.name == r.behavior.name)?;
                Some((r.violation_id.clone(), behavior.clone()))
            })
            .collect();
        for (id, behavior) in active {
            self.violations.update_behavior(&id, &behavior);
        }
    }

    fn invalidate_behaviors(
        &mut self,
        profile: &str,
        behavior_names: &[String],
        at: Timestamp,
    ) -> Vec<ViolationEvent> {
        let ids: Vec<String> = self
            .violations
            .records()
            .filter(|r| r.active && r.security_profile_name == profile)
            .filter(|r| behavior_names.contains(&r.behavior.name))
            .map(|r| r.violation_id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| self.violations.invalidate(id, at))
            .collect()
    }

    /// Deletes a profile and invalidates its alarms. Its learned models are gone for good.
    pub fn delete_security_profile(
        &mut self,
        name: &str,
        expected_version: Option<u64>,
        now: Timestamp,
    ) -> Result<Vec<ViolationEvent>> {
        let state = self.profile(name)?;
        check_version(name, state.stored.version, expected_version)?;
        let behavior_names: Vec<String> = state
            .behaviors
            .iter()
            .map(|s| s.behavior.name.clone())
            .collect();
        let events = self.invalidate_behaviors(name, &behavior_names, now);
        self.profiles.remove(name);
        Ok(events)
    }

    /// Attaches a profile to a target.
    pub fn attach_security_profile(&mut self, name: &str, target_arn: &str) -> Result<()> {
        let target = Target::parse(target_arn)?;
        if let Target::Group(group) = &target
            && !self.registry.has_group(group)
        {
            return Err(Error::ResourceNotFound(format!(
                "thing group `{group}` does not exist; create it before attaching a profile to it"
            )));
        }
        self.profile(name)?;
        let attached = self
            .profiles
            .values()
            .filter(|p| p.stored.profile.name != name)
            .filter(|p| p.targets.iter().any(|arn| is_target(arn, &target)))
            .count();
        if attached >= MAX_PROFILES_PER_TARGET {
            return Err(Error::LimitExceeded(format!(
                "target `{target_arn}` already has {MAX_PROFILES_PER_TARGET} security profiles \
                 attached, the maximum; detach one before attaching `{name}`"
            )));
        }
        let state = self.profiles.get_mut(name).expect("checked above");
        state.targets.insert(target_arn.to_string());
        Ok(())
    }

    /// Detaches a profile from a target and invalidates alarms of things it no longer covers.
    pub fn detach_security_profile(
        &mut self,
        name: &str,
        target_arn: &str,
        now: Timestamp,
    ) -> Result<Vec<ViolationEvent>> {
        let state = self
            .profiles
            .get_mut(name)
            .ok_or_else(|| profile_not_found(name))?;
        if !state.targets.remove(target_arn) {
            return Err(Error::ResourceNotFound(format!(
                "security profile `{name}` is not attached to `{target_arn}`"
            )));
        }
        Ok(self.invalidate_uncovered(now))
    }

    /// Returns the names of the profiles attached directly to a target, sorted. Attachments to parent groups
    /// are not included, because thing groups have no hierarchy here.
    pub fn list_security_profiles_for_target(&self, target_arn: &str) -> Result<Vec<String>> {
        let target = Target::parse(target_arn).map_err(|error| {
            Error::ValidationFailed(vec![ValidationError::new(
                "securityProfileTargetArn",
                error.to_string(),
            )])
        })?;
        let names = self
            .profiles
            .values()
            .filter(|p| p.targets.iter().any(|arn| is_target(arn, &target)))
            .map(|p| p.stored.profile.name.clone())
            .collect();
        Ok(names)
    }

    /// Target ARNs of a profile.
    pub fn list_targets_for_security_profile(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.profile(name)?.targets.iter().cloned().collect())
    }
}

/// Returns whether `arn` names `target`, in any region and account.
fn is_target(arn: &str, target: &Target) -> bool {
    Target::parse(arn).is_ok_and(|parsed| parsed == *target)
}

fn check_version(name: &str, current: u64, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(Error::VersionConflict(format!(
            "security profile `{name}` is at version {current}, not the expected version {expected}; \
             describe it again and retry"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::SecurityProfileFilter;
    use crate::error::Error;
    use crate::model::{
        Behavior, BehaviorCriteria, ComparisonOperator, CustomMetricType, MetricDimension,
        MetricToRetain, MetricValue, SecurityProfile,
    };
    use crate::{Engine, EngineConfig};

    const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

    fn empty_profile(name: &str) -> SecurityProfile {
        SecurityProfile {
            name: name.to_string(),
            ..SecurityProfile::default()
        }
    }

    fn engine_with_profiles(names: &[&str]) -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        for name in names {
            engine
                .create_security_profile(empty_profile(name), 0)
                .unwrap();
        }
        engine
    }

    fn filter(dimension: Option<&str>, metric: Option<&str>) -> SecurityProfileFilter {
        SecurityProfileFilter {
            dimension_name: dimension.map(str::to_string),
            metric_name: metric.map(str::to_string),
        }
    }

    #[test]
    fn sixth_profile_on_a_target_is_rejected() {
        let names = ["p1", "p2", "p3", "p4", "p5", "p6"];
        let mut engine = engine_with_profiles(&names);
        for name in &names[..5] {
            engine.attach_security_profile(name, ALL_THINGS).unwrap();
        }
        let other_region = "arn:aws:iot:eu-west-1:123456789012:all/things";
        let error = engine.attach_security_profile("p6", other_region);
        assert_eq!(
            error,
            Err(Error::LimitExceeded(format!(
                "target `{other_region}` already has 5 security profiles attached, the maximum; \
                 detach one before attaching `p6`"
            )))
        );
        // Attaching a profile again to the same target does not count twice.
        assert_eq!(engine.attach_security_profile("p5", ALL_THINGS), Ok(()));
        let registered = "arn:aws:iot:us-east-1:123456789012:all/registered-things";
        assert_eq!(engine.attach_security_profile("p6", registered), Ok(()));
    }

    #[test]
    fn profiles_for_target_lists_only_direct_attachments() {
        let mut engine = engine_with_profiles(&["lights", "locks", "unattached"]);
        let group = engine.create_thing_group("lamps").unwrap();
        engine.attach_security_profile("locks", &group).unwrap();
        engine.attach_security_profile("lights", &group).unwrap();
        engine
            .attach_security_profile("lights", ALL_THINGS)
            .unwrap();

        let for_group = engine.list_security_profiles_for_target(&group);
        assert_eq!(
            for_group,
            Ok(vec!["lights".to_string(), "locks".to_string()])
        );
        let for_all = engine.list_security_profiles_for_target(ALL_THINGS);
        assert_eq!(for_all, Ok(vec!["lights".to_string()]));
    }

    #[test]
    fn profiles_for_malformed_target_is_a_validation_error() {
        let engine = engine_with_profiles(&[]);
        let error = engine
            .list_security_profiles_for_target("thinggroup/lamps")
            .unwrap_err();
        let Error::ValidationFailed(problems) = error else {
            panic!("expected a validation error, got {error:?}");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, vec!["securityProfileTargetArn"]);
        assert!(problems[0].message.contains("`thinggroup/lamps`"));
    }

    #[test]
    fn profile_list_filters_by_dimension_or_custom_metric() {
        let mut engine = engine_with_profiles(&["plain"]);
        engine
            .create_dimension("topics", vec!["cmd/#".to_string()], 0)
            .unwrap();
        engine
            .create_custom_metric("battery-level", CustomMetricType::Number, None, 0)
            .unwrap();
        let narrowed = MetricToRetain {
            metric: "aws:num-messages-sent".to_string(),
            metric_dimension: Some(MetricDimension {
                dimension_name: "topics".to_string(),
                operator: None,
            }),
            export_metric: None,
        };
        let by_dimension = SecurityProfile {
            additional_metrics_to_retain_v2: vec![narrowed],
            ..empty_profile("by-dimension")
        };
        let battery = Behavior {
            name: "battery".to_string(),
            metric: Some("battery-level".to_string()),
            metric_dimension: None,
            criteria: Some(BehaviorCriteria {
                comparison_operator: Some(ComparisonOperator::GreaterThan),
                value: Some(MetricValue::number(10.0)),
                ..BehaviorCriteria::default()
            }),
            suppress_alerts: None,
            export_metric: None,
        };
        let by_metric = SecurityProfile {
            behaviors: vec![battery],
            ..empty_profile("by-metric")
        };
        engine.create_security_profile(by_dimension, 0).unwrap();
        engine.create_security_profile(by_metric, 0).unwrap();

        let all = engine.list_security_profiles(&filter(None, None));
        assert_eq!(all.unwrap(), vec!["by-dimension", "by-metric", "plain"]);
        let dimension = engine.list_security_profiles(&filter(Some("topics"), None));
        assert_eq!(dimension.unwrap(), vec!["by-dimension"]);
        let metric = engine.list_security_profiles(&filter(None, Some("battery-level")));
        assert_eq!(metric.unwrap(), vec!["by-metric"]);
    }

    #[test]
    fn profile_filter_rejects_invalid_requests() {
        let mut engine = engine_with_profiles(&["plain"]);
        engine
            .create_dimension("topics", vec!["cmd/#".to_string()], 0)
            .unwrap();
        let both = engine.list_security_profiles(&filter(Some("topics"), Some("battery")));
        assert_eq!(
            both,
            Err(Error::InvalidRequest(
                "dimensionName and metricName cannot be used together; filter by one of them"
                    .to_string()
            ))
        );
        let dimension = engine.list_security_profiles(&filter(Some("other"), None));
        assert_eq!(
            dimension,
            Err(Error::ResourceNotFound(
                "dimension `other` does not exist".to_string()
            ))
        );
        let metric = engine.list_security_profiles(&filter(None, Some("battery")));
        assert_eq!(
            metric,
            Err(Error::ResourceNotFound(
                "custom metric `battery` does not exist".to_string()
            ))
        );
    }
}
