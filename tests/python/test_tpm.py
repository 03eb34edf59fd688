"""TPM registration end to end on real software TPMs (swtpm with EK certificates from
`swtpm_setup --create-ek-cert`): `metal-automata tpm enroll` against `serve`, the EK certificate
checked against the operator's roots (swtpm's local CA), the AK proven by credential activation,
an EK change that waits for `tpm approve` and shows as a critical health change; and the negative
cases at the service: an AK that is not on the EK's TPM, a corrupted certificate, an untrusted CA,
no TPM at all. Each gets a clear status, and the service keeps running."""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import BIN, free_port, free_port_pair, stop, wait_http

LOCALCA = "/var/lib/swtpm-localca"


class Swtpm:
    """One software TPM with its own state (so two give two distinct TPMs)."""

    def __init__(self, root, name):
        self.state = os.path.join(root, name)
        os.makedirs(self.state)
        subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", self.state, "--create-ek-cert",
                        "--create-platform-cert", "--overwrite"], check=True, capture_output=True)
        # The swtpm TCTI (tpm2-tss and tss-esapi) sends control commands to port + 1.
        self.port = free_port_pair()
        ctrl = self.port + 1
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def tool(self, *args):
        """Runs a tpm2-tools command on this TPM in its state directory."""
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tcti)
        r = subprocess.run(list(args), env=env, cwd=self.state, capture_output=True, timeout=30)
        assert r.returncode == 0, f"{args}: {r.stderr.decode()}"
        # No resource manager between the tools and swtpm: what a tool leaves loaded stays in
        # the TPM's three transient slots. The tools keep what they need as context files.
        for kind in ("-t", "-s"):
            subprocess.run(["tpm2_flushcontext", kind], env=env, cwd=self.state,
                           capture_output=True, timeout=30)

    def read(self, name):
        with open(os.path.join(self.state, name), "rb") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def api(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def tpms():
    root = tempfile.mkdtemp(prefix="ma-swtpm-")
    a, b = Swtpm(root, "a"), Swtpm(root, "b")
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def service(tpms):
    """`serve` on the embedded log, trusting swtpm's local CA as an operator root."""
    data = tempfile.mkdtemp(prefix="ma-tpm-")
    roots = os.path.join(data, "tpm-roots")
    os.makedirs(os.path.join(roots, "intermediates"))
    shutil.copy(os.path.join(LOCALCA, "swtpm-localca-rootca-cert.pem"), roots)
    shutil.copy(os.path.join(LOCALCA, "issuercert.pem"), os.path.join(roots, "intermediates"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAL_AUTOMATA_")}
    env.update({
        "METAL_AUTOMATA_DATA_DIR": data,
        "METAL_AUTOMATA_API__LISTEN": f"127.0.0.1:{port}",
        "METAL_AUTOMATA_SERVER": f"http://127.0.0.1:{port}",
        "METAL_AUTOMATA_TPM__ROOTS_DIR": roots,
        "METAL_AUTOMATA_COLLECTOR__LOCAL_HOST": "false",
    })
    log_path = os.path.join(data, "serve.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/api/v1/status", proc=proc, log_path=log_path)
    yield port, env
    stop(proc, log)


def cli(env, *args, ok=True):
    r = subprocess.run([BIN, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, f"{args}: {r.stdout}{r.stderr}"
    return r


def wait_status(env, server, status, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        r = cli(env, "tpm", "show", server, ok=False)
        if r.returncode == 0:
            last = json.loads(r.stdout)
            if last["status"] == status:
                return last
        else:
            last = r.stdout + r.stderr
        time.sleep(0.3)
    raise AssertionError(f"{server} never became {status}: {last}")


def test_enroll_verify_ek_change_and_approval(tpms, service):
    a, b = tpms
    port, env = service
    out = json.loads(cli(env, "tpm", "enroll", "--tcti", a.tcti, "--server-id", "srv-tpm-1").stdout)
    assert out["status"] == "VERIFIED", out
    reg = wait_status(env, "srv-tpm-1", "VERIFIED")
    assert reg["certificate"] == "trusted" and reg["ek_issuer"] == "CN=swtpm-localca", reg
    assert reg["manufacturer"] and reg["ek_fingerprint"] == out["ek_fingerprint"]
    # The fingerprint is the one openssl computes from the EK certificate's public key.
    a.tool("tpm2_nvread", "0x01c00002", "-o", "ek.der")
    der = a.read("ek.der")
    der = der[:4 + int.from_bytes(der[2:4], "big")]  # NV holds the certificate padded
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"], input=der,
                         capture_output=True, check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          capture_output=True, check=True).stdout
    import hashlib
    assert reg["ek_fingerprint"] == hashlib.sha256(spki).hexdigest()

    listed = json.loads(cli(env, "tpm", "list").stdout)["registrations"]
    assert [r["server_id"] for r in listed] == ["srv-tpm-1"]

    # The same server comes back with another TPM: proven, but it waits for an operator.
    out = json.loads(cli(env, "tpm", "enroll", "--tcti", b.tcti, "--server-id", "srv-tpm-1").stdout)
    assert out["status"] == "VERIFIED", out
    pending = wait_status(env, "srv-tpm-1", "EK_CHANGED_AWAITING_APPROVAL")
    assert pending["previous_ek_fingerprint"] == reg["ek_fingerprint"]
    assert "tpm approve srv-tpm-1" in pending["reason"]
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = json.loads(cli(env, "sql", "SELECT component_id, health, classification FROM health_events "
                                          "WHERE server_id = 'srv-tpm-1'").stdout)
        rows = rows["rows"] if isinstance(rows, dict) else rows
        if any(r["component_id"] == "tpm" and r["health"] == "critical" for r in rows):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no critical TPM health event: {rows}")
    assert any(r["classification"] == "tpm-ek-changed" for r in rows), rows

    # Approval needs a reason; then the new EK is the verified one.
    assert cli(env, "tpm", "approve", "srv-tpm-1", "--reason", "", ok=False).returncode != 0
    cli(env, "tpm", "approve", "srv-tpm-1", "--reason", "board swap", "--operator", "alice")
    approved = wait_status(env, "srv-tpm-1", "VERIFIED")
    assert approved["ek_fingerprint"] == pending["ek_fingerprint"]
    assert approved["approved_by"].startswith("alice from "), approved


def enrollment(ek_tpm, ak_tpm, server):
    """An enrollment made with tpm2-tools: the EK (and its certificate) of one TPM, the AK of
    another (or the same)."""
    ek_tpm.tool("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
    ek_tpm.tool("tpm2_nvread", "0x01c00002", "-o", "ek.der")
    ak_tpm.tool("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
    ak_tpm.tool("tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256",
                "-s", "rsassa", "-u", "ak.pub", "-n", "ak.name")
    der = ek_tpm.read("ek.der")
    return {
        "server_id": server,
        "ek_public": ek_tpm.read("ek.pub").hex(),
        "ek_certificate": der[:4 + int.from_bytes(der[2:4], "big")].hex(),
        "ak_public": ak_tpm.read("ak.pub").hex(),
    }


def test_an_ak_not_on_the_eks_tpm_is_rejected(tpms, service):
    a, b = tpms
    port, env = service
    e = enrollment(b, a, "srv-replay")
    c = api(port, "/api/v1/tpm/challenge", e)
    assert c["status"] == "challenge", c
    # Without B's private EK and A's AK in one TPM nobody can open it: any answer fails.
    r = api(port, "/api/v1/tpm/activate", {"enrollment": e, "token": c["token"],
                                           "secret": secrets.token_hex(32)})
    assert r["status"] == "REJECTED" and "not on the TPM" in r["reason"], r
    # A token made for another enrollment does not carry over.
    e2 = enrollment(a, a, "srv-replay")
    r = api(port, "/api/v1/tpm/activate", {"enrollment": e2, "token": c["token"],
                                           "secret": secrets.token_hex(32)})
    assert r["status"] == "REJECTED" and "token" in r["reason"], r
    assert wait_status(env, "srv-replay", "REJECTED")["reason"]


def test_a_corrupted_or_untrusted_certificate_is_rejected(tpms, service):
    a, _ = tpms
    port, env = service
    e = enrollment(a, a, "srv-badcert")
    cert = bytearray(bytes.fromhex(e["ek_certificate"]))
    cert[len(cert) // 2] ^= 0xFF
    r = api(port, "/api/v1/tpm/challenge", dict(e, ek_certificate=cert.hex()))
    assert r["status"] == "REJECTED" and "certificate" in r["reason"], r
    # A self-signed certificate for the same key: parses, but chains to no trusted root.
    own = tempfile.mkdtemp(prefix="ma-ca-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=Rogue TPM CA",
                    "-keyout", f"{own}/k.pem", "-out", f"{own}/c.pem", "-days", "30"], check=True,
                   capture_output=True)
    rogue = subprocess.run(["openssl", "x509", "-in", f"{own}/c.pem", "-outform", "DER"], capture_output=True,
                           check=True).stdout
    r = api(port, "/api/v1/tpm/challenge", dict(e, server_id="srv-rogue", ek_certificate=rogue.hex()))
    assert r["status"] == "REJECTED" and "not trusted" in r["reason"], r
    # Garbage public areas are a 400 with a message, not a crash.
    try:
        api(port, "/api/v1/tpm/challenge", dict(e, ek_public="00ff00"))
        raise AssertionError("garbage EK accepted")
    except urllib.error.HTTPError as err:
        assert err.code == 400
    assert wait_http(f"http://127.0.0.1:{port}/api/v1/status")


def test_no_tpm_is_a_clear_error(service):
    _, env = service
    r = cli(env, "tpm", "enroll", "--tcti", f"swtpm:host=127.0.0.1,port={free_port()}",
            "--server-id", "srv-none", ok=False)
    assert r.returncode != 0
    assert "TPM" in (r.stdout + r.stderr), r.stdout + r.stderr
