//! Placeholder: local git repositories are now `olah_service::source::GitSource`, answered
//! through the one router ([`crate::http::App::serve`] builds it from `mirrors-path`). This type
//! only keeps `Mirror`'s `local` field compiling until `mirror.rs` moves into the service
//! (then the field and this file go).

use std::path::PathBuf;

/// The configured `mirrors-path` roots (unused by the router).
#[derive(Debug, Clone, Default)]
pub struct LocalRepos {
    roots: Vec<PathBuf>,
}

impl LocalRepos {
    /// Repositories under these roots.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self { roots }
    }

    /// No roots configured.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}
