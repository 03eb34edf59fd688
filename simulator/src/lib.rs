//! A fleet of simulated Redfish BMCs, for trying Metal Automata without hardware, for demos,
//! for end-to-end and scale tests, and as ground truth for diagnosis.
//!
//! Each BMC serves a DMTF mockup (chosen per server, identities varied from the seed) at its
//! own address, and keeps state the way a BMC does: power with realistic delays, sensors that
//! follow load, power and cooling, a log that grows as things happen, firmware updates through
//! tasks, BIOS settings that apply at the next reset, sessions, and faults injected by script,
//! at random or through the control API, each recorded with its ground truth.

pub mod bench;
pub mod bmc;
pub mod control;
pub mod events;
pub mod faults;
pub mod http;
pub mod identity;
pub mod mockup;
pub mod registry;
pub mod secureboot;
pub mod sensors;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bmc::{Bmc, Layout};
use crate::faults::{FaultRates, FaultScript, GroundTruth};
use crate::mockup::Mockup;
use crate::secureboot::SecureBootProfile;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A mockup directory could not be read.
    #[error("mockup {path}: {message}")]
    Mockup {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A BMC's address could not be bound.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
        /// What to try instead.
        hint: &'static str,
    },
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
    /// The ground-truth file could not be written.
    #[error("ground truth file {path}: {source}")]
    GroundTruth {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Where the BMCs listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One loopback address each, all on one port (as real BMCs: an IP per BMC). Linux routes
    /// all of 127.0.0.0/8 to loopback.
    IpPerServer {
        /// The first BMC's address; the others follow it.
        first: Ipv4Addr,
        /// The port on every address.
        port: u16,
    },
    /// One port each on one address.
    PortPerServer {
        /// The address.
        ip: IpAddr,
        /// The first BMC's port; the others follow it.
        first_port: u16,
    },
}

impl Addressing {
    /// The address of BMC `i`.
    pub fn addr(&self, i: usize) -> Result<SocketAddr, SimError> {
        match *self {
            Addressing::IpPerServer { first, port } => {
                let n = u32::from(first)
                    .checked_add(u32::try_from(i).unwrap_or(u32::MAX))
                    .filter(|n| Ipv4Addr::from(*n).is_loopback() || !first.is_loopback())
                    .ok_or_else(|| {
                        SimError::Config(format!("BMC {i}: past the end of 127.0.0.0/8"))
                    })?;
                Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), port))
            }
            Addressing::PortPerServer { ip, first_port } => {
                let p = u16::try_from(usize::from(first_port) + i)
                    .map_err(|_| SimError::Config(format!("BMC {i}: port past 65535")))?;
                Ok(SocketAddr::new(ip, p))
            }
        }
    }
}

/// The user name and password every simulated BMC accepts.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Whether `user`/`pass` match, compared in constant time.
    pub fn check(&self, user: &str, pass: &str) -> bool {
        use subtle::ConstantTimeEq;
        let u = self.username.as_bytes().ct_eq(user.as_bytes());
        let p = self.password.as_bytes().ct_eq(pass.as_bytes());
        bool::from(u & p)
    }
}

/// Everything a fleet is made from.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many BMCs.
    pub servers: usize,
    /// The seed: the same seed gives the same fleet.
    pub seed: u64,
    /// The mockups to build servers from, assigned round-robin after a seeded shuffle.
    pub mockups: Vec<Arc<Mockup>>,
    /// Where the BMCs listen.
    pub addressing: Addressing,
    /// Where the control API listens.
    pub control: SocketAddr,
    /// What the BMCs accept.
    pub credentials: Credentials,
    /// How long power-state changes take.
    pub power_delay: Duration,
    /// How long flashing an image takes.
    pub update_time: Duration,
    /// Random faults.
    pub fault_rates: FaultRates,
    /// Scripted faults.
    pub script: FaultScript,
    /// Where to append ground truth (JSON lines), if anywhere.
    pub ground_truth: Option<PathBuf>,
    /// Serve collections longer than this in pages linked by `Members@odata.nextLink`
    /// (`$skip`), as BMCs do with long logs; 0 serves every collection whole.
    pub page_size: usize,
    /// The Secure Boot keys the systems carry (Redfish `SecureBoot`).
    pub secure_boot: SecureBootProfile,
    /// Whether sensors crossing their thresholds as the model warms up write SEL entries, as a
    /// BMC does. Tests that count log entries exactly turn it off; faults still log.
    pub threshold_events: bool,
}

impl SimConfig {
    /// A fleet of `servers` from the built-in mockup, one loopback port each from `first_port`.
    pub fn local(servers: usize, first_port: u16) -> Self {
        SimConfig {
            servers,
            seed: 1,
            mockups: vec![Arc::new(Mockup::builtin())],
            addressing: Addressing::PortPerServer {
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                first_port,
            },
            control: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            credentials: Credentials {
                username: "admin".into(),
                password: "simulated".into(),
            },
            power_delay: Duration::from_secs(3),
            update_time: Duration::from_secs(10),
            fault_rates: FaultRates::default(),
            script: FaultScript::default(),
            ground_truth: None,
            page_size: 0,
            secure_boot: SecureBootProfile::Mockup,
            threshold_events: true,
        }
    }
}

/// What the BMCs of a fleet share: configuration, an HTTP client for image downloads, and the
/// ground-truth record.
#[derive(Debug)]
pub struct FleetShared {
    /// The configuration.
    pub config: SimConfig,
    http: reqwest::Client,
    truth: Mutex<Vec<GroundTruth>>,
    truth_file: Option<Mutex<std::fs::File>>,
    next_truth: AtomicU64,
    /// Cancelled when the fleet stops: long-lived responses (event streams) end then.
    stop: CancellationToken,
}

impl FleetShared {
    /// Records an injected fault, giving it its id.
    fn record(&self, mut t: GroundTruth) -> GroundTruth {
        t.id = self.next_truth.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(server = t.server, kind = t.kind.name(), component = %t.component, "fault injected");
        self.write(&t);
        self.truth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(t.clone());
        t
    }

    fn cleared(&self, id: u64) {
        let mut all = self.truth.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = all.iter_mut().find(|t| t.id == id) {
            t.cleared_at =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let t = t.clone();
            drop(all);
            tracing::info!(server = t.server, kind = t.kind.name(), "fault cleared");
            self.write(&t);
        }
    }

    /// Appends one record to the ground-truth file: a fault appears once when injected and
    /// again, with `cleared_at`, when cleared (readers keep the last line per id).
    fn write(&self, t: &GroundTruth) {
        if let Some(f) = &self.truth_file
            && let Ok(line) = serde_json::to_string(t)
        {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = writeln!(f, "{line}") {
                tracing::warn!(error = %e, "cannot append to the ground-truth file");
            }
        }
    }

    /// Every fault injected so far.
    pub fn ground_truth(&self) -> Vec<GroundTruth> {
        self.truth.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One BMC of a running fleet, as `bmc add` imports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Endpoint {
    /// `sim-0001`…
    pub name: String,
    /// The BMC's base URL (the service root is at `/redfish/v1`).
    pub address: String,
    /// The server's system UUID, as its ComputerSystem reports it.
    pub server_id: String,
    /// The system's serial number.
    pub serial: String,
    /// The mockup the server is built from.
    pub mockup: String,
}

/// A running fleet.
pub struct Fleet {
    /// What the BMCs share.
    pub shared: Arc<FleetShared>,
    /// The BMCs.
    pub bmcs: Vec<Arc<Bmc>>,
    /// Their addresses.
    pub endpoints: Vec<Endpoint>,
    /// Where the control API listens.
    pub control: SocketAddr,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Fleet {
    /// Builds the fleet, binds every BMC and starts serving and ticking.
    pub async fn start(config: SimConfig) -> Result<Fleet, SimError> {
        if config.mockups.is_empty() {
            return Err(SimError::Config("no mockup to build servers from".into()));
        }
        if config.servers == 0 {
            return Err(SimError::Config("a fleet needs at least one server".into()));
        }
        let truth_file = match &config.ground_truth {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| SimError::GroundTruth {
                        path: p.clone(),
                        source,
                    })?,
            )),
            None => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| SimError::Config(format!("HTTP client: {e}")))?;
        // One layout per mockup and Secure Boot variant; a server picks its mockup, then its
        // variant (the profile `Mixed` resolves per server).
        let variants = config.secure_boot.variants();
        let layouts: Vec<Vec<(SecureBootProfile, Arc<Layout>)>> = config
            .mockups
            .iter()
            .map(|m| {
                variants
                    .iter()
                    .map(|&p| {
                        let m = match p {
                            SecureBootProfile::Mockup => m.clone(),
                            p => Arc::new(secureboot::apply(m, p)),
                        };
                        (p, Arc::new(Layout::new(m)))
                    })
                    .collect()
            })
            .collect();
        let shutdown = CancellationToken::new();
        let shared = Arc::new(FleetShared {
            config: config.clone(),
            http,
            truth: Mutex::new(Vec::new()),
            truth_file,
            next_truth: AtomicU64::new(0),
            stop: shutdown.clone(),
        });
        let mut tasks = JoinSet::new();
        let mut bmcs = Vec::with_capacity(config.servers);
        let mut endpoints = Vec::with_capacity(config.servers);
        for i in 0..config.servers {
            let pick =
                (identity::mix(config.seed, i as u64 + 0xB0B) % layouts.len() as u64) as usize;
            let profile = config.secure_boot.for_server(config.seed, i);
            let options = &layouts[pick];
            let layout = options
                .iter()
                .find(|(p, _)| *p == profile)
                .or(options.first())
                .map(|(_, l)| l.clone())
                .ok_or_else(|| SimError::Config("no mockup to build servers from".into()))?;
            let bmc = Arc::new(Bmc::new(i, layout, shared.clone()));
            let addr = config.addressing.addr(i)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind {
                    addr,
                    hint: if matches!(config.addressing, Addressing::IpPerServer { .. }) {
                        " (only Linux routes all of 127.0.0.0/8 to loopback; elsewhere use one port per server)"
                    } else {
                        ""
                    },
                    source,
                })?;
            let local = listener.local_addr().unwrap_or(addr);
            endpoints.push(Endpoint {
                name: bmc.name.clone(),
                address: format!("http://{local}"),
                server_id: bmc.identity.system_uuid.clone(),
                serial: bmc.identity.serial.clone(),
                mockup: bmc.mockup_name().to_string(),
            });
            let app = http::router(bmc.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::warn!(%local, error = %e, "simulated BMC stopped");
                }
            });
            bmcs.push(bmc);
        }
        let control_listener = tokio::net::TcpListener::bind(config.control)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.control,
                source,
                hint: "",
            })?;
        let control = control_listener.local_addr().unwrap_or(config.control);
        let ctl = control::router(control::Control {
            shared: shared.clone(),
            bmcs: bmcs.clone(),
            endpoints: endpoints.clone(),
            started: Instant::now(),
        });
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(control_listener, ctl)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "simulator control API stopped");
            }
        });
        tasks.spawn(ticker(
            bmcs.clone(),
            config.script.clone(),
            shutdown.clone(),
        ));
        Ok(Fleet {
            shared,
            bmcs,
            endpoints,
            control,
            shutdown,
            tasks,
        })
    }

    /// Stops every BMC.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        // In-flight requests get a moment; a hung BMC's never end, so then they are cut.
        let drained = tokio::time::timeout(Duration::from_secs(2), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.shutdown().await;
        }
    }

    /// Requests served by all BMCs so far.
    pub fn requests(&self) -> u64 {
        self.bmcs.iter().map(|b| b.requests()).sum()
    }
}

/// Advances every BMC once a second and injects scripted faults when they fall due.
async fn ticker(bmcs: Vec<Arc<Bmc>>, script: FaultScript, stop: CancellationToken) {
    let start = Instant::now();
    let mut due: Vec<_> = script.faults;
    due.sort_by_key(|f| f.at.unwrap_or_default());
    let mut due = std::collections::VecDeque::from(due);
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = Instant::now();
        let elapsed = now - start;
        while due
            .front()
            .is_some_and(|f| f.at.unwrap_or_default() <= elapsed)
        {
            let Some(f) = due.pop_front() else { break };
            match bmcs.get(f.server) {
                Some(b) => {
                    if let Err(e) = b.inject(&f, "script") {
                        tracing::warn!(server = f.server, kind = f.kind.name(), error = %e, "scripted fault not injected");
                    }
                }
                None => tracing::warn!(
                    server = f.server,
                    "scripted fault for a server the fleet does not have"
                ),
            }
        }
        // Ticking 1,000 BMCs takes milliseconds; keep it off the async workers anyway.
        let all = bmcs.clone();
        let ticked = tokio::task::spawn_blocking(move || {
            for b in &all {
                b.tick(elapsed, now);
            }
        })
        .await;
        if let Err(e) = ticked {
            tracing::error!(error = %e, "simulator tick failed");
        }
    }
}
