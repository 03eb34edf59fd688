//! IPMI over LAN (RMCP+) against OpenIPMI's `ipmi_sim` (Debian package `openipmi`), cross-checked
//! with `ipmitool` (package `ipmitool`) where it is installed; plus fuzzing of every parser.
//!
//! Without `ipmi_sim` the simulator tests are skipped with a message, except under CI (`CI` set),
//! where they fail.

use std::collections::HashMap;
use std::net::UdpSocket as StdUdp;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use automata_bmc::Credentials;
use automata_bmc::ipmi::{
    self, GuidEncoding, IpmiError, IpmiOptions, IpmiReadings, decode_system_guid, fru,
    parse_device_id, wire,
};
use automata_schemas::types::{ComponentKind, InventorySource};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// FRU image builder (Platform Management FRU Information Storage Definition v1.0 rev 1.3)

fn ascii(s: &str) -> Vec<u8> {
    let mut v = vec![0xc0 | s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn six_bit(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc |= u32::from(c - 0x20) << bits;
        bits += 6;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
    let mut v = vec![0x80 | out.len() as u8];
    v.extend(out);
    v
}

fn bcd_plus(s: &str) -> Vec<u8> {
    let nib = |c: char| match c {
        '0'..='9' => c as u8 - b'0',
        ' ' => 0xa,
        '-' => 0xb,
        '.' => 0xc,
        _ => panic!("not BCD plus"),
    };
    let cs: Vec<u8> = s.chars().map(nib).collect();
    let body: Vec<u8> = cs
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0xa))
        .collect();
    let mut v = vec![0x40 | body.len() as u8];
    v.extend(body);
    v
}

fn zero_sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg()
}

/// Closes an info area: end marker, pad to a multiple of 8 (checksum included), checksum.
fn finish_area(mut a: Vec<u8>) -> Vec<u8> {
    a.push(0xc1);
    while !(a.len() + 1).is_multiple_of(8) {
        a.push(0);
    }
    a[1] = ((a.len() + 1) / 8) as u8;
    let c = zero_sum(&a);
    a.push(c);
    a
}

const MFG_MINUTES: u32 = 14_728_504; // 2024-01-02 03:04 UTC

fn fru_image() -> Vec<u8> {
    let mut chassis = vec![0x01, 0, 0x17];
    chassis.extend(ascii("CH-PN-001"));
    chassis.extend(ascii("CHS123456"));
    chassis.extend(ascii("rack-a12"));
    let chassis = finish_area(chassis);

    let mut board = vec![0x01, 0, 25];
    board.extend_from_slice(&MFG_MINUTES.to_le_bytes()[..3]);
    board.extend(ascii("Acme Boards"));
    board.extend(ascii("X100-MB"));
    board.extend(six_bit("BRD0001"));
    board.extend(bcd_plus("123-45.6"));
    board.push(0xc0); // empty FRU file id
    let board = finish_area(board);

    let mut product = vec![0x01, 0, 25];
    product.extend(ascii("Acme"));
    product.extend(ascii("Acme Server 1U"));
    product.extend(ascii("AS-1U-01"));
    product.extend(ascii("A1"));
    product.extend(ascii("SRV987654"));
    product.extend(ascii("ASSET-42"));
    product.push(0xc0);
    let product = finish_area(product);

    let c_off = 8;
    let b_off = c_off + chassis.len();
    let p_off = b_off + board.len();
    let mut h = vec![
        0x01,
        0,
        (c_off / 8) as u8,
        (b_off / 8) as u8,
        (p_off / 8) as u8,
        0,
        0,
    ];
    h.push(zero_sum(&h));
    let mut img = h;
    img.extend(chassis);
    img.extend(board);
    img.extend(product);
    img
}

// ---------------------------------------------------------------------------------------------
// Pure checks

/// The Dell-style SMBIOS UUID the simulator serves, and its SMBIOS-order bytes.
const SYSTEM_UUID: &str = "4c4c4544-0042-3510-8052-b3c04f4d3732";

fn smbios_bytes(u: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(u).expect("uuid").to_bytes_le()
}

#[test]
fn fru_image_parses() {
    let inv = fru::parse(&fru_image());
    assert!(inv.errors.is_empty(), "{:?}", inv.errors);
    let c = inv.chassis.expect("chassis");
    assert_eq!(c.chassis_type, 0x17);
    assert_eq!(c.part_number.as_deref(), Some("CH-PN-001"));
    assert_eq!(c.serial.as_deref(), Some("CHS123456"));
    assert_eq!(c.custom, vec!["rack-a12".to_string()]);
    let b = inv.board.expect("board");
    assert_eq!(b.mfg_date.as_deref(), Some("2024-01-02T03:04:00Z"));
    assert_eq!(b.manufacturer.as_deref(), Some("Acme Boards"));
    assert_eq!(b.product.as_deref(), Some("X100-MB"));
    assert_eq!(b.serial.as_deref(), Some("BRD0001"));
    assert_eq!(b.part_number.as_deref(), Some("123-45.6"));
    assert_eq!(b.fru_file_id, None);
    let p = inv.product.expect("product");
    assert_eq!(p.manufacturer.as_deref(), Some("Acme"));
    assert_eq!(p.name.as_deref(), Some("Acme Server 1U"));
    assert_eq!(p.part_number.as_deref(), Some("AS-1U-01"));
    assert_eq!(p.version.as_deref(), Some("A1"));
    assert_eq!(p.serial.as_deref(), Some("SRV987654"));
    assert_eq!(p.asset_tag.as_deref(), Some("ASSET-42"));
}

#[test]
fn fru_damage_is_reported_not_fatal() {
    let mut img = fru_image();
    let last = img.len() - 1;
    img[last] ^= 0xff; // product checksum
    let inv = fru::parse(&img);
    assert!(inv.product.is_some());
    assert!(
        inv.errors.iter().any(|e| e.contains("checksum")),
        "{:?}",
        inv.errors
    );
    // A truncated image keeps the areas that fit.
    let inv = fru::parse(&fru_image()[..50]);
    assert!(inv.chassis.is_some());
    assert!(inv.product.is_none());
    assert!(!inv.errors.is_empty());
    // A bad header yields nothing, with a reason.
    let inv = fru::parse(&[0x01, 0, 0, 0, 0, 0, 0, 0x01]);
    assert!(inv.chassis.is_none() && inv.errors.len() == 1);
}

#[test]
fn system_guid_byte_orders() {
    // SMBIOS order (what most BMCs and ipmi_sim's lan.conf `guid` send).
    let raw = smbios_bytes(SYSTEM_UUID);
    let (u, enc) = decode_system_guid(&raw).expect("guid");
    assert_eq!(u.hyphenated().to_string(), SYSTEM_UUID);
    assert_eq!(enc, GuidEncoding::Smbios);
    // IPMI-specification order: all bytes reversed.
    let rfc = "6f1a2b3c-4d5e-4f60-8172-8394a5b6c7d8";
    let mut rev = *uuid::Uuid::parse_str(rfc).expect("uuid").as_bytes();
    rev.reverse();
    let (u, enc) = decode_system_guid(&rev).expect("guid");
    assert_eq!(
        (u.hyphenated().to_string().as_str(), enc),
        (rfc, GuidEncoding::Ipmi)
    );
    // Neither order well formed (SMBIOS UUIDs often are not): SMBIOS order.
    let raw = [
        0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xac, 0x1f, 0x6b, 0x12, 0x34, 0x56,
    ];
    let (u, enc) = decode_system_guid(&raw).expect("guid");
    assert_eq!(
        u.hyphenated().to_string(),
        "00000000-0000-0000-0000-ac1f6b123456"
    );
    assert_eq!(enc, GuidEncoding::Smbios);
    assert!(decode_system_guid(&raw[..15]).is_none());
}

#[test]
fn device_id_decodes() {
    let d = parse_device_id(&[
        0x20, 0x81, 0x09, 0x08, 0x02, 0x9f, 0x91, 0x12, 0x00, 0x02, 0x0f, 1, 2, 3, 4,
    ])
    .expect("device id");
    assert_eq!(d.firmware, "9.08");
    assert_eq!(d.ipmi_version, "2.0");
    assert_eq!(d.manufacturer_id, 4753);
    assert_eq!(d.product_id, 0x0f02);
    assert_eq!(d.device_revision, 1);
    assert_eq!(d.aux_firmware.as_deref(), Some("01020304"));
    assert!(parse_device_id(&[0; 10]).is_none());
}

#[test]
fn snapshot_without_guid_falls_back_to_the_address() {
    let s = ipmi::to_snapshot("10.0.0.9", IpmiReadings::default(), 1);
    assert_eq!(s.server_id, "ipmi:10.0.0.9");
    assert!(s.errors.iter().any(|e| e.contains("no system GUID")));
    assert_eq!(s.components.len(), 1);
    assert_eq!(s.components[0].component_id, "bmc:0");
    let placeholder = IpmiReadings {
        system_guid: Some(vec![0; 16]),
        ..Default::default()
    };
    let s = ipmi::to_snapshot("h", placeholder, 1);
    assert_eq!(s.server_id, "ipmi:h");
}

#[test]
fn addresses() {
    let ok = |a: &str| ipmi::split_address(a).expect(a);
    assert_eq!(ok("bmc1"), ("bmc1".into(), 623));
    assert_eq!(ok("10.1.2.3:6230"), ("10.1.2.3".into(), 6230));
    assert_eq!(ok("[fe80::1]:624"), ("fe80::1".into(), 624));
    assert_eq!(ok("[fe80::1]"), ("fe80::1".into(), 623));
    assert_eq!(ok("fe80::1"), ("fe80::1".into(), 623));
    for bad in ["", ":623", "h:x", "[::1", "[::1]x", "h:70000"] {
        assert!(ipmi::split_address(bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = fru::parse(&bytes);
        let mut errors = Vec::new();
        let _ = fru::parse_chassis(&bytes, &mut errors);
        let _ = fru::parse_board(&bytes, &mut errors);
        let _ = fru::parse_product(&bytes, &mut errors);
        let _ = fru::decode_field(&bytes, 0);
        let _ = fru::six_bit_ascii(&bytes);
        let _ = fru::bcd_plus(&bytes);
        let _ = wire::parse_frame(&bytes);
        let _ = wire::parse_presession(&bytes);
        let _ = wire::parse_open_session_response(&bytes);
        let _ = wire::parse_rakp2(&bytes);
        let _ = wire::parse_rakp4(&bytes);
        let _ = wire::parse_ipmi_response(&bytes);
        let _ = parse_device_id(&bytes);
        let _ = decode_system_guid(&bytes);
        if let Ok(h) = fru::parse_header(&bytes) {
            let _ = fru::needed_len(&h, |o| bytes.get(o + 1).copied());
        }
    }

    /// Random bytes behind a valid header and valid area offsets reach the area decoders.
    #[test]
    fn fru_with_valid_header_never_panics(
        offs in proptest::array::uniform3(0u8..8),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut h = vec![0x01, 0, offs[0], offs[1], offs[2], 0, 0];
        h.push(zero_sum(&h));
        h.extend(body);
        let _ = fru::parse(&h);
    }

    /// Random payloads inside a well-formed RMCP+ frame reach the message parsers.
    #[test]
    fn framed_payloads_never_panic(pt in 0u8..0x40, payload in proptest::collection::vec(any::<u8>(), 0..120)) {
        prop_assume!(pt != 0x02); // OEM explicit payloads are refused by design
        let pkt = wire::presession_packet(pt, &payload);
        let (t, body) = wire::parse_presession(&pkt).expect("own frame");
        prop_assert_eq!(t, pt & 0x3f);
        prop_assert_eq!(body, payload.as_slice());
        let _ = wire::parse_open_session_response(body);
        let _ = wire::parse_rakp2(body);
        let _ = wire::parse_rakp4(body);
    }
}

// ---------------------------------------------------------------------------------------------
// ipmi_sim

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Whether the simulator tests can run; panics under CI when they cannot.
fn sim_available() -> bool {
    if have("ipmi_sim") {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("ipmi_sim not installed: CI must `apt-get install -y openipmi ipmitool`");
    }
    eprintln!("SKIPPED: ipmi_sim not installed (Debian: apt-get install openipmi ipmitool)");
    false
}

fn free_udp_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

struct Sim {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn start_sim() -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    let port = free_udp_port();
    let fru_path = d.join("fru.bin");
    let image = fru_image();
    std::fs::write(&fru_path, &image).expect("fru");
    std::fs::write(
        d.join("lan.conf"),
        format!(
            r#"name "ma-ipmi"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {guid}
  endlan
  user 1 true  ""      "unused" user  10 none md2 md5 straight
  user 2 true  "admin" "secret" admin 10 none md2 md5 straight
  user 3 true  "viewer" "look"  user  10 none md2 md5 straight
"#,
            guid = hex(&smbios_bytes(SYSTEM_UUID))
        ),
    )
    .expect("lan.conf");
    std::fs::write(
        d.join("bmc.emu"),
        format!(
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n\
             mc_add_fru_data 0x20 0 {} file 0 \"{}\"\n\
             mc_enable 0x20\n",
            image.len(),
            fru_path.display()
        ),
    )
    .expect("emu");
    std::fs::create_dir(d.join("state")).expect("state");
    let log = std::fs::File::create(d.join("sim.log")).expect("log");
    let child = Command::new("ipmi_sim")
        .arg("-c")
        .arg(d.join("lan.conf"))
        .arg("-f")
        .arg(d.join("bmc.emu"))
        .arg("-s")
        .arg(d.join("state"))
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn ipmi_sim");
    let sim = Sim {
        child,
        port,
        _dir: dir,
    };
    wait_ready(&sim, d);
    sim
}

/// Waits until the simulator's UDP port is bound (it answers an RMCP ping).
fn wait_ready(sim: &Sim, dir: &Path) {
    let s = StdUdp::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    // RMCP/ASF Presence Ping.
    let ping = [0x06, 0, 0xff, 0x06, 0, 0, 0x11, 0xbe, 0x80, 0, 0, 0];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let _ = s.send_to(&ping, ("127.0.0.1", sim.port));
        let mut buf = [0u8; 64];
        if s.recv(&mut buf).is_ok() {
            return;
        }
    }
    let log = std::fs::read_to_string(dir.join("sim.log")).unwrap_or_default();
    panic!("ipmi_sim did not come up on port {}: {log}", sim.port);
}

fn opts(timeout_ms: u64, retries: u32) -> IpmiOptions {
    IpmiOptions {
        timeout: Duration::from_millis(timeout_ms),
        retries,
    }
}

/// `key : value` lines of an ipmitool report.
fn ipmitool(port: u16, args: &[&str]) -> Option<HashMap<String, String>> {
    if !have("ipmitool") {
        eprintln!("ipmitool not installed: cross-check skipped");
        return None;
    }
    let out = Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "admin", "-P", "secret", "-C", "3"])
        .args(args)
        .output()
        .expect("ipmitool");
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|l| l.split_once(" : "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_inventory_from_ipmi_sim() {
    if !sim_available() {
        return;
    }
    let sim = start_sim();
    let address = format!("127.0.0.1:{}", sim.port);
    let creds = Credentials::new("admin", "secret");
    let snap = ipmi::collect(&address, &creds, &opts(2000, 2))
        .await
        .expect("collect");

    assert_eq!(snap.source, InventorySource::Ipmi);
    assert_eq!(snap.server_id, SYSTEM_UUID);
    assert!(snap.errors.is_empty(), "errors: {:?}", snap.errors);
    assert_eq!(snap.system.uuid.as_deref(), Some(SYSTEM_UUID));
    assert_eq!(snap.system.manufacturer.as_deref(), Some("Acme"));
    assert_eq!(snap.system.product.as_deref(), Some("Acme Server 1U"));
    assert_eq!(snap.system.serial.as_deref(), Some("SRV987654"));
    assert_eq!(snap.system.sku.as_deref(), Some("AS-1U-01"));
    assert_eq!(snap.system.asset_tag.as_deref(), Some("ASSET-42"));

    let by_id: HashMap<_, _> = snap
        .components
        .iter()
        .map(|c| (c.component_id.as_str(), c))
        .collect();
    let bmc = by_id["bmc:0"];
    assert_eq!(bmc.kind, ComponentKind::Bmc);
    assert_eq!(bmc.firmware_version.as_deref(), Some("9.08"));
    assert_eq!(bmc.properties["manufacturer_id"], "4753");
    assert_eq!(bmc.properties["product_id"], "0x0f02");
    assert_eq!(bmc.properties["ipmi_version"], "2.0");
    assert_eq!(bmc.properties["address"], address);
    assert_eq!(bmc.properties["cipher_suite"], "3");
    assert_eq!(bmc.properties["system_guid_encoding"], "smbios");
    let chassis = by_id["chassis:0"];
    assert_eq!(chassis.kind, ComponentKind::Chassis);
    assert_eq!(chassis.name, "Rack Mount Chassis");
    assert_eq!(chassis.serial.as_deref(), Some("CHS123456"));
    assert_eq!(chassis.part_number.as_deref(), Some("CH-PN-001"));
    assert_eq!(chassis.properties["product_version"], "A1");
    let board = by_id["board:0"];
    assert_eq!(board.kind, ComponentKind::Baseboard);
    assert_eq!(board.manufacturer.as_deref(), Some("Acme Boards"));
    assert_eq!(board.model.as_deref(), Some("X100-MB"));
    assert_eq!(board.serial.as_deref(), Some("BRD0001"));
    assert_eq!(board.part_number.as_deref(), Some("123-45.6"));
    assert_eq!(board.properties["mfg_date"], "2024-01-02T03:04:00Z");

    // The same values as ipmitool reads them.
    if let Some(mc) = ipmitool(sim.port, &["mc", "info"]) {
        assert_eq!(mc.get("Firmware Revision"), bmc.firmware_version.as_ref());
        assert_eq!(mc["Manufacturer ID"], "4753");
        assert!(mc["Product ID"].contains("0x0f02"), "{mc:?}");
        assert_eq!(mc["IPMI Version"], "2.0");
    }
    if let Some(guid) = ipmitool(sim.port, &["mc", "guid"]) {
        assert_eq!(guid["System GUID"], SYSTEM_UUID);
    }
    if let Some(f) = ipmitool(sim.port, &["fru", "print", "0"]) {
        for (key, ours) in [
            ("Chassis Part Number", chassis.part_number.as_deref()),
            ("Chassis Serial", chassis.serial.as_deref()),
            ("Board Mfg", board.manufacturer.as_deref()),
            ("Board Product", board.model.as_deref()),
            ("Board Serial", board.serial.as_deref()),
            ("Board Part Number", board.part_number.as_deref()),
            ("Product Manufacturer", snap.system.manufacturer.as_deref()),
            ("Product Name", snap.system.product.as_deref()),
            ("Product Part Number", snap.system.sku.as_deref()),
            ("Product Version", Some("A1")),
            ("Product Serial", snap.system.serial.as_deref()),
            ("Product Asset Tag", snap.system.asset_tag.as_deref()),
        ] {
            assert_eq!(f.get(key).map(String::as_str), ours, "{key}: {f:?}");
        }
    }

    // A User-privilege account reads the same inventory.
    let viewer = ipmi::collect(
        &address,
        &Credentials::new("viewer", "look"),
        &opts(2000, 2),
    )
    .await
    .expect("collect as a User-privilege account");
    assert_eq!(viewer.server_id, SYSTEM_UUID);
    assert!(viewer.errors.is_empty(), "{:?}", viewer.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_auth_errors() {
    if !sim_available() {
        return;
    }
    let sim = start_sim();
    let address = format!("127.0.0.1:{}", sim.port);
    let err = ipmi::collect(
        &address,
        &Credentials::new("admin", "wrong"),
        &opts(1000, 1),
    )
    .await
    .expect_err("wrong password accepted");
    assert!(matches!(err, IpmiError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    eprintln!("wrong password: {msg}");
    assert!(msg.contains("wrong password"), "{msg}");
    assert!(!msg.contains("wrong\"") && !format!("{err:?}").contains("\"wrong\""));
    let err = ipmi::collect(&address, &Credentials::new("nobody", "x"), &opts(1000, 1))
        .await
        .expect_err("unknown user accepted");
    eprintln!("unknown user: {err}");
    assert!(matches!(err, IpmiError::Auth { .. }), "{err:?}");
    // The simulator still serves the right password afterwards.
    ipmi::collect(
        &address,
        &Credentials::new("admin", "secret"),
        &opts(2000, 1),
    )
    .await
    .expect("collect after failures");
}

#[tokio::test]
async fn silent_port_times_out_within_the_configured_timeout() {
    // A bound socket that never answers: a BMC that drops RMCP+.
    let hole = StdUdp::bind("127.0.0.1:0").expect("bind");
    let address = format!("127.0.0.1:{}", hole.local_addr().expect("addr").port());
    let start = Instant::now();
    let err = ipmi::collect(
        &address,
        &Credentials::new("admin", "secret"),
        &opts(300, 1),
    )
    .await
    .expect_err("answer from nowhere");
    let took = start.elapsed();
    assert!(
        matches!(err, IpmiError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    drop(hole);
}

/// A fake BMC that refuses every cipher suite: both supported suites are proposed, in order,
/// and the error names what each got.
#[tokio::test]
async fn every_suite_refused_is_reported_per_suite() {
    let bmc = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("127.0.0.1:{}", bmc.local_addr().expect("addr").port());
    let fake = tokio::spawn(async move {
        let mut proposals = Vec::new();
        let mut buf = [0u8; 512];
        while proposals.len() < 2 {
            let (n, from) = bmc.recv_from(&mut buf).await.expect("recv");
            let Ok((wire::PAYLOAD_OPEN_SESSION_REQUEST, req)) = wire::parse_presession(&buf[..n])
            else {
                continue;
            };
            proposals.push((req[12], req[20], req[28]));
            let mut resp = vec![req[0], 0x04, 0, 0];
            resp.extend_from_slice(&req[4..8]);
            let pkt = wire::presession_packet(wire::PAYLOAD_OPEN_SESSION_RESPONSE, &resp);
            bmc.send_to(&pkt, from).await.expect("send");
        }
        proposals
    });
    let err = ipmi::collect(
        &address,
        &Credentials::new("admin", "secret"),
        &opts(1000, 0),
    )
    .await
    .expect_err("no suite");
    eprintln!("{err}");
    assert!(matches!(err, IpmiError::NoCipherSuite { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("suite 3: invalid authentication algorithm"),
        "{msg}"
    );
    assert!(
        msg.contains("suite 17: invalid authentication algorithm"),
        "{msg}"
    );
    let proposals = fake.await.expect("fake bmc");
    assert_eq!(proposals, vec![(1, 1, 1), (3, 4, 1)]);
}

#[tokio::test]
async fn closed_port_fails_fast() {
    let port = free_udp_port();
    let address = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let err = ipmi::collect(
        &address,
        &Credentials::new("admin", "secret"),
        &opts(500, 0),
    )
    .await
    .expect_err("answer from a closed port");
    // Loopback reports ICMP port unreachable; a filtered network would time out instead.
    assert!(
        matches!(
            err,
            IpmiError::Unreachable { .. } | IpmiError::Timeout { .. }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(1000));
}

#[tokio::test]
async fn bad_address_is_an_address_error() {
    let err = ipmi::collect(
        "h:notaport",
        &Credentials::new("a", "b"),
        &IpmiOptions::default(),
    )
    .await
    .expect_err("bad address");
    assert!(matches!(err, IpmiError::Address { .. }), "{err:?}");
}
