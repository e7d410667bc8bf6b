//! Request counters, body byte counters and a bounded log of recent requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which of the two servers answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// The hub host (web + API + CAS API).
    Hub,
    /// The CDN host (LFS objects, xorb ranges).
    Cdn,
}

impl HostKind {
    /// `hub` | `cdn`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Hub => "hub",
            HostKind::Cdn => "cdn",
        }
    }

    fn idx(self) -> usize {
        match self {
            HostKind::Hub => 0,
            HostKind::Cdn => 1,
        }
    }
}

/// What kind of route a request hit (the key of the per-route counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// `/{repo}/resolve/{rev}/{path}`.
    Resolve,
    /// `/api/{t}s/{repo}` and `/api/{t}s/{repo}/revision/{rev}`.
    RepoInfo,
    /// `/api/{t}s/{repo}/tree/{rev}[/{path}]`.
    Tree,
    /// `POST /api/{t}s/{repo}/paths-info/{rev}`.
    PathsInfo,
    /// `/api/{t}s/{repo}/refs`.
    Refs,
    /// `/api/{t}s/{repo}/commits/{rev}`.
    Commits,
    /// `/api/whoami-v2`.
    Whoami,
    /// `/api/{t}s/{repo}/xet-read-token/{rev}`.
    XetToken,
    /// `/cas/…` (Xet CAS API) and `/v1/telemetry`.
    Cas,
    /// CDN `/lfs/{sha256}`.
    Lfs,
    /// CDN `/xorb/default/{hash}`.
    Xorb,
    /// `/api/resolve-cache/{t}s/{repo}/{commit}/{path}` (a regular file's resolve redirect).
    ResolveCache,
    /// `/{repo}/raw/{rev}/{path}`.
    Raw,
    /// Anything else.
    Other,
}

impl RouteKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Resolve => "resolve",
            RouteKind::RepoInfo => "repo_info",
            RouteKind::Tree => "tree",
            RouteKind::PathsInfo => "paths_info",
            RouteKind::Refs => "refs",
            RouteKind::Commits => "commits",
            RouteKind::Whoami => "whoami",
            RouteKind::XetToken => "xet_token",
            RouteKind::Cas => "cas",
            RouteKind::Lfs => "lfs",
            RouteKind::Xorb => "xorb",
            RouteKind::ResolveCache => "resolve_cache",
            RouteKind::Raw => "raw",
            RouteKind::Other => "other",
        }
    }
}

/// One logged request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Sequence number (arrival order, not reset by `reset`).
    pub seq: u64,
    /// `hub` | `cdn`.
    pub host: HostKind,
    /// Method.
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// Route kind.
    pub route: RouteKind,
    /// Whether an `Authorization` header was present.
    pub auth: bool,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Response status.
    pub status: u16,
}

/// A snapshot of the counters (`GET /__admin/stats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests to the hub host.
    pub hub_requests: u64,
    /// Requests to the CDN host.
    pub cdn_requests: u64,
    /// Body bytes sent by the hub host (all bodies: files, JSON, errors).
    pub hub_bytes: u64,
    /// Body bytes sent by the CDN host.
    pub cdn_bytes: u64,
    /// Of `cdn_bytes`, the xorb bytes served to Xet clients.
    pub xorb_bytes: u64,
    /// Requests by host → method → route kind (`requests["cdn"]["GET"]["lfs"]`).
    pub requests: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// The most recent requests, oldest first (at most [`LOG_CAPACITY`]).
    pub log: Vec<LoggedRequest>,
}

impl Stats {
    /// Requests to `host` with `method` on `route`.
    pub fn count(&self, host: HostKind, method: &str, route: RouteKind) -> u64 {
        self.requests
            .get(host.as_str())
            .and_then(|m| m.get(method))
            .and_then(|r| r.get(route.as_str()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests to `host` on `route`, any method.
    pub fn count_route(&self, host: HostKind, route: RouteKind) -> u64 {
        self.requests
            .get(host.as_str())
            .map(|m| m.values().filter_map(|r| r.get(route.as_str())).sum())
            .unwrap_or(0)
    }

    /// Log entries of `host` whose URI contains `needle`.
    pub fn entries(&self, host: HostKind, needle: &str) -> Vec<&LoggedRequest> {
        self.log
            .iter()
            .filter(|r| r.host == host && r.uri.contains(needle))
            .collect()
    }
}

/// How many requests the log keeps.
pub const LOG_CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct Recorder {
    requests: [AtomicU64; 2],
    bytes: [AtomicU64; 2],
    xorb_bytes: AtomicU64,
    seq: AtomicU64,
    by_route: Mutex<BTreeMap<(HostKind, String, RouteKind), u64>>,
    log: Mutex<VecDeque<LoggedRequest>>,
}

impl Recorder {
    /// Counts a request on arrival; returns its sequence number.
    pub(crate) fn arrive(&self, host: HostKind, method: &str, route: RouteKind) -> u64 {
        self.requests[host.idx()].fetch_add(1, Ordering::SeqCst);
        *self
            .by_route
            .lock()
            .expect("stats lock")
            .entry((host, method.to_string(), route))
            .or_default() += 1;
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Logs a request once its response head is ready.
    pub(crate) fn log(&self, entry: LoggedRequest) {
        let mut log = self.log.lock().expect("log lock");
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(entry);
    }

    pub(crate) fn add_bytes(&self, host: HostKind, route: RouteKind, n: u64) {
        self.bytes[host.idx()].fetch_add(n, Ordering::SeqCst);
        if route == RouteKind::Xorb {
            self.xorb_bytes.fetch_add(n, Ordering::SeqCst);
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut requests: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> =
            BTreeMap::new();
        for ((h, m, r), n) in self.by_route.lock().expect("stats lock").iter() {
            requests
                .entry(h.as_str().into())
                .or_default()
                .entry(m.clone())
                .or_default()
                .insert(r.as_str().into(), *n);
        }
        let mut log: Vec<LoggedRequest> =
            self.log.lock().expect("log lock").iter().cloned().collect();
        log.sort_by_key(|e| e.seq);
        Stats {
            hub_requests: self.requests[0].load(Ordering::SeqCst),
            cdn_requests: self.requests[1].load(Ordering::SeqCst),
            hub_bytes: self.bytes[0].load(Ordering::SeqCst),
            cdn_bytes: self.bytes[1].load(Ordering::SeqCst),
            xorb_bytes: self.xorb_bytes.load(Ordering::SeqCst),
            requests,
            log,
        }
    }

    pub(crate) fn reset(&self) {
        for c in self.requests.iter().chain(&self.bytes) {
            c.store(0, Ordering::SeqCst);
        }
        self.xorb_bytes.store(0, Ordering::SeqCst);
        self.by_route.lock().expect("stats lock").clear();
        self.log.lock().expect("log lock").clear();
    }
}
