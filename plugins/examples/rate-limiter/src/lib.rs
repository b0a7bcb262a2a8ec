//! Example custom plugin: quarantine with a rate limit. It adds the violating thing to the
//! thing group in its parameters, unless the action already ran `maxActions` times within the
//! last `windowSeconds` of event time. It then returns `declined` with the time at which the
//! window frees up.
//!
//! Parameters, checked by the host against [`PARAMETERS_SCHEMA`]:
//!
//! - `thingGroupName` (required): the static thing group to add the thing to.
//! - `maxActions` (required, 1 to 10000): how many additions the window allows.
//! - `windowSeconds` (required, 1 to 604800): the window's length in seconds.
//! - `overrideDynamicGroups` (optional, default `false`): passed on as in
//!   `ADD_THINGS_TO_THING_GROUP`.
//!
//! Time is the execution's `execution-time`, the event time of the task, never a clock, so a
//! replay limits the same way a live run does. Each action name the plugin is bound to has its
//! own window. The window lives in the plugin instance's linear memory: it starts empty when the
//! host restarts, and after the plugin traps, because the host then builds a fresh instance. An
//! addition counts from the moment the plugin requests it, even if the host later fails to
//! perform it.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "vigil:detect/mitigation-plugin",
});

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Deserialize;

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::capability_types::CapabilityError;
use vigil::detect::logging::{self, Level};
use vigil::detect::thing_registry;

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "rate-limiter";

/// JSON Schema of the parameters an installation binds.
const PARAMETERS_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "thingGroupName": {
      "type": "string",
      "minLength": 1,
      "maxLength": 128,
      "description": "Static thing group the violating thing is added to."
    },
    "maxActions": {
      "type": "integer",
      "minimum": 1,
      "maximum": 10000,
      "description": "Additions allowed within the window."
    },
    "windowSeconds": {
      "type": "integer",
      "minimum": 1,
      "maximum": 604800,
      "description": "Length of the window in seconds of event time."
    },
    "overrideDynamicGroups": {
      "type": "boolean",
      "default": false,
      "description": "Evict dynamic group memberships if the thing is at its group limit."
    }
  },
  "required": ["thingGroupName", "maxActions", "windowSeconds"],
  "additionalProperties": false
}"#;

/// Milliseconds in a second; event times are milliseconds since the Unix epoch.
const MILLIS_PER_SECOND: i64 = 1000;

/// Event times of the additions each action name made, sorted, oldest first. Only times within
/// the latest window are kept.
static ADDITIONS: Mutex<BTreeMap<String, Vec<i64>>> = Mutex::new(BTreeMap::new());

/// The plugin's parameters, as [`PARAMETERS_SCHEMA`] describes them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitParams {
    thing_group_name: String,
    max_actions: usize,
    window_seconds: i64,
    #[serde(default)]
    override_dynamic_groups: bool,
}

struct RateLimiter;

impl Guest for RateLimiter {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Adds the violating thing to a thing group unless too many things were \
                          added within a window of event time."
                .to_string(),
            action_types: Vec::new(),
            parameters_schema: Some(PARAMETERS_SCHEMA.to_string()),
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        let params = rate_limit_params(&context)?;
        let now = context.execution_time;
        let window_millis = params.window_seconds * MILLIS_PER_SECOND;
        let mut additions = ADDITIONS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let recent = additions.entry(context.action_name.clone()).or_default();
        recent.retain(|&time| time > now - window_millis);

        if recent.len() >= params.max_actions {
            let frees_at = recent[recent.len() - params.max_actions] + window_millis;
            return Err(decline(&context, &params, frees_at));
        }

        let thing = &context.thing_name;
        let group = &params.thing_group_name;
        thing_registry::add_thing_to_thing_group(thing, group, params.override_dynamic_groups)
            .map_err(|error| registry_failure(thing, group, error))?;
        let position = recent.partition_point(|&time| time <= now);
        recent.insert(position, now);
        let message = format!(
            "added thing `{thing}` to thing group `{group}`; action `{}` has made {} of {} \
             additions allowed within {} s",
            context.action_name,
            recent.len(),
            params.max_actions,
            params.window_seconds
        );
        logging::log(Level::Info, &message);
        Ok(())
    }
}

/// Parses the parameters the installation bound to the action.
fn rate_limit_params(context: &ExecutionContext) -> Result<RateLimitParams, MitigationError> {
    let Some(text) = &context.plugin_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` is bound without parameters; bind it with `thingGroupName`, \
             `maxActions` and `windowSeconds`",
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

/// Builds the `declined` error, saying when the next addition will be allowed.
fn decline(context: &ExecutionContext, params: &RateLimitParams, frees_at: i64) -> MitigationError {
    let message = format!(
        "did not add thing `{}` to thing group `{}`: action `{}` already made {} additions \
         within {} s of event time; the next one is allowed from {} ({frees_at} ms since the \
         Unix epoch)",
        context.thing_name,
        params.thing_group_name,
        context.action_name,
        params.max_actions,
        params.window_seconds,
        format_utc(frees_at)
    );
    logging::log(Level::Warn, &message);
    MitigationError::Declined(message)
}

/// Formats milliseconds since the Unix epoch as an RFC 3339 UTC time, for example
/// `2023-11-14T22:13:20Z`.
fn format_utc(millis: i64) -> String {
    let seconds = millis.div_euclid(MILLIS_PER_SECOND);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), with Howard
/// Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Maps a registry error to the plugin's error, naming the thing and group involved.
fn registry_failure(thing: &str, group: &str, error: CapabilityError) -> MitigationError {
    let request = format!("failed to add thing `{thing}` to thing group `{group}`");
    match error {
        CapabilityError::NotFound(message) => {
            MitigationError::TargetNotFound(format!("{request}: {message}"))
        }
        CapabilityError::Denied(message) => {
            MitigationError::CapabilityFailed(format!("{request}: denied: {message}"))
        }
        CapabilityError::InvalidArgument(message) => {
            MitigationError::InvalidParameters(format!("{request}: {message}"))
        }
        CapabilityError::Other(message) => {
            MitigationError::CapabilityFailed(format!("{request}: {message}"))
        }
    }
}

/// The component ABI exports that call [`RateLimiter`].
#[expect(
    unsafe_code,
    reason = "`export!` generates `unsafe extern` functions for the ABI"
)]
mod component_exports {
    use super::RateLimiter;

    crate::export!(RateLimiter with_types_in crate);
}
