#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (scripts/fuzz.sh runs it before fuzzing).

Seeds are built here byte by byte (FVs, FFS files, sections, LZMA, VSS2 stores, signature lists,
capsules, zip and cab archives, jcat) or copied from the repo's test fixtures and, when the
machine has them, Debian's OVMF, shim and fwupd test files (read only, never written). Nothing is
checked in: `python3 fuzz/seeds.py DIR` writes DIR/<target>/seed-*.

Usage: seeds.py CORPUS_DIR
"""

import gzip
import io
import json
import lzma
import os
import struct
import subprocess
import sys
import uuid
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOG_FIXTURES = os.path.join(ROOT, "firmware", "catalog", "tests", "fixtures")
# EFI/Tiano streams made by edk2's compressors (firmware/scanner/tests/fixtures/tiano/make.py).
TIANO_FIXTURES = os.path.join(ROOT, "firmware", "scanner", "tests", "fixtures", "tiano")
OVMF = "/usr/share/OVMF"
FWUPD_TESTS = "/usr/share/installed-tests/fwupd"
SHIM = "/usr/lib/shim"
# Larger seeds make every mutation slower; real images are cut to this.
MAX_SEED = 256 << 10


def g(text):
    """An EFI GUID in its on-disk (mixed-endian) form."""
    return uuid.UUID(text).bytes_le


FFS2 = g("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
NV_DATA_FV = g("fff12b8d-7696-4c8b-a985-2747075b4f50")
AUTH_VARIABLE_STORE = g("aaf32c78-947b-439a-a180-2e144ec37792")
GLOBAL_VARIABLE = g("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_SECURITY_DATABASE = g("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
CERT_X509 = g("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
CERT_SHA256 = g("c1c41626-504c-4092-aca9-41f936934328")
LZMA_GUID = g("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
LZMA_F86_GUID = g("d42ae6bd-1352-4bfb-909a-ca72a6eae889")
CRC32_GUID = g("fc1bcdb0-7d31-49aa-936a-a4600d9dd083")
FMP_CAPSULE = g("6dcbd5ed-e82d-4c44-bda1-7194199ad92a")
EFI_CAPSULE = g("3b6686bd-0d76-4030-b70e-b5519e2fc5a0")
CERT_TYPE_PKCS7 = g("4aafd29d-68df-49ee-8aa9-347d375665a7")

# Selector bytes of the catalog target (fuzz_targets/catalog.rs).
DELL, HPE_REPO, HPE_PAYLOAD, HPE_FWPKG, GENERIC, LVFS_BASE, LVFS, LENOVO_XML, LENOVO_ZIP, SMC, CAB = range(11)


def read(path, limit=MAX_SEED):
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


# --- UEFI building blocks -------------------------------------------------------------------


def section(kind, body):
    size = 4 + len(body)
    return struct.pack("<I", size)[:3] + bytes([kind]) + body


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def ui(name):
    return section(0x15, (name + "\0").encode("utf-16-le"))


def lzma_alone(data):
    """edk2's LZMA section payload: lzma_alone with the real size in the header."""
    raw = lzma.compress(
        data,
        format=lzma.FORMAT_ALONE,
        filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16}],
    )
    return raw[:5] + struct.pack("<Q", len(data)) + raw[13:]


def guided(guid, payload, attrs=1):
    body = guid + struct.pack("<HH", 4 + 20, attrs) + payload
    return section(0x02, body)


def ffs_file(name_guid, ftype, body, polarity=True):
    size = 24 + len(body)
    hdr = bytearray(name_guid + bytes([0, 0xAA, ftype, 0]) + struct.pack("<I", size)[:3] + b"\0")
    hdr[16] = (-sum(b for i, b in enumerate(hdr) if i not in (17, 23))) & 0xFF
    # EFI_FILE_HEADER_CONSTRUCTION | HEADER_VALID | DATA_VALID, inverted on erase-polarity flash.
    hdr[23] = 0xF8 if polarity else 0x07
    return bytes(hdr) + body


def fv(files, fs_guid=FFS2, total=None, polarity=True):
    body = b""
    for f in files:
        body += b"\xff" * (-len(body) % 8) if polarity else b"\0" * (-len(body) % 8)
        body += f
    hlen = 72
    length = total or (hlen + len(body) + 64)
    attrs = 0x0004FEFF if polarity else 0x0004F7FF
    hdr = bytearray(
        b"\0" * 16
        + fs_guid
        + struct.pack("<Q", length)
        + b"_FVH"
        + struct.pack("<IHHHBB", attrs, hlen, 0, 0, 0, 2)
        + struct.pack("<II", 1, length)
        + struct.pack("<II", 0, 0)
    )
    csum = (-sum(struct.unpack("<%dH" % (hlen // 2), bytes(hdr)))) & 0xFFFF
    hdr[50:52] = struct.pack("<H", csum)
    fill = b"\xff" if polarity else b"\0"
    return (bytes(hdr) + body).ljust(length, fill)


def tiny_pe(extra=b""):
    """A minimal PE32+ EFI application: DOS stub, headers, one section, no signature."""
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 0x40)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22)
    opt = bytearray(240)
    struct.pack_into("<H", opt, 0, 0x20B)
    struct.pack_into("<I", opt, 16, 0x200)  # AddressOfEntryPoint
    struct.pack_into("<Q", opt, 24, 0)  # ImageBase
    struct.pack_into("<II", opt, 32, 0x200, 0x200)  # Section/FileAlignment
    struct.pack_into("<I", opt, 56, 0x400)  # SizeOfImage
    struct.pack_into("<I", opt, 60, 0x200)  # SizeOfHeaders
    struct.pack_into("<H", opt, 68, 10)  # EFI application
    struct.pack_into("<I", opt, 108, 16)  # NumberOfRvaAndSizes
    sect = struct.pack("<8sIIIIIIHHI", b".text", 0x200, 0x200, 0x200, 0x200, 0, 0, 0, 0, 0x60000020)
    headers = bytes(dos) + b"PE\0\0" + coff + bytes(opt) + sect
    return headers.ljust(0x200, b"\0") + (b"\xc3" + extra).ljust(0x200, b"\0")


def sample_fv():
    inner = section(0x19, b"raw bytes") + b"\0" * 3 + ui("Inner")
    lz = guided(LZMA_GUID, lzma_alone(pad4(ui("Packed")) + section(0x19, b"x" * 64)))
    lzf86 = guided(LZMA_F86_GUID, lzma_alone(pad4(section(0x10, tiny_pe()))))
    crc = guided(CRC32_GUID, b"\0\0\0\0" + ui("Crc"), attrs=2)
    compressed = section(0x01, struct.pack("<IB", len(inner), 0) + inner)
    nested = section(0x17, fv([ffs_file(g("11111111-0000-0000-0000-000000000002"), 0x07, pad4(ui("Nested")))]))
    body = b"".join(pad4(s) for s in [ui("Driver"), section(0x14, b"\x01\x00" + "1.0\0".encode("utf-16-le")), lz, lzf86, crc, compressed, nested])
    return fv(
        [
            ffs_file(g("11111111-0000-0000-0000-000000000001"), 0x07, body),
            ffs_file(g("11111111-0000-0000-0000-000000000003"), 0x01, fv_vars()[:512]),
        ]
    )


# --- variable stores and signature lists ----------------------------------------------------


def esl(sig_type, owner, payloads):
    size = 16 + len(payloads[0]) if payloads else 16
    body = b"".join(owner + p for p in payloads)
    return sig_type + struct.pack("<III", 28 + len(body), 0, size) + body


def sample_db():
    owner = g("77fa9abd-0359-4d32-bd60-28f4e78f784b")
    return esl(CERT_SHA256, owner, [bytes([i]) * 32 for i in range(3)]) + esl(CERT_X509, owner, [b"\x30\x03\x02\x01\x01"])


def vss2(variables, size=0x1000):
    b = AUTH_VARIABLE_STORE + struct.pack("<I", size) + bytes([0x5A, 0xFE, 0, 0, 0, 0, 0, 0])
    for name, vendor, data in variables:
        b += b"\xff" * (-len(b) % 4)
        n = (name + "\0").encode("utf-16-le")
        b += struct.pack("<HBBI", 0x55AA, 0x3F, 0, 0x27) + b"\0" * 28
        b += struct.pack("<II", len(n), len(data)) + vendor + n + data
    return b.ljust(size, b"\xff")


def fv_vars():
    store = vss2([("PK", GLOBAL_VARIABLE, sample_db()[:60]), ("db", IMAGE_SECURITY_DATABASE, sample_db())])
    return fv([], fs_guid=NV_DATA_FV, total=72 + len(store))[:72] + store


def ovmf_variables(fd):
    """(name, data) of the live variables of an OVMF VARS image's VSS2 store."""
    out = []
    off = 0x48 + 28
    while off + 60 <= len(fd) and fd[off : off + 2] == b"\xaa\x55":
        name_size, data_size = struct.unpack_from("<II", fd, off + 36)
        name = fd[off + 60 : off + 60 + name_size].decode("utf-16-le", "replace").rstrip("\0")
        data = fd[off + 60 + name_size : off + 60 + name_size + data_size]
        if fd[off + 2] == 0x3F:
            out.append((name, data))
        off = (off + 60 + name_size + data_size + 3) & ~3
    return out


# --- capsules ---------------------------------------------------------------------------------


def capsule(guid, payload, header_size=32, flags=0x50000):
    hdr = guid + struct.pack("<III", header_size, flags, header_size + len(payload))
    return hdr.ljust(header_size, b"\0") + payload


def fmp(drivers, images, version=3):
    count = len(drivers) + len(images)
    head = struct.pack("<IHH", 1, len(drivers), len(images))
    off = len(head) + 8 * count
    items, offsets = b"", []
    for d in drivers:
        offsets.append(off + len(items))
        items += d
    for i, img in enumerate(images):
        offsets.append(off + len(items))
        hdr = struct.pack("<I", version) + g("11111111-2222-3333-4444-555555555555")
        hdr += bytes([i + 1, 0, 0, 0]) + struct.pack("<II", len(img), 4)
        if version >= 2:
            hdr += struct.pack("<Q", 0)
        if version >= 3:
            hdr += struct.pack("<Q", 0)
        items += hdr + img + b"vend"
    return head + b"".join(struct.pack("<Q", o) for o in offsets) + items


def auth(payload, sig=b"\x30\x03\x02\x01\x01"):
    return struct.pack("<QIHH", 1, 24 + len(sig), 0x0200, 0x0EF1) + CERT_TYPE_PKCS7 + sig + payload


# --- archives ---------------------------------------------------------------------------------


def zipped(members, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def cab(members, mszip=False):
    """A one-folder cabinet, stored or MSZIP, one CFDATA block per 32 KiB."""
    data = b"".join(d for _, d in members)
    blocks = []
    for i in range(0, max(len(data), 1), 0x8000):
        chunk = data[i : i + 0x8000]
        if mszip:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = b"CK" + c.compress(chunk) + c.flush()
        else:
            packed = chunk
        blocks.append(struct.pack("<IHH", 0, len(packed), len(chunk)) + packed)
    files = b""
    pos = 0
    for name, d in members:
        files += struct.pack("<IIHHHH", len(d), pos, 0, 0x5A21, 0, 0x20) + name.encode() + b"\0"
        pos += len(d)
    coff_files = 36 + 8
    data_start = coff_files + len(files)
    folder = struct.pack("<IHH", data_start, len(blocks), 1 if mszip else 0)
    body = folder + files + b"".join(blocks)
    total = 36 + len(body)
    header = b"MSCF" + struct.pack("<IIIIIBBHHHHH", 0, total, 0, coff_files, 0, 3, 1, 1, len(members), 0, 0, 0)
    return header + body


def zstd(data):
    """A zstd frame from the zstd tool, or an empty single-segment frame without it."""
    try:
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return bytes.fromhex("28b52ffd2000010000")


def jcat(items):
    return gzip.compress(json.dumps({"JcatVersionMajor": 0, "JcatVersionMinor": 1, "Items": items}).encode())


# --- the corpora ------------------------------------------------------------------------------


def main(out):
    seeds = {t: {} for t in ["catalog", "jcat", "archive", "capsule", "fv", "vss", "esl", "pe", "scan", "tiano", "pkcs7"]}
    fix = lambda name: read(os.path.join(CATALOG_FIXTURES, name))  # noqa: E731

    cat = seeds["catalog"]
    for sel, names in [
        (DELL, ["Catalog.xml.gz", "dell-firmirror-utf8.xml", "dell-firmirror-utf16le.xml", "dell-catalog.src.xml"]),
        (HPE_REPO, ["hpe-fwrepo.json"]),
        (HPE_PAYLOAD, ["hpe-payload.json"]),
        (GENERIC, ["generic.yaml", "ironic-firmware-images.json", "modeldata.json"]),
        (LVFS_BASE, ["lvfs-metadata.xml"]),
        (LENOVO_XML, ["lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml"]),
        (SMC, ["supermicro-checksum-1.txt", "supermicro-checksum-2.txt", "supermicro-checksum-3.txt"]),
    ]:
        for n in names:
            b = fix(n)
            if b is not None:
                cat[f"{sel:02}-{os.path.basename(n)}"] = bytes([sel]) + b
    payload = fix("hpe-payload.json") or b'{"Devices": {"Device": []}}'
    cat["03-fwpkg"] = bytes([HPE_FWPKG]) + zipped([("payload.json", payload), ("a.compsig", b"sig")])
    index = json.dumps({"version": "1.00", "buildid": "ABC123", "machineTypes": ["7X05"], "sha256": "00" * 32})
    cat["08-comp-zip"] = bytes([LENOVO_ZIP]) + zipped([("lnvgy/index.json", index)])
    metainfo = read(os.path.join(FWUPD_TESTS, "fakedevice124.metainfo.xml")) or fix("lvfs-metadata.xml") or b"<component/>"
    cat["06-metainfo"] = bytes([LVFS]) + metainfo
    jcat_file = jcat([{"Id": "firmware.bin", "Blobs": [{"Kind": 1, "Flags": 1, "Data": "00" * 32}]}])
    cat["10-cab"] = bytes([CAB]) + cab([("firmware.metainfo.xml", metainfo), ("firmware.bin", b"\x55" * 64), ("firmware.jcat", jcat_file)], mszip=True)
    for name in ["fakedevice123.cab", "fakedevice124.cab"]:
        b = read(os.path.join(FWUPD_TESTS, name))
        if b is not None:
            cat[f"10-{name}"] = bytes([CAB]) + b

    seeds["jcat"]["generated"] = jcat(
        [
            {
                "Id": "firmware-07078-stable.xml.gz",
                "AliasIds": ["firmware.xml.gz"],
                "Blobs": [
                    {"Kind": 1, "Flags": 1, "Timestamp": 1700000000, "Data": "ab" * 32},
                    {"Kind": 3, "Flags": 1, "Data": "-----BEGIN PKCS7-----\nMAMCAQE=\n-----END PKCS7-----\n"},
                    {"Kind": 2, "Flags": 1, "Data": "-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n"},
                ],
            }
        ]
    )
    seeds["jcat"]["plain.json"] = json.dumps({"Items": [{"Id": "a", "AliasId": "b", "Blobs": []}]}).encode()
    b = read(os.path.join(FWUPD_TESTS, "fakedevice124.jcat"))
    if b is not None:
        seeds["jcat"]["fakedevice124.jcat"] = b
        # Its PKCS#7 blobs (PEM) for the detached-signature verifier.
        raw = b
        while raw[:2] == b"\x1f\x8b":
            raw = zlib.decompressobj(31).decompress(raw)
        for item in json.loads(raw).get("Items", []):
            for i, blob in enumerate(item.get("Blobs", [])):
                if blob.get("Kind") == 3:
                    seeds["pkcs7"][f"{item['Id']}-{i}.pem"] = blob["Data"].encode()
    seeds["pkcs7"]["tiny.pem"] = b"-----BEGIN PKCS7-----\nMAMCAQE=\n-----END PKCS7-----\n"

    arc = seeds["archive"]
    members = [("firmware/a.bin", b"\x00\x01" * 200), ("b.txt", b"hello\n"), ("dir/", b"")]
    arc["stored.zip"] = zipped(members, zipfile.ZIP_STORED)
    arc["deflate.zip"] = zipped(members)
    arc["nested.zip"] = zipped([("inner.zip", zipped(members)), ("x.gz", gzip.compress(b"abc" * 100))])
    arc["stored.cab"] = cab([("a.bin", b"\x01" * 100), ("b/c.txt", b"text")])
    arc["mszip.cab"] = cab([("a.bin", b"\x01" * 40000), ("b.txt", b"text")], mszip=True)
    arc["gzip"] = gzip.compress(b"payload" * 50) + b"IHATECDN"
    arc["xz"] = lzma.compress(b"payload" * 50)
    arc["zstd"] = zstd(b"payload" * 50)
    for name in ["fakedevice123.cab", "fakedevice124.cab"]:
        b = read(os.path.join(FWUPD_TESTS, name))
        if b is not None:
            arc[name] = b

    small_fv = sample_fv()
    cap = seeds["capsule"]
    cap["fmp-v3-auth"] = capsule(FMP_CAPSULE, fmp([], [auth(b"image bytes")]))
    cap["fmp-v1-driver"] = capsule(FMP_CAPSULE, fmp([tiny_pe()], [b"plain image"], version=1))
    cap["fmp-v2"] = capsule(FMP_CAPSULE, fmp([], [auth(small_fv[:4096]), b"second"], version=2))
    cap["efi-capsule-fv"] = capsule(EFI_CAPSULE, small_fv, header_size=28, flags=0)

    fvs = seeds["fv"]
    fvs["generated"] = small_fv
    fvs["no-polarity"] = fv([ffs_file(g("11111111-0000-0000-0000-000000000009"), 0x02, pad4(ui("Zero")), polarity=False)], polarity=False)
    fvs["nvdata"] = fv_vars()
    code = read(os.path.join(OVMF, "OVMF_CODE_4M.fd"), limit=1 << 23)
    if code is not None and len(code) > 0x348000:
        fvs["ovmf-sec"] = code[0x348000:][:MAX_SEED]
    vars_ms = read(os.path.join(OVMF, "OVMF_VARS_4M.ms.fd"), limit=1 << 20)
    if vars_ms is not None:
        fvs["ovmf-vars-ms"] = vars_ms[:0x4000]

    for name in sorted(os.listdir(TIANO_FIXTURES)) if os.path.isdir(TIANO_FIXTURES) else []:
        b = read(os.path.join(TIANO_FIXTURES, name))
        if b is not None and name.endswith(".bin"):
            seeds["tiano"][name] = b
        elif b is not None and name.endswith(".fv"):
            fvs["tiano-" + name] = b

    vss = seeds["vss"]
    vss["generated"] = vss2([("PK", GLOBAL_VARIABLE, sample_db()), ("dbx", IMAGE_SECURITY_DATABASE, sample_db())], size=0x800)
    vss["dollar"] = b"$VSS" + struct.pack("<I", 0x100) + bytes([0x5A, 0xFE, 0, 0]) + b"\0" * 4 + b"\xff" * 0xF0
    esls = seeds["esl"]
    esls["generated"] = sample_db()
    esls["efivarfs"] = struct.pack("<I", 0x27) + sample_db()
    if vars_ms is not None:
        vss["ovmf-vars-ms"] = vars_ms[0x48 : 0x48 + 0x4000]
        for name, data in ovmf_variables(vars_ms):
            if name in ("PK", "KEK", "db", "dbx") and len(data) <= MAX_SEED:
                esls[f"ovmf-{name}"] = data

    pes = seeds["pe"]
    pes["tiny"] = tiny_pe()
    for name in ["fbx64.efi.signed"]:
        b = read(os.path.join(SHIM, name), limit=1 << 20)
        if b is not None and len(b) <= MAX_SEED:
            pes[name] = b
            # Its certificate table: the raw PKCS#7 path of the target.
            pe_off = struct.unpack_from("<I", b, 0x3C)[0]
            magic = struct.unpack_from("<H", b, pe_off + 24)[0]
            dirs = pe_off + 24 + (112 if magic == 0x20B else 96)
            va, size = struct.unpack_from("<II", b, dirs + 8 * 4)
            if va and size and va + size <= len(b):
                length = struct.unpack_from("<I", b, va)[0]
                pes["fbx64-pkcs7"] = b[va + 8 : va + length]

    scan = seeds["scan"]
    for t in ["capsule", "archive", "fv", "vss", "pe"]:
        for name, data in seeds[t].items():
            scan[f"{t}-{name}"] = data

    for t, files in seeds.items():
        d = os.path.join(out, t)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
    print(" ".join(f"{t}:{len(f)}" for t, f in seeds.items()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
