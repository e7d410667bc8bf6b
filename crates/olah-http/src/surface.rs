//! The one HTTP surface of every repository source (the upstream Hub through the cache, local
//! git, plain directories): what a resolve answer looks like given a [`RepoFile`], and a
//! metadata answer given a [`MetaAnswer`]. Written here once:
//!
//! * `X-Repo-Commit`, `ETag` (strong), `X-Linked-Etag`/`X-Linked-Size` for LFS files,
//!   `Accept-Ranges`, `Content-Type`, `Content-Length`;
//! * conditional requests by [`olah_types::conditional::decide`] (weak `If-None-Match`, strong
//!   `If-Range`): 304, 200, one range → 206, several → 206 `multipart/byteranges` (at most
//!   [`MAX_RANGES`]), none satisfiable → 416;
//! * `HEAD`: the same headers, no body, nothing opened.
//!
//! Source-specific headers (the Hub's Xet `Link`s) come in as `extra`.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use olah_service::ServiceError;
use olah_service::source::{MetaAnswer, RepoFile};
use olah_types::ConditionalAnswer;

/// Most byte ranges honoured in one multipart request.
pub const MAX_RANGES: usize = 32;

fn put(h: &mut HeaderMap, k: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

/// The answer to a `GET`/`HEAD` of `file`, given the request's headers. `extra` headers are
/// added to every answer but a 416. Errors come before any byte is sent (a body error later
/// cuts the transfer).
pub async fn file_response(
    file: RepoFile,
    req: &HeaderMap,
    is_head: bool,
    extra: HeaderMap,
) -> Result<Response, ServiceError> {
    let head = &file.head;
    let size = head.size;
    let etag = format!("\"{}\"", head.etag);
    let mut h = extra;
    if let Some(c) = &head.commit {
        put(&mut h, "x-repo-commit", c);
    }
    put(&mut h, "etag", &etag);
    if let Some((sha, linked_size)) = &head.linked {
        put(&mut h, "x-linked-etag", &format!("\"{sha}\""));
        put(&mut h, "x-linked-size", &linked_size.to_string());
    }
    put(&mut h, "accept-ranges", "bytes");
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
                Body::from_stream(file.body.open(start, end).await?)
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
                let stream = futures::stream::iter(parts)
                    .then(move |(head, a, b)| {
                        let source = source.clone();
                        async move {
                            let head = futures::stream::once(futures::future::ready(Ok(
                                Bytes::from(head),
                            )));
                            match source.open(a, b).await {
                                Ok(s) => head.chain(s).boxed(),
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
/// for `HEAD`).
pub fn meta_response(a: MetaAnswer, is_head: bool) -> Response {
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
    r
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
        let mut extra = HeaderMap::new();
        extra.insert("x-extra", HeaderValue::from_static("1"));
        let r = match file_response(f, &req, is_head, extra).await {
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
        assert_eq!(h["x-extra"], "1");
        let (s, _, _, opened) = answer(b"hello", &[("if-none-match", "W/\"abc\"")], false).await;
        assert_eq!((s, opened), (StatusCode::NOT_MODIFIED, 0));
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
