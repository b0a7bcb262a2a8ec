//! Device certificates, CA certificates and thing principals: the registry parts that the
//! UPDATE_DEVICE_CERTIFICATE and UPDATE_CA_CERTIFICATE mitigation actions change.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use super::detect::with_token;
use super::wire::{self, Query, Tag, body, empty, json as respond};
use super::{ApiError, ApiResult, ApiState};
use crate::iot::{self, ParsedCertificate};
use crate::service::{Service, Write};
use crate::store::registry::{CaCertificateRecord, CertificateRecord, RegistryWrite};

/// `CertificateStateException`: the certificate's status forbids the operation.
const CERTIFICATE_STATE: (StatusCode, &str) =
    (StatusCode::NOT_ACCEPTABLE, "CertificateStateException");

/// Returns the routes of this module.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/certificate/register", post(register_certificate))
        .route(
            "/certificate/register-no-ca",
            post(register_certificate_without_ca),
        )
        .route("/certificates", get(list_certificates))
        .route(
            "/certificates/{certificate_id}",
            get(describe_certificate)
                .put(update_certificate)
                .delete(delete_certificate),
        )
        .route("/cacertificate", post(register_ca_certificate))
        .route("/cacertificates", get(list_ca_certificates))
        .route(
            "/cacertificate/{certificate_id}",
            get(describe_ca_certificate).put(update_ca_certificate),
        )
        .route(
            "/things/{thing_name}/principals",
            put(attach_thing_principal)
                .delete(detach_thing_principal)
                .get(list_thing_principals),
        )
}

/// `CertificateValidationException`, 400: the certificate does not chain or is not a CA.
fn certificate_validation(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "CertificateValidationException",
        message,
    )
}

/// Checks a certificate id from a path: 64 hexadecimal characters.
fn check_certificate_id(field: &str, id: &str) -> ApiResult<()> {
    if id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "`{field}` must be 64 hexadecimal characters, not `{id}`"
        )))
    }
}

fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterCertificateInput {
    certificate_pem: String,
    ca_certificate_pem: Option<String>,
    status: Option<String>,
}

/// Returns the status to register with: `status`, else ACTIVE when `setAsActive`, else
/// INACTIVE as AWS does.
fn registration_status(status: Option<String>, query: &Query) -> ApiResult<String> {
    let set_as_active = query.boolean("setAsActive")?.unwrap_or(false);
    let status =
        status.unwrap_or_else(|| if set_as_active { "ACTIVE" } else { "INACTIVE" }.to_owned());
    iot::check_enum("status", &status, &iot::SETTABLE_CERTIFICATE_STATUSES)?;
    Ok(status)
}

async fn register_certificate(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: RegisterCertificateInput = body(&bytes)?;
    let status = registration_status(input.status, &Query::parse(raw.as_deref())?)?;
    let certificate = iot::parse_certificate_pem("certificatePem", &input.certificate_pem)?;
    let ca = input
        .ca_certificate_pem
        .as_deref()
        .map(|pem| iot::parse_certificate_pem("caCertificatePem", pem))
        .transpose()?;
    let response = state
        .call(move |service| {
            let ca_certificate_id = match ca {
                Some(ca) => Some(check_issuer(service, &certificate, &ca)?),
                None => find_issuer(service, &certificate)?,
            };
            register(
                service,
                certificate,
                input.certificate_pem,
                ca_certificate_id,
                status,
            )
        })
        .await?;
    Ok(respond(response))
}

async fn register_certificate_without_ca(
    State(state): State<ApiState>,
    bytes: Bytes,
) -> ApiResult<Response> {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Input {
        certificate_pem: String,
        status: Option<String>,
    }
    let input: Input = body(&bytes)?;
    let status = registration_status(input.status, &Query::default())?;
    let certificate = iot::parse_certificate_pem("certificatePem", &input.certificate_pem)?;
    let response = state
        .call(move |service| register(service, certificate, input.certificate_pem, None, status))
        .await?;
    Ok(respond(response))
}

/// Checks that `ca` is registered and signed `certificate`, and returns the CA's id.
fn check_issuer(
    service: &Service,
    certificate: &ParsedCertificate,
    ca: &ParsedCertificate,
) -> ApiResult<String> {
    if service
        .store()
        .ca_certificate(&ca.certificate_id)?
        .is_none()
    {
        return Err(certificate_validation(format!(
            "the CA certificate `{}` in `caCertificatePem` is not registered; register it with \
             RegisterCACertificate first",
            ca.certificate_id
        )));
    }
    if !iot::is_signed_by(&certificate.der, &ca.der) {
        return Err(certificate_validation(
            "the certificate in `certificatePem` is not signed by the CA certificate in \
             `caCertificatePem`",
        ));
    }
    Ok(ca.certificate_id.clone())
}

/// Returns the registered CA certificate that signed `certificate`, if one did.
fn find_issuer(service: &Service, certificate: &ParsedCertificate) -> ApiResult<Option<String>> {
    for ca in service.store().ca_certificates()? {
        let parsed = iot::parse_certificate_pem("caCertificate", &ca.pem)?;
        if iot::is_signed_by(&certificate.der, &parsed.der) {
            return Ok(Some(ca.certificate_id));
        }
    }
    Ok(None)
}

fn register(
    service: &mut Service,
    certificate: ParsedCertificate,
    pem: String,
    ca_certificate_id: Option<String>,
    status: String,
) -> ApiResult<Value> {
    let id = certificate.certificate_id;
    let arn = service.certificate_arn(&id);
    if service.store().certificate(&id)?.is_some() {
        return Err(already_exists("certificate", &id, arn));
    }
    let now = service.now();
    service.write(Write::Registry(RegistryWrite::Certificate(
        CertificateRecord {
            certificate_id: id.clone(),
            pem,
            ca_certificate_id,
            status,
            not_before: certificate.not_before,
            not_after: certificate.not_after,
            creation_date: now,
            last_modified_date: now,
            customer_version: 1,
        },
    )));
    Ok(json!({"certificateArn": arn, "certificateId": id}))
}

fn already_exists(kind: &str, id: &str, arn: String) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "ResourceAlreadyExistsException",
        format!("the {kind} `{id}` is already registered"),
    )
    .with("resourceId", id)
    .with("resourceArn", arn)
}

fn certificate_record(service: &Service, id: &str) -> ApiResult<CertificateRecord> {
    check_certificate_id("certificateId", id)?;
    service
        .store()
        .certificate(id)?
        .ok_or_else(|| ApiError::not_found(format!("certificate `{id}` does not exist")))
}

async fn describe_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let value = state
        .call(move |service| {
            let record = certificate_record(service, &id)?;
            let mut description = json!({
                "certificateArn": service.certificate_arn(&id),
                "certificateId": id,
                "status": record.status,
                "certificatePem": record.pem,
                "ownedBy": service.engine_config().account_id,
                "creationDate": epoch_seconds(record.creation_date),
                "lastModifiedDate": epoch_seconds(record.last_modified_date),
                "customerVersion": record.customer_version,
                "validity": {
                    "notBefore": epoch_seconds(record.not_before),
                    "notAfter": epoch_seconds(record.not_after),
                },
                "certificateMode": "DEFAULT",
            });
            if let Some(ca) = record.ca_certificate_id {
                description["caCertificateId"] = ca.into();
            }
            Ok(json!({ "certificateDescription": description }))
        })
        .await?;
    Ok(respond(value))
}

async fn update_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    check_certificate_id("certificateId", &id)?;
    let status = Query::parse(raw.as_deref())?
        .required("newStatus")?
        .to_owned();
    state
        .call(move |service| {
            service
                .set_certificate_status(&id, &status)
                .map_err(|error| ApiError::from_iot(error, CERTIFICATE_STATE))
        })
        .await?;
    Ok(empty())
}

async fn list_certificates(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.marker_page(25)?;
    let ascending = query.boolean("isAscendingOrder")?.unwrap_or(false);
    let certificates = state
        .call(move |service| {
            let mut records = service.store().certificates()?;
            if !ascending {
                records.reverse();
            }
            Ok(records
                .into_iter()
                .map(|record| {
                    json!({
                        "certificateArn": service.certificate_arn(&record.certificate_id),
                        "certificateId": record.certificate_id,
                        "status": record.status,
                        "certificateMode": "DEFAULT",
                        "creationDate": epoch_seconds(record.creation_date),
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(wire::marker_listing("certificates", page, certificates))
}

async fn delete_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let force = Query::parse(raw.as_deref())?
        .boolean("forceDelete")?
        .unwrap_or(false);
    state
        .call(move |service| {
            let record = certificate_record(service, &id)?;
            check_deletable(service, &record, force)?;
            let certificate_arn = service.certificate_arn(&id);
            service.write(Write::Registry(RegistryWrite::DropCertificate {
                certificate_id: id,
                certificate_arn,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

/// Checks AWS's rules for deleting a certificate: it must not be ACTIVE nor attached to a
/// thing, and it may have policies attached only with `forceDelete`.
fn check_deletable(service: &Service, record: &CertificateRecord, force: bool) -> ApiResult<()> {
    let id = &record.certificate_id;
    if record.status == "ACTIVE" {
        return Err(ApiError::new(
            CERTIFICATE_STATE.0,
            CERTIFICATE_STATE.1,
            format!("certificate `{id}` is ACTIVE; deactivate it with UpdateCertificate first"),
        ));
    }
    let arn = service.certificate_arn(id);
    let things = service.store().principal_things(&arn)?;
    if !things.is_empty() {
        return Err(delete_conflict(format!(
            "certificate `{id}` is attached to the things {things:?}; detach it with \
             DetachThingPrincipal first"
        )));
    }
    let policies = service.store().target_policies(&arn)?;
    if !force && !policies.is_empty() {
        return Err(delete_conflict(format!(
            "certificate `{id}` has the policies {policies:?} attached; detach them with \
             DetachPolicy or pass forceDelete"
        )));
    }
    Ok(())
}

/// `DeleteConflictException`, 409.
pub(super) fn delete_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "DeleteConflictException", message)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterCaCertificateInput {
    ca_certificate: String,
    verification_certificate: Option<String>,
    registration_config: Option<Value>,
    tags: Option<Vec<Tag>>,
    certificate_mode: Option<String>,
}

async fn register_ca_certificate(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> ApiResult<Response> {
    let input: RegisterCaCertificateInput = body(&bytes)?;
    let query = Query::parse(raw.as_deref())?;
    let status = if query.boolean("setAsActive")?.unwrap_or(false) {
        "ACTIVE"
    } else {
        "INACTIVE"
    };
    let auto_registration = if query.boolean("allowAutoRegistration")?.unwrap_or(false) {
        "ENABLE"
    } else {
        "DISABLE"
    };
    reject_registration_config(input.registration_config.as_ref())?;
    if let Some(mode) = &input.certificate_mode {
        iot::check_enum("certificateMode", mode, &["DEFAULT", "SNI_ONLY"])?;
    }
    let tags = wire::check_tags("tags", input.tags.as_deref().unwrap_or_default())?;
    let ca = parse_ca_certificate(&input)?;
    let response = state
        .call(move |service| {
            let id = ca.certificate_id.clone();
            let arn = service.ca_certificate_arn(&id);
            if service.store().ca_certificate(&id)?.is_some() {
                return Err(already_exists("CA certificate", &id, arn));
            }
            let now = service.now();
            service.write(Write::Registry(RegistryWrite::CaCertificate(
                CaCertificateRecord {
                    certificate_id: id.clone(),
                    pem: input.ca_certificate,
                    status: status.to_owned(),
                    auto_registration_status: auto_registration.to_owned(),
                    not_before: ca.not_before,
                    not_after: ca.not_after,
                    creation_date: now,
                    last_modified_date: now,
                    customer_version: 1,
                },
            )));
            if !tags.is_empty() {
                service.write(Write::Tags(arn.clone(), tags));
            }
            Ok(json!({"certificateArn": arn, "certificateId": id}))
        })
        .await?;
    Ok(respond(response))
}

/// Parses the CA certificate and checks that it is a CA and signed the verification
/// certificate, if one was sent.
// NOTE: the verification certificate's subject is not compared with a registration code,
// because Vigil does not serve GetRegistrationCode.
fn parse_ca_certificate(input: &RegisterCaCertificateInput) -> ApiResult<ParsedCertificate> {
    let ca = iot::parse_certificate_pem("caCertificate", &input.ca_certificate)?;
    if !ca.is_ca {
        return Err(certificate_validation(
            "the certificate in `caCertificate` is not a CA certificate: its basic constraints \
             do not set CA:TRUE",
        ));
    }
    if let Some(pem) = &input.verification_certificate {
        let verification = iot::parse_certificate_pem("verificationCertificate", pem)?;
        if !iot::is_signed_by(&verification.der, &ca.der) {
            return Err(certificate_validation(
                "the certificate in `verificationCertificate` is not signed by `caCertificate`",
            ));
        }
    }
    Ok(ca)
}

/// Rejects a registration config, because Vigil has no provisioning templates to run.
fn reject_registration_config(config: Option<&Value>) -> ApiResult<()> {
    let empty = config.is_none_or(|c| c.as_object().is_some_and(serde_json::Map::is_empty));
    if empty {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Vigil has no just-in-time provisioning; leave out `registrationConfig`",
        ))
    }
}

async fn describe_ca_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_certificate_id("caCertificateId", &id)?;
    let value = state
        .call(move |service| {
            let record = service.store().ca_certificate(&id)?.ok_or_else(|| {
                ApiError::not_found(format!("CA certificate `{id}` does not exist"))
            })?;
            Ok(json!({
                "certificateDescription": {
                    "certificateArn": service.ca_certificate_arn(&id),
                    "certificateId": id,
                    "status": record.status,
                    "certificatePem": record.pem,
                    "ownedBy": service.engine_config().account_id,
                    "creationDate": epoch_seconds(record.creation_date),
                    "autoRegistrationStatus": record.auto_registration_status,
                    "lastModifiedDate": epoch_seconds(record.last_modified_date),
                    "customerVersion": record.customer_version,
                    "validity": {
                        "notBefore": epoch_seconds(record.not_before),
                        "notAfter": epoch_seconds(record.not_after),
                    },
                    "certificateMode": "DEFAULT",
                },
            }))
        })
        .await?;
    Ok(respond(value))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateCaCertificateInput {
    registration_config: Option<Value>,
    remove_auto_registration: Option<bool>,
}

async fn update_ca_certificate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> ApiResult<Response> {
    check_certificate_id("caCertificateId", &id)?;
    let input: UpdateCaCertificateInput = body(&bytes)?;
    reject_registration_config(input.registration_config.as_ref())?;
    let query = Query::parse(raw.as_deref())?;
    let status = query.string("newStatus");
    if let Some(status) = &status {
        iot::check_enum("newStatus", status, &iot::CA_CERTIFICATE_STATUSES)?;
    }
    let mut auto_registration = query.string("newAutoRegistrationStatus");
    if let Some(value) = &auto_registration {
        iot::check_enum("newAutoRegistrationStatus", value, &["ENABLE", "DISABLE"])?;
    }
    if input.remove_auto_registration == Some(true) {
        auto_registration = Some("DISABLE".to_owned());
    }
    state
        .call(move |service| {
            Ok(service.update_ca_certificate(
                &id,
                status.as_deref(),
                auto_registration.as_deref(),
            )?)
        })
        .await?;
    Ok(empty())
}

async fn list_ca_certificates(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = Query::parse(raw.as_deref())?;
    let page = query.marker_page(25)?;
    let ascending = query.boolean("isAscendingOrder")?.unwrap_or(false);
    if query.get("templateName").is_some() {
        return Err(ApiError::invalid(
            "Vigil has no provisioning templates; leave out `templateName`",
        ));
    }
    let certificates = state
        .call(move |service| {
            let mut records = service.store().ca_certificates()?;
            if !ascending {
                records.reverse();
            }
            Ok(records
                .into_iter()
                .map(|record| {
                    json!({
                        "certificateArn": service.ca_certificate_arn(&record.certificate_id),
                        "certificateId": record.certificate_id,
                        "status": record.status,
                        "creationDate": epoch_seconds(record.creation_date),
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(wire::marker_listing("certificates", page, certificates))
}

/// Returns the `x-amzn-principal` header, which must name a certificate ARN.
fn principal_header(headers: &HeaderMap) -> ApiResult<String> {
    let principal = headers
        .get("x-amzn-principal")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::invalid("`principal` (header x-amzn-principal) is required"))?;
    if iot::certificate_id_of_arn(principal).is_none() {
        return Err(ApiError::invalid(format!(
            "`principal` must be a certificate ARN such as \
             arn:aws:iot:REGION:ACCOUNT:cert/ID, not `{principal}`; Vigil has no other \
             principals"
        )));
    }
    Ok(principal.to_owned())
}

/// Fails with `ResourceNotFoundException` unless the thing exists.
fn require_thing(service: &Service, thing: &str) -> ApiResult<()> {
    if service.store().thing_id(thing)?.is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "thing `{thing}` does not exist"
        )))
    }
}

async fn attach_thing_principal(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let principal = principal_header(&headers)?;
    if let Some(kind) = Query::parse(raw.as_deref())?.get("thingPrincipalType") {
        iot::check_enum("thingPrincipalType", kind, &["NON_EXCLUSIVE_THING"])?;
    }
    state
        .call(move |service| {
            require_thing(service, &thing)?;
            let id = iot::certificate_id_of_arn(&principal).unwrap_or_default();
            if service.certificate_arn(id) != principal
                || service.store().certificate(id)?.is_none()
            {
                return Err(ApiError::not_found(format!(
                    "principal `{principal}` is not a certificate registered in this account \
                     and region"
                )));
            }
            service.write(Write::Registry(RegistryWrite::AttachPrincipal {
                thing,
                principal,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn detach_thing_principal(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let principal = principal_header(&headers)?;
    state
        .call(move |service| {
            require_thing(service, &thing)?;
            service.write(Write::Registry(RegistryWrite::DetachPrincipal {
                thing,
                principal,
            }));
            Ok(())
        })
        .await?;
    Ok(empty())
}

async fn list_thing_principals(
    State(state): State<ApiState>,
    Path(thing): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let page = Query::parse(raw.as_deref())?.page(250, 25)?;
    let principals = state
        .call(move |service| {
            require_thing(service, &thing)?;
            Ok(service.store().thing_principals(&thing)?)
        })
        .await?;
    let (principals, next) = page.cut(principals);
    Ok(respond(with_token(json!({"principals": principals}), next)))
}
