//! Xet through the mirror (PROTOCOL.md §3.6, §4; design in docs/XET.md).
//!
//! In `--xet serve` mode (the default) clients speak Xet to the mirror and never learn an
//! upstream CAS URL, token or presigned URL:
//!
//! * **Token route** (`/api/{t}s/{repo}/xet-read-token/{rev}`): the caller's access is confirmed
//!   by the upstream token route called with the caller's own token (fail closed; remembered for
//!   the metadata TTL like every grant), then the mirror issues its own token bound to that repo
//!   and caller, with `casUrl = {mirror}/cas`. The session goes to the index under the token's
//!   hash (`SessionRecord`); the caller's credentials and upstream CAS tokens stay in
//!   memory.
//! * **Reconstruction** (`/cas/v{1,2}/reconstructions/{file}`): answered from the cache when the
//!   file is known to belong to the session's repo (learned only from the Hub's own per-file
//!   fields, see [`member_hashes`], or from the upstream CAS), else from the upstream CAS with an
//!   upstream token obtained for the caller. The terms are
//!   passed through unchanged; every xorb URL becomes a mirror URL signed by the mirror
//!   (`/cas/xorb/{xorb}?…&s=…`, keyed BLAKE3 over xorb, file, chunk and byte range, expiry; the
//!   key is the index's `xorb-url` secret, so a restart keeps the URLs valid).
//! * **Xorb ranges** (`/cas/xorb/{xorb}`): from [`XorbStore`], filled once from the upstream
//!   presigned URL on a miss and verified record by record before publication.
//! * **Plain HTTP** for Xet files (`resolve` without Xet): [`XetFileSource`] rebuilds the bytes
//!   from the same xorb ranges, so one cache serves both paths; the blob store then verifies the
//!   whole file's sha256 as for any LFS file.
//!
//! In `--xet plain` mode, and for repos the cache rules exclude, every trace of Xet is removed
//! from what clients see, so they all download through `resolve`.
//! So it is when the upstream's token route names a CAS outside the allow list (the mirror never
//! contacts it): see [`XetMirror::check_cas`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use olah_store::{SessionId, XorbStore};
use olah_types::{RepoRef, Route};
use olah_upstream::Upstream;
use serde_json::Value;

use crate::access::{AccessGate, Caller};
use crate::common::{Meta, now};
use crate::error::{ErrorKind, HubCode, Origin, ServiceError};
use crate::policy::Policy;

mod plain;
mod recon;
mod session;
mod verify;
mod xorbs;

pub use plain::XetFileSource;
pub use recon::{Fetch, Recon, Span, Term, UpstreamUrl, simple_range};
use recon::{store_range, xorb_msg};

use olah_xet::is_hash_str as is_hash;

/// The Xet side of the mirror: sessions and tokens, reconstructions, signed xorb ranges, file
/// verification and the plain-HTTP rebuild of Xet files. Holds what it needs only: the rules,
/// the access gate, the metadata database, the upstream client and its own state.
pub struct XetMirror {
    policy: Policy,
    gate: Arc<AccessGate>,
    db: Meta,
    upstream: Upstream,
    state: XetState,
}

/// Name of the xorb-URL signing key in the index.
const XORB_URL_SECRET: &str = "xorb-url";

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
    /// Restored from the index without the credentials the caller sent (they are never written):
    /// it may use what is cached and an upstream CAS token still in memory, but cannot ask the
    /// upstream for a new one.
    creds_lost: bool,
}

/// What the index keeps of a mirror-issued Xet token, under [`SessionId::of_token`]: never the
/// token, never the caller's credentials.
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionRecord {
    repo: RepoRef,
    rev: String,
    /// Always `files` (what a Xet token grants).
    scope: String,
    /// [`Caller::id`]: `anon` or the salted hash of the caller's token.
    caller: String,
    /// Whether the caller sent credentials.
    authed: bool,
    /// Unix seconds.
    exp: u64,
}

const SESSION_SCOPE: &str = "files";

impl Session {
    /// The session a token issued now for this caller opens.
    fn new(
        repo: &RepoRef,
        rev: &str,
        auth: Option<&HeaderValue>,
        caller: Caller,
        exp: u64,
    ) -> Self {
        Self {
            repo: repo.clone(),
            rev: rev.to_string(),
            auth: auth.cloned(),
            caller,
            exp,
            creds_lost: false,
        }
    }

    fn record(&self) -> SessionRecord {
        SessionRecord {
            repo: self.repo.clone(),
            rev: self.rev.clone(),
            scope: SESSION_SCOPE.into(),
            caller: self.caller.id().to_string(),
            authed: self.auth.is_some(),
            exp: self.exp,
        }
    }

    /// The session of a record read back from the index (`None` if it is not a Xet session).
    fn restored(r: SessionRecord) -> Option<Self> {
        if r.scope != SESSION_SCOPE || r.authed == (r.caller == Caller::anon().id()) {
            return None;
        }
        Some(Self {
            repo: r.repo,
            rev: r.rev,
            auth: None,
            caller: if r.authed {
                Caller::from_id(r.caller)
            } else {
                Caller::anon()
            },
            exp: r.exp,
            creds_lost: r.authed,
        })
    }

    /// Key of the upstream CAS token obtained for this repo, revision and caller.
    fn cas_token_key(&self) -> String {
        format!("{}|{}|{}", self.repo.key(), self.rev, self.caller.id())
    }
}

/// Upstream presigned URL per (xorb, first byte, last byte), for [`UPSTREAM_URL_TTL`] after it
/// was handed out, at most [`MAX_URLS`] of them.
type UrlMap = moka::sync::Cache<(String, u64, u64), String>;

/// Most remembered upstream xorb URLs, and most upstream CAS tokens (one per repo, revision and
/// caller; each kept at most [`UP_TOKEN_TTL`]).
const MAX_URLS: u64 = 200_000;
const MAX_UP_TOKENS: u64 = 10_000;
/// Most sessions kept in memory (the index keeps its own capped table).
const MAX_SESSIONS: u64 = 100_000;
const UP_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A Xet `Range`: first byte and optional last byte (inclusive).
pub type XetRange = (u64, Option<u64>);

/// The Xet side of the mirror.
pub(crate) struct XetState {
    /// Key of the xorb-URL signatures (persisted in the index: a restart keeps URLs valid).
    secret: [u8; 32],
    /// Verified xorb ranges.
    store: Arc<XorbStore>,
    /// Sessions issued or restored by this process, with the caller's credentials when known.
    /// The index holds every session (without them): see [`SessionRecord`].
    sessions: moka::sync::Cache<SessionId, Arc<Session>>,
    /// The token issued last per (repo, revision, caller), to hand out again while it is fresh.
    issued: moka::sync::Cache<String, (String, u64)>,
    up_tokens: moka::sync::Cache<String, olah_upstream::CasToken>,
    urls: UrlMap,
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
    /// State with the signing key `secret` and the xorb store under `root`.
    pub(crate) fn open(root: std::path::PathBuf, secret: [u8; 32]) -> Result<Self, String> {
        let store = XorbStore::open(root.clone())
            .map_err(|e| format!("cannot open the xorb store in {}: {e}", root.display()))?;
        Ok(Self {
            secret,
            store: Arc::new(store),
            sessions: moka::sync::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(Duration::from_secs(TOKEN_TTL))
                .build(),
            issued: moka::sync::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(Duration::from_secs(TOKEN_TTL))
                .build(),
            up_tokens: moka::sync::Cache::builder()
                .max_capacity(MAX_UP_TOKENS)
                .time_to_live(UP_TOKEN_TTL)
                .build(),
            urls: moka::sync::Cache::builder()
                .max_capacity(MAX_URLS)
                .time_to_live(UPSTREAM_URL_TTL)
                .build(),
            verifying: Mutex::default(),
            cas: Mutex::default(),
            warned: Mutex::default(),
        })
    }

    fn sign(&self, msg: &str) -> String {
        hex::encode(&blake3::keyed_hash(&self.secret, msg.as_bytes()).as_bytes()[..20])
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
        self.urls.get(&(xorb.to_string(), b.start, b.end))
    }
}

pub(crate) fn unauthorized(msg: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::Unauthorized,
        Origin::Client,
        HubCode::Unauthorized,
        msg,
    )
}

pub(crate) fn forbidden(msg: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::Forbidden,
        Origin::Client,
        HubCode::Forbidden,
        msg,
    )
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
pub(crate) fn foreign_cas() -> ServiceError {
    ServiceError::new(
        ErrorKind::NotFound,
        Origin::Upstream,
        HubCode::XetDisabled,
        "the upstream's Xet CAS is not an allowed upstream host: this mirror serves its \
         files over plain HTTP",
    )
}

/// The answer of the token route where the mirror does not serve Xet.
pub fn disabled() -> ServiceError {
    ServiceError::new(
        ErrorKind::NotFound,
        Origin::Client,
        HubCode::XetDisabled,
        "this mirror serves this repository's files over plain HTTP; Xet is disabled",
    )
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
        (
            Route::Tree { .. }
            | Route::PathsInfo { .. }
            | Route::BucketTree { .. }
            | Route::BucketPathsInfo { .. },
            Value::Array(a),
        ) => a,
        (Route::RepoInfo { .. } | Route::RevisionInfo { .. }, Value::Object(m)) => {
            match m.get("siblings") {
                Some(Value::Array(a)) => a,
                _ => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    let is_tree = matches!(
        route,
        Route::Tree { .. }
            | Route::PathsInfo { .. }
            | Route::BucketTree { .. }
            | Route::BucketPathsInfo { .. }
    );
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

impl XetMirror {
    /// The Xet side over the xorb store under `root`, signing xorb URLs with the index's
    /// `xorb-url` secret (created on first use, then kept: URLs survive a restart).
    pub(crate) fn open(
        root: std::path::PathBuf,
        policy: Policy,
        gate: Arc<AccessGate>,
        db: Meta,
        upstream: Upstream,
    ) -> Result<Self, String> {
        let secret = db
            .raw()
            .secret(XORB_URL_SECRET)
            .map_err(|e| format!("cannot read the xorb-URL secret: {e}"))?;
        Ok(Self {
            state: XetState::open(root, secret)?,
            policy,
            gate,
            db,
            upstream,
        })
    }

    /// The verified xorb ranges (shared with the blob store's eviction).
    pub fn store(&self) -> &Arc<XorbStore> {
        &self.state.store
    }

    /// Whether clients see Xet for this repo: `--xet serve`, a repo the mirror may cache, and an
    /// upstream CAS the mirror may contact (else its Xet files are served over plain HTTP).
    pub fn serves(&self, repo: &RepoRef) -> bool {
        self.configured(repo) && !self.state.cas_foreign()
    }

    fn configured(&self, repo: &RepoRef) -> bool {
        self.policy.xet_mode_serve() && self.policy.cache_allowed(repo)
    }

    /// Remembers that these Xet file hashes belong to `repo` (from authoritative upstream
    /// answers only: see [`known_key`]).
    pub(crate) async fn learn_files(&self, repo: &RepoRef, mut files: Vec<String>) {
        files.retain(|f| is_hash(f));
        if files.is_empty() || !self.policy.cache_allowed(repo) {
            return;
        }
        let repo_key = repo.key();
        let _ = self
            .db
            .run(move |db| {
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

    async fn knows_file(&self, repo: &RepoRef, file: &str) -> bool {
        self.db.has(known_key(&repo.key(), file)).await
    }
}

#[cfg(test)]
mod tests {
    use super::recon::{XorbQuery, parse_span};
    use super::*;
    use crate::Mirror;
    use serde_json::json;

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
            m.meta_db().get_json::<u8>(&old).unwrap(),
            None,
            "old record deleted"
        );
        assert!(!m.xet().knows_file(&repo, X).await);
        // Memberships recorded from authoritative answers stay.
        assert!(m.xet().knows_file(&repo, Y).await);
    }

    #[test]
    fn rendered_urls_point_at_the_mirror_and_carry_a_checkable_signature() {
        let dir = tempfile::tempdir().unwrap();
        let st = XetState::open(dir.path().to_path_buf(), rand::random()).unwrap();
        let v1 = json!({"offset_into_first_range": 0, "terms": [{"hash": X, "unpacked_length": 10, "range": {"start": 0, "end": 2}}],
            "fetch_info": {X: [{"range": {"start": 0, "end": 2}, "url": "http://cdn/secret", "url_range": {"start": 0, "end": 99}}]}});
        let (r, _) = olah_xet::recon::parse_upstream_value(&v1).unwrap();
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
        let st = XetState::open(dir.path().to_path_buf(), rand::random()).unwrap();
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
