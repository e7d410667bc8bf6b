//! Routes of the CDN host: signed LFS object URLs and signed xorb range URLs. Neither looks at
//! `Authorization` (clients drop it on cross-origin requests); the query signature is the
//! authorisation.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use crate::resp::{cdn_error, hv, now, serve_content};
use crate::server::HubState;

pub(crate) async fn route(st: &Arc<HubState>, req: Request<Body>) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return cdn_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        );
    }
    let path = req.uri().path().to_string();
    let q: BTreeMap<String, String> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    if let Some(hash) = path.strip_prefix("/xorb/default/") {
        return xorb(st, &path, hash, &q, req.headers());
    }
    let Some(sha) = path.strip_prefix("/lfs/") else {
        return cdn_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let expires: u64 = q.get("Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    if expires < now() || q.get("Signature") != Some(&st.sign(&path, expires)) {
        return cdn_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired or the signature does not match",
        );
    }
    let Some(file) = st.lfs_objects.get(sha) else {
        return cdn_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let mut h = HeaderMap::new();
    h.insert(header::ETAG, hv(&format!("\"{sha}\"")));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=604800, immutable"),
    );
    serve_content(req.headers(), file.content(), h, |s, m| {
        cdn_error(s, "InvalidRange", m)
    })
}

/// Signed xorb range URLs: the signature covers the xorb and a byte range; the request's
/// `Range` must lie inside it.
fn xorb(
    st: &HubState,
    path: &str,
    hash: &str,
    q: &BTreeMap<String, String>,
    req_h: &HeaderMap,
) -> Response<Body> {
    let exp: u64 = q.get("Expires").and_then(|e| e.parse().ok()).unwrap_or(0);
    let signed = q
        .get("X-Xet-Signed-Range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
        });
    let Some((ss, se)) = signed else {
        return cdn_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "missing signed range",
        );
    };
    if exp < now() || q.get("Signature") != Some(&st.sign(&format!("{path}:{ss}-{se}"), exp)) {
        return cdn_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired or the signature does not match",
        );
    }
    let Some(len) = st.cas.xorb_len(hash) else {
        return cdn_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let (a, b) = match crate::resp::parse_range(req_h, len) {
        crate::resp::RangeReq::Part(a, b) => (a, b),
        crate::resp::RangeReq::Unsatisfiable => {
            let mut r = cdn_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            );
            r.headers_mut()
                .insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}")));
            return r;
        }
        crate::resp::RangeReq::Full => (ss, se.min(len.saturating_sub(1))),
    };
    if a < ss || b > se {
        return cdn_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "range outside the signed range",
        );
    }
    let mut pieces = st.cas.xorb_bytes(hash, a, b).unwrap_or_default();
    if b - a > 108 && st.faults.take_corrupt_xorb() {
        let mut all: Vec<u8> = pieces.concat();
        all[108] ^= 0x01;
        pieces = vec![Bytes::from(all)];
    }
    let n: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let mut r = Response::new(Body::from_stream(futures::stream::iter(
        pieces.into_iter().map(Ok::<Bytes, std::io::Error>),
    )));
    *r.status_mut() = StatusCode::PARTIAL_CONTENT;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, n.into());
    h.insert(header::CONTENT_RANGE, hv(&format!("bytes {a}-{b}/{len}")));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r
}
