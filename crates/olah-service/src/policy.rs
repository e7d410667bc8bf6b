//! What the configuration allows: which repos the mirror proxies and caches, offline mode, the
//! metadata TTL, Xet mode, and the public base URL the mirror hands out.

use std::sync::Arc;

use olah_config::Config;
use olah_types::RepoRef;

use crate::error::{ErrorKind, HubCode, Origin, ServiceError};

/// The configured rules, shared (cheaply cloned) by every service part.
#[derive(Clone)]
pub struct Policy {
    cfg: Arc<Config>,
}

impl Policy {
    /// Rules from a validated configuration.
    pub fn new(cfg: Arc<Config>) -> Self {
        Self { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// Whether `[[accessibility.proxy]]` lets the mirror fetch this repo at all.
    pub fn proxy_allowed(&self, repo: &RepoRef) -> bool {
        olah_config::decide(&self.cfg.proxy_rules, repo.id.as_str())
    }

    /// [`Policy::proxy_allowed`] as an answer: a refused repo looks like a missing one (403
    /// `RepoNotFound`).
    pub fn check_proxy(&self, repo: &RepoRef) -> Result<(), ServiceError> {
        if self.proxy_allowed(repo) {
            return Ok(());
        }
        Err(ServiceError::new(
            ErrorKind::Forbidden,
            Origin::Client,
            HubCode::RepoNotFound,
            format!(
                "{} is not allowed by this mirror's proxy rules",
                repo.id.as_str()
            ),
        ))
    }

    /// Whether `[[accessibility.cache]]` lets the mirror keep (and serve from disk) this repo.
    pub fn cache_allowed(&self, repo: &RepoRef) -> bool {
        olah_config::decide(&self.cfg.cache_rules, repo.id.as_str())
    }

    /// The metadata TTL in seconds.
    pub fn ttl(&self) -> u64 {
        self.cfg.metadata_cache_ttl
    }

    /// Offline mode: the upstream is never contacted.
    pub fn offline(&self) -> bool {
        self.cfg.offline
    }

    /// `--xet serve` (clients speak Xet to the mirror) rather than plain.
    pub fn xet_mode_serve(&self) -> bool {
        self.cfg.xet_mode == olah_config::XetMode::Serve
    }

    /// The base URL clients reach the mirror at, for the URLs the mirror hands out (Xet
    /// `casUrl`, `Link`s): the configured scheme and the `Host` the client used when it is one
    /// of the names the mirror answers to (`mirror-netloc`, `mirror-lfs-netloc`,
    /// `mirror-names`), else `mirror-netloc`. A `Host` is never echoed otherwise: behind a shared
    /// cache that ignores it, one request naming another host would send every client's mirror
    /// token there.
    pub fn mirror_base(&self, host: Option<&str>) -> String {
        let cfg = &self.cfg;
        let netloc = host
            .map(str::trim)
            .filter(|h| {
                std::iter::once(&cfg.mirror_netloc)
                    .chain([&cfg.mirror_lfs_netloc])
                    .chain(&cfg.mirror_names)
                    .any(|name| same_netloc(h, name, &cfg.mirror_scheme))
            })
            .unwrap_or(&cfg.mirror_netloc);
        format!("{}://{}", cfg.mirror_scheme, netloc)
    }
}

/// Whether two `host[:port]`s name the same place for `scheme` (case-insensitive host, the
/// scheme's default port implied when absent).
fn same_netloc(a: &str, b: &str, scheme: &str) -> bool {
    let default = if scheme == "https" { "443" } else { "80" };
    let norm = |s: &str| {
        let s = s.to_ascii_lowercase();
        // `host:port` or `[v6]:port`; a bare IPv6 literal has no port.
        let has_port = s.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        });
        if has_port {
            s
        } else {
            format!("{s}:{default}")
        }
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlocs_compare_with_the_default_port_and_any_case() {
        assert!(same_netloc("Mirror.LAN", "mirror.lan:80", "http"));
        assert!(same_netloc("mirror.lan:443", "mirror.lan", "https"));
        assert!(!same_netloc("mirror.lan:443", "mirror.lan", "http"));
        assert!(same_netloc("127.0.0.1:8090", "127.0.0.1:8090", "http"));
        assert!(!same_netloc("127.0.0.1:8091", "127.0.0.1:8090", "http"));
        assert!(same_netloc("[::1]:8090", "[::1]:8090", "http"));
        assert!(same_netloc("[::1]", "[::1]:80", "http"));
        assert!(!same_netloc("evil.example", "mirror.lan", "http"));
        assert!(!same_netloc(
            "mirror.lan.evil.example:80",
            "mirror.lan:80",
            "http"
        ));
    }

    #[test]
    fn the_base_echoes_only_a_known_host() {
        let cfg = Config {
            mirror_scheme: "http".into(),
            mirror_netloc: "mirror.lan:8090".into(),
            mirror_names: vec!["alias.lan:8090".into()],
            ..Default::default()
        };
        let p = Policy::new(Arc::new(cfg));
        assert_eq!(
            p.mirror_base(Some("alias.lan:8090")),
            "http://alias.lan:8090"
        );
        assert_eq!(
            p.mirror_base(Some("evil.example")),
            "http://mirror.lan:8090"
        );
        assert_eq!(p.mirror_base(None), "http://mirror.lan:8090");
    }
}
