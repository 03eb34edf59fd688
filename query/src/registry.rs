//! The Confluent-compatible Schema Registry REST API over [`SchemaRegistry`].
//!
//! Mounted at the root, not under `/api/v1`: Confluent clients are given a base URL and append
//! `/subjects/...`, `/schemas/ids/...` themselves. Bodies and errors follow Confluent's shapes
//! (`{"error_code": 40401, "message": "..."}`) and content type, so stock serializers
//! (Java, librdkafka-based, Python) work against it unchanged.

use automata_schemas::registry::{
    RegisteredSchema, RegistryError, SchemaRegistry, VersionSelector,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// The media type Confluent's registry speaks.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The compatibility level this registry enforces (the only one it implements).
pub const COMPATIBILITY_LEVEL: &str = "BACKWARD";

/// Path prefixes served by this module; auth failures on them use Confluent's error shape.
const PREFIXES: &[&str] = &["/subjects", "/schemas", "/compatibility", "/config"];

/// Whether `path` belongs to the Schema Registry API.
pub(crate) fn is_registry_path(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Confluent's error body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistryErrorBody {
    /// Confluent's numeric code, e.g. 40401 (subject not found) or 42201 (invalid schema).
    pub error_code: u32,
    /// A sentence for people.
    pub message: String,
}

/// An error of the registry routes, rendered in Confluent's shape.
#[derive(Debug, Clone)]
pub struct RegistryApiError {
    status: StatusCode,
    body: RegistryErrorBody,
}

impl RegistryApiError {
    fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            body: RegistryErrorBody {
                error_code,
                message: message.into(),
            },
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }

    fn invalid_version(version: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{version}' is not a valid version id. Allowed values are \
                 between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }

    fn schema_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40403,
            format!("Schema {id} not found"),
        )
    }
}

impl From<RegistryError> for RegistryApiError {
    fn from(error: RegistryError) -> Self {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, error.error_code(), error.to_string())
    }
}

/// Renders an API-side error (from the auth layer) in Confluent's shape.
impl From<ApiError> for RegistryApiError {
    fn from(error: ApiError) -> Self {
        let status = error.status();
        // Confluent's codes are the HTTP status followed by two digits; 01 is the generic one.
        Self::new(
            status,
            u32::from(status.as_u16()) * 100 + 1,
            error.message(),
        )
    }
}

impl IntoResponse for RegistryApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(
                status = %self.status,
                error_code = self.body.error_code,
                "schema registry: {}",
                self.body.message
            );
        }
        let mut response = registry_json(self.status, &self.body);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON response with Confluent's content type.
fn registry_json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            body,
        )
            .into_response(),
        Err(e) => RegistryApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            format!("cannot encode the response: {e}"),
        )
        .into_response(),
    }
}

/// A 200 response in Confluent's content type.
struct Sr<T>(T);

impl<T: Serialize> IntoResponse for Sr<T> {
    fn into_response(self) -> Response {
        registry_json(StatusCode::OK, &self.0)
    }
}

type SrResult<T> = Result<Sr<T>, RegistryApiError>;

/// Path parameters with rejections in Confluent's shape.
struct SrPath<T>(T);

impl<T, S> FromRequestParts<S> for SrPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = RegistryApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(RegistryApiError::bad_request(rejection.body_text())),
        }
    }
}

/// Parses a JSON body whatever its content type: clients send Confluent's media type, plain
/// `application/json`, or nothing.
fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, RegistryApiError> {
    let bytes = body.map_err(|rejection| {
        RegistryApiError::new(
            rejection.status(),
            u32::from(rejection.status().as_u16()) * 100 + 1,
            rejection.body_text(),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RegistryApiError::bad_request(format!("invalid request body: {e}")))
}

/// A version path segment: a number in [1, 2^31-1], `latest`, or `-1` (Confluent's alias for latest).
fn parse_version(text: &str) -> Result<VersionSelector, RegistryApiError> {
    match text {
        "latest" | "-1" => Ok(VersionSelector::Latest),
        _ => match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionSelector::Number(n)),
            _ => Err(RegistryApiError::invalid_version(text)),
        },
    }
}

/// A schema in a subject, as Confluent returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectSchema {
    /// The subject.
    pub subject: String,
    /// The version within the subject.
    pub version: u32,
    /// The registry-wide schema id.
    pub id: u32,
    /// The schema text (Avro JSON).
    pub schema: String,
}

impl From<RegisteredSchema> for SubjectSchema {
    fn from(s: RegisteredSchema) -> Self {
        Self {
            subject: s.subject,
            version: s.version,
            id: s.id,
            schema: s.schema,
        }
    }
}

/// `GET /schemas/ids/{id}`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchemaById {
    /// The schema text.
    pub schema: String,
}

/// A (subject, version) pair that uses a schema id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: u32,
}

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema text (Avro JSON).
    pub schema: String,
    /// `AVRO` (the default); other types are refused.
    #[serde(default)]
    pub schema_type: Option<String>,
    /// Schema references; not supported, must be absent or empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub references: Option<Vec<serde_json::Value>>,
}

impl SchemaRequest {
    /// The schema text, after refusing what this registry does not implement.
    fn into_avro(self) -> Result<String, RegistryApiError> {
        if let Some(kind) = &self.schema_type
            && !kind.eq_ignore_ascii_case("AVRO")
        {
            return Err(RegistryApiError::invalid_schema(format!(
                "schema type {kind} is not supported; this registry holds AVRO schemas only"
            )));
        }
        if self.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(RegistryApiError::invalid_schema(
                "schema references are not supported",
            ));
        }
        Ok(self.schema)
    }
}

/// `POST /subjects/{subject}/versions`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisterResponse {
    /// The schema's registry-wide id.
    pub id: u32,
}

/// The compatibility check's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompatibilityResponse {
    /// Whether the schema may be registered after the given version.
    pub is_compatible: bool,
    /// Why not, when it is not.
    pub messages: Vec<String>,
}

/// `GET /config`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigResponse {
    /// The compatibility level enforced on every subject.
    #[schema(example = "BACKWARD")]
    pub compatibility_level: String,
}

/// Lists the subjects.
#[utoipa::path(
    get,
    path = "/subjects",
    tag = "schema-registry",
    responses((status = 200, description = "Subject names", content_type = CONTENT_TYPE, body = Vec<String>))
)]
async fn list_subjects(State(registry): State<SchemaRegistry>) -> Sr<Vec<String>> {
    Sr(registry.subjects())
}

/// Lists a subject's versions.
#[utoipa::path(
    get,
    path = "/subjects/{subject}/versions",
    tag = "schema-registry",
    params(("subject" = String, Path, description = "The subject, e.g. `inventory-value`")),
    responses(
        (status = 200, description = "Version numbers", content_type = CONTENT_TYPE, body = Vec<u32>),
        (status = 404, description = "40401: no such subject", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn list_versions(
    State(registry): State<SchemaRegistry>,
    SrPath(subject): SrPath<String>,
) -> SrResult<Vec<u32>> {
    Ok(Sr(registry.versions(&subject)?))
}

/// Registers a schema under a subject (or returns the id it already has there).
#[utoipa::path(
    post,
    path = "/subjects/{subject}/versions",
    tag = "schema-registry",
    params(("subject" = String, Path, description = "The subject")),
    request_body(content = SchemaRequest, content_type = CONTENT_TYPE),
    responses(
        (status = 200, description = "The schema's id", content_type = CONTENT_TYPE, body = RegisterResponse),
        (status = 409, description = "409: incompatible with the subject's latest schema", content_type = CONTENT_TYPE, body = RegistryErrorBody),
        (status = 422, description = "42201: not a valid schema", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn register(
    State(registry): State<SchemaRegistry>,
    SrPath(subject): SrPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> SrResult<RegisterResponse> {
    let schema = parse_body::<SchemaRequest>(body)?.into_avro()?;
    let id = registry.register(&subject, &schema).await?;
    Ok(Sr(RegisterResponse { id }))
}

/// Gets one version of a subject.
#[utoipa::path(
    get,
    path = "/subjects/{subject}/versions/{version}",
    tag = "schema-registry",
    params(
        ("subject" = String, Path, description = "The subject"),
        ("version" = String, Path, description = "A version number or `latest`"),
    ),
    responses(
        (status = 200, description = "The schema", content_type = CONTENT_TYPE, body = SubjectSchema),
        (status = 404, description = "40401 no such subject, 40402 no such version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
        (status = 422, description = "42202: not a valid version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn get_version(
    State(registry): State<SchemaRegistry>,
    SrPath((subject, version)): SrPath<(String, String)>,
) -> SrResult<SubjectSchema> {
    let selector = parse_version(&version)?;
    Ok(Sr(registry.version(&subject, selector)?.into()))
}

/// Gets one version's schema text alone.
#[utoipa::path(
    get,
    path = "/subjects/{subject}/versions/{version}/schema",
    tag = "schema-registry",
    params(
        ("subject" = String, Path, description = "The subject"),
        ("version" = String, Path, description = "A version number or `latest`"),
    ),
    responses(
        (status = 200, description = "The schema text", content_type = CONTENT_TYPE, body = Object),
        (status = 404, description = "40401 no such subject, 40402 no such version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
        (status = 422, description = "42202: not a valid version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn get_version_schema(
    State(registry): State<SchemaRegistry>,
    SrPath((subject, version)): SrPath<(String, String)>,
) -> Result<Response, RegistryApiError> {
    let selector = parse_version(&version)?;
    let schema = registry.version(&subject, selector)?.schema;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        schema,
    )
        .into_response())
}

/// Looks a schema up in a subject.
#[utoipa::path(
    post,
    path = "/subjects/{subject}",
    tag = "schema-registry",
    params(("subject" = String, Path, description = "The subject")),
    request_body(content = SchemaRequest, content_type = CONTENT_TYPE),
    responses(
        (status = 200, description = "The registered version of that schema", content_type = CONTENT_TYPE, body = SubjectSchema),
        (status = 404, description = "40401 no such subject, 40403 schema not registered there", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn lookup(
    State(registry): State<SchemaRegistry>,
    SrPath(subject): SrPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> SrResult<SubjectSchema> {
    let schema = parse_body::<SchemaRequest>(body)?.into_avro()?;
    Ok(Sr(registry.lookup(&subject, &schema)?.into()))
}

/// Gets a schema by its id.
#[utoipa::path(
    get,
    path = "/schemas/ids/{id}",
    tag = "schema-registry",
    params(("id" = u32, Path, description = "The schema id; query parameters such as `subject`, `format` and `fetchMaxId` are accepted and ignored")),
    responses(
        (status = 200, description = "The schema", content_type = CONTENT_TYPE, body = SchemaById),
        (status = 404, description = "40403: no such schema", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn schema_by_id(
    State(registry): State<SchemaRegistry>,
    SrPath(id): SrPath<String>,
) -> SrResult<SchemaById> {
    let id = id
        .parse::<u32>()
        .map_err(|_| RegistryApiError::schema_not_found(&id))?;
    Ok(Sr(SchemaById {
        schema: registry.schema_by_id(id)?.schema,
    }))
}

/// Every (subject, version) registered with a schema id.
fn usages(registry: &SchemaRegistry, id: &str) -> Result<Vec<SubjectVersion>, RegistryApiError> {
    let numeric = id
        .parse::<u32>()
        .map_err(|_| RegistryApiError::schema_not_found(id))?;
    // Fails with 40403 when the id is unknown.
    registry.schema_by_id(numeric)?;
    let found = registry
        .subject_versions_of(numeric)
        .into_iter()
        .map(|(subject, version)| SubjectVersion { subject, version })
        .collect();
    Ok(found)
}

/// Lists the (subject, version) pairs that use a schema id.
#[utoipa::path(
    get,
    path = "/schemas/ids/{id}/versions",
    tag = "schema-registry",
    params(("id" = u32, Path, description = "The schema id")),
    responses(
        (status = 200, description = "Where the schema is used", content_type = CONTENT_TYPE, body = Vec<SubjectVersion>),
        (status = 404, description = "40403: no such schema", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn schema_versions(
    State(registry): State<SchemaRegistry>,
    SrPath(id): SrPath<String>,
) -> SrResult<Vec<SubjectVersion>> {
    Ok(Sr(usages(&registry, &id)?))
}

/// Lists the subjects that use a schema id.
#[utoipa::path(
    get,
    path = "/schemas/ids/{id}/subjects",
    tag = "schema-registry",
    params(("id" = u32, Path, description = "The schema id")),
    responses(
        (status = 200, description = "Subjects using the schema", content_type = CONTENT_TYPE, body = Vec<String>),
        (status = 404, description = "40403: no such schema", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn schema_subjects(
    State(registry): State<SchemaRegistry>,
    SrPath(id): SrPath<String>,
) -> SrResult<Vec<String>> {
    let mut subjects: Vec<String> = usages(&registry, &id)?
        .into_iter()
        .map(|u| u.subject)
        .collect();
    subjects.dedup();
    Ok(Sr(subjects))
}

/// Lists the schema types this registry accepts.
#[utoipa::path(
    get,
    path = "/schemas/types",
    tag = "schema-registry",
    responses((status = 200, description = "Schema types", content_type = CONTENT_TYPE, body = Vec<String>))
)]
async fn schema_types() -> Sr<[&'static str; 1]> {
    Sr(["AVRO"])
}

/// Tests a schema against a version of a subject without registering it.
#[utoipa::path(
    post,
    path = "/compatibility/subjects/{subject}/versions/{version}",
    tag = "schema-registry",
    params(
        ("subject" = String, Path, description = "The subject"),
        ("version" = String, Path, description = "A version number or `latest`"),
    ),
    request_body(content = SchemaRequest, content_type = CONTENT_TYPE),
    responses(
        (status = 200, description = "The verdict", content_type = CONTENT_TYPE, body = CompatibilityResponse),
        (status = 404, description = "40401 no such subject, 40402 no such version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
        (status = 422, description = "42201 invalid schema, 42202 invalid version", content_type = CONTENT_TYPE, body = RegistryErrorBody),
    )
)]
async fn check_compatibility(
    State(registry): State<SchemaRegistry>,
    SrPath((subject, version)): SrPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> SrResult<CompatibilityResponse> {
    let selector = parse_version(&version)?;
    let schema = parse_body::<SchemaRequest>(body)?.into_avro()?;
    let result = registry.check_compatibility(&subject, selector, &schema)?;
    Ok(Sr(CompatibilityResponse {
        is_compatible: result.is_compatible,
        messages: result.messages,
    }))
}

/// The global compatibility level.
#[utoipa::path(
    get,
    path = "/config",
    tag = "schema-registry",
    responses((status = 200, description = "The compatibility level", content_type = CONTENT_TYPE, body = ConfigResponse))
)]
async fn get_config() -> Sr<ConfigResponse> {
    Sr(ConfigResponse {
        compatibility_level: COMPATIBILITY_LEVEL.to_owned(),
    })
}

/// A subject's compatibility level: always the global one, as no per-subject level exists.
#[utoipa::path(
    get,
    path = "/config/{subject}",
    tag = "schema-registry",
    params(("subject" = String, Path, description = "The subject")),
    responses((status = 200, description = "The compatibility level", content_type = CONTENT_TYPE, body = ConfigResponse))
)]
async fn get_subject_config(SrPath(_subject): SrPath<String>) -> Sr<ConfigResponse> {
    get_config().await
}

/// The registry routes, documented; the caller supplies the registry as state.
pub(crate) fn routes() -> OpenApiRouter<SchemaRegistry> {
    OpenApiRouter::new()
        .routes(routes!(list_subjects))
        .routes(routes!(list_versions, register))
        .routes(routes!(get_version))
        .routes(routes!(get_version_schema))
        .routes(routes!(lookup))
        .routes(routes!(schema_by_id))
        .routes(routes!(schema_versions))
        .routes(routes!(schema_subjects))
        .routes(routes!(schema_types))
        .routes(routes!(check_compatibility))
        .routes(routes!(get_config))
        .routes(routes!(get_subject_config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_confluent() {
        assert!(matches!(
            parse_version("latest"),
            Ok(VersionSelector::Latest)
        ));
        assert!(matches!(parse_version("-1"), Ok(VersionSelector::Latest)));
        assert!(matches!(parse_version("3"), Ok(VersionSelector::Number(3))));
        for bad in ["0", "-2", "abc", "2147483648", ""] {
            let err = parse_version(bad).err().map(|e| e.body.error_code);
            assert_eq!(err, Some(42202), "{bad}");
        }
    }

    #[test]
    fn registry_paths() {
        assert!(is_registry_path("/subjects"));
        assert!(is_registry_path("/subjects/a/versions"));
        assert!(is_registry_path("/schemas/ids/1"));
        assert!(is_registry_path("/config"));
        assert!(!is_registry_path("/configs"));
        assert!(!is_registry_path("/api/v1/status"));
    }
}
