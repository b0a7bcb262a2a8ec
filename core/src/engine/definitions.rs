//! Custom metrics and dimensions: the named definitions that behaviors and metrics to retain
//! refer to.

use std::collections::BTreeMap;

use super::{Engine, reject_problems};
use crate::error::{Error, Result};
use crate::model::{CustomMetric, CustomMetricType, Dimension, DimensionType, Timestamp};
use crate::validate::{self, Definitions};

/// The engine's custom metrics and dimensions, as validation looks them up.
pub(super) struct DefinedNames<'a> {
    pub(super) custom_metrics: &'a BTreeMap<String, CustomMetric>,
    pub(super) dimensions: &'a BTreeMap<String, Dimension>,
}

impl Definitions for DefinedNames<'_> {
    fn custom_metric_type(&self, name: &str) -> Option<CustomMetricType> {
        self.custom_metrics.get(name).map(|m| m.metric_type)
    }

    fn has_dimension(&self, name: &str) -> bool {
        self.dimensions.contains_key(name)
    }
}

impl Engine {
    pub(super) fn defined_names(&self) -> DefinedNames<'_> {
        DefinedNames {
            custom_metrics: &self.custom_metrics,
            dimensions: &self.dimensions,
        }
    }

    /// Creates a custom metric that device reports and behaviors may then use.
    pub fn create_custom_metric(
        &mut self,
        name: &str,
        metric_type: CustomMetricType,
        display_name: Option<String>,
        now: Timestamp,
    ) -> Result<CustomMetric> {
        reject_problems(validate::validate_custom_metric(
            name,
            display_name.as_deref(),
        ))?;
        if self.custom_metrics.contains_key(name) {
            return Err(Error::ResourceAlreadyExists(format!(
                "custom metric `{name}` already exists"
            )));
        }
        let metric = CustomMetric {
            metric_name: name.to_string(),
            metric_arn: self.arn(&format!("custommetric/{name}")),
            metric_type,
            display_name,
            creation_date: now,
            last_modified_date: now,
        };
        self.custom_metrics.insert(name.to_string(), metric.clone());
        Ok(metric)
    }

    /// Returns a custom metric.
    pub fn describe_custom_metric(&self, name: &str) -> Result<CustomMetric> {
        self.custom_metrics
            .get(name)
            .cloned()
            .ok_or_else(|| custom_metric_not_found(name))
    }

    /// Sets a custom metric's display name, the only field that can change.
    pub fn update_custom_metric(
        &mut self,
        name: &str,
        display_name: String,
        now: Timestamp,
    ) -> Result<CustomMetric> {
        reject_problems(validate::validate_display_name(&display_name))?;
        let metric = self
            .custom_metrics
            .get_mut(name)
            .ok_or_else(|| custom_metric_not_found(name))?;
        metric.display_name = Some(display_name);
        metric.last_modified_date = now;
        Ok(metric.clone())
    }

    /// Deletes a custom metric. It must first be removed from every security profile that
    /// evaluates or retains it.
    pub fn delete_custom_metric(&mut self, name: &str) -> Result<()> {
        if !self.custom_metrics.contains_key(name) {
            return Err(custom_metric_not_found(name));
        }
        let users = self.profiles_using(|metric, _| metric == name);
        if !users.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "custom metric `{name}` is used by security profiles {}; remove it from their \
                 behaviors and metrics to retain first",
                quoted(&users)
            )));
        }
        self.custom_metrics.remove(name);
        Ok(())
    }

    /// Returns the names of all custom metrics, sorted.
    pub fn list_custom_metrics(&self) -> Vec<String> {
        self.custom_metrics.keys().cloned().collect()
    }

    /// Creates a dimension of topic filters that behaviors may narrow their metrics with.
    pub fn create_dimension(
        &mut self,
        name: &str,
        string_values: Vec<String>,
        now: Timestamp,
    ) -> Result<Dimension> {
        let mut problems = validate::validate_resource_name(name, "name");
        problems.extend(validate::validate_dimension_values(&string_values));
        reject_problems(problems)?;
        if self.dimensions.contains_key(name) {
            return Err(Error::ResourceAlreadyExists(format!(
                "dimension `{name}` already exists"
            )));
        }
        let dimension = Dimension {
            name: name.to_string(),
            arn: self.arn(&format!("dimension/{name}")),
            dimension_type: DimensionType::TopicFilter,
            string_values,
            creation_date: now,
            last_modified_date: now,
        };
        self.dimensions.insert(name.to_string(), dimension.clone());
        Ok(dimension)
    }

    /// Returns a dimension.
    pub fn describe_dimension(&self, name: &str) -> Result<Dimension> {
        self.dimensions
            .get(name)
            .cloned()
            .ok_or_else(|| dimension_not_found(name))
    }

    /// Replaces a dimension's values. Its type cannot change.
    pub fn update_dimension(
        &mut self,
        name: &str,
        string_values: Vec<String>,
        now: Timestamp,
    ) -> Result<Dimension> {
        reject_problems(validate::validate_dimension_values(&string_values))?;
        let dimension = self
            .dimensions
            .get_mut(name)
            .ok_or_else(|| dimension_not_found(name))?;
        dimension.string_values = string_values;
        dimension.last_modified_date = now;
        Ok(dimension.clone())
    }

    /// Deletes a dimension. No security profile may refer to it any more.
    pub fn delete_dimension(&mut self, name: &str) -> Result<()> {
        if !self.dimensions.contains_key(name) {
            return Err(dimension_not_found(name));
        }
        let users = self.profiles_using(|_, dimension| dimension == Some(name));
        if !users.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "dimension `{name}` is used by security profiles {}; remove it from their \
                 behaviors and metrics to retain first",
                quoted(&users)
            )));
        }
        self.dimensions.remove(name);
        Ok(())
    }

    /// Returns the names of all dimensions, sorted.
    pub fn list_dimensions(&self) -> Vec<String> {
        self.dimensions.keys().cloned().collect()
    }

    /// Returns the names of the profiles, sorted, with a behavior or metric to retain for which
    /// `uses(metric, dimension)` is true.
    pub(super) fn profiles_using(&self, uses: impl Fn(&str, Option<&str>) -> bool) -> Vec<String> {
        self.profiles
            .values()
            .filter(|p| {
                p.stored
                    .profile
                    .metric_uses()
                    .any(|(metric, dimension)| uses(metric, dimension))
            })
            .map(|p| p.stored.profile.name.clone())
            .collect()
    }
}

pub(super) fn custom_metric_not_found(name: &str) -> Error {
    Error::ResourceNotFound(format!("custom metric `{name}` does not exist"))
}

pub(super) fn dimension_not_found(name: &str) -> Error {
    Error::ResourceNotFound(format!("dimension `{name}` does not exist"))
}

fn quoted(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use crate::error::{Error, ValidationError};
    use crate::model::{
        Behavior, BehaviorCriteria, ComparisonOperator, CustomMetric, CustomMetricType,
        DimensionType, MetricDimension, MetricToRetain, MetricValue, SecurityProfile,
    };
    use crate::{Engine, EngineConfig};

    fn engine() -> Engine {
        Engine::new(EngineConfig::default())
    }

    fn topics() -> Vec<String> {
        vec!["sensors/+/temperature".to_string(), "alerts/#".to_string()]
    }

    fn battery_behavior() -> Behavior {
        Behavior {
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
        }
    }

    fn topic_dimension(name: &str) -> Option<MetricDimension> {
        Some(MetricDimension {
            dimension_name: name.to_string(),
            operator: None,
        })
    }

    fn sent_on_topics(dimension: &str) -> Behavior {
        Behavior {
            name: "sent-on-topics".to_string(),
            metric: Some("aws:num-messages-sent".to_string()),
            metric_dimension: topic_dimension(dimension),
            criteria: Some(BehaviorCriteria {
                comparison_operator: Some(ComparisonOperator::LessThan),
                value: Some(MetricValue::count(50)),
                ..BehaviorCriteria::default()
            }),
            suppress_alerts: None,
            export_metric: None,
        }
    }

    fn profile(name: &str, behaviors: Vec<Behavior>) -> SecurityProfile {
        SecurityProfile {
            name: name.to_string(),
            behaviors,
            ..SecurityProfile::default()
        }
    }

    fn validation_fields(error: Error) -> Vec<String> {
        match error {
            Error::ValidationFailed(problems) => problems.into_iter().map(|p| p.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn custom_metric_keeps_its_metadata() {
        let mut engine = engine();
        let created = engine
            .create_custom_metric(
                "battery-level",
                CustomMetricType::Number,
                Some("Battery level".to_string()),
                1_600_000_000_000,
            )
            .unwrap();
        let expected = CustomMetric {
            metric_name: "battery-level".to_string(),
            metric_arn: "arn:aws:iot:us-east-1:123456789012:custommetric/battery-level".to_string(),
            metric_type: CustomMetricType::Number,
            display_name: Some("Battery level".to_string()),
            creation_date: 1_600_000_000_000,
            last_modified_date: 1_600_000_000_000,
        };
        assert_eq!(created, expected);
        assert_eq!(engine.describe_custom_metric("battery-level"), Ok(expected));
    }

    #[test]
    fn custom_metric_serializes_with_aws_field_names() {
        let metric = CustomMetric {
            metric_name: "battery-level".to_string(),
            metric_arn: "arn:aws:iot:us-east-1:123456789012:custommetric/battery-level".to_string(),
            metric_type: CustomMetricType::NumberList,
            display_name: None,
            creation_date: 1_600_799_559_249,
            last_modified_date: 1_600_799_560_000,
        };
        let json = serde_json::to_value(&metric).unwrap();
        let expected = serde_json::json!({
            "metricName": "battery-level",
            "metricArn": "arn:aws:iot:us-east-1:123456789012:custommetric/battery-level",
            "metricType": "number-list",
            "creationDate": 1_600_799_559.249,
            "lastModifiedDate": 1_600_799_560.0,
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn custom_metric_rejects_taken_or_aws_names() {
        let mut engine = engine();
        engine
            .create_custom_metric("battery-level", CustomMetricType::Number, None, 0)
            .unwrap();
        let duplicate =
            engine.create_custom_metric("battery-level", CustomMetricType::StringList, None, 0);
        assert_eq!(
            duplicate,
            Err(Error::ResourceAlreadyExists(
                "custom metric `battery-level` already exists".to_string()
            ))
        );
        let reserved = engine
            .create_custom_metric("aws:battery", CustomMetricType::Number, None, 0)
            .unwrap_err();
        assert_eq!(validation_fields(reserved), vec!["metricName"]);
    }

    #[test]
    fn display_name_longer_than_128_characters_is_rejected() {
        let mut engine = engine();
        let long = "x".repeat(129);
        let error = engine
            .create_custom_metric("battery-level", CustomMetricType::Number, Some(long), 0)
            .unwrap_err();
        assert_eq!(
            error,
            Error::ValidationFailed(vec![ValidationError::new(
                "displayName",
                "must be at most 128 characters, got 129"
            )])
        );
        assert_eq!(engine.list_custom_metrics(), Vec::<String>::new());
    }

    #[test]
    fn update_custom_metric_sets_display_name_and_date() {
        let mut engine = engine();
        engine
            .create_custom_metric("battery-level", CustomMetricType::Number, None, 1000)
            .unwrap();
        let updated = engine
            .update_custom_metric("battery-level", "Battery %".to_string(), 5000)
            .unwrap();
        assert_eq!(updated.display_name.as_deref(), Some("Battery %"));
        assert_eq!(updated.creation_date, 1000);
        assert_eq!(updated.last_modified_date, 5000);

        let tab = engine
            .update_custom_metric("battery-level", "a\tb".to_string(), 6000)
            .unwrap_err();
        assert_eq!(validation_fields(tab), vec!["displayName"]);
        let missing = engine.update_custom_metric("nope", "Nope".to_string(), 6000);
        assert_eq!(
            missing,
            Err(Error::ResourceNotFound(
                "custom metric `nope` does not exist".to_string()
            ))
        );
    }

    #[test]
    fn custom_metrics_are_listed_sorted() {
        let mut engine = engine();
        for name in ["zeta", "alpha", "mid"] {
            engine
                .create_custom_metric(name, CustomMetricType::Number, None, 0)
                .unwrap();
        }
        assert_eq!(engine.list_custom_metrics(), vec!["alpha", "mid", "zeta"]);
    }

    #[test]
    fn custom_metric_in_use_cannot_be_deleted() {
        let mut engine = engine();
        engine
            .create_custom_metric("battery-level", CustomMetricType::Number, None, 0)
            .unwrap();
        let in_behavior = profile("by-behavior", vec![battery_behavior()]);
        engine.create_security_profile(in_behavior, 0).unwrap();
        let retained = SecurityProfile {
            additional_metrics_to_retain: vec!["battery-level".to_string()],
            ..profile("by-retain", vec![])
        };
        engine.create_security_profile(retained, 0).unwrap();

        let error = engine.delete_custom_metric("battery-level").unwrap_err();
        assert_eq!(
            error,
            Error::InvalidRequest(
                "custom metric `battery-level` is used by security profiles `by-behavior`, \
                 `by-retain`; remove it from their behaviors and metrics to retain first"
                    .to_string()
            )
        );

        engine
            .delete_security_profile("by-behavior", None, 0)
            .unwrap();
        engine
            .delete_security_profile("by-retain", None, 0)
            .unwrap();
        assert_eq!(engine.delete_custom_metric("battery-level"), Ok(()));
        assert_eq!(
            engine.delete_custom_metric("battery-level"),
            Err(Error::ResourceNotFound(
                "custom metric `battery-level` does not exist".to_string()
            ))
        );
    }

    #[test]
    fn dimension_keeps_its_values_and_dates() {
        let mut engine = engine();
        let created = engine.create_dimension("topics", topics(), 2000).unwrap();
        assert_eq!(
            created.arn,
            "arn:aws:iot:us-east-1:123456789012:dimension/topics"
        );
        assert_eq!(created.dimension_type, DimensionType::TopicFilter);
        assert_eq!(created.string_values, topics());
        assert_eq!(engine.describe_dimension("topics"), Ok(created));

        let updated = engine
            .update_dimension("topics", vec!["cmd/#".to_string()], 3000)
            .unwrap();
        assert_eq!(updated.string_values, vec!["cmd/#"]);
        assert_eq!(updated.creation_date, 2000);
        assert_eq!(updated.last_modified_date, 3000);
    }

    #[test]
    fn dimension_serializes_with_aws_field_names() {
        let mut engine = engine();
        let dimension = engine
            .create_dimension("topics", vec!["alerts/#".to_string()], 1500)
            .unwrap();
        let json = serde_json::to_value(&dimension).unwrap();
        let expected = serde_json::json!({
            "name": "topics",
            "arn": "arn:aws:iot:us-east-1:123456789012:dimension/topics",
            "type": "TOPIC_FILTER",
            "stringValues": ["alerts/#"],
            "creationDate": 1.5,
            "lastModifiedDate": 1.5,
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn dimension_values_are_validated_with_field_paths() {
        let mut engine = engine();
        let empty = engine.create_dimension("topics", vec![], 0).unwrap_err();
        assert_eq!(
            empty,
            Error::ValidationFailed(vec![ValidationError::new(
                "stringValues",
                "must have 1 to 100 values, got 0"
            )])
        );
        let values = vec!["ok/#".to_string(), String::new(), "x".repeat(257)];
        let bad = engine.create_dimension("bad name", values, 0).unwrap_err();
        assert_eq!(
            validation_fields(bad),
            vec!["name", "stringValues[1]", "stringValues[2]"]
        );
        let too_many = vec!["t".to_string(); 101];
        engine.create_dimension("topics", topics(), 0).unwrap();
        let error = engine.update_dimension("topics", too_many, 0).unwrap_err();
        assert_eq!(validation_fields(error), vec!["stringValues"]);
    }

    #[test]
    fn dimension_name_must_be_new() {
        let mut engine = engine();
        engine.create_dimension("topics", topics(), 0).unwrap();
        assert_eq!(
            engine.create_dimension("topics", topics(), 0),
            Err(Error::ResourceAlreadyExists(
                "dimension `topics` already exists".to_string()
            ))
        );
        assert_eq!(
            engine.describe_dimension("other"),
            Err(Error::ResourceNotFound(
                "dimension `other` does not exist".to_string()
            ))
        );
    }

    #[test]
    fn dimensions_are_listed_sorted() {
        let mut engine = engine();
        engine.create_dimension("topics-b", topics(), 0).unwrap();
        engine.create_dimension("topics-a", topics(), 0).unwrap();
        assert_eq!(engine.list_dimensions(), vec!["topics-a", "topics-b"]);
    }

    #[test]
    fn dimension_in_use_cannot_be_deleted() {
        let mut engine = engine();
        engine.create_dimension("topics", topics(), 0).unwrap();
        let retained = MetricToRetain {
            metric: "aws:num-messages-sent".to_string(),
            metric_dimension: topic_dimension("topics"),
            export_metric: None,
        };
        let profile = SecurityProfile {
            additional_metrics_to_retain_v2: vec![retained],
            ..profile("retains-topics", vec![])
        };
        engine.create_security_profile(profile, 0).unwrap();

        assert_eq!(
            engine.delete_dimension("topics"),
            Err(Error::InvalidRequest(
                "dimension `topics` is used by security profiles `retains-topics`; remove it \
                 from their behaviors and metrics to retain first"
                    .to_string()
            ))
        );
        engine
            .delete_security_profile("retains-topics", None, 0)
            .unwrap();
        assert_eq!(engine.delete_dimension("topics"), Ok(()));
        assert_eq!(engine.list_dimensions(), Vec::<String>::new());
    }

    #[test]
    fn profile_with_unknown_dimension_is_rejected() {
        let mut engine = engine();
        let retained = MetricToRetain {
            metric: "aws:num-messages-sent".to_string(),
            metric_dimension: topic_dimension("missing"),
            export_metric: None,
        };
        let invalid = SecurityProfile {
            additional_metrics_to_retain_v2: vec![retained],
            ..profile("guard", vec![sent_on_topics("missing")])
        };
        let error = engine.create_security_profile(invalid, 0).unwrap_err();
        let expected = "dimension `missing` does not exist; create it before using it in a profile";
        assert_eq!(
            error,
            Error::ValidationFailed(vec![
                ValidationError::new("behaviors[0].metricDimension.dimensionName", expected),
                ValidationError::new(
                    "additionalMetricsToRetainV2[0].metricDimension.dimensionName",
                    expected
                ),
            ])
        );

        engine.create_dimension("topics", topics(), 0).unwrap();
        let valid = profile("guard", vec![sent_on_topics("topics")]);
        engine.create_security_profile(valid, 0).unwrap();
        let update = profile("guard", vec![sent_on_topics("missing")]);
        let error = engine.update_security_profile(update, None, 0).unwrap_err();
        assert_eq!(
            validation_fields(error),
            vec!["behaviors[0].metricDimension.dimensionName"]
        );
    }

    #[test]
    fn unknown_metric_to_retain_is_rejected() {
        let mut engine = engine();
        let profile = SecurityProfile {
            additional_metrics_to_retain: vec!["battery-level".to_string()],
            ..profile("guard", vec![])
        };
        let error = engine.create_security_profile(profile, 0).unwrap_err();
        assert_eq!(
            validation_fields(error),
            vec!["additionalMetricsToRetain[0]"]
        );
    }
}
