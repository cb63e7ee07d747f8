//! `ledgix verify`: offline checks an auditor runs without trusting the vault.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ledgix_core::audit::{self, AuditError};
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::note;
use ledgix_core::sealing::ProofBundle;

#[derive(Subcommand)]
pub enum VerifyCommand {
    /// Verify a proof bundle (`GET /ledger/proof/bundle`): event hash, receipt, inclusion, consistency,
    /// checkpoint signatures, with the keys embedded in the bundle.
    Bundle {
        /// A file, or an http:// URL of the bundle endpoint.
        source: String,
        /// Tenant API key, when `source` is a URL.
        #[arg(long, env = "LEDGIX_VAULT_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Pin the vault's keys: a JWKS file or http:// URL. Without it the keys embedded in the bundle are
        /// trusted as they are, which a forger could replace.
        #[arg(long)]
        jwks: Option<String>,
    },
    /// Verify a tenant's whole exported log from its folder: the signed C2SP checkpoint, every entry bundle
    /// and hash tile, and the chain of SDK checkpoints.
    Log {
        /// The tenant's export folder (holding `checkpoint`, `tile/`, `checkpoints/`).
        dir: PathBuf,
        /// The vault's JWKS: a file, or an http:// URL such as http://127.0.0.1:8000/.well-known/jwks.json.
        #[arg(long)]
        jwks: String,
        /// Key id that signs the log (default: the kid of the newest exported checkpoint).
        #[arg(long)]
        kid: Option<String>,
    },
}

/// Exit code 0 when verified, 1 when verification failed, 2 when the inputs could not be read.
pub async fn run(command: VerifyCommand) -> Result<bool, String> {
    match command {
        VerifyCommand::Bundle {
            source,
            api_key,
            jwks,
        } => {
            let bytes = load(&source, api_key.as_deref()).await?;
            let bundle: ProofBundle = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{source} is not a proof bundle: {e}"))?;
            match jwks {
                Some(jwks) => {
                    let jwks: serde_json::Value = serde_json::from_slice(&load(&jwks, None).await?)
                        .map_err(|e| format!("the JWKS is not JSON: {e}"))?;
                    let pinned = audit::keys_from_jwks(&jwks).map_err(|e| e.to_string())?;
                    Ok(report(audit::verify_bundle_pinned(&bundle, &pinned)))
                }
                None => Ok(report(audit::verify_bundle(&bundle))),
            }
        }
        VerifyCommand::Log { dir, jwks, kid } => {
            let jwks: serde_json::Value = serde_json::from_slice(&load(&jwks, None).await?)
                .map_err(|e| format!("the JWKS is not JSON: {e}"))?;
            let keys = audit::keys_from_jwks(&jwks).map_err(|e| e.to_string())?;
            Ok(report(verify_log(&dir, &keys, kid.as_deref())))
        }
    }
}

fn report(result: Result<String, AuditError>) -> bool {
    match result {
        Ok(verdict) => {
            println!("VERIFIED: {verdict}");
            true
        }
        Err(e) => {
            println!("FAILED: {e}");
            false
        }
    }
}

fn verify_log(
    dir: &Path,
    keys: &std::collections::HashMap<String, [u8; 32]>,
    kid: Option<&str>,
) -> Result<String, AuditError> {
    let read = |rel: &str| -> Result<Vec<u8>, AuditError> {
        std::fs::read(dir.join(rel))
            .map_err(|e| AuditError(format!("cannot read {}: {e}", dir.join(rel).display())))
    };
    let checkpoints = read_checkpoints(dir)?;
    audit::verify_chain(&checkpoints, keys)?;
    let latest = checkpoints
        .last()
        .ok_or_else(|| AuditError("no exported checkpoints".into()))?;
    let kid = kid.unwrap_or(&latest.signer_key_id);
    let public = keys
        .get(kid)
        .ok_or_else(|| AuditError(format!("the JWKS has no key {kid}")))?;

    let note_text = String::from_utf8(read("checkpoint")?)
        .map_err(|_| AuditError("checkpoint note is not UTF-8".into()))?;
    let origin = note_text.lines().next().unwrap_or_default().to_string();
    let body = note::verify(&note_text, &origin, public)
        .map_err(|e| AuditError(format!("checkpoint note: {e}")))?;
    let (_, size, root) = note::parse_checkpoint_body(body)
        .ok_or_else(|| AuditError("checkpoint note body is malformed".into()))?;
    if size != latest.tree_size as u64 || hex::encode(root) != latest.root_hash {
        return Err(AuditError(
            "the signed note and the newest SDK checkpoint disagree".into(),
        ));
    }

    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} leaves ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("verifying tiles");
    let mut read_mut = read;
    let result = audit::verify_tiles(size, &root, &mut read_mut, &mut |n| bar.inc(n));
    bar.finish_and_clear();
    result?;
    Ok(format!(
        "log {origin}: {size} entries, {} chained checkpoints, tiles and signed checkpoint agree (root {})",
        checkpoints.len(),
        latest.root_hash
    ))
}

fn read_checkpoints(dir: &Path) -> Result<Vec<Checkpoint>, AuditError> {
    let folder = dir.join("checkpoints");
    let entries = std::fs::read_dir(&folder)
        .map_err(|e| AuditError(format!("cannot list {}: {e}", folder.display())))?;
    let mut checkpoints = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| AuditError(format!("cannot read {}: {e}", path.display())))?;
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| AuditError(format!("{} is not a checkpoint: {e}", path.display())))?;
        checkpoints.push(checkpoint);
    }
    checkpoints.sort_by_key(|c| c.checkpoint_id);
    Ok(checkpoints)
}

/// Read a file, or GET an http:// URL (with the tenant key when given).
async fn load(source: &str, api_key: Option<&str>) -> Result<Vec<u8>, String> {
    if source.starts_with("https://") {
        return Err("https:// sources are not supported yet; download the file (e.g. with curl) and pass its path".into());
    }
    if !source.starts_with("http://") {
        return std::fs::read(source).map_err(|e| format!("cannot read {source}: {e}"));
    }
    use http_body_util::{BodyExt, Empty};
    let client: hyper_util::client::legacy::Client<_, Empty<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut request = http::Request::get(source);
    if let Some(key) = api_key {
        request = request.header("x-vault-api-key", key);
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot fetch {source}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{source} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body.to_vec())
}
