//! What the router answers from: the repository sources and, in serve mode, the mirror. Shared
//! by the router (`http.rs`) and the mirror's own pages (`admin/`), so neither reaches into the
//! other for it.

use std::path::PathBuf;
use std::sync::Arc;

use olah_service::Mirror;
use olah_service::source::{DirSource, GitSource, RepoSource, Sources};

/// What the router answers from: repository sources (in precedence order; in serve mode the
/// upstream Hub is the last) and, in serve mode, the mirror for the Hub-only routes.
#[derive(Clone)]
pub struct App {
    pub sources: Sources,
    pub mirror: Option<Arc<Mirror>>,
}

impl App {
    /// Serve mode: the local git repositories of `mirrors-path` (if any), then the upstream.
    pub fn serve(mirror: Arc<Mirror>) -> Self {
        let roots = mirror.policy().config().mirrors_path.clone();
        let mut list: Vec<Arc<dyn RepoSource>> = Vec::new();
        if !roots.is_empty() {
            list.push(Arc::new(GitSource::new(roots)));
        }
        list.push(mirror.source());
        Self {
            sources: Sources::new(list),
            mirror: Some(mirror),
        }
    }

    /// Model-bin mode: the directories under `root` as model repos, nothing else.
    pub fn model_bin(root: PathBuf) -> Self {
        Self::local(Sources::new(vec![Arc::new(DirSource::new(root))]))
    }

    /// Local sources only (no upstream).
    pub fn local(sources: Sources) -> Self {
        Self {
            sources,
            mirror: None,
        }
    }
}

/// Shared state of the handlers.
pub type AppState = App;
