//! The vault's errors: what a port adapter reports (`StoreError`, `SignerError`) and the domain errors the use
//! cases return (`VaultError`), each of which the api crate maps to one HTTP status and error code.

use std::fmt::Display;

use thiserror::Error;

/// Errors a port adapter reports. Adapters map their SDK/driver errors into these.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost: the named condition did not hold.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The store could not be reached or did not answer; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What the store holds cannot be read back (bad JSON, wrong key, truncated record).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// `Unavailable` with the error's message: `.map_err(StoreError::unavailable)`.
    pub fn unavailable(e: impl Display) -> Self {
        StoreError::Unavailable(e.to_string())
    }

    /// `Corrupt` with the error's message: `.map_err(StoreError::corrupt)`.
    pub fn corrupt(e: impl Display) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Which condition of an atomic write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The idempotency key was already recorded.
    IdempotencyKey,
    /// The token id was already burned.
    JtiBurned,
    /// The clearance record already exists, or was not in the expected state.
    ClearanceState,
    /// A record with this identity already exists.
    Duplicate,
    /// The tenant's tree grew since it was read.
    TreeMoved,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Conflict::IdempotencyKey => "idempotency key already used",
            Conflict::JtiBurned => "token already consumed",
            Conflict::ClearanceState => "clearance is not in the expected state",
            Conflict::Duplicate => "record already exists",
            Conflict::TreeMoved => "the tree changed concurrently",
        };
        f.write_str(text)
    }
}

#[derive(Debug, Error)]
pub enum SignerError {
    #[error("signer unavailable: {0}")]
    Unavailable(String),
    #[error("signer misconfigured: {0}")]
    Misconfigured(String),
}

/// Domain errors: each maps to exactly one HTTP status and error code in the api crate.
#[derive(Debug, Error)]
pub enum VaultError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// The key is valid but lacks every role the operation accepts (named here).
    #[error("this API key lacks the role this operation needs: {0}")]
    ForbiddenRole(String),
    /// The key may act, but not on this object (e.g. a reviewer deciding its own request).
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("token already consumed")]
    TokenReplayed,
    #[error("request {0} is not pending review")]
    NotPending(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ToolArgsMismatch(String),
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    #[error("rate limit exceeded")]
    RateLimited { retry_after_seconds: u64 },
    #[error("storage unavailable")]
    StoreUnavailable(#[source] StoreError),
    #[error("signer unavailable")]
    SignerUnavailable(#[source] SignerError),
    #[error("queue unavailable: {0}")]
    QueueUnavailable(String),
    #[error("anchor export unavailable: {0}")]
    AnchorUnavailable(String),
    /// VAULT_MAX_POLICIES_PER_TENANT reached: a new policy id cannot be registered.
    #[error("this tenant already has the maximum of {0} policies; re-register an existing policy_id instead")]
    PolicyLimitReached(usize),
    #[error("internal error: {0}")]
    Internal(String),
    /// Not a failure: the request was already answered under its idempotency key; replay that answer.
    #[error("replay of an earlier response")]
    Replay(Box<crate::model::IdempotencyRecord>),
}

pub type VaultResult<T> = Result<T, VaultError>;

impl From<StoreError> for VaultError {
    fn from(err: StoreError) -> Self {
        VaultError::StoreUnavailable(err)
    }
}

impl From<SignerError> for VaultError {
    fn from(err: SignerError) -> Self {
        VaultError::SignerUnavailable(err)
    }
}
