//! `ledgix`: run the vault locally, generate keys, administer tenants and API keys.

mod dev;
mod source;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ledgix_core::model::{now_rfc3339, Tenant};
use ledgix_core::roles::Role;
use ledgix_core::service::ApiKeyRequest;
use ledgix_wiring::{build_embedded, Config};

#[derive(Parser)]
#[command(
    name = "ledgix",
    version,
    about = "Ledgix Vault: clearance, approval tokens and a verifiable ledger for AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole vault locally on embedded defaults (SQLite, in-process queue, local key).
    Dev(dev::DevArgs),
    /// Generate an Ed25519 signing key (PKCS#8 PEM) and print its public JWK.
    Keygen {
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long, default_value = "vault-signing-key.pem")]
        out: PathBuf,
        /// Key id published in the JWKS and token headers.
        #[arg(long, env = "VAULT_KEY_ID", default_value = ledgix_core::config::DEFAULT_KEY_ID)]
        kid: String,
    },
    /// Tenant administration on a local data directory.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// API-key administration on a local data directory.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Verify ledger evidence offline: a proof bundle, or a tenant's whole exported log.
    Verify {
        #[command(subcommand)]
        command: verify::VerifyCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and its first API key, with role tenant_admin (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = ".ledgix")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create another API key for a tenant (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// A role the key holds (repeat for several): agent, consumer, reviewer, tenant_admin, auditor.
        #[arg(long = "role", default_value = "agent")]
        roles: Vec<String>,
        /// A label for the key.
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = ".ledgix")]
        data_dir: PathBuf,
    },
    /// Revoke an API key by its key id.
    Revoke {
        key_id: String,
        #[arg(long, default_value = ".ledgix")]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ledgix: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ledgix: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await.map(|()| ExitCode::SUCCESS),
        // Verify has three outcomes: verified (0), failed (1), inputs unreadable (2).
        Command::Verify { command } => Ok(match verify::run(command).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(message) => {
                eprintln!("ledgix verify: {message}");
                ExitCode::from(2)
            }
        }),
        Command::Keygen { out, kid } => keygen(&out, &kid).map(|()| ExitCode::SUCCESS),
        Command::Tenant {
            command: TenantCommand::Create { name, data_dir },
        } => {
            let vault = local_vault(data_dir)?;
            let tenant = Tenant {
                tenant_id: ledgix_core::apikey::new_id("tn_"),
                name,
                created_at: now_rfc3339(),
            };
            let key = ledgix_core::apikey::generate(ledgix_core::apikey::TENANT_KEY_PREFIX);
            let created = vault
                .create_tenant_with_key(tenant, &key, vec![Role::TenantAdmin])
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "tenant_id={}\nkey_id={}\napi_key={key}\nroles=tenant_admin",
                created.tenant_id, created.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Apikey {
            command:
                ApiKeyCommand::Create {
                    tenant,
                    roles,
                    name,
                    data_dir,
                },
        } => {
            let vault = local_vault(data_dir)?;
            let request = ApiKeyRequest {
                roles: Some(roles),
                name,
            };
            let created = vault
                .create_api_key(&tenant, None, &request, None)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "key_id={}\napi_key={}\nroles={}",
                created.key_id,
                created.api_key.unwrap_or_default(),
                Role::to_stored(&created.roles)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Apikey {
            command: ApiKeyCommand::Revoke { key_id, data_dir },
        } => {
            let vault = local_vault(data_dir)?;
            vault
                .revoke_api_key(&key_id)
                .await
                .map_err(|e| e.to_string())?;
            println!("revoked {key_id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn local_vault(data_dir: PathBuf) -> Result<std::sync::Arc<ledgix_core::Vault>, String> {
    // Administration works on the same data directory (and key) that `ledgix dev` uses.
    let mut config =
        Config::from_lookup(|name| std::env::var(name).ok(), true).map_err(|e| e.to_string())?;
    config.data_dir = data_dir;
    // Administration never judges: no model client is built.
    config.judge.backend = None;
    Ok(build_embedded(&config, None)
        .map_err(|e| e.to_string())?
        .vault)
}

fn keygen(out: &std::path::Path, kid: &str) -> Result<(), String> {
    if out.exists() {
        return Err(format!(
            "{} already exists; refusing to overwrite a key",
            out.display()
        ));
    }
    let signer = ledgix_embedded::LocalSigner::generate(kid);
    let pem = signer.to_pem().map_err(|e| e.to_string())?;
    ledgix_embedded::signer::write_private(out, pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let jwk = serde_json::to_string(&signer.public_key().to_jwk()).map_err(|e| e.to_string())?;
    println!(
        "VAULT_PRIVATE_KEY_FILE={}\nVAULT_KEY_ID={kid}\n{jwk}",
        out.display()
    );
    Ok(())
}
