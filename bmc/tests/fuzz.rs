//! No JSON a BMC sends makes the inventory mapping panic.

use automata_bmc::redfish::inventory as inv;
use automata_bmc::redfish::oem::{self, Vendor};
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Absent"),
            Just("NVMe"),
            Just("GPU"),
            Just("Previous-1-2"),
            Just("/redfish/v1/x"),
            Just("-*")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    let keys = prop_oneof![
        Just("Id"),
        Just("Name"),
        Just("Version"),
        Just("Status"),
        Just("State"),
        Just("UUID"),
        Just("Members"),
        Just("@odata.id"),
        Just("RelatedItem"),
        Just("Controllers"),
        Just("Attributes"),
        Just("Location"),
        Just("PartLocation"),
        Just("ServiceLabel"),
        Just("ProcessorType"),
        Just("Protocol"),
        Just("SerialNumber"),
        Just("CapacityMiB"),
        Just("Oem"),
        Just("Hpe"),
        Just("DeviceContext"),
        Just("SoftwareId"),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn mapping_never_panics(v in json(), w in json()) {
        let _ = inv::processor(&v);
        let _ = inv::memory(&v);
        let _ = inv::drive(&v);
        let _ = inv::storage_controller("s", &v);
        let _ = inv::simple_storage_device("s", 0, &v);
        let _ = inv::ethernet_interface(&v);
        let _ = inv::network_adapter(&v);
        let _ = inv::pcie_device(&v);
        let _ = inv::chassis(&v);
        let _ = inv::power_supply("c", &v);
        let _ = inv::manager(&v, "bmc");
        let _ = inv::bios(&v, Some(&w));
        let _ = inv::identity(&v);
        let _ = inv::server_id(&v, "bmc");
        for vendor in [Vendor::Generic, Vendor::Dell, Vendor::Hpe, Vendor::Lenovo, Vendor::Supermicro] {
            let _ = inv::firmware_entry(vendor, &v);
            let mut comps = vec![inv::drive(&w), inv::bios(&w, None)];
            inv::attach_firmware(&mut comps, vendor, &[v.clone(), w.clone()], true);
        }
        let _ = oem::detect(&v, std::slice::from_ref(&w));
    }
}

// ---- Redfish logs and events: no LogEntry, Event or byte stream a BMC sends makes the
// mapping or the SSE parser panic, and the parser is bounded and blind to chunking. ----

mod redfish_logs {
    use automata_bmc::redfish::events::{self, SseOptions, SseParser};
    use automata_bmc::redfish::logs;
    use proptest::prelude::*;
    use serde_json::Value;

    fn log_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,16}".prop_map(Value::String),
            prop_oneof![
                Just("OK"),
                Just("Warning"),
                Just("Critical"),
                Just("2024-06-11T00:13:00-05:00"),
                Just("2012-03-07T14:44Z"),
                Just("/redfish/v1/Chassis/1/Sensors/T"),
                Just("/redfish/v1/Chassis/1U/Thermal#/Fans/0"),
                Just("/redfish/v1/Systems/1/Memory/D1"),
                Just("/redfish/v1/#/"),
                Just("//"),
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        let keys = prop_oneof![
            Just("Id"),
            Just("Created"),
            Just("Severity"),
            Just("MessageSeverity"),
            Just("Message"),
            Just("MessageId"),
            Just("MessageArgs"),
            Just("Links"),
            Just("OriginOfCondition"),
            Just("@odata.id"),
            Just("Name"),
            Just("EventId"),
            Just("EventTimestamp"),
            Just("Events"),
            Just("Members"),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..7).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    fn small() -> SseOptions {
        SseOptions {
            max_line: 64,
            max_event: 256,
            max_garbage_lines: 8,
            ..SseOptions::default()
        }
    }

    /// Parses `bytes` fed in pieces cut at `cuts`; the events, or the error's text.
    fn parse(bytes: &[u8], cuts: &[usize]) -> Result<Vec<events::SseEvent>, String> {
        let mut p = SseParser::new(&small());
        let mut out = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts.into_iter().chain([bytes.len()]) {
            out.extend(p.push(&bytes[at..c.max(at)]).map_err(|e| e.to_string())?);
            at = c.max(at);
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn log_and_event_mapping_never_panics(v in log_json(), s in "[ -~]{0,40}") {
            if let Ok(e) = logs::map_entry(&v, "s", "l", 1) {
                prop_assert!(!e.entry_id.is_empty());
            }
            let _ = logs::fingerprint(&v);
            let _ = logs::service_info(&v);
            if let Value::Array(a) = &v {
                let _ = logs::detect_order(a);
            }
            let _ = logs::origin_ids(&s);
            let _ = events::supports_sse(&v);
            let _ = events::event_entries(&v.to_string(), Some("1"), "s", 1);
            let _ = events::event_entries(&s, None, "s", 1);
        }

        #[test]
        fn the_sse_parser_is_bounded_and_chunking_does_not_matter(
            bytes in prop::collection::vec(prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'),
                Just(b't'), Just(b'i'), any::<u8>(),
            ], 0..600),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = parse(&bytes, &[]);
            let pieces = parse(&bytes, &cuts);
            prop_assert_eq!(&whole, &pieces);
            if let Ok(evs) = whole {
                for e in evs {
                    prop_assert!(e.data.len() <= 256);
                }
            }
        }

        #[test]
        fn events_written_with_any_line_end_read_back(
            evs in prop::collection::vec(("[0-9]{1,4}", prop::collection::vec("[ -~]{0,20}", 1..3)), 0..5),
            end in 0usize..3,
        ) {
            // One line end per stream (a CR then an LF of the next line would be one CRLF).
            let eol = |_: usize| ["\n", "\r\n", "\r"][end];
            let mut text = String::from(": comment\n");
            let mut n = 0;
            for (id, lines) in &evs {
                text.push_str(&format!("id: {id}{}", eol(n)));
                n += 1;
                for l in lines {
                    text.push_str(&format!("data: {l}{}", eol(n)));
                    n += 1;
                }
                text.push_str(eol(n));
                n += 1;
            }
            let mut p = SseParser::new(&SseOptions::default());
            let got = p.push(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got.len(), evs.len());
            for (g, (id, lines)) in got.iter().zip(&evs) {
                prop_assert_eq!(g.id.as_deref(), Some(id.as_str()));
                prop_assert_eq!(&g.data, &lines.join("\n"));
            }
        }
    }
}

// ---- IPMI sensors, SEL and DCMI: no SDR, reading, SEL or DCMI bytes a BMC sends make the
// parsers or the mappings panic. ----

mod ipmi {
    use automata_bmc::ipmi::{dcmi, sdr, sel, telemetry};
    use proptest::prelude::*;

    /// An SDR header (random type among the interesting ones) followed by random body bytes,
    /// the announced length sometimes right, sometimes not.
    fn sdr_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![Just(0x01u8), Just(0x02), Just(0x12), any::<u8>()],
            any::<bool>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(t, honest, len, body)| {
                let l = if honest { body.len() as u8 } else { len };
                let mut r = vec![1, 0, 0x51, t, l];
                r.extend(body);
                r
            })
    }

    proptest! {
        #[test]
        fn sdr_parsers_never_panic(rec in sdr_bytes(), raw in any::<u8>(), b in prop::collection::vec(any::<u8>(), 0..24)) {
            let _ = sdr::parse_repository_info(&b);
            let _ = sdr::parse_thresholds(&b);
            let _ = sdr::decode_id_string(raw, &b);
            let repo = sdr::SdrRepository::from_records(sdr::SdrRepositoryInfo::default(), [rec.as_slice(), &b[..]]);
            prop_assert_eq!(repo.sensors.len() + repo.other_records + repo.skipped.len(), 2);
            for s in &repo.sensors {
                let _ = s.convert(raw);
                if let Some(c) = &s.conversion {
                    let _ = (c.tolerance_value(), c.accuracy_percent());
                }
                if let Ok(r) = sdr::parse_reading(&b, s) {
                    let th = sdr::parse_thresholds(&b).unwrap_or(s.thresholds);
                    if let Some(t) = telemetry::to_reading(s, &r, &th, "srv", 0) {
                        prop_assert!(t.value.is_finite());
                    }
                }
                let _ = s.units.text();
            }
        }

        #[test]
        fn sel_and_dcmi_parsers_never_panic(
            b in prop::collection::vec(any::<u8>(), 0..24),
            rec in sdr_bytes(),
            cc in prop_oneof![Just(0u8), Just(0xc1), any::<u8>()],
        ) {
            let _ = sel::parse_sel_info(&b);
            let repo = sdr::SdrRepository::from_records(sdr::SdrRepositoryInfo::default(), [rec.as_slice()]);
            if let Ok(r) = sel::parse_record(&b) {
                let e = sel::to_log_entry(&r, "srv", 1, Some(&repo));
                prop_assert_eq!(e.log_id.as_str(), "ipmi:sel");
                let _ = sel::message(&r, None);
            }
            if let Ok(p) = dcmi::parse_power_reading(cc, &b) {
                let _ = telemetry::dcmi_reading(&p, "srv", 1);
            }
        }

        /// Every 16-byte record decodes to something (never an error), whatever its type.
        #[test]
        fn any_sixteen_bytes_are_a_sel_record(b in prop::array::uniform16(any::<u8>())) {
            let r = sel::parse_record(&b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.record_id(), u16::from_le_bytes([b[0], b[1]]));
            prop_assert!(!sel::message(&r, None).is_empty());
        }
    }
}
