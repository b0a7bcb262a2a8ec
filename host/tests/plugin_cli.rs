//! `vigil plugin` as a plugin author meets it: a dry run that prints what the host would do, an
//! installation that `vigil plugin list` shows, and an installed plugin that a served mitigation
//! task runs through the action name it is bound to.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Server, test_folder};
use serde_json::Value;
use vigil_host::api::client::ApiClient;

const VIOLATION: &str = r#"{
  "violationId": "a4ba6a3ed0bb5ad1d1e4a5e1b1c0c7a2",
  "thingName": "sensor-7",
  "securityProfileName": "ProfileForConnectedDevice",
  "behavior": {"name": "many-messages", "metric": "aws:num-messages-sent",
               "criteria": {"comparisonOperator": "less-than", "value": {"count": 10}}},
  "lastViolationValue": {"count": 4100},
  "verificationState": "UNKNOWN",
  "lastViolationTime": 1733300000.0,
  "violationStartTime": 1733299700.0
}"#;

fn artifact(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm")
        .join(relative);
    assert!(
        path.exists(),
        "`{}` is missing: build it with `cargo xtask build-wasm`",
        path.display()
    );
    path
}

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("VIGIL_LOG", "error")
        .output()
        .expect("run vigil")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `vigil plugin install` for the component at `relative` under `target/wasm`, bound to
/// `action`, with `extra` options such as `--grant`.
fn install(relative: &str, data: &Path, action: &str, extra: &[&str]) -> Output {
    let plugin = artifact(relative);
    let mut args = vec![
        "plugin",
        "install",
        plugin.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--action",
        action,
    ];
    args.extend_from_slice(extra);
    vigil(&args)
}

/// Installs the API 0.1.0 fixture into `data`, bound to `action`.
fn install_legacy_plugin(data: &Path, action: &str) -> Output {
    install(
        "fixtures/legacy-plugin.wasm",
        data,
        action,
        &["--grant", "thing-registry"],
    )
}

#[test]
fn plugin_test_prints_planned_operations() {
    let (dir, _) = test_folder("plugin-test-dry-run");
    let violation = dir.join("violation.json");
    std::fs::write(&violation, VIOLATION).unwrap();
    let plugin = artifact("plugins/add-things-to-thing-group.wasm");

    let output = vigil(&[
        "plugin",
        "test",
        plugin.to_str().unwrap(),
        "--violation",
        violation.to_str().unwrap(),
        "--action-params",
        r#"{"addThingsToThingGroupParams":{"thingGroupNames":["quarantine","isolated"]}}"#,
    ]);

    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("plugin:   add-things-to-thing-group 0.1.0 (plugin API 0.2.0)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("thing:    sensor-7 (violation a4ba6a3ed0bb5ad1d1e4a5e1b1c0c7a2)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("result:   SUCCESSFUL\n"), "{stdout}");
    assert!(
        stdout.ends_with(
            "would perform:\n  1. add thing `sensor-7` to thing group `quarantine`\n  \
             2. add thing `sensor-7` to thing group `isolated`\n"
        ),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plugin_test_exits_1_on_failure() {
    let (dir, _) = test_folder("plugin-test-failure");
    let violation = dir.join("violation.json");
    std::fs::write(&violation, VIOLATION).unwrap();
    let plugin = artifact("plugins/add-things-to-thing-group.wasm");

    let output = vigil(&[
        "plugin",
        "test",
        plugin.to_str().unwrap(),
        "--violation",
        violation.to_str().unwrap(),
        "--action-params",
        r#"{"publishFindingToSnsParams":{"topicArn":"arn:aws:sns:us-east-1:123456789012:ops"}}"#,
    ]);

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the execution failed with PLUGIN_ERROR"),
        "{stderr}"
    );
    assert!(text(&output.stdout).contains("would perform: nothing\n"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn install_without_grant_is_rejected() {
    let (dir, _) = test_folder("plugin-install-refused");
    let data = dir.join("data");

    let output = install(
        "fixtures/legacy-plugin.wasm",
        &data,
        "legacy_quarantine",
        &[],
    );

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "plugin `legacy-quarantine` imports `thing-registry`, which its configuration does \
             not grant (granted: logging); grant it with `--grant thing-registry`"
        ),
        "{stderr}"
    );
    assert!(!data.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn list_shows_installed_plugin_grants() {
    let (dir, _) = test_folder("plugin-install-list");
    let data = dir.join("data");

    let installed = install_legacy_plugin(&data, "legacy_quarantine");
    let listed = vigil(&["plugin", "list", "--data", data.to_str().unwrap()]);

    assert!(installed.status.success(), "{}", text(&installed.stderr));
    let stdout = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let legacy = stdout
        .split_once("legacy-quarantine 0.1.0 (plugin API 0.1.0)\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no legacy-quarantine entry in {stdout}"));
    assert!(
        legacy.contains("  bound to:     legacy_quarantine\n"),
        "{stdout}"
    );
    assert!(
        legacy.contains("  imports:      thing-registry, logging\n"),
        "{stdout}"
    );
    assert!(
        legacy.contains("  granted:      thing-registry, logging\n"),
        "{stdout}"
    );
    assert!(stdout.contains("add-things-to-thing-group 0.1.0 (plugin API 0.2.0)\n"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_rejects_changed_installed_plugin() {
    let (dir, credentials) = test_folder("plugin-install-tampered");
    let data = dir.join("data");
    assert!(
        install_legacy_plugin(&data, "legacy_quarantine")
            .status
            .success()
    );
    let file = data.join("plugins/legacy-quarantine.wasm");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(&file, bytes).unwrap();

    let output = common::serve_command(&data, &credentials, &[])
        .env("VIGIL_LOG", "error")
        .output()
        .unwrap();

    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("changed since it was installed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("install it again with `vigil plugin install`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn send(client: &mut ApiClient, method: &str, path: &str, query: &str, body: &str) -> Value {
    let response = client.send(method, path, query, body).unwrap();
    assert!(
        response.status == 200,
        "{method} {path}: {} {}",
        response.status,
        response.body
    );
    response.json().unwrap_or(Value::Null)
}

/// Raises a static violation for each of `things` and returns their ids in the same order.
fn violations_for(client: &mut ApiClient, things: &[&str]) -> Vec<String> {
    let behavior = r#"{"name":"many-messages","metric":"aws:num-messages-sent",
        "criteria":{"comparisonOperator":"less-than","value":{"count":10},
        "consecutiveDatapointsToAlarm":1,"consecutiveDatapointsToClear":1}}"#;
    send(
        client,
        "POST",
        "/security-profiles/watch",
        "",
        &format!(r#"{{"behaviors":[{behavior}]}}"#),
    );
    let target = vigil_host::api::client::encode(common::ALL_THINGS);
    send(
        client,
        "PUT",
        "/security-profiles/watch/targets",
        &format!("securityProfileTargetArn={target}"),
        "",
    );
    let timestamp = vigil_host::service::wall_clock_ms() / 1000 - 600;
    let datapoints: Vec<String> = things
        .iter()
        .map(|thing| {
            format!(
                r#"{{"thingName":"{thing}","metricName":"aws:num-messages-sent",
                "timestamp":{timestamp},"value":{{"count":500}}}}"#
            )
        })
        .collect();
    send(
        client,
        "POST",
        "/vigil/datapoints",
        "",
        &format!(r#"{{"datapoints":[{}]}}"#, datapoints.join(",")),
    );
    let active = send(
        client,
        "GET",
        "/active-violations",
        "securityProfileName=watch",
        "",
    );
    let violations = active["activeViolations"].as_array().expect("violations");
    things
        .iter()
        .map(|thing| {
            let violation = violations
                .iter()
                .find(|violation| violation["thingName"] == *thing)
                .unwrap_or_else(|| panic!("no violation for `{thing}` in {active}"));
            violation["violationId"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Starts a task with `actions` on `violation_ids` and waits for it to finish.
fn run_task(
    client: &mut ApiClient,
    task_id: &str,
    violation_ids: &[String],
    actions: &[&str],
) -> Value {
    let body = serde_json::json!({
        "target": {"violationIds": violation_ids},
        "actions": actions,
        "clientRequestToken": format!("{task_id}-token"),
    });
    send(
        client,
        "PUT",
        &format!("/detect/mitigationactions/tasks/{task_id}"),
        "",
        &body.to_string(),
    );
    wait_for_task(client, task_id)
}

fn wait_for_task(client: &mut ApiClient, task_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task = send(
            client,
            "GET",
            &format!("/detect/mitigationactions/tasks/{task_id}"),
            "",
            "",
        );
        let summary = task["taskSummary"].clone();
        if summary["taskStatus"] != "IN_PROGRESS" || Instant::now() > deadline {
            return summary;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_runs_installed_plugin_by_action_name() {
    let (dir, credentials) = test_folder("plugin-install-serve");
    let data = dir.join("data");
    assert!(
        install_legacy_plugin(&data, "legacy_quarantine")
            .status
            .success()
    );
    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    let plugins_line = "  plugins:     6 bundled, 1 installed (bound: legacy_quarantine)";
    assert!(
        server.banner.iter().any(|line| line == plugins_line),
        "{:?}",
        server.banner
    );
    send(&mut client, "POST", "/thing-groups/isolation", "", "{}");
    send(
        &mut client,
        "POST",
        "/mitigationactions/actions/legacy_quarantine",
        "",
        r#"{"roleArn":"arn:aws:iam::123456789012:role/MitigationRole",
            "actionParams":{"addThingsToThingGroupParams":{"thingGroupNames":["isolation"]}}}"#,
    );
    let violation_ids = violations_for(&mut client, &["lamp-1"]);

    let summary = run_task(
        &mut client,
        "legacy-task",
        &violation_ids,
        &["legacy_quarantine"],
    );
    let members = send(&mut client, "GET", "/thing-groups/isolation/things", "", "");

    assert_eq!(summary["taskStatus"], "SUCCESSFUL", "{summary}");
    assert_eq!(summary["taskStatistics"]["actionsExecuted"], 1, "{summary}");
    assert_eq!(
        members["things"],
        serde_json::json!(["lamp-1"]),
        "{members}"
    );
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_fails_hostile_executions_and_continues() {
    let (dir, credentials) = test_folder("plugin-install-hostile");
    let data = dir.join("data");
    let installed = install(
        "fixtures/hostile-plugin.wasm",
        &data,
        "hostile_action",
        &["--grant", "thing-registry"],
    );
    assert!(installed.status.success(), "{}", text(&installed.stderr));
    let server = Server::start(&data, &credentials, &[]);
    let mut client = server.client();
    send(
        &mut client,
        "POST",
        "/thing-groups/hostile-was-here",
        "",
        "{}",
    );
    send(
        &mut client,
        "POST",
        "/mitigationactions/actions/hostile_action",
        "",
        r#"{"roleArn":"arn:aws:iam::123456789012:role/MitigationRole",
            "actionParams":{"publishFindingToSnsParams":
                {"topicArn":"arn:aws:sns:us-east-1:123456789012:ops"}}}"#,
    );
    let things = ["loop", "memory-bomb", "trespass", "calm-1"];
    let violation_ids = violations_for(&mut client, &things);

    let summary = run_task(
        &mut client,
        "hostile-task",
        &violation_ids,
        &["hostile_action"],
    );
    let executions = send(
        &mut client,
        "GET",
        "/detect/mitigationactions/executions",
        "taskId=hostile-task",
        "",
    );
    let members = send(
        &mut client,
        "GET",
        "/thing-groups/hostile-was-here/things",
        "",
        "",
    );

    assert_eq!(summary["taskStatus"], "FAILED", "{summary}");
    assert_eq!(
        summary["taskStatistics"],
        serde_json::json!({"actionsExecuted": 4, "actionsSkipped": 0, "actionsFailed": 3})
    );
    let mut outcomes: Vec<(String, String)> = executions["actionsExecutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|execution| {
            (
                execution["thingName"].as_str().unwrap().to_owned(),
                execution["errorCode"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("calm-1", "-"),
            ("loop", "PLUGIN_TIMEOUT"),
            ("memory-bomb", "PLUGIN_OUT_OF_MEMORY"),
            ("trespass", "PLUGIN_ERROR"),
        ]
        .map(|(thing, code)| (thing.to_owned(), code.to_owned()))
    );
    assert_eq!(
        members["things"],
        serde_json::json!(["calm-1"]),
        "{members}"
    );
    let mut executions_of = |action: &str| {
        let query = format!("taskId=hostile-task&actionName={action}");
        let listed = send(
            &mut client,
            "GET",
            "/detect/mitigationactions/executions",
            &query,
            "",
        );
        listed["actionsExecutions"].as_array().unwrap().len()
    };
    assert_eq!(executions_of("hostile_action"), 4);
    assert_eq!(executions_of("other_action"), 0);
    server.kill();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn install_rejects_a_bundled_plugin_name() {
    let (dir, _) = test_folder("plugin-install-bundled-name");
    let data = dir.join("data");

    let output = install(
        "plugins/add-things-to-thing-group.wasm",
        &data,
        "q2",
        &["--grant", "thing-registry"],
    );

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a plugin named `add-things-to-thing-group` is already loaded"),
        "{stderr}"
    );
    assert!(!data.join("plugins/installed.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn uninstall_removes_a_binding_then_the_plugin() {
    let (dir, _) = test_folder("plugin-uninstall");
    let data = dir.join("data");
    assert!(install_legacy_plugin(&data, "first").status.success());
    assert!(install_legacy_plugin(&data, "second").status.success());
    let uninstall = |extra: &[&str]| {
        let mut args = vec!["plugin", "uninstall", "legacy-quarantine", "--data"];
        args.push(data.to_str().unwrap());
        args.extend_from_slice(extra);
        vigil(&args)
    };

    let one_binding = uninstall(&["--action", "first"]);
    let record = std::fs::read_to_string(data.join("plugins/installed.json")).unwrap();
    let whole_plugin = uninstall(&[]);
    let missing = uninstall(&[]);

    assert!(
        one_binding.status.success(),
        "{}",
        text(&one_binding.stderr)
    );
    assert!(!record.contains("\"first\""), "{record}");
    assert!(record.contains("\"second\""), "{record}");
    assert!(
        whole_plugin.status.success(),
        "{}",
        text(&whole_plugin.stderr)
    );
    assert!(!data.join("plugins/legacy-quarantine.wasm").exists());
    assert!(
        text(&missing.stderr).contains("no plugin named `legacy-quarantine` is installed"),
        "{}",
        text(&missing.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn install_rejects_an_invalid_action_name() {
    let (dir, _) = test_folder("plugin-install-action-name");
    let data = dir.join("data");

    let output = install_legacy_plugin(&data, "../etc");

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid --action \"../etc\": a mitigation action name is 1 to 128"),
        "{stderr}"
    );
    assert!(!data.exists());
    std::fs::remove_dir_all(dir).unwrap();
}
