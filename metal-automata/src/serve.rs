//! `metal-automata serve`: opens the log, registers the schemas and runs the chosen roles.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use automata_log::MessageLog;
use automata_query::{ApiBuilder, ApiServer, ApiState, StaticStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Role;
use crate::config::Config;

/// Runs the service until Ctrl-C or SIGTERM.
pub async fn serve(
    mut cfg: Config,
    cfg_path: Option<PathBuf>,
    roles: Vec<Role>,
    demo: Option<usize>,
) -> Result<()> {
    let roles: BTreeSet<Role> = if roles.is_empty() {
        Role::ALL.into_iter().collect()
    } else {
        roles.into_iter().collect()
    };
    let role_names: Vec<String> = roles.iter().map(|r| r.name().to_string()).collect();
    let obs = automata_observability::init(&cfg.observability)
        .context("setting up logging, tracing and metrics")?;

    let data_dir = cfg.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let log = MessageLog::open(&cfg.log, &data_dir).context("opening the message log")?;
    let topics: Vec<_> = automata_schemas::catalog::topics()
        .iter()
        .map(|t| t.log_config())
        .collect();
    log.ensure_topics(&topics)
        .await
        .with_context(|| format!("creating topics on the {}", log.describe()))?;

    let shutdown = CancellationToken::new();
    let schemas = crate::registry::start(&cfg, &log, shutdown.clone())
        .await
        .context("registering the topic schemas")?;
    let mut tasks: JoinSet<(&'static str, Result<()>)> = JoinSet::new();

    // The BMC registry lives beside the log; the collector reads it, the API writes it.
    let bmc_registry = Arc::new(
        automata_bmc::registry::BmcRegistry::open(&data_dir.join("bmc"))
            .context("opening the BMC registry")?,
    );
    let bmc_board = automata_bmc::registry::StatusBoard::default();
    let demo_fleet = match demo {
        Some(n) => {
            // A demo shows change quickly: BMC inventory every minute.
            cfg.collector.bmc_inventory_secs = cfg.collector.bmc_inventory_secs.min(60);
            cfg.collector.bmc_sensor_secs = cfg.collector.bmc_sensor_secs.clamp(1, 15);
            Some(start_demo(&data_dir, &bmc_registry, n).await?)
        }
        None => None,
    };
    let bmc_kick = Arc::new(tokio::sync::Notify::new());

    let mut api_url = None;
    if roles.contains(&Role::Api) {
        let server = ApiServer::bind(&cfg.api).await?;
        let addr = server.local_addr();
        api_url = Some(format!("http://{addr}"));
        let status = StaticStatus::new(
            "metal-automata",
            env!("CARGO_PKG_VERSION"),
            role_names.clone(),
            log.describe(),
        );
        let state = ApiState::new(Arc::new(status))
            .with_metrics(obs.metrics().render_fn())
            .with_token(cfg.api.load_token()?)
            .with_schema_registry(schemas.local_registry());
        let app = ApiBuilder::new(state)
            .merge(automata_query::fleet::routes(
                automata_query::fleet::FleetView::start(
                    log.clone(),
                    schemas.ids(),
                    shutdown.clone(),
                ),
            ))
            .merge(automata_query::bmcs::routes(
                automata_query::bmcs::BmcRoutes {
                    registry: bmc_registry.clone(),
                    board: bmc_board.clone(),
                    kick: bmc_kick.clone(),
                },
            ))
            .merge(automata_query::tpm::routes(
                automata_query::tpm::TpmRoutes::start(
                    log.clone(),
                    schemas.ids(),
                    cfg.tpm.roots(&data_dir)?,
                    cfg.tpm.challenge_key(&data_dir)?,
                    shutdown.clone(),
                ),
            ))
            .merge(automata_query::firmware::routes(
                crate::firmware::api_routes(&cfg, log.clone(), schemas.ids())?,
            ))
            .merge(automata_query::sql::routes(Arc::new(
                automata_query::sql::SqlEngine::new(
                    log.clone(),
                    schemas.ids(),
                    cfg.history_location()?,
                    cfg.sql.clone(),
                ),
            )))
            .build();
        let s = shutdown.clone();
        tasks.spawn(async move {
            let r = server.serve(app, async move { s.cancelled().await }).await;
            ("api", r.map_err(Into::into))
        });
    }
    if roles.contains(&Role::Collector) && cfg.collector.local_host {
        let (log, s, ids, every) = (
            log.clone(),
            shutdown.clone(),
            schemas.ids(),
            std::time::Duration::from_secs(cfg.collector.interval_secs.max(1)),
        );
        tasks.spawn(async move {
            let r = automata_producers::host::run(log, ids, every, s).await;
            ("collector", r.map_err(Into::into))
        });
    }
    if roles.contains(&Role::Collector) {
        let shared_log = log.clone();
        let (log, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let mut bmc_cfg = cfg.collector.bmc();
        // The live Secure Boot check judges with the operator's installed rule pack, if any.
        bmc_cfg.secure_boot =
            std::sync::Arc::new(automata_producers::findings::SecureBootCheck::new(
                crate::firmware::installed_pack(&cfg)?,
            ));
        let (registry, board, kick) = (bmc_registry.clone(), bmc_board.clone(), bmc_kick.clone());
        tasks.spawn(async move {
            let r = automata_producers::bmc::run(log, ids, registry, board, kick, bmc_cfg, s).await;
            ("collector", r.map_err(Into::into))
        });
        if cfg.collector.bmc_sensor_secs > 0 {
            let (sensor_log, s, ids, registry, bmc_cfg) = (
                shared_log,
                shutdown.clone(),
                schemas.ids(),
                bmc_registry.clone(),
                cfg.collector.bmc(),
            );
            let every = std::time::Duration::from_secs(cfg.collector.bmc_sensor_secs.max(1));
            // Log cursors survive restarts, so each BMC log entry is published once.
            let logs = automata_producers::bmc::LogCollectorConfig::persisted(
                data_dir.join("bmc").join("log-cursors.json"),
            );
            tasks.spawn(async move {
                let r = automata_producers::bmc::run_sensors_with(
                    sensor_log, ids, registry, every, bmc_cfg, logs, s,
                )
                .await;
                ("collector", r.map_err(Into::into))
            });
        }
    }
    if roles.contains(&Role::Processor) {
        let (inv_log, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let instance = instance_id(&data_dir);
        tasks.spawn(async move {
            let r = automata_processors::run(
                inv_log,
                move || automata_processors::inventory::InventoryProcessor::new(ids.clone()),
                automata_processors::RunnerConfig {
                    instance_id: instance,
                    ..Default::default()
                },
                s,
            )
            .await;
            ("processor", r.map_err(Into::into))
        });
        // The pack's advisories the fleet's topic lacks (the first start, or a release that
        // ships new ones): the firmware-updates processor matches servers against the topic.
        let (seed_log, seed_ids, seed_cfg) = (log.clone(), schemas.ids(), cfg.clone());
        tokio::spawn(async move {
            match crate::firmware::seed_advisories(&seed_cfg, &seed_log, &seed_ids).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    advisories = n,
                    "rule pack advisories published for the fleet"
                ),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "rule pack advisories not published")
                }
            }
        });
        let (fw_log, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let instance = instance_id(&data_dir);
        tasks.spawn(async move {
            let r = automata_processors::run(
                fw_log,
                move || {
                    automata_processors::firmware_updates::FirmwareUpdatesProcessor::new(
                        ids.clone(),
                    )
                },
                automata_processors::RunnerConfig {
                    instance_id: instance,
                    ..Default::default()
                },
                s,
            )
            .await;
            ("processor", r.map_err(Into::into))
        });
        let (log, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let instance = instance_id(&data_dir);
        tasks.spawn(async move {
            let r = automata_processors::run(
                log,
                move || automata_processors::server_state::ServerStateProcessor::new(ids.clone()),
                automata_processors::RunnerConfig {
                    instance_id: instance,
                    ..Default::default()
                },
                s,
            )
            .await;
            ("processor", r.map_err(Into::into))
        });
    }
    if roles.contains(&Role::Processor) {
        let (tpm_log, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let instance = instance_id(&data_dir);
        tasks.spawn(async move {
            let r = automata_processors::run(
                tpm_log,
                move || automata_processors::tpm::TpmProcessor::new(ids.clone()),
                automata_processors::RunnerConfig {
                    instance_id: instance,
                    ..Default::default()
                },
                s,
            )
            .await;
            ("processor", r.map_err(Into::into))
        });
        let (log, s, ids, hcfg) = (
            log.clone(),
            shutdown.clone(),
            schemas.ids(),
            cfg.health.clone(),
        );
        let instance = instance_id(&data_dir);
        tasks.spawn(async move {
            let r = automata_processors::run(
                log,
                move || {
                    automata_processors::health::HealthProcessor::new(ids.clone(), hcfg.clone())
                },
                automata_processors::RunnerConfig {
                    instance_id: instance,
                    ..Default::default()
                },
                s,
            )
            .await;
            ("processor", r.map_err(Into::into))
        });
    }
    if roles.contains(&Role::Sink) && !cfg.notify.routes.is_empty() {
        let (l, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let sink = automata_sinks::notify::NotifySink::new(ids, cfg.notify.clone())
            .context("the [notify] configuration")?;
        tasks.spawn(async move {
            let r = automata_sinks::run(l, sink, s).await;
            ("sink", r.map_err(Into::into))
        });
    }
    if roles.contains(&Role::Sink) {
        let (l, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        tasks.spawn(async move {
            let sink = automata_sinks::fleet_metrics::FleetMetricsSink::new(ids);
            let r = automata_sinks::run(l, sink, s).await;
            ("sink", r.map_err(Into::into))
        });
        let (l, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        tasks.spawn(async move {
            let sink = automata_sinks::fleet_metrics::HealthMetricsSink::new(ids);
            let r = automata_sinks::run(l, sink, s).await;
            ("sink", r.map_err(Into::into))
        });
        let (l, s, ids) = (log.clone(), shutdown.clone(), schemas.ids());
        let root = cfg.history_location()?;
        let policy = automata_history::FlushPolicy {
            max_rows: cfg.history.max_rows.max(1),
            max_age: std::time::Duration::from_secs(cfg.history.max_age_secs),
        };
        let upkeep = automata_sinks::history::Upkeep {
            every: (cfg.history.upkeep_every_secs > 0)
                .then(|| std::time::Duration::from_secs(cfg.history.upkeep_every_secs)),
            retention: cfg
                .history
                .retention_days
                .iter()
                .map(|(t, d)| (t.clone(), std::time::Duration::from_secs(d * 86_400)))
                .collect(),
        };
        tasks.spawn(async move {
            let sink = automata_sinks::history::HistorySink::new(root, ids, policy, upkeep);
            let r = automata_sinks::run(l, sink, s).await;
            ("sink", r.map_err(Into::into))
        });
    }
    print_banner(
        &role_names,
        &data_dir,
        &log,
        cfg_path.as_deref(),
        api_url.as_deref(),
        &cfg.storage_url(),
    );

    let mut failed = None;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(done) = tasks.join_next() => {
            match done {
                Ok((role, Ok(()))) => tracing::warn!(role, "role stopped"),
                Ok((role, Err(e))) => failed = Some(e.context(format!("the {role} role failed"))),
                Err(e) => failed = Some(anyhow::anyhow!("a role panicked: {e}")),
            }
        }
    }
    shutdown.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok((role, Err(e))) = done {
            tracing::warn!(role, error = %e, "role stopped with an error during shutdown");
        }
    }
    log.flush(std::time::Duration::from_secs(10)).await.ok();
    if let Some(f) = demo_fleet {
        f.stop().await;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Serves `servers` simulated BMCs (one loopback address each, 127.1.0.1:8000 on) with faults
/// at a modest random rate, and registers them, for `serve --demo`.
async fn start_demo(
    data_dir: &std::path::Path,
    registry: &automata_bmc::registry::BmcRegistry,
    servers: usize,
) -> Result<automata_simulator::Fleet> {
    let out = data_dir.join("demo");
    let args = crate::simulate::SimulateArgs {
        control: "127.0.0.1:7879".parse()?,
        fault_rates: vec!["all=0.3".into()],
        // A fleet mid-rollover: most servers on the 2023 Microsoft CAs, some not, a few with a
        // test Platform Key, so `firmware findings` has live servers to show.
        secure_boot: automata_simulator::secureboot::SecureBootProfile::Mixed,
        ..crate::simulate::SimulateArgs::local(servers, "127.1.0.1:8000".parse()?, out.clone())
    };
    let (fleet, _, _, password) = crate::simulate::start_fleet(&args)
        .await
        .context("starting the demo fleet (127.1.0.1:8000 onwards, control on 127.0.0.1:7879)")?;
    for e in &fleet.endpoints {
        let entry = automata_bmc::registry::BmcEntry {
            name: e.name.clone(),
            address: e.address.clone(),
            username: "admin".into(),
            protocol: automata_bmc::Protocol::Redfish,
            tls: automata_bmc::TlsPolicy::Verify,
            added_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels: [("demo".to_string(), "true".to_string())]
                .into_iter()
                .collect(),
        };
        registry.add(entry, &password)?;
    }
    eprintln!(
        "  demo:    {} simulated BMCs at {} … (faults: GET http://{}/simulator/v1/faults)",
        fleet.endpoints.len(),
        fleet
            .endpoints
            .first()
            .map(|e| e.address.as_str())
            .unwrap_or("-"),
        fleet.control
    );
    Ok(fleet)
}

/// A stable id per data directory: a restarted processor fences its previous incarnation.
fn instance_id(data_dir: &std::path::Path) -> String {
    let path = data_dir.join("instance-id");
    if let Ok(s) = std::fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return s.trim().to_string();
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Err(e) = std::fs::write(&path, &id) {
        tracing::warn!(path = %path.display(), error = %e, "cannot persist the instance id");
    }
    id
}

fn print_banner(
    roles: &[String],
    data_dir: &std::path::Path,
    log: &MessageLog,
    cfg_path: Option<&std::path::Path>,
    api: Option<&str>,
    storage: &str,
) {
    eprintln!(
        "metal-automata {}: roles {}",
        env!("CARGO_PKG_VERSION"),
        roles.join(", ")
    );
    eprintln!("  data:    {} ({})", data_dir.display(), log.describe());
    eprintln!("  storage: {storage}");
    match cfg_path {
        Some(p) => eprintln!("  config:  {}", p.display()),
        None => eprintln!("  config:  built-in defaults (+ METAL_AUTOMATA_* environment)"),
    }
    if let Some(url) = api {
        eprintln!(
            "  api:     {url}/api/v1  (OpenAPI: {url}/api/v1/openapi.json, metrics: {url}/metrics, schema registry: {url}/subjects)"
        );
    }
    eprintln!(
        "  next:    metal-automata servers list | bmc list | servers show <id> | sql --tables"
    );
    eprintln!("  stop with Ctrl-C");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
