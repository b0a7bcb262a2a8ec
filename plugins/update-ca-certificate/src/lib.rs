//! Mitigation plugin for `UPDATE_CA_CERTIFICATE`: deactivates the registered CA certificates
//! that issued the violating thing's device certificates.
//!
//! A thing's certificates may come from several CAs, so every distinct issuing CA is
//! deactivated, each once. Device certificates without a registered CA (self-signed or
//! registered without a CA) are skipped. An inactive CA certificate is left as it is. The
//! plugin changes nothing itself: it requests each status change from the host's
//! `certificates` capability and logs every CA certificate through the host's `logging`.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use std::collections::BTreeSet;

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::certificates::{self, CaCertificateStatus};
use vigil::detect::logging::{self, Level};
use vigil::detect::types::{CertificateAction, MitigationActionType};

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "update-ca-certificate";

struct UpdateCaCertificate;

impl Guest for UpdateCaCertificate {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Deactivates the CA certificates that issued the violating thing's \
                          device certificates."
                .to_string(),
            action_types: vec![MitigationActionType::UpdateCaCertificate],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        check_params(&context)?;
        let thing = &context.thing_name;
        let issuers = issuing_ca_certificates(thing)?;
        if issuers.is_empty() {
            return Err(MitigationError::TargetNotFound(format!(
                "no device certificate of thing `{thing}` was issued by a registered CA \
                 certificate"
            )));
        }

        for ca_certificate_id in &issuers {
            deactivate(thing, ca_certificate_id)?;
        }
        Ok(())
    }
}

/// Checks that the action requests `DEACTIVATE`, the only certificate action AWS defines.
fn check_params(context: &ExecutionContext) -> Result<(), MitigationError> {
    let Some(params) = &context.action_params.update_ca_certificate_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `updateCACertificateParams`",
            context.action_name
        )));
    };
    match params.action {
        CertificateAction::Deactivate => Ok(()),
    }
}

/// Returns the ids of the CA certificates that issued the thing's device certificates, sorted
/// and without repeats.
fn issuing_ca_certificates(thing: &str) -> Result<BTreeSet<String>, MitigationError> {
    let attached = certificates::list_thing_certificates(thing).map_err(|error| {
        capability_failure(
            &format!("failed to list the certificates of thing `{thing}`"),
            error,
        )
    })?;
    Ok(attached
        .into_iter()
        .filter_map(|certificate| certificate.ca_certificate_id)
        .collect())
}

/// Requests `INACTIVE` for an active CA certificate and logs one that is already inactive.
fn deactivate(thing: &str, ca_certificate_id: &str) -> Result<(), MitigationError> {
    let ca_certificate =
        certificates::describe_ca_certificate(ca_certificate_id).map_err(|error| {
            capability_failure(
                &format!("failed to describe CA certificate `{ca_certificate_id}`"),
                error,
            )
        })?;
    if ca_certificate.status == CaCertificateStatus::Inactive {
        let message = format!(
            "left CA certificate `{ca_certificate_id}` of thing `{thing}` as it is: it is \
             already INACTIVE"
        );
        logging::log(Level::Info, &message);
        return Ok(());
    }

    certificates::update_ca_certificate(ca_certificate_id, CaCertificateStatus::Inactive).map_err(
        |error| {
            capability_failure(
                &format!("failed to deactivate CA certificate `{ca_certificate_id}`"),
                error,
            )
        },
    )?;
    let message =
        format!("deactivated CA certificate `{ca_certificate_id}`, an issuer of thing `{thing}`");
    logging::log(Level::Info, &message);
    Ok(())
}

vigil_plugin_sdk::export!(UpdateCaCertificate);
