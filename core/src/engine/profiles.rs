//! Security profile configuration: create, update, delete, attach and detach.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Engine, profile_not_found};
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
        validate::validate_behaviors(behaviors, &self.custom_metrics)
    }

    fn check_profile(&self, profile: &SecurityProfile) -> Result<()> {
        let problems = validate::validate_security_profile(profile, &self.custom_metrics);
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

    /// Names of all profiles, sorted.
    pub fn list_security_profiles(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
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
            .filter(|p| {
                p.targets
                    .iter()
                    .any(|arn| Target::parse(arn).ok() == Some(target.clone()))
            })
            .count();
        if attached >= MAX_PROFILES_PER_TARGET {
            return Err(Error::LimitExceeded(format!(
                "target `{target_arn}` already has {MAX_PROFILES_PER_TARGET} security profiles attached, the maximum"
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

    /// Target ARNs of a profile.
    pub fn list_targets_for_security_profile(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.profile(name)?.targets.iter().cloned().collect())
    }
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
