//! olah-metrics: the mirror's Prometheus metrics, one process-wide set every layer records into.
//!
//! The counters are bumped where the event happens (the HTTP layer counts requests and bytes sent
//! to clients, the service counts cache lookups, the upstream client counts what it receives, the
//! store counts evictions and fills), so they live at the bottom of the crate graph and are
//! reached through [`metrics()`]: no layer passes a handle to another. `GET /metrics` renders
//! them with [`encode`]; the admin page reads the same values through the typed fields.
//!
//! Labels are small closed enums: no repository name, path or token ever becomes a label (an
//! unbounded label set would grow the registry with its input).

#![warn(missing_docs)]

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which kind of route a request was (the `route` label of the HTTP metrics).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RouteClass {
    /// `/{repo}/resolve/…` (file downloads and HEADs).
    resolve,
    /// `/api/…` (repo info, tree, paths-info, refs, commits, whoami).
    api,
    /// The Xet token route (`/api/…/xet-read-token/…`).
    xet,
    /// The mirror's own CAS (`/cas/…`: reconstructions, xorb ranges).
    cas,
    /// `/admin…`, `/metrics`, `/healthz`, `/readyz`, `/`.
    admin,
    /// Anything else (unknown paths, bad requests).
    other,
}

impl RouteClass {
    /// The label's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::resolve => "resolve",
            Self::api => "api",
            Self::xet => "xet",
            Self::cas => "cas",
            Self::admin => "admin",
            Self::other => "other",
        }
    }
}

/// HTTP method label: the few methods clients use, the rest as `other`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MethodLabel {
    /// GET.
    GET,
    /// HEAD.
    HEAD,
    /// POST.
    POST,
    /// Any other method.
    other,
}

impl MethodLabel {
    /// The label of a method given as text.
    pub fn from_method(m: &str) -> Self {
        match m {
            "GET" => Self::GET,
            "HEAD" => Self::HEAD,
            "POST" => Self::POST,
            _ => Self::other,
        }
    }
}

/// Labels of `olah_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route class.
    pub route: RouteClass,
    /// Request method.
    pub method: MethodLabel,
    /// Response status code.
    pub status: u16,
}

/// Labels of `olah_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route class.
    pub route: RouteClass,
}

/// How a cache lookup ended (`olah_cache_lookups_total{outcome}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Lookup {
    /// Everything asked for was in the cache (and fresh).
    hit,
    /// Nothing was: the upstream was asked.
    miss,
    /// Part of a file's bytes was cached, the rest came from the upstream.
    partial,
    /// A stale copy was served because the upstream could not be reached.
    stale,
    /// An expired copy was checked against the upstream and was still right.
    revalidated,
}

/// Labels of `olah_cache_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// The outcome.
    pub outcome: Lookup,
}

/// Where bytes sent to a client came from (`olah_served_bytes_total{source}`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ServedFrom {
    /// The mirror's cache (or a local source).
    cache,
    /// Straight from an upstream transfer.
    upstream,
}

/// Labels of `olah_served_bytes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedLabels {
    /// Where the bytes came from.
    pub source: ServedFrom,
}

/// What an upstream transfer was for (`kind` label of the upstream metrics).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum UpstreamKind {
    /// File bytes (resolve, CDN).
    file,
    /// Xorb ranges from the CAS.
    xorb,
    /// Everything else: API JSON, HEADs, tokens, reconstructions.
    api,
}

/// Labels of `olah_upstream_bytes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind of transfer.
    pub kind: UpstreamKind,
}

/// Labels of `olah_upstream_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The kind of transfer.
    pub kind: UpstreamKind,
    /// The upstream's status code; 0 when no answer came (connect error, timeout).
    pub status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of the mirror. Read the fields for the admin page; [`encode`] for `/metrics`.
pub struct Metrics {
    registry: Registry,
    /// `olah_http_requests_total{route,method,status}`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `olah_http_request_duration_seconds{route}` (until the response head is ready).
    pub http_duration: HistogramFamily<RouteLabels>,
    /// `olah_cache_lookups_total{outcome}`.
    pub cache_lookups: Family<LookupLabels, Counter>,
    /// `olah_served_bytes_total{source}`: body bytes sent to clients.
    pub served_bytes: Family<ServedLabels, Counter>,
    /// `olah_upstream_bytes_total{kind}`: body bytes received from the upstream.
    pub upstream_bytes: Family<KindLabels, Counter>,
    /// `olah_upstream_requests_total{kind,status}`.
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    /// `olah_upstream_first_byte_seconds`: from sending a request upstream to its answer's head.
    pub upstream_first_byte: Histogram,
    /// `olah_cache_size_bytes`: bytes the cache holds (blobs, xorb ranges, API answers).
    pub cache_size: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// `olah_cache_limit_bytes`: the configured limit; 0 = none.
    pub cache_limit: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// `olah_evictions_total`: cache entries evicted to keep under the limit.
    pub evictions: Counter,
    /// `olah_evicted_bytes_total`.
    pub evicted_bytes: Counter<u64, AtomicU64>,
    /// `olah_fills_in_flight`: upstream fills running now.
    pub fills_in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("olah");
        let m = Metrics {
            http_requests: Family::default(),
            http_duration: HistogramFamily::new_with_constructor(latency_histogram),
            cache_lookups: Family::default(),
            served_bytes: Family::default(),
            upstream_bytes: Family::default(),
            upstream_requests: Family::default(),
            upstream_first_byte: latency_histogram(),
            cache_size: Gauge::default(),
            cache_limit: Gauge::default(),
            evictions: Counter::default(),
            evicted_bytes: Counter::default(),
            fills_in_flight: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route class, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route class",
            m.http_duration.clone(),
        );
        registry.register(
            "cache_lookups",
            "Cache lookups by outcome (hit, miss, partial, stale, revalidated): one per resolve \
             answer (partial when its bytes came partly from disk, partly from the upstream) and \
             per API answer",
            m.cache_lookups.clone(),
        );
        registry.register(
            "served_bytes",
            "File and xorb body bytes sent to clients (counted as the HTTP body takes each \
             piece), by where they came from: cache = a block or xorb range on disk when the \
             request began, or a local source; upstream = bytes that arrived from the upstream \
             during the request (fills it led or followed; a Xet file rebuilt for a plain \
             client counts its rebuild as upstream) or passed through uncached",
            m.served_bytes.clone(),
        );
        registry.register(
            "upstream_bytes",
            "Body bytes received from the upstream as they are read, by kind",
            m.upstream_bytes.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests sent to the upstream, by kind and status (0 = no answer)",
            m.upstream_requests.clone(),
        );
        registry.register(
            "upstream_first_byte_seconds",
            "Time from an upstream request to its answer's head",
            m.upstream_first_byte.clone(),
        );
        registry.register(
            "cache_size_bytes",
            "Bytes the cache holds",
            m.cache_size.clone(),
        );
        registry.register(
            "cache_limit_bytes",
            "The cache size limit (0 = none)",
            m.cache_limit.clone(),
        );
        registry.register(
            "evictions",
            "Cache entries evicted to keep under the limit",
            m.evictions.clone(),
        );
        registry.register(
            "evicted_bytes",
            "Bytes evicted to keep under the limit",
            m.evicted_bytes.clone(),
        );
        registry.register(
            "fills_in_flight",
            "Upstream fills running now (blob block runs and xorb ranges)",
            m.fills_in_flight.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a cache lookup.
    pub fn lookup(&self, outcome: Lookup) {
        self.cache_lookups
            .get_or_create(&LookupLabels { outcome })
            .inc();
    }

    /// Counts body bytes sent to a client.
    pub fn served(&self, source: ServedFrom, bytes: u64) {
        self.served_bytes
            .get_or_create(&ServedLabels { source })
            .inc_by(bytes);
    }

    /// Counts body bytes received from the upstream.
    pub fn upstream_received(&self, kind: UpstreamKind, bytes: u64) {
        self.upstream_bytes
            .get_or_create(&KindLabels { kind })
            .inc_by(bytes);
    }

    /// Counts an upstream request and its status (0 = no answer).
    pub fn upstream_request(&self, kind: UpstreamKind, status: u16) {
        self.upstream_requests
            .get_or_create(&UpstreamLabels { kind, status })
            .inc();
    }

    /// Upstream answers timed so far (the count of `olah_upstream_first_byte_seconds`).
    pub fn upstream_first_byte_count(&self) -> u64 {
        // The histogram keeps its count private; the text exposition carries it.
        let mut out = String::new();
        let mut r = Registry::default();
        r.register("h", "", self.upstream_first_byte.clone());
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out.lines()
            .find_map(|l| l.strip_prefix("h_count "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The count of one lookup outcome so far.
    pub fn lookups(&self, outcome: Lookup) -> u64 {
        self.cache_lookups
            .get_or_create(&LookupLabels { outcome })
            .get()
    }

    /// Bytes sent to clients from one source so far.
    pub fn served_total(&self, source: ServedFrom) -> u64 {
        self.served_bytes
            .get_or_create(&ServedLabels { source })
            .get()
    }

    /// Bytes received from the upstream for one kind so far.
    pub fn upstream_total(&self, kind: UpstreamKind) -> u64 {
        self.upstream_bytes
            .get_or_create(&KindLabels { kind })
            .get()
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The Prometheus text exposition of every metric (`GET /metrics`, content type
/// [`CONTENT_TYPE`]).
pub fn encode() -> String {
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_its_labels() {
        let m = metrics();
        m.lookup(Lookup::hit);
        m.served(ServedFrom::cache, 10);
        m.upstream_received(UpstreamKind::xorb, 7);
        m.upstream_request(UpstreamKind::api, 200);
        m.http_requests
            .get_or_create(&HttpLabels {
                route: RouteClass::resolve,
                method: MethodLabel::GET,
                status: 200,
            })
            .inc();
        let text = encode();
        for want in [
            "olah_http_requests_total{route=\"resolve\",method=\"GET\",status=\"200\"} 1",
            "olah_cache_lookups_total{outcome=\"hit\"} 1",
            "olah_served_bytes_total{source=\"cache\"} 10",
            "olah_upstream_bytes_total{kind=\"xorb\"} 7",
            "olah_upstream_requests_total{kind=\"api\",status=\"200\"} 1",
            "olah_cache_size_bytes 0",
            "olah_fills_in_flight 0",
            "# TYPE olah_upstream_first_byte_seconds histogram",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        m.upstream_first_byte.observe(0.01);
        assert_eq!(m.upstream_first_byte_count(), 1);
        assert_eq!(m.lookups(Lookup::hit), 1);
        assert_eq!(m.served_total(ServedFrom::cache), 10);
    }
}
