//! The process-wide `metrics` recorder: Prometheus text rendering, optionally fanned out to OTLP.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::ObservabilityError;
use crate::otel_bridge::OtelBridge;

/// How often histograms are drained and idle series trimmed when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A cheap, cloneable handle to the installed recorder; renders the Prometheus text page.
#[derive(Clone)]
pub struct MetricsHandle {
    inner: PrometheusHandle,
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

impl MetricsHandle {
    /// The current metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        self.inner.render()
    }

    /// Wraps [`render`](Self::render) in a closure, the form the HTTP API takes for `/metrics`.
    pub fn render_fn(&self) -> Arc<dyn Fn() -> String + Send + Sync> {
        let handle = self.clone();
        Arc::new(move || handle.render())
    }
}

/// The global recorder: every registration goes to Prometheus, and to OTLP when enabled.
struct PipelineRecorder {
    prometheus: PrometheusRecorder,
    otel: Option<OtelBridge>,
}

impl Recorder for PipelineRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe_counter(key.clone(), unit, description.clone());
        }
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe_gauge(key.clone(), unit, description.clone());
        }
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe_histogram(key.clone(), unit, description.clone());
        }
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let prometheus = self.prometheus.register_counter(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(otel) => Counter::from_arc(Arc::new(Fanout(prometheus, otel.counter(key)))),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let prometheus = self.prometheus.register_gauge(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(otel) => Gauge::from_arc(Arc::new(Fanout(prometheus, otel.gauge(key)))),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let prometheus = self.prometheus.register_histogram(key, metadata);
        match &self.otel {
            None => prometheus,
            Some(otel) => Histogram::from_arc(Arc::new(Fanout(prometheus, otel.histogram(key)))),
        }
    }
}

/// One update applied to a Prometheus handle and an OTel handle.
struct Fanout<P, O>(P, Arc<O>);

impl<O: CounterFn> CounterFn for Fanout<Counter, O> {
    fn increment(&self, value: u64) {
        self.0.increment(value);
        self.1.increment(value);
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
        self.1.absolute(value);
    }
}

impl<O: GaugeFn> GaugeFn for Fanout<Gauge, O> {
    fn increment(&self, value: f64) {
        self.0.increment(value);
        self.1.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.0.decrement(value);
        self.1.decrement(value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
        self.1.set(value);
    }
}

impl<O: HistogramFn> HistogramFn for Fanout<Histogram, O> {
    fn record(&self, value: f64) {
        self.0.record(value);
        self.1.record(value);
    }
}

/// The handle to the recorder this crate installed, once it has.
static INSTALLED: OnceLock<MetricsHandle> = OnceLock::new();
/// Serialises installation so two racing callers cannot both try to set the global recorder.
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// Installs the global recorder (once per process) and returns a handle to it.
///
/// Later calls return a handle to the recorder installed first, whatever `otel` they pass: the
/// `metrics` facade has one global recorder per process and it cannot be replaced.
pub(crate) fn install(
    otel: impl FnOnce() -> Result<Option<OtelBridge>, ObservabilityError>,
) -> Result<MetricsHandle, ObservabilityError> {
    if let Some(handle) = INSTALLED.get() {
        return Ok(handle.clone());
    }
    let _lock = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = INSTALLED.get() {
        return Ok(handle.clone());
    }

    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".to_owned()),
            crate::names::LATENCY_BUCKETS_SECONDS,
        )
        .map_err(|e| ObservabilityError::Metrics(e.to_string()))?
        .build_recorder();
    let handle = MetricsHandle {
        inner: prometheus.handle(),
    };
    let recorder = PipelineRecorder {
        prometheus,
        otel: otel()?,
    };
    metrics::set_global_recorder(recorder).map_err(|_| {
        ObservabilityError::Metrics(
            "another `metrics` recorder was installed in this process before ours".to_owned(),
        )
    })?;
    crate::names::describe_all();

    // Without the exporter's own HTTP listener nothing runs upkeep for us; a small thread does.
    let upkeep = handle.inner.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| ObservabilityError::Metrics(format!("cannot start upkeep thread: {e}")))?;

    // Cannot fail: we hold the lock and checked it was empty.
    let _ = INSTALLED.set(handle.clone());
    Ok(handle)
}
