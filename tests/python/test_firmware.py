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
