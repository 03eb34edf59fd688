"""Shared fixtures: a running `metal-automata serve` against the test Kafka broker."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

BIN = os.environ.get("MA_TEST_BIN", "metal-automata")
KAFKA = os.environ.get("MA_TEST_KAFKA")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair():
    """Two free neighbouring ports, p and p + 1 (swtpm's TCTI finds the control port at p + 1)."""
    for _ in range(100):
        p = free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no two neighbouring free ports")


def tail(path, lines=40):
    """The end of a service's log, so that a failed start explains itself in the test output."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def wait_http(url, timeout=60, proc=None, log_path=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            detail = f"\n--- {log_path} ---\n{tail(log_path)}" if log_path else ""
            raise RuntimeError(f"service exited with {proc.returncode}{detail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
            time.sleep(0.2)
    raise TimeoutError(f"{url} not ready: {last}")


def stop(proc, log):
    """Stops a process the tests started (SIGTERM, then SIGKILL after 20 s) and closes its log."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def kafka_brokers():
    if not KAFKA:
        if os.environ.get("CI"):
            pytest.fail("MA_TEST_KAFKA must be set under CI")
        pytest.skip("no test Kafka broker (scripts/test.sh starts one)")
    return KAFKA


@pytest.fixture(scope="session")
def service(kafka_brokers):
    """`metal-automata serve` on Kafka, every role, API on a free loopback port."""
    data = tempfile.mkdtemp(prefix="ma-py-")
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "METAL_AUTOMATA_DATA_DIR": data,
            "METAL_AUTOMATA_LOG__BACKEND": "kafka",
            "METAL_AUTOMATA_LOG__KAFKA__BROKERS": kafka_brokers,
            "METAL_AUTOMATA_LOG__KAFKA__REPLICATION_FACTOR": "1",
            "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{port}",
            "METAL_AUTOMATA_COLLECTOR__INTERVAL_SECS": "1",
        }
    )
    log_path = os.path.join(data, "serve.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/api/v1/status", proc=proc, log_path=log_path)
        yield {"url": base, "data": data, "proc": proc, "env": env}
    finally:
        stop(proc, log)
