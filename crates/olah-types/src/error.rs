//! Why a path or one of its components was refused (shared by the route parser and the
//! validating constructors of `repo.rs`, which sit below it).

/// Why a path could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route has this shape.
    #[error("no such route")]
    NotFound,
    /// The shape matches (or the path is malformed) but a component is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
}
