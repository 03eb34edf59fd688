"""The first run: `serve --demo` on the embedded log shows a live fleet: simulated servers with
their inventory in `servers list`, their readings in `sql` and on `/metrics`, and a health change
when a fault is injected into one of them (the simulator's control API), with the fault's ground
truth; the change reaches a webhook receiver once, though the fault shows both in a sensor reading
and in the BMC's SEL."""

import http.server
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request

from conftest import BIN, free_port, stop, wait_http


def cli(env, *args):
    r = subprocess.run([BIN, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def rows(answer):
    return answer["rows"] if isinstance(answer, dict) else answer


class Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: keeps every JSON body POSTed to it."""
    received = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        Hooks.received.append(json.loads(self.rfile.read(n)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def metric_lines(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return [l for l in r.read().decode().splitlines() if l.startswith(name + "{")]


def test_serve_demo_shows_a_live_fleet_and_a_fault_becomes_a_health_change():
    data = tempfile.mkdtemp(prefix="ma-demo-")
    port = free_port()
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    config = os.path.join(data, "config.toml")
    with open(config, "w") as f:
        f.write(f"""
[notify]
retry_base_ms = 50
[[notify.routes]]
name = "oncall"
min_health = "CRITICAL"
recoveries = false
webhook = "http://127.0.0.1:{hooks.server_address[1]}/hook"
""")
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
        "METAL_AUTOMATA_CONFIG": config,
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

        # One notification for the fault: the server's change, not one per sensor or SEL entry.
        deadline = time.time() + 30
        while time.time() < deadline and not Hooks.received:
            time.sleep(0.5)
        time.sleep(6)  # further sensor polls and log polls must not notify again
        sent = [h for h in Hooks.received if h["server_id"] == target]
        assert len(sent) == 1, sent
        assert sent[0]["component_id"] is None and sent[0]["health"] == "CRITICAL", sent

        # /metrics: readings as hw_* gauges, health as hw_status (1 on the current state).
        assert any(f'server_id="{target}"' in l for l in metric_lines(port, "hw_fan_speed"))
        status = metric_lines(port, "hw_status")
        failed = [l for l in status if f'server_id="{target}"' in l and 'hw_id="server"' in l
                  and 'hw_state="failed"' in l]
        assert failed and failed[0].endswith(" 1"), status[:20]
    finally:
        hooks.shutdown()
        stop(proc, log)
