//! `ledgix`: run the vault locally, generate keys, administer tenants and API keys.

mod dev;
mod memory;
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
    /// The signing keys of a local data directory (embedded mode): rotate, list.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new key the data directory's signing key. The vault signs with it from its next start; a
    /// running vault keeps signing with the old key until restarted. The old key stays published (public
    /// half only) so what it signed keeps verifying; its private key file is deleted.
    Rotate {
        /// The vault's data directory (as given to `ledgix dev --data-dir`); it must exist.
        #[arg(long)]
        data_dir: PathBuf,
        /// Key id of the new key (default: the current kid's base and the UTC time, e.g.
        /// vault-key-001-20260102T030405Z). Letters, digits, `-`, `_` and `.` only.
        #[arg(long)]
        kid: Option<String>,
    },
    /// List the data directory's signing keys, oldest first: kid, role, active_from, retired_at.
    List {
        /// The vault's data directory (as given to `ledgix dev --data-dir`); it must exist.
        #[arg(long)]
        data_dir: PathBuf,
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
    // Before the runtime starts its threads (src/memory.rs).
    memory::cap_arenas();
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
        Command::Keys {
            command: KeysCommand::Rotate { data_dir, kid },
        } => rotate_key(&data_dir, kid).map(|()| ExitCode::SUCCESS),
        Command::Keys {
            command: KeysCommand::List { data_dir },
        } => list_keys(&data_dir).map(|()| ExitCode::SUCCESS),
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

/// The kid a data directory's first key gets: the one `ledgix dev` would give it (VAULT_KEY_ID, else the default).
fn default_kid() -> String {
    std::env::var("VAULT_KEY_ID")
        .ok()
        .map(|kid| kid.trim().to_string())
        .filter(|kid| !kid.is_empty())
        .unwrap_or_else(|| ledgix_core::config::DEFAULT_KEY_ID.to_string())
}

fn existing_data_dir(data_dir: &std::path::Path) -> Result<(), String> {
    if data_dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "data directory {} does not exist",
            data_dir.display()
        ))
    }
}

/// A kid names the key's file in the data directory and appears in token headers: keep it to a safe alphabet.
fn check_kid(kid: &str) -> Result<(), String> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if kid.is_empty() || kid.len() > 128 || kid.starts_with('.') || !kid.chars().all(safe) {
        return Err(format!(
            "kid {kid:?} must be 1 to 128 letters, digits, '-', '_' or '.' (not starting with '.')"
        ));
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ`, the suffix a rotated kid gets.
fn is_stamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

/// The kid without the suffixes a rotation adds (`-<stamp>`, and `-<n>` after a stamp).
fn kid_base(kid: &str) -> &str {
    let mut base = kid;
    if let Some((head, tail)) = base.rsplit_once('-') {
        let counter = !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit());
        if counter
            && head
                .rsplit_once('-')
                .is_some_and(|(_, stamp)| is_stamp(stamp))
        {
            base = head;
        }
    }
    if let Some((head, tail)) = base.rsplit_once('-') {
        if is_stamp(tail) && !head.is_empty() {
            base = head;
        }
    }
    base
}

/// The UTC time now as `YYYYMMDDTHHMMSSZ`.
fn utc_stamp() -> String {
    let stamp: String = now_rfc3339()
        .chars()
        .take(19)
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{stamp}Z")
}

/// `<base>-<stamp>`, with `-2`, `-3`, ... if that kid is taken.
fn next_kid(current: &str, stamp: &str, taken: &[String]) -> String {
    let kid = format!("{}-{stamp}", kid_base(current));
    let mut candidate = kid.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{kid}-{n}");
        n += 1;
    }
    candidate
}

fn rotate_key(data_dir: &std::path::Path, kid: Option<String>) -> Result<(), String> {
    existing_data_dir(data_dir)?;
    let mut ring = ledgix_embedded::Keyring::load_or_create(data_dir, &default_kid())
        .map_err(|e| e.to_string())?;
    let previous = ring.active_kid().to_string();
    let taken: Vec<String> = ring
        .published()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    let kid = match kid {
        Some(kid) => kid.trim().to_string(),
        None => next_kid(&previous, &utc_stamp(), &taken),
    };
    check_kid(&kid)?;
    let key = ring.rotate(&kid).map_err(|e| e.to_string())?;
    let jwk = serde_json::to_string(&key.public_key().to_jwk()).map_err(|e| e.to_string())?;
    println!("kid={}\n{jwk}", key.kid);
    println!(
        "{} is the signing key from the vault's next start; a running vault keeps signing with {previous} \
         until it is restarted. {previous} stays published for verification (public key only); its private \
         key file has been deleted.",
        key.kid
    );
    for variable in ["VAULT_PRIVATE_KEY_FILE", "VAULT_PRIVATE_KEY_BASE64"] {
        if std::env::var(variable).is_ok_and(|v| !v.trim().is_empty()) {
            eprintln!(
                "ledgix: warning: {variable} is set; a vault started with it signs with that key, not the data \
                 directory's key ring"
            );
        }
    }
    Ok(())
}

fn list_keys(data_dir: &std::path::Path) -> Result<(), String> {
    existing_data_dir(data_dir)?;
    // Listing never creates a key: a directory the vault has not started on yet has none.
    let has_keys = ["signing-keys.json", "signing-key.pem"]
        .iter()
        .any(|file| data_dir.join(file).exists());
    if !has_keys {
        return Err(format!(
            "{} holds no signing keys yet (the vault creates the first at its first start)",
            data_dir.display()
        ));
    }
    let ring = ledgix_embedded::Keyring::load_or_create(data_dir, &default_kid())
        .map_err(|e| e.to_string())?;
    let keys = ring.published().map_err(|e| e.to_string())?;
    let rows: Vec<[String; 4]> = keys
        .iter()
        .map(|k| {
            let role = match k.role {
                ledgix_core::keys::KeyRole::Root => "root",
                ledgix_core::keys::KeyRole::Delegated => "delegated",
            };
            [
                k.kid.clone(),
                role.to_string(),
                k.active_from.clone(),
                k.retired_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["KID", "ROLE", "ACTIVE_FROM", "RETIRED_AT"].map(String::from);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        println!("{}", line.trim_end());
    }
    println!("active: {}", ring.active_kid());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_kids_keep_their_base() {
        assert_eq!(kid_base("vault-key-001"), "vault-key-001");
        assert_eq!(kid_base("vault-key-001-20260102T030405Z"), "vault-key-001");
        assert_eq!(
            kid_base("vault-key-001-20260102T030405Z-3"),
            "vault-key-001"
        );
        assert_eq!(kid_base("k-2"), "k-2");
        assert!(is_stamp(&utc_stamp()), "{}", utc_stamp());
        let stamp = "20260102T030405Z";
        let next = next_kid("vault-key-001-20250101T000000Z-2", stamp, &[]);
        assert_eq!(next, "vault-key-001-20260102T030405Z");
        let taken = vec![next.clone(), format!("{next}-2")];
        assert_eq!(
            next_kid("vault-key-001", stamp, &taken),
            format!("{next}-3")
        );
    }

    #[test]
    fn kids_are_safe_file_names() {
        assert!(check_kid("vault-key-002").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "with space"] {
            assert!(check_kid(bad).is_err(), "{bad}");
        }
    }
}
