//! Shared code of the bundled mitigation plugins: the Rust bindings of world
//! `vigil:detect/mitigation-plugin`, generated once here, and the mapping from a capability error
//! to the plugin's error that every plugin needs.
//!
//! A plugin crate depends on this one, implements [`exports::vigil::detect::mitigation::Guest`]
//! and exports it with `vigil_plugin_sdk::export!(MyPlugin)`. The component still imports only
//! the capabilities the plugin calls, because the linker drops unused imports.

wit_bindgen::generate!({
    path: "../../wit",
    world: "vigil:detect/mitigation-plugin",
    pub_export_macro: true,
    default_bindings_module: "vigil_plugin_sdk",
});

use exports::vigil::detect::mitigation::MitigationError;
use vigil::detect::capability_types::CapabilityError;

/// Maps a capability error to the plugin's error, prefixed with `request`, the failed request
/// (for example "failed to add thing `lamp-1` to thing group `quarantine`").
pub fn capability_failure(request: &str, error: CapabilityError) -> MitigationError {
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
