//! Parsing of AWS IoT Device Defender device-side metrics reports into datapoints of the
//! built-in device metrics (`aws:all-bytes-in`, `aws:listening-tcp-ports`, ...) and of custom
//! metrics. This module only reads reports: it does not throttle, store or evaluate them.
//!
//! JSON and CBOR payloads are first decoded into one small document tree, so every rule is
//! written once for both encodings. Every key may use its long or its short spelling (`header`
//! or `hed`), chosen independently at every level. Unknown keys are ignored, as AWS does. A
//! malformed report is rejected with the error code `InvalidPayload`, the only code AWS
//! documents, and a message that names the field at fault.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::model::{CustomMetricType, MetricValue};

/// Encoding of a metrics report, given by the last segment of the topic it was published on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReportFormat {
    /// Published on `$aws/things/{thingName}/defender/metrics/json`.
    Json,
    /// Published on `$aws/things/{thingName}/defender/metrics/cbor`: the same map as the JSON
    /// document, encoded as CBOR.
    Cbor,
}

/// Reply sent on the /rejected topic.
///
/// AWS documents only the message `Malformed metrics report`. Vigil keeps the error code but
/// sends a message that names the field at fault, so device developers can fix their agent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error_code}: {error_message}")]
pub struct ReportRejection {
    /// `statusDetails.ErrorCode` of the reply, always `InvalidPayload`.
    pub error_code: String,
    /// `statusDetails.ErrorMessage` of the reply.
    pub error_message: String,
    /// `reportId` of the reply, set when the header's `report_id` could be read.
    pub report_id: Option<u64>,
}

/// A report that was accepted, reduced to its header and datapoints.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedReport {
    /// `header.report_id`, echoed as `reportId` in the /accepted reply.
    pub report_id: u64,
    /// `header.version` as sent, for example `1.0`.
    pub version: String,
    /// Datapoints in a fixed order: the network counters, the listening TCP and UDP ports, the
    /// established TCP connections, then custom metrics sorted by name.
    pub datapoints: Vec<ReportDatapoint>,
}

/// The value of one metric in a report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportDatapoint {
    /// A built-in `aws:` metric or the name of a custom metric.
    pub metric: String,
    /// The value, with the member that matches the metric's type set.
    pub value: MetricValue,
}

/// Parses a metrics report and converts it into datapoints.
///
/// `custom_metric_type` returns the type of a custom metric created in the account, or `None`.
/// Values of custom metrics it does not know are ignored, because AWS requires a custom metric to
/// be created before devices report it. A known custom metric with a value of the wrong shape
/// rejects the whole report.
pub fn parse_report(
    payload: &[u8],
    format: ReportFormat,
    custom_metric_type: &dyn Fn(&str) -> Option<CustomMetricType>,
) -> Result<ParsedReport, ReportRejection> {
    // Nothing identifies the report until `report_id` has been read.
    let without_id = |message| reject(message, None);
    let document = decode(payload, format).map_err(without_id)?;
    let root = Node::root(&document).expect_object().map_err(without_id)?;
    let header = root
        .require(HEADER)
        .and_then(Node::expect_object)
        .map_err(without_id)?;
    let report_id = read_report_id(&header).map_err(without_id)?;

    // From here on, rejections carry the report id so the device can match them.
    let with_id = |message| reject(message, Some(report_id));
    let version = read_version(&header).map_err(with_id)?;
    let datapoints = read_datapoints(&root, custom_metric_type).map_err(with_id)?;
    Ok(ParsedReport {
        report_id,
        version,
        datapoints,
    })
}

/// Error code of every rejection. AWS documents no other code for device reports.
const INVALID_PAYLOAD: &str = "InvalidPayload";

/// The only major version of the report format.
const SUPPORTED_MAJOR_VERSION: &str = "1";

/// Maximum number of characters of device input repeated in a rejection message.
const MAX_QUOTED_CHARS: usize = 64;

/// Result of one step of the walk. Its error is the rejection message.
type Walk<T> = Result<T, String>;

fn reject(message: String, report_id: Option<u64>) -> ReportRejection {
    ReportRejection {
        error_code: INVALID_PAYLOAD.to_owned(),
        error_message: message,
        report_id,
    }
}

/// A report key with its long and short spelling.
#[derive(Clone, Copy)]
struct Key {
    long: &'static str,
    short: &'static str,
}

const fn key(long: &'static str, short: &'static str) -> Key {
    Key { long, short }
}

const HEADER: Key = key("header", "hed");
const REPORT_ID: Key = key("report_id", "rid");
const VERSION: Key = key("version", "v");
const METRICS: Key = key("metrics", "met");
const CUSTOM_METRICS: Key = key("custom_metrics", "cmet");
const NETWORK_STATS: Key = key("network_stats", "ns");
const LISTENING_TCP_PORTS: Key = key("listening_tcp_ports", "tp");
const LISTENING_UDP_PORTS: Key = key("listening_udp_ports", "up");
const TCP_CONNECTIONS: Key = key("tcp_connections", "tc");
const ESTABLISHED_CONNECTIONS: Key = key("established_connections", "ec");
const CONNECTIONS: Key = key("connections", "cs");
const REMOTE_ADDR: Key = key("remote_addr", "rad");
const PORTS: Key = key("ports", "pts");
const PORT: Key = key("port", "pt");
const TOTAL: Key = key("total", "t");

/// Network counters and the metric each one feeds.
const NETWORK_COUNTERS: [(Key, &str); 4] = [
    (key("bytes_in", "bi"), "aws:all-bytes-in"),
    (key("bytes_out", "bo"), "aws:all-bytes-out"),
    (key("packets_in", "pi"), "aws:all-packets-in"),
    (key("packets_out", "po"), "aws:all-packets-out"),
];

/// The two metrics fed by one `listening_*_ports` section.
struct PortMetrics {
    ports: &'static str,
    count: &'static str,
}

const TCP_PORT_METRICS: PortMetrics = PortMetrics {
    ports: "aws:listening-tcp-ports",
    count: "aws:num-listening-tcp-ports",
};

const UDP_PORT_METRICS: PortMetrics = PortMetrics {
    ports: "aws:listening-udp-ports",
    count: "aws:num-listening-udp-ports",
};

/// A decoded JSON or CBOR value, reduced to what the report rules need.
#[derive(Debug)]
enum Value {
    Null,
    Bool,
    Integer(i128),
    Float(f64),
    Text(String),
    Bytes,
    Array(Vec<Value>),
    /// Entries with text keys. Entries with other CBOR keys are dropped, and when a key repeats
    /// the last entry wins, as in `serde_json`.
    Map(BTreeMap<String, Value>),
    /// A CBOR value of a kind added to `ciborium` after 0.2.2.
    Unsupported,
}

impl From<serde_json::Value> for Value {
    fn from(value: serde_json::Value) -> Self {
        use serde_json::Value as Json;
        match value {
            Json::Null => Value::Null,
            Json::Bool(_) => Value::Bool,
            Json::Number(number) => match (number.as_u64(), number.as_i64()) {
                (Some(unsigned), _) => Value::Integer(unsigned.into()),
                (None, Some(signed)) => Value::Integer(signed.into()),
                // Fractions and integers beyond 64 bits arrive as floats.
                (None, None) => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => Value::Text(text),
            Json::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Json::Object(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(name, value)| (name, Value::from(value)))
                    .collect(),
            ),
        }
    }
}

impl From<ciborium::Value> for Value {
    fn from(value: ciborium::Value) -> Self {
        use ciborium::Value as Cbor;
        match value {
            Cbor::Null => Value::Null,
            Cbor::Bool(_) => Value::Bool,
            Cbor::Integer(integer) => Value::Integer(integer.into()),
            Cbor::Float(float) => Value::Float(float),
            Cbor::Text(text) => Value::Text(text),
            Cbor::Bytes(_) => Value::Bytes,
            // Tags such as the self-describe tag 55799 do not change what the value means here.
            Cbor::Tag(_, inner) => Value::from(*inner),
            Cbor::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
            Cbor::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .filter_map(|(name, value)| match name {
                        Cbor::Text(name) => Some((name, Value::from(value))),
                        _ => None,
                    })
                    .collect(),
            ),
            // `ciborium::Value` is non-exhaustive, so kinds added later are reported as unsupported.
            _ => Value::Unsupported,
        }
    }
}

impl Value {
    /// Returns the kind of value, for messages such as "got a string".
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool => "a boolean",
            Value::Integer(_) | Value::Float(_) => "a number",
            Value::Text(_) => "a string",
            Value::Bytes => "a byte string",
            Value::Array(_) => "an array",
            Value::Map(_) => "an object",
            Value::Unsupported => "an unsupported CBOR value",
        }
    }

    /// Describes the value for messages: numbers quoted, strings quoted after "the string", other
    /// values by their kind.
    fn describe(&self) -> String {
        match self {
            Value::Integer(integer) => format!("`{integer}`"),
            Value::Float(float) => format!("`{float:?}`"),
            Value::Text(text) => format!("the string {}", quote(text)),
            _ => self.kind().to_owned(),
        }
    }
}

/// Quotes device input in backticks, cut to `MAX_QUOTED_CHARS` characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("`{}...`", &text[..end]),
        None => format!("`{text}`"),
    }
}

fn decode(payload: &[u8], format: ReportFormat) -> Walk<Value> {
    match format {
        ReportFormat::Json => decode_json(payload),
        ReportFormat::Cbor => decode_cbor(payload),
    }
}

fn decode_json(payload: &[u8]) -> Walk<Value> {
    // The error's text ends with the line and column of the problem.
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|error| format!("invalid JSON: {error}"))?;
    Ok(Value::from(value))
}

fn decode_cbor(payload: &[u8]) -> Walk<Value> {
    let mut rest = payload;
    let value: ciborium::Value = ciborium::from_reader(&mut rest).map_err(describe_cbor_error)?;

    // `from_reader` stops after one item, so any bytes left over make the payload invalid.
    if !rest.is_empty() {
        let offset = payload.len() - rest.len();
        return Err(format!(
            "invalid CBOR: unexpected data after the report at byte {offset}"
        ));
    }
    Ok(Value::from(value))
}

fn describe_cbor_error(error: ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match error {
        Error::Io(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            "invalid CBOR: the payload ends in the middle of a value".to_owned()
        }
        Error::Io(error) => format!("invalid CBOR: {error}"),
        Error::Syntax(offset) => format!("invalid CBOR: syntax error at byte {offset}"),
        Error::Semantic(Some(offset), message) => {
            format!("invalid CBOR: {message} at byte {offset}")
        }
        Error::Semantic(None, message) => format!("invalid CBOR: {message}"),
        Error::RecursionLimitExceeded => "invalid CBOR: values are nested too deeply".to_owned(),
    }
}

/// A value with the path that reached it, spelled with the keys the device used.
struct Node<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Node<'a> {
    fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    /// Returns the field name for messages: the quoted path, or "the report" at the root.
    fn name(&self) -> String {
        match self.path.as_str() {
            "" => "the report".to_owned(),
            path => format!("`{path}`"),
        }
    }

    fn member(&self, name: &str, value: &'a Value) -> Node<'a> {
        let path = match self.path.as_str() {
            "" => name.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        Node { value, path }
    }

    fn element(&self, index: usize, value: &'a Value) -> Node<'a> {
        let path = format!("{}[{index}]", self.path);
        Node { value, path }
    }

    /// Finds `key` under its long spelling, else its short one. A null value counts as absent.
    fn get(&self, key: Key) -> Option<Node<'a>> {
        let Value::Map(entries) = self.value else {
            return None;
        };
        [key.long, key.short].into_iter().find_map(|name| {
            let value = entries.get(name)?;
            (!matches!(value, Value::Null)).then(|| self.member(name, value))
        })
    }

    fn require(&self, key: Key) -> Walk<Node<'a>> {
        self.get(key).ok_or_else(|| {
            let missing = self.member(key.long, self.value).path;
            format!("missing `{missing}` (short key `{}`)", key.short)
        })
    }

    /// Finds an optional section, which must be an object when present.
    fn section(&self, key: Key) -> Walk<Option<Node<'a>>> {
        self.get(key).map(Node::expect_object).transpose()
    }

    fn expect_object(self) -> Walk<Node<'a>> {
        match self.value {
            Value::Map(_) => Ok(self),
            other => Err(format!(
                "{} must be an object, got {}",
                self.name(),
                other.kind()
            )),
        }
    }

    fn items(&self) -> Walk<Vec<Node<'a>>> {
        let Value::Array(items) = self.value else {
            let kind = self.value.kind();
            return Err(format!("{} must be an array, got {kind}", self.name()));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(index, item)| self.element(index, item))
            .collect())
    }

    fn text(&self) -> Walk<&'a str> {
        match self.value {
            Value::Text(text) => Ok(text),
            other => Err(format!(
                "{} must be a string, got {}",
                self.name(),
                other.kind()
            )),
        }
    }

    /// Reads a counter or an id, which is an integer from 0 to `u64::MAX`.
    fn unsigned(&self) -> Walk<u64> {
        match self.value {
            Value::Integer(integer) if *integer > i128::from(u64::MAX) => Err(format!(
                "{} must be at most {}, got `{integer}`",
                self.name(),
                u64::MAX
            )),
            Value::Integer(integer) if *integer >= 0 => Ok(*integer as u64),
            other => Err(format!(
                "{} must be a non-negative integer, got {}",
                self.name(),
                other.describe()
            )),
        }
    }

    /// Reads a listening port, which is an integer from 1 to 65535.
    fn port(&self) -> Walk<u16> {
        match self.value {
            Value::Integer(integer) if (1..=i128::from(u16::MAX)).contains(integer) => {
                Ok(*integer as u16)
            }
            other => Err(format!(
                "{} must be an integer from 1 to 65535, got {}",
                self.name(),
                other.describe()
            )),
        }
    }

    fn finite_number(&self) -> Walk<f64> {
        match self.value {
            Value::Integer(integer) => Ok(*integer as f64),
            Value::Float(float) if float.is_finite() => Ok(*float),
            other => Err(format!(
                "{} must be a finite number, got {}",
                self.name(),
                other.describe()
            )),
        }
    }
}

fn read_report_id(header: &Node) -> Walk<u64> {
    header.require(REPORT_ID)?.unsigned()
}

/// Reads `Major.Minor` and accepts every minor version of the supported major version.
fn read_version(header: &Node) -> Walk<String> {
    let node = header.require(VERSION)?;
    let version = node.text()?;
    let Some((major, _minor)) = version.split_once('.').filter(|(major, minor)| {
        let is_number = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        is_number(major) && is_number(minor)
    }) else {
        let quoted = quote(version);
        return Err(format!(
            "{} must be `Major.Minor` like `1.0`, got {quoted}",
            node.name()
        ));
    };

    // Leading zeros do not change the major version.
    if major.trim_start_matches('0') != SUPPORTED_MAJOR_VERSION {
        let quoted = quote(version);
        return Err(format!(
            "unsupported report version {quoted}, expected `1.0`"
        ));
    }
    Ok(version.to_owned())
}

fn read_datapoints(
    root: &Node,
    custom_metric_type: &dyn Fn(&str) -> Option<CustomMetricType>,
) -> Walk<Vec<ReportDatapoint>> {
    let metrics = root.section(METRICS)?;
    let custom_metrics = root.section(CUSTOM_METRICS)?;
    if metrics.is_none() && custom_metrics.is_none() {
        return Err(format!(
            "the report has neither `{}` (short key `{}`) nor `{}` (short key `{}`)",
            METRICS.long, METRICS.short, CUSTOM_METRICS.long, CUSTOM_METRICS.short
        ));
    }

    let mut datapoints = Vec::new();
    if let Some(metrics) = metrics {
        read_metrics(&metrics, &mut datapoints)?;
    }
    if let Some(custom_metrics) = custom_metrics {
        read_custom_metrics(&custom_metrics, custom_metric_type, &mut datapoints)?;
    }
    Ok(datapoints)
}

fn push(datapoints: &mut Vec<ReportDatapoint>, metric: &str, value: MetricValue) {
    datapoints.push(ReportDatapoint {
        metric: metric.to_owned(),
        value,
    });
}

fn read_metrics(metrics: &Node, datapoints: &mut Vec<ReportDatapoint>) -> Walk<()> {
    if let Some(network_stats) = metrics.section(NETWORK_STATS)? {
        read_network_stats(&network_stats, datapoints)?;
    }
    if let Some(tcp_ports) = metrics.section(LISTENING_TCP_PORTS)? {
        read_listening_ports(&tcp_ports, &TCP_PORT_METRICS, datapoints)?;
    }
    if let Some(udp_ports) = metrics.section(LISTENING_UDP_PORTS)? {
        read_listening_ports(&udp_ports, &UDP_PORT_METRICS, datapoints)?;
    }
    if let Some(tcp_connections) = metrics.section(TCP_CONNECTIONS)? {
        read_tcp_connections(&tcp_connections, datapoints)?;
    }
    Ok(())
}

fn read_network_stats(network_stats: &Node, datapoints: &mut Vec<ReportDatapoint>) -> Walk<()> {
    for (key, metric) in NETWORK_COUNTERS {
        if let Some(counter) = network_stats.get(key) {
            push(datapoints, metric, MetricValue::count(counter.unsigned()?));
        }
    }
    Ok(())
}

/// Reads `ports` and `total`. The port list is only reported when `ports` is present, because
/// an agent that sends only `total` has not listed which ports are open.
fn read_listening_ports(
    section: &Node,
    metrics: &PortMetrics,
    datapoints: &mut Vec<ReportDatapoint>,
) -> Walk<()> {
    let entries = section.get(PORTS).map(|ports| ports.items()).transpose()?;
    let total = section
        .get(TOTAL)
        .map(|total| total.unsigned())
        .transpose()?;

    // Agents may send a sample of the ports with the true `total`, so `total` wins.
    let count = total.or(entries.as_ref().map(|entries| entries.len() as u64));

    // The same port open on several interfaces is listed once.
    if let Some(entries) = entries {
        let mut ports = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for entry in entries {
            let port = entry.expect_object()?.require(PORT)?.port()?;
            if seen.insert(port) {
                ports.push(port);
            }
        }
        let value = MetricValue {
            ports: Some(ports),
            ..MetricValue::default()
        };
        push(datapoints, metrics.ports, value);
    }

    if let Some(count) = count {
        push(datapoints, metrics.count, MetricValue::count(count));
    }
    Ok(())
}

fn read_tcp_connections(section: &Node, datapoints: &mut Vec<ReportDatapoint>) -> Walk<()> {
    let Some(established) = section.section(ESTABLISHED_CONNECTIONS)? else {
        return Ok(());
    };
    let connections = established
        .get(CONNECTIONS)
        .map(|list| list.items())
        .transpose()?;
    let total = established
        .get(TOTAL)
        .map(|total| total.unsigned())
        .transpose()?;

    // As with ports, `total` counts connections left out of a sampled list.
    let count = total.or(connections.as_ref().map(|list| list.len() as u64));
    if let Some(count) = count {
        push(
            datapoints,
            "aws:num-established-tcp-connections",
            MetricValue::count(count),
        );
    }

    if let Some(connections) = connections {
        let mut addresses = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for connection in connections {
            let remote_addr = connection.expect_object()?.require(REMOTE_ADDR)?;
            let address = remote_ip(&remote_addr)?.to_string();
            if seen.insert(address.clone()) {
                addresses.push(address);
            }
        }
        let value = MetricValue {
            cidrs: Some(addresses),
            ..MetricValue::default()
        };
        push(datapoints, "aws:destination-ip-addresses", value);
    }
    Ok(())
}

/// Reads the IP address of `ip:port` or `[ipv6]:port`, the forms agents send. Released versions
/// of AWS's reference agent write IPv6 peers without brackets (`::1:51644`), so an unbracketed
/// IPv6 address followed by `:port` is read as that address. A bare IPv4 address is accepted as
/// well; a bare IPv6 address looks like the unbracketed form, so it is read as one.
fn remote_ip(remote_addr: &Node) -> Walk<IpAddr> {
    let text = remote_addr.text()?;
    let address = text
        .parse::<SocketAddr>()
        .ok()
        .map(|socket| socket.ip())
        .or_else(|| unbracketed_ipv6_with_port(text))
        .or_else(|| text.parse::<IpAddr>().ok());
    address.ok_or_else(|| {
        format!(
            "{} must be `ip:port` or `[ipv6]:port`, got {}",
            remote_addr.name(),
            quote(text)
        )
    })
}

/// Reads `2001:db8::1:443` as the address before the last colon, when the part after it is a
/// port.
fn unbracketed_ipv6_with_port(text: &str) -> Option<IpAddr> {
    let (address, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

fn read_custom_metrics(
    section: &Node,
    custom_metric_type: &dyn Fn(&str) -> Option<CustomMetricType>,
    datapoints: &mut Vec<ReportDatapoint>,
) -> Walk<()> {
    let Value::Map(entries) = section.value else {
        return Ok(());
    };

    // Entries are sorted by name, so both encodings give datapoints in the same order.
    for (name, value) in entries {
        let Some(metric_type) = custom_metric_type(name) else {
            continue;
        };
        let node = section.member(name, value);
        let value = read_custom_value(name, &node, metric_type)?;
        push(datapoints, name, value);
    }
    Ok(())
}

/// The wire shape of one custom metric type.
struct CustomShape {
    /// The key of the object inside the one-element array.
    key: &'static str,
    /// A valid value, quoted in messages.
    example: &'static str,
}

fn custom_shape(metric_type: CustomMetricType) -> CustomShape {
    let (key, example) = match metric_type {
        CustomMetricType::Number => ("number", r#"[{"number": 5}]"#),
        CustomMetricType::NumberList => ("number_list", r#"[{"number_list": [1, 2]}]"#),
        CustomMetricType::StringList => ("string_list", r#"[{"string_list": ["a", "b"]}]"#),
        CustomMetricType::IpAddressList => ("ip_list", r#"[{"ip_list": ["10.0.0.1"]}]"#),
    };
    CustomShape { key, example }
}

fn read_custom_value(name: &str, node: &Node, metric_type: CustomMetricType) -> Walk<MetricValue> {
    let shape = custom_shape(metric_type);
    let Some(inner) = custom_inner_value(node.value, shape.key) else {
        let got = describe_custom_shape(node.value, shape.key);
        let example = shape.example;
        return Err(format!(
            "custom metric `{name}` must be a one-element array like {example}, got {got}"
        ));
    };
    let inner = Node {
        value: inner,
        path: format!("{}[0].{}", node.path, shape.key),
    };

    let mut value = MetricValue::default();
    match metric_type {
        CustomMetricType::Number => value.number = Some(inner.finite_number()?),
        CustomMetricType::NumberList => {
            value.numbers = Some(read_list(&inner, |item| item.finite_number())?)
        }
        CustomMetricType::StringList => value.strings = Some(read_list(&inner, metric_string)?),
        CustomMetricType::IpAddressList => value.cidrs = Some(read_list(&inner, ip_or_cidr)?),
    }
    Ok(value)
}

/// Returns the value under `key` in `[{key: value}]`. Other keys next to `key` are ignored.
fn custom_inner_value<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let Value::Array(items) = value else {
        return None;
    };
    let [Value::Map(entries)] = items.as_slice() else {
        return None;
    };
    entries.get(key)
}

/// Describes a custom metric value that is not `[{key: value}]`.
fn describe_custom_shape(value: &Value, key: &str) -> String {
    let Value::Array(items) = value else {
        return value.kind().to_owned();
    };
    match items.as_slice() {
        [] => "an empty array".to_owned(),
        [Value::Map(entries)] if entries.is_empty() => "an empty object in the array".to_owned(),
        [Value::Map(entries)] => {
            let names: Vec<String> = entries.keys().map(|name| quote(name)).collect();
            format!("an object with {} instead of `{key}`", names.join(", "))
        }
        [item] => format!("an array holding {}", item.kind()),
        items => format!("an array of {} elements", items.len()),
    }
}

fn read_list<T>(list: &Node, read_item: impl Fn(&Node) -> Walk<T>) -> Walk<Vec<T>> {
    list.items()?.iter().map(read_item).collect()
}

/// Reads a `string_list` item, which is one or more of `A-Z a-z 0-9 : _ - / .`.
fn metric_string(item: &Node) -> Walk<String> {
    let text = item.text()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '/' | '.');
    if text.is_empty() {
        return Err(format!("{} must not be empty", item.name()));
    }
    if !text.chars().all(allowed) {
        return Err(format!(
            "{} must contain only `A-Z a-z 0-9 : _ - / .`, got {}",
            item.name(),
            quote(text)
        ));
    }
    Ok(text.to_owned())
}

/// Reads an `ip_list` item, an IPv4 or IPv6 address with an optional `/prefix`, and keeps it as
/// sent.
fn ip_or_cidr(item: &Node) -> Walk<String> {
    let text = item.text()?;
    if is_ip_or_cidr(text) {
        return Ok(text.to_owned());
    }
    Err(format!(
        "{} must be an IPv4 or IPv6 address or CIDR block, got {}",
        item.name(),
        quote(text)
    ))
}

fn is_ip_or_cidr(text: &str) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let Some(prefix) = prefix else {
        return true;
    };
    let max_prefix = if address.is_ipv4() { 32 } else { 128 };
    let digits_only = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
    digits_only
        && prefix
            .parse::<u32>()
            .is_ok_and(|prefix| prefix <= max_prefix)
}

#[cfg(test)]
mod tests {
    use ciborium::cbor;

    use super::*;

    const LONG_KEY_REPORT: &str = r#"{"header":{"report_id":1530304554,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"interface":"eth0","port":24800},{"interface":"eth0","port":22}],"total":2},"listening_udp_ports":{"ports":[{"interface":"eth0","port":5353}],"total":1},"network_stats":{"bytes_in":29358693495,"bytes_out":26485035,"packets_in":10013573555,"packets_out":11382615},"tcp_connections":{"established_connections":{"connections":[{"local_interface":"eth0","local_port":80,"remote_addr":"192.168.0.1:8000"}],"total":1}}},"custom_metrics":{"MyMetricOfType_Number":[{"number":1}]}}"#;

    const SHORT_KEY_REPORT: &str = r#"{"hed":{"rid":1530304554,"v":"1.0"},"met":{"tp":{"pts":[{"if":"eth0","pt":24800},{"if":"eth0","pt":22}],"t":2},"up":{"pts":[{"if":"eth0","pt":5353}],"t":1},"ns":{"bi":29358693495,"bo":26485035,"pi":10013573555,"po":11382615},"tc":{"ec":{"cs":[{"li":"eth0","lp":80,"rad":"192.168.0.1:8000"}],"t":1}}},"cmet":{"MyMetricOfType_Number":[{"number":1}]}}"#;

    /// Short keys at the top level and long keys below, as some community clients send.
    const SHORT_OUTER_LONG_INNER_REPORT: &str = r#"{"hed":{"report_id":1530304554,"version":"1.0"},"met":{"listening_tcp_ports":{"ports":[{"interface":"eth0","port":24800},{"interface":"eth0","port":22}],"total":2},"listening_udp_ports":{"ports":[{"interface":"eth0","port":5353}],"total":1},"network_stats":{"bytes_in":29358693495,"bytes_out":26485035,"packets_in":10013573555,"packets_out":11382615},"tcp_connections":{"established_connections":{"connections":[{"local_interface":"eth0","local_port":80,"remote_addr":"192.168.0.1:8000"}],"total":1}}},"cmet":{"MyMetricOfType_Number":[{"number":1}]}}"#;

    /// Long and short keys alternating from one level to the next.
    const ALTERNATING_KEY_REPORT: &str = r#"{"header":{"rid":1530304554,"version":"1.0"},"met":{"listening_tcp_ports":{"pts":[{"interface":"eth0","pt":24800},{"if":"eth0","port":22}],"total":2},"up":{"ports":[{"if":"eth0","port":5353}],"t":1},"network_stats":{"bi":29358693495,"bytes_out":26485035,"pi":10013573555,"packets_out":11382615},"tc":{"established_connections":{"cs":[{"li":"eth0","lp":80,"remote_addr":"192.168.0.1:8000"}],"total":1}}},"custom_metrics":{"MyMetricOfType_Number":[{"number":1}]}}"#;

    fn custom_metric_type(name: &str) -> Option<CustomMetricType> {
        match name {
            "MyMetricOfType_Number" | "temperature" => Some(CustomMetricType::Number),
            "readings" => Some(CustomMetricType::NumberList),
            "apps" => Some(CustomMetricType::StringList),
            "peers" => Some(CustomMetricType::IpAddressList),
            _ => None,
        }
    }

    fn parse_json(document: &str) -> Result<ParsedReport, ReportRejection> {
        parse_report(document.as_bytes(), ReportFormat::Json, &custom_metric_type)
    }

    fn parse_cbor(payload: &[u8]) -> Result<ParsedReport, ReportRejection> {
        parse_report(payload, ReportFormat::Cbor, &custom_metric_type)
    }

    fn datapoints(document: &str) -> Vec<ReportDatapoint> {
        parse_json(document)
            .expect("report should be accepted")
            .datapoints
    }

    fn rejection(document: &str) -> ReportRejection {
        parse_json(document).expect_err("report should be rejected")
    }

    fn rejection_message(document: &str) -> String {
        rejection(document).error_message
    }

    /// Wraps a `metrics` object in a valid header.
    fn with_metrics(metrics: &str) -> String {
        format!(r#"{{"header":{{"report_id":7,"version":"1.0"}},"metrics":{metrics}}}"#)
    }

    /// Wraps a `custom_metrics` object in a valid header.
    fn with_custom_metrics(custom_metrics: &str) -> String {
        format!(
            r#"{{"header":{{"report_id":7,"version":"1.0"}},"custom_metrics":{custom_metrics}}}"#
        )
    }

    fn to_cbor(document: &str) -> Vec<u8> {
        let value: serde_json::Value = serde_json::from_str(document).expect("fixture is JSON");
        let mut payload = Vec::new();
        ciborium::into_writer(&value, &mut payload).expect("CBOR encoding succeeds");
        payload
    }

    fn cbor_value_to_bytes(value: &ciborium::Value) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(value, &mut payload).expect("CBOR encoding succeeds");
        payload
    }

    fn datapoint(metric: &str, value: MetricValue) -> ReportDatapoint {
        ReportDatapoint {
            metric: metric.to_owned(),
            value,
        }
    }

    fn ports(ports: &[u16]) -> MetricValue {
        MetricValue {
            ports: Some(ports.to_vec()),
            ..MetricValue::default()
        }
    }

    fn cidrs(cidrs: &[&str]) -> MetricValue {
        MetricValue {
            cidrs: Some(cidrs.iter().map(|cidr| cidr.to_string()).collect()),
            ..MetricValue::default()
        }
    }

    fn example_datapoints() -> Vec<ReportDatapoint> {
        vec![
            datapoint("aws:all-bytes-in", MetricValue::count(29_358_693_495)),
            datapoint("aws:all-bytes-out", MetricValue::count(26_485_035)),
            datapoint("aws:all-packets-in", MetricValue::count(10_013_573_555)),
            datapoint("aws:all-packets-out", MetricValue::count(11_382_615)),
            datapoint("aws:listening-tcp-ports", ports(&[24800, 22])),
            datapoint("aws:num-listening-tcp-ports", MetricValue::count(2)),
            datapoint("aws:listening-udp-ports", ports(&[5353])),
            datapoint("aws:num-listening-udp-ports", MetricValue::count(1)),
            datapoint("aws:num-established-tcp-connections", MetricValue::count(1)),
            datapoint("aws:destination-ip-addresses", cidrs(&["192.168.0.1"])),
            datapoint("MyMetricOfType_Number", MetricValue::number(1.0)),
        ]
    }

    #[test]
    fn long_key_report_gives_every_device_metric() {
        let report = parse_json(LONG_KEY_REPORT).expect("report should be accepted");

        assert_eq!(report.report_id, 1_530_304_554);
        assert_eq!(report.version, "1.0");
        assert_eq!(report.datapoints, example_datapoints());
    }

    #[test]
    fn short_key_report_gives_same_datapoints() {
        let report = parse_json(SHORT_KEY_REPORT).expect("report should be accepted");

        assert_eq!(report.report_id, 1_530_304_554);
        assert_eq!(report.version, "1.0");
        assert_eq!(report.datapoints, example_datapoints());
    }

    #[test]
    fn accepts_short_outer_long_inner_keys() {
        assert_eq!(
            datapoints(SHORT_OUTER_LONG_INNER_REPORT),
            example_datapoints()
        );
    }

    #[test]
    fn keys_mixed_at_every_level_are_accepted() {
        assert_eq!(datapoints(ALTERNATING_KEY_REPORT), example_datapoints());
    }

    #[test]
    fn cbor_report_gives_same_result_as_json() {
        for document in [LONG_KEY_REPORT, SHORT_KEY_REPORT, ALTERNATING_KEY_REPORT] {
            let from_cbor = parse_cbor(&to_cbor(document));
            assert_eq!(from_cbor, parse_json(document), "document {document}");
        }
    }

    #[test]
    fn cbor_report_with_self_describe_tag_is_accepted() {
        let mut payload = vec![0xd9, 0xd9, 0xf7];
        payload.extend(to_cbor(LONG_KEY_REPORT));

        let report = parse_cbor(&payload).expect("report should be accepted");

        assert_eq!(report.datapoints, example_datapoints());
    }

    #[test]
    fn cbor_map_entries_with_integer_keys_are_ignored() {
        let value = cbor!({
            1 => "ignored",
            "header" => { "report_id" => 3, "version" => "1.0" },
            "metrics" => { "network_stats" => { "bytes_in" => 10 } },
        })
        .expect("fixture is valid");

        let report = parse_cbor(&cbor_value_to_bytes(&value)).expect("report should be accepted");

        let expected = vec![datapoint("aws:all-bytes-in", MetricValue::count(10))];
        assert_eq!(report.datapoints, expected);
    }

    #[test]
    fn long_key_wins_when_both_spellings_are_present() {
        let document = with_metrics(r#"{"network_stats":{"bytes_in":1,"bi":2}}"#);

        let expected = vec![datapoint("aws:all-bytes-in", MetricValue::count(1))];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let document = r#"{"header":{"report_id":7,"version":"1.0","agent":"x"},"extra":[1],
            "metrics":{"cpu":{"load":3},"network_stats":{"bytes_in":5,"errors":-1}}}"#;

        let expected = vec![datapoint("aws:all-bytes-in", MetricValue::count(5))];
        assert_eq!(datapoints(document), expected);
    }

    #[test]
    fn null_sections_count_as_absent() {
        let document = with_metrics(r#"{"network_stats":null,"listening_tcp_ports":{"total":3}}"#);

        let expected = vec![datapoint(
            "aws:num-listening-tcp-ports",
            MetricValue::count(3),
        )];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn report_with_only_custom_metrics_is_accepted() {
        let document = with_custom_metrics(r#"{"temperature":[{"number":21.5}]}"#);

        let expected = vec![datapoint("temperature", MetricValue::number(21.5))];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn empty_metrics_object_gives_no_datapoints() {
        assert_eq!(datapoints(&with_metrics("{}")), Vec::new());
    }

    #[test]
    fn minor_version_changes_are_accepted() {
        let document = r#"{"header":{"report_id":7,"version":"1.1"},"metrics":{}}"#;

        assert_eq!(
            parse_json(document).map(|report| report.version),
            Ok("1.1".to_owned())
        );
    }

    #[test]
    fn port_count_falls_back_to_list_length() {
        let document =
            with_metrics(r#"{"listening_udp_ports":{"ports":[{"port":53},{"port":123}]}}"#);

        let expected = vec![
            datapoint("aws:listening-udp-ports", ports(&[53, 123])),
            datapoint("aws:num-listening-udp-ports", MetricValue::count(2)),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn port_total_wins_over_sampled_list() {
        let document =
            with_metrics(r#"{"listening_tcp_ports":{"ports":[{"port":22}],"total":40}}"#);

        let expected = vec![
            datapoint("aws:listening-tcp-ports", ports(&[22])),
            datapoint("aws:num-listening-tcp-ports", MetricValue::count(40)),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn port_open_on_two_interfaces_is_listed_once() {
        let document = with_metrics(
            r#"{"listening_tcp_ports":{"ports":[{"interface":"eth0","port":22},{"interface":"wlan0","port":22}]}}"#,
        );

        let expected = vec![
            datapoint("aws:listening-tcp-ports", ports(&[22])),
            datapoint("aws:num-listening-tcp-ports", MetricValue::count(2)),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn total_alone_gives_no_port_list() {
        let document = with_metrics(r#"{"listening_tcp_ports":{"total":4}}"#);

        let expected = vec![datapoint(
            "aws:num-listening-tcp-ports",
            MetricValue::count(4),
        )];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn destination_addresses_are_deduplicated_in_order() {
        let document = with_metrics(
            r#"{"tcp_connections":{"established_connections":{"connections":[
                {"remote_addr":"10.0.0.2:443"},
                {"remote_addr":"[2001:db8::1]:8883"},
                {"remote_addr":"10.0.0.2:80"},
                {"remote_addr":"[2001:DB8:0::1]:443"},
                {"remote_addr":"192.168.1.9"}]}}}"#,
        );

        let expected = vec![
            datapoint("aws:num-established-tcp-connections", MetricValue::count(5)),
            datapoint(
                "aws:destination-ip-addresses",
                cidrs(&["10.0.0.2", "2001:db8::1", "192.168.1.9"]),
            ),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn unbracketed_ipv6_remote_addr_drops_port() {
        let document = with_metrics(
            r#"{"tcp_connections":{"established_connections":{"connections":[
                {"remote_addr":"::1:51644"},
                {"remote_addr":"::ffff:127.0.0.1:1883"},
                {"remote_addr":"2001:db8::7:443"}]}}}"#,
        );

        let expected = vec![
            datapoint("aws:num-established-tcp-connections", MetricValue::count(3)),
            datapoint(
                "aws:destination-ip-addresses",
                cidrs(&["::1", "::ffff:127.0.0.1", "2001:db8::7"]),
            ),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn connection_total_without_list_gives_only_count() {
        let document =
            with_metrics(r#"{"tcp_connections":{"established_connections":{"total":9}}}"#);

        let expected = vec![datapoint(
            "aws:num-established-tcp-connections",
            MetricValue::count(9),
        )];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn custom_metrics_of_all_types_are_read() {
        let document = with_custom_metrics(
            r#"{"temperature":[{"number":-3.25}],
                "readings":[{"number_list":[1,2.5,-7]}],
                "apps":[{"string_list":["nginx","usr/bin:ssh-agent_2.0"]}],
                "peers":[{"ip_list":["10.0.0.1","10.1.0.0/16","2001:db8::/32"]}]}"#,
        );

        let expected = vec![
            datapoint(
                "apps",
                MetricValue {
                    strings: Some(vec!["nginx".to_owned(), "usr/bin:ssh-agent_2.0".to_owned()]),
                    ..MetricValue::default()
                },
            ),
            datapoint(
                "peers",
                cidrs(&["10.0.0.1", "10.1.0.0/16", "2001:db8::/32"]),
            ),
            datapoint(
                "readings",
                MetricValue {
                    numbers: Some(vec![1.0, 2.5, -7.0]),
                    ..MetricValue::default()
                },
            ),
            datapoint("temperature", MetricValue::number(-3.25)),
        ];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn empty_custom_lists_are_accepted() {
        let document = with_custom_metrics(r#"{"readings":[{"number_list":[]}]}"#);

        let expected = vec![datapoint(
            "readings",
            MetricValue {
                numbers: Some(Vec::new()),
                ..MetricValue::default()
            },
        )];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn unknown_custom_metric_is_ignored() {
        let document = with_custom_metrics(
            r#"{"not_created":[{"number":1}],"also_unknown":5,"temperature":[{"number":2}]}"#,
        );

        let expected = vec![datapoint("temperature", MetricValue::number(2.0))];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn only_unknown_custom_metrics_give_nothing() {
        let document = with_custom_metrics(r#"{"not_created":[{"number":1}]}"#);

        assert_eq!(datapoints(&document), Vec::new());
    }

    #[test]
    fn custom_metric_extra_keys_beside_value_are_ignored() {
        let document = with_custom_metrics(r#"{"temperature":[{"number":4,"unit":"C"}]}"#);

        let expected = vec![datapoint("temperature", MetricValue::number(4.0))];
        assert_eq!(datapoints(&document), expected);
    }

    #[test]
    fn rejection_has_invalid_payload_code_and_report_id() {
        let document = with_metrics(r#"{"network_stats":{"bytes_in":-1}}"#);

        let rejection = rejection(&document);

        assert_eq!(rejection.error_code, "InvalidPayload");
        assert_eq!(rejection.report_id, Some(7));
    }

    #[test]
    fn rejection_displays_code_and_message() {
        let rejection = rejection(r#"{"metrics":{}}"#);

        assert_eq!(
            rejection.to_string(),
            "InvalidPayload: missing `header` (short key `hed`)"
        );
    }

    #[test]
    fn rejects_invalid_json_with_position() {
        let rejection = rejection(r#"{"header":{"report_id":1,}}"#);

        assert_eq!(
            rejection.error_message,
            "invalid JSON: trailing comma at line 1 column 26"
        );
        assert_eq!(rejection.report_id, None);
    }

    #[test]
    fn rejects_empty_json_payload() {
        assert_eq!(
            rejection_message(""),
            "invalid JSON: EOF while parsing a value at line 1 column 0"
        );
    }

    #[test]
    fn rejects_truncated_cbor() {
        let payload = to_cbor(LONG_KEY_REPORT);

        let rejection = parse_cbor(&payload[..payload.len() - 3]).expect_err("truncated");

        assert_eq!(
            rejection.error_message,
            "invalid CBOR: the payload ends in the middle of a value"
        );
        assert_eq!(rejection.report_id, None);
    }

    #[test]
    fn rejects_cbor_syntax_error_with_offset() {
        // A map of one entry with key "a", then 0x1c: additional information 28 is reserved.
        let rejection = parse_cbor(&[0xa1, 0x61, 0x61, 0x1c]).expect_err("invalid CBOR");

        assert_eq!(
            rejection.error_message,
            "invalid CBOR: syntax error at byte 3"
        );
    }

    #[test]
    fn rejects_misplaced_cbor_break() {
        // 0xa1 opens a map of one entry, and 0xff is a break code outside an indefinite item.
        let rejection = parse_cbor(&[0xa1, 0xff]).expect_err("invalid CBOR");

        assert_eq!(
            rejection.error_message,
            "invalid CBOR: invalid type: break, expected non-break"
        );
    }

    #[test]
    fn rejects_data_after_cbor_report() {
        let mut payload = to_cbor(LONG_KEY_REPORT);
        let length = payload.len();
        payload.push(0x00);

        let rejection = parse_cbor(&payload).expect_err("trailing data");

        assert_eq!(
            rejection.error_message,
            format!("invalid CBOR: unexpected data after the report at byte {length}")
        );
    }

    #[test]
    fn rejects_report_that_is_not_an_object() {
        assert_eq!(
            rejection_message("[1,2]"),
            "the report must be an object, got an array"
        );
    }

    #[test]
    fn rejects_missing_header() {
        assert_eq!(
            rejection_message(r#"{"metrics":{}}"#),
            "missing `header` (short key `hed`)"
        );
    }

    #[test]
    fn rejects_header_that_is_not_an_object() {
        assert_eq!(
            rejection_message(r#"{"hed":"1.0","metrics":{}}"#),
            "`hed` must be an object, got a string"
        );
    }

    #[test]
    fn rejects_missing_report_id_with_path_as_sent() {
        assert_eq!(
            rejection_message(r#"{"hed":{"v":"1.0"},"met":{}}"#),
            "missing `hed.report_id` (short key `rid`)"
        );
    }

    #[test]
    fn rejects_negative_report_id() {
        let rejection = rejection(r#"{"header":{"report_id":-5,"version":"1.0"},"metrics":{}}"#);

        assert_eq!(
            rejection.error_message,
            "`header.report_id` must be a non-negative integer, got `-5`"
        );
        assert_eq!(rejection.report_id, None);
    }

    #[test]
    fn rejects_report_id_as_string() {
        assert_eq!(
            rejection_message(r#"{"header":{"report_id":"5","version":"1.0"},"metrics":{}}"#),
            "`header.report_id` must be a non-negative integer, got the string `5`"
        );
    }

    #[test]
    fn rejects_fractional_report_id() {
        assert_eq!(
            rejection_message(r#"{"header":{"rid":5.5,"version":"1.0"},"metrics":{}}"#),
            "`header.rid` must be a non-negative integer, got `5.5`"
        );
    }

    #[test]
    fn rejects_missing_version_with_report_id() {
        let rejection = rejection(r#"{"header":{"report_id":12},"metrics":{}}"#);

        assert_eq!(
            rejection.error_message,
            "missing `header.version` (short key `v`)"
        );
        assert_eq!(rejection.report_id, Some(12));
    }

    #[test]
    fn rejects_version_as_number() {
        assert_eq!(
            rejection_message(r#"{"header":{"report_id":1,"v":1.0},"metrics":{}}"#),
            "`header.v` must be a string, got a number"
        );
    }

    #[test]
    fn rejects_version_without_minor_part() {
        assert_eq!(
            rejection_message(r#"{"header":{"report_id":1,"version":"1"},"metrics":{}}"#),
            "`header.version` must be `Major.Minor` like `1.0`, got `1`"
        );
    }

    #[test]
    fn rejects_unsupported_major_version() {
        let rejection = rejection(r#"{"header":{"report_id":3,"version":"2.0"},"metrics":{}}"#);

        assert_eq!(
            rejection.error_message,
            "unsupported report version `2.0`, expected `1.0`"
        );
        assert_eq!(rejection.report_id, Some(3));
    }

    #[test]
    fn rejects_report_without_metrics_or_custom_metrics() {
        assert_eq!(
            rejection_message(r#"{"header":{"report_id":3,"version":"1.0"}}"#),
            "the report has neither `metrics` (short key `met`) nor `custom_metrics` \
             (short key `cmet`)"
        );
    }

    #[test]
    fn rejects_metrics_that_is_not_an_object() {
        assert_eq!(
            rejection_message(&with_metrics("[]")),
            "`metrics` must be an object, got an array"
        );
    }

    #[test]
    fn rejects_negative_counter() {
        assert_eq!(
            rejection_message(&with_metrics(r#"{"ns":{"bo":-1}}"#)),
            "`metrics.ns.bo` must be a non-negative integer, got `-1`"
        );
    }

    #[test]
    fn rejects_fractional_counter() {
        assert_eq!(
            rejection_message(&with_metrics(r#"{"network_stats":{"packets_in":1.5}}"#)),
            "`metrics.network_stats.packets_in` must be a non-negative integer, got `1.5`"
        );
    }

    #[test]
    fn rejects_counter_beyond_64_bits() {
        assert_eq!(
            rejection_message(&with_metrics(
                r#"{"network_stats":{"bytes_in":18446744073709551616}}"#
            )),
            "`metrics.network_stats.bytes_in` must be a non-negative integer, \
             got `1.8446744073709552e19`"
        );
    }

    #[test]
    fn rejects_negative_total() {
        assert_eq!(
            rejection_message(&with_metrics(r#"{"up":{"t":-2}}"#)),
            "`metrics.up.t` must be a non-negative integer, got `-2`"
        );
    }

    #[test]
    fn rejects_port_zero() {
        assert_eq!(
            rejection_message(&with_metrics(r#"{"tp":{"pts":[{"pt":22},{"pt":0}]}}"#)),
            "`metrics.tp.pts[1].pt` must be an integer from 1 to 65535, got `0`"
        );
    }

    #[test]
    fn rejects_port_above_65535() {
        assert_eq!(
            rejection_message(&with_metrics(
                r#"{"listening_udp_ports":{"ports":[{"port":65536}]}}"#
            )),
            "`metrics.listening_udp_ports.ports[0].port` must be an integer from 1 to 65535, \
             got `65536`"
        );
    }

    #[test]
    fn rejects_port_entry_without_port() {
        assert_eq!(
            rejection_message(&with_metrics(
                r#"{"listening_tcp_ports":{"ports":[{"interface":"eth0"}]}}"#
            )),
            "missing `metrics.listening_tcp_ports.ports[0].port` (short key `pt`)"
        );
    }

    #[test]
    fn rejects_ports_that_are_not_an_array() {
        assert_eq!(
            rejection_message(&with_metrics(r#"{"listening_tcp_ports":{"ports":22}}"#)),
            "`metrics.listening_tcp_ports.ports` must be an array, got a number"
        );
    }

    #[test]
    fn rejects_remote_addr_that_is_not_an_address() {
        assert_eq!(
            rejection_message(&with_metrics(
                r#"{"tc":{"ec":{"cs":[{"rad":"example.com:443"}]}}}"#
            )),
            "`metrics.tc.ec.cs[0].rad` must be `ip:port` or `[ipv6]:port`, got `example.com:443`"
        );
    }

    #[test]
    fn rejects_remote_addr_as_number() {
        assert_eq!(
            rejection_message(&with_metrics(
                r#"{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":1}]}}}"#
            )),
            "`metrics.tcp_connections.established_connections.connections[0].remote_addr` \
             must be a string, got a number"
        );
    }

    #[test]
    fn rejects_bare_number_custom_metric() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"temperature":5}"#)),
            r#"custom metric `temperature` must be a one-element array like [{"number": 5}], got a number"#
        );
    }

    #[test]
    fn rejects_custom_metric_with_two_elements() {
        assert_eq!(
            rejection_message(&with_custom_metrics(
                r#"{"temperature":[{"number":1},{"number":2}]}"#
            )),
            r#"custom metric `temperature` must be a one-element array like [{"number": 5}], got an array of 2 elements"#
        );
    }

    #[test]
    fn rejects_custom_metric_with_empty_array() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"readings":[]}"#)),
            r#"custom metric `readings` must be a one-element array like [{"number_list": [1, 2]}], got an empty array"#
        );
    }

    #[test]
    fn rejects_custom_metric_array_holding_a_number() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"temperature":[5]}"#)),
            r#"custom metric `temperature` must be a one-element array like [{"number": 5}], got an array holding a number"#
        );
    }

    #[test]
    fn rejects_custom_metric_with_key_of_another_type() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"apps":[{"number_list":[1]}]}"#)),
            r#"custom metric `apps` must be a one-element array like [{"string_list": ["a", "b"]}], got an object with `number_list` instead of `string_list`"#
        );
    }

    #[test]
    fn rejects_custom_metric_with_empty_object() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"peers":[{}]}"#)),
            r#"custom metric `peers` must be a one-element array like [{"ip_list": ["10.0.0.1"]}], got an empty object in the array"#
        );
    }

    #[test]
    fn rejects_custom_number_as_string() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"temperature":[{"number":"5"}]}"#)),
            "`custom_metrics.temperature[0].number` must be a finite number, got the string `5`"
        );
    }

    #[test]
    fn rejects_custom_number_that_is_not_finite() {
        let value = cbor!({
            "header" => { "report_id" => 3, "version" => "1.0" },
            "custom_metrics" => { "temperature" => [{ "number" => f64::NAN }] },
        })
        .expect("fixture is valid");

        let rejection = parse_cbor(&cbor_value_to_bytes(&value)).expect_err("NaN");

        assert_eq!(
            rejection.error_message,
            "`custom_metrics.temperature[0].number` must be a finite number, got `NaN`"
        );
        assert_eq!(rejection.report_id, Some(3));
    }

    #[test]
    fn rejects_non_numeric_number_list_item() {
        assert_eq!(
            rejection_message(&with_custom_metrics(
                r#"{"readings":[{"number_list":[1,null]}]}"#
            )),
            "`custom_metrics.readings[0].number_list[1]` must be a finite number, got null"
        );
    }

    #[test]
    fn rejects_number_list_that_is_not_an_array() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"readings":[{"number_list":3}]}"#)),
            "`custom_metrics.readings[0].number_list` must be an array, got a number"
        );
    }

    #[test]
    fn rejects_string_list_item_with_space() {
        assert_eq!(
            rejection_message(&with_custom_metrics(
                r#"{"apps":[{"string_list":["ok","bad app"]}]}"#
            )),
            "`custom_metrics.apps[0].string_list[1]` must contain only `A-Z a-z 0-9 : _ - / .`, \
             got `bad app`"
        );
    }

    #[test]
    fn rejects_empty_string_list_item() {
        assert_eq!(
            rejection_message(&with_custom_metrics(r#"{"apps":[{"string_list":[""]}]}"#)),
            "`custom_metrics.apps[0].string_list[0]` must not be empty"
        );
    }

    #[test]
    fn rejects_invalid_ip_list_items() {
        for address in [
            "300.1.1.1",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
        ] {
            let document =
                with_custom_metrics(&format!(r#"{{"peers":[{{"ip_list":["{address}"]}}]}}"#));
            assert_eq!(
                rejection_message(&document),
                format!(
                    "`custom_metrics.peers[0].ip_list[0]` must be an IPv4 or IPv6 address or \
                     CIDR block, got `{address}`"
                ),
                "address {address}"
            );
        }
    }

    #[test]
    fn rejection_cuts_long_device_input() {
        let long = "a".repeat(100);
        let document = with_custom_metrics(&format!(r#"{{"peers":[{{"ip_list":["{long}"]}}]}}"#));

        let expected = format!(
            "`custom_metrics.peers[0].ip_list[0]` must be an IPv4 or IPv6 address or CIDR block, \
             got `{}...`",
            "a".repeat(64)
        );
        assert_eq!(rejection_message(&document), expected);
    }
}
