"""MQTT tests of `vigil serve` with real clients: paho-mqtt over MQTT 3.1.1 and 5, and Debian's
mosquitto_pub, mosquitto_sub and mosquitto_rr.

Run with the Python of the environment built from requirements.txt beside this file, with
VIGIL_BIN naming the `vigil` binary. The server listens on free loopback ports only. The last
line is `mqtt: N passed, N failed`; the exit code is 1 when a test failed.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

THINGS = {"paho-311": "pw-1", "paho-5": "pw-2", "rr-thing": "pw-3", "pub-thing": "pw-4",
          "intruder": "pw-5"}
TIMEOUT = 10


class Server:
    """A `vigil serve` on free ports with a password file for THINGS."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="vigil-mqtt-")
        with open(os.path.join(self.data, "mqtt-passwords"), "w") as passwords:
            passwords.writelines(f"{thing}:{pw}\n" for thing, pw in THINGS.items())
        with open(os.path.join(self.data, "credentials"), "w") as credentials:
            credentials.write("[default]\naws_access_key_id = AKIDMQTT\n"
                              "aws_secret_access_key = mqtt-secret\n")
        self.process = subprocess.Popen(
            [os.environ["VIGIL_BIN"], "serve", "--port", "0", "--data", self.data],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.mqtt_port = None
        for line in self.process.stdout:
            if line.startswith("vigil serve: mqtt on "):
                self.mqtt_port = int(line.rsplit(":", 1)[1])
                break
        if self.mqtt_port is None:
            raise RuntimeError("vigil serve printed no MQTT address")

    def stop(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class Device:
    """A paho client that queues the messages it receives."""

    def __init__(self, port, thing, password, protocol=mqtt.MQTTv311):
        self.messages = queue.Queue()
        self.acks = queue.Queue()
        self.connected = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=thing,
                                  protocol=protocol)
        self.client.username_pw_set(thing, password)
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.put(reason)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, reason, p: self.acks.put((mid, reason))
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self.acks.put((mid, reasons))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.reason = self.connected.get(timeout=TIMEOUT)

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)
        return self.acks.get(timeout=TIMEOUT)[1]

    def publish(self, topic, payload):
        info = self.client.publish(topic, payload, qos=1)
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def report(report_id, bytes_out=100):
    return {"header": {"report_id": report_id, "version": "1.0"},
            "metrics": {"network_stats": {"bytes_in": 10, "bytes_out": bytes_out,
                                          "packets_in": 1, "packets_out": 2}}}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def test_paho_311_json_report_is_accepted(server):
    device = Device(server.mqtt_port, "paho-311", THINGS["paho-311"])
    try:
        check(device.reason == 0, f"connect: {device.reason}")
        device.subscribe("$aws/things/paho-311/defender/metrics/json/+")
        device.publish("$aws/things/paho-311/defender/metrics/json",
                       json.dumps(report(1700000101)))
        topic, payload = device.messages.get(timeout=TIMEOUT)
        reply = json.loads(payload)
        check(topic == "$aws/things/paho-311/defender/metrics/json/accepted", topic)
        check(reply["reportId"] == 1700000101 and reply["status"] == "ACCEPTED", reply)
        check(reply["thingName"] == "paho-311", reply)
    finally:
        device.close()


def test_paho_5_cbor_report_is_accepted_in_cbor(server):
    device = Device(server.mqtt_port, "paho-5", THINGS["paho-5"], mqtt.MQTTv5)
    try:
        check(device.reason == 0, f"connect: {device.reason}")
        device.subscribe("$aws/things/paho-5/defender/metrics/cbor/+")
        short_keys = {"hed": {"rid": 1700000202, "v": "1.0"},
                      "met": {"ns": {"bi": 1, "bo": 2, "pi": 3, "po": 4}}}
        device.publish("$aws/things/paho-5/defender/metrics/cbor", cbor2.dumps(short_keys))
        topic, payload = device.messages.get(timeout=TIMEOUT)
        reply = cbor2.loads(payload)
        check(topic == "$aws/things/paho-5/defender/metrics/cbor/accepted", topic)
        check(reply["reportId"] == 1700000202 and reply["status"] == "ACCEPTED", reply)
    finally:
        device.close()


def test_paho_5_publish_on_another_things_topic_is_not_authorized(server):
    device = Device(server.mqtt_port, "intruder", THINGS["intruder"], mqtt.MQTTv5)
    try:
        device.publish("things/paho-5/commands", b"open")
        _, reason = device.acks.get(timeout=TIMEOUT)
        check(reason.value == 0x87, f"PUBACK reason {reason}")
        reasons = device.subscribe("$aws/things/paho-5/defender/metrics/json/accepted")
        check([r.value for r in reasons] == [0x87], f"SUBACK reasons {reasons}")
    finally:
        device.close()


def test_paho_wrong_password_is_refused(server):
    device = Device(server.mqtt_port, "paho-311", "wrong")
    try:
        check(device.reason == "Bad user name or password", f"connect: {device.reason}")
    finally:
        device.close()


def mosquitto(tool, server, thing, password, *args):
    command = [tool, "-h", "127.0.0.1", "-p", str(server.mqtt_port), "-i", thing,
               "-u", thing, "-P", password, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)


def test_mosquitto_rr_gets_the_accepted_reply(server):
    result = mosquitto("mosquitto_rr", server, "rr-thing", THINGS["rr-thing"],
                       "-t", "$aws/things/rr-thing/defender/metrics/json",
                       "-e", "$aws/things/rr-thing/defender/metrics/json/accepted",
                       "-m", json.dumps(report(1700000303)), "-q", "1")
    check(result.returncode == 0, result.stderr)
    reply = json.loads(result.stdout)
    check(reply["reportId"] == 1700000303 and reply["status"] == "ACCEPTED", reply)


def test_mosquitto_pub_report_is_stored_so_the_next_is_throttled(server):
    result = mosquitto("mosquitto_pub", server, "pub-thing", THINGS["pub-thing"],
                       "-t", "$aws/things/pub-thing/defender/metrics/json",
                       "-m", json.dumps(report(1700000404)), "-q", "1")
    check(result.returncode == 0, result.stderr)
    result = mosquitto("mosquitto_rr", server, "pub-thing", THINGS["pub-thing"],
                       "-t", "$aws/things/pub-thing/defender/metrics/json",
                       "-e", "$aws/things/pub-thing/defender/metrics/json/rejected",
                       "-m", json.dumps(report(1700000405)), "-q", "1")
    check(result.returncode == 0, result.stderr)
    reply = json.loads(result.stdout)
    check(reply["statusDetails"]["ErrorCode"] == "Throttled", reply)


def test_mosquitto_pub_with_a_wrong_password_is_refused(server):
    result = mosquitto("mosquitto_pub", server, "pub-thing", "wrong",
                       "-t", "things/pub-thing/x", "-m", "hi")
    check(result.returncode != 0, "mosquitto_pub succeeded")
    check("bad user name or password" in result.stderr, result.stderr)


def test_mosquitto_sub_on_another_things_topic_is_denied(server):
    result = mosquitto("mosquitto_sub", server, "intruder", THINGS["intruder"],
                       "-t", "things/pub-thing/#", "-C", "1")
    check("All subscription requests were denied" in result.stderr, result.stderr)


def main():
    tests = [(name, test) for name, test in globals().items() if name.startswith("test_")]
    server = Server()
    passed = failed = 0
    try:
        for name, test in tests:
            started = time.monotonic()
            try:
                test(server)
                passed += 1
                print(f"ok     {name} ({time.monotonic() - started:.2f} s)")
            except Exception:
                failed += 1
                print(f"FAILED {name}")
                traceback.print_exc()
    finally:
        server.stop()
    print(f"mqtt: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
