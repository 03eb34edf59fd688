//! A `metrics` recorder that forwards to OpenTelemetry instruments, so the pipeline's metrics
//! can also leave by OTLP.
//!
//! No published crate bridges `metrics` 0.24 to `opentelemetry` 0.33, and the mapping is small:
//! counters become OTel counters, gauges OTel gauges (the bridge keeps the current value so that
//! `increment`/`decrement` work), histograms OTel histograms. Handles are cached per key so a
//! gauge's running value and a counter's running total survive across `gauge!(...)` calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

/// Forwards `metrics` registrations to OpenTelemetry instruments created from one [`Meter`].
pub(crate) struct OtelBridge {
    meter: Meter,
    descriptions: RwLock<HashMap<String, (Option<Unit>, SharedString)>>,
    counters: RwLock<HashMap<Key, Arc<OtelCounter>>>,
    gauges: RwLock<HashMap<Key, Arc<OtelGauge>>>,
    histograms: RwLock<HashMap<Key, Arc<OtelHistogram>>>,
}

/// The UCUM unit OpenTelemetry expects for a `metrics` unit, for the units the pipeline uses.
fn otel_unit(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Count => Some("1"),
        Unit::Percent => Some("%"),
        Unit::Seconds => Some("s"),
        Unit::Milliseconds => Some("ms"),
        Unit::Microseconds => Some("us"),
        Unit::Nanoseconds => Some("ns"),
        Unit::Bytes => Some("By"),
        Unit::Kibibytes => Some("KiBy"),
        Unit::Mebibytes => Some("MiBy"),
        Unit::Gibibytes => Some("GiBy"),
        _ => None,
    }
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

/// Returns the cached handle for `key`, creating it with `make` on first use.
fn cached<T>(map: &RwLock<HashMap<Key, Arc<T>>>, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
    // A poisoned lock only means another thread panicked while inserting; the map is still valid.
    if let Some(found) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Arc::clone(found);
    }
    let mut write = map.write().unwrap_or_else(|e| e.into_inner());
    Arc::clone(write.entry(key.clone()).or_insert_with(|| Arc::new(make())))
}

impl OtelBridge {
    /// A bridge creating its instruments from `meter`.
    pub(crate) fn new(meter: Meter) -> Self {
        Self {
            meter,
            descriptions: RwLock::default(),
            counters: RwLock::default(),
            gauges: RwLock::default(),
            histograms: RwLock::default(),
        }
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.descriptions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.as_str().to_owned(), (unit, description));
    }

    /// The description and unit recorded for `name`, if it was described before first use.
    fn description(&self, name: &str) -> (Option<&'static str>, Option<String>) {
        let map = self.descriptions.read().unwrap_or_else(|e| e.into_inner());
        match map.get(name) {
            Some((unit, help)) => (unit.and_then(otel_unit), Some(help.to_string())),
            None => (None, None),
        }
    }

    pub(crate) fn counter(&self, key: &Key) -> Arc<OtelCounter> {
        cached(&self.counters, key, || {
            let name = key.name().to_owned();
            let (unit, help) = self.description(&name);
            let mut builder = self.meter.u64_counter(name);
            if let Some(help) = help {
                builder = builder.with_description(help);
            }
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
            }
            OtelCounter {
                counter: builder.build(),
                attributes: attributes(key),
                total: AtomicU64::new(0),
            }
        })
    }

    pub(crate) fn gauge(&self, key: &Key) -> Arc<OtelGauge> {
        cached(&self.gauges, key, || {
            let name = key.name().to_owned();
            let (unit, help) = self.description(&name);
            let mut builder = self.meter.f64_gauge(name);
            if let Some(help) = help {
                builder = builder.with_description(help);
            }
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
            }
            OtelGauge {
                gauge: builder.build(),
                attributes: attributes(key),
                value: AtomicU64::new(0f64.to_bits()),
            }
        })
    }

    pub(crate) fn histogram(&self, key: &Key) -> Arc<OtelHistogram> {
        cached(&self.histograms, key, || {
            let name = key.name().to_owned();
            let (unit, help) = self.description(&name);
            let mut builder = self.meter.f64_histogram(name);
            if let Some(help) = help {
                builder = builder.with_description(help);
            }
            if let Some(unit) = unit {
                builder = builder.with_unit(unit);
                if unit == "s" {
                    builder =
                        builder.with_boundaries(crate::names::LATENCY_BUCKETS_SECONDS.to_vec());
                }
            }
            OtelHistogram {
                histogram: builder.build(),
                attributes: attributes(key),
            }
        })
    }
}

impl Recorder for OtelBridge {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.counter(key))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.gauge(key))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.histogram(key))
    }
}

/// An OTel counter plus the running total `absolute` needs.
pub(crate) struct OtelCounter {
    counter: opentelemetry::metrics::Counter<u64>,
    attributes: Vec<KeyValue>,
    total: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
        self.counter.add(value, &self.attributes);
    }

    fn absolute(&self, value: u64) {
        // OTel counters only add: forward the growth since the last absolute value.
        let previous = self.total.fetch_max(value, Ordering::Relaxed);
        if value > previous {
            self.counter.add(value - previous, &self.attributes);
        }
    }
}

/// An OTel gauge plus its current value, so relative updates can be turned into absolute ones.
pub(crate) struct OtelGauge {
    gauge: opentelemetry::metrics::Gauge<f64>,
    attributes: Vec<KeyValue>,
    value: AtomicU64,
}

impl OtelGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let next = f(f64::from_bits(current));
            match self.value.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.gauge.record(next, &self.attributes);
                    return;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// An OTel histogram with its attributes.
pub(crate) struct OtelHistogram {
    histogram: opentelemetry::metrics::Histogram<f64>,
    attributes: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.histogram.record(value, &self.attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    #[test]
    fn counters_gauges_and_histograms_reach_otel() -> Result<(), Box<dyn std::error::Error>> {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let bridge = OtelBridge::new(provider.meter("test"));

        metrics::with_local_recorder(&bridge, || {
            crate::names::describe_all();
            let c = metrics::counter!(crate::names::RECORDS_PRODUCED, "topic" => "t", "backend" => "embedded");
            c.increment(3);
            c.absolute(10);
            c.absolute(4); // going backwards is ignored
            metrics::gauge!(crate::names::CONSUMER_LAG, "topic" => "t", "partition" => "0", "group" => "g")
                .set(5.0);
            metrics::gauge!(crate::names::CONSUMER_LAG, "topic" => "t", "partition" => "0", "group" => "g")
                .decrement(2.0);
            metrics::histogram!(crate::names::HTTP_REQUEST_DURATION).record(0.02);
        });
        provider.force_flush()?;

        let exported = exporter.get_finished_metrics()?;
        let mut seen = HashMap::new();
        for rm in &exported {
            for scope in rm.scope_metrics() {
                for m in scope.metrics() {
                    let value = match m.data() {
                        AggregatedMetrics::U64(MetricData::Sum(s)) => {
                            s.data_points().map(|p| p.value() as f64).sum::<f64>()
                        }
                        AggregatedMetrics::F64(MetricData::Gauge(g)) => {
                            g.data_points().map(|p| p.value()).sum::<f64>()
                        }
                        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                            h.data_points().map(|p| p.count() as f64).sum::<f64>()
                        }
                        _ => f64::NAN,
                    };
                    seen.insert(m.name().to_owned(), (value, m.unit().to_owned()));
                }
            }
        }
        assert_eq!(
            seen.get(crate::names::RECORDS_PRODUCED),
            Some(&(10.0, "1".to_owned()))
        );
        assert_eq!(
            seen.get(crate::names::CONSUMER_LAG),
            Some(&(3.0, "1".to_owned()))
        );
        assert_eq!(
            seen.get(crate::names::HTTP_REQUEST_DURATION),
            Some(&(1.0, "s".to_owned()))
        );
        Ok(())
    }
}
