//! Plugin runtime tests against real components: the `add-things-to-thing-group` plugin, the
//! `hostile` fixture and the `legacy-quarantine` fixture built against plugin API 0.1.0, all
//! built into `target/wasm/` by `cargo xtask build-wasm`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use vigil_host::bindings::engine::exports::vigil::detect::detector::ExecutionOutcome;
use vigil_host::bindings::engine::vigil::detect::types::{
    AddThingsToThingGroupParams, Behavior, MitigationActionParams, PublishFindingToSnsParams,
};
use vigil_host::plugins::{
    ActionBinding, ApplyOutcome, Capability, CapabilityError, ExecutionContext, FailureCode,
    Grants, MitigationActionType, PluginHost, PluginLimits, Registry, StagedOperation,
    ThingSnapshot,
};

const QUARANTINE: &str = "quarantine";
const ISOLATED: &str = "isolated";
const HOSTILE_GROUP: &str = "hostile-was-here";

/// A thing registry in memory. Adding to a group that was not created fails, as in AWS IoT.
#[derive(Default)]
struct MemoryRegistry {
    groups: BTreeSet<String>,
    memberships: BTreeMap<String, BTreeSet<String>>,
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
}

impl Registry for MemoryRegistry {
    fn snapshot(&mut self, thing: &str) -> Result<ThingSnapshot, CapabilityError> {
        Ok(ThingSnapshot {
            groups: self.groups_of(thing),
            ..ThingSnapshot::default()
        })
    }

    fn perform(&mut self, operation: &StagedOperation) -> Result<(), CapabilityError> {
        self.calls += 1;
        let StagedOperation::AddThingToThingGroup { thing, group, .. } = operation else {
            return Err(CapabilityError::Other(format!(
                "the test registry cannot {}",
                operation.summary()
            )));
        };
        if !self.groups.contains(group) {
            return Err(CapabilityError::NotFound(group.to_string()));
        }
        self.memberships
            .entry(thing.to_string())
            .or_default()
            .insert(group.to_string());
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

impl<S: Subscriber> Layer<S> for Recorder {
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

    assert_eq!(loaded.len(), 1);
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
    let subscriber = tracing_subscriber::registry().with(recorder.clone());

    tracing::subscriber::with_default(subscriber, || {
        host.apply(&mut registry, &add_to_groups("sensor-1", &[QUARANTINE]));
    });

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

    // The action type says add-things-to-thing-group, but the name is bound to `hostile`.
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
