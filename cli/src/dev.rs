//! `ledgix dev`: the whole vault as one local process.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use ledgix_api::{router, AppState};
use ledgix_core::apikey;
use ledgix_core::model::{now_rfc3339, Tenant};
use ledgix_core::roles::Role;
use ledgix_core::service::ApiKeyRequest;
use ledgix_core::Vault;
use ledgix_wiring::{build, load_config_with, telemetry, Backend};
use serde_json::json;

#[derive(Args)]
pub struct DevArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Where all state lives: database, signing key, dev credentials.
    #[arg(long, default_value = ".ledgix")]
    data_dir: PathBuf,
    /// `embedded` (SQLite, in-process queue, local key) or `aws` (configured from the environment:
    /// DATABASE_URL, TENANT_SECRET_PREFIX, AWS_ENDPOINT_URL, VAULT_DYNAMODB_TABLE, ...). Default: VAULT_BACKEND,
    /// else embedded.
    #[arg(long, value_parser = ["embedded", "aws"])]
    backend: Option<String>,
    /// The policy judge (VAULT_JUDGE_BACKEND): `stub` (the default here: always asks a human), `openai` (any
    /// OpenAI-compatible endpoint, e.g. a local Ollama), `http` (a service-to-service judge) or `bedrock`.
    #[arg(long, value_parser = ["stub", "openai", "http", "bedrock"])]
    judge: Option<String>,
    /// VAULT_JUDGE_URL, e.g. http://127.0.0.1:11434/v1 for Ollama.
    #[arg(long)]
    judge_url: Option<String>,
    /// VAULT_JUDGE_MODEL, e.g. llama3.1.
    #[arg(long)]
    judge_model: Option<String>,
    /// VAULT_EMBEDDING_MODEL (retrieval over long policies), e.g. nomic-embed-text.
    #[arg(long)]
    embedding_model: Option<String>,
}

impl DevArgs {
    /// The judge flags as the variables they stand for; they win over the environment.
    fn judge_overrides(&self) -> std::collections::HashMap<String, String> {
        [
            ("VAULT_JUDGE_BACKEND", &self.judge),
            ("VAULT_JUDGE_URL", &self.judge_url),
            ("VAULT_JUDGE_MODEL", &self.judge_model),
            ("VAULT_EMBEDDING_MODEL", &self.embedding_model),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.clone()?)))
        .collect()
    }
}

/// The dev tenant, its keys and the admin key, kept in the data directory (mode 0600) so a restart prints the
/// same lines. A development convenience only: production keys exist only as hashes.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevCredentials {
    tenant_id: String,
    /// The agent's key (roles agent and consumer, so one key can request and consume in a demo).
    api_key: String,
    #[serde(default)]
    reviewer_api_key: String,
    #[serde(default)]
    tenant_admin_api_key: String,
    admin_api_key: String,
}

impl DevCredentials {
    /// Each tenant key with the roles it is created with.
    fn tenant_keys(&self) -> [(&str, Vec<Role>, &'static str); 3] {
        [
            (
                &self.api_key,
                vec![Role::Agent, Role::Consumer],
                "dev agent",
            ),
            (&self.reviewer_api_key, vec![Role::Reviewer], "dev reviewer"),
            (
                &self.tenant_admin_api_key,
                vec![Role::TenantAdmin],
                "dev tenant admin",
            ),
        ]
    }
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    telemetry::init_logging();
    let mut config = load_config_with(true, args.judge_overrides())
        .await
        .map_err(|e| e.to_string())?;
    config.data_dir = args.data_dir.clone();
    match args.backend.as_deref() {
        Some("aws") => config.backend = Backend::Aws,
        Some(_) => config.backend = Backend::Embedded,
        None => {}
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    if config.public_url.is_none() {
        // Notifications link to this process's reviewer page.
        let mut reachable = args.addr;
        if reachable.ip().is_unspecified() {
            reachable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        config.public_url = Some(format!("http://{reachable}"));
    }
    let credentials = load_credentials(&config.data_dir, config.admin_api_key.clone())?;
    let mut wired = build(&config, Some(apikey::hash(&credentials.admin_api_key)))
        .await
        .map_err(|e| e.to_string())?;
    let credentials = ensure_dev_tenant(&wired.vault, credentials, &config.data_dir).await?;
    let requeued = wired
        .start_judge_workers()
        .await
        .map_err(|e| e.to_string())?;
    let redelivering = wired.start_notifier().await.map_err(|e| e.to_string())?;
    if redelivering > 0 {
        tracing::info!(redelivering, "undelivered notifications queued again");
    }
    // Before serving: with delegated signing no approval can be signed until the current period's key exists.
    if let Err(e) = wired.vault.rotate_signing_keys().await {
        tracing::error!("signing key step failed at start: {e}");
    }
    wired.start_anchor_timer();
    if let Some(every) = crate::memory::interval_from_env()? {
        crate::memory::start_trimmer(every)
            .map_err(|e| format!("cannot start the allocator trim thread: {e}"))?;
    }
    match &wired.vault.judge_backend() {
        Some("stub") => tracing::warn!("the stub judge is enabled (development only): plain-English policies always go to human review"),
        Some(backend) => tracing::info!(backend, model = ?config.judge.model, "policy judge ready"),
        None => tracing::warn!("no policy judge: plain-English policies go to human review"),
    }

    let (app, _) = router(AppState::new(wired.vault.clone(), &config));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, data_dir = %config.data_dir.display(), backend = ?config.backend, requeued, "ledgix dev vault serving");
    print_credentials(local, &credentials);
    if config.admin_auth == ledgix_wiring::config::AdminAuth::Iam {
        tracing::warn!("VAULT_ADMIN_AUTH=iam: only API Gateway can vouch for IAM callers, so ledgix dev refuses every /admin request");
    }
    // With the peer address, so the per-client-address limit (VAULT_CLIENT_RATE_LIMIT_*) applies.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())
}

fn print_credentials(addr: SocketAddr, credentials: &DevCredentials) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "LEDGIX_VAULT_URL=http://{addr}");
    let _ = writeln!(out, "LEDGIX_VAULT_API_KEY={}", credentials.api_key);
    let _ = writeln!(
        out,
        "LEDGIX_REVIEWER_API_KEY={}",
        credentials.reviewer_api_key
    );
    let _ = writeln!(
        out,
        "LEDGIX_TENANT_ADMIN_API_KEY={}",
        credentials.tenant_admin_api_key
    );
    let _ = writeln!(out, "LEDGIX_ADMIN_API_KEY={}", credentials.admin_api_key);
    let _ = writeln!(out, "LEDGIX_DEV_TENANT_ID={}", credentials.tenant_id);
    let _ = out.flush();
}

fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-credentials.json")
}

/// Stored dev credentials, each overridden by its variable (LEDGIX_DEV_API_KEY, LEDGIX_DEV_REVIEWER_API_KEY,
/// LEDGIX_DEV_TENANT_ADMIN_API_KEY, LEDGIX_ADMIN_API_KEY), else fresh ones.
fn load_credentials(
    data_dir: &Path,
    admin_override: Option<String>,
) -> Result<DevCredentials, String> {
    let path = credentials_path(data_dir);
    let stored: Option<DevCredentials> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| format!("{} is unreadable: {e}", path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let pick = |variable: &str, stored_key: Option<&String>, prefix: &str| {
        std::env::var(variable)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .or_else(|| stored_key.filter(|k| !k.is_empty()).cloned())
            .unwrap_or_else(|| apikey::generate(prefix))
    };
    let tenant_key = apikey::TENANT_KEY_PREFIX;
    Ok(DevCredentials {
        tenant_id: stored
            .as_ref()
            .map(|c| c.tenant_id.clone())
            .unwrap_or_default(),
        api_key: pick(
            "LEDGIX_DEV_API_KEY",
            stored.as_ref().map(|c| &c.api_key),
            tenant_key,
        ),
        reviewer_api_key: pick(
            "LEDGIX_DEV_REVIEWER_API_KEY",
            stored.as_ref().map(|c| &c.reviewer_api_key),
            tenant_key,
        ),
        tenant_admin_api_key: pick(
            "LEDGIX_DEV_TENANT_ADMIN_API_KEY",
            stored.as_ref().map(|c| &c.tenant_admin_api_key),
            tenant_key,
        ),
        admin_api_key: admin_override
            .or_else(|| stored.as_ref().map(|c| c.admin_api_key.clone()))
            .unwrap_or_else(|| apikey::generate(apikey::ADMIN_KEY_PREFIX)),
    })
}

/// Make sure the dev tenant exists and accepts each dev key with its roles; persist the credentials.
async fn ensure_dev_tenant(
    vault: &Vault,
    mut credentials: DevCredentials,
    data_dir: &Path,
) -> Result<DevCredentials, String> {
    // The tenant is the one a known dev key belongs to, else the stored one, else a new one.
    let mut known_tenant = None;
    for (key, _, _) in credentials.tenant_keys() {
        if let Ok(principal) = vault.authenticate(key).await {
            known_tenant = Some(principal.tenant_id);
            break;
        }
    }
    if let Some(tenant_id) = known_tenant {
        credentials.tenant_id = tenant_id;
    }
    let tenant_exists = !credentials.tenant_id.is_empty()
        && vault
            .tenant(&credentials.tenant_id)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
    if !tenant_exists {
        let tenant = Tenant {
            tenant_id: apikey::new_id("tn_"),
            name: "dev".into(),
            created_at: now_rfc3339(),
        };
        let created = vault
            .create_tenant_with_key(
                tenant,
                &credentials.api_key,
                vec![Role::Agent, Role::Consumer],
            )
            .await
            .map_err(|e| e.to_string())?;
        credentials.tenant_id = created.tenant_id;
    }
    for (key, roles, name) in credentials.tenant_keys() {
        if vault.authenticate(key).await.is_ok() {
            continue;
        }
        let request = ApiKeyRequest {
            roles: Some(roles.iter().map(|r| r.as_str().to_string()).collect()),
            name: name.into(),
        };
        vault
            .create_api_key(&credentials.tenant_id, Some(key), &request, None)
            .await
            .map_err(|e| e.to_string())?;
    }
    let path = credentials_path(data_dir);
    let text = serde_json::to_string_pretty(&json!(credentials)).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    ledgix_embedded::signer::write_private(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(credentials)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
