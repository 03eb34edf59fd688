//! Printing results: a readable table for people, `--output json` for scripts.

use anyhow::Result;
use clap::ValueEnum;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use crate::bench::LogBenchResult;

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// JSON on stdout, one document per command.
    Json,
    /// CSV with a header line (`sql`; other commands print JSON).
    Csv,
    /// A Parquet file (`sql`, to `--out` or a redirected stdout; other commands print JSON).
    Parquet,
}

/// Prints command results in the chosen format.
pub struct Output {
    format: OutputFormat,
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(headers.to_vec());
    t
}

/// A JSON value as a table cell: strings bare, null as "-", the rest as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Prints an error for the chosen format: JSON on stdout for scripts, a line on stderr otherwise.
pub fn print_error(format: OutputFormat, e: &anyhow::Error) {
    match format {
        OutputFormat::Json => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            println!(
                "{}",
                serde_json::json!({"error": {"message": e.to_string(), "causes": chain}})
            );
        }
        OutputFormat::Table | OutputFormat::Csv | OutputFormat::Parquet => {
            eprintln!("error: {e:#}")
        }
    }
}

impl Output {
    /// An output in `format`.
    pub fn new(format: OutputFormat) -> Self {
        Output { format }
    }

    /// Whether progress bars and tables are wanted (not for JSON).
    pub fn is_table(&self) -> bool {
        self.format == OutputFormat::Table
    }

    /// Prints any value as JSON (commands whose only form is JSON).
    pub fn json(&self, v: &impl serde::Serialize) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }

    /// Prints key/value pairs of an object.
    fn object(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&["field", "value"]);
        if let Value::Object(m) = v {
            for (k, val) in m {
                t.add_row(vec![k.clone(), cell(Some(val))]);
            }
        }
        println!("{t}");
        Ok(())
    }

    /// `tpm enroll`.
    pub fn tpm_enrolled(&self, r: &crate::tpm::Enrolled) -> Result<()> {
        if !self.is_table() {
            return self.json(r);
        }
        self.object(&serde_json::to_value(r)?)
    }

    /// `tpm list`: one line per server, keys by fingerprint only.
    pub fn tpm_list(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&[
            "server",
            "status",
            "manufacturer",
            "firmware",
            "EK (SHA-256)",
            "certificate",
            "reason",
        ]);
        let empty = Vec::new();
        let regs = v
            .get("registrations")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for r in regs {
            let fp = cell(r.get("ek_fingerprint"));
            t.add_row(vec![
                cell(r.get("server_id")),
                cell(r.get("status")),
                cell(r.get("manufacturer")),
                cell(r.get("firmware_version")),
                fp.get(..16).map_or(fp.clone(), |s| format!("{s}…")),
                cell(r.get("certificate")),
                cell(r.get("reason")),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    /// `tpm show`, `tpm approve`.
    pub fn tpm_show(&self, v: &Value) -> Result<()> {
        self.object(v)
    }

    /// `status`.
    pub fn status(&self, v: &Value) -> Result<()> {
        self.object(v)
    }

    /// `config`.
    pub fn config(&self, v: &Value) -> Result<()> {
        if self.is_table() {
            // TOML is how operators write it, so show it that way.
            match toml::to_string_pretty(v) {
                Ok(s) => {
                    println!("{s}");
                    return Ok(());
                }
                Err(_) => return self.json(v),
            }
        }
        self.json(v)
    }

    /// `servers list`.
    pub fn servers(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&[
            "server",
            "manufacturer",
            "model",
            "power",
            "health",
            "last seen",
        ]);
        let items = v
            .get("servers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in &items {
            t.add_row(vec![
                cell(s.get("server_id")),
                cell(s.get("manufacturer")),
                cell(s.get("model")),
                cell(s.get("power_state")),
                cell(s.get("health")),
                cell(s.get("last_seen")),
            ]);
        }
        println!("{t}");
        println!("{} server(s)", items.len());
        Ok(())
    }

    /// `servers show`: the server's facts, then its components with firmware versions.
    pub fn server(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut head = v.clone();
        if let Value::Object(m) = &mut head {
            for k in ["components", "inventories", "latest_readings", "firmware"] {
                m.remove(k);
            }
        }
        self.object(&head)?;
        if let Some(inv) = v.get("inventories").and_then(Value::as_array) {
            for i in inv {
                println!(
                    "inventory from {} at {}{}",
                    cell(i.get("source")),
                    cell(i.get("collected_at")),
                    i.get("errors")
                        .and_then(Value::as_array)
                        .filter(|e| !e.is_empty())
                        .map(|e| format!(
                            " ({} part(s) unreadable: {})",
                            e.len(),
                            e.iter()
                                .map(|x| cell(Some(x)))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ))
                        .unwrap_or_default()
                );
            }
        }
        let comps = v
            .get("components")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if comps.is_empty() {
            println!("no component inventory yet");
            return Ok(());
        }
        let mut t = table(&[
            "kind",
            "component",
            "name",
            "model",
            "serial",
            "firmware",
            "source",
        ]);
        for c in &comps {
            t.add_row(vec![
                cell(c.get("kind")),
                cell(c.get("component_id")),
                cell(c.get("name")),
                cell(c.get("model")),
                cell(c.get("serial")),
                cell(c.get("firmware_version")),
                cell(c.get("source")),
            ]);
        }
        println!("{t}");
        println!("{} component(s)", comps.len());
        Ok(())
    }

    /// A progress bar for long work (hidden for JSON output).
    pub fn progress(&self, len: u64, msg: &str) -> indicatif::ProgressBar {
        crate::bench::progress_bar(self.is_table(), len, msg)
    }

    /// A one-line confirmation, or its JSON.
    pub fn done(&self, v: &Value, line: &str) -> Result<()> {
        if self.is_table() {
            println!("{line}");
            Ok(())
        } else {
            self.json(v)
        }
    }

    /// `bmc add`.
    pub fn bmc_added(&self, v: &Value) -> Result<()> {
        self.done(
            v,
            &format!(
                "registered BMC {} ({}, user {}, TLS {}); its inventory is being collected now",
                cell(v.get("name")),
                cell(v.get("address")),
                cell(v.get("username")),
                cell(v.get("tls"))
            ),
        )
    }

    /// `bmc import`.
    pub fn bmcs_imported(&self, added: &[Value]) -> Result<()> {
        self.done(
            &serde_json::json!({"bmcs": added}),
            &format!(
                "registered {} BMC(s); `metal-automata bmc list` shows their collection",
                added.len()
            ),
        )
    }

    /// `bmc list`.
    pub fn bmcs(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&[
            "bmc",
            "address",
            "user",
            "tls",
            "vendor",
            "servers",
            "last success",
            "last error",
        ]);
        let items = v
            .get("bmcs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for b in &items {
            let st = b.get("status").cloned().unwrap_or(Value::Null);
            t.add_row(vec![
                cell(b.get("name")),
                cell(b.get("address")),
                cell(b.get("username")),
                cell(b.get("tls")),
                cell(st.get("vendor")),
                st.get("servers")
                    .and_then(Value::as_array)
                    .map(|a| a.len().to_string())
                    .unwrap_or_else(|| "-".into()),
                cell(st.get("last_success")),
                cell(st.get("last_error")),
            ]);
        }
        println!("{t}");
        println!("{} BMC(s)", items.len());
        Ok(())
    }

    fn snapshot_table(&self, s: &automata_schemas::types::InventorySnapshot) {
        println!(
            "server {}: {} {} serial {} ({} components)",
            s.server_id,
            s.system.manufacturer.as_deref().unwrap_or("-"),
            s.system.product.as_deref().unwrap_or("-"),
            s.system.serial.as_deref().unwrap_or("-"),
            s.components.len()
        );
        let mut t = table(&["kind", "component", "name", "model", "serial", "firmware"]);
        for c in &s.components {
            t.add_row(vec![
                cell(serde_json::to_value(c.kind).ok().as_ref()).to_lowercase(),
                c.component_id.clone(),
                c.name.clone(),
                c.model.clone().unwrap_or_else(|| "-".into()),
                c.serial.clone().unwrap_or_else(|| "-".into()),
                c.firmware_version.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        println!("{t}");
        for e in &s.errors {
            println!("  could not read: {e}");
        }
    }

    /// `bmc inventory`.
    pub fn bmc_inventory(
        &self,
        inv: &automata_bmc::redfish::inventory::BmcInventory,
        took: std::time::Duration,
    ) -> Result<()> {
        if !self.is_table() {
            return self.json(&serde_json::json!({
                "vendor": inv.vendor,
                "requests": inv.requests,
                "elapsed_ms": took.as_millis() as u64,
                "snapshots": inv.snapshots,
            }));
        }
        for s in &inv.snapshots {
            self.snapshot_table(s);
        }
        println!(
            "{} system(s), vendor {:?}, {} requests in {:.2} s",
            inv.snapshots.len(),
            inv.vendor,
            inv.requests,
            took.as_secs_f64()
        );
        Ok(())
    }

    /// `bench telemetry`.
    pub fn telemetry_bench(&self, r: &crate::bench_telemetry::TelemetryBench) -> Result<()> {
        if !self.is_table() {
            return self.json(r);
        }
        let mut t = table(&["sweep", "BMCs answered", "readings", "time", "readings/s"]);
        for s in &r.sweeps {
            t.add_row(vec![
                s.kind.to_string(),
                format!("{}/{}", s.ok, r.bmcs),
                s.readings.to_string(),
                format!("{:.2} s", s.secs),
                format!("{:.0}", s.readings_per_sec),
            ]);
        }
        println!("{t}");
        println!("target: a {}-BMC sweep within 10 s", r.bmcs);
        if let Some(p) = &r.pipeline {
            let mut t = table(&["pipeline (embedded log)", "value", "target"]);
            t.add_row(vec![
                "readings".into(),
                p.readings.to_string(),
                String::new(),
            ]);
            t.add_row(vec![
                "published to the log".into(),
                format!(
                    "{:.2} s ({:.0}/s)",
                    p.publish_secs,
                    p.readings as f64 / p.publish_secs.max(0.001)
                ),
                String::new(),
            ]);
            t.add_row(vec![
                "log → health → Parquet, committed".into(),
                format!("{:.2} s", p.end_to_end_secs),
                String::new(),
            ]);
            t.add_row(vec![
                "end to end".into(),
                format!("{:.0} readings/s", p.readings_per_sec),
                "≥ 200,000/s".into(),
            ]);
            t.add_row(vec![
                "health events".into(),
                p.health_events.to_string(),
                String::new(),
            ]);
            t.add_row(vec![
                "Parquet".into(),
                format!(
                    "{} files, {:.1} MB",
                    p.parquet_files,
                    p.parquet_bytes as f64 / 1e6
                ),
                String::new(),
            ]);
            println!("{t}");
        }
        Ok(())
    }

    /// `bench inventory`.
    pub fn inventory_bench(&self, r: &crate::bench_inventory::InventoryBench) -> Result<()> {
        if !self.is_table() {
            return self.json(r);
        }
        let f = |v: Option<f64>, unit: &str| {
            v.map(|x| format!("{x:.1} {unit}"))
                .unwrap_or_else(|| "-".into())
        };
        let mut t = table(&["measure", "value", "target"]);
        t.add_row(vec![
            "agent collection (median)".into(),
            format!("{:.1} ms", r.agent_ms),
            "< 500 ms".to_string(),
        ]);
        t.add_row(vec![
            "agent peak RSS".into(),
            f(r.agent_rss_mib, "MiB"),
            "< 30 MiB".into(),
        ]);
        t.add_row(vec![
            "agent components".into(),
            r.agent_components.to_string(),
            String::new(),
        ]);
        t.add_row(vec![
            "lshw -json (median)".into(),
            f(r.lshw_ms, "ms"),
            String::new(),
        ]);
        t.add_row(vec![
            "lshw peak RSS".into(),
            f(r.lshw_rss_mib, "MiB"),
            String::new(),
        ]);
        t.add_row(vec![
            "lshw time / agent time".into(),
            f(r.speedup_vs_lshw, "x"),
            String::new(),
        ]);
        if r.bmcs > 0 {
            t.add_row(vec![
                format!("{} BMCs inventoried (Redfish)", r.bmcs),
                format!("{:.2} s", r.sweep_secs),
                "< 60 s".into(),
            ]);
            t.add_row(vec![
                "BMCs failed".into(),
                r.bmc_failures.to_string(),
                "0".into(),
            ]);
            t.add_row(vec![
                "Redfish requests".into(),
                format!(
                    "{} ({:.0}/s)",
                    r.requests,
                    r.requests as f64 / r.sweep_secs.max(0.001)
                ),
                String::new(),
            ]);
            t.add_row(vec![
                "components found".into(),
                r.components.to_string(),
                String::new(),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    /// `bmc sensors`.
    pub fn sensors(
        &self,
        readings: &[automata_schemas::types::TelemetryReading],
        errors: &[String],
        took: std::time::Duration,
    ) -> Result<()> {
        if !self.is_table() {
            return self.json(&serde_json::json!({
                "readings": readings,
                "errors": errors,
                "elapsed_ms": took.as_millis() as u64,
            }));
        }
        let mut t = table(&["server", "sensor", "name", "value", "unit", "thresholds"]);
        for r in readings {
            let th = r
                .thresholds
                .as_ref()
                .map(|t| {
                    let f =
                        |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_else(|| "-".into());
                    format!(
                        "{} / {} .. {} / {}",
                        f(t.lower_critical),
                        f(t.lower_caution),
                        f(t.upper_caution),
                        f(t.upper_critical)
                    )
                })
                .unwrap_or_else(|| "-".into());
            t.add_row(vec![
                r.server_id.clone(),
                r.sensor_id.clone(),
                r.name.clone(),
                format!("{}", r.value),
                r.unit.clone(),
                th,
            ]);
        }
        println!("{t}");
        for e in errors {
            println!("  could not read: {e}");
        }
        println!(
            "{} reading(s) in {:.2} s",
            readings.len(),
            took.as_secs_f64()
        );
        Ok(())
    }

    /// `agent --once`: the snapshot as JSON (what `lshw -json` is to lshw), or a table.
    pub fn agent_report(&self, r: &automata_agent::Report) -> Result<()> {
        if !self.is_table() {
            return self.json(&r.snapshot);
        }
        self.snapshot_table(&r.snapshot);
        println!("collected in {:.1} ms", r.elapsed.as_secs_f64() * 1000.0);
        Ok(())
    }

    /// `topics`.
    pub fn topics(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&[
            "topic",
            "partitions",
            "compacted",
            "records (high - low)",
            "high watermarks",
        ]);
        for topic in v
            .get("topics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let parts = topic
                .get("partitions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let retained: i64 = parts
                .iter()
                .map(|p| {
                    p.get("high").and_then(Value::as_i64).unwrap_or(0)
                        - p.get("low").and_then(Value::as_i64).unwrap_or(0)
                })
                .sum();
            let highs: Vec<String> = parts.iter().map(|p| cell(p.get("high"))).collect();
            t.add_row(vec![
                cell(topic.get("name")),
                parts.len().to_string(),
                cell(topic.get("compacted")),
                retained.to_string(),
                highs.join(" "),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    /// `schemas`.
    pub fn schemas(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&["subject", "version", "id", "record"]);
        for s in v
            .get("schemas")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            t.add_row(vec![
                cell(s.get("subject")),
                cell(s.get("version")),
                cell(s.get("id")),
                cell(s.get("record")),
            ]);
        }
        println!("{t}");
        Ok(())
    }

    /// `bench log`.
    pub fn log_bench(&self, results: &[LogBenchResult]) -> Result<()> {
        if !self.is_table() {
            return self.json(&results);
        }
        let mut t = table(&[
            "backend",
            "records",
            "bytes/rec",
            "produce rec/s",
            "produce MB/s",
            "p50 ms",
            "p99 ms",
            "consume rec/s",
            "consume MB/s",
        ]);
        for r in results {
            t.add_row(vec![
                r.backend.clone(),
                r.records.to_string(),
                r.record_bytes.to_string(),
                format!("{:.0}", r.produce_records_per_sec),
                format!("{:.1}", r.produce_mb_per_sec),
                format!("{:.2}", r.produce_p50_ms),
                format!("{:.2}", r.produce_p99_ms),
                format!("{:.0}", r.consume_records_per_sec),
                format!("{:.1}", r.consume_mb_per_sec),
            ]);
        }
        println!("{t}");
        Ok(())
    }
}

impl Output {
    /// `sql --tables`.
    pub fn sql_tables(&self, v: &Value) -> Result<()> {
        if !self.is_table() {
            return self.json(v);
        }
        let mut t = table(&["table", "about"]);
        for row in v["tables"].as_array().into_iter().flatten() {
            t.add_row(vec![cell(row.get("name")), cell(row.get("about"))]);
        }
        println!("{t}");
        Ok(())
    }

    /// `export`.
    pub fn export(&self, r: &crate::sql::ExportReport) -> Result<()> {
        if !self.is_table() {
            return self.json(r);
        }
        println!("{} rows of {} written to {}", r.rows, r.table, r.file);
        Ok(())
    }
}

impl Output {
    /// `bench query`.
    pub fn query_bench(&self, r: &crate::bench_query::QueryBenchResult) -> Result<()> {
        if !self.is_table() {
            return self.json(r);
        }
        println!(
            "fleet: {} servers x {} sensors x {} h at {} s = {} rows",
            r.fleet.servers, r.fleet.sensors, r.fleet.hours, r.fleet.interval_secs, r.rows
        );
        println!(
            "sink: {:.0} rows/s into {} Parquet files, {:.1} MB (decode {:.0} rows/s, write {:.0} rows/s)",
            r.sink_rows_per_sec,
            r.files,
            r.parquet_bytes as f64 / 1e6,
            r.decode_rows_per_sec,
            r.write_rows_per_sec
        );
        let mut t = table(&["query", "rows", "DataFusion ms", "DuckDB ms", "ratio"]);
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
        for q in &r.queries {
            t.add_row(vec![
                q.name.clone(),
                q.rows.to_string(),
                format!("{:.1}", q.datafusion_ms),
                ms(q.duckdb_ms),
                q.ratio.map_or("-".to_string(), |x| format!("{x:.2}")),
            ]);
        }
        println!("{t}");
        Ok(())
    }
}
