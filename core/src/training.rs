//! Training status of one ML behavior: when its models may be built, refreshed or expire.
//!
//! Collection starts with the first datapoint of the behavior. The first build is attempted
//! exactly 14 days later and then every 24 hours. A build succeeds when the trailing 14 days hold
//! at least 25,000 datapoints. The model is then `ACTIVE`, and scoring uses the models frozen at
//! that refresh. After 30 failed attempts in a row the model is `EXPIRED` for good.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::DAY_MS;
use crate::model::{ModelStatus, Timestamp};

/// Days of data a build needs in AWS ML Detect, and the length of the trailing window it counts.
pub const TRAINING_DAYS: i64 = 14;
/// Datapoints the trailing window must hold for a build in AWS ML Detect.
pub const MIN_DATAPOINTS: u64 = 25_000;
/// Failed daily builds in a row after which the model expires.
pub const MAX_FAILED_REFRESHES: u32 = 30;

/// Build requirements of ML models. The defaults are AWS ML Detect's; replays of recorded data
/// may shorten them to bootstrap from history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Days from the first datapoint to the first build, and the trailing window a build counts.
    pub days: i64,
    /// Datapoints the trailing window must hold for a build.
    pub min_datapoints: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            days: TRAINING_DAYS,
            min_datapoints: MIN_DATAPOINTS,
        }
    }
}

/// The result of one refresh attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The models were rebuilt at this time.
    Built(Timestamp),
    /// Not enough data; the previous state stays.
    NotEnoughData,
    /// Too many failed attempts; the model is now expired.
    Expired,
}

/// Training bookkeeping of one ML behavior.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Training {
    config: TrainingConfig,
    start: Option<Timestamp>,
    active: bool,
    expired: bool,
    last_refresh: Option<Timestamp>,
    failed_refreshes: u32,
    /// Datapoints per day since `start`, keyed by day number; only the trailing window is kept.
    daily_counts: BTreeMap<i64, u64>,
}

impl Training {
    /// Bookkeeping for a model with the given build requirements.
    pub fn new(config: TrainingConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Counts one datapoint at `timestamp`.
    pub fn record_datapoint(&mut self, timestamp: Timestamp) {
        let start = *self.start.get_or_insert(timestamp);
        let day = (timestamp - start).div_euclid(DAY_MS);
        *self.daily_counts.entry(day).or_insert(0) += 1;
    }

    /// Current status.
    pub fn status(&self) -> ModelStatus {
        if self.expired {
            ModelStatus::Expired
        } else if self.active {
            ModelStatus::Active
        } else {
            ModelStatus::PendingBuild
        }
    }

    /// Whether models should score datapoints.
    pub fn is_active(&self) -> bool {
        self.active && !self.expired
    }

    /// First datapoint time.
    pub fn start(&self) -> Option<Timestamp> {
        self.start
    }

    /// Last successful build.
    pub fn last_refresh(&self) -> Option<Timestamp> {
        self.last_refresh
    }

    /// When the next build is due, if collection has started and the model has not expired.
    pub fn next_refresh(&self) -> Option<Timestamp> {
        let start = self.start?;
        if self.expired {
            return None;
        }
        let first = start + self.config.days * DAY_MS;
        let Some(last_attempt) = self.last_attempt() else {
            return Some(first);
        };
        Some(last_attempt + DAY_MS)
    }

    fn last_attempt(&self) -> Option<Timestamp> {
        let start = self.start?;
        let attempts = self.attempts_made();
        if attempts == 0 {
            return None;
        }
        Some(start + (self.config.days + attempts - 1) * DAY_MS)
    }

    /// Attempts are implied by the refresh bookkeeping: one per day from day 14 until the last
    /// successful build, plus the failures since.
    fn attempts_made(&self) -> i64 {
        let (Some(start), Some(last)) = (self.start, self.last_refresh) else {
            return i64::from(self.failed_refreshes);
        };
        let built_attempt = (last - start) / DAY_MS - self.config.days + 1;
        built_attempt + i64::from(self.failed_refreshes)
    }

    /// Datapoints in the 14 days before `at`, which must be a refresh time.
    pub fn trailing_datapoints(&self, at: Timestamp) -> u64 {
        let Some(start) = self.start else {
            return 0;
        };
        let end_day = (at - start).div_euclid(DAY_MS);
        self.daily_counts
            .range(end_day - self.config.days..end_day)
            .map(|(_, count)| count)
            .sum()
    }

    /// Attempts the build due at `at`.
    pub fn refresh(&mut self, at: Timestamp) -> RefreshOutcome {
        // A model needs at least one datapoint, whatever the configured minimum.
        let required = self.config.min_datapoints.max(1);
        let outcome = if self.trailing_datapoints(at) >= required {
            self.active = true;
            self.last_refresh = Some(at);
            self.failed_refreshes = 0;
            RefreshOutcome::Built(at)
        } else {
            self.failed_refreshes += 1;
            if self.failed_refreshes >= MAX_FAILED_REFRESHES {
                self.expired = true;
                RefreshOutcome::Expired
            } else {
                RefreshOutcome::NotEnoughData
            }
        };
        self.forget_days_before(at);
        outcome
    }

    fn forget_days_before(&mut self, at: Timestamp) {
        let Some(start) = self.start else {
            return;
        };
        let first_kept = (at - start).div_euclid(DAY_MS) - self.config.days + 1;
        self.daily_counts = self.daily_counts.split_off(&first_kept);
    }

    /// Computes `datapointsCollectionPercentage`. While pending, it is the progress toward both
    /// build requirements: the lesser of elapsed time over 14 days and datapoints over 25,000.
    /// Once active, it is the share of 25,000 present in the trailing 14 days, capped at 100.
    pub fn collection_percentage(&self, now: Timestamp) -> f64 {
        let Some(start) = self.start else {
            return 0.0;
        };
        let window_end = now.max(start);
        let count = self.datapoints_since(window_end - self.config.days * DAY_MS) as f64;
        let data_share = (count / self.config.min_datapoints.max(1) as f64).min(1.0);
        let share = if self.is_active() {
            data_share
        } else {
            let elapsed = (window_end - start) as f64 / (self.config.days * DAY_MS) as f64;
            data_share.min(elapsed.min(1.0))
        };
        (share * 100_000.0).round() / 1000.0
    }

    fn datapoints_since(&self, from: Timestamp) -> u64 {
        let Some(start) = self.start else {
            return 0;
        };
        let first_day = (from - start).div_euclid(DAY_MS);
        self.daily_counts.range(first_day..).map(|(_, c)| c).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = 1_700_000_000_000;

    /// Spreads `count` datapoints evenly over `days` days from T0.
    fn collect(training: &mut Training, count: u64, days: i64) {
        let step = days * DAY_MS / count as i64;
        for i in 0..count as i64 {
            training.record_datapoint(T0 + i * step);
        }
    }

    #[test]
    fn first_build_due_after_fourteen_days() {
        let mut training = Training::default();
        training.record_datapoint(T0);
        assert_eq!(training.next_refresh(), Some(T0 + 14 * DAY_MS));
    }

    #[test]
    fn builds_with_exactly_the_minimum_datapoints() {
        let mut training = Training::default();
        collect(&mut training, MIN_DATAPOINTS, 14);
        assert_eq!(
            training.refresh(T0 + 14 * DAY_MS),
            RefreshOutcome::Built(T0 + 14 * DAY_MS)
        );
        assert_eq!(training.status(), ModelStatus::Active);
    }

    #[test]
    fn stays_pending_one_datapoint_short() {
        let mut training = Training::default();
        collect(&mut training, MIN_DATAPOINTS - 1, 14);
        assert_eq!(
            training.refresh(T0 + 14 * DAY_MS),
            RefreshOutcome::NotEnoughData
        );
        assert_eq!(training.status(), ModelStatus::PendingBuild);
    }

    #[test]
    fn refreshes_daily_after_the_first_build() {
        let mut training = Training::default();
        collect(&mut training, MIN_DATAPOINTS + 10_000, 15);
        training.refresh(T0 + 14 * DAY_MS);
        assert_eq!(training.next_refresh(), Some(T0 + 15 * DAY_MS));
        training.refresh(T0 + 15 * DAY_MS);
        assert_eq!(training.last_refresh(), Some(T0 + 15 * DAY_MS));
        assert_eq!(training.next_refresh(), Some(T0 + 16 * DAY_MS));
    }

    #[test]
    fn expires_after_thirty_failed_refreshes() {
        let mut training = Training::default();
        collect(&mut training, 100, 1);
        let mut at = training.next_refresh().unwrap();
        for attempt in 1..MAX_FAILED_REFRESHES {
            assert_eq!(
                training.refresh(at),
                RefreshOutcome::NotEnoughData,
                "attempt {attempt}"
            );
            at = training.next_refresh().unwrap();
        }
        assert_eq!(training.refresh(at), RefreshOutcome::Expired);
        assert_eq!(training.status(), ModelStatus::Expired);
        assert_eq!(training.next_refresh(), None);
    }

    #[test]
    fn active_model_expires_without_data() {
        let mut training = Training::default();
        collect(&mut training, MIN_DATAPOINTS, 14);
        training.refresh(T0 + 14 * DAY_MS);
        let mut outcome = RefreshOutcome::NotEnoughData;
        while let Some(at) = training.next_refresh() {
            outcome = training.refresh(at);
        }
        assert_eq!(outcome, RefreshOutcome::Expired);
        // The data covers the first 14 days only, so every refresh after the build fails.
        assert_eq!(training.last_refresh(), Some(T0 + 14 * DAY_MS));
    }

    #[test]
    fn percentage_tracks_the_slower_requirement_while_pending() {
        let mut training = Training::default();
        collect(&mut training, MIN_DATAPOINTS * 2, 7);
        assert_eq!(training.collection_percentage(T0 + 7 * DAY_MS), 50.0);
    }

    #[test]
    fn percentage_is_zero_before_collection() {
        assert_eq!(Training::default().collection_percentage(T0), 0.0);
    }
}
