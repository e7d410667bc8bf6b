//! The one HTTP surface of every repository source (the upstream Hub through the cache, local
//! git, plain directories): what a resolve answer looks like given a [`RepoFile`], and a
//! metadata answer given a [`MetaAnswer`]. Written here once:
//!
//! * `X-Repo-Commit`, `ETag` (strong), `X-Linked-Etag`/`X-Linked-Size` for LFS files,
//!   `Accept-Ranges`, `Content-Type`, `Content-Length`;
//! * conditional requests by [`olah_types::conditional::decide`] (weak `If-None-Match`, strong
//!   `If-Range`): 304, 200, one range → 206, several → 206 `multipart/byteranges` (at most
//!   [`MAX_RANGES`]), none satisfiable → 416;
//! * `HEAD`: the same headers, no body, nothing opened;
//! * for a file whose source advertises Xet ([`FileHead::xet_hash`]; only the Hub does):
//!   `X-Xet-Hash` and the `Link`s to the mirror's token route and CAS, and the
//!   `application/vnd.xet-fileinfo+json` answer when a client asks for it;
//! * for metadata: the upstream's pagination `Link` rewritten to the mirror.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use olah_service::ServiceError;
use olah_service::source::{ByteStream, FileHead, MetaAnswer, Outcome, RepoFile};
use olah_types::{ConditionalAnswer, RepoRef, Revision, Route};

/// Most byte ranges honoured in one multipart request.
pub const MAX_RANGES: usize = 32;

fn put(h: &mut HeaderMap, k: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

/// The Xet headers of a file (`X-Xet-Hash`, `Link` rel `xet-auth` and
/// `xet-reconstruction-info`, all naming the mirror at `base`) and, when the client asked for
/// `application/vnd.xet-fileinfo+json`, that answer's JSON body.
fn xet_headers(
    head: &FileHead,
    repo: &RepoRef,
    req: &HeaderMap,
    xh: &str,
    base: &str,
    h: &mut HeaderMap,
) -> Result<Option<String>, ServiceError> {
    // Xet clients go to the mirror's token route and CAS; hashes are never rewritten.
    // A bucket's token route has no revision; a repo's is pinned to the file's commit.
    let token_route = if repo.kind == olah_types::RepoType::Bucket {
        Route::BucketXetReadToken {
            bucket: repo.clone(),
        }
    } else {
        let commit = head
            .commit
            .as_deref()
            .ok_or_else(|| ServiceError::internal("a Xet file without a commit"))?;
        Route::XetReadToken {
            repo: repo.clone(),
            revision: Revision::new(commit).map_err(|e| ServiceError::internal(e.to_string()))?,
        }
    };
    let refresh = format!("{base}{}", token_route.upstream_path());
    let recon = format!("{base}/cas/v1/reconstructions/{}", xh.to_ascii_lowercase());
    put(h, "x-xet-hash", xh);
    put(
        h,
        "link",
        &format!("<{refresh}>; rel=\"xet-auth\", <{recon}>; rel=\"xet-reconstruction-info\""),
    );
    // huggingface.js asks for the file info as JSON (PROTOCOL.md §4.6).
    let wants_fileinfo = req
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(XET_FILEINFO));
    Ok(wants_fileinfo.then(|| {
        serde_json::json!({
            "casUrl": format!("{base}/cas"),
            "hash": xh,
            "refreshUrl": refresh,
            "reconstructionUrl": recon,
            "etag": head.etag,
            "size": head.size,
        })
        .to_string()
    }))
}

/// A local source's file body, counted in `olah_served_bytes_total{source="cache"}` as the HTTP
/// body takes each piece (local files count as cache). The upstream Hub's file bodies count
/// themselves in the service, which knows which pieces came from disk and which from a fill.
fn local_counted(outcome: Outcome, s: ByteStream) -> ByteStream {
    if outcome != Outcome::Local {
        return s;
    }
    s.inspect(|r| {
        if let Ok(b) = r {
            olah_metrics::metrics().served(olah_metrics::ServedFrom::cache, b.len() as u64);
        }
    })
    .boxed()
}

/// The media type of a Xet file-info answer.
const XET_FILEINFO: &str = "application/vnd.xet-fileinfo+json";

/// The answer to a `GET`/`HEAD` of `file` of `repo`, given the request's headers.
/// `mirror_base` (the mirror's URL as the client reached it) is where the Xet `Link`s of a file
/// with [`FileHead::xet_hash`] point; without it no Xet header is written. Errors come before
/// any byte is sent (a body error later cuts the transfer).
pub async fn file_response(
    file: RepoFile,
    repo: &RepoRef,
    req: &HeaderMap,
    is_head: bool,
    mirror_base: Option<&str>,
) -> Result<Response, ServiceError> {
    let head = &file.head;
    let size = head.size;
    let etag = format!("\"{}\"", head.etag);
    let mut h = HeaderMap::new();
    let fileinfo = match (head.xet_hash.as_deref(), mirror_base) {
        (Some(xh), Some(base)) => xet_headers(head, repo, req, xh, base, &mut h)?,
        _ => None,
    };
    if let Some(c) = &head.commit {
        put(&mut h, "x-repo-commit", c);
    }
    put(&mut h, "etag", &etag);
    if let Some((sha, linked_size)) = &head.linked {
        put(&mut h, "x-linked-etag", &format!("\"{sha}\""));
        put(&mut h, "x-linked-size", &linked_size.to_string());
    }
    put(&mut h, "accept-ranges", "bytes");
    if let Some(body) = fileinfo {
        put(&mut h, "content-type", XET_FILEINFO);
        put(&mut h, "content-length", &body.len().to_string());
        let mut r = Response::new(if is_head {
            Body::empty()
        } else {
            Body::from(body)
        });
        *r.headers_mut() = h;
        return Ok(r);
    }
    put(&mut h, "content-type", &head.content_type);
    let ranges: Option<Vec<(u64, u64)>> = match olah_types::conditional::decide(
        &head.etag,
        size,
        crate::conditional::conditions(req),
        MAX_RANGES,
    ) {
        ConditionalAnswer::NotModified => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = h;
            return Ok(r);
        }
        ConditionalAnswer::Unsatisfiable => {
            return Err(ServiceError::range_not_satisfiable(size));
        }
        ConditionalAnswer::Whole => None,
        ConditionalAnswer::Ranges(r) => Some(r),
    };
    let (status, body, len) = match ranges.as_deref() {
        None | Some([_]) => {
            let (status, start, end) = match ranges.as_deref() {
                Some([(a, b)]) => (StatusCode::PARTIAL_CONTENT, *a, *b),
                _ => (StatusCode::OK, 0, size.saturating_sub(1)),
            };
            if status == StatusCode::PARTIAL_CONTENT {
                put(
                    &mut h,
                    "content-range",
                    &format!("bytes {start}-{end}/{size}"),
                );
            }
            let len = if size == 0 { 0 } else { end - start + 1 };
            let body = if is_head || len == 0 {
                Body::empty()
            } else {
                let stream = file.body.open(start, end).await?;
                // Where these bytes come from (a prefetch counts what the upstream cost).
                if let Some(cached) = file.body.cached() {
                    put(&mut h, "x-olah-cache", if cached { "hit" } else { "miss" });
                }
                Body::from_stream(local_counted(head.outcome, stream))
            };
            (status, body, len)
        }
        Some(many) => {
            let boundary = format!("olah-{:016x}", rand::random::<u64>());
            let ct = head.content_type.clone();
            let part_head = |a: u64, b: u64| {
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {ct}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n"
                )
            };
            let tail = format!("\r\n--{boundary}--\r\n");
            let len = many
                .iter()
                .map(|&(a, b)| part_head(a, b).len() as u64 + b - a + 1)
                .sum::<u64>()
                + tail.len() as u64;
            put(
                &mut h,
                "content-type",
                &format!("multipart/byteranges; boundary={boundary}"),
            );
            let body = if is_head {
                Body::empty()
            } else {
                let parts: Vec<(String, u64, u64)> =
                    many.iter().map(|&(a, b)| (part_head(a, b), a, b)).collect();
                let source = file.body.clone();
                let outcome = head.outcome;
                let stream = futures::stream::iter(parts)
                    .then(move |(head, a, b)| {
                        let source = source.clone();
                        async move {
                            let head = futures::stream::once(futures::future::ready(Ok(
                                Bytes::from(head),
                            )));
                            match source.open(a, b).await {
                                Ok(s) => head.chain(local_counted(outcome, s)).boxed(),
                                Err(e) => head
                                    .chain(futures::stream::once(futures::future::ready(Err(
                                        std::io::Error::other(e.to_string()),
                                    ))))
                                    .boxed(),
                            }
                        }
                    })
                    .flatten()
                    .chain(futures::stream::once(futures::future::ready(Ok(
                        Bytes::from(tail),
                    ))));
                Body::from_stream(stream)
            };
            (StatusCode::PARTIAL_CONTENT, body, len)
        }
    };
    put(&mut h, "content-length", &len.to_string());
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    Ok(r)
}

/// The answer to a metadata route: the source's JSON (status, `Content-Type`, length; no body
/// for `HEAD`). `link_bases` (the Hub's base URL, the mirror's) rewrite an upstream `Link`;
/// without them, or when no entry points at the Hub, no `Link` is sent.
pub fn meta_response(a: MetaAnswer, is_head: bool, link_bases: Option<(&str, &str)>) -> Response {
    let len = a.body.len();
    let mut r = Response::new(if is_head {
        Body::empty()
    } else {
        Body::from(a.body)
    });
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let h = r.headers_mut();
    let ct = a
        .content_type
        .as_deref()
        .unwrap_or("application/json; charset=utf-8");
    put(h, "content-type", ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let (Some(link), Some((hub_base, mirror_base))) = (&a.link, link_bases)
        && let Some(l) = rewrite_link(link, hub_base, mirror_base)
    {
        put(h, "link", &l);
    }
    r
}

/// Rewrites the Hub origin in a `Link` header to the mirror's, dropping any entry that would
/// still point elsewhere (so a client is never sent upstream) and Xet entries.
pub fn rewrite_link(link: &str, hub_base: &str, mirror_base: &str) -> Option<String> {
    let kept: Vec<String> = link
        .split(',')
        .map(str::trim)
        .filter(|e| !e.contains("rel=\"xet-"))
        .filter_map(|e| {
            let inner = e.strip_prefix('<')?;
            let (url, rest) = inner.split_once('>')?;
            let path = url.strip_prefix(hub_base)?;
            path.starts_with('/')
                .then(|| format!("<{mirror_base}{path}>{rest}"))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use olah_service::source::{ByteStream, FileBody, FileHead, Outcome};

    use super::*;

    /// An in-memory file that counts how often it is opened.
    struct Mem(Bytes, AtomicUsize);

    #[async_trait::async_trait]
    impl FileBody for Mem {
        async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let piece = self.0.slice(start as usize..=end as usize);
            Ok(futures::stream::once(async move { Ok(piece) }).boxed())
        }
    }

    fn repo() -> RepoRef {
        match olah_types::parse_route("/api/models/acme/m").expect("route") {
            Route::RepoInfo { repo } => repo,
            r => panic!("{r:?}"),
        }
    }

    fn file(content: &'static [u8]) -> (RepoFile, Arc<Mem>) {
        let mem = Arc::new(Mem(Bytes::from_static(content), AtomicUsize::new(0)));
        let f = RepoFile {
            head: FileHead {
                commit: Some("c0ffee".into()),
                size: content.len() as u64,
                etag: "abc".into(),
                linked: None,
                xet_hash: None,
                content_type: "text/plain".into(),
                outcome: Outcome::Local,
            },
            body: mem.clone(),
        };
        (f, mem)
    }

    async fn answer(
        content: &'static [u8],
        headers: &[(&'static str, &'static str)],
        is_head: bool,
    ) -> (StatusCode, HeaderMap, Bytes, usize) {
        let (f, mem) = file(content);
        let mut req = HeaderMap::new();
        for (k, v) in headers {
            req.insert(*k, HeaderValue::from_static(v));
        }
        let r = match file_response(f, &repo(), &req, is_head, Some("http://m")).await {
            Ok(r) => r,
            Err(e) => crate::error::render(e),
        };
        let (status, h) = (r.status(), r.headers().clone());
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, h, body, mem.1.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn head_and_not_modified_open_nothing() {
        let (s, h, b, opened) = answer(b"hello", &[], true).await;
        assert_eq!((s, &b[..], opened), (StatusCode::OK, &b""[..], 0));
        assert_eq!(h["content-length"], "5");
        assert_eq!(h["etag"], "\"abc\"");
        assert_eq!(h["x-repo-commit"], "c0ffee");
        assert!(h.get("x-xet-hash").is_none() && h.get("link").is_none());
        let (s, _, _, opened) = answer(b"hello", &[("if-none-match", "W/\"abc\"")], false).await;
        assert_eq!((s, opened), (StatusCode::NOT_MODIFIED, 0));
    }

    #[tokio::test]
    async fn xet_files_link_to_the_mirror_and_answer_fileinfo_json() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let xet = |accept: Option<&'static str>| {
            let (mut f, mem) = file(b"hello");
            f.head.commit = Some(commit.into());
            f.head.xet_hash = Some("AB12".into());
            f.head.linked = Some(("abc".into(), 5));
            let mut req = HeaderMap::new();
            if let Some(a) = accept {
                req.insert("accept", HeaderValue::from_static(a));
            }
            async move {
                let r = file_response(f, &repo(), &req, false, Some("http://m"))
                    .await
                    .expect("answer");
                let h = r.headers().clone();
                let b = axum::body::to_bytes(r.into_body(), usize::MAX)
                    .await
                    .expect("body");
                (h, b, mem.1.load(Ordering::Relaxed))
            }
        };
        let (h, b, opened) = xet(None).await;
        assert_eq!((&b[..], opened), (&b"hello"[..], 1));
        assert_eq!(h["x-xet-hash"], "AB12");
        assert_eq!(
            h["link"],
            format!(
                "<http://m/api/models/acme/m/xet-read-token/{commit}>; rel=\"xet-auth\", \
                 <http://m/cas/v1/reconstructions/ab12>; rel=\"xet-reconstruction-info\""
            )
        );
        let (h, b, opened) = xet(Some("application/vnd.xet-fileinfo+json")).await;
        assert_eq!(opened, 0, "the file info opens no bytes");
        assert_eq!(h["content-type"], "application/vnd.xet-fileinfo+json");
        assert_eq!(h["x-linked-etag"], "\"abc\"");
        assert_eq!(h["content-length"], b.len().to_string());
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["casUrl"], "http://m/cas");
        assert_eq!(
            v["reconstructionUrl"],
            "http://m/cas/v1/reconstructions/ab12"
        );
        assert_eq!(
            (v["etag"].as_str(), v["size"].as_u64()),
            (Some("abc"), Some(5))
        );
    }

    #[test]
    fn metadata_links_are_rewritten_only_with_bases() {
        let a = MetaAnswer {
            status: 200,
            content_type: None,
            body: Bytes::from_static(b"[]"),
            link: Some("<https://hub/api/models/a/b/tree/main?cursor=x>; rel=\"next\"".into()),
            commit: None,
            outcome: olah_service::source::Outcome::Miss,
        };
        let r = meta_response(a.clone(), false, Some(("https://hub", "http://m")));
        assert_eq!(
            r.headers()["link"],
            "<http://m/api/models/a/b/tree/main?cursor=x>; rel=\"next\""
        );
        assert_eq!(r.headers()["content-length"], "2");
        let r = meta_response(a, true, None);
        assert!(r.headers().get("link").is_none());
        assert_eq!(r.headers()["content-length"], "2");
    }

    #[test]
    fn link_rewrite_points_at_the_mirror_and_drops_foreign_entries() {
        let l = "<https://huggingface.co/api/models/a/b/tree/main?recursive=true&cursor=xyz>; rel=\"next\"";
        assert_eq!(
            rewrite_link(l, "https://huggingface.co", "http://m:8090").unwrap(),
            "<http://m:8090/api/models/a/b/tree/main?recursive=true&cursor=xyz>; rel=\"next\""
        );
        assert!(
            rewrite_link(
                "<https://evil.example/x>; rel=\"next\"",
                "https://huggingface.co",
                "http://m"
            )
            .is_none()
        );
        assert!(
            rewrite_link(
                "<https://huggingface.co.evil/x>; rel=\"next\"",
                "https://huggingface.co",
                "http://m"
            )
            .is_none()
        );
        let x = "<https://huggingface.co/api/models/a/b/xet-read-token/s>; rel=\"xet-auth\"";
        assert!(rewrite_link(x, "https://huggingface.co", "http://m").is_none());
    }

    #[tokio::test]
    async fn empty_files_and_unsatisfiable_ranges() {
        let (s, h, b, opened) = answer(b"", &[], false).await;
        assert_eq!((s, b.len(), opened), (StatusCode::OK, 0, 0));
        assert_eq!(h["content-length"], "0");
        let (s, h, _, opened) = answer(b"hello", &[("range", "bytes=9-")], false).await;
        assert_eq!((s, opened), (StatusCode::RANGE_NOT_SATISFIABLE, 0));
        assert_eq!(h["content-range"], "bytes */5");
        assert_eq!(h["x-error-code"], "RangeNotSatisfiable");
    }

    #[tokio::test]
    async fn multipart_length_is_exact_and_each_part_is_opened_once() {
        let (s, h, b, opened) = answer(b"0123456789", &[("range", "bytes=0-1,-2")], false).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(opened, 2);
        assert_eq!(h["content-length"], b.len().to_string());
        let text = String::from_utf8(b.to_vec()).expect("utf-8");
        assert!(
            text.contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n"),
            "{text}"
        );
        // HEAD: the same length, nothing opened.
        let (_, hh, _, opened) = answer(b"0123456789", &[("range", "bytes=0-1,-2")], true).await;
        assert_eq!(opened, 0);
        assert_eq!(hh["content-length"], h["content-length"]);
    }
}
