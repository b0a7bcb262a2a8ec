//! The metric catalogue: every built-in `aws:` metric with its value type, where it comes from
//! and whether rules, ML Detect and dimensions apply to it.

/// The value member a metric's datapoints and behavior values use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// `count`, compared with less-than and greater-than operators.
    Count,
    /// `cidrs`, compared with the CIDR set operators.
    Cidrs,
    /// `ports`, compared with the port set operators.
    Ports,
    /// `number`, custom `number` metrics.
    Number,
    /// `numbers`, custom `number-list` metrics.
    Numbers,
    /// `strings`, custom `string-list` metrics.
    Strings,
}

/// Origin of a metric's datapoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Computed from broker events per five-minute period.
    Cloud,
    /// Taken from device metrics reports.
    Device,
    /// A custom metric from device reports.
    Custom,
}

/// Everything validation and evaluation need to know about one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    /// Full name, for example `aws:num-messages-sent`.
    pub name: &'static str,
    /// Value member.
    pub kind: ValueKind,
    /// Origin of the datapoints.
    pub source: Source,
    /// Whether `durationSeconds` may be set on static criteria.
    pub duration_allowed: bool,
    /// Whether ML Detect supports the metric.
    pub ml_supported: bool,
    /// Whether a `TOPIC_FILTER` dimension may narrow it.
    pub dimension_allowed: bool,
}

const fn spec(
    name: &'static str,
    kind: ValueKind,
    source: Source,
    duration_allowed: bool,
    ml_supported: bool,
    dimension_allowed: bool,
) -> MetricSpec {
    MetricSpec {
        name,
        kind,
        source,
        duration_allowed,
        ml_supported,
        dimension_allowed,
    }
}

use Source::{Cloud, Device};
use ValueKind::{Cidrs, Count, Ports};

/// Built-in metrics.
pub const BUILT_IN_METRICS: &[MetricSpec] = &[
    spec("aws:message-byte-size", Count, Cloud, false, true, true),
    spec("aws:num-messages-sent", Count, Cloud, true, true, true),
    spec("aws:num-messages-received", Count, Cloud, true, true, true),
    spec(
        "aws:num-authorization-failures",
        Count,
        Cloud,
        true,
        true,
        true,
    ),
    spec("aws:source-ip-address", Cidrs, Cloud, false, false, true),
    spec(
        "aws:num-connection-attempts",
        Count,
        Cloud,
        true,
        true,
        false,
    ),
    spec("aws:num-disconnects", Count, Cloud, true, true, false),
    spec("aws:disconnect-duration", Count, Cloud, false, false, false),
    spec("aws:all-bytes-out", Count, Device, true, true, false),
    spec("aws:all-bytes-in", Count, Device, true, true, false),
    spec("aws:all-packets-out", Count, Device, true, true, false),
    spec("aws:all-packets-in", Count, Device, true, true, false),
    spec(
        "aws:num-listening-tcp-ports",
        Count,
        Device,
        true,
        true,
        false,
    ),
    spec(
        "aws:num-listening-udp-ports",
        Count,
        Device,
        true,
        true,
        false,
    ),
    spec(
        "aws:num-established-tcp-connections",
        Count,
        Device,
        false,
        true,
        false,
    ),
    spec(
        "aws:destination-ip-addresses",
        Cidrs,
        Device,
        false,
        false,
        false,
    ),
    spec(
        "aws:listening-tcp-ports",
        Ports,
        Device,
        false,
        false,
        false,
    ),
    spec(
        "aws:listening-udp-ports",
        Ports,
        Device,
        false,
        false,
        false,
    ),
];

/// Durations accepted by `durationSeconds`.
pub const ALLOWED_DURATIONS_SECONDS: &[i64] = &[300, 600, 900, 1800, 3600];

/// Percentiles accepted by `statisticalThreshold.statistic`, with their fraction.
pub const ALLOWED_STATISTICS: &[(&str, f64)] = &[
    ("p0", 0.0),
    ("p0.01", 0.0001),
    ("p0.1", 0.001),
    ("p1", 0.01),
    ("p10", 0.10),
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("p100", 1.0),
];

/// Looks up a built-in metric.
pub fn built_in(name: &str) -> Option<&'static MetricSpec> {
    BUILT_IN_METRICS.iter().find(|spec| spec.name == name)
}

/// Returns the fraction for a percentile name such as `p99.9`.
pub fn statistic_fraction(statistic: &str) -> Option<f64> {
    ALLOWED_STATISTICS
        .iter()
        .find(|(name, _)| *name == statistic)
        .map(|(_, fraction)| *fraction)
}

/// Length of a cloud-side metric period and the unit of `durationSeconds` windows.
pub const PERIOD_MS: i64 = 300_000;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
