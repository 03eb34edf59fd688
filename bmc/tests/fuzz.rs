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
