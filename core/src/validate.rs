//! Validation of security profiles, behaviors, mitigation actions and mitigation task requests.
//!
//! Every function walks the whole input and returns all the problems it finds, each with the JSON
//! path of the offending field in AWS camelCase (`behaviors[2].criteria.durationSeconds`). An
//! empty list means the input is valid. The limits and patterns are those of the AWS IoT API model
//! (`2015-05-28`) and the Device Defender developer guide. Checks that need stored state, such as
//! whether a thing group or a mitigation action exists, are left to the caller.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use crate::catalogue::{
    ALLOWED_DURATIONS_SECONDS, ALLOWED_STATISTICS, BUILT_IN_METRICS, MetricSpec, ValueKind,
    built_in, statistic_fraction,
};
use crate::error::ValidationError;
use crate::model::{
    AlertTarget, Behavior, BehaviorCriteria, BehaviorCriteriaType, ComparisonOperator,
    CustomMetricType, DetectMitigationActionsTaskTarget, EnableIotLoggingParams, MetricDimension,
    MetricToRetain, MetricValue, MitigationActionParams, MitigationActionType, SecurityProfile,
    TaskRequest,
};

/// The custom metrics and dimensions defined in an account, which behaviors refer to by name.
pub trait Definitions {
    /// Returns the type of the custom metric called `name`, or `None` when no such metric exists.
    fn custom_metric_type(&self, name: &str) -> Option<CustomMetricType>;

    /// Returns whether a dimension called `name` exists.
    fn has_dimension(&self, name: &str) -> bool;
}

/// A map of custom metric types contains no dimensions, so it accepts every dimension name and
/// only the name's format is checked.
impl Definitions for BTreeMap<String, CustomMetricType> {
    fn custom_metric_type(&self, name: &str) -> Option<CustomMetricType> {
        self.get(name).copied()
    }

    fn has_dimension(&self, _name: &str) -> bool {
        true
    }
}

/// Validates a list of behaviors, as `ValidateSecurityProfileBehaviors` does.
///
/// Paths start with `behaviors[i]`. Besides each behavior's own rules, the list may hold at most
/// 100 behaviors and every name must be unique. The later of two duplicates gets the error.
pub fn validate_behaviors(
    behaviors: &[Behavior],
    custom: &dyn Definitions,
) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    if behaviors.len() > MAX_BEHAVIORS {
        errors.push(
            "behaviors",
            format!(
                "must have at most {MAX_BEHAVIORS} behaviors, got {}",
                behaviors.len()
            ),
        );
    }

    let mut first_index_by_name: HashMap<&str, usize> = HashMap::new();
    for (index, behavior) in behaviors.iter().enumerate() {
        let path = format!("behaviors[{index}]");
        check_behavior(&mut errors, &path, behavior, custom);

        // Behavior names key violations and ML models, so two behaviors must not share one.
        match first_index_by_name.get(behavior.name.as_str()) {
            Some(first) => errors.push(
                format!("{path}.name"),
                format!(
                    "duplicate behavior name `{}`, already used by behaviors[{first}]",
                    behavior.name
                ),
            ),
            None => {
                first_index_by_name.insert(&behavior.name, index);
            }
        }
    }
    errors.0
}

/// Validates a security profile as `CreateSecurityProfile` and `UpdateSecurityProfile` take it.
pub fn validate_security_profile(
    profile: &SecurityProfile,
    custom: &dyn Definitions,
) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_name(
        &mut errors,
        "securityProfileName",
        &profile.name,
        &RESOURCE_NAME,
    );
    if let Some(description) = &profile.description {
        check_description(&mut errors, "securityProfileDescription", description);
    }
    let behavior_errors = validate_behaviors(&profile.behaviors, custom);
    errors.0.extend(behavior_errors);
    check_alert_targets(&mut errors, &profile.alert_targets);
    for (index, metric) in profile.additional_metrics_to_retain.iter().enumerate() {
        if let Err(message) = resolve_metric(metric, custom) {
            errors.push(format!("additionalMetricsToRetain[{index}]"), message);
        }
    }
    for (index, retained) in profile.additional_metrics_to_retain_v2.iter().enumerate() {
        let path = format!("additionalMetricsToRetainV2[{index}]");
        check_metric_to_retain(&mut errors, &path, retained, custom);
    }
    errors.0
}

/// Validates the input of `CreateMitigationAction`.
///
/// Paths are `actionName`, `roleArn` and `actionParams.…`. Every params member that is set is
/// checked, even when more than one is set.
pub fn validate_mitigation_action(
    action_name: &str,
    role_arn: &str,
    params: &MitigationActionParams,
) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_name(&mut errors, "actionName", action_name, &ACTION_NAME);
    check_length(&mut errors, "roleArn", role_arn, ROLE_ARN_LENGTH);
    check_params_member_count(&mut errors, params);
    check_action_params(&mut errors, params);
    errors.0
}

/// Validates the input of `StartDetectMitigationActionsTask`.
///
/// Only the shape is checked here. Whether the actions, profile and violations exist is up to the
/// caller.
pub fn validate_task_request(request: &TaskRequest) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_name(&mut errors, "taskId", &request.task_id, &TASK_ID);
    check_task_target(&mut errors, &request.target);

    check_count(
        &mut errors,
        "actions",
        request.actions.len(),
        TASK_ACTION_COUNT,
        "actions",
    );
    for (index, action) in request.actions.iter().enumerate() {
        check_name(
            &mut errors,
            &format!("actions[{index}]"),
            action,
            &ACTION_NAME,
        );
    }

    if let Some(range) = &request.violation_event_occurrence_range
        && range.start_time > range.end_time
    {
        errors.push(
            "violationEventOccurrenceRange.startTime",
            format!(
                "must not be after endTime, got startTime {} and endTime {} (epoch seconds)",
                epoch_seconds(range.start_time),
                epoch_seconds(range.end_time),
            ),
        );
    }
    errors.0
}

/// Validates a thing name: 1 to 128 bytes of UTF-8 without control characters.
pub fn validate_thing_name(name: &str, field: &str) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    if !NAME_LENGTH.contains(&name.len()) {
        errors.push(
            field,
            format!("must be 1 to 128 bytes of UTF-8, got {} bytes", name.len()),
        );
    }
    if let Some(control) = name.chars().find(|c| c.is_control()) {
        errors.push(
            field,
            format!("must not contain control characters, found {control:?}"),
        );
    }
    errors.0
}

/// Validates the name of a security profile, behavior, thing group, dimension or custom metric:
/// 1 to 128 characters of `[a-zA-Z0-9:_-]`.
pub fn validate_resource_name(name: &str, field: &str) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_name(&mut errors, field, name, &RESOURCE_NAME);
    errors.0
}

/// Validates the input of `CreateCustomMetric`: the name, which must not start with `aws:`, and
/// the optional display name.
pub fn validate_custom_metric(name: &str, display_name: Option<&str>) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_name(&mut errors, "metricName", name, &RESOURCE_NAME);
    if name.starts_with("aws:") {
        errors.push(
            "metricName",
            "custom metric names must not start with `aws:`",
        );
    }
    if let Some(display_name) = display_name {
        check_display_name(&mut errors, display_name);
    }
    errors.0
}

/// Validates a custom metric's `displayName`: at most 128 printable characters or spaces.
pub fn validate_display_name(display_name: &str) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_display_name(&mut errors, display_name);
    errors.0
}

/// Validates the `stringValues` of a dimension: 1 to 100 values of 1 to 256 characters each.
pub fn validate_dimension_values(string_values: &[String]) -> Vec<ValidationError> {
    let mut errors = Errors::default();
    check_count(
        &mut errors,
        "stringValues",
        string_values.len(),
        DIMENSION_VALUE_COUNT,
        "values",
    );
    for (index, value) in string_values.iter().enumerate() {
        let field = format!("stringValues[{index}]");
        check_length(&mut errors, &field, value, DIMENSION_VALUE_LENGTH);
    }
    errors.0
}

const NAME_LENGTH: RangeInclusive<usize> = 1..=128;
const MAX_DISPLAY_NAME_CHARS: usize = 128;
const DIMENSION_VALUE_COUNT: RangeInclusive<usize> = 1..=100;
const DIMENSION_VALUE_LENGTH: RangeInclusive<usize> = 1..=256;
const MAX_BEHAVIORS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const ROLE_ARN_LENGTH: RangeInclusive<usize> = 20..=2048;
const TOPIC_ARN_LENGTH: RangeInclusive<usize> = 1..=350;
const CIDR_LENGTH: RangeInclusive<usize> = 2..=43;
const CONSECUTIVE_DATAPOINTS: RangeInclusive<i64> = 1..=10;
const THING_GROUP_COUNT: RangeInclusive<usize> = 1..=10;
const TASK_ACTION_COUNT: RangeInclusive<usize> = 1..=5;
const VIOLATION_ID_COUNT: RangeInclusive<usize> = 1..=25;

/// Log levels `ENABLE_IOT_LOGGING` accepts. The API enum also has `DISABLED`, which the
/// mitigation action docs say is not accepted here.
const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "ERROR", "WARN"];

/// Every params member, in the order the API model declares them.
const ACTION_TYPES: [MitigationActionType; 6] = [
    MitigationActionType::UpdateDeviceCertificate,
    MitigationActionType::UpdateCaCertificate,
    MitigationActionType::AddThingsToThingGroup,
    MitigationActionType::ReplaceDefaultPolicyVersion,
    MitigationActionType::EnableIotLogging,
    MitigationActionType::PublishFindingToSns,
];

/// A character class for names that are 1 to 128 characters long.
struct NameRule {
    /// The pattern as the API model writes it, for messages.
    pattern: &'static str,
    allows: fn(char) -> bool,
}

const RESOURCE_NAME: NameRule = NameRule {
    pattern: "[a-zA-Z0-9:_-]+",
    allows: |c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'),
};

const ACTION_NAME: NameRule = NameRule {
    pattern: "[a-zA-Z0-9_-]+",
    allows: |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
};

const TASK_ID: NameRule = ACTION_NAME;

const VIOLATION_ID: NameRule = NameRule {
    pattern: "[a-zA-Z0-9-]+",
    allows: |c| c.is_ascii_alphanumeric() || c == '-',
};

/// Problems collected while walking one input.
#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError::new(field, message));
    }
}

/// The properties of a metric that criteria, values and dimensions are checked against.
#[derive(Clone, Copy)]
struct MetricRules<'a> {
    name: &'a str,
    kind: ValueKind,
    is_custom: bool,
    duration_allowed: bool,
    ml_supported: bool,
    dimension_allowed: bool,
}

impl<'a> MetricRules<'a> {
    fn built_in(spec: &MetricSpec) -> MetricRules<'static> {
        MetricRules {
            name: spec.name,
            kind: spec.kind,
            is_custom: false,
            duration_allowed: spec.duration_allowed,
            ml_supported: spec.ml_supported,
            dimension_allowed: spec.dimension_allowed,
        }
    }

    /// Custom `number` metrics take durations and ML Detect. The list types take neither, and no
    /// custom metric takes a dimension.
    fn custom(name: &'a str, metric_type: CustomMetricType) -> Self {
        let kind = match metric_type {
            CustomMetricType::Number => ValueKind::Number,
            CustomMetricType::NumberList => ValueKind::Numbers,
            CustomMetricType::StringList => ValueKind::Strings,
            CustomMetricType::IpAddressList => ValueKind::Cidrs,
        };
        let is_number = kind == ValueKind::Number;
        Self {
            name,
            kind,
            is_custom: true,
            duration_allowed: is_number,
            ml_supported: is_number,
            dimension_allowed: false,
        }
    }

    fn is_list(&self) -> bool {
        !matches!(self.kind, ValueKind::Count | ValueKind::Number)
    }
}

/// Finds the rules for a metric name, or returns the message for an unknown one.
///
/// Custom metric names cannot start with `aws:`, so such a name is only looked up among the
/// built-in metrics.
fn resolve_metric<'a>(name: &'a str, custom: &dyn Definitions) -> Result<MetricRules<'a>, String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.starts_with("aws:") {
        let spec = built_in(name).ok_or_else(|| {
            let names = join(BUILT_IN_METRICS.iter().map(|spec| spec.name));
            format!("unknown built-in metric `{name}`, expected one of {names}")
        })?;
        return Ok(MetricRules::built_in(spec));
    }
    let metric_type = custom.custom_metric_type(name).ok_or_else(|| {
        format!(
            "unknown metric `{name}`, expected a built-in `aws:` metric or an existing custom \
             metric"
        )
    })?;
    Ok(MetricRules::custom(name, metric_type))
}

fn check_behavior(errors: &mut Errors, path: &str, behavior: &Behavior, custom: &dyn Definitions) {
    check_name(
        errors,
        &format!("{path}.name"),
        &behavior.name,
        &RESOURCE_NAME,
    );

    let metric_field = format!("{path}.metric");
    let metric = match behavior.metric.as_deref() {
        None => {
            errors.push(metric_field, "is required");
            None
        }
        Some(name) => match resolve_metric(name, custom) {
            Ok(metric) => Some(metric),
            Err(message) => {
                errors.push(metric_field, message);
                None
            }
        },
    };

    if let Some(dimension) = &behavior.metric_dimension {
        check_dimension(
            errors,
            &format!("{path}.metricDimension"),
            dimension,
            metric,
            custom,
        );
    }
    if let Some(criteria) = &behavior.criteria {
        check_criteria(errors, &format!("{path}.criteria"), criteria, metric);
    }
}

/// Checks a `metricDimension`. With an unknown metric only the dimension name is checked.
fn check_dimension(
    errors: &mut Errors,
    path: &str,
    dimension: &MetricDimension,
    metric: Option<MetricRules>,
    definitions: &dyn Definitions,
) {
    let name_field = format!("{path}.dimensionName");
    let name = &dimension.dimension_name;
    let problems_before = errors.0.len();
    check_name(errors, &name_field, name, &RESOURCE_NAME);
    let well_formed = errors.0.len() == problems_before;
    if well_formed && !definitions.has_dimension(name) {
        errors.push(
            &name_field,
            format!("dimension `{name}` does not exist; create it before using it in a profile"),
        );
    }

    let Some(metric) = metric else { return };
    if metric.is_custom {
        errors.push(
            path,
            format!("is not allowed on custom metric `{}`", metric.name),
        );
    } else if !metric.dimension_allowed {
        let allowed = BUILT_IN_METRICS
            .iter()
            .filter(|spec| spec.dimension_allowed);
        errors.push(
            path,
            format!(
                "is not allowed on metric `{}`, only on {}",
                metric.name,
                join(allowed.map(|spec| spec.name)),
            ),
        );
    }
}

fn check_criteria(
    errors: &mut Errors,
    path: &str,
    criteria: &BehaviorCriteria,
    metric: Option<MetricRules>,
) {
    let alarm_field = format!("{path}.consecutiveDatapointsToAlarm");
    check_consecutive(
        errors,
        &alarm_field,
        criteria.consecutive_datapoints_to_alarm,
    );
    let clear_field = format!("{path}.consecutiveDatapointsToClear");
    check_consecutive(
        errors,
        &clear_field,
        criteria.consecutive_datapoints_to_clear,
    );

    // The kind is `None` when zero or several threshold members are set. Checks that depend on
    // the kind then only run their kind-independent part.
    let kind = check_criteria_kind(errors, path, criteria);
    if let Some(value) = &criteria.value {
        check_metric_value(errors, &format!("{path}.value"), value, metric);
    }
    if let Some(threshold) = &criteria.statistical_threshold {
        let field = format!("{path}.statisticalThreshold.statistic");
        check_statistic(errors, &field, threshold.statistic.as_deref());
    }
    check_operator(errors, path, criteria.comparison_operator, kind, metric);
    check_duration(errors, path, criteria.duration_seconds, kind, metric);
    if let Some(metric) = metric {
        check_criteria_fits_metric(errors, path, criteria, metric);
    }
}

/// Checks that exactly one of `value`, `statisticalThreshold` and `mlDetectionConfig` is set,
/// and returns the criteria kind it selects.
fn check_criteria_kind(
    errors: &mut Errors,
    path: &str,
    criteria: &BehaviorCriteria,
) -> Option<BehaviorCriteriaType> {
    let members = [
        (
            "value",
            criteria.value.is_some(),
            BehaviorCriteriaType::Static,
        ),
        (
            "statisticalThreshold",
            criteria.statistical_threshold.is_some(),
            BehaviorCriteriaType::Statistical,
        ),
        (
            "mlDetectionConfig",
            criteria.ml_detection_config.is_some(),
            BehaviorCriteriaType::MachineLearning,
        ),
    ];
    let set: Vec<_> = members
        .into_iter()
        .filter(|(_, is_set, _)| *is_set)
        .collect();

    match set.as_slice() {
        [(_, _, kind)] => Some(*kind),
        [] => {
            errors.push(
                path,
                "must set one of value (static), statisticalThreshold or mlDetectionConfig",
            );
            None
        }
        _ => {
            let names = set.iter().map(|(name, _, _)| *name).collect::<Vec<_>>();
            errors.push(
                path,
                format!(
                    "must set only one of value, statisticalThreshold or mlDetectionConfig, got {}",
                    names.join(" and "),
                ),
            );
            None
        }
    }
}

fn check_consecutive(errors: &mut Errors, field: &str, datapoints: Option<i64>) {
    if let Some(datapoints) = datapoints
        && !CONSECUTIVE_DATAPOINTS.contains(&datapoints)
    {
        let (min, max) = (CONSECUTIVE_DATAPOINTS.start(), CONSECUTIVE_DATAPOINTS.end());
        errors.push(field, format!("must be {min} to {max}, got {datapoints}"));
    }
}

/// Checks the members of a `MetricValue`. With a known metric exactly its own member must be
/// set. With an unknown metric any single member is accepted.
fn check_metric_value(
    errors: &mut Errors,
    path: &str,
    value: &MetricValue,
    metric: Option<MetricRules>,
) {
    let members = set_value_members(value);
    match metric {
        Some(metric) => check_value_member_fits(errors, path, &members, metric),
        None if members.is_empty() => {
            errors.push(path, format!("must set one of {}", join(VALUE_MEMBERS)));
        }
        None if members.len() > 1 => {
            errors.push(
                path,
                format!("must set only one member, got {}", members.join(" and ")),
            );
        }
        None => {}
    }

    for (index, cidr) in value.cidrs.iter().flatten().enumerate() {
        check_cidr(errors, &format!("{path}.cidrs[{index}]"), cidr);
    }
    if let Some(number) = value.number
        && !number.is_finite()
    {
        errors.push(
            format!("{path}.number"),
            format!("must be a finite number, got {number}"),
        );
    }
    for (index, number) in value.numbers.iter().flatten().enumerate() {
        if !number.is_finite() {
            let field = format!("{path}.numbers[{index}]");
            errors.push(field, format!("must be a finite number, got {number}"));
        }
    }
}

const VALUE_MEMBERS: [&str; 6] = ["count", "cidrs", "ports", "number", "numbers", "strings"];

fn set_value_members(value: &MetricValue) -> Vec<&'static str> {
    let is_set = [
        value.count.is_some(),
        value.cidrs.is_some(),
        value.ports.is_some(),
        value.number.is_some(),
        value.numbers.is_some(),
        value.strings.is_some(),
    ];
    VALUE_MEMBERS
        .into_iter()
        .zip(is_set)
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
}

/// Returns the `MetricValue` member that carries values of `kind`.
fn value_member(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Count => "count",
        ValueKind::Cidrs => "cidrs",
        ValueKind::Ports => "ports",
        ValueKind::Number => "number",
        ValueKind::Numbers => "numbers",
        ValueKind::Strings => "strings",
    }
}

fn check_value_member_fits(errors: &mut Errors, path: &str, members: &[&str], metric: MetricRules) {
    let expected = value_member(metric.kind);
    for member in members.iter().filter(|member| **member != expected) {
        errors.push(
            format!("{path}.{member}"),
            format!(
                "must not be set for metric `{}`, which takes `{expected}`",
                metric.name
            ),
        );
    }
    if !members.contains(&expected) {
        errors.push(
            format!("{path}.{expected}"),
            format!("is required for metric `{}`", metric.name),
        );
    }
}

/// Checks one `cidrs` entry: 2 to 43 characters of `[a-fA-F0-9:./]` forming an IPv4 or IPv6
/// address with an optional prefix length. Only the first problem is reported.
fn check_cidr(errors: &mut Errors, field: &str, cidr: &str) {
    if !check_length(errors, field, cidr, CIDR_LENGTH) {
        return;
    }
    let is_cidr_char = |c: char| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/');
    if let Some(invalid) = cidr.chars().find(|c| !is_cidr_char(*c)) {
        errors.push(
            field,
            format!("must match `[a-fA-F0-9:./]+`, found invalid character {invalid:?}"),
        );
        return;
    }
    if !is_ip_address_or_cidr(cidr) {
        errors.push(
            field,
            format!(
                "must be an IPv4 or IPv6 address or CIDR block such as `10.0.0.0/8` or \
                 `2001:db8::/32`, got {cidr:?}"
            ),
        );
    }
}

/// Tests whether `text` is an IPv4 or IPv6 address, optionally followed by `/` and a prefix
/// length of at most 32 or 128 bits. Host bits after the prefix may be set, as in `192.168.1.1/24`.
fn is_ip_address_or_cidr(text: &str) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let max_prefix_bits = if address.parse::<Ipv4Addr>().is_ok() {
        32
    } else if address.parse::<Ipv6Addr>().is_ok() {
        128
    } else {
        return false;
    };

    let Some(prefix) = prefix else { return true };
    // `u8::from_str` accepts a leading `+`, so require plain digits first.
    let is_digits =
        !prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit());
    is_digits
        && prefix
            .parse::<u8>()
            .is_ok_and(|bits| bits <= max_prefix_bits)
}

fn check_statistic(errors: &mut Errors, field: &str, statistic: Option<&str>) {
    let allowed = join(ALLOWED_STATISTICS.iter().map(|(name, _)| name));
    match statistic {
        None => errors.push(field, format!("is required, one of {allowed}")),
        Some(statistic) if statistic_fraction(statistic).is_none() => {
            errors.push(
                field,
                format!("must be one of {allowed}, got {statistic:?}"),
            );
        }
        Some(_) => {}
    }
}

/// Checks `comparisonOperator`: required for static and statistical criteria, forbidden for ML
/// criteria, and always one of the operators for the metric's value kind.
///
/// NOTE: AWS reportedly accepts only `less-than-equals` on `aws:disconnect-duration`. That is
/// not confirmed by the AWS docs, so all four numeric operators are accepted there.
fn check_operator(
    errors: &mut Errors,
    path: &str,
    operator: Option<ComparisonOperator>,
    kind: Option<BehaviorCriteriaType>,
    metric: Option<MetricRules>,
) {
    let field = format!("{path}.comparisonOperator");
    let Some(operator) = operator else {
        match kind {
            Some(BehaviorCriteriaType::Static) => errors.push(field, "is required with value"),
            Some(BehaviorCriteriaType::Statistical) => {
                errors.push(field, "is required with statisticalThreshold");
            }
            _ => {}
        }
        return;
    };

    if kind == Some(BehaviorCriteriaType::MachineLearning) {
        errors.push(field, "must not be set with mlDetectionConfig");
        return;
    }
    let Some(metric) = metric else { return };
    let allowed = operators_for(metric.kind);
    if !allowed.contains(&operator) {
        errors.push(
            field,
            format!(
                "must be one of {} for metric `{}`, got {}",
                join(allowed.iter().map(|operator| operator_name(*operator))),
                metric.name,
                operator_name(operator),
            ),
        );
    }
}

fn operators_for(kind: ValueKind) -> &'static [ComparisonOperator] {
    use ComparisonOperator as Op;
    match kind {
        ValueKind::Count | ValueKind::Number => &[
            Op::LessThan,
            Op::LessThanEquals,
            Op::GreaterThan,
            Op::GreaterThanEquals,
        ],
        ValueKind::Cidrs => &[Op::InCidrSet, Op::NotInCidrSet],
        ValueKind::Ports => &[Op::InPortSet, Op::NotInPortSet],
        ValueKind::Numbers | ValueKind::Strings => &[Op::InSet, Op::NotInSet],
    }
}

/// Returns the wire name of an operator.
fn operator_name(operator: ComparisonOperator) -> &'static str {
    match operator {
        ComparisonOperator::LessThan => "less-than",
        ComparisonOperator::LessThanEquals => "less-than-equals",
        ComparisonOperator::GreaterThan => "greater-than",
        ComparisonOperator::GreaterThanEquals => "greater-than-equals",
        ComparisonOperator::InCidrSet => "in-cidr-set",
        ComparisonOperator::NotInCidrSet => "not-in-cidr-set",
        ComparisonOperator::InPortSet => "in-port-set",
        ComparisonOperator::NotInPortSet => "not-in-port-set",
        ComparisonOperator::InSet => "in-set",
        ComparisonOperator::NotInSet => "not-in-set",
    }
}

/// Checks `durationSeconds`: one of the allowed windows, required with a statistical threshold,
/// and forbidden on list metrics, on ML criteria and on static criteria of metrics that AWS
/// evaluates per message or per report.
fn check_duration(
    errors: &mut Errors,
    path: &str,
    duration: Option<i64>,
    kind: Option<BehaviorCriteriaType>,
    metric: Option<MetricRules>,
) {
    let field = format!("{path}.durationSeconds");
    let allowed = join(ALLOWED_DURATIONS_SECONDS);
    let is_list = metric.is_some_and(|metric| metric.is_list());
    let Some(seconds) = duration else {
        // A statistical threshold on a list metric is reported on its own, so it needs no window.
        if kind == Some(BehaviorCriteriaType::Statistical) && !is_list {
            errors.push(
                field,
                format!("is required with statisticalThreshold, one of {allowed}"),
            );
        }
        return;
    };

    if !ALLOWED_DURATIONS_SECONDS.contains(&seconds) {
        errors.push(&field, format!("must be one of {allowed}, got {seconds}"));
    }
    match (kind, metric) {
        (_, Some(metric)) if metric.is_list() => {
            errors.push(
                field,
                format!("is not allowed with list metric `{}`", metric.name),
            );
        }
        (Some(BehaviorCriteriaType::MachineLearning), _) => {
            errors.push(field, "must not be set with mlDetectionConfig");
        }
        (Some(BehaviorCriteriaType::Static), Some(metric)) if !metric.duration_allowed => {
            errors.push(
                field,
                format!(
                    "is not allowed on static criteria for metric `{}`, only with \
                     statisticalThreshold",
                    metric.name
                ),
            );
        }
        _ => {}
    }
}

/// Checks that a statistical threshold or ML Detect is set only where the metric supports it.
fn check_criteria_fits_metric(
    errors: &mut Errors,
    path: &str,
    criteria: &BehaviorCriteria,
    metric: MetricRules,
) {
    if criteria.statistical_threshold.is_some() && metric.is_list() {
        errors.push(
            format!("{path}.statisticalThreshold"),
            format!(
                "is not allowed on list metric `{}`, only on metrics with a `count` or \
                 `number` value",
                metric.name
            ),
        );
    }
    if criteria.ml_detection_config.is_some() && !metric.ml_supported {
        let supported = BUILT_IN_METRICS.iter().filter(|spec| spec.ml_supported);
        errors.push(
            format!("{path}.mlDetectionConfig"),
            format!(
                "is not supported for metric `{}`, ML Detect supports {} and custom `number` \
                 metrics",
                metric.name,
                join(supported.map(|spec| spec.name)),
            ),
        );
    }
}

/// Checks a display name against the model's `[\p{Graph}\x20]*` and its 128-character limit.
fn check_display_name(errors: &mut Errors, display_name: &str) {
    check_printable(errors, "displayName", display_name, MAX_DISPLAY_NAME_CHARS);
}

/// Checks a description against the model's `[\p{Graph}\x20]*` and its 1000-character limit.
///
/// NOTE: Java's `\p{Graph}` is ASCII-only unless Unicode classes are enabled, and it is not known
/// which AWS applies. This check accepts any non-control, non-whitespace character besides space.
fn check_description(errors: &mut Errors, field: &str, description: &str) {
    check_printable(errors, field, description, MAX_DESCRIPTION_CHARS);
}

/// Checks free text against `[\p{Graph}\x20]*` and a length limit, as [`check_description`]
/// explains.
fn check_printable(errors: &mut Errors, field: &str, text: &str, max_chars: usize) {
    let length = text.chars().count();
    if length > max_chars {
        let message = format!("must be at most {max_chars} characters, got {length}");
        errors.push(field, message);
    }
    let is_printable = |c: char| c == ' ' || !(c.is_control() || c.is_whitespace());
    if let Some(invalid) = text.chars().find(|c| !is_printable(*c)) {
        errors.push(
            field,
            format!("must contain only printable characters and spaces, found {invalid:?}"),
        );
    }
}

fn check_alert_targets(errors: &mut Errors, targets: &BTreeMap<String, AlertTarget>) {
    for (target_type, target) in targets {
        let path = format!("alertTargets.{target_type}");
        if target_type != "SNS" {
            errors.push(
                &path,
                format!("unknown alert target type `{target_type}`, expected SNS"),
            );
        }
        if target.alert_target_arn.is_empty() {
            errors.push(format!("{path}.alertTargetArn"), "must not be empty");
        }
        check_length(
            errors,
            &format!("{path}.roleArn"),
            &target.role_arn,
            ROLE_ARN_LENGTH,
        );
    }
}

fn check_metric_to_retain(
    errors: &mut Errors,
    path: &str,
    retained: &MetricToRetain,
    custom: &dyn Definitions,
) {
    let metric = match resolve_metric(&retained.metric, custom) {
        Ok(metric) => Some(metric),
        Err(message) => {
            errors.push(format!("{path}.metric"), message);
            None
        }
    };
    if let Some(dimension) = &retained.metric_dimension {
        check_dimension(
            errors,
            &format!("{path}.metricDimension"),
            dimension,
            metric,
            custom,
        );
    }
}

/// Returns the wire name of the params member that selects `action_type`.
fn params_member_name(action_type: MitigationActionType) -> &'static str {
    match action_type {
        MitigationActionType::UpdateDeviceCertificate => "updateDeviceCertificateParams",
        MitigationActionType::UpdateCaCertificate => "updateCACertificateParams",
        MitigationActionType::AddThingsToThingGroup => "addThingsToThingGroupParams",
        MitigationActionType::ReplaceDefaultPolicyVersion => "replaceDefaultPolicyVersionParams",
        MitigationActionType::EnableIotLogging => "enableIoTLoggingParams",
        MitigationActionType::PublishFindingToSns => "publishFindingToSnsParams",
    }
}

fn check_params_member_count(errors: &mut Errors, params: &MitigationActionParams) {
    let set = params.set_types();
    if set.is_empty() {
        let choices = join(ACTION_TYPES.map(params_member_name));
        errors.push("actionParams", format!("must set exactly one of {choices}"));
    } else if set.len() > 1 {
        let names: Vec<_> = set.into_iter().map(params_member_name).collect();
        errors.push(
            "actionParams",
            format!("must set exactly one member, got {}", names.join(" and ")),
        );
    }
}

fn check_action_params(errors: &mut Errors, params: &MitigationActionParams) {
    if let Some(device) = &params.update_device_certificate_params {
        let field = "actionParams.updateDeviceCertificateParams.action";
        check_exact(errors, field, &device.action, "DEACTIVATE");
    }
    if let Some(ca) = &params.update_ca_certificate_params {
        check_exact(
            errors,
            "actionParams.updateCACertificateParams.action",
            &ca.action,
            "DEACTIVATE",
        );
    }
    if let Some(add) = &params.add_things_to_thing_group_params {
        check_thing_group_names(errors, &add.thing_group_names);
    }
    if let Some(replace) = &params.replace_default_policy_version_params {
        let field = "actionParams.replaceDefaultPolicyVersionParams.templateName";
        check_exact(errors, field, &replace.template_name, "BLANK_POLICY");
    }
    if let Some(logging) = &params.enable_iot_logging_params {
        check_logging_params(errors, logging);
    }
    if let Some(publish) = &params.publish_finding_to_sns_params {
        let field = "actionParams.publishFindingToSnsParams.topicArn";
        check_length(errors, field, &publish.topic_arn, TOPIC_ARN_LENGTH);
    }
}

fn check_exact(errors: &mut Errors, field: &str, value: &str, expected: &str) {
    if value != expected {
        errors.push(field, format!("must be {expected}, got {value:?}"));
    }
}

fn check_thing_group_names(errors: &mut Errors, names: &[String]) {
    let path = "actionParams.addThingsToThingGroupParams.thingGroupNames";
    check_count(errors, path, names.len(), THING_GROUP_COUNT, "thing groups");
    for (index, name) in names.iter().enumerate() {
        check_name(errors, &format!("{path}[{index}]"), name, &RESOURCE_NAME);
    }
}

fn check_logging_params(errors: &mut Errors, logging: &EnableIotLoggingParams) {
    let path = "actionParams.enableIoTLoggingParams";
    let field = format!("{path}.roleArnForLogging");
    check_length(
        errors,
        &field,
        &logging.role_arn_for_logging,
        ROLE_ARN_LENGTH,
    );

    let level = logging.log_level.as_str();
    if level == "DISABLED" {
        errors.push(
            format!("{path}.logLevel"),
            format!(
                "DISABLED cannot be used to enable logging, expected one of {}",
                join(LOG_LEVELS)
            ),
        );
    } else if !LOG_LEVELS.contains(&level) {
        errors.push(
            format!("{path}.logLevel"),
            format!("must be one of {}, got {level:?}", join(LOG_LEVELS)),
        );
    }
}

/// Checks that the target names violations or a profile, not both, and that `behaviorName`
/// comes with `securityProfileName`.
fn check_task_target(errors: &mut Errors, target: &DetectMitigationActionsTaskTarget) {
    match (&target.violation_ids, &target.security_profile_name) {
        (Some(_), Some(_)) => {
            errors.push(
                "target",
                "must set either violationIds or securityProfileName, not both",
            );
        }
        (None, None) => errors.push("target", "must set violationIds or securityProfileName"),
        _ => {}
    }

    if let Some(ids) = &target.violation_ids {
        let path = "target.violationIds";
        check_count(errors, path, ids.len(), VIOLATION_ID_COUNT, "violation ids");
        for (index, id) in ids.iter().enumerate() {
            check_name(errors, &format!("{path}[{index}]"), id, &VIOLATION_ID);
        }
    }
    if let Some(name) = &target.security_profile_name {
        check_name(errors, "target.securityProfileName", name, &RESOURCE_NAME);
    }
    if let Some(name) = &target.behavior_name {
        check_name(errors, "target.behaviorName", name, &RESOURCE_NAME);
        if target.security_profile_name.is_none() {
            errors.push(
                "target.behaviorName",
                "requires securityProfileName, because behavior names are only unique within \
                 a profile",
            );
        }
    }
}

/// Checks a name's length and characters, reporting both when both are wrong.
fn check_name(errors: &mut Errors, field: &str, name: &str, rule: &NameRule) {
    check_length(errors, field, name, NAME_LENGTH);
    if let Some(invalid) = name.chars().find(|c| !(rule.allows)(*c)) {
        errors.push(
            field,
            format!(
                "must match `{}`, found invalid character {invalid:?}",
                rule.pattern
            ),
        );
    }
}

/// Checks that `value` has a length in characters within `range`, and returns whether it does.
fn check_length(
    errors: &mut Errors,
    field: &str,
    value: &str,
    range: RangeInclusive<usize>,
) -> bool {
    let length = value.chars().count();
    if range.contains(&length) {
        return true;
    }
    let (min, max) = (range.start(), range.end());
    errors.push(
        field,
        format!("must be {min} to {max} characters, got {length}"),
    );
    false
}

fn check_count(
    errors: &mut Errors,
    field: &str,
    count: usize,
    range: RangeInclusive<usize>,
    noun: &str,
) {
    if !range.contains(&count) {
        let (min, max) = (range.start(), range.end());
        errors.push(
            field,
            format!("must have {min} to {max} {noun}, got {count}"),
        );
    }
}

fn join<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    items.join(", ")
}

/// Converts milliseconds to epoch seconds, the unit the API writes timestamps in.
fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AddThingsToThingGroupParams, MachineLearningDetectionConfig, PublishFindingToSnsParams,
        ReplaceDefaultPolicyVersionParams, StatisticalThreshold, UpdateCertificateParams,
        ViolationEventOccurrenceRange,
    };
    use crate::model::{ComparisonOperator as Op, ConfidenceLevel};

    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/MitigationActionValidRole";

    /// The four-behavior ML profile from the AWS ML Detect guide's `create-security-profile`
    /// example.
    const GUIDE_PROFILE: &str = r#"{
        "securityProfileName": "security-profile-for-smart-lights",
        "behaviors": [
            { "name": "num-messages-sent-ml-behavior", "metric": "aws:num-messages-sent",
              "criteria": { "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1,
                            "mlDetectionConfig": { "confidenceLevel": "HIGH" } },
              "suppressAlerts": true },
            { "name": "num-authorization-failures-ml-behavior",
              "metric": "aws:num-authorization-failures",
              "criteria": { "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1,
                            "mlDetectionConfig": { "confidenceLevel": "HIGH" } },
              "suppressAlerts": true },
            { "name": "num-connection-attempts-ml-behavior",
              "metric": "aws:num-connection-attempts",
              "criteria": { "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1,
                            "mlDetectionConfig": { "confidenceLevel": "HIGH" } },
              "suppressAlerts": true },
            { "name": "num-disconnects-ml-behavior", "metric": "aws:num-disconnects",
              "criteria": { "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1,
                            "mlDetectionConfig": { "confidenceLevel": "HIGH" } },
              "suppressAlerts": true }
        ]
    }"#;

    fn fields(errors: &[ValidationError]) -> Vec<&str> {
        errors.iter().map(|error| error.field.as_str()).collect()
    }

    fn no_custom_metrics() -> BTreeMap<String, CustomMetricType> {
        BTreeMap::new()
    }

    fn custom_metrics() -> BTreeMap<String, CustomMetricType> {
        BTreeMap::from([
            ("temperature".to_owned(), CustomMetricType::Number),
            ("open-files".to_owned(), CustomMetricType::NumberList),
            ("process-names".to_owned(), CustomMetricType::StringList),
            ("peer-addresses".to_owned(), CustomMetricType::IpAddressList),
        ])
    }

    fn behavior(metric: &str, criteria: BehaviorCriteria) -> Behavior {
        Behavior {
            name: "rule".to_owned(),
            metric: Some(metric.to_owned()),
            metric_dimension: None,
            criteria: Some(criteria),
            suppress_alerts: None,
            export_metric: None,
        }
    }

    fn static_criteria(operator: Op, value: MetricValue) -> BehaviorCriteria {
        BehaviorCriteria {
            comparison_operator: Some(operator),
            value: Some(value),
            ..BehaviorCriteria::default()
        }
    }

    fn statistical_criteria(statistic: &str, duration_seconds: Option<i64>) -> BehaviorCriteria {
        BehaviorCriteria {
            comparison_operator: Some(Op::GreaterThan),
            duration_seconds,
            statistical_threshold: Some(StatisticalThreshold {
                statistic: Some(statistic.to_owned()),
            }),
            ..BehaviorCriteria::default()
        }
    }

    fn ml_criteria() -> BehaviorCriteria {
        BehaviorCriteria {
            ml_detection_config: Some(MachineLearningDetectionConfig {
                confidence_level: ConfidenceLevel::High,
            }),
            ..BehaviorCriteria::default()
        }
    }

    fn cidrs(blocks: &[&str]) -> MetricValue {
        MetricValue {
            cidrs: Some(blocks.iter().map(|block| (*block).to_owned()).collect()),
            ..MetricValue::default()
        }
    }

    fn dimension(name: &str) -> Option<MetricDimension> {
        Some(MetricDimension {
            dimension_name: name.to_owned(),
            operator: None,
        })
    }

    /// Validates one behavior against the sample custom metrics.
    fn check_one(behavior: Behavior) -> Vec<ValidationError> {
        validate_behaviors(&[behavior], &custom_metrics())
    }

    fn profile(behaviors: Vec<Behavior>) -> SecurityProfile {
        SecurityProfile {
            name: "smart-lights".to_owned(),
            behaviors,
            ..SecurityProfile::default()
        }
    }

    fn add_to_group_params(names: &[&str]) -> MitigationActionParams {
        MitigationActionParams {
            add_things_to_thing_group_params: Some(AddThingsToThingGroupParams {
                thing_group_names: names.iter().map(|name| (*name).to_owned()).collect(),
                override_dynamic_groups: Some(false),
            }),
            ..MitigationActionParams::default()
        }
    }

    fn logging_params(role_arn: &str, level: &str) -> MitigationActionParams {
        MitigationActionParams {
            enable_iot_logging_params: Some(EnableIotLoggingParams {
                role_arn_for_logging: role_arn.to_owned(),
                log_level: level.to_owned(),
            }),
            ..MitigationActionParams::default()
        }
    }

    fn profile_task() -> TaskRequest {
        TaskRequest {
            task_id: "taskIdForMitigationAction".to_owned(),
            target: DetectMitigationActionsTaskTarget {
                violation_ids: None,
                security_profile_name: Some("security-profile-for-smart-lights".to_owned()),
                behavior_name: Some("num-messages-sent-ml-behavior".to_owned()),
            },
            actions: vec!["detect_mitigation_action".to_owned()],
            violation_event_occurrence_range: Some(ViolationEventOccurrenceRange {
                start_time: 1_609_986_633_000,
                end_time: 1_609_987_833_000,
            }),
            include_only_active_violations: true,
            include_suppressed_alerts: true,
        }
    }

    fn violation_task(ids: &[&str]) -> TaskRequest {
        TaskRequest {
            target: DetectMitigationActionsTaskTarget {
                violation_ids: Some(ids.iter().map(|id| (*id).to_owned()).collect()),
                ..DetectMitigationActionsTaskTarget::default()
            },
            violation_event_occurrence_range: None,
            ..profile_task()
        }
    }

    // Names.

    #[test]
    fn resource_name_accepts_colons_underscores_and_hyphens() {
        assert_eq!(validate_resource_name("ML_Detect:beta-group-1", "name"), []);
    }

    #[test]
    fn resource_name_accepts_128_characters() {
        assert_eq!(validate_resource_name(&"a".repeat(128), "name"), []);
    }

    #[test]
    fn resource_name_rejects_129_characters() {
        let errors = validate_resource_name(&"a".repeat(129), "thingGroupName");
        assert_eq!(fields(&errors), ["thingGroupName"]);
        assert_eq!(errors[0].message, "must be 1 to 128 characters, got 129");
    }

    #[test]
    fn resource_name_rejects_empty() {
        let errors = validate_resource_name("", "name");
        assert_eq!(errors[0].message, "must be 1 to 128 characters, got 0");
    }

    #[test]
    fn resource_name_rejects_space() {
        let errors = validate_resource_name("smart lights", "name");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "must match `[a-zA-Z0-9:_-]+`, found invalid character ' '"
        );
    }

    #[test]
    fn thing_name_accepts_spaces_slashes_and_unicode() {
        assert_eq!(validate_thing_name("lightbulb 1/küche", "thingName"), []);
    }

    #[test]
    fn thing_name_rejects_control_characters() {
        let errors = validate_thing_name("light\u{7}bulb", "thingName");
        assert_eq!(fields(&errors), ["thingName"]);
        assert_eq!(
            errors[0].message,
            "must not contain control characters, found '\\u{7}'"
        );
    }

    #[test]
    fn thing_name_limit_counts_bytes() {
        // `é` is two bytes in UTF-8, so 64 of them fit and 65 do not.
        assert_eq!(validate_thing_name(&"é".repeat(64), "thingName"), []);
        let errors = validate_thing_name(&"é".repeat(65), "thingName");
        assert_eq!(
            errors[0].message,
            "must be 1 to 128 bytes of UTF-8, got 130 bytes"
        );
    }

    #[test]
    fn thing_name_rejects_empty() {
        assert_eq!(fields(&validate_thing_name("", "thingName")), ["thingName"]);
    }

    // Valid behaviors.

    #[test]
    fn accepts_guide_ml_profile() {
        let profile: SecurityProfile = serde_json::from_str(GUIDE_PROFILE).unwrap();
        assert_eq!(profile.behaviors.len(), 4);
        assert_eq!(
            validate_security_profile(&profile, &no_custom_metrics()),
            []
        );
    }

    #[test]
    fn accepts_static_count_with_duration() {
        let mut criteria = static_criteria(Op::LessThanEquals, MetricValue::count(50));
        criteria.duration_seconds = Some(300);
        criteria.consecutive_datapoints_to_alarm = Some(10);
        criteria.consecutive_datapoints_to_clear = Some(1);
        assert_eq!(check_one(behavior("aws:num-messages-sent", criteria)), []);
    }

    #[test]
    fn accepts_statistical_threshold_with_duration() {
        let criteria = statistical_criteria("p99.9", Some(3600));
        assert_eq!(check_one(behavior("aws:all-bytes-out", criteria)), []);
    }

    #[test]
    fn accepts_statistical_on_per_message_metric() {
        let criteria = statistical_criteria("p90", Some(900));
        assert_eq!(check_one(behavior("aws:message-byte-size", criteria)), []);
    }

    #[test]
    fn accepts_port_set_on_port_metric() {
        let value = MetricValue {
            ports: Some(vec![443, 8883]),
            ..MetricValue::default()
        };
        let criteria = static_criteria(Op::InPortSet, value);
        assert_eq!(check_one(behavior("aws:listening-tcp-ports", criteria)), []);
    }

    #[test]
    fn accepts_custom_metrics_with_their_value_members() {
        let number = static_criteria(Op::GreaterThan, MetricValue::number(-4.5));
        let numbers = MetricValue {
            numbers: Some(vec![1.0, 2.0]),
            ..MetricValue::default()
        };
        let strings = MetricValue {
            strings: Some(vec!["sshd".to_owned()]),
            ..MetricValue::default()
        };
        let behaviors = [
            behavior("temperature", number),
            behavior("open-files", static_criteria(Op::NotInSet, numbers)),
            behavior("process-names", static_criteria(Op::InSet, strings)),
            behavior(
                "peer-addresses",
                static_criteria(Op::InCidrSet, cidrs(&["10.0.0.0/8"])),
            ),
            behavior("temperature", ml_criteria()),
        ];
        let behaviors: Vec<Behavior> = behaviors
            .into_iter()
            .enumerate()
            .map(|(index, behavior)| Behavior {
                name: format!("custom-{index}"),
                ..behavior
            })
            .collect();
        assert_eq!(validate_behaviors(&behaviors, &custom_metrics()), []);
    }

    #[test]
    fn accepts_behavior_without_criteria() {
        let mut retained = behavior("aws:num-disconnects", BehaviorCriteria::default());
        retained.criteria = None;
        assert_eq!(check_one(retained), []);
    }

    // Metric names.

    #[test]
    fn rejects_behavior_without_metric() {
        let mut no_metric = behavior("aws:num-disconnects", ml_criteria());
        no_metric.metric = None;
        let errors = check_one(no_metric);
        assert_eq!(fields(&errors), ["behaviors[0].metric"]);
        assert_eq!(errors[0].message, "is required");
    }

    #[test]
    fn rejects_unknown_built_in_metric() {
        let errors = check_one(behavior("aws:num-messages-lost", ml_criteria()));
        assert_eq!(fields(&errors), ["behaviors[0].metric"]);
        assert!(
            errors[0]
                .message
                .starts_with("unknown built-in metric `aws:num-messages-lost`")
        );
        assert!(errors[0].message.contains("aws:num-messages-sent"));
    }

    #[test]
    fn rejects_unknown_custom_metric() {
        let errors = check_one(behavior("humidity", ml_criteria()));
        assert_eq!(fields(&errors), ["behaviors[0].metric"]);
        assert_eq!(
            errors[0].message,
            "unknown metric `humidity`, expected a built-in `aws:` metric or an existing custom \
             metric"
        );
    }

    #[test]
    fn rejects_aws_prefixed_custom_metric() {
        let custom = BTreeMap::from([("aws:humidity".to_owned(), CustomMetricType::Number)]);
        let errors = validate_behaviors(&[behavior("aws:humidity", ml_criteria())], &custom);
        assert_eq!(fields(&errors), ["behaviors[0].metric"]);
    }

    #[test]
    fn rejects_invalid_behavior_name() {
        let mut named = behavior("aws:num-disconnects", ml_criteria());
        named.name = "bad name".to_owned();
        assert_eq!(fields(&check_one(named)), ["behaviors[0].name"]);
    }

    // Criteria kinds.

    #[test]
    fn rejects_value_together_with_ml_config() {
        let mut criteria = ml_criteria();
        criteria.value = Some(MetricValue::count(5));
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria"]);
        assert_eq!(
            errors[0].message,
            "must set only one of value, statisticalThreshold or mlDetectionConfig, \
             got value and mlDetectionConfig"
        );
    }

    #[test]
    fn rejects_statistical_threshold_together_with_value() {
        let mut criteria = statistical_criteria("p50", Some(300));
        criteria.value = Some(MetricValue::count(5));
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria"]);
    }

    #[test]
    fn rejects_criteria_without_threshold() {
        let criteria = BehaviorCriteria {
            comparison_operator: Some(Op::GreaterThan),
            ..BehaviorCriteria::default()
        };
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria"]);
    }

    #[test]
    fn rejects_static_criteria_without_operator() {
        let mut criteria = static_criteria(Op::GreaterThan, MetricValue::count(5));
        criteria.comparison_operator = None;
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
    }

    #[test]
    fn rejects_statistical_criteria_without_operator() {
        let mut criteria = statistical_criteria("p90", Some(300));
        criteria.comparison_operator = None;
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
    }

    #[test]
    fn rejects_statistical_threshold_without_duration() {
        let criteria = statistical_criteria("p90", None);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
        assert_eq!(
            errors[0].message,
            "is required with statisticalThreshold, one of 300, 600, 900, 1800, 3600"
        );
    }

    #[test]
    fn rejects_statistical_threshold_without_statistic() {
        let mut criteria = statistical_criteria("p90", Some(300));
        criteria.statistical_threshold = Some(StatisticalThreshold { statistic: None });
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.statisticalThreshold.statistic"]
        );
    }

    #[test]
    fn rejects_unknown_statistic() {
        let criteria = statistical_criteria("p95", Some(300));
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.statisticalThreshold.statistic"]
        );
        assert_eq!(
            errors[0].message,
            "must be one of p0, p0.01, p0.1, p1, p10, p50, p90, p99, p99.9, p99.99, p100, \
             got \"p95\""
        );
    }

    #[test]
    fn rejects_operator_on_ml_criteria() {
        let mut criteria = ml_criteria();
        criteria.comparison_operator = Some(Op::GreaterThan);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
        assert_eq!(errors[0].message, "must not be set with mlDetectionConfig");
    }

    #[test]
    fn rejects_duration_on_ml_criteria() {
        let mut criteria = ml_criteria();
        criteria.duration_seconds = Some(300);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
    }

    // Operators and values.

    #[test]
    fn rejects_greater_than_on_cidr_metric() {
        let criteria = static_criteria(Op::GreaterThan, cidrs(&["10.0.0.0/8"]));
        let errors = check_one(behavior("aws:source-ip-address", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
        assert_eq!(
            errors[0].message,
            "must be one of in-cidr-set, not-in-cidr-set for metric `aws:source-ip-address`, \
             got greater-than"
        );
    }

    #[test]
    fn rejects_set_operator_on_count_metric() {
        let criteria = static_criteria(Op::InSet, MetricValue::count(1));
        let errors = check_one(behavior("aws:num-disconnects", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
    }

    #[test]
    fn rejects_cidr_operator_on_string_list_metric() {
        let strings = MetricValue {
            strings: Some(vec!["sshd".to_owned()]),
            ..MetricValue::default()
        };
        let criteria = static_criteria(Op::InCidrSet, strings);
        let errors = check_one(behavior("process-names", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.comparisonOperator"]
        );
    }

    #[test]
    fn rejects_wrong_value_member_for_metric() {
        let ports = MetricValue {
            ports: Some(vec![443]),
            ..MetricValue::default()
        };
        let criteria = static_criteria(Op::GreaterThan, ports);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            [
                "behaviors[0].criteria.value.ports",
                "behaviors[0].criteria.value.count"
            ]
        );
        assert_eq!(
            errors[0].message,
            "must not be set for metric `aws:num-messages-sent`, which takes `count`"
        );
        assert_eq!(
            errors[1].message,
            "is required for metric `aws:num-messages-sent`"
        );
    }

    #[test]
    fn rejects_count_on_custom_number_metric() {
        let criteria = static_criteria(Op::GreaterThan, MetricValue::count(30));
        let errors = check_one(behavior("temperature", criteria));
        assert_eq!(
            fields(&errors),
            [
                "behaviors[0].criteria.value.count",
                "behaviors[0].criteria.value.number"
            ]
        );
    }

    #[test]
    fn rejects_extra_value_member() {
        let mut value = MetricValue::count(30);
        value.strings = Some(vec![]);
        let criteria = static_criteria(Op::GreaterThan, value);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.value.strings"]);
    }

    #[test]
    fn rejects_empty_value_with_unknown_metric() {
        let criteria = static_criteria(Op::GreaterThan, MetricValue::default());
        let errors = check_one(behavior("humidity", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].metric", "behaviors[0].criteria.value"]
        );
    }

    #[test]
    fn rejects_non_finite_number() {
        let criteria = static_criteria(Op::GreaterThan, MetricValue::number(f64::INFINITY));
        let errors = check_one(behavior("temperature", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.value.number"]);
    }

    // CIDR blocks.

    #[test]
    fn accepts_ip_addresses_and_cidr_blocks() {
        let blocks = [
            "10.0.0.1",
            "192.168.1.0/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "2001:db8::/32",
            "::1",
            "::/0",
            "fe80::1/128",
            "::ffff:10.0.0.1/128",
        ];
        for block in blocks {
            let criteria = static_criteria(Op::InCidrSet, cidrs(&[block]));
            assert_eq!(
                check_one(behavior("aws:source-ip-address", criteria)),
                [],
                "{block}"
            );
        }
    }

    #[test]
    fn rejects_malformed_cidr_blocks() {
        let blocks = [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "256.0.0.1",
            "01.2.3.4",
            "1:2:3:4:5:6:7:8:9",
            "abc",
        ];
        for block in blocks {
            let criteria = static_criteria(Op::InCidrSet, cidrs(&[block]));
            let errors = check_one(behavior("aws:source-ip-address", criteria));
            assert_eq!(
                fields(&errors),
                ["behaviors[0].criteria.value.cidrs[0]"],
                "{block}"
            );
        }
    }

    #[test]
    fn names_the_failing_cidr_entry() {
        let criteria = static_criteria(Op::InCidrSet, cidrs(&["10.0.0.0/8", "10.0.0.0/40"]));
        let errors = check_one(behavior("aws:destination-ip-addresses", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.value.cidrs[1]"]);
        assert_eq!(
            errors[0].message,
            "must be an IPv4 or IPv6 address or CIDR block such as `10.0.0.0/8` or \
             `2001:db8::/32`, got \"10.0.0.0/40\""
        );
    }

    #[test]
    fn rejects_cidr_with_invalid_character() {
        let criteria = static_criteria(Op::InCidrSet, cidrs(&["10.0.0.0 /8"]));
        let errors = check_one(behavior("aws:source-ip-address", criteria));
        assert_eq!(
            errors[0].message,
            "must match `[a-fA-F0-9:./]+`, found invalid character ' '"
        );
    }

    #[test]
    fn rejects_cidr_outside_length_limits() {
        // A well-formed IPv6 block that is one character over the limit.
        let too_long = "0000:0000:0000:0000:0000:0000:10.0.0.100/128";
        assert!(is_ip_address_or_cidr(too_long));
        let criteria = static_criteria(Op::InCidrSet, cidrs(&["1", too_long]));
        let errors = check_one(behavior("aws:source-ip-address", criteria));
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].message, "must be 2 to 43 characters, got 1");
        assert_eq!(errors[1].message, "must be 2 to 43 characters, got 44");
    }

    // Durations and datapoint counts.

    #[test]
    fn rejects_duration_outside_allowed_windows() {
        let mut criteria = static_criteria(Op::GreaterThan, MetricValue::count(5));
        criteria.duration_seconds = Some(301);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
        assert_eq!(
            errors[0].message,
            "must be one of 300, 600, 900, 1800, 3600, got 301"
        );
    }

    #[test]
    fn rejects_duration_on_list_metrics() {
        let mut criteria = static_criteria(Op::InCidrSet, cidrs(&["10.0.0.0/8"]));
        criteria.duration_seconds = Some(300);
        let errors = check_one(behavior("aws:source-ip-address", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
        assert_eq!(
            errors[0].message,
            "is not allowed with list metric `aws:source-ip-address`"
        );
    }

    #[test]
    fn rejects_duration_on_custom_list_metrics() {
        let mut criteria = static_criteria(Op::InCidrSet, cidrs(&["10.0.0.0/8"]));
        criteria.duration_seconds = Some(600);
        let errors = check_one(behavior("peer-addresses", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
    }

    #[test]
    fn rejects_duration_on_static_message_byte_size() {
        let mut criteria = static_criteria(Op::LessThan, MetricValue::count(1024));
        criteria.duration_seconds = Some(300);
        let errors = check_one(behavior("aws:message-byte-size", criteria));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.durationSeconds"]);
        assert_eq!(
            errors[0].message,
            "is not allowed on static criteria for metric `aws:message-byte-size`, \
             only with statisticalThreshold"
        );
    }

    #[test]
    fn rejects_consecutive_datapoints_outside_one_to_ten() {
        let mut criteria = ml_criteria();
        criteria.consecutive_datapoints_to_alarm = Some(0);
        criteria.consecutive_datapoints_to_clear = Some(11);
        let errors = check_one(behavior("aws:num-messages-sent", criteria));
        assert_eq!(
            fields(&errors),
            [
                "behaviors[0].criteria.consecutiveDatapointsToAlarm",
                "behaviors[0].criteria.consecutiveDatapointsToClear",
            ]
        );
        assert_eq!(errors[0].message, "must be 1 to 10, got 0");
        assert_eq!(errors[1].message, "must be 1 to 10, got 11");
    }

    // ML Detect and statistical thresholds per metric.

    #[test]
    fn rejects_ml_on_cidr_metric() {
        let errors = check_one(behavior("aws:source-ip-address", ml_criteria()));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.mlDetectionConfig"]);
        assert!(errors[0].message.starts_with(
            "is not supported for metric `aws:source-ip-address`, ML Detect supports \
             aws:message-byte-size, "
        ));
        assert!(errors[0].message.ends_with("and custom `number` metrics"));
    }

    #[test]
    fn rejects_ml_on_disconnect_duration() {
        let errors = check_one(behavior("aws:disconnect-duration", ml_criteria()));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.mlDetectionConfig"]);
    }

    #[test]
    fn rejects_ml_on_custom_list_metric() {
        let errors = check_one(behavior("process-names", ml_criteria()));
        assert_eq!(fields(&errors), ["behaviors[0].criteria.mlDetectionConfig"]);
    }

    #[test]
    fn rejects_statistical_threshold_on_list_metric() {
        let mut criteria = statistical_criteria("p90", None);
        criteria.comparison_operator = Some(Op::InPortSet);
        let errors = check_one(behavior("aws:listening-udp-ports", criteria));
        assert_eq!(
            fields(&errors),
            ["behaviors[0].criteria.statisticalThreshold"]
        );
    }

    // Dimensions.

    #[test]
    fn accepts_dimension_on_messages_sent() {
        let mut dimensioned = behavior("aws:num-messages-sent", ml_criteria());
        dimensioned.metric_dimension = dimension("TopicFilterForAuthMessages");
        assert_eq!(check_one(dimensioned), []);
    }

    #[test]
    fn rejects_dimension_on_metric_without_dimensions() {
        let mut dimensioned = behavior("aws:num-disconnects", ml_criteria());
        dimensioned.metric_dimension = dimension("topics");
        let errors = check_one(dimensioned);
        assert_eq!(fields(&errors), ["behaviors[0].metricDimension"]);
        assert_eq!(
            errors[0].message,
            "is not allowed on metric `aws:num-disconnects`, only on aws:message-byte-size, \
             aws:num-messages-sent, aws:num-messages-received, aws:num-authorization-failures, \
             aws:source-ip-address"
        );
    }

    #[test]
    fn rejects_dimension_on_custom_metric() {
        let mut dimensioned = behavior("temperature", ml_criteria());
        dimensioned.metric_dimension = dimension("topics");
        let errors = check_one(dimensioned);
        assert_eq!(fields(&errors), ["behaviors[0].metricDimension"]);
        assert_eq!(
            errors[0].message,
            "is not allowed on custom metric `temperature`"
        );
    }

    #[test]
    fn rejects_invalid_dimension_name() {
        let mut dimensioned = behavior("aws:num-messages-sent", ml_criteria());
        dimensioned.metric_dimension = dimension("topic/filter");
        let errors = check_one(dimensioned);
        assert_eq!(
            fields(&errors),
            ["behaviors[0].metricDimension.dimensionName"]
        );
    }

    // Behavior lists.

    #[test]
    fn rejects_duplicate_behavior_name_on_later_behavior() {
        let behaviors = [
            behavior("aws:num-messages-sent", ml_criteria()),
            behavior("aws:num-disconnects", ml_criteria()),
        ];
        let errors = validate_behaviors(&behaviors, &no_custom_metrics());
        assert_eq!(fields(&errors), ["behaviors[1].name"]);
        assert_eq!(
            errors[0].message,
            "duplicate behavior name `rule`, already used by behaviors[0]"
        );
    }

    #[test]
    fn rejects_more_than_100_behaviors() {
        let behaviors: Vec<Behavior> = (0..101)
            .map(|index| Behavior {
                name: format!("rule-{index}"),
                ..behavior("aws:num-messages-sent", ml_criteria())
            })
            .collect();
        let errors = validate_behaviors(&behaviors, &no_custom_metrics());
        assert_eq!(fields(&errors), ["behaviors"]);
        assert_eq!(
            errors[0].message,
            "must have at most 100 behaviors, got 101"
        );
    }

    #[test]
    fn reports_problems_in_every_behavior() {
        let mut wrong_duration = static_criteria(Op::GreaterThan, MetricValue::count(5));
        wrong_duration.duration_seconds = Some(301);
        let behaviors = [
            Behavior {
                name: "ok".to_owned(),
                ..behavior("aws:num-messages-sent", ml_criteria())
            },
            Behavior {
                name: "unknown".to_owned(),
                ..behavior("aws:unknown", ml_criteria())
            },
            Behavior {
                name: "duration".to_owned(),
                ..behavior("aws:num-messages-sent", wrong_duration)
            },
        ];
        let errors = validate_behaviors(&behaviors, &no_custom_metrics());
        assert_eq!(
            fields(&errors),
            [
                "behaviors[1].metric",
                "behaviors[2].criteria.durationSeconds"
            ]
        );
    }

    // Security profiles.

    #[test]
    fn profile_reports_three_different_problems() {
        let mut bad_duration = static_criteria(Op::GreaterThan, MetricValue::count(5));
        bad_duration.duration_seconds = Some(301);
        let mut profile = profile(vec![
            behavior("aws:num-messages-sent", ml_criteria()),
            Behavior {
                name: "second".to_owned(),
                ..behavior("aws:num-messages-sent", bad_duration)
            },
        ]);
        profile.name = "smart lights".to_owned();
        profile.alert_targets.insert(
            "EMAIL".to_owned(),
            AlertTarget {
                alert_target_arn: "arn:aws:sns:us-east-1:123456789012:alerts".to_owned(),
                role_arn: ROLE_ARN.to_owned(),
            },
        );
        let errors = validate_security_profile(&profile, &no_custom_metrics());
        assert_eq!(
            fields(&errors),
            [
                "securityProfileName",
                "behaviors[1].criteria.durationSeconds",
                "alertTargets.EMAIL",
            ]
        );
    }

    #[test]
    fn accepts_sns_alert_target() {
        let mut profile = profile(vec![]);
        profile.alert_targets.insert(
            "SNS".to_owned(),
            AlertTarget {
                alert_target_arn: "arn:aws:sns:us-east-1:123456789012:alerts".to_owned(),
                role_arn: ROLE_ARN.to_owned(),
            },
        );
        assert_eq!(
            validate_security_profile(&profile, &no_custom_metrics()),
            []
        );
    }

    #[test]
    fn rejects_invalid_alert_target_arns() {
        let mut profile = profile(vec![]);
        profile.alert_targets.insert(
            "SNS".to_owned(),
            AlertTarget {
                alert_target_arn: String::new(),
                role_arn: "arn:aws:iam::1:role".to_owned(),
            },
        );
        let errors = validate_security_profile(&profile, &no_custom_metrics());
        assert_eq!(
            fields(&errors),
            [
                "alertTargets.SNS.alertTargetArn",
                "alertTargets.SNS.roleArn"
            ]
        );
        assert_eq!(errors[1].message, "must be 20 to 2048 characters, got 19");
    }

    #[test]
    fn rejects_unknown_alert_target_type() {
        let mut profile = profile(vec![]);
        profile.alert_targets.insert(
            "EMAIL".to_owned(),
            AlertTarget {
                alert_target_arn: "arn:aws:sns:us-east-1:123456789012:alerts".to_owned(),
                role_arn: ROLE_ARN.to_owned(),
            },
        );
        let errors = validate_security_profile(&profile, &no_custom_metrics());
        assert_eq!(
            errors[0].message,
            "unknown alert target type `EMAIL`, expected SNS"
        );
    }

    #[test]
    fn accepts_description_of_1000_characters() {
        let mut profile = profile(vec![]);
        profile.description = Some("a ".repeat(500));
        assert_eq!(
            validate_security_profile(&profile, &no_custom_metrics()),
            []
        );
    }

    #[test]
    fn rejects_description_over_1000_characters() {
        let mut profile = profile(vec![]);
        profile.description = Some("a".repeat(1001));
        let errors = validate_security_profile(&profile, &no_custom_metrics());
        assert_eq!(fields(&errors), ["securityProfileDescription"]);
        assert_eq!(
            errors[0].message,
            "must be at most 1000 characters, got 1001"
        );
    }

    #[test]
    fn rejects_description_with_tab_or_newline() {
        for description in ["Smart\tlights", "Smart\nlights"] {
            let mut profile = profile(vec![]);
            profile.description = Some(description.to_owned());
            let errors = validate_security_profile(&profile, &no_custom_metrics());
            assert_eq!(
                fields(&errors),
                ["securityProfileDescription"],
                "{description:?}"
            );
        }
    }

    #[test]
    fn accepts_retained_built_in_and_custom_metrics() {
        let mut profile = profile(vec![]);
        profile.additional_metrics_to_retain_v2 = vec![
            MetricToRetain {
                metric: "aws:num-authorization-failures".to_owned(),
                metric_dimension: dimension("topics"),
                export_metric: None,
            },
            MetricToRetain {
                metric: "temperature".to_owned(),
                metric_dimension: None,
                export_metric: Some(true),
            },
        ];
        assert_eq!(validate_security_profile(&profile, &custom_metrics()), []);
    }

    #[test]
    fn rejects_unknown_retained_metric() {
        let mut profile = profile(vec![]);
        profile.additional_metrics_to_retain_v2 = vec![MetricToRetain {
            metric: "humidity".to_owned(),
            metric_dimension: None,
            export_metric: None,
        }];
        let errors = validate_security_profile(&profile, &custom_metrics());
        assert_eq!(fields(&errors), ["additionalMetricsToRetainV2[0].metric"]);
    }

    #[test]
    fn rejects_dimension_on_retained_custom_metric() {
        let mut profile = profile(vec![]);
        profile.additional_metrics_to_retain_v2 = vec![MetricToRetain {
            metric: "temperature".to_owned(),
            metric_dimension: dimension("topics"),
            export_metric: None,
        }];
        let errors = validate_security_profile(&profile, &custom_metrics());
        assert_eq!(
            fields(&errors),
            ["additionalMetricsToRetainV2[0].metricDimension"]
        );
    }

    // Mitigation actions.

    #[test]
    fn accepts_guide_mitigation_action() {
        let params = add_to_group_params(&["ThingGroupForDetectMitigationAction"]);
        assert_eq!(
            validate_mitigation_action("detect_mitigation_action", ROLE_ARN, &params),
            []
        );
    }

    #[test]
    fn rejects_colon_in_action_name() {
        let params = add_to_group_params(&["quarantine"]);
        let errors = validate_mitigation_action("detect:quarantine", ROLE_ARN, &params);
        assert_eq!(fields(&errors), ["actionName"]);
        assert_eq!(
            errors[0].message,
            "must match `[a-zA-Z0-9_-]+`, found invalid character ':'"
        );
    }

    #[test]
    fn rejects_empty_action_name() {
        let params = add_to_group_params(&["quarantine"]);
        let errors = validate_mitigation_action("", ROLE_ARN, &params);
        assert_eq!(fields(&errors), ["actionName"]);
    }

    #[test]
    fn rejects_short_action_role_arn() {
        let params = add_to_group_params(&["quarantine"]);
        let errors = validate_mitigation_action("quarantine", "arn:role", &params);
        assert_eq!(fields(&errors), ["roleArn"]);
    }

    #[test]
    fn rejects_action_without_params_and_lists_choices() {
        let params = MitigationActionParams::default();
        let errors = validate_mitigation_action("quarantine", ROLE_ARN, &params);
        assert_eq!(fields(&errors), ["actionParams"]);
        assert_eq!(
            errors[0].message,
            "must set exactly one of updateDeviceCertificateParams, updateCACertificateParams, \
             addThingsToThingGroupParams, replaceDefaultPolicyVersionParams, \
             enableIoTLoggingParams, publishFindingToSnsParams"
        );
    }

    #[test]
    fn rejects_action_with_two_params_and_names_them() {
        let mut params = add_to_group_params(&["quarantine"]);
        params.publish_finding_to_sns_params = Some(PublishFindingToSnsParams {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:findings".to_owned(),
        });
        let errors = validate_mitigation_action("quarantine", ROLE_ARN, &params);
        assert_eq!(fields(&errors), ["actionParams"]);
        assert_eq!(
            errors[0].message,
            "must set exactly one member, got addThingsToThingGroupParams and \
             publishFindingToSnsParams"
        );
    }

    #[test]
    fn rejects_empty_thing_group_list() {
        let errors = validate_mitigation_action("quarantine", ROLE_ARN, &add_to_group_params(&[]));
        assert_eq!(
            fields(&errors),
            ["actionParams.addThingsToThingGroupParams.thingGroupNames"]
        );
        assert_eq!(errors[0].message, "must have 1 to 10 thing groups, got 0");
    }

    #[test]
    fn rejects_eleven_thing_groups() {
        let names: Vec<String> = (0..11).map(|index| format!("group-{index}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let params = add_to_group_params(&names);
        let errors = validate_mitigation_action("quarantine", ROLE_ARN, &params);
        assert_eq!(errors[0].message, "must have 1 to 10 thing groups, got 11");
    }

    #[test]
    fn rejects_invalid_thing_group_name() {
        let params = add_to_group_params(&["quarantine", "bad group"]);
        let errors = validate_mitigation_action("quarantine", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.addThingsToThingGroupParams.thingGroupNames[1]"]
        );
    }

    #[test]
    fn rejects_certificate_action_other_than_deactivate() {
        let params = MitigationActionParams {
            update_device_certificate_params: Some(UpdateCertificateParams {
                action: "REVOKE".to_owned(),
            }),
            ..MitigationActionParams::default()
        };
        let errors = validate_mitigation_action("deactivate", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.updateDeviceCertificateParams.action"]
        );
        assert_eq!(errors[0].message, "must be DEACTIVATE, got \"REVOKE\"");
    }

    #[test]
    fn rejects_ca_certificate_action_other_than_deactivate() {
        let params = MitigationActionParams {
            update_ca_certificate_params: Some(UpdateCertificateParams {
                action: "deactivate".to_owned(),
            }),
            ..MitigationActionParams::default()
        };
        let errors = validate_mitigation_action("deactivate", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.updateCACertificateParams.action"]
        );
    }

    #[test]
    fn rejects_policy_template_other_than_blank_policy() {
        let params = MitigationActionParams {
            replace_default_policy_version_params: Some(ReplaceDefaultPolicyVersionParams {
                template_name: "DENY_ALL".to_owned(),
            }),
            ..MitigationActionParams::default()
        };
        let errors = validate_mitigation_action("replace", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.replaceDefaultPolicyVersionParams.templateName"]
        );
    }

    #[test]
    fn accepts_enable_logging_at_warn() {
        let params = logging_params(ROLE_ARN, "WARN");
        assert_eq!(validate_mitigation_action("logging", ROLE_ARN, &params), []);
    }

    #[test]
    fn rejects_disabled_log_level() {
        let params = logging_params(ROLE_ARN, "DISABLED");
        let errors = validate_mitigation_action("logging", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.enableIoTLoggingParams.logLevel"]
        );
        assert_eq!(
            errors[0].message,
            "DISABLED cannot be used to enable logging, expected one of DEBUG, INFO, ERROR, WARN"
        );
    }

    #[test]
    fn rejects_unknown_log_level() {
        let params = logging_params(ROLE_ARN, "TRACE");
        let errors = validate_mitigation_action("logging", ROLE_ARN, &params);
        assert_eq!(
            errors[0].message,
            "must be one of DEBUG, INFO, ERROR, WARN, got \"TRACE\""
        );
    }

    #[test]
    fn rejects_short_logging_role_arn() {
        let params = logging_params("arn", "INFO");
        let errors = validate_mitigation_action("logging", ROLE_ARN, &params);
        assert_eq!(
            fields(&errors),
            ["actionParams.enableIoTLoggingParams.roleArnForLogging"]
        );
    }

    #[test]
    fn rejects_topic_arn_outside_one_to_350_characters() {
        for length in [0, 351] {
            let params = MitigationActionParams {
                publish_finding_to_sns_params: Some(PublishFindingToSnsParams {
                    topic_arn: "a".repeat(length),
                }),
                ..MitigationActionParams::default()
            };
            let errors = validate_mitigation_action("publish", ROLE_ARN, &params);
            assert_eq!(
                fields(&errors),
                ["actionParams.publishFindingToSnsParams.topicArn"]
            );
        }
    }

    // Mitigation task requests.

    #[test]
    fn accepts_guide_task_on_profile_and_behavior() {
        assert_eq!(validate_task_request(&profile_task()), []);
    }

    #[test]
    fn accepts_task_on_violation_ids() {
        let task = violation_task(&["174db59167fa474c80a652ad1583fd44", "violationId-2"]);
        assert_eq!(validate_task_request(&task), []);
    }

    #[test]
    fn rejects_task_id_with_colon() {
        let task = TaskRequest {
            task_id: "task:1".to_owned(),
            ..profile_task()
        };
        assert_eq!(fields(&validate_task_request(&task)), ["taskId"]);
    }

    #[test]
    fn rejects_target_with_violations_and_profile() {
        let mut task = profile_task();
        task.target.violation_ids = Some(vec!["174db59167fa474c80a652ad1583fd44".to_owned()]);
        let errors = validate_task_request(&task);
        assert_eq!(fields(&errors), ["target"]);
        assert_eq!(
            errors[0].message,
            "must set either violationIds or securityProfileName, not both"
        );
    }

    #[test]
    fn rejects_empty_target() {
        let mut task = profile_task();
        task.target = DetectMitigationActionsTaskTarget::default();
        let errors = validate_task_request(&task);
        assert_eq!(fields(&errors), ["target"]);
        assert_eq!(
            errors[0].message,
            "must set violationIds or securityProfileName"
        );
    }

    #[test]
    fn rejects_behavior_name_without_profile() {
        let mut task = violation_task(&["174db59167fa474c80a652ad1583fd44"]);
        task.target.behavior_name = Some("num-messages-sent-ml-behavior".to_owned());
        let errors = validate_task_request(&task);
        assert_eq!(fields(&errors), ["target.behaviorName"]);
    }

    #[test]
    fn rejects_26_violation_ids() {
        let ids: Vec<String> = (0..26).map(|index| format!("violation-{index}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let errors = validate_task_request(&violation_task(&ids));
        assert_eq!(fields(&errors), ["target.violationIds"]);
        assert_eq!(errors[0].message, "must have 1 to 25 violation ids, got 26");
    }

    #[test]
    fn rejects_empty_violation_id_list() {
        let errors = validate_task_request(&violation_task(&[]));
        assert_eq!(fields(&errors), ["target.violationIds"]);
    }

    #[test]
    fn rejects_violation_id_with_underscore() {
        let errors = validate_task_request(&violation_task(&["ok-1", "214_fe0d92d21ee"]));
        assert_eq!(fields(&errors), ["target.violationIds[1]"]);
    }

    #[test]
    fn rejects_task_without_actions() {
        let mut task = profile_task();
        task.actions.clear();
        let errors = validate_task_request(&task);
        assert_eq!(fields(&errors), ["actions"]);
        assert_eq!(errors[0].message, "must have 1 to 5 actions, got 0");
    }

    #[test]
    fn rejects_task_with_six_actions() {
        let mut task = profile_task();
        task.actions = (0..6).map(|index| format!("action-{index}")).collect();
        assert_eq!(fields(&validate_task_request(&task)), ["actions"]);
    }

    #[test]
    fn rejects_invalid_action_name_in_task() {
        let mut task = profile_task();
        task.actions.push("bad:action".to_owned());
        assert_eq!(fields(&validate_task_request(&task)), ["actions[1]"]);
    }

    #[test]
    fn rejects_occurrence_range_ending_before_start() {
        let mut task = profile_task();
        task.violation_event_occurrence_range = Some(ViolationEventOccurrenceRange {
            start_time: 1_609_987_833_000,
            end_time: 1_609_986_633_500,
        });
        let errors = validate_task_request(&task);
        assert_eq!(fields(&errors), ["violationEventOccurrenceRange.startTime"]);
        assert_eq!(
            errors[0].message,
            "must not be after endTime, got startTime 1609987833 and endTime 1609986633.5 \
             (epoch seconds)"
        );
    }

    #[test]
    fn accepts_occurrence_range_of_one_instant() {
        let mut task = profile_task();
        task.violation_event_occurrence_range = Some(ViolationEventOccurrenceRange {
            start_time: 1_609_986_633_000,
            end_time: 1_609_986_633_000,
        });
        assert_eq!(validate_task_request(&task), []);
    }
}
