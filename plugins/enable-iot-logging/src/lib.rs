//! Mitigation plugin for `ENABLE_IOT_LOGGING`: sets the account's IoT logging options to the
//! action's role and log level, turning logging on.
//!
//! The level `DISABLED` is rejected with `invalid-parameters`, as AWS rejects it in this action.
//! The options are account-wide, so the violating thing only decides when the action runs. The
//! plugin changes nothing itself: it requests the change from the host's `iot-logging`
//! capability and logs the previous and the new options through the host's `logging`.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::iot_logging::{self, LoggingOptions};
use vigil::detect::logging::{self, Level};
use vigil::detect::types::{EnableIotLoggingParams, IotLogLevel, MitigationActionType};

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "enable-iot-logging";

struct EnableIotLogging;

impl Guest for EnableIotLogging {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Turns IoT logging on with the action's role and log level.".to_string(),
            action_types: vec![MitigationActionType::EnableIotLogging],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        let params = logging_params(&context)?;
        let previous = iot_logging::get_logging_options()
            .map_err(|error| capability_failure("failed to read the IoT logging options", error))?;

        iot_logging::set_logging_options(&params.role_arn_for_logging, params.log_level)
            .map_err(|error| capability_failure("failed to set the IoT logging options", error))?;
        let message = format!(
            "set IoT logging to level {} with role `{}`; it was {}",
            level_name(params.log_level),
            params.role_arn_for_logging,
            describe_options(previous.as_ref())
        );
        logging::log(Level::Info, &message);
        Ok(())
    }
}

/// Returns the action's logging parameters after checking that they turn logging on.
fn logging_params(context: &ExecutionContext) -> Result<&EnableIotLoggingParams, MitigationError> {
    let Some(params) = &context.action_params.enable_iot_logging_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `enableIoTLoggingParams`",
            context.action_name
        )));
    };
    if params.log_level == IotLogLevel::Disabled {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` sets `logLevel` to DISABLED, which cannot enable logging; use DEBUG, \
             INFO, WARN or ERROR",
            context.action_name
        )));
    }
    Ok(params)
}

/// Describes logging options for the log, for example "level ERROR with role `arn:...`".
fn describe_options(options: Option<&LoggingOptions>) -> String {
    match options {
        None => "never set up".to_string(),
        Some(options) if options.disable_all_logs => {
            format!("disabled for all logs, with role `{}`", options.role_arn)
        }
        Some(options) => format!(
            "level {} with role `{}`",
            level_name(options.default_log_level),
            options.role_arn
        ),
    }
}

/// Returns a log level as AWS IoT names it, for example `WARN`.
fn level_name(level: IotLogLevel) -> &'static str {
    match level {
        IotLogLevel::Debug => "DEBUG",
        IotLogLevel::Info => "INFO",
        IotLogLevel::Error => "ERROR",
        IotLogLevel::Warn => "WARN",
        IotLogLevel::Disabled => "DISABLED",
    }
}

vigil_plugin_sdk::export!(EnableIotLogging);
