//! Wiring: build every port's adapter once, at start, and hand them to the domain.

use std::sync::Arc;

use ledgix_core::judge::StubJudge;
use ledgix_core::ports::Judge;
use ledgix_core::service::VaultPorts;
use ledgix_core::Vault;
use ledgix_embedded::queue::JudgeReceiver;
use ledgix_embedded::{spawn_judge_workers, Codec, EmbeddedQueue, FolderAnchor, LocalSigner, MemoryRateLimiter, SqliteStore};

use crate::config::{Config, ConfigError};

/// The vault on embedded adapters: SQLite under the data directory, in-process queue, local key.
pub struct EmbeddedVault {
    pub vault: Arc<Vault>,
    pub store: Arc<SqliteStore>,
    receiver: Option<JudgeReceiver>,
    workers: usize,
    anchor_interval: std::time::Duration,
}

pub fn build_embedded(config: &Config, admin_key_hash: Option<String>) -> Result<EmbeddedVault, ConfigError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ConfigError(format!("cannot create data directory {}: {e}", config.data_dir.display())))?;
    restrict_permissions(&config.data_dir);
    let signer = local_signer_from_config(config)?;
    let codec = match &config.transport_key_base64 {
        Some(key) => Codec::from_base64_key(key).map_err(ConfigError)?,
        None => Codec::plaintext(),
    };
    let store = Arc::new(
        SqliteStore::open_with(&config.data_dir.join("vault.db"), codec)
            .map_err(|e| ConfigError(format!("cannot open the state database in {}: {e}", config.data_dir.display())))?,
    );
    let (queue, receiver) = EmbeddedQueue::new(config.async_queue_size);
    let judge: Option<Arc<dyn Judge>> = config.allow_stub_judge.then(|| Arc::new(StubJudge) as Arc<dyn Judge>);
    let ports = VaultPorts {
        control: store.clone(),
        store: store.clone(),
        limiter: Arc::new(MemoryRateLimiter::default()),
        signer: Arc::new(signer),
        queue: Arc::new(queue),
        judge,
        anchor: Some(Arc::new(FolderAnchor::new(config.data_dir.join("anchors"), &config.anchor_prefix))),
    };
    Ok(EmbeddedVault {
        vault: Arc::new(Vault::new(config.vault_settings(admin_key_hash), ports)),
        store,
        receiver: Some(receiver),
        workers: config.async_workers,
        anchor_interval: config.anchor_interval,
    })
}

pub fn local_signer_from_config(config: &Config) -> Result<LocalSigner, ConfigError> {
    let signer = if let Some(encoded) = &config.private_key_base64 {
        LocalSigner::from_base64(encoded, &config.key_id)
    } else if let Some(path) = &config.private_key_file {
        LocalSigner::from_pem_file(path, &config.key_id)
    } else if config.dev_mode {
        LocalSigner::load_or_create(&config.data_dir.join("signing-key.pem"), &config.key_id)
    } else {
        return Err(ConfigError(
            "VAULT_SIGNER_BACKEND=local needs VAULT_PRIVATE_KEY_FILE or VAULT_PRIVATE_KEY_BASE64".into(),
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

impl EmbeddedVault {
    /// Run the anchor job every VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS in the background.
    pub fn start_anchor_timer(&self) {
        let (vault, interval) = (self.vault.clone(), self.anchor_interval);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match vault.anchor_round().await {
                    Ok(reports) => {
                        for (tenant_id, report) in reports {
                            tracing::info!(tenant_id, sequenced = report.sequenced, checkpoint_id = ?report.checkpoint_id,
                                exported = report.exported, export_failed = report.export_failed, "anchor round");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "anchor round failed"),
                }
            }
        });
    }

    /// Start the judge workers and re-queue any clearance a previous run left in `processing`.
    pub async fn start_judge_workers(&mut self) -> Result<usize, ConfigError> {
        let Some(receiver) = self.receiver.take() else { return Ok(0) };
        spawn_judge_workers(self.vault.clone(), receiver, self.workers);
        let stranded = self.store.processing_jobs().await.map_err(|e| ConfigError(e.to_string()))?;
        for job in &stranded {
            self.vault.requeue(job).await;
        }
        Ok(stranded.len())
    }
}

/// SHA-256 of the administration key, as the vault compares it.
pub fn admin_key_hash(key: &str) -> String {
    ledgix_core::apikey::hash(key)
}

/// The JWKS JSON document for a signer's public keys.
pub async fn jwks_document(signer: &dyn ledgix_core::ports::Signer) -> Result<String, ConfigError> {
    let keys = signer.public_keys().await.map_err(|e| ConfigError(e.to_string()))?;
    serde_json::to_string(&ledgix_core::token::jwks(&keys)).map_err(|e| ConfigError(e.to_string()))
}
