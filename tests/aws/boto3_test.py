"""Call every Device Defender Detect operation through boto3 against `vigil serve`.

Each test class starts its own server with an empty data folder, so listings and per-target
limits are not shared between classes. Violations come from the `/vigil/datapoints` extension:
a STATIC behavior `aws:num-messages-sent <= 10` alarms on the first datapoint with count 100.
As in AWS, a behavior describes normal traffic, so a datapoint violates it when its comparison
is false.

Run it with the Python of `target/venv`; `VIGIL_BIN` names the `vigil` binary if it is not
the release build.
"""

import datetime
import hashlib
import json
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid
from pathlib import Path

from botocore.exceptions import ClientError

from vigil_server import ACCOUNT_ID, REGION, VigilServer

ARN_PREFIX = f"arn:aws:iot:{REGION}:{ACCOUNT_ID}"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/MitigationActionValidRole"
OTHER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/OtherMitigationRole"
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FIVE_MINUTES = 300

# Seconds to wait for work the server may finish after replying, such as a mitigation task.
SETTLE_TIMEOUT = 20

MESSAGES_SENT_AT_MOST_10 = {
    "name": "messages-sent-at-most-10",
    "metric": "aws:num-messages-sent",
    "criteria": {
        "comparisonOperator": "less-than-equals",
        "value": {"count": 10},
        "consecutiveDatapointsToAlarm": 1,
        "consecutiveDatapointsToClear": 1,
    },
}

AUTHORIZATION_FAILURES_P90 = {
    "name": "authorization-failures-over-p90",
    "metric": "aws:num-authorization-failures",
    "criteria": {
        "comparisonOperator": "greater-than",
        "statisticalThreshold": {"statistic": "p90"},
        "durationSeconds": 300,
        "consecutiveDatapointsToAlarm": 1,
        "consecutiveDatapointsToClear": 1,
    },
}


def ml_behavior(name, metric):
    return {
        "name": name,
        "metric": metric,
        "criteria": {
            "consecutiveDatapointsToAlarm": 1,
            "consecutiveDatapointsToClear": 1,
            "mlDetectionConfig": {"confidenceLevel": "HIGH"},
        },
        "suppressAlerts": True,
    }


def eventually(check, timeout=SETTLE_TIMEOUT):
    """Call `check()` until it returns a truthy value, and return that value or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def all_items(client, operation, result_key, **parameters):
    """Return every item of a paginated listing."""
    paginator = client.get_paginator(operation)
    return [item for page in paginator.paginate(**parameters) for item in page[result_key]]


def page_sizes(client, operation, result_key, page_size, **parameters):
    """Return the item count of each page, with `PageSize` items requested per page.

    An empty last page after a full one is dropped: AWS may return a `nextToken` with the page
    that happens to hold the last item.
    """
    paginator = client.get_paginator(operation)
    pages = paginator.paginate(PaginationConfig={"PageSize": page_size}, **parameters)
    sizes = [len(page[result_key]) for page in pages]
    if len(sizes) >= 2 and sizes[-1] == 0 and sizes[-2] == page_size:
        sizes.pop()
    return sizes


class ServerTestCase(unittest.TestCase):
    """Starts one `vigil serve` for the class, with a validating and a non-validating client."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = VigilServer(cls.server_args)
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        cls.iot = cls.server.boto3_client()
        cls.unchecked_iot = cls.server.boto3_client(validate_parameters=False)

    def run(self, result=None):
        # Print the end of the server's log after a failing test, which often explains it.
        problems_before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > problems_before:
            print(f"\nvigil serve stderr (last lines):\n{self.server.server_log(15)}")
        return outcome

    def assert_error(self, call, code, status, field=None):
        """Assert that `call()` fails with error `code` and HTTP `status`.

        With `field`, the error message must also name that input field.
        """
        try:
            reply = call()
        except ClientError as raised:
            error = raised.response
        else:
            self.fail(f"expected {code} ({status}), but the call returned {reply}")
        self.assertEqual(error["Error"]["Code"], code, error)
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], status, error)
        self.assertTrue(error["Error"].get("Message"), f"error without message: {error}")
        if field is not None:
            self.assertIn(field, error["Error"]["Message"])
        return error

    @classmethod
    def create_profile(cls, name, behaviors=(MESSAGES_SENT_AT_MOST_10,), **extra):
        return cls.iot.create_security_profile(
            securityProfileName=name, behaviors=list(behaviors), **extra
        )

    @classmethod
    def create_group_with_things(cls, group, things):
        """Create a thing group holding new things, and return the group's ARN."""
        cls.iot.create_thing_group(thingGroupName=group)
        for thing in things:
            cls.iot.create_thing(thingName=thing)
            cls.iot.add_thing_to_thing_group(thingGroupName=group, thingName=thing)
        return f"{ARN_PREFIX}:thinggroup/{group}"

    def send_messages_sent(self, thing, timestamp, count):
        reply = self.server.post_datapoints(
            [
                {
                    "thingName": thing,
                    "metricName": "aws:num-messages-sent",
                    "timestamp": float(timestamp),
                    "value": {"count": count},
                }
            ]
        )
        self.assertEqual(reply, {"accepted": 1, "rejected": []})

    def active_violations(self, **filters):
        return all_items(self.iot, "list_active_violations", "activeViolations", **filters)


class SecurityProfileTest(ServerTestCase):
    def test_create_then_describe_returns_the_profile(self):
        behaviors = [
            MESSAGES_SENT_AT_MOST_10,
            AUTHORIZATION_FAILURES_P90,
            ml_behavior("disconnects-ml", "aws:num-disconnects"),
        ]
        created = self.create_profile(
            "described",
            behaviors,
            securityProfileDescription="profile for describe",
            additionalMetricsToRetainV2=[{"metric": "aws:num-connection-attempts"}],
        )
        self.assertEqual(created["securityProfileName"], "described")
        self.assertEqual(created["securityProfileArn"], f"{ARN_PREFIX}:securityprofile/described")

        described = self.iot.describe_security_profile(securityProfileName="described")
        self.assertEqual(described["securityProfileName"], "described")
        self.assertEqual(described["securityProfileArn"], created["securityProfileArn"])
        self.assertEqual(described["securityProfileDescription"], "profile for describe")
        self.assertEqual(described["version"], 1)
        self.assertEqual(described["behaviors"], behaviors)
        self.assertEqual(
            described["additionalMetricsToRetainV2"], [{"metric": "aws:num-connection-attempts"}]
        )
        self.assertIsInstance(described["creationDate"], datetime.datetime)
        self.assertIsInstance(described["lastModifiedDate"], datetime.datetime)

    def test_update_with_expected_version_bumps_version(self):
        self.create_profile("versioned")
        updated = self.iot.update_security_profile(
            securityProfileName="versioned",
            expectedVersion=1,
            securityProfileDescription="second version",
        )
        self.assertEqual(updated["version"], 2)
        self.assertEqual(updated["securityProfileDescription"], "second version")
        self.assertEqual(updated["behaviors"], [MESSAGES_SENT_AT_MOST_10])
        self.assertGreaterEqual(updated["lastModifiedDate"], updated["creationDate"])

    def test_update_with_stale_version_conflicts(self):
        self.create_profile("stale-update")
        self.iot.update_security_profile(securityProfileName="stale-update", expectedVersion=1)
        self.assert_error(
            lambda: self.iot.update_security_profile(
                securityProfileName="stale-update",
                expectedVersion=1,
                securityProfileDescription="lost update",
            ),
            "VersionConflictException",
            409,
        )
        described = self.iot.describe_security_profile(securityProfileName="stale-update")
        self.assertEqual(described["version"], 2)
        self.assertNotIn("securityProfileDescription", described)

    def test_delete_with_stale_version_conflicts(self):
        self.create_profile("stale-delete")
        self.iot.update_security_profile(securityProfileName="stale-delete", expectedVersion=1)
        self.assert_error(
            lambda: self.iot.delete_security_profile(
                securityProfileName="stale-delete", expectedVersion=1
            ),
            "VersionConflictException",
            409,
        )
        self.iot.delete_security_profile(securityProfileName="stale-delete", expectedVersion=2)
        self.assert_error(
            lambda: self.iot.describe_security_profile(securityProfileName="stale-delete"),
            "ResourceNotFoundException",
            404,
        )

    def test_update_replaces_behaviors_and_delete_flag_clears_them(self):
        self.create_profile("replaced", [MESSAGES_SENT_AT_MOST_10, AUTHORIZATION_FAILURES_P90])
        updated = self.iot.update_security_profile(
            securityProfileName="replaced", behaviors=[AUTHORIZATION_FAILURES_P90]
        )
        self.assertEqual(updated["behaviors"], [AUTHORIZATION_FAILURES_P90])
        cleared = self.iot.update_security_profile(
            securityProfileName="replaced", deleteBehaviors=True
        )
        self.assertEqual(cleared.get("behaviors", []), [])
        self.assertEqual(cleared["version"], 3)

    def test_delete_flag_with_its_field_is_invalid(self):
        self.create_profile("flag-and-field")
        error = self.assert_error(
            lambda: self.iot.update_security_profile(
                securityProfileName="flag-and-field",
                behaviors=[MESSAGES_SENT_AT_MOST_10],
                deleteBehaviors=True,
            ),
            "InvalidRequestException",
            400,
        )
        self.assertIn("behaviors", error["Error"]["Message"].lower())

    def test_create_existing_name_raises_already_exists(self):
        self.create_profile("duplicate")
        self.assert_error(
            lambda: self.create_profile("duplicate", securityProfileDescription="another"),
            "ResourceAlreadyExistsException",
            409,
        )

    def test_describe_and_update_missing_profile_raise_not_found(self):
        self.assert_error(
            lambda: self.iot.describe_security_profile(securityProfileName="missing"),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.update_security_profile(
                securityProfileName="missing", securityProfileDescription="x"
            ),
            "ResourceNotFoundException",
            404,
        )

    def test_invalid_profile_name_names_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.create_security_profile(securityProfileName="bad name!"),
            "InvalidRequestException",
            400,
            field="securityProfileName",
        )

    def test_eleven_datapoints_to_alarm_rejected(self):
        behavior = json.loads(json.dumps(MESSAGES_SENT_AT_MOST_10))
        behavior["criteria"]["consecutiveDatapointsToAlarm"] = 11
        self.assert_error(
            lambda: self.unchecked_iot.create_security_profile(
                securityProfileName="eleven-datapoints", behaviors=[behavior]
            ),
            "InvalidRequestException",
            400,
            field="consecutiveDatapointsToAlarm",
        )

    def test_out_of_range_max_results_names_the_field(self):
        for max_results in (0, 251):
            with self.subTest(max_results=max_results):
                self.assert_error(
                    lambda value=max_results: self.unchecked_iot.list_security_profiles(
                        maxResults=value
                    ),
                    "InvalidRequestException",
                    400,
                    field="maxResults",
                )

    def test_list_filters_are_mutually_exclusive(self):
        self.assert_error(
            lambda: self.iot.list_security_profiles(dimensionName="d", metricName="m"),
            "InvalidRequestException",
            400,
        )

    def test_list_by_custom_metric_returns_only_its_profiles(self):
        self.iot.create_custom_metric(metricName="battery-level", metricType="number")
        uses_metric = {
            "name": "battery-low",
            "metric": "battery-level",
            "criteria": {"comparisonOperator": "less-than", "value": {"number": 10.0}},
        }
        self.create_profile("uses-battery", [uses_metric])
        self.create_profile("ignores-battery")
        listed = all_items(
            self.iot,
            "list_security_profiles",
            "securityProfileIdentifiers",
            metricName="battery-level",
        )
        self.assertEqual(
            listed, [{"name": "uses-battery", "arn": f"{ARN_PREFIX}:securityprofile/uses-battery"}]
        )

    def test_validate_behaviors_accepts_valid_ones(self):
        reply = self.iot.validate_security_profile_behaviors(
            behaviors=[MESSAGES_SENT_AT_MOST_10, ml_behavior("ml", "aws:num-disconnects")]
        )
        self.assertTrue(reply["valid"])
        self.assertEqual(reply.get("validationErrors", []), [])

    def test_validate_behaviors_reports_wrong_value_type(self):
        behavior = json.loads(json.dumps(MESSAGES_SENT_AT_MOST_10))
        behavior["criteria"]["value"] = {"cidrs": ["10.0.0.0/8"]}
        reply = self.iot.validate_security_profile_behaviors(behaviors=[behavior])
        self.assertFalse(reply["valid"])
        messages = [error["errorMessage"] for error in reply["validationErrors"]]
        self.assertTrue(messages)
        self.assertTrue(any("criteria.value" in message for message in messages), messages)


class PaginationTest(ServerTestCase):
    def test_security_profiles_come_in_pages_of_two(self):
        names = [f"paged-{index}" for index in range(5)]
        for name in names:
            self.create_profile(name)
        self.assertEqual(
            page_sizes(self.iot, "list_security_profiles", "securityProfileIdentifiers", 2),
            [2, 2, 1],
        )
        listed = all_items(
            self.iot,
            "list_security_profiles",
            "securityProfileIdentifiers",
            PaginationConfig={"PageSize": 2},
        )
        self.assertEqual(sorted(item["name"] for item in listed), names)

    def test_custom_metrics_dimensions_and_actions_come_in_pages(self):
        for index in range(3):
            self.iot.create_custom_metric(metricName=f"metric-{index}", metricType="number")
            self.iot.create_dimension(
                name=f"dimension-{index}", type="TOPIC_FILTER", stringValues=[f"t/{index}/#"]
            )
            self.iot.create_mitigation_action(
                actionName=f"action-{index}",
                roleArn=ROLE_ARN,
                actionParams={"addThingsToThingGroupParams": {"thingGroupNames": ["g"]}},
            )
        self.assertEqual(page_sizes(self.iot, "list_custom_metrics", "metricNames", 2), [2, 1])
        self.assertEqual(page_sizes(self.iot, "list_dimensions", "dimensionNames", 2), [2, 1])
        self.assertEqual(
            page_sizes(self.iot, "list_mitigation_actions", "actionIdentifiers", 2), [2, 1]
        )

    def test_invalid_next_token_names_the_field(self):
        self.assert_error(
            lambda: self.iot.list_security_profiles(nextToken="not-a-token-from-vigil"),
            "InvalidRequestException",
            400,
            field="nextToken",
        )


class TargetTest(ServerTestCase):
    def test_attach_list_and_detach_a_thing_group(self):
        self.create_profile("attached")
        group_arn = self.create_group_with_things("attach-group", [])
        self.iot.attach_security_profile(
            securityProfileName="attached", securityProfileTargetArn=group_arn
        )
        targets = all_items(
            self.iot,
            "list_targets_for_security_profile",
            "securityProfileTargets",
            securityProfileName="attached",
        )
        self.assertEqual(targets, [{"arn": group_arn}])
        mappings = all_items(
            self.iot,
            "list_security_profiles_for_target",
            "securityProfileTargetMappings",
            securityProfileTargetArn=group_arn,
        )
        self.assertEqual(
            mappings,
            [
                {
                    "securityProfileIdentifier": {
                        "name": "attached",
                        "arn": f"{ARN_PREFIX}:securityprofile/attached",
                    },
                    "target": {"arn": group_arn},
                }
            ],
        )

        self.iot.detach_security_profile(
            securityProfileName="attached", securityProfileTargetArn=group_arn
        )
        targets = all_items(
            self.iot,
            "list_targets_for_security_profile",
            "securityProfileTargets",
            securityProfileName="attached",
        )
        self.assertEqual(targets, [])

    def test_attach_to_all_registered_things(self):
        self.create_profile("fleet-wide")
        target = f"{ARN_PREFIX}:all/registered-things"
        self.iot.attach_security_profile(
            securityProfileName="fleet-wide", securityProfileTargetArn=target
        )
        mappings = all_items(
            self.iot,
            "list_security_profiles_for_target",
            "securityProfileTargetMappings",
            securityProfileTargetArn=target,
        )
        self.assertEqual(
            [mapping["securityProfileIdentifier"]["name"] for mapping in mappings],
            ["fleet-wide"],
        )

    def test_sixth_profile_on_one_target_exceeds_the_limit(self):
        group_arn = self.create_group_with_things("crowded-group", [])
        for index in range(5):
            self.create_profile(f"crowded-{index}")
            self.iot.attach_security_profile(
                securityProfileName=f"crowded-{index}", securityProfileTargetArn=group_arn
            )
        self.create_profile("crowded-5")
        self.assert_error(
            lambda: self.iot.attach_security_profile(
                securityProfileName="crowded-5", securityProfileTargetArn=group_arn
            ),
            "LimitExceededException",
            410,
        )

    def test_attach_missing_profile_raises_not_found(self):
        group_arn = self.create_group_with_things("lonely-group", [])
        self.assert_error(
            lambda: self.iot.attach_security_profile(
                securityProfileName="missing", securityProfileTargetArn=group_arn
            ),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.list_targets_for_security_profile(securityProfileName="missing"),
            "ResourceNotFoundException",
            404,
        )

    def test_malformed_target_arn_names_the_field(self):
        self.create_profile("bad-target")
        self.assert_error(
            lambda: self.iot.attach_security_profile(
                securityProfileName="bad-target", securityProfileTargetArn="not-an-arn"
            ),
            "InvalidRequestException",
            400,
            field="securityProfileTargetArn",
        )


class RegistryTest(ServerTestCase):
    def test_thing_group_membership_round_trip(self):
        self.iot.create_thing(thingName="lamp-1")
        created = self.iot.create_thing_group(thingGroupName="lamps")
        self.assertEqual(created["thingGroupName"], "lamps")
        self.assertEqual(created["thingGroupArn"], f"{ARN_PREFIX}:thinggroup/lamps")
        self.assertTrue(created["thingGroupId"])

        described = self.iot.describe_thing_group(thingGroupName="lamps")
        self.assertEqual(described["thingGroupArn"], created["thingGroupArn"])
        self.assertEqual(described["thingGroupId"], created["thingGroupId"])

        self.iot.add_thing_to_thing_group(thingGroupName="lamps", thingName="lamp-1")
        self.assertEqual(
            all_items(self.iot, "list_things_in_thing_group", "things", thingGroupName="lamps"),
            ["lamp-1"],
        )
        self.assertEqual(
            all_items(self.iot, "list_thing_groups_for_thing", "thingGroups", thingName="lamp-1"),
            [{"groupName": "lamps", "groupArn": created["thingGroupArn"]}],
        )

        self.iot.remove_thing_from_thing_group(thingGroupName="lamps", thingName="lamp-1")
        self.assertEqual(
            all_items(self.iot, "list_things_in_thing_group", "things", thingGroupName="lamps"),
            [],
        )
        self.iot.delete_thing_group(thingGroupName="lamps")
        self.assert_error(
            lambda: self.iot.describe_thing_group(thingGroupName="lamps"),
            "ResourceNotFoundException",
            404,
        )

    def test_add_to_missing_group_raises_not_found(self):
        self.iot.create_thing(thingName="orphan")
        self.assert_error(
            lambda: self.iot.add_thing_to_thing_group(thingGroupName="nowhere", thingName="orphan"),
            "ResourceNotFoundException",
            404,
        )


class ViolationTest(ServerTestCase):
    """Violations of `messages-sent-at-most-10` on things in `watched`, fed with datapoints.

    The tests share one engine, so each datapoint gets the next five-minute period of one
    clock: no test sends a datapoint older than one another test already sent.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start = int(time.time()) - 24 * 3600
        cls.clock = cls.start
        things = ["flooder", "cycler", "judged", "measured"]
        group_arn = cls.create_group_with_things("watched", things)
        cls.create_profile("watch-messages")
        cls.iot.attach_security_profile(
            securityProfileName="watch-messages", securityProfileTargetArn=group_arn
        )

    @classmethod
    def next_period(cls):
        cls.clock += FIVE_MINUTES
        return cls.clock

    def window(self):
        return {
            "startTime": datetime.datetime.fromtimestamp(self.start - 3600, datetime.UTC),
            "endTime": datetime.datetime.fromtimestamp(self.start + 2 * 24 * 3600, datetime.UTC),
        }

    def test_datapoint_over_threshold_raises_an_active_violation(self):
        timestamp = self.next_period()
        self.send_messages_sent("flooder", timestamp, 100)
        violations = eventually(lambda: self.active_violations(thingName="flooder"))
        self.assertEqual(len(violations), 1)
        violation = violations[0]
        self.assertRegex(violation["violationId"], r"^[a-zA-Z0-9\-]{1,128}$")
        self.assertEqual(violation["securityProfileName"], "watch-messages")
        self.assertEqual(violation["behavior"], MESSAGES_SENT_AT_MOST_10)
        self.assertEqual(violation["lastViolationValue"], {"count": 100})
        self.assertEqual(violation["violationStartTime"].timestamp(), timestamp)
        self.assertEqual(violation["verificationState"], "UNKNOWN")

        self.assertEqual(
            len(self.active_violations(thingName="flooder", behaviorCriteriaType="STATIC")), 1
        )
        self.assertEqual(
            self.active_violations(thingName="flooder", behaviorCriteriaType="MACHINE_LEARNING"),
            [],
        )
        self.assertEqual(
            len(self.active_violations(securityProfileName="watch-messages", thingName="flooder")),
            1,
        )

    def test_alarm_and_clear_are_violation_events(self):
        for _ in range(3):
            self.send_messages_sent("cycler", self.next_period(), 100)
            self.send_messages_sent("cycler", self.next_period(), 1)
        eventually(lambda: len(self.violation_events(thingName="cycler")) == 6)
        events = self.violation_events(thingName="cycler")
        self.assertEqual(
            [event["violationEventType"] for event in events],
            ["in-alarm", "alarm-cleared"] * 3,
        )
        self.assertEqual(events[0]["metricValue"], {"count": 100})
        self.assertEqual(events[0]["behavior"], MESSAGES_SENT_AT_MOST_10)
        self.assertEqual(self.active_violations(thingName="cycler"), [])
        self.assertEqual(
            page_sizes(
                self.iot,
                "list_violation_events",
                "violationEvents",
                2,
                thingName="cycler",
                **self.window(),
            ),
            [2, 2, 2],
        )

    def violation_events(self, **filters):
        events = all_items(
            self.iot, "list_violation_events", "violationEvents", **filters, **self.window()
        )
        return sorted(events, key=lambda event: event["violationEventTime"])

    def test_verification_state_is_stored_and_filterable(self):
        self.send_messages_sent("judged", self.next_period(), 100)
        violations = eventually(lambda: self.active_violations(thingName="judged"))
        violation_id = violations[0]["violationId"]
        self.iot.put_verification_state_on_violation(
            violationId=violation_id,
            verificationState="TRUE_POSITIVE",
            verificationStateDescription="confirmed flood",
        )
        judged = self.active_violations(verificationState="TRUE_POSITIVE")
        self.assertEqual([violation["violationId"] for violation in judged], [violation_id])
        self.assertEqual(judged[0]["verificationStateDescription"], "confirmed flood")
        events = self.violation_events(thingName="judged", verificationState="TRUE_POSITIVE")
        self.assertEqual([event["violationId"] for event in events], [violation_id])

    def test_unknown_verification_state_names_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.put_verification_state_on_violation(
                violationId="0123456789abcdef0123456789abcdef", verificationState="MAYBE"
            ),
            "InvalidRequestException",
            400,
            field="verificationState",
        )

    def test_metric_values_list_the_datapoints(self):
        first, second = self.next_period(), self.next_period()
        self.send_messages_sent("measured", first, 7)
        self.send_messages_sent("measured", second, 9)
        data = all_items(
            self.iot,
            "list_metric_values",
            "metricDatumList",
            thingName="measured",
            metricName="aws:num-messages-sent",
            **self.window(),
        )
        self.assertEqual(
            [(datum["timestamp"].timestamp(), datum["value"]) for datum in data],
            [(first, {"count": 7}), (second, {"count": 9})],
        )


class TrainingSummaryTest(ServerTestCase):
    def test_new_ml_behaviors_are_pending_build(self):
        behaviors = [
            ml_behavior("sent-ml", "aws:num-messages-sent"),
            ml_behavior("failures-ml", "aws:num-authorization-failures"),
            ml_behavior("disconnects-ml", "aws:num-disconnects"),
        ]
        self.create_profile("learning", behaviors)
        group_arn = self.create_group_with_things("learners", ["learner-1"])
        self.iot.attach_security_profile(
            securityProfileName="learning", securityProfileTargetArn=group_arn
        )
        summaries = all_items(
            self.iot,
            "get_behavior_model_training_summaries",
            "summaries",
            securityProfileName="learning",
        )
        self.assertEqual(
            sorted(summary["behaviorName"] for summary in summaries),
            ["disconnects-ml", "failures-ml", "sent-ml"],
        )
        for summary in summaries:
            self.assertEqual(summary["securityProfileName"], "learning")
            self.assertEqual(summary["modelStatus"], "PENDING_BUILD")
            self.assertGreaterEqual(summary["datapointsCollectionPercentage"], 0.0)
            self.assertLessEqual(summary["datapointsCollectionPercentage"], 100.0)
        self.assertEqual(
            page_sizes(
                self.iot,
                "get_behavior_model_training_summaries",
                "summaries",
                2,
                securityProfileName="learning",
            ),
            [2, 1],
        )

    def test_missing_profile_raises_not_found(self):
        self.assert_error(
            lambda: self.iot.get_behavior_model_training_summaries(securityProfileName="missing"),
            "ResourceNotFoundException",
            404,
        )

    def test_max_results_over_ten_names_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.get_behavior_model_training_summaries(maxResults=11),
            "InvalidRequestException",
            400,
            field="maxResults",
        )


class MitigationTest(ServerTestCase):
    def test_mitigation_action_round_trip(self):
        params = {
            "addThingsToThingGroupParams": {
                "thingGroupNames": ["quarantine"],
                "overrideDynamicGroups": False,
            }
        }
        created = self.iot.create_mitigation_action(
            actionName="quarantine-things", roleArn=ROLE_ARN, actionParams=params
        )
        self.assertEqual(created["actionArn"], f"{ARN_PREFIX}:mitigationaction/quarantine-things")
        self.assertRegex(created["actionId"], UUID_PATTERN)

        described = self.iot.describe_mitigation_action(actionName="quarantine-things")
        self.assertEqual(described["actionName"], "quarantine-things")
        self.assertEqual(described["actionType"], "ADD_THINGS_TO_THING_GROUP")
        self.assertEqual(described["actionId"], created["actionId"])
        self.assertEqual(described["roleArn"], ROLE_ARN)
        self.assertEqual(described["actionParams"], params)

        updated = self.iot.update_mitigation_action(
            actionName="quarantine-things", roleArn=OTHER_ROLE_ARN
        )
        self.assertEqual(updated["actionId"], created["actionId"])
        described = self.iot.describe_mitigation_action(actionName="quarantine-things")
        self.assertEqual(described["roleArn"], OTHER_ROLE_ARN)

        listed = all_items(
            self.iot,
            "list_mitigation_actions",
            "actionIdentifiers",
            actionType="ADD_THINGS_TO_THING_GROUP",
        )
        self.assertIn("quarantine-things", [action["actionName"] for action in listed])

        self.assert_error(
            lambda: self.iot.create_mitigation_action(
                actionName="quarantine-things", roleArn=ROLE_ARN, actionParams=params
            ),
            "ResourceAlreadyExistsException",
            409,
        )
        self.iot.delete_mitigation_action(actionName="quarantine-things")
        self.assert_error(
            lambda: self.iot.describe_mitigation_action(actionName="quarantine-things"),
            "ResourceNotFoundException",
            404,
        )

    def test_task_moves_violating_things_into_the_group(self):
        things = ["noisy-1", "noisy-2", "noisy-3"]
        group_arn = self.create_group_with_things("noisy-fleet", things)
        self.iot.create_thing_group(thingGroupName="quarantine-group")
        self.create_profile("noisy-messages")
        self.iot.attach_security_profile(
            securityProfileName="noisy-messages", securityProfileTargetArn=group_arn
        )
        quarantine = {"addThingsToThingGroupParams": {"thingGroupNames": ["quarantine-group"]}}
        action = self.iot.create_mitigation_action(
            actionName="move-to-quarantine", roleArn=ROLE_ARN, actionParams=quarantine
        )
        start = int(time.time()) - 3600
        for thing in things:
            self.send_messages_sent(thing, start, 100)
        eventually(lambda: len(self.active_violations()) == 3)
        violations = self.active_violations()
        self.assertEqual(sorted(violation["thingName"] for violation in violations), things)
        violation_ids = sorted(violation["violationId"] for violation in violations)

        token = str(uuid.uuid4())
        started = self.iot.start_detect_mitigation_actions_task(
            taskId="quarantine-noisy",
            target={"violationIds": violation_ids},
            actions=["move-to-quarantine"],
            includeOnlyActiveViolations=True,
            clientRequestToken=token,
        )
        self.assertEqual(started["taskId"], "quarantine-noisy")
        summary = eventually(self.finished_task_summary)
        self.assertEqual(summary["taskStatus"], "SUCCESSFUL")
        self.assertEqual(summary["target"], {"violationIds": violation_ids})
        self.assertTrue(summary["onlyActiveViolationsIncluded"])
        self.assertFalse(summary["suppressedAlertsIncluded"])
        self.assertEqual(
            summary["taskStatistics"],
            {"actionsExecuted": 3, "actionsSkipped": 0, "actionsFailed": 0},
        )
        self.assertEqual(
            summary["actionsDefinition"],
            [
                {
                    "name": "move-to-quarantine",
                    "id": action["actionId"],
                    "roleArn": ROLE_ARN,
                    "actionParams": quarantine,
                }
            ],
        )

        executions = all_items(
            self.iot,
            "list_detect_mitigation_actions_executions",
            "actionsExecutions",
            taskId="quarantine-noisy",
        )
        self.assertEqual(sorted(e["violationId"] for e in executions), violation_ids)
        self.assertEqual({e["status"] for e in executions}, {"SUCCESSFUL"})
        self.assertEqual(
            page_sizes(
                self.iot,
                "list_detect_mitigation_actions_executions",
                "actionsExecutions",
                2,
                taskId="quarantine-noisy",
            ),
            [2, 1],
        )
        self.assertEqual(
            sorted(
                all_items(
                    self.iot,
                    "list_things_in_thing_group",
                    "things",
                    thingGroupName="quarantine-group",
                )
            ),
            things,
        )

        tasks = all_items(
            self.iot,
            "list_detect_mitigation_actions_tasks",
            "tasks",
            startTime=datetime.datetime.fromtimestamp(start - 3600, datetime.UTC),
            endTime=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
        )
        self.assertIn("quarantine-noisy", [task["taskId"] for task in tasks])

        again = self.iot.start_detect_mitigation_actions_task(
            taskId="quarantine-noisy",
            target={"violationIds": violation_ids},
            actions=["move-to-quarantine"],
            includeOnlyActiveViolations=True,
            clientRequestToken=token,
        )
        self.assertEqual(again["taskId"], "quarantine-noisy")
        self.assert_error(
            lambda: self.iot.start_detect_mitigation_actions_task(
                taskId="quarantine-noisy",
                target={"violationIds": violation_ids},
                actions=["move-to-quarantine"],
                clientRequestToken=str(uuid.uuid4()),
            ),
            "TaskAlreadyExistsException",
            400,
        )

    def finished_task_summary(self):
        reply = self.iot.describe_detect_mitigation_actions_task(taskId="quarantine-noisy")
        summary = reply["taskSummary"]
        return summary if summary["taskStatus"] != "IN_PROGRESS" else None

    def test_missing_task_raises_not_found(self):
        self.assert_error(
            lambda: self.iot.describe_detect_mitigation_actions_task(taskId="missing"),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.cancel_detect_mitigation_actions_task(taskId="missing"),
            "ResourceNotFoundException",
            404,
        )

    def test_too_many_violation_ids_names_the_field(self):
        ids = [f"{index:032x}" for index in range(26)]
        self.assert_error(
            lambda: self.unchecked_iot.start_detect_mitigation_actions_task(
                taskId="too-many",
                target={"violationIds": ids},
                actions=["any"],
                clientRequestToken=str(uuid.uuid4()),
            ),
            "InvalidRequestException",
            400,
            field="violationIds",
        )

    def test_two_action_params_names_the_field(self):
        self.assert_error(
            lambda: self.iot.create_mitigation_action(
                actionName="two-kinds",
                roleArn=ROLE_ARN,
                actionParams={
                    "addThingsToThingGroupParams": {"thingGroupNames": ["g"]},
                    "publishFindingToSnsParams": {
                        "topicArn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:findings"
                    },
                },
            ),
            "InvalidRequestException",
            400,
            field="actionParams",
        )


class CustomMetricAndDimensionTest(ServerTestCase):
    def test_custom_metric_round_trip(self):
        created = self.iot.create_custom_metric(
            metricName="queue-depth", metricType="number", displayName="Queue depth"
        )
        self.assertEqual(created["metricName"], "queue-depth")
        self.assertEqual(created["metricArn"], f"{ARN_PREFIX}:custommetric/queue-depth")

        updated = self.iot.update_custom_metric(metricName="queue-depth", displayName="Depth")
        self.assertEqual(updated["displayName"], "Depth")
        described = self.iot.describe_custom_metric(metricName="queue-depth")
        self.assertEqual(described["metricType"], "number")
        self.assertEqual(described["displayName"], "Depth")
        self.assertIsInstance(described["creationDate"], datetime.datetime)
        self.assertIn("queue-depth", all_items(self.iot, "list_custom_metrics", "metricNames"))

        self.assert_error(
            lambda: self.iot.create_custom_metric(metricName="queue-depth", metricType="number"),
            "ResourceAlreadyExistsException",
            409,
        )
        self.iot.delete_custom_metric(metricName="queue-depth")
        self.assert_error(
            lambda: self.iot.describe_custom_metric(metricName="queue-depth"),
            "ResourceNotFoundException",
            404,
        )

    def test_unknown_metric_type_names_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.create_custom_metric(
                metricName="typeless", metricType="banana", clientRequestToken="token-1"
            ),
            "InvalidRequestException",
            400,
            field="metricType",
        )

    def test_metric_name_with_aws_prefix_names_the_field(self):
        self.assert_error(
            lambda: self.iot.create_custom_metric(metricName="aws:mine", metricType="number"),
            "InvalidRequestException",
            400,
            field="metricName",
        )

    def test_dimension_round_trip(self):
        created = self.iot.create_dimension(
            name="sensor-topics", type="TOPIC_FILTER", stringValues=["sensors/#"]
        )
        self.assertEqual(created["name"], "sensor-topics")
        self.assertEqual(created["arn"], f"{ARN_PREFIX}:dimension/sensor-topics")

        updated = self.iot.update_dimension(
            name="sensor-topics", stringValues=["sensors/#", "meters/+/reading"]
        )
        self.assertEqual(updated["stringValues"], ["sensors/#", "meters/+/reading"])
        described = self.iot.describe_dimension(name="sensor-topics")
        self.assertEqual(described["type"], "TOPIC_FILTER")
        self.assertEqual(described["stringValues"], ["sensors/#", "meters/+/reading"])
        self.assertIn("sensor-topics", all_items(self.iot, "list_dimensions", "dimensionNames"))

        self.assert_error(
            lambda: self.iot.create_dimension(
                name="sensor-topics", type="TOPIC_FILTER", stringValues=["other/#"]
            ),
            "ResourceAlreadyExistsException",
            409,
        )
        self.iot.delete_dimension(name="sensor-topics")
        self.assert_error(
            lambda: self.iot.describe_dimension(name="sensor-topics"),
            "ResourceNotFoundException",
            404,
        )

    def test_unknown_dimension_type_names_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.create_dimension(
                name="typeless", type="CLIENT_ID", stringValues=["a"], clientRequestToken="t-2"
            ),
            "InvalidRequestException",
            400,
            field="type",
        )


class TagTest(ServerTestCase):
    def test_tags_round_trip_on_a_profile(self):
        created = self.create_profile("tagged", tags=[{"Key": "team", "Value": "fleet"}])
        arn = created["securityProfileArn"]
        self.iot.tag_resource(resourceArn=arn, tags=[{"Key": "stage", "Value": "beta"}])
        tags = all_items(self.iot, "list_tags_for_resource", "tags", resourceArn=arn)
        self.assertEqual(
            sorted(tags, key=lambda tag: tag["Key"]),
            [{"Key": "stage", "Value": "beta"}, {"Key": "team", "Value": "fleet"}],
        )
        self.iot.untag_resource(resourceArn=arn, tagKeys=["team"])
        self.assertEqual(
            all_items(self.iot, "list_tags_for_resource", "tags", resourceArn=arn),
            [{"Key": "stage", "Value": "beta"}],
        )

    def test_tagging_missing_resource_raises_not_found(self):
        missing = f"{ARN_PREFIX}:securityprofile/missing"
        self.assert_error(
            lambda: self.iot.tag_resource(resourceArn=missing, tags=[{"Key": "k", "Value": "v"}]),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.list_tags_for_resource(resourceArn=missing),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.untag_resource(resourceArn=missing, tagKeys=["k"]),
            "ResourceNotFoundException",
            404,
        )


class SignatureTest(ServerTestCase):
    def assert_rejected(self, reply, error_type):
        status, headers, body = reply
        self.assertEqual(status, 403, body)
        self.assertEqual(headers.get("x-amzn-ErrorType", "").split(":")[0], error_type)
        self.assertTrue(json.loads(body)["message"])

    def test_signed_request_is_accepted(self):
        status, _, body = self.server.signed_request("GET", "/security-profiles")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["securityProfileIdentifiers"], [])

    def test_unsigned_request_is_unrecognized(self):
        self.assert_rejected(
            self.server.raw_request("GET", "/security-profiles"), "UnrecognizedClientException"
        )

    def test_unknown_access_key_is_unrecognized(self):
        reply = self.server.signed_request(
            "GET", "/security-profiles", access_key="AKIAUNKNOWNKEY000000"
        )
        self.assert_rejected(reply, "UnrecognizedClientException")

    def test_wrong_secret_is_an_invalid_signature(self):
        reply = self.server.signed_request("GET", "/security-profiles", secret_key="not-the-secret")
        self.assert_rejected(reply, "InvalidSignatureException")

    def test_query_changed_after_signing_is_an_invalid_signature(self):
        _, _, headers = self.server.sign("GET", "/security-profiles?maxResults=1")
        reply = self.server.raw_request("GET", "/security-profiles?maxResults=2", headers=headers)
        self.assert_rejected(reply, "InvalidSignatureException")

    def test_boto3_with_wrong_secret_gets_invalid_signature(self):
        client = self.server.boto3_client(secret_key="not-the-secret")
        self.assert_error(client.list_security_profiles, "InvalidSignatureException", 403)

    def test_stats_need_a_signature_and_metrics_do_not(self):
        status, _, body = self.server.signed_request("GET", "/vigil/stats")
        self.assertEqual(status, 200, body)
        self.assertIsInstance(json.loads(body), dict)
        self.assert_rejected(
            self.server.raw_request("GET", "/vigil/stats"), "UnrecognizedClientException"
        )
        status, headers, body = self.server.raw_request("GET", "/metrics")
        self.assertEqual(status, 200, body)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/plain"))


OPENSSL_CONFIG = """
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[leaf]
basicConstraints = critical,CA:FALSE
"""


class CertificateFactory:
    """Make certificates with the `openssl` command in a temporary folder."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="vigil-certificates-"))
        self.config = self.folder / "openssl.cnf"
        self.config.write_text(OPENSSL_CONFIG)
        self.count = 0

    def cleanup(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def _paths(self):
        self.count += 1
        return self.folder / f"{self.count}.key", self.folder / f"{self.count}.pem"

    def self_signed(self, name, extensions):
        """Return `(key path, PEM)` of a self-signed certificate with the config's extensions."""
        key, pem = self._paths()
        self._openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(pem), "-subj", f"/CN={name}", "-days", "30",
            "-config", str(self.config), "-extensions", extensions,
        )
        return key, pem.read_text()

    def ca(self, name):
        return self.self_signed(name, "ca")

    def device(self, name, issuer=None):
        """Return the PEM of a device certificate signed by `issuer` (key path, PEM).

        Without `issuer` the certificate is self-signed.
        """
        if issuer is None:
            return self.self_signed(name, "leaf")[1]
        key, pem = self._paths()
        csr = self.folder / f"{self.count}.csr"
        issuer_pem = self.folder / f"{self.count}-issuer.pem"
        issuer_pem.write_text(issuer[1])
        self._openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
            "-config", str(self.config),
        )
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(issuer_pem), "-CAkey", str(issuer[0]),
            "-CAcreateserial", "-out", str(pem), "-days", "30",
            "-extfile", str(self.config), "-extensions", "leaf",
        )
        return pem.read_text()


def certificate_id(pem):
    """Return AWS's certificate id: the hex SHA-256 of the DER encoding."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


class CertificateTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certificates = CertificateFactory()
        cls.addClassCleanup(cls.certificates.cleanup)
        cls.ca = cls.certificates.ca("vigil-test-ca")
        cls.ca_id = cls.iot.register_ca_certificate(caCertificate=cls.ca[1], setAsActive=True)[
            "certificateId"
        ]

    def register_without_ca(self, name, **extra):
        pem = self.certificates.device(name)
        return pem, self.iot.register_certificate_without_ca(certificatePem=pem, **extra)

    def test_register_without_ca_then_describe(self):
        pem, registered = self.register_without_ca("plain-device", status="ACTIVE")
        expected_id = certificate_id(pem)
        self.assertEqual(registered["certificateId"], expected_id)
        self.assertEqual(registered["certificateArn"], f"{ARN_PREFIX}:cert/{expected_id}")
        described = self.iot.describe_certificate(certificateId=expected_id)
        description = described["certificateDescription"]
        self.assertEqual(description["certificateId"], expected_id)
        self.assertEqual(description["status"], "ACTIVE")
        self.assertEqual(description["certificatePem"], pem)
        self.assertEqual(description["ownedBy"], ACCOUNT_ID)
        self.assertNotIn("caCertificateId", description)
        self.assertLess(description["validity"]["notBefore"], description["validity"]["notAfter"])

    def test_register_with_ca_records_the_ca(self):
        pem = self.certificates.device("signed-device", self.ca)
        registered = self.iot.register_certificate(
            certificatePem=pem, caCertificatePem=self.ca[1], setAsActive=True
        )
        described = self.iot.describe_certificate(certificateId=registered["certificateId"])
        self.assertEqual(described["certificateDescription"]["caCertificateId"], self.ca_id)
        self.assertEqual(described["certificateDescription"]["status"], "ACTIVE")

    def test_register_without_status_is_inactive(self):
        _, registered = self.register_without_ca("inactive-device")
        described = self.iot.describe_certificate(certificateId=registered["certificateId"])
        self.assertEqual(described["certificateDescription"]["status"], "INACTIVE")

    def test_register_with_unregistered_ca_fails_validation(self):
        other_ca = self.certificates.ca("unregistered-ca")
        pem = self.certificates.device("orphan-device", other_ca)
        self.assert_error(
            lambda: self.iot.register_certificate(certificatePem=pem, caCertificatePem=other_ca[1]),
            "CertificateValidationException",
            400,
            "caCertificatePem",
        )

    def test_register_with_a_ca_that_did_not_sign_fails_validation(self):
        pem = self.certificates.device("self-signed-device")
        self.assert_error(
            lambda: self.iot.register_certificate(certificatePem=pem, caCertificatePem=self.ca[1]),
            "CertificateValidationException",
            400,
        )

    def test_register_twice_already_exists(self):
        pem, registered = self.register_without_ca("twice-device")
        error = self.assert_error(
            lambda: self.iot.register_certificate_without_ca(certificatePem=pem),
            "ResourceAlreadyExistsException",
            409,
        )
        self.assertEqual(error["resourceId"], registered["certificateId"])

    def test_bad_pem_names_the_field(self):
        self.assert_error(
            lambda: self.iot.register_certificate_without_ca(certificatePem="not a certificate"),
            "InvalidRequestException",
            400,
            "certificatePem",
        )
        self.assert_error(
            lambda: self.iot.register_ca_certificate(caCertificate="-----BEGIN nothing"),
            "InvalidRequestException",
            400,
            "caCertificate",
        )

    def test_update_certificate_changes_status_and_revoked_stays(self):
        _, registered = self.register_without_ca("updated-device", status="ACTIVE")
        certificate = registered["certificateId"]
        self.iot.update_certificate(certificateId=certificate, newStatus="INACTIVE")
        described = self.iot.describe_certificate(certificateId=certificate)
        self.assertEqual(described["certificateDescription"]["status"], "INACTIVE")
        self.assertEqual(described["certificateDescription"]["customerVersion"], 2)
        self.iot.update_certificate(certificateId=certificate, newStatus="REVOKED")
        self.assert_error(
            lambda: self.iot.update_certificate(certificateId=certificate, newStatus="ACTIVE"),
            "CertificateStateException",
            406,
        )
        self.assert_error(
            lambda: self.iot.update_certificate(
                certificateId=certificate, newStatus="PENDING_TRANSFER"
            ),
            "InvalidRequestException",
            400,
            "newStatus",
        )

    def test_unknown_certificate_is_not_found(self):
        missing = "0" * 64
        self.assert_error(
            lambda: self.iot.describe_certificate(certificateId=missing),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.update_certificate(certificateId=missing, newStatus="INACTIVE"),
            "ResourceNotFoundException",
            404,
        )

    def test_delete_refuses_active_and_attached_certificates(self):
        _, registered = self.register_without_ca("deleted-device", status="ACTIVE")
        certificate, arn = registered["certificateId"], registered["certificateArn"]
        self.assert_error(
            lambda: self.iot.delete_certificate(certificateId=certificate),
            "CertificateStateException",
            406,
        )

        self.iot.update_certificate(certificateId=certificate, newStatus="INACTIVE")
        self.iot.create_thing(thingName="cert-holder")
        self.iot.attach_thing_principal(thingName="cert-holder", principal=arn)
        self.assert_error(
            lambda: self.iot.delete_certificate(certificateId=certificate),
            "DeleteConflictException",
            409,
        )

        self.iot.detach_thing_principal(thingName="cert-holder", principal=arn)
        self.iot.create_policy(policyName="cert-policy", policyDocument=ALLOW_CONNECT)
        self.iot.attach_policy(policyName="cert-policy", target=arn)
        self.assert_error(
            lambda: self.iot.delete_certificate(certificateId=certificate),
            "DeleteConflictException",
            409,
        )

        self.iot.delete_certificate(certificateId=certificate, forceDelete=True)
        self.assert_error(
            lambda: self.iot.describe_certificate(certificateId=certificate),
            "ResourceNotFoundException",
            404,
        )
        # The forced delete detached the policy, so the policy can go too.
        self.iot.delete_policy(policyName="cert-policy")

    def test_list_certificates_pages_in_creation_order(self):
        ids = [self.register_without_ca(f"listed-{n}")[1]["certificateId"] for n in range(3)]
        ascending = [
            c["certificateId"]
            for c in all_items(self.iot, "list_certificates", "certificates", ascendingOrder=True)
        ]
        self.assertEqual([i for i in ascending if i in ids], ids)
        descending = [
            c["certificateId"] for c in all_items(self.iot, "list_certificates", "certificates")
        ]
        self.assertEqual([i for i in descending if i in ids], ids[::-1])
        total = len(ascending)
        sizes = page_sizes(self.iot, "list_certificates", "certificates", 2)
        self.assertEqual(sum(sizes), total)
        self.assertTrue(all(size <= 2 for size in sizes), sizes)
        self.assert_error(
            lambda: self.iot.list_certificates(marker="forged"),
            "InvalidRequestException",
            400,
            "marker",
        )

    def test_ca_certificate_round_trip(self):
        ca = self.certificates.ca("round-trip-ca")
        registered = self.iot.register_ca_certificate(caCertificate=ca[1])
        ca_id = registered["certificateId"]
        self.assertEqual(ca_id, certificate_id(ca[1]))
        self.assertEqual(registered["certificateArn"], f"{ARN_PREFIX}:cacert/{ca_id}")
        described = self.iot.describe_ca_certificate(certificateId=ca_id)
        self.assertEqual(described["certificateDescription"]["status"], "INACTIVE")
        self.assertEqual(described["certificateDescription"]["autoRegistrationStatus"], "DISABLE")
        self.iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")
        described = self.iot.describe_ca_certificate(certificateId=ca_id)
        self.assertEqual(described["certificateDescription"]["status"], "ACTIVE")
        self.assert_error(
            lambda: self.iot.update_ca_certificate(certificateId=ca_id, newStatus="REVOKED"),
            "InvalidRequestException",
            400,
            "newStatus",
        )
        self.assert_error(
            lambda: self.iot.register_ca_certificate(caCertificate=ca[1]),
            "ResourceAlreadyExistsException",
            409,
        )
        listed = all_items(self.iot, "list_ca_certificates", "certificates", ascendingOrder=True)
        self.assertEqual([c["certificateId"] for c in listed], [self.ca_id, ca_id])
        self.assertEqual(page_sizes(self.iot, "list_ca_certificates", "certificates", 1), [1, 1])

    def test_ca_registration_checks_the_certificates(self):
        leaf = self.certificates.device("not-a-ca")
        self.assert_error(
            lambda: self.iot.register_ca_certificate(caCertificate=leaf),
            "CertificateValidationException",
            400,
        )
        ca = self.certificates.ca("verified-ca")
        verification = self.certificates.device("verification", self.ca)
        self.assert_error(
            lambda: self.iot.register_ca_certificate(
                caCertificate=ca[1], verificationCertificate=verification
            ),
            "CertificateValidationException",
            400,
            "verificationCertificate",
        )
        self.assert_error(
            lambda: self.iot.describe_ca_certificate(certificateId="f" * 64),
            "ResourceNotFoundException",
            404,
        )

    def test_thing_principals_attach_list_detach(self):
        self.iot.create_thing(thingName="principal-thing")
        arns = [self.register_without_ca(f"principal-{n}")[1]["certificateArn"] for n in range(3)]
        for arn in arns:
            self.iot.attach_thing_principal(thingName="principal-thing", principal=arn)
        listed = all_items(
            self.iot, "list_thing_principals", "principals", thingName="principal-thing"
        )
        self.assertEqual(listed, sorted(arns))
        self.assertEqual(
            page_sizes(
                self.iot, "list_thing_principals", "principals", 2, thingName="principal-thing"
            ),
            [2, 1],
        )
        self.iot.detach_thing_principal(thingName="principal-thing", principal=arns[0])
        listed = self.iot.list_thing_principals(thingName="principal-thing")["principals"]
        self.assertEqual(listed, sorted(arns[1:]))

    def test_thing_principal_errors(self):
        self.iot.create_thing(thingName="principal-errors")
        self.assert_error(
            lambda: self.iot.attach_thing_principal(
                thingName="no-such-thing", principal=f"{ARN_PREFIX}:cert/{'a' * 64}"
            ),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.attach_thing_principal(
                thingName="principal-errors", principal=f"{ARN_PREFIX}:cert/{'a' * 64}"
            ),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.attach_thing_principal(
                thingName="principal-errors", principal="us-east-1:cognito-identity"
            ),
            "InvalidRequestException",
            400,
            "principal",
        )
        self.assert_error(
            lambda: self.iot.list_thing_principals(thingName="no-such-thing"),
            "ResourceNotFoundException",
            404,
        )


ALLOW_CONNECT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
    }
)
ALLOW_PUBLISH = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}],
    }
)


class PolicyTest(ServerTestCase):
    def test_policy_round_trip(self):
        created = self.iot.create_policy(
            policyName="round-trip", policyDocument=ALLOW_CONNECT, tags=[{"Key": "k", "Value": "v"}]
        )
        self.assertEqual(created["policyArn"], f"{ARN_PREFIX}:policy/round-trip")
        self.assertEqual(created["policyVersionId"], "1")
        self.assertEqual(created["policyDocument"], ALLOW_CONNECT)
        policy = self.iot.get_policy(policyName="round-trip")
        self.assertEqual(policy["defaultVersionId"], "1")
        self.assertEqual(policy["policyDocument"], ALLOW_CONNECT)
        self.assertIsInstance(policy["creationDate"], datetime.datetime)
        self.assertEqual(
            self.iot.list_tags_for_resource(resourceArn=created["policyArn"])["tags"],
            [{"Key": "k", "Value": "v"}],
        )
        self.iot.delete_policy(policyName="round-trip")
        self.assert_error(
            lambda: self.iot.get_policy(policyName="round-trip"), "ResourceNotFoundException", 404
        )

    def test_create_policy_errors(self):
        self.iot.create_policy(policyName="existing", policyDocument=ALLOW_CONNECT)
        self.assert_error(
            lambda: self.iot.create_policy(policyName="existing", policyDocument=ALLOW_CONNECT),
            "ResourceAlreadyExistsException",
            409,
        )
        self.assert_error(
            lambda: self.iot.create_policy(policyName="malformed", policyDocument="{not json"),
            "MalformedPolicyException",
            400,
        )
        self.assert_error(
            lambda: self.iot.create_policy(policyName="bad name!", policyDocument=ALLOW_CONNECT),
            "InvalidRequestException",
            400,
            "policyName",
        )

    def test_versions_up_to_five_then_limit(self):
        self.iot.create_policy(policyName="versioned", policyDocument=ALLOW_CONNECT)
        for version in range(2, 6):
            created = self.iot.create_policy_version(
                policyName="versioned", policyDocument=ALLOW_PUBLISH, setAsDefault=version == 3
            )
            self.assertEqual(created["policyVersionId"], str(version))
            self.assertEqual(created["isDefaultVersion"], version == 3)
        self.assert_error(
            lambda: self.iot.create_policy_version(
                policyName="versioned", policyDocument=ALLOW_PUBLISH
            ),
            "VersionsLimitExceededException",
            409,
        )
        versions = self.iot.list_policy_versions(policyName="versioned")["policyVersions"]
        self.assertEqual([v["versionId"] for v in versions], ["5", "4", "3", "2", "1"])
        self.assertEqual([v["versionId"] for v in versions if v["isDefaultVersion"]], ["3"])
        self.assertEqual(self.iot.get_policy(policyName="versioned")["defaultVersionId"], "3")

        self.iot.set_default_policy_version(policyName="versioned", policyVersionId="5")
        version = self.iot.get_policy_version(policyName="versioned", policyVersionId="5")
        self.assertTrue(version["isDefaultVersion"])
        self.assertEqual(version["policyDocument"], ALLOW_PUBLISH)
        self.assert_error(
            lambda: self.iot.delete_policy_version(policyName="versioned", policyVersionId="5"),
            "DeleteConflictException",
            409,
        )
        self.iot.delete_policy_version(policyName="versioned", policyVersionId="1")
        created = self.iot.create_policy_version(
            policyName="versioned", policyDocument=ALLOW_CONNECT
        )
        self.assertEqual(created["policyVersionId"], "6")
        self.assert_error(
            lambda: self.iot.get_policy_version(policyName="versioned", policyVersionId="1"),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.delete_policy(policyName="versioned"),
            "DeleteConflictException",
            409,
        )
        self.assert_error(
            lambda: self.iot.create_policy_version(
                policyName="versioned", policyDocument="[1, 2"
            ),
            "MalformedPolicyException",
            400,
        )
        self.assert_error(
            lambda: self.iot.set_default_policy_version(
                policyName="versioned", policyVersionId="99"
            ),
            "ResourceNotFoundException",
            404,
        )

    def test_list_policies_pages(self):
        names = [f"listed-policy-{n}" for n in range(3)]
        for name in names:
            self.iot.create_policy(policyName=name, policyDocument=ALLOW_CONNECT)
        listed = [
            p["policyName"]
            for p in all_items(self.iot, "list_policies", "policies", ascendingOrder=True)
        ]
        self.assertEqual([n for n in listed if n in names], names)
        sizes = page_sizes(self.iot, "list_policies", "policies", 2)
        self.assertEqual(sum(sizes), len(listed))
        self.assertTrue(all(size <= 2 for size in sizes), sizes)

    def test_attach_to_group_and_list_and_detach(self):
        group_arn = self.create_group_with_things("policy-group", ["policy-member"])
        policies = [f"group-policy-{n}" for n in range(3)]
        for name in policies:
            self.iot.create_policy(policyName=name, policyDocument=ALLOW_CONNECT)
            self.iot.attach_policy(policyName=name, target=group_arn)
        attached = all_items(self.iot, "list_attached_policies", "policies", target=group_arn)
        self.assertEqual([p["policyName"] for p in attached], policies)
        self.assertEqual(attached[0]["policyArn"], f"{ARN_PREFIX}:policy/group-policy-0")
        self.assertEqual(
            page_sizes(self.iot, "list_attached_policies", "policies", 2, target=group_arn),
            [2, 1],
        )
        self.assert_error(
            lambda: self.iot.delete_policy(policyName="group-policy-0"),
            "DeleteConflictException",
            409,
        )
        self.iot.detach_policy(policyName="group-policy-0", target=group_arn)
        attached = self.iot.list_attached_policies(target=group_arn)["policies"]
        self.assertEqual([p["policyName"] for p in attached], policies[1:])

    def test_attach_errors(self):
        self.iot.create_policy(policyName="attach-errors", policyDocument=ALLOW_CONNECT)
        self.assert_error(
            lambda: self.iot.attach_policy(
                policyName="attach-errors", target=f"{ARN_PREFIX}:thinggroup/missing-group"
            ),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.attach_policy(
                policyName="attach-errors", target=f"{ARN_PREFIX}:cert/{'b' * 64}"
            ),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.attach_policy(policyName="attach-errors", target="not-an-arn"),
            "InvalidRequestException",
            400,
            "target",
        )
        group_arn = self.create_group_with_things("crowded-group", [])
        self.assert_error(
            lambda: self.iot.attach_policy(policyName="no-such-policy", target=group_arn),
            "ResourceNotFoundException",
            404,
        )
        for n in range(10):
            self.iot.create_policy(policyName=f"crowd-{n}", policyDocument=ALLOW_CONNECT)
            self.iot.attach_policy(policyName=f"crowd-{n}", target=group_arn)
        self.assert_error(
            lambda: self.iot.attach_policy(policyName="attach-errors", target=group_arn),
            "LimitExceededException",
            410,
        )


class LoggingOptionsTest(ServerTestCase):
    def test_logging_options_round_trip(self):
        self.assert_error(
            lambda: self.iot.get_v2_logging_options(), "NotConfiguredException", 404
        )
        self.iot.set_v2_logging_options(roleArn=ROLE_ARN, defaultLogLevel="WARN")
        options = self.iot.get_v2_logging_options()
        self.assertEqual(options["roleArn"], ROLE_ARN)
        self.assertEqual(options["defaultLogLevel"], "WARN")
        self.assertEqual(options["disableAllLogs"], False)
        self.iot.set_v2_logging_options(
            roleArn=ROLE_ARN, defaultLogLevel="DEBUG", disableAllLogs=True
        )
        options = self.iot.get_v2_logging_options()
        self.assertEqual(options["defaultLogLevel"], "DEBUG")
        self.assertEqual(options["disableAllLogs"], True)

    def test_invalid_logging_options_name_the_field(self):
        self.assert_error(
            lambda: self.unchecked_iot.set_v2_logging_options(
                roleArn=ROLE_ARN, defaultLogLevel="LOUD"
            ),
            "InvalidRequestException",
            400,
            "defaultLogLevel",
        )
        self.assert_error(
            lambda: self.iot.set_v2_logging_options(roleArn="not-a-role", defaultLogLevel="INFO"),
            "InvalidRequestException",
            400,
            "roleArn",
        )


class ThingAttributeTest(ServerTestCase):
    def test_create_with_attributes_then_describe(self):
        created = self.iot.create_thing(
            thingName="attributed", attributePayload={"attributes": {"model": "m-1", "site": "b7"}}
        )
        described = self.iot.describe_thing(thingName="attributed")
        self.assertEqual(described["thingName"], "attributed")
        self.assertEqual(described["thingId"], created["thingId"])
        self.assertEqual(described["thingArn"], f"{ARN_PREFIX}:thing/attributed")
        self.assertEqual(described["attributes"], {"model": "m-1", "site": "b7"})
        self.assertEqual(described["version"], 1)
        again = self.iot.create_thing(
            thingName="attributed", attributePayload={"attributes": {"model": "m-1", "site": "b7"}}
        )
        self.assertEqual(again["thingId"], created["thingId"])
        self.assert_error(
            lambda: self.iot.create_thing(
                thingName="attributed", attributePayload={"attributes": {"model": "m-2"}}
            ),
            "ResourceAlreadyExistsException",
            409,
        )

    def test_update_merges_or_replaces_and_checks_version(self):
        self.iot.create_thing(
            thingName="updated", attributePayload={"attributes": {"a": "1", "b": "2"}}
        )
        self.iot.update_thing(
            thingName="updated",
            attributePayload={"attributes": {"b": "", "c": "3"}, "merge": True},
            expectedVersion=1,
        )
        described = self.iot.describe_thing(thingName="updated")
        self.assertEqual(described["attributes"], {"a": "1", "c": "3"})
        self.assertEqual(described["version"], 2)
        self.assert_error(
            lambda: self.iot.update_thing(
                thingName="updated", attributePayload={"attributes": {}}, expectedVersion=1
            ),
            "VersionConflictException",
            409,
        )
        self.iot.update_thing(thingName="updated", attributePayload={"attributes": {"d": "4"}})
        described = self.iot.describe_thing(thingName="updated")
        self.assertEqual(described["attributes"], {"d": "4"})
        self.assertEqual(described["version"], 3)

    def test_attribute_limits_and_refusals(self):
        too_many = {f"name{n}": "v" for n in range(51)}
        self.assert_error(
            lambda: self.iot.create_thing(
                thingName="crowded", attributePayload={"attributes": too_many}
            ),
            "InvalidRequestException",
            400,
            "attributePayload.attributes",
        )
        self.assert_error(
            lambda: self.iot.create_thing(
                thingName="badly-named", attributePayload={"attributes": {"bad name": "v"}}
            ),
            "InvalidRequestException",
            400,
            "bad name",
        )
        self.assert_error(
            lambda: self.iot.create_thing(thingName="typed", thingTypeName="sensor"),
            "InvalidRequestException",
            400,
            "thingTypeName",
        )
        self.assert_error(
            lambda: self.iot.describe_thing(thingName="no-such-thing"),
            "ResourceNotFoundException",
            404,
        )
        self.assert_error(
            lambda: self.iot.update_thing(thingName="no-such-thing", attributePayload={}),
            "ResourceNotFoundException",
            404,
        )


class BundledPluginTest(ServerTestCase):
    """The bundled plugins of the five other action types, acting on the server's registry."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certificates = CertificateFactory()
        cls.addClassCleanup(cls.certificates.cleanup)

    def test_one_task_applies_all_five_actions_to_the_violating_thing(self):
        thing = "compromised-1"
        group_arn = self.create_group_with_things("plugin-fleet", [thing])
        ca = self.certificates.ca("plugin-test-ca")
        ca_id = self.iot.register_ca_certificate(caCertificate=ca[1], setAsActive=True)[
            "certificateId"
        ]
        device = self.iot.register_certificate(
            certificatePem=self.certificates.device(thing, issuer=ca),
            caCertificatePem=ca[1],
            status="ACTIVE",
        )
        self.iot.attach_thing_principal(thingName=thing, principal=device["certificateArn"])
        allow_all = json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
        )
        self.iot.create_policy(policyName="device-policy", policyDocument=allow_all)
        self.iot.attach_policy(policyName="device-policy", target=device["certificateArn"])
        topic = "arn:aws:sns:us-east-1:123456789012:device-findings"
        logging_role = "arn:aws:iam::123456789012:role/IoTLoggingRole"
        actions = {
            "deactivate-device-cert": {"updateDeviceCertificateParams": {"action": "DEACTIVATE"}},
            "deactivate-ca-cert": {"updateCACertificateParams": {"action": "DEACTIVATE"}},
            "blank-policy": {"replaceDefaultPolicyVersionParams": {"templateName": "BLANK_POLICY"}},
            "enable-logging": {
                "enableIoTLoggingParams": {"roleArnForLogging": logging_role, "logLevel": "DEBUG"}
            },
            "publish-finding": {"publishFindingToSnsParams": {"topicArn": topic}},
        }
        for name, params in actions.items():
            self.iot.create_mitigation_action(actionName=name, roleArn=ROLE_ARN, actionParams=params)
        self.create_profile("plugin-messages")
        self.iot.attach_security_profile(
            securityProfileName="plugin-messages", securityProfileTargetArn=group_arn
        )
        self.send_messages_sent(thing, int(time.time()) - 3600, 100)
        eventually(lambda: self.active_violations(securityProfileName="plugin-messages"))
        violation = self.active_violations(securityProfileName="plugin-messages")[0]

        self.iot.start_detect_mitigation_actions_task(
            taskId="all-five-actions",
            target={"violationIds": [violation["violationId"]]},
            actions=list(actions),
            clientRequestToken=str(uuid.uuid4()),
        )
        summary = eventually(lambda: self.finished("all-five-actions"))

        self.assertEqual(summary["taskStatus"], "SUCCESSFUL", summary)
        self.assertEqual(
            summary["taskStatistics"],
            {"actionsExecuted": 5, "actionsSkipped": 0, "actionsFailed": 0},
        )
        certificate = self.iot.describe_certificate(certificateId=device["certificateId"])
        self.assertEqual(certificate["certificateDescription"]["status"], "INACTIVE")
        authority = self.iot.describe_ca_certificate(certificateId=ca_id)
        self.assertEqual(authority["certificateDescription"]["status"], "INACTIVE")
        policy = self.iot.get_policy(policyName="device-policy")
        self.assertEqual(policy["defaultVersionId"], "2")
        statement = json.loads(policy["policyDocument"])["Statement"]
        self.assertEqual([rule["Effect"] for rule in statement], ["Deny"])
        logging = self.iot.get_v2_logging_options()
        self.assertEqual(logging["roleArn"], logging_role)
        self.assertEqual(logging["defaultLogLevel"], "DEBUG")
        status, _, body = self.server.signed_request(
            "GET", f"/vigil/notifications?topicArn={urllib.parse.quote(topic, safe='')}"
        )
        self.assertEqual(status, 200, body)
        messages = [item["message"] for item in json.loads(body)["notifications"]]
        self.assertEqual(len(messages), 1, messages)
        self.assertEqual(messages[0]["thingName"], thing)
        self.assertEqual(messages[0]["violationId"], violation["violationId"])

    def finished(self, task_id):
        summary = self.iot.describe_detect_mitigation_actions_task(taskId=task_id)["taskSummary"]
        return summary if summary["taskStatus"] != "IN_PROGRESS" else None


def main():
    program = unittest.main(verbosity=2, exit=False)
    result = program.result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - len(result.skipped) - failed
    print(f"boto3: {passed} passed, {failed} failed")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
