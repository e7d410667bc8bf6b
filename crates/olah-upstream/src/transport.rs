//! The HTTP client, the allow list and the redirect rules every request goes through.
//!
//! Every request goes to the configured Hub origin on a path the server built from a parsed
//! route (never from raw client text). Redirects are followed by hand, and only to hosts on the
//! allow list (the Hub, its LFS/CDN hosts, operator-configured extras): a client can never make
//! the mirror contact a host of its choosing (olah's `oriloc` SSRF). `Authorization` is sent only
//! to the Hub origin, never to a CDN.

use std::collections::HashSet;
use std::time::Duration;

use http::header;
use olah_metrics::UpstreamKind;
use url::Url;

use crate::error::{Result, UpstreamError};
use crate::retry::{self, RetryPolicy};

/// Hosts the mirror may contact.
#[derive(Debug, Clone)]
pub struct AllowList {
    exact: HashSet<String>,
    suffixes: Vec<String>,
}

impl AllowList {
    /// The hub origin's host, the LFS host and extra `host[:port]`s; for the public Hub also its
    /// CDN domains (`*.huggingface.co`, `*.hf.co`, where the LFS and Xet bridge hosts live).
    pub fn new(hub: &Url, extra: &[String]) -> Self {
        let mut exact = HashSet::new();
        exact.insert(netloc(hub));
        for h in extra {
            let h = h.trim().to_ascii_lowercase();
            if !h.is_empty() {
                exact.insert(h);
            }
        }
        let host = hub.host_str().unwrap_or_default().to_ascii_lowercase();
        let suffixes =
            if host == "huggingface.co" || host == "hf.co" || host.ends_with(".huggingface.co") {
                vec![".huggingface.co".to_string(), ".hf.co".to_string()]
            } else {
                Vec::new()
            };
        Self { exact, suffixes }
    }

    /// Whether a URL may be fetched.
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https")
            || url.username() != ""
            || url.password().is_some()
        {
            return false;
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if self.exact.contains(&netloc(url)) || self.exact.contains(&host) && url.port().is_none() {
            return true;
        }
        url.scheme() == "https"
            && url.port().is_none()
            && self.suffixes.iter().any(|s| host.ends_with(s.as_str()))
    }
}

pub(crate) fn netloc(u: &Url) -> String {
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    pub(crate) hub: Url,
    hub_base: String,
    pub(crate) allow: AllowList,
    retry: RetryPolicy,
}

/// Most redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 5;

impl Upstream {
    /// A client for the Hub at `hub_base` (`scheme://netloc`), allowed to follow redirects to
    /// `extra_hosts` as well. Idempotent requests are retried per [`RetryPolicy::default`].
    pub fn new(hub_base: &str, extra_hosts: &[String]) -> Result<Self, String> {
        let hub = Url::parse(hub_base).map_err(|e| format!("bad upstream URL {hub_base}: {e}"))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("olah-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let allow = AllowList::new(&hub, extra_hosts);
        Ok(Self {
            client,
            hub_base: hub_base.trim_end_matches('/').to_string(),
            hub,
            allow,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy ([`RetryPolicy::none`] turns retries off).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// `scheme://netloc` of the Hub, without a trailing slash.
    pub fn hub_base(&self) -> &str {
        &self.hub_base
    }

    /// The allow list in force.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Whether a URL handed out by the upstream may be contacted.
    pub fn allows_url(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| self.allow.allows(&u))
    }

    /// A request builder of this client.
    pub(crate) fn request(&self, method: http::Method, url: Url) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends one request (no redirect followed), retried per the policy when `idempotent`;
    /// counted in the upstream metrics under `kind`.
    pub(crate) async fn send(
        &self,
        idempotent: bool,
        kind: UpstreamKind,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        retry::send(&self.retry, idempotent, kind, build).await
    }

    /// The Hub URL of a path: joined like a redirect would be, and refused unless it stays on
    /// the Hub origin (a path such as `//host/…` or `/\host/…` would name another host).
    pub(crate) fn hub_url(&self, path_and_query: &str) -> Result<Url> {
        let url = self
            .hub
            .join(path_and_query)
            .map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
        if !same_origin(&url, &self.hub) {
            return Err(UpstreamError::DisallowedRedirect(netloc(&url)));
        }
        Ok(url)
    }
}

/// The `Location` of an answer, if it is text.
pub(crate) fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_exact_for_custom_upstreams() {
        let hub = Url::parse("http://127.0.0.1:18080").unwrap();
        let a = AllowList::new(&hub, &["127.0.0.1:18081".into()]);
        assert!(a.allows(&Url::parse("http://127.0.0.1:18080/x").unwrap()));
        assert!(a.allows(&Url::parse("http://127.0.0.1:18081/lfs/abc").unwrap()));
        assert!(!a.allows(&Url::parse("http://127.0.0.1:9999/").unwrap()));
        assert!(!a.allows(&Url::parse("http://169.254.169.254/latest").unwrap()));
        assert!(!a.allows(&Url::parse("file:///etc/passwd").unwrap()));
        assert!(!a.allows(&Url::parse("http://user:pw@127.0.0.1:18081/").unwrap()));
    }

    #[test]
    fn allow_list_covers_hub_cdn_domains_over_https_only() {
        let hub = Url::parse("https://huggingface.co").unwrap();
        let a = AllowList::new(&hub, &[]);
        assert!(a.allows(&Url::parse("https://cdn-lfs.huggingface.co/repos/a").unwrap()));
        assert!(a.allows(&Url::parse("https://cas-bridge.xethub.hf.co/xet-bridge-us/x").unwrap()));
        assert!(a.allows(&Url::parse("https://huggingface.co/api/models").unwrap()));
        assert!(!a.allows(&Url::parse("http://cdn-lfs.huggingface.co/").unwrap()));
        assert!(!a.allows(&Url::parse("https://evilhf.co/").unwrap()));
        assert!(!a.allows(&Url::parse("https://huggingface.co.evil.com/").unwrap()));
        assert!(!a.allows(&Url::parse("https://cdn.hf.co:8443/").unwrap()));
    }
}
