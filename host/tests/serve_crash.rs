//! Crash safety of `vigil serve`: datapoints are ingested continuously while the server is
//! killed with SIGKILL at random moments and restarted on the same data folder. Every batch the
//! server acknowledged must be there after the restarts, exactly once.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, test_folder};
use vigil_host::api::client::{ApiClient, encode};

const KILLS: usize = 20;
const THING: &str = "crash-thing";
const FIRST_TIMESTAMP: i64 = 1_796_000_000;

/// Creates a profile that retains `aws:num-messages-sent` for every thing.
fn retain_messages_sent(client: &mut ApiClient) {
    let body = r#"{"behaviors":[{"name":"too-many","metric":"aws:num-messages-sent",
        "criteria":{"comparisonOperator":"less-than","value":{"count":1000000},
        "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}]}"#;
    let created = client
        .send("POST", "/security-profiles/crash-profile", "", body)
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.body);
    let target = encode("arn:aws:iot:us-east-1:123456789012:all/things");
    let attached = client
        .send(
            "PUT",
            "/security-profiles/crash-profile/targets",
            &format!("securityProfileTargetArn={target}"),
            "",
        )
        .unwrap();
    assert_eq!(attached.status, 200, "{}", attached.body);
}

fn batch_body(batch: usize) -> String {
    let timestamp = FIRST_TIMESTAMP + 300 * batch as i64;
    format!(
        r#"{{"batchId":"batch-{batch}","datapoints":[{{"thingName":"{THING}",
        "metricName":"aws:num-messages-sent","timestamp":{timestamp},"value":{{"count":{batch}}}}}]}}"#
    )
}

/// Sends batches until the deadline; returns the next batch number and whether the last one
/// sent was acknowledged.
fn ingest_until(client: &mut ApiClient, next: &mut usize, deadline: Instant) -> Vec<usize> {
    let mut acknowledged = Vec::new();
    while Instant::now() < deadline {
        match client.send("POST", "/vigil/datapoints", "", &batch_body(*next)) {
            Ok(response) if response.status == 200 => {
                let value = response.json().unwrap();
                assert_eq!(value["accepted"], 1, "{}", response.body);
                acknowledged.push(*next);
                *next += 1;
            }
            Ok(response) => panic!("batch {next} refused: {}", response.body),
            Err(_) => break,
        }
    }
    acknowledged
}

fn stored_timestamps(client: &mut ApiClient) -> Vec<i64> {
    let mut timestamps = Vec::new();
    let mut token = String::new();
    loop {
        let mut query = format!(
            "thingName={THING}&metricName={}&startTime=0&endTime=4000000000",
            encode("aws:num-messages-sent")
        );
        if !token.is_empty() {
            query.push_str(&format!("&nextToken={}", encode(&token)));
        }
        let response = client.send("GET", "/metric-values", &query, "").unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        let value = response.json().unwrap();
        for datum in value["metricDatumList"].as_array().unwrap() {
            timestamps.push(datum["timestamp"].as_f64().unwrap() as i64);
        }
        match value["nextToken"].as_str() {
            Some(next) => token = next.to_owned(),
            None => return timestamps,
        }
    }
}

#[test]
fn killed_servers_lose_no_acknowledged_batch_and_duplicate_none() {
    let (dir, credentials) = test_folder("crash");
    let data = dir.join("data");

    let server = Server::start(&data, &credentials, &[]);
    retain_messages_sent(&mut server.client());
    let mut server = Some(server);
    let mut acknowledged = Vec::new();
    let mut next = 0;
    // A fixed seed keeps the kill points reproducible from run to run.
    let mut seed: u64 = 0x5eed;
    for _ in 0..KILLS {
        let running = server.take().unwrap();
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let lifetime = Duration::from_millis(100 + (seed >> 33) % 400);
        let killer = {
            let pid = running.child.id();
            std::thread::spawn(move || {
                std::thread::sleep(lifetime);
                // SIGKILL mid-request: no shutdown code runs.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            })
        };
        acknowledged.extend(ingest_until(
            &mut running.client(),
            &mut next,
            Instant::now() + lifetime + Duration::from_secs(2),
        ));
        killer.join().unwrap();
        running.kill();
        server = Some(Server::start(&data, &credentials, &[]));
        // The batch in flight at the kill is sent again with the same id: stored once either way.
        let mut retry = server.as_ref().unwrap().client();
        acknowledged.extend(ingest_until(
            &mut retry,
            &mut next,
            Instant::now() + Duration::from_millis(50),
        ));
    }
    let server = server.take().unwrap();
    let mut reader = server.client();
    let stored = stored_timestamps(&mut reader);
    let expected: Vec<i64> = (0..next)
        .map(|batch| FIRST_TIMESTAMP + 300 * batch as i64)
        .collect();
    assert!(
        acknowledged.len() >= KILLS,
        "only {} batches acknowledged",
        acknowledged.len()
    );
    assert_eq!(
        stored, expected,
        "stored values differ from the acknowledged batches"
    );

    let stats = reader
        .send("GET", "/vigil/stats", "", "")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        stats["engine"]["datapointsAccepted"].as_u64(),
        Some(next as u64),
        "the engine counted a batch twice or lost one: {stats}"
    );
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}
