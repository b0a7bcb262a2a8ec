//! Security profiles, targets, violations, model training and metric values.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_core::SecurityProfileFilter;
use vigil_core::model::{
    AlertTarget, Behavior, DimensionValueOperator, MetricToRetain, SecurityProfile,
    StoredSecurityProfile, VerificationState,
};
use vigil_core::violations::ViolationFilter;

use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiError, ApiResult, ApiState};
use crate::journal::Command;
use crate::service::{Service, Write};
use crate::store::EventQuery;

/// The routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/security-profiles", get(list_security_profiles))
        .route(
            "/security-profiles/{name}",
            post(create_security_profile)
                .get(describe_security_profile)
                .patch(update_security_profile)
                .delete(delete_security_profile),
        )
        .route(
            "/security-profiles/{name}/targets",
            get(list_targets_for_security_profile)
                .put(attach_security_profile)
                .delete(detach_security_profile),
        )
        .route(
            "/security-profiles-for-target",
            get(list_security_profiles_for_target),
        )
        .route(
            "/security-profile-behaviors/validate",
            post(validate_security_profile_behaviors),
        )
        .route(
            "/behavior-model-training/summaries",
            get(get_behavior_model_training_summaries),
        )
        .route("/active-violations", get(list_active_violations))
        .route("/violation-events", get(list_violation_events))
        .route(
            "/violations/verification-state/{violation_id}",
            post(put_verification_state_on_violation),
        )
        .route("/metric-values", get(list_metric_values))
}

/// `metricsExportConfig` as AWS takes it.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricsExportConfig {
    mqtt_topic: String,
    role_arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateSecurityProfileInput {
    security_profile_description: Option<String>,
    behaviors: Option<Vec<Behavior>>,
    alert_targets: Option<BTreeMap<String, AlertTarget>>,
    additional_metrics_to_retain: Option<Vec<String>>,
    #[serde(rename = "additionalMetricsToRetainV2")]
    additional_metrics_to_retain_v2: Option<Vec<MetricToRetain>>,
    tags: Option<Vec<Tag>>,
    metrics_export_config: Option<MetricsExportConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateSecurityProfileInput {
    security_profile_description: Option<String>,
    behaviors: Option<Vec<Behavior>>,
    alert_targets: Option<BTreeMap<String, AlertTarget>>,
    additional_metrics_to_retain: Option<Vec<String>>,
    #[serde(rename = "additionalMetricsToRetainV2")]
    additional_metrics_to_retain_v2: Option<Vec<MetricToRetain>>,
    #[serde(default)]
    delete_behaviors: bool,
    #[serde(default)]
    delete_alert_targets: bool,
    #[serde(default)]
    delete_additional_metrics_to_retain: bool,
    metrics_export_config: Option<MetricsExportConfig>,
    #[serde(default)]
    delete_metrics_export_config: bool,
}

/// Fields of a profile the engine does not model: the metrics export settings, echoed back by
/// describe.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileExtras {
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_export_config: Option<MetricsExportConfig>,
}

impl ProfileExtras {
    fn to_value(&self) -> Option<Value> {
        let value = serde_json::to_value(self).ok()?;
        value
            .as_object()
            .is_some_and(|map| !map.is_empty())
            .then_some(value)
    }
}

fn check_description(description: Option<&str>) -> ApiResult<()> {
    if let Some(text) = description
        && (text.chars().count() > 1000 || text.chars().any(|c| c.is_control()))
    {
        return Err(ApiError::invalid(
            "`securityProfileDescription` must be at most 1000 printable characters",
        ));
    }
    Ok(())
}

async fn create_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateSecurityProfileInput = body(&bytes)?;
    check_description(input.security_profile_description.as_deref())?;
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let extras = ProfileExtras {
        metrics_export_config: input.metrics_export_config,
    };
    let profile = SecurityProfile {
        name: name.clone(),
        description: input.security_profile_description,
        behaviors: input.behaviors.unwrap_or_default(),
        alert_targets: input.alert_targets.unwrap_or_default(),
        additional_metrics_to_retain: input.additional_metrics_to_retain.unwrap_or_default(),
        additional_metrics_to_retain_v2: input.additional_metrics_to_retain_v2.unwrap_or_default(),
    };
    let stored = state
        .call(move |service| {
            let now = service.now();
            let stored = service
                .engine()
                .run(Command::CreateSecurityProfile { profile, now })
                .map_err(|error| {
                    let arn = service.arn(&format!("securityprofile/{name}"));
                    wire::with_existing_resource(error, &name, arn)
                })?
                .profile()?;
            if !tags.is_empty() {
                service.write(Write::Tags(stored.arn.clone(), tags));
            }
            service.write(Write::ProfileExtras(name, extras.to_value()));
            Ok(stored)
        })
        .await?;
    Ok(respond(json!({
        "securityProfileName": stored.profile.name,
        "securityProfileArn": stored.arn,
    })))
}

/// Describes a stored profile as AWS does, with the extra fields merged in.
fn describe_json(service: &Service, stored: &StoredSecurityProfile) -> ApiResult<Value> {
    let mut value = serde_json::to_value(stored).map_err(anyhow::Error::from)?;
    if let (Some(map), Some(Value::Object(extras))) = (
        value.as_object_mut(),
        service.store().profile_extras(&stored.profile.name)?,
    ) {
        map.extend(extras);
    }
    Ok(value)
}

async fn describe_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            let stored = service
                .engine()
                .queries()
                .describe_security_profile(&name)?;
            describe_json(service, &stored)
        })
        .await?;
    Ok(respond(value))
}

fn expected_version(query: &Query) -> ApiResult<Option<u64>> {
    Ok(query
        .integer("expectedVersion", 0, i64::MAX)?
        .map(|v| u64::try_from(v).unwrap_or(0)))
}

/// Rejects a delete flag sent together with the field it clears.
fn check_exclusive(flag: bool, field_present: bool, flag_name: &str, field: &str) -> ApiResult<()> {
    if flag && field_present {
        return Err(ApiError::invalid(format!(
            "`{flag_name}` and `{field}` cannot be sent together"
        )));
    }
    Ok(())
}

async fn update_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let expected = expected_version(&query)?;
    let input: UpdateSecurityProfileInput = body(&bytes)?;
    check_description(input.security_profile_description.as_deref())?;
    check_exclusive(
        input.delete_behaviors,
        input.behaviors.is_some(),
        "deleteBehaviors",
        "behaviors",
    )?;
    check_exclusive(
        input.delete_alert_targets,
        input.alert_targets.is_some(),
        "deleteAlertTargets",
        "alertTargets",
    )?;
    check_exclusive(
        input.delete_additional_metrics_to_retain,
        input.additional_metrics_to_retain.is_some()
            || input.additional_metrics_to_retain_v2.is_some(),
        "deleteAdditionalMetricsToRetain",
        "additionalMetricsToRetainV2",
    )?;
    check_exclusive(
        input.delete_metrics_export_config,
        input.metrics_export_config.is_some(),
        "deleteMetricsExportConfig",
        "metricsExportConfig",
    )?;
    let value = state
        .call(move |service| {
            let current = service
                .engine()
                .queries()
                .describe_security_profile(&name)?;
            let mut extras: ProfileExtras = service
                .store()
                .profile_extras(&name)?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            let profile = updated_profile(current.profile, &input, &mut extras);
            let now = service.now();
            let stored = service
                .engine()
                .run(Command::UpdateSecurityProfile {
                    profile,
                    expected_version: expected,
                    now,
                })?
                .updated_profile()?;
            service.write(Write::ProfileExtras(name, extras.to_value()));
            // The extras are written in this request's commit, so merge them here.
            let mut value = serde_json::to_value(&stored).map_err(anyhow::Error::from)?;
            if let (Some(map), Some(Value::Object(extra))) =
                (value.as_object_mut(), extras.to_value())
            {
                map.extend(extra);
            }
            Ok(value)
        })
        .await?;
    Ok(respond(value))
}

/// Applies an update's fields and delete flags to the stored profile.
fn updated_profile(
    mut profile: SecurityProfile,
    input: &UpdateSecurityProfileInput,
    extras: &mut ProfileExtras,
) -> SecurityProfile {
    if let Some(description) = &input.security_profile_description {
        profile.description = Some(description.clone());
    }
    if input.delete_behaviors {
        profile.behaviors.clear();
    } else if let Some(behaviors) = &input.behaviors {
        profile.behaviors = behaviors.clone();
    }
    if input.delete_alert_targets {
        profile.alert_targets.clear();
    } else if let Some(targets) = &input.alert_targets {
        profile.alert_targets = targets.clone();
    }
    if input.delete_additional_metrics_to_retain {
        profile.additional_metrics_to_retain.clear();
        profile.additional_metrics_to_retain_v2.clear();
    } else {
        if let Some(metrics) = &input.additional_metrics_to_retain {
            profile.additional_metrics_to_retain = metrics.clone();
        }
        if let Some(metrics) = &input.additional_metrics_to_retain_v2 {
            profile.additional_metrics_to_retain_v2 = metrics.clone();
        }
    }
    if input.delete_metrics_export_config {
        extras.metrics_export_config = None;
    } else if let Some(config) = &input.metrics_export_config {
        extras.metrics_export_config = Some(config.clone());
    }
    profile
}

async fn delete_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let expected = expected_version(&query)?;
    state
        .call(move |service| {
            let now = service.now();
            service.engine().run(Command::DeleteSecurityProfile {
                name: name.clone(),
                expected_version: expected,
                now,
            })?;
            service.write(Write::DropTags(
                service.arn(&format!("securityprofile/{name}")),
            ));
            service.write(Write::ProfileExtras(name, None));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_security_profiles(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let dimension = query.string("dimensionName");
    let metric = query.string("metricName");
    let (names, next, arns) = state
        .call(move |service| {
            let filter = SecurityProfileFilter {
                dimension_name: dimension,
                metric_name: metric,
            };
            let names = service.engine().queries().list_security_profiles(filter)?;
            let (names, next) = page.cut(names);
            let arns: Vec<String> = names
                .iter()
                .map(|n| service.arn(&format!("securityprofile/{n}")))
                .collect();
            Ok((names, next, arns))
        })
        .await?;
    let identifiers: Vec<Value> = names
        .into_iter()
        .zip(arns)
        .map(|(name, arn)| json!({"name": name, "arn": arn}))
        .collect();
    Ok(respond(with_token(
        json!({"securityProfileIdentifiers": identifiers}),
        next,
    )))
}

/// Adds `nextToken` to a list response when there is a next page.
pub fn with_token(mut value: Value, next: Option<String>) -> Value {
    if let (Some(map), Some(token)) = (value.as_object_mut(), next) {
        map.insert("nextToken".to_owned(), token.into());
    }
    value
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValidateInput {
    behaviors: Vec<Behavior>,
}

async fn validate_security_profile_behaviors(
    State(state): State<ApiState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: ValidateInput = body(&bytes)?;
    let problems = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .validate_behaviors(input.behaviors)?)
        })
        .await?;
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({"errorMessage": p.to_string()}))
        .collect();
    Ok(respond(json!({
        "valid": errors.is_empty(),
        "validationErrors": errors,
    })))
}

async fn attach_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let target_arn = query.required("securityProfileTargetArn")?.to_owned();
    state
        .run(move |_| Command::AttachSecurityProfile { name, target_arn })
        .await?;
    Ok(empty())
}

async fn detach_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let target_arn = query.required("securityProfileTargetArn")?.to_owned();
    state
        .run(move |now| Command::DetachSecurityProfile {
            name,
            target_arn,
            now,
        })
        .await?;
    Ok(empty())
}

async fn list_targets_for_security_profile(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let targets = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .list_targets_for_security_profile(&name)?)
        })
        .await?;
    let (targets, next) = page.cut(targets);
    let targets: Vec<Value> = targets.into_iter().map(|arn| json!({"arn": arn})).collect();
    Ok(respond(with_token(
        json!({"securityProfileTargets": targets}),
        next,
    )))
}

async fn list_security_profiles_for_target(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    // Vigil's thing groups have no parents, so `recursive` adds nothing; it is still checked.
    query.boolean("recursive")?;
    let target = query.required("securityProfileTargetArn")?.to_owned();
    let (names, arns) = state
        .call({
            let target = target.clone();
            move |service| {
                let names = service
                    .engine()
                    .queries()
                    .list_security_profiles_for_target(&target)?;
                let arns = names
                    .iter()
                    .map(|n| service.arn(&format!("securityprofile/{n}")))
                    .collect::<Vec<_>>();
                Ok((names, arns))
            }
        })
        .await?;
    let mappings: Vec<Value> = names
        .into_iter()
        .zip(arns)
        .map(|(name, arn)| {
            json!({
                "securityProfileIdentifier": {"name": name, "arn": arn},
                "target": {"arn": target},
            })
        })
        .collect();
    let (mappings, next) = page.cut(mappings);
    Ok(respond(with_token(
        json!({"securityProfileTargetMappings": mappings}),
        next,
    )))
}

async fn get_behavior_model_training_summaries(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(10, 10)?;
    let profile = query.string("securityProfileName");
    let summaries = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .training_summaries(profile.as_deref())?)
        })
        .await?;
    let (summaries, next) = page.cut(summaries);
    Ok(respond(with_token(json!({"summaries": summaries}), next)))
}

fn violation_filter(query: &Query) -> ApiResult<ViolationFilter> {
    Ok(ViolationFilter {
        thing_name: query.string("thingName"),
        security_profile_name: query.string("securityProfileName"),
        behavior_criteria_type: query.wire_enum("behaviorCriteriaType")?,
        list_suppressed_alerts: query.boolean("listSuppressedAlerts")?,
        verification_state: query.wire_enum("verificationState")?,
    })
}

async fn list_active_violations(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let filter = violation_filter(&query)?;
    let violations = state
        .call(move |service| Ok(service.engine().queries().list_active_violations(filter)?))
        .await?;
    let (violations, next) = page.cut(violations);
    Ok(respond(with_token(
        json!({"activeViolations": violations}),
        next,
    )))
}

async fn list_violation_events(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let limit = query
        .integer("maxResults", 1, 250)?
        .map_or(250, |n| usize::try_from(n).unwrap_or(250));
    let after: i64 = match query.get("nextToken") {
        Some(token) => wire::parse_token(token)?,
        None => 0,
    };
    let filter = violation_filter(&query)?;
    let event_query = EventQuery {
        start_time: query.required_timestamp("startTime")?,
        end_time: query.required_timestamp("endTime")?,
        thing_name: filter.thing_name,
        security_profile_name: filter.security_profile_name,
        criteria_type: query.string("behaviorCriteriaType"),
        list_suppressed_alerts: filter.list_suppressed_alerts,
        verification_state: filter.verification_state,
    };
    let mut rows = state
        .call(move |service| {
            Ok(service
                .store()
                .violation_events(&event_query, after, limit + 1)?)
        })
        .await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        wire::token_for(rows.last().map_or(after, |(id, _)| *id))
    });
    let events: Vec<_> = rows.into_iter().map(|(_, event)| event).collect();
    Ok(respond(with_token(
        json!({"violationEvents": events}),
        next,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VerificationInput {
    verification_state: VerificationState,
    verification_state_description: Option<String>,
}

async fn put_verification_state_on_violation(
    State(state): State<ApiState>,
    Path(violation_id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: VerificationInput = body(&bytes)?;
    if let Some(text) = &input.verification_state_description
        && (text.chars().count() > 1000 || text.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "`verificationStateDescription` must be at most 1000 characters without control \
             characters",
        ));
    }
    state
        .call(move |service| {
            service.engine().run(Command::PutVerificationState {
                violation_id: violation_id.clone(),
                state: input.verification_state,
                description: input.verification_state_description.clone(),
            })?;
            service.write(Write::Verification(
                violation_id,
                input.verification_state,
                input.verification_state_description,
            ));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_metric_values(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let limit = query
        .integer("maxResults", 1, 250)?
        .map_or(250, |n| usize::try_from(n).unwrap_or(250));
    let after: Option<i64> = query.get("nextToken").map(wire::parse_token).transpose()?;
    let thing = query.required("thingName")?.to_owned();
    let metric = query.required("metricName")?.to_owned();
    let dimension = query.string("dimensionName");
    let _operator: Option<DimensionValueOperator> = query.wire_enum("dimensionValueOperator")?;
    let range = (
        query.required_timestamp("startTime")?,
        query.required_timestamp("endTime")?,
    );
    let mut values = state
        .call(move |service| {
            Ok(service.store().metric_values(
                (&thing, &metric, dimension.as_deref()),
                range,
                after,
                limit + 1,
            )?)
        })
        .await?;
    let next = (values.len() > limit).then(|| {
        values.truncate(limit);
        wire::token_for(values.last().map_or(0, |(t, _)| *t))
    });
    let data: Vec<Value> = values
        .into_iter()
        .map(|(timestamp, value)| json!({"timestamp": timestamp as f64 / 1000.0, "value": value}))
        .collect();
    Ok(respond(with_token(json!({"metricDatumList": data}), next)))
}
