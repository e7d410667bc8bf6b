//! Repository sources (the upstream Hub, git repositories, plain directories) through the one router,
//! driven in-process (`tower::ServiceExt::oneshot`).

mod common;
mod dir;
mod git;
mod hub;
mod parity;
