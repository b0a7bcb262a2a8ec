//! A minimal mitigation plugin to copy when writing your own: it logs the execution it was
//! given and succeeds without changing anything.
//!
//! To turn it into a plugin:
//!
//! 1. Rename it in `Cargo.toml` and in [`PLUGIN_NAME`].
//! 2. Call the capabilities it needs in `apply`, for example
//!    `vigil::detect::thing_registry::add_thing_to_thing_group`. The component imports only the
//!    capabilities the code calls, and the host refuses to load a plugin that imports one its
//!    installation does not grant.
//! 3. List AWS action types in `action_types` only for a plugin that replaces a bundled one.
//!    A custom plugin leaves it empty and is bound to an action name at installation.
//! 4. If it takes parameters, describe them with a JSON Schema in `parameters_schema`; the host
//!    checks an installation's parameters against it and passes them in `plugin-params`.
//!
//! `docs/plugins.md` describes the API, the sandbox and how the host records what a plugin did.

// `path` is the directory with the `vigil:detect` WIT files: `wit/` at the root of the Vigil
// repository. A copy outside the repository needs its own copy of that directory.
wit_bindgen::generate!({
    path: "../../wit",
    world: "vigil:detect/mitigation-plugin",
});

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::logging::{self, Level};

/// Name the host indexes this plugin under: 1 to 64 lowercase letters, digits and `-`.
const PLUGIN_NAME: &str = "template";

struct Template;

impl Guest for Template {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Logs each execution and changes nothing.".to_string(),
            action_types: Vec::new(),
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        // Return `MitigationError::InvalidParameters`, `TargetNotFound`, `CapabilityFailed`,
        // `Declined` or `Other` to fail the execution; the host then performs nothing.
        let message = format!(
            "action `{}` ran for thing `{}` on violation `{}`",
            context.action_name, context.thing_name, context.violation_id
        );
        logging::log(Level::Info, &message);
        Ok(())
    }
}

/// The component ABI exports that call [`Template`].
#[expect(
    unsafe_code,
    reason = "`export!` generates `unsafe extern` functions for the ABI"
)]
mod component_exports {
    use super::Template;

    crate::export!(Template with_types_in crate);
}
