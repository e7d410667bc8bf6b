//! Reconstruction answers from the cache or the upstream CAS, and signed xorb ranges served
//! from the xorb store (filled once from the upstream presigned URL on a miss).

use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;
use olah_metrics::ServedFrom;
use olah_store::{Expect, SourceError, StoreError, UpstreamBytes, XorbRange};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::recon::{XorbQuery, parse_span};
use super::*;
use crate::common::{now, read_answer};

impl XetMirror {
    /// A reconstruction for the session: cached when the file is known to belong to its repo and
    /// every fetch range is either cached or still has a fresh upstream URL; else upstream.
    pub(super) async fn reconstruction(
        self: &Arc<Self>,
        s: &Session,
        file: &str,
        range: Option<XetRange>,
    ) -> Result<Recon, ServiceError> {
        let key = recon_key(file, range);
        if self.knows_file(&s.repo, file).await
            && let Some(r) = self.db.get_json::<Recon>(key.clone()).await
        {
            // Off the async workers: one store lookup per range not covered by a fresh URL.
            let mut usable = true;
            if !self.policy.offline() {
                for (h, b) in r.ranges() {
                    if self.state.fresh_url(h, b).is_none()
                        && !matches!(
                            self.state.store.coverage(h, store_range(b)).await,
                            Ok(Some(_))
                        )
                    {
                        usable = false;
                        break;
                    }
                }
            }
            if usable {
                return Ok(r);
            }
        }
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&format!(
                "the reconstruction of {file}"
            )));
        }
        let tok = self.upstream_cas_token(s).await?;
        let resp = self.upstream.cas_reconstruction(&tok, file, range).await?;
        let (status, h, body) = read_answer(resp).await?;
        if !status.is_success() {
            if status == StatusCode::UNAUTHORIZED {
                // The upstream token went stale: forget it so the next call asks again.
                let k = s.cas_token_key();
                self.state.up_tokens.invalidate(&k);
            }
            return Err(ServiceError::relayed(status, &h, body));
        }
        let (recon, urls) =
            olah_xet::recon::parse_upstream(&body).map_err(ServiceError::bad_upstream)?;
        for (h, b, u) in urls {
            if self.upstream.allows_url(&u) {
                self.state.urls.insert((h, b.start, b.end), u);
            }
        }
        self.learn_files(&s.repo, vec![file.to_string()]).await;
        if self.policy.cache_allowed(&s.repo) {
            let r2 = recon.clone();
            self.db.run(move |db| db.put_json(&key, &r2)).await?;
        }
        Ok(recon)
    }

    /// `GET /cas/v{1,2}/reconstructions/{file}` with the mirror token in `bearer`.
    pub async fn reconstruction_json(
        self: &Arc<Self>,
        version: u8,
        file: &str,
        range: Option<&str>,
        bearer: Option<&str>,
        base: &str,
    ) -> Result<Value, ServiceError> {
        let s = match bearer {
            Some(t) => self.session(t).await,
            None => None,
        }
        .ok_or_else(|| unauthorized("invalid or expired Xet token"))?;
        if !self.policy.proxy_allowed(&s.repo) || !self.serves(&s.repo) {
            return Err(disabled());
        }
        let range = simple_range(range).map_err(ServiceError::bad_request)?;
        let r = self.reconstruction(&s, file, range).await?;
        self.spawn_verify(&r, (*s).clone(), file.to_string());
        Ok(self.state.render(&r, version, base, file))
    }

    /// `GET /cas/xorb/{xorb}?…`: checks the mirror's signature, then streams the requested bytes
    /// (`Range`, within the signed range) from the store or a fill. Returns the served range.
    pub async fn xorb(
        self: &Arc<Self>,
        xorb: &str,
        query: Option<&str>,
        range: Option<&str>,
    ) -> Result<(XorbRange, olah_store::XorbStream), ServiceError> {
        let q: XorbQuery = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| forbidden("unsigned xorb URL"))?;
        let (c, b) = match (parse_span(&q.c), parse_span(&q.b)) {
            (Some(c), Some(b)) if is_hash(&q.f) && c.start < c.end => (c, b),
            _ => return Err(forbidden("malformed xorb URL")),
        };
        let expect_sig = self.state.sign(&xorb_msg(xorb, &q.f, c, b, q.x));
        // Constant time: the comparison must not tell how much of a forged signature is right.
        let sig_ok = bool::from(expect_sig.as_bytes().ct_eq(q.s.as_bytes()));
        if !sig_ok || q.x <= now() {
            // hf_xet and huggingface.js query the reconstruction again on a 403.
            return Err(forbidden("xorb URL signature invalid or expired"));
        }
        let fill = XorbRange {
            start: b.start,
            end: b.end,
        };
        let want = match simple_range(range).map_err(ServiceError::bad_request)? {
            None => fill,
            Some((a, e)) => XorbRange {
                start: a,
                end: e.unwrap_or(b.end).min(b.end),
            },
        };
        if want.start < fill.start || want.start > want.end {
            return Err(ServiceError::range_not_satisfiable(b.end + 1));
        }
        let (from, stream) = self.xorb_bytes_from(xorb, want, fill, c).await?;
        // Served bytes, counted as the HTTP body takes each piece: a range the store covered
        // is `cache`, one filled from the upstream for this request `upstream`.
        let stream = stream
            .inspect(move |r| {
                if let Ok(b) = r {
                    olah_metrics::metrics().served(from, b.len() as u64);
                }
            })
            .boxed();
        Ok((want, stream))
    }

    /// Bytes `want` of a xorb through the store; a miss fills `fill` from the upstream URL the
    /// last reconstruction gave for it.
    pub(super) async fn xorb_bytes(
        self: &Arc<Self>,
        xorb: &str,
        want: XorbRange,
        fill: XorbRange,
        chunks: Span,
    ) -> Result<olah_store::XorbStream, ServiceError> {
        Ok(self.xorb_bytes_from(xorb, want, fill, chunks).await?.1)
    }

    /// [`Self::xorb_bytes`], and whether they come from the store (`cache`) or a fill
    /// (`upstream`).
    async fn xorb_bytes_from(
        self: &Arc<Self>,
        xorb: &str,
        want: XorbRange,
        fill: XorbRange,
        chunks: Span,
    ) -> Result<(ServedFrom, olah_store::XorbStream), ServiceError> {
        let store = &self.state.store;
        let url =
            if self.policy.offline() || matches!(store.coverage(xorb, want).await, Ok(Some(_))) {
                None
            } else {
                let span = Span {
                    start: fill.start,
                    end: fill.end,
                };
                Some(self.state.fresh_url(xorb, span).ok_or_else(|| {
                forbidden(
                    "the upstream URL of this xorb range expired; query the reconstruction again",
                )
            })?)
            };
        let from = if url.is_some() {
            ServedFrom::upstream
        } else {
            ServedFrom::cache
        };
        let upstream = self.upstream.clone();
        let fetch = url.map(|url| {
            move || async move {
                let resp = upstream
                    .get_absolute(
                        olah_metrics::UpstreamKind::xorb,
                        &url,
                        None,
                        Some(&format!("bytes={}-{}", fill.start, fill.end)),
                    )
                    .await
                    .map_err(|e| SourceError::new(e.to_string(), None))?;
                let status = resp.status();
                let ok_len = resp.content_length() == Some(fill.end - fill.start + 1);
                if !(status == StatusCode::PARTIAL_CONTENT
                    || (status == StatusCode::OK && ok_len && fill.start == 0))
                {
                    return Err(SourceError::new(
                        format!("upstream answered {status} for a xorb range"),
                        Some(status.as_u16()),
                    ));
                }
                let s: UpstreamBytes = resp
                    .bytes_stream()
                    .map(|r| r.map_err(|e| SourceError::new(e.to_string(), None)))
                    .boxed();
                Ok(s)
            }
        });
        store
            .read(
                xorb,
                want,
                fill,
                Expect {
                    chunks: Some((chunks.end - chunks.start) as u32),
                    first_chunk: chunks.start as u32,
                },
                fetch,
            )
            .await
            .map(|s| (from, s))
            .map_err(|e| match e {
                StoreError::NotCached(what) => ServiceError::offline_not_cached(&what),
                e => ServiceError::from(e),
            })
    }
}
