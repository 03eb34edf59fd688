"""`metal-automata firmware`: offline scans of the Debian ovmf images, the store's import,
quarantine and release, and the API's artifact list, blob download and event ingest."""

import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import BIN, free_port, stop, wait_http

OVMF = "/usr/share/OVMF"
MS_VARS = os.path.join(OVMF, "OVMF_VARS_4M.ms.fd")
SNAKEOIL_VARS = os.path.join(OVMF, "OVMF_VARS_4M.snakeoil.fd")
CODE = os.path.join(OVMF, "OVMF_CODE_4M.fd")

pytestmark = pytest.mark.skipif(
    not os.path.exists(MS_VARS), reason="Debian package ovmf is not installed"
)


@pytest.fixture()
def env():
    """A private data directory and an API address nobody listens on (the service is down)."""
    data = tempfile.mkdtemp(prefix="ma-fw-")
    e = dict(os.environ)
    e.update(
        {
            "METAL_AUTOMATA_DATA_DIR": data,
            "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{free_port()}",
            "XDG_CONFIG_HOME": os.path.join(data, "config"),
        }
    )
    e.pop("METAL_AUTOMATA_SERVER", None)
    e.pop("METAL_AUTOMATA_CONFIG", None)
    return e


def ma(env, *args, check=True):
    p = subprocess.run(
        [BIN, *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"{args} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    return p


def ma_json(env, *args):
    return json.loads(ma(env, "--output", "json", *args).stdout)


def rule_ids(report):
    return {f["rule_id"] for f in report["findings"]}


def test_scan_ms_varstore_lists_the_2011_only_findings(env):
    report = ma_json(env, "firmware", "scan", MS_VARS)
    ids = rule_ids(report)
    assert {"SB-KEK-001", "SB-DB-001", "SB-DB-002", "SB-DBX-001"} <= ids, ids
    assert "SB-PK-001" not in ids
    assert report["sha256"] and report["size"] == os.path.getsize(MS_VARS)
    assert report["secure_boot"], "the variable store's summary is missing"


def test_scan_table_output_exits_zero_with_findings(env):
    p = ma(env, "firmware", "scan", MS_VARS)
    assert "SB-KEK-001" in p.stdout
    assert "finding(s)" in p.stdout


def test_scan_truncated_code_reports_fw_fmt_001(env, tmp_path):
    with open(CODE, "rb") as f:
        data = f.read()
    cut = tmp_path / "OVMF_CODE_4M.truncated.fd"
    cut.write_bytes(data[: len(data) // 2])
    report = ma_json(env, "firmware", "scan", str(cut))
    assert "FW-FMT-001" in rule_ids(report)
    fmt = [f for f in report["findings"] if f["rule_id"] == "FW-FMT-001"]
    assert all("offset" in f["evidence"] for f in fmt)


def test_scan_of_a_missing_file_fails(env, tmp_path):
    p = ma(env, "firmware", "scan", str(tmp_path / "nope.fd"), check=False)
    assert p.returncode != 0
    assert "nope.fd" in p.stderr


def test_import_quarantines_snakeoil_and_release_lifts_it(env, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for f in (SNAKEOIL_VARS, MS_VARS):
        (src / os.path.basename(f)).write_bytes(open(f, "rb").read())
    p = ma(env, "--output", "json", "firmware", "import", str(src))
    imported = {
        os.path.basename(r["file"]): r for r in json.loads(p.stdout)["imported"]
    }
    snake = imported["OVMF_VARS_4M.snakeoil.fd"]
    ms = imported["OVMF_VARS_4M.ms.fd"]
    assert snake["ok"] and ms["ok"]
    assert "SB-PK-001" in snake["rule_ids"]
    assert snake["max_severity"] == "critical"
    assert snake["quarantined"]
    assert snake["quarantine_reason"].startswith("critical finding SB-PK-001")
    assert not ms["quarantined"]
    # The service is down: the events are skipped with a warning, the import still succeeds.
    assert p.returncode == 0

    ls = ma_json(env, "firmware", "ls")["artifacts"]
    by_sha = {m["sha256"]: m for m in ls}
    assert set(by_sha) == {snake["sha256"], ms["sha256"]}
    assert all(m["integrity"] == "unverified" for m in ls)
    assert by_sha[snake["sha256"]]["quarantine"]["by"] == "scanner"
    table = ma(env, "firmware", "ls").stdout
    assert "unverified" in table and snake["sha256"] in table

    # Release needs a reason.
    assert ma(env, "firmware", "release", snake["sha256"], check=False).returncode != 0
    released = ma_json(
        env, "firmware", "release", snake["sha256"], "--reason", "lab image, test keys expected"
    )
    assert released.get("quarantine") is None
    log = released["quarantine_log"]
    assert [e["action"] for e in log] == ["quarantine", "release"]
    assert log[-1]["reason"] == "lab image, test keys expected"

    # A rescan does not quarantine a finding the operator released.
    ma(env, "firmware", "rescan", "--all")
    shown = ma_json(env, "firmware", "show", snake["sha256"])
    assert shown.get("quarantine") is None
    assert shown["last_scan"]["rule_pack"]["version"]

    findings = ma_json(env, "firmware", "findings", "--rule", "SB-PK-001")["findings"]
    assert {f["sha256"] for f in findings} == {snake["sha256"]}


def test_an_installed_rule_pack_is_used_and_gc_removes_only_orphans(env, tmp_path):
    assert ma_json(env, "firmware", "rules", "show")["installed"] is False
    # An operator pack that lists Microsoft's KEK CA 2011 as a leaked key, for the sake of it.
    pem = os.path.join(os.path.dirname(__file__), "..", "..", "simulator", "secureboot", "ms-kek-2011.pem")
    fp = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha1"],
                        check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    pack = tmp_path / "pack.json"
    pack.write_text(json.dumps({"version": "lab-1", "test_keys": [
        {"sha1": fp.replace(":", ""), "name": "lab: pretend the 2011 KEK leaked"}]}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 3}')
    assert ma(env, "firmware", "rules", "update", str(bad), check=False).returncode != 0
    assert ma_json(env, "firmware", "rules", "update", str(pack))["version"] == "lab-1"
    assert ma_json(env, "firmware", "rules", "show")["installed"] is True
    report = ma_json(env, "firmware", "scan", MS_VARS)
    assert "SB-PK-001" in rule_ids(report)
    assert {f["rule_pack"] for f in report["findings"]} == {"lab-1"}

    # gc: a blob without a manifest goes, an imported one stays.
    sha = ma_json(env, "firmware", "import", MS_VARS)["imported"][0]["sha256"]
    orphan = "ab" * 32
    store = os.path.join(env["METAL_AUTOMATA_DATA_DIR"], "firmware")
    path = os.path.join(store, "blobs", "sha256", "ab", "ab", orphan)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"left by a crashed writer")
    assert ma_json(env, "firmware", "gc")["orphan_blobs"] == []  # younger than 24 h
    assert ma_json(env, "firmware", "gc", "--older-than", "0s", "--dry-run")["orphan_blobs"] == [orphan]
    assert os.path.exists(path)
    assert ma_json(env, "firmware", "gc", "--older-than", "0s")["orphan_blobs"] == [orphan]
    assert not os.path.exists(path)
    assert [a["sha256"] for a in ma_json(env, "firmware", "ls")["artifacts"]] == [sha]


def test_operator_yara_rules_are_checked_installed_used_and_removed(env, tmp_path):
    marker = b"lab-yara-marker-5c1e"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\0" * 100 + marker + b"\0" * 100)
    assert "YARA-LabMarker" not in rule_ids(ma_json(env, "firmware", "scan", str(blob)))

    bad = tmp_path / "bad.yar"
    bad.write_text("rule Bad { condition: $nope }")
    p = ma(env, "firmware", "rules", "update", str(bad), check=False)
    assert p.returncode != 0 and "bad.yar" in p.stderr, p.stderr

    rules = tmp_path / "site-rules"
    rules.mkdir()
    (rules / "lab.yar").write_text(
        'rule LabMarker { meta: severity = "critical" description = "lab marker" '
        'strings: $a = "lab-yara-marker-5c1e" condition: $a }'
    )
    (rules / "notes.txt").write_text("not a rule")
    out = ma_json(env, "firmware", "rules", "update", str(rules))
    assert out["installed_yara"] == ["lab.yar"]
    assert "+yara-" in out["version"]
    shown = ma_json(env, "firmware", "rules", "show")
    assert shown["installed"] is False and shown["operator_yara"] == ["lab.yar"]
    assert "lab.yar" in shown["yara_files"] and "private_keys.yar" in shown["yara_files"]
    assert shown["version"] == out["version"]

    report = ma_json(env, "firmware", "scan", str(blob))
    hits = [f for f in report["findings"] if f["rule_id"] == "YARA-LabMarker"]
    assert len(hits) == 1, report["findings"]
    assert hits[0]["severity"] == "critical" and hits[0]["subject"] == "lab marker"
    assert hits[0]["evidence"] == {
        "container_path": "/",
        "offset": 100,
        "detail": "lab.yar: rule LabMarker pattern $a",
    }
    assert report["rule_pack"] == shown["version"]
    imported = ma_json(env, "firmware", "import", str(blob))["imported"][0]
    assert imported["quarantined"] and "YARA-LabMarker" in imported["rule_ids"]

    # A file dropped into the directory by hand that does not compile stops scans, named.
    yara_dir = os.path.join(env["METAL_AUTOMATA_DATA_DIR"], "firmware", "yara")
    assert sorted(os.listdir(yara_dir)) == ["lab.yar"]
    with open(os.path.join(yara_dir, "broken.yar"), "w") as f:
        f.write("rule {")
    p = ma(env, "firmware", "scan", str(blob), check=False)
    assert p.returncode != 0 and "broken.yar" in p.stderr, p.stderr
    os.remove(os.path.join(yara_dir, "broken.yar"))

    assert ma(env, "firmware", "rules", "remove", "nope.yar", check=False).returncode != 0
    removed = ma_json(env, "firmware", "rules", "remove", "lab.yar")
    assert "+yara-" not in removed["version"]
    assert "YARA-LabMarker" not in rule_ids(ma_json(env, "firmware", "scan", str(blob)))


def test_catalog_add_ls_rm(env):
    ma(env, "firmware", "catalog", "add", "lab", "http://127.0.0.1:9/catalog.json",
       "--format", "generic")
    cats = ma_json(env, "firmware", "catalog", "ls")["catalogs"]
    assert [c["name"] for c in cats] == ["lab"]
    assert cats[0]["format"] == "generic"
    # Nothing listens there: the sync fails and says so, the snapshot is untouched.
    p = ma(env, "firmware", "catalog", "sync", "lab", check=False)
    assert p.returncode != 0
    ma(env, "firmware", "catalog", "rm", "lab")
    assert ma_json(env, "firmware", "catalog", "ls")["catalogs"] == []


@pytest.fixture()
def embedded_service(env):
    """`metal-automata serve --role api` on the embedded log (no Kafka needed)."""
    log_path = os.path.join(env["METAL_AUTOMATA_DATA_DIR"], "serve.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve", "--role", "api"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = "http://" + env["METAL_AUTOMATA_API__LISTEN"]
    try:
        wait_http(base + "/api/v1/status", timeout=120, proc=proc, log_path=log_path)
        yield base
    finally:
        stop(proc, log)


def test_api_lists_artifacts_serves_ranges_and_takes_events(env, embedded_service):
    base = embedded_service
    p = ma(env, "--output", "json", "firmware", "import", MS_VARS)
    assert "not published" not in p.stderr, p.stderr
    sha = json.loads(p.stdout)["imported"][0]["sha256"]

    with urllib.request.urlopen(base + "/api/v1/firmware/artifacts", timeout=10) as r:
        arts = json.loads(r.read())["artifacts"]
    assert [a["sha256"] for a in arts] == [sha]

    # Without a token: refused.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{base}/api/v1/firmware/blobs/{sha}", timeout=10)
    assert e.value.code == 403

    url = ma_json(env, "firmware", "url", sha, "--base", base)["url"]
    req = urllib.request.Request(url, headers={"Range": "bytes=0-15"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 206
        body = r.read()
        assert r.headers["Content-Range"] == f"bytes 0-15/{os.path.getsize(MS_VARS)}"
    assert body == open(MS_VARS, "rb").read()[:16]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.read() == open(MS_VARS, "rb").read()


def test_a_server_on_the_2011_kek_shows_in_live_findings(service, tmp_path):
    """Issue 9, done-when 5: a simulated server exposing only the 2011 Microsoft KEK over Redfish
    appears in `firmware findings --rule SB-KEK-001`, read by the collector from its
    SecureBootDatabases and judged by the same rules as a blob."""
    import time

    out = tmp_path / "sim"
    control = free_port()
    first = free_port()
    log_path = str(tmp_path / "sim.log")
    log = open(log_path, "w")
    sim = subprocess.Popen(
        [BIN, "simulate", "--servers", "2", "--seed", "29", "--port-per-server",
         "--listen", f"127.0.0.1:{first}", "--control", f"127.0.0.1:{control}",
         "--secure-boot", "ms-2011", "--out", str(out)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    env = dict(service["env"], METAL_AUTOMATA_SERVER=service["url"])
    try:
        wait_http(f"http://127.0.0.1:{control}/simulator/v1/fleet", proc=sim, log_path=log_path)
        fleet = json.loads((out / "bmcs.json").read_text())
        ids = {b["server_id"] for b in fleet["bmcs"]}
        ma(env, "bmc", "import", str(out / "bmcs.json"))
        deadline = time.time() + 120
        found = {}
        while time.time() < deadline:
            ma(env, "bmc", "collect")
            got = ma_json(env, "firmware", "findings", "--rule", "SB-KEK-001")["servers"]
            found = {r["server"]: r for r in got if r["server"] in ids}
            if found.keys() == ids:
                break
            time.sleep(2)
        assert found.keys() == ids, found
        for r in found.values():
            assert r["severity"] == "high" and r["source"] == "redfish", r
            assert "KEK CA 2011" in (r["cert_subject"] or ""), r
        # One server, every rule: the 2011 db CAs and the placeholder dbx too.
        one = sorted(ids)[0]
        rules = {r["rule_id"] for r in ma_json(env, "firmware", "findings", "--server-id", one)["servers"]}
        assert {"SB-KEK-001", "SB-DB-001", "SB-DB-002", "SB-DBX-001"} <= rules, rules
        table = ma(env, "firmware", "findings", "--rule", "SB-KEK-001").stdout
        assert one in table and "SB-KEK-001" in table, table
        # The summary per server (firmware.secureboot) answers the rollover question in SQL.
        rows = ma_json(env, "sql", "SELECT server_id, worst_severity FROM secure_boot "
                                   "WHERE array_has(open_findings, 'SB-KEK-001')")["rows"]
        assert ids <= {r["server_id"] for r in rows}, rows

        # Advisories against installed firmware (VULN-<id>, source inventory): the mockup's BIOS
        # "P79 v1.45 (12/06/2017)" is in the range fixed by P79 v1.46. `rules update` publishes
        # the pack's advisories to the fleet and the firmware-updates processor opens findings,
        # no rescan; a pack that no longer lists the advisory resolves them. (The CLI installs
        # the pack in a data directory of its own: the service's pack stays the built-in one.)
        cli_env = dict(env, METAL_AUTOMATA_DATA_DIR=str(tmp_path / "cli-data"))
        pack = tmp_path / "advisories.json"
        pack.write_text(json.dumps({"version": "test-advisories", "advisories": [{
            "id": "TEST-2026-0001", "title": "Contoso 3500 BIOS test advisory",
            "severity": "critical", "component": "bios", "models": ["3500"],
            "ranges": [{"fixed": "P79 v1.46"}]}]}))
        installed = ma_json(cli_env, "firmware", "rules", "update", str(pack))
        assert installed["advisories_published"] >= 1, installed
        deadline = time.time() + 60
        while time.time() < deadline:
            got = ma_json(env, "firmware", "findings", "--rule", "VULN-TEST-2026-0001")["servers"]
            if ids <= {r["server"] for r in got}:
                break
            time.sleep(1)
        assert ids <= {r["server"] for r in got}, (got, installed)
        assert all(r["source"] == "inventory" and r["severity"] == "critical" for r in got), got
        assert all("fixed in P79 v1.46" in r["subject"] for r in got), got
        pack.write_text(json.dumps({"version": "test-advisories-2", "advisories": []}))
        ma(cli_env, "firmware", "rules", "update", str(pack))
        deadline = time.time() + 60
        while time.time() < deadline:
            got = ma_json(env, "firmware", "findings", "--rule", "VULN-TEST-2026-0001")["servers"]
            if not (ids & {r["server"] for r in got}):
                break
            time.sleep(1)
        assert not (ids & {r["server"] for r in got}), got

        # Catalog matching: a generic catalog served over HTTP lists a newer BIOS for this model
        # (the built-in mockup is a Contoso 3500 on BIOS "P79 v1.45 (12/06/2017)").
        import functools
        import http.server
        import threading
        cat_dir = tmp_path / "catalog"
        cat_dir.mkdir()
        (cat_dir / "lab.json").write_text(json.dumps({"entries": [
            {"id": "bios-p79-1.46", "url": "http://127.0.0.1:9/bios-p79-1.46.bin", "sha256": "00" * 32,
             "vendor": "Contoso", "component": "bios", "version": "P79 v1.46 (03/01/2026)",
             "models": ["3500"], "criticality": "critical"},
            {"id": "bios-p79-1.40", "url": "http://127.0.0.1:9/bios-p79-1.40.bin", "sha256": "11" * 32,
             "vendor": "Contoso", "component": "bios", "version": "P79 v1.40 (01/01/2017)",
             "models": ["3500"]},
            {"id": "other-model", "url": "http://127.0.0.1:9/x.bin", "sha256": "22" * 32,
             "vendor": "Contoso", "component": "bios", "version": "P99 v9", "models": ["9999"]}]}))
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(cat_dir))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/lab.json"
            ma(env, "firmware", "catalog", "add", "lab-updates", url, "--format", "generic")
            ma(env, "firmware", "catalog", "sync", "lab-updates")
            got = ma_json(env, "firmware", "updates", "--server-id", one)
            bios = [u for u in got["updates"] if u["kind"] == "bios"]
            assert len(bios) == 1, got
            m = bios[0]["match"]
            assert m["verdict"] == "update-available", m
            assert m["latest"] == "P79 v1.46 (03/01/2026)" and m["installed"].startswith("P79 v1.45"), m
            assert m["criticality"] == "critical" and m["entry_key"] == "lab-updates/bios-p79-1.46", m
            table = ma(env, "firmware", "updates").stdout
            assert "update-available" in table and one in table, table

            # Done-when 1: each sync is a row of its own, and the entries it added are rows too.
            # A second sync is a conditional GET that the server answers 304.
            ma(env, "firmware", "catalog", "sync", "lab-updates")
            deadline = time.time() + 60
            while True:
                syncs = ma_json(env, "sql", "SELECT status, added, entries, format FROM catalog_syncs "
                                           "WHERE catalog = 'lab-updates' ORDER BY synced_at")["rows"]
                added = ma_json(env, "sql", "SELECT entry_id FROM firmware_catalog WHERE "
                                           "catalog = 'lab-updates' AND change = 'added'")["rows"]
                if (len(syncs) == 2 and len(added) == 3) or time.time() > deadline:
                    break
                time.sleep(1)
            assert syncs == [
                {"status": "updated", "added": 3, "entries": 3, "format": "generic"},
                {"status": "not-modified", "added": 0, "entries": 3, "format": "generic"},
            ], syncs
            assert {r["entry_id"] for r in added} == {"bios-p79-1.46", "bios-p79-1.40", "other-model"}
            # The firmware-updates processor matched the fleet again from the catalog's events.
            def statuses():
                rows = ma_json(env, "sql", "SELECT server_id, updates_available, critical_updates, "
                                           "components FROM firmware_updates")["rows"]
                return {r["server_id"]: r for r in rows}

            deadline = time.time() + 30
            while not ids <= statuses().keys() and time.time() < deadline:
                time.sleep(1)
            mine = {k: v for k, v in statuses().items() if k in ids}
            assert mine.keys() == ids, mine
            assert all(r["updates_available"] == 1 and r["critical_updates"] == 1
                       for r in mine.values()), mine

            # A new server's inventory is matched when it arrives, and again after its BIOS update.
            new = "4c4c4544-0000-4e10-8000-00000000fa11"

            def ingest(bios, at):
                body = {"server_id": new, "source": "AGENT", "collected_at": at,
                        "system": {"manufacturer": "Contoso", "product": "3500", "serial": None,
                                   "uuid": new, "sku": None, "asset_tag": None},
                        "bios": None, "errors": [],
                        "components": [{"component_id": "bios", "kind": "BIOS", "name": "BIOS",
                                        "manufacturer": None, "model": None, "serial": None,
                                        "part_number": None, "firmware_version": bios,
                                        "location": None, "properties": {}}]}
                req = urllib.request.Request(service["url"] + "/api/v1/ingest/inventory",
                                             data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as r:
                    assert r.status == 202

            def wait_for(verdict):
                deadline = time.time() + 30
                while time.time() < deadline:
                    got = statuses().get(new)
                    if got and [c["verdict"] for c in got["components"]] == [verdict]:
                        return got
                    time.sleep(1)
                raise AssertionError(f"{new} never {verdict}: {statuses().get(new)}")

            now = int(time.time() * 1000)
            ingest("P79 v1.45 (12/06/2017)", now)
            got = wait_for("update-available")
            assert got["critical_updates"] == 1, got
            ingest("P79 v1.46 (03/01/2026)", now + 1000)
            got = wait_for("current")
            assert got["updates_available"] == 0, got
        finally:
            httpd.shutdown()
    finally:
        stop(sim, log)


FWUPD_TESTS = "/usr/share/installed-tests/fwupd"
FAKE_GUID = "b585990a-003e-5270-89d5-3705a17f9a43"  # fakedevice124.metainfo.xml
FAKE_DEVICE = "08d460be0f1f9f128413f816022a6439e0078018"  # fwupd's test plugin FakeDevice


def fwupd_env(root):
    """fwupdtool confined to `root` (fwupd 2.0's fu-path.c overrides): nothing under /etc or
    /var is read or written, and the fwupd-tests remote in /usr/share/fwupd stays hidden."""
    import shutil

    for d in ("etc/fwupd/remotes.d", "etc/pki/fwupd-metadata", "var", "share/fwupd", "run/lock"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    quirks = os.path.join(root, "share/fwupd/quirks.d")
    if not os.path.exists(quirks):
        os.symlink("/usr/share/fwupd/quirks.d", quirks)
    with open(os.path.join(root, "etc/fwupd/fwupd.conf"), "w") as f:
        f.write("[fwupd]\nTestDevices=true\n")
    e = {k: v for k, v in os.environ.items()
         if k not in ("CONFIGURATION_DIRECTORY", "STATE_DIRECTORY", "CACHE_DIRECTORY",
                      "LOCALCONF_DIRECTORY")}
    e.update({
        "FWUPD_SYSCONFDIR": os.path.join(root, "etc"),
        "FWUPD_LOCALSTATEDIR": os.path.join(root, "var"),
        "FWUPD_DATADIR": os.path.join(root, "share/fwupd"),
        "FWUPD_LOCKDIR": os.path.join(root, "run/lock"),
        "FWUPD_RUNDIR": os.path.join(root, "run"),
        "XDG_CACHE_HOME": os.path.join(root, "xdg-cache"),
        "XDG_CONFIG_HOME": os.path.join(root, "xdg-config"),
        "NO_COLOR": "1",
    })
    assert shutil.which("fwupdtool"), "fwupdtool (Debian fwupd) is missing"
    return e


def fwupdtool(fenv, *args):
    return subprocess.run(["fwupdtool", "--plugins", "test", "-vv", *args], env=fenv,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not os.path.exists(os.path.join(FWUPD_TESTS, "fakedevice124.cab")),
                    reason="Debian package fwupd-tests is not installed")
def test_imported_lvfs_cab_is_verified_by_its_own_signature(env):
    """An air-gapped import has no catalog hash, but an LVFS cab signs itself: its jcat's
    PKCS#7 chains to the LVFS CA (the builtin package root), so the blob is
    `verified-signature`, installable, and offered by the fwupd remote."""
    cab = os.path.join(FWUPD_TESTS, "fakedevice124.cab")
    (imported,) = ma_json(env, "firmware", "import", cab)["imported"]
    assert imported["integrity"] == "verified-signature", imported
    assert not [r for r in imported["rule_ids"] if r.startswith("PKG-SIG")], imported
    shown = ma_json(env, "firmware", "show", imported["sha256"])
    assert shown["signature"]["state"] == "valid", shown
    assert "CN=Richard Hughes under LVFS CA" in shown["signature"]["detail"], shown
    offered = ma_json(env, "firmware", "remote", "ls")["offered"]
    assert imported["sha256"] in offered.values(), offered
    # A Secure Boot variable store is no package: no package verdict, still unverified.
    (vars_,) = ma_json(env, "firmware", "import", MS_VARS)["imported"]
    assert vars_["integrity"] == "unverified", vars_


@pytest.mark.skipif(not os.path.exists(os.path.join(FWUPD_TESTS, "fakedevice124.cab")),
                    reason="Debian package fwupd-tests is not installed")
def test_fwupd_installs_fakedevice124_from_our_remote(env, embedded_service, tmp_path):
    """Issue 9, done-when 6: the store as an LVFS remote. A cab fetched through a catalog with
    its SHA-256 is offered in metadata.xml.zst, whose jcat we sign with our own key; fwupd
    trusts that key only, refreshes, and installs fakedevice124 onto its test device. An
    unverified import, a quarantined cab and a non-cab blob are not offered; a foreign trust
    anchor makes the refresh fail."""
    import functools
    import gzip
    import hashlib
    import http.server
    import re
    import threading

    import zstandard

    base = embedded_service
    www = tmp_path / "vendor"
    www.mkdir()
    cabs = {}
    for n in ("124", "123"):
        data = open(os.path.join(FWUPD_TESTS, f"fakedevice{n}.cab"), "rb").read()
        (www / f"fakedevice{n}.cab").write_bytes(data)
        cabs[n] = hashlib.sha256(data).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    vendor = f"http://127.0.0.1:{httpd.server_address[1]}"
    (www / "acme.json").write_text(json.dumps({"entries": [
        {"id": f"fake{n}", "url": f"{vendor}/fakedevice{n}.cab", "sha256": sha,
         "vendor": "ACME", "component": "webcam", "version": f"1.2.{n[-1]}",
         "guids": [FAKE_GUID]} for n, sha in cabs.items()]}))
    try:
        ma(env, "firmware", "catalog", "add", "acme", f"{vendor}/acme.json", "--format", "generic")
        ma(env, "firmware", "catalog", "sync", "acme")
        ma(env, "firmware", "fetch", "acme/fake124")
        ma(env, "firmware", "fetch", "acme/fake123")
    finally:
        httpd.shutdown()
    ma(env, "firmware", "quarantine", cabs["123"], "--reason", "held back for the test")
    ma(env, "firmware", "import", MS_VARS)

    offered = ma_json(env, "firmware", "remote", "ls")
    assert list(offered["offered"].values()) == [cabs["124"]], offered
    # Fetched with its SHA-256, and signed under the LVFS CA: the signature is the stronger.
    assert ma_json(env, "firmware", "show", cabs["124"])["integrity"] == "verified-signature"
    assert "quarantined" in offered["skipped"][cabs["123"]], offered
    assert len(offered["skipped"]) == 2, offered

    # What fwupd will read, checked independently: the cab's checksums and a PKCS#7 jcat.
    remote = base + "/api/v1/firmware/lvfs"
    with urllib.request.urlopen(remote + "/metadata.xml.zst", timeout=30) as r:
        metadata = r.read()
    with urllib.request.urlopen(remote + "/metadata.xml.zst.jcat", timeout=30) as r:
        jcat = json.loads(gzip.decompress(r.read()))
    xml = zstandard.ZstdDecompressor().decompressobj().decompress(metadata).decode()
    assert xml.count("<release ") == 1 and 'version="1.2.4"' in xml, xml
    location = re.search(r"<location>([^<]+)</location>", xml).group(1)
    assert location == f"{cabs['124']}-fakedevice124.cab", xml
    assert f'type="sha256" filename="{location}" target="container">{cabs["124"]}<' in xml, xml
    (item,) = jcat["Items"]
    assert item["Id"] == "metadata.xml.zst"
    kinds = {b["Kind"]: b["Data"] for b in item["Blobs"]}
    assert kinds[1] == hashlib.sha256(metadata).hexdigest()
    assert kinds[3].startswith("-----BEGIN PKCS7-----"), kinds[3][:40]

    # fwupd with our certificate as its only metadata anchor.
    root = str(tmp_path / "fwupd")
    fenv = fwupd_env(root)
    cert = ma(env, "firmware", "remote", "cert").stdout
    assert cert.startswith("-----BEGIN CERTIFICATE-----"), cert
    anchor = os.path.join(root, "etc/pki/fwupd-metadata/metal-automata.pem")
    with open(anchor, "w") as f:
        f.write(cert)
    conf = ma(env, "firmware", "remote", "conf", "--base", base).stdout
    assert f"MetadataURI={remote}/metadata.xml.zst" in conf, conf
    with open(os.path.join(root, "etc/fwupd/remotes.d/metal-automata.conf"), "w") as f:
        f.write(conf)

    p = fwupdtool(fenv, "refresh", "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    p = fwupdtool(fenv, "update", FAKE_GUID)
    log = p.stdout + p.stderr
    # fwupdtool exits 0 even when an install fails: the version change is the proof.
    assert p.returncode == 0 and f"changing version for {FAKE_DEVICE}: 1.2.2->1.2.4" in log, log
    hist = subprocess.run(["fwupdtool", "--plugins", "test", "get-history", "--json"], env=fenv,
                          capture_output=True, text=True, timeout=60)
    devices = [d for d in json.loads(hist.stdout)["Devices"] if d.get("DeviceId") == FAKE_DEVICE]
    assert devices and devices[-1]["UpdateState"] == 2, hist.stdout
    rel = devices[-1]["Releases"][0]
    assert rel["Version"] == "1.2.4" and rel.get("RemoteId") == "metal-automata", rel

    # Another anchor in place of ours: the signature no longer verifies and the refresh fails.
    other = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "/dev/null",
         "-days", "30", "-subj", "/CN=Not Metal Automata", "-addext",
         "keyUsage=critical,digitalSignature,keyCertSign"], capture_output=True, text=True,
        check=True).stdout
    with open(anchor, "w") as f:
        f.write(other)
    p = fwupdtool(fenv, "refresh", "--force")
    assert p.returncode != 0, p.stdout + p.stderr
    assert "signature" in (p.stdout + p.stderr), p.stdout + p.stderr

    # An advisory by vendor, component and version range (VULN-<id>) finds the stored 1.2.3
    # cab through its catalog entry, and not the fixed 1.2.4.
    pack = tmp_path / "advisories.json"
    pack.write_text(json.dumps({"version": "test-advisories", "advisories": [{
        "id": "TEST-2026-0124", "title": "ACME webcam test advisory", "severity": "high",
        "vendor": "acme", "component": "webcam",
        "ranges": [{"introduced": "1.2.0", "fixed": "1.2.4"}]}]}))
    ma(env, "firmware", "rescan", "--all", "--rules", str(pack))
    hits = ma_json(env, "firmware", "findings", "--rule", "VULN-TEST-2026-0124")["findings"]
    assert [h["sha256"] for h in hits] == [cabs["123"]], hits
    assert "fixed in 1.2.4" in hits[0]["finding"]["subject"], hits
