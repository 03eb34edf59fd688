//! A simulated fleet over real HTTP: what a Redfish client sees.

use std::time::{Duration, Instant};

use automata_simulator::faults::{FaultKind, FaultSpec};
use automata_simulator::{Fleet, SimConfig};
use serde_json::{Value, json};

fn free_port_base(n: u16) -> u16 {
    // Ports in a range the OS does not hand out as ephemeral ones, spread by process id so
    // parallel test binaries do not collide.
    20000 + (std::process::id() as u16 % 400) * 20 + n * 5
}

async fn fleet(servers: usize, slot: u16) -> Fleet {
    let mut cfg = SimConfig::local(servers, free_port_base(slot));
    cfg.power_delay = Duration::from_millis(300);
    cfg.update_time = Duration::from_millis(500);
    match Fleet::start(cfg).await {
        Ok(f) => f,
        Err(e) => panic!("fleet did not start: {e}"),
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str) -> Self {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: base.to_string(),
        }
    }

    async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth("admin", Some("simulated"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = match r.send().await {
            Ok(r) => r,
            Err(e) => panic!("{path}: {e}"),
        };
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.req(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }
}

/// A response header as text ("" when absent).
fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn system_uri(c: &Client) -> String {
    let systems = c.get("/redfish/v1/Systems").await;
    systems["Members"][0]["@odata.id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_for(mut cond: impl AsyncFnMut() -> bool, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn servers_are_distinct_and_need_credentials() {
    let f = fleet(3, 0).await;
    let a = Client::new(&f.endpoints[0].address);
    let b = Client::new(&f.endpoints[1].address);
    let sa = a.get(&system_uri(&a).await).await;
    let sb = b.get(&system_uri(&b).await).await;
    assert_ne!(sa["UUID"], sb["UUID"]);
    assert_ne!(sa["SerialNumber"], sb["SerialNumber"]);
    assert_eq!(
        sa["UUID"].as_str().map(str::to_lowercase).as_deref(),
        Some(f.endpoints[0].server_id.as_str())
    );

    // The service root is open; everything else needs credentials.
    let anon = reqwest::Client::new();
    let root = anon
        .get(format!("{}/redfish/v1/", f.endpoints[0].address))
        .send()
        .await;
    assert_eq!(root.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    let denied = anon
        .get(format!("{}/redfish/v1/Systems", f.endpoints[0].address))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await;
    assert_eq!(denied.map(|r| r.status().as_u16()).unwrap_or(0), 401);

    // A session: token in, token out.
    let resp = anon
        .post(format!(
            "{}/redfish/v1/SessionService/Sessions",
            f.endpoints[0].address
        ))
        .json(&json!({"UserName": "admin", "Password": "simulated"}))
        .send()
        .await;
    let Ok(resp) = resp else {
        panic!("session post failed")
    };
    assert_eq!(resp.status().as_u16(), 201);
    let token = header(&resp, "x-auth-token");
    let location = header(&resp, "location");
    let with_token = anon
        .get(format!("{}/redfish/v1/Systems", f.endpoints[0].address))
        .header("X-Auth-Token", &token)
        .send()
        .await;
    assert_eq!(with_token.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    let logout = anon
        .delete(format!("{}{location}", f.endpoints[0].address))
        .header("X-Auth-Token", &token)
        .send()
        .await;
    assert_eq!(logout.map(|r| r.status().as_u16()).unwrap_or(0), 204);
    f.stop().await;
}

#[tokio::test]
async fn power_changes_after_a_delay_and_bad_input_gets_redfish_errors() {
    let f = fleet(1, 1).await;
    let c = Client::new(&f.endpoints[0].address);
    let sys = system_uri(&c).await;
    assert_eq!(c.get(&sys).await["PowerState"], "On");
    let (s, _) = c
        .post(
            &format!("{sys}/Actions/ComputerSystem.Reset"),
            json!({"ResetType": "ForceOff"}),
        )
        .await;
    assert_eq!(s, 204);
    wait_for(
        async || c.get(&sys).await["PowerState"] == "Off",
        "power off",
    )
    .await;
    let (s, v) = c
        .post(
            &format!("{sys}/Actions/ComputerSystem.Reset"),
            json!({"ResetType": "Explode"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_default()
            .contains("ActionParameterValueNotInList")
    );
    let raw = reqwest::Client::new()
        .patch(format!("{}{sys}", f.endpoints[0].address))
        .basic_auth("admin", Some("simulated"))
        .body("{not json")
        .send()
        .await;
    assert_eq!(raw.map(|r| r.status().as_u16()).unwrap_or(0), 400);
    let (s, _) = c
        .req(reqwest::Method::GET, "/redfish/v1/Nowhere", None)
        .await;
    assert_eq!(s, 404);
    f.stop().await;
}

#[tokio::test]
async fn bios_settings_wait_for_the_next_reset() {
    let f = fleet(1, 2).await;
    let c = Client::new(&f.endpoints[0].address);
    let sys = system_uri(&c).await;
    let bios = c.get(&format!("{sys}/Bios")).await;
    let settings = bios["@Redfish.Settings"]["SettingsObject"]["@odata.id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, _) = c
        .req(
            reqwest::Method::PATCH,
            &settings,
            Some(json!({"Attributes": {"BootMode": "Floppy"}})),
        )
        .await;
    assert_eq!(s, 400, "a value outside the registry is refused");
    let (s, _) = c
        .req(
            reqwest::Method::PATCH,
            &settings,
            Some(json!({"Attributes": {"BootMode": "LegacyBios"}})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        c.get(&format!("{sys}/Bios")).await["Attributes"]["BootMode"],
        "Uefi"
    );
    assert_eq!(
        c.get(&settings).await["Attributes"]["BootMode"],
        "LegacyBios"
    );
    c.post(
        &format!("{sys}/Actions/ComputerSystem.Reset"),
        json!({"ResetType": "ForceRestart"}),
    )
    .await;
    wait_for(
        async || c.get(&format!("{sys}/Bios")).await["Attributes"]["BootMode"] == "LegacyBios",
        "BIOS setting applied at reset",
    )
    .await;
    // The registry the Bios names is published.
    let regs = c.get("/redfish/v1/Registries").await;
    let reg_id = bios["AttributeRegistry"].as_str().unwrap_or_default();
    assert!(regs.to_string().contains(reg_id));
    f.stop().await;
}

#[tokio::test]
async fn a_pushed_image_updates_the_firmware_through_a_task() {
    let f = fleet(1, 3).await;
    let c = Client::new(&f.endpoints[0].address);
    let inv = c.get("/redfish/v1/UpdateService/FirmwareInventory").await;
    let members: Vec<String> = inv["Members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["@odata.id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let Some(nic) = members
        .iter()
        .find(|m| !m.contains("BIOS") && !m.contains("BMC"))
    else {
        panic!("no component that activates at once in {members:?}");
    };
    let form = reqwest::multipart::Form::new()
        .text("UpdateParameters", json!({"Targets": [nic]}).to_string())
        .part(
            "UpdateFile",
            reqwest::multipart::Part::bytes(b"version=9.8.7\n................".to_vec())
                .file_name("fw.bin"),
        );
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/redfish/v1/UpdateService/upload",
            f.endpoints[0].address
        ))
        .basic_auth("admin", Some("simulated"))
        .multipart(form)
        .send()
        .await;
    let Ok(resp) = resp else {
        panic!("push failed")
    };
    assert_eq!(resp.status().as_u16(), 202);
    let monitor = header(&resp, "location");
    wait_for(
        async || c.req(reqwest::Method::GET, &monitor, None).await.0 == 200,
        "the task to finish",
    )
    .await;
    let (_, task) = c.req(reqwest::Method::GET, &monitor, None).await;
    assert_eq!(task["TaskState"], "Completed", "{task}");
    assert_eq!(c.get(nic).await["Version"], "9.8.7");

    // A truncated image is refused by the task, not by a crash.
    let form = reqwest::multipart::Form::new().part(
        "UpdateFile",
        reqwest::multipart::Part::bytes(b"cut".to_vec()).file_name("fw.bin"),
    );
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/redfish/v1/UpdateService/upload",
            f.endpoints[0].address
        ))
        .basic_auth("admin", Some("simulated"))
        .multipart(form)
        .send()
        .await;
    let Ok(resp) = resp else {
        panic!("push failed")
    };
    let monitor = header(&resp, "location");
    let (_, task) = c.req(reqwest::Method::GET, &monitor, None).await;
    assert_eq!(task["TaskState"], "Exception", "{task}");
    f.stop().await;
}

#[tokio::test]
async fn an_injected_fault_shows_in_sensors_and_log_with_its_ground_truth() {
    let f = fleet(2, 4).await;
    let c = Client::new(&f.endpoints[1].address);
    let spec = FaultSpec {
        server: 1,
        kind: FaultKind::FanFailure,
        at: None,
        duration: None,
        component: Some("0".into()),
    };
    let truth = match f.bmcs[1].inject(&spec, "test") {
        Ok(t) => t,
        Err(e) => panic!("inject: {e}"),
    };
    assert_eq!(truth.server_id, f.endpoints[1].server_id);
    wait_for(
        async || c.get(&truth.component).await["Status"]["Health"] == "Critical",
        "the failed fan to read Critical",
    )
    .await;
    assert_eq!(c.get(&truth.component).await["Reading"], 0);
    let sys = system_uri(&c).await;
    let logs = c.get(&format!("{sys}/LogServices")).await;
    let log = logs["Members"][0]["@odata.id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let entries = c.get(&format!("{log}/Entries")).await;
    let mut fan_entries = 0;
    for m in entries["Members"].as_array().cloned().unwrap_or_default() {
        let e = c.get(m["@odata.id"].as_str().unwrap_or_default()).await;
        if e["SensorType"] == "Fan" && e["Severity"] == "Critical" {
            fan_entries += 1;
        }
    }
    assert_eq!(fan_entries, 1, "one log entry for the failed fan");
    assert_eq!(f.shared.ground_truth().len(), 1);
    // The other server is untouched.
    assert!(
        f.bmcs[0]
            .get(&truth.component)
            .is_some_and(|v| v["Status"]["Health"] == "OK")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_hung_bmc_does_not_answer() {
    let f = fleet(1, 5).await;
    let spec = FaultSpec {
        server: 0,
        kind: FaultKind::BmcHang,
        at: None,
        duration: Some(Duration::from_secs(30)),
        component: None,
    };
    if let Err(e) = f.bmcs[0].inject(&spec, "test") {
        panic!("inject: {e}");
    }
    let r = reqwest::Client::new()
        .get(format!("{}/redfish/v1/Systems", f.endpoints[0].address))
        .basic_auth("admin", Some("simulated"))
        .timeout(Duration::from_millis(800))
        .send()
        .await;
    assert!(r.is_err_and(|e| e.is_timeout()));
    f.stop().await;
}
