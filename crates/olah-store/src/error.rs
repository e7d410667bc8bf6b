//! Store errors.

/// Errors of the store. Named for what failed, so the server can tell a missing upstream from a
/// broken disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Local disk I/O failed.
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata database failed.
    #[error("metadata database error: {0}")]
    Db(String),
    /// A block is not cached and no upstream source was given (offline).
    #[error("not cached: {0}")]
    NotCached(String),
    /// Fetching from the upstream source failed.
    #[error("upstream fetch failed: {0}")]
    Source(#[from] SourceError),
    /// The upstream sent bytes that do not match what was announced.
    #[error("upstream sent invalid data: {0}")]
    InvalidData(String),
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Why an upstream source could not deliver a range.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// Human-readable reason (never contains credentials).
    pub message: String,
    /// HTTP status the upstream answered, if it answered.
    pub status: Option<u16>,
    /// The bytes already delivered are known to be wrong: readers following the fill must fail
    /// instead of resuming from a new fill.
    pub corrupt: bool,
}

impl SourceError {
    /// A new error with a message and optional upstream status.
    pub fn new(message: impl Into<String>, status: Option<u16>) -> Self {
        Self {
            message: message.into(),
            status,
            corrupt: false,
        }
    }

    /// The source found that what it already delivered is wrong (a hash mismatch).
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            status: None,
            corrupt: true,
        }
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
