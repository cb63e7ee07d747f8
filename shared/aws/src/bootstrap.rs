//! Configuration and wiring of the AWS backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use ledgix_core::config::{DEFAULT_ANCHOR_PREFIX, DEFAULT_KEY_ID};
use ledgix_core::ports::{
    AnchorSink, ControlPlane, JudgeQueue, RateLimiter, Signer, TenantStore, UsageMeter,
};

use crate::control::PgControlPlane;
use crate::dynamo::HotTable;
use crate::key_registry::DynamoKeyRegistry;
use crate::kms::{KmsDataKeys, KmsSigner};
use crate::notifications::DynamoNotificationStore;
use crate::notify_queue::SqsDeliveryQueue;
use crate::pg::{self, PgTls, TlsMode};
use crate::s3::{BucketRequirements, S3Anchor};
use crate::sqs::SqsJudgeQueue;
use crate::tenant_store::PgTenantStore;
use crate::tenants::TenantDirectory;
use ledgix_core::at_rest::{Codec, Envelope, PayloadCipher};
use ledgix_core::key_registry::{Delegation, RegistrySigner};
use ledgix_core::keys::KeySchedule;
use ledgix_core::notify::NotificationStore;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AwsConfigError(pub String);

/// Every variable the AWS backend reads (seed names and defaults).
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub database_url: String,
    pub control_plane_max_conns: usize,
    pub tenant_max_conns: usize,
    pub tenant_sslmode: TlsMode,
    pub control_plane_sslmode: TlsMode,
    /// VAULT_DB_CA_BUNDLE: PEM file of the CAs `verify-full` trusts (on AWS the RDS global bundle) instead of
    /// the web PKI roots, for the control plane, tenant provisioning and the tenant pools.
    pub db_ca_bundle: Option<std::path::PathBuf>,
    pub tenant_secret_prefix: String,
    pub tenant_secret_cache_ttl: Duration,
    pub dynamodb_table: String,
    pub rate_limit_ttl_seconds: i64,
    pub sqs_queue_url: Option<String>,
    pub sqs_group_shards: u32,
    pub sqs_wait_time_seconds: i32,
    pub sqs_visibility_timeout_seconds: i32,
    /// VAULT_NOTIFY_SQS_QUEUE_URL: the notifier's standard queue; `None` leaves the caller to deliver through an
    /// in-process queue.
    pub notify_queue_url: Option<String>,
    pub kms_key_id: Option<String>,
    pub key_id: String,
    pub anchor_bucket: Option<String>,
    pub anchor_bucket_template: Option<String>,
    pub anchor_prefix: String,
    pub anchor_region: Option<String>,
    pub require_versioning: bool,
    pub require_object_lock: bool,
    /// VAULT_TRANSPORT_KEY_BASE64: static AES-256-GCM key for payloads at rest.
    pub transport_key_base64: Option<String>,
    /// VAULT_ENVELOPE_KMS_KEY_ID: KMS key that wraps the data keys of payloads at rest (takes precedence).
    pub envelope_kms_key_id: Option<String>,
    /// VAULT_SIGNER_BACKEND=aws_kms_delegated: the delegated keys' calendar (VAULT_SIGNING_KEY_*_SECONDS);
    /// `None` signs everything with the KMS root key.
    pub key_delegation: Option<KeySchedule>,
}

impl AwsSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AwsConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| {
            get(name)
                .ok_or_else(|| AwsConfigError(format!("{name} is required for the AWS backend")))
        };
        let number = |name: &str, default: i64| -> Result<i64, AwsConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| AwsConfigError(format!("{name}={v:?} is not a number")))
            })
        };
        let flag = |name: &str, default: bool| -> Result<bool, AwsConfigError> {
            match get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
                None => Ok(default),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(v) => Err(AwsConfigError(format!(
                    "{name}={v:?} must be true or false"
                ))),
            }
        };
        let sslmode = |name: &str, default: &str| {
            TlsMode::parse(&get(name).unwrap_or_else(|| default.to_string()))
                .map_err(|e| AwsConfigError(format!("{name}: {e}")))
        };
        let database_url = required("DATABASE_URL")?;
        let control_plane_default = if database_url.contains("sslmode=disable") {
            "disable"
        } else {
            "require"
        };
        let control_plane_sslmode =
            sslmode("VAULT_CONTROL_PLANE_DB_SSLMODE", control_plane_default)?;
        let tenant_sslmode = sslmode("VAULT_TENANT_DB_SSLMODE", "require")?;
        let db_ca_bundle = get("VAULT_DB_CA_BUNDLE").map(std::path::PathBuf::from);
        if db_ca_bundle.is_some()
            && control_plane_sslmode != TlsMode::VerifyFull
            && tenant_sslmode != TlsMode::VerifyFull
        {
            return Err(AwsConfigError(
                "VAULT_DB_CA_BUNDLE is set but neither VAULT_CONTROL_PLANE_DB_SSLMODE nor VAULT_TENANT_DB_SSLMODE is verify-full, so no certificate would be checked against it".into(),
            ));
        }
        let key_delegation = match get("VAULT_SIGNER_BACKEND").as_deref() {
            Some("aws_kms_delegated") => {
                let schedule = KeySchedule {
                    period_seconds: number("VAULT_SIGNING_KEY_PERIOD_SECONDS", 3600)?,
                    publish_ahead_seconds: number("VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS", 600)?,
                    overlap_seconds: number("VAULT_SIGNING_KEY_OVERLAP_SECONDS", 60)?,
                };
                schedule.check().map_err(AwsConfigError)?;
                if get("VAULT_ENVELOPE_KMS_KEY_ID").is_none() {
                    return Err(AwsConfigError(
                        "VAULT_SIGNER_BACKEND=aws_kms_delegated seals its keys under VAULT_ENVELOPE_KMS_KEY_ID, which is not set".into(),
                    ));
                }
                Some(schedule)
            }
            _ => None,
        };
        Ok(AwsSettings {
            control_plane_sslmode,
            db_ca_bundle,
            database_url,
            control_plane_max_conns: number("VAULT_CONTROL_PLANE_DB_MAX_OPEN_CONNS", 50)? as usize,
            tenant_max_conns: number("VAULT_TENANT_DB_MAX_OPEN_CONNS", 25)? as usize,
            tenant_sslmode,
            tenant_secret_prefix: required("TENANT_SECRET_PREFIX")?,
            tenant_secret_cache_ttl: Duration::from_secs(number(
                "VAULT_TENANT_SECRET_CACHE_TTL_SECONDS",
                300,
            )? as u64),
            dynamodb_table: get("VAULT_DYNAMODB_TABLE").unwrap_or_else(|| "ledgix-hot".into()),
            rate_limit_ttl_seconds: number("VAULT_RATE_LIMIT_TTL_SECONDS", 180)?,
            sqs_queue_url: get("VAULT_CLEARANCE_SQS_QUEUE_URL"),
            sqs_group_shards: number("VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS", 32)? as u32,
            sqs_wait_time_seconds: number("VAULT_CLEARANCE_SQS_WAIT_TIME_SECONDS", 20)? as i32,
            sqs_visibility_timeout_seconds: number(
                "VAULT_CLEARANCE_SQS_VISIBILITY_TIMEOUT_SECONDS",
                60,
            )? as i32,
            notify_queue_url: get("VAULT_NOTIFY_SQS_QUEUE_URL"),
            kms_key_id: get("VAULT_KMS_KEY_ID"),
            key_id: get("VAULT_KEY_ID").unwrap_or_else(|| DEFAULT_KEY_ID.into()),
            anchor_bucket: get("VAULT_LEDGER_ANCHOR_BUCKET"),
            anchor_bucket_template: get("VAULT_LEDGER_ANCHOR_BUCKET_TEMPLATE"),
            anchor_prefix: get("VAULT_LEDGER_ANCHOR_PREFIX")
                .unwrap_or_else(|| DEFAULT_ANCHOR_PREFIX.into()),
            anchor_region: get("VAULT_LEDGER_ANCHOR_REGION"),
            require_versioning: flag("VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING", true)?,
            require_object_lock: flag("VAULT_LEDGER_REQUIRE_OBJECT_LOCK", false)?,
            transport_key_base64: get("VAULT_TRANSPORT_KEY_BASE64"),
            envelope_kms_key_id: get("VAULT_ENVELOPE_KMS_KEY_ID"),
            key_delegation,
        })
    }
}

/// Payload encryption at rest: KMS envelope encryption when VAULT_ENVELOPE_KMS_KEY_ID is set, else the
/// static VAULT_TRANSPORT_KEY_BASE64 key, else plaintext. The static key stays usable for reading older rows.
fn payload_cipher(
    settings: &AwsSettings,
    sdk: &aws_config::SdkConfig,
) -> Result<PayloadCipher, AwsConfigError> {
    cipher_from(
        settings.transport_key_base64.as_deref(),
        settings.envelope_kms_key_id.as_deref(),
        sdk,
    )
}

fn cipher_from(
    transport_key_base64: Option<&str>,
    envelope_kms_key_id: Option<&str>,
    sdk: &aws_config::SdkConfig,
) -> Result<PayloadCipher, AwsConfigError> {
    let codec = match transport_key_base64 {
        Some(key) => Codec::from_base64_key(key).map_err(AwsConfigError)?,
        None => Codec::plaintext(),
    };
    let envelope = envelope_kms_key_id.map(|key_id| {
        Envelope::new(Arc::new(KmsDataKeys::new(
            aws_sdk_kms::Client::new(sdk),
            key_id,
        )))
    });
    Ok(PayloadCipher::new(codec, envelope))
}

pub use aws_config::SdkConfig;

/// What the notifier function reaches, and nothing more: the notification settings and delivery log in the
/// hot table (sealed under the envelope key) and the notify queue. It runs outside the VPC, so it never
/// connects to PostgreSQL. Reads VAULT_DYNAMODB_TABLE, VAULT_NOTIFY_SQS_QUEUE_URL (required),
/// VAULT_ENVELOPE_KMS_KEY_ID and VAULT_TRANSPORT_KEY_BASE64.
pub struct NotifierBackend {
    pub notifications: Arc<dyn ledgix_core::notify::NotificationStore>,
    pub queue: Arc<SqsDeliveryQueue>,
    /// The SDK configuration the clients were built from (the email sender's too).
    pub sdk: aws_config::SdkConfig,
}

impl NotifierBackend {
    pub async fn connect(get: impl Fn(&str) -> Option<String>) -> Result<Self, AwsConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let queue_url = get("VAULT_NOTIFY_SQS_QUEUE_URL")
            .ok_or_else(|| AwsConfigError("VAULT_NOTIFY_SQS_QUEUE_URL is required".into()))?;
        let table = get("VAULT_DYNAMODB_TABLE").unwrap_or_else(|| "ledgix-hot".into());
        let sdk = sdk_config().await;
        let cipher = cipher_from(
            get("VAULT_TRANSPORT_KEY_BASE64").as_deref(),
            get("VAULT_ENVELOPE_KMS_KEY_ID").as_deref(),
            &sdk,
        )?;
        Ok(NotifierBackend {
            notifications: Arc::new(DynamoNotificationStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &table,
                cipher,
            )),
            queue: Arc::new(SqsDeliveryQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                &queue_url,
            )),
            sdk,
        })
    }
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    // Region, credentials and AWS_ENDPOINT_URL come from the standard chain.
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// AWS_SECRET_NAME: the bootstrap secret's JSON object, to be merged over the environment at start.
pub async fn bootstrap_environment() -> Result<HashMap<String, String>, AwsConfigError> {
    let Some(name) = std::env::var("AWS_SECRET_NAME")
        .ok()
        .filter(|n| !n.is_empty())
    else {
        return Ok(HashMap::new());
    };
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let out = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .map_err(|e| {
            AwsConfigError(format!(
                "AWS_SECRET_NAME={name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ))
        })?;
    let text = out
        .secret_string()
        .ok_or_else(|| AwsConfigError(format!("AWS_SECRET_NAME={name} has no string value")))?;
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|_| AwsConfigError(format!("AWS_SECRET_NAME={name} is not a JSON object")))?;
    Ok(object
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect())
}

/// The vault's signer on AWS: the KMS root key `kms_key_id` (kid `kid`) over the key registry in the hot
/// table `table`, issuing and opening delegated keys when `delegation` (the calendar and the envelope KMS key
/// that seals them) is given. The JWKS function passes none: it only publishes.
pub async fn registry_signer(
    sdk: &aws_config::SdkConfig,
    kms_key_id: &str,
    kid: &str,
    table: &str,
    delegation: Option<(KeySchedule, &str)>,
) -> Result<RegistrySigner, AwsConfigError> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let root = KmsSigner::connect(kms.clone(), kms_key_id, kid)
        .await
        .map_err(|e| AwsConfigError(e.to_string()))?;
    let registry = DynamoKeyRegistry::new(aws_sdk_dynamodb::Client::new(sdk), table);
    let delegation = delegation.map(|(schedule, envelope)| {
        Delegation::new(schedule, Arc::new(KmsDataKeys::new(kms, envelope)))
    });
    Ok(RegistrySigner::new(
        Arc::new(root),
        Arc::new(registry),
        delegation,
    ))
}

/// Every AWS adapter, built once.
pub struct AwsBackend {
    pub control: Arc<dyn ControlPlane>,
    pub store: Arc<dyn TenantStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub usage: Arc<dyn UsageMeter>,
    /// The KMS-rooted signer (`registry_signer`), when VAULT_KMS_KEY_ID is set.
    pub signer: Option<Arc<dyn Signer>>,
    pub queue: Option<Arc<SqsJudgeQueue>>,
    /// Notification settings and the delivery log, in the hot table (sealed with the payload cipher).
    pub notifications: Arc<dyn NotificationStore>,
    /// The notifier's queue, when VAULT_NOTIFY_SQS_QUEUE_URL is set.
    pub notify_queue: Option<Arc<SqsDeliveryQueue>>,
    pub anchor: Option<Arc<dyn AnchorSink>>,
    pub settings: AwsSettings,
    /// The SDK configuration the clients above were built from, for other clients of this process.
    pub sdk: aws_config::SdkConfig,
}

impl AwsBackend {
    pub async fn connect(settings: AwsSettings) -> Result<Self, AwsConfigError> {
        let sdk = sdk_config().await;
        let err = |what: &str| {
            let what = what.to_string();
            move |e: ledgix_core::error::StoreError| AwsConfigError(format!("{what}: {e}"))
        };
        let mut pg_config: tokio_postgres::Config = settings
            .database_url
            .parse()
            .map_err(|e| AwsConfigError(format!("DATABASE_URL: {e}")))?;
        pg_config.connect_timeout(Duration::from_secs(5));
        let tls = |mode: TlsMode| {
            PgTls::new(mode, settings.db_ca_bundle.as_deref())
                .map_err(|e| AwsConfigError(format!("VAULT_DB_CA_BUNDLE: {e}")))
        };
        let control_tls = tls(settings.control_plane_sslmode)?;
        let control_pool = pg::pool(
            pg_config.clone(),
            &control_tls,
            settings.control_plane_max_conns,
        )
        .map_err(err("control-plane pool"))?;
        // Tenant databases are provisioned over the control plane's connection settings, TLS included.
        let directory = Arc::new(TenantDirectory::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &settings.tenant_secret_prefix,
            settings.tenant_secret_cache_ttl,
            tls(settings.tenant_sslmode)?,
            settings.tenant_max_conns,
            pg_config,
            control_tls,
        ));
        let control = PgControlPlane::connect(control_pool, directory.clone())
            .await
            .map_err(err("control-plane database"))?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let hot = HotTable::new(
            dynamodb.clone(),
            &settings.dynamodb_table,
            settings.rate_limit_ttl_seconds,
        );
        let cipher = payload_cipher(&settings, &sdk)?;
        let notifications =
            DynamoNotificationStore::new(dynamodb, &settings.dynamodb_table, cipher.clone());
        let store = PgTenantStore::new(directory, hot.clone(), cipher);
        let signer: Option<Arc<dyn Signer>> = match &settings.kms_key_id {
            Some(kms_key) => {
                let delegation = settings
                    .key_delegation
                    .zip(settings.envelope_kms_key_id.as_deref());
                let signer = registry_signer(
                    &sdk,
                    kms_key,
                    &settings.key_id,
                    &settings.dynamodb_table,
                    delegation,
                )
                .await?;
                Some(Arc::new(signer))
            }
            None => None,
        };
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = settings.sqs_queue_url.as_ref().map(|url| {
            Arc::new(SqsJudgeQueue::new(
                sqs.clone(),
                url,
                settings.sqs_group_shards,
            ))
        });
        let notify_queue = settings
            .notify_queue_url
            .as_ref()
            .map(|url| Arc::new(SqsDeliveryQueue::new(sqs, url)));
        let anchor: Option<Arc<dyn AnchorSink>> =
            match (&settings.anchor_bucket, &settings.anchor_bucket_template) {
                (None, None) => None,
                (bucket, template) => {
                    let anchor = S3Anchor::new(
                        crate::s3::client(&sdk, settings.anchor_region.as_deref()),
                        bucket.as_deref().unwrap_or(""),
                        template.clone(),
                        &settings.anchor_prefix,
                    );
                    if let Some(bucket) = bucket {
                        let requirements = BucketRequirements {
                            versioning: settings.require_versioning,
                            object_lock: settings.require_object_lock,
                        };
                        anchor
                            .check(bucket, requirements)
                            .await
                            .map_err(|e| AwsConfigError(e.to_string()))?;
                    }
                    Some(Arc::new(anchor))
                }
            };
        Ok(AwsBackend {
            control: Arc::new(control),
            store: Arc::new(store),
            limiter: Arc::new(hot.clone()),
            usage: Arc::new(hot),
            signer,
            queue: queue.map(|q| q as Arc<SqsJudgeQueue>),
            notifications: Arc::new(notifications),
            notify_queue,
            anchor,
            settings,
            sdk,
        })
    }

    pub fn judge_queue(&self) -> Option<Arc<dyn JudgeQueue>> {
        self.queue.clone().map(|q| q as Arc<dyn JudgeQueue>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<AwsSettings, AwsConfigError> {
        let mut all = vec![
            ("DATABASE_URL", "postgresql://u:p@db.example:5432/control"),
            ("TENANT_SECRET_PREFIX", "ledgix/tenants"),
        ];
        all.extend_from_slice(vars);
        AwsSettings::from_lookup(|name| {
            all.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_ca_bundle_needs_a_verifying_sslmode() {
        let err = settings(&[("VAULT_DB_CA_BUNDLE", "/var/task/rds-ca-bundle.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("VAULT_DB_CA_BUNDLE"), "{err}");
        let s = settings(&[
            ("VAULT_DB_CA_BUNDLE", "/var/task/rds-ca-bundle.pem"),
            ("VAULT_CONTROL_PLANE_DB_SSLMODE", "verify-full"),
        ])
        .expect("valid");
        assert_eq!(s.control_plane_sslmode, TlsMode::VerifyFull);
        assert_eq!(s.tenant_sslmode, TlsMode::Require);
        assert_eq!(
            s.db_ca_bundle.as_deref(),
            Some(std::path::Path::new("/var/task/rds-ca-bundle.pem"))
        );
        let s = settings(&[]).expect("defaults");
        assert_eq!(s.db_ca_bundle, None);
        assert_eq!(s.control_plane_sslmode, TlsMode::Require);
    }

    #[test]
    fn the_notification_queue_is_optional() {
        assert_eq!(settings(&[]).expect("defaults").notify_queue_url, None);
        assert_eq!(
            settings(&[("VAULT_NOTIFY_SQS_QUEUE_URL", " ")])
                .expect("blank")
                .notify_queue_url,
            None
        );
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ledgix-notify";
        assert_eq!(
            settings(&[("VAULT_NOTIFY_SQS_QUEUE_URL", url)])
                .expect("set")
                .notify_queue_url
                .as_deref(),
            Some(url)
        );
    }
}
