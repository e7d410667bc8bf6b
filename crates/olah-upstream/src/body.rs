//! An upstream answer: status, headers and a body that streams (or is read whole with a cap).
//! Callers never see reqwest: body errors are [`UpstreamError`]s.

use std::fmt;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::{HeaderMap, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use olah_metrics::{UpstreamKind, metrics};

use crate::error::{Result, UpstreamError};

/// The bytes of an answer's body as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// An upstream answer whose body has not been read yet.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    /// The exact body length the transport knows of (`Content-Length` of a body that is not
    /// re-encoded), as `reqwest::Response::content_length` reports it.
    content_length: Option<u64>,
    body: UnsyncBoxBody<Bytes, UpstreamError>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// An answer off the wire: its body bytes are counted in `olah_upstream_bytes_total{kind}`
    /// as they are read (a body dropped half-read counts what arrived).
    pub(crate) fn from_reqwest(r: reqwest::Response, kind: UpstreamKind) -> Self {
        let r = http::Response::from(r);
        let content_length = r.body().size_hint().exact();
        let (parts, body) = r.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            content_length,
            body: body
                .map_frame(move |f| {
                    if let Some(d) = f.data_ref() {
                        metrics().upstream_received(kind, d.len() as u64);
                    }
                    f
                })
                .map_err(UpstreamError::from_reqwest)
                .boxed_unsync(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body's length when the transport knows it exactly (a `Content-Length`), else `None`.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        while let Some(frame) = self.body.frame().await {
            // Trailers carry no body bytes: skip them.
            if let Ok(data) = frame?.into_data()
                && !data.is_empty()
            {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The body as a stream of pieces.
    pub fn bytes_stream(self) -> ByteStream {
        Box::pin(self.body.into_data_stream())
    }

    /// The whole body, at most `limit` bytes: a larger announced `Content-Length` is refused
    /// before reading, and the bytes are counted while they arrive, so a larger answer costs
    /// at most `limit` bytes of memory ([`UpstreamError::TooLarge`]).
    pub async fn read_limited(mut self, limit: usize) -> Result<Bytes> {
        let announced = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .or(self.content_length);
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(UpstreamError::TooLarge(limit));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(UpstreamError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// Any HTTP response with a body of `Bytes` (a fake upstream in tests, a cached answer):
/// `content_length` is the body's exact size hint, as for an answer off the wire.
impl<B> From<http::Response<B>> for Response
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(r: http::Response<B>) -> Self {
        let content_length = r.body().size_hint().exact();
        let (parts, body) = r.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            content_length,
            body: body
                .map_err(|e| UpstreamError::Unreachable(e.into().to_string()))
                .boxed_unsync(),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use http_body_util::{Full, StreamBody};

    use super::*;

    /// An answer whose body arrives in `chunks`, with an optional `Content-Length` header.
    fn answer(chunks: Vec<Result<&'static [u8], &'static str>>, length: Option<u64>) -> Response {
        let s = futures::stream::iter(chunks.into_iter().map(|c| {
            c.map(|b| http_body::Frame::data(Bytes::from_static(b)))
                .map_err(std::io::Error::other)
        }));
        let mut r = http::Response::new(StreamBody::new(s));
        if let Some(n) = length {
            r.headers_mut().insert(header::CONTENT_LENGTH, n.into());
        }
        Response::from(r)
    }

    #[tokio::test]
    async fn answers_within_the_limit_are_read_whole() {
        let r = answer(vec![Ok(b"[1,"), Ok(b""), Ok(b"2]")], None);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.content_length(), None);
        assert_eq!(&r.read_limited(5).await.unwrap()[..], b"[1,2]");
    }

    #[tokio::test]
    async fn larger_answers_are_refused() {
        // Announced too large: refused before reading (the body would fail if read).
        let r = answer(vec![Err("must not be read")], Some(1 << 30));
        assert!(matches!(
            r.read_limited(1024).await,
            Err(UpstreamError::TooLarge(1024))
        ));
        // Not announced: refused once the count passes the cap.
        let r = answer(vec![Ok(b"abc"), Ok(b"def")], None);
        assert!(matches!(
            r.read_limited(5).await,
            Err(UpstreamError::TooLarge(5))
        ));
        // An exact size hint counts as announced.
        let r = Response::from(http::Response::new(Full::new(Bytes::from_static(
            b"123456",
        ))));
        assert_eq!(r.content_length(), Some(6));
        assert!(matches!(
            r.read_limited(5).await,
            Err(UpstreamError::TooLarge(5))
        ));
    }

    #[tokio::test]
    async fn body_errors_are_upstream_errors() {
        let mut r = answer(vec![Ok(b"ab"), Err("reset")], None);
        assert_eq!(r.chunk().await.unwrap().as_deref(), Some(&b"ab"[..]));
        let e = r.chunk().await.unwrap_err();
        assert!(matches!(e, UpstreamError::Unreachable(ref m) if m.contains("reset")));
        let r = answer(vec![Ok(b"ab"), Err("reset")], None);
        assert!(r.read_limited(10).await.is_err());
        let got: Vec<_> = answer(vec![Ok(b"ab"), Err("reset")], None)
            .bytes_stream()
            .collect()
            .await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().as_ref(), b"ab");
        assert!(got[1].is_err());
    }
}
