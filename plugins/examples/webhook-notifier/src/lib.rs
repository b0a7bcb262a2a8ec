//! Example custom plugin: posts the violation's finding to a webhook through the host's
//! `outbound-http` capability.
//!
//! It handles no action type by default. An installation binds it to an action name with these
//! parameters, which the host checks against [`PARAMETERS_SCHEMA`] before binding:
//!
//! - `url` (required): the plain `http://` URL to post to. The installation must also grant a
//!   URL prefix that contains it, or the post is denied.
//! - `format` (optional, `json` or `text`, default `json`): `json` posts the finding object that
//!   `publish-finding-to-sns` publishes, `text` posts the same fields as lines of text.
//!
//! The host sends the post after `apply` returns success, and fails the execution unless the
//! server responds with a 2xx status. The crate repeats the finding format of
//! `publish-finding-to-sns` so that it stays a self-contained example to copy.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "vigil:detect/mitigation-plugin",
});

use serde::Deserialize;
use serde_json::{Map, Value, json};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::capability_types::CapabilityError;
use vigil::detect::logging::{self, Level};
use vigil::detect::outbound_http;
use vigil::detect::types::MetricValue;

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "webhook-notifier";

/// JSON Schema of the parameters an installation binds.
const PARAMETERS_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "url": {
      "type": "string",
      "minLength": 8,
      "maxLength": 2048,
      "description": "Plain http:// URL the finding is posted to."
    },
    "format": {
      "enum": ["json", "text"],
      "default": "json",
      "description": "Body format: the JSON finding, or the same fields as lines of text."
    }
  },
  "required": ["url"],
  "additionalProperties": false
}"#;

/// The plugin's parameters, as [`PARAMETERS_SCHEMA`] describes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookParams {
    url: String,
    #[serde(default)]
    format: BodyFormat,
}

/// Format of the posted body.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BodyFormat {
    /// The finding object, `application/json`.
    #[default]
    Json,
    /// One `field: value` line per finding field, `text/plain`.
    Text,
}

struct WebhookNotifier;

impl Guest for WebhookNotifier {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Posts the violation's finding to a webhook URL.".to_string(),
            action_types: Vec::new(),
            parameters_schema: Some(PARAMETERS_SCHEMA.to_string()),
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        let params = webhook_params(&context)?;
        let finding = finding(&context);
        let (content_type, body) = match params.format {
            BodyFormat::Json => ("application/json", finding.to_string()),
            BodyFormat::Text => ("text/plain; charset=utf-8", finding_text(&finding)),
        };

        outbound_http::post(&params.url, content_type, body.as_bytes())
            .map_err(|error| capability_failure(&params.url, error))?;
        let message = format!(
            "posted the finding on violation `{}` of thing `{}` to `{}` as {content_type}",
            context.violation_id, context.thing_name, params.url
        );
        logging::log(Level::Info, &message);
        Ok(())
    }
}

/// Parses the parameters the installation bound to the action.
fn webhook_params(context: &ExecutionContext) -> Result<WebhookParams, MitigationError> {
    let Some(text) = &context.plugin_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` is bound without parameters; bind it with `{{\"url\": \"http://...\"}}`",
            context.action_name
        )));
    };
    serde_json::from_str(text).map_err(|error| {
        MitigationError::InvalidParameters(format!(
            "invalid parameters for action `{}`: {error}",
            context.action_name
        ))
    })
}

/// Builds the finding object, the same one `publish-finding-to-sns` publishes.
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

/// Writes the finding as `field: value` lines: strings bare, other values as JSON.
fn finding_text(finding: &Value) -> String {
    let Value::Object(fields) = finding else {
        return finding.to_string();
    };
    let mut text = String::new();
    for (field, value) in fields {
        let value = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("{field}: {value}\n"));
    }
    text
}

/// Maps a capability error to the plugin's error, naming the URL.
fn capability_failure(url: &str, error: CapabilityError) -> MitigationError {
    let request = format!("failed to post to `{url}`");
    match error {
        CapabilityError::Denied(message) => MitigationError::CapabilityFailed(format!(
            "{request}: denied: {message}; grant its prefix with `--allow-url`"
        )),
        CapabilityError::InvalidArgument(message) => {
            MitigationError::InvalidParameters(format!("{request}: {message}"))
        }
        CapabilityError::NotFound(message) | CapabilityError::Other(message) => {
            MitigationError::CapabilityFailed(format!("{request}: {message}"))
        }
    }
}

/// The component ABI exports that call [`WebhookNotifier`].
#[expect(
    unsafe_code,
    reason = "`export!` generates `unsafe extern` functions for the ABI"
)]
mod component_exports {
    use super::WebhookNotifier;

    crate::export!(WebhookNotifier with_types_in crate);
}
