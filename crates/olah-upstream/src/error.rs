//! Why an upstream request failed.

/// Why an upstream request failed before (or while) its answer was read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream did not answer in time.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// The upstream could not be reached (DNS, connect, TLS, reset).
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream redirected to a host outside the allow list.
    #[error("upstream redirected to a host that is not allowed: {0}")]
    DisallowedRedirect(String),
    /// Too many redirects, or a redirect without a usable Location.
    #[error("bad upstream redirect: {0}")]
    BadRedirect(String),
    /// An answer read whole was larger than the caller's cap (the cap in bytes).
    #[error("the upstream answer is larger than the mirror accepts ({0} bytes)")]
    TooLarge(usize),
}

impl UpstreamError {
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        // Never include the URL: it may carry signed query parameters.
        let timeout = e.is_timeout();
        let text = describe(e);
        if timeout {
            Self::Timeout(text)
        } else {
            Self::Unreachable(text)
        }
    }
}

/// A reqwest error with its causes (`error sending request: … invalid peer certificate: …`), so
/// a log line says why the upstream could not be reached; never the URL, which may carry signed
/// query parameters.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    format!("{e}{}", causes(&e))
}

/// The causes of a reqwest error (`: client error (Connect): invalid peer certificate: …`), for
/// a borrowed error whose own text would name the URL.
pub(crate) fn causes(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Result alias of this crate.
pub type Result<T, E = UpstreamError> = std::result::Result<T, E>;
