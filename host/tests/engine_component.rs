//! The real core component in wasmtime behaves exactly like the native engine.

use std::path::PathBuf;

use vigil_core::catalogue::PERIOD_MS;
use vigil_core::ingest::Datapoint;
use vigil_core::model::{
    Behavior, BehaviorCriteria, ComparisonOperator, ConfidenceLevel, MetricValue, SecurityProfile,
    ViolationEventType,
};
use vigil_core::violations::ViolationFilter;
use vigil_core::{Engine, EngineConfig};
use vigil_host::engine::{CoreEngine, locate_core_wasm};

const TARGET: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

fn core_wasm() -> PathBuf {
    locate_core_wasm(None)
        .expect("the core component is missing: run `cargo xtask build-wasm` first")
}

fn config() -> EngineConfig {
    EngineConfig {
        ml_training_days: 1,
        ml_min_datapoints: 0,
        ..EngineConfig::default()
    }
}

fn profile() -> SecurityProfile {
    let ml =
        Behavior::machine_learning("sent-ml", "aws:num-messages-sent", ConfidenceLevel::Medium);
    let rule = Behavior {
        name: "sent-rule".to_string(),
        criteria: Some(BehaviorCriteria {
            comparison_operator: Some(ComparisonOperator::LessThanEquals),
            value: Some(MetricValue::count(400)),
            ..BehaviorCriteria::default()
        }),
        ..ml.clone()
    };
    SecurityProfile {
        name: "lights".to_string(),
        behaviors: vec![ml, rule],
        ..SecurityProfile::default()
    }
}

/// Two days of datapoints for 20 things, with a flood on `lamp-07` for the last two hours.
fn datapoints() -> Vec<Datapoint> {
    let periods = 2 * 288;
    (0..periods)
        .flat_map(|period| {
            (0..20).map(move |thing| {
                let base = 10 + (period * 7 + thing * 3) % 5;
                let flooded = thing == 7 && period >= periods - 24;
                Datapoint {
                    thing_name: format!("lamp-{thing:02}"),
                    metric: "aws:num-messages-sent".to_string(),
                    dimension_name: None,
                    timestamp: (period as i64 + 1) * PERIOD_MS,
                    value: MetricValue::count(if flooded { 500 } else { base as u64 }),
                }
            })
        })
        .collect()
}

#[test]
fn component_and_native_engine_produce_identical_results() {
    let mut native = Engine::new(config());
    native.create_security_profile(profile(), 0).unwrap();
    native.attach_security_profile("lights", TARGET).unwrap();
    let mut component = CoreEngine::load(&core_wasm(), config()).unwrap();
    component.create_security_profile(profile(), 0).unwrap();
    component.attach_security_profile("lights", TARGET).unwrap();

    let mut native_events = Vec::new();
    let mut component_events = Vec::new();
    for batch in datapoints().chunks(1000) {
        native_events.extend(native.ingest_datapoints(batch).events);
        component_events.extend(component.ingest_datapoints(batch.to_vec()).unwrap().events);
    }

    assert_eq!(native_events, component_events);
    let alarms: Vec<_> = native_events
        .iter()
        .filter(|e| e.violation_event_type == ViolationEventType::InAlarm)
        .map(|e| (e.thing_name.as_str(), e.behavior.name.as_str()))
        .collect();
    assert_eq!(
        alarms,
        vec![("lamp-07", "sent-ml"), ("lamp-07", "sent-rule")]
    );
    assert_eq!(native.snapshot(), component.snapshot().unwrap());
}

#[test]
fn component_snapshot_restores_natively_and_back() {
    let mut component = CoreEngine::load(&core_wasm(), config()).unwrap();
    component.create_security_profile(profile(), 0).unwrap();
    component.attach_security_profile("lights", TARGET).unwrap();
    component.ingest_datapoints(datapoints()).unwrap();
    let snapshot = component.snapshot().unwrap();

    let native = Engine::restore(&snapshot).unwrap();
    let active = native.list_active_violations(&ViolationFilter::default());
    assert_eq!(active.len(), 2);

    let mut restored = CoreEngine::restore(&core_wasm(), &native.snapshot()).unwrap();
    assert_eq!(
        restored
            .list_active_violations(ViolationFilter::default())
            .unwrap(),
        active
    );
}

#[test]
fn engine_errors_keep_their_kind_across_the_boundary() {
    let mut component = CoreEngine::load(&core_wasm(), config()).unwrap();
    let error = component.describe_security_profile("missing").unwrap_err();
    let kind = error.downcast_ref::<vigil_core::Error>();
    assert_eq!(
        kind,
        Some(&vigil_core::Error::ResourceNotFound(
            "security profile `missing` does not exist".to_string()
        ))
    );

    let mut invalid = profile();
    invalid.behaviors[1]
        .criteria
        .as_mut()
        .unwrap()
        .duration_seconds = Some(7);
    invalid.behaviors[0].name = "bad name!".to_string();
    let error = component.create_security_profile(invalid, 0).unwrap_err();
    let Some(vigil_core::Error::ValidationFailed(problems)) =
        error.downcast_ref::<vigil_core::Error>()
    else {
        panic!("expected a validation error, got {error:#}");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["behaviors[0].name", "behaviors[1].criteria.durationSeconds"]
    );
}

#[test]
fn missing_core_component_says_how_to_build_it() {
    let error =
        locate_core_wasm(Some(std::path::Path::new("/nonexistent/vigil-core.wasm"))).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("cargo xtask build"), "{message}");
}

#[test]
fn core_load_rejects_non_component() {
    let dir = std::env::temp_dir().join(format!("vigil-not-a-component-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vigil-core.wasm");
    std::fs::write(&path, b"not wasm").unwrap();
    let error = CoreEngine::load(&path, config())
        .err()
        .expect("loading garbage must fail");
    let message = format!("{error:#}");
    assert!(
        message.contains("failed to load core component"),
        "{message}"
    );
    assert!(message.contains("cargo xtask build"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}
