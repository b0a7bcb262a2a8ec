//! Errors returned by the engine. Each variant maps to one AWS error type.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One problem found while validating input, with the path of the offending field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Path such as `behaviors[2].criteria.durationSeconds`.
    pub field: String,
    /// The problem and the accepted values.
    pub message: String,
}

impl ValidationError {
    /// Creates a validation error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// An engine error.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// Malformed request; `InvalidRequestException`.
    #[error("{0}")]
    InvalidRequest(String),
    /// Validation found problems; `InvalidRequestException`.
    #[error("{}", join_validation_errors(.0))]
    ValidationFailed(Vec<ValidationError>),
    /// A named resource does not exist; `ResourceNotFoundException`.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The resource exists; `ResourceAlreadyExistsException`.
    #[error("{0}")]
    ResourceAlreadyExists(String),
    /// `expectedVersion` did not match; `VersionConflictException`.
    #[error("{0}")]
    VersionConflict(String),
    /// A limit was reached; `LimitExceededException`.
    #[error("{0}")]
    LimitExceeded(String),
    /// A task with that id exists; `TaskAlreadyExistsException`.
    #[error("{0}")]
    TaskAlreadyExists(String),
    /// A snapshot could not be read.
    #[error("{0}")]
    InvalidSnapshot(String),
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn join_validation_errors(errors: &[ValidationError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}
