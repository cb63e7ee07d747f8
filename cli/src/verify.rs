//! `ledgix verify`: offline checks an auditor runs without trusting the vault.

use std::collections::HashMap;

use clap::Subcommand;
use ledgix_core::audit::{self, AuditError, PinnedRoots};
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::note;
use ledgix_core::sealing::ProofBundle;

use crate::source::Source;

#[derive(Subcommand)]
pub enum VerifyCommand {
    /// Verify a proof bundle (`GET /ledger/proof/bundle`): event hash, receipt, inclusion, consistency,
    /// checkpoint signatures, with the keys embedded in the bundle. A delegated key's certificate is checked
    /// against a root key and its window against the receipt's time; only root keys may sign checkpoints.
    ///
    /// Pin the root keys with --jwks and/or --root-key: the bundle's root keys must then be pinned, and its
    /// delegated keys' certificates must be signed by a pinned root. Without pins the root keys embedded in
    /// the bundle are trusted as they are, which a forger could replace.
    Bundle {
        /// A file, an http(s):// URL of the bundle endpoint, or an s3://bucket/key object.
        source: String,
        /// Tenant API key, when `source` is a URL.
        #[arg(long, env = "LEDGIX_VAULT_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Pin the vault's published keys as roots: a JWKS file or http(s):// URL
        /// (https://<vault>/.well-known/jwks.json). Certificates of delegated keys are checked against them.
        #[arg(long)]
        jwks: Option<String>,
        /// Pin a root key (repeatable; combines with --jwks): the raw 32-byte Ed25519 public key in base64url
        /// or base64, `KID=<key>` to pin it under that kid only, or a file holding a JWK, a JWKS or a PEM
        /// public key. Certificates of delegated keys are checked against the pinned roots.
        #[arg(long = "root-key", value_name = "KEY")]
        root_keys: Vec<String>,
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
            root_keys,
        } => {
            // The pins are read first: a bad --root-key is an input error whatever the bundle holds.
            let pinned = pinned_roots(jwks.as_deref(), &root_keys).await?;
            let bytes = Source::parse(&source, api_key.as_deref())
                .await?
                .read_whole()
                .await?;
            let bundle: ProofBundle = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{source} is not a proof bundle: {e}"))?;
            match pinned {
                Some(pinned) => Ok(report(audit::verify_bundle_pinned(&bundle, &pinned))),
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

/// The roots pinned by `--jwks` and `--root-key`, or `None` when neither was given.
async fn pinned_roots(
    jwks: Option<&str>,
    root_keys: &[String],
) -> Result<Option<PinnedRoots>, String> {
    if jwks.is_none() && root_keys.is_empty() {
        return Ok(None);
    }
    let mut pinned = PinnedRoots::new();
    if let Some(jwks) = jwks {
        pinned.extend(PinnedRoots::from_keys(&pinned_keys(jwks).await?));
    }
    for value in root_keys {
        let path = std::path::Path::new(value);
        if path.is_file() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --root-key {value}: {e}"))?;
            pinned
                .add_document(&text)
                .map_err(|e| format!("--root-key {value}: {e}"))?;
        } else {
            pinned
                .add_encoded(value)
                .map_err(|e| format!("--root-key: {e} (nor is it a readable file)"))?;
        }
    }
    Ok(Some(pinned))
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
