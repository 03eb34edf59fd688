"""The first run: `serve --demo` on the embedded log shows a live fleet: simulated servers with
their inventory in `servers list`, their readings in `sql`, and a health change when a fault is
injected into one of them (the simulator's control API), with the fault's ground truth."""

import json
import os
import subprocess
import tempfile
import time
import urllib.request

from conftest import BIN, free_port, stop, wait_http


def cli(env, *args):
    r = subprocess.run([BIN, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def rows(answer):
    return answer["rows"] if isinstance(answer, dict) else answer


def test_serve_demo_shows_a_live_fleet_and_a_fault_becomes_a_health_change():
    data = tempfile.mkdtemp(prefix="ma-demo-")
    port = free_port()
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("METAL_AUTOMATA_"):
            del env[k]
    env.update({
        "METAL_AUTOMATA_DATA_DIR": data,
        "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{port}",
        "METAL_AUTOMATA_COLLECTOR__BMC_SENSOR_SECS": "2",
        "METAL_AUTOMATA_HISTORY__MAX_AGE_SECS": "2",
        "METAL_AUTOMATA_SERVER": f"http://127.0.0.1:{port}",
    })
    log_path = os.path.join(data, "serve.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve", "--demo", "--demo-servers", "3"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/status", proc=proc, log_path=log_path)
        fleet = json.load(open(os.path.join(data, "demo", "bmcs.json")))
        ids = [b["server_id"] for b in fleet["bmcs"]]
        deadline = time.time() + 90
        while time.time() < deadline:
            servers = {s["server_id"]: s for s in cli(env, "servers", "list")["servers"]}
            if all(servers.get(i, {}).get("component_count", 0) > 0 for i in ids):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the demo servers have no inventory: {list(servers)}")
        deadline = time.time() + 60
        while time.time() < deadline:
            got = rows(cli(env, "sql", "SELECT count(DISTINCT server_id) AS n FROM telemetry WHERE sensor LIKE 'redfish.%'"))
            if got and got[0]["n"] >= 3:
                break
            time.sleep(1)
        else:
            raise AssertionError("no Redfish readings from the demo fleet")
        # Inject a fan failure into server 0 and wait for the health change it causes.
        body = json.dumps({"server": 0, "kind": "fan-failure"}).encode()
        req = urllib.request.Request(f"{fleet['control']}/simulator/v1/faults", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            truth = json.loads(r.read())
        target = ids[0]
        deadline = time.time() + 90
        events = []
        while time.time() < deadline:
            events = rows(cli(env, "sql", "SELECT component_id, health, classification, message FROM health_events "
                                          f"WHERE server_id = '{target}' AND health = 'critical'"))
            if events:
                break
            time.sleep(1)
        assert events, f"no health change after {truth}"
        assert any(e["classification"] == "fan-failure" for e in events), events
        others = rows(cli(env, "sql", "SELECT count(*) AS n FROM health_events WHERE health = 'critical' "
                                      f"AND server_id <> '{target}' AND classification = 'fan-failure'"))
        assert others[0]["n"] == 0
    finally:
        stop(proc, log)
