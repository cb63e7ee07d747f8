//! Anchors to S3: `<prefix>/<tenant>/<key>` in the anchor bucket (or a per-tenant bucket from
//! VAULT_LEDGER_ANCHOR_BUCKET_TEMPLATE). At start the bucket must have versioning (when
//! VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING) and object lock (when VAULT_LEDGER_REQUIRE_OBJECT_LOCK); each put
//! records the object version id.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use ledgix_core::ports::{AnchorError, AnchorSink, Exported};

/// An S3 client on the shared SDK configuration, optionally in another region. Custom endpoints (the emulator,
/// VPC endpoints by URL) need path-style addressing.
pub fn client(sdk: &aws_config::SdkConfig, region: Option<&str>) -> Client {
    let mut s3 = aws_sdk_s3::config::Builder::from(sdk);
    if let Some(region) = region {
        s3 = s3.region(aws_sdk_s3::config::Region::new(region.to_string()));
    }
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        s3 = s3.force_path_style(true);
    }
    Client::from_conf(s3.build())
}

pub struct S3Anchor {
    client: Client,
    bucket: String,
    bucket_template: Option<String>,
    prefix: String,
}

#[derive(Debug, Clone, Copy)]
pub struct BucketRequirements {
    pub versioning: bool,
    pub object_lock: bool,
}

impl S3Anchor {
    pub fn new(
        client: Client,
        bucket: &str,
        bucket_template: Option<String>,
        prefix: &str,
    ) -> Self {
        S3Anchor {
            client,
            bucket: bucket.to_string(),
            bucket_template,
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    pub fn bucket_for(&self, tenant_id: &str) -> String {
        match &self.bucket_template {
            Some(template) => template
                .replace("{client_id}", tenant_id)
                .replace("{tenant_id}", tenant_id),
            None => self.bucket.clone(),
        }
    }

    /// Refuse to run against a bucket that cannot keep history.
    pub async fn check(
        &self,
        bucket: &str,
        requirements: BucketRequirements,
    ) -> Result<(), AnchorError> {
        if requirements.versioning {
            let out = self
                .client
                .get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| {
                    AnchorError::Misconfigured(format!(
                        "cannot read versioning of bucket {bucket}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                })?;
            if out.status().map(|s| s.as_str()) != Some("Enabled") {
                return Err(AnchorError::Misconfigured(format!(
                    "anchor bucket {bucket} does not have versioning enabled (VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING)"
                )));
            }
        }
        if requirements.object_lock {
            let out = self.client.get_object_lock_configuration().bucket(bucket).send().await.map_err(|e| {
                AnchorError::Misconfigured(format!("anchor bucket {bucket} has no object lock (VAULT_LEDGER_REQUIRE_OBJECT_LOCK): {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
            })?;
            let enabled = out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .map(|s| s.as_str() == "Enabled")
                .unwrap_or(false);
            if !enabled {
                return Err(AnchorError::Misconfigured(format!(
                    "anchor bucket {bucket} does not have object lock enabled (VAULT_LEDGER_REQUIRE_OBJECT_LOCK)"
                )));
            }
        }
        Ok(())
    }

    fn object_key(&self, tenant_id: &str, key: &str) -> String {
        if self.prefix.is_empty() {
            format!("{tenant_id}/{key}")
        } else {
            format!("{}/{tenant_id}/{key}", self.prefix)
        }
    }
}

#[async_trait]
impl AnchorSink for S3Anchor {
    fn target(&self) -> &str {
        "s3"
    }

    fn uri(&self, tenant_id: &str, key: &str) -> String {
        format!(
            "s3://{}/{}",
            self.bucket_for(tenant_id),
            self.object_key(tenant_id, key)
        )
    }

    async fn put(
        &self,
        tenant_id: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Exported, AnchorError> {
        let bucket = self.bucket_for(tenant_id);
        let object_key = self.object_key(tenant_id, key);
        let out = self
            .client
            .put_object()
            .bucket(&bucket)
            .key(&object_key)
            .content_type(content_type)
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                AnchorError::Unavailable(format!(
                    "s3://{bucket}/{object_key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(Exported {
            uri: self.uri(tenant_id, key),
            version_id: out.version_id().map(str::to_string),
        })
    }
}
