//! Mitigation actions and detect mitigation tasks. A started task runs through the plugins
//! before the response, so describe and list show its executions right away.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_core::ExecutionFilter;
use vigil_core::model::{
    DetectMitigationActionsTaskSummary, DetectMitigationActionsTaskTarget, MitigationActionParams,
    MitigationActionType, TaskRequest, ViolationEventOccurrenceRange,
};

use super::detect::with_token;
use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiResult, ApiState};
use crate::journal::Command;
use crate::service::{self, Write};

/// The routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/mitigationactions/actions", get(list_mitigation_actions))
        .route(
            "/mitigationactions/actions/{name}",
            axum::routing::post(create_mitigation_action)
                .get(describe_mitigation_action)
                .patch(update_mitigation_action)
                .delete(delete_mitigation_action),
        )
        .route(
            "/detect/mitigationactions/tasks",
            get(list_detect_mitigation_actions_tasks),
        )
        .route(
            "/detect/mitigationactions/tasks/{task_id}",
            put(start_detect_mitigation_actions_task).get(describe_detect_mitigation_actions_task),
        )
        .route(
            "/detect/mitigationactions/tasks/{task_id}/cancel",
            put(cancel_detect_mitigation_actions_task),
        )
        .route(
            "/detect/mitigationactions/executions",
            get(list_detect_mitigation_actions_executions),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateActionInput {
    role_arn: String,
    action_params: MitigationActionParams,
    tags: Option<Vec<Tag>>,
}

async fn create_mitigation_action(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateActionInput = body(&bytes)?;
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let action = state
        .call(move |service| {
            let now = service.now();
            let action_id = crate::ids::uuid_from(&["mitigation-action", &name, &now.to_string()]);
            let action = service
                .engine()
                .run(Command::CreateMitigationAction {
                    name: name.clone(),
                    action_id,
                    role_arn: input.role_arn,
                    params: input.action_params,
                    now,
                })
                .map_err(|error| {
                    let arn = service.arn(&format!("mitigationaction/{name}"));
                    wire::with_existing_resource(error, &name, arn)
                })?
                .action()?;
            if !tags.is_empty() {
                service.write(Write::Tags(action.action_arn.clone(), tags));
            }
            Ok(action)
        })
        .await?;
    Ok(respond(json!({
        "actionArn": action.action_arn,
        "actionId": action.action_id,
    })))
}

async fn describe_mitigation_action(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let action = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .describe_mitigation_action(&name)?)
        })
        .await?;
    Ok(respond(action))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateActionInput {
    role_arn: Option<String>,
    action_params: Option<MitigationActionParams>,
}

async fn update_mitigation_action(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: UpdateActionInput = body(&bytes)?;
    let action = state
        .run(move |now| Command::UpdateMitigationAction {
            name,
            role_arn: input.role_arn,
            params: input.action_params,
            now,
        })
        .await?
        .action()?;
    Ok(respond(json!({
        "actionArn": action.action_arn,
        "actionId": action.action_id,
    })))
}

async fn delete_mitigation_action(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    state
        .call(move |service| {
            service
                .engine()
                .run(Command::DeleteMitigationAction { name: name.clone() })?;
            service.write(Write::DropTags(
                service.arn(&format!("mitigationaction/{name}")),
            ));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_mitigation_actions(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let action_type: Option<MitigationActionType> = query.wire_enum("actionType")?;
    let actions = state
        .call(move |service| Ok(service.engine().queries().list_mitigation_actions()?))
        .await?;
    let identifiers: Vec<Value> = actions
        .into_iter()
        .filter(|a| action_type.is_none_or(|t| a.action_type == t))
        .map(|a| {
            json!({
                "actionName": a.action_name,
                "actionArn": a.action_arn,
                "creationDate": a.creation_date as f64 / 1000.0,
            })
        })
        .collect();
    let (identifiers, next) = page.cut(identifiers);
    Ok(respond(with_token(
        json!({"actionIdentifiers": identifiers}),
        next,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartTaskInput {
    target: DetectMitigationActionsTaskTarget,
    actions: Vec<String>,
    violation_event_occurrence_range: Option<ViolationEventOccurrenceRange>,
    #[serde(default)]
    include_only_active_violations: bool,
    #[serde(default)]
    include_suppressed_alerts: bool,
    client_request_token: Option<String>,
}

const START_TASK_SCOPE: &str = "start-detect-mitigation-actions-task";

async fn start_detect_mitigation_actions_task(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: StartTaskInput = body(&bytes)?;
    wire::check_client_request_token(input.client_request_token.as_deref())?;
    let request = TaskRequest {
        task_id: task_id.clone(),
        target: input.target,
        actions: input.actions,
        violation_event_occurrence_range: input.violation_event_occurrence_range,
        include_only_active_violations: input.include_only_active_violations,
        include_suppressed_alerts: input.include_suppressed_alerts,
    };
    let token = input.client_request_token;
    let response = json!({"taskId": task_id});
    state
        .call(move |service| {
            let token_key = token.as_ref().map(|t| format!("{task_id}/{t}"));
            if let Some(key) = &token_key
                && service
                    .store()
                    .request_token(START_TASK_SCOPE, key)?
                    .is_some()
            {
                return Ok(());
            }
            let now = service.now();
            service
                .engine()
                .run(Command::StartMitigationTask { request, now })?;
            if let Some(key) = token_key {
                service.write(Write::RequestToken {
                    scope: START_TASK_SCOPE.to_owned(),
                    token: key,
                    response: task_id.clone(),
                });
            }
            service::run_task(service, &task_id)?;
            Ok(())
        })
        .await?;
    Ok(respond(response))
}

/// A task summary as AWS shapes it: `actionsDefinition` lists each action as
/// `{name, id, roleArn, actionParams}`, not as the stored action.
fn task_summary_json(task: &DetectMitigationActionsTaskSummary) -> ApiResult<Value> {
    let mut value = serde_json::to_value(task).map_err(anyhow::Error::from)?;
    let definitions: Vec<Value> = task
        .actions_definition
        .iter()
        .map(|action| {
            json!({
                "name": action.action_name,
                "id": action.action_id,
                "roleArn": action.role_arn,
                "actionParams": action.action_params,
            })
        })
        .collect();
    value["actionsDefinition"] = Value::Array(definitions);
    Ok(value)
}

async fn describe_detect_mitigation_actions_task(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
) -> ApiResult<Response> {
    let task = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .describe_mitigation_task(&task_id)?)
        })
        .await?;
    Ok(respond(json!({"taskSummary": task_summary_json(&task)?})))
}

async fn cancel_detect_mitigation_actions_task(
    State(state): State<ApiState>,
    Path(task_id): Path<String>,
) -> ApiResult<Response> {
    state
        .run(move |now| Command::CancelMitigationTask { task_id, now })
        .await?;
    Ok(empty())
}

async fn list_detect_mitigation_actions_tasks(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let start = query.required_timestamp("startTime")?;
    let end = query.required_timestamp("endTime")?;
    let tasks = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .list_mitigation_tasks(start, end)?)
        })
        .await?;
    let (tasks, next) = page.cut(tasks);
    let tasks = tasks
        .iter()
        .map(task_summary_json)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(respond(with_token(json!({"tasks": tasks}), next)))
}

async fn list_detect_mitigation_actions_executions(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let filter = ExecutionFilter {
        task_id: query.string("taskId"),
        violation_id: query.string("violationId"),
        thing_name: query.string("thingName"),
        start_time: query.timestamp("startTime")?,
        end_time: query.timestamp("endTime")?,
    };
    // `actionName` is a Vigil extension: AWS filters executions only by task, violation, thing
    // and time.
    let action_name = query.string("actionName");
    let executions = state
        .call(move |service| {
            Ok(service
                .engine()
                .queries()
                .list_mitigation_executions(filter)?)
        })
        .await?;
    let executions: Vec<_> = executions
        .into_iter()
        .filter(|execution| {
            action_name
                .as_ref()
                .is_none_or(|name| execution.action_name == *name)
        })
        .collect();
    let (executions, next) = page.cut(executions);
    Ok(respond(with_token(
        json!({"actionsExecutions": executions}),
        next,
    )))
}
