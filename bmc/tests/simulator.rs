//! The Redfish client and inventory against the fleet simulator (DMTF's public-rackmount1 mockup
//! served with state): identities, concrete values from the mockup files, sessions, errors.

use std::time::Duration;

use automata_bmc::redfish::inventory;
use automata_bmc::{BmcError, ClientOptions, Credentials, RedfishClient};
use automata_schemas::types::ComponentKind;
use automata_simulator::{Fleet, SimConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn fleet(n: usize) -> Fleet {
    fleet_paged(n, 0).await
}

async fn fleet_paged(n: usize, page_size: usize) -> Fleet {
    // Consecutive free ports: try a few random bases.
    for _ in 0..20 {
        let base = free_port();
        if base > 60_000 {
            continue;
        }
        let mut cfg = SimConfig::local(n, base);
        cfg.page_size = page_size;
        if let Ok(f) = Fleet::start(cfg).await {
            return f;
        }
    }
    panic!("no run of free ports for the simulator");
}

fn creds() -> Credentials {
    Credentials::new("admin", "simulated")
}

#[tokio::test]
async fn inventories_a_simulated_bmc_with_the_mockups_values() {
    let f = fleet(2).await;
    for e in &f.endpoints {
        let c = RedfishClient::new(&e.address, creds(), ClientOptions::default()).expect("client");
        let inv = inventory::collect(&c, &e.address).await.expect("inventory");
        c.logout().await;
        assert_eq!(inv.snapshots.len(), 1);
        let s = &inv.snapshots[0];
        assert_eq!(
            s.server_id, e.server_id,
            "the ComputerSystem UUID, lowercase"
        );
        assert_eq!(s.system.serial.as_deref(), Some(e.serial.as_str()));
        assert_eq!(
            s.system.product.as_deref(),
            Some("3500"),
            "Model in the mockup"
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let count = |k: ComponentKind| s.components.iter().filter(|c| c.kind == k).count();
        // public-rackmount1: 2 sockets (one absent), 4 DIMM slots populated, one BMC.
        assert!(count(ComponentKind::Cpu) >= 1);
        assert!(count(ComponentKind::Dimm) >= 1);
        assert_eq!(count(ComponentKind::Bmc), 1);
        let bios = s
            .components
            .iter()
            .find(|c| c.kind == ComponentKind::Bios)
            .expect("bios");
        assert_eq!(
            bios.firmware_version.as_deref(),
            Some("P79 v1.45 (12/06/2017)")
        );
        assert!(
            bios.properties.keys().any(|k| k.starts_with("attr.")),
            "BIOS attributes"
        );
        let bmc = s
            .components
            .iter()
            .find(|c| c.kind == ComponentKind::Bmc)
            .expect("bmc");
        assert!(bmc.firmware_version.is_some());
        assert!(
            s.components.iter().any(|c| c.kind == ComponentKind::Psu),
            "power supplies"
        );
        assert!(
            s.components
                .iter()
                .any(|c| c.kind == ComponentKind::Nic && c.properties.contains_key("mac"))
        );
    }
    f.stop().await;
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_and_a_dead_bmc_a_connect_error() {
    let f = fleet(1).await;
    let e = &f.endpoints[0];
    let c = RedfishClient::new(
        &e.address,
        Credentials::new("admin", "wrong"),
        ClientOptions::default(),
    )
    .expect("client");
    match inventory::collect(&c, &e.address).await {
        Err(BmcError::Auth { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected an auth error, got {other:?}"),
    }
    let dead = format!("http://127.0.0.1:{}", free_port());
    let opts = ClientOptions {
        retries: 1,
        backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let c = RedfishClient::new(&dead, creds(), opts).expect("client");
    let t = std::time::Instant::now();
    match inventory::collect(&c, &dead).await {
        Err(e @ BmcError::Connect { .. }) => assert!(e.is_transient()),
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    f.stop().await;
}

#[tokio::test]
async fn paged_collections_are_followed_to_the_last_page() {
    let whole = fleet(1).await;
    let paged = fleet_paged(1, 1).await;
    let mut ids = Vec::new();
    for f in [&whole, &paged] {
        let e = &f.endpoints[0];
        let c = RedfishClient::new(&e.address, creds(), ClientOptions::default()).expect("client");
        let inv = inventory::collect(&c, &e.address).await.expect("inventory");
        let mut v: Vec<String> = inv.snapshots[0]
            .components
            .iter()
            .map(|c| c.component_id.clone())
            .collect();
        v.sort();
        ids.push(v);
    }
    assert!(
        ids[0].iter().filter(|i| i.starts_with("dimm:")).count() > 1,
        "{:?}",
        ids[0]
    );
    assert_eq!(ids[0], ids[1], "one member per page, every page read");
    whole.stop().await;
    paged.stop().await;
}

#[tokio::test]
async fn a_hung_bmc_costs_its_timeout_and_nothing_else() {
    use automata_simulator::faults::{FaultKind, FaultSpec};
    let f = fleet(2).await;
    f.bmcs[0]
        .inject(
            &FaultSpec {
                server: 0,
                kind: FaultKind::BmcHang,
                at: None,
                duration: None,
                component: None,
            },
            "test",
        )
        .expect("inject");
    let opts = ClientOptions {
        timeout: Duration::from_millis(800),
        retries: 1,
        backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let (hung, healthy) = tokio::join!(
        async {
            let e = &f.endpoints[0];
            let c = RedfishClient::new(&e.address, creds(), opts.clone()).expect("client");
            inventory::collect(&c, &e.address).await
        },
        async {
            let e = &f.endpoints[1];
            let c = RedfishClient::new(&e.address, creds(), opts.clone()).expect("client");
            inventory::collect(&c, &e.address).await
        }
    );
    match hung {
        Err(e @ BmcError::Timeout { .. }) => assert!(e.to_string().contains("no answer")),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(healthy.is_ok(), "{healthy:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    f.stop().await;
}

#[tokio::test]
async fn sensors_are_read_with_units_thresholds_and_stable_ids() {
    use automata_bmc::redfish::telemetry;
    use automata_schemas::types::SensorKind;
    let f = fleet(1).await;
    let e = &f.endpoints[0];
    let c = RedfishClient::new(&e.address, creds(), ClientOptions::default()).expect("client");
    let topo = telemetry::topology(&c, &e.address).await.expect("topology");
    assert!(topo.chassis.iter().all(|(_, _, sid)| sid == &e.server_id));
    let (first, errors) = telemetry::poll(&c, &topo).await;
    assert!(errors.is_empty(), "{errors:?}");
    let kinds: std::collections::HashSet<_> = first.iter().map(|r| r.kind).collect();
    for k in [SensorKind::Power, SensorKind::Temperature, SensorKind::Fan] {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    for r in &first {
        let unit_ok = match r.kind {
            SensorKind::Power => r.unit == "W",
            SensorKind::Temperature => r.unit == "Cel",
            SensorKind::Fan => r.unit == "RPM" || r.unit == "%",
            SensorKind::Voltage => r.unit == "V",
            _ => true,
        };
        assert!(unit_ok, "{r:?}");
    }
    assert!(
        first
            .iter()
            .any(|r| r.kind == SensorKind::Temperature && r.thresholds.is_some())
    );
    let (second, _) = telemetry::poll(&c, &topo).await;
    let ids = |v: &[automata_schemas::types::TelemetryReading]| {
        let mut i: Vec<String> = v.iter().map(|r| r.sensor_id.clone()).collect();
        i.sort();
        i
    };
    assert_eq!(
        ids(&first),
        ids(&second),
        "the same sensors under the same ids"
    );
    f.stop().await;
}

#[test]
fn addresses_are_checked_and_credentials_never_printed() {
    use automata_bmc::redfish::parse_address;
    assert_eq!(
        parse_address("10.0.0.5").expect("host").as_str(),
        "https://10.0.0.5/"
    );
    assert_eq!(
        parse_address("http://127.0.0.1:8000/redfish/v1")
            .expect("url")
            .as_str(),
        "http://127.0.0.1:8000/"
    );
    assert!(parse_address("https://root:calvin@10.0.0.5").is_err());
    assert!(parse_address("ftp://x").is_err());
    assert!(parse_address("").is_err());
    let c = Credentials::new("root", "calvin");
    assert!(!format!("{c:?}").contains("calvin"));
}
