//! Mitigation plugin for `ADD_THINGS_TO_THING_GROUP`: adds the violating thing to each thing
//! group named in the action's parameters, the usual way to quarantine a device.
//!
//! The plugin changes nothing itself. It requests each membership from the host's
//! `thing-registry` and logs every group through the host's `logging`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "vigil:detect/mitigation-plugin",
});

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::capability_types::CapabilityError;
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
            .map_err(|error| registry_failure(&context.thing_name, group, error))?;

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
            "action `{}` has no `add-things-to-thing-group-params`",
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

/// The component ABI exports that call [`AddThingsToThingGroup`].
#[expect(
    unsafe_code,
    reason = "`export!` generates `unsafe extern` functions for the ABI"
)]
mod component_exports {
    use super::AddThingsToThingGroup;

    crate::export!(AddThingsToThingGroup with_types_in crate);
}
