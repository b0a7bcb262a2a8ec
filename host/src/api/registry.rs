//! The IoT registry operations the ML Detect guide and the mitigation actions need: things with
//! their attributes, and static thing groups.

use std::collections::BTreeMap;

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
use crate::iot;
use crate::journal::Command;
use crate::service::{Service, Write};
use crate::store::ThingGroupRecord;
use crate::store::registry::RegistryWrite;

/// The routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/things/{thing_name}",
            post(create_thing).get(describe_thing).patch(update_thing),
        )
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

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttributePayload {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    merge: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThingInput {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
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
    let mut attributes = input.attribute_payload.unwrap_or_default().attributes;
    // An empty value removes an attribute in UpdateThing, so it sets none here.
    attributes.retain(|_, value| !value.is_empty());
    iot::check_attributes("attributePayload.attributes", &attributes)?;
    let (thing_id, arn) = state
        .call(move |service| {
            let thing_id = match service.store().thing_id(&thing_name)? {
                Some(id) => {
                    check_same_attributes(service, &thing_name, &attributes)?;
                    id
                }
                None => {
                    service.engine().run(Command::CreateThing {
                        name: thing_name.clone(),
                    })?;
                    let id = crate::ids::uuid_from(&["thing", &thing_name]);
                    service.write(Write::Thing(thing_name.clone(), id.clone()));
                    service.write(Write::Registry(RegistryWrite::ThingAttributes {
                        thing: thing_name.clone(),
                        attributes,
                        version: 1,
                    }));
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

/// Lets CreateThing repeat for an existing thing only with the same attributes, as AWS does.
fn check_same_attributes(
    service: &Service,
    thing: &str,
    attributes: &BTreeMap<String, String>,
) -> ApiResult<()> {
    let stored = service.thing_attributes(thing)?.unwrap_or_default();
    if &stored == attributes {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "ResourceAlreadyExistsException",
        format!("thing `{thing}` already exists with other attributes"),
    )
    .with("resourceId", thing)
    .with("resourceArn", service.arn(&format!("thing/{thing}"))))
}

/// Returns a thing's attributes and version, failing with `ResourceNotFoundException`.
fn attributes_and_version(
    service: &Service,
    thing: &str,
) -> ApiResult<(BTreeMap<String, String>, i64)> {
    if service.store().thing_id(thing)?.is_none() {
        return Err(ApiError::not_found(format!(
            "thing `{thing}` does not exist"
        )));
    }
    Ok(service
        .store()
        .thing_attributes(thing)?
        .unwrap_or_else(|| (BTreeMap::new(), 1)))
}

async fn describe_thing(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            let (attributes, version) = attributes_and_version(service, &thing)?;
            let thing_id = service.store().thing_id(&thing)?.unwrap_or_default();
            Ok(json!({
                "defaultClientId": thing,
                "thingName": thing,
                "thingId": thing_id,
                "thingArn": service.arn(&format!("thing/{thing}")),
                "attributes": attributes,
                "version": version,
            }))
        })
        .await?;
    Ok(respond(value))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateThingInput {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<i64>,
    remove_thing_type: Option<bool>,
}

async fn update_thing(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: UpdateThingInput = body(&bytes)?;
    if input.thing_type_name.is_some() || input.remove_thing_type == Some(true) {
        return Err(ApiError::invalid(
            "Vigil's registry has no thing types; leave out `thingTypeName` and \
             `removeThingType`",
        ));
    }
    let payload = input.attribute_payload;
    state
        .call(move |service| {
            let (mut attributes, version) = attributes_and_version(service, &thing)?;
            if let Some(expected) = input.expected_version
                && expected != version
            {
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "VersionConflictException",
                    format!("thing `{thing}` is at version {version}, not {expected}"),
                ));
            }
            if let Some(payload) = payload {
                apply_attribute_payload(&mut attributes, payload);
            }
            iot::check_attributes("attributePayload.attributes", &attributes)?;
            service.write(Write::Registry(RegistryWrite::ThingAttributes {
                thing,
                attributes,
                version: version + 1,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

/// Applies UpdateThing's attribute payload: with `merge` the attributes are added to the
/// stored ones, else they replace them. An empty value removes the attribute in both cases.
fn apply_attribute_payload(stored: &mut BTreeMap<String, String>, payload: AttributePayload) {
    if !payload.merge {
        stored.clear();
    }
    for (name, value) in payload.attributes {
        if value.is_empty() {
            stored.remove(&name);
        } else {
            stored.insert(name, value);
        }
    }
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
            let arn = service.arn(&format!("thinggroup/{group}"));
            service.write(Write::DropTags(arn.clone()));
            service.write(Write::Registry(RegistryWrite::DropPolicyTarget(arn)));
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
