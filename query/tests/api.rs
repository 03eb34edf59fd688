//! Route tests: auth, errors, the OpenAPI document, metrics and serving, without real sockets
//! except for one loopback smoke test of `ApiServer`.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use automata_query::utoipa_axum::router::OpenApiRouter;
use automata_query::utoipa_axum::routes;
use automata_query::{ApiBuilder, ApiConfig, ApiServer, ApiState, ServiceStatus, StaticStatus};
use axum::Router;
use axum::http::{Method, StatusCode, header};
use common::{LOCAL, REMOTE, TestResult, body_json, call, request};

const TOKEN: &str = "s3cret-token";

fn state() -> ApiState {
    let status = StaticStatus::new(
        "metal-automata",
        "0.1.0",
        vec!["api".to_owned(), "producers".to_owned()],
        "embedded log at /tmp/x",
    );
    ApiState::new(Arc::new(status)).with_metrics(Arc::new(|| "# test page\nup 1\n".to_owned()))
}

fn app(token: Option<&str>) -> Router {
    ApiBuilder::new(state().with_token(token.map(str::to_owned))).build()
}

#[tokio::test]
async fn loopback_needs_no_token() -> TestResult {
    let response = call(
        &app(Some(TOKEN)),
        request(Method::GET, "/api/v1/status", LOCAL),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let status: ServiceStatus = serde_json::from_value(body_json(response).await?)?;
    assert_eq!(status.service, "metal-automata");
    assert_eq!(status.roles, ["api", "producers"]);
    assert_eq!(status.log_backend, "embedded log at /tmp/x");

    let ipv6 = "[::1]:5000".parse::<SocketAddr>()?;
    let response = call(&app(None), request(Method::GET, "/metrics", ipv6)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn remote_without_configured_token_is_refused() -> TestResult {
    for path in ["/api/v1/status", "/metrics", "/api/v1/openapi.json"] {
        let mut req = request(Method::GET, path, REMOTE);
        req.headers_mut()
            .insert(header::AUTHORIZATION, format!("Bearer {TOKEN}").parse()?);
        let response = call(&app(None), req).await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let body = body_json(response).await?;
        assert_eq!(body["error"]["code"], "token_not_configured", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("token")),
            "{body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn remote_needs_the_right_bearer_token() -> TestResult {
    let app = app(Some(TOKEN));
    for path in ["/api/v1/status", "/metrics"] {
        let response = call(&app, request(Method::GET, path, REMOTE)).await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body_json(response).await?["error"]["code"], "unauthorized");

        for wrong in [
            "Bearer nope",
            "Bearer s3cret-toke",
            "Basic czNjcmV0",
            "Bearer",
        ] {
            let mut req = request(Method::GET, path, REMOTE);
            req.headers_mut()
                .insert(header::AUTHORIZATION, wrong.parse()?);
            let response = call(&app, req).await?;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }

        let mut req = request(Method::GET, path, REMOTE);
        req.headers_mut()
            .insert(header::AUTHORIZATION, format!("bearer {TOKEN}").parse()?);
        let response = call(&app, req).await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn missing_connect_info_is_treated_as_remote() -> TestResult {
    let req = axum::http::Request::builder()
        .uri("/api/v1/status")
        .body(axum::body::Body::empty())?;
    let response = call(&app(Some(TOKEN)), req).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() -> TestResult {
    let response = call(&app(None), request(Method::GET, "/api/v1/nope", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(response).await?["error"]["code"], "not_found");

    let response = call(&app(None), request(Method::DELETE, "/api/v1/status", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        body_json(response).await?["error"]["code"],
        "method_not_allowed"
    );
    Ok(())
}

#[tokio::test]
async fn metrics_page_is_prometheus_text() -> TestResult {
    let response = call(&app(None), request(Method::GET, "/metrics", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"text/plain; version=0.0.4; charset=utf-8"[..])
    );
    assert_eq!(common::body_text(response).await?, "# test page\nup 1\n");
    Ok(())
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status() -> TestResult {
    let handle = automata_observability::metrics_handle()?;
    let app = ApiBuilder::new(state().with_metrics(handle.render_fn())).build();
    call(&app, request(Method::GET, "/api/v1/status", LOCAL)).await?;
    call(&app, request(Method::GET, "/api/v1/status", REMOTE)).await?;
    call(&app, request(Method::GET, "/no/such/thing/42", LOCAL)).await?;

    let page =
        common::body_text(call(&app, request(Method::GET, "/metrics", LOCAL)).await?).await?;
    // The recorder is process-wide and other tests in this binary count too: at least ours.
    let count = |series: &str| -> u64 {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count(r#"automata_http_requests_total{method="GET",route="/api/v1/status",status="200"}"#)
            >= 1,
        "{page}"
    );
    assert!(
        count(r#"automata_http_requests_total{method="GET",route="/api/v1/status",status="401"}"#)
            >= 1,
        "{page}"
    );
    // Unmatched paths are folded into one label value, never the raw path.
    assert!(
        count(r#"automata_http_requests_total{method="GET",route="unmatched",status="404"}"#) >= 1,
        "{page}"
    );
    assert!(!page.contains("/no/such/thing/42"), "{page}");
    assert!(
        count(
            r#"automata_http_request_duration_seconds_count{method="GET",route="/api/v1/status",status="200"}"#
        ) >= 1,
        "{page}"
    );
    Ok(())
}

/// A route group the way the binary adds one.
#[utoipa::path(
    get,
    path = "/api/v1/servers",
    responses((status = 200, description = "Servers", body = Vec<String>))
)]
async fn list_servers() -> axum::Json<Vec<String>> {
    axum::Json(vec!["srv-1".to_owned()])
}

/// The route paths an axum router holds, read from its `Debug` output (axum has no listing
/// API). Fails loudly if the format changes rather than passing vacuously.
fn router_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let paths: BTreeSet<String> = debug
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(
        paths.contains("/api/v1/status"),
        "cannot read routes from Router's Debug output: {debug}"
    );
    paths
}

#[tokio::test]
async fn every_api_route_is_in_the_openapi_document() -> TestResult {
    let servers = OpenApiRouter::new().routes(routes!(list_servers));
    let app = ApiBuilder::new(state().with_schema_registry(Some(common::registry())))
        .merge(servers)
        .build();

    let response = call(&app, request(Method::GET, "/api/v1/openapi.json", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let doc = body_json(response).await?;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .map(|paths| paths.keys().cloned().collect())
        .unwrap_or_default();

    let routed = router_paths(&app);
    let api_routes: Vec<&String> = routed
        .iter()
        .filter(|p| p.starts_with("/api/v1/"))
        .collect();
    assert!(api_routes.len() >= 3, "{api_routes:?}");
    for path in &api_routes {
        assert!(
            documented.contains(*path),
            "{path} is routed but not documented"
        );
    }
    for path in [
        "/metrics",
        "/subjects",
        "/schemas/ids/{id}",
        "/api/v1/servers",
    ] {
        assert!(
            documented.contains(path),
            "{path} missing from {documented:?}"
        );
    }
    // And everything documented is routed.
    for path in &documented {
        assert!(routed.contains(path), "{path} is documented but not routed");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let response = call(&app, request(Method::GET, "/api/v1/servers", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn registry_routes_are_absent_without_a_registry() -> TestResult {
    let app = app(None);
    let response = call(&app, request(Method::GET, "/subjects", LOCAL)).await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let doc =
        body_json(call(&app, request(Method::GET, "/api/v1/openapi.json", LOCAL)).await?).await?;
    assert!(doc["paths"].get("/subjects").is_none());
    Ok(())
}

#[test]
fn config_parses_and_loads_tokens() -> TestResult {
    let cfg: ApiConfig = serde_json::from_str("{}")?;
    assert_eq!(cfg.listen, "127.0.0.1:7878".parse::<SocketAddr>()?);
    assert_eq!(cfg.load_token()?, None);

    let cfg: ApiConfig = serde_json::from_str(r#"{"listen":"[::1]:9000","token":" abc "}"#)?;
    assert_eq!(cfg.load_token()?.as_deref(), Some("abc"));
    assert!(!format!("{cfg:?}").contains("abc"), "Debug leaks the token");

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n")?;
    let cfg = ApiConfig {
        token_file: Some(file.clone()),
        ..ApiConfig::default()
    };
    assert_eq!(cfg.load_token()?.as_deref(), Some("from-file"));

    std::fs::write(&file, "  \n")?;
    assert!(cfg.load_token().is_err());
    let both = ApiConfig {
        token: Some("x".to_owned()),
        ..cfg.clone()
    };
    assert!(both.load_token().is_err());
    let missing = ApiConfig {
        token_file: Some(dir.path().join("absent")),
        ..ApiConfig::default()
    };
    assert!(missing.load_token().is_err());
    assert!(serde_json::from_str::<ApiConfig>(r#"{"listen":"nope"}"#).is_err());
    Ok(())
}

#[tokio::test]
async fn serves_on_loopback_and_shuts_down() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cfg = ApiConfig {
        listen: "127.0.0.1:0".parse()?,
        ..ApiConfig::default()
    };
    let server = ApiServer::bind(&cfg).await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(app(None), async {
        let _ = stopped.await;
    }));

    // Over a real loopback socket, ConnectInfo says 127.0.0.1: no token needed.
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"service\":\"metal-automata\""),
        "{response}"
    );

    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), task).await???;
    Ok(())
}
