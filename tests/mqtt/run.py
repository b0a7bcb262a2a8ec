"""MQTT tests of `vigil serve` with real clients: paho-mqtt over MQTT 3.1.1 and 5, Debian's
mosquitto_pub, mosquitto_sub and mosquitto_rr, and the reports of AWS's reference Device
Defender agent (PyPI package AWSIoTDeviceDefenderAgentSDK).

The agent's collector samples this machine with psutil and builds reports with long and short key
names, in JSON and CBOR. paho-mqtt publishes them at QoS 0, as the agent does, because the
agent's own transport needs TLS with a device certificate, which Vigil's broker does not offer
yet. The tests read the stored values back with ListMetricValues, signing the API requests with
awscrt.

Run with the Python of the environment built from requirements.txt beside this file, with
VIGIL_BIN naming the `vigil` binary. The server listens on free loopback ports only. The last
line is `mqtt: N passed, N failed`; the exit code is 1 when a test failed.
"""

import io
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import cbor2
import paho.mqtt.client as mqtt
from awscrt import auth, http
from AWSIoTDeviceDefenderAgentSDK.collector import Collector
from AWSIoTDeviceDefenderAgentSDK.tags import Tags
from paho.mqtt.enums import CallbackAPIVersion

THINGS = {"paho-311": "pw-1", "paho-5": "pw-2", "rr-thing": "pw-3", "pub-thing": "pw-4",
          "intruder": "pw-5", "agent-long": "pw-6", "agent-short": "pw-7", "agent-cbor": "pw-8",
          "agent-stored-long": "pw-9", "agent-stored-short": "pw-10"}
TIMEOUT = 10
# Things that log in over TLS with a device certificate from `vigil mqtt-certs`, no password.
CERTIFIED_THINGS = ("tls-rr-thing", "tls-paho-thing")

# The key pair of the server's AWS API, and the region and account in the ARNs of a new database.
ACCESS_KEY = "AKIDMQTT"
SECRET_KEY = "mqtt-secret"
REGION = "us-east-1"
ALL_THINGS = f"arn:aws:iot:{REGION}:123456789012:all/things"


class Server:
    """A `vigil serve` on free ports with a password file for THINGS."""

    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="vigil-mqtt-")
        with open(os.path.join(self.data, "mqtt-passwords"), "w") as passwords:
            passwords.writelines(f"{thing}:{pw}\n" for thing, pw in THINGS.items())
        with open(os.path.join(self.data, "credentials"), "w") as credentials:
            credentials.write(f"[default]\naws_access_key_id = {ACCESS_KEY}\n"
                              f"aws_secret_access_key = {SECRET_KEY}\n")
        self.certs = os.path.join(self.data, "certs")
        subprocess.run([os.environ["VIGIL_BIN"], "mqtt-certs", "--dir", self.certs,
                        *(arg for thing in CERTIFIED_THINGS for arg in ("--thing", thing))],
                       check=True, capture_output=True, timeout=TIMEOUT)
        self.process = subprocess.Popen(
            [os.environ["VIGIL_BIN"], "serve", "--port", "0", "--data", self.data,
             "--mqtt-tls-port", "0",
             "--mqtt-tls-cert", self.cert_file("server.pem"),
             "--mqtt-tls-key", self.cert_file("server.key"),
             "--mqtt-tls-client-ca", self.cert_file("ca.pem")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.http_address = None
        self.mqtt_port = None
        self.mqtt_tls_port = None
        for line in self.process.stdout:
            if line.startswith("vigil serve: listening on http://"):
                self.http_address = line.split("http://", 1)[1].strip().rstrip("/")
            if line.startswith("vigil serve: mqtt over tls on "):
                self.mqtt_tls_port = int(line.rsplit(":", 1)[1])
            if line.startswith("vigil serve: mqtt on "):
                self.mqtt_port = int(line.rsplit(":", 1)[1])
                break
        if None in (self.http_address, self.mqtt_port, self.mqtt_tls_port):
            raise RuntimeError("vigil serve exited before printing its HTTP and MQTT addresses")

    def cert_file(self, name):
        """Path of a file written by `vigil mqtt-certs`."""
        return os.path.join(self.certs, name)

    def request(self, method, path, body=None):
        """Send a SigV4-signed request to the AWS API and return (status, decoded JSON body).

        awscrt, which the reference agent installs, signs the request, so boto3 is not needed.
        """
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("host", self.http_address)]
        if body is not None:
            headers.append(("content-type", "application/json"))
        signed = http.HttpRequest(method, path, http.HttpHeaders(headers), io.BytesIO(data))
        credentials = auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY)
        config = auth.AwsSigningConfig(auth.AwsSigningAlgorithm.V4,
                                       auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
                                       credentials, REGION, "iot")
        auth.aws_sign_request(signed, config).result(TIMEOUT)
        request = urllib.request.Request(f"http://{self.http_address}{path}",
                                         data=data if body is not None else None,
                                         method=method, headers=dict(signed.headers))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class Device:
    """A paho client that queues the messages it receives."""

    def __init__(self, port, thing, password, protocol=mqtt.MQTTv311, tls=None):
        """Connect as `thing`; `tls` is (CA file, certificate file, key file) for MQTT over TLS
        with a device certificate, in which case `password` may be None."""
        self.messages = queue.Queue()
        self.acks = queue.Queue()
        self.connected = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=thing,
                                  protocol=protocol)
        if password is not None:
            self.client.username_pw_set(thing, password)
        host = "127.0.0.1"
        if tls is not None:
            ca_file, cert_file, key_file = tls
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
            host = "localhost"
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.put(reason)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_publish = lambda c, u, mid, reason, p: self.acks.put((mid, reason))
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self.acks.put((mid, reasons))
        self.client.connect(host, port)
        self.client.loop_start()
        self.reason = self.connected.get(timeout=TIMEOUT)

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)
        return self.acks.get(timeout=TIMEOUT)[1]

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos=qos)
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


def mosquitto_tls(tool, server, thing, *args):
    """Run a mosquitto client over TLS with the device certificate of `thing`."""
    command = [tool, "-h", "localhost", "-p", str(server.mqtt_tls_port), "-i", thing,
               "--cafile", server.cert_file("ca.pem"),
               "--cert", server.cert_file(f"{thing}.pem"),
               "--key", server.cert_file(f"{thing}.key"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)


def test_mosquitto_rr_with_a_device_certificate_gets_the_accepted_reply(server):
    result = mosquitto_tls("mosquitto_rr", server, "tls-rr-thing",
                           "-t", "$aws/things/tls-rr-thing/defender/metrics/json",
                           "-e", "$aws/things/tls-rr-thing/defender/metrics/json/accepted",
                           "-m", json.dumps(report(1700000505)), "-q", "1")
    check(result.returncode == 0, result.stderr)
    reply = json.loads(result.stdout)
    check(reply["reportId"] == 1700000505 and reply["status"] == "ACCEPTED", reply)


def test_mosquitto_pub_with_another_things_certificate_is_refused(server):
    command = ["mosquitto_pub", "-h", "localhost", "-p", str(server.mqtt_tls_port),
               "-i", "tls-paho-thing", "--cafile", server.cert_file("ca.pem"),
               "--cert", server.cert_file("tls-rr-thing.pem"),
               "--key", server.cert_file("tls-rr-thing.key"),
               "-t", "things/tls-paho-thing/x", "-m", "hi"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    check(result.returncode != 0, "mosquitto_pub succeeded")
    check("bad user name or password" in result.stderr, result.stderr)


def test_paho_5_over_tls_with_a_device_certificate_is_accepted(server):
    thing = "tls-paho-thing"
    device = Device(server.mqtt_tls_port, thing, None, protocol=mqtt.MQTTv5,
                    tls=(server.cert_file("ca.pem"), server.cert_file(f"{thing}.pem"),
                         server.cert_file(f"{thing}.key")))
    try:
        topic = f"$aws/things/{thing}/defender/metrics/json"
        check(device.reason == 0, f"connect: {device.reason}")
        device.subscribe(topic + "/+")
        device.publish(topic, json.dumps(report(1700000606)))
        reply_topic, payload = device.messages.get(timeout=TIMEOUT)
        check(reply_topic == topic + "/accepted", reply_topic)
        check(json.loads(payload)["reportId"] == 1700000606, payload)
    finally:
        device.close()


# Metrics fed by the reports of the reference agent's collector. cpu_usage is the agent's custom
# metric, a number.
AGENT_METRICS = ("aws:all-bytes-in", "aws:all-bytes-out", "aws:all-packets-in",
                 "aws:all-packets-out", "aws:listening-tcp-ports", "aws:num-listening-tcp-ports",
                 "aws:listening-udp-ports", "aws:num-listening-udp-ports",
                 "aws:num-established-tcp-connections", "aws:destination-ip-addresses",
                 "cpu_usage")


def collect_agent_metrics(short_names):
    """Sample this machine with the reference agent's collector and return the sample to publish.

    The agent publishes from its second sample on, so that the network counters of a report are
    the change since the previous sample. With short names, the agent (2.0.0, the latest on PyPI)
    raises KeyError on its second sample, because it keeps the previous counters under their long
    names. So a short-name report is the first sample, whose counters are totals since boot.
    The agent writes IPv6 peers without brackets, as `::1:51644`; Vigil reads those as `::1`.
    """
    collector = Collector(short_metrics_names=short_names, use_custom_metrics=True)
    first_sample = collector.collect_metrics()
    if short_names:
        return first_sample
    return collector.collect_metrics()


def publish_report(server, thing, payload, encoding="json"):
    """Publish a report as `thing` at QoS 0, as the reference agent does, and return the topic and
    the decoded payload of the reply."""
    device = Device(server.mqtt_port, thing, THINGS[thing])
    decode = json.loads if encoding == "json" else cbor2.loads
    try:
        check(device.reason == 0, f"connect: {device.reason}")
        topic = f"$aws/things/{thing}/defender/metrics/{encoding}"
        device.subscribe(topic + "/+")
        device.publish(topic, payload, qos=0)
        reply_topic, reply = device.messages.get(timeout=TIMEOUT)
        return reply_topic, decode(reply)
    finally:
        device.close()


def retain_agent_metrics(server):
    """Create the custom metric cpu_usage and a profile that retains AGENT_METRICS of all things."""
    status, body = server.request("POST", "/custom-metric/cpu_usage", {"metricType": "number"})
    check(status == 200, f"CreateCustomMetric: {status} {body}")
    retained = [{"metric": metric} for metric in AGENT_METRICS]
    status, body = server.request("POST", "/security-profiles/agent-metrics",
                                  {"additionalMetricsToRetainV2": retained})
    check(status == 200, f"CreateSecurityProfile: {status} {body}")
    target = urllib.parse.quote(ALL_THINGS, safe="")
    status, body = server.request(
        "PUT", f"/security-profiles/agent-metrics/targets?securityProfileTargetArn={target}")
    check(status == 200, f"AttachSecurityProfile: {status} {body}")


def stored_values(server, thing, metric):
    """Return the values that ListMetricValues returns for one metric of one thing."""
    query = urllib.parse.urlencode({"thingName": thing, "metricName": metric,
                                    "startTime": 0, "endTime": 4000000000})
    status, body = server.request("GET", f"/metric-values?{query}")
    check(status == 200, f"ListMetricValues {metric}: {status} {body}")
    return [sorted_lists(datum["value"]) for datum in body["metricDatumList"]]


def sorted_lists(value):
    """Return a metric value with its port and address lists sorted, because their order
    carries no meaning."""
    return {member: sorted(item) if isinstance(item, list) else item
            for member, item in value.items()}


def expected_values(sent, short_names):
    """Return the values each of AGENT_METRICS should have after the report `sent` is stored.

    A metric gets one value when the report contains its section and none when it does not.
    """
    tags = Tags(short_names)
    metrics = sent[tags.metrics]
    counters = metrics[tags.interface_stats]
    expected = {
        "aws:all-bytes-in": [{"count": counters[tags.bytes_in]}],
        "aws:all-bytes-out": [{"count": counters[tags.bytes_out]}],
        "aws:all-packets-in": [{"count": counters[tags.packets_in]}],
        "aws:all-packets-out": [{"count": counters[tags.packets_out]}],
        "cpu_usage": [{"number": sent[tags.custom_metrics][tags.cpu_usage][0]["number"]}],
    }
    for protocol, key in (("tcp", tags.listening_tcp_ports), ("udp", tags.listening_udp_ports)):
        section = metrics.get(key)
        expected[f"aws:listening-{protocol}-ports"] = [] if section is None else [
            # The agent writes `port` in its long form with short names too.
            {"ports": sorted({entry["port"] for entry in section[tags.ports]})}]
        expected[f"aws:num-listening-{protocol}-ports"] = [] if section is None else [
            {"count": section[tags.total]}]
    established = metrics.get(tags.tcp_conn, {}).get(tags.established_connections)
    expected["aws:num-established-tcp-connections"] = [] if established is None else [
        {"count": established[tags.total]}]
    expected["aws:destination-ip-addresses"] = [] if established is None else [
        {"cidrs": sorted({connection[tags.remote_addr].rsplit(":", 1)[0].strip("[]")
                          for connection in established[tags.connections]})}]
    return expected


def test_agent_long_name_report_is_accepted(server):
    payload = collect_agent_metrics(short_names=False).to_json_string()
    sent = json.loads(payload)
    check(sorted(sent) == ["custom_metrics", "header", "metrics"], sorted(sent))
    topic, reply = publish_report(server, "agent-long", payload)
    check(topic == "$aws/things/agent-long/defender/metrics/json/accepted", f"{topic}: {reply}")
    check(reply["reportId"] == sent["header"]["report_id"], reply)
    check(reply["status"] == "ACCEPTED", reply)


def test_agent_short_name_report_is_accepted(server):
    payload = collect_agent_metrics(short_names=True).to_json_string()
    sent = json.loads(payload)
    check(sorted(sent) == ["cmet", "hed", "met"], sorted(sent))
    topic, reply = publish_report(server, "agent-short", payload)
    check(topic == "$aws/things/agent-short/defender/metrics/json/accepted", f"{topic}: {reply}")
    check(reply["reportId"] == sent["hed"]["rid"], reply)
    check(reply["status"] == "ACCEPTED", reply)


def test_agent_cbor_report_is_accepted_in_cbor(server):
    payload = collect_agent_metrics(short_names=True).to_cbor()
    sent = cbor2.loads(payload)
    topic, reply = publish_report(server, "agent-cbor", payload, encoding="cbor")
    check(topic == "$aws/things/agent-cbor/defender/metrics/cbor/accepted", f"{topic}: {reply}")
    check(reply["reportId"] == sent["hed"]["rid"], reply)
    check(reply["status"] == "ACCEPTED", reply)


def test_agent_report_values_are_stored_as_sent(server):
    retain_agent_metrics(server)
    for thing, short_names in (("agent-stored-long", False), ("agent-stored-short", True)):
        # An open loopback connection gives the report established TCP connections to list.
        with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=TIMEOUT):
            payload = collect_agent_metrics(short_names).to_json_string()
        topic, reply = publish_report(server, thing, payload)
        check(topic == f"$aws/things/{thing}/defender/metrics/json/accepted", f"{topic}: {reply}")
        expected = expected_values(json.loads(payload), short_names)
        check(sorted(expected) == sorted(AGENT_METRICS), sorted(expected))
        check(expected["aws:num-established-tcp-connections"] != [], payload)
        for metric, values in expected.items():
            stored = stored_values(server, thing, metric)
            check(stored == values, f"{thing} {metric}: stored {stored}, sent {values}")


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
