//! Novelty of the recent shape of a series, learned online with fuzzy ART.
//!
//! The last [`WINDOW`] values are averaged into [`FEATURES`] blocks and normalised to 0..1 within
//! the window (with a floor of [`SPAN_FLOOR`] of the learned range, so flat noise does not fill
//! the whole scale). The vector and its complement form the input of a fuzzy ART category set
//! (Carpenter, Grossberg and Rosen, "Fuzzy ART: Fast stable learning and categorization of analog
//! patterns by an adaptive resonance system", Neural Networks 4(6), 1991). An input that matches
//! a category by at least [`VIGILANCE`] refines it. Any other input becomes a new category, which
//! replaces the least recently used one once [`CATEGORIES`] exist.
//!
//! The novelty of a window is one minus its best match. It is scored in standard deviations above
//! its own usual level, so a series whose shapes always vary does not score high all the time.

use serde::{Deserialize, Serialize};

use crate::ml::Moments;

/// Values in a window.
pub const WINDOW: usize = 32;
/// Block means per window.
pub const FEATURES: usize = 8;
/// Most categories kept.
pub const CATEGORIES: usize = 16;
/// Values per block.
const BLOCK: usize = WINDOW / FEATURES;
/// Smallest match that lets a window refine a category instead of founding one.
const VIGILANCE: f32 = 0.9;
/// How far a matched category moves towards the window (fuzzy ART's β).
const LEARNING_RATE: f32 = 0.1;
/// Smallest span a window is normalised over, as a share of the learned range.
const SPAN_FLOOR: f64 = 0.2;
/// Smoothing floor of the novelty moments: about the last 500 windows.
const NOVELTY_ALPHA_FLOOR: f64 = 0.002;
/// Smallest standard deviation of novelty assumed when scoring.
const NOVELTY_SIGMA_FLOOR: f64 = 0.01;

/// A complement-coded window: block means in 0..1 followed by their complements.
type Input = [f32; 2 * FEATURES];

/// Fuzzy ART categories over recent windows of one series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapeModel {
    categories: Vec<Input>,
    /// The window count at which each category last matched or was founded.
    last_used: Vec<u64>,
    /// The most recent values, oldest overwritten first. They stay `f64` because `f32` keeps
    /// only about 7 digits: noise of 1 on a level of 1e9 would round away, and values beyond
    /// 3.4e38 would become infinite.
    recent: [f64; WINDOW],
    /// Values seen so far. A `u32` would saturate after about 4.3 billion values and freeze
    /// the window.
    seen: u64,
    novelty: Moments,
}

impl Default for ShapeModel {
    fn default() -> Self {
        Self {
            categories: Vec::new(),
            last_used: Vec::new(),
            recent: [0.0; WINDOW],
            seen: 0,
            novelty: Moments::default(),
        }
    }
}

impl ShapeModel {
    /// Values seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Scores the window that ends with `y`: how many standard deviations its novelty lies above
    /// the usual novelty, or 0 when it is not more novel than usual. `low..high` is the range
    /// learned so far, on the same scale as `y`.
    pub fn score(&self, y: f64, low: f64, high: f64) -> f64 {
        if self.categories.is_empty() || high <= low {
            return 0.0;
        }
        let input = self.input(y, low, high);
        let novelty = 1.0 - f64::from(self.best_match(&input).1);
        (novelty - self.novelty.mean).max(0.0)
            / self.novelty.variance.sqrt().max(NOVELTY_SIGMA_FLOOR)
    }

    /// Learns the window that ends with `y`, then stores `y`.
    pub fn learn(&mut self, y: f64, low: f64, high: f64) {
        if self.seen >= WINDOW as u64 && high > low {
            let input = self.input(y, low, high);
            let (best, matched) = self.best_match(&input);
            self.novelty
                .update(1.0 - f64::from(matched), NOVELTY_ALPHA_FLOOR);
            match best {
                Some(index) if matched >= VIGILANCE => self.refine(index, &input),
                _ => self.found(input),
            }
        }
        self.recent[self.slot(0)] = y;
        self.seen = self.seen.saturating_add(1);
    }

    fn refine(&mut self, index: usize, input: &Input) {
        for (weight, x) in self.categories[index].iter_mut().zip(input) {
            *weight += LEARNING_RATE * (weight.min(*x) - *weight);
        }
        self.last_used[index] = self.seen;
    }

    fn found(&mut self, input: Input) {
        if self.categories.len() < CATEGORIES {
            self.categories.push(input);
            self.last_used.push(self.seen);
            return;
        }
        let oldest = (0..CATEGORIES)
            .min_by_key(|&index| self.last_used[index])
            .unwrap_or(0);
        self.categories[oldest] = input;
        self.last_used[oldest] = self.seen;
    }

    /// Returns the best-matching category and its match `|input ∧ category| / FEATURES` in
    /// 0..1, or `None` and 0 without categories.
    fn best_match(&self, input: &Input) -> (Option<usize>, f32) {
        let mut best = (None, 0.0);
        for (index, category) in self.categories.iter().enumerate() {
            let overlap: f32 = category.iter().zip(input).map(|(w, x)| w.min(*x)).sum();
            let matched = overlap / FEATURES as f32;
            if matched > best.1 {
                best = (Some(index), matched);
            }
        }
        best
    }

    /// Builds the complement-coded input of the window that ends with `y`.
    fn input(&self, y: f64, low: f64, high: f64) -> Input {
        let means = self.block_means(y);
        let min = means.iter().copied().fold(f64::INFINITY, f64::min);
        let max = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = (max - min)
            .max(SPAN_FLOOR * (high - low))
            .max(f64::MIN_POSITIVE);
        let bottom = 0.5 * (min + max) - 0.5 * span;
        let mut input = [0.0; 2 * FEATURES];
        for (index, mean) in means.iter().enumerate() {
            let position = ((mean - bottom) / span).clamp(0.0, 1.0) as f32;
            input[index] = position;
            input[FEATURES + index] = 1.0 - position;
        }
        input
    }

    /// Means of the window's blocks, oldest block first. The window is `y` and the `WINDOW - 1`
    /// values before it.
    fn block_means(&self, y: f64) -> [f64; FEATURES] {
        let mut means = [0.0; FEATURES];
        for (block, mean) in means.iter_mut().enumerate() {
            let newest_back = (FEATURES - 1 - block) * BLOCK;
            let sum: f64 = (newest_back..newest_back + BLOCK)
                .map(|back| self.value_back(y, back))
                .sum();
            *mean = sum / BLOCK as f64;
        }
        means
    }

    /// Returns the value `back` steps before `y`, or `y` itself for 0.
    fn value_back(&self, y: f64, back: usize) -> f64 {
        if back == 0 {
            return y;
        }
        self.recent[self.slot(back)]
    }

    /// Returns the index in `recent` of the value `back` steps before the next one. The sum is
    /// taken in `u64`, so wasm32, whose `usize` has 32 bits, picks the same slot as 64-bit hosts.
    fn slot(&self, back: usize) -> usize {
        let window = WINDOW as u64;
        ((self.seen % window + window - back as u64) % window) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sawtooth(i: u32) -> f64 {
        f64::from(i % 8)
    }

    fn trained_on_sawtooth(values: u32) -> ShapeModel {
        let mut model = ShapeModel::default();
        for i in 0..values {
            model.learn(sawtooth(i), 0.0, 7.0);
        }
        model
    }

    #[test]
    fn repeated_shape_is_not_novel() {
        let model = trained_on_sawtooth(2000);
        assert!(model.score(sawtooth(2000), 0.0, 7.0) < 1.0);
    }

    #[test]
    fn new_shape_is_novel() {
        let mut model = trained_on_sawtooth(2000);
        for _ in 0..20 {
            model.learn(7.0, 0.0, 7.0);
        }
        let score = model.score(0.0, 0.0, 7.0);
        assert!(score > 3.0, "novelty of a cliff after a plateau: {score}");
    }

    #[test]
    fn keeps_at_most_the_category_limit() {
        let mut model = ShapeModel::default();
        for i in 0..5000 {
            let value = f64::from((i * 7919) % 1000);
            model.learn(value, 0.0, 1000.0);
        }
        assert_eq!(model.categories.len(), CATEGORIES);
        assert_eq!(model.last_used.len(), CATEGORIES);
    }

    #[test]
    fn scores_nothing_without_a_learned_range() {
        let model = trained_on_sawtooth(2000);
        assert_eq!(model.score(3.0, 5.0, 5.0), 0.0);
    }

    #[test]
    fn window_keeps_moving_past_u32_max() {
        let mut model = ShapeModel {
            seen: (u32::MAX - 40).into(),
            ..ShapeModel::default()
        };
        for i in 0..200 {
            model.learn(f64::from(i), 0.0, 200.0);
        }
        let means = model.block_means(200.0);
        assert_eq!(means[FEATURES - 1], 198.5);
        assert_eq!(means[0], 170.5);
    }

    #[test]
    fn window_means_run_oldest_first() {
        let mut model = ShapeModel::default();
        for i in 0..31 {
            model.learn(f64::from(i), 0.0, 31.0);
        }
        let means = model.block_means(31.0);
        assert_eq!(means[0], 1.5);
        assert_eq!(means[FEATURES - 1], 29.5);
    }
}
