//! clearance-api's HTTP application: the shared router behind the one thing only this Lambda adapter knows,
//! API Gateway's request context. A request API Gateway authorised with IAM (the `/admin/{proxy+}` route's
//! `AWS_IAM` authorization, infra/terraform module api) carries `requestContext.authorizer.iam`; it becomes a
//! `ledgix_api::admin::IamCaller` extension, which VAULT_ADMIN_AUTH=iam admits. Nothing a client sends
//! (headers, body, path) can produce one: lambda_http builds the context from the event API Gateway wrote.

use axum::extract::Request;
use lambda_http::request::RequestContext;
use ledgix_api::admin::IamCaller;
use ledgix_api::{router, AppState};

/// The IAM principal API Gateway authorised this request as, from the request context lambda_http attached.
pub fn iam_caller(extensions: &axum::http::Extensions) -> Option<IamCaller> {
    #[allow(unreachable_patterns)] // one variant with only the `apigw_http` feature
    let context = match extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context,
        _ => return None,
    };
    let iam = context.authorizer.as_ref()?.iam.as_ref()?;
    let arn = iam
        .user_arn
        .clone()
        .or_else(|| iam.caller_id.clone())
        .filter(|arn| !arn.is_empty())?;
    Some(IamCaller { arn })
}

async fn mark_iam_caller(mut request: Request) -> Request {
    if let Some(caller) = iam_caller(request.extensions()) {
        request.extensions_mut().insert(caller);
    }
    request
}

/// The router as the function serves it: every request first gets its IAM caller, if API Gateway named one.
pub fn app(state: AppState) -> axum::Router {
    let (app, _) = router(state);
    app.layer(axum::middleware::map_request(mark_iam_caller))
}
