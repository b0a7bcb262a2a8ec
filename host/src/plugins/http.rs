//! Sends the HTTP posts that plugins stage through `outbound-http`, for [`Registry`]
//! implementations to call when they perform a [`StagedOperation::HttpPost`].
//!
//! [`Registry`]: super::Registry
//! [`StagedOperation::HttpPost`]: super::StagedOperation::HttpPost

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use super::CapabilityError;
use crate::alerts::WebhookUrl;

/// Time allowed to connect, to send and to read the status line, each.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Posts `body` to a plain `http://` URL and succeeds on a 2xx status.
///
/// FIXME: the post runs while the server handles the mitigation task, so a webhook that does not
/// respond blocks the API for up to three timeouts per execution; posts should be delivered by a
/// background task like alerts.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> Result<(), CapabilityError> {
    let target = WebhookUrl::parse(url)
        .map_err(|error| CapabilityError::InvalidArgument(format!("{error:#}")))?;
    exchange(&target, content_type, body)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                CapabilityError::Other(format!("timed out after {} s", TIMEOUT.as_secs()))
            }
            _ => CapabilityError::Other(error.to_string()),
        })
        .and_then(|status_line| check_status(url, &status_line))
}

fn exchange(target: &WebhookUrl, content_type: &str, body: &[u8]) -> std::io::Result<String> {
    let address = target.authority.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::other(format!("`{}` resolves to no address", target.authority))
    })?;
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         User-Agent: vigil-plugin-host\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut response = [0; 128];
    let read = stream.read(&mut response)?;
    let text = String::from_utf8_lossy(&response[..read]);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn check_status(url: &str, status_line: &str) -> Result<(), CapabilityError> {
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    if status.starts_with('2') && status.len() == 3 {
        return Ok(());
    }
    Err(CapabilityError::Other(format!(
        "`{url}` responded with `{status_line}` instead of a 2xx status"
    )))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// Serves one request on loopback with `status_line` and returns what it received.
    fn serve_once(status_line: &'static str) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!(
            "http://{}/hooks/ops",
            listener.local_addr().expect("address")
        );
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let request = read_request(&mut stream);
            let reply = format!("{status_line}\r\nContent-Length: 0\r\n\r\n");
            stream.write_all(reply.as_bytes()).expect("reply");
            request
        });
        (url, server)
    }

    /// Reads one request: its head, then as many body bytes as its `Content-Length` gives.
    fn read_request(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        let mut chunk = [0; 1024];
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            let read = stream.read(&mut chunk).expect("read request");
            assert!(read > 0, "the client closed before sending its request");
            received.extend_from_slice(&chunk[..read]);
        }
    }

    #[test]
    fn post_sends_the_body_and_accepts_2xx() {
        let (url, server) = serve_once("HTTP/1.1 204 No Content");

        let result = post(&url, "application/json", b"{\"thing\":\"sensor-1\"}");

        assert_eq!(result, Ok(()));
        let request = server.join().expect("server");
        assert!(
            request.starts_with("POST /hooks/ops HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Content-Type: application/json\r\n"),
            "{request}"
        );
        assert!(request.ends_with("{\"thing\":\"sensor-1\"}"), "{request}");
    }

    #[test]
    fn post_fails_on_a_server_error() {
        let (url, server) = serve_once("HTTP/1.1 503 Service Unavailable");

        let result = post(&url, "text/plain", b"finding");

        server.join().expect("server");
        assert!(
            matches!(&result, Err(CapabilityError::Other(message)) if message.contains("503")),
            "{result:?}"
        );
    }

    #[test]
    fn https_urls_are_refused() {
        let result = post("https://127.0.0.1/hook", "text/plain", b"");

        assert!(matches!(result, Err(CapabilityError::InvalidArgument(_))));
    }
}
