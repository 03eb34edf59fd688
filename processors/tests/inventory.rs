//! The inventory processor's diff: added, removed, firmware from → to, and no false removals
//! when a part of the server could not be read.

use std::collections::HashMap;

use automata_processors::inventory::{diff, latest_key};
use automata_schemas::types::{
    ChangeKind, Component, ComponentKind, InventorySnapshot, InventorySource, SystemIdentity,
};

fn comp(id: &str, kind: ComponentKind, fw: Option<&str>) -> Component {
    Component {
        component_id: id.into(),
        kind,
        name: id.into(),
        manufacturer: None,
        model: None,
        serial: Some(format!("SN-{id}")),
        part_number: None,
        firmware_version: fw.map(str::to_string),
        location: None,
        properties: HashMap::new(),
    }
}

fn snap(at: i64, components: Vec<Component>, errors: Vec<&str>) -> InventorySnapshot {
    InventorySnapshot {
        server_id: "4c4c4544-0035-3410-8050-c6c04f314733".into(),
        source: InventorySource::Redfish,
        collected_at: at,
        system: SystemIdentity::default(),
        bios: None,
        components,
        errors: errors.into_iter().map(str::to_string).collect(),
    }
}

#[test]
fn firmware_changes_additions_and_removals_are_reported() {
    let before = snap(
        1,
        vec![
            comp("bios", ComponentKind::Bios, Some("1.2.4")),
            comp("dimm:A1", ComponentKind::Dimm, None),
            comp("disk:S1", ComponentKind::Disk, Some("HPG0")),
        ],
        vec![],
    );
    let mut after = snap(
        2,
        vec![
            comp("bios", ComponentKind::Bios, Some("1.8.2")),
            comp("dimm:A1", ComponentKind::Dimm, None),
            comp("disk:S2", ComponentKind::Disk, Some("HPG1")),
        ],
        vec![],
    );
    let changes = diff(&before, &mut after);
    let got: Vec<(String, ChangeKind, Option<String>, Option<String>)> = changes
        .iter()
        .map(|c| {
            (
                c.component_id.clone(),
                c.change,
                c.before.clone(),
                c.after.clone(),
            )
        })
        .collect();
    assert!(got.contains(&(
        "bios".into(),
        ChangeKind::FirmwareChanged,
        Some("1.2.4".into()),
        Some("1.8.2".into())
    )));
    assert!(
        got.iter()
            .any(|(id, k, _, _)| id == "disk:S1" && *k == ChangeKind::Removed)
    );
    assert!(
        got.iter()
            .any(|(id, k, _, _)| id == "disk:S2" && *k == ChangeKind::Added)
    );
    assert_eq!(changes.len(), 3, "{got:?}");
    assert!(changes.iter().all(|c| c.detected_at == 2));
}

#[test]
fn an_unreadable_part_is_not_reported_as_removed() {
    let before = snap(
        1,
        vec![
            comp("bios", ComponentKind::Bios, Some("1")),
            comp("dimm:A1", ComponentKind::Dimm, None),
            comp("dimm:A2", ComponentKind::Dimm, None),
        ],
        vec![],
    );
    let mut after = snap(
        2,
        vec![comp("bios", ComponentKind::Bios, Some("1"))],
        vec!["Memory: HTTP 500"],
    );
    assert!(diff(&before, &mut after).is_empty());
    assert_eq!(after.components.len(), 3, "the DIMMs are carried over");
    // Read fully again, a DIMM really gone is reported.
    let mut later = snap(
        3,
        vec![
            comp("bios", ComponentKind::Bios, Some("1")),
            comp("dimm:A1", ComponentKind::Dimm, None),
        ],
        vec![],
    );
    let c = diff(&after, &mut later);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].component_id.as_str(), c[0].change),
        ("dimm:A2", ChangeKind::Removed)
    );
}

#[test]
fn latest_is_kept_per_server_and_source() {
    let s = snap(1, vec![], vec![]);
    assert_eq!(
        latest_key(&s),
        "4c4c4544-0035-3410-8050-c6c04f314733/redfish"
    );
}
