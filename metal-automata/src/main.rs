//! `metal-automata`: one binary for every role of the service and every client command.

mod agent;
mod bench;
mod bench_firmware;
mod bench_inventory;
mod bench_query;
mod bench_telemetry;
mod bmc;
mod client;
mod config;
mod firmware;
mod firmware_remote;
mod output;
mod registry;
mod serve;
mod simulate;
mod sql;
mod tpm;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::output::{Output, OutputFormat};

/// Fleet firmware and hardware management over an event log.
#[derive(Debug, Parser)]
#[command(name = "metal-automata", version, about, propagate_version = true)]
struct Cli {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/metal-automata/config.toml if it exists.
    #[arg(long, global = true, env = "METAL_AUTOMATA_CONFIG")]
    config: Option<PathBuf>,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table, env = "METAL_AUTOMATA_OUTPUT")]
    output: OutputFormat,
    /// The service to talk to. Default: the local service from the config's api.listen.
    #[arg(long, global = true, env = "METAL_AUTOMATA_SERVER")]
    server: Option<String>,
    /// API token for a service outside loopback.
    #[arg(
        long,
        global = true,
        env = "METAL_AUTOMATA_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: every role in one process, or the roles given.
    Serve {
        /// Run only these roles (repeatable). On Kafka, each role scales out as its own processes.
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
        /// Also serve a simulated fleet (Redfish BMCs from DMTF's mockups, with faults now and
        /// then) and register it, so that a fresh machine shows a live fleet at once.
        #[arg(long)]
        demo: bool,
        /// Simulated servers for --demo.
        #[arg(long, default_value_t = 20, requires = "demo")]
        demo_servers: usize,
    },
    /// Show the service's status: roles, log backend, uptime.
    Status,
    /// Servers known to the fleet (latest state, fed from the servers.state topic).
    Servers {
        #[command(subcommand)]
        command: Option<ServersCommand>,
    },
    /// BMCs: register them (credentials sealed at rest), list their collection, read one now.
    Bmc {
        #[command(subcommand)]
        command: BmcCommand,
    },
    /// The in-band agent: reads this server's hardware and firmware inventory (SMBIOS, CPUs,
    /// DIMMs, PCI, NICs, disks, TPM, BMC) and publishes it; `--once` prints it.
    Agent(agent::AgentArgs),
    /// TPM identity: enroll this server's TPM (EK certificate checked, AK proven by credential
    /// activation); list, show and approve registrations.
    Tpm {
        #[command(subcommand)]
        command: TpmCommand,
    },
    /// Firmware: scan a file offline; the blob store, vendor catalogs and downloads (admin
    /// commands run on the service host against its data directory).
    Firmware {
        #[command(subcommand)]
        command: firmware::FirmwareCommand,
    },
    /// Topics of the message log with their partitions and offsets.
    Topics,
    /// Schemas registered in the schema registry.
    Schemas,
    /// Ask fleet history a question in SQL (DataFusion): `metal-automata sql "SELECT ..."`.
    ///
    /// Tables: servers, telemetry, inventory, components, firmware, component_changes,
    /// health_events, health, commands, workflow_events, firmware_artifacts, firmware_scans,
    /// tpm_registrations, benchmarks, diagnoses; raw per-topic tables in schema `raw`.
    /// `--tables` lists them. Prints a table, or `--output json|csv|parquet`.
    Sql {
        /// The query (read-only).
        #[arg(required_unless_present = "tables")]
        query: Option<String>,
        /// List the tables instead.
        #[arg(long)]
        tables: bool,
        /// With `--output parquet`: the file to write (default: stdout, when redirected).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export a table as Parquet for analytics stacks (Spark, Trino, DuckDB read it as it is).
    Export {
        /// The table (see `sql --tables`).
        table: String,
        /// Where to write `<table>/part-*.parquet`: a directory or an `s3://bucket/prefix` URL
        /// (reached with the `[storage.s3]` settings and the `AWS_*` credentials).
        #[arg(long)]
        to: String,
        /// Only rows from this time on: RFC 3339, or a span back from now such as 24h or 7d.
        #[arg(long)]
        since: Option<String>,
    },
    /// Measure the pipeline's stages and print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Serve a fleet of simulated Redfish BMCs: DMTF mockups with power, moving sensors, logs,
    /// firmware updates, BIOS settings, sessions and injected faults.
    Simulate(simulate::SimulateArgs),
    /// Show the effective configuration (after file and environment).
    Config,
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ServersCommand {
    /// List servers.
    List,
    /// Show one server's latest state.
    Show {
        /// Server id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TpmCommand {
    /// Enroll this server's TPM with the service (run on the server, as root).
    Enroll(tpm::EnrollArgs),
    /// Every server's registration: status, manufacturer, firmware, EK fingerprint.
    List,
    /// One server's registration.
    Show {
        /// Server id.
        #[arg(value_name = "SERVER")]
        server_id: String,
    },
    /// Accept a server's changed EK (board swap, TPM cleared); audited.
    Approve(tpm::ApproveArgs),
}

#[derive(Debug, Subcommand)]
enum BmcCommand {
    /// Register a BMC; its inventory is collected at once and then on the collector's interval.
    Add(bmc::AddArgs),
    /// Register every BMC of a fleet file (as `simulate` writes it).
    Import(bmc::ImportArgs),
    /// Registered BMCs and the outcome of their last collection.
    List,
    /// Unregister a BMC and drop its stored password.
    Remove {
        /// Its name (see `bmc list`).
        name: String,
    },
    /// Collect every BMC now.
    Collect,
    /// Print the SHA-256 fingerprint of the certificate a BMC presents (for `bmc add --pin`).
    Fingerprint {
        /// `host[:port]` or a URL.
        address: String,
    },
    /// Read one BMC's inventory now, without the service (prints it; nothing is stored).
    Inventory(bmc::InventoryArgs),
    /// Read one BMC's sensors now (power, temperatures, fans, voltages with thresholds).
    Sensors(bmc::InventoryArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce and consume throughput and p99 produce latency of the message log.
    Log {
        /// Which backends to measure.
        #[arg(long, value_enum, default_value_t = BenchBackend::Embedded)]
        backend: BenchBackend,
        /// Records per backend.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Kafka bootstrap servers (default: log.kafka.brokers from the config).
        #[arg(long)]
        brokers: Option<String>,
    },
    /// History sink rows/s, then operator queries timed in DataFusion and in DuckDB on the same
    /// Parquet files, with each ratio.
    Query(QueryBenchArgs),
    /// A full sensor sweep over N simulated BMCs (cold, then warm), readings into a log.
    Telemetry(bench_telemetry::TelemetryBenchArgs),
    /// The in-band agent's collection time and peak RSS beside `lshw -json`'s, and the
    /// out-of-band collector's time to inventory N simulated BMCs.
    Inventory(bench_inventory::InventoryBenchArgs),
    /// A simulated Redfish fleet: the time of a full sensor sweep over every BMC, then
    /// sustained requests/s and latency.
    Simulator(simulate::SimBenchArgs),
    /// Firmware: store ingest vs openssl, OVMF scan vs UEFIExtract, UTF-16 Dell catalog parse
    /// with peak RSS, Secure Boot findings for a simulated fleet.
    Firmware(bench_firmware::FirmwareBenchArgs),
}

/// `bench query` options.
#[derive(Debug, clap::Args)]
struct QueryBenchArgs {
    /// Servers in the generated fleet.
    #[arg(long, default_value_t = 1000)]
    servers: usize,
    /// Sensors per server.
    #[arg(long, default_value_t = 50)]
    sensors: usize,
    /// Hours of history.
    #[arg(long, default_value_t = 6.0)]
    hours: f64,
    /// Seconds between readings.
    #[arg(long, default_value_t = 60)]
    interval_secs: u64,
    /// Where to write the tables (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A Python with the duckdb package, for the comparison (default: the test peers' venv).
    #[arg(long)]
    duckdb_python: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchBackend {
    Embedded,
    Kafka,
    All,
}

/// The roles one `serve` process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Producers: collectors that stream inventory, telemetry and firmware events into topics.
    Collector,
    /// Stateful processors that derive current state and health.
    Processor,
    /// Sinks: history, metrics export, notifications.
    Sink,
    /// The HTTP API, the schema registry and the dashboard.
    Api,
}

impl Role {
    /// Every role, for a single-process deployment.
    pub const ALL: [Role; 4] = [Role::Collector, Role::Processor, Role::Sink, Role::Api];

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Collector => "collector",
            Role::Processor => "processor",
            Role::Sink => "sink",
            Role::Api => "api",
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let format = cli.output;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(format, &e);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let out = Output::new(cli.output);
    if let Command::Completions { shell } = &cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(*shell, &mut cmd, "metal-automata", &mut std::io::stdout());
        return Ok(());
    }
    let (cfg, cfg_path) = config::load(cli.config.as_deref())?;
    let api = || client::ApiClient::new(cli.server.as_deref(), cli.token.as_deref(), &cfg);
    match cli.command {
        Command::Serve {
            roles,
            demo,
            demo_servers,
        } => {
            let demo = demo.then_some(demo_servers);
            serve::serve(cfg, cfg_path, roles, demo).await
        }
        Command::Status => out.status(&api()?.get("/api/v1/status").await?),
        Command::Servers { command } => match command.unwrap_or(ServersCommand::List) {
            ServersCommand::List => out.servers(&api()?.get("/api/v1/servers").await?),
            ServersCommand::Show { id } => {
                let path = format!("/api/v1/servers/{}", client::path_segment(&id));
                out.server(&api()?.get(&path).await?)
            }
        },
        Command::Bmc { command } => match command {
            BmcCommand::Add(a) => bmc::add(&api()?, a, &out).await,
            BmcCommand::Import(a) => bmc::import(&api()?, a, &out).await,
            BmcCommand::List => bmc::list(&api()?, &out).await,
            BmcCommand::Remove { name } => bmc::remove(&api()?, &name, &out).await,
            BmcCommand::Collect => bmc::collect(&api()?, &out).await,
            BmcCommand::Fingerprint { address } => bmc::fingerprint(&address, &out).await,
            BmcCommand::Inventory(a) => bmc::inventory_now(a, &out).await,
            BmcCommand::Sensors(a) => bmc::sensors_now(a, &out).await,
        },
        Command::Agent(a) => {
            let client = api();
            agent::run(cfg, client, a, &out).await
        }
        Command::Tpm { command } => match command {
            TpmCommand::Enroll(a) => tpm::enroll(&api()?, a, &out).await,
            TpmCommand::List => tpm::list(&api()?, &out).await,
            TpmCommand::Show { server_id } => tpm::show(&api()?, &server_id, &out).await,
            TpmCommand::Approve(a) => tpm::approve(&api()?, a, &out).await,
        },
        Command::Firmware { command } => {
            firmware::run(&cfg, cli.server.as_deref(), api().ok(), command, &out).await
        }
        Command::Topics => out.topics(&api()?.get("/api/v1/topics").await?),
        Command::Schemas => out.schemas(&api()?.get("/api/v1/schemas").await?),
        Command::Sql {
            query,
            tables,
            out: file,
        } => match (tables, query) {
            (true, _) | (false, None) => out.sql_tables(&api()?.get("/api/v1/sql/tables").await?),
            (false, Some(q)) => sql::run(&api()?, &q, cli.output, file.as_deref()).await,
        },
        Command::Export { table, to, since } => {
            let storage = cfg.history_location()?;
            let report = sql::export(&api()?, &storage, &table, &to, since.as_deref()).await?;
            out.export(&report)
        }
        Command::Simulate(a) => simulate::run(a, out.is_table()).await,
        Command::Config => out.config(&serde_json::to_value(redacted(&cfg))?),
        Command::Bench {
            command: BenchCommand::Simulator(a),
        } => simulate::bench(a, out.is_table()).await,
        Command::Bench {
            command: BenchCommand::Firmware(a),
        } => {
            let r = bench_firmware::run(a, out.is_table()).await?;
            if out.is_table() {
                bench_firmware::print(&r);
                Ok(())
            } else {
                out.json(&r)
            }
        }
        Command::Bench {
            command: BenchCommand::Telemetry(a),
        } => {
            let r = bench_telemetry::run(a, out.is_table()).await?;
            out.telemetry_bench(&r)
        }
        Command::Bench {
            command: BenchCommand::Inventory(a),
        } => match &a.rss_of {
            Some(cmd) => bench_inventory::rss_of(cmd),
            None => {
                let r = bench_inventory::run(a, out.is_table()).await?;
                out.inventory_bench(&r)
            }
        },
        Command::Bench {
            command: BenchCommand::Query(a),
        } => {
            let tmp = tempfile::tempdir().context("temporary directory for the query bench")?;
            let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
            let python = a.duckdb_python.clone().or_else(|| {
                let venv = std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/metal-automata/venv/bin/python"))?;
                venv.exists().then_some(venv)
            });
            let fleet = bench_query::FleetSize {
                servers: a.servers,
                sensors: a.sensors,
                hours: a.hours,
                interval_secs: a.interval_secs,
            };
            let r = bench_query::run(fleet, &dir, python, out.is_table()).await?;
            out.query_bench(&r)
        }
        Command::Bench {
            command:
                BenchCommand::Log {
                    backend,
                    records,
                    brokers,
                },
        } => {
            let mut results = Vec::new();
            let data = tempfile::tempdir().context("temporary directory for the embedded bench")?;
            if matches!(backend, BenchBackend::Embedded | BenchBackend::All) {
                let mut lc = cfg.log.clone();
                lc.backend = automata_log::Backend::Embedded;
                lc.embedded.dir = Some(data.path().join("log"));
                lc.embedded.maintenance_interval_secs = 0;
                let log = automata_log::MessageLog::open(&lc, data.path())?;
                results
                    .push(bench::run_log_bench(&log, "embedded", records, out.is_table()).await?);
            }
            if matches!(backend, BenchBackend::Kafka | BenchBackend::All) {
                let mut lc = cfg.log.clone();
                lc.backend = automata_log::Backend::Kafka;
                if let Some(b) = brokers {
                    lc.kafka.brokers = b;
                }
                let log = automata_log::MessageLog::open(&lc, data.path())?;
                results.push(bench::run_log_bench(&log, "kafka", records, out.is_table()).await?);
            }
            out.log_bench(&results)
        }
        Command::Completions { .. } => Ok(()),
    }
}

/// The config with secrets replaced, safe to print.
fn redacted(cfg: &config::Config) -> config::Config {
    let mut c = cfg.clone();
    if c.api.token.is_some() {
        c.api.token = Some("<redacted>".into());
    }
    for (k, v) in c.log.kafka.properties.iter_mut() {
        if k.contains("password") || k.contains("secret") || k.contains("key") {
            *v = "<redacted>".into();
        }
    }
    c
}

#[cfg(test)]
mod cli_tests {
    use clap::CommandFactory;

    /// clap's own consistency checks: no two arguments share an id (a subcommand's `server`
    /// would silently take the global `--server` URL), every default is valid, and so on.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
