//! olah-upstream: the only place the mirror talks HTTP to the outside world, and the only
//! crate that knows reqwest.
//!
//! * [`transport`]: the client, the allow list and the redirect rules (see its docs: no client
//!   can make the mirror contact a host of its choosing; `Authorization` goes to the Hub origin
//!   only).
//! * [`hub`]: requests to the Hub origin ([`Upstream::hub`], [`Upstream::get_following`]).
//! * [`cas`]: requests to absolute URLs the upstream handed out (CAS reconstructions with a
//!   [`CasToken`], presigned xorb and CDN URLs).
//! * [`retry`]: idempotent requests retried with backoff, honouring `Retry-After`.
//! * [`body`]: the answer type ([`Response`]): status, headers, a streaming body whose errors
//!   are [`UpstreamError`]s, or the whole body under a byte cap.
//!
//! Modules depend downwards only: hub, cas → transport → retry → error; hub, cas → body → error.

pub mod body;
pub mod cas;
pub mod error;
pub mod hub;
pub mod retry;
pub mod transport;

#[cfg(test)]
mod redirect_tests;
#[cfg(test)]
mod retry_tests;
#[cfg(test)]
mod test_server;

pub use body::{ByteStream, Response};
pub use cas::CasToken;
pub use error::{Result, UpstreamError};
pub use hub::HubRequest;
pub use retry::RetryPolicy;
pub use transport::{AllowList, Upstream};
