#!/usr/bin/env bash
# Prepares a real server for the in-band agent's tests: qemu, busybox for the initramfs, swtpm
# for a TPM, OVMF for a UEFI guest (efivarfs, Secure Boot keys), strip (the test binary goes into
# the initramfs without its debug info), and a Debian kernel unpacked into
# $HOME/.cache/metal-automata/vm. Prints the environment the agent's qemu tests read
# (AGENT_QEMU_KERNEL, AGENT_QEMU_MODULES); use it as
#   eval "$(scripts/agent-vm.sh)"
set -euo pipefail
VM=${MA_AGENT_VM:-$HOME/.cache/metal-automata/vm}
PKGS=(qemu-system-x86 busybox-static cpio swtpm swtpm-tools ovmf binutils)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if [ ${#missing[@]} -gt 0 ]; then
    echo "agent-vm: apt-get install ${missing[*]}" >&2
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The generic kernel, not the smaller cloud one: the cloud kernel has no CONFIG_HWMON (so no NVMe
# hwmon temperature, CONFIG_NVME_HWMON) and no CONFIG_X86_MCE (no machine checks), which the
# agent's telemetry test reads in the guest. Its NVMe and virtio drivers are modules.
kernel=$(ls "$VM"/boot/vmlinuz-*-amd64 2>/dev/null | grep -v -- '-cloud-' | sort -V | tail -1 || true)
if [ -z "$kernel" ]; then
    pkg=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64-unsigned$' | sort -V | tail -1 | cut -d' ' -f1)
    [ -n "$pkg" ] || { echo "agent-vm: no Debian amd64 kernel package in apt" >&2; exit 1; }
    echo "agent-vm: $pkg into $VM" >&2
    mkdir -p "$VM/deb"
    (cd "$VM/deb" && apt-get download -qq "$pkg" >&2)
    dpkg-deb -x "$VM"/deb/*.deb "$VM"
    rm -rf "$VM/deb"
    kernel=$(ls "$VM"/boot/vmlinuz-*-amd64 | grep -v -- '-cloud-' | sort -V | tail -1)
fi
version=${kernel##*/vmlinuz-}
echo "export AGENT_QEMU_KERNEL=$kernel AGENT_QEMU_MODULES=$VM/lib/modules/$version"
