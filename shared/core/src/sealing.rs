//! The sealed ledger: sequencing events into each tenant's Merkle tree, signing chained checkpoints,
//! exporting them with C2SP checkpoints and tiles, and serving inclusion and consistency proofs.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointDraft, EXPORT_DONE};
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::keys::{KeyRole, PublishedKey};
use crate::ledger::LedgerEvent;
use crate::merkle::{self, Hash, Position, Range};
use crate::model::now_rfc3339;
use crate::note;
use crate::ports::{Seal, Write};
use crate::service::{Principal, Vault};
use crate::tiles;

/// The most checkpoints one `GET /ledger/checkpoints` returns (`limit`'s documented maximum).
pub const MAX_CHECKPOINT_PAGE: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InclusionProof {
    pub event_uuid: String,
    pub request_id: String,
    pub event_hash: String,
    pub leaf_hash: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub path: Vec<String>,
    pub checkpoint: Checkpoint,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsistencyProof {
    pub from_checkpoint: Checkpoint,
    pub to_checkpoint: Checkpoint,
    pub path: Vec<String>,
}

/// A signing key as the SDK's `LedgerKeyVersion`: embedded in bundles so they verify after rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyVersion {
    pub key_id: String,
    pub algorithm: String,
    /// base64url of the JWK's JSON.
    pub public_jwk: String,
    pub active_from: String,
    pub retired_at: Option<String>,
    /// A delegated key's certificate (`keys::KeyCertificate`, JCS JSON), base64url; empty for a root key.
    #[serde(default)]
    pub attestation_payload: String,
    /// The root's Ed25519 signature over `attestation_payload`, base64url.
    #[serde(default)]
    pub attestation_signature: String,
    /// kid of the root key that signed the certificate.
    #[serde(default)]
    pub attestation_key_id: String,
    /// `root` for a root key, `certified` for a delegated key with its certificate.
    #[serde(default)]
    pub attestation_status: String,
}

impl KeyVersion {
    pub fn of(key: &PublishedKey) -> Result<Self, serde_json::Error> {
        let jwk = serde_json::to_vec(&key.public_key().to_jwk())?;
        let certificate = key.certificate.as_ref();
        Ok(KeyVersion {
            key_id: key.kid.clone(),
            algorithm: "Ed25519".into(),
            public_jwk: URL_SAFE_NO_PAD.encode(jwk),
            active_from: key.active_from.clone(),
            retired_at: key.retired_at.clone(),
            attestation_payload: certificate
                .map(|c| URL_SAFE_NO_PAD.encode(&c.payload))
                .unwrap_or_default(),
            attestation_signature: certificate
                .map(|c| URL_SAFE_NO_PAD.encode(&c.signature))
                .unwrap_or_default(),
            attestation_key_id: certificate.map(|c| c.issuer.clone()).unwrap_or_default(),
            attestation_status: match key.role {
                KeyRole::Root => "root".into(),
                KeyRole::Delegated => "certified".into(),
            },
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProofBundle {
    pub event: LedgerEvent,
    pub inclusion: InclusionProof,
    pub consistency: Option<ConsistencyProof>,
    pub keys: Vec<KeyVersion>,
}

/// What one sealing round did for a tenant, and how far behind the tenant's log still is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SealReport {
    pub sequenced: usize,
    pub checkpoint_id: Option<i64>,
    pub exported: usize,
    pub export_failed: bool,
    /// Sealing this tenant failed this round (logged); `lag` still says how far behind it is.
    pub seal_failed: bool,
    pub lag: AnchorLag,
}

impl SealReport {
    /// Nothing sealed, nothing exported, nothing waiting.
    pub fn is_idle(&self) -> bool {
        self.sequenced == 0
            && self.exported == 0
            && !self.export_failed
            && !self.seal_failed
            && self.lag.events_behind == 0
    }
}

/// `GET /ledger/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LedgerStatus {
    pub tenant_id: String,
    /// Events sealed into the Merkle tree.
    pub tree_size: u64,
    pub latest_checkpoint_id: Option<i64>,
    pub latest_checkpoint_signed_at: Option<String>,
    /// The interval checkpoints promise as maximum merge delay.
    pub anchor_interval_seconds: i64,
    #[serde(flatten)]
    pub lag: AnchorLag,
    /// The lag is within two anchor intervals (the bar the anchor-lag alarm uses).
    pub within_bound: bool,
}

/// How far a tenant's sealed log trails its committed events: the anchor lag.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AnchorLag {
    /// Committed events not yet sealed into a checkpoint.
    pub events_behind: u64,
    /// When the oldest of them was accepted (absent when caught up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unsequenced_at: Option<String>,
    /// Its age: 0 when caught up.
    pub lag_seconds: f64,
}

fn hex_hash(h: &str) -> VaultResult<Hash> {
    merkle::parse_hash(h)
        .ok_or_else(|| VaultError::Internal(format!("stored hash {h:?} is not 32 hex bytes")))
}

impl Vault {
    /// The checkpoint note origin for a tenant's log.
    pub fn log_origin(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}", self.settings.log_origin_prefix)
    }

    /// The signing-key step (`Signer::rotate_ahead`): record the root, retire rotated-out roots, issue delegated
    /// keys ahead of their periods. Returns the kids issued.
    pub async fn rotate_signing_keys(&self) -> VaultResult<Vec<String>> {
        let issued = self.ports.signer.rotate_ahead().await?;
        if !issued.is_empty() {
            tracing::info!(?issued, "signing keys issued");
        }
        Ok(issued)
    }

    /// One anchor round over every tenant: the signing-key step (`Signer::rotate_ahead`), then sequence, sign,
    /// export, and measure each tenant's lag. Tenants are
    /// sealed concurrently, at most VAULT_LEDGER_ANCHOR_CONCURRENCY at a time, so one busy or slow tenant does
    /// not hold up the rest. Errors for one tenant do not stop others. Each tenant gets at least one batch; a
    /// tenant with more waiting keeps sealing batches while the round is within half the anchor interval (at
    /// most two minutes, well inside anchor-export's default 300 s timeout), so a busy tenant catches up instead
    /// of falling behind for ever. Every tenant's report is returned, idle ones included (`is_idle`).
    pub async fn anchor_round(&self) -> VaultResult<Vec<(String, SealReport)>> {
        use futures_util::StreamExt as _;
        let budget = std::time::Duration::from_secs(
            (self.settings.ledger_mmd_seconds / 2).clamp(1, 120) as u64,
        );
        let deadline = std::time::Instant::now() + budget;
        // The key step first: the root is on record before it signs this round's checkpoints, and the next
        // period's delegated key is issued (and so published) well ahead of use. A failure is reported and the
        // round goes on: sealing does not depend on it, and the next round retries.
        if let Err(e) = self.rotate_signing_keys().await {
            tracing::error!("signing key step failed: {e}");
        }
        let tenants = self.ports.control.tenant_ids().await?;
        // Each tenant's whole work, failure handling included, runs inside `buffer_unordered`: a combinator after
        // it would stop polling the tenants still in flight while it waits, and those may hold what it waits
        // for (a tenant database lock), a deadlock.
        let reports = futures_util::stream::iter(tenants)
            .map(|tenant_id| async move {
                // Expiries first: their ledger events are sealed in this same round.
                self.notification_housekeeping(&tenant_id).await;
                match self.catch_up(&tenant_id, deadline).await {
                    Ok(report) => (tenant_id, report),
                    Err(e) => {
                        tracing::error!(tenant_id = %tenant_id, error = %e, "anchor round failed for tenant");
                        // Still report how far behind it is, so a tenant that keeps failing raises the lag
                        // alarm rather than dropping out of the metrics.
                        let lag = self.anchor_lag(&tenant_id).await.unwrap_or_default();
                        let report = SealReport {
                            seal_failed: true,
                            lag,
                            ..SealReport::default()
                        };
                        (tenant_id, report)
                    }
                }
            })
            .buffer_unordered(self.settings.anchor_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Ok(reports)
    }

    /// The tenant's anchor lag now. Events are sealed in `seq` order, so the unsealed ones are the newest: from
    /// the oldest unsealed event to the last committed one.
    pub async fn anchor_lag(&self, tenant_id: &str) -> VaultResult<AnchorLag> {
        let store = &self.ports.store;
        let Some(oldest) = store.unsequenced_events(tenant_id, 1).await?.pop() else {
            return Ok(AnchorLag::default());
        };
        let last_seq = store
            .ledger_tail(tenant_id, 1)
            .await?
            .last()
            .map_or(oldest.seq, |e| e.seq.max(oldest.seq));
        let lag_seconds = chrono::DateTime::parse_from_rfc3339(&oldest.accepted_at)
            .map(|at| {
                let age = chrono::Utc::now().signed_duration_since(at);
                (age.num_milliseconds().max(0) as f64) / 1000.0
            })
            .unwrap_or(0.0);
        Ok(AnchorLag {
            events_behind: u64::try_from(last_seq - oldest.seq + 1).unwrap_or(0),
            oldest_unsequenced_at: Some(oldest.accepted_at),
            lag_seconds,
        })
    }

    /// `GET /ledger/status`: the tenant's sealed tree, its latest checkpoint and its anchor lag.
    pub async fn ledger_status(&self, principal: &Principal) -> VaultResult<LedgerStatus> {
        let tenant_id = &principal.tenant_id;
        let state = self.ports.store.tree_state(tenant_id).await?;
        let lag = self.anchor_lag(tenant_id).await?;
        let interval = self.settings.ledger_mmd_seconds;
        Ok(LedgerStatus {
            tenant_id: tenant_id.clone(),
            tree_size: state.tree_size,
            latest_checkpoint_id: state.latest.as_ref().map(|c| c.checkpoint_id),
            latest_checkpoint_signed_at: state.latest.as_ref().map(|c| c.signed_at.clone()),
            anchor_interval_seconds: interval,
            within_bound: lag.lag_seconds <= (2 * interval) as f64,
            lag,
        })
    }

    /// Seal batch after batch until the tenant has nothing unsequenced or `deadline` has passed (always at least
    /// one batch), then export what was sealed.
    pub async fn catch_up(
        &self,
        tenant_id: &str,
        deadline: std::time::Instant,
    ) -> VaultResult<SealReport> {
        let mut report = SealReport::default();
        while let Some((sequenced, checkpoint_id)) = self.seal(tenant_id).await? {
            report.sequenced += sequenced;
            report.checkpoint_id = Some(checkpoint_id);
            if sequenced < self.settings.anchor_batch_size || std::time::Instant::now() >= deadline
            {
                break;
            }
        }
        let (exported, failed) = self.export_pending(tenant_id).await?;
        report.exported = exported;
        report.export_failed = failed;
        report.lag = self.anchor_lag(tenant_id).await?;
        Ok(report)
    }

    /// One batch: sequence, sign, export.
    pub async fn seal_and_export(&self, tenant_id: &str) -> VaultResult<SealReport> {
        let mut report = SealReport::default();
        if let Some((sequenced, checkpoint_id)) = self.seal(tenant_id).await? {
            report.sequenced = sequenced;
            report.checkpoint_id = Some(checkpoint_id);
        }
        let (exported, failed) = self.export_pending(tenant_id).await?;
        report.exported = exported;
        report.export_failed = failed;
        Ok(report)
    }

    /// Sequence up to a batch of committed events and sign a checkpoint over the grown tree.
    /// Returns `(events sequenced, checkpoint id)`, or `None` when there was nothing to do or another
    /// sealer won the race (it will have sequenced the same events; nothing is sequenced twice).
    pub async fn seal(&self, tenant_id: &str) -> VaultResult<Option<(usize, i64)>> {
        let store = &self.ports.store;
        let state = store.tree_state(tenant_id).await?;
        let events = store
            .unsequenced_leaves(tenant_id, self.settings.anchor_batch_size)
            .await?;
        if events.is_empty() {
            return Ok(None);
        }
        let old_size = state.tree_size;
        let frontier = merkle::range_positions(Range {
            start: 0,
            size: old_size,
        });
        let mut hashes = store.tree_hashes(tenant_id, &frontier).await?;
        let mut nodes = Vec::new();
        let mut leaves = Vec::with_capacity(events.len());
        for (offset, (seq, leaf_hash)) in events.iter().enumerate() {
            let index = old_size + offset as u64;
            let leaf = hex_hash(leaf_hash)?;
            let new = merkle::append_leaf(index, leaf, |p| hashes.get(&p).copied())
                .map_err(|e| VaultError::Internal(e.to_string()))?;
            for (position, hash) in new {
                hashes.insert(position, hash);
                nodes.push((position, hash));
            }
            leaves.push((*seq, index));
        }
        let new_size = old_size + events.len() as u64;
        let root = merkle::range_hash(
            Range {
                start: 0,
                size: new_size,
            },
            &|p| hashes.get(&p).copied(),
        )
        .map_err(|e| VaultError::Internal(e.to_string()))?;
        let root_key = self.ports.signer.root_key().await?;
        let draft = CheckpointDraft {
            checkpoint_id: state.latest.as_ref().map_or(1, |c| c.checkpoint_id + 1),
            tree_size: new_size as i64,
            root_hash: hex::encode(root),
            prev_checkpoint_hash: state
                .latest
                .as_ref()
                .map(|c| c.checkpoint_hash.clone())
                .unwrap_or_default(),
            signer_key_id: root_key.kid().to_string(),
            signed_at: now_rfc3339(),
            mmd_seconds: self.settings.ledger_mmd_seconds,
            export_target: self
                .ports
                .anchor
                .as_ref()
                .map(|a| a.target().to_string())
                .unwrap_or_default(),
        };
        let payload = draft
            .payload()
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let signature = root_key.sign(&payload).await?;
        let checkpoint = draft.seal(&payload, &signature);
        let checkpoint_id = checkpoint.checkpoint_id;
        let seal = Seal {
            expected_tree_size: old_size,
            leaves,
            nodes,
            checkpoint,
        };
        match store.commit(tenant_id, vec![Write::Seal(seal)]).await {
            Ok(_) => Ok(Some((events.len(), checkpoint_id))),
            Err(StoreError::Conflict(Conflict::TreeMoved)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Export every checkpoint not yet exported, oldest first; stop at the first failure so nothing is
    /// exported out of order. Returns `(exported, failed)`.
    pub async fn export_pending(&self, tenant_id: &str) -> VaultResult<(usize, bool)> {
        let Some(anchor) = self.ports.anchor.clone() else {
            return Ok((0, false));
        };
        let pending = self.ports.store.unexported_checkpoints(tenant_id).await?;
        let mut exported = 0;
        for checkpoint in pending {
            match self
                .export_checkpoint(tenant_id, &checkpoint, anchor.as_ref())
                .await
            {
                Ok(()) => exported += 1,
                Err(e) => {
                    tracing::warn!(tenant_id, checkpoint_id = checkpoint.checkpoint_id, error = %e, "export failed; retrying next round");
                    return Ok((exported, true));
                }
            }
        }
        Ok((exported, false))
    }

    async fn export_checkpoint(
        &self,
        tenant_id: &str,
        checkpoint: &Checkpoint,
        anchor: &dyn crate::ports::AnchorSink,
    ) -> VaultResult<()> {
        let store = &self.ports.store;
        let unavailable =
            |e: crate::ports::AnchorError| VaultError::AnchorUnavailable(e.to_string());
        let new_size = checkpoint.tree_size as u64;
        let old_size = match checkpoint.checkpoint_id {
            1 => 0,
            id => store
                .checkpoint(tenant_id, id - 1)
                .await?
                .map_or(0, |c| c.tree_size as u64),
        };
        for tile in tiles::changed_tiles(old_size, new_size) {
            let positions = tile.positions();
            let hashes = store.tree_hashes(tenant_id, &positions).await?;
            let mut body = Vec::with_capacity(positions.len() * 32);
            for p in &positions {
                let hash = hashes
                    .get(p)
                    .ok_or_else(|| VaultError::Internal(format!("tile hash {p:?} missing")))?;
                body.extend_from_slice(hash);
            }
            let key = tiles::hash_tile_path(tile.level, tile.index, tile.width);
            anchor
                .put(tenant_id, &key, body, "application/octet-stream")
                .await
                .map_err(unavailable)?;
        }
        for bundle in tiles::changed_entry_bundles(old_size, new_size) {
            let start = bundle.index * tiles::TILE_WIDTH;
            let entries = store
                .entries(tenant_id, start, start + bundle.width)
                .await?;
            let key = tiles::entries_path(bundle.index, bundle.width);
            anchor
                .put(
                    tenant_id,
                    &key,
                    tiles::entry_bundle(&entries),
                    "application/octet-stream",
                )
                .await
                .map_err(unavailable)?;
        }
        // The object carries the export fields the vault records for it (docs/ledger.md, "Export"): where it is,
        // `exported`, and when; all outside the signed payload. Not the object version, which S3 assigns by
        // this very write: that is in the vault's record and S3's version listing.
        let key = format!("checkpoints/{}.json", checkpoint.checkpoint_id);
        let mut object = checkpoint.clone();
        object.export_uri = anchor.uri(tenant_id, &key);
        object.export_status = EXPORT_DONE.into();
        object.exported_at = Some(now_rfc3339());
        object.export_version_id = None;
        let json =
            serde_json::to_vec_pretty(&object).map_err(|e| VaultError::Internal(e.to_string()))?;
        let exported = anchor
            .put(tenant_id, &key, json, "application/json")
            .await
            .map_err(unavailable)?;
        if exported.uri != object.export_uri {
            return Err(VaultError::Internal(format!(
                "anchor wrote {key} to {} after naming {}",
                exported.uri, object.export_uri
            )));
        }
        let note = self.checkpoint_note(tenant_id, checkpoint).await?;
        anchor
            .put(
                tenant_id,
                "checkpoint",
                note.into_bytes(),
                "text/plain; charset=utf-8",
            )
            .await
            .map_err(unavailable)?;
        let write = Write::MarkExported {
            checkpoint_id: checkpoint.checkpoint_id,
            export_uri: exported.uri,
            export_version_id: exported.version_id,
            exported_at: object.exported_at.unwrap_or_default(),
        };
        store.commit(tenant_id, vec![write]).await?;
        Ok(())
    }

    /// The C2SP tlog checkpoint for a checkpoint, signed by the vault key under the tenant's origin.
    pub async fn checkpoint_note(
        &self,
        tenant_id: &str,
        checkpoint: &Checkpoint,
    ) -> VaultResult<String> {
        let origin = self.log_origin(tenant_id);
        let root = hex_hash(&checkpoint.root_hash)?;
        let body = note::checkpoint_body(&origin, checkpoint.tree_size as u64, &root);
        let root = self.ports.signer.root_key().await?;
        let signature = root.sign(body.as_bytes()).await?;
        Ok(note::signed(&body, &origin, &root.ed25519(), &signature))
    }

    // ----- reads and proofs -----------------------------------------------------------------------------

    pub async fn checkpoints(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> VaultResult<Vec<Checkpoint>> {
        Ok(self
            .ports
            .store
            .checkpoints(
                &principal.tenant_id,
                crate::service::page_limit(limit, MAX_CHECKPOINT_PAGE)?,
            )
            .await?)
    }

    async fn latest_checkpoint(&self, tenant_id: &str) -> VaultResult<Checkpoint> {
        self.ports
            .store
            .tree_state(tenant_id)
            .await?
            .latest
            .ok_or_else(|| {
                VaultError::Conflict(
                    "the ledger has no checkpoint yet; retry after the next anchor round".into(),
                )
            })
    }

    async fn sequenced_event(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> VaultResult<(LedgerEvent, u64)> {
        let event = self
            .ports
            .store
            .latest_event_for_request(tenant_id, request_id)
            .await?
            .ok_or(VaultError::NotFound("ledger event for this request"))?;
        let leaf_index = event.leaf_index.ok_or_else(|| {
            VaultError::Conflict(
                "the event is not sealed into a checkpoint yet; retry after the next anchor round"
                    .into(),
            )
        })?;
        Ok((event, leaf_index as u64))
    }

    async fn proof_hashes(&self, tenant_id: &str, ranges: &[Range]) -> VaultResult<Vec<String>> {
        let positions: Vec<Position> = merkle::positions_for(ranges);
        let stored: HashMap<Position, Hash> =
            self.ports.store.tree_hashes(tenant_id, &positions).await?;
        let hashes =
            merkle::hashes_for(ranges, &stored).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok(hashes.iter().map(hex::encode).collect())
    }

    async fn inclusion_at(
        &self,
        tenant_id: &str,
        event: &LedgerEvent,
        leaf_index: u64,
        checkpoint: Checkpoint,
    ) -> VaultResult<InclusionProof> {
        let tree_size = checkpoint.tree_size as u64;
        let path = self
            .proof_hashes(tenant_id, &merkle::inclusion_ranges(leaf_index, tree_size))
            .await?;
        Ok(InclusionProof {
            event_uuid: event.event_uuid.clone(),
            request_id: event.request_id.clone(),
            event_hash: event.event_hash.clone(),
            leaf_hash: event.leaf_hash.clone(),
            leaf_index,
            tree_size,
            path,
            checkpoint,
        })
    }

    /// Inclusion of the request's latest event in the latest checkpoint.
    pub async fn inclusion_proof(
        &self,
        principal: &Principal,
        request_id: &str,
    ) -> VaultResult<InclusionProof> {
        let tenant_id = &principal.tenant_id;
        let (event, leaf_index) = self.sequenced_event(tenant_id, request_id).await?;
        let latest = self.latest_checkpoint(tenant_id).await?;
        self.inclusion_at(tenant_id, &event, leaf_index, latest)
            .await
    }

    pub async fn consistency_proof(
        &self,
        principal: &Principal,
        from: i64,
        to: i64,
    ) -> VaultResult<ConsistencyProof> {
        let tenant_id = &principal.tenant_id;
        if from > to {
            return Err(VaultError::InvalidRequest(
                "from must not be after to".into(),
            ));
        }
        let load = |id| async move {
            self.ports
                .store
                .checkpoint(tenant_id, id)
                .await?
                .ok_or(VaultError::NotFound("checkpoint"))
        };
        let (from_checkpoint, to_checkpoint) = (load(from).await?, load(to).await?);
        let ranges = merkle::consistency_ranges(
            from_checkpoint.tree_size as u64,
            to_checkpoint.tree_size as u64,
        );
        let path = self.proof_hashes(tenant_id, &ranges).await?;
        Ok(ConsistencyProof {
            from_checkpoint,
            to_checkpoint,
            path,
        })
    }

    /// Everything an auditor needs for one decision: the event, its inclusion in the checkpoint that first
    /// sealed it, consistency from there to the latest checkpoint, and the public keys.
    pub async fn proof_bundle(
        &self,
        principal: &Principal,
        request_id: &str,
    ) -> VaultResult<ProofBundle> {
        let tenant_id = &principal.tenant_id;
        let (event, leaf_index) = self.sequenced_event(tenant_id, request_id).await?;
        let sealed_in = event
            .checkpoint_id
            .ok_or_else(|| VaultError::Internal("sequenced event lacks a checkpoint".into()))?;
        let first = self
            .ports
            .store
            .checkpoint(tenant_id, sealed_in)
            .await?
            .ok_or(VaultError::NotFound("checkpoint"))?;
        let latest = self.latest_checkpoint(tenant_id).await?;
        let consistency = if latest.checkpoint_id > first.checkpoint_id {
            Some(
                self.consistency_proof(principal, first.checkpoint_id, latest.checkpoint_id)
                    .await?,
            )
        } else {
            None
        };
        let inclusion = self
            .inclusion_at(tenant_id, &event, leaf_index, first)
            .await?;
        let mut signers = vec![
            event.receipt_key_id.as_str(),
            &inclusion.checkpoint.signer_key_id,
        ];
        if let Some(c) = &consistency {
            signers.push(&c.to_checkpoint.signer_key_id);
        }
        let keys = self.key_versions(&signers).await?;
        Ok(ProofBundle {
            event,
            inclusion,
            consistency,
            keys,
        })
    }

    /// The keys that signed something among `kids`, with the roots that certified them: what a bundle embeds
    /// so it verifies for ever, whatever was rotated since.
    pub async fn key_versions(&self, kids: &[&str]) -> VaultResult<Vec<KeyVersion>> {
        let mut wanted: Vec<String> = kids.iter().map(|k| k.to_string()).collect();
        let mut versions: Vec<KeyVersion> = Vec::new();
        while let Some(kid) = wanted.pop() {
            if versions.iter().any(|v| v.key_id == kid) {
                continue;
            }
            let key = self
                .ports
                .signer
                .published_key(&kid)
                .await?
                .ok_or_else(|| {
                    VaultError::Internal(format!("signing key {kid} is not in the key registry"))
                })?;
            if let Some(certificate) = &key.certificate {
                wanted.push(certificate.issuer.clone());
            }
            versions.push(KeyVersion::of(&key).map_err(|e| VaultError::Internal(e.to_string()))?);
        }
        Ok(versions)
    }
}
