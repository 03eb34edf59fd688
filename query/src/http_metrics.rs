//! Counts and times every HTTP request, labelled by matched route (never the raw path, which
//! would let callers mint unbounded label values) and status.

use std::time::Instant;

use automata_observability::names;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// The label value for requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// A bounded label for the request method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Records `automata_http_requests_total` and `automata_http_request_duration_seconds`.
pub(crate) async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        (names::labels::METHOD, method.to_owned()),
        (names::labels::ROUTE, route),
        (names::labels::STATUS, status),
    ];
    metrics::counter!(names::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
