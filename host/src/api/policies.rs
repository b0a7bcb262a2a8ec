//! IoT policies with their versions and targets, and the v2 logging options: the registry
//! parts that the REPLACE_DEFAULT_POLICY_VERSION and ENABLE_IOT_LOGGING mitigation actions
//! change.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::json;

use super::certificates::delete_conflict;
use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiError, ApiResult, ApiState};
use crate::iot::{self, IotError, LoggingOptions};
use crate::service::{Service, Write};
use crate::store::registry::{PolicyRecord, RegistryWrite};

/// `VersionsLimitExceededException`: a policy has five versions.
const VERSIONS_LIMIT: (StatusCode, &str) = (StatusCode::CONFLICT, "VersionsLimitExceededException");
/// AWS attaches at most this many policies to one certificate.
const MAX_POLICIES_PER_TARGET: usize = 10;

/// Returns the routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/policies", get(list_policies))
        .route(
            "/policies/{policy_name}",
            post(create_policy).get(get_policy).delete(delete_policy),
        )
        .route(
            "/policies/{policy_name}/version",
            post(create_policy_version).get(list_policy_versions),
        )
        .route(
            "/policies/{policy_name}/version/{version_id}",
            get(get_policy_version)
                .patch(set_default_policy_version)
                .delete(delete_policy_version),
        )
        .route(
            "/target-policies/{policy_name}",
            put(attach_policy).post(detach_policy),
        )
        .route("/attached-policies/{target}", post(list_attached_policies))
        .route(
            "/v2LoggingOptions",
            post(set_v2_logging_options).get(get_v2_logging_options),
        )
}

fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Checks a policy name against AWS's `[\w+=,.@-]+`, 1 to 128 characters.
fn check_policy_name(name: &str) -> ApiResult<()> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if name.is_empty() || name.chars().count() > 128 || !name.chars().all(valid_char) {
        return Err(ApiError::invalid(format!(
            "`policyName` must be 1 to 128 characters of [a-zA-Z0-9_+=,.@-], not `{name}`"
        )));
    }
    Ok(())
}

/// Checks a policy document, failing with `MalformedPolicyException` as AWS does.
fn check_document(document: &str) -> ApiResult<()> {
    iot::check_policy_document(document).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "MalformedPolicyException",
            error.to_string(),
        )
    })
}

/// Parses a policy version id from a path: a positive number.
fn parse_version_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|version| *version > 0 && id.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "`policyVersionId` must be a version number such as 1, not `{id}`"
            ))
        })
}

fn require_policy(service: &Service, name: &str) -> ApiResult<PolicyRecord> {
    check_policy_name(name)?;
    service
        .store()
        .policy(name)?
        .ok_or_else(|| ApiError::not_found(format!("policy `{name}` does not exist")))
}

/// Returns the document of one version, failing with `ResourceNotFoundException`.
fn version_document(service: &Service, policy: &str, version: i64) -> ApiResult<(String, i64)> {
    service
        .store()
        .policy_versions(policy)?
        .into_iter()
        .find(|v| v.version == version)
        .map(|v| (v.document, v.creation_date))
        .ok_or_else(|| ApiError::not_found(format!("policy `{policy}` has no version {version}")))
}

fn policy_arn(service: &Service, name: &str) -> String {
    service.arn(&format!("policy/{name}"))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePolicyInput {
    policy_document: String,
    tags: Option<Vec<Tag>>,
}

async fn create_policy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreatePolicyInput = body(&bytes)?;
    check_policy_name(&name)?;
    check_document(&input.policy_document)?;
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let response = state
        .call(move |service| {
            let arn = policy_arn(service, &name);
            if service.store().policy(&name)?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ResourceAlreadyExistsException",
                    format!("policy `{name}` already exists"),
                )
                .with("resourceId", name.as_str())
                .with("resourceArn", arn));
            }
            let now = service.now();
            service.write(Write::Registry(RegistryWrite::PolicyVersion {
                policy: name.clone(),
                version: 1,
                document: input.policy_document.clone(),
                set_as_default: true,
                now,
            }));
            if !tags.is_empty() {
                service.write(Write::Tags(arn.clone(), tags));
            }
            Ok(json!({
                "policyName": name,
                "policyArn": arn,
                "policyDocument": input.policy_document,
                "policyVersionId": "1",
            }))
        })
        .await?;
    Ok(respond(response))
}

async fn get_policy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            let record = require_policy(service, &name)?;
            let (document, _) = version_document(service, &name, record.default_version)?;
            Ok(json!({
                "policyName": name,
                "policyArn": policy_arn(service, &name),
                "policyDocument": document,
                "defaultVersionId": record.default_version.to_string(),
                "creationDate": epoch_seconds(record.creation_date),
                "lastModifiedDate": epoch_seconds(record.last_modified_date),
            }))
        })
        .await?;
    Ok(respond(value))
}

async fn delete_policy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    state
        .call(move |service| {
            let record = require_policy(service, &name)?;
            let targets = service.store().policy_targets(&name)?;
            if !targets.is_empty() {
                return Err(delete_conflict(format!(
                    "policy `{name}` is attached to {targets:?}; detach it with DetachPolicy first"
                )));
            }
            let versions = service.store().policy_versions(&name)?;
            if versions.iter().any(|v| v.version != record.default_version) {
                return Err(delete_conflict(format!(
                    "policy `{name}` has non-default versions; delete them with \
                     DeletePolicyVersion first"
                )));
            }
            service.write(Write::DropTags(policy_arn(service, &name)));
            service.write(Write::Registry(RegistryWrite::DropPolicy(name)));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_policies(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.marker_page(25)?;
    let ascending = query.boolean("isAscendingOrder")?.unwrap_or(false);
    let policies = state
        .call(move |service| {
            let mut names = service.store().policy_names()?;
            if !ascending {
                names.reverse();
            }
            Ok(names
                .into_iter()
                .map(|name| json!({"policyArn": policy_arn(service, &name), "policyName": name}))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(wire::marker_listing("policies", page, policies))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePolicyVersionInput {
    policy_document: String,
}

async fn create_policy_version(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreatePolicyVersionInput = body(&bytes)?;
    check_policy_name(&name)?;
    check_document(&input.policy_document)?;
    let set_as_default = Query::parse(raw.as_deref())?
        .boolean("setAsDefault")?
        .unwrap_or(false);
    let response = state
        .call(move |service| {
            let version = service
                .create_policy_version(&name, &input.policy_document, set_as_default)
                .map_err(|error| ApiError::from_iot(error, VERSIONS_LIMIT))?;
            Ok(json!({
                "policyArn": policy_arn(service, &name),
                "policyDocument": input.policy_document,
                "policyVersionId": version,
                "isDefaultVersion": set_as_default,
            }))
        })
        .await?;
    Ok(respond(response))
}

async fn list_policy_versions(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            let record = require_policy(service, &name)?;
            let versions: Vec<_> = service
                .store()
                .policy_versions(&name)?
                .into_iter()
                .rev()
                .map(|v| {
                    json!({
                        "versionId": v.version.to_string(),
                        "isDefaultVersion": v.version == record.default_version,
                        "createDate": epoch_seconds(v.creation_date),
                    })
                })
                .collect();
            Ok(json!({ "policyVersions": versions }))
        })
        .await?;
    Ok(respond(value))
}

async fn get_policy_version(
    State(state): State<ApiState>,
    Path((name, version_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = parse_version_id(&version_id)?;
    let value = state
        .call(move |service| {
            let record = require_policy(service, &name)?;
            let (document, created) = version_document(service, &name, version)?;
            Ok(json!({
                "policyArn": policy_arn(service, &name),
                "policyName": name,
                "policyDocument": document,
                "policyVersionId": version.to_string(),
                "isDefaultVersion": version == record.default_version,
                "creationDate": epoch_seconds(created),
                "lastModifiedDate": epoch_seconds(created),
            }))
        })
        .await?;
    Ok(respond(value))
}

async fn set_default_policy_version(
    State(state): State<ApiState>,
    Path((name, version_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = parse_version_id(&version_id)?;
    state
        .call(move |service| {
            require_policy(service, &name)?;
            version_document(service, &name, version)?;
            let now = service.now();
            service.write(Write::Registry(RegistryWrite::DefaultPolicyVersion {
                policy: name,
                version,
                now,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn delete_policy_version(
    State(state): State<ApiState>,
    Path((name, version_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = parse_version_id(&version_id)?;
    state
        .call(move |service| {
            let record = require_policy(service, &name)?;
            version_document(service, &name, version)?;
            if version == record.default_version {
                return Err(delete_conflict(format!(
                    "version {version} is the default version of policy `{name}`; make another \
                     version the default with SetDefaultPolicyVersion or delete the policy"
                )));
            }
            service.write(Write::Registry(RegistryWrite::DropPolicyVersion {
                policy: name,
                version,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

/// Checks that `target` is the ARN of a registered certificate or an existing thing group.
fn require_target(service: &mut Service, target: &str) -> ApiResult<()> {
    if let Some(id) = iot::certificate_id_of_arn(target) {
        if service.certificate_arn(id) == target && service.store().certificate(id)?.is_some() {
            return Ok(());
        }
        return Err(ApiError::not_found(format!(
            "target `{target}` is not a certificate registered in this account and region"
        )));
    }
    if let Some((_, group)) = target.split_once(":thinggroup/")
        && service.arn(&format!("thinggroup/{group}")) == target
    {
        service
            .engine()
            .queries()
            .list_things_in_thing_group(group)?;
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "`target` must be a certificate ARN or a thing group ARN of this account and region, \
         not `{target}`"
    )))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyTargetInput {
    target: String,
}

async fn attach_policy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: PolicyTargetInput = body(&bytes)?;
    state
        .call(move |service| {
            require_policy(service, &name)?;
            require_target(service, &input.target)?;
            let attached = service.store().target_policies(&input.target)?;
            if !attached.contains(&name) && attached.len() >= MAX_POLICIES_PER_TARGET {
                return Err(IotError::LimitExceeded(format!(
                    "`{}` has {MAX_POLICIES_PER_TARGET} policies attached, the maximum",
                    input.target
                ))
                .into());
            }
            service.write(Write::Registry(RegistryWrite::AttachPolicy {
                policy: name,
                target: input.target,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn detach_policy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: PolicyTargetInput = body(&bytes)?;
    check_policy_name(&name)?;
    state
        .call(move |service| {
            service.write(Write::Registry(RegistryWrite::DetachPolicy {
                policy: name,
                target: input.target,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

/// Lists the policies attached to a target. Thing groups are flat in Vigil, so `recursive`
/// adds no parent groups.
async fn list_attached_policies(
    State(state): State<ApiState>,
    Path(target): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    query.boolean("recursive")?;
    let page = query.marker_page(25)?;
    let policies = state
        .call(move |service| {
            require_target(service, &target)?;
            Ok(service
                .store()
                .target_policies(&target)?
                .into_iter()
                .map(|name| json!({"policyArn": policy_arn(service, &name), "policyName": name}))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(wire::marker_listing("policies", page, policies))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetLoggingOptionsInput {
    role_arn: Option<String>,
    default_log_level: Option<String>,
    disable_all_logs: Option<bool>,
}

async fn set_v2_logging_options(
    State(state): State<ApiState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: SetLoggingOptionsInput = body(&bytes)?;
    // NOTE: a request without `defaultLogLevel` stores ERROR; AWS's documentation does not say
    // which level applies then.
    let options = LoggingOptions {
        role_arn: input.role_arn.unwrap_or_default(),
        default_log_level: input
            .default_log_level
            .unwrap_or_else(|| "ERROR".to_owned()),
        disable_all_logs: input.disable_all_logs.unwrap_or(false),
    };
    state
        .call(move |service| Ok(service.set_logging_options(options)?))
        .await?;
    Ok(empty())
}

async fn get_v2_logging_options(State(state): State<ApiState>) -> ApiResult<Response> {
    let options = state
        .call(|service| Ok(service.logging_options()?))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotConfiguredException",
                "v2 logging options were never set; set them with SetV2LoggingOptions",
            )
        })?;
    let mut value = json!({
        "defaultLogLevel": options.default_log_level,
        "disableAllLogs": options.disable_all_logs,
    });
    if !options.role_arn.is_empty() {
        value["roleArn"] = options.role_arn.into();
    }
    Ok(respond(value))
}
