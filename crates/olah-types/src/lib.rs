//! olah-types: the mirror's pure domain types and its single URL route parser. No I/O.
//!
//! * [`repo`]: repository kind, id, revision and in-repo path, validated on construction.
//! * [`route`]: [`parse_route`], the only place request paths are interpreted, and
//!   [`Route::upstream_path`], the only way upstream paths are written.
//! * [`range`]: HTTP `Range` header parsing and resolution (RFC 9110 §14).
//! * [`conditional`]: `If-None-Match` / `If-Range` / `Range` → what to answer (RFC 9110 §13),
//!   shared by every source of files.

#![warn(missing_docs)]

pub mod conditional;
pub mod error;
pub mod range;
pub mod repo;
pub mod route;

pub use conditional::{Answer as ConditionalAnswer, Conditions};
pub use range::{ByteRangeSpec, RangeParseError, parse_range_header};
pub use repo::{RepoId, RepoPath, RepoRef, RepoType, Revision};
pub use route::{AdminRoute, BucketWriteOp, CacheOp, Route, RouteError, parse_route};
