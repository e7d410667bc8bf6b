//! Requests to the Hub origin: API calls (redirects followed only on the Hub origin) and file
//! downloads (redirects followed to allow-listed CDN hosts, without the caller's token).

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_metrics::UpstreamKind;

use crate::body::Response;
use crate::error::{Result, UpstreamError};
use crate::transport::{MAX_REDIRECTS, Upstream, location, netloc, same_origin};

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

impl HubRequest<'_> {
    /// GET or HEAD without a body: safe to send again.
    fn idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD) && self.body.is_none()
    }
}

impl Upstream {
    /// Sends one request to the Hub. Redirects are NOT followed except those that stay on the
    /// Hub origin (renamed repos answer `307 Location: /new/name/…`): the `Location` is joined
    /// the way every URL parser reads it (`/\host`, `/<TAB>/host` and `//host` name another
    /// host) and only then compared with the Hub origin, so the caller's `Authorization` never
    /// follows a redirect to another host. Any other redirect is returned as the answer.
    /// Idempotent requests are retried per the [`crate::RetryPolicy`]; requests with a body
    /// are sent once.
    pub async fn hub(&self, req: HubRequest<'_>) -> Result<Response> {
        let mut url = self.hub_url(req.path_and_query)?;
        let idempotent = req.idempotent();
        let kind = UpstreamKind::api;
        for _ in 0..=MAX_REDIRECTS {
            let resp = self
                .send(idempotent, kind, || {
                    let mut rb = self
                        .request(req.method.clone(), url.clone())
                        .headers(req.headers.clone());
                    if let Some(a) = req.auth {
                        rb = rb.header(header::AUTHORIZATION, a.clone());
                    }
                    if let Some(b) = &req.body {
                        rb = rb.body(b.clone());
                    }
                    rb
                })
                .await?;
            if !resp.status().is_redirection() {
                return Ok(Response::from_reqwest(resp, kind));
            }
            let Some(next) = location(&resp).and_then(|loc| url.join(&loc).ok()) else {
                return Ok(Response::from_reqwest(resp, kind));
            };
            if !(same_origin(&next, &self.hub) && self.allow.allows(&next)) {
                return Ok(Response::from_reqwest(resp, kind));
            }
            url = next;
        }
        Err(UpstreamError::BadRedirect("too many redirects".into()))
    }

    /// GET a Hub URL following every redirect whose target is on the allow list (max 5), e.g. the
    /// resolve → LFS CDN hop. `Authorization` goes to the Hub origin only. `range` is inclusive.
    /// Counted as a `file` transfer in the upstream metrics.
    pub async fn get_following(
        &self,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
        range: Option<(u64, u64)>,
    ) -> Result<Response> {
        let mut url = self.hub_url(path_and_query)?;
        let kind = UpstreamKind::file;
        for _ in 0..=MAX_REDIRECTS {
            let resp = self
                .send(true, kind, || {
                    let mut rb = self
                        .request(Method::GET, url.clone())
                        .header(header::ACCEPT_ENCODING, "identity");
                    if let Some((a, b)) = range {
                        rb = rb.header(header::RANGE, format!("bytes={a}-{b}"));
                    }
                    if same_origin(&url, &self.hub)
                        && let Some(a) = auth
                    {
                        rb = rb.header(header::AUTHORIZATION, a.clone());
                    }
                    rb
                })
                .await?;
            if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(Response::from_reqwest(resp, kind));
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
}
