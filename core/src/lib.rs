//! The Vigil detection engine: AWS IoT Device Defender security profiles, rules and
//! statistical thresholds, ML Detect training and scoring, the violation lifecycle and
//! mitigation task planning.
//!
//! The engine is pure: it does no I/O, spawns no threads and reads no clock. Callers feed it
//! datapoints and move event time forward with [`Engine::advance_time`], so the same input always
//! gives the same output, natively, in a browser or inside a WebAssembly component.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod catalogue;
pub mod detector;
pub mod error;
pub mod model;
pub mod report;
pub mod validate;

pub use error::{Error, Result, ValidationError};
pub mod engine;
pub mod ids;
pub mod ingest;
pub mod mitigation;
pub mod ml;
pub mod registry;
pub mod rules;
pub mod shape;
pub mod training;
pub mod violations;
pub mod wit;

pub use engine::{Engine, EngineConfig, EngineStats, ExecutionFilter, SecurityProfileFilter};
