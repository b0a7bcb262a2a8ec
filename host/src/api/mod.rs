//! The AWS IoT control-plane API of `vigil serve`: the Device Defender Detect operations and the
//! registry operations that the ML Detect guide and the mitigation actions need, with AWS's
//! routes, shapes and error types, so the AWS CLI and SDKs work unchanged with `--endpoint-url`.
//!
//! Each handler parses its input into typed values (every problem becomes an
//! `InvalidRequestException` naming the field), then runs on the [`Service`] under its lock in a
//! blocking task, and commits what it changed before answering.

mod certificates;
pub mod client;
mod detect;
mod metrics;
mod mitigation;
mod policies;
mod registry;
mod resources;
pub mod sigv4;
mod wire;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use metrics::{Metrics, render as render_metrics, track as track_metrics};
pub use sigv4::Credentials;

use vigil_core::model::Timestamp;

use crate::iot::IotError;
use crate::journal::{Command, Reply};
use crate::service::Service;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    service: Arc<Mutex<Service>>,
    /// Request counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl ApiState {
    /// Wraps a service.
    pub fn new(service: Arc<Mutex<Service>>) -> Self {
        Self {
            service,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Runs `operation` on the service in a blocking task and commits what it changed. If the
    /// operation fails after changing the engine, the changes are committed all the same, so the
    /// database always matches the engine.
    pub async fn call<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Service) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let service = Arc::clone(&self.service);
        tokio::task::spawn_blocking(move || {
            let mut service = service
                .lock()
                .map_err(|_| ApiError::internal("the service lock is poisoned; restart vigil"))?;
            let result = operation(&mut service);
            service.commit().map_err(ApiError::from)?;
            if let Err(error) = &result
                && error.kind() == "InternalFailureException"
            {
                // A trap inside the component leaves the engine in an unknown state, so it is
                // rebuilt from what was committed.
                service.reload().map_err(ApiError::from)?;
            }
            result
        })
        .await
        .map_err(|error| ApiError::internal(format!("the request task failed: {error}")))?
    }

    /// Applies the command that `make` builds for the current event time, and commits it.
    pub async fn run(
        &self,
        make: impl FnOnce(Timestamp) -> Command + Send + 'static,
    ) -> Result<Reply, ApiError> {
        self.call(move |service| {
            let now = service.now();
            Ok(service.engine().run(make(now))?)
        })
        .await
    }
}

/// Builds the API routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .merge(certificates::routes())
        .merge(detect::routes())
        .merge(mitigation::routes())
        .merge(policies::routes())
        .merge(registry::routes())
        .merge(resources::routes())
        .merge(wire::extension_routes())
        .fallback(unknown_operation)
        .with_state(state)
}

/// Responds to a route Vigil does not serve with an AWS error instead of an empty 404.
async fn unknown_operation(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!(
            "Vigil does not serve `{method} {}`; docs/api.md lists the operations it implements",
            uri.path()
        ),
    )
}

/// An AWS error: HTTP status, error type and message, plus extra members for some types.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// `InvalidRequestException`, 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message)
    }

    /// `ResourceNotFoundException`, 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    /// `InternalFailureException`, 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            message,
        )
    }

    /// An error of any type.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// Adds a member to the error body, such as `resourceArn`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The error type, such as `ResourceNotFoundException`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        use vigil_core::Error as E;
        let Some(engine_error) = error.downcast_ref::<E>() else {
            tracing::error!(error = %format!("{error:#}"), "internal failure");
            return Self::internal(format!("internal failure: {error:#}"));
        };
        let message = engine_error.to_string();
        match engine_error {
            E::InvalidRequest(_) | E::ValidationFailed(_) => Self::invalid(message),
            E::ResourceNotFound(_) => Self::not_found(message),
            E::ResourceAlreadyExists(_) => Self::new(
                StatusCode::CONFLICT,
                "ResourceAlreadyExistsException",
                message,
            ),
            E::VersionConflict(_) => {
                Self::new(StatusCode::CONFLICT, "VersionConflictException", message)
            }
            // AWS returns LimitExceededException with status 410.
            E::LimitExceeded(_) => Self::new(StatusCode::GONE, "LimitExceededException", message),
            E::TaskAlreadyExists(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "TaskAlreadyExistsException",
                message,
            ),
            E::InvalidSnapshot(_) => Self::internal(message),
        }
    }
}

impl From<IotError> for ApiError {
    /// Maps a registry error to the AWS type most operations use for it. Operations whose AWS
    /// type differs, such as `CertificateStateException`, convert with [`ApiError::from_iot`].
    fn from(error: IotError) -> Self {
        match error {
            IotError::NotFound(message) => Self::not_found(message),
            IotError::Invalid(message) => Self::invalid(message),
            IotError::Conflict(message) => {
                Self::new(StatusCode::CONFLICT, "ConflictException", message)
            }
            // AWS returns LimitExceededException with status 410.
            IotError::LimitExceeded(message) => {
                Self::new(StatusCode::GONE, "LimitExceededException", message)
            }
            IotError::Internal(error) => Self::from(error),
        }
    }
}

impl ApiError {
    /// Converts a registry error, giving `Conflict` and `LimitExceeded` the status and type
    /// `state_error` that the operation uses for them.
    pub fn from_iot(error: IotError, state_error: (StatusCode, &'static str)) -> Self {
        match error {
            IotError::Conflict(message) | IotError::LimitExceeded(message) => {
                Self::new(state_error.0, state_error.1, message)
            }
            other => Self::from(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("message".to_owned(), self.message.into());
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
