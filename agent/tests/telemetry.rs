//! `collect_telemetry` on fixture trees laid out as the kernel lays out sysfs (hwmon devices of
//! coretemp, nct6775, an ACPI power meter and an NVMe controller; EDAC with two DIMMs) and a
//! `/dev/kmsg` stand-in, through the public API with a non-`/` root (so no ioctls); and on this
//! machine.

use std::path::Path;

use automata_agent::{Options, TelemetryState, collect_telemetry};
use automata_schemas::types::{
    HardwareLogEntry, LogSeverity, SensorKind, TelemetryReading, Thresholds,
};

const SM3_EP: &[u8] = include_bytes!("fixtures/qemu-sm3.smbios_entry_point.bin");
const SM3_DMI: &[u8] = include_bytes!("fixtures/qemu-sm3.DMI.bin");
const SERVER: &str = "4c4c4544-0042-3510-8052-b4c04f4e3232";

fn w(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

fn link(root: &Path, rel: &str, target_rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::create_dir_all(root.join(target_rel)).expect("mkdir target");
    std::os::unix::fs::symlink(root.join(target_rel), p).expect("symlink");
}

/// An hwmon device `hwmonN` under parent device directory `parent`, with attribute files.
fn hwmon(root: &Path, n: u32, parent: &str, attrs: &[(&str, &str)]) {
    let dir = format!("{parent}/hwmon/hwmon{n}");
    for (f, v) in attrs {
        w(root, &format!("{dir}/{f}"), format!("{v}\n"));
    }
    link(root, &format!("{dir}/device"), parent);
    link(root, &format!("sys/class/hwmon/hwmon{n}"), &dir);
}

fn smbios(root: &Path) {
    w(root, "sys/firmware/dmi/tables/smbios_entry_point", SM3_EP);
    w(root, "sys/firmware/dmi/tables/DMI", SM3_DMI);
}

fn hwmon_tree(root: &Path) {
    smbios(root);
    // hwmon numbers deliberately not in device order: ids must not depend on them.
    hwmon(
        root,
        3,
        "sys/devices/platform/coretemp.0",
        &[
            ("name", "coretemp"),
            ("temp1_input", "45000"),
            ("temp1_label", "Package id 0"),
            ("temp1_max", "84000"),
            ("temp1_crit", "100000"),
            ("temp1_crit_alarm", "0"),
            ("temp2_input", "43000"),
            ("temp2_label", "Core 0"),
            ("temp2_max", "84000"),
            ("temp2_crit", "100000"),
        ],
    );
    hwmon(
        root,
        1,
        "sys/devices/platform/nct6775.656",
        &[
            ("name", "nct6775"),
            ("pwm1", "128"),
            ("pwm1_enable", "5"),
            ("fan1_input", "1205"),
            ("fan1_min", "300"),
            ("fan2_input", "0"),
            ("fan2_min", "0"),
            ("in0_input", "1040"),
            ("in0_min", "300"),
            ("in0_max", "1744"),
            ("in1_input", "1824"),
            ("in1_label", "AVSB"),
            ("in1_enable", "0"),
            ("temp1_input", "36000"),
            ("temp1_label", "SYSTIN"),
            ("temp1_max", "80000"),
            ("temp1_max_hyst", "75000"),
            ("temp2_input", "-1000"),
            ("temp2_label", "CPUTIN"),
            ("temp3_input", "88000"),
            ("temp3_fault", "1"),
            ("intrusion0_alarm", "1"),
        ],
    );
    // A sensor the driver cannot read: a directory in place of the file (EISDIR), like EIO.
    std::fs::create_dir_all(root.join("sys/devices/platform/nct6775.656/hwmon/hwmon1/temp7_input"))
        .expect("mkdir");
    w(
        root,
        "sys/devices/platform/nct6775.656/hwmon/hwmon1/temp7_label",
        "PECI Agent 0\n",
    );
    hwmon(
        root,
        0,
        "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00",
        &[
            ("name", "power_meter"),
            ("power1_average", "182500000"),
            ("power1_average_interval", "1000"),
            ("curr1_input", "1520"),
            ("curr1_crit", "20000"),
            ("energy1_input", "3600000000"),
        ],
    );
    let ctrl = "sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0/nvme/nvme1";
    w(root, &format!("{ctrl}/serial"), "S4YPNE0N800123      \n");
    w(
        root,
        &format!("{ctrl}/model"),
        "SAMSUNG MZWLJ3T8HBLS-00007\n",
    );
    link(root, "sys/class/nvme/nvme1", ctrl);
    hwmon(
        root,
        2,
        ctrl,
        &[
            ("name", "nvme"),
            ("temp1_input", "36850"),
            ("temp1_label", "Composite"),
            ("temp1_min", "-273150"),
            ("temp1_max", "84850"),
            ("temp1_crit", "84850"),
            ("temp1_alarm", "0"),
            ("temp2_input", "38850"),
            ("temp2_label", "Sensor 1"),
        ],
    );
}

fn by_id<'a>(rs: &'a [TelemetryReading], id: &str) -> &'a TelemetryReading {
    rs.iter().find(|r| r.sensor_id == id).unwrap_or_else(|| {
        let ids: Vec<_> = rs.iter().map(|r| r.sensor_id.as_str()).collect();
        panic!("no reading {id} in {ids:?}")
    })
}

#[test]
fn hwmon_devices_on_a_fixture_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    hwmon_tree(root);
    let options = Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    };
    let mut state = TelemetryState::default();
    let s = collect_telemetry(&options, &mut state);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert!(s.logs.is_empty());
    let rs = &s.readings;
    for r in rs {
        assert_eq!(r.server_id, SERVER);
        assert_eq!(r.source, "agent");
        assert!(r.timestamp > 1_600_000_000_000);
    }
    let ids: Vec<&str> = rs.iter().map(|r| r.sensor_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "hwmon.0000:5e:00.0.nvme.temp1",
            "hwmon.0000:5e:00.0.nvme.temp2",
            "hwmon.ACPI000D:00.power_meter.curr1",
            "hwmon.ACPI000D:00.power_meter.power1",
            "hwmon.ACPI000D:00.power_meter.energy1",
            "hwmon.coretemp.0.coretemp.temp1",
            "hwmon.coretemp.0.coretemp.temp2",
            "hwmon.nct6775.656.nct6775.temp1",
            "hwmon.nct6775.656.nct6775.temp2",
            "hwmon.nct6775.656.nct6775.fan1",
            "hwmon.nct6775.656.nct6775.fan2",
            "hwmon.nct6775.656.nct6775.in0",
        ],
        "disabled (in1_enable=0), faulty (temp3_fault=1) and unreadable (temp7) sensors skipped"
    );

    let pkg = by_id(rs, "hwmon.coretemp.0.coretemp.temp1");
    assert_eq!(pkg.name, "Package id 0");
    assert_eq!(pkg.kind, SensorKind::Temperature);
    assert_eq!(pkg.unit, "Cel");
    assert_eq!(pkg.value, 45.0);
    assert_eq!(
        pkg.thresholds,
        Some(Thresholds {
            upper_caution: Some(84.0),
            upper_critical: Some(100.0),
            ..Thresholds::default()
        })
    );
    assert_eq!(pkg.component_id, None);

    let nv = by_id(rs, "hwmon.0000:5e:00.0.nvme.temp1");
    assert_eq!(nv.name, "Composite");
    assert_eq!(nv.value, 36.85);
    assert_eq!(nv.component_id.as_deref(), Some("disk:S4YPNE0N800123"));
    assert_eq!(
        nv.thresholds,
        Some(Thresholds {
            upper_caution: Some(84.85),
            upper_critical: Some(84.85),
            ..Thresholds::default()
        }),
        "a -273.15 °C minimum is no limit"
    );

    let fan = by_id(rs, "hwmon.nct6775.656.nct6775.fan1");
    assert_eq!(
        (fan.kind, fan.unit.as_str(), fan.value),
        (SensorKind::Fan, "RPM", 1205.0)
    );
    assert_eq!(fan.name, "nct6775 fan1");
    assert_eq!(
        fan.thresholds.as_ref().and_then(|t| t.lower_caution),
        Some(300.0)
    );
    // A fan minimum of 0 is "not set", not a limit.
    assert_eq!(by_id(rs, "hwmon.nct6775.656.nct6775.fan2").thresholds, None);
    let vcore = by_id(rs, "hwmon.nct6775.656.nct6775.in0");
    assert_eq!(
        (vcore.kind, vcore.unit.as_str()),
        (SensorKind::Voltage, "V")
    );
    assert_eq!(vcore.value, 1.04);
    assert_eq!(
        vcore.thresholds,
        Some(Thresholds {
            lower_caution: Some(0.3),
            upper_caution: Some(1.744),
            ..Thresholds::default()
        })
    );
    assert_eq!(by_id(rs, "hwmon.nct6775.656.nct6775.temp2").value, -1.0);

    let p = by_id(rs, "hwmon.ACPI000D:00.power_meter.power1");
    assert_eq!(
        (p.kind, p.unit.as_str(), p.value),
        (SensorKind::Power, "W", 182.5)
    );
    let c = by_id(rs, "hwmon.ACPI000D:00.power_meter.curr1");
    assert_eq!(
        (c.kind, c.unit.as_str(), c.value),
        (SensorKind::Current, "A", 1.52)
    );
    assert_eq!(
        c.thresholds.as_ref().and_then(|t| t.upper_critical),
        Some(20.0)
    );
    let e = by_id(rs, "hwmon.ACPI000D:00.power_meter.energy1");
    assert_eq!(
        (e.kind, e.unit.as_str(), e.value),
        (SensorKind::Energy, "J", 3600.0)
    );

    // Renumbering the hwmon devices (another boot, another probe order) keeps every id.
    for n in 0..4 {
        std::fs::remove_file(root.join(format!("sys/class/hwmon/hwmon{n}"))).expect("rm");
    }
    for (n, dir) in [
        (7, "sys/devices/platform/coretemp.0/hwmon/hwmon3"),
        (4, "sys/devices/platform/nct6775.656/hwmon/hwmon1"),
        (
            5,
            "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00/hwmon/hwmon0",
        ),
        (
            6,
            "sys/devices/pci0000:5d/0000:5d:00.0/0000:5e:00.0/nvme/nvme1/hwmon/hwmon2",
        ),
    ] {
        link(root, &format!("sys/class/hwmon/hwmon{n}"), dir);
    }
    let again = collect_telemetry(&options, &mut state);
    let ids2: Vec<&str> = again
        .readings
        .iter()
        .map(|r| r.sensor_id.as_str())
        .collect();
    assert_eq!(ids2, ids);
}

/// EDAC counts of controller 0, with DIMM 0 labelled like its SMBIOS locator (`DIMM 0`) and
/// DIMM 1 with the driver's default label.
fn edac(root: &Path, ce: [u64; 2], ue: [u64; 2], ce_noinfo: u64) {
    let mc = "sys/devices/system/edac/mc/mc0";
    w(root, &format!("{mc}/mc_name"), "Skylake Socket#0 IMC#0\n");
    w(
        root,
        &format!("{mc}/ce_count"),
        format!("{}\n", ce[0] + ce[1] + ce_noinfo),
    );
    w(
        root,
        &format!("{mc}/ue_count"),
        format!("{}\n", ue[0] + ue[1]),
    );
    w(
        root,
        &format!("{mc}/ce_noinfo_count"),
        format!("{ce_noinfo}\n"),
    );
    w(root, &format!("{mc}/ue_noinfo_count"), "0\n");
    for (i, label) in ["DIMM 0", "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"]
        .iter()
        .enumerate()
    {
        let d = format!("{mc}/dimm{i}");
        w(root, &format!("{d}/dimm_label"), format!("{label}\n"));
        w(
            root,
            &format!("{d}/dimm_location"),
            format!("channel {i} slot 0 \n"),
        );
        w(root, &format!("{d}/dimm_ce_count"), format!("{}\n", ce[i]));
        w(root, &format!("{d}/dimm_ue_count"), format!("{}\n", ue[i]));
        w(root, &format!("{d}/size"), "16384\n");
        w(root, &format!("{d}/dimm_mem_type"), "Registered-DDR4\n");
    }
}

/// One poll; the state goes through JSON each time, as if the agent restarted in between.
fn poll(options: &Options, state: &mut TelemetryState) -> automata_agent::TelemetrySample {
    let s = collect_telemetry(options, state);
    let json = serde_json::to_string(state).expect("state JSON");
    *state = serde_json::from_str(&json).expect("state back");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    s
}

fn edac_logs(s: &automata_agent::TelemetrySample) -> Vec<&HardwareLogEntry> {
    s.logs.iter().filter(|l| l.log_id == "host:edac").collect()
}

#[test]
fn edac_counters_and_their_increases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    smbios(root);
    let options = Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    };
    let mut state = TelemetryState::default();

    // Baseline: DIMM 1 already had 2 corrected errors; the first sight is no event.
    edac(root, [0, 2], [0, 0], 0);
    let s = poll(&options, &mut state);
    assert!(s.logs.is_empty(), "{:?}", s.logs);
    let rs = &s.readings;
    let ids: Vec<&str> = rs.iter().map(|r| r.sensor_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "edac.mc0.dimm0.ce",
            "edac.mc0.dimm0.ue",
            "edac.mc0.dimm1.ce",
            "edac.mc0.dimm1.ue",
            "edac.mc0.ce",
            "edac.mc0.ue",
            "edac.mc0.ce_noinfo",
            "edac.mc0.ue_noinfo",
        ]
    );
    let d0 = by_id(rs, "edac.mc0.dimm0.ce");
    assert_eq!((d0.kind, d0.unit.as_str()), (SensorKind::Other, "count"));
    assert_eq!(d0.component_id.as_deref(), Some("dimm:DIMM_0"));
    assert_eq!(d0.name, "DIMM 0 corrected errors");
    let d1 = by_id(rs, "edac.mc0.dimm1.ce");
    assert_eq!(d1.value, 2.0);
    assert_eq!(d1.component_id, None, "default labels match no SMBIOS DIMM");
    assert_eq!(by_id(rs, "edac.mc0.ce").value, 2.0);

    // Three corrected errors on DIMM 0: one WARNING entry (not a second one for the total).
    edac(root, [3, 2], [0, 0], 0);
    let s = poll(&options, &mut state);
    let logs = edac_logs(&s);
    assert_eq!(logs.len(), 1, "{logs:?}");
    let l = logs[0];
    assert_eq!(l.severity, LogSeverity::Warning);
    assert_eq!(l.server_id, SERVER);
    assert_eq!(l.source, "agent");
    assert_eq!(l.component_id.as_deref(), Some("dimm:DIMM_0"));
    assert_eq!(l.sensor_id.as_deref(), Some("edac.mc0.dimm0.ce"));
    assert_eq!(l.message_id.as_deref(), Some("EDAC.CE"));
    assert!(l.message.contains("DIMM 0"), "{}", l.message);
    assert!(
        l.message.starts_with("3 new corrected memory errors"),
        "{}",
        l.message
    );
    assert_eq!(l.created, l.observed_at);

    // One uncorrected error on DIMM 1: one CRITICAL entry.
    edac(root, [3, 2], [0, 1], 0);
    let s = poll(&options, &mut state);
    let logs = edac_logs(&s);
    assert_eq!(logs.len(), 1, "{logs:?}");
    let u = logs[0];
    assert_eq!(u.severity, LogSeverity::Critical);
    assert_eq!(u.sensor_id.as_deref(), Some("edac.mc0.dimm1.ue"));
    assert!(
        u.message
            .starts_with("1 new uncorrected memory error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0"),
        "{}",
        u.message
    );
    assert_eq!(u.component_id, None);
    assert_ne!(u.entry_id, l.entry_id);

    // Nothing changed: nothing to say.
    let s = poll(&options, &mut state);
    assert!(s.logs.is_empty(), "{:?}", s.logs);

    // An error the driver could not place: one entry from the controller's noinfo counter.
    edac(root, [3, 2], [0, 1], 1);
    let s = poll(&options, &mut state);
    let logs = edac_logs(&s);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].sensor_id.as_deref(), Some("edac.mc0.ce_noinfo"));
    assert!(logs[0].message.contains("not attributed to a DIMM"));

    // Driver reload: every counter back to zero resets the baseline without an event...
    edac(root, [0, 0], [0, 0], 0);
    let s = poll(&options, &mut state);
    assert!(s.logs.is_empty(), "{:?}", s.logs);
    // ...and the next error counts from there.
    edac(root, [1, 0], [0, 0], 0);
    let s = poll(&options, &mut state);
    let logs = edac_logs(&s);
    assert_eq!(logs.len(), 1);
    assert!(
        logs[0]
            .message
            .starts_with("1 new corrected memory error on DIMM 0")
    );
}

#[test]
fn legacy_csrow_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mc = "sys/devices/system/edac/mc/mc1";
    w(root, &format!("{mc}/ce_count"), "4\n");
    w(root, &format!("{mc}/ue_count"), "0\n");
    w(root, &format!("{mc}/csrow0/ch0_ce_count"), "1\n");
    w(root, &format!("{mc}/csrow0/ch0_dimm_label"), "DIMM_A1\n");
    w(root, &format!("{mc}/csrow0/ch1_ce_count"), "3\n");
    w(root, &format!("{mc}/csrow0/ce_count"), "4\n");
    w(root, &format!("{mc}/csrow0/ue_count"), "0\n");
    let options = Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    };
    let mut state = TelemetryState::default();
    let s = poll(&options, &mut state);
    let ids: Vec<&str> = s.readings.iter().map(|r| r.sensor_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "edac.mc1.csrow0.ch0.ce",
            "edac.mc1.csrow0.ch1.ce",
            "edac.mc1.csrow0.ue",
            "edac.mc1.ce",
            "edac.mc1.ue",
        ]
    );
    assert_eq!(
        by_id(&s.readings, "edac.mc1.csrow0.ch0.ce").name,
        "DIMM_A1 corrected errors"
    );
    w(root, &format!("{mc}/csrow0/ue_count"), "1\n");
    w(root, &format!("{mc}/ue_count"), "1\n");
    let s = poll(&options, &mut state);
    assert_eq!(s.logs.len(), 1, "{:?}", s.logs);
    assert_eq!(s.logs[0].sensor_id.as_deref(), Some("edac.mc1.csrow0.ue"));
    assert_eq!(s.logs[0].severity, LogSeverity::Critical);
}

/// Kernel log records as `/dev/kmsg` prints them (one per line, dictionary lines indented).
const KMSG_BOOT: &str = "\
6,0,0,-;Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)
6,812,1503210,-;nvme nvme1: 8/0/0 default/read/poll queues
 SUBSYSTEM=nvme
 DEVICE=c242:1
4,1290,4271367410,-;mce: [Hardware Error]: Machine check events logged
0,1291,4271367415,-;mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 1: 9000000000000001
0,1292,4271367417,-;mce: [Hardware Error]: TSC 0 
12,1293,4271367500,-;mce: [Hardware Error]: forged by a program writing to /dev/kmsg
4,1294,4300000000,-;{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1
4,1295,4300000010,-;{1}[Hardware Error]: event severity: corrected
4,1296,4300000020,-;EDAC MC0: 1 CE single-bit ECC on DIMM 0 (node:0 card:0 module:0 rank:0 bank:3 device:0 row:12345 col:1016 page:0x11ccbfe offset:0x6c0 grain:1 syndrome:0x0)
3,1297,5000000000,-;I/O error, dev nvme1n1, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2
3,1298,5000000100,-;I/O error, dev loop0, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2
";

#[test]
fn kernel_log_records_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    smbios(root);
    let ctrl = "sys/devices/pci0000:5d/0000:5e:00.0/nvme/nvme1";
    w(root, &format!("{ctrl}/serial"), "S4YPNE0N800123\n");
    link(root, "sys/class/nvme/nvme1", ctrl);
    link(root, "sys/block/nvme1n1/device", ctrl);
    w(root, "sys/block/nvme1n1/nsid", "1\n");
    w(
        root,
        "proc/sys/kernel/random/boot_id",
        "6a0c5a53-6e3e-4d8c-9f3a-1f2e3d4c5b6a\n",
    );
    w(root, "proc/uptime", "10000.00 19000.00\n");
    w(root, "dev/kmsg", KMSG_BOOT);
    let options = Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    };
    let mut state = TelemetryState::default();
    let s = collect_telemetry(&options, &mut state);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let got: Vec<(&str, LogSeverity, &str)> = s
        .logs
        .iter()
        .map(|l| {
            (
                l.entry_id.rsplit(':').next().unwrap_or(""),
                l.severity,
                l.message_id.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1290", LogSeverity::Warning, "kmsg.mce"),
            ("1291", LogSeverity::Warning, "kmsg.mce"),
            ("1292", LogSeverity::Info, "kmsg.mce"),
            ("1294", LogSeverity::Info, "kmsg.ghes"),
            ("1295", LogSeverity::Warning, "kmsg.ghes"),
            ("1296", LogSeverity::Warning, "kmsg.edac"),
            ("1297", LogSeverity::Warning, "kmsg.io_error"),
        ],
        "user-facility (forged) and loop device records are not hardware errors"
    );
    let mce = &s.logs[0];
    assert_eq!(mce.log_id, "host:kmsg");
    assert_eq!(mce.entry_id, "6a0c5a53-6e3e-4d8c-9f3a-1f2e3d4c5b6a:1290");
    assert_eq!(
        mce.message,
        "mce: [Hardware Error]: Machine check events logged"
    );
    assert_eq!(mce.server_id, SERVER);
    // created = boot time (now - uptime) + ts_usec.
    let boot = mce.observed_at - 10_000_000;
    assert!(
        (mce.created - (boot + 4_271_367)).abs() < 2_000,
        "created {} observed {}",
        mce.created,
        mce.observed_at
    );
    assert_eq!(s.logs[5].component_id.as_deref(), Some("dimm:DIMM_0"));
    assert_eq!(
        s.logs[6].component_id.as_deref(),
        Some("disk:S4YPNE0N800123")
    );

    // Nothing new: nothing again.
    assert!(collect_telemetry(&options, &mut state).logs.is_empty());

    // A restarted agent with the persisted state: reopens, skips what it had.
    let json = serde_json::to_string(&state).expect("json");
    let mut restarted: TelemetryState = serde_json::from_str(&json).expect("state");
    assert!(collect_telemetry(&options, &mut restarted).logs.is_empty());

    // A new record: only it.
    let mut more = KMSG_BOOT.to_string();
    more.push_str(
        "4,1300,6000000000,-;nvme nvme1: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff\n",
    );
    w(root, "dev/kmsg", &more);
    let s = collect_telemetry(&options, &mut restarted);
    assert_eq!(s.logs.len(), 1, "{:?}", s.logs);
    assert_eq!(s.logs[0].severity, LogSeverity::Critical);
    assert_eq!(
        s.logs[0].component_id.as_deref(),
        Some("disk:S4YPNE0N800123")
    );

    // A reboot (new boot id, sequence numbers from 0 again): this boot's records are all new.
    w(
        root,
        "proc/sys/kernel/random/boot_id",
        "0b7e0000-0000-4000-8000-000000000002\n",
    );
    w(
        root,
        "dev/kmsg",
        "6,0,0,-;Linux version\n4,7,900000,-;mce: [Hardware Error]: Machine check events logged\n",
    );
    let s = collect_telemetry(&options, &mut restarted);
    assert_eq!(s.logs.len(), 1, "{:?}", s.logs);
    assert_eq!(s.logs[0].entry_id, "0b7e0000-0000-4000-8000-000000000002:7");
}

#[test]
fn an_empty_root_is_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        root: dir.path().to_path_buf(),
        run_external_tools: false,
    };
    let s = collect_telemetry(&options, &mut TelemetryState::default());
    assert!(
        s.readings.is_empty() && s.logs.is_empty() && s.errors.is_empty(),
        "{s:?}"
    );
}

fn has_entries(p: &str) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn collect_telemetry_on_this_machine() {
    let mut state = TelemetryState::default();
    let t = std::time::Instant::now();
    let s = collect_telemetry(&Options::default(), &mut state);
    eprintln!("{s:#?}\nin {:?}", t.elapsed());
    let kmsg_readable = std::fs::File::open("/dev/kmsg").is_ok();
    if kmsg_readable {
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        // The real character device was read to its end (EAGAIN) without blocking.
        assert!(state.kmsg.next_seq > 0, "{:?}", state.kmsg);
        assert!(state.kmsg.boot_id.is_some());
    } else {
        // Not root under dmesg_restrict: the kernel log is the one thing that may be missing.
        assert!(
            s.errors.iter().all(|e| e.starts_with("kernel log:")),
            "{:?}",
            s.errors
        );
    }
    let hardware = has_entries("/sys/class/hwmon")
        || has_entries("/sys/devices/system/edac/mc")
        || has_entries("/sys/class/nvme");
    if !hardware {
        assert!(s.readings.is_empty(), "{:?}", s.readings);
    }
    for r in &s.readings {
        assert!(r.value.is_finite(), "{r:?}");
    }
    // A second poll only reports records logged since the first.
    let first: std::collections::HashSet<_> = s.logs.iter().map(|l| l.entry_id.clone()).collect();
    let again = collect_telemetry(&Options::default(), &mut state);
    assert!(again.logs.iter().all(|l| !first.contains(&l.entry_id)));
}
