//! `vigil nab`: runs Vigil's ML detector over a corpus in the Numenta Anomaly Benchmark layout
//! (`data/<category>/<file>.csv` and `labels/combined_windows.json`), writes per-row results in
//! NAB's results layout, and scores them with NAB's rules.

pub mod score;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use vigil_core::detector::{StreamingDetector, Verdict, report_cutoff};
use vigil_core::ml::Scale;
use vigil_core::model::{ConfidenceLevel, Timestamp};

use crate::bench_fleet::level_name;
use crate::output::parse_datetime;
use score::{PROFILES, Profile, ScoringRow};

/// Name of the detector in results paths.
pub const DETECTOR: &str = "vigil";

/// Arguments of `vigil nab`.
#[derive(clap::Args, Debug)]
pub struct NabArgs {
    /// Root of a corpus in NAB's layout: `data/<category>/<file>.csv` and
    /// `labels/combined_windows.json`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Folder for the per-row results, written as `<detector>/<category>/<detector>_<file>.csv`
    /// for four detectors: `vigil` (the anomaly scores) and `vigil_low`, `vigil_medium` and
    /// `vigil_high` (0 or 1 by the confidence level's fixed cut-off on the anomaly score).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the results table as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

/// Arguments of `vigil nab-score`.
#[derive(clap::Args, Debug)]
pub struct NabScoreArgs {
    /// Root of the corpus in NAB's layout.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Results folder holding `<detector>/<category>/<detector>_<file>.csv`.
    #[arg(long, value_name = "DIR")]
    pub results: PathBuf,
    /// Name of a detector folder under --results to score with the best threshold per profile,
    /// as NAB's optimiser picks it; repeat the option for several.
    #[arg(long = "detector", value_name = "NAME", required = true)]
    pub detectors: Vec<String>,
}

/// One labelled series.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// `category/file.csv`, the key in the labels file.
    pub key: String,
    /// Timestamps as written in the file.
    pub raw_timestamps: Vec<String>,
    /// Parsed timestamps.
    pub timestamps: Vec<Timestamp>,
    /// Values.
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges.
    pub windows: Vec<(usize, usize)>,
}

impl CorpusFile {
    fn category(&self) -> &str {
        self.key.split('/').next().unwrap_or_default()
    }

    fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }

    fn label(&self, row: usize) -> u8 {
        u8::from(self.windows.iter().any(|(a, b)| row >= *a && row <= *b))
    }
}

/// Loads every CSV under `root/data` with its windows from `root/labels/combined_windows.json`.
pub fn load_corpus(root: &Path) -> anyhow::Result<Vec<CorpusFile>> {
    let labels_path = root.join("labels/combined_windows.json");
    let labels_text = fs::read_to_string(&labels_path).with_context(|| {
        format!(
            "failed to read `{}`; --data must be the root of a NAB-style corpus",
            labels_path.display()
        )
    })?;
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&labels_text)
        .with_context(|| {
            format!(
                "failed to parse `{}`: expected {{\"category/file.csv\": [[start, end], ...]}}",
                labels_path.display()
            )
        })?;

    let data = root.join("data");
    let mut files = Vec::new();
    for category in sorted_entries(&data)? {
        if !category.is_dir() {
            warn_if_misplaced(&category);
            continue;
        }
        for path in sorted_entries(&category)? {
            if path.is_dir() {
                warn_if_misplaced(&path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("csv") {
                continue;
            }
            let key = format!(
                "{}/{}",
                category.file_name().unwrap_or_default().to_string_lossy(),
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            files.push(load_file(&path, key, &labels)?);
        }
    }
    if files.is_empty() {
        bail!(
            "no CSV files under `{}`; expected data/<category>/<file>.csv",
            data.display()
        );
    }
    warn_about_unmatched_labels(&labels, &files, &labels_path);
    Ok(files)
}

/// Logs label keys that name no loaded file and files that have no labels entry, because
/// either usually means a misspelt key and silently changes the scores.
fn warn_about_unmatched_labels(
    labels: &BTreeMap<String, Vec<[String; 2]>>,
    files: &[CorpusFile],
    labels_path: &Path,
) {
    for key in labels.keys() {
        if !files.iter().any(|file| &file.key == key) {
            tracing::warn!(
                "`{}` has windows for `{key}`, which matches no file under data/",
                labels_path.display()
            );
        }
    }
    for file in files {
        if !labels.contains_key(&file.key) {
            tracing::warn!(
                "`{}` has no entry for `{}`; the file is scored as having no anomalies",
                labels_path.display(),
                file.key
            );
        }
    }
}

/// Warns about a CSV file, or a folder, where the layout `data/<category>/<file>.csv` has
/// no place for it: it is not read.
fn warn_if_misplaced(path: &Path) {
    let csv = path.extension().and_then(|e| e.to_str()) == Some("csv");
    if csv || path.is_dir() {
        tracing::warn!(
            "`{}` is not read: the corpus layout is data/<category>/<file>.csv",
            path.display()
        );
    }
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("failed to read folder `{}`", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

fn load_file(
    path: &Path,
    key: String,
    labels: &BTreeMap<String, Vec<[String; 2]>>,
) -> anyhow::Result<CorpusFile> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read `{}`", path.display()))?;
    let mut file = CorpusFile {
        key,
        raw_timestamps: Vec::new(),
        timestamps: Vec::new(),
        values: Vec::new(),
        windows: Vec::new(),
    };
    check_header(path, text.lines().next().unwrap_or_default())?;
    let mut non_finite = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once(',')
            .and_then(|(t, v)| Some((t, parse_datetime(t)?, v.trim().parse::<f64>().ok()?)));
        let Some((raw, timestamp, value)) = parsed else {
            bail!(
                "{}:{}: expected `timestamp,value`, got `{line}`",
                path.display(),
                number + 1
            );
        };
        if file.timestamps.last().is_some_and(|&last| timestamp < last) {
            // NAB's own machine_temperature_system_failure.csv steps back an hour once, so this
            // is not an error: rows are scored in file order, as NAB does.
            tracing::warn!(
                "{}:{}: timestamp `{raw}` is earlier than the row before it; rows are still \
                 scored in file order and windows matched by time, so check that the step back \
                 is in the data on purpose (NAB v1.1's own file has one such step)",
                path.display(),
                number + 1
            );
        }
        if !value.is_finite() {
            non_finite.push(number + 1);
        }
        file.raw_timestamps.push(raw.to_string());
        file.timestamps.push(timestamp);
        file.values.push(value);
    }
    warn_about_unscored_rows(path, file.values.len(), &non_finite);
    let windows = labels.get(&file.key).map_or(&[][..], Vec::as_slice);
    file.windows = window_rows(&file.key, &file.timestamps, windows)?;
    Ok(file)
}

/// Fails unless `first_line` is a `timestamp,value` header, so a file without one does not lose
/// its first row.
fn check_header(path: &Path, first_line: &str) -> anyhow::Result<()> {
    let columns: Vec<String> = first_line
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(|column| column.trim().to_lowercase())
        .collect();
    if columns != ["timestamp", "value"] {
        bail!(
            "{}:1: expected the header `timestamp,value`, got `{first_line}`; add it as the \
             first line",
            path.display()
        );
    }
    Ok(())
}

/// Warns about a file without rows and about values that are not finite numbers, which the
/// detector skips and scores 0.
fn warn_about_unscored_rows(path: &Path, rows: usize, non_finite_lines: &[usize]) {
    if rows == 0 {
        tracing::warn!(
            "`{}` has no rows; it adds nothing to the scores",
            path.display()
        );
    }
    if let Some(first) = non_finite_lines.first() {
        tracing::warn!(
            "{}:{first}: value is not a finite number; the detector skips it and scores it 0 \
             ({} such rows in this file)",
            path.display(),
            non_finite_lines.len()
        );
    }
}

/// Maps a file's label windows to inclusive row ranges, in time order. Windows that hold no row
/// are left out. The scorer walks windows in order and lets each row belong to one window, so
/// a window that ends before it starts, or overlaps another, is an error.
fn window_rows(
    key: &str,
    timestamps: &[Timestamp],
    windows: &[[String; 2]],
) -> anyhow::Result<Vec<(usize, usize)>> {
    let mut rows = Vec::new();
    for [start_text, end_text] in windows {
        let (Some(start), Some(end)) = (parse_datetime(start_text), parse_datetime(end_text))
        else {
            bail!(
                "invalid window [{start_text}, {end_text}] for `{key}` in the labels file: \
                 expected two timestamps such as `2014-02-19 10:50:00.000000`"
            );
        };
        if start > end {
            bail!(
                "invalid window [{start_text}, {end_text}] for `{key}` in the labels file: \
                 it ends before it starts"
            );
        }
        // Rows are matched one by one, so a step back in the timestamps loses no window.
        let inside = |t: &Timestamp| (start..=end).contains(t);
        if let (Some(first), Some(last)) = (
            timestamps.iter().position(inside),
            timestamps.iter().rposition(inside),
        ) {
            rows.push((first, last));
        } else {
            tracing::warn!(
                "window [{start_text}, {end_text}] for `{key}` contains no row of the file; \
                 it is ignored"
            );
        }
    }
    rows.sort_unstable();
    if let Some(pair) = rows.windows(2).find(|pair| pair[1].0 <= pair[0].1) {
        bail!(
            "windows for `{key}` in the labels file overlap: rows {}..={} and {}..={}",
            pair[0].0,
            pair[0].1,
            pair[1].0,
            pair[1].1
        );
    }
    Ok(rows)
}

/// Anomaly scores of one series, computed causally: each row is scored before it is learned.
pub fn detect(file: &CorpusFile) -> Vec<f64> {
    detect_verdicts(file)
        .iter()
        .map(|verdict| verdict.anomaly_score)
        .collect()
}

/// Runs the streaming detector over one series and returns its verdict on every row.
pub fn detect_verdicts(file: &CorpusFile) -> Vec<Verdict> {
    let mut detector = StreamingDetector::new(Scale::Real);
    file.timestamps
        .iter()
        .zip(&file.values)
        .map(|(&timestamp, &value)| detector.observe(timestamp, value))
        .collect()
}

/// One row of the results table.
pub struct TableRow {
    /// Detector label.
    pub detector: String,
    /// Normalised standard, low-FP and low-FN scores.
    pub profiles: [f64; 3],
    /// Normalised standard score on realAWSCloudwatch.
    pub aws: f64,
    /// Normalised standard score on realKnownCause.
    pub known_cause: f64,
}

/// Published NAB scores for comparison: standard, low FP, low FN, then the realAWSCloudwatch and
/// realKnownCause standard subtotals (NaN where unpublished). Corpus scores are from the NAB
/// scoreboard (numenta/NAB README and results/final_results.json); subtotals are computed from
/// NAB's stored per-file score files.
pub const PUBLISHED: [(&str, [f64; 5]); 4] = [
    ("ARTime (published)", [74.9, 65.2, 80.4, 69.5, 63.9]),
    ("Numenta HTM (published)", [70.1, 63.1, 74.3, 73.4, 55.5]),
    ("CAD OSE (published)", [69.9, 67.0, 73.2, 71.5, 41.8]),
    (
        "Random Cut Forest (published)",
        [51.7, 38.4, 59.7, 57.6, 43.1],
    ),
];

/// Runs the harness: detect, write results, score, print the table.
pub fn run(args: &NabArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let corpus = load_corpus(&args.data)?;
    let verdicts: Vec<Vec<Verdict>> = corpus.iter().map(detect_verdicts).collect();
    let scores: Vec<Vec<f64>> = verdicts
        .iter()
        .map(|rows| rows.iter().map(|v| v.anomaly_score).collect())
        .collect();
    write_results(&args.out, DETECTOR, &corpus, &scores)?;

    let mut table = vec![score_detector(
        "vigil (oracle threshold)",
        &corpus,
        &scores,
        None,
    )];
    table.extend(half_rows("oracle", &corpus, &scores, None));
    let mut summarised = vec![(DETECTOR.to_string(), 0)];
    for level in LEVELS {
        let (name, row, binary) = level_row(level, &corpus, &verdicts, &args.out)?;
        summarised.push((name, table.len()));
        table.push(row);
        let [_, held_out] = half_rows(&level_label(level), &corpus, &binary, Some(0.5));
        table.push(held_out);
    }
    let timing = format!(
        "{}, detection, results and scoring in {:.1} s",
        file_count(corpus.len()),
        started.elapsed().as_secs_f64()
    );
    print_table(&table, &summarised, &timing, out)?;
    if let Some(path) = &args.markdown {
        fs::write(path, markdown_table(&table))
            .with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok(())
}

/// The confidence levels, from the most sensitive.
const LEVELS: [ConfidenceLevel; 3] = [
    ConfidenceLevel::Low,
    ConfidenceLevel::Medium,
    ConfidenceLevel::High,
];

/// Scores the two halves of the corpus separately: the files at even positions in sorted order,
/// on which the detector's constants were chosen, and the files at odd positions, which only check
/// them. `rule` names how detections are decided; without a `threshold`, each half gets its own
/// best one.
fn half_rows(
    rule: &str,
    corpus: &[CorpusFile],
    scores: &[Vec<f64>],
    threshold: Option<f64>,
) -> [TableRow; 2] {
    let half = |parity: usize, name: &str| {
        let files: Vec<CorpusFile> = corpus.iter().skip(parity).step_by(2).cloned().collect();
        let half_scores: Vec<Vec<f64>> = scores.iter().skip(parity).step_by(2).cloned().collect();
        let label = format!("{DETECTOR}, {name} ({}, {rule})", file_count(files.len()));
        score_detector(&label, &files, &half_scores, threshold)
    };
    [half(0, "tuning half"), half(1, "held-out half")]
}

/// Counts files in words: `1 file`, `58 files`.
fn file_count(count: usize) -> String {
    if count == 1 {
        "1 file".to_string()
    } else {
        format!("{count} files")
    }
}

/// Labels the rows of `level` with the level and its cut-off.
fn level_label(level: ConfidenceLevel) -> String {
    format!("{} score > {}", level_name(level), report_cutoff(level))
}

/// Marks each datapoint 1 if its verdict alarms at `level` and 0 otherwise.
pub fn alarms(verdicts: &[Vec<Verdict>], level: ConfidenceLevel) -> Vec<Vec<f64>> {
    verdicts
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|v| f64::from(u8::from(v.alarms_at(level))))
                .collect()
        })
        .collect()
}

/// Scores the reports whose anomaly score exceeds the fixed cut-off of `level`, which needs no
/// labels, and writes them as detector `vigil_<level>`. Returns that name, the row and the 0 or 1
/// per datapoint.
fn level_row(
    level: ConfidenceLevel,
    corpus: &[CorpusFile],
    verdicts: &[Vec<Verdict>],
    out_dir: &Path,
) -> anyhow::Result<(String, TableRow, Vec<Vec<f64>>)> {
    let name = format!("{DETECTOR}_{}", level_name(level).to_lowercase());
    let binary = alarms(verdicts, level);
    write_results(out_dir, &name, corpus, &binary)?;
    let label = format!("{DETECTOR}, all files ({})", level_label(level));
    Ok((
        name,
        score_detector(&label, corpus, &binary, Some(0.5)),
        binary,
    ))
}

/// Scores detectors' stored results with the best corpus-wide threshold, like NAB does.
pub fn run_score(args: &NabScoreArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let corpus = load_corpus(&args.data)?;
    let mut table = Vec::new();
    for detector in &args.detectors {
        let scores = read_results(&args.results, detector, &corpus)?;
        table.push(score_detector(detector, &corpus, &scores, None));
    }
    let timing = format!(
        "{}, scoring in {:.1} s",
        file_count(corpus.len()),
        started.elapsed().as_secs_f64()
    );
    let summarised: Vec<(String, usize)> = args.detectors.iter().cloned().zip(0..).collect();
    print_table(&table, &summarised, &timing, out)
}

/// Lists the folders under `dir`, the detectors whose results it may hold.
fn detector_folders(dir: &Path) -> String {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return format!("cannot list `{}`: {error}", dir.display()),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        format!("`{}` holds no folders", dir.display())
    } else {
        format!("found: `{}`", names.join("`, `"))
    }
}

/// Reads the `anomaly_score` column of every file's results.
pub fn read_results(
    dir: &Path,
    detector: &str,
    corpus: &[CorpusFile],
) -> anyhow::Result<Vec<Vec<f64>>> {
    if detector.is_empty() || detector.contains(['/', '\\']) {
        bail!("invalid detector name `{detector}`: expected the name of a folder under --results");
    }
    let folder = dir.join(detector);
    if !folder.is_dir() {
        bail!(
            "no results for detector `{detector}`: `{}` is not a folder; pass the name of a folder \
             under --results ({})",
            folder.display(),
            detector_folders(dir)
        );
    }
    corpus
        .iter()
        .map(|file| {
            let path = dir
                .join(detector)
                .join(file.category())
                .join(format!("{detector}_{}", file.file_name()));
            let text = fs::read_to_string(&path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            let header = text.lines().next().unwrap_or_default();
            let column = header
                .split(',')
                .position(|c| c.trim() == "anomaly_score")
                .with_context(|| {
                    format!(
                        "`{}` has no `anomaly_score` column in its header `{header}`",
                        path.display()
                    )
                })?;
            let scores: Vec<f64> = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(row, line)| {
                    let field = line.split(',').nth(column).unwrap_or_default();
                    field
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|score| !score.is_nan())
                        .with_context(|| {
                            format!(
                                "{}:{}: invalid anomaly score `{field}`, expected a number",
                                path.display(),
                                row + 2
                            )
                        })
                })
                .collect::<anyhow::Result<_>>()?;
            if scores.len() != file.values.len() {
                bail!(
                    "`{}` has {} rows but the corpus file has {}",
                    path.display(),
                    scores.len(),
                    file.values.len()
                );
            }
            Ok(scores)
        })
        .collect()
}

/// Writes `dir/<detector>/<category>/<detector>_<file>.csv` for every file.
pub fn write_results(
    dir: &Path,
    detector: &str,
    corpus: &[CorpusFile],
    scores: &[Vec<f64>],
) -> anyhow::Result<()> {
    for (file, scores) in corpus.iter().zip(scores) {
        let folder = dir.join(detector).join(file.category());
        fs::create_dir_all(&folder)
            .with_context(|| format!("failed to create `{}`", folder.display()))?;
        let path = folder.join(format!("{detector}_{}", file.file_name()));
        let mut text = String::from("timestamp,value,anomaly_score,label\n");
        for (row, score) in scores.iter().enumerate() {
            let line = format!(
                "{},{},{score},{}\n",
                file.raw_timestamps[row],
                file.values[row],
                file.label(row)
            );
            text.push_str(&line);
        }
        fs::write(&path, text).with_context(|| format!("failed to write `{}`", path.display()))?;
    }
    Ok(())
}

/// Scores a detector on the corpus: with the best corpus-wide threshold per profile, or at a
/// fixed threshold.
pub fn score_detector(
    label: &str,
    corpus: &[CorpusFile],
    scores: &[Vec<f64>],
    fixed: Option<f64>,
) -> TableRow {
    let mut profiles = [0.0; 3];
    let mut subtotals = [0.0; 2];
    for (index, profile) in PROFILES.iter().enumerate() {
        let per_file = rows_per_file(corpus, scores, profile);
        let all_rows: Vec<ScoringRow> = per_file
            .iter()
            .flat_map(|(rows, _)| rows.iter().copied())
            .collect();
        let window_count: usize = corpus.iter().map(|f| f.windows.len()).sum();
        let threshold =
            fixed.unwrap_or_else(|| score::best_threshold(&all_rows, window_count, profile).0);
        let file_scores: Vec<f64> = per_file
            .iter()
            .map(|(rows, windows)| score::score_at(rows, windows, threshold, profile).score)
            .collect();
        profiles[index] = score::normalize(file_scores.iter().sum(), window_count, profile);
        if index == 0 {
            subtotals = ["realAWSCloudwatch", "realKnownCause"]
                .map(|c| category_score(corpus, &file_scores, c, profile));
        }
    }
    TableRow {
        detector: label.to_string(),
        profiles,
        aws: subtotals[0],
        known_cause: subtotals[1],
    }
}

fn rows_per_file(
    corpus: &[CorpusFile],
    scores: &[Vec<f64>],
    profile: &Profile,
) -> Vec<(Vec<ScoringRow>, Vec<usize>)> {
    let mut first_window = 0;
    corpus
        .iter()
        .zip(scores)
        .map(|(file, scores)| {
            let rows = score::scoring_rows(scores, &file.windows, first_window, profile);
            let windows = (first_window..first_window + file.windows.len()).collect();
            first_window += file.windows.len();
            (rows, windows)
        })
        .collect()
}

fn category_score(
    corpus: &[CorpusFile],
    file_scores: &[f64],
    category: &str,
    profile: &Profile,
) -> f64 {
    let (raw, windows) = corpus
        .iter()
        .zip(file_scores)
        .filter(|(file, _)| file.category() == category)
        .fold((0.0, 0), |(raw, windows), (file, score)| {
            (raw + score, windows + file.windows.len())
        });
    if windows == 0 {
        f64::NAN
    } else {
        score::normalize(raw, windows, profile)
    }
}

/// Prints the table; `summarised` pairs the name of each detector that also gets a
/// machine-readable `NAB <name> ...` line with the index of its table row.
fn print_table(
    table: &[TableRow],
    summarised: &[(String, usize)],
    timing: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let width = table
        .iter()
        .map(|row| row.detector.len())
        .chain(PUBLISHED.iter().map(|(name, _)| name.len()))
        .max()
        .unwrap_or_default();
    writeln!(out, "NAB: {timing}")?;
    writeln!(
        out,
        "{:<width$} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "detector", "standard", "low FP", "low FN", "AWS std", "KnownCause"
    )?;
    for row in table {
        let [standard, low_fp, low_fn] = row.profiles.map(score_text);
        writeln!(
            out,
            "{:<width$} {standard:>9} {low_fp:>9} {low_fn:>9} {:>9} {:>11}",
            row.detector,
            score_text(row.aws),
            score_text(row.known_cause)
        )?;
    }
    for (name, [standard, low_fp, low_fn, aws, known_cause]) in PUBLISHED {
        writeln!(
            out,
            "{name:<width$} {standard:>9.1} {low_fp:>9.1} {low_fn:>9.1} {aws:>9.1} {known_cause:>11.1}"
        )?;
    }
    for (name, index) in summarised {
        let row = &table[*index];
        writeln!(
            out,
            "NAB {name} standard={} low_fp={} low_fn={} aws_standard={} known_cause_standard={}",
            score_text(row.profiles[0]),
            score_text(row.profiles[1]),
            score_text(row.profiles[2]),
            score_text(row.aws),
            score_text(row.known_cause)
        )?;
    }
    Ok(())
}

/// Formats a normalised score with one decimal, or `n/a` when the files scored hold no labelled
/// window, because null and perfect detectors then score the same.
fn score_text(score: f64) -> String {
    if score.is_nan() {
        "n/a".to_string()
    } else {
        format!("{score:.1}")
    }
}

fn markdown_table(table: &[TableRow]) -> String {
    let mut text = String::from(
        "# NAB results\n\nGenerated by `vigil nab --data DIR --out DIR --markdown FILE`, where the \
         --data folder holds a corpus in NAB's layout (`data/` and `labels/`). Scores are normalised so \
         the null detector scores 0 and a perfect one 100, or n/a without labelled windows. The oracle \
         rows use the best corpus-wide threshold per profile, as NAB's scoreboard does. The tuning and \
         held-out halves are the files at even and at odd positions in sorted order, each scored with \
         its own best threshold. On NAB v1.1, the detector's constants were chosen on the tuning half, \
         and the held-out half only checks them. The LOW, MEDIUM and HIGH rows need no labels: a \
         report counts as a detection when its anomaly score exceeds the fixed cut-off of the \
         confidence level, chosen once on the tuning half of NAB v1.1. Each level is shown on all \
         files and on the held-out half. The published corpus scores are from NAB's `results/final_results.json`; their \
         realAWSCloudwatch and realKnownCause subtotals are computed from NAB's per-file score files. \
         How the detector works is in [ml-detect.md](ml-detect.md).\n\n",
    );
    text.push_str("| detector | standard | reward low FP | reward low FN | realAWSCloudwatch (standard) | realKnownCause (standard) |\n|---|---|---|---|---|---|\n",
    );
    for row in table {
        let [a, b, c] = row.profiles.map(score_text);
        text.push_str(&format!(
            "| {} | {a} | {b} | {c} | {} | {} |\n",
            row.detector,
            score_text(row.aws),
            score_text(row.known_cause)
        ));
    }
    for (name, [a, b, c, d, e]) in PUBLISHED {
        text.push_str(&format!(
            "| {name} | {a:.1} | {b:.1} | {c:.1} | {d:.1} | {e:.1} |\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps of rows 0..10, one per minute from 2014-01-01 00:00.
    fn minutes() -> Vec<Timestamp> {
        (0..10)
            .map(|minute| parse_datetime(&format!("2014-01-01 00:{minute:02}:00")).unwrap())
            .collect()
    }

    fn window(start: u32, end: u32) -> [String; 2] {
        [start, end].map(|minute| format!("2014-01-01 00:{minute:02}:00"))
    }

    #[test]
    fn windows_are_sorted_by_time() {
        let windows = [window(6, 7), window(1, 2)];
        let rows = window_rows("a/b.csv", &minutes(), &windows).unwrap();
        assert_eq!(rows, vec![(1, 2), (6, 7)]);
    }

    #[test]
    fn window_outside_the_data_is_left_out() {
        let windows = [window(30, 40), window(8, 20)];
        let rows = window_rows("a/b.csv", &minutes(), &windows).unwrap();
        assert_eq!(rows, vec![(8, 9)]);
    }

    #[test]
    fn window_rows_survive_time_step_back() {
        // Rows 0..10 run 00:00 to 00:09; rows 10..14 step back to 00:02 to 00:05.
        let mut timestamps = minutes();
        timestamps.extend(minutes()[2..6].iter().copied());
        let rows = window_rows("a/b.csv", &timestamps, &[window(4, 5)]).unwrap();
        assert_eq!(rows, vec![(4, 13)]);
    }

    #[test]
    fn check_header_rejects_missing_header() {
        let error = check_header(Path::new("a/b.csv"), "2014-01-01 00:00:00,1.5").unwrap_err();
        assert_eq!(
            error.to_string(),
            "a/b.csv:1: expected the header `timestamp,value`, got `2014-01-01 00:00:00,1.5`; \
             add it as the first line"
        );
        assert!(check_header(Path::new("a/b.csv"), "\u{feff}timestamp, Value").is_ok());
    }

    #[test]
    fn reversed_window_is_rejected() {
        let error = window_rows("a/b.csv", &minutes(), &[window(7, 6)]).unwrap_err();
        assert!(
            error.to_string().contains("ends before it starts"),
            "{error}"
        );
    }

    #[test]
    fn overlapping_windows_are_rejected() {
        let windows = [window(1, 5), window(4, 8)];
        let error = window_rows("a/b.csv", &minutes(), &windows).unwrap_err();
        assert!(error.to_string().contains("overlap"), "{error}");
    }

    #[test]
    fn duplicate_windows_are_rejected() {
        let windows = [window(1, 5), window(1, 5)];
        let error = window_rows("a/b.csv", &minutes(), &windows).unwrap_err();
        assert!(error.to_string().contains("overlap"), "{error}");
    }

    #[test]
    fn reading_an_unknown_detector_names_the_folders_found() {
        let results =
            std::env::temp_dir().join(format!("vigil-nab-results-{}", std::process::id()));
        fs::create_dir_all(results.join("vigil_high")).unwrap();
        fs::create_dir_all(results.join("vigil")).unwrap();

        let error = read_results(&results, "vigl", &[]).unwrap_err().to_string();
        fs::remove_dir_all(&results).unwrap();

        assert!(
            error.starts_with("no results for detector `vigl`"),
            "{error}"
        );
        assert!(error.ends_with("(found: `vigil`, `vigil_high`)"), "{error}");
    }
}
