"""Inventory on real peers: every DMTF mockup served by sushy-tools' sushy-static, sushy-emulator
--fake, and the whole pipeline (simulated fleet -> bmc import -> collector -> inventory processor
-> servers show and component_changes in SQL). Expected values are read from the mockup files
here, independently of the collector."""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from conftest import BIN, free_port, stop, wait_http

VENV_BIN = os.path.dirname(sys.executable)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("MA_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
MOCKUPS = os.path.join(SHARED, "redfish-mockups")


def mockup_dirs():
    if not os.path.isdir(MOCKUPS):
        return []
    return sorted(d for d in os.listdir(MOCKUPS) if d.startswith("public-"))


def load(mockup, uri):
    """A resource of a mockup, by its @odata.id, straight from the files."""
    rel = uri.split("#")[0].removeprefix("/redfish/v1").strip("/")
    path = os.path.join(MOCKUPS, mockup, rel, "index.json")
    with open(path) as f:
        return json.load(f)


def members(mockup, uri):
    try:
        coll = load(mockup, uri)
    except OSError:
        return []
    out = []
    for m in coll.get("Members", []):
        try:
            out.append(load(mockup, m["@odata.id"]))
        except OSError:
            pass
    return out


def run_json(*args, env=None):
    r = subprocess.run([BIN, *args, "--output", "json"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


@pytest.fixture()
def password_file(tmp_path):
    p = tmp_path / "password"
    p.write_text("secret\n")
    return str(p)


def serve_static(mockup):
    port = free_port()
    log = open(os.path.join(tempfile.mkdtemp(prefix="ma-sushy-"), "sushy.log"), "w")
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "sushy-static"), "-i", "127.0.0.1", "-p", str(port), "-m", os.path.join(MOCKUPS, mockup)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/redfish/v1/", proc=proc, log_path=log.name)
    return port, proc, log


@pytest.mark.parametrize("mockup", mockup_dirs())
def test_every_mockup_is_inventoried_with_the_values_in_its_files(mockup, password_file):
    port, proc, log = serve_static(mockup)
    try:
        inv = run_json("bmc", "inventory", f"http://127.0.0.1:{port}", "-u", "admin", "--password-file", password_file)
    finally:
        stop(proc, log)
    systems = members(mockup, "/redfish/v1/Systems")
    assert len(inv["snapshots"]) == len(systems), mockup
    by_serial = {s["system"]["serial"]: s for s in inv["snapshots"]}
    managers = {m["@odata.id"]: m for m in members(mockup, "/redfish/v1/Managers")}
    for sysres in systems:
        snap = by_serial.get(sysres.get("SerialNumber")) if sysres.get("SerialNumber") else None
        if snap is None:
            snap = next(s for s in inv["snapshots"] if s["system"]["product"] == sysres.get("Model"))
        if sysres.get("UUID") and sysres["UUID"].strip("0-"):
            assert snap["server_id"] == sysres["UUID"].lower(), mockup
        elif sysres.get("UUID"):
            assert snap["server_id"].startswith("bmc:"), "a nil UUID is no identity"
        assert snap["system"]["product"] == sysres.get("Model"), mockup
        comps = snap["components"]
        kinds = lambda k: [c for c in comps if c["kind"] == k]  # noqa: E731
        bios = kinds("BIOS")
        assert bios and bios[0]["firmware_version"] == sysres.get("BiosVersion"), mockup
        if "Memory" in sysres:
            dimms = [m for m in members(mockup, sysres["Memory"]["@odata.id"])
                     if m.get("Status", {}).get("State") != "Absent" and m.get("CapacityMiB") != 0]
            assert len(kinds("DIMM")) == len(dimms), f"{mockup}: DIMM count"
        if "Processors" in sysres:
            cpus = [p for p in members(mockup, sysres["Processors"]["@odata.id"])
                    if p.get("Status", {}).get("State") != "Absent"]
            assert len(kinds("CPU")) + len(kinds("GPU")) == len(cpus), f"{mockup}: processor count"
        for link in sysres.get("Links", {}).get("ManagedBy", []):
            m = managers.get(link["@odata.id"])
            if m and m.get("FirmwareVersion"):
                assert any(c["firmware_version"] == m["FirmwareVersion"] for c in kinds("BMC")), f"{mockup}: BMC firmware"
        # Every firmware the BMC lists is somewhere in the inventory (the BIOS component keeps
        # the system's BiosVersion, which may be a longer form of the inventory's string).
        fw_versions = {c["firmware_version"] for c in comps if c["firmware_version"]}
        for entry in members(mockup, "/redfish/v1/UpdateService/FirmwareInventory"):
            # BIOS and BMC versions are checked above against BiosVersion and the Manager.
            if entry.get("Id") in ("BIOS", "BMC"):
                continue
            if len(systems) == 1 and entry.get("Version"):
                assert any(entry["Version"] in v for v in fw_versions), f"{mockup}: firmware {entry.get('Id')}"


def test_rackmount1_concrete_values(password_file):
    port, proc, log = serve_static("public-rackmount1")
    try:
        inv = run_json("bmc", "inventory", f"http://127.0.0.1:{port}", "-u", "admin", "--password-file", password_file)
    finally:
        stop(proc, log)
    (s,) = inv["snapshots"]
    assert s["server_id"] == "38947555-7742-3448-3784-823347823834"
    assert s["system"]["serial"] == "437XR1138R2"
    assert s["system"]["product"] == "3500"
    fw = {c["component_id"]: c["firmware_version"] for c in s["components"]}
    assert fw["bios"] == "P79 v1.45 (12/06/2017)"


def test_sushy_emulator_fake_reports_what_it_cannot_read(tmp_path, password_file):
    (tmp_path / "emu.conf").write_text("SUSHY_EMULATOR_FAKE_DRIVER = True\n")
    port = free_port()
    log = open(tmp_path / "emu.log", "w")
    env = dict(os.environ, SUSHY_EMULATOR_STATE_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "sushy-emulator"), "--fake", "-i", "127.0.0.1", "-p", str(port), "--config", str(tmp_path / "emu.conf")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/redfish/v1/", proc=proc, log_path=str(tmp_path / "emu.log"))
        inv = run_json("bmc", "inventory", f"http://127.0.0.1:{port}", "-u", "admin", "--password-file", password_file, "--timeout", "5")
    finally:
        stop(proc, log)
    (s,) = inv["snapshots"]
    assert len(s["server_id"]) == 36
    # Its Storage answers 500 and its FirmwareInventory 404: said, not fatal.
    assert any("Storage" in e for e in s["errors"]), s["errors"]
    assert any(c["kind"] == "NIC" for c in s["components"])


def _port_free(port):
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def api(base, path, body=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def test_fleet_inventory_through_the_pipeline(service, tmp_path):
    """simulate -> bmc import -> collector -> inventory.snapshots -> inventory processor ->
    servers show; a firmware update on one BMC becomes a firmware_changed row in SQL."""
    out = tmp_path / "sim"
    control = free_port()
    for _ in range(20):
        first = free_port()
        if all(_port_free(first + i) for i in range(3)):
            break
    log = open(tmp_path / "sim.log", "w")
    sim = subprocess.Popen(
        [BIN, "simulate", "--servers", "3", "--seed", "11", "--port-per-server", "--listen", f"127.0.0.1:{first}",
         "--control", f"127.0.0.1:{control}", "--update-time", "1s", "--power-delay", "1s", "--out", str(out)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    env = dict(service["env"], METAL_AUTOMATA_SERVER=service["url"])
    try:
        wait_http(f"http://127.0.0.1:{control}/simulator/v1/fleet", proc=sim, log_path=str(tmp_path / "sim.log"))
        fleet = json.loads((out / "bmcs.json").read_text())
        run_json("bmc", "import", str(out / "bmcs.json"), env=env)
        ids = {b["server_id"] for b in fleet["bmcs"]}
        addresses = {b["server_id"]: b["address"] for b in fleet["bmcs"]}
        deadline = time.time() + 90
        while time.time() < deadline:
            servers = {s["server_id"]: s for s in run_json("servers", "list", env=env)["servers"]}
            # The same seed gives the same UUIDs: wait for this run's BMCs, not an earlier run's.
            if ids <= servers.keys() and all(servers[i]["component_count"] > 0
                                               and servers[i]["bmc_address"] == addresses[i] for i in ids):
                break
            time.sleep(1)
        else:
            pytest.fail(f"servers did not appear: {servers.keys()} vs {ids}")
        bmcs = run_json("bmc", "list", env=env)["bmcs"]
        assert len(bmcs) == 3 and all(b["status"]["last_error"] is None for b in bmcs), bmcs
        # Credentials never leave the registry: not in the API's answers, not in the topics' SQL.
        assert "simulated" not in json.dumps(bmcs)
        target = fleet["bmcs"][0]
        shown = run_json("servers", "show", target["server_id"], env=env)
        assert shown["bmc_address"] == target["address"]
        comps = shown["components"]
        assert {c["kind"] for c in comps} >= {"cpu", "dimm", "bios", "bmc", "psu"}
        before = {c["component_id"]: c["firmware_version"] for c in comps}
        # Update one BMC's firmware through DMTF's own client, then collect again.
        image = tmp_path / "ss_9.99.bin"
        image.write_bytes(b"version=9.99\n" + b"\0" * 4096)
        r = subprocess.run([os.path.join(VENV_BIN, "rf_update.py"), "-r", target["address"], "-u", fleet["username"],
                            "-p", "simulated", "-i", str(image)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.time() + 90
        rows = []
        while time.time() < deadline:
            run_json("bmc", "collect", env=env)
            time.sleep(2)
            rows = run_json("sql", f"SELECT component_id, change, \"before\", \"after\" FROM component_changes "
                                   f"WHERE server_id = '{target['server_id']}'", env=env)
            rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
            if any(r["change"] == "firmware_changed" for r in rows):
                break
        changed = [r for r in rows if r["change"] == "firmware_changed"]
        assert changed, rows
        c = changed[0]
        assert before.get(c["component_id"]) == c["before"] and c["after"] != c["before"], (c, before)
        secrets = run_json("sql", "SELECT count(*) AS n FROM raw.inventory_snapshots "
                                  "WHERE array_to_string(errors, ' ') LIKE '%simulated%'", env=env)
        secrets = secrets.get("rows", secrets) if isinstance(secrets, dict) else secrets
        assert secrets[0]["n"] == 0
    finally:
        stop(sim, log)


def test_self_signed_tls_is_refused_unless_pinned_or_waived(tmp_path, password_file):
    """sushy-static over HTTPS with a self-signed certificate: refused by default, accepted with
    its pin (as openssl prints the fingerprint) or with --insecure, refused with a wrong pin."""
    key, cert = tmp_path / "bmc.key", tmp_path / "bmc.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bmc.test",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    fp = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                        check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    port = free_port()
    log = open(tmp_path / "sushy.log", "w")
    proc = subprocess.Popen(
        [os.path.join(VENV_BIN, "sushy-static"), "-i", "127.0.0.1", "-p", str(port), "-m",
         os.path.join(MOCKUPS, "public-rackmount1"), "-c", str(cert), "-k", str(key)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    addr = f"https://127.0.0.1:{port}"
    inv = [BIN, "bmc", "inventory", addr, "-u", "admin", "--password-file", password_file, "--output", "json"]
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            r = subprocess.run([BIN, "bmc", "fingerprint", addr, "--output", "json"], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.3)
        assert json.loads(r.stdout)["sha256"] == fp.replace(":", "").lower()
        refused = subprocess.run(inv, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "certificate" in refused.stdout.lower(), refused.stdout
        pinned = subprocess.run(inv + ["--pin", fp], capture_output=True, text=True, timeout=60)
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr
        assert json.loads(pinned.stdout)["snapshots"][0]["system"]["serial"] == "437XR1138R2"
        wrong = subprocess.run(inv + ["--pin", "00" * 32], capture_output=True, text=True, timeout=60)
        assert wrong.returncode != 0 and "pinned" in wrong.stdout, wrong.stdout
        waived = subprocess.run(inv + ["--insecure"], capture_output=True, text=True, timeout=60)
        assert waived.returncode == 0, waived.stdout + waived.stderr
    finally:
        stop(proc, log)


def test_the_agent_publishes_this_machine_to_the_service(service, tmp_path):
    """`agent` on this machine -> HTTP ingest -> inventory processor -> servers show; the CPU model
    and the NIC MACs are checked against /proc/cpuinfo and /sys/class/net, read here."""
    once = run_json("agent", "--once")
    sid = once["server_id"]
    assert sid
    with open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    cpus = [c for c in once["components"] if c["kind"] == "CPU"]
    assert cpus and all(c["model"] == model for c in cpus), cpus
    macs = set()
    for n in os.listdir("/sys/class/net"):
        if os.path.exists(f"/sys/class/net/{n}/device"):
            with open(f"/sys/class/net/{n}/address") as f:
                macs.add(f.read().strip())
    got = {c["properties"].get("mac") for c in once["components"] if c["kind"] == "NIC"}
    assert macs <= got, (macs, got)

    env = dict(service["env"], METAL_AUTOMATA_SERVER=service["url"])
    log = open(tmp_path / "agent.log", "w")
    agent = subprocess.Popen([BIN, "agent", "--interval", "5"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        shown = None
        while time.time() < deadline:
            r = subprocess.run([BIN, "servers", "show", sid, "--output", "json"], env=env, capture_output=True, text=True)
            if r.returncode == 0:
                shown = json.loads(r.stdout)
                if any(c["source"] == "agent" for c in shown.get("components", [])):
                    break
            time.sleep(1)
        assert shown and any(c["source"] == "agent" and c["kind"] == "cpu" for c in shown["components"]), shown
    finally:
        stop(agent, log)


@pytest.mark.parametrize("mockup", ["public-rackmount1", "public-liquid-cooled-server", "public-telemetry"])
def test_sensors_of_the_mockups_with_the_values_in_their_files(mockup, password_file):
    """`bmc sensors` on the mockups that carry Power, Thermal and Sensors (issue 5's peers):
    every Sensor resource with a numeric Reading comes back with its value."""
    if mockup not in mockup_dirs():
        pytest.skip(f"{mockup} is not in {MOCKUPS}")
    port, proc, log = serve_static(mockup)
    try:
        got = run_json("bmc", "sensors", f"http://127.0.0.1:{port}", "-u", "admin", "--password-file", password_file)
    finally:
        stop(proc, log)
    readings = got["readings"]
    assert readings, got["errors"]
    values = {(r["sensor_id"].split(".", 2)[1], r["sensor_id"].split(".", 2)[2]): r for r in readings}
    expected = 0
    for ch in members(mockup, "/redfish/v1/Chassis"):
        if "Sensors" not in ch:
            continue
        for s in members(mockup, ch["Sensors"]["@odata.id"]):
            if isinstance(s.get("Reading"), (int, float)) and not isinstance(s.get("Reading"), bool):
                expected += 1
                r = values.get((ch["Id"], s["Id"]))
                assert r is not None, f"{mockup}: {ch['Id']}/{s['Id']} missing"
                if s.get("ReadingUnits") in ("Cel", "W", "V", "A", "RPM"):
                    assert abs(r["value"] - s["Reading"]) < 1e-9, (r, s["Reading"])
    if expected == 0:
        # Legacy Power/Thermal only: the consumed power is there.
        assert any(r["kind"] == "POWER" for r in readings)
