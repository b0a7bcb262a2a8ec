//! The core component's streaming series detector, the one `vigil nab` benchmarks natively.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use vigil_core::detector::Verdict;
use vigil_core::ml::Scale;
use vigil_core::model::Timestamp;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::{EngineState, convert, instantiate, wit_engine, witd};

/// The core component with one `series-detector` resource instantiated.
pub struct CoreSeriesDetector {
    store: Store<EngineState>,
    bindings: wit_engine::Engine,
    handle: ResourceAny,
}

impl CoreSeriesDetector {
    /// Loads the component at `path` and creates a detector for values on `scale`.
    pub fn load(path: &Path, scale: Scale) -> anyhow::Result<Self> {
        let (mut store, bindings) = instantiate(path)?;
        let handle = bindings
            .vigil_detect_detector()
            .series_detector()
            .call_constructor(&mut store, scale.into())
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to create a series detector inside the core component")?;
        Ok(Self {
            store,
            bindings,
            handle,
        })
    }

    /// Scores and learns `points` in order; returns one verdict per point.
    pub fn observe(&mut self, points: &[(Timestamp, f64)]) -> anyhow::Result<Vec<Verdict>> {
        let points: Vec<witd::SeriesPoint> = points
            .iter()
            .map(|&(timestamp, value)| witd::SeriesPoint { timestamp, value })
            .collect();
        let verdicts = self
            .bindings
            .vigil_detect_detector()
            .series_detector()
            .call_observe(&mut self.store, self.handle, &points)
            .map_err(|e| anyhow!("{e:?}"))
            .context("failed to call `observe` on the core component's series detector")?;
        Ok(convert(verdicts))
    }
}
