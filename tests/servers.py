"""Servers the tests start on loopback (TensorBoard, Optuna Dashboard, PostgreSQL) and read back over their APIs.

Each is started on a free port and stopped however the test ends; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def http_server(command: list[str], ready_path: str, port: int) -> Iterator[str]:
    """Start `command` (which listens on `port`), wait until `ready_path` answers, yield the base URL."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(url + ready_path), until=lambda answer: answer is not None, server=server)
        yield url
    finally:
        server.kill()
        server.wait(timeout=30)


def wait_for(probe, until, server: subprocess.Popen | None = None, seconds: float = 60.0):
    """Call `probe` until its answer passes `until`: servers start, then load what they serve, in their own time."""
    deadline = time.monotonic() + seconds
    while True:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"{server.args[0]} exited {server.returncode}: {server.stderr.read()[-3000:]}")
        try:
            answer = probe()
        except OSError:  # not listening yet (URLError is an OSError)
            answer = None
        if answer is not None and until(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer that passes after {seconds:.0f} s; the last: {answer!r}")
        time.sleep(0.5)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post_json(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server in a temporary folder; yields its URL. PostgreSQL refuses to run as root,
    so as root it runs as the `postgres` user. Missing server: a skip here, a failure in CI (.ci/run installs it)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql); CI must run the two-worker test")
        pytest.skip("PostgreSQL is not installed")
    data = Path(tempfile.mkdtemp(prefix="seqlab-pg-"))
    as_owner = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run([*as_owner, bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)
        subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-l", data / "log", "-w", "start",
                        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_owner, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
