"""Start `vigil serve` on a free loopback port for the AWS client tests, and reach it.

The server gets its own data folder and a shared-credentials file with a random key. The
clients (the AWS CLI, boto3 and raw signed requests) read the same file, so no credentials from
the environment or from an instance metadata service are ever used.
"""

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "target" / "release" / "vigil"
REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"

# Seconds to wait for the first line of `vigil serve`, which names the port.
START_TIMEOUT = 60

# Environment variables that would make an AWS client use other credentials, another profile
# or a proxy instead of the files and the endpoint given here.
CLIENT_VARIABLES_TO_DROP = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_IOT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def vigil_binary():
    """Return the `vigil` binary named by `VIGIL_BIN`, else the release build."""
    binary = Path(os.environ.get("VIGIL_BIN", DEFAULT_BINARY))
    if not binary.is_file():
        sys.exit(
            f"error: `{binary}` is missing; build it with `cargo xtask build` "
            "or point VIGIL_BIN at a `vigil` binary"
        )
    return binary


def _exit_with_parent():
    """Ask Linux to send SIGTERM to the server when the test process dies, even by SIGKILL."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class VigilServer:
    """One `vigil serve` process with its own data folder and credentials file.

    Use it as a context manager: leaving the block stops the server and removes the folder.
    """

    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)
        self.workdir = Path(tempfile.mkdtemp(prefix="vigil-aws-test-"))
        self.data_dir = self.workdir / "data"
        self.credentials_file = self.workdir / "credentials"
        self.config_file = self.workdir / "config"
        self.stdout_path = self.workdir / "serve.stdout"
        self.stderr_path = self.workdir / "serve.stderr"
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.process = None
        self.endpoint = None
        self.start_wall_time = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        self.data_dir.mkdir()
        self.credentials_file.write_text(
            "[default]\n"
            f"aws_access_key_id = {self.access_key}\n"
            f"aws_secret_access_key = {self.secret_key}\n"
        )
        self.config_file.write_text(f"[default]\nregion = {REGION}\noutput = json\n")

        command = [
            str(vigil_binary()),
            "serve",
            "--port",
            "0",
            "--data",
            str(self.data_dir),
            "--credentials",
            str(self.credentials_file),
            "--region",
            REGION,
            *self.extra_args,
        ]
        print("$ " + " ".join(command), flush=True)
        self.start_wall_time = time.time()
        with open(self.stdout_path, "wb") as stdout, open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                preexec_fn=_exit_with_parent,
            )
        self.endpoint = self._wait_for_address()
        print(f"vigil serve is listening on {self.endpoint}", flush=True)

    def _wait_for_address(self):
        """Read the port from the first stdout line, `vigil serve: listening on http://...`."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            first_line = self.stdout_path.read_text(errors="replace").partition("\n")
            if first_line[1]:
                match = re.search(r"http://(127\.0\.0\.1|\[::1\]):(\d+)", first_line[0])
                if not match:
                    self.stop()
                    raise RuntimeError(
                        f"`vigil serve` printed {first_line[0]!r} instead of its address"
                    )
                return f"http://{match.group(1)}:{match.group(2)}"
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"`vigil serve` exited with {self.process.returncode} before listening; "
                    f"its stderr:\n{self.server_log()}"
                )
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"`vigil serve` printed no address within {START_TIMEOUT} s")

    def stop(self):
        """Stop the server (SIGINT, then SIGKILL after 10 s) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            # `vigil serve` shuts down gracefully on SIGINT, as on Ctrl-C.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def server_log(self, last_lines=40):
        """Return the last lines of the server's stderr, for failure messages."""
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no stderr file)"
        return "\n".join(lines[-last_lines:])

    def client_env(self):
        """Return the environment for an AWS CLI process that talks to this server only."""
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in CLIENT_VARIABLES_TO_DROP
        }
        env.update(
            AWS_SHARED_CREDENTIALS_FILE=str(self.credentials_file),
            AWS_CONFIG_FILE=str(self.config_file),
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            NO_PROXY="127.0.0.1,localhost,::1",
        )
        return env

    def boto3_client(self, validate_parameters=True, secret_key=None):
        """Return a boto3 `iot` client for this server that never retries a request.

        With `validate_parameters=False`, botocore sends out-of-range values as they are, so
        the server's own input checks can be tested. `secret_key` replaces the real one.
        """
        config = botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=validate_parameters,
        )
        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
        ).client("iot", endpoint_url=self.endpoint, config=config)

    def sign(self, method, path, body=None, secret_key=None, access_key=None):
        """Sign a request for service `iot` with SigV4 and return `(url, body bytes, headers)`.

        `secret_key` and `access_key` replace the real ones, to test rejected signatures.
        """
        credentials = botocore.credentials.Credentials(
            access_key or self.access_key, secret_key or self.secret_key
        )
        data = None if body is None else json.dumps(body).encode()
        request = botocore.awsrequest.AWSRequest(
            method=method,
            url=self.endpoint + path,
            data=data,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        botocore.auth.SigV4Auth(credentials, "iot", REGION).add_auth(request)
        prepared = request.prepare()
        return prepared.url, prepared.body, dict(prepared.headers)

    def signed_request(self, method, path, body=None, secret_key=None, access_key=None):
        """Send a SigV4-signed request with urllib and return `(status, headers, body bytes)`."""
        url, data, headers = self.sign(method, path, body, secret_key, access_key)
        return self.raw_request(method, url, data, headers)

    def raw_request(self, method, url, body=None, headers=None):
        """Send a request exactly as given and return `(status, headers, body bytes)`."""
        if not url.startswith("http"):
            url = self.endpoint + url
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def post_datapoints(self, datapoints):
        """Feed datapoints through the `/vigil/datapoints` extension and return its JSON reply."""
        status, _, body = self.signed_request(
            "POST", "/vigil/datapoints", body={"datapoints": datapoints}
        )
        if status != 200:
            raise AssertionError(f"POST /vigil/datapoints returned {status}: {body!r}")
        return json.loads(body)
