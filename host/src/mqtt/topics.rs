//! Topic names and filters: which topics a thing may use, and the Device Defender report
//! topics.
//!
//! A thing owns two topic trees, `$aws/things/{thing}/...` and `things/{thing}/...`. It may
//! publish and subscribe only inside them. Because no client can subscribe to another thing's
//! tree, a message has at most one recipient: the thing named in its topic.

use vigil_core::report::ReportFormat;

/// Prefix of the topics AWS reserves for a thing.
const AWS_THINGS: &str = "$aws/things/";
/// Prefix of the topics Vigil gives each thing for its own messages.
const THINGS: &str = "things/";

/// Returns the thing whose tree contains `topic`, if any: `$aws/things/{thing}/...` or
/// `things/{thing}/...`, with at least one level after the thing name. Also used for filters,
/// whose wildcards may only appear after the thing name.
pub fn owner(topic: &str) -> Option<&str> {
    let rest = topic
        .strip_prefix(AWS_THINGS)
        .or_else(|| topic.strip_prefix(THINGS))?;
    let (thing, below) = rest.split_once('/')?;
    let plain = !thing.is_empty() && !thing.contains(['+', '#']);
    (plain && !below.is_empty()).then_some(thing)
}

/// Whether `thing` may publish to `topic` or subscribe to the filter `topic`.
pub fn is_authorized(thing: &str, topic: &str) -> bool {
    owner(topic) == Some(thing)
}

/// Whether `topic` is a valid topic name: not empty, no wildcards, no NUL.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Whether `filter` is a valid topic filter: `+` fills whole levels and `#` only the last one.
pub fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels
        .iter()
        .enumerate()
        .all(|(index, level)| match *level {
            "#" => index == levels.len() - 1,
            "+" => true,
            other => !other.contains(['+', '#']),
        })
}

/// Whether `topic` matches `filter`. Wildcards in the first level do not match topics that start
/// with `$`.
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match (level, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (expected, Some(actual)) if expected == actual => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// A Device Defender metrics report topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportTopic<'a> {
    /// The thing the report is about.
    pub thing: &'a str,
    /// JSON or CBOR.
    pub format: ReportFormat,
}

impl ReportTopic<'_> {
    /// The topic a reply of this kind goes to: `.../defender/metrics/{json|cbor}/{accepted|rejected}`.
    pub fn reply_topic(&self, accepted: bool) -> String {
        let format = match self.format {
            ReportFormat::Json => "json",
            ReportFormat::Cbor => "cbor",
        };
        let outcome = if accepted { "accepted" } else { "rejected" };
        format!(
            "{AWS_THINGS}{}/defender/metrics/{format}/{outcome}",
            self.thing
        )
    }
}

/// Reads `$aws/things/{thing}/defender/metrics/{json|cbor}`.
pub fn report_topic(topic: &str) -> Option<ReportTopic<'_>> {
    let rest = topic.strip_prefix(AWS_THINGS)?;
    let (thing, kind) = rest.split_once("/defender/metrics/")?;
    let format = match kind {
        "json" => ReportFormat::Json,
        "cbor" => ReportFormat::Cbor,
        _ => return None,
    };
    (!thing.is_empty() && !thing.contains('/')).then_some(ReportTopic { thing, format })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thing_owns_its_aws_and_things_trees() {
        assert!(is_authorized(
            "pump-1",
            "$aws/things/pump-1/defender/metrics/json"
        ));
        assert!(is_authorized("pump-1", "things/pump-1/telemetry"));
        assert!(is_authorized(
            "pump-1",
            "$aws/things/pump-1/defender/metrics/+/accepted"
        ));
        assert!(is_authorized("pump-1", "things/pump-1/#"));
    }

    #[test]
    fn another_things_tree_and_wildcard_owners_are_refused() {
        assert!(!is_authorized(
            "pump-1",
            "$aws/things/pump-2/defender/metrics/json"
        ));
        assert!(!is_authorized("pump-1", "things/pump-10/telemetry"));
        assert!(!is_authorized(
            "pump-1",
            "$aws/things/+/defender/metrics/json"
        ));
        assert!(!is_authorized("pump-1", "#"));
        assert!(!is_authorized("pump-1", "things/pump-1"));
        assert!(!is_authorized("pump-1", "sensors/pump-1/telemetry"));
    }

    #[test]
    fn report_topics_name_thing_and_format() {
        let topic = report_topic("$aws/things/pump-1/defender/metrics/cbor").unwrap();
        assert_eq!(topic.thing, "pump-1");
        assert_eq!(topic.format, ReportFormat::Cbor);
        assert_eq!(
            topic.reply_topic(false),
            "$aws/things/pump-1/defender/metrics/cbor/rejected"
        );
        assert_eq!(
            report_topic("$aws/things/pump-1/defender/metrics/json/accepted"),
            None
        );
        assert_eq!(
            report_topic("$aws/things/pump-1/defender/metrics/xml"),
            None
        );
    }

    #[test]
    fn filters_match_by_level() {
        assert!(matches("things/a/b/c", "things/a/#"));
        assert!(matches("things/a", "things/a/#"));
        assert!(matches("things/a/b", "things/+/b"));
        assert!(!matches("things/a/b/c", "things/+/b"));
        assert!(!matches("$aws/things/a", "#"));
        assert!(!matches("$aws/things/a", "+/things/a"));
        assert!(matches("$aws/things/a", "$aws/things/+"));
    }

    #[test]
    fn wildcards_must_fill_whole_levels() {
        assert!(is_valid_filter("things/+/b/#"));
        assert!(!is_valid_filter("things/a#"));
        assert!(!is_valid_filter("things/#/b"));
        assert!(!is_valid_filter("things/a+/b"));
        assert!(!is_valid_topic("things/+/b"));
        assert!(is_valid_topic("things/a/b"));
    }
}
