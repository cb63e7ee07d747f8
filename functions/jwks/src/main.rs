//! jwks Lambda: serves `GET /.well-known/jwks.json` from the signer's public keys (KMS GetPublicKey, read
//! once per cold start). Needs no state store.

use lambda_http::{service_fn, Body, Error, Request, Response};
use ledgix_wiring::{jwks_document, load_config, signer_from_config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let config = load_config(false).await?;
    let signer = signer_from_config(&config).await?;
    // The document only changes with a key rotation, which redeploys: render it once per cold start.
    let document = jwks_document(signer.as_ref()).await?;
    lambda_http::run(service_fn(move |_request: Request| {
        let body = document.clone();
        async move {
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("cache-control", "public, max-age=300")
                .body(Body::from(body))
                .map_err(Error::from)
        }
    }))
    .await
}
