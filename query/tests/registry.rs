//! The Confluent-compatible Schema Registry routes over an in-memory registry.

mod common;

use std::sync::Arc;

use automata_query::{ApiBuilder, ApiState, StaticStatus};
use axum::Router;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use common::{LOCAL, REMOTE, TestResult, body_json, body_text, call, request, with_body};
use serde_json::{Value, json};

const SR: &str = "application/vnd.schemaregistry.v1+json";

const V1: &str = r#"{"type":"record","name":"Server","namespace":"automata","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Server","namespace":"automata","fields":[{"name":"id","type":"string"},{"name":"rack","type":["null","string"],"default":null}]}"#;
/// Adds a field without a default: not backward compatible with V2.
const V3_INCOMPATIBLE: &str = r#"{"type":"record","name":"Server","namespace":"automata","fields":[{"name":"id","type":"string"},{"name":"rack","type":["null","string"],"default":null},{"name":"serial","type":"string"}]}"#;

fn app() -> Router {
    let status = StaticStatus::new("metal-automata", "0.1.0", vec![], "embedded");
    ApiBuilder::new(
        ApiState::new(Arc::new(status))
            .with_token(Some("tok".to_owned()))
            .with_schema_registry(Some(common::registry())),
    )
    .build()
}

fn is_sr(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == SR.as_bytes())
}

/// Calls and returns (status, JSON body), checking Confluent's content type on the way.
async fn sr(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let req = match body {
        Some(body) => {
            let mut req = with_body(method, uri, LOCAL, body.to_string());
            req.headers_mut().insert(header::CONTENT_TYPE, SR.parse()?);
            req
        }
        None => request(method, uri, LOCAL),
    };
    let response = call(app, req).await?;
    assert!(
        is_sr(&response),
        "{uri}: content type {:?}",
        response.headers().get(header::CONTENT_TYPE)
    );
    let status = response.status();
    Ok((status, body_json(response).await?))
}

async fn register(
    app: &Router,
    subject: &str,
    schema: &str,
) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    sr(
        app,
        Method::POST,
        &format!("/subjects/{subject}/versions"),
        Some(json!({ "schema": schema })),
    )
    .await
}

#[tokio::test]
async fn register_read_and_look_up() -> TestResult {
    let app = app();
    let (status, body) = register(&app, "servers-value", V1).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id1 = body["id"].as_u64().ok_or("no id")?;

    // Registering the same schema again returns the same id and adds no version.
    let (_, again) = register(&app, "servers-value", V1).await?;
    assert_eq!(again["id"].as_u64(), Some(id1));
    let (status, body) = register(&app, "servers-value", V2).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id2 = body["id"].as_u64().ok_or("no id")?;
    assert_ne!(id1, id2);

    assert_eq!(
        sr(&app, Method::GET, "/subjects", None).await?,
        (StatusCode::OK, json!(["servers-value"]))
    );
    assert_eq!(
        sr(&app, Method::GET, "/subjects/servers-value/versions", None).await?,
        (StatusCode::OK, json!([1, 2]))
    );

    let (status, latest) = sr(
        &app,
        Method::GET,
        "/subjects/servers-value/versions/latest",
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["subject"], "servers-value");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"].as_u64(), Some(id2));
    let stored: Value = serde_json::from_str(latest["schema"].as_str().ok_or("no schema")?)?;
    assert_eq!(stored["name"], "Server");

    let (_, first) = sr(
        &app,
        Method::GET,
        "/subjects/servers-value/versions/1",
        None,
    )
    .await?;
    assert_eq!(first["id"].as_u64(), Some(id1));

    // The raw schema: the schema text itself, parseable as Avro JSON.
    let response = call(
        &app,
        request(
            Method::GET,
            "/subjects/servers-value/versions/1/schema",
            LOCAL,
        ),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(is_sr(&response));
    let raw: Value = serde_json::from_str(&body_text(response).await?)?;
    assert_eq!(raw["fields"][0]["name"], "id");

    // By id, with the query parameters Confluent clients add.
    let (status, by_id) = sr(
        &app,
        Method::GET,
        &format!("/schemas/ids/{id1}?subject=servers-value&format=&fetchMaxId=false"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let text = by_id["schema"].as_str().ok_or("no schema")?;
    assert_eq!(
        serde_json::from_str::<Value>(text)?["fields"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(by_id.get("schemaType").is_none(), "AVRO omits schemaType");

    assert_eq!(
        sr(
            &app,
            Method::GET,
            &format!("/schemas/ids/{id2}/versions"),
            None
        )
        .await?,
        (
            StatusCode::OK,
            json!([{"subject": "servers-value", "version": 2}])
        )
    );
    assert_eq!(
        sr(
            &app,
            Method::GET,
            &format!("/schemas/ids/{id2}/subjects"),
            None
        )
        .await?,
        (StatusCode::OK, json!(["servers-value"]))
    );

    // Lookup finds the version a schema was registered as.
    let (status, found) = sr(
        &app,
        Method::POST,
        "/subjects/servers-value",
        Some(json!({"schema": V1})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["version"], 1);
    assert_eq!(found["id"].as_u64(), Some(id1));
    let (status, missing) = sr(
        &app,
        Method::POST,
        "/subjects/servers-value",
        Some(json!({"schema": V3_INCOMPATIBLE})),
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error_code"], 40403);

    assert_eq!(
        sr(&app, Method::GET, "/config", None).await?,
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        sr(&app, Method::GET, "/schemas/types", None).await?,
        (StatusCode::OK, json!(["AVRO"]))
    );
    Ok(())
}

#[tokio::test]
async fn compatibility_checks() -> TestResult {
    let app = app();
    register(&app, "servers-value", V1).await?;
    let (status, ok) = sr(
        &app,
        Method::POST,
        "/compatibility/subjects/servers-value/versions/latest",
        Some(json!({"schema": V2, "schemaType": "AVRO"})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["is_compatible"], true, "{ok}");
    assert!(ok["messages"].is_array());

    register(&app, "servers-value", V2).await?;
    let (status, bad) = sr(
        &app,
        Method::POST,
        "/compatibility/subjects/servers-value/versions/2",
        Some(json!({"schema": V3_INCOMPATIBLE})),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bad["is_compatible"], false, "{bad}");
    assert!(
        bad["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{bad}"
    );
    Ok(())
}

#[tokio::test]
async fn errors_use_confluent_codes() -> TestResult {
    let app = app();
    register(&app, "servers-value", V1).await?;
    let cases: &[(Method, &str, Option<Value>, StatusCode, u64)] = &[
        (
            Method::GET,
            "/subjects/nope/versions",
            None,
            StatusCode::NOT_FOUND,
            40401,
        ),
        (
            Method::GET,
            "/subjects/nope/versions/latest",
            None,
            StatusCode::NOT_FOUND,
            40401,
        ),
        (
            Method::GET,
            "/subjects/servers-value/versions/9",
            None,
            StatusCode::NOT_FOUND,
            40402,
        ),
        (
            Method::GET,
            "/subjects/servers-value/versions/abc",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        ),
        (
            Method::GET,
            "/subjects/servers-value/versions/0",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        ),
        (
            Method::GET,
            "/schemas/ids/999",
            None,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            Method::GET,
            "/schemas/ids/not-a-number",
            None,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            Method::GET,
            "/schemas/ids/999/versions",
            None,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            Method::POST,
            "/subjects/servers-value/versions",
            Some(json!({"schema": "{not json"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/servers-value/versions",
            Some(json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/servers-value/versions",
            Some(
                json!({"schema": V2, "references": [{"name": "x", "subject": "y", "version": 1}]}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/servers-value/versions",
            Some(json!({"schema": V3_INCOMPATIBLE})),
            StatusCode::CONFLICT,
            409,
        ),
        (
            Method::POST,
            "/subjects/servers-value/versions",
            Some(json!({"schemaa": V2})),
            StatusCode::BAD_REQUEST,
            400,
        ),
        (
            Method::POST,
            "/compatibility/subjects/servers-value/versions/latest-ish",
            Some(json!({"schema": V2})),
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        ),
        (
            Method::POST,
            "/compatibility/subjects/nope/versions/latest",
            Some(json!({"schema": V2})),
            StatusCode::NOT_FOUND,
            40401,
        ),
    ];
    for (method, uri, body, want_status, want_code) in cases {
        let (status, error) = sr(&app, method.clone(), uri, body.clone()).await?;
        assert_eq!(status, *want_status, "{method} {uri}: {error}");
        assert_eq!(
            error["error_code"].as_u64(),
            Some(*want_code),
            "{method} {uri}: {error}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }

    // A body that is not JSON at all, with no content type: still a 400, never a 500.
    let response = call(
        &app,
        with_body(
            Method::POST,
            "/subjects/servers-value/versions",
            LOCAL,
            "garbage",
        ),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(response).await?["error_code"], 400);
    Ok(())
}

#[tokio::test]
async fn remote_callers_need_the_token_and_get_confluent_errors() -> TestResult {
    let app = app();
    let response = call(&app, request(Method::GET, "/subjects", REMOTE)).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(is_sr(&response));
    assert_eq!(body_json(response).await?["error_code"], 40101);

    let mut req = request(Method::GET, "/subjects", REMOTE);
    req.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer tok".parse()?);
    let response = call(&app, req).await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}
