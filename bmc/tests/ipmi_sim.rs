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
    self, GuidEncoding, IpmiError, IpmiOptions, IpmiReadings, IpmiSession, dcmi,
    decode_system_guid, fru, parse_device_id, sdr, sel, telemetry, wire,
};
use automata_schemas::types::{ComponentKind, InventorySource, LogSeverity, SensorKind};
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
// SDR records and the simulator's sensors

/// A sensor's linearisation and thresholds for [`full_sdr`].
struct Analog {
    m: i16,
    b: i16,
    b_exp: i8,
    r_exp: i8,
    /// Analog data format: 0 unsigned, 1 one's, 2 two's complement.
    format: u8,
    tolerance: u8,
    /// Raw thresholds LNC, LC, LNR, UNC, UC, UNR and which are readable (bit 0 = LNC).
    thresholds: [u8; 6],
    readable: u8,
}

/// A Full Sensor Record (IPMI v2.0 table 43-1) owned by the BMC.
#[allow(clippy::too_many_arguments)]
fn full_sdr(
    id: u16,
    lun: u8,
    number: u8,
    entity: u8,
    sensor_type: u8,
    unit: u8,
    a: &Analog,
    name: &str,
) -> Vec<u8> {
    let m = (a.m as u16) & 0x3ff;
    let b = (a.b as u16) & 0x3ff;
    let t = a.thresholds;
    let mut body = vec![
        0x20,
        lun,
        number,
        entity,
        0x01,
        0x7f,
        0x68, // capabilities: thresholds readable and settable
        sensor_type,
        0x01, // threshold-based
        0x95,
        0x0a,
        0x95,
        0x0a,
        a.readable,
        0x3f,
        a.format << 6,
        unit,
        0,
        0, // linear
        (m & 0xff) as u8,
        (((m >> 8) as u8) << 6) | (a.tolerance & 0x3f),
        (b & 0xff) as u8,
        ((b >> 8) as u8) << 6,
        0,
        (((a.r_exp as u8) & 0x0f) << 4) | ((a.b_exp as u8) & 0x0f),
        0x07,
        0x80,
        0xff,
        0,
        0xff,
        0,
        t[5],
        t[4],
        t[3],
        t[2],
        t[1],
        t[0],
        2,
        2,
        0,
        0,
        0,
        0xc0 | name.len() as u8,
    ];
    body.extend_from_slice(name.as_bytes());
    let mut r = vec![
        (id & 0xff) as u8,
        (id >> 8) as u8,
        0x51,
        0x01,
        body.len() as u8,
    ];
    r.extend(body);
    r
}

/// A Compact Sensor Record (table 43-2) of a sensor-specific discrete sensor.
fn compact_sdr(id: u16, number: u8, sensor_type: u8, name: &str) -> Vec<u8> {
    let mut body = vec![
        0x20,
        0,
        number,
        0x03,
        0x01,
        0x7f,
        0x40,
        sensor_type,
        0x6f,
        0xff,
        0x0f,
        0xff,
        0x0f,
        0xff,
        0x0f,
        0xc0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0xc0 | name.len() as u8,
    ];
    body.extend_from_slice(name.as_bytes());
    let mut r = vec![
        (id & 0xff) as u8,
        (id >> 8) as u8,
        0x51,
        0x02,
        body.len() as u8,
    ];
    r.extend(body);
    r
}

fn bytes_arg(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:#04x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU Temp: y = (5x − 20·10¹)·10⁻¹ = 0.5x − 20 °C.
const CPU_TEMP: Analog = Analog {
    m: 5,
    b: -20,
    b_exp: 1,
    r_exp: -1,
    format: 0,
    tolerance: 2,
    thresholds: [0x8c, 0x78, 0x64, 0xc8, 0xdc, 0xf0],
    readable: 0x3f,
};
/// Fan 1: y = (6x + 5)·10¹ RPM.
const FAN: Analog = Analog {
    m: 6,
    b: 5,
    b_exp: 0,
    r_exp: 1,
    format: 0,
    tolerance: 1,
    thresholds: [0x14, 0x0a, 0, 0, 0, 0],
    readable: 0x03,
};
/// P12V Neg, two's complement: y = (100x − 2·10¹)·10⁻³ V.
const NEG_RAIL: Analog = Analog {
    m: 100,
    b: -2,
    b_exp: 1,
    r_exp: -3,
    format: 2,
    tolerance: 2,
    thresholds: [0x84, 0x82, 0, 0x8c, 0x8e, 0],
    readable: 0x1b,
};
/// Inlet Temp on LUN 1: identity conversion, no thresholds.
const INLET: Analog = Analog {
    m: 1,
    b: 0,
    b_exp: 0,
    r_exp: 0,
    format: 0,
    tolerance: 0,
    thresholds: [0; 6],
    readable: 0,
};
/// PSU1 Power: y = 2x·10¹ W.
const PSU_POWER: Analog = Analog {
    m: 2,
    b: 0,
    b_exp: 0,
    r_exp: 1,
    format: 0,
    tolerance: 0,
    thresholds: [0, 0, 0, 0x32, 0x3c, 0],
    readable: 0x18,
};

fn sdr_records() -> Vec<Vec<u8>> {
    vec![
        full_sdr(1, 0, 0x01, 0x03, 0x01, 1, &CPU_TEMP, "CPU Temp"),
        full_sdr(2, 0, 0x02, 0x1d, 0x04, 18, &FAN, "Fan 1"),
        full_sdr(3, 0, 0x03, 0x07, 0x02, 4, &NEG_RAIL, "P12V Neg"),
        compact_sdr(4, 0x04, 0x07, "Proc 1"),
        full_sdr(5, 1, 0x05, 0x07, 0x01, 1, &INLET, "Inlet Temp"),
        full_sdr(6, 0, 0x06, 0x0a, 0x08, 6, &PSU_POWER, "PSU1 Power"),
    ]
}

/// `sensor_set_threshold` arguments: UNR … LNC as in ipmi_sim_cmd(5).
fn threshold_args(a: &Analog) -> String {
    let mask: String = (0..6)
        .rev()
        .map(|i| if a.readable & (1 << i) != 0 { '1' } else { '0' })
        .collect();
    let t = a.thresholds;
    format!(
        "settable {mask} {:#04x} {:#04x} {:#04x} {:#04x} {:#04x} {:#04x}",
        t[5], t[4], t[3], t[2], t[1], t[0]
    )
}

/// SEL entries added at start (record type, 13 bytes; ipmi_sim stamps its own time).
const SEL_ADDS: [&str; 5] = [
    // Memory #0x10, Uncorrectable ECC, asserted.
    "0x02 0 0 0 0 0x20 0x00 0x04 0x0c 0x10 0x6f 0x01 0xff 0x00",
    // Timestamped OEM record C1h from IANA 343 (0x000157).
    "0xc1 0 0 0 0 0x57 0x01 0x00 1 2 3 4 5 6",
    // Power Supply #0x20 failure, deasserted.
    "0x02 0 0 0 0 0x20 0x00 0x04 0x08 0x20 0xef 0x01 0xff 0xff",
    // Memory #0x10, Correctable ECC, asserted.
    "0x02 0 0 0 0 0x20 0x00 0x04 0x0c 0x10 0x6f 0x00 0xff 0xff",
    // Non-timestamped OEM record E0h.
    "0xe0 1 2 3 4 5 6 7 8 9 10 11 12 13",
];

/// The emulator commands for the sensors above and the SEL, ending with `mc_enable`; after
/// it CPU Temp goes to raw E0h (92 °C), which logs Upper Non-critical and Upper Critical
/// going-high events.
fn sensor_emu() -> String {
    let mut e = String::from("sel_enable 0x20 1000 0x0a\n");
    for r in sdr_records() {
        e += &format!("main_sdr_add 0x20 {}\n", bytes_arg(&r));
    }
    let events = "000111111111111";
    e += &format!(
        "sensor_add 0x20 0 1 0x01 0x01\n\
         sensor_set_threshold 0x20 0 1 {}\n\
         sensor_set_event_support 0x20 0 1 enable scanning per-state {events} {events} {events} {events}\n\
         sensor_set_value 0x20 0 1 0x96 0\n\
         sensor_add 0x20 0 2 0x04 0x01\n\
         sensor_set_threshold 0x20 0 2 {}\n\
         sensor_set_value 0x20 0 2 100 0\n\
         sensor_add 0x20 0 3 0x02 0x01\n\
         sensor_set_threshold 0x20 0 3 {}\n\
         sensor_set_value 0x20 0 3 0x88 0\n\
         sensor_add 0x20 0 4 0x07 0x6f\n\
         sensor_set_bit 0x20 0 4 7 1 0\n\
         sensor_add 0x20 1 5 0x01 0x01\n\
         sensor_set_value 0x20 1 5 0x17 0\n\
         sensor_add 0x20 0 6 0x08 0x01\n\
         sensor_set_threshold 0x20 0 6 {}\n\
         sensor_set_value 0x20 0 6 15 0\n",
        threshold_args(&CPU_TEMP),
        threshold_args(&FAN),
        threshold_args(&NEG_RAIL),
        threshold_args(&PSU_POWER),
    );
    for a in SEL_ADDS {
        e += &format!("sel_add 0x20 {a}\n");
    }
    e += "mc_enable 0x20\nsensor_set_value 0x20 0 1 0xe0 1\n";
    e
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
             {}",
            image.len(),
            fru_path.display(),
            sensor_emu()
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

// ---------------------------------------------------------------------------------------------
// Sensors, SEL and DCMI: pure checks

fn info() -> sdr::SdrRepositoryInfo {
    sdr::SdrRepositoryInfo::default()
}

#[test]
fn full_record_conversion_and_fields() {
    let r = sdr::parse_record(&full_sdr(1, 0, 0x01, 0x03, 0x01, 1, &CPU_TEMP, "CPU Temp"))
        .expect("parses")
        .expect("a sensor record");
    assert_eq!((r.record_id, r.record_type), (1, sdr::RECORD_FULL));
    assert_eq!((r.owner_id, r.owner_lun, r.number), (0x20, 0, 0x01));
    assert_eq!((r.entity_id, r.entity_instance), (0x03, 0x01));
    assert_eq!((r.sensor_type, r.event_type), (0x01, 0x01));
    assert_eq!(r.name, "CPU Temp");
    assert_eq!(r.name_encoding, sdr::IdEncoding::Latin1);
    assert_eq!(r.sensor_id(), "ipmi.20.0.01");
    let c = r.conversion.expect("conversion");
    assert_eq!((c.m, c.b, c.b_exp, c.r_exp), (5, -20, 1, -1));
    assert_eq!(c.format, sdr::AnalogFormat::Unsigned);
    assert!((c.tolerance_value() - 0.5).abs() < 1e-9);
    // 0.5x − 20
    assert_eq!(r.convert(0x96), Some(55.0));
    assert_eq!(r.convert(0), Some(-20.0));
    assert_eq!(r.thresholds.upper_critical, Some(0xdc));
    assert_eq!(r.thresholds.lower_non_critical, Some(0x8c));
    // Two's complement: 0x88 = −120 → 0.1·(−120) − 0.02.
    let v = sdr::parse_record(&full_sdr(3, 0, 3, 7, 2, 4, &NEG_RAIL, "P12V Neg"))
        .expect("parses")
        .expect("sensor");
    assert!((v.convert(0x88).expect("value") + 12.02).abs() < 1e-9);
    assert_eq!(v.thresholds.lower_non_recoverable, None, "not readable");
    // One's complement: FEh is −1, FFh is −0.
    let ones = sdr::AnalogFormat::OnesComplement;
    assert_eq!(ones.decode(0xfe), Some(-1.0));
    assert_eq!(ones.decode(0xff), Some(-0.0));
    assert_eq!(ones.decode(0x05), Some(5.0));
    assert_eq!(sdr::AnalogFormat::TwosComplement.decode(0xff), Some(-1.0));
    assert_eq!(sdr::AnalogFormat::None.decode(1), None);
    // Negative M and a non-linear function (sqr): y = ((−2x + 0)·10⁰)².
    let mut c2 = c;
    c2.m = -2;
    c2.b = 0;
    c2.r_exp = 0;
    c2.linearization = 8;
    assert_eq!(c2.value(3), Some(36.0));
    c2.linearization = 0x30; // reserved code: no value rather than a guess
    assert_eq!(c2.value(3), None);
}

#[test]
fn id_strings_in_every_encoding() {
    // 6-bit packed "ABC1" (same packing as FRU fields).
    let six = six_bit("ABC1");
    assert_eq!(
        sdr::decode_id_string(six[0], &six[1..]),
        ("ABC1".to_string(), sdr::IdEncoding::SixBitAscii)
    );
    let bcd = bcd_plus("12-3");
    assert_eq!(sdr::decode_id_string(bcd[0], &bcd[1..]).0, "12-3");
    // Length beyond the bytes present, trailing NUL and spaces: tolerated.
    assert_eq!(sdr::decode_id_string(0xcf, b"Fan 2  \0junk").0, "Fan 2");
    assert_eq!(sdr::decode_id_string(0xc8, b"Fan").0, "Fan");
    assert_eq!(sdr::decode_id_string(0xc3, &[0xb0, 0x43, 0x01]).0, "°C");
    assert_eq!(sdr::decode_id_string(0x00, &[]).0, "");
}

#[test]
fn malformed_sdr_records_are_errors_or_skipped_with_a_reason() {
    let good = full_sdr(1, 0, 1, 3, 1, 1, &CPU_TEMP, "CPU Temp");
    // Truncated body: the header announces more than is there.
    let err = sdr::parse_record(&good[..30]).expect_err("truncated");
    assert!(err.to_string().contains("header announces"), "{err}");
    assert!(sdr::parse_record(&good[..3]).is_err());
    // A Full record too short to hold its ID string byte.
    let mut short = good[..40].to_vec();
    short[4] = 35;
    assert!(sdr::parse_record(&short).is_err());
    // Other record types are not sensors, and not errors.
    let mc_locator = [7, 0, 0x51, 0x12, 3, 0x20, 0, 0];
    assert_eq!(sdr::parse_record(&mc_locator), Ok(None));
    let compact = compact_sdr(4, 4, 7, "Proc 1");
    let repo = sdr::SdrRepository::from_records(
        info(),
        [
            good.as_slice(),
            &good[..20],
            &mc_locator[..],
            compact.as_slice(),
        ],
    );
    assert_eq!(repo.sensors.len(), 2);
    assert_eq!(repo.other_records, 1);
    assert_eq!(repo.skipped.len(), 1);
    assert!(repo.skipped[0].contains("0x0001"), "{:?}", repo.skipped);
    let c = &repo.sensors[1];
    assert_eq!(
        (c.record_type, c.name.as_str()),
        (sdr::RECORD_COMPACT, "Proc 1")
    );
    assert!(c.conversion.is_none() && !c.is_threshold());
}

#[test]
fn reading_flags_and_states() {
    let rec = sdr::parse_record(&full_sdr(1, 0, 1, 3, 1, 1, &CPU_TEMP, "CPU Temp"))
        .expect("ok")
        .expect("sensor");
    let ok = sdr::parse_reading(&[0x96, 0xc0, 0x08], &rec).expect("reading");
    assert_eq!(ok.value, Some(55.0));
    assert!(ok.valid());
    assert_eq!(ok.threshold_status, Some(0x08));
    // Reading unavailable, scanning disabled: no value.
    let na = sdr::parse_reading(&[0x96, 0xe0, 0], &rec).expect("reading");
    assert!(na.unavailable && !na.valid() && na.value.is_none());
    let off = sdr::parse_reading(&[0x96, 0x80], &rec).expect("reading");
    assert!(off.scanning_disabled && off.value.is_none());
    assert!(sdr::parse_reading(&[0x96], &rec).is_err());
    let disc = sdr::parse_record(&compact_sdr(4, 4, 7, "Proc 1"))
        .expect("ok")
        .expect("sensor");
    let st = sdr::parse_reading(&[0, 0xc0, 0x80, 0x01], &disc).expect("reading");
    assert_eq!(st.states, Some(0x0180));
    assert_eq!(st.value, None);
    let t = sdr::parse_thresholds(&[0x12, 1, 2, 3, 4, 5, 6]).expect("thresholds");
    assert_eq!(t.lower_critical, Some(2));
    assert_eq!(t.upper_critical, Some(5));
    assert_eq!(t.lower_non_critical, None);
    assert!(sdr::parse_thresholds(&[0x3f, 1]).is_err());
}

#[test]
fn units_and_kinds_are_normalised() {
    let units = |base: u8| sdr::Units {
        base,
        ..Default::default()
    };
    let k = |t: u8, u: sdr::Units| {
        let (kind, unit, f) = telemetry::normalise(t, &u);
        (kind, unit, f(212.0))
    };
    assert_eq!(
        k(1, units(1)),
        (SensorKind::Temperature, "Cel".into(), 212.0)
    );
    assert_eq!(
        k(1, units(2)),
        (SensorKind::Temperature, "Cel".into(), 100.0)
    );
    assert_eq!(k(4, units(18)), (SensorKind::Fan, "RPM".into(), 212.0));
    assert_eq!(k(2, units(4)), (SensorKind::Voltage, "V".into(), 212.0));
    assert_eq!(k(3, units(5)), (SensorKind::Current, "A".into(), 212.0));
    assert_eq!(k(8, units(6)), (SensorKind::Power, "W".into(), 212.0));
    assert_eq!(k(0x0b, units(6)).0, SensorKind::Power);
    let pct = sdr::Units {
        percentage: true,
        ..Default::default()
    };
    assert_eq!(k(4, pct).1, "%");
    assert_eq!(k(4, pct).0, SensorKind::Fan);
    assert_eq!(k(0x0b, pct).0, SensorKind::Utilization);
    // Unspecified unit: the sensor type decides.
    assert_eq!(k(1, units(0)).0, SensorKind::Temperature);
    let per_sec = sdr::Units {
        base: 18,
        rate: 4,
        ..Default::default()
    };
    assert_eq!(k(4, per_sec).0, SensorKind::Other);
}

fn sel_record(id: u16, sensor_type: u8, number: u8, dir_type: u8, data: [u8; 3]) -> Vec<u8> {
    let mut r = id.to_le_bytes().to_vec();
    r.push(0x02);
    r.extend_from_slice(&0x6560_0000u32.to_le_bytes());
    r.extend_from_slice(&[0x20, 0x00, 0x04, sensor_type, number, dir_type]);
    r.extend_from_slice(&data);
    r
}

#[test]
fn sel_records_decode_with_severity_and_message() {
    /// Sensor type, number, direction|event type, event data, severity, message.
    type Case = (u8, u8, u8, [u8; 3], LogSeverity, &'static str);
    let cases: [Case; 10] = [
        (
            0x0c,
            0x10,
            0x6f,
            [0x01, 0xff, 0],
            LogSeverity::Critical,
            "Memory #0x10 | Uncorrectable ECC | Asserted",
        ),
        (
            0x0c,
            0x10,
            0x6f,
            [0x00, 0xff, 0],
            LogSeverity::Warning,
            "Memory #0x10 | Correctable ECC | Asserted",
        ),
        (
            0x07,
            0x04,
            0x6f,
            [0x00, 0xff, 0xff],
            LogSeverity::Critical,
            "Processor #0x04 | IERR | Asserted",
        ),
        (
            0x07,
            0x04,
            0x6f,
            [0x01, 0xff, 0xff],
            LogSeverity::Critical,
            "Processor #0x04 | Thermal Trip | Asserted",
        ),
        (
            0x08,
            0x20,
            0x6f,
            [0x01, 0xff, 0xff],
            LogSeverity::Critical,
            "Power Supply #0x20 | Failure detected | Asserted",
        ),
        (
            0x08,
            0x20,
            0xef,
            [0x01, 0xff, 0xff],
            LogSeverity::Info,
            "Power Supply #0x20 | Failure detected | Deasserted",
        ),
        (
            0x01,
            0x01,
            0x01,
            [0x59, 0xe0, 0xdc],
            LogSeverity::Critical,
            "Temperature #0x01 | Upper Critical going high | Asserted",
        ),
        (
            0x04,
            0x02,
            0x01,
            [0x52, 0x05, 0x0a],
            LogSeverity::Critical,
            "Fan #0x02 | Lower Critical going low | Asserted",
        ),
        (
            0x01,
            0x01,
            0x01,
            [0x57, 0xc8, 0xc8],
            LogSeverity::Warning,
            "Temperature #0x01 | Upper Non-critical going high | Asserted",
        ),
        (
            0x02,
            0x03,
            0x01,
            [0x58, 0, 0],
            LogSeverity::Info,
            "Voltage #0x03 | Upper Critical going low | Asserted",
        ),
    ];
    for (i, (st, num, dt, data, sev, msg)) in cases.into_iter().enumerate() {
        let rec = sel::parse_record(&sel_record(i as u16 + 1, st, num, dt, data)).expect("parses");
        let e = sel::to_log_entry(&rec, "srv", 7, None);
        assert_eq!(e.severity, sev, "{msg}");
        assert_eq!(e.message, msg);
        assert_eq!(e.entry_id, format!("{:#06x}", i + 1));
        assert_eq!(e.log_id, "ipmi:sel");
        assert_eq!(e.source, "ipmi");
        assert_eq!(e.created, 0x6560_0000i64 * 1000);
        assert_eq!(
            e.sensor_id.as_deref(),
            Some(format!("ipmi.20.0.{num:02x}").as_str())
        );
    }
    // With the SDR: the sensor's name and the converted trigger values, as `sel elist`.
    let repo = sdr::SdrRepository::from_records(info(), sdr_records().iter().map(Vec::as_slice));
    let rec = sel::parse_record(&sel_record(9, 0x01, 0x01, 0x01, [0x59, 0xe1, 0xdc])).expect("ok");
    assert_eq!(
        sel::message(&rec, Some(&repo)),
        "Temperature CPU Temp | Upper Critical going high | Asserted | Reading 92.50 > Threshold 90 degrees C"
    );
    // OEM records keep their bytes; pre-init time falls back to the observation time.
    let mut oem = vec![3, 0, 0xc1, 5, 0, 0, 0, 0x57, 0x01, 0x00];
    oem.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let e = sel::to_log_entry(&sel::parse_record(&oem).expect("ok"), "srv", 7, None);
    assert_eq!(e.message, "OEM record c1 | 000157 | 010203040506");
    assert_eq!((e.created, e.severity), (7, LogSeverity::Info));
    assert_eq!(e.message_id.as_deref(), Some("sel:oem:c1"));
    // Too short: an error, not a panic.
    assert!(sel::parse_record(&oem[..15]).is_err());
    assert!(sel::parse_sel_info(&[0x51, 1]).is_err());
}

/// Get Power Reading answers laid out as in DCMI v1.5 table 6-16 (no peer here answers DCMI).
#[test]
fn dcmi_power_reading_bytes() {
    let mut b = vec![0xdc];
    for w in [300u16, 100, 500, 200] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(&0x6560_0000u32.to_le_bytes());
    b.extend_from_slice(&1000u32.to_le_bytes());
    b.push(0x40);
    let dcmi::DcmiPower::Reading(r) = dcmi::parse_power_reading(0, &b).expect("parses") else {
        panic!("not a reading");
    };
    assert_eq!(
        (r.current_watts, r.min_watts, r.max_watts, r.average_watts),
        (300, 100, 500, 200)
    );
    assert_eq!(
        (r.timestamp, r.period_ms, r.active),
        (0x6560_0000, 1000, true)
    );
    let t = telemetry::dcmi_reading(&dcmi::DcmiPower::Reading(r), "srv", 5).expect("reading");
    assert_eq!(
        (t.sensor_id.as_str(), t.kind, t.value, t.unit.as_str()),
        ("ipmi.dcmi.power", SensorKind::Power, 300.0, "W")
    );
    // Measurement not active: no reading.
    let mut idle = b.clone();
    idle[17] = 0;
    let p = dcmi::parse_power_reading(0, &idle).expect("parses");
    assert!(telemetry::dcmi_reading(&p, "srv", 5).is_none());
    // Not DCMI: invalid command, or another group extension.
    for (cc, data) in [
        (0xc1, vec![]),
        (0xd4, vec![]),
        (0, vec![0x00, 1, 2]),
        (0, vec![]),
    ] {
        assert!(
            matches!(
                dcmi::parse_power_reading(cc, &data),
                Ok(dcmi::DcmiPower::NotSupported(_))
            ),
            "{cc:#x} {data:?}"
        );
    }
    assert!(dcmi::parse_power_reading(0, &b[..10]).is_err());
    assert_eq!(dcmi::power_reading_request(), [0xdc, 0x01, 0, 0]);
}

// ---------------------------------------------------------------------------------------------
// Sensors, SEL and DCMI against ipmi_sim, cross-checked with ipmitool

/// The `|`-separated columns of each line of an ipmitool table.
fn ipmitool_table(port: u16, args: &[&str]) -> Option<Vec<Vec<String>>> {
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
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('|'))
            .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
            .collect(),
    )
}

fn ipmitool_raw(port: u16, bytes: &[u8]) -> std::process::Output {
    let hexes: Vec<String> = bytes.iter().map(|b| format!("{b:#04x}")).collect();
    Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "admin", "-P", "secret", "-C", "3", "raw"])
        .args(&hexes)
        .output()
        .expect("ipmitool raw")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

fn na_or(v: &str) -> Option<f64> {
    (v != "na").then(|| v.parse().expect("number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_from_ipmi_sim_match_ipmitool() {
    if !sim_available() {
        return;
    }
    let sim = start_sim();
    let address = format!("127.0.0.1:{}", sim.port);
    let creds = Credentials::new("viewer", "look");
    let mut repo = ipmi::read_sdr(&address, &creds, &opts(2000, 2))
        .await
        .expect("read SDR");
    assert!(repo.skipped.is_empty(), "{:?}", repo.skipped);
    assert_eq!(repo.sensors.len(), 6);
    assert_eq!(repo.info.record_count, 6);
    let names: Vec<_> = repo.sensors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CPU Temp",
            "Fan 1",
            "P12V Neg",
            "Proc 1",
            "Inlet Temp",
            "PSU1 Power"
        ]
    );
    // The records read over the wire are the ones configured.
    let local = sdr::SdrRepository::from_records(info(), sdr_records().iter().map(Vec::as_slice));
    assert_eq!(repo.sensors, local.sensors);

    let readings = ipmi::poll_sensors(&address, &creds, &opts(2000, 2), "srv-1", &mut repo)
        .await
        .expect("poll");
    let by_id: HashMap<_, _> = readings.iter().map(|r| (r.sensor_id.as_str(), r)).collect();
    let mut ids: Vec<_> = by_id.keys().copied().collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "ipmi.20.0.01",
            "ipmi.20.0.02",
            "ipmi.20.0.03",
            "ipmi.20.0.06",
            "ipmi.20.1.05"
        ],
        "discrete Proc 1 is not a reading; no DCMI here"
    );
    let expect = [
        (
            "ipmi.20.0.01",
            "CPU Temp",
            SensorKind::Temperature,
            "Cel",
            92.0,
        ),
        ("ipmi.20.0.02", "Fan 1", SensorKind::Fan, "RPM", 6050.0),
        ("ipmi.20.0.03", "P12V Neg", SensorKind::Voltage, "V", -12.02),
        (
            "ipmi.20.1.05",
            "Inlet Temp",
            SensorKind::Temperature,
            "Cel",
            23.0,
        ),
        ("ipmi.20.0.06", "PSU1 Power", SensorKind::Power, "W", 300.0),
    ];
    for (id, name, kind, unit, value) in expect {
        let r = by_id[id];
        assert_eq!(
            (r.name.as_str(), r.kind, r.unit.as_str()),
            (name, kind, unit),
            "{id}"
        );
        assert!(close(r.value, value), "{id}: {} != {value}", r.value);
        assert_eq!((r.server_id.as_str(), r.source.as_str()), ("srv-1", "ipmi"));
    }
    let cpu = by_id["ipmi.20.0.01"]
        .thresholds
        .clone()
        .expect("thresholds");
    assert_eq!(
        (
            cpu.lower_critical,
            cpu.lower_caution,
            cpu.upper_caution,
            cpu.upper_critical
        ),
        (Some(40.0), Some(50.0), Some(80.0), Some(90.0))
    );
    assert_eq!(repo.dcmi_supported, Some(false));

    // ipmitool's `sensor list`: value and the four thresholds of each analog sensor.
    if let Some(rows) = ipmitool_table(sim.port, &["sensor", "list"]) {
        let mut checked = 0;
        for row in rows.iter().filter(|r| r.len() >= 10 && r[2] != "discrete") {
            let ours = readings
                .iter()
                .find(|r| r.name == row[0])
                .unwrap_or_else(|| panic!("no reading for {row:?}"));
            assert!(close(ours.value, row[1].parse().expect("value")), "{row:?}");
            let t = ours.thresholds.clone().unwrap_or_default();
            let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => close(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
            assert!(same(t.lower_critical, na_or(&row[5])), "{row:?} {t:?}");
            assert!(same(t.lower_caution, na_or(&row[6])), "{row:?} {t:?}");
            assert!(same(t.upper_caution, na_or(&row[7])), "{row:?} {t:?}");
            assert!(same(t.upper_critical, na_or(&row[8])), "{row:?} {t:?}");
            checked += 1;
        }
        assert_eq!(checked, 5);
    }
    // ipmitool's `sdr elist full`: sensor number, entity and reading.
    if let Some(rows) = ipmitool_table(sim.port, &["sdr", "elist", "full"]) {
        assert_eq!(rows.len(), 5);
        for row in rows {
            let rec = repo
                .sensors
                .iter()
                .find(|s| s.name == row[0])
                .expect("record");
            assert_eq!(row[1], format!("{:02X}h", rec.number));
            assert_eq!(row[3], format!("{}.{}", rec.entity_id, rec.entity_instance));
            let ours = readings.iter().find(|r| r.name == row[0]).expect("reading");
            let theirs: f64 = row[4]
                .split(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("reading");
            assert!(close(ours.value, theirs), "{row:?}");
        }
    }

    // One session: the discrete sensor's states, DCMI, a stable second poll, SDR refresh.
    let mut s = IpmiSession::open(&address, &creds, &opts(2000, 2))
        .await
        .expect("session");
    let proc1 = repo.sensors[3].clone();
    let st = s.sensor_reading(&proc1).await.expect("discrete reading");
    assert_eq!(st.states, Some(0x0080), "presence detected (offset 7)");
    if let Some(rows) = ipmitool_table(sim.port, &["sensor", "list"]) {
        let row = rows.iter().find(|r| r[0] == "Proc 1").expect("Proc 1");
        // ipmitool prints state bytes 3 and 4 as one big-endian word.
        let word = u16::from_str_radix(row[3].trim_start_matches("0x"), 16).expect("hex");
        assert_eq!(st.states, Some(word.swap_bytes()));
    }
    let power = s.dcmi_power().await.expect("DCMI answer");
    assert!(
        matches!(power, dcmi::DcmiPower::NotSupported(_)),
        "{power:?}"
    );
    if have("ipmitool") {
        let out = Command::new("ipmitool")
            .args([
                "-I",
                "lanplus",
                "-H",
                "127.0.0.1",
                "-p",
                &sim.port.to_string(),
            ])
            .args([
                "-U", "admin", "-P", "secret", "-C", "3", "dcmi", "power", "reading",
            ])
            .output()
            .expect("ipmitool dcmi");
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("(c1)"),
            "ipmitool says ipmi_sim does DCMI now: {text}"
        );
    }
    let again = s
        .poll_sensors(&mut repo, "srv-1")
        .await
        .expect("second poll");
    let mut ids2: Vec<_> = again.iter().map(|r| r.sensor_id.as_str()).collect();
    ids2.sort();
    assert_eq!(ids, ids2);
    assert!(
        !s.refresh_sdr(&mut repo).await.expect("refresh"),
        "unchanged"
    );
    if have("ipmitool") {
        // Add SDR (Storage 0x24) of another discrete sensor: the next poll re-reads the SDR.
        let mut add = vec![0x0a, 0x24];
        add.extend(compact_sdr(0, 0x07, 0x07, "Proc 2"));
        assert!(ipmitool_raw(sim.port, &add).status.success());
        s.poll_sensors(&mut repo, "srv-1")
            .await
            .expect("poll after add");
        assert_eq!(repo.info.record_count, 7);
        assert!(repo.sensors.iter().any(|r| r.name == "Proc 2"));
        assert_eq!(repo.dcmi_supported, Some(false), "kept across the re-read");
    }
    s.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sel_from_ipmi_sim_matches_ipmitool() {
    if !sim_available() {
        return;
    }
    let sim = start_sim();
    let address = format!("127.0.0.1:{}", sim.port);
    let creds = Credentials::new("admin", "secret");
    let o = opts(2000, 2);
    let repo = ipmi::read_sdr(&address, &creds, &o).await.expect("SDR");
    let (entries, last) = ipmi::read_sel(&address, &creds, &o, "srv-1", None, Some(&repo))
        .await
        .expect("SEL");
    for e in &entries {
        eprintln!("{} {:?} {}", e.entry_id, e.severity, e.message);
    }
    // 5 added + Upper Non-critical and Upper Critical going high from CPU Temp.
    assert_eq!(entries.len(), 7);
    let ids: Vec<u16> = entries
        .iter()
        .map(|e| u16::from_str_radix(e.entry_id.trim_start_matches("0x"), 16).expect("id"))
        .collect();
    assert_eq!(last, ids.last().copied());
    let sev: Vec<_> = entries.iter().map(|e| e.severity).collect();
    use LogSeverity::{Critical, Info, Warning};
    assert_eq!(
        sev,
        [Critical, Info, Info, Warning, Info, Warning, Critical]
    );
    let cpu = &entries[6];
    assert_eq!(
        cpu.message,
        "Temperature CPU Temp | Upper Critical going high | Asserted | Reading 92 > Threshold 90 degrees C"
    );
    assert_eq!(cpu.sensor_id.as_deref(), Some("ipmi.20.0.01"));
    assert_eq!(cpu.message_id.as_deref(), Some("sel:01:01:09"));
    // ipmi_sim stamps pre-init (relative) times: created falls back to the observation time.
    assert!(entries.iter().all(|e| e.created == e.observed_at));
    if let Some(rows) = ipmitool_table(sim.port, &["sel", "elist"]) {
        assert_eq!(rows.len(), entries.len());
        for (row, e) in rows.iter().zip(&entries) {
            let id = u16::from_str_radix(&row[0], 16).expect("ipmitool id");
            assert_eq!(e.entry_id, format!("{id:#06x}"));
            // Records without a timestamp have no date and time columns.
            let text = if row[1].starts_with("OEM record") {
                &row[1..]
            } else {
                &row[3..]
            };
            assert_eq!(e.message, text.join(" | "), "{row:?}");
        }
    }

    // Only entries after a given id.
    let (tail, last2) = ipmi::read_sel(&address, &creds, &o, "srv-1", Some(ids[4]), Some(&repo))
        .await
        .expect("SEL tail");
    let key = |v: &[automata_schemas::types::HardwareLogEntry]| -> Vec<(String, String)> {
        v.iter()
            .map(|e| (e.entry_id.clone(), e.message.clone()))
            .collect()
    };
    assert_eq!(key(&tail), key(&entries[5..]));
    assert_eq!(last2, last);
    let (none, last3) = ipmi::read_sel(&address, &creds, &o, "srv-1", last, Some(&repo))
        .await
        .expect("SEL after the last");
    assert!(none.is_empty());
    assert_eq!(last3, last);
    if have("ipmitool") {
        // Add SEL Entry (Storage 0x44): Processor #0x04 IERR, asserted.
        let mut add = vec![0x0a, 0x44];
        add.extend(sel_record(0, 0x07, 0x04, 0x6f, [0x00, 0xff, 0xff]));
        assert!(ipmitool_raw(sim.port, &add).status.success());
        let (new, last4) = ipmi::read_sel(&address, &creds, &o, "srv-1", last, Some(&repo))
            .await
            .expect("SEL after the last");
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].message, "Processor Proc 1 | IERR | Asserted");
        assert_eq!(new[0].severity, Critical);
        assert!(last4 > last);
        let rows = ipmitool_table(sim.port, &["sel", "elist"]).expect("ipmitool");
        let row = rows.last().expect("a line");
        assert_eq!(new[0].message, row[3..].join(" | "));
        assert_eq!(
            new[0].entry_id,
            format!("{:#06x}", u16::from_str_radix(&row[0], 16).expect("id"))
        );
    }
}
