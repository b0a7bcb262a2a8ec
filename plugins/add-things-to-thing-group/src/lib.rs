//! Mitigation plugin for `ADD_THINGS_TO_THING_GROUP`: adds the violating thing to each thing
//! group named in the action's parameters, the usual way to quarantine a device.
//!
//! The plugin changes nothing itself. It requests each membership from the host's
//! `thing-registry` and logs every group through the host's `logging`.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::logging::{self, Level};
use vigil::detect::thing_registry;
use vigil::detect::types::{AddThingsToThingGroupParams, MitigationActionType};

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "add-things-to-thing-group";

/// Maximum number of thing groups one action may name, as in AWS IoT Device Defender.
const MAX_THING_GROUPS: usize = 10;

struct AddThingsToThingGroup;

impl Guest for AddThingsToThingGroup {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Adds the violating thing to the action's thing groups, usually a \
                          quarantine group."
                .to_string(),
            action_types: vec![MitigationActionType::AddThingsToThingGroup],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        let params = thing_group_params(&context)?;
        let override_dynamic_groups = params.override_dynamic_groups.unwrap_or(false);

        for group in &params.thing_group_names {
            thing_registry::add_thing_to_thing_group(
                &context.thing_name,
                group,
                override_dynamic_groups,
            )
            .map_err(|error| {
                let request = format!(
                    "failed to add thing `{}` to thing group `{group}`",
                    context.thing_name
                );
                capability_failure(&request, error)
            })?;

            let message = format!(
                "added thing `{}` to thing group `{group}`",
                context.thing_name
            );
            logging::log(Level::Info, &message);
        }
        Ok(())
    }
}

/// Returns the action's group parameters after checking that they name 1 to 10 groups.
fn thing_group_params(
    context: &ExecutionContext,
) -> Result<&AddThingsToThingGroupParams, MitigationError> {
    let Some(params) = &context.action_params.add_things_to_thing_group_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `addThingsToThingGroupParams`",
            context.action_name
        )));
    };

    let count = params.thing_group_names.len();
    if count == 0 || count > MAX_THING_GROUPS {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` names {count} thing groups, expected 1 to {MAX_THING_GROUPS}",
            context.action_name
        )));
    }
    Ok(params)
}

vigil_plugin_sdk::export!(AddThingsToThingGroup);
