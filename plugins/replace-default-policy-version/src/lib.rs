//! Mitigation plugin for `REPLACE_DEFAULT_POLICY_VERSION`: gives every IoT policy attached to
//! the violating thing a new default version built from the action's template.
//!
//! AWS defines one template, `BLANK_POLICY`, which it describes as a policy with no permissions.
//! The plugin writes [`BLANK_POLICY_DOCUMENT`], one statement that denies `iot:*` on every
//! resource. An IoT policy version needs at least one statement, and an explicit deny also
//! overrides any allow that another policy attached to the same certificate still grants, which
//! an empty statement list would not.
//!
//! A policy whose default version already is that document gets no new version, so running the
//! action again does not use up the five versions a policy may hold. The plugin changes nothing
//! itself: it requests each version from the host's `policies` capability and logs every policy
//! through the host's `logging`.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::capability_types::CapabilityError;
use vigil::detect::logging::{self, Level};
use vigil::detect::policies::{self, PolicyVersion};
use vigil::detect::types::MitigationActionType;

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "replace-default-policy-version";

/// The only template AWS IoT Device Defender defines.
const BLANK_POLICY_TEMPLATE: &str = "BLANK_POLICY";

/// Document of the `BLANK_POLICY` template: deny every IoT action on every resource.
const BLANK_POLICY_DOCUMENT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:*","Resource":"*"}]}"#;

/// Maximum number of versions an IoT policy holds, as in AWS IoT.
const MAX_POLICY_VERSIONS: usize = 5;

struct ReplaceDefaultPolicyVersion;

impl Guest for ReplaceDefaultPolicyVersion {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Makes a version that denies every IoT action the default of each \
                          policy attached to the violating thing."
                .to_string(),
            action_types: vec![MitigationActionType::ReplaceDefaultPolicyVersion],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        check_template(&context)?;
        let thing = &context.thing_name;
        let attached = policies::list_thing_policies(thing).map_err(|error| {
            capability_failure(
                &format!("failed to list the policies of thing `{thing}`"),
                error,
            )
        })?;
        if attached.is_empty() {
            return Err(MitigationError::TargetNotFound(format!(
                "thing `{thing}` has no policies attached through its certificates or thing \
                 groups"
            )));
        }

        for policy in &attached {
            replace_default_version(thing, policy)?;
        }
        Ok(())
    }
}

/// Checks that the action names the `BLANK_POLICY` template.
fn check_template(context: &ExecutionContext) -> Result<(), MitigationError> {
    let Some(params) = &context.action_params.replace_default_policy_version_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `replaceDefaultPolicyVersionParams`",
            context.action_name
        )));
    };
    if params.template_name != BLANK_POLICY_TEMPLATE {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` names template `{}`, expected `{BLANK_POLICY_TEMPLATE}`",
            context.action_name, params.template_name
        )));
    }
    Ok(())
}

/// Creates a default version with the blank document unless the policy already has it as its
/// default.
fn replace_default_version(thing: &str, policy: &str) -> Result<(), MitigationError> {
    let versions = policies::list_policy_versions(policy).map_err(|error| {
        capability_failure(
            &format!("failed to list the versions of policy `{policy}`"),
            error,
        )
    })?;
    if is_blank_default(&versions) {
        let message = format!(
            "left policy `{policy}` of thing `{thing}` as it is: its default version already \
             denies everything"
        );
        logging::log(Level::Info, &message);
        return Ok(());
    }
    // The host rejects a sixth version with `invalid-argument`; the document itself is fixed
    // and valid, so at the limit that error means the limit.
    policies::create_policy_version(policy, BLANK_POLICY_DOCUMENT, true).map_err(|error| {
        match error {
            CapabilityError::InvalidArgument(_) if versions.len() >= MAX_POLICY_VERSIONS => {
                version_limit_reached(policy)
            }
            error => capability_failure(
                &format!("failed to create a version of policy `{policy}`"),
                error,
            ),
        }
    })?;
    let message = format!(
        "made a version that denies everything the default of policy `{policy}` of thing \
         `{thing}`; versions before: {}",
        versions.len()
    );
    logging::log(Level::Info, &message);
    Ok(())
}

fn is_blank_default(versions: &[PolicyVersion]) -> bool {
    versions
        .iter()
        .any(|version| version.is_default_version && version.document == BLANK_POLICY_DOCUMENT)
}

fn version_limit_reached(policy: &str) -> MitigationError {
    MitigationError::Other(format!(
        "policy `{policy}` already has the maximum of {MAX_POLICY_VERSIONS} versions, so no \
         version can be added; delete a version that is not the default and run the action \
         again"
    ))
}

vigil_plugin_sdk::export!(ReplaceDefaultPolicyVersion);
