//! Response helpers: Hub-style errors, JSON, byte ranges, streamed file bodies.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::fixture::Content;

/// A header value from arbitrary text (non-printable or non-ASCII characters become `?`).
pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        HeaderValue::from_str(&clean).expect("printable ASCII")
    })
}

/// A Hub error: `X-Error-Code` (when given), `X-Error-Message`, and `{"error": msg}`.
pub(crate) fn hub_error(status: StatusCode, code: Option<&str>, msg: &str) -> Response<Body> {
    let mut r = json_response(&json!({ "error": msg }));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Some(code) = code {
        h.insert("x-error-code", hv(code));
    }
    h.insert("x-error-message", hv(msg));
    r
}

/// An S3/CloudFront-style XML error (CDN host).
pub(crate) fn cdn_error(status: StatusCode, code: &str, msg: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{msg}</Message></Error>"
    );
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

/// A 200 JSON response.
pub(crate) fn json_response(v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Unix time in seconds.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a `Range` header applies to a body of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// No (usable) Range: the whole body with 200. Multi-ranges are answered this way too, as S3 does.
    Full,
    /// `start..=end`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range.
pub(crate) fn parse_range(h: &HeaderMap, size: u64) -> RangeReq {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeReq::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Full;
        };
        if n == 0 || size == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(size.saturating_sub(n), size - 1);
    }
    let Ok(a) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let b = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(b) if b >= a => b,
            _ => return RangeReq::Full,
        }
    };
    if a >= size {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(a, b.min(size - 1))
}

/// Serves `content` with Range support: 200, 206 (`Content-Range`) or 416 (`Content-Range:
/// bytes */size`). `h` holds the other headers (ETag, …). The body is streamed piece by piece.
pub(crate) fn serve_content(
    req_h: &HeaderMap,
    content: &Content,
    mut h: HeaderMap,
    error: impl Fn(StatusCode, &str) -> Response<Body>,
) -> Response<Body> {
    let size = content.len();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, start, end) = match parse_range(req_h, size) {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(a, b) => {
            h.insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{size}")));
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
        RangeReq::Unsatisfiable => {
            let mut r = error(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            r.headers_mut()
                .insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
            return r;
        }
    };
    h.insert(header::CONTENT_LENGTH, (end - start).into());
    let stream = futures::stream::iter(content.pieces(start, end).map(Ok::<Bytes, std::io::Error>));
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    r.headers_mut().extend(h);
    r
}

/// `Content-Type` guessed from a file name.
pub(crate) fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("txt" | "md" | "jsonl" | "cfg" | "ini" | "toml") => "text/plain; charset=utf-8",
        Some("py") => "text/x-python; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("yaml" | "yml") => "text/yaml; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, size: u64) -> RangeReq {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(&HeaderMap::new(), 10), RangeReq::Full);
        assert_eq!(r("bytes=0-0", 10), RangeReq::Part(0, 0));
        assert_eq!(r("bytes=2-", 10), RangeReq::Part(2, 9));
        assert_eq!(r("bytes=2-100", 10), RangeReq::Part(2, 9));
        assert_eq!(r("bytes=-3", 10), RangeReq::Part(7, 9));
        assert_eq!(r("bytes=-30", 10), RangeReq::Part(0, 9));
        assert_eq!(r("bytes=10-", 10), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), RangeReq::Unsatisfiable);
        assert_eq!(r("bytes=5-2", 10), RangeReq::Full);
        assert_eq!(r("bytes=0-1,4-5", 10), RangeReq::Full);
        assert_eq!(r("items=0-1", 10), RangeReq::Full);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("config.json"), "application/json");
        assert_eq!(content_type("sub/dir/a b.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("model.bin"), "application/octet-stream");
        assert_eq!(content_type("Makefile"), "application/octet-stream");
        assert_eq!(content_type("dir.v1/file"), "application/octet-stream");
    }

    #[test]
    fn header_values_are_sanitised() {
        assert_eq!(hv("a b").to_str().unwrap(), "a b");
        assert_eq!(hv("é\n").to_str().unwrap(), "??");
    }
}
