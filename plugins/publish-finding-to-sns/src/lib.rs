//! Mitigation plugin for `PUBLISH_FINDING_TO_SNS`: publishes the violation as a JSON finding to
//! the SNS topic named in the action's parameters.
//!
//! The message is one JSON object, documented field by field in `docs/plugins.md`. It names the
//! thing, the violation, its profile, behavior and metric, and the task and action that
//! published it. It carries the observed value in the AWS `MetricValue` shape and the
//! violation's start time in milliseconds since the Unix epoch. The subject is `Device Defender finding: <thing>`, cut to the 100
//! characters SNS allows. The plugin sends nothing itself: the host stages the publish and
//! delivers it after `apply` succeeds.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use serde_json::{Map, Value, json};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::logging::{self, Level};
use vigil::detect::notifications;
use vigil::detect::types::{MetricValue, MitigationActionType};

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "publish-finding-to-sns";

/// Start of every subject line, followed by the thing name.
const SUBJECT_PREFIX: &str = "Device Defender finding: ";

/// Maximum length of an SNS subject.
const MAX_SUBJECT_CHARS: usize = 100;

struct PublishFindingToSns;

impl Guest for PublishFindingToSns {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Publishes the violation as a JSON finding to the action's SNS topic."
                .to_string(),
            action_types: vec![MitigationActionType::PublishFindingToSns],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        let topic_arn = topic_arn(&context)?;
        let message = finding(&context).to_string();
        let subject = subject(&context.thing_name);

        notifications::publish(topic_arn, Some(&subject), &message).map_err(|error| {
            capability_failure(&format!("failed to publish to topic `{topic_arn}`"), error)
        })?;
        let log = format!(
            "published the finding on violation `{}` of thing `{}` to topic `{topic_arn}`",
            context.violation_id, context.thing_name
        );
        logging::log(Level::Info, &log);
        Ok(())
    }
}

/// Returns the action's topic ARN.
fn topic_arn(context: &ExecutionContext) -> Result<&str, MitigationError> {
    let Some(params) = &context.action_params.publish_finding_to_sns_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `publishFindingToSnsParams`",
            context.action_name
        )));
    };
    Ok(&params.topic_arn)
}

/// Builds the finding message, whose fields `docs/plugins.md` documents.
fn finding(context: &ExecutionContext) -> Value {
    json!({
        "thingName": context.thing_name,
        "violationId": context.violation_id,
        "securityProfileName": context.security_profile_name,
        "behaviorName": context.behavior.name,
        "metric": context.behavior.metric,
        "observedValue": context.observed_value.as_ref().map(metric_value),
        "violationStartTime": context.violation_start_time,
        "taskId": context.task_id,
        "actionName": context.action_name,
    })
}

/// Converts a metric value to the AWS `MetricValue` JSON shape, with only the set members.
fn metric_value(value: &MetricValue) -> Value {
    let mut members = Map::new();
    if let Some(count) = value.count {
        members.insert("count".to_string(), json!(count));
    }
    if let Some(cidrs) = &value.cidrs {
        members.insert("cidrs".to_string(), json!(cidrs));
    }
    if let Some(ports) = &value.ports {
        members.insert("ports".to_string(), json!(ports));
    }
    if let Some(number) = value.number {
        members.insert("number".to_string(), json!(number));
    }
    if let Some(numbers) = &value.numbers {
        members.insert("numbers".to_string(), json!(numbers));
    }
    if let Some(strings) = &value.strings {
        members.insert("strings".to_string(), json!(strings));
    }
    Value::Object(members)
}

/// Returns the subject line, cut to the length SNS allows.
fn subject(thing: &str) -> String {
    format!("{SUBJECT_PREFIX}{thing}")
        .chars()
        .take(MAX_SUBJECT_CHARS)
        .collect()
}

vigil_plugin_sdk::export!(PublishFindingToSns);
