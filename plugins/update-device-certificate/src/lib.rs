//! Mitigation plugin for `UPDATE_DEVICE_CERTIFICATE`: deactivates every active device
//! certificate attached to the violating thing, so the device can no longer connect.
//!
//! Certificates in any other status (already inactive, revoked, pending) are left as they are,
//! because `DEACTIVATE` only moves `ACTIVE` to `INACTIVE`. The plugin changes nothing itself: it
//! requests each status change from the host's `certificates` capability and logs every
//! certificate through the host's `logging`.

use vigil_plugin_sdk::{capability_failure, exports, vigil};

use exports::vigil::detect::mitigation::{
    ExecutionContext, Guest, MitigationError, PluginMetadata,
};
use vigil::detect::certificates::{self, CertificateStatus, DeviceCertificate};
use vigil::detect::logging::{self, Level};
use vigil::detect::types::{CertificateAction, MitigationActionType};

/// Name the host indexes this plugin under.
const PLUGIN_NAME: &str = "update-device-certificate";

struct UpdateDeviceCertificate;

impl Guest for UpdateDeviceCertificate {
    fn metadata() -> PluginMetadata {
        PluginMetadata {
            name: PLUGIN_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Deactivates every active device certificate attached to the violating \
                          thing."
                .to_string(),
            action_types: vec![MitigationActionType::UpdateDeviceCertificate],
            parameters_schema: None,
        }
    }

    fn apply(context: ExecutionContext) -> Result<(), MitigationError> {
        check_params(&context)?;
        let thing = &context.thing_name;
        let attached = certificates::list_thing_certificates(thing).map_err(|error| {
            capability_failure(
                &format!("failed to list the certificates of thing `{thing}`"),
                error,
            )
        })?;
        if attached.is_empty() {
            return Err(MitigationError::TargetNotFound(format!(
                "thing `{thing}` has no device certificates attached"
            )));
        }

        for certificate in &attached {
            deactivate(thing, certificate)?;
        }
        Ok(())
    }
}

/// Checks that the action requests `DEACTIVATE`, the only certificate action AWS defines.
fn check_params(context: &ExecutionContext) -> Result<(), MitigationError> {
    let Some(params) = &context.action_params.update_device_certificate_params else {
        return Err(MitigationError::InvalidParameters(format!(
            "action `{}` has no `updateDeviceCertificateParams`",
            context.action_name
        )));
    };
    match params.action {
        CertificateAction::Deactivate => Ok(()),
    }
}

/// Requests `INACTIVE` for an active certificate and logs a certificate in any other status.
fn deactivate(thing: &str, certificate: &DeviceCertificate) -> Result<(), MitigationError> {
    let id = &certificate.certificate_id;
    if certificate.status != CertificateStatus::Active {
        let message = format!(
            "left certificate `{id}` of thing `{thing}` as it is: its status is {}, not ACTIVE",
            status_name(certificate.status)
        );
        logging::log(Level::Info, &message);
        return Ok(());
    }

    certificates::update_certificate(id, CertificateStatus::Inactive).map_err(|error| {
        capability_failure(
            &format!("failed to deactivate certificate `{id}` of thing `{thing}`"),
            error,
        )
    })?;
    logging::log(
        Level::Info,
        &format!("deactivated certificate `{id}` of thing `{thing}`"),
    );
    Ok(())
}

/// Returns a certificate status as AWS IoT names it, for example `PENDING_TRANSFER`.
fn status_name(status: CertificateStatus) -> &'static str {
    match status {
        CertificateStatus::Active => "ACTIVE",
        CertificateStatus::Inactive => "INACTIVE",
        CertificateStatus::Revoked => "REVOKED",
        CertificateStatus::PendingTransfer => "PENDING_TRANSFER",
        CertificateStatus::RegisterInactive => "REGISTER_INACTIVE",
        CertificateStatus::PendingActivation => "PENDING_ACTIVATION",
    }
}

vigil_plugin_sdk::export!(UpdateDeviceCertificate);
