//! `vigil demo`: the AWS ML Detect guide's whole flow on a simulated fleet, in event time.
//!
//! The guide's security profile targets the simulated fleet and its models train for 14 simulated
//! days. Attacks start once the models are active. The violations they raise are mitigated by
//! moving the things into a quarantine thing group through the mitigation plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::model::{
    Behavior, DetectMitigationActionsTaskTarget, MitigationActionParams, SecurityProfile,
    TaskRequest, TaskStatus, Timestamp, ViolationEvent, ViolationEventType,
};
use vigil_core::violations::ViolationFilter;
use vigil_core::{EngineConfig, ExecutionFilter};

use crate::engine::CoreEngine;
use crate::ids::uuid_from;
use crate::output::{iso_dates, print_command, print_empty_command};
use crate::plugins::{PluginHost, PluginLimits};
use crate::sim::{AttackKind, DeviceClass, Fleet};

/// Start of the simulation: 2026-11-01T00:00:00Z.
pub const DEMO_START: Timestamp = 1_793_491_200_000;

const PROFILE_NAME: &str = "security-profile-for-smart-lights";
const FLEET_GROUP: &str = "ML_Detect_beta_static_group";
const QUARANTINE_GROUP: &str = "ThingGroupForDetectMitigationAction";
const ACTION_NAME: &str = "detect_mitigation_action";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/MitigationActionValidRole";
const TASK_ID: &str = "taskIdForMitigationAction";
const PROFILE_BEHAVIORS: &str = include_str!("demo/profile.json");
const UPDATED_BEHAVIORS: &str = include_str!("demo/update.json");

/// Days after which the training summaries are printed.
const SUMMARY_DAYS: [i64; 4] = [3, 7, 14, 15];
/// Day on which the guide's `update-security-profile` is applied.
const UPDATE_DAY: i64 = 16;
/// Hour of day the attacks start, two days before the end.
const ATTACK_HOUR: i64 = 10;

/// Settings of one demo run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Things in the fleet.
    pub things: usize,
    /// Simulated days; attacks start two days before the end.
    pub days: i64,
    /// Seed of the simulation.
    pub seed: u64,
    /// Attacked things per attack kind.
    pub attacks_per_kind: usize,
    /// The core component.
    pub core_wasm: PathBuf,
    /// Directory of mitigation plugins.
    pub plugins_dir: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
}

/// The outcome for one attacked thing.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackOutcome {
    /// The thing.
    pub thing: String,
    /// The attack.
    pub kind: AttackKind,
    /// Attack datapoints until the matching behavior alarmed; 1 means the first one.
    pub delay_datapoints: Option<i64>,
    /// Whether the thing ended up in the quarantine group.
    pub quarantined: bool,
}

/// The demo's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoReport {
    /// One entry per attacked thing.
    pub attacks: Vec<AttackOutcome>,
    /// Things never attacked.
    pub clean_things: usize,
    /// `in-alarm` events on clean things.
    pub false_alarms: usize,
    /// Thing-days monitored by active models on clean things.
    pub clean_device_days: f64,
    /// Clean things that ended up quarantined.
    pub clean_quarantined: usize,
    /// Datapoints the engine evaluated per behavior-free metric stream: things × periods × 6.
    pub datapoints: u64,
}

impl DemoReport {
    /// Attacks whose matching behavior alarmed.
    pub fn caught(&self) -> usize {
        self.attacks
            .iter()
            .filter(|a| a.delay_datapoints.is_some())
            .count()
    }
}

/// Runs the demo, writing the CLI-style transcript to `out`.
pub fn run(options: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let mut engine = CoreEngine::load(&options.core_wasm, demo_config())?;
    let mut plugins = PluginHost::new(PluginLimits::default())?;
    plugins
        .load(&options.plugins_dir)
        .context("failed to load the mitigation plugins")?;

    writeln!(
        out,
        "Vigil demo: {} things, {} simulated days, seed {}",
        options.things, options.days, options.seed
    )?;
    let mut fleet = Fleet::new(options.things, options.seed);
    register_fleet(&mut engine, &fleet)?;
    create_profile(&mut engine, out)?;
    let attack_start = DEMO_START + (options.days - 2) * DAY_MS + ATTACK_HOUR * 3_600_000;
    let attacked = schedule_attacks(&mut fleet, options.attacks_per_kind, attack_start);

    let events = simulate(&mut engine, &mut fleet, options, out)?;
    let end = DEMO_START + options.days * DAY_MS;
    list_violations(&mut engine, attack_start, end, out)?;
    let (quarantined, task_status) = mitigate(&mut engine, &mut plugins, end, out)?;

    let report = summarize(
        &fleet,
        &attacked,
        &events,
        &quarantined,
        options,
        attack_start,
    );
    print_summary(&report, started.elapsed(), out)?;
    if task_status != TaskStatus::Successful {
        anyhow::bail!(
            "the mitigation task ended with status {task_status:?}; its executions above say why \
             (check that the plugins directory holds add-things-to-thing-group.wasm)"
        );
    }
    Ok(report)
}

fn demo_config() -> EngineConfig {
    EngineConfig {
        region: "eu-west-1".to_string(),
        account_id: "123456789012".to_string(),
        ..EngineConfig::default()
    }
}

fn register_fleet(engine: &mut CoreEngine, fleet: &Fleet) -> anyhow::Result<()> {
    engine.create_thing_group(FLEET_GROUP)?;
    for thing in &fleet.things {
        engine.add_thing_to_thing_group(&thing.name, FLEET_GROUP)?;
    }
    Ok(())
}

fn parse_behaviors(json: &str) -> Vec<Behavior> {
    serde_json::from_str(json).expect("bundled demo behaviors are valid JSON")
}

fn create_profile(engine: &mut CoreEngine, out: &mut dyn Write) -> anyhow::Result<()> {
    let profile = SecurityProfile {
        name: PROFILE_NAME.to_string(),
        behaviors: parse_behaviors(PROFILE_BEHAVIORS),
        ..SecurityProfile::default()
    };
    let stored = engine.create_security_profile(profile, DEMO_START)?;
    let created =
        json!({"securityProfileName": stored.profile.name, "securityProfileArn": stored.arn});
    let command = format!(
        "aws iot create-security-profile --security-profile-name {PROFILE_NAME} --behaviors file://profile.json"
    );
    print_command(out, &command, &created)?;

    let target = format!("arn:aws:iot:eu-west-1:123456789012:thinggroup/{FLEET_GROUP}");
    engine.attach_security_profile(PROFILE_NAME, &target)?;
    let command = format!(
        "aws iot attach-security-profile --security-profile-name {PROFILE_NAME} --security-profile-target-arn {target}"
    );
    print_empty_command(out, &command)
}

/// Picks attacked things spread over the fleet, each kind on every device class in turn. Things
/// are assigned to classes round-robin, so the class of thing `i` is `i % 4`.
fn schedule_attacks(
    fleet: &mut Fleet,
    per_kind: usize,
    start: Timestamp,
) -> BTreeMap<String, (AttackKind, Timestamp)> {
    let total = AttackKind::ALL.len() * per_kind;
    let stride = (fleet.things.len() / total.max(1)).max(1);
    let mut attacked = BTreeMap::new();
    for n in 0..total.min(fleet.things.len()) {
        let kind = AttackKind::ALL[n % AttackKind::ALL.len()];
        // Start of a block of four things, then the class this attack takes in turn.
        let classes = DeviceClass::ALL.len();
        let block = (n * stride) / classes * classes;
        let index = (block + (n + n / AttackKind::ALL.len()) % classes) % fleet.things.len();
        fleet.inject(index, kind, start);
        attacked.insert(fleet.things[index].name.clone(), (kind, start));
    }
    attacked
}

/// Runs the fleet period by period, printing training summaries on the summary days and
/// applying the guide's profile update. Returns every violation event.
fn simulate(
    engine: &mut CoreEngine,
    fleet: &mut Fleet,
    options: &DemoOptions,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<ViolationEvent>> {
    let periods = options.days * DAY_MS / PERIOD_MS;
    let progress = progress_bar(options.progress, periods as u64);
    let mut events = Vec::new();
    for period in 0..periods {
        let start = DEMO_START + period * PERIOD_MS;
        if start % DAY_MS == DEMO_START % DAY_MS && period > 0 {
            events.extend(engine.advance_time(start)?);
            progress.suspend(|| on_day_boundary(engine, (start - DEMO_START) / DAY_MS, out))?;
        }
        let result = engine.ingest_cloud_events(fleet.period_events(start))?;
        if let Some(rejection) = result.rejected.first() {
            anyhow::bail!(
                "the engine rejected simulated events: {}",
                rejection.message
            );
        }
        events.extend(result.events);
        progress.inc(1);
    }
    events.extend(engine.advance_time(DEMO_START + options.days * DAY_MS)?);
    progress.finish_and_clear();
    Ok(events)
}

fn progress_bar(enabled: bool, periods: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(periods);
    let style =
        ProgressStyle::with_template("{spinner} simulating {pos}/{len} periods [{bar:40}] {eta}")
            .expect("the progress template is valid")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn on_day_boundary(engine: &mut CoreEngine, day: i64, out: &mut dyn Write) -> anyhow::Result<()> {
    if SUMMARY_DAYS.contains(&day) {
        writeln!(out, "\n# End of day {day}")?;
        let summaries = engine.training_summaries(Some(PROFILE_NAME))?;
        let value = iso_dates(
            json!({ "summaries": summaries }),
            &["trainingDataCollectionStartDate", "lastModelRefreshDate"],
        );
        let command = format!(
            "aws iot get-behavior-model-training-summaries --security-profile-name {PROFILE_NAME}"
        );
        print_command(out, &command, &value)?;
    }
    if day == UPDATE_DAY {
        update_profile(engine, out)?;
    }
    Ok(())
}

fn update_profile(engine: &mut CoreEngine, out: &mut dyn Write) -> anyhow::Result<()> {
    let profile = SecurityProfile {
        name: PROFILE_NAME.to_string(),
        behaviors: parse_behaviors(UPDATED_BEHAVIORS),
        ..SecurityProfile::default()
    };
    let now = DEMO_START + UPDATE_DAY * DAY_MS;
    let (stored, _) = engine.update_security_profile(profile, None, now)?;
    writeln!(
        out,
        "\n# Day {UPDATE_DAY}: unsuppress alerts and make disconnects more sensitive"
    )?;
    let command = format!(
        "aws iot update-security-profile --security-profile-name {PROFILE_NAME} --behaviors file://update.json"
    );
    print_command(out, &command, &stored)
}

fn list_violations(
    engine: &mut CoreEngine,
    attack_start: Timestamp,
    end: Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n# End of the simulation")?;
    let active = engine.list_active_violations(ViolationFilter::default())?;
    let command = "aws iot list-active-violations --max-results 10";
    print_page(out, command, "activeViolations", &active, 10)?;

    let from = attack_start - 3_600_000;
    let events = engine.list_violation_events(ViolationFilter::default(), from, end)?;
    let command = format!(
        "aws iot list-violation-events --start-time {} --end-time {} --max-results 5",
        from / 1000,
        end / 1000
    );
    print_page(out, &command, "violationEvents", &events, 5)
}

/// Prints the first page of a list, and how many items the full list has.
fn print_page<T: serde::Serialize>(
    out: &mut dyn Write,
    command: &str,
    key: &str,
    items: &[T],
    page_size: usize,
) -> anyhow::Result<()> {
    let page = &items[..items.len().min(page_size)];
    print_command(out, command, &json!({ key: page }))?;
    if items.len() > page_size {
        writeln!(
            out,
            "(first {page_size} of {}; the API returns the rest with nextToken)",
            items.len()
        )?;
    }
    Ok(())
}

/// Creates the quarantine group and action, starts a task over the active violations, runs it
/// through the plugins and returns the things in the quarantine group.
fn mitigate(
    engine: &mut CoreEngine,
    plugins: &mut PluginHost,
    now: Timestamp,
    out: &mut dyn Write,
) -> anyhow::Result<(BTreeSet<String>, TaskStatus)> {
    writeln!(out, "\n# Mitigate: quarantine the things in alarm")?;
    let group_arn = engine.create_thing_group(QUARANTINE_GROUP)?;
    let created = json!({"thingGroupName": QUARANTINE_GROUP, "thingGroupArn": group_arn, "thingGroupId": uuid_from(&[QUARANTINE_GROUP])});
    print_command(
        out,
        &format!("aws iot create-thing-group --thing-group-name {QUARANTINE_GROUP}"),
        &created,
    )?;

    let params: MitigationActionParams = serde_json::from_value(json!({
        "addThingsToThingGroupParams": {"thingGroupNames": [QUARANTINE_GROUP], "overrideDynamicGroups": false}
    }))?;
    let action = engine.create_mitigation_action(
        ACTION_NAME,
        &uuid_from(&[ACTION_NAME]),
        ROLE_ARN,
        params,
        now,
    )?;
    let command = format!(
        "aws iot create-mitigation-action --action-name {ACTION_NAME} --role-arn {ROLE_ARN} --action-params file://params.json"
    );
    print_command(
        out,
        &command,
        &json!({"actionArn": action.action_arn, "actionId": action.action_id}),
    )?;

    let request = task_request(engine)?;
    engine.start_mitigation_task(request.clone(), now)?;
    let target = serde_json::to_string(&request.target)?;
    let command = format!(
        "aws iot start-detect-mitigation-actions-task --task-id {TASK_ID} --target '{target}' --actions {ACTION_NAME} --include-only-active-violations --include-suppressed-alerts"
    );
    print_command(out, &command, &json!({"taskId": TASK_ID}))?;
    let summary = crate::mitigate::run_task(engine, plugins, TASK_ID, now)?;

    let filter = ExecutionFilter {
        task_id: Some(TASK_ID.to_string()),
        ..ExecutionFilter::default()
    };
    let executions = engine.list_mitigation_executions(filter)?;
    let command = format!(
        "aws iot list-detect-mitigation-actions-executions --task-id {TASK_ID} --max-items 5"
    );
    print_page(out, &command, "actionsExecutions", &executions, 5)?;
    let command = format!("aws iot describe-detect-mitigation-actions-task --task-id {TASK_ID}");
    print_command(out, &command, &json!({ "taskSummary": summary }))?;

    let things = engine.list_things_in_thing_group(QUARANTINE_GROUP)?;
    let command =
        format!("aws iot list-things-in-thing-group --thing-group-name {QUARANTINE_GROUP}");
    print_command(out, &command, &json!({ "things": things }))?;
    Ok((things.into_iter().collect(), summary.task_status))
}

/// Targets the active violations by id, as the guide does, or the whole profile when there are
/// more than the 25 ids a task accepts.
fn task_request(engine: &mut CoreEngine) -> anyhow::Result<TaskRequest> {
    let active = engine.list_active_violations(ViolationFilter::default())?;
    let target = if active.len() <= 25 && !active.is_empty() {
        DetectMitigationActionsTaskTarget {
            violation_ids: Some(active.iter().map(|v| v.violation_id.clone()).collect()),
            ..DetectMitigationActionsTaskTarget::default()
        }
    } else {
        DetectMitigationActionsTaskTarget {
            security_profile_name: Some(PROFILE_NAME.to_string()),
            ..DetectMitigationActionsTaskTarget::default()
        }
    };
    Ok(TaskRequest {
        task_id: TASK_ID.to_string(),
        target,
        actions: vec![ACTION_NAME.to_string()],
        violation_event_occurrence_range: None,
        include_only_active_violations: true,
        include_suppressed_alerts: true,
    })
}

fn summarize(
    fleet: &Fleet,
    attacked: &BTreeMap<String, (AttackKind, Timestamp)>,
    events: &[ViolationEvent],
    quarantined: &BTreeSet<String>,
    options: &DemoOptions,
    attack_start: Timestamp,
) -> DemoReport {
    let in_alarm = || {
        events
            .iter()
            .filter(|e| e.violation_event_type == ViolationEventType::InAlarm)
    };
    let attacks = attacked
        .iter()
        .map(|(thing, (kind, start))| {
            let first_alarm = in_alarm()
                .filter(|e| {
                    e.thing_name == *thing && e.behavior.metric.as_deref() == Some(kind.metric())
                })
                .filter(|e| e.violation_event_time > *start)
                .map(|e| e.violation_event_time)
                .min();
            AttackOutcome {
                thing: thing.clone(),
                kind: *kind,
                delay_datapoints: first_alarm.map(|t| (t - start + PERIOD_MS - 1) / PERIOD_MS),
                quarantined: quarantined.contains(thing),
            }
        })
        .collect();
    let false_alarms = in_alarm()
        .filter(|e| !attacked.contains_key(&e.thing_name))
        .count();
    let clean_things = fleet.things.len() - attacked.len();
    let monitored_days = (options.days - vigil_core::training::TRAINING_DAYS) as f64;
    let _ = attack_start;
    DemoReport {
        attacks,
        clean_things,
        false_alarms,
        clean_device_days: clean_things as f64 * monitored_days,
        clean_quarantined: quarantined
            .iter()
            .filter(|t| !attacked.contains_key(*t))
            .count(),
        datapoints: (fleet.things.len() as u64) * (options.days * DAY_MS / PERIOD_MS) as u64 * 6,
    }
}

fn print_summary(
    report: &DemoReport,
    elapsed: Duration,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n# Summary")?;
    writeln!(
        out,
        "{:<24} {:<20} {:>14} {:>12}",
        "thing", "attack", "caught after", "quarantined"
    )?;
    for attack in &report.attacks {
        let delay = attack.delay_datapoints.map_or("missed".to_string(), |d| {
            format!("{d} datapoint{}", if d == 1 { "" } else { "s" })
        });
        let quarantined = if attack.quarantined { "yes" } else { "no" };
        writeln!(
            out,
            "{:<24} {:<20} {:>14} {:>12}",
            attack.thing,
            attack.kind.name(),
            delay,
            quarantined
        )?;
    }
    let per_thousand = 1000.0 * report.false_alarms as f64 / report.clean_device_days.max(1.0);
    writeln!(
        out,
        "attacks caught: {}/{}",
        report.caught(),
        report.attacks.len()
    )?;
    writeln!(
        out,
        "false alarms: {} over {:.0} monitored device-days ({per_thousand:.2} per 1,000 device-days)",
        report.false_alarms, report.clean_device_days
    )?;
    writeln!(
        out,
        "clean things quarantined: {} of {}",
        report.clean_quarantined, report.clean_things
    )?;
    writeln!(out, "wall time: {:.1} s", elapsed.as_secs_f64())?;
    Ok(())
}
