//! `ledgix verify`: offline checks an auditor runs without trusting the vault.

use std::collections::HashMap;

use clap::Subcommand;
use ledgix_core::audit::{self, AuditError};
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::note;
use ledgix_core::sealing::ProofBundle;

use crate::source::Source;

#[derive(Subcommand)]
pub enum VerifyCommand {
    /// Verify a proof bundle (`GET /ledger/proof/bundle`): event hash, receipt, inclusion, consistency,
    /// checkpoint signatures, with the keys embedded in the bundle.
    Bundle {
        /// A file, an http(s):// URL of the bundle endpoint, or an s3://bucket/key object.
        source: String,
        /// Tenant API key, when `source` is a URL.
        #[arg(long, env = "LEDGIX_VAULT_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Pin the vault's keys: a JWKS file or http(s):// URL. Without it the keys embedded in the bundle
        /// are trusted as they are, which a forger could replace.
        #[arg(long)]
        jwks: Option<String>,
    },
    /// Verify a tenant's whole exported log: the signed C2SP checkpoint, every entry bundle and hash tile,
    /// and the chain of SDK checkpoints.
    Log {
        /// The tenant's export location, holding `checkpoint`, `tile/`, `checkpoints/`: a folder,
        /// s3://<bucket>/<prefix>/<tenant_id>, or an http(s):// base URL serving the same layout.
        location: String,
        /// The vault's JWKS: a file, or an http(s):// URL such as http://127.0.0.1:8000/.well-known/jwks.json.
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
            let bytes = Source::parse(&source, api_key.as_deref())
                .await?
                .read_whole()
                .await?;
            let bundle: ProofBundle = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{source} is not a proof bundle: {e}"))?;
            match jwks {
                Some(jwks) => {
                    let pinned = pinned_keys(&jwks).await?;
                    Ok(report(audit::verify_bundle_pinned(&bundle, &pinned)))
                }
                None => Ok(report(audit::verify_bundle(&bundle))),
            }
        }
        VerifyCommand::Log {
            location,
            jwks,
            kid,
        } => {
            let keys = pinned_keys(&jwks).await?;
            let source = Source::parse(&location, None).await?;
            let mut unreadable = None;
            let verdict = verify_log(&source, &keys, kid.as_deref(), &mut unreadable).await;
            // A source that cannot be reached (network, TLS, credentials) is not a verdict on the log.
            match unreadable {
                Some(error) => Err(error),
                None => Ok(report(verdict)),
            }
        }
    }
}

async fn pinned_keys(jwks: &str) -> Result<HashMap<String, [u8; 32]>, String> {
    let bytes = Source::parse(jwks, None).await?.read_whole().await?;
    let jwks: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    audit::keys_from_jwks(&jwks).map_err(|e| e.to_string())
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

/// Objects that are missing or wrong fail verification; a transport failure is recorded in `unreadable`.
async fn verify_log(
    source: &Source,
    keys: &HashMap<String, [u8; 32]>,
    kid: Option<&str>,
    unreadable: &mut Option<String>,
) -> Result<String, AuditError> {
    let checkpoints = read_checkpoints(source, unreadable).await?;
    audit::verify_chain(&checkpoints, keys)?;
    let latest = checkpoints
        .last()
        .ok_or_else(|| AuditError(format!("{source} holds no exported checkpoints")))?;
    let kid = kid.unwrap_or(&latest.signer_key_id);
    let public = keys
        .get(kid)
        .ok_or_else(|| AuditError(format!("the JWKS has no key {kid}")))?;

    let note_text = String::from_utf8(required(source, "checkpoint", unreadable).await?)
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
    // The tile walk reads synchronously; each read blocks this worker thread on the async fetch.
    let runtime = tokio::runtime::Handle::current();
    let mut read = |relative: &str| -> Result<Vec<u8>, AuditError> {
        tokio::task::block_in_place(|| runtime.block_on(required(source, relative, unreadable)))
    };
    let result = audit::verify_tiles(size, &root, &mut read, &mut |n| bar.inc(n));
    bar.finish_and_clear();
    result?;
    Ok(format!(
        "log {origin}: {size} entries, {} chained checkpoints, tiles and signed checkpoint agree (root {})",
        checkpoints.len(),
        latest.root_hash
    ))
}

async fn required(
    source: &Source,
    relative: &str,
    unreadable: &mut Option<String>,
) -> Result<Vec<u8>, AuditError> {
    read(source, relative, unreadable)
        .await?
        .ok_or_else(|| AuditError(format!("{source}: {relative} is missing")))
}

async fn read(
    source: &Source,
    relative: &str,
    unreadable: &mut Option<String>,
) -> Result<Option<Vec<u8>>, AuditError> {
    source.read(relative).await.map_err(|e| {
        *unreadable = Some(e.clone());
        AuditError(e)
    })
}

/// Checkpoint ids start at 1 and have no gaps, so the chain is read without listing: `checkpoints/1.json`,
/// `2.json`, ... until the first that does not exist.
async fn read_checkpoints(
    source: &Source,
    unreadable: &mut Option<String>,
) -> Result<Vec<Checkpoint>, AuditError> {
    let mut checkpoints = Vec::new();
    for id in 1.. {
        let relative = format!("checkpoints/{id}.json");
        let Some(bytes) = read(source, &relative, unreadable).await? else {
            break;
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| AuditError(format!("{relative} is not a checkpoint: {e}")))?;
        if checkpoint.checkpoint_id != id {
            return Err(AuditError(format!(
                "{relative} holds checkpoint {}",
                checkpoint.checkpoint_id
            )));
        }
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}
