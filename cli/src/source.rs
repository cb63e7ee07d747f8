//! Where `ledgix verify` reads from: a local path, an http(s):// URL, or an s3://bucket/prefix location
//! (credentials, region and AWS_ENDPOINT_URL from the standard AWS chain).

use std::path::PathBuf;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

type HttpClient = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// One readable location. `read` answers `Ok(None)` when the object does not exist.
pub enum Source {
    Folder(PathBuf),
    Http {
        base: String,
        api_key: Option<String>,
        /// Built once: a log walk fetches thousands of tiles over one kept-alive connection.
        client: Box<HttpClient>,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        display: String,
    },
}

impl Source {
    pub async fn parse(location: &str, api_key: Option<&str>) -> Result<Self, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(Source::Http {
                base: location.to_string(),
                api_key: api_key.map(str::to_string),
                client: Box::new(http_client()?),
            });
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{location}: no bucket name"));
            }
            let sdk = ledgix_aws::bootstrap::sdk_config().await;
            return Ok(Source::S3 {
                client: ledgix_aws::s3::client(&sdk, None),
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                display: location.to_string(),
            });
        }
        Ok(Source::Folder(PathBuf::from(location)))
    }

    /// The location itself (a bundle or JWKS document).
    pub async fn read_whole(&self) -> Result<Vec<u8>, String> {
        self.read("")
            .await?
            .ok_or_else(|| format!("{} does not exist", self))
    }

    /// `relative` under the location (a log's `checkpoint`, `tile/...`, `checkpoints/N.json`).
    pub async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Folder(dir) => {
                let path = if relative.is_empty() {
                    dir.clone()
                } else {
                    dir.join(relative)
                };
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                }
            }
            Source::Http {
                base,
                api_key,
                client,
            } => {
                let url = join(base, relative);
                http_get(client, &url, api_key.as_deref()).await
            }
            Source::S3 {
                client,
                bucket,
                prefix,
                display,
            } => {
                let key = join(prefix, relative);
                match client.get_object().bucket(bucket).key(&key).send().await {
                    Ok(out) => out
                        .body
                        .collect()
                        .await
                        .map(|b| Some(b.into_bytes().to_vec()))
                        .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}")),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(format!(
                        "cannot read {display} ({key}): {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )),
                }
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Folder(dir) => write!(f, "{}", dir.display()),
            Source::Http { base, .. } => write!(f, "{base}"),
            Source::S3 { display, .. } => write!(f, "{display}"),
        }
    }
}

fn join(base: &str, relative: &str) -> String {
    match (base.trim_end_matches('/'), relative) {
        (base, "") => base.to_string(),
        ("", relative) => relative.to_string(),
        (base, relative) => format!("{base}/{relative}"),
    }
}

/// http or https (rustls, the system's trust roots, read once).
fn http_client() -> Result<HttpClient, String> {
    // The AWS SDK also links aws-lc-rs, so rustls cannot pick a provider by itself: name ring.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("cannot load the system's trust roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// GET; 404 is "does not exist".
async fn http_get(
    client: &HttpClient,
    url: &str,
    api_key: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    let mut request = http::Request::get(url);
    if let Some(key) = api_key {
        request = request.header("x-vault-api-key", key);
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?
        .to_bytes();
    if status == http::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(Some(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn joins_locations_and_relative_paths() {
        assert_eq!(
            join("s3-prefix/t1/", "checkpoint"),
            "s3-prefix/t1/checkpoint"
        );
        assert_eq!(join("", "tile/0/000"), "tile/0/000");
        assert_eq!(join("https://x/y", ""), "https://x/y");
    }
}
