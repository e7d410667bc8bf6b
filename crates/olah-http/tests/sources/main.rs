//! Local repository sources (git repositories and plain directories) through the one router,
//! driven in-process (`tower::ServiceExt::oneshot`).

mod common;
mod dir;
mod git;
mod parity;
