#!/usr/bin/env bash
# Installs what building and testing Metal Automata needs on a fresh Debian 12 machine, once:
# Debian packages (compiler tool chain, librdkafka's build needs, Maven and Java for the test
# broker) and a Python venv with the test peers. Re-running is a no-op that takes a second.
#
#   scripts/install-deps.sh            everything
#   scripts/install-deps.sh --build    only what building the binary needs
set -euo pipefail
cd "$(dirname "$0")/.."

# libtss2-dev: the agent talks to the TPM through tpm2-tss's ESAPI (tss-esapi).
BUILD_PKGS=(build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev libsasl2-dev zlib1g-dev libtss2-dev)
# lshw: `bench inventory` compares the agent with it; openipmi/ipmitool: the IPMI LAN peer;
# swtpm (+ its TCTI and tpm2-tools to cross-check): the TPM peer.
TEST_PKGS=(maven default-jre-headless python3-venv lshw openipmi ipmitool openssl
    swtpm swtpm-tools libtss2-tcti-swtpm0 tpm2-tools fwupd-tests)
TEST_PKGS+=(ovmf uefitool-cli)  # firmware scanner: real OVMF images; UEFIExtract agreement test
TEST_PKGS+=(shim-signed sbsigntool pesign fwupd-amd64-signed)  # firmware scanner: signed EFI peers, sbverify/pesign agreement
VENV=${MA_TEST_VENV:-$HOME/.cache/metal-automata/venv}

pkgs=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--build" ] || pkgs+=("${TEST_PKGS[@]}")

missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# A JDK may come from elsewhere (the machine's own); only ask apt when there is no java at all.
if command -v java >/dev/null 2>&1; then
    missing=("${missing[@]/default-jre-headless}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: Rust is needed: https://rustup.rs" >&2; exit 1; }
[ "${1:-}" = "--build" ] && exit 0

stamp="$VENV/.requirements.sha256"
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install-deps: Python test peers into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -r tests/python/requirements.txt
    echo "$want" > "$stamp"
fi
