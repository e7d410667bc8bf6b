//! Requests to absolute URLs the upstream itself handed out: the Xet CAS URL of a token answer,
//! presigned xorb URLs of a reconstruction, the LFS CDN URL of a resolve redirect. The host must
//! be on the allow list and redirects are never followed.

use http::{Method, header};
use url::Url;

use crate::body::Response;
use crate::error::{Result, UpstreamError};
use crate::transport::{Upstream, netloc};

impl Upstream {
    /// An allow-listed absolute URL, or why not.
    fn absolute_url(&self, url: &str) -> Result<Url> {
        let url = Url::parse(url).map_err(|e| UpstreamError::BadRedirect(e.to_string()))?;
        if !self.allow.allows(&url) {
            return Err(UpstreamError::DisallowedRedirect(netloc(&url)));
        }
        Ok(url)
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
        let url = self.absolute_url(url)?;
        let resp = self
            .send(true, || {
                let mut rb = self
                    .request(Method::GET, url.clone())
                    .header(header::ACCEPT_ENCODING, "identity");
                if let Some(r) = range {
                    rb = rb.header(header::RANGE, r);
                }
                if let Some(t) = bearer {
                    rb = rb.bearer_auth(t);
                }
                rb
            })
            .await?;
        Ok(Response::from_reqwest(resp))
    }

    /// HEAD of an absolute URL the Hub redirected to (the LFS CDN URL of a resolve): allow-listed
    /// hosts only, no credential at all, redirects not followed.
    pub async fn head_absolute(&self, url: &str) -> Result<Response> {
        let url = self.absolute_url(url)?;
        let resp = self
            .send(true, || {
                self.request(Method::HEAD, url.clone())
                    .header(header::ACCEPT_ENCODING, "identity")
            })
            .await?;
        Ok(Response::from_reqwest(resp))
    }
}
