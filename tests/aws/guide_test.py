"""Run the `aws iot` commands of AWS's "How to use ML Detect with the CLI" guide against
`vigil serve`, with the real AWS CLI, and check each output against the guide's sample output.

`guide-commands.txt` contains the guide's command lines as the guide prints them, and
`guide-outputs.txt` the sample output printed after each one (`None.` where the guide shows no
output). Only the endpoint, the violation ids and the time ranges change.

The server simulates a fleet with a fast virtual clock, so the models train and the simulated
attacks raise ML violations within a minute (about 35 s on 2 cores). Run it with the Python of
`target/venv` (`cargo xtask test` does), with `VIGIL_BIN` naming the `vigil` binary if it is not
the release build.
"""

import json
import re
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

import botocore.session
import botocore.utils

from vigil_server import ACCOUNT_ID, REGION, VigilServer

HERE = Path(__file__).resolve().parent
GUIDE_COMMANDS = HERE / "guide-commands.txt"
GUIDE_OUTPUTS = HERE / "guide-outputs.txt"

SIMULATED_THINGS = 20
TIME_SCALE = 50000
# How many times the guide test looks for violations that survive slowing the clock down.
TASK_TARGET_ATTEMPTS = 5
STATIC_GROUP = "ML_Detect_beta_static_group"
MITIGATION_GROUP = "ThingGroupForDetectMitigationAction"
PROFILE = "security-profile-for-smart-lights"
TASK_ID = "taskIdForMitigationAction"
ONE_DAY = 24 * 3600

# Wall-clock limits for the polls. At 50000 times real speed, 15 simulated days take about 26 s.
TRAINING_TIMEOUT = 240
VIOLATION_TIMEOUT = 240
TASK_TIMEOUT = 60
POLL_INTERVAL = 1.0


# Keys of the sample outputs that a correct reply may leave out in this run, with the reason.
# A path names nested keys with dots, and `[]` means every item of a list.
KEYS_ABSENT_HERE = {
    # The guide's sample task targets a behavior with a time range, but its own command (and
    # so this run) targets violation ids without `--violation-event-occurrence-range`.
    "describe-detect-mitigation-actions-task": {
        "taskSummary.target.securityProfileName",
        "taskSummary.target.behaviorName",
        "taskSummary.violationEventOccurrenceRange",
    },
    "list-detect-mitigation-actions-tasks": {
        "tasks[].target.securityProfileName",
        "tasks[].target.behaviorName",
        "tasks[].violationEventOccurrenceRange",
    },
    # `nextToken` is present only when more results remain.
    "list-violation-events": {"nextToken"},
}


class GuideFailure(Exception):
    """A step of the guide failed, and later steps depend on it."""


def normalise(line):
    """Return the argv after `aws` for one guide command line as the guide prints it.

    The guide flattens shell line continuations into ` \\ `, which stands for whitespace between
    arguments, and prints `--thing-group-name` once with an em dash.
    """
    joined = line.strip().replace(" \\ ", " ")
    argv = shlex.split(joined)
    if argv[:2] != ["aws", "iot"]:
        raise ValueError(f"not an `aws iot` command: {line!r}")
    argv = argv[1:]
    argv = ["--" + arg[1:] if arg.startswith("\u2014") else arg for arg in argv]
    for arg in argv:
        if "\\" in arg or "\u2014" in arg:
            raise ValueError(f"argument {arg!r} of {line!r} still contains guide typography")
    return argv


def parse_sample(text):
    """Parse one sample output: `None.` means no output, and trailing commas are dropped."""
    text = text.strip()
    if text == "None.":
        return None
    return json.loads(re.sub(r",\s*([}\]])", r"\1", text))


def load_guide():
    """Return `{command name: (argv, sample output)}` in guide order."""
    lines = GUIDE_COMMANDS.read_text().splitlines()
    samples = GUIDE_OUTPUTS.read_text().splitlines()
    if len(lines) != len(samples):
        raise ValueError(
            f"{GUIDE_COMMANDS.name} has {len(lines)} commands but "
            f"{GUIDE_OUTPUTS.name} has {len(samples)} sample outputs"
        )
    guide = {}
    for line, sample in zip(lines, samples, strict=True):
        argv = normalise(line)
        guide[argv[1]] = (argv, parse_sample(sample))
    return guide


def replace_option(argv, option, value):
    """Return `argv` with the value after `option` replaced."""
    index = argv.index(option)
    return argv[: index + 1] + [value] + argv[index + 2 :]


def operation_name(command):
    """Return the API operation a CLI command calls: `list-active-violations` calls
    `ListActiveViolations`."""
    return "".join(part.capitalize() for part in command.split("-"))


class ShapeChecker:
    """Compares a reply with a sample output: the sample's keys must be present with values of
    the same JSON type, and every other key must be a member of the API's output shape.

    Timestamps are compared with the API model, not the sample, because the AWS CLI v1 prints
    them as the server sent them and the guide's samples mix epoch numbers and date strings.
    """

    def __init__(self):
        self.service_model = botocore.session.get_session().get_service_model("iot")

    def check(self, command, actual, sample):
        """Return a list of differences, empty when the reply has the sample's shape."""
        output_shape = self.service_model.operation_model(operation_name(command)).output_shape
        absent_ok = KEYS_ABSENT_HERE.get(command, set())
        problems = []
        self._compare(actual, sample, output_shape, "", absent_ok, problems)
        return problems

    def _compare(self, actual, sample, shape, path, absent_ok, problems):
        if shape is None:
            return
        if shape.type_name == "timestamp":
            if not is_timestamp(actual):
                problems.append(f"{path}: expected a timestamp, got {actual!r}")
            return
        if isinstance(sample, dict) or (sample is None and shape.type_name == "structure"):
            self._compare_object(actual, sample or {}, shape, path, absent_ok, problems)
        elif isinstance(sample, list) or (sample is None and shape.type_name == "list"):
            self._compare_list(actual, sample or [], shape, path, absent_ok, problems)
        elif json_type(actual) != json_type(sample) and sample is not None:
            problems.append(
                f"{path}: expected a {json_type(sample)} like {sample!r}, got {actual!r}"
            )

    def _compare_object(self, actual, sample, shape, path, absent_ok, problems):
        if not isinstance(actual, dict):
            problems.append(f"{path or 'output'}: expected an object, got {actual!r}")
            return
        members = shape.members if shape is not None else {}
        for key in sample:
            key_path = f"{path}.{key}" if path else key
            if key not in actual and key_path not in absent_ok:
                problems.append(f"{key_path}: missing (the guide's sample has it)")
        for key, value in actual.items():
            key_path = f"{path}.{key}" if path else key
            if key_path == "NextToken":
                # The AWS CLI's own token for `--starting-token`, printed after `--max-items`.
                continue
            if key not in members:
                problems.append(f"{key_path}: not a member of `{shape.name}`")
                continue
            self._compare(value, sample.get(key), members[key], key_path, absent_ok, problems)

    def _compare_list(self, actual, sample, shape, path, absent_ok, problems):
        if not isinstance(actual, list):
            problems.append(f"{path}: expected a list, got {actual!r}")
            return
        item_sample, optional_keys = merge_sample_items(sample)
        item_absent_ok = absent_ok | {f"{path}[].{key}" for key in optional_keys}
        for item in actual:
            self._compare(item, item_sample, shape.member, f"{path}[]", item_absent_ok, problems)


def merge_sample_items(items):
    """Merge the sample items of one list into one sample item.

    Returns the merged item and the keys that only some items have, which a reply may omit.
    """
    if not items or not all(isinstance(item, dict) for item in items):
        return (items[0] if items else None), set()
    merged = {}
    for item in items:
        for key, value in item.items():
            merged.setdefault(key, value)
    common = set.intersection(*(set(item) for item in items))
    return merged, set(merged) - common


def is_timestamp(value):
    """Return whether a printed value is a timestamp: epoch seconds or a date string."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        botocore.utils.parse_timestamp(value)
    except (TypeError, ValueError):
        return False
    return True


def json_type(value):
    """Return the JSON type name of a parsed value, with integers and floats both `number`."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


class GuideRun:
    """The guide's steps against one server, with a pass or fail record for each check."""

    def __init__(self, server, guide):
        self.server = server
        self.guide = guide
        self.aws = Path(sys.executable).with_name("aws")
        self.iot = server.boto3_client()
        self.shapes = ShapeChecker()
        self.passed = []
        self.failed = []

    def record(self, name, problems):
        """Record a check as passed when `problems` is empty, else as failed with them."""
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for problem in problems:
                print(f"     {problem}")
        else:
            self.passed.append(name)
            print(f"ok   {name}")
        sys.stdout.flush()

    def aws_cli(self, argv, echo=True):
        """Run the AWS CLI against the server; return `(exit code, parsed stdout, stderr)`."""
        full = [str(self.aws), *argv, "--endpoint-url", self.server.endpoint]
        if echo:
            print("$ aws " + shlex.join(argv), flush=True)
        completed = subprocess.run(
            full, env=self.server.client_env(), capture_output=True, text=True, timeout=120
        )
        output = json.loads(completed.stdout) if completed.stdout.strip() else None
        return completed.returncode, output, completed.stderr.strip()

    def run_guide_command(self, command, argv=None, output_check=None):
        """Run one guide command, substituted `argv` if given, and check its output's shape."""
        guide_argv, sample = self.guide[command]
        argv = argv or guide_argv
        code, output, stderr = self.aws_cli(argv)
        if code != 0:
            self.record(command, [f"exit code {code}: {stderr}"])
            return None
        print(json.dumps(output, indent=2) if output is not None else "(no output)")
        if sample is None:
            problems = [] if output is None else [f"expected no output, got {output!r}"]
        else:
            problems = self.shapes.check(command, output, sample)
        if output_check is not None and not problems:
            problems = output_check(output)
        self.record(command, problems)
        return output

    def virtual_time_window(self):
        """Return `(start, end)` epoch seconds covering everything the simulation did so far.

        The virtual clock starts at the server's start-up time and runs TIME_SCALE times faster.
        """
        start = self.server.start_wall_time
        elapsed = time.time() - start
        return int(start - ONE_DAY), int(start + elapsed * TIME_SCALE + ONE_DAY)

    def set_up_fleet(self):
        """Create the guide's static thing group and add the simulated things to it.

        The server names the simulated things at `/vigil/simulation`. boto3 does the set-up in
        one process, because each AWS CLI start costs about half a second of real time, which
        is hours of simulated time.
        """
        status, _, body = self.server.signed_request("GET", "/vigil/simulation")
        if status != 200:
            self.record("set-up: GET /vigil/simulation", [f"status {status}: {body!r}"])
            raise GuideFailure("GET /vigil/simulation")
        simulation = json.loads(body)
        things = simulation["things"]
        print(f"simulated things: {len(things)}, attacks: {simulation['attacks']}")

        self.iot.create_thing_group(thingGroupName=STATIC_GROUP)
        for thing in things:
            self.iot.add_thing_to_thing_group(thingGroupName=STATIC_GROUP, thingName=thing)
        listed = self.list_things_in_group(STATIC_GROUP)
        problems = []
        if len(things) != SIMULATED_THINGS:
            problems.append(f"{len(things)} simulated things, expected {SIMULATED_THINGS}")
        if sorted(listed) != sorted(things):
            problems.append(f"the group lists {sorted(listed)}")
        self.record(f"set-up: simulated things in {STATIC_GROUP}", problems)

    def list_things_in_group(self, group):
        paginator = self.iot.get_paginator("list_things_in_thing_group")
        return [
            thing for page in paginator.paginate(thingGroupName=group) for thing in page["things"]
        ]

    def poll(self, description, timeout, attempt):
        """Call `attempt()` every POLL_INTERVAL until it returns a value; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = attempt()
            if result is not None:
                return result
            time.sleep(POLL_INTERVAL)
        self.record(description, [f"timed out after {timeout} s"])
        raise GuideFailure(description)

    def wait_for_active_models(self):
        """Poll the guide's training-summaries command until every model is ACTIVE."""
        argv, _ = self.guide["get-behavior-model-training-summaries"]
        last = {}

        def all_active():
            code, output, stderr = self.aws_cli(argv, echo=False)
            if code != 0:
                self.record("get-behavior-model-training-summaries", [stderr])
                raise GuideFailure("get-behavior-model-training-summaries")
            last["output"] = output
            statuses = [summary.get("modelStatus") for summary in output.get("summaries", [])]
            return statuses if statuses and set(statuses) == {"ACTIVE"} else None

        print("$ aws " + shlex.join(argv) + "  # repeated until every model is ACTIVE")
        try:
            self.poll("models ACTIVE", TRAINING_TIMEOUT, all_active)
        except GuideFailure:
            print(f"last output: {json.dumps(last.get('output'), indent=2)}")
            raise

    def wait_for_violations(self):
        """Poll the guide's list-active-violations command until it lists violations."""
        argv, _ = self.guide["list-active-violations"]

        def some_violations():
            code, output, stderr = self.aws_cli(argv, echo=False)
            if code != 0:
                self.record("list-active-violations", [stderr])
                raise GuideFailure("list-active-violations")
            return output if output.get("activeViolations") else None

        print("$ aws " + shlex.join(argv) + "  # repeated until violations are listed")
        return self.poll("active violations listed", VIOLATION_TIMEOUT, some_violations)

    def current_violations(self, count):
        """Return up to `count` active violations, each of a different thing."""
        paginator = self.iot.get_paginator("list_active_violations")
        chosen = {}
        for page in paginator.paginate(listSuppressedAlerts=True):
            for violation in page["activeViolations"]:
                chosen.setdefault(violation["thingName"], violation)
        return list(chosen.values())[:count]

    def violations_for_task(self):
        """Return up to two active violations for the mitigation task.

        The task skips violations that are no longer active when it runs, and the AWS CLI
        takes about half a second to start it: about 7 simulated hours at this time scale,
        long enough for a simulated alarm to clear. So once violations are listed, event time
        is slowed to the wall clock, and the chosen ones stay active while the task runs.
        Slowing the clock first catches up on the periods that ended, which can clear the
        violations just seen; then the clock runs fast again until new ones are listed.
        """
        for _ in range(TASK_TARGET_ATTEMPTS):
            self.set_time_scale(TIME_SCALE)
            self.poll(
                "active violations after the update",
                VIOLATION_TIMEOUT,
                lambda: self.current_violations(count=2) or None,
            )
            self.set_time_scale(1)
            violations = self.current_violations(count=2)
            if violations:
                return violations
            print("the violations cleared while the clock slowed down; looking again")
        raise GuideFailure(
            f"no violation stayed active once the clock slowed, in {TASK_TARGET_ATTEMPTS} tries"
        )

    def set_time_scale(self, scale):
        """Set the server's event-time speed through POST /vigil/clock."""
        status, _, body = self.server.signed_request("POST", "/vigil/clock", {"timeScale": scale})
        if status != 200:
            raise GuideFailure(f"POST /vigil/clock answered {status}: {body}")

    def wait_for_task(self):
        """Wait until the mitigation task has left IN_PROGRESS, and return its summary."""

        def finished():
            summary = self.iot.describe_detect_mitigation_actions_task(taskId=TASK_ID)
            status = summary["taskSummary"]["taskStatus"]
            return summary["taskSummary"] if status != "IN_PROGRESS" else None

        return self.poll("mitigation task finished", TASK_TIMEOUT, finished)

    def run(self):
        self.set_up_fleet()
        self.run_guide_command("create-security-profile", output_check=self.check_profile_arn)
        self.run_guide_command("attach-security-profile")

        self.wait_for_active_models()
        self.run_guide_command(
            "get-behavior-model-training-summaries", output_check=check_four_behaviors
        )

        self.wait_for_violations()
        self.run_guide_command("list-active-violations", output_check=check_max_two)

        start, end = self.virtual_time_window()
        argv, _ = self.guide["list-violation-events"]
        argv = replace_option(argv, "--start-time", str(start))
        argv = replace_option(argv, "--end-time", str(end))
        self.run_guide_command("list-violation-events", argv, output_check=check_some_events)

        self.run_guide_command("update-security-profile", output_check=check_updated_levels)
        self.run_guide_command("create-thing-group")
        self.run_guide_command("create-mitigation-action")

        # The update invalidates the alarms of the changed behaviors, so wait for new ones.
        violations = self.violations_for_task()
        for violation in violations:
            print(
                f"task target: {violation['violationId']} of {violation['thingName']}, "
                f"violating from {violation['violationStartTime']} "
                f"to {violation['lastViolationTime']}"
            )
        violation_ids = [violation["violationId"] for violation in violations]
        argv, _ = self.guide["start-detect-mitigation-actions-task"]
        target = json.loads(argv[argv.index("--target") + 1])
        target["violationIds"] = violation_ids
        argv = replace_option(argv, "--target", json.dumps(target))
        self.run_guide_command("start-detect-mitigation-actions-task", argv)
        summary = self.wait_for_task()
        print(f"task status: {summary['taskStatus']}, statistics: {summary['taskStatistics']}")

        self.run_guide_command(
            "list-detect-mitigation-actions-executions",
            output_check=lambda output: check_executions(output, violation_ids),
        )
        self.run_guide_command("describe-detect-mitigation-actions-task")
        start, end = self.virtual_time_window()
        argv, _ = self.guide["list-detect-mitigation-actions-tasks"]
        argv = replace_option(argv, "--start-time", str(start))
        argv = replace_option(argv, "--end-time", str(end))
        self.run_guide_command("list-detect-mitigation-actions-tasks", argv)
        self.run_guide_command("cancel-detect-mitigation-actions-task")

        self.check_things_moved(violations)

    def check_profile_arn(self, output):
        expected = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}:securityprofile/{PROFILE}"
        if output["securityProfileArn"] != expected:
            return [f"securityProfileArn is {output['securityProfileArn']!r}, not {expected!r}"]
        return []

    def check_things_moved(self, violations):
        """The mitigation action must have added each violating thing to the guide's group."""
        argv = ["iot", "list-things-in-thing-group", "--thing-group-name", MITIGATION_GROUP]
        code, output, stderr = self.aws_cli(argv)
        name = f"violating things listed in {MITIGATION_GROUP}"
        if code != 0:
            self.record(name, [f"exit code {code}: {stderr}"])
            return
        print(json.dumps(output, indent=2))
        listed = set(output.get("things", []))
        expected = {violation["thingName"] for violation in violations}
        missing = sorted(expected - listed)
        self.record(name, [f"missing: {missing}, listed: {sorted(listed)}"] if missing else [])


def check_four_behaviors(output):
    names = sorted(summary["behaviorName"] for summary in output["summaries"])
    expected = sorted(
        [
            "num-authorization-failures-ml-behavior",
            "num-connection-attempts-ml-behavior",
            "num-disconnects-ml-behavior",
            "num-messages-sent-ml-behavior",
        ]
    )
    return [] if names == expected else [f"behaviors {names}, expected {expected}"]


def check_max_two(output):
    count = len(output["activeViolations"])
    return [] if 1 <= count <= 2 else [f"{count} violations listed with --max-results 2"]


def check_some_events(output):
    events = output["violationEvents"]
    if not 1 <= len(events) <= 2:
        return [f"{len(events)} events listed with --max-results 2"]
    return []


def check_updated_levels(output):
    levels = {
        behavior["name"]: behavior["criteria"]["mlDetectionConfig"]["confidenceLevel"]
        for behavior in output["behaviors"]
    }
    problems = []
    if levels.get("num-disconnects-ml-behavior") != "LOW":
        problems.append(f"num-disconnects-ml-behavior confidence is not LOW: {levels}")
    if output["version"] != 2:
        problems.append(f"version is {output['version']}, expected 2 after one update")
    return problems


def check_executions(output, violation_ids):
    executions = output["actionsExecutions"]
    problems = []
    for violation_id in violation_ids:
        statuses = [e["status"] for e in executions if e["violationId"] == violation_id]
        if statuses != ["SUCCESSFUL"]:
            problems.append(f"violation {violation_id}: execution statuses {statuses}")
    return problems


def main():
    guide = load_guide()
    server = VigilServer(["--simulate", str(SIMULATED_THINGS), "--time-scale", str(TIME_SCALE)])
    run = None
    try:
        server.start()
        run = GuideRun(server, guide)
        run.run()
    except GuideFailure as failure:
        print(f"stopped: {failure} failed, so the rest of the guide cannot run")
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print(f"vigil serve stderr (last lines):\n{server.server_log()}")
        if run is not None:
            run.failed.append("unexpected error")
    finally:
        server.stop()
    if run is None:
        print("guide: 0 passed, 1 failed (vigil serve did not start)")
        return 1
    if run.failed:
        print(f"failed checks: {', '.join(run.failed)}")
    print(f"guide: {len(run.passed)} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
