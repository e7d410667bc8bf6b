//! Fault knobs (latency, bandwidth, cut bodies, 503/429 bursts) and the body wrapper that
//! counts, paces and cuts every response body.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::server::HubState;
use crate::stats::{HostKind, RouteKind};

/// Which host(s) a fault set applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Hub and CDN (one-shot counters are shared: `fail_5xx: 2` fails two requests in total).
    #[default]
    #[serde(alias = "")]
    Both,
    /// Only the hub host.
    Hub,
    /// Only the CDN host.
    Cdn,
}

/// Fault knobs. Setting a fault set replaces the previous one for its scope (`Both` replaces
/// both hosts' sets); `Faults::default()` with scope `Both` clears everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay before the response head of every request.
    pub latency_ms: u64,
    /// Pace every body to this rate (0 = unlimited).
    pub bandwidth_bytes_per_sec: u64,
    /// With `cut_count`: the next `cut_count` bodies longer than this are aborted after exactly
    /// this many bytes (the connection is dropped; the body never ends cleanly).
    pub cut_after_bytes: Option<u64>,
    /// How many bodies to cut (decremented by each actual cut).
    pub cut_count: u32,
    /// The next N requests answer 503.
    pub fail_5xx: u32,
    /// The next N requests answer 429 (`Retry-After: 1`, `RateLimit`, `RateLimit-Policy`).
    pub fail_429: u32,
    /// The next N xorb range bodies (CDN) carry one flipped byte, 100 bytes into the first
    /// chunk's payload: well-formed records with wrong content, which only hashes reveal.
    pub corrupt_xorbs: u32,
    /// Hosts these faults apply to.
    pub scope: Scope,
}

impl Faults {
    /// No faults, for both hosts.
    pub fn none() -> Self {
        Self::default()
    }

    /// Restricts the set to one host.
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
}

pub(crate) struct FaultSet {
    cfg: Faults,
    cuts_left: AtomicU32,
    fail5_left: AtomicU32,
    fail429_left: AtomicU32,
    corrupt_left: AtomicU32,
}

fn take_one(a: &AtomicU32) -> bool {
    a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl FaultSet {
    fn current(&self) -> Faults {
        Faults {
            cut_count: self.cuts_left.load(Ordering::SeqCst),
            fail_5xx: self.fail5_left.load(Ordering::SeqCst),
            fail_429: self.fail429_left.load(Ordering::SeqCst),
            corrupt_xorbs: self.corrupt_left.load(Ordering::SeqCst),
            ..self.cfg.clone()
        }
    }
}

/// What the faults decided for one request.
pub(crate) enum Injected {
    None,
    Fail503,
    Fail429,
}

/// The faults applying to one request.
pub(crate) struct RequestFaults {
    pub latency: Duration,
    pub injected: Injected,
    pub body: BodyFaults,
}

/// Faults applying to one response body.
#[derive(Clone, Default)]
pub(crate) struct BodyFaults {
    bandwidth: u64,
    cut: Option<(u64, Arc<FaultSet>)>,
}

#[derive(Default)]
pub(crate) struct FaultTable {
    sets: Mutex<[Option<Arc<FaultSet>>; 2]>,
}

fn slot(h: HostKind) -> usize {
    match h {
        HostKind::Hub => 0,
        HostKind::Cdn => 1,
    }
}

impl FaultTable {
    pub(crate) fn set(&self, f: Faults) {
        let set = (f
            != Faults {
                scope: f.scope,
                ..Faults::default()
            })
        .then(|| {
            Arc::new(FaultSet {
                cuts_left: AtomicU32::new(if f.cut_after_bytes.is_some() {
                    f.cut_count
                } else {
                    0
                }),
                fail5_left: AtomicU32::new(f.fail_5xx),
                fail429_left: AtomicU32::new(f.fail_429),
                corrupt_left: AtomicU32::new(f.corrupt_xorbs),
                cfg: f.clone(),
            })
        });
        let mut sets = self.sets.lock().expect("faults lock");
        match f.scope {
            Scope::Both => *sets = [set.clone(), set],
            Scope::Hub => sets[0] = set,
            Scope::Cdn => sets[1] = set,
        }
    }

    /// Whether the next xorb body must be corrupted (consumes one `corrupt_xorbs`).
    pub(crate) fn take_corrupt_xorb(&self) -> bool {
        let set = self.sets.lock().expect("faults lock")[slot(HostKind::Cdn)].clone();
        set.is_some_and(|s| take_one(&s.corrupt_left))
    }

    pub(crate) fn current(&self, host: HostKind) -> Faults {
        self.sets.lock().expect("faults lock")[slot(host)]
            .as_ref()
            .map(|s| s.current())
            .unwrap_or_default()
    }

    pub(crate) fn for_request(&self, host: HostKind) -> RequestFaults {
        let set = self.sets.lock().expect("faults lock")[slot(host)].clone();
        let Some(set) = set else {
            return RequestFaults {
                latency: Duration::ZERO,
                injected: Injected::None,
                body: BodyFaults::default(),
            };
        };
        let injected = if take_one(&set.fail5_left) {
            Injected::Fail503
        } else if take_one(&set.fail429_left) {
            Injected::Fail429
        } else {
            Injected::None
        };
        RequestFaults {
            latency: Duration::from_millis(set.cfg.latency_ms),
            injected,
            body: BodyFaults {
                bandwidth: set.cfg.bandwidth_bytes_per_sec,
                cut: set.cfg.cut_after_bytes.map(|c| (c, set.clone())),
            },
        }
    }
}

struct Pump {
    inner: axum::body::BodyDataStream,
    buf: Bytes,
    sent: u64,
    start: Instant,
    faults: BodyFaults,
    fail_next: bool,
    done: bool,
    st: Arc<HubState>,
    host: HostKind,
    route: RouteKind,
}

/// Wraps a response body: counts its bytes as they are handed to the connection, paces it to
/// the bandwidth knob, and aborts it at the cut point when a cut is due.
pub(crate) fn wrap_body(
    body: Body,
    faults: BodyFaults,
    st: Arc<HubState>,
    host: HostKind,
    route: RouteKind,
) -> Body {
    let pump = Pump {
        inner: body.into_data_stream(),
        buf: Bytes::new(),
        sent: 0,
        start: Instant::now(),
        faults,
        fail_next: false,
        done: false,
        st,
        host,
        route,
    };
    let stream = futures::stream::unfold(pump, |mut p| async move {
        loop {
            if p.done {
                return None;
            }
            if p.fail_next {
                p.done = true;
                // Let the connection flush what was sent, then abort the body (hyper drops the
                // connection without completing the message).
                tokio::time::sleep(Duration::from_millis(30)).await;
                return Some((Err(std::io::Error::other("injected cut")), p));
            }
            if p.buf.is_empty() {
                match p.inner.next().await {
                    None => return None,
                    Some(Err(e)) => {
                        p.done = true;
                        return Some((Err(std::io::Error::other(e)), p));
                    }
                    Some(Ok(b)) => {
                        p.buf = b;
                        continue;
                    }
                }
            }
            let bw = p.faults.bandwidth;
            let mut take = p.buf.len();
            if bw > 0 {
                take = take.min((bw / 20).clamp(512, 64 * 1024) as usize);
            }
            if let Some((limit, set)) = &p.faults.cut
                && p.sent + take as u64 > *limit
            {
                if take_one(&set.cuts_left) {
                    take = (*limit - p.sent) as usize;
                    p.fail_next = true;
                }
                p.faults.cut = None;
            }
            let piece = p.buf.split_to(take);
            if bw > 0 {
                let due =
                    p.start + Duration::from_secs_f64((p.sent + take as u64) as f64 / bw as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            p.sent += take as u64;
            p.st.recorder.add_bytes(p.host, p.route, take as u64);
            if piece.is_empty() {
                continue;
            }
            return Some((Ok(piece), p));
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_json() {
        let f: Faults = serde_json::from_str(r#"{"fail_5xx": 2, "scope": "cdn"}"#).unwrap();
        assert_eq!(f.fail_5xx, 2);
        assert_eq!(f.scope, Scope::Cdn);
        let f: Faults = serde_json::from_str(r#"{"scope": ""}"#).unwrap();
        assert_eq!(f.scope, Scope::Both);
        assert_eq!(
            serde_json::from_str::<Faults>("{}").unwrap(),
            Faults::none()
        );
        assert!(serde_json::from_str::<Faults>(r#"{"latency": 3}"#).is_err());
    }

    #[test]
    fn shared_one_shot_counters() {
        let t = FaultTable::default();
        t.set(Faults {
            fail_5xx: 2,
            ..Faults::none()
        });
        assert!(matches!(
            t.for_request(HostKind::Hub).injected,
            Injected::Fail503
        ));
        assert!(matches!(
            t.for_request(HostKind::Cdn).injected,
            Injected::Fail503
        ));
        assert!(matches!(
            t.for_request(HostKind::Hub).injected,
            Injected::None
        ));
        t.set(Faults {
            fail_429: 1,
            latency_ms: 5,
            scope: Scope::Hub,
            ..Faults::none()
        });
        assert!(matches!(
            t.for_request(HostKind::Cdn).injected,
            Injected::None
        ));
        assert_eq!(t.current(HostKind::Hub).fail_429, 1);
        let r = t.for_request(HostKind::Hub);
        assert!(matches!(r.injected, Injected::Fail429));
        assert_eq!(r.latency, Duration::from_millis(5));
        assert_eq!(t.current(HostKind::Hub).fail_429, 0);
        t.set(Faults::none());
        assert_eq!(t.current(HostKind::Hub), Faults::none());
    }
}
