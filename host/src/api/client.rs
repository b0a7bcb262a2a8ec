//! A small blocking HTTP/1.1 client that signs requests with SigV4, for Vigil's own tests and
//! benchmarks against `vigil serve`. It keeps one connection open and reconnects when the
//! server closed it.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use axum::http::HeaderMap;

use super::sigv4::{Credentials, SignedRequest, amz_date, authorization_header};

/// A response: status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `x-amzn-ErrorType` header of an error response.
    pub error_type: Option<String>,
    /// The body as text.
    pub body: String,
}

impl ClientResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("failed to parse the response body {:?}", self.body))
    }
}

/// A signed client for one server.
pub struct ApiClient {
    address: SocketAddr,
    credentials: Credentials,
    region: String,
    connection: Option<BufReader<TcpStream>>,
}

impl ApiClient {
    /// A client for the server at `address`.
    pub fn new(address: SocketAddr, credentials: Credentials, region: &str) -> Self {
        Self {
            address,
            credentials,
            region: region.to_owned(),
            connection: None,
        }
    }

    /// Sends a signed request; `path` and `query` must already be percent-encoded.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: &str,
    ) -> anyhow::Result<ClientResponse> {
        let request = self.render(method, path, query, body);
        match self.exchange(&request) {
            Ok(response) => Ok(response),
            // A kept-alive connection may have been closed by the server; retry once on a new one.
            Err(_) if self.connection.take().is_some() => self.exchange(&request),
            Err(error) => Err(error),
        }
    }

    fn render(&self, method: &str, path: &str, query: &str, body: &str) -> String {
        let host = self.address.to_string();
        let date = amz_date(crate::service::wall_clock_ms() / 1000);
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            host.parse().expect("a socket address is a valid header"),
        );
        headers.insert("x-amz-date", date.parse().expect("the date is ASCII"));
        let bytes = Bytes::copy_from_slice(body.as_bytes());
        let signed = SignedRequest {
            method,
            path,
            query,
            headers: &headers,
            body: &bytes,
        };
        let authorization = authorization_header(&self.credentials, &signed, &date, &self.region);
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        format!(
            "{method} {target} HTTP/1.1\r\nhost: {host}\r\nx-amz-date: {date}\r\n\
             authorization: {authorization}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn exchange(&mut self, request: &str) -> anyhow::Result<ClientResponse> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5))
                .with_context(|| format!("failed to connect to {}", self.address))?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().expect("connected above");
        let written = connection.get_mut().write_all(request.as_bytes());
        // A server may answer and close before reading all of a large body, so read the answer
        // even when sending failed.
        let response = read_response(connection).map_err(|error| match written {
            Err(write_error) => {
                anyhow::Error::new(write_error).context("failed to send the request")
            }
            Ok(()) => error,
        });
        if response.is_err() {
            self.connection = None;
        }
        response
    }
}

fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<ClientResponse> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        bail!("the server closed the connection");
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let mut length = 0_usize;
    let mut error_type = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection inside the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().context("malformed content-length")?;
            } else if name.eq_ignore_ascii_case("x-amzn-errortype") {
                error_type = Some(value.trim().to_owned());
            }
        }
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .context("failed to read the body")?;
    Ok(ClientResponse {
        status,
        error_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Percent-encodes a path segment or query value as the SDKs do.
pub fn encode(text: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SET).to_string()
}
