//! Custom metrics, dimensions and tags.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_core::model::{CustomMetricType, DimensionType};

use super::detect::with_token;
use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiError, ApiResult, ApiState};
use crate::journal::Command;
use crate::service::{Service, Write};

/// The routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/custom-metrics", get(list_custom_metrics))
        .route(
            "/custom-metric/{name}",
            post(create_custom_metric)
                .get(describe_custom_metric)
                .patch(update_custom_metric)
                .delete(delete_custom_metric),
        )
        .route("/dimensions", get(list_dimensions))
        .route(
            "/dimensions/{name}",
            post(create_dimension)
                .get(describe_dimension)
                .patch(update_dimension)
                .delete(delete_dimension),
        )
        .route("/tags", post(tag_resource).get(list_tags_for_resource))
        .route("/untag", post(untag_resource))
}

/// Responds to a repeated idempotent create with the first response, or runs `create`, which
/// returns the response to remember.
fn idempotent(
    service: &mut Service,
    scope: &str,
    token: Option<&str>,
    create: impl FnOnce(&mut Service) -> ApiResult<Value>,
) -> ApiResult<Value> {
    if let Some(token) = token
        && let Some(stored) = service.store().request_token(scope, token)?
    {
        return serde_json::from_str(&stored)
            .map_err(|e| ApiError::internal(format!("a stored response is unreadable: {e}")));
    }
    let response = create(service)?;
    if let Some(token) = token {
        service.write(Write::RequestToken {
            scope: scope.to_owned(),
            token: token.to_owned(),
            response: response.to_string(),
        });
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateCustomMetricInput {
    display_name: Option<String>,
    metric_type: CustomMetricType,
    tags: Option<Vec<Tag>>,
    client_request_token: Option<String>,
}

async fn create_custom_metric(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateCustomMetricInput = body(&bytes)?;
    wire::check_client_request_token(input.client_request_token.as_deref())?;
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let token = input.client_request_token.map(|t| format!("{name}/{t}"));
    let response = state
        .call(move |service| {
            idempotent(
                service,
                "create-custom-metric",
                token.as_deref(),
                |service| {
                    let now = service.now();
                    let metric = service
                        .engine()
                        .run(Command::CreateCustomMetric {
                            name,
                            metric_type: input.metric_type,
                            display_name: input.display_name,
                            now,
                        })?
                        .custom_metric()?;
                    if !tags.is_empty() {
                        service.write(Write::Tags(metric.metric_arn.clone(), tags));
                    }
                    Ok(json!({"metricName": metric.metric_name, "metricArn": metric.metric_arn}))
                },
            )
        })
        .await?;
    Ok(respond(response))
}

async fn describe_custom_metric(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let metric = state
        .call(move |service| Ok(service.engine().queries().describe_custom_metric(&name)?))
        .await?;
    Ok(respond(metric))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateCustomMetricInput {
    display_name: String,
}

async fn update_custom_metric(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: UpdateCustomMetricInput = body(&bytes)?;
    let metric = state
        .run(move |now| Command::UpdateCustomMetric {
            name,
            display_name: input.display_name,
            now,
        })
        .await?
        .custom_metric()?;
    Ok(respond(metric))
}

async fn delete_custom_metric(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    state
        .call(move |service| {
            service
                .engine()
                .run(Command::DeleteCustomMetric { name: name.clone() })?;
            service.write(Write::DropTags(
                service.arn(&format!("custommetric/{name}")),
            ));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_custom_metrics(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let names = state
        .call(move |service| Ok(service.engine().queries().list_custom_metrics()?))
        .await?;
    let (names, next) = page.cut(names);
    Ok(respond(with_token(json!({"metricNames": names}), next)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDimensionInput {
    #[serde(rename = "type")]
    dimension_type: DimensionType,
    string_values: Vec<String>,
    tags: Option<Vec<Tag>>,
    client_request_token: Option<String>,
}

async fn create_dimension(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateDimensionInput = body(&bytes)?;
    wire::check_client_request_token(input.client_request_token.as_deref())?;
    let DimensionType::TopicFilter = input.dimension_type;
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let token = input.client_request_token.map(|t| format!("{name}/{t}"));
    let response = state
        .call(move |service| {
            idempotent(service, "create-dimension", token.as_deref(), |service| {
                let now = service.now();
                let dimension = service
                    .engine()
                    .run(Command::CreateDimension {
                        name,
                        string_values: input.string_values,
                        now,
                    })?
                    .dimension()?;
                if !tags.is_empty() {
                    service.write(Write::Tags(dimension.arn.clone(), tags));
                }
                Ok(json!({"name": dimension.name, "arn": dimension.arn}))
            })
        })
        .await?;
    Ok(respond(response))
}

async fn describe_dimension(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let dimension = state
        .call(move |service| Ok(service.engine().queries().describe_dimension(&name)?))
        .await?;
    Ok(respond(dimension))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateDimensionInput {
    string_values: Vec<String>,
}

async fn update_dimension(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: UpdateDimensionInput = body(&bytes)?;
    let dimension = state
        .run(move |now| Command::UpdateDimension {
            name,
            string_values: input.string_values,
            now,
        })
        .await?
        .dimension()?;
    Ok(respond(dimension))
}

async fn delete_dimension(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    state
        .call(move |service| {
            service
                .engine()
                .run(Command::DeleteDimension { name: name.clone() })?;
            service.write(Write::DropTags(service.arn(&format!("dimension/{name}"))));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_dimensions(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let names = state
        .call(move |service| Ok(service.engine().queries().list_dimensions()?))
        .await?;
    let (names, next) = page.cut(names);
    Ok(respond(with_token(json!({"dimensionNames": names}), next)))
}

/// Fails with `ResourceNotFoundException` unless `arn` names a taggable resource that exists.
fn check_taggable(service: &mut Service, arn: &str) -> ApiResult<()> {
    let prefix = service.arn("");
    let Some((kind, name)) = arn
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once('/'))
    else {
        return Err(ApiError::invalid(format!(
            "`resourceArn` `{arn}` is not an ARN of this server (it must start with `{prefix}`)"
        )));
    };
    let exists = match kind {
        "policy" => service.store().policy(name)?.is_some(),
        "cacert" => service.store().ca_certificate(name)?.is_some(),
        _ => true,
    };
    if !exists {
        return Err(ApiError::not_found(format!(
            "resource `{arn}` does not exist"
        )));
    }
    let engine = service.engine().queries();
    match kind {
        "policy" | "cacert" => {}
        "securityprofile" => engine.describe_security_profile(name).map(drop)?,
        "custommetric" => engine.describe_custom_metric(name).map(drop)?,
        "dimension" => engine.describe_dimension(name).map(drop)?,
        "mitigationaction" => engine.describe_mitigation_action(name).map(drop)?,
        "thinggroup" => engine.list_things_in_thing_group(name).map(drop)?,
        other => {
            return Err(ApiError::invalid(format!(
                "resources of type `{other}` cannot be tagged; tag security profiles, custom \
                 metrics, dimensions, mitigation actions, thing groups, policies or CA \
                 certificates"
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TagInput {
    resource_arn: String,
    tags: Vec<Tag>,
}

async fn tag_resource(State(state): State<ApiState>, bytes: Bytes) -> ApiResult<Response> {
    let input: TagInput = body(&bytes)?;
    let tags = wire::check_tags("tags", &input.tags)?;
    state
        .call(move |service| {
            check_taggable(service, &input.resource_arn)?;
            service.write(Write::Tags(input.resource_arn, tags));
            Ok(())
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UntagInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(State(state): State<ApiState>, bytes: Bytes) -> ApiResult<Response> {
    let input: UntagInput = body(&bytes)?;
    state
        .call(move |service| {
            check_taggable(service, &input.resource_arn)?;
            service.write(Write::Untag(input.resource_arn, input.tag_keys));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_tags_for_resource(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let arn = query.required("resourceArn")?.to_owned();
    let tags = state
        .call(move |service| {
            check_taggable(service, &arn)?;
            Ok(service.store().tags(&arn)?)
        })
        .await?;
    let tags: Vec<Value> = tags
        .into_iter()
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    let (tags, next) = page.cut(tags);
    Ok(respond(with_token(json!({"tags": tags}), next)))
}
