//! Xet through the mirror (PROTOCOL.md §3.6, §4; design in docs/XET.md).
//!
//! In `--xet serve` mode (the default) clients speak Xet to the mirror and never learn an
//! upstream CAS URL, token or presigned URL:
//!
//! * **Token route** (`/api/{t}s/{repo}/xet-read-token/{rev}`): the caller's access is confirmed
//!   by the upstream token route called with the caller's own token (fail closed; remembered for
//!   the metadata TTL like every grant), then the mirror issues its own token bound to that repo
//!   and caller, with `casUrl = {mirror}/cas`.
//! * **Reconstruction** (`/cas/v{1,2}/reconstructions/{file}`): answered from the cache when the
//!   file is known to belong to the session's repo (learned only from the Hub's own per-file
//!   fields, see [`member_hashes`], or from the upstream CAS), else from the upstream CAS with an
//!   upstream token obtained for the caller. The terms are
//!   passed through unchanged; every xorb URL becomes a mirror URL signed by the mirror
//!   (`/cas/xorb/{xorb}?…&s=…`, keyed BLAKE3 over xorb, file, chunk and byte range, expiry).
//! * **Xorb ranges** (`/cas/xorb/{xorb}`): from [`XorbStore`], filled once from the upstream
//!   presigned URL on a miss and verified record by record before publication.
//! * **Plain HTTP** for Xet files (`resolve` without Xet): [`XetFileSource`] rebuilds the bytes
//!   from the same xorb ranges, so one cache serves both paths; the blob store then verifies the
//!   whole file's sha256 as for any LFS file.
//!
//! In `--xet plain` mode, and for repos the cache rules exclude, every trace of Xet is removed
//! from what clients see, so they all download through `resolve`.
//! So it is when the upstream's token route names a CAS outside the allow list (the mirror never
//! contacts it): see [`Mirror::xet_check_cas`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderValue, Method, StatusCode};
use olah_store::{Expect, SourceError, StoreError, UpstreamBytes, XorbRange, XorbStore};
use olah_types::{RepoRef, Revision, Route};
use olah_upstream::HubRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::{Caller, Known, Scope};
use crate::error::ApiError;
use crate::mirror::{Mirror, now, offline_miss, read_answer};

/// Lifetime of a mirror-issued Xet token and of the mirror's signed xorb URLs.
const TOKEN_TTL: u64 = 3600;
/// An upstream presigned xorb URL is used for at most this long after it was handed out.
const UPSTREAM_URL_TTL: Duration = Duration::from_secs(300);
/// How long the upstream's word on where its CAS lives is trusted before the token route is
/// asked again (and how long after a failed attempt to ask).
const CAS_VERDICT_TTL: Duration = Duration::from_secs(600);
const CAS_RETRY: Duration = Duration::from_secs(30);

/// Who a Xet request acts for: a repo, a revision and the caller's own Hub credentials (kept in
/// memory only, to obtain upstream CAS tokens on the caller's behalf).
#[derive(Clone)]
pub(crate) struct Session {
    repo: RepoRef,
    rev: String,
    auth: Option<HeaderValue>,
    caller: Caller,
    exp: u64,
}

impl Session {
    /// Key of the upstream CAS token obtained for this repo, revision and caller.
    fn cas_token_key(&self) -> String {
        format!("{}|{}|{}", self.repo.key(), self.rev, self.caller.id())
    }
}

#[derive(Clone)]
struct UpToken {
    cas_url: String,
    token: String,
    exp: u64,
}

/// Upstream presigned URL (and when it was handed out) per (xorb, first byte, last byte).
type UrlMap = HashMap<(String, u64, u64), (String, Instant)>;

/// An upstream URL of one fetch range: (xorb hash, byte range, URL).
pub type UpstreamUrl = (String, Span, String);

/// A Xet `Range`: first byte and optional last byte (inclusive).
pub type XetRange = (u64, Option<u64>);

/// The Xet side of the mirror.
pub struct XetState {
    secret: [u8; 32],
    /// Verified xorb ranges.
    pub store: Arc<XorbStore>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    up_tokens: Mutex<HashMap<String, UpToken>>,
    urls: Mutex<UrlMap>,
    /// Files whose chunk hashes are being checked right now.
    verifying: Mutex<std::collections::HashSet<String>>,
    /// Where the upstream's token route says its CAS lives (one upstream per mirror).
    cas: Mutex<CasVerdict>,
    /// CAS hosts outside the allow list already reported in the log.
    warned: Mutex<std::collections::HashSet<String>>,
}

/// The upstream's CAS as its token route last named it.
#[derive(Default)]
struct CasVerdict {
    /// `host:port` of a CAS outside the allow list: Xet is off (plain HTTP) until the token
    /// route names an allowed CAS again. Sticky: it holds while a new answer is awaited.
    foreign: Option<String>,
    /// When to ask again (`None`: never asked).
    next_check: Option<Instant>,
}

impl XetState {
    /// State with a fresh signing secret and the xorb store under `root`.
    pub fn open(root: std::path::PathBuf) -> Result<Self, String> {
        let store = XorbStore::open(root.clone())
            .map_err(|e| format!("cannot open the xorb store in {}: {e}", root.display()))?;
        Ok(Self {
            secret: rand::random(),
            store: Arc::new(store),
            sessions: Mutex::new(HashMap::new()),
            up_tokens: Mutex::new(HashMap::new()),
            urls: Mutex::new(HashMap::new()),
            verifying: Mutex::default(),
            cas: Mutex::default(),
            warned: Mutex::default(),
        })
    }

    fn sign(&self, msg: &str) -> String {
        hex::encode(&blake3::keyed_hash(&self.secret, msg.as_bytes()).as_bytes()[..20])
    }

    fn session(&self, token: &str) -> Option<Arc<Session>> {
        let s = self
            .sessions
            .lock()
            .expect("xet sessions")
            .get(token)
            .cloned()?;
        (s.exp > now()).then_some(s)
    }

    /// The upstream named a CAS outside the allow list: Xet is served as plain HTTP.
    fn cas_foreign(&self) -> bool {
        self.cas.lock().expect("xet cas").foreign.is_some()
    }

    /// Whether the CAS verdict is due (never asked, or its time is up).
    fn cas_due(&self) -> bool {
        self.cas
            .lock()
            .expect("xet cas")
            .next_check
            .is_none_or(|t| Instant::now() >= t)
    }

    /// Records what the token route said: `foreign` = the host of a CAS outside the allow list.
    /// Logs each such host once.
    fn cas_answer(&self, foreign: Option<String>) {
        if let Some(host) = &foreign
            && self.warned.lock().expect("xet warned").insert(host.clone())
        {
            tracing::warn!(
                cas_host = %host,
                "the upstream's Xet CAS {host} is not an allowed upstream host: its Xet files are \
                 served over plain HTTP (the Hub's resolve URL); to serve them over Xet, start the \
                 mirror with --upstream-host {host}"
            );
        }
        let mut v = self.cas.lock().expect("xet cas");
        v.foreign = foreign;
        v.next_check = Some(Instant::now() + CAS_VERDICT_TTL);
    }

    /// Asking the token route failed: keep the verdict, ask again a little later.
    fn cas_unanswered(&self) {
        let mut v = self.cas.lock().expect("xet cas");
        v.next_check = Some(Instant::now() + CAS_RETRY);
    }

    fn fresh_url(&self, xorb: &str, b: Span) -> Option<String> {
        let urls = self.urls.lock().expect("xet urls");
        let (u, at) = urls.get(&(xorb.to_string(), b.start, b.end))?;
        (at.elapsed() < UPSTREAM_URL_TTL).then(|| u.clone())
    }
}

// ------------------------------------------------------------------------------------------
// Reconstructions: one normalised form for v1 and v2.

/// A chunk range (end-exclusive) or byte range (end-inclusive), as the CAS writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// First.
    pub start: u64,
    /// Last (bytes) or one past the last (chunks).
    pub end: u64,
}

/// One term: a chunk range of a xorb, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// Xorb hash.
    pub hash: String,
    /// Decoded bytes of the chunk range.
    pub unpacked_length: u64,
    /// Chunk range, end-exclusive.
    pub range: Span,
}

/// Where a xorb's chunk range lies in its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// Chunk range, end-exclusive.
    pub chunks: Span,
    /// Byte range, end-inclusive.
    pub bytes: Span,
}

/// A reconstruction without any URL: content-addressed, so it can be cached and shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recon {
    /// Bytes to skip in the first term's decoded data.
    pub offset: u64,
    /// Terms in file order.
    pub terms: Vec<Term>,
    /// Fetch ranges per xorb.
    pub fetch: BTreeMap<String, Vec<Fetch>>,
}

impl Recon {
    /// Every fetch range, as (xorb hash, byte range).
    pub fn ranges(&self) -> impl Iterator<Item = (&str, XorbRange)> {
        self.fetch.iter().flat_map(|(h, list)| {
            list.iter().map(move |f| {
                (
                    h.as_str(),
                    XorbRange {
                        start: f.bytes.start,
                        end: f.bytes.end,
                    },
                )
            })
        })
    }

    /// The fetch range that holds a term's chunks.
    pub fn fetch_for(&self, t: &Term) -> Option<Fetch> {
        self.fetch
            .get(&t.hash)?
            .iter()
            .find(|f| f.chunks.start <= t.range.start && t.range.end <= f.chunks.end)
            .copied()
    }
}

use olah_xet::is_hash_str as is_hash;

fn span(v: &Value) -> Option<Span> {
    let s = Span {
        start: v.get("start")?.as_u64()?,
        end: v.get("end")?.as_u64()?,
    };
    (s.start <= s.end).then_some(s)
}

/// Parses an upstream v1 or v2 reconstruction into the URL-free form plus the upstream URL of
/// each (xorb, byte range).
pub fn parse_upstream(v: &Value) -> Result<(Recon, Vec<UpstreamUrl>), String> {
    let bad = |what: &str| format!("malformed reconstruction: {what}");
    let offset = v
        .get("offset_into_first_range")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut terms = Vec::new();
    for t in v
        .get("terms")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("terms"))?
    {
        let hash = t.get("hash").and_then(Value::as_str).unwrap_or_default();
        if !is_hash(hash) {
            return Err(bad("term hash"));
        }
        terms.push(Term {
            hash: hash.to_string(),
            unpacked_length: t
                .get("unpacked_length")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("unpacked_length"))?,
            range: t.get("range").and_then(span).ok_or_else(|| bad("range"))?,
        });
    }
    let mut fetch: BTreeMap<String, Vec<Fetch>> = BTreeMap::new();
    let mut urls = Vec::new();
    let mut add = |h: &str, chunks: Span, bytes: Span, url: &str| -> Result<(), String> {
        if !is_hash(h) {
            return Err(bad("xorb hash"));
        }
        fetch
            .entry(h.to_string())
            .or_default()
            .push(Fetch { chunks, bytes });
        urls.push((h.to_string(), bytes, url.to_string()));
        Ok(())
    };
    if let Some(m) = v.get("fetch_info").and_then(Value::as_object) {
        for (h, list) in m {
            for e in list.as_array().ok_or_else(|| bad("fetch_info"))? {
                add(
                    h,
                    e.get("range").and_then(span).ok_or_else(|| bad("range"))?,
                    e.get("url_range")
                        .and_then(span)
                        .ok_or_else(|| bad("url_range"))?,
                    e.get("url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("url"))?,
                )?;
            }
        }
    } else if let Some(m) = v.get("xorbs").and_then(Value::as_object) {
        for (h, list) in m {
            for e in list.as_array().ok_or_else(|| bad("xorbs"))? {
                let url = e
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("url"))?;
                for r in e
                    .get("ranges")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("ranges"))?
                {
                    add(
                        h,
                        r.get("chunks")
                            .and_then(span)
                            .ok_or_else(|| bad("chunks"))?,
                        r.get("bytes").and_then(span).ok_or_else(|| bad("bytes"))?,
                        url,
                    )?;
                }
            }
        }
    } else if !terms.is_empty() {
        return Err(bad("no fetch_info or xorbs"));
    }
    let recon = Recon {
        offset,
        terms,
        fetch,
    };
    if let Some(t) = recon.terms.iter().find(|t| recon.fetch_for(t).is_none()) {
        return Err(bad(&format!("no fetch range for a term of {}", t.hash)));
    }
    Ok((recon, urls))
}

/// The message the mirror signs for one xorb URL.
fn xorb_msg(xorb: &str, file: &str, c: Span, b: Span, exp: u64) -> String {
    format!(
        "{xorb}|{file}|{}-{}|{}-{}|{exp}",
        c.start, c.end, b.start, b.end
    )
}

impl XetState {
    /// A reconstruction in the v1 or v2 shape with every xorb URL pointing at the mirror.
    pub fn render(&self, r: &Recon, version: u8, base: &str, file: &str) -> Value {
        let exp = now() + TOKEN_TTL;
        let url = |h: &str, f: &Fetch| {
            let sig = self.sign(&xorb_msg(h, file, f.chunks, f.bytes, exp));
            format!(
                "{base}/cas/xorb/{h}?f={file}&c={}-{}&b={}-{}&x={exp}&s={sig}",
                f.chunks.start, f.chunks.end, f.bytes.start, f.bytes.end
            )
        };
        let terms: Vec<Value> = r
            .terms
            .iter()
            .map(
                |t| json!({"hash": t.hash, "unpacked_length": t.unpacked_length, "range": t.range}),
            )
            .collect();
        let mut m = serde_json::Map::new();
        for (h, list) in &r.fetch {
            let entries: Vec<Value> = list
                .iter()
                .map(|f| {
                    if version == 1 {
                        json!({"range": f.chunks, "url": url(h, f), "url_range": f.bytes})
                    } else {
                        json!({"url": url(h, f), "ranges": [{"chunks": f.chunks, "bytes": f.bytes}]})
                    }
                })
                .collect();
            m.insert(h.clone(), Value::Array(entries));
        }
        let key = if version == 1 { "fetch_info" } else { "xorbs" };
        json!({"offset_into_first_range": r.offset, "terms": terms, key: m})
    }
}

/// The query of a mirror xorb URL.
#[derive(Deserialize)]
struct XorbQuery {
    f: String,
    c: String,
    b: String,
    x: u64,
    s: String,
}

fn parse_span(s: &str) -> Option<Span> {
    let (a, b) = s.split_once('-')?;
    let s = Span {
        start: a.parse().ok()?,
        end: b.parse().ok()?,
    };
    (s.start <= s.end).then_some(s)
}

/// `bytes=a-b` or `bytes=a-` (inclusive), as Xet clients send it.
pub fn simple_range(v: Option<&str>) -> Result<Option<XetRange>, &'static str> {
    const BAD: &str = "Range must be bytes=START-END";
    let Some(v) = v else { return Ok(None) };
    let r = v.trim().strip_prefix("bytes=").ok_or(BAD)?;
    let (a, b) = r.split_once('-').ok_or(BAD)?;
    let a: u64 = a.trim().parse().map_err(|_| BAD)?;
    let b: Option<u64> = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().map_err(|_| BAD)?)
    };
    if b.is_some_and(|b| b < a) {
        return Err(BAD);
    }
    Ok(Some((a, b)))
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::Hub {
        status: StatusCode::UNAUTHORIZED,
        code: "Unauthorized",
        message: msg.into(),
    }
}

fn forbidden(msg: &str) -> ApiError {
    ApiError::Hub {
        status: StatusCode::FORBIDDEN,
        code: "Forbidden",
        message: msg.into(),
    }
}

/// `host:port` of a CAS URL, for the log (the whole text, cut short, if it is no URL).
fn cas_host(cas_url: &str) -> String {
    match url::Url::parse(cas_url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => cas_url.chars().take(100).collect(),
        },
        Err(_) => cas_url.chars().take(100).collect(),
    }
}

/// The answer of the Xet routes when the upstream's CAS lies outside the allow list: not
/// retryable (hf_xet gives up at once on a 404), the file is served over plain HTTP instead.
fn foreign_cas() -> ApiError {
    ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "XetDisabled",
        message: "the upstream's Xet CAS is not an allowed upstream host: this mirror serves its \
                  files over plain HTTP"
            .into(),
    }
}

/// The answer of the token route where the mirror does not serve Xet.
pub fn disabled() -> ApiError {
    ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "XetDisabled",
        message: "this mirror serves this repository's files over plain HTTP; Xet is disabled"
            .into(),
    }
}

/// Removes every `xetHash` member from a JSON document (tree, paths-info, repo info siblings).
/// Non-JSON text is returned unchanged.
pub fn strip_json(body: &str) -> String {
    if !body.contains("xetHash") {
        return body.to_string();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            strip_value(&mut v);
            v.to_string()
        }
        Err(_) => body.to_string(),
    }
}

fn strip_value(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("xetHash");
            m.values_mut().for_each(strip_value);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_value),
        _ => {}
    }
}

/// The Xet file hashes an upstream answer of `route` says belong to its repo. Only the Hub's
/// own per-file fields count, never owner-written text such as a repo card (`cardData`):
/// * tree and paths-info: the top-level array's file entries (`type` "file", a `path`), each
///   entry's own top-level `xetHash`;
/// * repo info (`siblings`): each sibling's own top-level `xetHash` next to its `rfilename`.
///   Siblings are generated by the Hub from the repo's git tree, like tree entries; only their
///   top level is read, nothing nested and nothing outside `siblings`.
///
/// Every other route, and every other place in these answers, yields nothing.
pub fn member_hashes(route: &Route, body: &str) -> Vec<String> {
    let own_hash = |e: &serde_json::Map<String, Value>| {
        e.get("xetHash")
            .and_then(Value::as_str)
            .filter(|h| is_hash(h))
            .map(str::to_string)
    };
    if !body.contains("xetHash") {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let entries: &[Value] = match (route, &v) {
        (Route::Tree { .. } | Route::PathsInfo { .. }, Value::Array(a)) => a,
        (Route::RepoInfo { .. } | Route::RevisionInfo { .. }, Value::Object(m)) => {
            match m.get("siblings") {
                Some(Value::Array(a)) => a,
                _ => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    let is_tree = matches!(route, Route::Tree { .. } | Route::PathsInfo { .. });
    entries
        .iter()
        .filter_map(Value::as_object)
        .filter(|e| {
            if is_tree {
                e.get("type").and_then(Value::as_str) == Some("file")
                    && e.get("path").is_some_and(Value::is_string)
            } else {
                e.get("rfilename").is_some_and(Value::is_string)
            }
        })
        .filter_map(own_hash)
        .collect()
}

/// Database key of "file hash F belongs to repo R", learned only from authoritative places
/// ([`member_hashes`], a resolve `X-Xet-Hash`, or the upstream CAS serving F with a token scoped
/// to R).
pub(crate) fn known_key(repo_key: &str, file: &str) -> String {
    format!("xmember|{repo_key}|{file}")
}

/// Prefix of the memberships older versions recorded from every `xetHash` anywhere in an API
/// answer (owner-written repo cards included): never trusted, deleted at start-up.
const UNPROVEN_MEMBERSHIPS: &str = "xfile|";

/// Deletes the memberships recorded the old way (one-time migration, run at every start-up).
pub(crate) fn forget_unproven_memberships(db: &olah_store::MetaDb) -> Result<(), String> {
    db.delete_prefix(UNPROVEN_MEMBERSHIPS)
        .map_err(|e| format!("cannot migrate the metadata database: {e}"))
}

fn recon_key(file: &str, range: Option<XetRange>) -> String {
    match range {
        None => format!("xrecon|{file}|all"),
        Some((a, None)) => format!("xrecon|{file}|{a}-"),
        Some((a, Some(b))) => format!("xrecon|{file}|{a}-{b}"),
    }
}

// ------------------------------------------------------------------------------------------
// The service.

impl Mirror {
    /// Whether clients see Xet for this repo: `--xet serve`, a repo the mirror may cache, and an
    /// upstream CAS the mirror may contact (else its Xet files are served over plain HTTP).
    pub fn xet_serves(&self, repo: &RepoRef) -> bool {
        self.xet_configured(repo) && !self.xet.cas_foreign()
    }

    fn xet_configured(&self, repo: &RepoRef) -> bool {
        self.cfg.xet_mode == olah_config::XetMode::Serve && self.cache_allowed(repo)
    }

    /// Before an answer advertises Xet for `repo` (a Xet file's resolve headers, a listing with
    /// `xetHash`): makes sure the mirror knows where the upstream's CAS lives, asking the token
    /// route for `rev` with the caller's credentials when that verdict is due (at most every
    /// [`CAS_VERDICT_TTL`] while it holds). A CAS outside the allow list turns Xet off, so the
    /// answer sends clients to plain HTTP instead of to a CAS the mirror cannot reach.
    pub async fn xet_check_cas(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &str,
        auth: Option<&HeaderValue>,
    ) {
        if self.offline() || !self.xet_configured(repo) || !self.xet.cas_due() {
            return;
        }
        let session = Session {
            repo: repo.clone(),
            rev: rev.to_string(),
            auth: auth.cloned(),
            caller: self.access.caller(auth),
            exp: u64::MAX,
        };
        if let Err(e) = self.upstream_cas_token(&session).await {
            tracing::debug!(error = ?e, "asking the upstream token route where its CAS lives failed");
        }
    }

    /// [`Mirror::xet_check_cas`] for an API answer that names Xet files (tree, paths-info) before
    /// it is rendered, at the answer's revision.
    pub async fn xet_check_listing(
        self: &Arc<Self>,
        route: &Route,
        body: &str,
        auth: Option<&HeaderValue>,
    ) {
        // Cheap checks first: the body is scanned only when a verdict is due.
        if let (Some(repo), Some(rev)) = (route.repo(), route.revision())
            && !self.offline()
            && self.xet.cas_due()
            && body.contains("xetHash")
        {
            self.xet_check_cas(repo, rev.as_str(), auth).await;
        }
    }

    /// Remembers that these Xet file hashes belong to `repo` (from authoritative upstream
    /// answers only: see [`known_key`]).
    pub(crate) async fn learn_xet_files(&self, repo: &RepoRef, mut files: Vec<String>) {
        files.retain(|f| is_hash(f));
        if files.is_empty() || !self.cache_allowed(repo) {
            return;
        }
        let repo_key = repo.key();
        let _ = self
            .db(move |db| {
                for f in files {
                    let k = known_key(&repo_key, &f);
                    if db.get_json::<u8>(&k)?.is_none() {
                        db.put_json(&k, &1u8)?;
                    }
                }
                Ok(())
            })
            .await;
    }

    fn knows_xet_file(&self, repo: &RepoRef, file: &str) -> bool {
        self.db
            .get_json::<u8>(&known_key(&repo.key(), file))
            .ok()
            .flatten()
            .is_some()
    }

    /// The token route: confirms the caller's access to the repo's files (fail closed), then
    /// issues a mirror token. Returns (token, expiry).
    pub async fn xet_token(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &Revision,
        auth: Option<&HeaderValue>,
    ) -> Result<(String, u64), ApiError> {
        if !self.xet_serves(repo) {
            return Err(disabled());
        }
        let caller = self.access.caller(auth);
        let repo_key = repo.key();
        let session = Session {
            repo: repo.clone(),
            rev: rev.as_str().to_string(),
            auth: auth.cloned(),
            caller: caller.clone(),
            exp: now() + TOKEN_TTL,
        };
        match self.access.check(&repo_key, Scope::Files, &caller) {
            Known::Allowed if !self.offline() && self.xet.cas_due() => {
                // Where the upstream CAS lives is due to be confirmed: a CAS outside the allow
                // list must turn this token route off rather than lead the client to a CAS the
                // mirror cannot reach.
                if let Err(e) = self.upstream_cas_token(&session).await
                    && self.xet.cas_foreign()
                {
                    return Err(e);
                }
            }
            Known::Allowed => {}
            Known::Denied(e) => return Err(e),
            Known::Unknown if self.offline() => {
                if !(self.is_public_persisted(&repo_key, Scope::Files)
                    || self.has_grant(&repo_key, Scope::Files, &caller))
                {
                    return Err(ApiError::Hub {
                        status: StatusCode::UNAUTHORIZED,
                        code: "GatedRepo",
                        message: "offline: access to this repository cannot be confirmed".into(),
                    });
                }
            }
            Known::Unknown => match self.upstream_cas_token(&session).await {
                Ok(_) => {}
                Err(e)
                    if e.is_outage()
                        && self.may_serve_without_upstream(&repo_key, Scope::Files, &caller) => {}
                Err(e) => return Err(e),
            },
        }
        let mut sessions = self.xet.sessions.lock().expect("xet sessions");
        let t = now();
        sessions.retain(|_, s| s.exp > t);
        // The same caller asking again for the same repo and revision gets the token it holds
        // while that has 10 minutes left: one session per (repo, revision, caller), not per call.
        if let Some((tok, s)) = sessions.iter().find(|(_, s)| {
            s.exp > t + 600
                && s.repo == session.repo
                && s.rev == session.rev
                && s.caller == session.caller
                && s.auth == session.auth
        }) {
            return Ok((tok.clone(), s.exp));
        }
        let token = format!("olx_{}", hex::encode(rand::random::<[u8; 24]>()));
        let exp = session.exp;
        sessions.insert(token.clone(), Arc::new(session));
        Ok((token, exp))
    }

    /// An upstream CAS token for the session's repo and caller (cached until a minute before it
    /// expires). Asking for it is also the upstream's verdict on the caller's access.
    async fn upstream_cas_token(self: &Arc<Self>, s: &Session) -> Result<UpToken, ApiError> {
        let key = s.cas_token_key();
        if let Some(t) = self.xet.up_tokens.lock().expect("xet tokens").get(&key)
            && t.exp > now() + 60
        {
            if self.xet.cas_due() {
                // Its CAS URL was on the allow list when it was issued.
                self.xet.cas_answer(None);
            }
            return Ok(t.clone());
        }
        let route = Route::XetReadToken {
            repo: s.repo.clone(),
            revision: Revision::new(&s.rev).map_err(|e| ApiError::Internal(e.to_string()))?,
        };
        if !route.is_canonical() {
            return Err(ApiError::bad_request(
                "ambiguous repository id for a Xet token",
            ));
        }
        let resp = self
            .upstream
            .hub(HubRequest {
                method: Method::GET,
                path_and_query: &route.upstream_path(),
                auth: s.auth.as_ref(),
                headers: http::HeaderMap::new(),
                body: None,
            })
            .await
            .inspect_err(|_| self.xet.cas_unanswered())?;
        let (status, h, body) =
            crate::mirror::read_answer_limited(resp, crate::mirror::TOKEN_ANSWER_LIMIT)
                .await
                .inspect_err(|_| self.xet.cas_unanswered())?;
        let repo_key = s.repo.key();
        if !status.is_success() {
            self.xet.cas_unanswered();
            let e = ApiError::from_upstream(status, &h, body);
            if crate::mirror::is_refusal(status, &h) {
                self.refused(&repo_key, Scope::Files, &s.caller, e.clone())
                    .await;
            }
            return Err(e);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // The JSON body, else the X-Xet-* headers (PROTOCOL.md §3.6: the Hub sends both).
        let field = |json: &str, header: &str| {
            v.get(json)
                .and_then(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .or_else(|| {
                    h.get(header)
                        .and_then(|x| x.to_str().ok())
                        .map(str::to_string)
                })
        };
        let tok = UpToken {
            cas_url: field("casUrl", "x-xet-cas-url").unwrap_or_default(),
            token: field("accessToken", "x-xet-access-token").unwrap_or_default(),
            exp: field("exp", "x-xet-token-expiration")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0),
        };
        if tok.token.is_empty() {
            self.xet.cas_unanswered();
            return Err(ApiError::BadUpstream(
                "Xet token answer without a token".into(),
            ));
        }
        // The upstream gave this caller a token: access confirmed, whatever its CAS.
        self.granted(&repo_key, Scope::Files, &s.caller).await;
        if !self.upstream.allows_url(&tok.cas_url) {
            self.xet.cas_answer(Some(cas_host(&tok.cas_url)));
            return Err(foreign_cas());
        }
        self.xet.cas_answer(None);
        self.xet
            .up_tokens
            .lock()
            .expect("xet tokens")
            .insert(key, tok.clone());
        Ok(tok)
    }

    /// A reconstruction for the session: cached when the file is known to belong to its repo and
    /// every fetch range is either cached or still has a fresh upstream URL; else upstream.
    async fn reconstruction(
        self: &Arc<Self>,
        s: &Session,
        file: &str,
        range: Option<XetRange>,
    ) -> Result<Recon, ApiError> {
        let key = recon_key(file, range);
        if self.knows_xet_file(&s.repo, file)
            && let Some(r) = self.db.get_json::<Recon>(&key).ok().flatten()
        {
            let usable = self.offline()
                || r.ranges().all(|(h, b)| {
                    self.xet.store.is_cached(h, b)
                        || self
                            .xet
                            .fresh_url(
                                h,
                                Span {
                                    start: b.start,
                                    end: b.end,
                                },
                            )
                            .is_some()
                });
            if usable {
                return Ok(r);
            }
        }
        if self.offline() {
            return Err(offline_miss(&format!("the reconstruction of {file}")));
        }
        let tok = self.upstream_cas_token(s).await?;
        let url = format!(
            "{}/v1/reconstructions/{file}",
            tok.cas_url.trim_end_matches('/')
        );
        let range_hdr = range.map(|(a, b)| match b {
            Some(b) => format!("bytes={a}-{b}"),
            None => format!("bytes={a}-"),
        });
        let resp = self
            .upstream
            .get_absolute(&url, Some(&tok.token), range_hdr.as_deref())
            .await?;
        let (status, h, body) = read_answer(resp).await?;
        if !status.is_success() {
            if status == StatusCode::UNAUTHORIZED {
                // The upstream token went stale: forget it so the next call asks again.
                let k = s.cas_token_key();
                self.xet.up_tokens.lock().expect("xet tokens").remove(&k);
            }
            return Err(ApiError::from_upstream(status, &h, body));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|_| ApiError::BadUpstream("reconstruction is not JSON".into()))?;
        let (recon, urls) = parse_upstream(&v).map_err(ApiError::BadUpstream)?;
        {
            let mut m = self.xet.urls.lock().expect("xet urls");
            m.retain(|_, (_, at)| at.elapsed() < UPSTREAM_URL_TTL);
            let t = Instant::now();
            for (h, b, u) in urls {
                if self.upstream.allows_url(&u) {
                    m.insert((h, b.start, b.end), (u, t));
                }
            }
        }
        self.learn_xet_files(&s.repo, vec![file.to_string()]).await;
        if self.cache_allowed(&s.repo) {
            let r2 = recon.clone();
            self.db(move |db| db.put_json(&key, &r2)).await?;
        }
        Ok(recon)
    }

    /// `GET /cas/v{1,2}/reconstructions/{file}` with the mirror token in `bearer`.
    pub async fn xet_reconstruction(
        self: &Arc<Self>,
        version: u8,
        file: &str,
        range: Option<&str>,
        bearer: Option<&str>,
        base: &str,
    ) -> Result<Value, ApiError> {
        let s = bearer
            .and_then(|t| self.xet.session(t))
            .ok_or_else(|| unauthorized("invalid or expired Xet token"))?;
        if !self.proxy_allowed(&s.repo) || !self.xet_serves(&s.repo) {
            return Err(disabled());
        }
        let range = simple_range(range).map_err(ApiError::bad_request)?;
        let r = self.reconstruction(&s, file, range).await?;
        self.spawn_verify(&r, (*s).clone(), file.to_string());
        Ok(self.xet.render(&r, version, base, file))
    }

    /// `GET /cas/xorb/{xorb}?…`: checks the mirror's signature, then streams the requested bytes
    /// (`Range`, within the signed range) from the store or a fill. Returns the served range.
    pub async fn xet_xorb(
        self: &Arc<Self>,
        xorb: &str,
        query: Option<&str>,
        range: Option<&str>,
    ) -> Result<(XorbRange, olah_store::XorbStream), ApiError> {
        let q: XorbQuery = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| forbidden("unsigned xorb URL"))?;
        let (c, b) = match (parse_span(&q.c), parse_span(&q.b)) {
            (Some(c), Some(b)) if is_hash(&q.f) && c.start < c.end => (c, b),
            _ => return Err(forbidden("malformed xorb URL")),
        };
        let expect_sig = self.xet.sign(&xorb_msg(xorb, &q.f, c, b, q.x));
        let sig_ok = expect_sig.len() == q.s.len()
            && expect_sig
                .bytes()
                .zip(q.s.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
        if !sig_ok || q.x <= now() {
            // hf_xet and huggingface.js query the reconstruction again on a 403.
            return Err(forbidden("xorb URL signature invalid or expired"));
        }
        let fill = XorbRange {
            start: b.start,
            end: b.end,
        };
        let want = match simple_range(range).map_err(ApiError::bad_request)? {
            None => fill,
            Some((a, e)) => XorbRange {
                start: a,
                end: e.unwrap_or(b.end).min(b.end),
            },
        };
        if want.start < fill.start || want.start > want.end {
            return Err(ApiError::RangeNotSatisfiable { size: b.end + 1 });
        }
        let stream = self.xorb_bytes(xorb, want, fill, c).await?;
        Ok((want, stream))
    }

    /// Bytes `want` of a xorb through the store; a miss fills `fill` from the upstream URL the
    /// last reconstruction gave for it.
    async fn xorb_bytes(
        self: &Arc<Self>,
        xorb: &str,
        want: XorbRange,
        fill: XorbRange,
        chunks: Span,
    ) -> Result<olah_store::XorbStream, ApiError> {
        let store = &self.xet.store;
        let url = if self.offline() || store.is_cached(xorb, want) {
            None
        } else {
            let span = Span {
                start: fill.start,
                end: fill.end,
            };
            Some(self.xet.fresh_url(xorb, span).ok_or_else(|| {
                forbidden(
                    "the upstream URL of this xorb range expired; query the reconstruction again",
                )
            })?)
        };
        let upstream = self.upstream.clone();
        let fetch = url.map(|url| {
            move || async move {
                let resp = upstream
                    .get_absolute(
                        &url,
                        None,
                        Some(&format!("bytes={}-{}", fill.start, fill.end)),
                    )
                    .await
                    .map_err(|e| SourceError::new(e.to_string(), None))?;
                let status = resp.status();
                let ok_len = resp.content_length() == Some(fill.end - fill.start + 1);
                if !(status == StatusCode::PARTIAL_CONTENT
                    || (status == StatusCode::OK && ok_len && fill.start == 0))
                {
                    return Err(SourceError::new(
                        format!("upstream answered {status} for a xorb range"),
                        Some(status.as_u16()),
                    ));
                }
                let s: UpstreamBytes = resp
                    .bytes_stream()
                    .map(|r| r.map_err(|e| SourceError::new(e.without_url().to_string(), None)))
                    .boxed();
                Ok(s)
            }
        });
        store
            .read(
                xorb,
                want,
                fill,
                Expect {
                    chunks: Some((chunks.end - chunks.start) as u32),
                    first_chunk: chunks.start as u32,
                },
                fetch,
            )
            .await
            .map_err(|e| match e {
                StoreError::NotCached(what) => offline_miss(&what),
                e => ApiError::from(e),
            })
    }

    /// Checks a file's chunk hashes against its Xet file hash once all its ranges are cached
    /// (in the background; one check per file at a time): pending ranges that pass are promoted
    /// to verified, pending ranges of a file that fails are discarded.
    /// `r` is the reconstruction just served: when all its ranges are verified already (every
    /// warm download) nothing is started.
    pub(crate) fn spawn_verify(self: &Arc<Self>, r: &Recon, s: Session, file: String) {
        if self.offline()
            || r.ranges().all(|(x, b)| self.xet.store.is_verified(x, b))
            || !self
                .xet
                .verifying
                .lock()
                .expect("xet verifying")
                .insert(file.clone())
        {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let res = me.verify_file(&s, &file).await;
            me.xet
                .verifying
                .lock()
                .expect("xet verifying")
                .remove(&file);
            match res {
                Ok(Verdict::Verified(n)) if n > 0 => {
                    tracing::debug!(file = %file, ranges = n, "Xet file hash verified")
                }
                Ok(Verdict::Verified(_)) => {}
                Ok(Verdict::Mismatch(n)) => tracing::error!(
                    file = %file,
                    discarded = n,
                    "Xet file hash mismatch: unverified xorb ranges discarded"
                ),
                Err(why) => tracing::debug!(file = %file, why = %why, "Xet file not verified"),
            }
        });
    }

    async fn verify_file(self: &Arc<Self>, s: &Session, file: &str) -> Result<Verdict, String> {
        let recon = self
            .reconstruction(s, file, None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        if recon.offset != 0 {
            return Err("not a whole-file reconstruction".into());
        }
        let store = self.xet.store.clone();
        let needed: Arc<Vec<(String, XorbRange)>> =
            Arc::new(recon.ranges().map(|(x, b)| (x.to_string(), b)).collect());
        // Wait (bounded) until the client has fetched every range of the file. Ranges arrive
        // and stay: each poll looks only past the ones already seen.
        let deadline = Instant::now() + VERIFY_WAIT;
        let mut seen = 0;
        loop {
            let (st, n2) = (store.clone(), needed.clone());
            seen = tokio::task::spawn_blocking(move || {
                seen + n2[seen..]
                    .iter()
                    .take_while(|(x, r)| st.is_cached(x, *r))
                    .count()
            })
            .await
            .unwrap_or(seen);
            if seen == needed.len() {
                break;
            }
            if Instant::now() > deadline {
                return Err("not every range was fetched".into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let file = file.to_string();
        tokio::task::spawn_blocking(move || check_file(&store, &recon, &file))
            .await
            .map_err(|e| e.to_string())?
    }

    pub fn xet_file_source(
        self: &Arc<Self>,
        repo: &RepoRef,
        commit: &str,
        auth: Option<&HeaderValue>,
        file: &str,
        size: u64,
    ) -> Option<Arc<dyn olah_store::Source>> {
        if self.offline() || !self.xet_serves(repo) || !is_hash(file) {
            return None;
        }
        Some(Arc::new(XetFileSource {
            mirror: self.clone(),
            session: Session {
                repo: repo.clone(),
                rev: commit.to_string(),
                auth: auth.cloned(),
                caller: self.access.caller(auth),
                exp: u64::MAX,
            },
            file: file.to_string(),
            size,
        }))
    }
}

/// How long a file check waits for the client to fetch the file's ranges.
const VERIFY_WAIT: Duration = Duration::from_secs(1800);

/// The outcome of a file hash check: pending ranges promoted, or discarded.
enum Verdict {
    Verified(usize),
    Mismatch(usize),
}

/// The chunk hashes of every term, from the ranges' hash files, against the file hash.
fn check_file(store: &XorbStore, recon: &Recon, file: &str) -> Result<Verdict, String> {
    let mut maps: HashMap<&str, Vec<olah_store::RangeChunks>> = HashMap::new();
    let mut hashes = Vec::new();
    let mut pending: Vec<(String, XorbRange)> = Vec::new();
    for t in &recon.terms {
        let map = maps
            .entry(t.hash.as_str())
            .or_insert_with(|| store.chunk_map(&t.hash));
        let rc = map
            .iter()
            .filter(|m| {
                let first = m.first_chunk as u64;
                first <= t.range.start && t.range.end <= first + m.chunks.len() as u64
            })
            .max_by_key(|m| m.verified)
            .ok_or_else(|| format!("no chunk hashes for a term of xorb {}", t.hash))?;
        let first = rc.first_chunk as u64;
        hashes.extend_from_slice(
            &rc.chunks[(t.range.start - first) as usize..(t.range.end - first) as usize],
        );
        if !rc.verified && !pending.iter().any(|(x, r)| *x == t.hash && *r == rc.range) {
            pending.push((t.hash.clone(), rc.range));
        }
    }
    if pending.is_empty() {
        return Ok(Verdict::Verified(0));
    }
    if olah_xet::file_hash(&hashes).to_hex() == file {
        let n = pending.iter().filter(|(x, r)| store.promote(x, *r)).count();
        Ok(Verdict::Verified(n))
    } else {
        let n = pending.iter().filter(|(x, r)| store.discard(x, *r)).count();
        Ok(Verdict::Mismatch(n))
    }
}

/// Rebuilds byte ranges of one Xet file from the xorb store (filling misses upstream).
struct XetFileSource {
    mirror: Arc<Mirror>,
    session: Session,
    file: String,
    size: u64,
}

#[async_trait]
impl olah_store::Source for XetFileSource {
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
        // Always the whole-file reconstruction, under the key hf_xet's own query uses, so one
        // cached answer serves both paths.
        let whole = Some((0, Some(self.size.saturating_sub(1))));
        let recon = self
            .mirror
            .reconstruction(&self.session, &self.file, whole)
            .await
            .map_err(|e| SourceError::new(format!("reconstruction failed: {e:?}"), None))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, SourceError>>(4);
        let m = self.mirror.clone();
        m.spawn_verify(&recon, self.session.clone(), self.file.clone());
        // The whole file passes through: check it against its Xet file hash too.
        let verify = (start == 0 && end + 1 == self.size).then(|| self.file.clone());
        tokio::spawn(async move {
            if let Err(e) = produce(&m, &recon, start, end, verify.as_deref(), &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Sends the decoded bytes `start..=end` of the file `recon` describes. With `verify` (the whole
/// file is produced), every chunk is hashed and the last piece is held back until the chunk
/// hashes give the expected Xet file hash; on a mismatch the xorbs involved are dropped from the
/// cache and the reader gets an error instead of the last piece.
async fn produce(
    m: &Arc<Mirror>,
    recon: &Recon,
    start: u64,
    end: u64,
    verify: Option<&str>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(), SourceError> {
    let mut hashes: Vec<(olah_xet::XetHash, u64)> = Vec::new();
    let mut held: Option<Bytes> = None;
    produce_inner(
        m,
        recon,
        start,
        end,
        verify.is_some(),
        &mut hashes,
        &mut held,
        tx,
    )
    .await?;
    if let Some(file) = verify {
        let got = olah_xet::file_hash(&hashes).to_hex();
        if got != file {
            let store = m.xet.store.clone();
            let xorbs: Vec<String> = recon.fetch.keys().cloned().collect();
            let _ = tokio::task::spawn_blocking(move || {
                for x in xorbs {
                    store.remove(&x);
                }
            })
            .await;
            tracing::warn!(file = %file, got = %got, "Xet file hash mismatch: its xorbs were dropped");
            return Err(SourceError::corrupt(format!(
                "Xet file hash mismatch: expected {file}, got {got}"
            )));
        }
    }
    if let Some(b) = held {
        let _ = tx.send(Ok(b)).await;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn produce_inner(
    m: &Arc<Mirror>,
    recon: &Recon,
    start: u64,
    end: u64,
    hash_chunks: bool,
    hashes: &mut Vec<(olah_xet::XetHash, u64)>,
    held: &mut Option<Bytes>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, SourceError>>,
) -> Result<(), SourceError> {
    let err = |e: String| SourceError::new(e, None);
    // File position of the next decoded byte (the first term starts `offset` bytes early).
    let mut pos: i128 = -(recon.offset as i128);
    for t in &recon.terms {
        let t_end = pos + t.unpacked_length as i128; // exclusive
        if t_end <= start as i128 {
            pos = t_end;
            continue;
        }
        if pos > end as i128 {
            break;
        }
        let f = recon
            .fetch_for(t)
            .ok_or_else(|| err("no fetch range for a term".into()))?;
        let range = XorbRange {
            start: f.bytes.start,
            end: f.bytes.end,
        };
        let mut s = m
            .xorb_bytes(&t.hash, range, range, f.chunks)
            .await
            .map_err(|e| err(format!("xorb {}: {e:?}", t.hash)))?;
        let mut buf = BytesMut::new();
        let mut idx = f.chunks.start;
        let mut produced = 0u64;
        'records: while idx < t.range.end {
            // Fill until one whole record is buffered.
            let h = loop {
                if buf.len() >= olah_xet::xorb::HEADER_LEN {
                    let h =
                        olah_xet::xorb::ChunkHeader::parse(&buf).map_err(|e| err(e.to_string()))?;
                    if buf.len() >= h.record_len() {
                        break h;
                    }
                }
                match s.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    Some(Err(e)) => return Err(err(e.to_string())),
                    None => break 'records,
                }
            };
            let rec = buf.split_to(h.record_len());
            let this = idx;
            idx += 1;
            if this < t.range.start {
                continue;
            }
            let data = olah_xet::xorb::decode(&h, &rec[olah_xet::xorb::HEADER_LEN..])
                .map_err(|e| err(e.to_string()))?;
            if hash_chunks {
                hashes.push((olah_xet::chunk_hash(&data), data.len() as u64));
            }
            produced += data.len() as u64;
            let (c0, c1) = (pos, pos + data.len() as i128); // [c0, c1)
            pos = c1;
            let a = (start as i128).max(c0);
            let b = (end as i128 + 1).min(c1);
            if a < b {
                let piece = Bytes::from(data).slice((a - c0) as usize..(b - c0) as usize);
                if let Some(prev) = held.replace(piece)
                    && tx.send(Ok(prev)).await.is_err()
                {
                    return Err(err("the reader went away".into()));
                }
            }
            if pos > end as i128 && !hash_chunks {
                return Ok(());
            }
        }
        if produced != t.unpacked_length {
            return Err(err(format!(
                "term of {} decoded to {produced} bytes, announced {}",
                t.hash, t.unpacked_length
            )));
        }
        pos = t_end;
    }
    if pos <= end as i128 {
        return Err(err(format!("reconstruction ends before byte {end}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn strips_nested_xet_hashes_only() {
        let b = r#"[{"path":"a","xetHash":"ab","lfs":{"oid":"x"}},{"siblings":[{"rfilename":"b","xetHash":"cd"}]}]"#;
        let s = strip_json(b);
        assert!(!s.contains("xetHash"));
        assert!(s.contains("\"oid\":\"x\""));
        assert!(s.contains("rfilename"));
        assert_eq!(strip_json("plain"), "plain");
    }

    fn route(s: &str) -> Route {
        olah_types::parse_route(s).unwrap()
    }

    #[test]
    fn memberships_come_only_from_the_hubs_own_per_file_fields() {
        const Y: &str = "2222222222222222222222222222222222222222222222222222222222222222";
        const Z: &str = "3333333333333333333333333333333333333333333333333333333333333333";
        // Tree / paths-info: a file entry's own xetHash; nothing nested, no directory entry.
        let tree = format!(
            r#"[{{"type":"file","path":"a","xetHash":"{X}","lastCommit":{{"xetHash":"{Y}"}}}},
                {{"type":"directory","path":"d","xetHash":"{Z}"}},
                {{"type":"file","xetHash":"{Z}"}},
                {{"type":"file","path":"b","xetHash":"short"}}]"#
        );
        for r in [
            "/api/models/acme/tiny/tree/main",
            "/api/models/acme/tiny/paths-info/main",
        ] {
            assert_eq!(member_hashes(&route(r), &tree), vec![X.to_string()], "{r}");
        }
        // Repo info: a sibling's own xetHash; never the card or anything else nested.
        let info = format!(
            r#"{{"id":"acme/tiny","xetHash":"{Z}","cardData":{{"xetHash":"{Y}","x":[{{"xetHash":"{Y}"}}]}},
                "config":{{"siblings":[{{"rfilename":"c","xetHash":"{Y}"}}]}},
                "siblings":[{{"rfilename":"a","xetHash":"{X}","lfs":{{"xetHash":"{Y}"}}}},{{"xetHash":"{Z}"}}]}}"#
        );
        for r in [
            "/api/models/acme/tiny",
            "/api/models/acme/tiny/revision/main",
        ] {
            assert_eq!(member_hashes(&route(r), &info), vec![X.to_string()], "{r}");
        }
        // A listing-shaped body under another route, or the wrong shape for the route: nothing.
        assert!(member_hashes(&route("/api/models/acme/tiny/commits/main"), &tree).is_empty());
        assert!(member_hashes(&route("/api/models/acme/tiny/refs"), &tree).is_empty());
        assert!(member_hashes(&route("/api/models/acme/tiny"), &tree).is_empty());
        assert!(member_hashes(&route("/api/models/acme/tiny/tree/main"), &info).is_empty());
        assert!(member_hashes(&route("/api/models/acme/tiny/tree/main"), "not json").is_empty());
    }

    #[tokio::test]
    async fn memberships_recorded_the_old_way_do_not_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let repo = match route("/api/models/acme/tiny") {
            Route::RepoInfo { repo } => repo,
            _ => unreachable!(),
        };
        const Y: &str = "2222222222222222222222222222222222222222222222222222222222222222";
        // As older versions wrote it (from any xetHash in an answer, repo cards included).
        let old = format!("xfile|{}|{X}", repo.key());
        {
            let db = olah_store::MetaDb::open(&dir.path().join("olah-meta.redb")).unwrap();
            db.put_json(&old, &1u8).unwrap();
            db.put_json(&known_key(&repo.key(), Y), &1u8).unwrap();
        }
        let cfg = olah_config::Config {
            repos_path: dir.path().to_path_buf(),
            ..Default::default()
        };
        let m = Mirror::open(Arc::new(cfg)).unwrap();
        assert_eq!(
            m.db.get_json::<u8>(&old).unwrap(),
            None,
            "old record deleted"
        );
        assert!(!m.knows_xet_file(&repo, X));
        // Memberships recorded from authoritative answers stay.
        assert!(m.knows_xet_file(&repo, Y));
    }

    #[test]
    fn v1_and_v2_normalise_to_the_same_reconstruction() {
        let v1 = json!({"offset_into_first_range": 5, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 1, "end": 3}}],
            "fetch_info": {X: [{"range": {"start": 0, "end": 4}, "url": "http://cdn/x?sig", "url_range": {"start": 0, "end": 99}}]}});
        let v2 = json!({"offset_into_first_range": 5, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 1, "end": 3}}],
            "xorbs": {X: [{"url": "http://cdn/x?sig", "ranges": [{"chunks": {"start": 0, "end": 4}, "bytes": {"start": 0, "end": 99}}]}]}});
        let (a, ua) = parse_upstream(&v1).unwrap();
        let (b, ub) = parse_upstream(&v2).unwrap();
        assert_eq!(a, b);
        assert_eq!(ua, ub);
        assert_eq!(a.offset, 5);
        // A term without a fetch range is refused.
        let bad = json!({"terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 5, "end": 6}}],
            "fetch_info": {X: [{"range": {"start": 0, "end": 4}, "url": "u", "url_range": {"start": 0, "end": 99}}]}});
        assert!(parse_upstream(&bad).is_err());
    }

    #[test]
    fn rendered_urls_point_at_the_mirror_and_carry_a_checkable_signature() {
        let dir = tempfile::tempdir().unwrap();
        let st = XetState::open(dir.path().to_path_buf()).unwrap();
        let v1 = json!({"offset_into_first_range": 0, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 0, "end": 2}}],
            "fetch_info": {X: [{"range": {"start": 0, "end": 2}, "url": "http://cdn/secret", "url_range": {"start": 0, "end": 99}}]}});
        let (r, _) = parse_upstream(&v1).unwrap();
        for version in [1, 2] {
            let out = st.render(&r, version, "http://mirror:1", X).to_string();
            assert!(!out.contains("cdn/secret"), "{out}");
            assert!(out.contains("http://mirror:1/cas/xorb/"), "{out}");
        }
        let out = st.render(&r, 1, "http://m", X);
        let url = out["fetch_info"][X][0]["url"].as_str().unwrap();
        let q = url.split_once('?').unwrap().1;
        let q: XorbQuery = serde_urlencoded::from_str(q).unwrap();
        let (c, b) = (parse_span(&q.c).unwrap(), parse_span(&q.b).unwrap());
        assert_eq!(st.sign(&xorb_msg(X, &q.f, c, b, q.x)), q.s);
        // Widening the byte range breaks the signature.
        let wider = Span {
            start: 0,
            end: 1000,
        };
        assert_ne!(st.sign(&xorb_msg(X, &q.f, c, wider, q.x)), q.s);
    }

    #[test]
    fn the_cas_verdict_turns_xet_off_until_an_allowed_cas_is_named_again() {
        let dir = tempfile::tempdir().unwrap();
        let st = XetState::open(dir.path().to_path_buf()).unwrap();
        assert!(
            st.cas_due() && !st.cas_foreign(),
            "never asked: Xet as configured"
        );
        assert_eq!(cas_host("http://127.0.0.2:1/cas"), "127.0.0.2:1");
        assert_eq!(cas_host("https://cas.example/x"), "cas.example:443");
        st.cas_answer(Some(cas_host("http://127.0.0.2:1/cas")));
        assert!(st.cas_foreign() && !st.cas_due());
        // A failed attempt to ask again keeps the verdict.
        st.cas_unanswered();
        assert!(st.cas_foreign());
        // Each foreign host is reported once.
        st.cas_answer(Some("127.0.0.2:1".into()));
        assert_eq!(st.warned.lock().unwrap().len(), 1);
        st.cas_answer(None);
        assert!(!st.cas_foreign());
    }

    #[test]
    fn xet_ranges_parse_strictly() {
        assert_eq!(simple_range(Some("bytes=0-9")).unwrap(), Some((0, Some(9))));
        assert_eq!(simple_range(Some("bytes=5-")).unwrap(), Some((5, None)));
        assert!(simple_range(Some("bytes=9-1")).is_err());
        assert!(simple_range(Some("items=0-1")).is_err());
        assert_eq!(simple_range(None).unwrap(), None);
    }
}
