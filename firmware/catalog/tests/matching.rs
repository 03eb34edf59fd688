//! Matching installed components against catalog entries.

mod common;

use automata_fwcatalog::{
    Criticality, InstalledComponent, MatchVerdict, dell, generic, match_component,
};
use common::*;

fn dell_entries() -> Vec<automata_fwcatalog::CatalogEntry> {
    let mut entries = dell::parse("dell", &read("Catalog.xml.gz")).expect("parse");
    // An older BIOS still listed, and an optional newer one for another system.
    let mut old = entries[0].clone();
    old.entry_id = "OLD01".into();
    old.version = "2.9.4".into();
    old.criticality = Criticality::Optional;
    entries.push(old);
    let mut other = entries[0].clone();
    other.entry_id = "OTHER".into();
    other.version = "9.0.0".into();
    other.applies_to.system_ids = vec!["0B00".into()];
    entries.push(other);
    entries
}

fn bios(version: &str) -> InstalledComponent {
    InstalledComponent {
        kind: "bios".into(),
        model: Some("PowerEdge R750".into()),
        system_id: Some("0a6b".into()),
        software_id: Some("159".into()),
        firmware_version: version.into(),
        ..InstalledComponent::default()
    }
}

#[test]
fn newer_version_with_criticality() {
    let v = match_component(&dell_entries(), &bios("2.9.4"));
    assert_eq!(
        v,
        MatchVerdict::UpdateAvailable {
            installed: "2.9.4".into(),
            latest: "2.10.2".into(),
            entry_key: "dell/7K3MN".into(),
            criticality: Criticality::Critical,
            installed_listed: true,
        }
    );
}

#[test]
fn already_current() {
    let v = match_component(&dell_entries(), &bios("2.10.2"));
    assert_eq!(
        v,
        MatchVerdict::Current {
            version: "2.10.2".into(),
            entry_key: "dell/7K3MN".into()
        }
    );
}

#[test]
fn running_a_version_the_catalog_no_longer_lists() {
    let v = match_component(&dell_entries(), &bios("2.11.0"));
    assert_eq!(
        v,
        MatchVerdict::NotListed {
            installed: "2.11.0".into(),
            latest: "2.10.2".into()
        }
    );
    let v = match_component(&dell_entries(), &bios("2.0.1"));
    assert!(
        matches!(
            v,
            MatchVerdict::UpdateAvailable {
                installed_listed: false,
                ..
            }
        ),
        "{v:?}"
    );
}

#[test]
fn pci_and_guid_and_generic_matches() {
    let entries = dell_entries();
    let nic = InstalledComponent {
        kind: "nic".into(),
        system_id: Some("0A6B".into()),
        pci_ids: vec!["14e4:16d7:1028:0a6f".parse().expect("pci")],
        firmware_version: "22.31.6".into(),
        ..InstalledComponent::default()
    };
    assert!(matches!(
        match_component(&entries, &nic),
        MatchVerdict::UpdateAvailable {
            criticality: Criticality::Recommended,
            ..
        }
    ));
    let wrong_system = InstalledComponent {
        system_id: Some("0FFF".into()),
        ..nic.clone()
    };
    assert_eq!(
        match_component(&entries, &wrong_system),
        MatchVerdict::NoMatch
    );

    let g = generic::parse("ops", &read("generic.yaml")).expect("yaml");
    let mlx = InstalledComponent {
        kind: "nic".into(),
        guids: vec!["A6B1A447-382A-5A4F-15B3-101D15B30042".into()],
        firmware_version: "22.41.1000".into(),
        ..InstalledComponent::default()
    };
    assert!(matches!(
        match_component(&g, &mlx),
        MatchVerdict::Current { .. }
    ));
    let smc = InstalledComponent {
        kind: "BIOS".into(),
        model: Some("X11SCH-F".into()),
        firmware_version: "1.5".into(),
        ..InstalledComponent::default()
    };
    assert!(matches!(
        match_component(&g, &smc),
        MatchVerdict::UpdateAvailable { .. }
    ));
    let unknown_model = InstalledComponent {
        model: Some("X12DPi".into()),
        ..smc
    };
    assert_eq!(match_component(&g, &unknown_model), MatchVerdict::NoMatch);
}
