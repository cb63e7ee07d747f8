//! Routes and their handlers. Each handler: parse, call one `Vault` method, map the result. Every tenant route
//! states the key roles it accepts; a key with none of them gets 403 `forbidden_role` before the handler runs.

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Extension, Json, Router};
use ledgix_core::model::ClearanceRequest;
use ledgix_core::notify::settings::NotificationSettingsUpdate;
use ledgix_core::policy::PolicyRegistration;
use ledgix_core::roles::Role::{self, Agent, Auditor, Consumer, Reviewer, TenantAdmin};
use ledgix_core::service::{
    ApiKeyRequest, ConsumeRequest, MintRequest, Principal, ReviewDecisionRequest,
    ReviewSettingsUpdate,
};
use ledgix_core::VaultError;
use serde::Deserialize;
use serde_json::json;

use crate::admin::admin_auth;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, JsonBody};
use crate::middleware::{request_context, require_roles, tenant_auth};
use crate::review_page;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// The operator's administration key.
    Admin,
    /// A tenant API key holding one of these roles.
    Tenant(&'static [Role]),
}

/// Every (method, path) the router serves and who may call it; the OpenAPI test compares it with
/// docs/openapi.yaml.
#[derive(Debug, Default, Clone)]
pub struct RouteTable(pub Vec<(Method, &'static str, Access)>);

/// Ledger reads: auditors, and the roles whose tools verify the ledger (the SDK verifies with the agent's key).
const LEDGER_READERS: &[Role] = &[Auditor, Agent, Reviewer, TenantAdmin];

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

    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let route = match access {
            Access::Tenant(roles) => on(filter, handler)
                .route_layer(axum::middleware::from_fn_with_state(roles, require_roles)),
            Access::Public | Access::Admin => on(filter, handler),
        };
        self.router = self.router.route(path, route);
        self.table.0.push((method, path, access));
        self
    }

    fn tenant<H, T>(
        self,
        method: Method,
        path: &'static str,
        roles: &'static [Role],
        handler: H,
    ) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        self.add(method, path, Access::Tenant(roles), handler)
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
    use Method as M;
    let public = Routes::new()
        .add(M::GET, "/healthz", Access::Public, healthz)
        // Slack signs it with the tenant's Slack app signing secret; the use case checks that, not a key.
        .add(
            M::POST,
            "/slack/interactions",
            Access::Public,
            slack_interactions,
        )
        .add(M::GET, "/.well-known/jwks.json", Access::Public, jwks)
        // The reviewer web page: static, holds no data; its calls carry the reviewer's own key.
        .add(M::GET, "/review", Access::Public, review_page::index)
        .add(
            M::GET,
            "/review/review.js",
            Access::Public,
            review_page::script,
        )
        .add(
            M::GET,
            "/review/review.css",
            Access::Public,
            review_page::style,
        );
    let tenant = Routes::new()
        .tenant(M::POST, "/register-policy", &[TenantAdmin], register_policy)
        .tenant(M::GET, "/policies", &[TenantAdmin], list_policies)
        .tenant(M::POST, "/request-clearance", &[Agent], request_clearance)
        // An agent sees only the requests it made (checked by the use case).
        .tenant(
            M::GET,
            "/clearance-status/{request_id}",
            &[Agent, Reviewer, TenantAdmin, Auditor],
            clearance_status,
        )
        .tenant(M::POST, "/mint-token", &[Agent], mint_token)
        .tenant(
            M::GET,
            "/review-settings",
            &[TenantAdmin, Reviewer],
            get_review_settings,
        )
        .tenant(
            M::PUT,
            "/review-settings",
            &[TenantAdmin],
            put_review_settings,
        )
        .tenant(
            M::GET,
            "/notification-settings",
            &[TenantAdmin],
            get_notification_settings,
        )
        .tenant(
            M::PUT,
            "/notification-settings",
            &[TenantAdmin],
            put_notification_settings,
        )
        .tenant(
            M::GET,
            "/notification-deliveries",
            &[TenantAdmin],
            notification_deliveries,
        )
        .tenant(M::GET, "/reviews", &[Reviewer], list_reviews)
        // A reviewer decides; the requesting agent may only withdraw its own request (checked by the use case).
        .tenant(
            M::POST,
            "/reviews/{request_id}/decision",
            &[Reviewer, Agent],
            review_decision,
        )
        .tenant(M::POST, "/consume-token", &[Consumer], consume_token)
        .tenant(M::GET, "/usage", &[TenantAdmin], usage)
        .tenant(M::POST, "/api-keys", &[TenantAdmin], create_tenant_key)
        .tenant(M::GET, "/api-keys", &[TenantAdmin], list_tenant_keys)
        .tenant(
            M::DELETE,
            "/api-keys/{key_id}",
            &[TenantAdmin],
            revoke_tenant_key,
        )
        .tenant(M::GET, "/ledger", LEDGER_READERS, ledger)
        .tenant(M::GET, "/ledger/checkpoints", LEDGER_READERS, checkpoints)
        .tenant(M::GET, "/ledger/status", LEDGER_READERS, ledger_status)
        .tenant(
            M::GET,
            "/ledger/proof/inclusion",
            LEDGER_READERS,
            inclusion_proof,
        )
        .tenant(
            M::GET,
            "/ledger/proof/consistency",
            LEDGER_READERS,
            consistency_proof,
        )
        .tenant(M::GET, "/ledger/proof/bundle", LEDGER_READERS, proof_bundle);
    let admin = Routes::new()
        .add(M::POST, "/admin/tenants", Access::Admin, create_tenant)
        .add(
            M::POST,
            "/admin/tenants/{tenant_id}/api-keys",
            Access::Admin,
            create_api_key,
        )
        .add(
            M::DELETE,
            "/admin/api-keys/{key_id}",
            Access::Admin,
            revoke_api_key,
        );

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
        // CORS preflight of a page on VAULT_CORS_ALLOWED_ORIGIN, answered before any route or key is involved.
        .layer(from_fn_with_state(
            state.clone(),
            crate::middleware::cors_preflight,
        ))
        // Before any key is hashed or looked up; inside request_context, so a 429 carries X-Request-ID.
        .layer(from_fn_with_state(
            state.clone(),
            crate::client_limit::client_limit,
        ))
        .layer(from_fn_with_state(state.clone(), request_context))
        .with_state(state);
    (router, table)
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
    let (created, view) = state
        .vault
        .register_policy(&principal, body.value, body.idempotency.as_ref())
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

#[derive(Deserialize)]
struct PolicyListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_policies(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<PolicyListQuery>,
) -> ApiResult {
    let page = state
        .vault
        .list_policies(&principal, query.limit, query.cursor.as_deref())
        .await?;
    Ok(json_response(StatusCode::OK, &page))
}

async fn request_clearance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ClearanceRequest>,
) -> ApiResult {
    let view = state
        .vault
        .request_clearance(&principal, body.value, body.idempotency.as_ref())
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
    let view = state
        .vault
        .mint_token(&principal, body.value, body.idempotency.as_ref())
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

async fn put_review_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ReviewSettingsUpdate>,
) -> ApiResult {
    let saved = state
        .vault
        .put_review_settings(&principal, body.value, body.idempotency.as_ref())
        .await?;
    Ok(json_response(StatusCode::OK, &saved))
}

async fn get_notification_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        &state.vault.notification_settings(&principal).await?,
    ))
}

async fn put_notification_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<NotificationSettingsUpdate>,
) -> ApiResult {
    let saved = state
        .vault
        .put_notification_settings(&principal, body.value, body.idempotency.as_ref())
        .await?;
    Ok(json_response(StatusCode::OK, &saved))
}

async fn notification_deliveries(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<LimitQuery>,
) -> ApiResult {
    let deliveries = state
        .vault
        .notification_deliveries(&principal, query.limit.unwrap_or(50))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"deliveries": deliveries}),
    ))
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
        .pending_reviews(&principal, query.limit.unwrap_or(100))
        .await?;
    Ok(json_response(StatusCode::OK, &json!({"reviews": reviews})))
}

async fn review_decision(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(request_id): ApiPath<String>,
    body: JsonBody<ReviewDecisionRequest>,
) -> ApiResult {
    let view = state
        .vault
        .review_decision(
            &principal,
            &request_id,
            body.value,
            body.idempotency.as_ref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn consume_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ConsumeRequest>,
) -> ApiResult {
    let view = state
        .vault
        .consume_token(&principal, body.value, body.idempotency.as_ref())
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

async fn ledger_status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let status = state.vault.ledger_status(&principal).await?;
    Ok(json_response(StatusCode::OK, &status))
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
    let created = state
        .vault
        .create_tenant(&body.value.name, body.idempotency.as_ref())
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn create_api_key(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    body: JsonBody<ApiKeyRequest>,
) -> ApiResult {
    let created = state
        .vault
        .create_api_key(&tenant_id, None, &body.value, body.idempotency.as_ref())
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn create_tenant_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: JsonBody<ApiKeyRequest>,
) -> ApiResult {
    let created = state
        .vault
        .create_tenant_key(&principal, &body.value, body.idempotency.as_ref())
        .await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn list_tenant_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let keys = state.vault.tenant_keys(&principal).await?;
    Ok(json_response(StatusCode::OK, &json!({"api_keys": keys})))
}

async fn revoke_tenant_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult {
    state.vault.revoke_tenant_key(&principal, &key_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_api_key(
    State(state): State<AppState>,
    ApiPath(key_id): ApiPath<String>,
) -> ApiResult {
    state.vault.revoke_api_key(&key_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A click on a Slack message's Approve or Deny button (docs/notifications.md, "Slack").
async fn slack_interactions(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> ApiResult {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let answer = state
        .vault
        .slack_interaction(
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
            &body,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &answer))
}
