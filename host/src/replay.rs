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
    Behavior, ConfidenceLevel, CustomMetricType, MetricValue, SecurityProfile, Timestamp,
    ViolationEvent, ViolationEventType,
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
    /// CSV files (`timestamp,value`, UTC times as `YYYY-MM-DD HH:MM:SS`), `.jsonl` files of
    /// device reports (`{"thingName": ..., "timestamp": EPOCH_SECONDS or ISO-8601 UTC,
    /// "report": {...}}` per line), or folders holding `.csv` and `.jsonl` files (not searched
    /// recursively).
    #[arg(required = true, value_name = "PATH")]
    pub inputs: Vec<PathBuf>,
    /// Metric the CSV values are replayed as: an `aws:` count metric, which takes whole
    /// non-negative values only, or a custom `number` metric that is created for the replay.
    #[arg(long, default_value = "replay-value")]
    pub metric: String,
    /// Confidence level of the ML behaviors.
    #[arg(long, value_enum, default_value = "high")]
    pub confidence: Confidence,
    /// Days from the first datapoint to the first model build, 1 to 60. AWS waits 14; a replay
    /// bootstraps from the start of its history instead.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=60))]
    pub training_days: i64,
    /// Datapoints of a behavior, over all things, that the trailing training window must hold
    /// before a build (AWS: 25000; at least 1 is always required).
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
    /// Reports with the file and line they came from.
    reports: Vec<(DeviceReport, PathBuf, usize)>,
    /// Malformed or repeated rows skipped.
    skipped: usize,
    /// Files in input folders that could not be read.
    skipped_files: usize,
}

/// Runs the replay and prints training summaries and violations to `out`.
pub fn run(args: &ReplayArgs, core: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut inputs = read_inputs(&args.inputs)?;
    if args.metric.starts_with("aws:") {
        keep_counts_only(&mut inputs);
    }
    let datapoints: usize = inputs.series.iter().map(|s| s.points.len()).sum();
    if datapoints == 0 && inputs.reports.is_empty() {
        bail!(
            "no datapoints found in the inputs; expected CSV files of `timestamp,value` rows or \
             `.jsonl` files of device reports"
        );
    }
    align_series(&mut inputs.series);
    let labels = load_labels(args, &inputs.series)?;
    writeln!(
        out,
        "Read {} series ({datapoints} datapoints) and {} device reports; skipped {} rows and {} files",
        inputs.series.len(),
        inputs.reports.len(),
        inputs.skipped,
        inputs.skipped_files
    )?;

    let mut engine = CoreEngine::load(core, replay_config(args))?;
    configure(
        &mut engine,
        args,
        !inputs.series.is_empty(),
        !inputs.reports.is_empty(),
    )?;
    let (events, rejected_reports) = feed(&mut engine, &inputs, args)?;
    if rejected_reports > 0 {
        writeln!(
            out,
            "{rejected_reports} device reports were rejected (see the messages above)"
        )?;
    }

    let summaries = engine.training_summaries(Some(PROFILE_NAME))?;
    warn_inactive_models(&summaries);
    let value = iso_dates(
        json!({ "summaries": summaries }),
        &["trainingDataCollectionStartDate", "lastModelRefreshDate"],
    );
    let command = format!(
        "aws iot get-behavior-model-training-summaries --security-profile-name {PROFILE_NAME}"
    );
    print_command(out, &command, &value)?;
    if args.events {
        print_events(&events, &inputs.series, out)?;
    }
    let report_things: std::collections::BTreeSet<&str> = inputs
        .reports
        .iter()
        .map(|(r, _, _)| r.thing_name.as_str())
        .collect();
    print_series_table(
        &events,
        &inputs.series,
        &report_things,
        &args.metric,
        labels.as_ref(),
        out,
    )
}

/// Drops rows that are not counts, because `aws:` count metrics take non-negative integers.
fn keep_counts_only(inputs: &mut Inputs) {
    for series in &mut inputs.series {
        let before = series.points.len();
        series.points.retain(|(_, v)| *v >= 0.0 && v.fract() == 0.0);
        let dropped = before - series.points.len();
        if dropped > 0 {
            eprintln!(
                "warning: {dropped} rows of `{}` skipped: `aws:` metrics take non-negative whole counts",
                series.thing
            );
            inputs.skipped += dropped;
        }
    }
}

fn warn_inactive_models(summaries: &[vigil_core::model::BehaviorModelTrainingSummary]) {
    for summary in summaries {
        if summary.model_status != vigil_core::model::ModelStatus::Active {
            eprintln!(
                "warning: the model of `{}` is {:?} at the end of the replay, so it raised no ML \
                 alarms; give it more history or lower --training-days",
                summary.behavior_name, summary.model_status
            );
        }
    }
}

fn replay_config(args: &ReplayArgs) -> EngineConfig {
    EngineConfig {
        ml_training_days: args.training_days,
        ml_min_datapoints: args.min_datapoints,
        ..EngineConfig::default()
    }
}

/// Rows reported per file before the rest of its malformed rows are only counted.
const MAX_REPORTED_ROWS: usize = 5;
/// Latest accepted epoch time in seconds: the end of year 9999.
const MAX_EPOCH_SECONDS: f64 = 253_402_300_799.0;

fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    let mut seen = std::collections::BTreeSet::new();
    for path in paths {
        if path.is_dir() {
            for file in files_in(path)? {
                // A bad file inside a folder is skipped so the rest of the folder still replays.
                if let Err(error) = read_file(&file, &mut inputs, &mut seen) {
                    eprintln!("warning: {error:#}; file skipped");
                    inputs.skipped_files += 1;
                }
            }
        } else {
            read_file(path, &mut inputs, &mut seen)?;
        }
    }
    Ok(inputs)
}

fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("failed to read folder `{}`", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
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

fn read_file(
    path: &Path,
    inputs: &mut Inputs,
    seen: &mut std::collections::BTreeSet<PathBuf>,
) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "`{}` is not a regular file; pass CSV or .jsonl files or folders of them",
            path.display()
        );
    }
    let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) {
        eprintln!(
            "warning: `{}` was given more than once; it is read once",
            path.display()
        );
        return Ok(());
    }
    let bytes = fs::read(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "`{}` is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let text = text.trim_start_matches('\u{feff}');
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        read_reports(path, text, inputs);
    } else {
        read_csv(path, text, inputs)?;
    }
    Ok(())
}

/// Collects the malformed rows of one file, printing the first few.
struct RowErrors<'a> {
    path: &'a Path,
    count: usize,
}

impl RowErrors<'_> {
    fn report(&mut self, line: usize, reason: &str) {
        self.count += 1;
        if self.count <= MAX_REPORTED_ROWS {
            eprintln!("{}:{line}: {reason}; row skipped", self.path.display());
        }
    }

    fn finish(self, inputs: &mut Inputs) {
        if self.count > MAX_REPORTED_ROWS {
            let rest = self.count - MAX_REPORTED_ROWS;
            eprintln!(
                "{}: {rest} more malformed rows skipped",
                self.path.display()
            );
        }
        inputs.skipped += self.count;
    }
}

fn read_csv(path: &Path, text: &str, inputs: &mut Inputs) -> anyhow::Result<()> {
    let Some(first_line) = text.lines().next() else {
        bail!(
            "`{}` is empty; expected a `timestamp,value` header row",
            path.display()
        );
    };
    // A first line that parses as data means the file has no header.
    let skip = usize::from(parse_csv_row(first_line).is_err());
    let mut errors = RowErrors { path, count: 0 };
    let mut points: Vec<(Timestamp, f64)> = Vec::new();
    for (number, line) in text.lines().enumerate().skip(skip) {
        if line.trim().is_empty() {
            continue;
        }
        match parse_csv_row(line) {
            Ok(point) => points.push(point),
            Err(reason) => errors.report(number + 1, &reason),
        }
    }

    // Keep the first value of a repeated timestamp, as a metric has one value per time.
    points.sort_by_key(|(t, _)| *t);
    let before = points.len();
    points.dedup_by_key(|(t, _)| *t);
    if points.len() < before {
        eprintln!(
            "{}: {} rows with a repeated timestamp skipped",
            path.display(),
            before - points.len()
        );
        inputs.skipped += before - points.len();
    }
    errors.finish(inputs);
    if points.is_empty() {
        bail!("`{}` has no valid `timestamp,value` rows", path.display());
    }

    let category = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let thing = unique_thing_name(path, &inputs.series);
    inputs.series.push(Series {
        thing,
        label_key: format!("{category}/{file_name}"),
        shift: 0,
        points,
    });
    Ok(())
}

/// Derives a thing name from the file stem, prefixed with its folder (and then numbered) when
/// another series already has that name.
fn unique_thing_name(path: &Path, series: &[Series]) -> String {
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .take(128)
            .collect()
    };
    let stem = clean(
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("series"),
    );
    let taken = |name: &str| series.iter().any(|s| s.thing == name);
    if !taken(&stem) {
        return stem;
    }
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("series");
    let prefixed = clean(&format!("{folder}-{stem}"));
    (1..)
        .map(|n| {
            if n == 1 {
                prefixed.clone()
            } else {
                format!("{prefixed}-{n}")
            }
        })
        .find(|name| !taken(name))
        .expect("an unused name exists")
}

fn parse_csv_row(line: &str) -> Result<(Timestamp, f64), String> {
    let mut fields = line.split(',');
    let (Some(timestamp), Some(value)) = (fields.next(), fields.next()) else {
        return Err(format!(
            "expected `timestamp,value`, got `{}`",
            printable(line)
        ));
    };
    if fields.next().is_some() {
        return Err(format!(
            "expected two columns `timestamp,value`, got `{}`",
            printable(line)
        ));
    }
    let timestamp = parse_datetime(timestamp.trim().trim_matches('"')).ok_or_else(|| {
        format!(
            "invalid timestamp `{}`, expected `YYYY-MM-DD HH:MM:SS` in UTC",
            printable(timestamp)
        )
    })?;
    let value: f64 = value
        .trim()
        .trim_matches('"')
        .parse()
        .map_err(|_| format!("invalid value `{}`, expected a number", printable(value)))?;
    if !value.is_finite() {
        return Err(format!("invalid value `{value}`, expected a finite number"));
    }
    Ok((timestamp, value))
}

/// Input text safe to echo: control characters replaced, at most 80 characters.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(80)
        .collect()
}

fn read_reports(path: &Path, text: &str, inputs: &mut Inputs) {
    let mut errors = RowErrors { path, count: 0 };
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_report_line(line) {
            Ok(report) => inputs
                .reports
                .push((report, path.to_path_buf(), number + 1)),
            Err(reason) => errors.report(number + 1, &reason),
        }
    }
    errors.finish(inputs);
}

fn parse_report_line(line: &str) -> Result<DeviceReport, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let thing = value["thingName"]
        .as_str()
        .ok_or("`thingName` must be a string")?;
    let timestamp = match &value["timestamp"] {
        serde_json::Value::Number(seconds) => {
            let seconds = seconds.as_f64().unwrap_or(f64::NAN);
            if !(0.0..=MAX_EPOCH_SECONDS).contains(&seconds) {
                return Err(format!(
                    "`timestamp` {seconds} is out of range: expected epoch seconds between 0 and \
                     {MAX_EPOCH_SECONDS} (milliseconds must be divided by 1000)"
                ));
            }
            (seconds * 1000.0).round() as Timestamp
        }
        serde_json::Value::String(text) => parse_datetime(text).ok_or_else(|| {
            format!(
                "invalid `timestamp` `{}`, expected ISO-8601 in UTC",
                printable(text)
            )
        })?,
        _ => return Err("`timestamp` must be epoch seconds or an ISO-8601 string".to_string()),
    };
    let report = value.get("report").ok_or("missing object field `report`")?;
    if !report.is_object() {
        return Err("`report` must be an object".to_string());
    }
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

fn configure(
    engine: &mut CoreEngine,
    args: &ReplayArgs,
    has_series: bool,
    has_reports: bool,
) -> anyhow::Result<()> {
    let is_custom = !args.metric.starts_with("aws:");
    if is_custom {
        engine
            .create_custom_metric(&args.metric, CustomMetricType::Number, None, 0)
            .with_context(|| format!("failed to create custom metric `{}`", args.metric))?;
    }
    let behaviors = match &args.profile {
        Some(path) => read_profile_behaviors(path)?,
        None => default_behaviors(args, has_series, has_reports),
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

/// Reads behaviors from `{"behaviors": [...]}`, the shape `create-security-profile` takes, or from
/// a bare list of behaviors.
fn read_profile_behaviors(path: &Path) -> anyhow::Result<Vec<Behavior>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("failed to read profile `{}`", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("failed to parse `{}` as JSON", path.display()))?;
    let behaviors_value = match &value {
        serde_json::Value::Object(object) => object
            .get("behaviors")
            .cloned()
            .with_context(|| format!("`{}` has no `behaviors` list", path.display()))?,
        _ => value.clone(),
    };
    // Parse the list alone so serde's error names the behavior and the field.
    serde_json::from_value::<Vec<Behavior>>(behaviors_value).with_context(|| {
        format!(
            "invalid behaviors in `{}`: expected {{\"behaviors\": [...]}} or a list of behaviors",
            path.display()
        )
    })
}

fn ml_behavior(metric: &str, args: &ReplayArgs) -> Behavior {
    let name: String = metric
        .trim_start_matches("aws:")
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let mut behavior = Behavior::machine_learning(
        &format!("{name}-ml-behavior"),
        metric,
        args.confidence.into(),
    );
    let criteria = behavior
        .criteria
        .as_mut()
        .expect("ML behaviors have criteria");
    criteria.consecutive_datapoints_to_alarm = Some(args.datapoints_to_alarm);
    criteria.consecutive_datapoints_to_clear = Some(1);
    behavior.suppress_alerts = Some(false);
    behavior
}

fn default_behaviors(args: &ReplayArgs, has_series: bool, has_reports: bool) -> Vec<Behavior> {
    let mut behaviors = Vec::new();
    if has_series {
        behaviors.push(ml_behavior(&args.metric, args));
    }
    if has_reports {
        behaviors.extend(REPORT_METRICS.iter().map(|m| ml_behavior(m, args)));
    }
    behaviors
}

/// One input in event-time order.
enum Item<'a> {
    Point(Datapoint),
    Report(&'a (DeviceReport, PathBuf, usize)),
}

impl Item<'_> {
    fn time(&self) -> Timestamp {
        match self {
            Item::Point(point) => point.timestamp,
            Item::Report((report, _, _)) => report.received_at,
        }
    }
}

/// Feeds series datapoints and reports merged in event-time order. Returns every violation event
/// and the number of rejected reports.
fn feed(
    engine: &mut CoreEngine,
    inputs: &Inputs,
    args: &ReplayArgs,
) -> anyhow::Result<(Vec<ViolationEvent>, usize)> {
    let points = inputs.series.iter().flat_map(|s| {
        s.points.iter().map(move |(t, v)| {
            Item::Point(Datapoint {
                thing_name: s.thing.clone(),
                metric: args.metric.clone(),
                dimension_name: None,
                timestamp: *t + s.shift,
                value: metric_value(&args.metric, *v),
            })
        })
    });
    let mut items: Vec<Item> = points
        .chain(inputs.reports.iter().map(Item::Report))
        .collect();
    items.sort_by_key(Item::time);

    let mut events = Vec::new();
    let mut rejected = 0;
    let mut index = 0;
    while index < items.len() {
        // Send runs of the same kind together, at most BATCH at a time.
        let is_point = matches!(items[index], Item::Point(_));
        let run_end = (index..items.len().min(index + BATCH))
            .find(|&i| matches!(items[i], Item::Point(_)) != is_point)
            .unwrap_or(items.len().min(index + BATCH));
        let run = &items[index..run_end];
        if is_point {
            events.extend(ingest_points(engine, run)?);
        } else {
            let (run_events, run_rejected) = ingest_reports(engine, run)?;
            events.extend(run_events);
            rejected += run_rejected;
        }
        index = run_end;
    }
    Ok((events, rejected))
}

fn ingest_points(engine: &mut CoreEngine, run: &[Item]) -> anyhow::Result<Vec<ViolationEvent>> {
    let batch: Vec<Datapoint> = run
        .iter()
        .filter_map(|item| match item {
            Item::Point(point) => Some(point.clone()),
            Item::Report(_) => None,
        })
        .collect();
    let result = engine.ingest_datapoints(batch.clone())?;
    for rejection in &result.rejected {
        let thing = &batch[rejection.index as usize].thing_name;
        eprintln!("datapoint of `{thing}` rejected: {}", rejection.message);
    }
    Ok(result.events)
}

fn ingest_reports(
    engine: &mut CoreEngine,
    run: &[Item],
) -> anyhow::Result<(Vec<ViolationEvent>, usize)> {
    let sources: Vec<&(DeviceReport, PathBuf, usize)> = run
        .iter()
        .filter_map(|item| match item {
            Item::Report(source) => Some(*source),
            Item::Point(_) => None,
        })
        .collect();
    let batch: Vec<DeviceReport> = sources
        .iter()
        .map(|(report, _, _)| report.clone())
        .collect();
    let (outcomes, events) = engine.ingest_reports(batch)?;
    let mut rejected = 0;
    for ((report, path, line), outcome) in sources.into_iter().zip(outcomes) {
        if let ReportOutcome::Rejected(rejection) = outcome {
            rejected += 1;
            eprintln!(
                "{}:{line}: report of `{}` rejected: {rejection}",
                path.display(),
                report.thing_name
            );
        }
    }
    Ok((events, rejected))
}

fn metric_value(metric: &str, value: f64) -> MetricValue {
    if metric.starts_with("aws:") {
        // `keep_counts_only` has dropped negative and fractional values.
        MetricValue::count(value as u64)
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
    report_things: &std::collections::BTreeSet<&str>,
    metric: &str,
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
                e.thing_name == s.thing
                    && e.violation_event_type == ViolationEventType::InAlarm
                    && e.behavior.metric.as_deref() == Some(metric)
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
    for thing in report_things {
        let alarms = events
            .iter()
            .filter(|e| {
                e.thing_name == *thing && e.violation_event_type == ViolationEventType::InAlarm
            })
            .filter(|e| e.behavior.metric.as_deref() != Some(metric))
            .count();
        total_alarms += alarms;
        writeln!(
            out,
            "{:<40} {:>10} {:>8}",
            format!("{thing} (reports)"),
            "-",
            alarms
        )?;
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
