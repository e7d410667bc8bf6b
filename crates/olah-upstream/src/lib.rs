//! olah-upstream: the only place the mirror talks HTTP to the outside world.
//!
//! Every request goes to the configured Hub origin on a path the server built from a parsed
//! route (never from raw client text). Redirects are followed by hand, and only to hosts on the
//! allow list (the Hub, its LFS/CDN hosts, operator-configured extras): a client can never make
//! the mirror contact a host of its choosing (olah's `oriloc` SSRF). `Authorization` is sent only
//! to the Hub origin, never to a CDN.

use std::collections::HashSet;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use url::Url;

/// An upstream answer (re-exported so callers need not depend on reqwest).
pub use reqwest::Response;

/// Why an upstream request failed before an HTTP status was received.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream did not answer in time.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// The upstream could not be reached (DNS, connect, TLS, reset).
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream redirected to a host outside the allow list.
    #[error("upstream redirected to a host that is not allowed: {0}")]
    DisallowedRedirect(String),
    /// Too many redirects, or a redirect without a usable Location.
    #[error("bad upstream redirect: {0}")]
    BadRedirect(String),
}

impl UpstreamError {
    fn from_reqwest(e: reqwest::Error) -> Self {
        // Never include the URL: it may carry signed query parameters.
        let e = e.without_url();
        if e.is_timeout() {
            Self::Timeout(e.to_string())
        } else {
            Self::Unreachable(e.to_string())
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = UpstreamError> = std::result::Result<T, E>;

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

fn netloc(u: &Url) -> String {
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
    hub: Url,
    hub_base: String,
    allow: AllowList,
}

/// A request to the Hub.
pub struct HubRequest<'a> {
    /// HTTP method.
    pub method: Method,
    /// Percent-encoded path and optional query, starting with '/'.
    pub path_and_query: &'a str,
    /// The caller's `Authorization`, forwarded to the Hub origin only.
    pub auth: Option<&'a HeaderValue>,
    /// Extra headers (Range, Content-Type, Accept-Encoding…).
    pub headers: HeaderMap,
    /// Request body (form posts).
    pub body: Option<bytes::Bytes>,
}

const MAX_REDIRECTS: usize = 5;

impl Upstream {
    /// A client for the Hub at `hub_base` (`scheme://netloc`), allowed to follow redirects to
    /// `extra_hosts` as well.
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
        })
    }

    /// `scheme://netloc` of the Hub, without a trailing slash.
    pub fn hub_base(&self) -> &str {
        &self.hub_base
    }

    /// The allow list in force.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// Sends one request to the Hub. Redirects are NOT followed except those that stay on the
    /// Hub origin (renamed repos answer `307 Location: /new/name/…`): the `Location` is joined
    /// the way every URL parser reads it (`/\host`, `/<TAB>/host` and `//host` name another
    /// host) and only then compared with the Hub origin, so the caller's `Authorization` never
    /// follows a redirect to another host. Any other redirect is returned as the answer.
    pub async fn hub(&self, req: HubRequest<'_>) -> Result<reqwest::Response> {
        let mut url = self.hub_url(req.path_and_query)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = self
                .client
                .request(req.method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(a) = req.auth {
                rb = rb.header(header::AUTHORIZATION, a.clone());
            }
            if let Some(b) = &req.body {
                rb = rb.body(b.clone());
            }
            let resp = rb.send().await.map_err(UpstreamError::from_reqwest)?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(next) = location(&resp).and_then(|loc| url.join(&loc).ok()) else {
                return Ok(resp);
            };
            if !(same_origin(&next, &self.hub) && self.allow.allows(&next)) {
                return Ok(resp);
            }
            url = next;
        }
        Err(UpstreamError::BadRedirect("too many redirects".into()))
    }

    /// GET a Hub URL following every redirect whose target is on the allow list (max 5), e.g. the
    /// resolve → LFS CDN hop. `Authorization` goes to the Hub origin only. `range` is inclusive.
    pub async fn get_following(
        &self,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
        range: Option<(u64, u64)>,
    ) -> Result<reqwest::Response> {
        let mut url = self.hub_url(path_and_query)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = self
                .client
                .get(url.clone())
                .header(header::ACCEPT_ENCODING, "identity");
            if let Some((a, b)) = range {
                rb = rb.header(header::RANGE, format!("bytes={a}-{b}"));
            }
            if same_origin(&url, &self.hub)
                && let Some(a) = auth
            {
                rb = rb.header(header::AUTHORIZATION, a.clone());
            }
            let resp = rb.send().await.map_err(UpstreamError::from_reqwest)?;
            if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let loc = location(&resp)
                .ok_or_else(|| UpstreamError::BadRedirect("redirect without Location".into()))?;
            let next = url
                .join(&loc)
                .map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
            if !self.allow.allows(&next) {
                return Err(UpstreamError::DisallowedRedirect(netloc(&next)));
            }
            url = next;
        }
        Err(UpstreamError::BadRedirect("too many redirects".into()))
    }

    /// GET an absolute URL the upstream itself handed out (the Xet CAS URL of a token answer, a
    /// presigned xorb URL of a reconstruction). The host must be on the allow list, redirects
    /// are not followed, and the only credential sent is `bearer` (an upstream CAS token, never
    /// a caller's Hub token). `range` is a `Range` header value the caller built.
    pub async fn get_absolute(
        &self,
        url: &str,
        bearer: Option<&str>,
        range: Option<&str>,
    ) -> Result<Response> {
        let url = Url::parse(url).map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
        if !self.allow.allows(&url) {
            return Err(UpstreamError::DisallowedRedirect(netloc(&url)));
        }
        let mut rb = self
            .client
            .get(url)
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(r) = range {
            rb = rb.header(header::RANGE, r);
        }
        if let Some(t) = bearer {
            rb = rb.bearer_auth(t);
        }
        rb.send().await.map_err(UpstreamError::from_reqwest)
    }

    /// HEAD of an absolute URL the Hub redirected to (the LFS CDN URL of a resolve): allow-listed
    /// hosts only, no credential at all, redirects not followed.
    pub async fn head_absolute(&self, url: &str) -> Result<Response> {
        let url = Url::parse(url).map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
        if !self.allow.allows(&url) {
            return Err(UpstreamError::DisallowedRedirect(netloc(&url)));
        }
        self.client
            .head(url)
            .header(header::ACCEPT_ENCODING, "identity")
            .send()
            .await
            .map_err(UpstreamError::from_reqwest)
    }

    /// The Hub URL of a path: joined like a redirect would be, and refused unless it stays on
    /// the Hub origin (a path such as `//host/…` or `/\host/…` would name another host).
    fn hub_url(&self, path_and_query: &str) -> Result<Url> {
        let url = self
            .hub
            .join(path_and_query)
            .map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
        if !same_origin(&url, &self.hub) {
            return Err(UpstreamError::DisallowedRedirect(netloc(&url)));
        }
        Ok(url)
    }

    /// Whether a URL handed out by the upstream may be contacted.
    pub fn allows_url(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| self.allow.allows(&u))
    }
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

fn same_origin(a: &Url, b: &Url) -> bool {
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

/// Redirect handling against local servers that record what reached them.
#[cfg(test)]
mod redirect_tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// One request as a test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        target: String,
        auth: bool,
    }

    /// A loopback HTTP/1.1 server: answers every request with `answer(target)` (status and
    /// extra header lines) and records the request target and whether `Authorization` came.
    struct TestServer {
        port: u16,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        async fn start(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Self {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = tcp.local_addr().unwrap().port();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (answer, log) = (Arc::new(answer), seen.clone());
            let task = tokio::spawn(async move {
                while let Ok((mut s, _)) = tcp.accept().await {
                    let (answer, log) = (answer.clone(), log.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                        let auth = head
                            .lines()
                            .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
                        log.lock().unwrap().push(Seen {
                            target: target.clone(),
                            auth,
                        });
                        let (status, extra) = answer(&target);
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\n{extra}content-length: 2\r\nconnection: close\r\n\r\nok"
                        );
                        let _ = s.write_all(resp.as_bytes()).await;
                    });
                }
            });
            Self { port, seen, task }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// A Hub whose `/start` redirects to `location` (with `{other}` replaced by the other
    /// server's port) and answers 200 elsewhere, and the other server.
    async fn hub_redirecting(location: &'static str) -> (TestServer, TestServer) {
        let other = TestServer::start(|_| (200, String::new())).await;
        let other_port = other.port;
        let hub = TestServer::start(move |target| {
            if target == "/start" {
                let loc = location.replace("{other}", &other_port.to_string());
                (307, format!("location: {loc}\r\n"))
            } else {
                (200, String::new())
            }
        })
        .await;
        (hub, other)
    }

    /// Locations that name another host however they are spelled: `/\host`, `/<TAB>/host`,
    /// `//host`, `\\host` and an absolute URL.
    const CROSS_HOST: &[&str] = &[
        "/\\127.0.0.1:{other}/stolen",
        "/\t/127.0.0.1:{other}/stolen",
        "//127.0.0.1:{other}/stolen",
        "\\\\127.0.0.1:{other}/stolen",
        "http://127.0.0.1:{other}/stolen",
    ];

    fn token() -> HeaderValue {
        HeaderValue::from_static("Bearer hf_secret")
    }

    async fn call_hub(up: &Upstream) -> reqwest::Response {
        let auth = token();
        up.hub(HubRequest {
            method: Method::GET,
            path_and_query: "/start",
            auth: Some(&auth),
            headers: HeaderMap::new(),
            body: None,
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn hub_never_follows_a_redirect_to_another_host() {
        for loc in CROSS_HOST {
            let (hub, other) = hub_redirecting(loc).await;
            // Even with the other host on the allow list (a CDN): `hub` follows same-origin
            // redirects only, so the redirect itself is the answer.
            let up = Upstream::new(
                &format!("http://127.0.0.1:{}", hub.port),
                &[format!("127.0.0.1:{}", other.port)],
            )
            .unwrap();
            let resp = call_hub(&up).await;
            assert_eq!(resp.status().as_u16(), 307, "{loc:?}");
            assert!(
                other.seen().is_empty(),
                "{loc:?} reached {:?}",
                other.seen()
            );
            assert_eq!(hub.seen().len(), 1, "{loc:?}");
        }
    }

    #[tokio::test]
    async fn hub_follows_same_origin_redirects_with_the_token() {
        for loc in [
            "/moved/here",
            "/%2F%2F127.0.0.1:{other}/x",
            "http://127.0.0.1:{hub}/m",
        ] {
            let other = TestServer::start(|_| (200, String::new())).await;
            let other_port = other.port;
            let hub_port = Arc::new(Mutex::new(0u16));
            let hp = hub_port.clone();
            let hub = TestServer::start(move |target| {
                if target == "/start" {
                    let loc = loc
                        .replace("{other}", &other_port.to_string())
                        .replace("{hub}", &hp.lock().unwrap().to_string());
                    (307, format!("location: {loc}\r\n"))
                } else {
                    (200, String::new())
                }
            })
            .await;
            *hub_port.lock().unwrap() = hub.port;
            let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
            let resp = call_hub(&up).await;
            assert_eq!(resp.status().as_u16(), 200, "{loc:?}");
            let seen = hub.seen();
            assert_eq!(seen.len(), 2, "{loc:?}: {seen:?}");
            assert_ne!(seen[1].target, "/start");
            assert!(
                seen.iter().all(|s| s.auth),
                "the Hub gets the token: {seen:?}"
            );
            assert!(other.seen().is_empty(), "{loc:?}");
        }
    }

    #[tokio::test]
    async fn get_following_sends_the_token_to_the_hub_only() {
        for loc in CROSS_HOST {
            // Not on the allow list: refused before any request reaches it.
            let (hub, other) = hub_redirecting(loc).await;
            let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
            let auth = token();
            let r = up.get_following("/start", Some(&auth), None).await;
            assert!(
                matches!(r, Err(UpstreamError::DisallowedRedirect(_))),
                "{loc:?}: {r:?}"
            );
            assert!(other.seen().is_empty(), "{loc:?}");
            // On the allow list (a CDN): followed, without the token.
            let up = Upstream::new(
                &format!("http://127.0.0.1:{}", hub.port),
                &[format!("127.0.0.1:{}", other.port)],
            )
            .unwrap();
            let resp = up.get_following("/start", Some(&auth), None).await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{loc:?}");
            let seen = other.seen();
            assert_eq!(seen.len(), 1, "{loc:?}");
            assert!(!seen[0].auth, "{loc:?}: the token reached another host");
            assert!(hub.seen().iter().all(|s| s.auth));
        }
    }

    #[tokio::test]
    async fn paths_that_name_another_host_are_refused() {
        let (hub, other) = hub_redirecting("/x").await;
        let up = Upstream::new(
            &format!("http://127.0.0.1:{}", hub.port),
            &[format!("127.0.0.1:{}", other.port)],
        )
        .unwrap();
        let auth = token();
        for p in CROSS_HOST {
            let p = p.replace("{other}", &other.port.to_string());
            let r = up
                .hub(HubRequest {
                    method: Method::GET,
                    path_and_query: &p,
                    auth: Some(&auth),
                    headers: HeaderMap::new(),
                    body: None,
                })
                .await;
            assert!(r.is_err(), "{p:?}");
            assert!(up.get_following(&p, Some(&auth), None).await.is_err());
        }
        assert!(other.seen().is_empty() && hub.seen().is_empty());
    }

    #[tokio::test]
    async fn get_absolute_contacts_allowed_hosts_only() {
        let (hub, other) = hub_redirecting("/x").await;
        let up = Upstream::new(&format!("http://127.0.0.1:{}", hub.port), &[]).unwrap();
        for u in [
            format!("http://127.0.0.1:{}/cas", other.port),
            format!("http://127.0.0.1:{}@127.0.0.1:{}/", hub.port, other.port),
            format!("http:/\\127.0.0.1:{}/cas", other.port),
        ] {
            assert!(up.get_absolute(&u, Some("t"), None).await.is_err(), "{u}");
        }
        assert!(other.seen().is_empty());
    }
}
