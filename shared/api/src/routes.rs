//! Routes and their handlers. Each handler: parse, call one `Vault` method, map the result.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Extension, Json, Router};
use ledgix_core::model::{ClearanceRequest, ConfidenceBucket, ReviewSettings};
use ledgix_core::policy::PolicyRegistration;
use ledgix_core::service::{
    consume_scope, ConsumeRequest, MintRequest, Principal, ReviewDecisionRequest, ADMIN_SCOPE,
};
use ledgix_core::{Vault, VaultError};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, IdempotencyKey, JsonBody};
use crate::middleware::{admin_auth, request_context, tenant_auth};

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub cors_allowed_origin: Option<HeaderValue>,
    /// Emit a CloudWatch EMF line per request (VAULT_METRICS=emf).
    pub emf_metrics: bool,
}

/// Every (method, path) the router serves; the OpenAPI test compares it with docs/openapi.yaml.
#[derive(Debug, Default, Clone)]
pub struct RouteTable(pub Vec<(Method, &'static str)>);

type ApiResult = Result<Response, ApiError>;

/// Registers routes on a router and records them in the route table.
struct Routes {
    router: Router<AppState>,
    table: RouteTable,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            table: RouteTable::default(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.table.0.push((method, path));
        self
    }

    fn merge(
        mut self,
        other: Routes,
        layer: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> Self {
        self.router = self.router.merge(layer(other.router));
        self.table.0.extend(other.table.0);
        self
    }
}

pub fn router(state: AppState) -> (Router, RouteTable) {
    let public = Routes::new().add(Method::GET, "/healthz", healthz).add(
        Method::GET,
        "/.well-known/jwks.json",
        jwks,
    );
    let tenant = Routes::new()
        .add(Method::POST, "/register-policy", register_policy)
        .add(Method::GET, "/policies", list_policies)
        .add(Method::POST, "/request-clearance", request_clearance)
        .add(
            Method::GET,
            "/clearance-status/{request_id}",
            clearance_status,
        )
        .add(Method::POST, "/mint-token", mint_token)
        .add(Method::GET, "/review-settings", get_review_settings)
        .add(Method::PUT, "/review-settings", put_review_settings)
        .add(Method::GET, "/reviews", list_reviews)
        .add(
            Method::POST,
            "/reviews/{request_id}/decision",
            review_decision,
        )
        .add(Method::POST, "/consume-token", consume_token)
        .add(Method::GET, "/usage", usage)
        .add(Method::GET, "/ledger", ledger)
        .add(Method::GET, "/ledger/checkpoints", checkpoints)
        .add(Method::GET, "/ledger/proof/inclusion", inclusion_proof)
        .add(Method::GET, "/ledger/proof/consistency", consistency_proof)
        .add(Method::GET, "/ledger/proof/bundle", proof_bundle);
    let admin = Routes::new()
        .add(Method::POST, "/admin/tenants", create_tenant)
        .add(
            Method::POST,
            "/admin/tenants/{tenant_id}/api-keys",
            create_api_key,
        )
        .add(Method::DELETE, "/admin/api-keys/{key_id}", revoke_api_key);

    let tenant_layer = from_fn_with_state(state.clone(), tenant_auth);
    let admin_layer = from_fn_with_state(state.clone(), admin_auth);
    let routes = public
        .merge(tenant, |r| r.route_layer(tenant_layer))
        .merge(admin, |r| r.route_layer(admin_layer));
    let table = routes.table;
    let router = routes
        .router
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state);
    (router, table)
}

fn idem(
    key: &Option<IdempotencyKey>,
    status: StatusCode,
) -> Option<ledgix_core::service::Idempotency> {
    key.as_ref().map(|k| k.with_status(status.as_u16()))
}

/// Replay a stored answer, or refuse a reused key, before doing any work.
async fn check_replay(
    vault: &Vault,
    scope: &str,
    key: &Option<IdempotencyKey>,
) -> Result<(), ApiError> {
    if let Some(idem) = idem(key, StatusCode::OK) {
        vault.check_idempotency(scope, &idem).await?;
    }
    Ok(())
}

fn json_response<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

async fn healthz(State(state): State<AppState>) -> ApiResult {
    let keys = state.vault.public_keys().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "signing_keys": keys.len()}),
    ))
}

async fn jwks(State(state): State<AppState>) -> ApiResult {
    let mut response = json_response(StatusCode::OK, &state.vault.jwks().await?);
    response.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

async fn register_policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<PolicyRegistration>,
) -> ApiResult {
    check_replay(&state.vault, &principal.tenant_id, &body.idempotency).await?;
    let (created, view) = state
        .vault
        .register_policy(
            &principal,
            body.value,
            idem(&body.idempotency, StatusCode::CREATED).as_ref(),
        )
        .await?;
    Ok(json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &view,
    ))
}

async fn list_policies(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let policies = state.vault.list_policies(&principal).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"policies": policies}),
    ))
}

async fn request_clearance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ClearanceRequest>,
) -> ApiResult {
    check_replay(&state.vault, &principal.tenant_id, &body.idempotency).await?;
    let view = state
        .vault
        .request_clearance(
            &principal,
            body.value,
            idem(&body.idempotency, StatusCode::OK).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn clearance_status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(request_id): ApiPath<String>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state
            .vault
            .clearance_status(&principal, &request_id)
            .await?,
    ))
}

async fn mint_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<MintRequest>,
) -> ApiResult {
    check_replay(&state.vault, &principal.tenant_id, &body.idempotency).await?;
    let view = state
        .vault
        .mint_token(
            &principal,
            body.value,
            idem(&body.idempotency, StatusCode::OK).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn get_review_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state.vault.review_settings(&principal).await?,
    ))
}

#[derive(Deserialize)]
struct ReviewSettingsBody {
    minimum_confidence_bucket: String,
}

async fn put_review_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ReviewSettingsBody>,
) -> ApiResult {
    check_replay(&state.vault, &principal.tenant_id, &body.idempotency).await?;
    let bucket =
        ConfidenceBucket::parse(&body.value.minimum_confidence_bucket).ok_or_else(|| {
            VaultError::InvalidRequest(
                "minimum_confidence_bucket must be extra_high, high, medium, low or none".into(),
            )
        })?;
    let settings = ReviewSettings {
        minimum_confidence_bucket: bucket,
    };
    let saved = state
        .vault
        .put_review_settings(
            &principal,
            settings,
            idem(&body.idempotency, StatusCode::OK).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &saved))
}

#[derive(Deserialize)]
struct ReviewsQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_reviews(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ReviewsQuery>,
) -> ApiResult {
    if let Some(status) = query.status.as_deref().filter(|s| *s != "pending") {
        return Err(VaultError::InvalidRequest(format!(
            "status={status:?}: only pending reviews can be listed"
        ))
        .into());
    }
    let reviews = state
        .vault
        .pending_reviews(&principal, query.limit.unwrap_or(100).clamp(1, 500))
        .await?;
    Ok(json_response(StatusCode::OK, &json!({"reviews": reviews})))
}

async fn review_decision(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(request_id): ApiPath<String>,
    body: JsonBody<ReviewDecisionRequest>,
) -> ApiResult {
    check_replay(&state.vault, &principal.tenant_id, &body.idempotency).await?;
    let view = state
        .vault
        .review_decision(
            &principal,
            &request_id,
            body.value,
            idem(&body.idempotency, StatusCode::OK).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn consume_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ConsumeRequest>,
) -> ApiResult {
    check_replay(
        &state.vault,
        &consume_scope(&principal.tenant_id),
        &body.idempotency,
    )
    .await?;
    let view = state
        .vault
        .consume_token(
            &principal,
            body.value,
            idem(&body.idempotency, StatusCode::OK).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}

#[derive(Deserialize)]
struct UsageQuery {
    day: Option<String>,
}

async fn usage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult {
    let day = query.day.unwrap_or_else(chrono_today);
    let counters = state.vault.usage(&principal, &day).await?;
    let counters: serde_json::Map<String, serde_json::Value> =
        counters.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"tenant_id": principal.tenant_id, "day": day, "counters": counters}),
    ))
}

fn chrono_today() -> String {
    ledgix_core::model::now_rfc3339()[..10].to_string()
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn ledger(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> ApiResult {
    let entries = state
        .vault
        .ledger(&principal, query.limit.unwrap_or(100))
        .await?;
    Ok(json_response(StatusCode::OK, &json!({"entries": entries})))
}

async fn checkpoints(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> ApiResult {
    let checkpoints = state
        .vault
        .checkpoints(&principal, query.limit.unwrap_or(24))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"checkpoints": checkpoints}),
    ))
}

#[derive(Deserialize)]
struct RequestQuery {
    request_id: String,
}

async fn inclusion_proof(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<RequestQuery>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state
            .vault
            .inclusion_proof(&principal, &query.request_id)
            .await?,
    ))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: i64,
    to: i64,
}

async fn consistency_proof(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ConsistencyQuery>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state
            .vault
            .consistency_proof(&principal, query.from, query.to)
            .await?,
    ))
}

async fn proof_bundle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<RequestQuery>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state
            .vault
            .proof_bundle(&principal, &query.request_id)
            .await?,
    ))
}

#[derive(Deserialize)]
struct CreateTenantBody {
    name: String,
}

async fn create_tenant(
    State(state): State<AppState>,
    body: JsonBody<CreateTenantBody>,
) -> ApiResult {
    check_replay(&state.vault, ADMIN_SCOPE, &body.idempotency).await?;
    let created = state
        .vault
        .create_tenant(
            &body.value.name,
            idem(&body.idempotency, StatusCode::CREATED).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

#[derive(Deserialize)]
struct CreateKeyBody {}

async fn create_api_key(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    body: JsonBody<CreateKeyBody>,
) -> ApiResult {
    check_replay(&state.vault, ADMIN_SCOPE, &body.idempotency).await?;
    let created = state
        .vault
        .create_api_key(
            &tenant_id,
            None,
            idem(&body.idempotency, StatusCode::CREATED).as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn revoke_api_key(
    State(state): State<AppState>,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult {
    state.vault.revoke_api_key(&key_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
