//! olah-service: what the mirror does, with no HTTP server in it.
//!
//! * [`error`]: [`ServiceError`] — what went wrong, where it came from (client, upstream,
//!   internal) and the Hub error code; the HTTP layer picks the status from it, in one place.
//! * [`source`]: [`source::RepoSource`] — a place Hub repositories come from (the upstream Hub
//!   through the cache, local git repositories, plain directories), behind one HTTP surface.

pub mod error;
pub mod source;

pub use crate::error::{ErrorKind, HubCode, Origin, Relayed, ServiceError};
