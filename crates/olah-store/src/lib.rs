//! olah-store: the mirror's cache engine. It knows neither HTTP nor the Hub.
//!
//! * [`BlobStore`]: content-addressed blobs (LFS sha256 / git blob sha1) stored as sparse files,
//!   cut into blocks with per-block CRCs, filled from a [`Source`] on demand with single-flight
//!   streaming fills (see [`blob`]).
//! * [`XorbStore`]: verified byte ranges of Xet xorbs, content-addressed by xorb hash and range
//!   (see [`xorb`]).
//! * [`MetaDb`]: the embedded metadata database (redb) for blob/block state and cached Hub
//!   metadata as JSON values.

pub mod blob;
pub mod error;
pub mod evict;
pub mod key;
pub mod meta;
pub mod xorb;

pub use blob::{Blob, BlobStatus, BlobStore, ByteStream, DEFAULT_BLOCK_SIZE, Source};
pub use error::{Result, SourceError, StoreError};
pub use evict::{Strategy, Usage};
pub use key::BlobKey;
pub use meta::{BlobRecord, BlobUsage, MetaDb};
pub use xorb::{Expect, RangeChunks, UpstreamBytes, XorbRange, XorbStore, XorbStream};
