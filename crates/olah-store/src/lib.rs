//! olah-store: the mirror's cache engine. It knows neither HTTP nor the Hub.
//!
//! * [`BlobStore`]: content-addressed blobs (LFS sha256 / git blob sha1) cut into blocks with
//!   per-block CRCs, filled from a [`Source`] on demand with single-flight streaming fills (see
//!   [`blob`] and [`fill`]).
//! * [`XorbStore`]: verified byte ranges of Xet xorbs, content-addressed by xorb hash and range
//!   (see [`xorb`]).
//! * [`backend`]: where bytes live ([`BlockIo`], [`ObjectIo`]/[`StagedWrite`]): the disk, or
//!   memory for tests.
//! * [`index`]: the metadata index traits ([`BlobIndex`], [`KvIndex`]); [`MetaDb`] (redb) is the
//!   embedded implementation, [`RedbIndex`] its async face.
//! * [`budget`]: the cache size limit over any list of [`Evictable`] parts.
//!
//! * [`tools`]: the cache tools' store work (re-hash, drop a blob, garbage).
//!
//! Module edges point one way: `util`, `error`, `key` ← `backend`, `meta` ← `index` ←
//! `budget`, `fill` ← `blob`, `xorb` ← `tools`.

pub mod backend;
pub mod blob;
pub mod budget;
pub mod error;
pub mod fill;
pub mod index;
pub mod key;
pub mod meta;
pub mod tools;
mod trust;
mod util;
pub mod xorb;

pub use backend::{BlobData, BlockIo, FileId, HeldRange, ObjectIo, ReadAt, StagedWrite};
pub use blob::{
    Blob, BlobStatus, BlobStore, ByteStream, DEFAULT_BLOCK_SIZE, PIECE, READ_BUDGET,
    READ_BUDGET_WAIT, Source, TaggedStream,
};
pub use budget::{Evictable, Strategy, Usage, Victim};
pub use error::{Result, SourceError, StoreError};
pub use fill::{Claim, FillLock};
pub use index::{BlobIndex, KvIndex, KvIndexExt, RedbIndex};
pub use key::{BlobKey, SessionId, XorbRange};
pub use meta::{BlobRecord, BlobUsage, MetaDb};
pub use tools::{BlobCheck, GcReason, XorbCheck};
pub use xorb::{Expect, RangeChunks, UpstreamBytes, XorbStore, XorbStream};
