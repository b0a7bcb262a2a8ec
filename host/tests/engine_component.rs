//! The real core component in wasmtime behaves exactly like the native engine and detector.

use std::path::PathBuf;

use vigil_core::catalogue::PERIOD_MS;
use vigil_core::detector::{StreamingDetector, Verdict};
use vigil_core::ingest::Datapoint;
use vigil_core::ml::Scale;
use vigil_core::model::{
    AddThingsToThingGroupParams, Behavior, BehaviorCriteria, ComparisonOperator, ConfidenceLevel,
    CustomMetricType, DetectMitigationActionsTaskTarget, MetricDimension, MetricToRetain,
    MetricValue, MitigationActionParams, MitigationActionType, PublishFindingToSnsParams,
    SecurityProfile, TaskRequest, TaskStatus, ViolationEventType,
};
use vigil_core::violations::ViolationFilter;
use vigil_core::{Engine, EngineConfig, EngineStats, SecurityProfileFilter};
use vigil_host::engine::{CoreEngine, CoreSeriesDetector, locate_core_wasm};

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

/// Builds a profile with a rule on the custom metric `battery-level` that also retains messages
/// sent on the topics of dimension `topics`.
fn battery_profile() -> SecurityProfile {
    let battery = Behavior {
        name: "battery".to_string(),
        metric: Some("battery-level".to_string()),
        metric_dimension: None,
        criteria: Some(BehaviorCriteria {
            comparison_operator: Some(ComparisonOperator::GreaterThan),
            value: Some(MetricValue::number(10.0)),
            ..BehaviorCriteria::default()
        }),
        suppress_alerts: None,
        export_metric: None,
    };
    let sent_on_topics = MetricToRetain {
        metric: "aws:num-messages-sent".to_string(),
        metric_dimension: Some(MetricDimension {
            dimension_name: "topics".to_string(),
            operator: None,
        }),
        export_metric: None,
    };
    SecurityProfile {
        name: "battery".to_string(),
        behaviors: vec![battery],
        additional_metrics_to_retain_v2: vec![sent_on_topics],
        ..SecurityProfile::default()
    }
}

fn battery_datapoint(level: f64, timestamp: i64) -> Datapoint {
    Datapoint {
        thing_name: "lamp-01".to_string(),
        metric: "battery-level".to_string(),
        dimension_name: None,
        timestamp,
        value: MetricValue::number(level),
    }
}

fn error_kind(error: &anyhow::Error) -> Option<&vigil_core::Error> {
    error.downcast_ref::<vigil_core::Error>()
}

/// Loads the component with the custom metric, the dimension and the battery profile attached to
/// every thing.
fn battery_engine() -> CoreEngine {
    let mut engine = CoreEngine::load(&core_wasm(), config()).unwrap();
    engine
        .create_custom_metric("battery-level", CustomMetricType::Number, None, 1000)
        .unwrap();
    let topics = vec!["alerts/#".to_string()];
    engine.create_dimension("topics", topics, 1000).unwrap();
    engine
        .create_security_profile(battery_profile(), 1000)
        .unwrap();
    engine.attach_security_profile("battery", TARGET).unwrap();
    engine
}

#[test]
fn component_manages_custom_metrics_and_dimensions() {
    let mut engine = CoreEngine::load(&core_wasm(), config()).unwrap();
    let created = engine
        .create_custom_metric(
            "battery-level",
            CustomMetricType::Number,
            Some("Battery".to_string()),
            1000,
        )
        .unwrap();
    assert_eq!(
        created.metric_arn,
        "arn:aws:iot:us-east-1:123456789012:custommetric/battery-level"
    );
    let updated = engine
        .update_custom_metric("battery-level", "Battery %".to_string(), 2000)
        .unwrap();
    assert_eq!(updated.display_name.as_deref(), Some("Battery %"));
    assert_eq!(updated.last_modified_date, 2000);
    assert_eq!(
        engine.describe_custom_metric("battery-level").unwrap(),
        updated
    );
    assert_eq!(engine.list_custom_metrics().unwrap(), vec!["battery-level"]);

    let topics = vec!["alerts/#".to_string()];
    let dimension = engine.create_dimension("topics", topics, 1000).unwrap();
    assert_eq!(
        dimension.arn,
        "arn:aws:iot:us-east-1:123456789012:dimension/topics"
    );
    let commands = vec!["cmd/+".to_string(), "alerts/#".to_string()];
    let updated = engine
        .update_dimension("topics", commands.clone(), 3000)
        .unwrap();
    assert_eq!(updated.string_values, commands);
    assert_eq!(engine.describe_dimension("topics").unwrap(), updated);
    assert_eq!(engine.list_dimensions().unwrap(), vec!["topics"]);

    engine
        .create_security_profile(battery_profile(), 4000)
        .unwrap();
    let in_use = engine.delete_dimension("topics").unwrap_err();
    assert!(
        matches!(
            error_kind(&in_use),
            Some(vigil_core::Error::InvalidRequest(_))
        ),
        "{in_use:#}"
    );
    let in_use = engine.delete_custom_metric("battery-level").unwrap_err();
    assert!(
        matches!(
            error_kind(&in_use),
            Some(vigil_core::Error::InvalidRequest(_))
        ),
        "{in_use:#}"
    );

    engine
        .delete_security_profile("battery", Some(1), 5000)
        .unwrap();
    engine.delete_dimension("topics").unwrap();
    engine.delete_custom_metric("battery-level").unwrap();
    assert_eq!(engine.list_dimensions().unwrap(), Vec::<String>::new());
    assert_eq!(engine.list_custom_metrics().unwrap(), Vec::<String>::new());
}

#[test]
fn component_lists_profiles_by_filter_and_target() {
    let mut engine = battery_engine();
    let by_dimension = SecurityProfileFilter {
        dimension_name: Some("topics".to_string()),
        metric_name: None,
    };
    assert_eq!(
        engine.list_security_profiles(by_dimension).unwrap(),
        vec!["battery"]
    );
    let by_metric = SecurityProfileFilter {
        dimension_name: None,
        metric_name: Some("battery-level".to_string()),
    };
    assert_eq!(
        engine.list_security_profiles(by_metric).unwrap(),
        vec!["battery"]
    );
    assert_eq!(
        engine.list_security_profiles_for_target(TARGET).unwrap(),
        vec!["battery"]
    );
    assert_eq!(
        engine.list_targets_for_security_profile("battery").unwrap(),
        vec![TARGET]
    );

    engine
        .detach_security_profile("battery", TARGET, 2000)
        .unwrap();
    assert_eq!(
        engine.list_security_profiles_for_target(TARGET).unwrap(),
        Vec::<String>::new()
    );
    let malformed = engine
        .list_security_profiles_for_target("all/things")
        .unwrap_err();
    assert!(
        matches!(
            error_kind(&malformed),
            Some(vigil_core::Error::ValidationFailed(_))
        ),
        "{malformed:#}"
    );
}

#[test]
fn component_hands_out_retained_datapoints_and_keeps_stats() {
    let mut engine = battery_engine();
    let on_topics = Datapoint {
        thing_name: "lamp-01".to_string(),
        metric: "aws:num-messages-sent".to_string(),
        dimension_name: Some("topics".to_string()),
        timestamp: PERIOD_MS,
        value: MetricValue::count(12),
    };
    let unused = Datapoint {
        dimension_name: None,
        ..on_topics.clone()
    };
    let batch = vec![
        battery_datapoint(80.0, PERIOD_MS),
        on_topics.clone(),
        unused,
    ];
    engine.ingest_datapoints(batch).unwrap();

    let retained = engine.take_retained_datapoints().unwrap();
    assert_eq!(
        retained,
        vec![battery_datapoint(80.0, PERIOD_MS), on_topics]
    );
    assert_eq!(engine.take_retained_datapoints().unwrap(), vec![]);
    assert_eq!(engine.current_time().unwrap(), PERIOD_MS);

    let expected = EngineStats {
        datapoints_accepted: 3,
        reports_accepted: 0,
        reports_rejected: 0,
        violation_events: 0,
        things: 1,
        security_profiles: 1,
        retained_datapoints_dropped: 0,
    };
    assert_eq!(engine.stats().unwrap(), expected);
    let mut restored = CoreEngine::restore(&core_wasm(), &engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.stats().unwrap(), expected);
}

#[test]
fn component_updates_mitigation_actions_and_cancels_tasks() {
    let mut engine = battery_engine();
    let role = "arn:aws:iam::123456789012:role/mitigation";
    let quarantine = MitigationActionParams {
        add_things_to_thing_group_params: Some(AddThingsToThingGroupParams {
            thing_group_names: vec!["quarantine".to_string()],
            override_dynamic_groups: None,
        }),
        ..MitigationActionParams::default()
    };
    engine
        .create_mitigation_action("respond", "id-1", role, quarantine, 1000)
        .unwrap();
    let publish = MitigationActionParams {
        publish_finding_to_sns_params: Some(PublishFindingToSnsParams {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:findings".to_string(),
        }),
        ..MitigationActionParams::default()
    };
    let updated = engine
        .update_mitigation_action("respond", None, Some(publish), 2000)
        .unwrap();
    assert_eq!(
        updated.action_type,
        MitigationActionType::PublishFindingToSns
    );
    assert_eq!(updated.last_modified_date, 2000);
    assert_eq!(
        engine.describe_mitigation_action("respond").unwrap(),
        updated
    );
    assert_eq!(engine.list_mitigation_actions().unwrap(), vec![updated]);

    // A low battery raises the alarm that the task then acts on.
    let result = engine
        .ingest_datapoints(vec![battery_datapoint(4.0, PERIOD_MS)])
        .unwrap();
    assert_eq!(result.events.len(), 1);
    let request = TaskRequest {
        task_id: "respond-to-battery".to_string(),
        target: DetectMitigationActionsTaskTarget {
            security_profile_name: Some("battery".to_string()),
            ..DetectMitigationActionsTaskTarget::default()
        },
        actions: vec!["respond".to_string()],
        violation_event_occurrence_range: None,
        include_only_active_violations: false,
        include_suppressed_alerts: false,
    };
    engine.start_mitigation_task(request, PERIOD_MS).unwrap();
    let canceled = engine
        .cancel_mitigation_task("respond-to-battery", PERIOD_MS + 1)
        .unwrap();
    assert_eq!(canceled.task_status, TaskStatus::Canceled);
    let tasks = engine.list_mitigation_tasks(0, PERIOD_MS).unwrap();
    assert_eq!(tasks, vec![canceled]);

    engine.delete_mitigation_action("respond").unwrap();
    assert_eq!(engine.list_mitigation_actions().unwrap(), vec![]);
}

/// Generates a 20-day series with a daily rhythm, noise, spikes and a level shift near the end.
fn rhythmic_series() -> Vec<(i64, f64)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..20 * 288)
        .map(|i: i64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let hour = (i % 288) as f64 / 12.0;
            let rhythm = 50.0 + 30.0 * (hour / 24.0 * std::f64::consts::TAU).sin();
            let spike = if i % 1_009 == 1_000 { 400.0 } else { 0.0 };
            let shift = if i > 18 * 288 { 25.0 } else { 0.0 };
            (i * PERIOD_MS, rhythm + 8.0 * noise + spike + shift)
        })
        .collect()
}

#[test]
fn series_detector_gives_identical_verdicts_in_wasmtime() {
    let series = rhythmic_series();
    let mut native = StreamingDetector::new(Scale::Real);
    let native_verdicts: Vec<Verdict> = series
        .iter()
        .map(|&(timestamp, value)| native.observe(timestamp, value))
        .collect();
    let mut component = CoreSeriesDetector::load(&core_wasm(), Scale::Real).unwrap();
    let mut component_verdicts = Vec::new();
    for chunk in series.chunks(1000) {
        component_verdicts.extend(component.observe(chunk).unwrap());
    }

    assert_eq!(native_verdicts, component_verdicts);
    let reports = native_verdicts
        .iter()
        .filter(|v| v.anomaly_score > 0.0)
        .count();
    assert!(
        reports > 3,
        "only {reports} reports on a series with spikes"
    );
}
