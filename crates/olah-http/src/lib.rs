//! olah-http: the Hub-compatible HTTP surface — the only crate that knows axum and hyper; the
//! service itself lives in `olah-service`.
//!
//! * [`http`]: the axum router (serve and model-bin modes) — one route parser, thin handlers;
//!   repo routes go to the first source that owns the repo (`olah_service::source`: local git,
//!   directories, then the upstream Hub), all on one path; the Hub-only routes (whoami, Xet
//!   CAS) to the mirror.
//! * [`surface`]: the one resolve/metadata answer writer (headers, conditional requests,
//!   Range, multipart, Xet headers and file info, `Link` rewrite) for every source.
//! * [`error`]: the one place where errors become HTTP responses.
//! * [`serve`]: the listener (connection cap, header and idle timeouts; plain or TLS).

pub mod admin;
pub mod app;
mod conditional;
pub mod error;
pub mod http;
mod request;
pub mod serve;
pub mod surface;
pub mod tls;

pub use crate::app::App;
pub use crate::http::router;
pub use olah_service::Mirror;
