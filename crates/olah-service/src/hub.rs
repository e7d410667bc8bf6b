//! The upstream Hub through the cache: file metadata (resolve) and API answers, with
//! revalidation after the TTL, stale-if-error, single-flight and the access gate in front of
//! cached content; the byte source of a file at a commit ([`HubCache::file_source`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_metrics::UpstreamKind;
use olah_store::{BlobKey, Source, SourceError};
use olah_types::{RepoPath, RepoRef, Revision, Route};
use olah_upstream::{HubRequest, Upstream};
use serde::{Deserialize, Serialize};

use crate::access::{AccessGate, Caller, Scope};
use crate::common::{Meta, cache_write_failed, header_str, is_refusal, now, read_answer, unquote};
use crate::error::ServiceError;
use crate::flight::Flight;
use crate::policy::Policy;
use crate::source::{Outcome, PathsQuery};
use crate::xet::XetMirror;
/// Metadata of one file at one commit, as the Hub announced it. Immutable once known.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: u64,
    /// The Hub's `ETag` (git blob id for regular files), without quotes.
    pub etag: String,
    /// `X-Linked-Etag` (sha256) for LFS/Xet files, without quotes.
    pub linked_etag: Option<String>,
    /// `X-Xet-Hash`, when the file is stored in Xet upstream.
    pub xet_hash: Option<String>,
    /// `Content-Type` the Hub reported.
    pub content_type: Option<String>,
}

impl FileMeta {
    /// The content key the bytes are stored under.
    pub fn blob_key(&self) -> Option<BlobKey> {
        self.linked_etag
            .as_deref()
            .and_then(BlobKey::from_etag)
            .or_else(|| BlobKey::from_etag(&self.etag))
    }

    /// The ETag clients see: the sha256 for LFS files, the git blob id otherwise.
    pub fn client_etag(&self) -> &str {
        self.linked_etag.as_deref().unwrap_or(&self.etag)
    }
}

/// A resolved file request.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The commit the revision resolved to.
    pub commit: String,
    /// The file's metadata.
    pub meta: FileMeta,
    /// Hit, miss, revalidated or stale.
    pub cache: Outcome,
}

/// A cached API response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedResponse {
    /// Upstream status (2xx).
    pub status: u16,
    /// Upstream `Content-Type`.
    pub content_type: Option<String>,
    /// Upstream `Link` (pagination), rewritten on the way out.
    pub link: Option<String>,
    /// Body (JSON text).
    pub body: String,
    /// Unix seconds when fetched.
    pub fetched_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RevEntry {
    commit: String,
    fetched_at: u64,
}

/// Where the Hub's resolve HEAD redirected (a presigned CDN URL) per `{repo}|{commit}|{path}`,
/// for [`LOCATION_TTL`], at most [`MAX_LOCATIONS`] of them.
type Locations = moka::sync::Cache<String, String>;

/// Most remembered CDN URLs.
const MAX_LOCATIONS: u64 = 100_000;

/// The upstream Hub through the cache.
pub struct HubCache {
    policy: Policy,
    gate: Arc<AccessGate>,
    db: Meta,
    upstream: Upstream,
    xet: Arc<XetMirror>,
    head_flight: Flight<Result<(String, FileMeta), ServiceError>>,
    /// So the download that follows a resolve goes straight to the CDN: one round trip less.
    locations: Locations,
    api_flight: Flight<Result<Arc<CachedResponse>, ServiceError>>,
}

impl HubCache {
    pub(crate) fn new(
        policy: Policy,
        gate: Arc<AccessGate>,
        db: Meta,
        upstream: Upstream,
        xet: Arc<XetMirror>,
    ) -> Self {
        Self {
            policy,
            gate,
            db,
            upstream,
            xet,
            head_flight: Flight::default(),
            locations: moka::sync::Cache::builder()
                .max_capacity(MAX_LOCATIONS)
                .time_to_live(LOCATION_TTL)
                .build(),
            api_flight: Flight::default(),
        }
    }

    /// The upstream Hub's base URL (`Link`s naming it are rewritten to the mirror's).
    pub fn hub_base(&self) -> &str {
        self.upstream.hub_base()
    }

    /// Resolves a file request to its commit and metadata: from the cache when possible (commit
    /// pinned, or a branch within the TTL), else with one upstream HEAD that also confirms the
    /// caller's access. Falls back to stale data when the upstream is unreachable.
    pub async fn resolve(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &Revision,
        path: &RepoPath,
        auth: Option<&HeaderValue>,
    ) -> Result<Resolved, ServiceError> {
        let repo_key = repo.key();
        let caller = self.gate.caller(auth);
        let rev_key = format!("rev|{repo_key}|{}", rev.as_str());
        let keep = self.policy.cache_allowed(repo);
        let (pinned, stale_commit) = if !keep {
            (None, None)
        } else if rev.is_commit_sha() {
            (Some(rev.as_str().to_string()), None)
        } else {
            match self.db.get_json::<RevEntry>(rev_key.clone()).await {
                Some(e)
                    if now().saturating_sub(e.fetched_at) < self.policy.ttl()
                        || self.policy.offline() =>
                {
                    (Some(e.commit), None)
                }
                Some(e) => (None, Some(e.commit)),
                None => (None, None),
            }
        };
        if let Some(commit) = &pinned
            && let Some(meta) = self.cached_meta(&repo_key, commit, path).await
        {
            self.gate
                .check(repo, Scope::Files, &caller, auth, Some((commit, path)))
                .await?;
            return Ok(Resolved {
                commit: commit.clone(),
                meta,
                cache: Outcome::Hit,
            });
        }
        // A file the Hub said is not at this commit is as immutable as one it served.
        if let Some(commit) = &pinned
            && let Some(m) = self
                .db
                .get_api::<Missing>(missing_file_key(repo, commit, path))
                .await
        {
            self.gate
                .check(repo, Scope::Files, &caller, auth, Some((commit, path)))
                .await?;
            return Err(m.error());
        }
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&format!(
                "{repo_key}@{}:{}",
                rev.as_str(),
                path.as_str()
            )));
        }
        match self.head_file(repo, rev, path, auth, &caller).await {
            Ok((commit, meta)) => {
                let cache = if stale_commit.is_some() {
                    Outcome::Revalidated
                } else {
                    Outcome::Miss
                };
                Ok(Resolved {
                    commit,
                    meta,
                    cache,
                })
            }
            Err(e) if e.is_outage() => {
                // stale-if-error: an expired branch entry still names a commit we know.
                if let Some(commit) = stale_commit
                    && let Some(meta) = self.cached_meta(&repo_key, &commit, path).await
                    && self
                        .gate
                        .may_serve_without_upstream(&repo_key, Scope::Files, &caller)
                        .await
                {
                    return Ok(Resolved {
                        commit,
                        meta,
                        cache: Outcome::Stale,
                    });
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn cached_meta(&self, repo_key: &str, commit: &str, path: &RepoPath) -> Option<FileMeta> {
        self.db
            .get_json(format!("file|{repo_key}|{commit}|{}", path.as_str()))
            .await
    }
    /// One upstream HEAD of the resolve URL (single-flight per repo, revision, path and caller).
    async fn head_file(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &Revision,
        path: &RepoPath,
        auth: Option<&HeaderValue>,
        caller: &Caller,
    ) -> Result<(String, FileMeta), ServiceError> {
        let key = format!(
            "{}|{}|{}|{}",
            repo.key(),
            rev.as_str(),
            path.as_str(),
            caller.id()
        );
        let me = self.clone();
        let (repo, rev, path, auth, caller) = (
            repo.clone(),
            rev.clone(),
            path.clone(),
            auth.cloned(),
            caller.clone(),
        );
        self.head_flight
            .run(key, move || async move {
                let route = Route::Resolve {
                    repo: repo.clone(),
                    revision: rev.clone(),
                    path: path.clone(),
                };
                let up = route.upstream_path();
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
                let resp = me
                    .upstream
                    .hub(HubRequest {
                        method: Method::HEAD,
                        path_and_query: &up,
                        auth: auth.as_ref(),
                        headers,
                        body: None,
                    })
                    .await?;
                let status = resp.status();
                let h = resp.headers().clone();
                if !(status.is_success() || status.is_redirection()) {
                    let e = ServiceError::relayed(status, &h, Bytes::new());
                    if is_refusal(status, &h) {
                        me.gate
                            .refused(&repo.key(), Scope::Files, &caller, e.clone())
                            .await;
                    } else if let Some(m) = Missing::from_answer(status, &h)
                        && me.policy.cache_allowed(&repo)
                    {
                        me.remember_missing(
                            missing_file_key(&repo, &m.commit, &path),
                            m,
                            (!rev.is_commit_sha()).then(|| rev_key_of(&repo, &rev)),
                        )
                        .await;
                    }
                    return Err(e);
                }
                // A redirect counts only when it names where the bytes are, on an allowed host.
                if status.is_redirection()
                    && !header_str(&h, header::LOCATION).is_some_and(|l| me.upstream.allows_url(&l))
                {
                    return Err(ServiceError::bad_upstream(
                        "resolve redirect without an allowed Location",
                    ));
                }
                let commit = header_str(&h, "x-repo-commit")
                    .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|c| c.to_ascii_lowercase())
                    .ok_or_else(|| {
                        ServiceError::bad_upstream("resolve answer without a valid X-Repo-Commit")
                    })?;
                let linked_etag = header_str(&h, "x-linked-etag").map(|s| unquote(&s));
                let etag = header_str(&h, header::ETAG)
                    .map(|s| unquote(&s))
                    .unwrap_or_default();
                let size = header_str(&h, "x-linked-size")
                    .or_else(|| {
                        if status.is_success() {
                            header_str(&h, header::CONTENT_LENGTH)
                        } else {
                            None
                        }
                    })
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| ServiceError::bad_upstream("resolve answer without a size"))?;
                let meta = FileMeta {
                    size,
                    etag,
                    linked_etag,
                    xet_hash: header_str(&h, "x-xet-hash"),
                    content_type: if status.is_success() {
                        header_str(&h, header::CONTENT_TYPE)
                    } else {
                        None
                    },
                };
                if meta.blob_key().is_none() {
                    return Err(ServiceError::bad_upstream(
                        "resolve answer without a usable ETag",
                    ));
                }
                let repo_key = repo.key();
                me.gate.granted(&repo_key, Scope::Files, &caller).await;
                if status.is_redirection()
                    && let Some(loc) = header_str(&h, header::LOCATION)
                    && me.upstream.allows_url(&loc)
                    && !loc.starts_with(me.upstream.hub_base())
                {
                    me.locations
                        .insert(location_key(&repo_key, &commit, &path), loc);
                }
                if let Some(h) = meta.xet_hash.clone() {
                    me.xet
                        .learn_files(&repo, vec![h.to_ascii_lowercase()])
                        .await;
                }
                let file_key = format!("file|{repo_key}|{commit}|{}", path.as_str());
                let rev_entry = (!rev.is_commit_sha()).then(|| {
                    (
                        format!("rev|{repo_key}|{}", rev.as_str()),
                        RevEntry {
                            commit: commit.clone(),
                            fetched_at: now(),
                        },
                    )
                });
                if !me.policy.cache_allowed(&repo) {
                    return Ok((commit, meta));
                }
                let m2 = meta.clone();
                let stored = me
                    .db
                    .run(move |db| {
                        db.put_json(&file_key, &m2)?;
                        if let Some((k, v)) = rev_entry {
                            db.put_json(&k, &v)?;
                        }
                        Ok(())
                    })
                    .await;
                if let Err(e) = stored {
                    cache_write_failed(&e);
                }
                Ok((commit, meta))
            })
            .await
    }

    /// Stores an `EntryNotFound` answer (in the API table: bounded, counted in the size limit)
    /// and, for a branch, the commit the answer named.
    async fn remember_missing(&self, key: String, m: Missing, rev_key: Option<String>) {
        let rev_entry = rev_key.map(|k| {
            (
                k,
                RevEntry {
                    commit: m.commit.clone(),
                    fetched_at: m.fetched_at,
                },
            )
        });
        let stored = self
            .db
            .run(move |db| {
                db.put_api(&key, &m)?;
                if let Some((k, v)) = rev_entry {
                    db.put_json(&k, &v)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = stored {
            cache_write_failed(&e);
        }
    }

    /// The bytes of a file at a commit failed verification against the metadata the upstream
    /// announced (content hash, size): that metadata is not trusted any more. Its `file|` record
    /// and the CDN URL of its HEAD are dropped, so the next request asks the upstream again
    /// (and recovers once the upstream is honest) instead of refetching against, or serving
    /// under, the same wrong answer.
    pub async fn content_rejected(&self, repo: &RepoRef, commit: &str, path: &RepoPath) {
        let repo_key = repo.key();
        self.locations
            .invalidate(&location_key(&repo_key, commit, path));
        let file_key = format!("file|{repo_key}|{commit}|{}", path.as_str());
        tracing::warn!(file = %file_key, "content failed verification: its metadata is dropped");
        if let Err(e) = self.db.run(move |db| db.delete(&file_key)).await {
            tracing::warn!(error = ?e, "could not drop the metadata of a rejected file");
        }
    }

    /// A [`Source`] that fetches byte ranges of a file at a commit from the upstream.
    pub fn file_source(
        &self,
        repo: &RepoRef,
        commit: &str,
        path: &RepoPath,
        auth: Option<&HeaderValue>,
        size: u64,
    ) -> Option<Arc<dyn Source>> {
        if self.policy.offline() {
            return None;
        }
        let revision = Revision::new(commit).ok()?;
        let location = self.locations.get(&location_key(&repo.key(), commit, path));
        let path = Route::Resolve {
            repo: repo.clone(),
            revision,
            path: path.clone(),
        }
        .upstream_path();
        Some(Arc::new(HubFileSource {
            upstream: self.upstream.clone(),
            path,
            auth: auth.cloned(),
            size,
            location,
        }))
    }

    /// An API call: served from the cache when fresh (commit-pinned responses never expire),
    /// else fetched (single-flight), stored and served; stale copies are served when the upstream
    /// is unreachable and the caller may read the repo.
    pub async fn api(
        self: &Arc<Self>,
        route: &Route,
        query: Option<&str>,
        form: Option<Bytes>,
        auth: Option<&HeaderValue>,
    ) -> Result<(Arc<CachedResponse>, Outcome), ServiceError> {
        let repo = api_repo(route)?;
        let caller = self.gate.caller(auth);
        let up = route.upstream_path();
        // Only the parameters clients send for this route, sorted: a junk query string neither
        // reaches the Hub nor makes a new cache record.
        let up_full = match normalise_query(route, query).map_err(ServiceError::bad_request)? {
            Some(q) => format!("{up}?{q}"),
            None => up.clone(),
        };
        // A bucket's paths-info is a JSON POST, cached whole per body (normalised by the
        // caller: `PathsQuery`), under the API budget like every answer.
        let json_post = matches!(route, Route::BucketPathsInfo { .. }) && form.is_some();
        let key = match (&form, json_post) {
            (Some(b), true) => {
                use sha2::Digest as _;
                format!("api|{up_full}|{}", hex::encode(sha2::Sha256::digest(b)))
            }
            _ => format!("api|{up_full}"),
        };
        let flight_key = format!(
            "{key}|{}|{}",
            caller.id(),
            form.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        );
        let immutable = route.revision().is_some_and(|r| r.is_commit_sha());
        // paths-info answers are cached per path by `paths_info`, never as a whole body.
        let keep = self.policy.cache_allowed(&repo) && (form.is_none() || json_post);
        let cached: Option<CachedResponse> = if keep {
            self.db.get_api(key.clone()).await
        } else {
            None
        };
        if let Some(c) = &cached
            && (immutable
                || self.policy.offline()
                || now().saturating_sub(c.fetched_at) < self.policy.ttl())
        {
            self.gate
                .check(&repo, Scope::Meta, &caller, auth, None)
                .await?;
            return Ok((Arc::new(c.clone()), Outcome::Hit));
        }
        // A listing of a directory the Hub said is not there (at a commit: for good; at a branch:
        // for the TTL).
        let missing_key = format!("{key}|missing");
        if keep
            && cached.is_none()
            && let Some(m) = self.db.get_api::<Missing>(missing_key.clone()).await
            && (immutable
                || self.policy.offline()
                || now().saturating_sub(m.fetched_at) < self.policy.ttl())
        {
            self.gate
                .check(&repo, Scope::Meta, &caller, auth, None)
                .await?;
            return Err(m.error());
        }
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&up_full));
        }
        let me = self.clone();
        let (auth2, caller2, repo_key, repo2) =
            (auth.cloned(), caller.clone(), repo.key(), repo.clone());
        let route2 = route.clone();
        let res = self
            .api_flight
            .run(flight_key, move || async move {
                let mut headers = HeaderMap::new();
                let method = if form.is_some() {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(if json_post {
                            "application/json"
                        } else {
                            "application/x-www-form-urlencoded"
                        }),
                    );
                    Method::POST
                } else {
                    Method::GET
                };
                let resp = me
                    .upstream
                    .hub(HubRequest {
                        method,
                        path_and_query: &up_full,
                        auth: auth2.as_ref(),
                        headers,
                        body: form,
                    })
                    .await?;
                let (status, h, body) = read_answer(resp).await?;
                if !status.is_success() {
                    let e = ServiceError::relayed(status, &h, body);
                    if is_refusal(status, &h) {
                        me.gate
                            .refused(&repo_key, Scope::Meta, &caller2, e.clone())
                            .await;
                    } else if keep
                        && matches!(route2, Route::Tree { path: Some(_), .. })
                        && let Some(m) = Missing::from_answer(status, &h)
                    {
                        me.remember_missing(missing_key, m, None).await;
                    }
                    return Err(e);
                }
                let body = String::from_utf8(body.to_vec())
                    .map_err(|_| ServiceError::bad_upstream("API answer is not UTF-8"))?;
                let c = CachedResponse {
                    status: status.as_u16(),
                    content_type: header_str(&h, header::CONTENT_TYPE),
                    link: header_str(&h, header::LINK),
                    body,
                    fetched_at: now(),
                };
                me.gate.granted(&repo_key, Scope::Meta, &caller2).await;
                me.xet
                    .learn_files(&repo2, crate::xet::member_hashes(&route2, &c.body))
                    .await;
                if keep {
                    let c2 = c.clone();
                    if let Err(e) = me.db.run(move |db| db.put_api(&key, &c2)).await {
                        cache_write_failed(&e);
                    }
                }
                Ok(Arc::new(c))
            })
            .await;
        match res {
            Ok(c) => Ok((
                c,
                if cached.is_some() {
                    Outcome::Revalidated
                } else {
                    Outcome::Miss
                },
            )),
            Err(e)
                if e.is_outage()
                    && cached.is_some()
                    && self
                        .gate
                        .may_serve_without_upstream(&repo.key(), Scope::Meta, &caller)
                        .await =>
            {
                Ok((Arc::new(cached.expect("checked")), Outcome::Stale))
            }
            Err(e) => Err(e),
        }
    }

    /// `POST …/paths-info/{rev}` with its parsed body ([`PathsQuery::parse`]): entries are
    /// cached per (repo, revision, expand, path) and the answer composed from them; only the paths
    /// not cached (or expired) are asked upstream, in one request. Paths the Hub does not list
    /// are not cached (absence would let any caller grow the cache).
    pub async fn paths_info(
        self: &Arc<Self>,
        route: &Route,
        query: &PathsQuery,
        auth: Option<&HeaderValue>,
    ) -> Result<(Arc<CachedResponse>, Outcome), ServiceError> {
        let repo = api_repo(route)?;
        let caller = self.gate.caller(auth);
        let paths = &query.paths;
        let expand = query.expand;
        let up = route.upstream_path();
        let entry_key = |p: &str| format!("api|{up}|paths-info|{expand}|{p}");
        let immutable = route.revision().is_some_and(|r| r.is_commit_sha());
        let keep = self.policy.cache_allowed(&repo);
        let mut have: std::collections::HashMap<String, PathEntry> = Default::default();
        let mut ask: Vec<&str> = Vec::new();
        let mut stale = false;
        for p in paths {
            let e: Option<PathEntry> = if keep {
                self.db.get_api(entry_key(p)).await
            } else {
                None
            };
            match e {
                Some(e)
                    if immutable
                        || self.policy.offline()
                        || now().saturating_sub(e.fetched_at) < self.policy.ttl() =>
                {
                    have.insert(p.clone(), e);
                }
                Some(e) => {
                    stale = true;
                    have.insert(p.clone(), e);
                    ask.push(p);
                }
                None => ask.push(p),
            }
        }
        if ask.is_empty() {
            self.gate
                .check(&repo, Scope::Meta, &caller, auth, None)
                .await?;
            return Ok((compose_paths_info(paths, &have), Outcome::Hit));
        }
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&format!(
                "{up} ({} paths)",
                ask.len()
            )));
        }
        let form = {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for p in &ask {
                f.append_pair("paths", p);
            }
            f.append_pair("expand", if expand { "true" } else { "false" });
            Bytes::from(f.finish())
        };
        match self.api(route, None, Some(form), auth).await {
            Ok((c, _)) => {
                let entries: Vec<serde_json::Value> = serde_json::from_str(&c.body)
                    .map_err(|_| ServiceError::bad_upstream("paths-info answer is not a list"))?;
                let asked: std::collections::HashSet<&str> = ask.iter().copied().collect();
                let mut store = Vec::new();
                for v in entries {
                    let Some(p) = v.get("path").and_then(|p| p.as_str()) else {
                        continue;
                    };
                    if !asked.contains(p) {
                        continue;
                    }
                    let e = PathEntry {
                        entry: v.to_string(),
                        fetched_at: now(),
                    };
                    store.push((entry_key(p), e.clone()));
                    have.insert(p.to_string(), e);
                }
                for p in &ask {
                    if !store.iter().any(|(k, _)| *k == entry_key(p)) {
                        have.remove(*p); // no longer listed upstream
                    }
                }
                if keep && !store.is_empty() {
                    let res = self
                        .db
                        .run(move |db| {
                            for (k, e) in &store {
                                db.put_api(k, e)?;
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(e) = res {
                        cache_write_failed(&e);
                    }
                }
                let how = if stale {
                    Outcome::Revalidated
                } else {
                    Outcome::Miss
                };
                Ok((compose_paths_info(paths, &have), how))
            }
            Err(e)
                if e.is_outage()
                    && have.len() == paths.len()
                    && self
                        .gate
                        .may_serve_without_upstream(&repo.key(), Scope::Meta, &caller)
                        .await =>
            {
                Ok((compose_paths_info(paths, &have), Outcome::Stale))
            }
            Err(e) => Err(e),
        }
    }

    /// A route whose answer depends on the caller (whoami, auth-check, a bucket namespace list,
    /// safetensors-metadata): asked upstream with the caller's credentials and never cached;
    /// `query` is what the caller sent of the route's known parameters. Offline: not cached.
    pub async fn passthrough(
        &self,
        route: &Route,
        query: Option<&str>,
        auth: Option<&HeaderValue>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ServiceError> {
        if self.policy.offline() {
            return Err(ServiceError::offline_not_cached(&route.upstream_path()));
        }
        let up = match query {
            Some(q) if !q.is_empty() => format!("{}?{q}", route.upstream_path()),
            _ => route.upstream_path(),
        };
        let resp = self
            .upstream
            .hub(HubRequest {
                method: Method::GET,
                path_and_query: &up,
                auth,
                headers: HeaderMap::new(),
                body: None,
            })
            .await?;
        let (status, h, body) = read_answer(resp).await?;
        if !status.is_success() {
            return Err(ServiceError::relayed(status, &h, body));
        }
        Ok((status, h, body))
    }
}

/// A cached `404 EntryNotFound` (a file at a commit, or a listing of a directory): answered
/// again with the same code, message and `X-Repo-Commit`. Never an access refusal
/// (`RepoNotFound`, `GatedRepo`, 401, 403 are not recorded).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Missing {
    commit: String,
    message: String,
    fetched_at: u64,
}

impl Missing {
    /// The Hub's answer, when it says an entry is missing at a named commit.
    fn from_answer(status: StatusCode, h: &HeaderMap) -> Option<Self> {
        if status != StatusCode::NOT_FOUND
            || header_str(h, "x-error-code").as_deref() != Some("EntryNotFound")
        {
            return None;
        }
        let commit = header_str(h, "x-repo-commit")
            .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))?
            .to_ascii_lowercase();
        let message = header_str(h, "x-error-message")
            .unwrap_or_else(|| "Entry not found".into())
            .chars()
            .take(512)
            .collect();
        Some(Self {
            commit,
            message,
            fetched_at: now(),
        })
    }

    fn error(&self) -> ServiceError {
        ServiceError::entry_not_found(self.message.clone(), Some(self.commit.clone()))
    }
}

/// Key of a cached missing file at a commit (under the repo's API prefix, so `cache rm` of the
/// repo drops it).
fn missing_file_key(repo: &RepoRef, commit: &str, path: &RepoPath) -> String {
    format!(
        "api|/api/{}/{}|missing|{commit}|{}",
        repo.kind.api_plural(),
        repo.id,
        path.as_str()
    )
}

fn rev_key_of(repo: &RepoRef, rev: &Revision) -> String {
    format!("rev|{}|{}", repo.key(), rev.as_str())
}

/// One cached paths-info entry (the Hub's JSON object for one path).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PathEntry {
    entry: String,
    fetched_at: u64,
}

/// Longest query parameter (name and value, as sent) forwarded to the Hub.
const MAX_PARAM_LEN: usize = 1024;

/// The repo of an API route (every API route the sources answer names one).
fn api_repo(route: &Route) -> Result<RepoRef, ServiceError> {
    route
        .repo()
        .cloned()
        .ok_or_else(|| ServiceError::internal("API route without a repo"))
}

/// The query parameters clients send per API route (PROTOCOL.md §2.3, PROTOCOL-2.md).
fn known_params(route: &Route) -> &'static [&'static str] {
    match route {
        Route::RepoInfo { .. } | Route::RevisionInfo { .. } => {
            &["expand", "blobs", "securityStatus", "files_metadata"]
        }
        Route::Tree { .. } => &["recursive", "expand", "cursor", "limit"],
        Route::Refs { .. } => &["include_prs"],
        Route::Commits { .. } => &["expand", "expand[]", "expand%5B%5D", "p", "cursor", "limit"],
        Route::BucketTree { .. } => &["recursive", "expand", "cursor", "limit"],
        Route::BucketInfo { .. } => &["expand"],
        _ => &[],
    }
}

/// The query string sent upstream and used in the cache key: known parameters only (as sent,
/// byte for byte), sorted, each bounded in length; `None` when nothing is left.
fn normalise_query(route: &Route, query: Option<&str>) -> Result<Option<String>, String> {
    let known = known_params(route);
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !known.contains(&name) {
            continue;
        }
        if pair.len() > MAX_PARAM_LEN {
            return Err(format!("query parameter {name} is too long"));
        }
        kept.push(pair);
    }
    if kept.len() > 32 {
        return Err("too many query parameters".into());
    }
    kept.sort_unstable();
    kept.dedup();
    Ok((!kept.is_empty()).then(|| kept.join("&")))
}

/// A paths-info answer made of per-path entries, in the order the paths were asked.
fn compose_paths_info(
    paths: &[String],
    have: &std::collections::HashMap<String, PathEntry>,
) -> Arc<CachedResponse> {
    let entries: Vec<&str> = paths
        .iter()
        .filter_map(|p| have.get(p).map(|e| e.entry.as_str()))
        .collect();
    Arc::new(CachedResponse {
        status: 200,
        content_type: Some("application/json; charset=utf-8".into()),
        link: None,
        body: format!("[{}]", entries.join(",")),
        fetched_at: now(),
    })
}

/// Key of the CDN URL a resolve HEAD redirected to.
fn location_key(repo_key: &str, commit: &str, path: &RepoPath) -> String {
    format!("{repo_key}|{commit}|{}", path.as_str())
}
/// How long a CDN URL from a resolve HEAD is used for the download that follows (the Hub's
/// presigned URLs live much longer; an expired one just falls back to the resolve URL).
const LOCATION_TTL: Duration = Duration::from_secs(300);

/// Fetches byte ranges of one file from the Hub, following its redirect to the LFS CDN (or
/// going straight to the CDN URL the resolve HEAD just named).
struct HubFileSource {
    upstream: Upstream,
    path: String,
    auth: Option<HeaderValue>,
    size: u64,
    location: Option<String>,
}

#[async_trait]
impl Source for HubFileSource {
    async fn fetch(
        &self,
        start: u64,
        end: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, SourceError>>, SourceError> {
        let range = format!("bytes={start}-{end}");
        let direct = match &self.location {
            // No Authorization: a presigned CDN URL authorises itself.
            Some(loc) => match self
                .upstream
                .get_absolute(UpstreamKind::file, loc, None, Some(&range))
                .await
            {
                Ok(r) if r.status().is_success() => Some(r),
                _ => None, // expired or refused: ask the Hub again
            },
            None => None,
        };
        let resp = match direct {
            Some(r) => r,
            None => self
                .upstream
                .get_following(&self.path, self.auth.as_ref(), Some((start, end)))
                .await
                .map_err(|e| SourceError::new(e.to_string(), None))?,
        };
        let status = resp.status();
        let want = end - start + 1;
        // The size the metadata announced must be the size of what the upstream serves: else the
        // metadata lied (the content hash would catch it only after the whole transfer).
        let wrong_size = |total: u64| {
            SourceError::corrupt(format!(
                "upstream serves {total} bytes, its metadata announced {}",
                self.size
            ))
        };
        let skip = match status {
            StatusCode::PARTIAL_CONTENT => {
                let cr = header_str(resp.headers(), header::CONTENT_RANGE).unwrap_or_default();
                let ok = cr
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('/').next())
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, _)| a.parse::<u64>().ok())
                    == Some(start);
                if !ok {
                    return Err(SourceError::new(
                        format!("upstream answered range {cr:?} for {start}-{end}"),
                        Some(206),
                    ));
                }
                if let Some(total) = cr.rsplit_once('/').and_then(|(_, t)| t.parse::<u64>().ok())
                    && total != self.size
                {
                    return Err(wrong_size(total));
                }
                0
            }
            // The whole file instead of the range: skip to the start.
            StatusCode::OK => {
                if let Some(total) = resp.content_length()
                    && total != self.size
                {
                    return Err(wrong_size(total));
                }
                start
            }
            s => {
                return Err(SourceError::new(
                    format!("upstream answered {s}"),
                    Some(s.as_u16()),
                ));
            }
        };
        Ok(limit(
            resp.bytes_stream()
                .map_err(|e| SourceError::new(e.to_string(), None))
                .boxed(),
            skip,
            want,
        ))
    }
}

/// Skips `skip` bytes, then yields at most `take` bytes.
fn limit(
    s: BoxStream<'static, Result<Bytes, SourceError>>,
    skip: u64,
    take: u64,
) -> BoxStream<'static, Result<Bytes, SourceError>> {
    futures::stream::unfold((s, skip, take), |(mut s, mut skip, mut take)| async move {
        loop {
            if take == 0 {
                return None;
            }
            let mut b = match s.next().await? {
                Ok(b) => b,
                Err(e) => return Some((Err(e), (s, 0, 0))),
            };
            if skip > 0 {
                let n = skip.min(b.len() as u64);
                let _ = b.split_to(n as usize);
                skip -= n;
            }
            if b.is_empty() {
                continue;
            }
            if b.len() as u64 > take {
                b.truncate(take as usize);
            }
            take -= b.len() as u64;
            return Some((Ok(b), (s, skip, take)));
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use olah_types::parse_route;

    #[test]
    fn only_entry_not_found_at_a_named_commit_is_remembered() {
        let sha = "0123456789ABCDEF0123456789abcdef01234567";
        let h = |code: &'static str, commit: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert("x-error-code", HeaderValue::from_static(code));
            h.insert(
                "x-error-message",
                HeaderValue::from_static("vocab.json missing"),
            );
            if let Some(c) = commit {
                h.insert("x-repo-commit", HeaderValue::from_static(c));
            }
            h
        };
        let m = Missing::from_answer(StatusCode::NOT_FOUND, &h("EntryNotFound", Some(sha)))
            .expect("remembered");
        assert_eq!(m.commit, sha.to_ascii_lowercase());
        let e = m.error();
        assert_eq!(e.code, crate::error::HubCode::EntryNotFound);
        assert_eq!(e.commit.as_deref(), Some(m.commit.as_str()));
        assert_eq!(e.message, "vocab.json missing");
        // Access refusals, other codes, other statuses and answers without a commit are not.
        for (status, headers) in [
            (StatusCode::NOT_FOUND, h("RepoNotFound", Some(sha))),
            (StatusCode::NOT_FOUND, h("GatedRepo", Some(sha))),
            (StatusCode::UNAUTHORIZED, h("EntryNotFound", Some(sha))),
            (StatusCode::FORBIDDEN, h("EntryNotFound", Some(sha))),
            (StatusCode::NOT_FOUND, h("RevisionNotFound", Some(sha))),
            (StatusCode::NOT_FOUND, h("EntryNotFound", None)),
            (StatusCode::NOT_FOUND, h("EntryNotFound", Some("main"))),
        ] {
            assert!(
                Missing::from_answer(status, &headers).is_none(),
                "{status} {headers:?}"
            );
        }
    }

    #[test]
    fn queries_keep_known_parameters_sorted_and_bounded() {
        let tree = parse_route("/api/models/a/b/tree/main").unwrap();
        assert_eq!(
            normalise_query(
                &tree,
                Some("junk=1&recursive=true&expand=false&cursor=ab%2Bc")
            ),
            Ok(Some("cursor=ab%2Bc&expand=false&recursive=true".into()))
        );
        assert_eq!(normalise_query(&tree, Some("x=1&y")), Ok(None));
        let long = format!("cursor={}", "a".repeat(2000));
        assert!(normalise_query(&tree, Some(&long)).is_err());
        let info = parse_route("/api/models/a/b").unwrap();
        assert_eq!(
            normalise_query(
                &info,
                Some("expand=sha&recursive=true&expand=author&expand=sha")
            ),
            Ok(Some("expand=author&expand=sha".into()))
        );
    }
}
