//! jwks Lambda: serves `GET /.well-known/jwks.json`: the KMS root keys and the delegated keys of the key
//! registry (docs/ledger.md, "Signing keys"). The signer is built once per cold start; it re-lists the registry
//! at most every 30 s, so keys issued ahead of their period appear here well before they sign.

use std::sync::Arc;

use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use ledgix_wiring::{jwks_document, load_config, signer_from_config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let config = load_config(false).await?;
    let signer = signer_from_config(&config).await?;
    let token_ttl = config.jwt_ttl_seconds;
    let signer = Arc::clone(&signer);
    lambda_http::run(service_fn(move |request: Request| {
        let signer = Arc::clone(&signer);
        let request_id = request
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        async move {
            let response = match jwks_document(signer.as_ref(), token_ttl).await {
                Ok(body) => Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .header("cache-control", "public, max-age=300")
                    .body(Body::from(body)),
                Err(e) => {
                    tracing::error!("cannot list the signing keys: {e}");
                    Response::builder()
                        .status(503)
                        .header("content-type", "application/json")
                        .body(Body::from(format!(
                            r#"{{"error":{{"code":"unavailable","message":"signing keys are unavailable","request_id":"{}"}}}}"#,
                            request_id.replace(['"', '\\'], "")
                        )))
                }
            };
            response.map_err(Error::from)
        }
    }))
    .await
}
