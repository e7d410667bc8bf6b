//! Retrying idempotent requests (with `backon`), honouring `Retry-After`.
//!
//! A request is retried only when it is idempotent (GET or HEAD without a body) and only before
//! its answer is handed to the caller: a connect error, a timeout before the response head, or
//! a 502/503/504 (and, when enabled, a 429). Once an answer is returned its body streams to the
//! caller and is never retried. A `Retry-After` longer than the cap is not waited on: the
//! answer is passed on as it is.

use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use http::{HeaderMap, StatusCode, header};
use olah_metrics::{UpstreamKind, metrics};

use crate::error::{Result, UpstreamError};

/// How upstream requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub max_retries: usize,
    /// First backoff delay (doubled per retry, plus up to as much again of random jitter).
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` waited on; a longer one passes the answer on at once.
    pub max_retry_after: Duration,
    /// Whether 429 answers are retried. Off by default: a rate limit counts against every
    /// client behind the mirror, so the mirror relays it (with `Retry-After` and `RateLimit`)
    /// and the Hub clients, which honour both, wait on their own instead of holding a request
    /// open in the mirror.
    pub retry_rate_limited: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
            retry_rate_limited: false,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether an answer with this status is worth another attempt.
    fn retries_status(&self, s: StatusCode) -> bool {
        matches!(
            s,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) || (s == StatusCode::TOO_MANY_REQUESTS && self.retry_rate_limited)
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// How long a `Retry-After` value asks to wait: delay-seconds or an HTTP date (a date in the
/// past: no wait). `None` when the value is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate (and exceed any cap).
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn retry_after_header(h: &HeaderMap) -> Option<Duration> {
    retry_after(
        h.get(header::RETRY_AFTER)?.to_str().ok()?,
        SystemTime::now(),
    )
}

/// Why an attempt may be tried again.
enum Again {
    /// An answer with a retryable status (returned as it is when no retry follows).
    Answer(reqwest::Response),
    /// No answer at all.
    Failed(reqwest::Error),
}

/// Sends the request `build` makes, again per `policy` when `idempotent` (the caller's word:
/// GET or HEAD without a body). The last answer is returned when retries run out.
///
/// Every attempt is a request in `olah_upstream_requests_total{kind,status}` (status 0: no
/// answer), and the time to its answer's head goes to `olah_upstream_first_byte_seconds`.
pub(crate) async fn send(
    policy: &RetryPolicy,
    idempotent: bool,
    kind: UpstreamKind,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response> {
    let attempt = || async {
        let started = std::time::Instant::now();
        let sent = build().send().await;
        let m = metrics();
        match &sent {
            Ok(r) => {
                m.upstream_first_byte
                    .observe(started.elapsed().as_secs_f64());
                m.upstream_request(kind, r.status().as_u16());
            }
            Err(_) => m.upstream_request(kind, 0),
        }
        match sent {
            Ok(r) if policy.retries_status(r.status()) => Err(Again::Answer(r)),
            Ok(r) => Ok(r),
            Err(e) => Err(Again::Failed(e)),
        }
    };
    let out = attempt
        .retry(policy.backoff())
        .when(|a| {
            idempotent
                && match a {
                    Again::Answer(_) => true,
                    // `send` resolves at the response head: any timeout is before the body.
                    Again::Failed(e) => e.is_connect() || e.is_timeout(),
                }
        })
        .adjust(|a, next| {
            let next = next?;
            match a {
                Again::Answer(r) => match retry_after_header(r.headers()) {
                    Some(d) if d > policy.max_retry_after => None,
                    Some(d) => Some(d),
                    None => Some(next),
                },
                Again::Failed(_) => Some(next),
            }
        })
        .notify(|a, delay| match a {
            Again::Answer(r) => {
                tracing::info!(
                    status = r.status().as_u16(),
                    ?delay,
                    "upstream answer retried"
                );
            }
            Again::Failed(e) => {
                tracing::info!(
                    timeout = e.is_timeout(),
                    ?delay,
                    causes = %crate::error::causes(e).trim_start_matches(": "),
                    "upstream request retried"
                );
            }
        })
        .await;
    match out {
        Ok(r) | Err(Again::Answer(r)) => Ok(r),
        Err(Again::Failed(e)) => Err(UpstreamError::from_reqwest(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(42));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(42)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(42));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon", "3 s"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses_worth_another_attempt() {
        let p = RetryPolicy::default();
        for s in [502, 503, 504] {
            assert!(p.retries_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 206, 304, 400, 401, 404, 429, 500, 501] {
            assert!(!p.retries_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        let p = RetryPolicy {
            retry_rate_limited: true,
            ..p
        };
        assert!(p.retries_status(StatusCode::TOO_MANY_REQUESTS));
    }
}
