//! With an OTLP endpoint configured, spans leave by gRPC to that endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use automata_observability::{ObservabilityConfig, ObservabilityError, init};

#[test]
fn otlp_needs_a_runtime() {
    let cfg = ObservabilityConfig {
        otlp_endpoint: Some("http://127.0.0.1:9".to_owned()),
        ..ObservabilityConfig::default()
    };
    assert!(matches!(init(&cfg), Err(ObservabilityError::NoRuntime)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_configured_endpoint() -> Result<(), Box<dyn std::error::Error>> {
    // A stand-in collector on loopback: it only records that the exporter connected.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let connected = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&connected);
    tokio::spawn(async move {
        if let Ok((socket, _)) = listener.accept().await {
            seen.store(true, Ordering::SeqCst);
            drop(socket);
        }
    });

    let cfg = ObservabilityConfig {
        otlp_endpoint: Some(endpoint),
        ..ObservabilityConfig::default()
    };
    let mut guard = init(&cfg)?;
    assert!(guard.exports_traces());
    assert!(guard.exports_metrics());
    tracing::info_span!("exported").in_scope(|| tracing::info!("inside a span"));
    metrics::counter!(automata_observability::names::PRODUCE_ERRORS).increment(1);
    guard.shutdown(); // flushes: the batch exporter must reach the endpoint
    assert!(
        connected.load(Ordering::SeqCst),
        "the exporter never connected"
    );
    Ok(())
}
