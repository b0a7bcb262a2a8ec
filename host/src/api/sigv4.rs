//! AWS Signature Version 4 verification, so requests signed by the AWS CLI and SDKs are
//! accepted and everything else is refused with AWS's errors.
//!
//! The server recomputes the signature from the request as received: method, path encoded
//! once more (as the signer does for every service but S3), sorted query, the signed headers,
//! and the SHA-256 of the body, then compares it with the one in `Authorization`. The scope's
//! region and service are taken from the request, so clients may sign for any region.

use std::path::Path;

use anyhow::{Context as _, bail};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::{ApiError, MAX_BODY_BYTES};

/// How far a request's `X-Amz-Date` may be from the server's clock.
const MAX_CLOCK_SKEW_SECONDS: i64 = 15 * 60;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Largest body read before responding that a request is too large.
const DRAIN_LIMIT_BYTES: usize = 16 * MAX_BODY_BYTES;

/// The access key pair requests must be signed with.
#[derive(Clone)]
pub struct Credentials {
    /// The public half, sent in every request.
    pub access_key_id: String,
    secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A key pair.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }

    /// Reads the `[default]` profile of an AWS shared-credentials file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the credentials file `{}`", path.display()))?;
        parse_credentials(&text).with_context(|| {
            format!(
                "failed to read the `[default]` profile of `{}`; it needs aws_access_key_id \
                 and aws_secret_access_key lines",
                path.display()
            )
        })
    }

    /// Creates a random key pair and writes it as an AWS shared-credentials file that only
    /// the owner can read.
    pub fn generate(path: &Path) -> anyhow::Result<Self> {
        let mut bytes = [0_u8; 30];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let credentials = Self::new(
            format!("VIGIL{}", hex[..15].to_ascii_uppercase()),
            hex[15..].to_owned(),
        );
        let text = format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            credentials.access_key_id, credentials.secret_access_key
        );
        write_private(path, &text)?;
        Ok(credentials)
    }
}

fn parse_credentials(text: &str) -> anyhow::Result<Credentials> {
    let mut in_default = false;
    let (mut key, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
        } else if in_default && let Some((name, value)) = line.split_once('=') {
            match name.trim() {
                "aws_access_key_id" => key = Some(value.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    match (key, secret) {
        (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
            Ok(Credentials::new(key, secret))
        }
        _ => bail!("no complete [default] profile"),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write `{}`", path.display()))
}

/// Signs a request as the AWS SDKs do, for Vigil's own clients (tests and benchmarks): returns
/// the `Authorization` header for a request that carries `host` and `x-amz-date: amz_date`
/// headers. `path` and `query` are as sent, percent-encoded.
pub fn authorization_header(
    credentials: &Credentials,
    request: &SignedRequest<'_>,
    amz_date: &str,
    region: &str,
) -> String {
    let date = &amz_date[..amz_date.len().min(8)];
    let scope = format!("{date}/{region}/iot/aws4_request");
    let signed_headers = ["host", "x-amz-date"];
    let canonical = request
        .canonical_request(&signed_headers)
        .unwrap_or_default();
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    );
    let key = signing_key(&credentials.secret_access_key, date, region, "iot");
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        credentials.access_key_id,
        signed_headers.join(";"),
        hex(&hmac(&key, string_to_sign.as_bytes()))
    )
}

/// The `X-Amz-Date` value for `epoch_seconds`.
pub fn amz_date(epoch_seconds: i64) -> String {
    let iso = crate::output::iso8601(epoch_seconds * 1000);
    // `2026-12-04T20:24:32.000+00:00` becomes `20261204T202432Z`.
    let digits: String = iso[..19]
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("{digits}Z")
}

/// Middleware: verifies the signature of every request, then hands the request on with its
/// body buffered.
pub async fn verify(
    State(credentials): State<std::sync::Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // Bodies up to the drain limit are read whole even when too large, so the client receives
    // the error instead of a connection reset.
    let too_large = || {
        ApiError::invalid(format!(
            "the request body is larger than {MAX_BODY_BYTES} bytes; send smaller requests"
        ))
        .into_response()
    };
    let bytes = match axum::body::to_bytes(body, DRAIN_LIMIT_BYTES).await {
        Ok(bytes) if bytes.len() <= MAX_BODY_BYTES => bytes,
        _ => return too_large(),
    };
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &bytes,
    };
    if let Err(error) = signed.verify(&credentials, crate::service::wall_clock_ms() / 1000) {
        tracing::debug!(error = %error.message, "request rejected: invalid signature");
        return error.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The reason a request was rejected.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    kind: &'static str,
    message: String,
}

impl Refusal {
    fn unrecognized(message: impl Into<String>) -> Self {
        Self {
            kind: "UnrecognizedClientException",
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: "InvalidSignatureException",
            message: message.into(),
        }
    }

    /// The AWS error type.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    fn into_response(self) -> Response {
        ApiError::new(StatusCode::FORBIDDEN, self.kind, self.message).into_response()
    }
}

/// The parts of a request the signature covers.
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent, percent-encoded.
    pub path: &'a str,
    /// Query string as sent, without `?`.
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a Bytes,
}

/// The fields of an `Authorization` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    scope: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Result<Authorization<'_>, Refusal> {
    let rest = header.strip_prefix(ALGORITHM).ok_or_else(|| {
        Refusal::unrecognized(format!(
            "the Authorization header must use {ALGORITHM}; sign requests with SigV4"
        ))
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',').map(str::trim) {
        match field.split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("SignedHeaders", value)) => signed = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => {}
        }
    }
    let malformed = || {
        Refusal::invalid("the Authorization header lacks Credential, SignedHeaders or Signature")
    };
    let credential = credential.ok_or_else(malformed)?;
    let (access_key_id, scope) = credential.split_once('/').ok_or_else(malformed)?;
    Ok(Authorization {
        access_key_id,
        scope,
        signed_headers: signed.ok_or_else(malformed)?.split(';').collect(),
        signature: signature.ok_or_else(malformed)?,
    })
}

impl SignedRequest<'_> {
    /// Checks the request's signature against `credentials` at `now` (epoch seconds).
    pub fn verify(&self, credentials: &Credentials, now: i64) -> Result<(), Refusal> {
        let header = self
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Refusal::unrecognized(
                    "the request is not signed; sign it with SigV4 using the server's key pair \
                     (--credentials, VIGIL_ACCESS_KEY_ID, or DATA/credentials)",
                )
            })?;
        let authorization = parse_authorization(header)?;
        if authorization.access_key_id != credentials.access_key_id {
            return Err(Refusal::unrecognized(
                "The security token included in the request is invalid.",
            ));
        }
        let amz_date = self
            .header("x-amz-date")
            .ok_or_else(|| Refusal::invalid("the signed request has no X-Amz-Date header"))?;
        check_skew(amz_date, now)?;
        let scope_parts: Vec<&str> = authorization.scope.split('/').collect();
        let [date, region, service, "aws4_request"] = scope_parts[..] else {
            return Err(Refusal::invalid(format!(
                "the credential scope `{}` is not DATE/REGION/SERVICE/aws4_request",
                authorization.scope
            )));
        };
        if !amz_date.starts_with(date) {
            return Err(Refusal::invalid(
                "the credential scope's date does not match X-Amz-Date",
            ));
        }
        let canonical = self.canonical_request(&authorization.signed_headers)?;
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{}\n{}",
            authorization.scope,
            hex_sha256(canonical.as_bytes())
        );
        let key = signing_key(&credentials.secret_access_key, date, region, service);
        let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
        if !constant_time_eq(expected.as_bytes(), authorization.signature.as_bytes()) {
            return Err(Refusal::invalid(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok(())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn canonical_request(&self, signed_headers: &[&str]) -> Result<String, Refusal> {
        let mut headers = String::new();
        for name in signed_headers {
            let values: Vec<String> = self
                .headers
                .get_all(*name)
                .iter()
                .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
                .collect();
            if values.is_empty() {
                return Err(Refusal::invalid(format!(
                    "the signed header `{name}` is missing from the request"
                )));
            }
            headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let payload_hash = match self.header("x-amz-content-sha256") {
            Some(hash) if hash != "UNSIGNED-PAYLOAD" => hash.to_owned(),
            _ => hex_sha256(self.body),
        };
        Ok(format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            canonical_path(self.path),
            canonical_query(self.query),
            headers,
            signed_headers.join(";"),
            payload_hash
        ))
    }
}

/// Checks `X-Amz-Date` (`20150830T123600Z`) is within the allowed skew of `now`.
fn check_skew(amz_date: &str, now: i64) -> Result<(), Refusal> {
    let iso = amz_date
        .get(..15)
        .filter(|_| amz_date.len() == 16 && amz_date.ends_with('Z'))
        .map(|d| {
            format!(
                "{}-{}-{}T{}:{}:{}",
                &d[0..4],
                &d[4..6],
                &d[6..8],
                &d[9..11],
                &d[11..13],
                &d[13..15]
            )
        });
    let seconds = iso
        .as_deref()
        .and_then(crate::output::parse_datetime)
        .map(|ms| ms / 1000)
        .ok_or_else(|| {
            Refusal::invalid(format!("X-Amz-Date `{amz_date}` is not YYYYMMDDTHHMMSSZ"))
        })?;
    if (seconds - now).abs() > MAX_CLOCK_SKEW_SECONDS {
        return Err(Refusal::invalid(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the server's time; \
             check the client's clock"
        )));
    }
    Ok(())
}

/// Characters left unencoded in canonical paths and queries: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The path encoded once more, segment by segment, as SigV4 does for every service but S3.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/')
        .map(|segment| utf8_percent_encode(segment, UNRESERVED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The query's pairs, decoded and encoded strictly, sorted by key then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (strict_encode(key), strict_encode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn strict_encode(component: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(component).collect::<Vec<u8>>();
    percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let date_key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let region_key = hmac(&date_key, region.as_bytes());
    let service_key = hmac(&region_key, service.as_bytes());
    hmac(&service_key, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla-query` case of AWS's SigV4 test suite, whose expected signature is
    /// published with it.
    fn vanilla_request(headers: &mut HeaderMap) -> SignedRequest<'_> {
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        static EMPTY: Bytes = Bytes::from_static(b"");
        SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body: &EMPTY,
        }
    }

    fn example_credentials() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    const EXAMPLE_NOW: i64 = 1_440_938_160;

    #[test]
    fn the_published_example_signature_verifies() {
        let mut headers = HeaderMap::new();
        let request = vanilla_request(&mut headers);
        assert!(request.verify(&example_credentials(), EXAMPLE_NOW).is_ok());
    }

    #[test]
    fn a_wrong_secret_is_an_invalid_signature() {
        let mut headers = HeaderMap::new();
        let request = vanilla_request(&mut headers);
        let error = request
            .verify(&Credentials::new("AKIDEXAMPLE", "other"), EXAMPLE_NOW)
            .unwrap_err();
        assert_eq!(error.kind(), "InvalidSignatureException");
    }

    #[test]
    fn an_unknown_key_is_an_unrecognized_client() {
        let mut headers = HeaderMap::new();
        let request = vanilla_request(&mut headers);
        let error = request
            .verify(&Credentials::new("AKIDOTHER", "x"), EXAMPLE_NOW)
            .unwrap_err();
        assert_eq!(error.kind(), "UnrecognizedClientException");
    }

    #[test]
    fn a_stale_date_is_refused() {
        let mut headers = HeaderMap::new();
        let request = vanilla_request(&mut headers);
        let error = request
            .verify(&example_credentials(), EXAMPLE_NOW + 3600)
            .unwrap_err();
        assert!(
            error.message.starts_with("Signature expired"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_unsigned_request_is_an_unrecognized_client() {
        let headers = HeaderMap::new();
        let body = Bytes::new();
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        };
        let error = request
            .verify(&example_credentials(), EXAMPLE_NOW)
            .unwrap_err();
        assert_eq!(error.kind(), "UnrecognizedClientException");
    }

    #[test]
    fn a_request_signed_by_vigil_verifies() {
        let credentials = Credentials::new("AKIDVIGIL", "secret");
        let now = 1_796_400_000;
        let date = amz_date(now);
        assert_eq!(date, "20261204T160000Z");
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8080".parse().unwrap());
        headers.insert("x-amz-date", date.parse().unwrap());
        let body = Bytes::from_static(b"{}");
        let mut request = SignedRequest {
            method: "POST",
            path: "/security-profiles/a%3Ab",
            query: "expectedVersion=1",
            headers: &headers,
            body: &body,
        };
        let authorization = authorization_header(&credentials, &request, &date, "eu-west-1");
        let mut signed = headers.clone();
        signed.insert("authorization", authorization.parse().unwrap());
        request.headers = &signed;
        assert!(request.verify(&credentials, now).is_ok());
    }

    #[test]
    fn paths_are_encoded_once_more_and_queries_sorted() {
        assert_eq!(canonical_path("/things/a%3Ab"), "/things/a%253Ab");
        assert_eq!(canonical_query("b=2&a=x%20y&a=1"), "a=1&a=x%20y&b=2");
    }

    #[test]
    fn a_credentials_file_gives_its_default_profile() {
        let text = "[other]\naws_access_key_id = A\n[default]\naws_access_key_id = K\n\
                    aws_secret_access_key = S\n";
        let credentials = parse_credentials(text).unwrap();
        assert_eq!(credentials.access_key_id, "K");
        assert_eq!(credentials.secret_access_key, "S");
    }
}
