//! Wire helpers shared by the handlers: JSON bodies, query strings, timestamps, pagination and
//! Vigil's own extension routes.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use vigil_core::ingest::Datapoint;
use vigil_core::model::{MetricValue, Timestamp};

use super::{ApiError, ApiResult, ApiState};
use crate::journal::Command;
use crate::output::parse_datetime;

/// Parses a JSON body into `T`; an empty body counts as `{}`. Errors name the field.
pub fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(format!("invalid value for `{path}`: {inner}"))
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::invalid(format!("the request body is not valid JSON: {error}"))
    })?;
    Ok(value)
}

/// A JSON response with status 200.
pub fn json(value: impl serde::Serialize) -> Response {
    axum::Json(value).into_response()
}

/// Returns the empty JSON object that operations without output respond with.
pub fn empty() -> Response {
    json(serde_json::json!({}))
}

/// Query string parameters, decoded.
#[derive(Debug, Default)]
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    /// Decodes a raw query string; a repeated parameter keeps its last value.
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut params = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode_component(key)?, decode_component(value)?);
        }
        Ok(Self { params })
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A parameter's value, owned.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A required parameter.
    pub fn required(&self, name: &str) -> ApiResult<&str> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid(format!("the query parameter `{name}` is required")))
    }

    /// A boolean parameter, `true` or `false`.
    pub fn boolean(&self, name: &str) -> ApiResult<Option<bool>> {
        self.get(name)
            .map(|value| match value {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(ApiError::invalid(format!(
                    "`{name}` must be `true` or `false`, not `{other}`"
                ))),
            })
            .transpose()
    }

    /// An integer parameter within `min..=max`.
    pub fn integer(&self, name: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        self.get(name)
            .map(|value| {
                let number: i64 = value.parse().map_err(|_| {
                    ApiError::invalid(format!("`{name}` must be an integer, not `{value}`"))
                })?;
                if !(min..=max).contains(&number) {
                    return Err(ApiError::invalid(format!(
                        "`{name}` must be between {min} and {max}, not {number}"
                    )));
                }
                Ok(number)
            })
            .transpose()
    }

    /// A timestamp parameter: ISO-8601 as the SDKs send it, or epoch seconds.
    pub fn timestamp(&self, name: &str) -> ApiResult<Option<Timestamp>> {
        self.get(name)
            .map(|value| parse_timestamp(name, value))
            .transpose()
    }

    /// A required timestamp parameter.
    pub fn required_timestamp(&self, name: &str) -> ApiResult<Timestamp> {
        parse_timestamp(name, self.required(name)?)
    }

    /// An enum parameter, parsed from its wire name.
    pub fn wire_enum<T: DeserializeOwned>(&self, name: &str) -> ApiResult<Option<T>> {
        self.get(name)
            .map(|value| {
                serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| {
                    ApiError::invalid(format!("`{name}` does not accept the value `{value}`"))
                })
            })
            .transpose()
    }

    /// Returns the page a list operation requests: `nextToken` and `maxResults` within the bounds.
    pub fn page(&self, max_results: i64, default: usize) -> ApiResult<Page> {
        let limit = self
            .integer("maxResults", 1, max_results)?
            .map_or(default, |n| usize::try_from(n).unwrap_or(default));
        let offset = match self.get("nextToken") {
            None => 0,
            Some(token) => parse_token(token)?,
        };
        Ok(Page { offset, limit })
    }
}

impl Query {
    /// Returns the page a marker-paginated list requests: `marker` and `pageSize` (1 to 250),
    /// as the older IoT list operations such as `ListCertificates` take them.
    pub fn marker_page(&self, default: usize) -> ApiResult<Page> {
        let limit = self
            .integer("pageSize", 1, 250)?
            .map_or(default, |n| usize::try_from(n).unwrap_or(default));
        let offset = match self.get("marker") {
            None => 0,
            Some(marker) => parse_marker(marker)?,
        };
        Ok(Page { offset, limit })
    }
}

const MARKER_PREFIX: &str = "vigil";

/// Returns the `nextMarker` that continues at `position`. AWS's model allows only `[A-Za-z0-9+/]` and
/// `=` in markers, so it has no separator.
pub fn marker_for(position: usize) -> String {
    format!("{MARKER_PREFIX}{position}")
}

fn parse_marker(marker: &str) -> ApiResult<usize> {
    marker
        .strip_prefix(MARKER_PREFIX)
        .and_then(|rest| rest.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "`marker` `{marker}` was not issued by this server; pass the `nextMarker` of the \
                 previous response unchanged"
            ))
        })
}

/// Cuts `items` to `page` and adds them under `key`, with `nextMarker` unless the page is the
/// last.
pub fn marker_listing<T: serde::Serialize>(key: &str, page: Page, items: Vec<T>) -> Response {
    let total = items.len();
    let end = page.offset.saturating_add(page.limit).min(total);
    let (items, _) = page.cut(items);
    let mut body = serde_json::json!({ key: items });
    if end < total {
        body["nextMarker"] = marker_for(end).into();
    }
    json(body)
}

fn decode_component(text: &str) -> ApiResult<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::invalid("the query string is not valid UTF-8 after decoding"))
}

/// Parses ISO-8601 or epoch seconds into milliseconds.
pub fn parse_timestamp(name: &str, value: &str) -> ApiResult<Timestamp> {
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 1e13
    {
        return Ok((seconds * 1000.0).round() as Timestamp);
    }
    parse_datetime(value).ok_or_else(|| {
        ApiError::invalid(format!(
            "`{name}` must be an ISO-8601 time such as 2020-09-22T05:42:13Z or epoch seconds, \
             not `{value}`"
        ))
    })
}

/// A slice of a list: where it starts and how long it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: usize,
    /// Items to return at most.
    pub limit: usize,
}

impl Page {
    /// Cuts `items` to this page and returns the token of the next one.
    pub fn cut<T>(self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let next = (end < total).then(|| token_for(end));
        let page = items
            .into_iter()
            .skip(self.offset)
            .take(end.saturating_sub(self.offset))
            .collect();
        (page, next)
    }
}

const TOKEN_PREFIX: &str = "vigil-";

/// The `nextToken` that continues at `position`.
pub fn token_for(position: impl std::fmt::Display) -> String {
    format!("{TOKEN_PREFIX}{position}")
}

/// Reads a token made by [`token_for`].
pub fn parse_token<T: std::str::FromStr>(token: &str) -> ApiResult<T> {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "`nextToken` `{token}` was not issued by this server; pass the token of the \
                 previous response unchanged"
            ))
        })
}

/// Checks a name against AWS's `[a-zA-Z0-9:_-]+`, 1 to 128 characters.
pub fn check_name(field: &str, name: &str, colon_allowed: bool) -> ApiResult<()> {
    let valid_char =
        |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (colon_allowed && c == ':');
    if name.is_empty() || name.chars().count() > 128 || !name.chars().all(valid_char) {
        let allowed = if colon_allowed {
            "[a-zA-Z0-9:_-]"
        } else {
            "[a-zA-Z0-9_-]"
        };
        return Err(ApiError::invalid(format!(
            "`{field}` must be 1 to 128 characters of {allowed}, not `{name}`"
        )));
    }
    Ok(())
}

/// Checks an optional client request token: 1 to 64 characters of `[a-zA-Z0-9-_]`.
pub fn check_client_request_token(token: Option<&str>) -> ApiResult<()> {
    let Some(token) = token else { return Ok(()) };
    let valid = (1..=64).contains(&token.len())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "`clientRequestToken` must be 1 to 64 characters of [a-zA-Z0-9-_]",
        ))
    }
}

/// Converts an engine error, adding `resourceId` and `resourceArn` to a
/// `ResourceAlreadyExistsException` as AWS does.
pub fn with_existing_resource(error: anyhow::Error, name: &str, arn: String) -> ApiError {
    let error = ApiError::from(error);
    if error.kind() == "ResourceAlreadyExistsException" {
        error.with("resourceId", name).with("resourceArn", arn)
    } else {
        error
    }
}

/// A tag as the API spells it.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// 1 to 128 characters.
    #[serde(rename = "Key")]
    pub key: String,
    /// 0 to 256 characters.
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
}

/// Checks tags and returns them as pairs.
pub fn check_tags(field: &str, tags: &[Tag]) -> ApiResult<Vec<(String, String)>> {
    if tags.len() > 50 {
        return Err(ApiError::invalid(format!(
            "`{field}` holds {} tags; at most 50 are allowed",
            tags.len()
        )));
    }
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            let key_ok = (1..=128).contains(&tag.key.chars().count())
                && tag
                    .key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
            if !key_ok {
                return Err(ApiError::invalid(format!(
                    "`{field}[{i}].Key` must be 1 to 128 letters, digits, spaces or `_.:/=+-@`"
                )));
            }
            let value = tag.value.clone().unwrap_or_default();
            if value.chars().count() > 256 {
                return Err(ApiError::invalid(format!(
                    "`{field}[{i}].Value` must be at most 256 characters"
                )));
            }
            Ok((tag.key.clone(), value))
        })
        .collect()
}

/// Vigil's own routes: datapoint ingestion over HTTP, engine counters and the simulation.
pub fn extension_routes() -> Router<ApiState> {
    Router::new()
        .route("/vigil/datapoints", post(ingest_datapoints))
        .route("/vigil/stats", get(stats))
        .route("/vigil/simulation", get(simulation))
        .route("/vigil/clock", post(set_clock))
        .route("/vigil/notifications", get(notifications))
}

/// Lists stored alert notifications, oldest first, of one topic (`topicArn`) or all.
async fn notifications(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let topic_arn = query.string("topicArn");
    let limit = query
        .integer("maxResults", 1, 1000)?
        .map_or(100, |n| n as usize);
    let after_id = match query.get("nextToken") {
        Some(token) => parse_token(token)?,
        None => 0,
    };
    let page = state
        .call(move |service| {
            Ok(service
                .store()
                .notifications(topic_arn.as_deref(), after_id, limit + 1)?)
        })
        .await?;

    let more = page.len() > limit;
    let page: Vec<_> = page.into_iter().take(limit).collect();
    let next_token = more
        .then(|| page.last().map(|last| token_for(last.id)))
        .flatten();
    let items: Vec<_> = page
        .iter()
        .map(|notification| {
            serde_json::json!({
                "id": notification.id,
                "topicArn": notification.topic_arn,
                "message": notification.message,
                "createdAt": notification.created_at as f64 / 1000.0,
                "deliveredAt": notification.delivered_at.map(|at| at as f64 / 1000.0),
                "attempts": notification.attempts,
            })
        })
        .collect();

    let mut body = serde_json::json!({ "notifications": items });
    if let Some(token) = next_token {
        body["nextToken"] = token.into();
    }
    Ok(json(body))
}

/// One datapoint as `/vigil/datapoints` takes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DatapointInput {
    thing_name: String,
    metric_name: String,
    #[serde(default)]
    dimension_name: Option<String>,
    timestamp: f64,
    value: MetricValue,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IngestInput {
    /// Makes a retried batch count once.
    #[serde(default)]
    batch_id: Option<String>,
    datapoints: Vec<DatapointInput>,
}

const MAX_DATAPOINTS_PER_BATCH: usize = 10_000;

/// The last second of the year 9999, in epoch seconds. Later timestamps are most likely
/// milliseconds sent as seconds, and would move event time thousands of years ahead.
const LATEST_TIMESTAMP_SECONDS: f64 = 253_402_300_799.0;

/// An item and its index in the request.
type Indexed<T> = (usize, T);

/// Splits `inputs` into datapoints, each with its index in the request, and the indices and
/// reasons of those rejected for a timestamp outside 1970 to 9999.
fn datapoints_in_range(
    inputs: Vec<DatapointInput>,
) -> (Vec<Indexed<Datapoint>>, Vec<Indexed<String>>) {
    let mut datapoints = Vec::with_capacity(inputs.len());
    let mut out_of_range = Vec::new();
    for (index, input) in inputs.into_iter().enumerate() {
        if !(0.0..=LATEST_TIMESTAMP_SECONDS).contains(&input.timestamp) {
            out_of_range.push((
                index,
                format!(
                    "`timestamp` {} is outside 1970 to 9999; send seconds since 1970-01-01, not \
                     milliseconds",
                    input.timestamp
                ),
            ));
            continue;
        }
        datapoints.push((
            index,
            Datapoint {
                thing_name: input.thing_name,
                metric: input.metric_name,
                dimension_name: input.dimension_name,
                timestamp: (input.timestamp * 1000.0).round() as Timestamp,
                value: input.value,
            },
        ));
    }
    (datapoints, out_of_range)
}

async fn ingest_datapoints(State(state): State<ApiState>, bytes: Bytes) -> ApiResult<Response> {
    let input: IngestInput = body(&bytes)?;
    if input.datapoints.len() > MAX_DATAPOINTS_PER_BATCH {
        return Err(ApiError::invalid(format!(
            "`datapoints` holds {} items; send at most {MAX_DATAPOINTS_PER_BATCH} per request",
            input.datapoints.len()
        )));
    }
    if let Some(id) = &input.batch_id {
        check_name("batchId", id, false)?;
    }
    let (datapoints, out_of_range) = datapoints_in_range(input.datapoints);
    let response = state
        .call(move |service| {
            if let Some(id) = &input.batch_id
                && let Some(stored) = service.store().request_token("vigil-datapoints", id)?
            {
                return Ok(stored);
            }
            let (indices, datapoints): (Vec<usize>, Vec<Datapoint>) =
                datapoints.into_iter().unzip();
            let result = service
                .engine()
                .run(Command::IngestDatapoints { datapoints })?
                .ingested()?;
            let mut rejected: Vec<(usize, String)> = result
                .rejected
                .into_iter()
                .map(|r| (indices[r.index as usize], r.message))
                .chain(out_of_range)
                .collect();
            rejected.sort_by_key(|(index, _)| *index);
            let rejected: Vec<_> = rejected
                .into_iter()
                .map(|(index, message)| serde_json::json!({"index": index, "message": message}))
                .collect();
            let response =
                serde_json::json!({"accepted": result.accepted, "rejected": rejected}).to_string();
            if let Some(id) = input.batch_id {
                service.write(crate::service::Write::RequestToken {
                    scope: "vigil-datapoints".to_owned(),
                    token: id,
                    response: response.clone(),
                });
            }
            Ok(response)
        })
        .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        response,
    )
        .into_response())
}

async fn stats(State(state): State<ApiState>) -> ApiResult<Response> {
    let stats = state
        .call(|service| {
            let stats = service.engine().queries().stats()?;
            let events = service.store().violation_event_count()?;
            Ok(serde_json::json!({
                "engine": stats,
                "storedViolationEvents": events,
                "eventTime": service.now() as f64 / 1000.0,
            }))
        })
        .await?;
    Ok(json(stats))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockInput {
    time_scale: f64,
}

/// Changes the speed of event time, for example to slow a simulation down once its models are
/// trained.
async fn set_clock(State(state): State<ApiState>, bytes: Bytes) -> ApiResult<Response> {
    let input: ClockInput = body(&bytes)?;
    if !(input.time_scale.is_finite() && (1.0..=1_000_000.0).contains(&input.time_scale)) {
        return Err(ApiError::invalid(format!(
            "`timeScale` must be between 1 and 1000000, not {}",
            input.time_scale
        )));
    }
    let now = state
        .call(move |service| {
            service.set_time_scale(input.time_scale);
            // Catch up to the clock now, so the next query sees every period that ended.
            service.tick()?;
            Ok(service.now())
        })
        .await?;
    Ok(json(serde_json::json!({
        "timeScale": input.time_scale,
        "eventTime": now as f64 / 1000.0,
    })))
}

async fn simulation(State(state): State<ApiState>, RawQuery(_): RawQuery) -> ApiResult<Response> {
    let value = state
        .call(|service| {
            let Some((things, attacks)) = service.simulation() else {
                return Err(ApiError::not_found(
                    "no simulated fleet; start `vigil serve` with --simulate N",
                ));
            };
            Ok(serde_json::json!({"things": things, "attacks": attacks}))
        })
        .await?;
    Ok(json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_cut_returns_a_token_until_the_end() {
        let page = Page {
            offset: 0,
            limit: 2,
        };
        let (items, next) = page.cut(vec![1, 2, 3]);
        assert_eq!(items, vec![1, 2]);
        let next = next.unwrap();
        let offset: usize = parse_token(&next).unwrap();
        let (items, next) = Page { offset, limit: 2 }.cut(vec![1, 2, 3]);
        assert_eq!((items, next), (vec![3], None));
    }

    #[test]
    fn a_foreign_token_is_an_invalid_request() {
        let error = parse_token::<usize>("abc").unwrap_err();
        assert_eq!(error.kind(), "InvalidRequestException");
    }

    #[test]
    fn query_timestamps_accept_iso_8601_and_epoch_seconds() {
        let query = Query::parse(Some("a=2020-09-22T05%3A42%3A13Z&b=1600753333.5")).unwrap();
        assert_eq!(query.timestamp("a").unwrap(), Some(1_600_753_333_000));
        assert_eq!(query.timestamp("b").unwrap(), Some(1_600_753_333_500));
    }

    #[test]
    fn a_body_error_names_the_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code, reason = "only deserialized")]
        struct Input {
            inner: Vec<Inner>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code, reason = "only deserialized")]
        struct Inner {
            count: u64,
        }
        let error =
            body::<Input>(&Bytes::from_static(br#"{"inner":[{"count":"x"}]}"#)).unwrap_err();
        assert!(
            error.message.contains("inner[0].count"),
            "{}",
            error.message
        );
    }
}
