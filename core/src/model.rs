//! The AWS IoT Device Defender data model, with serde names exactly as on the AWS wire
//! (camelCase fields, kebab-case or upper-case enum values). Timestamps are kept as milliseconds
//! since the Unix epoch and written as fractional epoch seconds, the way the AWS API writes them.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC, in event time.
pub type Timestamp = i64;

/// A metric value; the member that matches the metric's type is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricValue {
    /// Count for built-in numeric metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// CIDR blocks for address metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidrs: Option<Vec<String>>,
    /// Ports for port-list metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Value of a custom `number` metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    /// Values of a custom `number-list` metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers: Option<Vec<f64>>,
    /// Values of a custom `string-list` metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strings: Option<Vec<String>>,
}

impl MetricValue {
    /// Creates a value with only `count` set.
    pub fn count(count: u64) -> Self {
        Self {
            count: Some(count),
            ..Self::default()
        }
    }

    /// Creates a value with only `number` set.
    pub fn number(number: f64) -> Self {
        Self {
            number: Some(number),
            ..Self::default()
        }
    }

    /// Returns the scalar this value carries, if it is a `count` or a `number`.
    pub fn as_scalar(&self) -> Option<f64> {
        self.count.map(|c| c as f64).or(self.number)
    }
}

/// Comparison between a datapoint and a behavior's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComparisonOperator {
    /// `less-than` on the wire.
    LessThan,
    /// `less-than-equals` on the wire.
    LessThanEquals,
    /// `greater-than` on the wire.
    GreaterThan,
    /// `greater-than-equals` on the wire.
    GreaterThanEquals,
    /// `in-cidr-set` on the wire.
    InCidrSet,
    /// `not-in-cidr-set` on the wire.
    NotInCidrSet,
    /// `in-port-set` on the wire.
    InPortSet,
    /// `not-in-port-set` on the wire.
    NotInPortSet,
    /// `in-set` on the wire.
    InSet,
    /// `not-in-set` on the wire.
    NotInSet,
}

/// ML Detect sensitivity: `High` raises the fewest alarms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConfidenceLevel {
    /// `LOW` on the wire.
    Low,
    /// `MEDIUM` on the wire.
    Medium,
    /// `HIGH` on the wire.
    High,
}

/// Whether a dimension keeps the messages that match its filters or the ones that match none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DimensionValueOperator {
    /// `IN` on the wire.
    In,
    /// `NOT_IN` on the wire.
    NotIn,
}

/// A dimension narrowing a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricDimension {
    /// Name of the dimension.
    pub dimension_name: String,
    /// `IN` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<DimensionValueOperator>,
}

/// A fleet percentile such as `p90`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatisticalThreshold {
    /// The percentile, for example `p99.9`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
}

/// ML Detect settings of a behavior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineLearningDetectionConfig {
    /// Sensitivity of the model.
    pub confidence_level: ConfidenceLevel,
}

/// The criteria of a behavior. Integers are wide and signed so that out-of-range input reaches
/// validation instead of failing to parse.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BehaviorCriteria {
    /// Comparison for static and statistical criteria.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison_operator: Option<ComparisonOperator>,
    /// Threshold for static criteria.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<MetricValue>,
    /// Window the datapoints are summed over, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    /// Violating datapoints in a row before an alarm, 1 to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_datapoints_to_alarm: Option<i64>,
    /// Conforming datapoints in a row before the alarm clears, 1 to 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_datapoints_to_clear: Option<i64>,
    /// Fleet percentile threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistical_threshold: Option<StatisticalThreshold>,
    /// ML Detect settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_detection_config: Option<MachineLearningDetectionConfig>,
}

/// The kind of criteria a behavior uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BehaviorCriteriaType {
    /// `STATIC` on the wire.
    Static,
    /// `STATISTICAL` on the wire.
    Statistical,
    /// `MACHINE_LEARNING` on the wire.
    MachineLearning,
}

impl BehaviorCriteria {
    /// Returns the kind of criteria, decided by which of the threshold members is set.
    pub fn criteria_type(&self) -> BehaviorCriteriaType {
        if self.ml_detection_config.is_some() {
            BehaviorCriteriaType::MachineLearning
        } else if self.statistical_threshold.is_some() {
            BehaviorCriteriaType::Statistical
        } else {
            BehaviorCriteriaType::Static
        }
    }

    /// Violating datapoints in a row before an alarm, defaulting to 1.
    pub fn datapoints_to_alarm(&self) -> u32 {
        clamp_consecutive(self.consecutive_datapoints_to_alarm)
    }

    /// Conforming datapoints in a row before the alarm clears, defaulting to 1.
    pub fn datapoints_to_clear(&self) -> u32 {
        clamp_consecutive(self.consecutive_datapoints_to_clear)
    }
}

fn clamp_consecutive(value: Option<i64>) -> u32 {
    value.unwrap_or(1).clamp(1, 10) as u32
}

/// A behavior: the expected state of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Behavior {
    /// Unique within the profile.
    pub name: String,
    /// An `aws:` metric or a custom metric name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Narrows the metric to some topics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_dimension: Option<MetricDimension>,
    /// Absent criteria mean the metric is only retained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criteria: Option<BehaviorCriteria>,
    /// Record violations without alerting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppress_alerts: Option<bool>,
    /// Export the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_metric: Option<bool>,
}

impl Behavior {
    /// Creates an ML Detect behavior on `metric` at `level`, with AWS's defaults for everything
    /// else.
    pub fn machine_learning(name: &str, metric: &str, level: ConfidenceLevel) -> Self {
        Self {
            name: name.to_string(),
            metric: Some(metric.to_string()),
            metric_dimension: None,
            criteria: Some(BehaviorCriteria {
                ml_detection_config: Some(MachineLearningDetectionConfig {
                    confidence_level: level,
                }),
                ..BehaviorCriteria::default()
            }),
            suppress_alerts: None,
            export_metric: None,
        }
    }

    /// Returns the kind of criteria, or `None` for a behavior without criteria.
    pub fn criteria_type(&self) -> Option<BehaviorCriteriaType> {
        self.criteria.as_ref().map(BehaviorCriteria::criteria_type)
    }

    /// Returns whether alerts for this behavior are suppressed.
    pub fn is_suppressed(&self) -> bool {
        self.suppress_alerts.unwrap_or(false)
    }
}

/// An alert target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertTarget {
    /// ARN of the SNS topic.
    pub alert_target_arn: String,
    /// Role used to publish.
    pub role_arn: String,
}

/// A metric retained without a behavior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricToRetain {
    /// The metric.
    pub metric: String,
    /// Narrows the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_dimension: Option<MetricDimension>,
    /// Export the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_metric: Option<bool>,
}

/// A security profile as written by the caller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityProfile {
    /// 1 to 128 characters of `[a-zA-Z0-9:_-]`.
    #[serde(rename = "securityProfileName")]
    pub name: String,
    /// Free text.
    #[serde(
        rename = "securityProfileDescription",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// The behaviors.
    #[serde(default)]
    pub behaviors: Vec<Behavior>,
    /// Alert targets keyed by type. AWS accepts only the `SNS` type.
    #[serde(default)]
    pub alert_targets: std::collections::BTreeMap<String, AlertTarget>,
    /// Metric names retained without a behavior. This is the deprecated form of
    /// `additionalMetricsToRetainV2`, which AWS still accepts and returns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_metrics_to_retain: Vec<String>,
    /// Metrics retained without a behavior.
    #[serde(default, rename = "additionalMetricsToRetainV2")]
    pub additional_metrics_to_retain_v2: Vec<MetricToRetain>,
}

impl SecurityProfile {
    /// Lists every metric the profile evaluates or retains, each with the name of its dimension:
    /// the behaviors, then `additionalMetricsToRetain`, then `additionalMetricsToRetainV2`.
    pub fn metric_uses(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let behaviors = self.behaviors.iter().filter_map(|behavior| {
            let metric = behavior.metric.as_deref()?;
            Some((metric, dimension_of(&behavior.metric_dimension)))
        });
        let retained = self
            .additional_metrics_to_retain
            .iter()
            .map(|metric| (metric.as_str(), None));
        let retained_v2 = self
            .additional_metrics_to_retain_v2
            .iter()
            .map(|r| (r.metric.as_str(), dimension_of(&r.metric_dimension)));
        behaviors.chain(retained).chain(retained_v2)
    }
}

fn dimension_of(dimension: &Option<MetricDimension>) -> Option<&str> {
    dimension.as_ref().map(|d| d.dimension_name.as_str())
}

/// A stored security profile with its version and dates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecurityProfile {
    /// The profile as last written.
    #[serde(flatten)]
    pub profile: SecurityProfile,
    /// ARN of the profile.
    #[serde(rename = "securityProfileArn")]
    pub arn: String,
    /// Starts at 1.
    pub version: u64,
    /// Creation time.
    #[serde(with = "epoch_seconds")]
    pub creation_date: Timestamp,
    /// Last update time.
    #[serde(with = "epoch_seconds")]
    pub last_modified_date: Timestamp,
}

/// A person's verdict on a violation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerificationState {
    /// `FALSE_POSITIVE` on the wire.
    FalsePositive,
    /// `BENIGN_POSITIVE` on the wire.
    BenignPositive,
    /// `TRUE_POSITIVE` on the wire.
    TruePositive,
    /// `UNKNOWN` on the wire.
    #[default]
    Unknown,
}

/// A transition in a violation's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationEventType {
    /// `in-alarm` on the wire.
    InAlarm,
    /// `alarm-cleared` on the wire.
    AlarmCleared,
    /// `alarm-invalidated` on the wire.
    AlarmInvalidated,
}

/// The ML model's reasons for flagging a datapoint, a Vigil extension to the AWS shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlExplanation {
    /// Lower end of the learned range for the datapoint's time of day.
    pub expected_low: f64,
    /// Upper end of the learned range for the datapoint's time of day.
    pub expected_high: f64,
    /// The scored value.
    pub observed: f64,
    /// From 0 (typical) to 1 (far outside anything learned).
    pub anomaly_score: f64,
}

/// Extra information on a violation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationEventAdditionalInfo {
    /// The behavior's confidence level, for ML behaviors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_level: Option<ConfidenceLevel>,
    /// The model's explanation, for ML behaviors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<MlExplanation>,
}

/// A violation in alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveViolation {
    /// 32 lowercase hex characters.
    pub violation_id: String,
    /// The thing.
    pub thing_name: String,
    /// The profile.
    pub security_profile_name: String,
    /// The behavior when the alarm was raised.
    pub behavior: Behavior,
    /// Latest violating value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_violation_value: Option<MetricValue>,
    /// ML details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation_event_additional_info: Option<ViolationEventAdditionalInfo>,
    /// Human label.
    pub verification_state: VerificationState,
    /// Free text with the label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_state_description: Option<String>,
    /// Latest violating datapoint.
    #[serde(with = "epoch_seconds")]
    pub last_violation_time: Timestamp,
    /// When the alarm was raised.
    #[serde(with = "epoch_seconds")]
    pub violation_start_time: Timestamp,
}

/// One transition of a violation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationEvent {
    /// The violation.
    pub violation_id: String,
    /// The thing.
    pub thing_name: String,
    /// The profile.
    pub security_profile_name: String,
    /// The behavior at the event.
    pub behavior: Behavior,
    /// The datapoint behind the event; absent for invalidations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_value: Option<MetricValue>,
    /// ML details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation_event_additional_info: Option<ViolationEventAdditionalInfo>,
    /// Transition kind.
    pub violation_event_type: ViolationEventType,
    /// Human label.
    pub verification_state: VerificationState,
    /// Free text with the label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_state_description: Option<String>,
    /// Event time.
    #[serde(with = "epoch_seconds")]
    pub violation_event_time: Timestamp,
}

/// State of an ML model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelStatus {
    /// `PENDING_BUILD` on the wire.
    PendingBuild,
    /// `ACTIVE` on the wire.
    Active,
    /// `EXPIRED` on the wire.
    Expired,
}

/// Training progress of an ML behavior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BehaviorModelTrainingSummary {
    /// The profile.
    pub security_profile_name: String,
    /// The behavior.
    pub behavior_name: String,
    /// First datapoint collected.
    #[serde(
        with = "epoch_seconds_option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub training_data_collection_start_date: Option<Timestamp>,
    /// Model state.
    pub model_status: ModelStatus,
    /// 0 to 100.
    pub datapoints_collection_percentage: f64,
    /// Last rebuild.
    #[serde(
        with = "epoch_seconds_option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub last_model_refresh_date: Option<Timestamp>,
}

/// Parameters of `ADD_THINGS_TO_THING_GROUP`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddThingsToThingGroupParams {
    /// 1 to 10 groups.
    pub thing_group_names: Vec<String>,
    /// Evict dynamic groups at the group limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_dynamic_groups: Option<bool>,
}

/// Parameters of the certificate actions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCertificateParams {
    /// Only `DEACTIVATE`.
    pub action: String,
}

/// Parameters of `REPLACE_DEFAULT_POLICY_VERSION`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplaceDefaultPolicyVersionParams {
    /// Only `BLANK_POLICY`.
    pub template_name: String,
}

/// Parameters of `ENABLE_IOT_LOGGING`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableIotLoggingParams {
    /// Role used for logging.
    pub role_arn_for_logging: String,
    /// `DEBUG`, `INFO`, `ERROR`, `WARN` or `DISABLED`.
    pub log_level: String,
}

/// Parameters of `PUBLISH_FINDING_TO_SNS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishFindingToSnsParams {
    /// Topic ARN.
    pub topic_arn: String,
}

/// Mitigation action parameters; exactly one member is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MitigationActionParams {
    /// Deactivate the device certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_device_certificate_params: Option<UpdateCertificateParams>,
    /// Deactivate the CA certificate.
    #[serde(
        rename = "updateCACertificateParams",
        skip_serializing_if = "Option::is_none"
    )]
    pub update_ca_certificate_params: Option<UpdateCertificateParams>,
    /// Add the thing to groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_things_to_thing_group_params: Option<AddThingsToThingGroupParams>,
    /// Replace the default policy version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_default_policy_version_params: Option<ReplaceDefaultPolicyVersionParams>,
    /// Enable logging.
    #[serde(
        rename = "enableIoTLoggingParams",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_iot_logging_params: Option<EnableIotLoggingParams>,
    /// Publish to a topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_finding_to_sns_params: Option<PublishFindingToSnsParams>,
}

/// Mitigation action types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MitigationActionType {
    /// `UPDATE_DEVICE_CERTIFICATE` on the wire.
    UpdateDeviceCertificate,
    /// `UPDATE_CA_CERTIFICATE` on the wire.
    #[serde(rename = "UPDATE_CA_CERTIFICATE")]
    UpdateCaCertificate,
    /// `ADD_THINGS_TO_THING_GROUP` on the wire.
    AddThingsToThingGroup,
    /// `REPLACE_DEFAULT_POLICY_VERSION` on the wire.
    ReplaceDefaultPolicyVersion,
    /// `ENABLE_IOT_LOGGING` on the wire.
    #[serde(rename = "ENABLE_IOT_LOGGING")]
    EnableIotLogging,
    /// `PUBLISH_FINDING_TO_SNS` on the wire.
    PublishFindingToSns,
}

impl MitigationActionParams {
    /// Returns the types of every member that is set, in declaration order.
    pub fn set_types(&self) -> Vec<MitigationActionType> {
        use MitigationActionType as T;
        let members = [
            (
                self.update_device_certificate_params.is_some(),
                T::UpdateDeviceCertificate,
            ),
            (
                self.update_ca_certificate_params.is_some(),
                T::UpdateCaCertificate,
            ),
            (
                self.add_things_to_thing_group_params.is_some(),
                T::AddThingsToThingGroup,
            ),
            (
                self.replace_default_policy_version_params.is_some(),
                T::ReplaceDefaultPolicyVersion,
            ),
            (
                self.enable_iot_logging_params.is_some(),
                T::EnableIotLogging,
            ),
            (
                self.publish_finding_to_sns_params.is_some(),
                T::PublishFindingToSns,
            ),
        ];
        members
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, t)| t)
            .collect()
    }
}

/// A stored mitigation action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MitigationAction {
    /// 1 to 128 characters of `[a-zA-Z0-9_-]`.
    pub action_name: String,
    /// UUID.
    pub action_id: String,
    /// ARN.
    pub action_arn: String,
    /// Role the action runs as.
    pub role_arn: String,
    /// Parameters.
    pub action_params: MitigationActionParams,
    /// Derived from the parameters.
    pub action_type: MitigationActionType,
    /// Creation time.
    #[serde(with = "epoch_seconds")]
    pub creation_date: Timestamp,
    /// Last update.
    #[serde(with = "epoch_seconds")]
    pub last_modified_date: Timestamp,
}

/// Target of a mitigation task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectMitigationActionsTaskTarget {
    /// 1 to 25 violation ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation_ids: Option<Vec<String>>,
    /// A whole profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_profile_name: Option<String>,
    /// One behavior of the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior_name: Option<String>,
}

/// A time range, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViolationEventOccurrenceRange {
    /// Start.
    #[serde(with = "epoch_seconds")]
    pub start_time: Timestamp,
    /// End.
    #[serde(with = "epoch_seconds")]
    pub end_time: Timestamp,
}

/// A request to start a detect mitigation task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRequest {
    /// The task id.
    pub task_id: String,
    /// What the task acts on.
    pub target: DetectMitigationActionsTaskTarget,
    /// Action names in order.
    pub actions: Vec<String>,
    /// Event range filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation_event_occurrence_range: Option<ViolationEventOccurrenceRange>,
    /// Only violations still in alarm.
    #[serde(default)]
    pub include_only_active_violations: bool,
    /// Include suppressed alerts.
    #[serde(default)]
    pub include_suppressed_alerts: bool,
}

/// Status of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// `IN_PROGRESS` on the wire.
    InProgress,
    /// `SUCCESSFUL` on the wire.
    Successful,
    /// `FAILED` on the wire.
    Failed,
    /// `CANCELED` on the wire.
    Canceled,
}

/// Status of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// `IN_PROGRESS` on the wire.
    InProgress,
    /// `SUCCESSFUL` on the wire.
    Successful,
    /// `FAILED` on the wire.
    Failed,
    /// `SKIPPED` on the wire.
    Skipped,
}

/// Execution counts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatistics {
    /// Executions that ran.
    pub actions_executed: u64,
    /// Executions skipped.
    pub actions_skipped: u64,
    /// Executions that failed.
    pub actions_failed: u64,
}

/// A detect mitigation task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectMitigationActionsTaskSummary {
    /// The task id.
    pub task_id: String,
    /// Status.
    pub task_status: TaskStatus,
    /// Start time.
    #[serde(with = "epoch_seconds")]
    pub task_start_time: Timestamp,
    /// End time, once done.
    #[serde(
        with = "epoch_seconds_option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub task_end_time: Option<Timestamp>,
    /// Target.
    pub target: DetectMitigationActionsTaskTarget,
    /// Event range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation_event_occurrence_range: Option<ViolationEventOccurrenceRange>,
    /// Whether only active violations were included.
    pub only_active_violations_included: bool,
    /// Whether suppressed alerts were included.
    pub suppressed_alerts_included: bool,
    /// Action snapshots.
    pub actions_definition: Vec<MitigationAction>,
    /// Counts.
    pub task_statistics: TaskStatistics,
}

/// One execution of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectMitigationActionExecution {
    /// The task.
    pub task_id: String,
    /// The violation.
    pub violation_id: String,
    /// The action.
    pub action_name: String,
    /// The thing.
    pub thing_name: String,
    /// Start, once started.
    #[serde(
        with = "epoch_seconds_option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub execution_start_date: Option<Timestamp>,
    /// End, once ended.
    #[serde(
        with = "epoch_seconds_option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub execution_end_date: Option<Timestamp>,
    /// Status.
    pub status: ExecutionStatus,
    /// Failure code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Failure or skip reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Serde helpers writing millisecond timestamps as fractional epoch seconds.
pub mod epoch_seconds {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes milliseconds as seconds with a fractional part.
    pub fn serialize<S: Serializer>(ms: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(*ms as f64 / 1000.0)
    }

    /// Reads seconds, integral or fractional, into milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Ok((seconds * 1000.0).round() as Timestamp)
    }
}

/// [`epoch_seconds`] for optional timestamps.
pub mod epoch_seconds_option {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes milliseconds as seconds with a fractional part.
    pub fn serialize<S: Serializer>(
        ms: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => serializer.serialize_some(&(*ms as f64 / 1000.0)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads optional seconds into milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let seconds = Option::<f64>::deserialize(deserializer)?;
        Ok(seconds.map(|s| (s * 1000.0).round() as Timestamp))
    }
}

/// Type of a custom metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CustomMetricType {
    /// `string-list` on the wire.
    StringList,
    /// `ip-address-list` on the wire.
    IpAddressList,
    /// `number-list` on the wire.
    NumberList,
    /// `number` on the wire.
    Number,
}

/// A custom metric as `describe-custom-metric` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomMetric {
    /// 1 to 128 characters of `[a-zA-Z0-9:_-]`, not starting with `aws:`.
    pub metric_name: String,
    /// ARN ending in `custommetric/{metricName}`.
    pub metric_arn: String,
    /// Type of the values devices report, fixed at creation.
    pub metric_type: CustomMetricType,
    /// Name shown in consoles, at most 128 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Creation time.
    #[serde(with = "epoch_seconds")]
    pub creation_date: Timestamp,
    /// Last update time.
    #[serde(with = "epoch_seconds")]
    pub last_modified_date: Timestamp,
}

/// Type of a dimension. AWS defines only topic filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DimensionType {
    /// `TOPIC_FILTER` on the wire: the values are MQTT topic filters.
    TopicFilter,
}

/// A dimension as `describe-dimension` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dimension {
    /// 1 to 128 characters of `[a-zA-Z0-9:_-]`.
    pub name: String,
    /// ARN ending in `dimension/{name}`.
    pub arn: String,
    /// Type of the values, fixed at creation.
    #[serde(rename = "type")]
    pub dimension_type: DimensionType,
    /// 1 to 100 values of 1 to 256 characters each.
    pub string_values: Vec<String>,
    /// Creation time.
    #[serde(with = "epoch_seconds")]
    pub creation_date: Timestamp,
    /// Last update time.
    #[serde(with = "epoch_seconds")]
    pub last_modified_date: Timestamp,
}
