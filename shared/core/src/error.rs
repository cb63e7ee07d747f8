use thiserror::Error;

/// Errors a port adapter reports. Adapters map their SDK/driver errors into these.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A conditional write lost: the named condition did not hold.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
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
