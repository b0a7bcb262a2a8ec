//! The IoT registry operations the ML Detect guide and the mitigation actions need: things and
//! static thing groups.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::detect::with_token;
use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiError, ApiResult, ApiState};
use crate::journal::Command;
use crate::service::{Service, Write};
use crate::store::ThingGroupRecord;

/// The routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/things/{thing_name}", post(create_thing))
        .route(
            "/things/{thing_name}/thing-groups",
            get(list_thing_groups_for_thing),
        )
        .route(
            "/thing-groups/{group}",
            post(create_thing_group)
                .get(describe_thing_group)
                .delete(delete_thing_group),
        )
        .route(
            "/thing-groups/{group}/things",
            get(list_things_in_thing_group),
        )
        .route(
            "/thing-groups/addThingToThingGroup",
            put(add_thing_to_thing_group),
        )
        .route(
            "/thing-groups/removeThingFromThingGroup",
            put(remove_thing_from_thing_group),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThingInput {
    thing_type_name: Option<String>,
    attribute_payload: Option<Value>,
    billing_group_name: Option<String>,
}

async fn create_thing(
    State(state): State<ApiState>,
    Path(thing_name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateThingInput = body(&bytes)?;
    if input.thing_type_name.is_some() || input.billing_group_name.is_some() {
        return Err(ApiError::invalid(
            "Vigil's registry has no thing types or billing groups; leave out \
             `thingTypeName` and `billingGroupName`",
        ));
    }
    reject_attributes("attributePayload", input.attribute_payload.as_ref())?;
    let (thing_id, arn) = state
        .call(move |service| {
            let thing_id = match service.store().thing_id(&thing_name)? {
                Some(id) => id,
                None => {
                    service.engine().run(Command::CreateThing {
                        name: thing_name.clone(),
                    })?;
                    let id = crate::ids::uuid_from(&["thing", &thing_name]);
                    service.write(Write::Thing(thing_name.clone(), id.clone()));
                    id
                }
            };
            Ok((
                thing_id,
                (
                    thing_name.clone(),
                    service.arn(&format!("thing/{thing_name}")),
                ),
            ))
        })
        .await?;
    Ok(respond(json!({
        "thingName": arn.0,
        "thingArn": arn.1,
        "thingId": thing_id,
    })))
}

/// Refuses registry attributes, which Vigil does not keep, rather than dropping them silently.
fn reject_attributes(field: &str, payload: Option<&Value>) -> ApiResult<()> {
    let empty = payload.is_none_or(|p| {
        p.get("attributes")
            .and_then(Value::as_object)
            .is_none_or(serde_json::Map::is_empty)
    });
    if empty {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Vigil's registry keeps no attributes; leave out `{field}`"
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThingGroupProperties {
    thing_group_description: Option<String>,
    attribute_payload: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThingGroupInput {
    parent_group_name: Option<String>,
    thing_group_properties: Option<ThingGroupProperties>,
    tags: Option<Vec<Tag>>,
}

async fn create_thing_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: CreateThingGroupInput = body(&bytes)?;
    if input.parent_group_name.is_some() {
        return Err(ApiError::invalid(
            "Vigil's thing groups are flat; leave out `parentGroupName`",
        ));
    }
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let properties = input.thing_group_properties.unwrap_or_default();
    reject_attributes(
        "thingGroupProperties.attributePayload",
        properties.attribute_payload.as_ref(),
    )?;
    let description = properties.thing_group_description;
    let (arn, group_id) = state
        .call(move |service| {
            let now = service.now();
            let arn = service
                .engine()
                .run(Command::CreateThingGroup {
                    name: group.clone(),
                })?
                .group_arn()?;
            let record = ThingGroupRecord {
                group_id: crate::ids::uuid_from(&["thing-group", &group, &now.to_string()]),
                description,
                creation_date: now,
            };
            let group_id = record.group_id.clone();
            service.write(Write::ThingGroup(group.clone(), record));
            if !tags.is_empty() {
                service.write(Write::Tags(arn.clone(), tags));
            }
            Ok(((group, arn), group_id))
        })
        .await?;
    Ok(respond(json!({
        "thingGroupName": arn.0,
        "thingGroupArn": arn.1,
        "thingGroupId": group_id,
    })))
}

/// Fails with `ResourceNotFoundException` unless the group exists.
fn things_in_group(service: &mut Service, group: &str) -> ApiResult<Vec<String>> {
    Ok(service
        .engine()
        .queries()
        .list_things_in_thing_group(group)?)
}

async fn describe_thing_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            things_in_group(service, &group)?;
            let record = service.store().thing_group(&group)?;
            let mut properties = serde_json::Map::new();
            if let Some(description) = record.as_ref().and_then(|r| r.description.clone()) {
                properties.insert("thingGroupDescription".into(), description.into());
            }
            let (group_id, created) = match record {
                Some(r) => (r.group_id, r.creation_date),
                None => (crate::ids::uuid_from(&["thing-group", &group]), 0),
            };
            Ok(json!({
                "thingGroupName": group,
                "thingGroupId": group_id,
                "thingGroupArn": service.arn(&format!("thinggroup/{group}")),
                "version": 1,
                "thingGroupProperties": properties,
                "thingGroupMetadata": {"creationDate": created as f64 / 1000.0},
            }))
        })
        .await?;
    Ok(respond(value))
}

async fn delete_thing_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    if let Some(version) = query.integer("expectedVersion", 0, i64::MAX)?
        && version != 1
    {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "VersionConflictException",
            format!("thing group `{group}` is at version 1, not {version}"),
        ));
    }
    state
        .call(move |service| {
            service.engine().run(Command::DeleteThingGroup {
                name: group.clone(),
            })?;
            service.write(Write::DropTags(service.arn(&format!("thinggroup/{group}"))));
            service.write(Write::DropThingGroup(group));
            Ok(())
        })
        .await?;
    Ok(empty())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MembershipInput {
    thing_group_name: Option<String>,
    thing_group_arn: Option<String>,
    thing_name: Option<String>,
    thing_arn: Option<String>,
    #[serde(default)]
    override_dynamic_groups: bool,
}

impl MembershipInput {
    /// Returns (thing, group), taking names from ARNs where only those were sent.
    fn names(&self) -> ApiResult<(String, String)> {
        let from_arn = |arn: &Option<String>, kind: &str| {
            arn.as_deref()
                .and_then(|a| a.split_once(&format!(":{kind}/")))
                .map(|(_, name)| name.to_owned())
        };
        let thing = self
            .thing_name
            .clone()
            .or_else(|| from_arn(&self.thing_arn, "thing"))
            .ok_or_else(|| ApiError::invalid("send `thingName` or `thingArn`"))?;
        let group = self
            .thing_group_name
            .clone()
            .or_else(|| from_arn(&self.thing_group_arn, "thinggroup"))
            .ok_or_else(|| ApiError::invalid("send `thingGroupName` or `thingGroupArn`"))?;
        Ok((thing, group))
    }
}

async fn add_thing_to_thing_group(
    State(state): State<ApiState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: MembershipInput = body(&bytes)?;
    // Vigil has static groups only, so there is no dynamic membership to override.
    let _ = input.override_dynamic_groups;
    let (thing, group) = input.names()?;
    state
        .run(move |_| Command::AddThingToThingGroup { thing, group })
        .await?;
    Ok(empty())
}

async fn remove_thing_from_thing_group(
    State(state): State<ApiState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: MembershipInput = body(&bytes)?;
    let (thing, group) = input.names()?;
    state
        .run(move |_| Command::RemoveThingFromThingGroup { thing, group })
        .await?;
    Ok(empty())
}

async fn list_things_in_thing_group(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    query.boolean("recursive")?;
    let things = state
        .call(move |service| things_in_group(service, &group))
        .await?;
    let (things, next) = page.cut(things);
    Ok(respond(with_token(json!({"things": things}), next)))
}

async fn list_thing_groups_for_thing(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.page(250, 250)?;
    let groups = state
        .call(move |service| {
            let groups = service
                .engine()
                .queries()
                .list_thing_groups_for_thing(&thing)?;
            Ok(groups
                .into_iter()
                .map(|g| {
                    let arn = service.arn(&format!("thinggroup/{g}"));
                    json!({"groupName": g, "groupArn": arn})
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let (groups, next) = page.cut(groups);
    Ok(respond(with_token(json!({"thingGroups": groups}), next)))
}
