//! The host side of every capability interface, for both plugin API versions. Each call counts
//! against the host-call budget of the `apply` in progress and goes to its [`CallScope`]; outside
//! `apply` every capability answers `denied`.

use wasmtime::Result as TrapResult;

use super::capabilities::{CallScope, CapabilityError};
use super::sandbox::{HostCallLimitExceeded, PluginState};
use crate::bindings::engine::vigil::detect::types::IotLogLevel;
use crate::bindings::plugin::vigil::detect::capability_types::CapabilityError as WitError;
use crate::bindings::plugin::vigil::detect::certificates::{
    self, CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate,
};
use crate::bindings::plugin::vigil::detect::iot_logging::{self, LoggingOptions};
use crate::bindings::plugin::vigil::detect::policies::{self, PolicyVersion};
use crate::bindings::plugin::vigil::detect::thing_registry::{self, ThingDescription};
use crate::bindings::plugin::vigil::detect::{
    capability_types, logging, notifications, outbound_http,
};
use crate::bindings::plugin_v0_1::vigil::detect as v0_1;

/// Bytes of one plugin log message that reach the host log; the rest is cut.
const MAX_LOG_MESSAGE_BYTES: usize = 2048;

impl PluginState {
    /// Counts one host call and returns the scope of the `apply` in progress. Past the budget
    /// the call traps; outside `apply` it is denied.
    fn scope(&mut self) -> TrapResult<Result<&mut CallScope, CapabilityError>> {
        let Some(call) = self.call.as_mut() else {
            return Ok(Err(CapabilityError::Denied(
                "host capabilities are available only during `apply`".to_string(),
            )));
        };
        if !call.count_call() {
            return Err(wasmtime::Error::new(HostCallLimitExceeded(
                call.max_host_calls(),
            )));
        }
        Ok(Ok(call))
    }

    /// Runs `operation` on the scope of the `apply` in progress, converting its error to the
    /// 0.2.0 capability error.
    fn with_scope<T>(
        &mut self,
        operation: impl FnOnce(&mut CallScope) -> Result<T, CapabilityError>,
    ) -> TrapResult<Result<T, WitError>> {
        Ok(self.scope()?.and_then(operation).map_err(to_wit_error))
    }

    fn log_record(&mut self, level: logging::Level, message: &str) -> TrapResult<()> {
        if self.call.is_some() {
            self.scope()?.ok();
        }
        let plugin = self.plugin.as_str();
        let message = super::truncate_bytes(message, MAX_LOG_MESSAGE_BYTES);
        match level {
            logging::Level::Trace => tracing::trace!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Debug => tracing::debug!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Info => tracing::info!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Warn => tracing::warn!(target: "vigil::plugin", plugin, "{message}"),
            logging::Level::Error => tracing::error!(target: "vigil::plugin", plugin, "{message}"),
        }
        Ok(())
    }
}

fn to_wit_error(error: CapabilityError) -> WitError {
    match error {
        CapabilityError::Denied(message) => WitError::Denied(message),
        CapabilityError::ThingNotFound(message) | CapabilityError::NotFound(message) => {
            WitError::NotFound(message)
        }
        CapabilityError::InvalidArgument(message) => WitError::InvalidArgument(message),
        CapabilityError::Other(message) => WitError::Other(message),
    }
}

impl crate::bindings::engine::vigil::detect::types::Host for PluginState {}

impl capability_types::Host for PluginState {}

impl thing_registry::Host for PluginState {
    fn add_thing_to_thing_group(
        &mut self,
        thing_name: String,
        thing_group_name: String,
        override_dynamic_groups: bool,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| {
            scope.add_to_group(thing_name, thing_group_name, override_dynamic_groups)
        })
    }

    fn list_thing_groups_for_thing(
        &mut self,
        thing_name: String,
    ) -> TrapResult<Result<Vec<String>, WitError>> {
        self.with_scope(|scope| scope.groups(&thing_name))
    }

    fn describe_thing(
        &mut self,
        thing_name: String,
    ) -> TrapResult<Result<ThingDescription, WitError>> {
        self.with_scope(|scope| {
            Ok(ThingDescription {
                attributes: scope.attributes(&thing_name)?,
                thing_groups: scope.groups(&thing_name)?,
                thing_name,
            })
        })
    }
}

impl certificates::Host for PluginState {
    fn list_thing_certificates(
        &mut self,
        thing_name: String,
    ) -> TrapResult<Result<Vec<DeviceCertificate>, WitError>> {
        self.with_scope(|scope| scope.certificates(&thing_name))
    }

    fn describe_ca_certificate(
        &mut self,
        certificate_id: String,
    ) -> TrapResult<Result<CaCertificate, WitError>> {
        self.with_scope(|scope| scope.ca_certificate(&certificate_id))
    }

    fn update_certificate(
        &mut self,
        certificate_id: String,
        new_status: CertificateStatus,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.update_certificate(certificate_id, new_status))
    }

    fn update_ca_certificate(
        &mut self,
        certificate_id: String,
        new_status: CaCertificateStatus,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.update_ca_certificate(certificate_id, new_status))
    }
}

impl policies::Host for PluginState {
    fn list_thing_policies(
        &mut self,
        thing_name: String,
    ) -> TrapResult<Result<Vec<String>, WitError>> {
        self.with_scope(|scope| scope.policies(&thing_name))
    }

    fn list_policy_versions(
        &mut self,
        policy_name: String,
    ) -> TrapResult<Result<Vec<PolicyVersion>, WitError>> {
        self.with_scope(|scope| scope.policy_versions(&policy_name))
    }

    fn create_policy_version(
        &mut self,
        policy_name: String,
        document: String,
        set_as_default: bool,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.create_policy_version(policy_name, document, set_as_default))
    }
}

impl iot_logging::Host for PluginState {
    fn get_logging_options(&mut self) -> TrapResult<Result<Option<LoggingOptions>, WitError>> {
        self.with_scope(|scope| scope.logging_options())
    }

    fn set_logging_options(
        &mut self,
        role_arn: String,
        default_log_level: IotLogLevel,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.set_logging_options(role_arn, default_log_level))
    }
}

impl notifications::Host for PluginState {
    fn publish(
        &mut self,
        topic_arn: String,
        subject: Option<String>,
        message: String,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.publish(topic_arn, subject, message))
    }
}

impl outbound_http::Host for PluginState {
    fn post(
        &mut self,
        url: String,
        content_type: String,
        body: Vec<u8>,
    ) -> TrapResult<Result<(), WitError>> {
        self.with_scope(|scope| scope.post(url, content_type, body))
    }
}

impl logging::Host for PluginState {
    fn log(&mut self, level: logging::Level, message: String) -> TrapResult<()> {
        self.log_record(level, &message)
    }
}

/// Converts a capability error to the 0.1.0 registry error.
fn to_registry_error(error: CapabilityError) -> v0_1::thing_registry::RegistryError {
    use v0_1::thing_registry::RegistryError;
    match error {
        CapabilityError::Denied(message) => RegistryError::Denied(message),
        CapabilityError::ThingNotFound(message) => RegistryError::ThingNotFound(message),
        CapabilityError::NotFound(message) => RegistryError::ThingGroupNotFound(message),
        CapabilityError::InvalidArgument(message) | CapabilityError::Other(message) => {
            RegistryError::Other(message)
        }
    }
}

impl v0_1::thing_registry::Host for PluginState {
    fn add_thing_to_thing_group(
        &mut self,
        thing_name: String,
        thing_group_name: String,
        override_dynamic_groups: bool,
    ) -> TrapResult<Result<(), v0_1::thing_registry::RegistryError>> {
        Ok(self
            .scope()?
            .and_then(|scope| {
                scope.add_to_group(thing_name, thing_group_name, override_dynamic_groups)
            })
            .map_err(to_registry_error))
    }

    fn list_thing_groups_for_thing(
        &mut self,
        thing_name: String,
    ) -> TrapResult<Result<Vec<String>, v0_1::thing_registry::RegistryError>> {
        Ok(self
            .scope()?
            .and_then(|scope| scope.groups(&thing_name))
            .map_err(to_registry_error))
    }
}

impl v0_1::logging::Host for PluginState {
    fn log(&mut self, level: v0_1::logging::Level, message: String) -> TrapResult<()> {
        let level = match level {
            v0_1::logging::Level::Trace => logging::Level::Trace,
            v0_1::logging::Level::Debug => logging::Level::Debug,
            v0_1::logging::Level::Info => logging::Level::Info,
            v0_1::logging::Level::Warn => logging::Level::Warn,
            v0_1::logging::Level::Error => logging::Level::Error,
        };
        self.log_record(level, &message)
    }
}
