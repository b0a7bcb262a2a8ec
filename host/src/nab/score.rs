//! NAB's scoring rules: anomaly windows, the probationary period, the scaled sigmoid, the three
//! cost profiles, the corpus-wide threshold sweep and normalisation against the null and perfect
//! detectors.
//!
//! This follows the scorer of the Numenta Anomaly Benchmark (`nab/sweeper.py` and
//! `nab/runner.py` in github.com/numenta/NAB, v1.1):
//! - the first `min(floor(0.15 · rows), 750)` rows of a file are probationary and not scored;
//! - a detection inside a window scores `tp · σ(y) / σ(-1)`, where y runs from -1 at the window's
//!   left edge to 0 at its right edge. Only the best (earliest) detection of a window counts;
//! - a detection outside every window scores `fp · σ(y)`, where y is the distance past the
//!   previous window's right edge in units of that window's width minus one, or `-fp` before
//!   the first window;
//! - a window without a detection scores `-fn`;
//! - `σ(y) = 2 / (1 + e^(5y)) - 1`, and -1 for y > 3.

/// A NAB cost profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// Name as in NAB's `config/profiles.json`.
    pub name: &'static str,
    /// Weight of a true positive.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a missed window.
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// Fraction of a file that is probationary.
const PROBATION_FRACTION: f64 = 0.15;
/// Upper bound of the probationary period, in rows: 15 % of 5000.
const MAX_PROBATION_ROWS: f64 = 750.0;

/// Rows at the start of a file of `rows` rows that are not scored.
pub fn probation_rows(rows: usize) -> usize {
    (PROBATION_FRACTION * rows as f64)
        .floor()
        .min(MAX_PROBATION_ROWS) as usize
}

/// NAB's scaled sigmoid.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// One row prepared for scoring.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoringRow {
    /// The detector's anomaly score.
    pub anomaly_score: f64,
    /// Value of a detection at this row under the profile.
    pub weight: f64,
    /// Index of the window the row lies in, counted over the whole corpus.
    pub window: Option<usize>,
}

/// A file's windows as inclusive row index ranges, in order.
pub type WindowRows = [(usize, usize)];

/// Prepares the scored rows of one file, leaving out the probationary rows. `first_window` is
/// the corpus-wide index of the file's first window.
pub fn scoring_rows(
    anomaly_scores: &[f64],
    windows: &WindowRows,
    first_window: usize,
    profile: &Profile,
) -> Vec<ScoringRow> {
    let probation = probation_rows(anomaly_scores.len());
    let mut rows = Vec::with_capacity(anomaly_scores.len());
    let mut previous: Option<(usize, f64)> = None;
    let mut next_window = 0;
    for (index, &anomaly_score) in anomaly_scores.iter().enumerate() {
        let current = windows
            .get(next_window)
            .filter(|(start, end)| index >= *start && index <= *end);
        let (weight, window) = match current {
            Some(&(start, end)) => {
                let width = (end - start + 1) as f64;
                let position = -((end - index + 1) as f64) / width;
                let weight = scaled_sigmoid(position) * profile.tp / scaled_sigmoid(-1.0);
                let window = first_window + next_window;
                // Leave the window after its right edge, as NAB does.
                if index == end {
                    previous = Some((end, width));
                    next_window += 1;
                }
                (weight, Some(window))
            }
            None => (false_positive_weight(previous, index) * profile.fp, None),
        };
        if index >= probation {
            rows.push(ScoringRow {
                anomaly_score,
                weight,
                window,
            });
        }
    }
    rows
}

fn false_positive_weight(previous: Option<(usize, f64)>, index: usize) -> f64 {
    let Some((right_edge, width)) = previous else {
        return -1.0;
    };
    let position = index.abs_diff(right_edge) as f64 / (width - 1.0);
    scaled_sigmoid(position)
}

/// Counts of one scoring.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Raw score.
    pub score: f64,
    /// Detections inside windows.
    pub true_positives: usize,
    /// Detections outside windows.
    pub false_positives: usize,
    /// Windows without a detection.
    pub missed_windows: usize,
}

/// Scores rows with a fixed threshold: a row with `anomaly_score >= threshold` is a detection.
/// `windows` is the number of windows the rows belong to.
pub fn score_at(
    rows: &[ScoringRow],
    windows: &[usize],
    threshold: f64,
    profile: &Profile,
) -> Outcome {
    let mut best: std::collections::BTreeMap<usize, f64> =
        windows.iter().map(|w| (*w, -profile.fn_)).collect();
    let mut outcome = Outcome::default();
    for row in rows.iter().filter(|r| r.anomaly_score >= threshold) {
        match row.window {
            Some(window) => {
                outcome.true_positives += 1;
                let entry = best.entry(window).or_insert(-profile.fn_);
                *entry = entry.max(row.weight);
            }
            None => {
                outcome.false_positives += 1;
                outcome.score += row.weight;
            }
        }
    }
    outcome.missed_windows = best.values().filter(|v| **v == -profile.fn_).count();
    outcome.score += best.values().sum::<f64>();
    outcome
}

/// Sweeps every distinct anomaly score as the threshold over all rows of a corpus and returns
/// the threshold with the best raw score, and that score. Ties keep the higher threshold.
pub fn best_threshold(rows: &[ScoringRow], window_count: usize, profile: &Profile) -> (f64, f64) {
    // A NaN score passes no threshold, so its row is never a detection.
    let mut sorted: Vec<&ScoringRow> = rows
        .iter()
        .filter(|row| !row.anomaly_score.is_nan())
        .collect();
    sorted.sort_by(|a, b| b.anomaly_score.total_cmp(&a.anomaly_score));

    let mut best_in_window = vec![-profile.fn_; window_count];
    let mut score = -profile.fn_ * window_count as f64;
    let mut best = (f64::INFINITY, score);
    let mut index = 0;
    while index < sorted.len() {
        // Every row with this anomaly score becomes a detection at once.
        let threshold = sorted[index].anomaly_score;
        while index < sorted.len() && sorted[index].anomaly_score == threshold {
            let row = sorted[index];
            match row.window {
                Some(window) if row.weight > best_in_window[window] => {
                    score += row.weight - best_in_window[window];
                    best_in_window[window] = row.weight;
                }
                Some(_) => {}
                None => score += row.weight,
            }
            index += 1;
        }
        if score > best.1 {
            best = (threshold, score);
        }
    }
    best
}

/// Normalises a raw score so the null detector scores 0 and the perfect one 100. Without
/// windows both score the same and the result is NaN.
pub fn normalize(raw: f64, window_count: usize, profile: &Profile) -> f64 {
    let perfect = profile.tp * window_count as f64;
    let null = -profile.fn_ * window_count as f64;
    if perfect == null {
        return f64::NAN;
    }
    100.0 * (raw - null) / (perfect - null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: Profile = PROFILES[0];

    #[test]
    fn probation_is_fifteen_percent_capped_at_750_rows() {
        assert_eq!(probation_rows(100), 15);
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(10_000), 750);
    }

    #[test]
    fn sigmoid_matches_nab_reference_values() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614).abs() < 1e-6);
        assert!((scaled_sigmoid(-0.5) - 0.848_284).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    /// 100 rows (15 probationary), one window over rows 40..=49.
    fn one_window_rows(scores: &[(usize, f64)]) -> Vec<ScoringRow> {
        let mut anomaly_scores = vec![0.0; 100];
        for &(index, score) in scores {
            anomaly_scores[index] = score;
        }
        scoring_rows(&anomaly_scores, &[(40, 49)], 0, &STANDARD)
    }

    #[test]
    fn detection_at_left_edge_scores_one() {
        let rows = one_window_rows(&[(40, 1.0)]);
        let outcome = score_at(&rows, &[0], 0.5, &STANDARD);
        assert!((outcome.score - 1.0).abs() < 1e-12);
        assert_eq!(outcome.true_positives, 1);
        assert_eq!(outcome.missed_windows, 0);
    }

    #[test]
    fn only_the_earliest_detection_in_a_window_counts() {
        let rows = one_window_rows(&[(45, 1.0), (46, 1.0)]);
        let outcome = score_at(&rows, &[0], 0.5, &STANDARD);
        // Row 45 sits at y = -(49 - 45 + 1) / 10 = -0.5.
        let expected = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0);
        assert!((outcome.score - expected).abs() < 1e-12);
        assert_eq!(outcome.true_positives, 2);
    }

    #[test]
    fn early_false_positive_costs_full_weight() {
        let rows = one_window_rows(&[(20, 1.0), (40, 1.0)]);
        let outcome = score_at(&rows, &[0], 0.5, &STANDARD);
        assert!((outcome.score - (1.0 - 0.11)).abs() < 1e-12);
        assert_eq!(outcome.false_positives, 1);
    }

    #[test]
    fn false_positive_right_after_a_window_costs_little() {
        let rows = one_window_rows(&[(50, 1.0)]);
        let outcome = score_at(&rows, &[0], 0.5, &STANDARD);
        // Missed window (-1) plus a detection 1 row past the right edge: y = 1 / 9.
        let expected = -1.0 + 0.11 * scaled_sigmoid(1.0 / 9.0);
        assert!((outcome.score - expected).abs() < 1e-12);
    }

    #[test]
    fn probationary_rows_are_ignored() {
        let rows = one_window_rows(&[(5, 1.0)]);
        assert_eq!(rows.len(), 85);
        let outcome = score_at(&rows, &[0], 0.5, &STANDARD);
        assert_eq!(outcome.false_positives, 0);
        assert_eq!(outcome.score, -1.0);
    }

    #[test]
    fn null_and_perfect_normalize_to_bounds() {
        let null = one_window_rows(&[]);
        let perfect = one_window_rows(&[(40, 1.0)]);
        for profile in PROFILES {
            let null_score = score_at(&null, &[0], 0.5, &profile).score;
            let perfect_score = score_at(&perfect, &[0], 0.5, &profile).score;
            assert_eq!(normalize(null_score, 1, &profile), 0.0);
            assert!((normalize(perfect_score, 1, &profile) - 100.0).abs() < 1e-9);
        }
    }

    #[test]
    fn sweep_finds_the_threshold_that_excludes_false_positives() {
        // A strong detection in the window and a weaker false positive before it.
        let rows = one_window_rows(&[(20, 0.6), (40, 0.9)]);
        let (threshold, score) = best_threshold(&rows, 1, &STANDARD);
        assert_eq!(threshold, 0.9);
        assert!((score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sweep_skips_nan_scores() {
        let rows = one_window_rows(&[(20, f64::NAN), (40, 0.9)]);
        let (threshold, score) = best_threshold(&rows, 1, &STANDARD);
        assert_eq!(threshold, 0.9);
        assert!((score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sweep_agrees_with_fixed_threshold_scoring() {
        let rows = one_window_rows(&[(20, 0.3), (44, 0.7), (47, 0.8), (60, 0.5)]);
        let (threshold, best) = best_threshold(&rows, 1, &STANDARD);
        assert_eq!(score_at(&rows, &[0], threshold, &STANDARD).score, best);
        for candidate in [0.3, 0.5, 0.7, 0.8] {
            assert!(score_at(&rows, &[0], candidate, &STANDARD).score <= best);
        }
    }

    #[test]
    fn windows_get_corpus_wide_indexes() {
        let rows = scoring_rows(&[0.0; 100], &[(30, 39), (60, 69)], 5, &STANDARD);
        let windows: std::collections::BTreeSet<_> = rows.iter().filter_map(|r| r.window).collect();
        assert_eq!(windows.into_iter().collect::<Vec<_>>(), vec![5, 6]);
    }
}
