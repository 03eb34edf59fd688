"""The Redfish fleet simulator against DMTF's own tools: the Service Validator and the
redfish-utilities scripts (rf_power_reset, rf_bios_settings, rf_update, rf_sensor_list, rf_sel).
They are the fair judges: written by DMTF for real BMCs, not shaped to our client."""

import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from conftest import BIN, free_port, stop, wait_http

VENV_BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("MA_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
CSDL = os.path.join(SHARED, "redfish-schemas", "csdl")
USER, PASSWORD = "admin", "simulated"


def tool(name):
    return os.path.join(VENV_BIN, name)


@pytest.fixture(scope="module")
def fleet():
    """`metal-automata simulate` with three BMCs, one port each, quick power and updates."""
    out = tempfile.mkdtemp(prefix="ma-sim-")
    control = free_port()
    # Three consecutive free ports: try a few bases.
    for _ in range(20):
        first = free_port()
        if all(_port_free(first + i) for i in range(3)):
            break
    cmd = [
        BIN, "simulate", "--servers", "3", "--seed", "7", "--port-per-server",
        "--listen", f"127.0.0.1:{first}", "--control", f"127.0.0.1:{control}",
        "--power-delay", "1s", "--update-time", "2s", "--out", out, "--output", "json",
    ]
    log_path = os.path.join(out, "simulate.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{control}/simulator/v1/fleet", proc=proc, log_path=log_path)
        with open(os.path.join(out, "bmcs.json")) as f:
            info = json.load(f)
        yield info | {"out": out, "proc": proc}
    finally:
        stop(proc, log)


def _port_free(port):
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def redfish(bmc, path, method="GET", body=None):
    req = urllib.request.Request(bmc["address"] + path, method=method)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
        req.data = json.dumps(body).encode()
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def run(args, timeout=120):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args[0]} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def rf(bmc, script, *args, timeout=120):
    return run([tool(script), "-u", USER, "-p", PASSWORD, "-r", bmc["address"], *args], timeout=timeout)


def wait(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def system(bmc):
    return redfish(bmc, "/redfish/v1/Systems")["Members"][0]["@odata.id"]


def test_the_service_validator_finds_no_failure(fleet, tmp_path):
    if not os.path.isdir(CSDL):
        pytest.fail(f"no Redfish schemas at {CSDL} (../shared beside the clone)")
    schemas = tmp_path / "csdl"
    shutil.copytree(CSDL, schemas)  # the validator writes fetched schemas into it
    bmc = fleet["bmcs"][0]
    p = subprocess.run(
        [
            tool("rf_service_validator"), "-r", bmc["address"], "-u", USER, "-p", PASSWORD,
            "--authtype", "Session", "--schema_directory", str(schemas),
            "--logdir", str(tmp_path / "logs"), "--timeout", "10",
        ],
        capture_output=True, text=True, timeout=600,
    )
    table = p.stdout[p.stdout.rfind("+--"):] if "+--" in p.stdout else p.stdout[-2000:]
    print(p.stdout[p.stdout.find("|     PASS"):][:400])
    counts = re.search(r"\|\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\d+)\s+\|", p.stdout)
    assert counts, f"no summary table in the validator's output:\n{table}\n{p.stderr[-2000:]}"
    passed, warned, failed, _ = map(int, counts.groups())
    assert failed == 0, f"validator FAIL {failed} (see {tmp_path}/logs):\n{p.stdout[-4000:]}"
    assert passed > 5000
    assert p.returncode == 0


def test_power_reset_with_rf_power_reset(fleet):
    bmc = fleet["bmcs"][1]
    sys_uri = system(bmc)
    assert redfish(bmc, sys_uri)["PowerState"] == "On"
    rf(bmc, "rf_power_reset.py", "-t", "ForceOff")
    wait(lambda: redfish(bmc, sys_uri)["PowerState"] == "Off", "power off")
    rf(bmc, "rf_power_reset.py", "-t", "On")
    assert redfish(bmc, sys_uri)["PowerState"] in ("PoweringOn", "On")
    wait(lambda: redfish(bmc, sys_uri)["PowerState"] == "On", "power on")


def test_bios_settings_apply_at_the_next_reset(fleet):
    bmc = fleet["bmcs"][2]
    sys_uri = system(bmc)
    before = rf(bmc, "rf_bios_settings.py")
    assert "ProcTurboMode" in before
    rf(bmc, "rf_bios_settings.py", "-a", "ProcTurboMode", "Disabled")
    assert redfish(bmc, sys_uri + "/Bios")["Attributes"]["ProcTurboMode"] == "Enabled"
    rf(bmc, "rf_power_reset.py", "-t", "ForceRestart")
    wait(
        lambda: redfish(bmc, sys_uri + "/Bios")["Attributes"]["ProcTurboMode"] == "Disabled",
        "the setting to apply at reset",
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_firmware_updates_with_rf_update(fleet, tmp_path):
    bmc = fleet["bmcs"][0]
    inventory = "/redfish/v1/UpdateService/FirmwareInventory/SS"
    # Pushed in the request (MultipartHttpPushUri).
    image = tmp_path / "ss_2.60.bin"
    image.write_bytes(b"version=2.60\n" + b"\0" * 4096)
    rf(bmc, "rf_update.py", "-i", str(image))
    assert redfish(bmc, inventory)["Version"] == "2.60"
    # Pulled by the BMC from a URL (SimpleUpdate), from a plain HTTP server.
    (tmp_path / "ss_2.61.bin").write_bytes(b"\x7fELF" + b"\1" * 4096)
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ss_2.61.bin"
        rf(bmc, "rf_update.py", "-i", url, "-t", inventory)
        assert redfish(bmc, inventory)["Version"] == "2.61"
    finally:
        server.shutdown()


def test_sensors_and_an_injected_fault_with_its_ground_truth(fleet):
    bmc = fleet["bmcs"][1]
    sensors = rf(bmc, "rf_sensor_list.py")
    assert "Temp" in sensors and " W " in sensors
    req = urllib.request.Request(
        fleet["control"] + "/simulator/v1/faults",
        data=json.dumps({"server": 1, "kind": "disk-predicted-failure"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        truth = json.loads(r.read())
    assert truth["server_id"] == bmc["server_id"]
    uri, _, pointer = truth["component"].partition("#")
    disk = redfish(bmc, uri)
    for part in filter(None, pointer.split("/")):
        disk = disk[int(part)] if isinstance(disk, list) else disk[part]
    assert disk["Status"]["Health"] == "Warning"
    if not pointer:
        assert disk["FailurePredicted"] is True
    sel = rf(bmc, "rf_sel.py")
    assert "predicts its failure" in sel
    with open(fleet["ground_truth"]) as f:
        lines = [json.loads(line) for line in f]
    assert any(t["id"] == truth["id"] and t["kind"] == "disk-predicted-failure" for t in lines)


def test_wrong_credentials_are_refused(fleet):
    bmc = fleet["bmcs"][0]
    p = subprocess.run(
        [tool("rf_sensor_list.py"), "-u", USER, "-p", "wrong", "-r", bmc["address"]],
        capture_output=True, text=True, timeout=60,
    )
    assert p.returncode != 0
