"""Run the AWS client tests of this folder against `vigil serve`, each in its own process.

Run it with the Python of `target/venv`, which has the pinned AWS CLI and boto3
(`cargo xtask test` creates it and runs this). `VIGIL_BIN` names the `vigil` binary, by default
`target/release/vigil`. Each script ends with a line `NAME: N passed, N failed`, and this runner
ends with the sums.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("boto3_test.py", "guide_test.py")
SUMMARY = re.compile(r"^\w+: (\d+) passed, (\d+) failed")


def run_script(script):
    """Run one script, echo its output, and return `(passed, failed, exit code)`."""
    print(f"--- {script}", flush=True)
    started = time.monotonic()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(HERE / script)],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    counts = None
    for line in process.stdout:
        print(line, end="", flush=True)
        match = SUMMARY.match(line)
        if match:
            counts = int(match.group(1)), int(match.group(2))
    code = process.wait()
    print(f"--- {script}: exit code {code} after {time.monotonic() - started:.0f} s")
    if counts is None:
        # The script stopped before its summary, so count it as one failure.
        counts = 0, 1
    return counts[0], counts[1], code


def main():
    passed = failed = 0
    failed_scripts = []
    for script in SCRIPTS:
        script_passed, script_failed, code = run_script(script)
        passed += script_passed
        failed += script_failed
        if code != 0:
            failed_scripts.append(script)
    if failed_scripts:
        print(f"failed: {', '.join(failed_scripts)}")
    print(f"aws: {passed} passed, {failed} failed")
    return 1 if failed_scripts else 0


if __name__ == "__main__":
    sys.exit(main())
