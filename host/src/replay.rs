//! `vigil replay`: the engine over recorded data. NAB-style CSV series (`timestamp,value`) each
//! become one thing reporting one metric; JSON-lines files carry device metrics reports.
//!
//! Series are shifted by whole days so they all start on the same day: the engine has one
//! event-time clock, and whole-day shifts keep each series' time of day, which the models learn.
//! Printed times are the original ones.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;
use vigil_core::EngineConfig;
use vigil_core::catalogue::DAY_MS;
use vigil_core::ingest::{Datapoint, DeviceReport, ReportOutcome};
use vigil_core::model::{
    Behavior, BehaviorCriteria, ConfidenceLevel, CustomMetricType, MachineLearningDetectionConfig,
    MetricValue, SecurityProfile, Timestamp, ViolationEvent, ViolationEventType,
};
use vigil_core::report::ReportFormat;

use crate::engine::CoreEngine;
use crate::output::{iso_dates, iso8601, parse_datetime, print_command};

/// Datapoints per engine call.
const BATCH: usize = 10_000;
/// Target that covers every thing without registering it.
const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";
const PROFILE_NAME: &str = "replay";
/// Device metrics the default report profile watches with ML behaviors.
const REPORT_METRICS: [&str; 6] = [
    "aws:all-bytes-out",
    "aws:all-bytes-in",
    "aws:all-packets-out",
    "aws:all-packets-in",
    "aws:num-listening-tcp-ports",
    "aws:num-established-tcp-connections",
];

/// Confidence level argument.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Confidence {
    /// Most sensitive.
    Low,
    /// Between the two.
    Medium,
    /// Least sensitive, so the fewest alarms.
    High,
}

impl From<Confidence> for ConfidenceLevel {
    fn from(confidence: Confidence) -> Self {
        match confidence {
            Confidence::Low => ConfidenceLevel::Low,
            Confidence::Medium => ConfidenceLevel::Medium,
            Confidence::High => ConfidenceLevel::High,
        }
    }
}

/// Arguments of `vigil replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// CSV files (`timestamp,value` with a header row), folders of them, and `.jsonl` files of
    /// device reports (`{"thingName": ..., "timestamp": ..., "report": {...}}` per line).
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Metric the CSV values are replayed as: an `aws:` count metric, or a custom `number`
    /// metric that is created for the replay.
    #[arg(long, default_value = "replay-value")]
    pub metric: String,
    /// Confidence level of the ML behaviors.
    #[arg(long, value_enum, default_value = "high")]
    pub confidence: Confidence,
    /// Days from the first datapoint to the first model build. AWS waits 14; a replay
    /// bootstraps from the start of its history instead.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=60))]
    pub training_days: i64,
    /// Datapoints the training window must hold before a build (AWS: 25000).
    #[arg(long, default_value_t = 0)]
    pub min_datapoints: u64,
    /// Violating datapoints in a row before an alarm (1 to 10).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=10))]
    pub datapoints_to_alarm: i64,
    /// A JSON file with a `behaviors` list, as `aws iot create-security-profile` takes it, used
    /// instead of the default ML behaviors.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// NAB `combined_windows.json`; found automatically next to a NAB `data` folder.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Print every violation event, not only the summary.
    #[arg(long)]
    pub events: bool,
}

/// One CSV series.
struct Series {
    thing: String,
    /// Path relative to the NAB data folder, for example `realAWSCloudwatch/x.csv`.
    label_key: String,
    /// Whole-day shift added to the original timestamps.
    shift: Timestamp,
    points: Vec<(Timestamp, f64)>,
}

/// Everything read from the inputs.
#[derive(Default)]
struct Inputs {
    series: Vec<Series>,
    reports: Vec<DeviceReport>,
    skipped: usize,
}

/// Runs the replay and prints training summaries and violations to `out`.
pub fn run(args: &ReplayArgs, core: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut inputs = read_inputs(&args.inputs)?;
    if inputs.series.is_empty() && inputs.reports.is_empty() {
        bail!(
            "no datapoints found in the inputs; expected CSV files with a `timestamp,value` header or `.jsonl` report files"
        );
    }
    align_series(&mut inputs.series);
    writeln!(
        out,
        "Read {} series ({} datapoints) and {} device reports; skipped {} malformed rows",
        inputs.series.len(),
        inputs.series.iter().map(|s| s.points.len()).sum::<usize>(),
        inputs.reports.len(),
        inputs.skipped
    )?;

    let mut engine = CoreEngine::load(core, replay_config(args))?;
    configure(&mut engine, args, !inputs.reports.is_empty())?;
    let events = feed(&mut engine, &inputs, args)?;

    let summaries = engine.training_summaries(Some(PROFILE_NAME))?;
    let value = iso_dates(
        json!({ "summaries": summaries }),
        &["trainingDataCollectionStartDate", "lastModelRefreshDate"],
    );
    print_command(
        out,
        &format!(
            "aws iot get-behavior-model-training-summaries --security-profile-name {PROFILE_NAME}"
        ),
        &value,
    )?;
    if args.events {
        print_events(&events, &inputs.series, out)?;
    }
    let labels = load_labels(args, &inputs.series)?;
    print_series_table(&events, &inputs.series, labels.as_ref(), out)
}

fn replay_config(args: &ReplayArgs) -> EngineConfig {
    EngineConfig {
        ml_training_days: args.training_days,
        ml_min_datapoints: args.min_datapoints,
        ..EngineConfig::default()
    }
}

fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for path in paths {
        let files = if path.is_dir() {
            files_in(path)?
        } else {
            vec![path.clone()]
        };
        for file in files {
            read_file(&file, &mut inputs)?;
        }
    }
    Ok(inputs)
}

fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("failed to read folder `{}`", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("csv" | "jsonl")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, inputs: &mut Inputs) -> anyhow::Result<()> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        read_reports(path, &text, inputs);
    } else {
        read_csv(path, &text, inputs)?;
    }
    Ok(())
}

fn read_csv(path: &Path, text: &str, inputs: &mut Inputs) -> anyhow::Result<()> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("series");
    let thing: String = stem
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .take(128)
        .collect();
    let category = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let mut points = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_csv_row(line) {
            Ok(point) => points.push(point),
            Err(reason) => {
                eprintln!("{}:{}: {reason}; row skipped", path.display(), number + 1);
                inputs.skipped += 1;
            }
        }
    }
    if text.lines().next().is_none() {
        bail!(
            "`{}` is empty; expected a `timestamp,value` header row",
            path.display()
        );
    }
    points.sort_by_key(|(t, _)| *t);
    inputs.series.push(Series {
        thing,
        label_key: format!(
            "{category}/{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        ),
        shift: 0,
        points,
    });
    Ok(())
}

fn parse_csv_row(line: &str) -> Result<(Timestamp, f64), String> {
    let (timestamp, value) = line
        .split_once(',')
        .ok_or_else(|| format!("expected `timestamp,value`, got `{line}`"))?;
    let timestamp = parse_datetime(timestamp.trim_matches('"')).ok_or_else(|| {
        format!("invalid timestamp `{timestamp}`, expected `YYYY-MM-DD HH:MM:SS`")
    })?;
    let value: f64 = value
        .trim()
        .trim_matches('"')
        .parse()
        .map_err(|_| format!("invalid value `{value}`, expected a number"))?;
    if !value.is_finite() {
        return Err(format!("invalid value `{value}`, expected a finite number"));
    }
    Ok((timestamp, value))
}

fn read_reports(path: &Path, text: &str, inputs: &mut Inputs) {
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_report_line(line) {
            Ok(report) => inputs.reports.push(report),
            Err(reason) => {
                eprintln!("{}:{}: {reason}; line skipped", path.display(), number + 1);
                inputs.skipped += 1;
            }
        }
    }
}

fn parse_report_line(line: &str) -> Result<DeviceReport, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let thing = value["thingName"]
        .as_str()
        .ok_or("missing string field `thingName`")?;
    let timestamp = match &value["timestamp"] {
        serde_json::Value::Number(seconds) => {
            seconds.as_f64().map(|s| (s * 1000.0).round() as Timestamp)
        }
        serde_json::Value::String(text) => parse_datetime(text),
        _ => None,
    }
    .ok_or("missing `timestamp`: expected epoch seconds or an ISO-8601 string")?;
    let report = value.get("report").ok_or("missing object field `report`")?;
    Ok(DeviceReport {
        thing_name: thing.to_string(),
        received_at: timestamp,
        format: ReportFormat::Json,
        payload: serde_json::to_vec(report).map_err(|e| e.to_string())?,
    })
}

/// Shifts every series by whole days so that all start on the day the earliest one starts.
fn align_series(series: &mut [Series]) {
    let Some(first_day) = series
        .iter()
        .filter_map(|s| s.points.first())
        .map(|(t, _)| t.div_euclid(DAY_MS))
        .min()
    else {
        return;
    };
    for s in series.iter_mut() {
        let Some((start, _)) = s.points.first() else {
            continue;
        };
        s.shift = (first_day - start.div_euclid(DAY_MS)) * DAY_MS;
    }
}

fn configure(engine: &mut CoreEngine, args: &ReplayArgs, has_reports: bool) -> anyhow::Result<()> {
    let is_custom = !args.metric.starts_with("aws:");
    if is_custom {
        engine
            .create_custom_metric(&args.metric, CustomMetricType::Number)
            .with_context(|| format!("failed to create custom metric `{}`", args.metric))?;
    }
    let behaviors = match &args.profile {
        Some(path) => read_profile_behaviors(path)?,
        None => default_behaviors(args, has_reports),
    };
    let profile = SecurityProfile {
        name: PROFILE_NAME.to_string(),
        behaviors,
        ..SecurityProfile::default()
    };
    engine
        .create_security_profile(profile, 0)
        .context("failed to create the replay security profile")?;
    engine.attach_security_profile(PROFILE_NAME, ALL_THINGS)
}

fn read_profile_behaviors(path: &Path) -> anyhow::Result<Vec<Behavior>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("failed to read profile `{}`", path.display()))?;
    #[derive(serde::Deserialize)]
    struct ProfileFile {
        behaviors: Vec<Behavior>,
    }
    let file: ProfileFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "failed to parse `{}`: expected {{\"behaviors\": [...]}}",
            path.display()
        )
    })?;
    Ok(file.behaviors)
}

fn ml_behavior(metric: &str, args: &ReplayArgs) -> Behavior {
    let name: String = metric
        .trim_start_matches("aws:")
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    Behavior {
        name: format!("{name}-ml-behavior"),
        metric: Some(metric.to_string()),
        metric_dimension: None,
        criteria: Some(BehaviorCriteria {
            consecutive_datapoints_to_alarm: Some(args.datapoints_to_alarm),
            consecutive_datapoints_to_clear: Some(1),
            ml_detection_config: Some(MachineLearningDetectionConfig {
                confidence_level: args.confidence.into(),
            }),
            ..BehaviorCriteria::default()
        }),
        suppress_alerts: Some(false),
        export_metric: None,
    }
}

fn default_behaviors(args: &ReplayArgs, has_reports: bool) -> Vec<Behavior> {
    let mut behaviors = vec![ml_behavior(&args.metric, args)];
    if has_reports {
        behaviors.extend(REPORT_METRICS.iter().map(|m| ml_behavior(m, args)));
    }
    behaviors
}

/// Feeds series datapoints and reports in event-time order and returns every violation event.
fn feed(
    engine: &mut CoreEngine,
    inputs: &Inputs,
    args: &ReplayArgs,
) -> anyhow::Result<Vec<ViolationEvent>> {
    let mut datapoints: Vec<Datapoint> = inputs
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(move |(t, v)| (s, *t + s.shift, *v)))
        .map(|(s, t, v)| Datapoint {
            thing_name: s.thing.clone(),
            metric: args.metric.clone(),
            dimension_name: None,
            timestamp: t,
            value: metric_value(&args.metric, v),
        })
        .collect();
    datapoints.sort_by(|a, b| (a.timestamp, &a.thing_name).cmp(&(b.timestamp, &b.thing_name)));

    let mut events = Vec::new();
    for batch in datapoints.chunks(BATCH) {
        let result = engine.ingest_datapoints(batch.to_vec())?;
        for rejection in &result.rejected {
            eprintln!(
                "datapoint of `{}` rejected: {}",
                batch[rejection.index as usize].thing_name, rejection.message
            );
        }
        events.extend(result.events);
    }
    let mut reports = inputs.reports.clone();
    reports.sort_by_key(|r| r.received_at);
    for batch in reports.chunks(BATCH) {
        let (outcomes, report_events) = engine.ingest_reports(batch.to_vec())?;
        for (report, outcome) in batch.iter().zip(outcomes) {
            if let ReportOutcome::Rejected(rejection) = outcome {
                eprintln!(
                    "report of `{}` at {} rejected: {rejection}",
                    report.thing_name,
                    iso8601(report.received_at)
                );
            }
        }
        events.extend(report_events);
    }
    Ok(events)
}

fn metric_value(metric: &str, value: f64) -> MetricValue {
    if metric.starts_with("aws:") {
        MetricValue::count(value.max(0.0).round() as u64)
    } else {
        MetricValue::number(value)
    }
}

fn original_time(series: &[Series], thing: &str, time: Timestamp) -> Timestamp {
    let shift = series
        .iter()
        .find(|s| s.thing == thing)
        .map_or(0, |s| s.shift);
    time - shift
}

fn print_events(
    events: &[ViolationEvent],
    series: &[Series],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n# Violation events")?;
    for event in events {
        let time = iso8601(original_time(
            series,
            &event.thing_name,
            event.violation_event_time,
        ));
        let explanation = event
            .violation_event_additional_info
            .as_ref()
            .and_then(|info| info.explanation.as_ref())
            .map(|e| {
                format!(
                    " observed {:.3}, expected {:.3}..{:.3}, score {:.3}",
                    e.observed, e.expected_low, e.expected_high, e.anomaly_score
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{time} {:<40} {:<18} {}{explanation}",
            event.thing_name,
            event_type_name(event.violation_event_type),
            event.behavior.name
        )?;
    }
    Ok(())
}

fn event_type_name(kind: ViolationEventType) -> &'static str {
    match kind {
        ViolationEventType::InAlarm => "in-alarm",
        ViolationEventType::AlarmCleared => "alarm-cleared",
        ViolationEventType::AlarmInvalidated => "alarm-invalidated",
    }
}

/// NAB anomaly windows per series key, as (start, end) in original time.
type Labels = BTreeMap<String, Vec<(Timestamp, Timestamp)>>;

fn load_labels(args: &ReplayArgs, series: &[Series]) -> anyhow::Result<Option<Labels>> {
    let path = match &args.labels {
        Some(path) => path.clone(),
        None => match discover_labels(&args.inputs) {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let text = fs::read_to_string(&path)
        .with_context(|| format!("failed to read labels `{}`", path.display()))?;
    let raw: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "failed to parse labels `{}`: expected NAB's combined_windows.json layout",
                path.display()
            )
        })?;
    let mut labels = Labels::new();
    for s in series {
        let windows = raw.get(&s.label_key).map(|w| {
            w.iter()
                .filter_map(|[a, b]| Some((parse_datetime(a)?, parse_datetime(b)?)))
                .collect()
        });
        if let Some(windows) = windows {
            labels.insert(s.thing.clone(), windows);
        }
    }
    Ok(Some(labels))
}

/// `labels/combined_windows.json` two levels above a NAB `data/<category>` input.
fn discover_labels(inputs: &[PathBuf]) -> Option<PathBuf> {
    inputs.iter().find_map(|input| {
        let dir = if input.is_dir() {
            input.as_path()
        } else {
            input.parent()?
        };
        let candidate = dir.parent()?.parent()?.join("labels/combined_windows.json");
        candidate.is_file().then_some(candidate)
    })
}

fn print_series_table(
    events: &[ViolationEvent],
    series: &[Series],
    labels: Option<&Labels>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "\n# Violations per series")?;
    let header = if labels.is_some() {
        "  windows hit  alarms outside"
    } else {
        ""
    };
    writeln!(
        out,
        "{:<40} {:>10} {:>8}{header}",
        "series", "datapoints", "alarms"
    )?;
    let (mut total_alarms, mut total_windows, mut total_hit, mut total_outside) = (0, 0, 0, 0);
    for s in series {
        let alarms: Vec<Timestamp> = events
            .iter()
            .filter(|e| {
                e.thing_name == s.thing && e.violation_event_type == ViolationEventType::InAlarm
            })
            .map(|e| e.violation_event_time - s.shift)
            .collect();
        total_alarms += alarms.len();
        let mut line = format!("{:<40} {:>10} {:>8}", s.thing, s.points.len(), alarms.len());
        if let Some(windows) = labels.and_then(|l| l.get(&s.thing)) {
            let inside = |t: &Timestamp| windows.iter().any(|(a, b)| t >= a && t <= b);
            let hit = windows
                .iter()
                .filter(|(a, b)| alarms.iter().any(|t| t >= a && t <= b))
                .count();
            let outside = alarms.iter().filter(|t| !inside(t)).count();
            (total_windows, total_hit, total_outside) = (
                total_windows + windows.len(),
                total_hit + hit,
                total_outside + outside,
            );
            line.push_str(&format!(
                "  {:>5}/{:<5} {:>14}",
                hit,
                windows.len(),
                outside
            ));
        }
        writeln!(out, "{line}")?;
    }
    write!(out, "total: {total_alarms} alarms")?;
    if labels.is_some() {
        write!(
            out,
            "; labelled anomaly windows with an alarm: {total_hit}/{total_windows}; alarms outside windows: {total_outside}"
        )?;
    }
    writeln!(out)?;
    Ok(())
}
