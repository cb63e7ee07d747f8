//! How administration routes (`/admin/*`) are admitted: VAULT_ADMIN_AUTH.
//!
//! * `header` — the operator's key in `X-Admin-API-Key` (or `Authorization: Bearer`), compared by hash.
//! * `iam` — only requests API Gateway authorised with IAM (SigV4; the route's `authorization_type` is
//!   `AWS_IAM`, so only principals granted `execute-api:Invoke` reach it). The clearance-api function turns
//!   the Lambda request context's IAM authorizer into an [`IamCaller`] extension before the router; nothing a
//!   client sends can create one. Outside Lambda (`ledgix dev`) no request carries one, so every admin request
//!   is refused. The admin key is not consulted.
//! * `off` — administration routes are not served (404), e.g. when tenants are managed only with the CLI.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ledgix_core::VaultError;
use ledgix_wiring::config::AdminAuth;

use crate::error::ApiError;
use crate::middleware::{presented_key, refuse};
use crate::state::AppState;

/// An administration request API Gateway authorised with IAM: the caller's ARN as API Gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    pub arn: String,
}

/// Administration routes: admitted by the mode of VAULT_ADMIN_AUTH.
pub async fn admin_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.admin_auth {
        AdminAuth::Off => refuse(request, ApiError::RouteNotFound).await,
        AdminAuth::Iam => match request.extensions().get::<IamCaller>() {
            Some(caller) => {
                // An ARN names a principal; it is not a credential.
                tracing::info!(caller = %caller.arn, "administration request by an IAM principal");
                next.run(request).await
            }
            None => {
                let refused = ApiError::Vault(VaultError::Forbidden(
                    "administration routes take only IAM-authorised (SigV4) calls through API Gateway here"
                        .into(),
                ));
                refuse(request, refused).await
            }
        },
        AdminAuth::Header => {
            let Some(key) = presented_key(request.headers(), "x-admin-api-key") else {
                return refuse(request, ApiError::Vault(VaultError::Unauthorized)).await;
            };
            if let Err(e) = state.vault.authenticate_admin(key) {
                return refuse(request, ApiError::Vault(e)).await;
            }
            next.run(request).await
        }
    }
}
