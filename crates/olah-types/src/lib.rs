//! olah-types: the mirror's pure domain types and its single URL route parser. No I/O.

pub mod range;
pub mod route;

pub use range::{ByteRangeSpec, RangeParseError, parse_range_header};
pub use route::{RepoId, RepoPath, RepoRef, RepoType, Revision, Route, RouteError, parse_route};
