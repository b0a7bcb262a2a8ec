//! SNS alerts of security profiles.
//!
//! A violation event of a behavior whose alerts are not suppressed, on a profile with an `SNS`
//! alert target, becomes a notification for that target's topic. The notification is stored
//! in the same transaction as the event, so a crash cannot lose it. The delivery task then
//! hands it to the topic's sinks. Every notification can be read back through
//! `GET /vigil/notifications`, and a topic given a webhook with `--alert-webhook` also gets
//! each one posted in the envelope of an SNS HTTP subscription.
//!
//! The message is the JSON AWS publishes: the event with `violationEventTime` in epoch
//! milliseconds (the API uses fractional seconds).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vigil_core::model::{StoredSecurityProfile, ViolationEvent};

use crate::api::ApiState;
use crate::store::StoredNotification;

/// The only alert target type AWS defines.
const SNS: &str = "SNS";

/// How often the delivery task looks for notifications to post.
const DELIVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Notifications posted per round of the delivery task.
const DELIVERY_BATCH: usize = 100;

/// Time a webhook has to respond to one post.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts before a notification is given up on and left undelivered in the database.
pub const MAX_ATTEMPTS: i64 = 10;

/// A notification to store: the topic and the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// ARN of the SNS topic.
    pub topic_arn: String,
    /// The JSON message.
    pub message: Value,
}

/// Builds the notifications that `events` raise, given a lookup of profiles by name.
pub fn notifications_for(
    events: &[ViolationEvent],
    mut profile: impl FnMut(&str) -> Option<StoredSecurityProfile>,
) -> Vec<Notification> {
    let mut targets: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut notifications = Vec::new();
    for event in events {
        if event.behavior.is_suppressed() {
            continue;
        }
        let topic = targets
            .entry(event.security_profile_name.clone())
            .or_insert_with(|| {
                profile(&event.security_profile_name).and_then(|stored| {
                    stored
                        .profile
                        .alert_targets
                        .get(SNS)
                        .map(|target| target.alert_target_arn.clone())
                })
            });
        if let Some(topic_arn) = topic {
            notifications.push(Notification {
                topic_arn: topic_arn.clone(),
                message: message(event),
            });
        }
    }
    notifications
}

/// Builds the message AWS publishes for a violation event.
pub fn message(event: &ViolationEvent) -> Value {
    let mut message = json!({
        "violationEventTime": event.violation_event_time,
        "thingName": event.thing_name,
        "behavior": event.behavior,
        "violationEventType": event.violation_event_type,
        "violationId": event.violation_id,
        "securityProfileName": event.security_profile_name,
    });
    if let Some(value) = &event.metric_value {
        message["metricValue"] = json!(value);
    }
    if let Some(info) = &event.violation_event_additional_info {
        message["violationEventAdditionalInfo"] = json!(info);
    }
    message
}

/// Webhooks by topic ARN, from `--alert-webhook TOPIC_ARN=URL` arguments.
#[derive(Clone, Debug, Default)]
pub struct Webhooks(BTreeMap<String, WebhookUrl>);

impl Webhooks {
    /// Parses `TOPIC_ARN=http://HOST:PORT/PATH` arguments.
    pub fn parse(arguments: &[String]) -> anyhow::Result<Self> {
        let mut webhooks = BTreeMap::new();
        for argument in arguments {
            let Some((topic_arn, url)) = argument.split_once('=') else {
                bail!(
                    "--alert-webhook `{argument}` must be TOPIC_ARN=URL, for example \
                     arn:aws:sns:us-east-1:123456789012:alerts=http://127.0.0.1:9000/alerts"
                );
            };
            check_topic_arn(topic_arn)
                .and_then(|()| WebhookUrl::parse(url))
                .and_then(|url| {
                    if webhooks.insert(topic_arn.to_owned(), url).is_some() {
                        bail!("the topic has a webhook already; give one URL per topic");
                    }
                    Ok(())
                })
                .with_context(|| format!("invalid --alert-webhook `{argument}`"))?;
        }
        Ok(Self(webhooks))
    }

    /// Topic ARNs that have a webhook.
    pub fn topics(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Returns whether no topic has a webhook.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks the shape `arn:aws:sns:REGION:ACCOUNT:TOPIC`, with all three parts present.
fn check_topic_arn(arn: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = arn.split(':').collect();
    let well_formed = parts.len() == 6
        && parts[..3] == ["arn", "aws", "sns"]
        && parts[3..].iter().all(|part| !part.is_empty());
    if !well_formed {
        bail!("`{arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)");
    }
    Ok(())
}

/// A plain `http://` URL.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookUrl {
    /// `host:port` as written, for the Host header.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WebhookUrl {
    /// Parses `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!(
                "webhook URL `{url}` must be a plain http:// URL such as \
                 http://127.0.0.1:9000/alerts"
            );
        };
        if let Some(bad) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
            bail!("webhook URL `{url}` contains {bad:?}; percent-encode it");
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("webhook URL `{url}` has no host");
        }
        if authority.contains('@') {
            bail!("webhook URL `{url}` carries user information, which Vigil does not send");
        }
        let authority = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
                port.parse::<u16>()
                    .ok()
                    .filter(|port| *port > 0)
                    .with_context(|| {
                        format!("webhook URL `{url}` has the invalid port `{port}` (1 to 65535)")
                    })?;
                authority.to_owned()
            }
            _ => format!("{authority}:80"),
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

/// Posts stored notifications to their topics' webhooks until the server stops.
pub async fn deliver_forever(state: ApiState, webhooks: Webhooks) {
    if webhooks.is_empty() {
        return;
    }
    let topics = webhooks.topics();
    loop {
        tokio::time::sleep(DELIVERY_INTERVAL).await;
        let topics = topics.clone();
        let pending = state
            .call(move |service| {
                Ok(service
                    .store()
                    .undelivered_notifications(&topics, DELIVERY_BATCH)?)
            })
            .await;
        let pending = match pending {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(?error, "failed to read notifications to deliver");
                continue;
            }
        };
        for notification in pending {
            let Some(url) = webhooks.0.get(&notification.topic_arn) else {
                continue;
            };
            let delivered = post(url, &notification).await;
            if let Err(error) = &delivered {
                tracing::warn!(
                    id = notification.id,
                    topic = notification.topic_arn,
                    error = %format!("{error:#}"),
                    "failed to post an alert to its webhook"
                );
            }
            let id = notification.id;
            let ok = delivered.is_ok();
            let recorded = state
                .call(move |service| Ok(service.store_mut().record_delivery(id, ok)?))
                .await;
            if let Err(error) = recorded {
                tracing::warn!(?error, id, "failed to record an alert delivery");
            }
        }
    }
}

/// Wraps a notification in the body an SNS HTTP subscription receives, with the message as
/// a string.
pub fn sns_envelope(notification: &StoredNotification) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": format!("vigil-notification-{}", notification.id),
        "TopicArn": notification.topic_arn,
        "Message": notification.message.to_string(),
        "Timestamp": sns_timestamp(notification.created_at),
    })
}

/// Formats a time as SNS does: ISO 8601 in UTC with milliseconds and a `Z`.
fn sns_timestamp(ms: vigil_core::model::Timestamp) -> String {
    let iso = crate::output::iso8601(ms);
    match iso.strip_suffix("+00:00") {
        Some(local) => format!("{local}Z"),
        None => iso,
    }
}

/// Posts one notification; succeeds on a 2xx response.
async fn post(url: &WebhookUrl, notification: &StoredNotification) -> anyhow::Result<()> {
    let body = sns_envelope(notification).to_string();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=UTF-8\r\n\
         x-amz-sns-message-type: Notification\r\nx-amz-sns-message-id: vigil-notification-{}\r\n\
         x-amz-sns-topic-arn: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.path,
        url.authority,
        notification.id,
        notification.topic_arn,
        body.len()
    );
    let exchange = async {
        let address: SocketAddr = tokio::net::lookup_host(&url.authority)
            .await?
            .next()
            .with_context(|| format!("`{}` resolves to no address", url.authority))?;
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0; 64];
        let read = stream.read(&mut head).await?;
        anyhow::Ok(String::from_utf8_lossy(&head[..read]).into_owned())
    };
    let head = tokio::time::timeout(WEBHOOK_TIMEOUT, exchange)
        .await
        .with_context(|| format!("http://{} timed out", url.authority))??;
    let status = head.split(' ').nth(1).unwrap_or("");
    if !status.starts_with('2') {
        bail!(
            "http://{}{} responded `{}`",
            url.authority,
            url.path,
            head.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_url_without_port_uses_80() {
        let url = WebhookUrl::parse("http://alerts.internal/hook?x=1").unwrap();
        assert_eq!(url.authority, "alerts.internal:80");
        assert_eq!(url.path, "/hook?x=1");
    }

    #[test]
    fn webhook_url_with_port_keeps_it() {
        let url = WebhookUrl::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(url.authority, "127.0.0.1:9000");
        assert_eq!(url.path, "/");
    }

    #[test]
    fn webhook_url_rejects_https() {
        let error = WebhookUrl::parse("https://example.com/").unwrap_err();
        assert!(error.to_string().contains("plain http:// URL"), "{error}");
    }

    #[test]
    fn webhook_url_rejects_bad_parts() {
        for (url, words) in [
            ("http://127.0.0.1:99999/x", "invalid port `99999`"),
            ("http://127.0.0.1:0/x", "invalid port `0`"),
            ("http://127.0.0.1:9/a b", "contains ' '"),
            ("http://u:p@127.0.0.1:9/", "user information"),
        ] {
            let error = WebhookUrl::parse(url).unwrap_err().to_string();
            assert!(error.contains(words), "{url}: {error}");
        }
    }

    #[test]
    fn webhooks_allow_one_url_per_topic() {
        let topic = "arn:aws:sns:us-east-1:123456789012:t";
        let arguments = [
            format!("{topic}=http://127.0.0.1:1/a"),
            format!("{topic}=http://127.0.0.1:2/b"),
        ];
        let error = format!("{:#}", Webhooks::parse(&arguments).unwrap_err());
        assert!(error.contains("one URL per topic"), "{error}");
    }

    #[test]
    fn webhooks_require_full_topic_arn() {
        let error = format!(
            "{:#}",
            Webhooks::parse(&["arn:aws:sns:::=http://127.0.0.1:1/".to_owned()]).unwrap_err()
        );
        assert!(error.contains("not an SNS topic ARN"), "{error}");
    }

    #[test]
    fn sns_timestamp_ends_in_z() {
        assert_eq!(sns_timestamp(1_796_429_581_123), "2026-12-05T00:13:01.123Z");
    }

    #[test]
    fn webhooks_require_topic_arn() {
        let error = Webhooks::parse(&["topic=http://127.0.0.1:1/".to_owned()]).unwrap_err();
        assert!(
            format!("{error:#}").contains("not an SNS topic ARN"),
            "{error:#}"
        );
        let webhooks = Webhooks::parse(&[
            "arn:aws:sns:us-east-1:123456789012:t=http://127.0.0.1:1/".to_owned(),
        ])
        .unwrap();
        assert_eq!(webhooks.topics(), ["arn:aws:sns:us-east-1:123456789012:t"]);
    }
}
