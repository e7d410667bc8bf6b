//! Requests to absolute URLs the upstream itself handed out: the Xet CAS (with the token of
//! [`CasToken::from_answer`]), presigned xorb URLs of a reconstruction, the LFS CDN URL of a
//! resolve redirect. The host must be on the allow list and redirects are never followed.

use http::{Method, header};
use olah_metrics::UpstreamKind;
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
    /// a caller's Hub token). `range` is a `Range` header value the caller built. `kind` is what
    /// the transfer is for in the upstream metrics (a CDN file, a xorb range, an API answer).
    pub async fn get_absolute(
        &self,
        kind: UpstreamKind,
        url: &str,
        bearer: Option<&str>,
        range: Option<&str>,
    ) -> Result<Response> {
        let url = self.absolute_url(url)?;
        let resp = self
            .send(true, kind, || {
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
        Ok(Response::from_reqwest(resp, kind))
    }

    /// HEAD of an absolute URL the Hub redirected to (the LFS CDN URL of a resolve): allow-listed
    /// hosts only, no credential at all, redirects not followed.
    pub async fn head_absolute(&self, url: &str) -> Result<Response> {
        let url = self.absolute_url(url)?;
        let resp = self
            .send(true, UpstreamKind::api, || {
                self.request(Method::HEAD, url.clone())
                    .header(header::ACCEPT_ENCODING, "identity")
            })
            .await?;
        Ok(Response::from_reqwest(resp, UpstreamKind::api))
    }
}

/// An upstream Xet CAS token, as the Hub's token route hands it out (PROTOCOL.md §3.6).
#[derive(Clone, PartialEq, Eq)]
pub struct CasToken {
    /// Where the CAS lives (`casUrl`). Not checked against the allow list here.
    pub cas_url: String,
    /// The bearer token for the CAS (`accessToken`).
    pub token: String,
    /// Expiry, Unix seconds (`exp`; 0 when absent or unreadable).
    pub exp: u64,
}

impl std::fmt::Debug for CasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("CasToken")
            .field("cas_url", &self.cas_url)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

impl CasToken {
    /// The token of a successful token-route answer: each field from the JSON body, else from
    /// its `X-Xet-*` header (the Hub sends both). `None` when the answer carries no token.
    pub fn from_answer(headers: &http::HeaderMap, body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |json: &str, header: &str| {
            v.get(json)
                .and_then(|x| match x {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .or_else(|| {
                    headers
                        .get(header)
                        .and_then(|x| x.to_str().ok())
                        .map(str::to_string)
                })
        };
        let token = field("accessToken", "x-xet-access-token").filter(|t| !t.is_empty())?;
        Some(Self {
            cas_url: field("casUrl", "x-xet-cas-url").unwrap_or_default(),
            token,
            exp: field("exp", "x-xet-token-expiration")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0),
        })
    }
}

impl Upstream {
    /// `GET {cas}/v1/reconstructions/{file}` with the CAS token, for the bytes `range` (first,
    /// optional last, inclusive) or the whole file. `file` must be a Xet hash (64 lowercase hex
    /// digits); the CAS URL must be on the allow list.
    pub async fn cas_reconstruction(
        &self,
        tok: &CasToken,
        file: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Response> {
        if !(file.len() == 64 && file.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))) {
            return Err(UpstreamError::BadRedirect(format!(
                "not a Xet file hash: {file:?}"
            )));
        }
        let url = format!(
            "{}/v1/reconstructions/{file}",
            tok.cas_url.trim_end_matches('/')
        );
        let range = range.map(|(a, b)| match b {
            Some(b) => format!("bytes={a}-{b}"),
            None => format!("bytes={a}-"),
        });
        self.get_absolute(UpstreamKind::api, &url, Some(&tok.token), range.as_deref())
            .await
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn cas_tokens_come_from_the_body_else_the_headers() {
        let body = br#"{"accessToken":"xet_a","exp":1848535668,"casUrl":"https://cas.example"}"#;
        let t = CasToken::from_answer(&HeaderMap::new(), body).unwrap();
        assert_eq!(
            (t.cas_url.as_str(), t.token.as_str(), t.exp),
            ("https://cas.example", "xet_a", 1848535668)
        );
        assert!(!format!("{t:?}").contains("xet_a"), "Debug hides the token");
        let mut h = HeaderMap::new();
        h.insert("x-xet-access-token", HeaderValue::from_static("xet_h"));
        h.insert("x-xet-cas-url", HeaderValue::from_static("https://cas.h"));
        h.insert("x-xet-token-expiration", HeaderValue::from_static("12"));
        let t = CasToken::from_answer(&h, b"not json").unwrap();
        assert_eq!(
            (t.cas_url.as_str(), t.token.as_str(), t.exp),
            ("https://cas.h", "xet_h", 12)
        );
        // The body wins over the headers, field by field.
        let t = CasToken::from_answer(&h, br#"{"accessToken":"xet_b","exp":"x"}"#).unwrap();
        assert_eq!(
            (t.token.as_str(), t.cas_url.as_str(), t.exp),
            ("xet_b", "https://cas.h", 0)
        );
        assert!(CasToken::from_answer(&HeaderMap::new(), br#"{"accessToken":""}"#).is_none());
        assert!(CasToken::from_answer(&HeaderMap::new(), b"{}").is_none());
    }

    #[tokio::test]
    async fn reconstructions_go_to_an_allowed_cas_with_the_cas_token_only() {
        let cas = crate::test_server::TestServer::start(|_| (200, String::new())).await;
        let base = format!("http://127.0.0.1:{}", cas.port);
        let up = Upstream::new(&base, &[]).unwrap();
        let file = "ab".repeat(32);
        let tok = CasToken {
            cas_url: format!("{base}/"),
            token: "xet_t".into(),
            exp: 0,
        };
        let r = up.cas_reconstruction(&tok, &file, Some((0, Some(9)))).await;
        assert_eq!(r.unwrap().status(), 200);
        let seen = cas.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, format!("/v1/reconstructions/{file}"));
        assert!(seen[0].auth);
        // Not a hash: nothing is sent.
        for bad in ["../x", "AB".repeat(32).as_str(), &"ab".repeat(31)] {
            assert!(
                up.cas_reconstruction(&tok, bad, None).await.is_err(),
                "{bad}"
            );
        }
        // A CAS off the allow list is never contacted.
        let other = Upstream::new("http://127.0.0.1:1", &[]).unwrap();
        assert!(matches!(
            other.cas_reconstruction(&tok, &file, None).await,
            Err(UpstreamError::DisallowedRedirect(_))
        ));
        assert_eq!(cas.seen().len(), 1);
    }
}
