//! The `--mqtt-broker` URL: `mqtt://HOST[:PORT]`, plain TCP only.

use std::fmt;

/// The scheme of a plain TCP MQTT connection, the only one accepted.
const SCHEME: &str = "mqtt://";

/// The form of a valid `--mqtt-broker` value, for error messages.
const EXPECTED: &str = "expected `mqtt://HOST[:PORT]`, for example `mqtt://127.0.0.1:1883`";

/// Address of an external MQTT broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://HOST[:PORT]`; the port defaults to 1883. IPv6 addresses go in brackets.
    /// The error names the problem and the accepted form, for clap to print.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(authority) = strip_scheme(text) else {
            return Err(match text.split_once("://") {
                Some((scheme, _)) => format!(
                    "unsupported scheme `{scheme}://`: only plain TCP is supported, {EXPECTED}"
                ),
                None => EXPECTED.to_owned(),
            });
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('@') {
            return Err(
                "credentials do not go in the URL: pass --mqtt-broker-username and \
                 --mqtt-broker-password-file"
                    .to_owned(),
            );
        }
        if authority.contains(['/', '?', '#']) {
            return Err(format!(
                "a broker URL has no path, query or fragment; {EXPECTED}"
            ));
        }
        let (host, port) = split_host_and_port(authority)?;
        if host.is_empty() {
            return Err(format!("missing host; {EXPECTED}"));
        }
        let port = match port {
            None => super::super::DEFAULT_PORT,
            Some(port) => parse_port(port)?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{SCHEME}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{SCHEME}{}:{}", self.host, self.port)
        }
    }
}

/// Returns the part after `mqtt://`, whose scheme may be in any case.
fn strip_scheme(text: &str) -> Option<&str> {
    let scheme = text.get(..SCHEME.len())?;
    scheme
        .eq_ignore_ascii_case(SCHEME)
        .then(|| &text[SCHEME.len()..])
}

/// Splits `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`.
fn split_host_and_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("missing `]` after the IPv6 address; {EXPECTED}"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected `{after}` after `]`; {EXPECTED}")),
            },
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, None)),
        Some((_, port)) if port.contains(':') => Err(format!(
            "write an IPv6 address in brackets, as in `mqtt://[::1]:1883`; {EXPECTED}"
        )),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid port `{port}`: expected a number from 1 to 65535"
        )),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (String, u16) {
        let url = BrokerUrl::parse(text).unwrap();
        (url.host, url.port)
    }

    #[test]
    fn host_and_port_are_read() {
        assert_eq!(parsed("mqtt://127.0.0.1:1884"), ("127.0.0.1".into(), 1884));
        assert_eq!(parsed("mqtt://broker.local"), ("broker.local".into(), 1883));
        assert_eq!(parsed("MQTT://broker.local:1/"), ("broker.local".into(), 1));
        assert_eq!(parsed("mqtt://[::1]:8883"), ("::1".into(), 8883));
        assert_eq!(parsed("mqtt://[::1]"), ("::1".into(), 1883));
    }

    #[test]
    fn display_writes_the_url_back() {
        assert_eq!(
            BrokerUrl::parse("mqtt://localhost").unwrap().to_string(),
            "mqtt://localhost:1883"
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://[::1]:1884").unwrap().to_string(),
            "mqtt://[::1]:1884"
        );
    }

    #[test]
    fn other_schemes_are_rejected_with_the_accepted_form() {
        let error = BrokerUrl::parse("mqtts://broker.local:8883").unwrap_err();
        assert_eq!(
            error,
            "unsupported scheme `mqtts://`: only plain TCP is supported, expected \
             `mqtt://HOST[:PORT]`, for example `mqtt://127.0.0.1:1883`"
        );
        let error = BrokerUrl::parse("broker.local:1883").unwrap_err();
        assert!(
            error.starts_with("expected `mqtt://HOST[:PORT]`"),
            "{error}"
        );
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        let cases = [
            ("mqtt://", "missing host"),
            ("mqtt://:1883", "missing host"),
            ("mqtt://host:0", "invalid port `0`"),
            ("mqtt://host:70000", "invalid port `70000`"),
            ("mqtt://host:port", "invalid port `port`"),
            ("mqtt://host/topic", "no path, query or fragment"),
            ("mqtt://host?x=1", "no path, query or fragment"),
            ("mqtt://user:pw@host", "credentials do not go in the URL"),
            ("mqtt://::1:1883", "IPv6 address in brackets"),
            ("mqtt://[::1", "missing `]`"),
            ("mqtt://[::1]1883", "unexpected `1883` after `]`"),
        ];
        for (text, expected) in cases {
            let error = BrokerUrl::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
