//! olah-http: the Hub-compatible HTTP surface (the only crate that knows axum); the service
//! itself lives in `olah-service`.
//!
//! * [`http`]: the axum router — one route parser, thin handlers.
//! * [`error`]: the one place where errors become HTTP responses.
//! * [`serve`]: the listener (connection cap, header and idle timeouts; plain or TLS).

mod conditional;
pub mod error;
pub mod http;
mod hubjson;
pub mod localgit;
pub mod modelbin;
pub mod serve;
pub mod timefmt;
pub mod tls;
mod xet;

pub use crate::http::router;
pub use olah_service::Mirror;
