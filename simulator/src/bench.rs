//! How fast a simulated fleet answers: a full sensor sweep over every BMC (what a telemetry
//! collector does each interval), then sustained requests per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;

use crate::Fleet;

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct SimBenchResult {
    /// BMCs in the fleet.
    pub servers: usize,
    /// Requests in one sweep (every resource with a reading, on every BMC).
    pub sweep_requests: u64,
    /// Wall time of the sweep, s.
    pub sweep_secs: f64,
    /// Requests that failed during the sweep.
    pub sweep_errors: u64,
    /// Requests per second sustained over the timed run.
    pub requests_per_sec: f64,
    /// Median latency in the timed run, ms.
    pub p50_ms: f64,
    /// 99th percentile latency in the timed run, ms.
    pub p99_ms: f64,
    /// Concurrent requests in flight.
    pub concurrency: usize,
}

/// Sweeps the fleet once, then runs requests for `duration` with `concurrency` in flight.
/// `progress` is told (done, total) during the sweep.
pub async fn run(
    fleet: &Fleet,
    concurrency: usize,
    duration: Duration,
    progress: impl Fn(u64, u64),
) -> SimBenchResult {
    let (user, pass) = {
        let c = &fleet.shared.config.credentials;
        (c.username.clone(), c.password.clone())
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let urls: Vec<String> = fleet
        .bmcs
        .iter()
        .zip(&fleet.endpoints)
        .flat_map(|(b, e)| {
            b.sensor_uris()
                .into_iter()
                .map(move |u| format!("{}{u}", e.address))
        })
        .collect();
    let total = urls.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let get = |url: String| {
        let client = client.clone();
        let (user, pass) = (user.clone(), pass.clone());
        async move {
            let started = Instant::now();
            let ok = match client.get(url).basic_auth(user, Some(pass)).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            (ok, started.elapsed())
        }
    };
    let started = Instant::now();
    let mut sweep = futures::stream::iter(urls.clone())
        .map(get)
        .buffer_unordered(concurrency);
    while let Some((ok, _)) = sweep.next().await {
        if !ok {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(1000) || n == total {
            progress(n, total);
        }
    }
    let sweep_secs = started.elapsed().as_secs_f64();

    let mut latencies: Vec<Duration> = Vec::new();
    let started = Instant::now();
    let mut n = 0u64;
    let endless = urls.iter().cycle().cloned();
    let mut timed = futures::stream::iter(endless)
        .map(get)
        .buffer_unordered(concurrency);
    while let Some((_, took)) = timed.next().await {
        n += 1;
        latencies.push(took);
        if started.elapsed() >= duration {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    SimBenchResult {
        servers: fleet.bmcs.len(),
        sweep_requests: total,
        sweep_secs,
        sweep_errors: errors.load(Ordering::Relaxed),
        requests_per_sec: n as f64 / secs.max(0.001),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        concurrency,
    }
}
