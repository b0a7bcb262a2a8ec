//! `vigil bench-fleet`: how well the ML behaviors catch attacks on simulated fleets.
//!
//! Each seed gives one fleet of four device classes. The fleet trains for 14 simulated days, then
//! a quarter of its things come under attack, each at its own known start time, until the end of
//! the run. One engine scores all three confidence levels at once, one security profile per
//! level, so every level sees the same traffic. The run reports recall per attack kind,
//! precision, false alarms per 1,000 clean device-days and the median detection delay.
//!
//! The fleets run through the native `vigil-core` engine, not the wasmtime component: the
//! decisions are the same (the core is deterministic on every target) and native runs faster.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use vigil_core::catalogue::{DAY_MS, PERIOD_MS};
use vigil_core::model::{
    Behavior, ConfidenceLevel, ModelStatus, SecurityProfile, Timestamp, ViolationEvent,
    ViolationEventType,
};
use vigil_core::training::TRAINING_DAYS;
use vigil_core::{Engine, EngineConfig};

use crate::demo::DEMO_START;
use crate::sim::{AttackKind, DeviceClass, Fleet, Rng};

/// The confidence levels scored, from most to least sensitive.
pub const LEVELS: [ConfidenceLevel; 3] = [
    ConfidenceLevel::Low,
    ConfidenceLevel::Medium,
    ConfidenceLevel::High,
];

/// The metrics each level's profile watches with one ML behavior each: those of the ML Detect
/// guide's profile, which `vigil demo` also uses.
pub const METRICS: [&str; 5] = [
    "aws:num-messages-sent",
    "aws:num-authorization-failures",
    "aws:num-connection-attempts",
    "aws:num-disconnects",
    "aws:message-byte-size",
];

/// An attack counts as detected when an alarm on its metric starts within this many datapoints
/// of the attack's start.
pub const DETECTION_WINDOW_DATAPOINTS: i64 = 3;

/// Goal at MEDIUM: the share of attacks of every kind detected within the window.
pub const MEDIUM_RECALL_GOAL: f64 = 0.95;

/// Goal at HIGH: the largest number of false alarms per 1,000 clean device-days.
pub const HIGH_FALSE_ALARMS_GOAL: f64 = 1.0;

const ALL_THINGS: &str = "arn:aws:iot:us-east-1:123456789012:all/things";

/// The first four things of every block of 16 are attacked, one of each device class.
const ATTACK_BLOCK: usize = 16;

/// Attacks start at least this long after the first model build and before the end of the run.
const ATTACK_MARGIN_MS: i64 = 3_600_000;

/// Arguments of `vigil bench-fleet`.
#[derive(clap::Args, Debug)]
pub struct BenchFleetArgs {
    /// Simulated fleets, seeded 1, 2, and so on, 1 to 64. They run in parallel, one per core.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub seeds: u32,
    /// Things per fleet, 16 to 20000. A quarter of them are attacked.
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u32).range(16..=20_000))]
    pub things: u32,
    /// Simulated days after the 14 training days, 1 to 60. Attacks start during these days.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..=60))]
    pub days: i64,
}

/// Settings of one benchmark run.
#[derive(Clone, Debug)]
pub struct FleetBenchOptions {
    /// One fleet per seed.
    pub seeds: Vec<u64>,
    /// Things per fleet.
    pub things: usize,
    /// Days simulated after the training days.
    pub evaluation_days: i64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl From<&BenchFleetArgs> for FleetBenchOptions {
    fn from(args: &BenchFleetArgs) -> Self {
        Self {
            seeds: (1..=u64::from(args.seeds)).collect(),
            things: args.things as usize,
            evaluation_days: args.days,
            progress: true,
        }
    }
}

/// One injected attack and when each level first alarmed on its metric.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackResult {
    /// Seed of the fleet.
    pub seed: u64,
    /// The attacked thing.
    pub thing: String,
    /// Its device class.
    pub class: DeviceClass,
    /// The attack.
    pub kind: AttackKind,
    /// Start of the first attacked period.
    pub start: Timestamp,
    /// Per level (in [`LEVELS`] order), attack datapoints until the first alarm on the attack's
    /// metric; 1 means the first attacked datapoint. `None` when no alarm started.
    pub delays: [Option<i64>; 3],
}

/// Whose alarm it was, relative to the attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmTarget {
    /// A thing never attacked.
    Clean,
    /// An attacked thing before its attack started.
    BeforeAttack,
    /// An attacked thing during its attack.
    DuringAttack,
}

/// One `in-alarm` event raised after the models became active.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmRecord {
    /// Index of the level in [`LEVELS`].
    pub level: usize,
    /// Device class of the thing.
    pub class: DeviceClass,
    /// The behavior's metric.
    pub metric: String,
    /// Whose alarm it was.
    pub target: AlarmTarget,
}

/// Everything measured over all fleets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetBenchReport {
    /// Every injected attack.
    pub attacks: Vec<AttackResult>,
    /// Every alarm raised after the models became active.
    pub alarms: Vec<AlarmRecord>,
    /// Device-days of clean things after the models became active, per class in
    /// [`DeviceClass::ALL`] order.
    pub clean_device_days: [f64; 4],
}

/// Recall and delay of one attack kind at one level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindSummary {
    /// Attacks of the kind.
    pub attacks: usize,
    /// Attacks detected within the detection window.
    pub detected: usize,
    /// Attacks whose first alarm came after the window.
    pub late: usize,
    /// `detected / attacks`.
    pub recall: f64,
    /// Median datapoints until the first alarm, over the attacks that alarmed at all.
    pub median_delay: Option<f64>,
}

/// Whether a level met its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// The level has no goal.
    None,
    /// The goal was met.
    Met,
    /// The goal was missed.
    Missed,
}

impl Goal {
    fn from_met(met: bool) -> Self {
        if met { Goal::Met } else { Goal::Missed }
    }

    /// Returns the value printed after `goal=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::None => "none",
            Goal::Met => "met",
            Goal::Missed => "missed",
        }
    }
}

/// The figures of one level over all attack kinds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelSummary {
    /// Every attack.
    pub attacks: usize,
    /// Attacks detected within the detection window.
    pub detected: usize,
    /// Lowest recall of any attack kind.
    pub min_kind_recall: f64,
    /// Alarms after the models became active.
    pub alarms: usize,
    /// Alarms on attacked things during their attack.
    pub true_alarms: usize,
    /// `true_alarms / alarms`, or 1 without alarms.
    pub precision: f64,
    /// Alarms on things never attacked.
    pub clean_alarms: usize,
    /// Device-days of clean things after the models became active.
    pub clean_device_days: f64,
    /// `clean_alarms` per 1,000 `clean_device_days`.
    pub false_alarms_per_1000_device_days: f64,
    /// Median datapoints until the first alarm, over the attacks that alarmed at all.
    pub median_delay: Option<f64>,
    /// The level's goal.
    pub goal: Goal,
}

impl FleetBenchReport {
    /// Recall and delay of `kind` at the level with index `level` in [`LEVELS`].
    pub fn kind_summary(&self, level: usize, kind: AttackKind) -> KindSummary {
        let delays: Vec<Option<i64>> = self
            .attacks
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.delays[level])
            .collect();
        summarize_delays(&delays)
    }

    /// Recall and delay of `kind` on things of `class` at the level with index `level`.
    pub fn class_summary(&self, level: usize, kind: AttackKind, class: DeviceClass) -> KindSummary {
        let delays: Vec<Option<i64>> = self
            .attacks
            .iter()
            .filter(|a| a.kind == kind && a.class == class)
            .map(|a| a.delays[level])
            .collect();
        summarize_delays(&delays)
    }

    /// Computes the figures of the level with index `level` in [`LEVELS`].
    pub fn level_summary(&self, level: usize) -> LevelSummary {
        let delays: Vec<Option<i64>> = self.attacks.iter().map(|a| a.delays[level]).collect();
        let overall = summarize_delays(&delays);
        let min_kind_recall = AttackKind::ALL
            .into_iter()
            .map(|kind| self.kind_summary(level, kind))
            .filter(|summary| summary.attacks > 0)
            .map(|summary| summary.recall)
            .fold(1.0, f64::min);
        let alarms: Vec<&AlarmRecord> = self.alarms.iter().filter(|a| a.level == level).collect();
        let count = |target| alarms.iter().filter(|a| a.target == target).count();
        let true_alarms = count(AlarmTarget::DuringAttack);
        let clean_alarms = count(AlarmTarget::Clean);
        let clean_device_days: f64 = self.clean_device_days.iter().sum();
        let false_alarms_per_1000_device_days = per_1000(clean_alarms, clean_device_days);
        let goal = match LEVELS[level] {
            ConfidenceLevel::Low => Goal::None,
            ConfidenceLevel::Medium => Goal::from_met(min_kind_recall >= MEDIUM_RECALL_GOAL),
            ConfidenceLevel::High => {
                Goal::from_met(false_alarms_per_1000_device_days <= HIGH_FALSE_ALARMS_GOAL)
            }
        };
        LevelSummary {
            attacks: overall.attacks,
            detected: overall.detected,
            min_kind_recall,
            alarms: alarms.len(),
            true_alarms,
            precision: ratio_or_one(true_alarms, alarms.len()),
            clean_alarms,
            clean_device_days,
            false_alarms_per_1000_device_days,
            median_delay: overall.median_delay,
            goal,
        }
    }

    /// Alarms on clean things of `class` with `metric` at the level with index `level`.
    pub fn clean_alarms(&self, level: usize, class: DeviceClass, metric: &str) -> usize {
        self.alarms
            .iter()
            .filter(|a| a.level == level && a.class == class && a.metric == metric)
            .filter(|a| a.target == AlarmTarget::Clean)
            .count()
    }
}

fn summarize_delays(delays: &[Option<i64>]) -> KindSummary {
    let mut alarmed: Vec<i64> = delays.iter().flatten().copied().collect();
    alarmed.sort_unstable();
    let detected = alarmed
        .iter()
        .filter(|d| **d <= DETECTION_WINDOW_DATAPOINTS)
        .count();
    KindSummary {
        attacks: delays.len(),
        detected,
        late: alarmed.len() - detected,
        recall: ratio_or_one(detected, delays.len()),
        median_delay: median(&alarmed),
    }
}

fn median(sorted: &[i64]) -> Option<f64> {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle] as f64),
        _ => Some((sorted[middle - 1] + sorted[middle]) as f64 / 2.0),
    }
}

fn ratio_or_one(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn per_1000(count: usize, device_days: f64) -> f64 {
    if device_days > 0.0 {
        1000.0 * count as f64 / device_days
    } else {
        0.0
    }
}

/// Runs the benchmark and prints the tables and the `BENCH-FLEET` lines.
pub fn run(args: &BenchFleetArgs, out: &mut dyn Write) -> anyhow::Result<FleetBenchReport> {
    let options = FleetBenchOptions::from(args);
    let started = Instant::now();
    print_header(&options, out)?;
    let report = measure(&options)?;
    write_report(&report, out)?;
    writeln!(out, "wall time: {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(report)
}

/// Simulates every fleet, in parallel up to the number of cores, and gathers the results.
pub fn measure(options: &FleetBenchOptions) -> anyhow::Result<FleetBenchReport> {
    anyhow::ensure!(
        options.things >= ATTACK_BLOCK,
        "a fleet needs at least {ATTACK_BLOCK} things, got {}",
        options.things
    );
    anyhow::ensure!(
        options.evaluation_days >= 1,
        "at least one evaluation day is needed, got {}",
        options.evaluation_days
    );
    let periods = (TRAINING_DAYS + options.evaluation_days) * DAY_MS / PERIOD_MS;
    let progress = progress_bar(
        options.progress,
        periods as u64 * options.seeds.len() as u64,
    );
    let mut fleets = run_fleets(options, &progress)?;
    progress.finish_and_clear();

    fleets.sort_by_key(|(seed, _)| *seed);
    let mut report = FleetBenchReport::default();
    for (_, fleet) in fleets {
        report.attacks.extend(fleet.attacks);
        report.alarms.extend(fleet.alarms);
        for (total, days) in report
            .clean_device_days
            .iter_mut()
            .zip(fleet.clean_device_days)
        {
            *total += days;
        }
    }
    Ok(report)
}

/// A fleet's seed and what was measured on it.
type SeededReport = (u64, FleetBenchReport);

/// Runs the fleets on one thread per core, each thread taking the next seed when it is done.
fn run_fleets(
    options: &FleetBenchOptions,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<SeededReport>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = cores.min(options.seeds.len()).max(1);
    let next_seed = AtomicUsize::new(0);
    let run_worker = || -> anyhow::Result<Vec<SeededReport>> {
        let mut reports = Vec::new();
        while let Some(&seed) = options.seeds.get(next_seed.fetch_add(1, Ordering::Relaxed)) {
            reports.push((seed, run_fleet(seed, options, progress)?));
        }
        Ok(reports)
    };
    let per_worker: Vec<anyhow::Result<Vec<SeededReport>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(run_worker)).collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a fleet simulation thread panicked"))
            .collect()
    });
    let mut reports = Vec::new();
    for result in per_worker {
        reports.extend(result?);
    }
    Ok(reports)
}

fn progress_bar(enabled: bool, periods: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(periods);
    let style = ProgressStyle::with_template(
        "{spinner} simulating {pos}/{len} fleet periods [{bar:40}] {eta}",
    )
    .expect("the progress template is valid")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Simulates one fleet and classifies its alarms.
fn run_fleet(
    seed: u64,
    options: &FleetBenchOptions,
    progress: &ProgressBar,
) -> anyhow::Result<FleetBenchReport> {
    let mut engine = fleet_engine()?;
    let mut fleet = Fleet::new(options.things, seed);
    let end = DEMO_START + (TRAINING_DAYS + options.evaluation_days) * DAY_MS;
    let first_attack = DEMO_START + TRAINING_DAYS * DAY_MS + ATTACK_MARGIN_MS;
    schedule_attacks(&mut fleet, seed, first_attack, end - ATTACK_MARGIN_MS);

    let events = simulate(&mut engine, &mut fleet, end, progress)?;
    let evaluation_start = models_active_since(&engine)?;
    anyhow::ensure!(
        evaluation_start < first_attack,
        "the models became active at {evaluation_start} ms, after the first attack could start"
    );
    Ok(classify(seed, &fleet, &events, evaluation_start, end))
}

/// Creates an engine with default settings (AWS's 14 training days and 25,000 datapoints) and
/// one profile per confidence level, each covering every thing.
fn fleet_engine() -> anyhow::Result<Engine> {
    let mut engine = Engine::new(EngineConfig::default());
    for level in LEVELS {
        let profile = level_profile(level);
        let name = profile.name.clone();
        engine.create_security_profile(profile, DEMO_START)?;
        engine.attach_security_profile(&name, ALL_THINGS)?;
    }
    Ok(engine)
}

/// Returns the name of the profile that watches the fleet at `level`, such as `fleet-medium`.
fn profile_name(level: ConfidenceLevel) -> String {
    format!("fleet-{}", level_name(level).to_lowercase())
}

fn level_profile(level: ConfidenceLevel) -> SecurityProfile {
    let behaviors = METRICS
        .iter()
        .map(|metric| {
            let name = format!("{}-ml", metric.trim_start_matches("aws:"));
            Behavior::machine_learning(&name, metric, level)
        })
        .collect();
    SecurityProfile {
        name: profile_name(level),
        behaviors,
        ..SecurityProfile::default()
    }
}

/// Returns the name AWS uses for `level`, such as `MEDIUM`.
pub fn level_name(level: ConfidenceLevel) -> &'static str {
    match level {
        ConfidenceLevel::Low => "LOW",
        ConfidenceLevel::Medium => "MEDIUM",
        ConfidenceLevel::High => "HIGH",
    }
}

/// Attacks the first four things of every block of 16, one of each device class. The kind turns
/// with the block and the seed, so every kind meets every class, and each attack starts at a
/// random period between `earliest` and `latest`.
fn schedule_attacks(fleet: &mut Fleet, seed: u64, earliest: Timestamp, latest: Timestamp) {
    let classes = DeviceClass::ALL.len();
    // A generator of its own, so the fleet's traffic does not depend on the attack schedule.
    let mut rng = Rng::new(seed ^ 0x5eed_a77a_c4ed);
    let periods = ((latest - earliest) / PERIOD_MS).max(1) as u64;
    for index in 0..fleet.things.len() {
        if index % ATTACK_BLOCK >= classes {
            continue;
        }
        let turn = index + index / ATTACK_BLOCK + seed as usize;
        let kind = AttackKind::ALL[turn % AttackKind::ALL.len()];
        let start = earliest + (rng.next_u64() % periods) as i64 * PERIOD_MS;
        fleet.inject(index, kind, start);
    }
}

/// Feeds the fleet's broker events to the engine period by period and returns every `in-alarm`
/// event.
fn simulate(
    engine: &mut Engine,
    fleet: &mut Fleet,
    end: Timestamp,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<ViolationEvent>> {
    let is_alarm = |e: &ViolationEvent| e.violation_event_type == ViolationEventType::InAlarm;
    let mut alarms = Vec::new();
    for period_start in (DEMO_START..end).step_by(PERIOD_MS as usize) {
        let result = engine.ingest_cloud_events(&fleet.period_events(period_start));
        if let Some(rejection) = result.rejected.first() {
            anyhow::bail!(
                "the engine rejected simulated events: {}",
                rejection.message
            );
        }
        alarms.extend(result.events.into_iter().filter(is_alarm));
        progress.inc(1);
    }
    alarms.extend(engine.advance_time(end).into_iter().filter(is_alarm));
    Ok(alarms)
}

/// Returns when the last of the ML behaviors became active: its first datapoint plus the
/// training days. Fails if any behavior is not active.
fn models_active_since(engine: &Engine) -> anyhow::Result<Timestamp> {
    let mut active_since = Timestamp::MIN;
    for summary in engine.training_summaries(None)? {
        let start = summary.training_data_collection_start_date;
        let (ModelStatus::Active, Some(start)) = (summary.model_status, start) else {
            anyhow::bail!(
                "behavior `{}` of profile `{}` is {:?} at the end of the run, not ACTIVE",
                summary.behavior_name,
                summary.security_profile_name,
                summary.model_status
            );
        };
        active_since = active_since.max(start + TRAINING_DAYS * DAY_MS);
    }
    Ok(active_since)
}

/// Sorts the alarms raised from `evaluation_start` by whose they were, and finds each attack's
/// first alarm on its metric at every level.
fn classify(
    seed: u64,
    fleet: &Fleet,
    alarms: &[ViolationEvent],
    evaluation_start: Timestamp,
    end: Timestamp,
) -> FleetBenchReport {
    let index_of: HashMap<&str, usize> = fleet
        .things
        .iter()
        .enumerate()
        .map(|(index, thing)| (thing.name.as_str(), index))
        .collect();
    let profile_names = LEVELS.map(profile_name);
    let level_of = |profile: &str| profile_names.iter().position(|name| name == profile);
    let mut report = FleetBenchReport::default();
    let mut attack_slots: HashMap<usize, usize> = HashMap::new();
    for (index, thing) in fleet.things.iter().enumerate() {
        let Some((kind, start)) = thing.attack else {
            let class = class_index(thing.class);
            report.clean_device_days[class] += (end - evaluation_start) as f64 / DAY_MS as f64;
            continue;
        };
        attack_slots.insert(index, report.attacks.len());
        report.attacks.push(AttackResult {
            seed,
            thing: thing.name.clone(),
            class: thing.class,
            kind,
            start,
            delays: [None; 3],
        });
    }

    for alarm in alarms
        .iter()
        .filter(|a| a.violation_event_time >= evaluation_start)
    {
        let (Some(&index), Some(level)) = (
            index_of.get(alarm.thing_name.as_str()),
            level_of(&alarm.security_profile_name),
        ) else {
            continue;
        };
        let thing = &fleet.things[index];
        let metric = alarm.behavior.metric.clone().unwrap_or_default();
        let time = alarm.violation_event_time;
        let target = match thing.attack {
            None => AlarmTarget::Clean,
            Some((_, start)) if time > start => AlarmTarget::DuringAttack,
            Some(_) => AlarmTarget::BeforeAttack,
        };
        if let (AlarmTarget::DuringAttack, Some(&slot)) = (target, attack_slots.get(&index)) {
            record_first_alarm(&mut report.attacks[slot], level, &metric, time);
        }
        report.alarms.push(AlarmRecord {
            level,
            class: thing.class,
            metric,
            target,
        });
    }
    report
}

/// Keeps the earliest alarm on the attack's own metric as the attack's delay at `level`.
fn record_first_alarm(attack: &mut AttackResult, level: usize, metric: &str, time: Timestamp) {
    if metric != attack.kind.metric() {
        return;
    }
    // The first attacked datapoint closes one period after the start: delay 1.
    let delay = (time - attack.start + PERIOD_MS - 1) / PERIOD_MS;
    let slot = &mut attack.delays[level];
    *slot = Some(slot.map_or(delay, |earlier| earlier.min(delay)));
}

fn class_index(class: DeviceClass) -> usize {
    DeviceClass::ALL
        .iter()
        .position(|c| *c == class)
        .expect("every class is in DeviceClass::ALL")
}

fn print_header(options: &FleetBenchOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let seeds = match (options.seeds.first(), options.seeds.last()) {
        (Some(first), Some(last)) if first != last => format!("{first}-{last}"),
        (Some(first), _) => first.to_string(),
        _ => "none".to_string(),
    };
    writeln!(
        out,
        "bench-fleet: engine=native (vigil-core), seeds {seeds}, {} things per fleet in {} device \
         classes, {TRAINING_DAYS} training days + {} evaluation days",
        options.things,
        DeviceClass::ALL.len(),
        options.evaluation_days
    )?;
    writeln!(
        out,
        "one profile per confidence level, ML behaviors on {}; one thing in four attacked from a \
         random period after training",
        METRICS.join(", ")
    )?;
    writeln!(
        out,
        "goals: MEDIUM recall >= {MEDIUM_RECALL_GOAL:.2} for every attack kind within \
         {DETECTION_WINDOW_DATAPOINTS} datapoints; HIGH <= {HIGH_FALSE_ALARMS_GOAL} false alarm \
         per 1,000 clean device-days"
    )?;
    Ok(())
}

/// Writes the per-class tables, then one `BENCH-FLEET` line per level and attack kind and one
/// summary line per level.
pub fn write_report(report: &FleetBenchReport, out: &mut dyn Write) -> anyhow::Result<()> {
    print_class_recall(report, out)?;
    print_clean_alarms(report, out)?;
    writeln!(out)?;
    for (level, confidence) in LEVELS.into_iter().enumerate() {
        for kind in AttackKind::ALL {
            print_kind_line(confidence, kind, &report.kind_summary(level, kind), out)?;
        }
        print_level_line(confidence, &report.level_summary(level), out)?;
    }
    Ok(())
}

fn print_class_recall(report: &FleetBenchReport, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "\n# Attacks detected within {DETECTION_WINDOW_DATAPOINTS} datapoints, per device class"
    )?;
    write!(out, "{:<7} {:<20}", "level", "attack")?;
    for class in DeviceClass::ALL {
        write!(out, " {:>12}", class.name())?;
    }
    writeln!(out)?;
    for (level, confidence) in LEVELS.into_iter().enumerate() {
        for kind in AttackKind::ALL {
            write!(out, "{:<7} {:<20}", level_name(confidence), kind.slug())?;
            for class in DeviceClass::ALL {
                let summary = report.class_summary(level, kind, class);
                let cell = format!("{}/{}", summary.detected, summary.attacks);
                write!(out, " {cell:>12}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn print_clean_alarms(report: &FleetBenchReport, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "\n# False alarms on clean things, per device class (device-days: {})",
        report
            .clean_device_days
            .iter()
            .map(|days| format!("{days:.0}"))
            .collect::<Vec<_>>()
            .join(" / ")
    )?;
    write!(out, "{:<7} {:<32}", "level", "metric")?;
    for class in DeviceClass::ALL {
        write!(out, " {:>12}", class.name())?;
    }
    writeln!(out)?;
    for (level, confidence) in LEVELS.into_iter().enumerate() {
        for metric in METRICS {
            write!(out, "{:<7} {metric:<32}", level_name(confidence))?;
            for class in DeviceClass::ALL {
                write!(out, " {:>12}", report.clean_alarms(level, class, metric))?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn format_delay(delay: Option<f64>) -> String {
    delay.map_or("none".to_string(), |d| d.to_string())
}

fn print_kind_line(
    level: ConfidenceLevel,
    kind: AttackKind,
    summary: &KindSummary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "BENCH-FLEET level={} kind={} attacks={} detected={} late={} recall={:.3} median_delay={}",
        level_name(level),
        kind.slug(),
        summary.attacks,
        summary.detected,
        summary.late,
        summary.recall,
        format_delay(summary.median_delay)
    )?;
    Ok(())
}

fn print_level_line(
    level: ConfidenceLevel,
    summary: &LevelSummary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "BENCH-FLEET level={} engine=native attacks={} detected={} recall={:.3} \
         min_kind_recall={:.3} alarms={} true_alarms={} precision={:.3} clean_alarms={} \
         clean_device_days={:.0} false_alarms_per_1000_device_days={:.3} median_delay={} goal={}",
        level_name(level),
        summary.attacks,
        summary.detected,
        ratio_or_one(summary.detected, summary.attacks),
        summary.min_kind_recall,
        summary.alarms,
        summary.true_alarms,
        summary.precision,
        summary.clean_alarms,
        summary.clean_device_days,
        summary.false_alarms_per_1000_device_days,
        format_delay(summary.median_delay),
        summary.goal.as_str()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_count_averages_middle_pair() {
        assert_eq!(median(&[1, 2, 3, 5]), Some(2.5));
        assert_eq!(median(&[1, 2, 9]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn delays_beyond_window_count_as_late() {
        let summary = summarize_delays(&[Some(1), Some(3), Some(4), None]);
        assert_eq!(summary.attacks, 4);
        assert_eq!(summary.detected, 2);
        assert_eq!(summary.late, 1);
        assert_eq!(summary.recall, 0.5);
        assert_eq!(summary.median_delay, Some(3.0));
    }

    #[test]
    fn every_kind_meets_every_class() {
        let mut fleet = Fleet::new(64, 1);
        schedule_attacks(&mut fleet, 1, 0, DAY_MS);
        for kind in AttackKind::ALL {
            for class in DeviceClass::ALL {
                let attacked = fleet
                    .things
                    .iter()
                    .filter(|t| t.class == class && t.attack.is_some_and(|(k, _)| k == kind))
                    .count();
                assert_eq!(attacked, 1, "{} on {}", kind.slug(), class.name());
            }
        }
    }

    #[test]
    fn attacks_start_on_period_boundaries_inside_window() {
        let mut fleet = Fleet::new(240, 5);
        schedule_attacks(&mut fleet, 5, DAY_MS, 3 * DAY_MS);
        let starts: Vec<Timestamp> = fleet
            .things
            .iter()
            .filter_map(|t| t.attack)
            .map(|a| a.1)
            .collect();
        assert_eq!(starts.len(), 60);
        for start in starts {
            assert_eq!(start % PERIOD_MS, 0);
            assert!((DAY_MS..3 * DAY_MS).contains(&start), "start {start}");
        }
    }
}
