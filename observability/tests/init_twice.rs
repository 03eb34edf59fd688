//! `init` may be called more than once in a process; every call shares one recorder.

use automata_observability::{ObservabilityConfig, init, metrics_handle, names};

#[test]
fn init_twice_shares_one_recorder() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = ObservabilityConfig::default();
    let first = init(&cfg)?;
    let second = init(&cfg)?;
    assert!(!first.exports_traces() && !first.exports_metrics());

    metrics::counter!(names::RECORDS_PRODUCED, names::labels::TOPIC => "inventory", names::labels::BACKEND => "embedded")
        .increment(7);
    metrics::gauge!(names::CONSUMER_LAG, names::labels::TOPIC => "inventory", names::labels::PARTITION => "0", names::labels::GROUP => "g")
        .set(3.0);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, names::labels::ROUTE => "/api/v1/status")
        .record(0.003);

    for page in [
        first.metrics().render(),
        second.metrics().render(),
        metrics_handle()?.render(),
    ] {
        assert!(
            page.contains(
                r#"automata_records_produced_total{topic="inventory",backend="embedded"} 7"#
            ),
            "{page}"
        );
        assert!(
            page.contains(
                "# HELP automata_records_produced_total Records written to the message log."
            ),
            "{page}"
        );
        assert!(
            page.contains("# TYPE automata_consumer_lag_records gauge"),
            "{page}"
        );
        assert!(
            page.contains("# TYPE automata_http_request_duration_seconds histogram"),
            "{page}"
        );
        assert!(page.contains(r#"automata_http_request_duration_seconds_bucket{route="/api/v1/status",le="0.005"} 1"#), "{page}");
    }
    tracing::info!("logging works after two inits");
    Ok(())
}
