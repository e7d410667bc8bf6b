//! olah-server: the mirror's service logic and its Hub-compatible HTTP surface.
//!
//! * [`mirror`]: cache-or-fetch, revalidation, stale-if-error, single-flight (no axum here).
//! * [`access`]: the fail-closed per-caller access gate.
//! * [`http`]: the axum router — one route parser, thin handlers.
//! * [`error`]: the one place where errors become HTTP responses.

pub mod access;
pub mod error;
pub mod flight;
pub mod http;
pub mod mirror;
pub mod xet;

use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::http::router;
pub use crate::mirror::Mirror;

/// Binds the listener and serves until `shutdown` resolves.
pub async fn serve(
    mirror: Arc<Mirror>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(mirror).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
