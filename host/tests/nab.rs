//! The NAB harness and scorer against the real corpus: null and perfect detectors, NAB's own
//! row counts, and a floor on Vigil's score so detection quality cannot silently drop.

use std::path::{Path, PathBuf};

use vigil_core::detector::Verdict;
use vigil_core::ml::Scale;
use vigil_core::model::ConfidenceLevel;
use vigil_host::engine::{CoreSeriesDetector, locate_core_wasm};
use vigil_host::nab::{self, CorpusFile, score};

/// Finds the NAB corpus: `VIGIL_NAB_DIR`, else `../shared/datasets/nab` beside the repository, else
/// `/work/shared/datasets/nab`.
fn corpus_root() -> PathBuf {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        std::env::var_os("VIGIL_NAB_DIR").map(PathBuf::from),
        Some(repository.join("../shared/datasets/nab")),
        Some(PathBuf::from("/work/shared/datasets/nab")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("labels/combined_windows.json").is_file())
        .expect("NAB corpus not found: set VIGIL_NAB_DIR to the folder holding data/ and labels/")
}

fn corpus() -> Vec<CorpusFile> {
    nab::load_corpus(&corpus_root()).unwrap()
}

#[test]
fn corpus_has_58_files_and_116_windows() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 58);
    assert_eq!(corpus.iter().map(|f| f.windows.len()).sum::<usize>(), 116);
    assert_eq!(
        corpus.iter().map(|f| f.values.len()).sum::<usize>(),
        365_558
    );
}

#[test]
fn detector_that_never_fires_scores_zero() {
    let corpus = corpus();
    let scores: Vec<Vec<f64>> = corpus.iter().map(|f| vec![0.0; f.values.len()]).collect();
    let row = nab::score_detector("null", &corpus, &scores, None);
    assert_eq!(row.profiles, [0.0, 0.0, 0.0]);
}

#[test]
fn perfect_detector_scores_100() {
    let corpus = corpus();
    let scores: Vec<Vec<f64>> = corpus
        .iter()
        .map(|f| {
            let mut scores = vec![0.0; f.values.len()];
            for (start, _) in &f.windows {
                scores[*start] = 1.0;
            }
            scores
        })
        .collect();
    let row = nab::score_detector("perfect", &corpus, &scores, None);
    for value in row.profiles {
        assert!(
            (value - 100.0).abs() < 1e-9,
            "perfect detector scored {value}"
        );
    }
}

/// NAB's stored results of its null detector list, per file, the rows scored outside windows
/// (TN) and inside windows (FN) after the probationary period.
#[test]
fn row_counts_match_nab_null_results() {
    let corpus = corpus();
    let stored =
        std::fs::read_to_string(corpus_root().join("results/null/null_standard_scores.csv"))
            .unwrap();
    let mut checked = 0;
    for line in stored.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let Some(file) = corpus.iter().find(|f| f.key == fields[2]) else {
            continue;
        };
        let rows = score::scoring_rows(
            &vec![0.0; file.values.len()],
            &file.windows,
            0,
            &score::PROFILES[0],
        );
        let inside = rows.iter().filter(|r| r.window.is_some()).count();
        let outside = rows.len() - inside;
        assert_eq!(outside.to_string(), fields[6], "TN of {}", file.key);
        assert_eq!(inside.to_string(), fields[8], "FN of {}", file.key);
        checked += 1;
    }
    assert_eq!(checked, 58);
}

/// Floors a little under the scores recorded in docs/nab-results.md, so a change that costs
/// detection quality fails here.
#[test]
fn vigil_stays_above_its_recorded_scores() {
    let corpus = corpus();
    let scores: Vec<Vec<f64>> = corpus.iter().map(nab::detect).collect();
    let row = nab::score_detector("vigil", &corpus, &scores, None);
    let [standard, low_fp, low_fn] = row.profiles;
    assert!(standard >= 76.4, "standard score fell to {standard:.2}");
    assert!(low_fp >= 69.5, "reward-low-FP score fell to {low_fp:.2}");
    assert!(low_fn >= 81.8, "reward-low-FN score fell to {low_fn:.2}");
    assert!(
        row.aws >= 76.2,
        "realAWSCloudwatch score fell to {:.2}",
        row.aws
    );
}

/// The label-free confidence levels against their recorded scores, each on the profile it was
/// chosen for.
#[test]
fn label_free_levels_stay_above_their_recorded_scores() {
    let corpus = corpus();
    let verdicts: Vec<Vec<Verdict>> = corpus.iter().map(nab::detect_verdicts).collect();
    let score_level = |level: ConfidenceLevel| {
        let alarms = nab::alarms(&verdicts, level);
        nab::score_detector("level", &corpus, &alarms, Some(0.5)).profiles
    };

    let [_, _, low_fn] = score_level(ConfidenceLevel::Low);
    let [standard, _, _] = score_level(ConfidenceLevel::Medium);
    let [_, low_fp, _] = score_level(ConfidenceLevel::High);

    assert!(
        low_fn >= 81.5,
        "LOW's reward-low-FN score fell to {low_fn:.2}"
    );
    assert!(
        standard >= 76.1,
        "MEDIUM's standard score fell to {standard:.2}"
    );
    assert!(
        low_fp >= 68.7,
        "HIGH's reward-low-FP score fell to {low_fp:.2}"
    );
}

#[test]
fn detection_is_deterministic() {
    let corpus = corpus();
    let file = corpus
        .iter()
        .find(|f| f.key.ends_with("ec2_cpu_utilization_24ae8d.csv"))
        .unwrap();
    assert_eq!(nab::detect(file), nab::detect(file));
}

#[test]
fn detection_in_wasmtime_matches_native() {
    let corpus = corpus();
    let file = corpus
        .iter()
        .find(|f| f.key.ends_with("machine_temperature_system_failure.csv"))
        .unwrap();
    let core = locate_core_wasm(None)
        .expect("the core component is missing: run `cargo xtask build-wasm` first");
    let mut component = CoreSeriesDetector::load(&core, Scale::Real).unwrap();
    let points: Vec<(i64, f64)> = file
        .timestamps
        .iter()
        .copied()
        .zip(file.values.iter().copied())
        .collect();
    let in_wasmtime = component.observe(&points).unwrap();

    assert_eq!(nab::detect_verdicts(file), in_wasmtime);
}
