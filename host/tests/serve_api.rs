//! `vigil serve` as an AWS client meets it: signatures, AWS error types for bad input, nothing
//! half-written, pagination, and state that survives a restart.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, serve_command, test_folder};
use vigil_host::api::client::{ApiClient, ClientResponse, encode};

const STATIC_BEHAVIOR: &str = r#"{"name":"many-messages","metric":"aws:num-messages-sent",
    "criteria":{"comparisonOperator":"less-than","value":{"count":10},
    "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}"#;

fn create_profile(client: &mut ApiClient, name: &str) -> ClientResponse {
    client
        .send(
            "POST",
            &format!("/security-profiles/{name}"),
            "",
            &format!(r#"{{"behaviors":[{STATIC_BEHAVIOR}]}}"#),
        )
        .unwrap()
}

/// Attaches the profile `name` to every thing.
fn attach_to_all_things(client: &mut ApiClient, name: &str) {
    let target = encode(common::ALL_THINGS);
    let attached = client
        .send(
            "PUT",
            &format!("/security-profiles/{name}/targets"),
            &format!("securityProfileTargetArn={target}"),
            "",
        )
        .unwrap();
    assert_eq!(attached.status, 200, "{}", attached.body);
}

/// Asserts an AWS error of `kind` whose message contains `words`.
fn assert_error(response: &ClientResponse, status: u16, kind: &str, words: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(
        response.error_type.as_deref(),
        Some(kind),
        "{}",
        response.body
    );
    let message = response.json().unwrap()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(words), "`{words}` not in {message:?}");
}

fn with_server(name: &str, extra: &[&str], test: impl FnOnce(&Server, &mut ApiClient)) {
    let (dir, credentials) = test_folder(name);
    let server = Server::start(&dir.join("data"), &credentials, extra);
    let mut client = server.client();
    test(&server, &mut client);
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

fn raw_request(server: &Server, request: &str) -> String {
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn unsigned_requests_are_refused_as_unrecognized_clients() {
    with_server("unsigned", &[], |server, _| {
        let response = raw_request(
            server,
            "GET /security-profiles HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 403"), "{response}");
        assert!(
            response.contains("x-amzn-errortype: UnrecognizedClientException"),
            "{response}"
        );
    });
}

#[test]
fn an_unknown_route_gets_an_aws_error() {
    with_server("unknown-route", &[], |_, client| {
        let response = client.send("GET", "/thing-groups", "", "").unwrap();
        assert_error(
            &response,
            404,
            "UnknownOperationException",
            "GET /thing-groups",
        );
    });
}

#[test]
fn datapoints_reject_millisecond_timestamps() {
    with_server("millisecond-timestamps", &[], |_, client| {
        let seconds = vigil_host::service::wall_clock_ms() / 1000 - 600;
        let milliseconds = seconds * 1000;
        let datapoint = |thing: &str, timestamp: i64| {
            format!(
                r#"{{"thingName":"{thing}","metricName":"aws:num-messages-sent",
                "timestamp":{timestamp},"value":{{"count":5}}}}"#
            )
        };
        let body = format!(
            r#"{{"datapoints":[{},{},{}]}}"#,
            datapoint("lamp-1", seconds),
            datapoint("lamp-2", milliseconds),
            datapoint("", seconds)
        );

        let reply = client
            .send("POST", "/vigil/datapoints", "", &body)
            .unwrap()
            .json()
            .unwrap();

        assert_eq!(reply["accepted"], 1, "{reply}");
        assert_eq!(reply["rejected"][0]["index"], 1, "{reply}");
        assert_eq!(
            reply["rejected"][0]["message"],
            format!(
                "`timestamp` {milliseconds} is outside 1970 to 9999; send seconds since \
                 1970-01-01, not milliseconds"
            )
        );
        assert_eq!(reply["rejected"][1]["index"], 2, "{reply}");
    });
}

#[test]
fn serve_on_busy_port_creates_no_data() {
    let (dir, credentials) = test_folder("busy-port");
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = occupied.local_addr().unwrap().port().to_string();
    let data = dir.join("data");

    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--port", &port, "--data"])
        .arg(&data)
        .arg("--credentials")
        .arg(&credentials)
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "failed to listen on `127.0.0.1:{port}`; pick another --port"
        )),
        "{stderr}"
    );
    assert!(!data.exists(), "the data folder was created");
}

#[test]
fn sigterm_stops_the_server_cleanly_and_says_so() {
    let (dir, credentials) = test_folder("sigterm");
    let mut child = serve_command(&dir.join("data"), &credentials, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner_end = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.starts_with("vigil serve: mqtt on "));
    assert!(banner_end.is_some(), "vigil serve exited during its banner");

    let signal = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();

    assert!(signal.success());
    assert!(status.success(), "{status}");
    assert_eq!(rest, vec!["vigil serve: stopped".to_string()]);
}

#[test]
fn a_second_server_on_one_data_folder_is_refused() {
    let (dir, credentials) = test_folder("one-server");
    let data = dir.join("data");
    let first = Server::start(&data, &credentials, &[]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--port", "0", "--data"])
        .arg(&data)
        .arg("--credentials")
        .arg(&credentials)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another vigil process"), "{stderr}");
    first.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gets_invalid_request_naming_the_field() {
    with_server("bad-input", &[], |_, client| {
        let malformed = client
            .send("POST", "/security-profiles/p", "", "{\"behaviors\": [")
            .unwrap();
        assert_error(&malformed, 400, "InvalidRequestException", "not valid JSON");

        let wrong_type = client
            .send(
                "POST",
                "/security-profiles/p",
                "",
                r#"{"behaviors":[{"name":"b","metric":"aws:num-messages-sent",
                    "criteria":{"consecutiveDatapointsToAlarm":"two"}}]}"#,
            )
            .unwrap();
        assert_error(
            &wrong_type,
            400,
            "InvalidRequestException",
            "behaviors[0].criteria.consecutiveDatapointsToAlarm",
        );

        let unknown = client
            .send("POST", "/security-profiles/p", "", r#"{"behaviours":[]}"#)
            .unwrap();
        assert_error(&unknown, 400, "InvalidRequestException", "behaviours");

        let out_of_range = client
            .send("GET", "/security-profiles", "maxResults=0", "")
            .unwrap();
        assert_error(&out_of_range, 400, "InvalidRequestException", "maxResults");

        let oversize = client
            .send(
                "POST",
                "/security-profiles/p",
                "",
                &" ".repeat(2 * 1024 * 1024),
            )
            .unwrap();
        assert_error(&oversize, 400, "InvalidRequestException", "larger than");

        let missing = client
            .send("GET", "/violation-events", "endTime=1", "")
            .unwrap();
        assert_error(&missing, 400, "InvalidRequestException", "startTime");
    });
}

#[test]
fn a_refused_create_leaves_nothing_behind() {
    with_server("half-written", &[], |_, client| {
        let refused = client
            .send(
                "POST",
                "/security-profiles/tagged",
                "",
                &format!(
                    r#"{{"behaviors":[{STATIC_BEHAVIOR}],"tags":[{{"Key":"","Value":"v"}}]}}"#
                ),
            )
            .unwrap();
        assert_error(&refused, 400, "InvalidRequestException", "tags[0].Key");
        let described = client
            .send("GET", "/security-profiles/tagged", "", "")
            .unwrap();
        assert_error(&described, 404, "ResourceNotFoundException", "tagged");
    });
}

#[test]
fn conflicts_and_limits_have_their_aws_error_types() {
    with_server("conflicts", &[], |_, client| {
        assert_eq!(create_profile(client, "p0").status, 200);
        let again = create_profile(client, "p0");
        assert_error(&again, 409, "ResourceAlreadyExistsException", "p0");
        assert!(
            again.json().unwrap()["resourceArn"]
                .as_str()
                .unwrap()
                .ends_with(":securityprofile/p0")
        );

        let stale = client
            .send(
                "PATCH",
                "/security-profiles/p0",
                "expectedVersion=7",
                r#"{"securityProfileDescription":"new"}"#,
            )
            .unwrap();
        assert_error(&stale, 409, "VersionConflictException", "version");

        let target = encode("arn:aws:iot:us-east-1:123456789012:all/things");
        for n in 0..6 {
            let name = format!("p{n}");
            if n > 0 {
                assert_eq!(create_profile(client, &name).status, 200);
            }
            let attached = client
                .send(
                    "PUT",
                    &format!("/security-profiles/{name}/targets"),
                    &format!("securityProfileTargetArn={target}"),
                    "",
                )
                .unwrap();
            if n < 5 {
                assert_eq!(attached.status, 200, "{}", attached.body);
            } else {
                assert_error(&attached, 410, "LimitExceededException", "maximum");
            }
        }
    });
}

#[test]
fn list_pages_chain_through_every_item() {
    with_server("pages", &[], |_, client| {
        for n in 0..5 {
            assert_eq!(create_profile(client, &format!("page-{n}")).status, 200);
        }
        let mut names = Vec::new();
        let mut query = "maxResults=2".to_owned();
        loop {
            let page = client
                .send("GET", "/security-profiles", &query, "")
                .unwrap()
                .json()
                .unwrap();
            let identifiers = page["securityProfileIdentifiers"].as_array().unwrap();
            assert!(identifiers.len() <= 2);
            names.extend(
                identifiers
                    .iter()
                    .map(|i| i["name"].as_str().unwrap().to_owned()),
            );
            match page["nextToken"].as_str() {
                Some(token) => query = format!("maxResults=2&nextToken={}", encode(token)),
                None => break,
            }
        }
        assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    });
}

#[test]
fn a_static_violation_is_listed_and_kept_across_a_restart() {
    let (dir, credentials) = test_folder("restart");
    let data = dir.join("data");
    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    assert_eq!(create_profile(&mut client, "watch").status, 200);
    attach_to_all_things(&mut client, "watch");
    // A recent datapoint: alarms of things silent for two days are invalidated.
    let timestamp = vigil_host::service::wall_clock_ms() / 1000 - 600;
    let ingested = client
        .send(
            "POST",
            "/vigil/datapoints",
            "",
            &format!(
                r#"{{"datapoints":[{{"thingName":"lamp-1","metricName":"aws:num-messages-sent",
                "timestamp":{timestamp},"value":{{"count":500}}}}]}}"#
            ),
        )
        .unwrap();
    assert_eq!(ingested.json().unwrap()["accepted"], 1, "{}", ingested.body);
    let active = |client: &mut ApiClient| {
        client
            .send("GET", "/active-violations", "securityProfileName=watch", "")
            .unwrap()
            .json()
            .unwrap()["activeViolations"]
            .clone()
    };
    let before = active(&mut client);
    assert_eq!(before[0]["thingName"], "lamp-1", "{before}");
    assert_eq!(before[0]["lastViolationValue"]["count"], 500, "{before}");
    server.kill();

    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    assert_eq!(active(&mut client), before);
    let events = client
        .send(
            "GET",
            "/violation-events",
            &format!("startTime={}&endTime={}", timestamp - 60, timestamp + 60),
            "",
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        events["violationEvents"][0]["violationEventType"],
        "in-alarm"
    );
    let metrics = client.send("GET", "/metrics", "", "").unwrap();
    assert!(
        metrics.body.contains("vigil_http_requests_total"),
        "{}",
        metrics.body
    );
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ml_training_resumes_after_a_restart_instead_of_starting_over() {
    let (dir, credentials) = test_folder("training");
    let data = dir.join("data");
    let args = [
        "--simulate",
        "16",
        "--time-scale",
        "20000",
        "--ml-min-datapoints",
        "100",
    ];
    let server = Server::start(&data, &credentials, &args);
    let mut client = server.client();
    let created = client
        .send(
            "POST",
            "/security-profiles/ml",
            "",
            r#"{"behaviors":[{"name":"sent","metric":"aws:num-messages-sent",
                "criteria":{"mlDetectionConfig":{"confidenceLevel":"HIGH"}}}]}"#,
        )
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    attach_to_all_things(&mut client, "ml");
    let summary = |client: &mut ApiClient| {
        client
            .send(
                "GET",
                "/behavior-model-training/summaries",
                "securityProfileName=ml",
                "",
            )
            .unwrap()
            .json()
            .unwrap()["summaries"][0]
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let summary = summary(&mut client);
        if summary["datapointsCollectionPercentage"]
            .as_f64()
            .unwrap_or(0.0)
            > 20.0
        {
            break summary;
        }
        assert!(
            Instant::now() < deadline,
            "training did not progress: {summary}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    server.kill();

    let server = Server::start(&data, &credentials, &args);
    let mut client = server.client();
    let after = summary(&mut client);
    assert_eq!(
        after["trainingDataCollectionStartDate"], before["trainingDataCollectionStartDate"],
        "{after}"
    );
    assert!(
        after["datapointsCollectionPercentage"].as_f64()
            >= before["datapointsCollectionPercentage"].as_f64(),
        "{before} then {after}"
    );
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A loopback HTTP server that answers 200 and forwards each request body.
fn webhook_receiver() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            // Read until the body announced by Content-Length is complete.
            let body = loop {
                let read = stream.read(&mut buffer).unwrap();
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("Content-Length: "))
                        .map_or(0, |value| value.trim().parse().unwrap());
                    if body.len() >= length || read == 0 {
                        break body.to_owned();
                    }
                }
            };
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            if sender.send(body).is_err() {
                return;
            }
        }
    });
    (address, received)
}

#[test]
fn alerts_of_unsuppressed_behaviors_reach_the_webhook_and_the_list() {
    let (dir, credentials) = test_folder("alerts");
    let (hook, posted) = webhook_receiver();
    let topic = "arn:aws:sns:us-east-1:123456789012:device-alerts";
    let webhook = format!("{topic}=http://{hook}/alerts");
    let server = Server::start(
        &dir.join("data"),
        &credentials,
        &["--alert-webhook", &webhook],
    );
    let mut client = server.client();
    let profile = format!(
        r#"{{"alertTargets":{{"SNS":{{"alertTargetArn":"{topic}",
            "roleArn":"arn:aws:iam::123456789012:role/Alerts"}}}},
        "behaviors":[{STATIC_BEHAVIOR},
            {{"name":"quiet-bytes","metric":"aws:all-bytes-out","suppressAlerts":true,
              "criteria":{{"comparisonOperator":"less-than","value":{{"count":10}},
              "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}}}]}}"#
    );
    let created = client
        .send("POST", "/security-profiles/alerting", "", &profile)
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    attach_to_all_things(&mut client, "alerting");
    let timestamp = vigil_host::service::wall_clock_ms() / 1000 - 600;
    let ingested = client
        .send(
            "POST",
            "/vigil/datapoints",
            "",
            &format!(
                r#"{{"datapoints":[
                {{"thingName":"lamp-9","metricName":"aws:num-messages-sent",
                  "timestamp":{timestamp},"value":{{"count":500}}}},
                {{"thingName":"lamp-9","metricName":"aws:all-bytes-out",
                  "timestamp":{timestamp},"value":{{"count":500}}}}]}}"#
            ),
        )
        .unwrap();
    assert_eq!(ingested.json().unwrap()["accepted"], 2, "{}", ingested.body);

    let body = posted.recv_timeout(Duration::from_secs(10)).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], topic);
    let message: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["thingName"], "lamp-9");
    assert_eq!(message["behavior"]["name"], "many-messages");
    assert_eq!(message["violationEventType"], "in-alarm");
    assert_eq!(message["metricValue"]["count"], 500);
    assert_eq!(message["violationEventTime"], timestamp * 1000);

    let listed = client
        .send(
            "GET",
            "/vigil/notifications",
            &format!("topicArn={}", encode(topic)),
            "",
        )
        .unwrap()
        .json()
        .unwrap();
    let notifications = listed["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{listed}");
    assert_eq!(
        notifications[0]["message"]["behavior"]["name"],
        "many-messages"
    );
    assert!(posted.recv_timeout(Duration::from_millis(1500)).is_err());
}

#[test]
fn registry_changes_are_kept_across_a_restart() {
    let (dir, credentials) = test_folder("registry-restart");
    let data = dir.join("data");
    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    let pem = rcgen::generate_simple_self_signed(vec!["lamp-1".to_owned()])
        .unwrap()
        .cert
        .pem();
    let body = serde_json::json!({"certificatePem": pem, "status": "ACTIVE"}).to_string();
    let registered = client
        .send("POST", "/certificate/register-no-ca", "", &body)
        .unwrap();
    assert_eq!(registered.status, 200, "{}", registered.body);
    let certificate_id = registered.json().unwrap()["certificateId"]
        .as_str()
        .unwrap()
        .to_owned();
    let thing = r#"{"attributePayload":{"attributes":{"site":"b7"}}}"#;
    assert_eq!(
        client
            .send("POST", "/things/lamp-1", "", thing)
            .unwrap()
            .status,
        200
    );
    let policy = r#"{"policyDocument":"{\"Version\":\"2012-10-17\"}"}"#;
    let steps = [
        (
            "PUT",
            format!("/certificates/{certificate_id}"),
            "newStatus=REVOKED",
            "",
        ),
        ("POST", "/policies/lamps".to_owned(), "", policy),
        (
            "POST",
            "/policies/lamps/version".to_owned(),
            "setAsDefault=true",
            policy,
        ),
        (
            "POST",
            "/v2LoggingOptions".to_owned(),
            "",
            r#"{"defaultLogLevel":"WARN","disableAllLogs":true}"#,
        ),
    ];
    for (method, path, query, body) in &steps {
        let response = client.send(method, path, query, body).unwrap();
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
    }
    server.kill();

    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    let get = |client: &mut ApiClient, path: &str| {
        client.send("GET", path, "", "").unwrap().json().unwrap()
    };
    let certificate = get(&mut client, &format!("/certificates/{certificate_id}"));
    assert_eq!(certificate["certificateDescription"]["status"], "REVOKED");
    assert_eq!(
        get(&mut client, "/things/lamp-1")["attributes"]["site"],
        "b7"
    );
    assert_eq!(get(&mut client, "/policies/lamps")["defaultVersionId"], "2");
    assert_eq!(
        get(&mut client, "/v2LoggingOptions")["defaultLogLevel"],
        "WARN"
    );
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}
