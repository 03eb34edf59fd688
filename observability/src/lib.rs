//! Logging, tracing and metrics for Metal Automata, set up in one place.
//!
//! [`init`] installs, once per process:
//! - a `tracing` subscriber writing text or JSON lines to stderr, filtered by `RUST_LOG` or the
//!   configured filter;
//! - when an OTLP endpoint is configured (or `OTEL_EXPORTER_OTLP_ENDPOINT` is set), an
//!   OpenTelemetry layer exporting spans by OTLP/gRPC with a batch span processor, and a periodic
//!   OTLP export of the pipeline's metrics;
//! - the global `metrics` recorder, whose Prometheus text page [`MetricsHandle::render`] gives.
//!
//! Metric names and help texts live in [`names`].

pub mod names;
mod otel_bridge;
mod prometheus;

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

pub use prometheus::MetricsHandle;

/// The standard variable naming the OTLP collector, honoured when the config names none.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the OTLP collector for traces only.
pub const OTLP_TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

/// How long dropping the guard waits for the last spans and metrics to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The `[observability]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `automata_log=debug,info`; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// The OTLP/gRPC collector (for example `http://127.0.0.1:4317`); when unset,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is used, and when neither is set nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// Whether, with OTLP on, the pipeline's metrics are exported by OTLP too (Prometheus always is).
    pub otlp_metrics: bool,
    /// The `service.name` resource attribute of exported telemetry (`OTEL_SERVICE_NAME` wins).
    pub service_name: String,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            // fjall and its LSM tree log every flush at info: keep the service's own lines readable.
            log_filter: "info,fjall=warn,lsm_tree=warn,deltalake_core=warn,delta_kernel=warn,buoyant_kernel=warn,datafusion=warn".to_owned(),
            otlp_endpoint: None,
            otlp_metrics: true,
            service_name: "metal-automata".to_owned(),
        }
    }
}

impl ObservabilityConfig {
    /// The OTLP endpoint to export to, from the config or the environment; `None` disables OTLP.
    ///
    /// `Some("")` means "the endpoint named by the environment": the exporter reads the
    /// standard variables itself, including the per-signal ones.
    fn otlp_target(&self) -> Option<String> {
        if let Some(endpoint) = self.otlp_endpoint.as_deref().map(str::trim)
            && !endpoint.is_empty()
        {
            return Some(endpoint.to_owned());
        }
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        (set(OTLP_ENDPOINT_ENV) || set(OTLP_TRACES_ENDPOINT_ENV)).then(String::new)
    }
}

/// Why observability could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ObservabilityError {
    /// The log filter (from `RUST_LOG` or the config) does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter {
        /// The filter text.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// OTLP export was requested outside a Tokio runtime; the gRPC client needs one.
    #[error("OTLP export needs a Tokio runtime: call init from within one")]
    NoRuntime,
    /// The OTLP exporter could not be built (bad endpoint, for example).
    #[error("cannot build the OTLP {signal} exporter: {reason}")]
    Otlp {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What the exporter said.
        reason: String,
    },
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// Keeps telemetry flowing; dropping it flushes and shuts down the OTLP exporters.
#[must_use = "dropping the guard shuts down OTLP export"]
pub struct ObservabilityGuard {
    metrics: MetricsHandle,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl std::fmt::Debug for ObservabilityGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservabilityGuard")
            .field("otlp_traces", &self.tracer_provider.is_some())
            .field("otlp_metrics", &self.meter_provider.is_some())
            .finish_non_exhaustive()
    }
}

impl ObservabilityGuard {
    /// The handle rendering the Prometheus page.
    pub fn metrics(&self) -> MetricsHandle {
        self.metrics.clone()
    }

    /// Whether spans are exported by OTLP.
    pub fn exports_traces(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Whether metrics are exported by OTLP.
    pub fn exports_metrics(&self) -> bool {
        self.meter_provider.is_some()
    }

    /// Flushes and stops the OTLP exporters now (dropping the guard does the same).
    pub fn shutdown(&mut self) {
        let tracer = self.tracer_provider.take();
        let meter = self.meter_provider.take();
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let stop = move || {
            if let Some(tracer) = tracer
                && let Err(e) = tracer.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            {
                eprintln!("OTLP trace exporter shutdown: {e}");
            }
            if let Some(meter) = meter
                && let Err(e) = meter.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            {
                eprintln!("OTLP metric exporter shutdown: {e}");
            }
        };
        // The exporters' last sends run on the runtime's gRPC client while this thread waits;
        // on a multi-threaded runtime, let other workers drive them instead of blocking one.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(stop)
            }
            _ => stop(),
        }
    }
}

impl Drop for ObservabilityGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the metrics recorder alone (Prometheus only, no OTLP) and returns its handle.
///
/// For tests and tools that want metrics without a tracing subscriber; if [`init`] ran first,
/// this returns a handle to the recorder it installed.
pub fn metrics_handle() -> Result<MetricsHandle, ObservabilityError> {
    prometheus::install(|| Ok(None))
}

/// Sets up logging, tracing and metrics for the process.
///
/// Safe to call more than once: later calls install nothing new and return a guard holding a
/// handle to the same metrics recorder (the global subscriber and recorder cannot be replaced).
/// If some other code already installed a global `tracing` subscriber, ours is skipped.
pub fn init(cfg: &ObservabilityConfig) -> Result<ObservabilityGuard, ObservabilityError> {
    let otlp = cfg.otlp_target();
    if otlp.is_some() && tokio::runtime::Handle::try_current().is_err() {
        return Err(ObservabilityError::NoRuntime);
    }
    let resource = resource(&cfg.service_name);

    // Metrics first: the recorder decides once, on first install, whether it also feeds OTLP.
    let mut meter_provider = None;
    let metrics = prometheus::install(|| {
        let Some(endpoint) = otlp.as_deref().filter(|_| cfg.otlp_metrics) else {
            return Ok(None);
        };
        let provider = meter_provider_for(endpoint, resource.clone())?;
        let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "metal-automata");
        meter_provider = Some(provider);
        Ok(Some(otel_bridge::OtelBridge::new(meter)))
    })?;

    let mut guard = ObservabilityGuard {
        metrics,
        tracer_provider: None,
        meter_provider,
    };
    if tracing::dispatcher::has_been_set() {
        return Ok(guard);
    }

    let filter = env_filter(&cfg.log_filter)?;
    // Colours only for a person at a terminal, and never when NO_COLOR is set.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt_layer = match cfg.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let tracer_provider = match otlp.as_deref() {
        Some(endpoint) => Some(tracer_provider_for(endpoint, resource)?),
        None => None,
    };
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("metal-automata"))
            .with_filter(exporter_internals_off())
    });

    let installed = Registry::default()
        .with(fmt_layer)
        .with(otel_layer)
        .with(filter)
        .try_init()
        .is_ok();
    if installed && let Some(provider) = &tracer_provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    // When another subscriber won the race, the tracer provider is unused and the guard stops it.
    guard.tracer_provider = tracer_provider;
    Ok(guard)
}

/// The filter from `RUST_LOG` when set, else from the config.
fn env_filter(configured: &str) -> Result<EnvFilter, ObservabilityError> {
    let text = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(from_env) if !from_env.trim().is_empty() => from_env,
        _ => configured.to_owned(),
    };
    EnvFilter::try_new(&text).map_err(|e| ObservabilityError::Filter {
        filter: text,
        reason: e.to_string(),
    })
}

/// Keeps the exporter's own gRPC/HTTP stack out of the exported spans, which would otherwise
/// export spans about exporting spans.
fn exporter_internals_off() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
}

/// The resource describing this process; `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES` win.
fn resource(service_name: &str) -> Resource {
    let builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name(service_name.to_owned()).build()
    }
}

fn tracer_provider_for(
    endpoint: &str,
    resource: Resource,
) -> Result<SdkTracerProvider, ObservabilityError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| ObservabilityError::Otlp {
        signal: "traces",
        reason: e.to_string(),
    })?;
    // The SDK's batch processor runs on its own thread; its exports go through the tonic
    // channel, whose connection tasks live on the Tokio runtime `init` was called from.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

fn meter_provider_for(
    endpoint: &str,
    resource: Resource,
) -> Result<SdkMeterProvider, ObservabilityError> {
    let mut builder = opentelemetry_otlp::MetricExporter::builder().with_tonic();
    if !endpoint.is_empty() {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build().map_err(|e| ObservabilityError::Otlp {
        signal: "metrics",
        reason: e.to_string(),
    })?;
    // The periodic reader exports every 60 s (OTEL_METRIC_EXPORT_INTERVAL overrides it).
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_parsing() -> Result<(), Box<dyn std::error::Error>> {
        let cfg: ObservabilityConfig = serde_json::from_str("{}")?;
        assert_eq!(cfg, ObservabilityConfig::default());
        assert_eq!(
            cfg.log_filter,
            "info,fjall=warn,lsm_tree=warn,deltalake_core=warn,delta_kernel=warn,buoyant_kernel=warn,datafusion=warn"
        );
        let cfg: ObservabilityConfig = serde_json::from_str(
            r#"{"log_format":"json","log_filter":"debug","otlp_endpoint":"http://127.0.0.1:4317","service_name":"x"}"#,
        )?;
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.otlp_target().as_deref(), Some("http://127.0.0.1:4317"));
        assert!(serde_json::from_str::<ObservabilityConfig>(r#"{"log_format":"xml"}"#).is_err());
        Ok(())
    }

    #[test]
    fn bad_filter_is_an_error() {
        // Only meaningful when RUST_LOG does not override the configured filter.
        if std::env::var_os("RUST_LOG").is_none() {
            assert!(matches!(
                env_filter("info,foo=notalevel"),
                Err(ObservabilityError::Filter { .. })
            ));
        }
    }
}
