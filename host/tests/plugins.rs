//! Plugin runtime tests against real components: the bundled plugins, the `webhook-notifier`,
//! `rate-limiter` and `template` examples, the `hostile` fixture and the `legacy-quarantine`
//! fixture built against plugin API 0.1.0, all built into `target/wasm/` by
//! `cargo xtask build-wasm`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use vigil_host::bindings::engine::exports::vigil::detect::detector::ExecutionOutcome;
use vigil_host::bindings::engine::vigil::detect::types::{
    AddThingsToThingGroupParams, Behavior, CertificateAction, EnableIotLoggingParams, MetricValue,
    MitigationActionParams, PublishFindingToSnsParams, ReplaceDefaultPolicyVersionParams,
    UpdateCertificateParams,
};
use vigil_host::plugins::records::{
    CaCertificate, CaCertificateStatus, CertificateStatus, DeviceCertificate, IotLogLevel,
    LoggingOptions, PolicyVersion,
};
use vigil_host::plugins::{
    ActionBinding, ApplyOutcome, Capability, CapabilityError, ExecutionContext, FailureCode,
    Grants, MitigationActionType, PluginHost, PluginLimits, Registry, StagedOperation,
    ThingSnapshot, add_version, http,
};

const QUARANTINE: &str = "quarantine";
const ISOLATED: &str = "isolated";
const HOSTILE_GROUP: &str = "hostile-was-here";

/// Document of the `BLANK_POLICY` template as `replace-default-policy-version` writes it.
const BLANK_POLICY_DOCUMENT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:*","Resource":"*"}]}"#;

/// A policy document that allows everything, the kind the blank policy replaces.
const ALLOW_ALL_DOCUMENT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#;

const LOGGING_ROLE: &str = "arn:aws:iam::123456789012:role/iot-logging";
const FINDINGS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:findings";

/// A thing registry in memory. Adding to a group that was not created fails, as in AWS IoT.
/// Its snapshots return the certificates, CA certificates, policies, logging options and
/// attributes a test configures. It performs every kind of staged operation and records each
/// one it performed.
#[derive(Default)]
struct MemoryRegistry {
    groups: BTreeSet<String>,
    memberships: BTreeMap<String, BTreeSet<String>>,
    attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Device certificates by id.
    certificates: BTreeMap<String, DeviceCertificate>,
    /// Ids of the certificates attached to each thing.
    thing_certificates: BTreeMap<String, Vec<String>>,
    /// CA certificates by id.
    ca_certificates: BTreeMap<String, CaCertificate>,
    /// Policy versions by policy name, oldest first.
    policies: BTreeMap<String, Vec<PolicyVersion>>,
    /// Names of the policies attached to each thing.
    thing_policies: BTreeMap<String, Vec<String>>,
    logging: Option<LoggingOptions>,
    performed: Vec<StagedOperation>,
    calls: usize,
}

impl MemoryRegistry {
    fn with_groups(groups: &[&str]) -> Self {
        Self {
            groups: groups.iter().map(|group| group.to_string()).collect(),
            ..Self::default()
        }
    }

    fn groups_of(&self, thing: &str) -> Vec<String> {
        self.memberships
            .get(thing)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Attaches a device certificate to `thing`, issued by `ca` if given.
    fn attach_certificate(
        &mut self,
        thing: &str,
        id: &str,
        status: CertificateStatus,
        ca: Option<&str>,
    ) {
        let certificate = DeviceCertificate {
            certificate_id: id.to_string(),
            certificate_arn: format!("arn:aws:iot:us-east-1:123456789012:cert/{id}"),
            status,
            ca_certificate_id: ca.map(str::to_string),
        };
        self.certificates.insert(id.to_string(), certificate);
        self.thing_certificates
            .entry(thing.to_string())
            .or_default()
            .push(id.to_string());
    }

    fn register_ca_certificate(&mut self, id: &str, status: CaCertificateStatus) {
        let certificate = CaCertificate {
            certificate_id: id.to_string(),
            certificate_arn: format!("arn:aws:iot:us-east-1:123456789012:cacert/{id}"),
            status,
        };
        self.ca_certificates.insert(id.to_string(), certificate);
    }

    /// Attaches a policy with `documents` as its versions to `thing`; the last one is the
    /// default.
    fn attach_policy(&mut self, thing: &str, policy: &str, documents: &[&str]) {
        let mut versions = Vec::new();
        for document in documents {
            add_version(&mut versions, document, true);
        }
        self.policies.insert(policy.to_string(), versions);
        self.thing_policies
            .entry(thing.to_string())
            .or_default()
            .push(policy.to_string());
    }

    fn certificate_status(&self, id: &str) -> CertificateStatus {
        self.certificates[id].status
    }

    fn ca_certificate_status(&self, id: &str) -> CaCertificateStatus {
        self.ca_certificates[id].status
    }

    /// Returns each version of `policy` as (version id, is default, document).
    fn policy_versions(&self, policy: &str) -> Vec<(String, bool, String)> {
        self.policies[policy]
            .iter()
            .map(|version| {
                (
                    version.version_id.clone(),
                    version.is_default_version,
                    version.document.clone(),
                )
            })
            .collect()
    }

    fn snapshot_certificates(&self, thing: &str) -> Vec<DeviceCertificate> {
        self.thing_certificates
            .get(thing)
            .into_iter()
            .flatten()
            .map(|id| self.certificates[id].clone())
            .collect()
    }

    /// Returns the CA certificates that issued one of `certificates`.
    fn snapshot_ca_certificates(&self, certificates: &[DeviceCertificate]) -> Vec<CaCertificate> {
        let issuers: BTreeSet<&String> = certificates
            .iter()
            .filter_map(|certificate| certificate.ca_certificate_id.as_ref())
            .collect();
        self.ca_certificates
            .values()
            .filter(|ca| issuers.contains(&ca.certificate_id))
            .cloned()
            .collect()
    }

    fn snapshot_policies(&self, thing: &str) -> BTreeMap<String, Vec<PolicyVersion>> {
        self.thing_policies
            .get(thing)
            .into_iter()
            .flatten()
            .map(|policy| (policy.clone(), self.policies[policy].clone()))
            .collect()
    }

    fn perform_add_to_group(&mut self, thing: &str, group: &str) -> Result<(), CapabilityError> {
        if !self.groups.contains(group) {
            return Err(CapabilityError::NotFound(group.to_string()));
        }
        self.memberships
            .entry(thing.to_string())
            .or_default()
            .insert(group.to_string());
        Ok(())
    }

    fn perform_update_certificate(
        &mut self,
        id: &str,
        status: CertificateStatus,
    ) -> Result<(), CapabilityError> {
        let certificate = self
            .certificates
            .get_mut(id)
            .ok_or_else(|| CapabilityError::NotFound(format!("certificate `{id}`")))?;
        certificate.status = status;
        Ok(())
    }

    fn perform_update_ca_certificate(
        &mut self,
        id: &str,
        status: CaCertificateStatus,
    ) -> Result<(), CapabilityError> {
        let certificate = self
            .ca_certificates
            .get_mut(id)
            .ok_or_else(|| CapabilityError::NotFound(format!("CA certificate `{id}`")))?;
        certificate.status = status;
        Ok(())
    }

    fn perform_create_policy_version(
        &mut self,
        policy: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<(), CapabilityError> {
        let versions = self
            .policies
            .get_mut(policy)
            .ok_or_else(|| CapabilityError::NotFound(format!("policy `{policy}`")))?;
        add_version(versions, document, set_as_default);
        Ok(())
    }
}

impl Registry for MemoryRegistry {
    fn snapshot(&mut self, thing: &str) -> Result<ThingSnapshot, CapabilityError> {
        let certificates = self.snapshot_certificates(thing);
        Ok(ThingSnapshot {
            attributes: self.attributes.get(thing).cloned().unwrap_or_default(),
            groups: self.groups_of(thing),
            ca_certificates: self.snapshot_ca_certificates(&certificates),
            certificates,
            policies: self.snapshot_policies(thing),
            logging: self.logging.clone(),
        })
    }

    fn perform(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError> {
        self.calls += 1;
        match operation {
            StagedOperation::AddThingToThingGroup { thing, group, .. } => {
                self.perform_add_to_group(thing, group)?
            }
            StagedOperation::UpdateCertificate {
                certificate_id,
                status,
            } => self.perform_update_certificate(certificate_id, *status)?,
            StagedOperation::UpdateCaCertificate {
                certificate_id,
                status,
            } => self.perform_update_ca_certificate(certificate_id, *status)?,
            StagedOperation::CreatePolicyVersion {
                policy,
                document,
                set_as_default,
            } => self.perform_create_policy_version(policy, document, *set_as_default)?,
            StagedOperation::SetLoggingOptions { role_arn, level } => {
                self.logging = Some(LoggingOptions {
                    role_arn: role_arn.clone(),
                    default_log_level: *level,
                    disable_all_logs: false,
                });
            }
            // The published message is kept in `performed`, as a sink would receive it.
            StagedOperation::Publish { .. } => {}
            StagedOperation::HttpPost {
                url,
                content_type,
                body,
            } => http::post(url, content_type, body)?,
        }
        self.performed.push(operation.clone());
        Ok(())
    }
}

/// One tracing event: its target, level, `plugin` field and message.
#[derive(Debug, Clone, PartialEq)]
struct LogRecord {
    target: String,
    level: Level,
    plugin: Option<String>,
    message: String,
}

/// A tracing layer that keeps every event and the name of every span.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<LogRecord>>>,
    spans: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn events_with_target(&self, target: &str) -> Vec<LogRecord> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|event| event.target == target)
            .cloned()
            .collect()
    }

    fn span_names(&self) -> Vec<String> {
        self.spans.lock().unwrap().clone()
    }
}

impl Recorder {
    /// Runs `action` with this recorder as the thread's subscriber.
    ///
    /// Tracing caches each callsite's interest for the whole process, computed by the first thread
    /// that reaches it. A parallel test thread without a subscriber would cache "never" and hide the
    /// events this thread records, so every thread without a subscriber of its own falls back to
    /// a global one that keeps every callsite's interest open.
    fn record<T>(&self, action: impl FnOnce() -> T) -> T {
        static OPEN_INTEREST: OnceLock<()> = OnceLock::new();
        OPEN_INTEREST.get_or_init(|| {
            tracing::subscriber::set_global_default(OpenInterest)
                .expect("no other global subscriber in the plugin tests");
        });
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::with_default(subscriber, action)
    }
}

/// A subscriber that records nothing and rates every callsite "sometimes", so each event is
/// checked against the subscriber of the thread that emits it.
struct OpenInterest;

impl Subscriber for OpenInterest {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn on_new_span(&self, attributes: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        self.spans
            .lock()
            .unwrap()
            .push(attributes.metadata().name().to_string());
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        self.events.lock().unwrap().push(LogRecord {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            plugin: fields.plugin,
            message: fields.message,
        });
    }
}

#[derive(Default)]
struct EventFields {
    plugin: Option<String>,
    message: String,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "plugin" {
            self.plugin = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

fn artifact(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm")
        .join(relative);
    assert!(
        path.exists(),
        "`{}` is missing: build it with `cargo xtask build-wasm` before running these tests",
        path.display()
    );
    path
}

/// What the hostile fixture is granted: everything it imports.
fn hostile_grants() -> Grants {
    Grants::of(&[
        Capability::ThingRegistry,
        Capability::Notifications,
        Capability::Logging,
    ])
}

fn host_with_plugins() -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    host.load(artifact("plugins/add-things-to-thing-group.wasm"))
        .expect("real plugin");
    host.load_with_grants(artifact("fixtures/hostile-plugin.wasm"), hostile_grants())
        .expect("hostile fixture");
    host
}

fn behavior() -> Behavior {
    Behavior {
        name: "too-many-messages".to_string(),
        metric: Some("aws:num-messages-sent".to_string()),
        metric_dimension: None,
        criteria: None,
        suppress_alerts: None,
        export_metric: None,
    }
}

fn no_params() -> MitigationActionParams {
    MitigationActionParams {
        update_device_certificate_params: None,
        update_ca_certificate_params: None,
        add_things_to_thing_group_params: None,
        replace_default_policy_version_params: None,
        enable_iot_logging_params: None,
        publish_finding_to_sns_params: None,
    }
}

fn context(
    thing: &str,
    action_type: MitigationActionType,
    action_params: MitigationActionParams,
) -> ExecutionContext {
    ExecutionContext {
        task_id: "task-1".to_string(),
        action_name: "quarantine-action".to_string(),
        action_type,
        action_params,
        plugin_params: None,
        role_arn: "arn:aws:iam::123456789012:role/mitigation".to_string(),
        violation_id: "0123456789abcdef0123456789abcdef".to_string(),
        thing_name: thing.to_string(),
        security_profile_name: "fleet-baseline".to_string(),
        behavior: behavior(),
        observed_value: None,
        additional_info: None,
        violation_start_time: 1_700_000_000_000,
        execution_time: 1_700_000_300_000,
    }
}

fn add_to_groups(thing: &str, groups: &[&str]) -> ExecutionContext {
    let mut params = no_params();
    params.add_things_to_thing_group_params = Some(AddThingsToThingGroupParams {
        thing_group_names: groups.iter().map(|group| group.to_string()).collect(),
        override_dynamic_groups: None,
    });
    context(thing, MitigationActionType::AddThingsToThingGroup, params)
}

fn hostile(thing: &str) -> ExecutionContext {
    let mut params = no_params();
    params.publish_finding_to_sns_params = Some(PublishFindingToSnsParams {
        topic_arn: "arn:aws:sns:us-east-1:123456789012:findings".to_string(),
    });
    context(thing, MitigationActionType::PublishFindingToSns, params)
}

fn failure_code(outcome: &ApplyOutcome) -> Option<FailureCode> {
    outcome.failure.as_ref().map(|failure| failure.code)
}

fn failure_message(outcome: &ApplyOutcome) -> String {
    outcome
        .failure
        .as_ref()
        .map(|failure| failure.message.clone())
        .unwrap_or_default()
}

/// Checks that the host still works after a failure: the hostile plugin's normal path succeeds.
fn assert_host_recovers(host: &mut PluginHost) {
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);
    let outcome = host.apply(&mut registry, &hostile("sensor-after"));
    assert_eq!(
        failure_code(&outcome),
        None,
        "{}",
        failure_message(&outcome)
    );
    assert_eq!(
        registry.groups_of("sensor-after"),
        vec![HOSTILE_GROUP.to_string()]
    );
}

#[test]
fn load_reports_each_plugin_description() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");

    let loaded = host.load(artifact("plugins")).expect("plugin directory");

    assert_eq!(loaded.len(), 6);
    assert_eq!(loaded[0].name, "add-things-to-thing-group");
    assert_eq!(loaded[0].version, "0.1.0");
    assert_eq!(loaded[0].api_version, "0.2.0");
    assert_eq!(
        loaded[0].action_types,
        vec![MitigationActionType::AddThingsToThingGroup]
    );
    assert_eq!(
        loaded[0].imports,
        vec![Capability::ThingRegistry, Capability::Logging]
    );
    assert_eq!(
        loaded[0].grants.capabilities,
        vec![Capability::ThingRegistry, Capability::Logging]
    );
}

#[test]
fn each_bundled_plugin_imports_only_its_capability() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let expected = [
        (
            "add-things-to-thing-group",
            MitigationActionType::AddThingsToThingGroup,
            Capability::ThingRegistry,
        ),
        (
            "enable-iot-logging",
            MitigationActionType::EnableIotLogging,
            Capability::IotLogging,
        ),
        (
            "publish-finding-to-sns",
            MitigationActionType::PublishFindingToSns,
            Capability::Notifications,
        ),
        (
            "replace-default-policy-version",
            MitigationActionType::ReplaceDefaultPolicyVersion,
            Capability::Policies,
        ),
        (
            "update-ca-certificate",
            MitigationActionType::UpdateCaCertificate,
            Capability::Certificates,
        ),
        (
            "update-device-certificate",
            MitigationActionType::UpdateDeviceCertificate,
            Capability::Certificates,
        ),
    ];

    let loaded = host.load(artifact("plugins")).expect("plugin directory");

    assert_eq!(loaded.len(), expected.len());
    for (info, (name, action_type, capability)) in loaded.iter().zip(expected) {
        assert_eq!(info.name, name);
        assert_eq!(info.action_types, vec![action_type], "{name}");
        assert_eq!(
            info.imports,
            vec![capability, Capability::Logging],
            "{name}"
        );
        assert!(!info.description.is_empty(), "{name}");
        assert_eq!(info.parameters_schema, None, "{name}");
    }
}

#[test]
fn plugin_for_finds_action_handler() {
    let host = host_with_plugins();

    let real = host.plugin_for(MitigationActionType::AddThingsToThingGroup);
    let hostile = host.plugin_for(MitigationActionType::PublishFindingToSns);
    let missing = host.plugin_for(MitigationActionType::EnableIotLogging);

    assert_eq!(
        real.map(|info| info.name.as_str()),
        Some("add-things-to-thing-group")
    );
    assert_eq!(hostile.map(|info| info.name.as_str()), Some("hostile"));
    assert!(missing.is_none());
}

#[test]
fn real_plugin_adds_thing_to_every_group() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE, ISOLATED]);

    let outcome = host.apply(
        &mut registry,
        &add_to_groups("sensor-1", &[QUARANTINE, ISOLATED]),
    );

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("add-things-to-thing-group"));
    assert_eq!(
        registry.groups_of("sensor-1"),
        vec![ISOLATED.to_string(), QUARANTINE.to_string()]
    );
    assert_eq!(
        outcome.performed,
        vec![
            StagedOperation::AddThingToThingGroup {
                thing: "sensor-1".to_string(),
                group: QUARANTINE.to_string(),
                override_dynamic_groups: false,
            },
            StagedOperation::AddThingToThingGroup {
                thing: "sensor-1".to_string(),
                group: ISOLATED.to_string(),
                override_dynamic_groups: false,
            },
        ]
    );
    assert!(outcome.fuel_consumed > 0);
    assert!(matches!(
        outcome.to_execution_outcome(),
        ExecutionOutcome::Successful
    ));
}

#[test]
fn plugin_logs_become_tracing_events() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);
    let recorder = Recorder::default();

    recorder.record(|| host.apply(&mut registry, &add_to_groups("sensor-1", &[QUARANTINE])));

    assert_eq!(
        recorder.events_with_target("vigil::plugin"),
        vec![LogRecord {
            target: "vigil::plugin".to_string(),
            level: Level::INFO,
            plugin: Some("add-things-to-thing-group".to_string()),
            message: "added thing `sensor-1` to thing group `quarantine`".to_string(),
        }]
    );
    assert_eq!(recorder.span_names(), vec!["host.plugin.apply".to_string()]);
}

#[test]
fn real_plugin_passes_override_dynamic_groups() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);
    let mut execution = add_to_groups("sensor-1", &[QUARANTINE]);
    let params = execution
        .action_params
        .add_things_to_thing_group_params
        .as_mut()
        .unwrap();
    params.override_dynamic_groups = Some(true);

    let outcome = host.apply(&mut registry, &execution);

    assert_eq!(
        outcome.performed,
        vec![StagedOperation::AddThingToThingGroup {
            thing: "sensor-1".to_string(),
            group: QUARANTINE.to_string(),
            override_dynamic_groups: true,
        }]
    );
}

#[test]
fn real_plugin_rejects_missing_parameters() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);
    let execution = context(
        "sensor-1",
        MitigationActionType::AddThingsToThingGroup,
        no_params(),
    );

    let outcome = host.apply(&mut registry, &execution);

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert!(
        failure_message(&outcome).contains("invalid parameters"),
        "{}",
        failure_message(&outcome)
    );
    assert_eq!(registry.calls, 0);
}

#[test]
fn real_plugin_rejects_empty_group_list() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);

    let outcome = host.apply(&mut registry, &add_to_groups("sensor-1", &[]));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert!(
        failure_message(&outcome).contains("names 0 thing groups"),
        "{}",
        failure_message(&outcome)
    );
    assert_eq!(registry.calls, 0);
}

#[test]
fn missing_group_fails_with_registry_error() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);

    let outcome = host.apply(
        &mut registry,
        &add_to_groups("sensor-1", &[QUARANTINE, "missing"]),
    );

    assert_eq!(failure_code(&outcome), Some(FailureCode::RegistryError));
    assert_eq!(
        failure_message(&outcome),
        "failed to add thing `sensor-1` to thing group `missing`: not found: missing"
    );
    // Like AWS, nothing is rolled back: the first group stays, and the outcome records it.
    assert_eq!(registry.groups_of("sensor-1"), vec![QUARANTINE.to_string()]);
    assert_eq!(outcome.performed.len(), 1);
}

#[test]
fn panic_traps_then_host_recovers() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("trap"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginTrap));
    assert!(
        failure_message(&outcome).contains("unreachable"),
        "{}",
        failure_message(&outcome)
    );
    assert!(
        failure_message(&outcome).contains("hostile plugin asked to trap"),
        "the panic message from stderr is quoted: {}",
        failure_message(&outcome)
    );
    assert_host_recovers(&mut host);
}

#[test]
fn endless_loop_times_out_then_recovers() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("loop"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginTimeout));
    assert_eq!(outcome.fuel_consumed, PluginLimits::default().fuel_per_call);
    assert_host_recovers(&mut host);
}

#[test]
fn memory_bomb_runs_out_then_recovers() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("memory-bomb"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginOutOfMemory));
    assert!(
        failure_message(&outcome).contains("64 MiB"),
        "{}",
        failure_message(&outcome)
    );
    assert_host_recovers(&mut host);
}

#[test]
fn deep_recursion_traps_then_recovers() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("deep-recursion"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginTrap));
    assert_host_recovers(&mut host);
}

#[test]
fn repeated_traps_do_not_wear_out_the_host() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    for _ in 0..3 {
        let outcome = host.apply(&mut registry, &hostile("trap"));
        assert_eq!(failure_code(&outcome), Some(FailureCode::PluginTrap));
    }
    assert_host_recovers(&mut host);
}

#[test]
fn lying_plugin_succeeds_without_changing_the_registry() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("lie"));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert!(outcome.performed.is_empty());
    assert_eq!(registry.calls, 0);
    assert!(registry.memberships.is_empty());
}

#[test]
fn unhandled_action_type_fails_with_no_plugin() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::default();
    let execution = context(
        "sensor-1",
        MitigationActionType::EnableIotLogging,
        no_params(),
    );

    let outcome = host.apply(&mut registry, &execution);

    assert_eq!(failure_code(&outcome), Some(FailureCode::NoPlugin));
    assert_eq!(outcome.plugin, None);
    assert!(failure_message(&outcome).contains("`enable-iot-logging`"));
}

#[test]
fn failed_outcome_converts_to_execution_failure() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &hostile("loop"));

    let ExecutionOutcome::Failed((code, message)) = outcome.to_execution_outcome() else {
        panic!("expected a failed execution outcome");
    };
    assert_eq!(code, "PLUGIN_TIMEOUT");
    assert!(message.contains("ran out of fuel"), "{message}");
}

#[test]
fn missing_plugin_path_names_the_build_command() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");

    let error = host
        .load("/nonexistent/vigil-plugins")
        .expect_err("missing path");

    assert!(
        format!("{error:#}").contains("cargo xtask build-wasm"),
        "{error:#}"
    );
}

#[test]
fn non_component_file_is_rejected_with_build_hint() {
    let dir = std::env::temp_dir().join(format!("vigil-plugin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("not-a-component.wasm");
    std::fs::write(&path, b"\0asm this is not a component").expect("temp file");
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");

    let error = host.load(&path).expect_err("invalid component");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");

    let message = format!("{error:#}");
    assert!(message.contains("not a WebAssembly component"), "{message}");
    assert!(message.contains("cargo xtask build-wasm"), "{message}");
}

#[test]
fn loading_a_plugin_twice_is_rejected() {
    let mut host = host_with_plugins();

    let error = host
        .load_with_grants(artifact("fixtures/hostile-plugin.wasm"), hostile_grants())
        .expect_err("duplicate");

    assert!(
        format!("{error:#}").contains("a plugin named `hostile` is already loaded"),
        "{error:#}"
    );
}

#[test]
fn plugin_importing_an_ungranted_capability_is_refused_at_load() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");

    // Bundled grants follow the action type: `publish-finding-to-sns` needs only notifications,
    // but the fixture also imports the thing registry.
    let error = host
        .load(artifact("fixtures/hostile-plugin.wasm"))
        .expect_err("thing-registry is not granted");

    let message = format!("{error:#}");
    assert!(
        message.contains(
            "plugin `hostile` imports `thing-registry`, which its configuration does not grant \
             (granted: notifications, logging)"
        ),
        "{message}"
    );
    assert_eq!(host.plugins().count(), 0);
}

#[test]
fn acting_on_another_thing_is_denied_and_fails_the_execution() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::with_groups(&[HOSTILE_GROUP]);

    let outcome = host.apply(&mut registry, &hostile("trespass"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert!(
        failure_message(&outcome).contains(
            "Denied(\"plugins may act only on the execution's thing `trespass`, not `victim`\")"
        ),
        "{}",
        failure_message(&outcome)
    );
    assert!(registry.memberships.is_empty());
    assert_host_recovers(&mut host);
}

#[test]
fn oversize_error_message_fails_with_output_too_large() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &hostile("oversize"));

    assert_eq!(
        failure_code(&outcome),
        Some(FailureCode::PluginOutputTooLarge)
    );
    assert_eq!(
        failure_message(&outcome),
        "plugin `hostile` returned an error message of 1048576 bytes, more than the 65536 allowed"
    );
    assert_host_recovers(&mut host);
}

#[test]
fn host_call_flood_traps_at_the_budget() {
    let mut host = host_with_plugins();
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &hostile("host-call-flood"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginTrap));
    assert!(
        failure_message(&outcome).contains("made more than 1000 host calls in one `apply`"),
        "{}",
        failure_message(&outcome)
    );
    assert_host_recovers(&mut host);
}

#[test]
fn plugin_built_against_api_0_1_0_loads_and_acts() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let info = host
        .load(artifact("fixtures/legacy-plugin.wasm"))
        .expect("legacy plugin")
        .remove(0);
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);

    let outcome = host.apply(&mut registry, &add_to_groups("sensor-1", &[QUARANTINE]));

    assert_eq!(info.name, "legacy-quarantine");
    assert_eq!(info.api_version, "0.1.0");
    assert_eq!(
        info.imports,
        vec![Capability::ThingRegistry, Capability::Logging]
    );
    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(registry.groups_of("sensor-1"), vec![QUARANTINE.to_string()]);
}

#[test]
fn binding_an_action_name_routes_it_to_the_plugin() {
    let mut host = host_with_plugins();
    host.bind(ActionBinding {
        action_name: "quarantine-action".to_string(),
        plugin: "hostile".to_string(),
        params: None,
    })
    .expect("binding");
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE, HOSTILE_GROUP]);

    // The action type is add-things-to-thing-group, but the name is bound to `hostile`.
    let outcome = host.apply(&mut registry, &add_to_groups("sensor-1", &[QUARANTINE]));

    assert_eq!(outcome.plugin.as_deref(), Some("hostile"));
    assert_eq!(
        registry.groups_of("sensor-1"),
        vec![HOSTILE_GROUP.to_string()]
    );
}

#[test]
fn binding_parameters_to_a_plugin_without_a_schema_is_refused() {
    let mut host = host_with_plugins();

    let error = host
        .bind(ActionBinding {
            action_name: "notify".to_string(),
            plugin: "hostile".to_string(),
            params: Some(serde_json::json!({"url": "http://127.0.0.1:1/"})),
        })
        .expect_err("hostile takes no parameters");

    assert_eq!(
        error.to_string(),
        "failed to bind action `notify` to plugin `hostile`: the plugin takes no parameters"
    );
}

/// Loads every bundled plugin from `target/wasm/plugins`, with the grants their action types
/// imply.
fn bundled_host() -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    host.load(artifact("plugins")).expect("bundled plugins");
    host
}

/// Loads one bundled plugin, with the grants its action type implies. Compiling one component
/// instead of all of them keeps the tests quick.
fn bundled_plugin(name: &str) -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    host.load(artifact(&format!("plugins/{name}.wasm")))
        .expect("bundled plugin");
    host
}

fn deactivate_device_certificate(thing: &str) -> ExecutionContext {
    let mut params = no_params();
    params.update_device_certificate_params = Some(UpdateCertificateParams {
        action: CertificateAction::Deactivate,
    });
    context(thing, MitigationActionType::UpdateDeviceCertificate, params)
}

fn deactivate_ca_certificate(thing: &str) -> ExecutionContext {
    let mut params = no_params();
    params.update_ca_certificate_params = Some(UpdateCertificateParams {
        action: CertificateAction::Deactivate,
    });
    context(thing, MitigationActionType::UpdateCaCertificate, params)
}

fn replace_default_policy(thing: &str, template_name: &str) -> ExecutionContext {
    let mut params = no_params();
    params.replace_default_policy_version_params = Some(ReplaceDefaultPolicyVersionParams {
        template_name: template_name.to_string(),
    });
    context(
        thing,
        MitigationActionType::ReplaceDefaultPolicyVersion,
        params,
    )
}

fn enable_logging(thing: &str, log_level: IotLogLevel) -> ExecutionContext {
    let mut params = no_params();
    params.enable_iot_logging_params = Some(EnableIotLoggingParams {
        role_arn_for_logging: LOGGING_ROLE.to_string(),
        log_level,
    });
    context(thing, MitigationActionType::EnableIotLogging, params)
}

fn publish_finding(thing: &str) -> ExecutionContext {
    let mut params = no_params();
    params.publish_finding_to_sns_params = Some(PublishFindingToSnsParams {
        topic_arn: FINDINGS_TOPIC.to_string(),
    });
    let mut execution = context(thing, MitigationActionType::PublishFindingToSns, params);
    execution.action_name = "report-finding".to_string();
    execution.observed_value = Some(MetricValue {
        count: Some(250),
        cidrs: None,
        ports: None,
        number: None,
        numbers: None,
        strings: None,
    });
    execution
}

/// Builds an execution of an action bound by name to a custom plugin, at `execution_time`.
fn bound_execution(thing: &str, action_name: &str, execution_time: i64) -> ExecutionContext {
    let mut execution = context(
        thing,
        MitigationActionType::AddThingsToThingGroup,
        no_params(),
    );
    execution.action_name = action_name.to_string();
    execution.execution_time = execution_time;
    execution
}

/// Serves one HTTP request on loopback, replying with `status_line`. Returns the URL of
/// `/hooks/ops` on it and a handle that yields the request it received.
fn serve_once(status_line: &'static str) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("listener address");
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let request = read_request(&mut stream);
        let reply = format!("{status_line}\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(reply.as_bytes()).expect("reply");
        request
    });
    (format!("http://{address}/hooks/ops"), server)
}

/// Reads one request: its head, then as many body bytes as its `Content-Length` gives.
fn read_request(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("Content-Length: "))
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).expect("read request");
        assert!(read > 0, "the client closed before sending its request");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// Returns the body of an HTTP request.
fn request_body(request: &str) -> &str {
    request.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn webhook_host(allowed_url: &str) -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let grants = Grants {
        capabilities: vec![Capability::OutboundHttp, Capability::Logging],
        allowed_urls: vec![allowed_url.to_string()],
        ..Grants::default()
    };
    host.load_with_grants(artifact("examples/webhook-notifier.wasm"), grants)
        .expect("webhook example");
    host
}

fn bind_webhook(host: &mut PluginHost, params: Value) -> anyhow::Result<()> {
    host.bind(ActionBinding {
        action_name: "notify-ops".to_string(),
        plugin: "webhook-notifier".to_string(),
        params: Some(params),
    })
}

/// Loads the rate limiter bound to `careful-quarantine`: at most two additions to `quarantine`
/// within 60 seconds.
fn rate_limited_host() -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let grants = Grants::of(&[Capability::ThingRegistry, Capability::Logging]);
    host.load_with_grants(artifact("examples/rate-limiter.wasm"), grants)
        .expect("rate limiter example");
    host.bind(ActionBinding {
        action_name: "careful-quarantine".to_string(),
        plugin: "rate-limiter".to_string(),
        params: Some(json!({
            "thingGroupName": QUARANTINE,
            "maxActions": 2,
            "windowSeconds": 60,
        })),
    })
    .expect("rate limiter binding");
    host
}

#[test]
fn device_certificate_plugin_deactivates_active_certificates() {
    let mut host = bundled_plugin("update-device-certificate");
    let mut registry = MemoryRegistry::default();
    registry.attach_certificate("sensor-1", "cert-a", CertificateStatus::Active, None);
    registry.attach_certificate("sensor-1", "cert-b", CertificateStatus::Inactive, None);
    registry.attach_certificate("sensor-1", "cert-c", CertificateStatus::Revoked, None);
    registry.attach_certificate("sensor-1", "cert-d", CertificateStatus::Active, None);
    registry.attach_certificate("sensor-2", "cert-e", CertificateStatus::Active, None);

    let outcome = host.apply(&mut registry, &deactivate_device_certificate("sensor-1"));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("update-device-certificate"));
    assert_eq!(
        outcome.performed,
        vec![
            StagedOperation::UpdateCertificate {
                certificate_id: "cert-a".to_string(),
                status: CertificateStatus::Inactive,
            },
            StagedOperation::UpdateCertificate {
                certificate_id: "cert-d".to_string(),
                status: CertificateStatus::Inactive,
            },
        ]
    );
    assert_eq!(
        registry.certificate_status("cert-a"),
        CertificateStatus::Inactive
    );
    assert_eq!(
        registry.certificate_status("cert-b"),
        CertificateStatus::Inactive
    );
    assert_eq!(
        registry.certificate_status("cert-c"),
        CertificateStatus::Revoked
    );
    assert_eq!(
        registry.certificate_status("cert-d"),
        CertificateStatus::Inactive
    );
    assert_eq!(
        registry.certificate_status("cert-e"),
        CertificateStatus::Active
    );
}

#[test]
fn device_certificate_plugin_logs_every_certificate() {
    let mut host = bundled_plugin("update-device-certificate");
    let mut registry = MemoryRegistry::default();
    registry.attach_certificate("sensor-1", "cert-a", CertificateStatus::Active, None);
    registry.attach_certificate("sensor-1", "cert-c", CertificateStatus::Revoked, None);
    let recorder = Recorder::default();

    recorder.record(|| host.apply(&mut registry, &deactivate_device_certificate("sensor-1")));

    let messages: Vec<String> = recorder
        .events_with_target("vigil::plugin")
        .into_iter()
        .map(|record| record.message)
        .collect();
    assert_eq!(
        messages,
        vec![
            "deactivated certificate `cert-a` of thing `sensor-1`".to_string(),
            "left certificate `cert-c` of thing `sensor-1` as it is: its status is REVOKED, not \
             ACTIVE"
                .to_string(),
        ]
    );
}

#[test]
fn device_certificate_plugin_without_certificates_fails() {
    let mut host = bundled_plugin("update-device-certificate");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &deactivate_device_certificate("sensor-1"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&outcome),
        "plugin `update-device-certificate` failed: target not found: thing `sensor-1` has no \
         device certificates attached"
    );
    assert_eq!(registry.calls, 0);
}

#[test]
fn ca_certificate_plugin_deactivates_each_issuer_once() {
    let mut host = bundled_plugin("update-ca-certificate");
    let mut registry = MemoryRegistry::default();
    registry.register_ca_certificate("ca-1", CaCertificateStatus::Active);
    registry.register_ca_certificate("ca-2", CaCertificateStatus::Inactive);
    registry.register_ca_certificate("ca-3", CaCertificateStatus::Active);
    let active = CertificateStatus::Active;
    registry.attach_certificate("sensor-1", "cert-a", active, Some("ca-1"));
    registry.attach_certificate("sensor-1", "cert-b", active, Some("ca-1"));
    registry.attach_certificate("sensor-1", "cert-c", active, Some("ca-2"));
    registry.attach_certificate("sensor-1", "cert-d", active, None);
    registry.attach_certificate("sensor-2", "cert-e", active, Some("ca-3"));

    let outcome = host.apply(&mut registry, &deactivate_ca_certificate("sensor-1"));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("update-ca-certificate"));
    assert_eq!(
        outcome.performed,
        vec![StagedOperation::UpdateCaCertificate {
            certificate_id: "ca-1".to_string(),
            status: CaCertificateStatus::Inactive,
        }]
    );
    assert_eq!(
        registry.ca_certificate_status("ca-1"),
        CaCertificateStatus::Inactive
    );
    assert_eq!(
        registry.ca_certificate_status("ca-2"),
        CaCertificateStatus::Inactive
    );
    assert_eq!(
        registry.ca_certificate_status("ca-3"),
        CaCertificateStatus::Active
    );
    assert_eq!(
        registry.certificate_status("cert-a"),
        CertificateStatus::Active
    );
}

#[test]
fn ca_certificate_plugin_without_issuer_fails() {
    let mut host = bundled_plugin("update-ca-certificate");
    let mut registry = MemoryRegistry::default();
    registry.attach_certificate("sensor-1", "cert-a", CertificateStatus::Active, None);

    let outcome = host.apply(&mut registry, &deactivate_ca_certificate("sensor-1"));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&outcome),
        "plugin `update-ca-certificate` failed: target not found: no device certificate of \
         thing `sensor-1` was issued by a registered CA certificate"
    );
    assert_eq!(registry.calls, 0);
}

#[test]
fn policy_plugin_makes_blank_version_default() {
    let mut host = bundled_plugin("replace-default-policy-version");
    let mut registry = MemoryRegistry::default();
    registry.attach_policy("sensor-1", "device-policy", &[ALLOW_ALL_DOCUMENT]);
    registry.attach_policy("sensor-1", "group-policy", &["{}", ALLOW_ALL_DOCUMENT]);
    registry.attach_policy("sensor-2", "other-policy", &[ALLOW_ALL_DOCUMENT]);

    let outcome = host.apply(
        &mut registry,
        &replace_default_policy("sensor-1", "BLANK_POLICY"),
    );

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(
        outcome.plugin.as_deref(),
        Some("replace-default-policy-version")
    );
    assert_eq!(
        registry.policy_versions("device-policy"),
        vec![
            ("1".to_string(), false, ALLOW_ALL_DOCUMENT.to_string()),
            ("2".to_string(), true, BLANK_POLICY_DOCUMENT.to_string()),
        ]
    );
    assert_eq!(
        registry.policy_versions("group-policy"),
        vec![
            ("1".to_string(), false, "{}".to_string()),
            ("2".to_string(), false, ALLOW_ALL_DOCUMENT.to_string()),
            ("3".to_string(), true, BLANK_POLICY_DOCUMENT.to_string()),
        ]
    );
    assert_eq!(
        registry.policy_versions("other-policy"),
        vec![("1".to_string(), true, ALLOW_ALL_DOCUMENT.to_string())]
    );
    let blank: Value = serde_json::from_str(BLANK_POLICY_DOCUMENT).expect("JSON");
    assert_eq!(blank["Statement"][0]["Effect"], "Deny");
}

#[test]
fn policy_plugin_run_twice_adds_one_version() {
    let mut host = bundled_plugin("replace-default-policy-version");
    let mut registry = MemoryRegistry::default();
    registry.attach_policy("sensor-1", "device-policy", &[ALLOW_ALL_DOCUMENT]);
    let execution = replace_default_policy("sensor-1", "BLANK_POLICY");

    let first = host.apply(&mut registry, &execution);
    let second = host.apply(&mut registry, &execution);

    assert!(first.is_successful(), "{}", failure_message(&first));
    assert!(second.is_successful(), "{}", failure_message(&second));
    assert_eq!(first.performed.len(), 1);
    assert!(second.performed.is_empty());
    assert_eq!(registry.policy_versions("device-policy").len(), 2);
}

#[test]
fn policy_at_five_versions_fails_and_changes_nothing() {
    let mut host = bundled_plugin("replace-default-policy-version");
    let mut registry = MemoryRegistry::default();
    registry.attach_policy("sensor-1", "a-policy", &[ALLOW_ALL_DOCUMENT]);
    registry.attach_policy("sensor-1", "full-policy", &[ALLOW_ALL_DOCUMENT; 5]);

    let outcome = host.apply(
        &mut registry,
        &replace_default_policy("sensor-1", "BLANK_POLICY"),
    );

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&outcome),
        "plugin `replace-default-policy-version` failed: policy `full-policy` already has the \
         maximum of 5 versions, so no version can be added; delete a version that is not the \
         default and run the action again"
    );
    // The version staged for `a-policy` before the failure is not performed either.
    assert!(outcome.performed.is_empty());
    assert_eq!(registry.policy_versions("a-policy").len(), 1);
    assert_eq!(registry.policy_versions("full-policy").len(), 5);
}

#[test]
fn policy_plugin_without_policies_fails() {
    let mut host = bundled_plugin("replace-default-policy-version");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(
        &mut registry,
        &replace_default_policy("sensor-1", "BLANK_POLICY"),
    );

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert!(
        failure_message(&outcome).contains(
            "target not found: thing `sensor-1` has no policies attached through its \
             certificates or thing groups"
        ),
        "{}",
        failure_message(&outcome)
    );
}

#[test]
fn policy_plugin_rejects_unknown_template() {
    let mut host = bundled_plugin("replace-default-policy-version");
    let mut registry = MemoryRegistry::default();
    registry.attach_policy("sensor-1", "device-policy", &[ALLOW_ALL_DOCUMENT]);

    let outcome = host.apply(
        &mut registry,
        &replace_default_policy("sensor-1", "STRICT_POLICY"),
    );

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&outcome),
        "plugin `replace-default-policy-version` failed: invalid parameters: action \
         `quarantine-action` names template `STRICT_POLICY`, expected `BLANK_POLICY`"
    );
    assert_eq!(registry.calls, 0);
    assert_eq!(registry.policy_versions("device-policy").len(), 1);
}

#[test]
fn logging_plugin_sets_role_and_level() {
    let mut host = bundled_plugin("enable-iot-logging");
    let mut registry = MemoryRegistry {
        logging: Some(LoggingOptions {
            role_arn: "arn:aws:iam::123456789012:role/old-logging".to_string(),
            default_log_level: IotLogLevel::Error,
            disable_all_logs: true,
        }),
        ..MemoryRegistry::default()
    };

    let outcome = host.apply(
        &mut registry,
        &enable_logging("sensor-1", IotLogLevel::Warn),
    );

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("enable-iot-logging"));
    assert_eq!(
        outcome.performed,
        vec![StagedOperation::SetLoggingOptions {
            role_arn: LOGGING_ROLE.to_string(),
            level: IotLogLevel::Warn,
        }]
    );
    let logging = registry.logging.expect("logging options");
    assert_eq!(logging.role_arn, LOGGING_ROLE);
    assert_eq!(logging.default_log_level, IotLogLevel::Warn);
    assert!(!logging.disable_all_logs);
}

#[test]
fn logging_plugin_rejects_disabled_level() {
    let mut host = bundled_plugin("enable-iot-logging");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(
        &mut registry,
        &enable_logging("sensor-1", IotLogLevel::Disabled),
    );

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&outcome),
        "plugin `enable-iot-logging` failed: invalid parameters: action `quarantine-action` \
         sets `logLevel` to DISABLED, which cannot enable logging; use DEBUG, INFO, WARN or ERROR"
    );
    assert_eq!(registry.calls, 0);
    assert!(registry.logging.is_none());
}

#[test]
fn sns_plugin_publishes_the_finding() {
    let mut host = bundled_plugin("publish-finding-to-sns");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &publish_finding("sensor-1"));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("publish-finding-to-sns"));
    let [
        StagedOperation::Publish {
            topic_arn,
            subject,
            message,
        },
    ] = registry.performed.as_slice()
    else {
        panic!("expected one publish, got {:?}", registry.performed);
    };
    assert_eq!(topic_arn, FINDINGS_TOPIC);
    assert_eq!(
        subject.as_deref(),
        Some("Device Defender finding: sensor-1")
    );
    let finding: Value = serde_json::from_str(message).expect("the message is JSON");
    assert_eq!(
        finding,
        json!({
            "thingName": "sensor-1",
            "violationId": "0123456789abcdef0123456789abcdef",
            "securityProfileName": "fleet-baseline",
            "behaviorName": "too-many-messages",
            "metric": "aws:num-messages-sent",
            "observedValue": {"count": 250},
            "violationStartTime": 1_700_000_000_000_i64,
            "taskId": "task-1",
            "actionName": "report-finding",
        })
    );
}

#[test]
fn sns_subject_is_cut_to_100_characters() {
    let mut host = bundled_plugin("publish-finding-to-sns");
    let mut registry = MemoryRegistry::default();
    let thing = "t".repeat(128);

    let outcome = host.apply(&mut registry, &publish_finding(&thing));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    let [StagedOperation::Publish { subject, .. }] = registry.performed.as_slice() else {
        panic!("expected one publish, got {:?}", registry.performed);
    };
    let subject = subject.as_deref().expect("a subject");
    assert_eq!(subject.chars().count(), 100);
    assert!(
        subject.starts_with("Device Defender finding: ttt"),
        "{subject}"
    );
}

#[test]
fn bundled_plugins_reject_missing_params() {
    let mut host = bundled_host();
    let cases = [
        (
            MitigationActionType::UpdateDeviceCertificate,
            "updateDeviceCertificateParams",
        ),
        (
            MitigationActionType::UpdateCaCertificate,
            "updateCACertificateParams",
        ),
        (
            MitigationActionType::AddThingsToThingGroup,
            "addThingsToThingGroupParams",
        ),
        (
            MitigationActionType::ReplaceDefaultPolicyVersion,
            "replaceDefaultPolicyVersionParams",
        ),
        (
            MitigationActionType::EnableIotLogging,
            "enableIoTLoggingParams",
        ),
        (
            MitigationActionType::PublishFindingToSns,
            "publishFindingToSnsParams",
        ),
    ];

    for (action_type, member) in cases {
        let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);
        registry.attach_certificate(
            "sensor-1",
            "cert-a",
            CertificateStatus::Active,
            Some("ca-1"),
        );
        registry.register_ca_certificate("ca-1", CaCertificateStatus::Active);
        registry.attach_policy("sensor-1", "device-policy", &[ALLOW_ALL_DOCUMENT]);

        let outcome = host.apply(
            &mut registry,
            &context("sensor-1", action_type, no_params()),
        );

        assert_eq!(
            failure_code(&outcome),
            Some(FailureCode::PluginError),
            "{member}"
        );
        assert!(
            failure_message(&outcome).ends_with(&format!(
                "invalid parameters: action `quarantine-action` has no `{member}`"
            )),
            "{}",
            failure_message(&outcome)
        );
        assert!(outcome.performed.is_empty(), "{member}");
        assert_eq!(registry.calls, 0, "{member}");
        assert_eq!(
            registry.certificate_status("cert-a"),
            CertificateStatus::Active
        );
        assert_eq!(
            registry.ca_certificate_status("ca-1"),
            CaCertificateStatus::Active
        );
        assert_eq!(registry.policy_versions("device-policy").len(), 1);
        assert!(registry.logging.is_none(), "{member}");
    }
}

#[test]
fn webhook_example_posts_the_finding_as_json() {
    let (url, server) = serve_once("HTTP/1.1 204 No Content");
    let prefix = url.trim_end_matches("ops");
    let mut host = webhook_host(prefix);
    bind_webhook(&mut host, json!({ "url": url })).expect("webhook binding");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &bound_execution("sensor-1", "notify-ops", 0));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert_eq!(outcome.plugin.as_deref(), Some("webhook-notifier"));
    let request = server.join().expect("server");
    assert!(
        request.starts_with("POST /hooks/ops HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("Content-Type: application/json\r\n"),
        "{request}"
    );
    let finding: Value = serde_json::from_str(request_body(&request)).expect("JSON body");
    assert_eq!(finding["thingName"], "sensor-1");
    assert_eq!(finding["violationId"], "0123456789abcdef0123456789abcdef");
    assert_eq!(finding["securityProfileName"], "fleet-baseline");
    assert_eq!(finding["behaviorName"], "too-many-messages");
    assert_eq!(finding["metric"], "aws:num-messages-sent");
    assert_eq!(finding["observedValue"], Value::Null);
    assert_eq!(finding["violationStartTime"], 1_700_000_000_000_i64);
    assert_eq!(finding["taskId"], "task-1");
    assert_eq!(finding["actionName"], "notify-ops");
}

#[test]
fn webhook_example_posts_text_lines() {
    let (url, server) = serve_once("HTTP/1.1 200 OK");
    let prefix = url.trim_end_matches("ops");
    let mut host = webhook_host(prefix);
    bind_webhook(&mut host, json!({ "url": url, "format": "text" })).expect("webhook binding");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &bound_execution("sensor-1", "notify-ops", 0));

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    let request = server.join().expect("server");
    assert!(
        request.contains("Content-Type: text/plain; charset=utf-8\r\n"),
        "{request}"
    );
    let body = request_body(&request);
    assert!(body.starts_with("thingName: sensor-1\n"), "{body}");
    assert!(body.contains("\nobservedValue: null\n"), "{body}");
    assert!(body.ends_with("actionName: notify-ops\n"), "{body}");
}

#[test]
fn webhook_example_outside_granted_prefix_is_denied() {
    let mut host = webhook_host("http://127.0.0.1:9/allowed/");
    bind_webhook(&mut host, json!({ "url": "http://127.0.0.1:9/other" })).expect("binding");
    let mut registry = MemoryRegistry::default();

    let outcome = host.apply(&mut registry, &bound_execution("sensor-1", "notify-ops", 0));

    assert_eq!(failure_code(&outcome), Some(FailureCode::PluginError));
    assert!(
        failure_message(&outcome).contains(
            "failed to post to `http://127.0.0.1:9/other`: denied: `http://127.0.0.1:9/other` \
             is not under a URL prefix granted to the plugin"
        ),
        "{}",
        failure_message(&outcome)
    );
    assert_eq!(registry.calls, 0);
}

#[test]
fn webhook_binding_without_url_is_refused() {
    let mut host = webhook_host("http://127.0.0.1:9/");

    let missing = bind_webhook(&mut host, json!({ "format": "json" }));
    let unknown_format = bind_webhook(
        &mut host,
        json!({ "url": "http://127.0.0.1:9/hook", "format": "xml" }),
    );

    let missing = missing.expect_err("url is required").to_string();
    let unknown_format = unknown_format.expect_err("xml is not a format").to_string();
    assert!(
        missing.starts_with("failed to bind action `notify-ops` to plugin `webhook-notifier`"),
        "{missing}"
    );
    assert!(missing.contains("url"), "{missing}");
    assert!(unknown_format.contains("format"), "{unknown_format}");
    assert!(host.bindings().is_empty());
}

#[test]
fn rate_limiter_declines_past_the_limit_then_recovers() {
    let mut host = rate_limited_host();
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);
    let start = 1_700_000_000_000;

    let first = host.apply(
        &mut registry,
        &bound_execution("sensor-1", "careful-quarantine", start),
    );
    let second = host.apply(
        &mut registry,
        &bound_execution("sensor-2", "careful-quarantine", start + 10_000),
    );
    let third = host.apply(
        &mut registry,
        &bound_execution("sensor-3", "careful-quarantine", start + 20_000),
    );
    let after_window = host.apply(
        &mut registry,
        &bound_execution("sensor-4", "careful-quarantine", start + 60_001),
    );

    assert!(first.is_successful(), "{}", failure_message(&first));
    assert!(second.is_successful(), "{}", failure_message(&second));
    assert_eq!(failure_code(&third), Some(FailureCode::PluginError));
    assert_eq!(
        failure_message(&third),
        "plugin `rate-limiter` failed: declined: did not add thing `sensor-3` to thing group \
         `quarantine`: action `careful-quarantine` already made 2 additions within 60 s of \
         event time; the next one is allowed from 2023-11-14T22:14:20Z (1700000060000 ms since \
         the Unix epoch)"
    );
    assert!(third.performed.is_empty());
    assert!(
        after_window.is_successful(),
        "{}",
        failure_message(&after_window)
    );
    assert_eq!(registry.groups_of("sensor-1"), vec![QUARANTINE.to_string()]);
    assert_eq!(registry.groups_of("sensor-2"), vec![QUARANTINE.to_string()]);
    assert!(registry.groups_of("sensor-3").is_empty());
    assert_eq!(registry.groups_of("sensor-4"), vec![QUARANTINE.to_string()]);
}

#[test]
fn rate_limiter_binding_requires_a_window() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let grants = Grants::of(&[Capability::ThingRegistry, Capability::Logging]);
    host.load_with_grants(artifact("examples/rate-limiter.wasm"), grants)
        .expect("rate limiter example");

    let error = host
        .bind(ActionBinding {
            action_name: "careful-quarantine".to_string(),
            plugin: "rate-limiter".to_string(),
            params: Some(json!({ "thingGroupName": QUARANTINE, "maxActions": 0 })),
        })
        .expect_err("maxActions is below 1 and windowSeconds is missing")
        .to_string();

    assert!(error.contains("maxActions"), "{error}");
    assert!(error.contains("windowSeconds"), "{error}");
}

#[test]
fn template_plugin_logs_and_changes_nothing() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let info = host
        .load_with_grants(
            artifact("examples/template.wasm"),
            Grants::of(&[Capability::Logging]),
        )
        .expect("template");
    host.bind(ActionBinding {
        action_name: "try-template".to_string(),
        plugin: "template".to_string(),
        params: None,
    })
    .expect("template binding");
    let mut registry = MemoryRegistry::with_groups(&[QUARANTINE]);

    let outcome = host.apply(
        &mut registry,
        &bound_execution("sensor-1", "try-template", 0),
    );

    assert_eq!(info.name, "template");
    assert_eq!(info.imports, vec![Capability::Logging]);
    assert!(info.action_types.is_empty());
    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    assert!(outcome.performed.is_empty());
    assert_eq!(registry.calls, 0);
}

/// Loads the `state-counter` fixture with the filesystem granted on `state_dir`, bound to the
/// action name of [`add_to_groups`].
fn host_with_state_plugin(state_dir: &Path) -> PluginHost {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");
    let grants = Grants {
        state_dir: Some(state_dir.to_path_buf()),
        ..Grants::of(&[Capability::WasiFilesystem, Capability::Logging])
    };
    host.load_installed(artifact("fixtures/state-plugin.wasm"), grants)
        .expect("state plugin");
    host.bind(ActionBinding {
        action_name: "quarantine-action".to_string(),
        plugin: "state-counter".to_string(),
        params: None,
    })
    .expect("binding");
    host
}

#[test]
fn filesystem_import_needs_its_grant() {
    let mut host = PluginHost::new(PluginLimits::default()).expect("plugin host");

    let error = host
        .load_installed(
            artifact("fixtures/state-plugin.wasm"),
            Grants::of(&[Capability::Logging]),
        )
        .expect_err("wasi-filesystem is not granted");

    let message = format!("{error:#}");
    assert!(
        message.contains("plugin `state-counter` imports `wasi-filesystem`"),
        "{message}"
    );
}

#[test]
fn state_folder_outlives_the_plugin_host() {
    let state_dir = std::env::temp_dir().join(format!("vigil-state-plugin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut registry = MemoryRegistry::default();
    let execution = add_to_groups("sensor-1", &[QUARANTINE]);

    let mut host = host_with_state_plugin(&state_dir);
    for _ in 0..2 {
        let outcome = host.apply(&mut registry, &execution);
        assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    }
    drop(host);
    let mut restarted = host_with_state_plugin(&state_dir);
    let outcome = restarted.apply(&mut registry, &execution);

    assert!(outcome.is_successful(), "{}", failure_message(&outcome));
    let count = std::fs::read_to_string(state_dir.join("executions")).expect("count file");
    assert_eq!(count, "3");
    std::fs::remove_dir_all(&state_dir).expect("remove state folder");
}
