//! The thing registry: registered things, static thing groups and security profile targets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A parsed security profile target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// Every thing, registered or not.
    AllThings,
    /// Every registered thing.
    RegisteredThings,
    /// Every thing that reports without being registered.
    UnregisteredThings,
    /// The members of one thing group.
    Group(String),
}

impl Target {
    /// Parses a target ARN such as `arn:aws:iot:eu-west-1:123456789012:thinggroup/lights` or
    /// `arn:aws:iot:eu-west-1:123456789012:all/things`.
    pub fn parse(arn: &str) -> Result<Self> {
        let resource = arn_resource(arn).ok_or_else(|| {
            target_error(format!(
                "invalid security profile target `{arn}`: expected \
                 `arn:aws:iot:REGION:ACCOUNT:thinggroup/NAME` or `arn:aws:iot:REGION:ACCOUNT:all/things`"
            ))
        })?;
        match resource {
            "all/things" => Ok(Target::AllThings),
            "all/registered-things" => Ok(Target::RegisteredThings),
            "all/unregistered-things" => Ok(Target::UnregisteredThings),
            _ => match resource.strip_prefix("thinggroup/") {
                Some(group) if !group.is_empty() => Ok(Target::Group(group.to_string())),
                _ => Err(target_error(format!(
                    "invalid security profile target `{arn}`: the resource must be \
                     `thinggroup/NAME`, `all/things`, `all/registered-things` or `all/unregistered-things`"
                ))),
            },
        }
    }
}

/// A problem with a target ARN, reported on the field that carries it.
fn target_error(message: String) -> Error {
    Error::ValidationFailed(vec![crate::ValidationError::new(
        "securityProfileTargetArn",
        message,
    )])
}

/// Returns the resource part of an IoT ARN (after the fifth colon).
fn arn_resource(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (_region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = prefix == "arn" && !partition.is_empty() && service == "iot";
    valid.then_some(resource)
}

/// Registered things and static thing groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    things: BTreeSet<String>,
    groups: BTreeMap<String, BTreeSet<String>>,
}

impl Registry {
    /// Registers a thing; registering twice is fine.
    pub fn create_thing(&mut self, thing: &str) {
        self.things.insert(thing.to_string());
    }

    /// Returns how many things are registered.
    pub fn thing_count(&self) -> usize {
        self.things.len()
    }

    /// Returns whether the thing is registered.
    pub fn is_registered(&self, thing: &str) -> bool {
        self.things.contains(thing)
    }

    /// Creates a group; fails if it exists.
    pub fn create_group(&mut self, group: &str) -> Result<()> {
        if self.groups.contains_key(group) {
            return Err(Error::ResourceAlreadyExists(format!(
                "thing group `{group}` already exists"
            )));
        }
        self.groups.insert(group.to_string(), BTreeSet::new());
        Ok(())
    }

    /// Returns whether the group exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Deletes a group.
    pub fn delete_group(&mut self, group: &str) -> Result<()> {
        self.groups
            .remove(group)
            .map(|_| ())
            .ok_or_else(|| group_not_found(group))
    }

    /// Adds a thing to a group, registering the thing.
    pub fn add_to_group(&mut self, thing: &str, group: &str) -> Result<()> {
        let members = self
            .groups
            .get_mut(group)
            .ok_or_else(|| group_not_found(group))?;
        members.insert(thing.to_string());
        self.things.insert(thing.to_string());
        Ok(())
    }

    /// Removes a thing from a group.
    pub fn remove_from_group(&mut self, thing: &str, group: &str) -> Result<()> {
        let members = self
            .groups
            .get_mut(group)
            .ok_or_else(|| group_not_found(group))?;
        members.remove(thing);
        Ok(())
    }

    /// Members of a group, sorted.
    pub fn members(&self, group: &str) -> Result<Vec<String>> {
        let members = self
            .groups
            .get(group)
            .ok_or_else(|| group_not_found(group))?;
        Ok(members.iter().cloned().collect())
    }

    /// Groups of a thing, sorted.
    pub fn groups_of(&self, thing: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, members)| members.contains(thing))
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// Returns whether `target` covers `thing`.
    pub fn covers(&self, target: &Target, thing: &str) -> bool {
        match target {
            Target::AllThings => true,
            Target::RegisteredThings => self.is_registered(thing),
            Target::UnregisteredThings => !self.is_registered(thing),
            Target::Group(group) => self
                .groups
                .get(group)
                .is_some_and(|members| members.contains(thing)),
        }
    }
}

fn group_not_found(group: &str) -> Error {
    Error::ResourceNotFound(format!("thing group `{group}` does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_and_pseudo_targets() {
        let group = Target::parse("arn:aws:iot:eu-west-1:123456789012:thinggroup/ML_Detect_beta");
        assert_eq!(group, Ok(Target::Group("ML_Detect_beta".into())));
        let all = Target::parse("arn:aws:iot:us-east-1:123456789012:all/registered-things");
        assert_eq!(all, Ok(Target::RegisteredThings));
    }

    #[test]
    fn rejects_targets_that_are_not_iot_arns() {
        assert!(Target::parse("thinggroup/lights").is_err());
        assert!(Target::parse("arn:aws:s3:::bucket/x").is_err());
        assert!(Target::parse("arn:aws:iot:r:a:thing/lamp").is_err());
    }

    #[test]
    fn unregistered_target_covers_only_unknown_things() {
        let mut registry = Registry::default();
        registry.create_thing("lamp-1");
        assert!(!registry.covers(&Target::UnregisteredThings, "lamp-1"));
        assert!(registry.covers(&Target::UnregisteredThings, "lamp-2"));
        assert!(registry.covers(&Target::AllThings, "lamp-2"));
    }

    #[test]
    fn group_membership_is_tracked_both_ways() {
        let mut registry = Registry::default();
        registry.create_group("quarantine").unwrap();
        registry.add_to_group("lamp-1", "quarantine").unwrap();
        assert_eq!(registry.groups_of("lamp-1"), vec!["quarantine".to_string()]);
        assert_eq!(
            registry.members("quarantine").unwrap(),
            vec!["lamp-1".to_string()]
        );
        assert!(registry.covers(&Target::Group("quarantine".into()), "lamp-1"));
        registry.remove_from_group("lamp-1", "quarantine").unwrap();
        assert!(registry.groups_of("lamp-1").is_empty());
    }

    #[test]
    fn adding_to_a_missing_group_fails() {
        let mut registry = Registry::default();
        let error = registry.add_to_group("lamp-1", "nope").unwrap_err();
        assert_eq!(
            error,
            Error::ResourceNotFound("thing group `nope` does not exist".into())
        );
    }
}
