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
        let e = e.without_url();
        if e.is_timeout() {
            Self::Timeout(e.to_string())
        } else {
            Self::Unreachable(e.to_string())
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = UpstreamError> = std::result::Result<T, E>;
