//! `metal-automata sql` and `metal-automata export`: clients of `POST /api/v1/sql`.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use automata_query::sql::views;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use serde_json::json;

use crate::client::ApiClient;
use crate::output::OutputFormat;

/// Runs one query and prints the answer in `format` (Parquet goes to `out` or a redirected stdout).
pub async fn run(
    api: &ApiClient,
    query: &str,
    format: OutputFormat,
    out: Option<&Path>,
) -> Result<()> {
    let body = json!({ "query": query });
    if format == OutputFormat::Json {
        let answer = api.post("/api/v1/sql", &body).await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let (schema, batches) = api.post_arrow("/api/v1/sql", &body).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    match format {
        OutputFormat::Table => {
            let t = deltalake::arrow::util::pretty::pretty_format_batches(&batches)
                .context("formatting the answer")?;
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                println!("{}", names.join(" | "));
            } else {
                println!("{t}");
            }
            eprintln!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        OutputFormat::Csv => {
            let stdout = std::io::stdout();
            let mut w = deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(stdout.lock());
            for b in &batches {
                w.write(b).context("writing CSV")?;
            }
        }
        OutputFormat::Parquet => match out {
            Some(path) => {
                let f = File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                write_parquet(f, &schema, &batches)?;
            }
            None => {
                if std::io::stdout().is_terminal() {
                    bail!("Parquet is binary: redirect stdout to a file or give --out FILE");
                }
                let mut buf = Vec::new();
                write_parquet(&mut buf, &schema, &batches)?;
                std::io::stdout()
                    .lock()
                    .write_all(&buf)
                    .context("writing to stdout")?;
            }
        },
        OutputFormat::Json => {}
    }
    Ok(())
}

fn write_parquet(w: impl Write + Send, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    // Snappy: the codec every Parquet reader (Spark, Trino, DuckDB, pandas) has.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(100_000))
        .build();
    let mut writer = ArrowWriter::try_new(w, schema.clone(), Some(props))
        .context("starting the Parquet file")?;
    for b in batches {
        writer.write(b).context("writing Parquet")?;
    }
    writer.close().context("finishing the Parquet file")?;
    Ok(())
}

/// `90m`, `24h`, `7d` ago, or an RFC 3339 time, as an RFC 3339 UTC time.
pub fn parse_since(s: &str) -> Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc).to_rfc3339());
    }
    let (n, unit) = s.split_at(s.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = n
        .parse()
        .with_context(|| format!("--since {s:?}: give an RFC 3339 time or a span like 24h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--since {s:?}: the unit is one of s, m, h, d"),
    };
    let t = chrono::Utc::now() - chrono::Duration::seconds(secs);
    Ok(t.to_rfc3339())
}

/// What `export` wrote.
#[derive(Debug, serde::Serialize)]
pub struct ExportReport {
    /// Table exported.
    pub table: String,
    /// Parquet file written (a path or an object URL).
    pub file: String,
    /// Rows in it.
    pub rows: usize,
}

/// Exports one table (from `since` on) as a Parquet file under `<to>/<table>/`, where `to` is
/// a local directory or an object-store URL reached with `storage`'s options.
pub async fn export(
    api: &ApiClient,
    storage: &automata_history::HistoryLocation,
    table: &str,
    to: &str,
    since: Option<&str>,
) -> Result<ExportReport> {
    let Some(view) = views::view(table) else {
        let names: Vec<&str> = views::VIEWS.iter().map(|v| v.name).collect();
        bail!("no table {table:?}; the tables are {}", names.join(", "));
    };
    let mut query = format!("SELECT * FROM {}", view.name);
    if let Some(since) = since {
        let Some(col) = view.time_column else {
            bail!(
                "{} holds the latest state only: --since does not apply",
                view.name
            );
        };
        query.push_str(&format!(
            " WHERE \"{col}\" >= TIMESTAMP '{}'",
            parse_since(since)?
        ));
    }
    let name = format!(
        "part-{}-{}.parquet",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        uuid::Uuid::new_v4().simple()
    );
    let remote = to.contains("://") && !to.starts_with("file://");
    // Checked before the query runs, so that a bad destination costs nothing.
    let target = if remote {
        let url = url::Url::parse(&format!(
            "{}/{}/{name}",
            to.trim_end_matches('/'),
            view.name
        ))
        .with_context(|| format!("--to {to}: not a URL"))?;
        let (store, path) = storage.object_store(&url)?;
        Some((store, path, url))
    } else {
        None
    };
    let (schema, batches) = api
        .post_arrow("/api/v1/sql", &json!({ "query": query }))
        .await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    let file = match target {
        Some((store, path, url)) => {
            let mut buf = Vec::new();
            write_parquet(&mut buf, &schema, &batches)?;
            // A multipart upload: the object appears whole when complete, never half written.
            let mut w = object_store::buffered::BufWriter::new(store, path);
            tokio::io::AsyncWriteExt::write_all(&mut w, &buf)
                .await
                .with_context(|| format!("uploading to {url}"))?;
            tokio::io::AsyncWriteExt::shutdown(&mut w)
                .await
                .with_context(|| format!("uploading to {url}"))?;
            url.to_string()
        }
        None => {
            let dir = PathBuf::from(to.trim_start_matches("file://")).join(view.name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let file = dir.join(&name);
            let tmp = file.with_extension("parquet.partial");
            let f =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            write_parquet(f, &schema, &batches)?;
            // Renamed into place only when complete: readers never see half a file.
            std::fs::rename(&tmp, &file)
                .with_context(|| format!("cannot rename to {}", file.display()))?;
            file.display().to_string()
        }
    };
    Ok(ExportReport {
        table: view.name.to_string(),
        file,
        rows,
    })
}
