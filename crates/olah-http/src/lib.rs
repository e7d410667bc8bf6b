//! olah-http: the Hub-compatible HTTP surface (the only crate that knows axum), and — until they move to olah-service — the mirror's service modules.
//!
//! * [`mirror`]: cache-or-fetch, revalidation, stale-if-error, single-flight (no axum here).
//! * [`access`]: the fail-closed per-caller access gate.
//! * [`http`]: the axum router (serve and model-bin modes) — one route parser, thin handlers;
//!   local sources (`olah_service::source`) first, then the upstream mirror.
//! * [`surface`]: the one resolve/metadata answer writer (headers, conditional requests,
//!   Range, multipart) for every source.
//! * [`error`]: the one place where errors become HTTP responses.
//! * [`serve`]: the listener (connection cap, header and idle timeouts; plain or TLS).

pub mod access;
mod conditional;
pub mod error;
pub mod flight;
pub mod http;
pub mod localgit;
pub mod mirror;
pub mod serve;
pub mod surface;
pub mod tls;
pub mod xet;

pub use crate::http::{App, router};
pub use crate::mirror::Mirror;
