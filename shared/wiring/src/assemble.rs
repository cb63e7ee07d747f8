//! Assembly: build every port's adapter once, at start (embedded or AWS), and hand them to the domain.

use std::sync::Arc;
use std::time::Duration;

use ledgix_aws::notify_queue::{self, SqsDeliveryQueue};
use ledgix_aws::sqs::{self, SqsJudgeQueue};
use ledgix_aws::{AwsBackend, AwsSettings};
use ledgix_core::notify::address::UrlPolicy;
use ledgix_core::notify::{
    DeliveryQueue, EmailPolicy, EmailSender, NotificationStore, Notifier, NotifyPorts,
};
use ledgix_core::ports::{AnchorSink, JudgeModel, JudgeQueue, Signer};
use ledgix_core::service::VaultPorts;
use ledgix_core::Vault;
use ledgix_embedded::queue::JudgeReceiver;
use ledgix_embedded::{
    spawn_judge_workers, spawn_notifier_workers, Codec, DeliveryReceiver, EmbeddedDeliveryQueue,
    EmbeddedQueue, FolderAnchor, LocalSigner, MemoryRateLimiter, SqliteStore,
};

use crate::config::{Backend, Config, ConfigError, NotifyConfig, Overlay, SignerBackend};

/// The vault assembled on one backend, and what a long-lived process runs beside it (the anchor timer and the
/// judge workers: in process, or an SQS long-poller).
pub struct WiredVault {
    pub vault: Arc<Vault>,
    /// Embedded state, when the backend is embedded.
    pub store: Option<Arc<SqliteStore>>,
    receiver: Option<JudgeReceiver>,
    sqs: Option<Arc<SqsJudgeQueue>>,
    workers: usize,
    anchor_interval: Duration,
    emf_metrics: bool,
    sqs_wait_seconds: i32,
    sqs_visibility_seconds: i32,
    /// What notifications need, for the notifier workers a long-lived process runs (`None`: this process
    /// does not notify).
    notify: Option<NotifyPorts>,
    /// The in-process delivery queue's receiving end (no SQS notify queue).
    delivery_receiver: Option<DeliveryReceiver>,
    notify_sqs: Option<Arc<SqsDeliveryQueue>>,
}

/// The webhook sender (one HTTPS client per process) under the address policy
/// (VAULT_ALLOW_PRIVATE_WEBHOOK_URLS), and the email sender: SMTP to the configured catcher, else SES on AWS
/// (`sdk`), else the log. Any sender address goes with the development transports unless identities are
/// configured; SES sends only as the configured identities (none configured: no email).
fn notify_ports(
    config: &NotifyConfig,
    sdk: Option<&aws_config::SdkConfig>,
    store: Arc<dyn NotificationStore>,
    queue: Arc<dyn DeliveryQueue>,
) -> Result<NotifyPorts, ConfigError> {
    let url_policy = UrlPolicy {
        allow_loopback: config.allow_loopback_webhooks,
    };
    let sender = ledgix_notify::HttpWebhookSender::new(url_policy).map_err(ConfigError)?;
    let identities = config.email_from_identities.clone();
    let (email, allowed_from): (Arc<dyn EmailSender>, _) = match (&config.email_smtp_url, sdk) {
        (Some(url), _) => (
            Arc::new(ledgix_notify::email::SmtpEmailSender::new(url).map_err(ConfigError)?),
            (!identities.is_empty()).then_some(identities),
        ),
        (None, Some(sdk)) => (
            Arc::new(ledgix_aws::email::SesEmailSender::new(sdk)),
            Some(identities),
        ),
        (None, None) => (
            Arc::new(ledgix_notify::email::LogEmailSender),
            (!identities.is_empty()).then_some(identities),
        ),
    };
    Ok(NotifyPorts {
        store,
        queue,
        sender: Arc::new(sender),
        url_policy,
        email,
        email_policy: EmailPolicy { allowed_from },
    })
}

/// Merge the AWS_SECRET_NAME bootstrap secret over the environment, then parse the configuration.
pub async fn load_config(dev_defaults: bool) -> Result<Config, ConfigError> {
    load_config_with(dev_defaults, Default::default()).await
}

/// As `load_config`, with `overrides` (command-line flags) winning over both.
pub async fn load_config_with(
    dev_defaults: bool,
    overrides: std::collections::HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let mut overlay = Overlay(
        ledgix_aws::bootstrap_environment()
            .await
            .map_err(|e| ConfigError(e.to_string()))?,
    );
    overlay.0.extend(overrides);
    let mut config = Config::from_lookup(|name| overlay.get(name), dev_defaults)?;
    config.overlay = overlay;
    Ok(config)
}

/// Wire the vault for `config.backend`.
pub async fn build(
    config: &Config,
    admin_key_hash: Option<String>,
) -> Result<WiredVault, ConfigError> {
    match config.backend {
        Backend::Embedded => {
            let judge = config.judge.build(None).await?;
            embedded(config, admin_key_hash, judge)
        }
        Backend::Aws => build_aws(config, admin_key_hash).await,
    }
}

fn folder_anchor(config: &Config) -> Arc<dyn AnchorSink> {
    Arc::new(FolderAnchor::new(
        config.data_dir.join("anchors"),
        &config.anchor_prefix,
    ))
}

/// The embedded vault, built without awaiting anything (offline administration, tests). A Bedrock judge
/// needs the AWS credential chain, which is async: use [`build`] for it.
pub fn build_embedded(
    config: &Config,
    admin_key_hash: Option<String>,
) -> Result<WiredVault, ConfigError> {
    embedded(config, admin_key_hash, config.judge.build_local()?)
}

fn embedded(
    config: &Config,
    admin_key_hash: Option<String>,
    judge: Option<Arc<dyn JudgeModel>>,
) -> Result<WiredVault, ConfigError> {
    if config.signer_backend.uses_kms() {
        return Err(ConfigError(
            "VAULT_SIGNER_BACKEND=aws_kms and aws_kms_delegated need the AWS backend (VAULT_BACKEND=aws)"
                .into(),
        ));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ConfigError(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    restrict_permissions(&config.data_dir);
    let signer = local_signer_from_config(config)?;
    let codec = match &config.transport_key_base64 {
        Some(key) => Codec::from_base64_key(key).map_err(ConfigError)?,
        None => Codec::plaintext(),
    };
    let store = Arc::new(
        SqliteStore::open_with(&config.data_dir.join("vault.db"), codec).map_err(|e| {
            ConfigError(format!(
                "cannot open the state database in {}: {e}",
                config.data_dir.display()
            ))
        })?,
    );
    let (queue, receiver) = EmbeddedQueue::new(config.async_queue_size);
    let (delivery_queue, delivery_receiver) = EmbeddedDeliveryQueue::new(config.async_queue_size);
    let notify = notify_ports(
        &config.notify,
        None,
        store.clone(),
        Arc::new(delivery_queue),
    )?;
    let ports = VaultPorts {
        control: store.clone(),
        store: store.clone(),
        limiter: Arc::new(MemoryRateLimiter::default()),
        signer: Arc::new(signer),
        queue: Arc::new(queue),
        judge,
        anchor: Some(folder_anchor(config)),
        usage: store.clone(),
        notify: Some(notify.clone()),
    };
    Ok(WiredVault {
        vault: Arc::new(Vault::new(config.vault_settings(admin_key_hash), ports)),
        store: Some(store),
        receiver: Some(receiver),
        sqs: None,
        workers: config.async_workers,
        anchor_interval: config.anchor_interval,
        emf_metrics: config.emf_metrics,
        sqs_wait_seconds: 20,
        sqs_visibility_seconds: 60,
        notify: Some(notify),
        delivery_receiver: Some(delivery_receiver),
        notify_sqs: None,
    })
}

async fn build_aws(
    config: &Config,
    admin_key_hash: Option<String>,
) -> Result<WiredVault, ConfigError> {
    let mut settings = AwsSettings::from_lookup(|name| config.overlay.get(name))
        .map_err(|e| ConfigError(e.to_string()))?;
    if !config.exports_anchors {
        // No bucket, no start-up bucket check, no S3 client: this process never exports.
        settings.anchor_bucket = None;
        settings.anchor_bucket_template = None;
    }
    let (wait, visibility) = (
        settings.sqs_wait_time_seconds,
        settings.sqs_visibility_timeout_seconds,
    );
    let aws = AwsBackend::connect(settings)
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let signer: Arc<dyn Signer> = match (&config.signer_backend, &aws.signer) {
        (SignerBackend::Local, _) => Arc::new(local_signer_from_config(config)?),
        (_, Some(kms)) => kms.clone(),
        (_, None) => {
            return Err(ConfigError(
                "VAULT_SIGNER_BACKEND=aws_kms and aws_kms_delegated need VAULT_KMS_KEY_ID".into(),
            ))
        }
    };
    // Without SQS (local runs) judge work stays in process.
    let (queue, receiver): (Arc<dyn JudgeQueue>, Option<JudgeReceiver>) = match aws.judge_queue() {
        Some(queue) => (queue, None),
        None => {
            let (queue, receiver) = EmbeddedQueue::new(config.async_queue_size);
            (Arc::new(queue), Some(receiver))
        }
    };
    // Without an SQS notify queue deliveries are attempted in process: in `ledgix dev`, never inside Lambda,
    // where nothing would drain that queue (the deployment then answers 503 to the notification routes).
    let in_lambda = config.overlay.get("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let (delivery_queue, delivery_receiver): (
        Option<Arc<dyn DeliveryQueue>>,
        Option<DeliveryReceiver>,
    ) = match &aws.notify_queue {
        Some(queue) => (Some(queue.clone()), None),
        None if in_lambda => (None, None),
        None => {
            let (queue, receiver) = EmbeddedDeliveryQueue::new(config.async_queue_size);
            (Some(Arc::new(queue)), Some(receiver))
        }
    };
    let notify = match delivery_queue {
        Some(queue) => Some(notify_ports(
            &config.notify,
            Some(&aws.sdk),
            aws.notifications.clone(),
            queue,
        )?),
        None => None,
    };
    let ports = VaultPorts {
        control: aws.control.clone(),
        store: aws.store.clone(),
        limiter: aws.limiter.clone(),
        signer,
        queue,
        judge: config.judge.build(Some(&aws.sdk)).await?,
        anchor: config
            .exports_anchors
            .then(|| aws.anchor.clone().unwrap_or_else(|| folder_anchor(config))),
        usage: aws.usage.clone(),
        notify: notify.clone(),
    };
    Ok(WiredVault {
        vault: Arc::new(Vault::new(config.vault_settings(admin_key_hash), ports)),
        store: None,
        receiver,
        sqs: aws.queue.clone(),
        workers: config.async_workers,
        anchor_interval: config.anchor_interval,
        emf_metrics: config.emf_metrics,
        sqs_wait_seconds: wait,
        sqs_visibility_seconds: visibility,
        notify,
        delivery_receiver,
        notify_sqs: aws.notify_queue.clone(),
    })
}

/// The configured signer on its own, to publish keys (the JWKS function): the local key ring, or the KMS root
/// over the key registry (VAULT_DYNAMODB_TABLE); it opens no delegated key.
pub async fn signer_from_config(config: &Config) -> Result<Arc<dyn Signer>, ConfigError> {
    match config.signer_backend {
        SignerBackend::Local => Ok(Arc::new(local_signer_from_config(config)?)),
        SignerBackend::AwsKms | SignerBackend::AwsKmsDelegated => {
            let kms_key = config
                .kms_key_id
                .as_deref()
                .ok_or_else(|| ConfigError("VAULT_KMS_KEY_ID is required".into()))?;
            let table = config
                .overlay
                .get("VAULT_DYNAMODB_TABLE")
                .unwrap_or_else(|| "ledgix-hot".into());
            let sdk = ledgix_aws::sdk_config().await;
            let signer = ledgix_aws::registry_signer(&sdk, kms_key, &config.key_id, &table, None)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
            Ok(Arc::new(signer))
        }
    }
}

pub fn local_signer_from_config(config: &Config) -> Result<LocalSigner, ConfigError> {
    let signer = if let Some(encoded) = &config.private_key_base64 {
        LocalSigner::from_base64(encoded, &config.key_id)
    } else if let Some(path) = &config.private_key_file {
        LocalSigner::from_pem_file(path, &config.key_id)
    } else if config.dev_mode {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ConfigError(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        LocalSigner::load_or_create(&config.data_dir, &config.key_id)
    } else {
        return Err(ConfigError(
            "VAULT_SIGNER_BACKEND=local needs VAULT_PRIVATE_KEY_FILE or VAULT_PRIVATE_KEY_BASE64"
                .into(),
        ));
    };
    signer.map_err(|e| ConfigError(e.to_string()))
}

#[cfg(unix)]
fn restrict_permissions(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(not(unix))]
fn restrict_permissions(_dir: &std::path::Path) {}

impl WiredVault {
    /// Run an anchor round every VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS in the background.
    pub fn start_anchor_timer(&self) {
        let (vault, interval, emf) = (self.vault.clone(), self.anchor_interval, self.emf_metrics);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(e) = crate::lambda::anchor_round(&vault, emf).await {
                    tracing::error!(error = %e, "anchor round failed");
                }
            }
        });
    }

    /// Start the judge workers: in-process workers (re-queueing what a previous run left in `processing`),
    /// or, with SQS, a long-polling consumer that handles batches exactly as the judge-worker Lambda does.
    pub async fn start_judge_workers(&mut self) -> Result<usize, ConfigError> {
        if let Some(sqs) = self.sqs.clone() {
            let (vault, wait, visibility) = (
                self.vault.clone(),
                self.sqs_wait_seconds,
                self.sqs_visibility_seconds,
            );
            tokio::spawn(sqs::poll(vault, sqs, wait, visibility));
            return Ok(0);
        }
        let Some(receiver) = self.receiver.take() else {
            return Ok(0);
        };
        spawn_judge_workers(self.vault.clone(), receiver, self.workers);
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let stranded = store
            .processing_jobs()
            .await
            .map_err(|e| ConfigError(e.to_string()))?;
        for job in &stranded {
            self.vault.requeue(job).await;
        }
        Ok(stranded.len())
    }
}

impl WiredVault {
    /// Start delivering notifications: a long-poller on the SQS notify queue (as the notifier function does),
    /// or in-process workers that first queue again what a previous run left undelivered. Returns how many
    /// deliveries were queued again.
    pub async fn start_notifier(&mut self) -> Result<usize, ConfigError> {
        let Some(notify) = self.notify.clone() else {
            return Ok(0);
        };
        let notifier = Arc::new(Notifier::new(notify.clone()));
        if let Some(queue) = self.notify_sqs.clone() {
            tokio::spawn(notify_queue::poll_notifications(
                notifier,
                queue,
                self.sqs_wait_seconds,
                self.sqs_visibility_seconds,
            ));
            return Ok(0);
        }
        let Some(receiver) = self.delivery_receiver.take() else {
            return Ok(0);
        };
        spawn_notifier_workers(notifier, receiver, self.workers.max(1));
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let unfinished = store
            .unfinished_deliveries(10_000)
            .await
            .map_err(|e| ConfigError(e.to_string()))?;
        for delivery in &unfinished {
            let delay = delivery
                .next_attempt_at
                .as_deref()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .and_then(|at| {
                    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                        .to_std()
                        .ok()
                })
                .unwrap_or_default();
            notify
                .queue
                .send(&delivery.into(), delay)
                .await
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(unfinished.len())
    }
}

/// The notifier function's notifier: the hot table, the notify queue, the webhook and email senders, from the
/// environment (VAULT_DYNAMODB_TABLE, VAULT_NOTIFY_SQS_QUEUE_URL, VAULT_ENVELOPE_KMS_KEY_ID, and
/// `NotifyConfig`'s). No PostgreSQL, no bootstrap secret: it reads nothing else.
pub async fn notifier_from_env() -> Result<Notifier, ConfigError> {
    let backend = ledgix_aws::NotifierBackend::connect(|name| std::env::var(name).ok())
        .await
        .map_err(|e| ConfigError(e.to_string()))?;
    let config =
        NotifyConfig::from_env(&crate::config::Env(|name: &str| std::env::var(name).ok()))?;
    Ok(Notifier::new(notify_ports(
        &config,
        Some(&backend.sdk),
        backend.notifications,
        backend.queue,
    )?))
}

/// SHA-256 of the administration key, as the vault compares it.
pub fn admin_key_hash(key: &str) -> String {
    ledgix_core::apikey::hash(key)
}

/// The JWKS JSON document: every key a token of `token_ttl_seconds` signed until now may need
/// (`PublishedKey::in_jwks`).
pub async fn jwks_document(
    signer: &dyn ledgix_core::ports::Signer,
    token_ttl_seconds: i64,
) -> Result<String, ConfigError> {
    let now = chrono::Utc::now();
    let keys: Vec<_> = signer
        .published_keys()
        .await
        .map_err(|e| ConfigError(e.to_string()))?
        .iter()
        .filter(|k| k.in_jwks(now, token_ttl_seconds))
        .map(|k| k.public_key())
        .collect();
    serde_json::to_string(&ledgix_core::token::jwks(&keys)).map_err(|e| ConfigError(e.to_string()))
}
