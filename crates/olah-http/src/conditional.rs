//! The conditional headers of a request, for [`olah_types::conditional::decide`]: every source
//! of files (upstream mirror, local git, plain directories) answers them the same way.

use http::{HeaderMap, header};
use olah_types::Conditions;

/// `If-None-Match`, `If-Range` and `Range` of a request (values that are not text are ignored).
pub(crate) fn conditions(h: &HeaderMap) -> Conditions<'_> {
    let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
    Conditions {
        if_none_match: get(header::IF_NONE_MATCH),
        if_range: get(header::IF_RANGE),
        range: get(header::RANGE),
    }
}
