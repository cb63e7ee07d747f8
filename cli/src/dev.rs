//! `ledgix dev`: the whole vault as one local process.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use ledgix_api::{build, load_config, router, telemetry, AppState, Backend};
use ledgix_core::apikey;
use ledgix_core::model::{now_rfc3339, Tenant};
use ledgix_core::Vault;
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
}

/// The dev tenant and admin key, kept in the data directory (mode 0600) so a restart prints the same
/// lines. A development convenience only: production keys exist only as hashes.
#[derive(serde::Serialize, serde::Deserialize)]
struct DevCredentials {
    tenant_id: String,
    api_key: String,
    admin_api_key: String,
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    telemetry::init_logging();
    let mut config = load_config(true).await.map_err(|e| e.to_string())?;
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
    let credentials = load_credentials(&config.data_dir, config.admin_api_key.clone())?;
    let mut embedded = build(&config, Some(apikey::hash(&credentials.admin_api_key)))
        .await
        .map_err(|e| e.to_string())?;
    let credentials = ensure_dev_tenant(&embedded.vault, credentials, &config.data_dir).await?;
    let requeued = embedded
        .start_judge_workers()
        .await
        .map_err(|e| e.to_string())?;
    embedded.start_anchor_timer();
    if config.allow_stub_judge {
        tracing::warn!("the stub judge is enabled (development only): plain-English policies always go to human review");
    }

    let cors = config
        .cors_allowed_origin
        .as_deref()
        .and_then(|o| o.parse().ok());
    let (app, _) = router(AppState {
        vault: embedded.vault.clone(),
        cors_allowed_origin: cors,
        emf_metrics: config.emf_metrics,
    });
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(addr = %local, data_dir = %config.data_dir.display(), backend = ?config.backend, requeued, "ledgix dev vault serving");
    print_credentials(local, &credentials);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn print_credentials(addr: SocketAddr, credentials: &DevCredentials) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "LEDGIX_VAULT_URL=http://{addr}");
    let _ = writeln!(out, "LEDGIX_VAULT_API_KEY={}", credentials.api_key);
    let _ = writeln!(out, "LEDGIX_ADMIN_API_KEY={}", credentials.admin_api_key);
    let _ = writeln!(out, "LEDGIX_DEV_TENANT_ID={}", credentials.tenant_id);
    let _ = out.flush();
}

fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-credentials.json")
}

/// Stored dev credentials, overridden by LEDGIX_DEV_API_KEY / LEDGIX_ADMIN_API_KEY, else fresh ones.
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
    let dev_override = std::env::var("LEDGIX_DEV_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    Ok(DevCredentials {
        tenant_id: stored
            .as_ref()
            .map(|c| c.tenant_id.clone())
            .unwrap_or_default(),
        api_key: dev_override
            .or_else(|| stored.as_ref().map(|c| c.api_key.clone()))
            .unwrap_or_else(|| apikey::generate(apikey::TENANT_KEY_PREFIX)),
        admin_api_key: admin_override
            .or_else(|| stored.as_ref().map(|c| c.admin_api_key.clone()))
            .unwrap_or_else(|| apikey::generate(apikey::ADMIN_KEY_PREFIX)),
    })
}

/// Make sure the dev tenant exists and accepts the dev key; persist the credentials.
async fn ensure_dev_tenant(
    vault: &Vault,
    mut credentials: DevCredentials,
    data_dir: &Path,
) -> Result<DevCredentials, String> {
    let known_key = vault.authenticate(&credentials.api_key).await.ok();
    match known_key {
        Some(principal) => credentials.tenant_id = principal.tenant_id,
        None => {
            let tenant_exists = !credentials.tenant_id.is_empty()
                && vault
                    .tenant(&credentials.tenant_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some();
            if tenant_exists {
                vault
                    .create_api_key(&credentials.tenant_id, Some(&credentials.api_key), None)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let tenant = Tenant {
                    tenant_id: apikey::new_id("tn_"),
                    name: "dev".into(),
                    created_at: now_rfc3339(),
                };
                let created = vault
                    .create_tenant_with_key(tenant, &credentials.api_key, None)
                    .await
                    .map_err(|e| e.to_string())?;
                credentials.tenant_id = created.tenant_id;
            }
        }
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
