//! The mirror's service logic: cache-or-fetch for file metadata, file bytes and API responses,
//! with revalidation, stale-if-error and the access gate. Knows nothing of axum.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_config::Config;
use olah_store::{BlobKey, BlobStore, MetaDb, Source, SourceError};
use olah_types::{RepoPath, RepoRef, Revision, Route};
use olah_upstream::{HubRequest, Upstream, UpstreamError};
use serde::{Deserialize, Serialize};

use crate::access::{AccessCache, Caller, Known, Scope};
use crate::error::ApiError;
use crate::flight::Flight;

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
    /// hit | miss | revalidated | stale
    pub cache: &'static str,
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

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_str(h: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn unquote(s: &str) -> String {
    s.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string()
}

/// The mirror service.
pub struct Mirror {
    /// Validated configuration.
    pub cfg: Arc<Config>,
    /// Metadata database.
    pub db: Arc<MetaDb>,
    /// Blob store.
    pub blobs: Arc<BlobStore>,
    /// Upstream client.
    pub upstream: Upstream,
    /// Access answers.
    pub access: AccessCache,
    /// Local git repositories (`mirrors-path`), served without the upstream.
    pub local: crate::localgit::LocalRepos,
    /// The Xet side: sessions, signing secret, xorb store.
    pub xet: crate::xet::XetState,
    head_flight: Flight<Result<(String, FileMeta), ApiError>>,
    /// Where the Hub's resolve HEAD redirected (a presigned CDN URL) per `{repo}|{commit}|{path}`,
    /// so the download that follows goes straight there: one upstream round trip less.
    locations: std::sync::Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
    api_flight: Flight<Result<Arc<CachedResponse>, ApiError>>,
    check_flight: Flight<Result<(), ApiError>>,
}

impl Mirror {
    /// Opens the store under `cfg.repos_path` and builds the service.
    pub fn open(cfg: Arc<Config>) -> Result<Self, String> {
        let root = &cfg.repos_path;
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create repos-path {}: {e}", root.display()))?;
        let (db, damaged) = MetaDb::open_or_recover(&root.join("olah-meta.redb"))
            .map_err(|e| format!("cannot open the metadata database: {e}"))?;
        let db = Arc::new(db);
        // Cached API answers keep to their own budget: an eighth of the size limit, at most the
        // default (bounded even without a limit; counted in the limit's usage total).
        let api_budget = cfg
            .cache_size_limit
            .map_or(olah_store::meta::DEFAULT_API_BUDGET, |l| {
                (l / 8).min(olah_store::meta::DEFAULT_API_BUDGET)
            });
        if let Err(e) = db.set_api_budget(api_budget) {
            tracing::warn!(error = %e, "cannot apply the API cache budget");
        }
        let block = cfg
            .cache_block_size
            .unwrap_or(olah_store::DEFAULT_BLOCK_SIZE);
        let strategy = match cfg.cache_clean_strategy {
            olah_config::CleanStrategy::Lru => olah_store::Strategy::Lru,
            olah_config::CleanStrategy::Fifo => olah_store::Strategy::Fifo,
            olah_config::CleanStrategy::LargeFirst => olah_store::Strategy::LargeFirst,
        };
        let blobs = Arc::new(BlobStore::with_limit(
            root.join("blobs"),
            db.clone(),
            block,
            cfg.cache_size_limit,
            strategy,
        ));
        crate::xet::forget_unproven_memberships(&db)?;
        let xet = crate::xet::XetState::open(root.join("xorbs"))?;
        blobs.attach_xorbs(xet.store.clone());
        if let Some((aside, why)) = damaged {
            tracing::warn!(moved_to = %aside.display(), reason = %why,
                "the metadata database was damaged: moved aside, starting with a fresh one; \
                 re-registering the cached blobs that verify");
            let (kept, bytes, dropped) = blobs
                .recover_blobs()
                .map_err(|e| format!("cannot rebuild the metadata database: {e}"))?;
            tracing::warn!(
                blobs = kept,
                bytes,
                deleted = dropped,
                "cache recovered from the data files (file metadata is fetched again)"
            );
        }
        blobs.start_evictor();
        let mut extra = cfg.upstream_hosts.clone();
        extra.push(cfg.hf_lfs_netloc.clone());
        let upstream = Upstream::new(&cfg.hf_url(), &extra)?;
        let ttl = Duration::from_secs(cfg.metadata_cache_ttl);
        Ok(Self {
            local: crate::localgit::LocalRepos::new(cfg.mirrors_path.clone()),
            xet,
            access: AccessCache::new(ttl, salt(&db)?),
            cfg,
            db,
            blobs,
            upstream,
            head_flight: Flight::default(),
            locations: std::sync::Mutex::default(),
            api_flight: Flight::default(),
            check_flight: Flight::default(),
        })
    }

    /// Whether `[[accessibility.proxy]]` lets the mirror fetch this repo at all.
    pub fn proxy_allowed(&self, repo: &RepoRef) -> bool {
        olah_config::decide(&self.cfg.proxy_rules, repo.id.as_str())
    }

    /// Whether `[[accessibility.cache]]` lets the mirror keep (and serve from disk) this repo.
    pub fn cache_allowed(&self, repo: &RepoRef) -> bool {
        olah_config::decide(&self.cfg.cache_rules, repo.id.as_str())
    }

    pub(crate) fn ttl(&self) -> u64 {
        self.cfg.metadata_cache_ttl
    }

    pub(crate) fn offline(&self) -> bool {
        self.cfg.offline
    }

    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&MetaDb) -> olah_store::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Whether the Hub ever served this scope of the repo to an anonymous caller. Per scope: a
    /// gated repo's metadata is public but its files are not.
    pub(crate) fn is_public_persisted(&self, repo_key: &str, scope: Scope) -> bool {
        self.db
            .get_json::<u64>(&format!("public|{scope:?}|{repo_key}"))
            .ok()
            .flatten()
            .is_some()
    }

    /// The Hub allowed `caller`: remember it (in memory for the TTL; a token's grant also on disk
    /// as its salted hash, for offline mode; an anonymous allow marks the repo public).
    pub(crate) async fn granted(&self, repo_key: &str, scope: Scope, caller: &Caller) {
        self.access.allow(repo_key, scope, caller);
        if caller.is_anon() {
            self.mark_public(repo_key, scope).await;
            if scope == Scope::Files {
                self.mark_public(repo_key, Scope::Meta).await;
            }
        } else {
            let k = grant_key(repo_key, scope, caller);
            if self.db.get_json::<u64>(&k).ok().flatten().is_none() {
                let _ = self.db(move |db| db.put_json(&k, &now())).await;
            }
        }
    }

    /// The Hub refused `caller` (see [`is_refusal`]): remember it and forget any offline grant.
    /// An anonymous refusal means the repo is no longer public in that scope (a refused metadata
    /// scope also closes its files): the in-memory and persisted public marks go, so neither
    /// stale-if-error nor offline mode reopens it. Every place that sees a refusal calls this.
    pub(crate) async fn refused(
        &self,
        repo_key: &str,
        scope: Scope,
        caller: &Caller,
        err: ApiError,
    ) {
        self.access.deny(repo_key, scope, caller, err);
        let keys: Vec<String> = if caller.is_anon() {
            let scopes: &[Scope] = match scope {
                Scope::Meta => &[Scope::Meta, Scope::Files],
                Scope::Files => &[Scope::Files],
            };
            scopes
                .iter()
                .filter(|s| self.is_public_persisted(repo_key, **s))
                .map(|s| format!("public|{s:?}|{repo_key}"))
                .collect()
        } else {
            vec![grant_key(repo_key, scope, caller)]
        };
        for k in keys {
            if let Err(e) = self.db(move |db| db.delete(&k)).await {
                tracing::warn!(repo = repo_key, error = ?e, "could not forget an access mark");
            }
        }
    }

    pub(crate) fn has_grant(&self, repo_key: &str, scope: Scope, caller: &Caller) -> bool {
        !caller.is_anon()
            && (self
                .db
                .get_json::<u64>(&grant_key(repo_key, scope, caller))
                .ok()
                .flatten()
                .is_some()
                || (scope == Scope::Meta
                    && self
                        .db
                        .get_json::<u64>(&grant_key(repo_key, Scope::Files, caller))
                        .ok()
                        .flatten()
                        .is_some()))
    }

    async fn mark_public(&self, repo_key: &str, scope: Scope) {
        let k = format!("public|{scope:?}|{repo_key}");
        if !self.is_public_persisted(repo_key, scope) {
            let _ = self.db(move |db| db.put_json(&k, &now())).await;
        }
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
    ) -> Result<Resolved, ApiError> {
        let repo_key = repo.key();
        let caller = self.access.caller(auth);
        let rev_key = format!("rev|{repo_key}|{}", rev.as_str());
        let keep = self.cache_allowed(repo);
        let (pinned, stale_commit) = if !keep {
            (None, None)
        } else if rev.is_commit_sha() {
            (Some(rev.as_str().to_string()), None)
        } else {
            match self.db.get_json::<RevEntry>(&rev_key).ok().flatten() {
                Some(e) if now().saturating_sub(e.fetched_at) < self.ttl() || self.offline() => {
                    (Some(e.commit), None)
                }
                Some(e) => (None, Some(e.commit)),
                None => (None, None),
            }
        };
        if let Some(commit) = &pinned
            && let Some(meta) = self.cached_meta(&repo_key, commit, path)
        {
            self.check_access(repo, Scope::Files, &caller, auth, Some((commit, path)))
                .await?;
            return Ok(Resolved {
                commit: commit.clone(),
                meta,
                cache: "hit",
            });
        }
        if self.offline() {
            return Err(offline_miss(&format!(
                "{repo_key}@{}:{}",
                rev.as_str(),
                path.as_str()
            )));
        }
        match self.head_file(repo, rev, path, auth, &caller).await {
            Ok((commit, meta)) => {
                let cache = if stale_commit.is_some() {
                    "revalidated"
                } else {
                    "miss"
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
                    && let Some(meta) = self.cached_meta(&repo_key, &commit, path)
                    && self.may_serve_without_upstream(&repo_key, Scope::Files, &caller)
                {
                    return Ok(Resolved {
                        commit,
                        meta,
                        cache: "stale",
                    });
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn cached_meta(&self, repo_key: &str, commit: &str, path: &RepoPath) -> Option<FileMeta> {
        self.db
            .get_json(&format!("file|{repo_key}|{commit}|{}", path.as_str()))
            .ok()
            .flatten()
    }

    pub(crate) fn may_serve_without_upstream(
        &self,
        repo_key: &str,
        scope: Scope,
        caller: &Caller,
    ) -> bool {
        self.access.was_public(repo_key, scope)
            || self.is_public_persisted(repo_key, scope)
            || matches!(self.access.check(repo_key, scope, caller), Known::Allowed)
    }

    /// One upstream HEAD of the resolve URL (single-flight per repo, revision, path and caller).
    async fn head_file(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &Revision,
        path: &RepoPath,
        auth: Option<&HeaderValue>,
        caller: &Caller,
    ) -> Result<(String, FileMeta), ApiError> {
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
                    let e = ApiError::from_upstream(status, &h, Bytes::new());
                    if is_refusal(status, &h) {
                        me.refused(&repo.key(), Scope::Files, &caller, e.clone())
                            .await;
                    }
                    return Err(e);
                }
                // A redirect counts only when it names where the bytes are, on an allowed host.
                if status.is_redirection()
                    && !header_str(&h, header::LOCATION).is_some_and(|l| me.upstream.allows_url(&l))
                {
                    return Err(ApiError::BadUpstream(
                        "resolve redirect without an allowed Location".into(),
                    ));
                }
                let commit = header_str(&h, "x-repo-commit")
                    .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(|c| c.to_ascii_lowercase())
                    .ok_or_else(|| {
                        ApiError::BadUpstream("resolve answer without a valid X-Repo-Commit".into())
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
                    .ok_or_else(|| ApiError::BadUpstream("resolve answer without a size".into()))?;
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
                    return Err(ApiError::BadUpstream(
                        "resolve answer without a usable ETag".into(),
                    ));
                }
                let repo_key = repo.key();
                me.granted(&repo_key, Scope::Files, &caller).await;
                if status.is_redirection()
                    && let Some(loc) = header_str(&h, header::LOCATION)
                    && me.upstream.allows_url(&loc)
                    && !loc.starts_with(me.upstream.hub_base())
                {
                    let mut m = me.locations.lock().expect("locations lock");
                    m.retain(|_, (_, at)| at.elapsed() < LOCATION_TTL);
                    m.insert(
                        location_key(&repo_key, &commit, &path),
                        (loc, std::time::Instant::now()),
                    );
                }
                if let Some(h) = meta.xet_hash.clone() {
                    me.learn_xet_files(&repo, vec![h.to_ascii_lowercase()])
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
                if !me.cache_allowed(&repo) {
                    return Ok((commit, meta));
                }
                let m2 = meta.clone();
                let stored = me
                    .db(move |db| {
                        db.put_json(&file_key, &m2)?;
                        if let Some((k, v)) = rev_entry {
                            db.put_json(&k, &v)?;
                        }
                        Ok(())
                    })
                    .await;
                if let Err(e) = stored {
                    me.cache_write_failed(&e);
                }
                Ok((commit, meta))
            })
            .await
    }

    /// The fail-closed gate for cached content: allowed when the repo is public or the Hub
    /// confirmed this caller within the TTL; otherwise asks the Hub with the caller's own token.
    pub async fn check_access(
        self: &Arc<Self>,
        repo: &RepoRef,
        scope: Scope,
        caller: &Caller,
        auth: Option<&HeaderValue>,
        file: Option<(&str, &RepoPath)>,
    ) -> Result<(), ApiError> {
        let repo_key = repo.key();
        match self.access.check(&repo_key, scope, caller) {
            Known::Allowed => return Ok(()),
            Known::Denied(e) => return Err(e),
            Known::Unknown => {}
        }
        if self.offline() {
            return if self.is_public_persisted(&repo_key, scope)
                || self.has_grant(&repo_key, scope, caller)
            {
                Ok(())
            } else {
                Err(ApiError::Hub {
                    status: StatusCode::UNAUTHORIZED,
                    code: "GatedRepo",
                    message: "offline: access to this repository cannot be confirmed".into(),
                })
            };
        }
        let probe_route = match (scope, file) {
            (Scope::Files, Some((commit, path))) => Route::Resolve {
                repo: repo.clone(),
                revision: Revision::new(commit).map_err(|e| ApiError::Internal(e.to_string()))?,
                path: path.clone(),
            },
            _ => Route::RepoInfo { repo: repo.clone() },
        };
        // A hand-built route whose URL would read back as another repo (e.g. the info of a
        // repo named `x/refs`) must never be used to decide access: fail closed.
        if !probe_route.is_canonical() {
            return Err(ApiError::bad_request(
                "ambiguous repository id for an access check",
            ));
        }
        let probe = probe_route.upstream_path();
        let key = format!("{repo_key}|{scope:?}|{}", caller.id());
        let me = self.clone();
        let (auth, caller2, repo_key2) = (auth.cloned(), caller.clone(), repo_key.clone());
        let res = self
            .check_flight
            .run(key, move || async move {
                let resp = me
                    .upstream
                    .hub(HubRequest {
                        method: Method::HEAD,
                        path_and_query: &probe,
                        auth: auth.as_ref(),
                        headers: HeaderMap::new(),
                        body: None,
                    })
                    .await?;
                let status = resp.status();
                if status.is_success() {
                    me.granted(&repo_key2, scope, &caller2).await;
                    return Ok(());
                }
                if is_refusal(status, resp.headers()) {
                    let e = ApiError::from_upstream(status, resp.headers(), Bytes::new());
                    me.refused(&repo_key2, scope, &caller2, e.clone()).await;
                    return Err(e);
                }
                if !status.is_redirection() {
                    return Err(ApiError::from_upstream(
                        status,
                        resp.headers(),
                        Bytes::new(),
                    ));
                }
                // Only a final 2xx grants: follow the Hub's redirect (the LFS CDN URL of a
                // resolve) to an allowed host, without any credential.
                let loc = header_str(resp.headers(), header::LOCATION)
                    .filter(|l| me.upstream.allows_url(l))
                    .ok_or_else(|| {
                        ApiError::BadUpstream(
                            "access probe redirected without an allowed Location".into(),
                        )
                    })?;
                let next = me.upstream.head_absolute(&loc).await?;
                if next.status().is_success() {
                    me.granted(&repo_key2, scope, &caller2).await;
                    Ok(())
                } else {
                    Err(ApiError::BadUpstream(format!(
                        "access probe redirect answered {}",
                        next.status()
                    )))
                }
            })
            .await;
        match res {
            Err(ApiError::Unavailable { .. })
                if self.may_serve_without_upstream(&repo_key, scope, caller) =>
            {
                Ok(())
            }
            other => other,
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
            .lock()
            .expect("locations lock")
            .remove(&location_key(&repo_key, commit, path));
        let file_key = format!("file|{repo_key}|{commit}|{}", path.as_str());
        tracing::warn!(file = %file_key, "content failed verification: its metadata is dropped");
        if let Err(e) = self.db(move |db| db.delete(&file_key)).await {
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
        if self.offline() {
            return None;
        }
        let revision = Revision::new(commit).ok()?;
        let location = self
            .locations
            .lock()
            .expect("locations lock")
            .get(&location_key(&repo.key(), commit, path))
            .filter(|(_, at)| at.elapsed() < LOCATION_TTL)
            .map(|(u, _)| u.clone());
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
    ) -> Result<(Arc<CachedResponse>, &'static str), ApiError> {
        let repo = route
            .repo()
            .ok_or_else(|| ApiError::Internal("API route without a repo".into()))?
            .clone();
        let caller = self.access.caller(auth);
        let up = route.upstream_path();
        // Only the parameters clients send for this route, sorted: a junk query string neither
        // reaches the Hub nor makes a new cache record.
        let up_full = match normalise_query(route, query).map_err(ApiError::bad_request)? {
            Some(q) => format!("{up}?{q}"),
            None => up.clone(),
        };
        let key = format!("api|{up_full}");
        let flight_key = format!(
            "{key}|{}|{}",
            caller.id(),
            form.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        );
        let immutable = route.revision().is_some_and(|r| r.is_commit_sha());
        // paths-info answers are cached per path by `paths_info`, never as a whole body.
        let keep = self.cache_allowed(&repo) && form.is_none();
        let cached: Option<CachedResponse> = if keep {
            self.db.get_api(&key).ok().flatten()
        } else {
            None
        };
        if let Some(c) = &cached
            && (immutable || self.offline() || now().saturating_sub(c.fetched_at) < self.ttl())
        {
            self.check_access(&repo, Scope::Meta, &caller, auth, None)
                .await?;
            return Ok((Arc::new(c.clone()), "hit"));
        }
        if self.offline() {
            return Err(offline_miss(&up_full));
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
                        HeaderValue::from_static("application/x-www-form-urlencoded"),
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
                    let e = ApiError::from_upstream(status, &h, body);
                    if is_refusal(status, &h) {
                        me.refused(&repo_key, Scope::Meta, &caller2, e.clone())
                            .await;
                    }
                    return Err(e);
                }
                let body = String::from_utf8(body.to_vec())
                    .map_err(|_| ApiError::BadUpstream("API answer is not UTF-8".into()))?;
                let c = CachedResponse {
                    status: status.as_u16(),
                    content_type: header_str(&h, header::CONTENT_TYPE),
                    link: header_str(&h, header::LINK),
                    body,
                    fetched_at: now(),
                };
                me.granted(&repo_key, Scope::Meta, &caller2).await;
                me.learn_xet_files(&repo2, crate::xet::member_hashes(&route2, &c.body))
                    .await;
                if keep {
                    let c2 = c.clone();
                    if let Err(e) = me.db(move |db| db.put_api(&key, &c2)).await {
                        me.cache_write_failed(&e);
                    }
                }
                Ok(Arc::new(c))
            })
            .await;
        match res {
            Ok(c) => Ok((
                c,
                if cached.is_some() {
                    "revalidated"
                } else {
                    "miss"
                },
            )),
            Err(e)
                if e.is_outage()
                    && cached.is_some()
                    && self.may_serve_without_upstream(&repo.key(), Scope::Meta, &caller) =>
            {
                Ok((Arc::new(cached.expect("checked")), "stale"))
            }
            Err(e) => Err(e),
        }
    }

    /// `POST …/paths-info/{rev}`: the body (form `paths=…&expand=…` as huggingface_hub sends
    /// it, or JSON `{"paths": […], "expand": …}` as huggingface.js does) is parsed; entries are
    /// cached per (repo, revision, expand, path) and the answer composed from them; only the paths
    /// not cached (or expired) are asked upstream, in one request. Paths the Hub does not list
    /// are not cached (absence would let any caller grow the cache).
    pub async fn paths_info(
        self: &Arc<Self>,
        route: &Route,
        body: Bytes,
        auth: Option<&HeaderValue>,
    ) -> Result<(Arc<CachedResponse>, &'static str), ApiError> {
        let repo = route
            .repo()
            .ok_or_else(|| ApiError::Internal("API route without a repo".into()))?
            .clone();
        let caller = self.access.caller(auth);
        let (paths, expand) = parse_paths_info(&body).map_err(ApiError::bad_request)?;
        let up = route.upstream_path();
        let entry_key = |p: &str| format!("api|{up}|paths-info|{expand}|{p}");
        let immutable = route.revision().is_some_and(|r| r.is_commit_sha());
        let keep = self.cache_allowed(&repo);
        let mut have: std::collections::HashMap<String, PathEntry> = Default::default();
        let mut ask: Vec<&str> = Vec::new();
        let mut stale = false;
        for p in &paths {
            let e: Option<PathEntry> = if keep {
                self.db.get_api(&entry_key(p)).ok().flatten()
            } else {
                None
            };
            match e {
                Some(e)
                    if immutable
                        || self.offline()
                        || now().saturating_sub(e.fetched_at) < self.ttl() =>
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
            self.check_access(&repo, Scope::Meta, &caller, auth, None)
                .await?;
            return Ok((compose_paths_info(&paths, &have), "hit"));
        }
        if self.offline() {
            return Err(offline_miss(&format!("{up} ({} paths)", ask.len())));
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
                    .map_err(|_| ApiError::BadUpstream("paths-info answer is not a list".into()))?;
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
                        .db(move |db| {
                            for (k, e) in &store {
                                db.put_api(k, e)?;
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(e) = res {
                        self.cache_write_failed(&e);
                    }
                }
                let how = if stale { "revalidated" } else { "miss" };
                Ok((compose_paths_info(&paths, &have), how))
            }
            Err(e)
                if e.is_outage()
                    && have.len() == paths.len()
                    && self.may_serve_without_upstream(&repo.key(), Scope::Meta, &caller) =>
            {
                Ok((compose_paths_info(&paths, &have), "stale"))
            }
            Err(e) => Err(e),
        }
    }

    /// A cache write failed (a full disk, a database being reopened): the request goes on
    /// without caching; warns at most once every 10 s.
    pub(crate) fn cache_write_failed(&self, e: &ApiError) {
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = now();
        let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
        if t >= last + 10
            && LAST
                .compare_exchange(
                    last,
                    t,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(error = ?e, "metadata cache write failed; serving without caching");
        }
    }

    /// Relays a request without caching (whoami).
    pub async fn passthrough(
        &self,
        route: &Route,
        auth: Option<&HeaderValue>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
        if self.offline() {
            return Err(offline_miss(&route.upstream_path()));
        }
        let up = route.upstream_path();
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
            return Err(ApiError::from_upstream(status, &h, body));
        }
        Ok((status, h, body))
    }
}

/// Most bytes read from one upstream API answer (JSON listings, reconstructions).
pub(crate) const ANSWER_LIMIT: usize = 16 << 20;

/// Most bytes read from one upstream token answer (a few short fields).
pub(crate) const TOKEN_ANSWER_LIMIT: usize = 64 << 10;

/// Status, headers and whole body of a (small: JSON) upstream answer, at most [`ANSWER_LIMIT`]
/// bytes.
pub(crate) async fn read_answer(
    resp: olah_upstream::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
    read_answer_limited(resp, ANSWER_LIMIT).await
}

/// Status, headers and whole body of an upstream answer of at most `limit` bytes: a larger
/// announced `Content-Length` is refused before reading, and the bytes are counted while they
/// stream in, so a larger answer costs at most `limit` bytes of memory and is never cached.
pub(crate) async fn read_answer_limited(
    mut resp: olah_upstream::Response,
    limit: usize,
) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
    let too_large = || {
        ApiError::BadUpstream(format!(
            "the upstream answer is larger than the mirror accepts ({limit} bytes)"
        ))
    };
    let status = resp.status();
    let h = resp.headers().clone();
    let announced = header_str(&h, header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(resp.content_length());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::from(UpstreamError::Unreachable(e.without_url().to_string())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, h, body.freeze()))
}

/// One cached paths-info entry (the Hub's JSON object for one path).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PathEntry {
    entry: String,
    fetched_at: u64,
}

/// Most paths in one paths-info request.
pub const MAX_PATHS_INFO: usize = 1000;

/// Longest query parameter (name and value, as sent) forwarded to the Hub.
const MAX_PARAM_LEN: usize = 1024;

/// The query parameters clients send per API route (PROTOCOL.md §2.3, PROTOCOL-2.md).
fn known_params(route: &Route) -> &'static [&'static str] {
    match route {
        Route::RepoInfo { .. } | Route::RevisionInfo { .. } => {
            &["expand", "blobs", "securityStatus", "files_metadata"]
        }
        Route::Tree { .. } => &["recursive", "expand", "cursor", "limit"],
        Route::Refs { .. } => &["include_prs"],
        Route::Commits { .. } => &["expand", "expand[]", "expand%5B%5D", "p", "cursor", "limit"],
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

/// The paths (deduplicated, in order, each a valid repo path) and `expand` of a paths-info body.
fn parse_paths_info(body: &[u8]) -> Result<(Vec<String>, bool), String> {
    let is_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let (paths, expand) = if is_json {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            paths: Vec<String>,
            #[serde(default)]
            expand: Option<serde_json::Value>,
        }
        let b: Body = serde_json::from_slice(body)
            .map_err(|_| "paths-info body is not valid JSON".to_string())?;
        let expand = match b.expand {
            Some(serde_json::Value::Bool(x)) => x,
            Some(serde_json::Value::String(s)) => is_true(&s),
            _ => false,
        };
        (b.paths, expand)
    } else {
        let mut paths = Vec::new();
        let mut expand = false;
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "paths" => paths.push(v.into_owned()),
                "expand" => expand = is_true(&v),
                _ => {}
            }
        }
        (paths, expand)
    };
    if paths.len() > MAX_PATHS_INFO {
        return Err(format!(
            "at most {MAX_PATHS_INFO} paths per paths-info request"
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        RepoPath::new(&p).map_err(|e| e.to_string())?;
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    Ok((out, expand))
}

fn is_true(s: &str) -> bool {
    matches!(s, "true" | "True" | "1")
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

/// Whether an upstream answer refuses the caller access to the repo (rather than naming a
/// missing file, revision or route): 401, 403, or a 404 `RepoNotFound` (how the Hub answers a
/// token that may not see a private repo).
pub(crate) fn is_refusal(status: StatusCode, h: &HeaderMap) -> bool {
    match status.as_u16() {
        401 | 403 => true,
        404 => matches!(
            h.get("x-error-code").and_then(|v| v.to_str().ok()),
            Some("RepoNotFound" | "GatedRepo")
        ),
        _ => false,
    }
}

/// Key of the CDN URL a resolve HEAD redirected to.
fn location_key(repo_key: &str, commit: &str, path: &RepoPath) -> String {
    format!("{repo_key}|{commit}|{}", path.as_str())
}

/// The salt of caller ids, kept in the database so persisted grants survive restarts.
fn salt(db: &MetaDb) -> Result<[u8; 16], String> {
    if let Some(h) = db.get_json::<String>("salt").ok().flatten()
        && let Ok(v) = hex::decode(&h)
        && let Ok(salt) = <[u8; 16]>::try_from(v.as_slice())
    {
        return Ok(salt);
    }
    let salt: [u8; 16] = rand::random();
    db.put_json("salt", &hex::encode(salt))
        .map_err(|e| format!("cannot write to the metadata database: {e}"))?;
    Ok(salt)
}

/// Database key of a persisted grant: the caller id is a salted hash, never the token.
fn grant_key(repo_key: &str, scope: Scope, caller: &Caller) -> String {
    format!("grant|{repo_key}|{scope:?}|{}", caller.id())
}

/// What offline mode answers for anything not cached: a 404 whose unknown `X-Error-Code` makes
/// huggingface_hub raise `LocalEntryNotFoundError` at once (a 5xx would be retried for ~20 s).
pub(crate) fn offline_miss(what: &str) -> ApiError {
    ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "OfflineNotCached",
        message: format!("the mirror is offline and has not cached {what}"),
    }
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
            Some(loc) => match self.upstream.get_absolute(loc, None, Some(&range)).await {
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
                .map_err(|e| SourceError::new(e.without_url().to_string(), None))
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
    fn refusals_are_told_from_missing_entries() {
        let code = |c: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-error-code", HeaderValue::from_static(c));
            h
        };
        let none = HeaderMap::new();
        assert!(is_refusal(StatusCode::UNAUTHORIZED, &code("GatedRepo")));
        assert!(is_refusal(StatusCode::FORBIDDEN, &none));
        assert!(is_refusal(StatusCode::NOT_FOUND, &code("RepoNotFound")));
        assert!(!is_refusal(StatusCode::NOT_FOUND, &code("EntryNotFound")));
        assert!(!is_refusal(
            StatusCode::NOT_FOUND,
            &code("RevisionNotFound")
        ));
        assert!(!is_refusal(StatusCode::NOT_FOUND, &none));
        assert!(!is_refusal(StatusCode::SERVICE_UNAVAILABLE, &none));
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

    #[test]
    fn paths_info_bodies_parse_as_form_or_json() {
        assert_eq!(
            parse_paths_info(b"paths=a.txt&paths=sub%2Fb%20c.txt&paths=a.txt&expand=True&x=1"),
            Ok((vec!["a.txt".into(), "sub/b c.txt".into()], true))
        );
        assert_eq!(
            parse_paths_info(br#" {"paths": ["a.txt"], "expand": false}"#),
            Ok((vec!["a.txt".into()], false))
        );
        assert!(parse_paths_info(b"paths=../x").is_err());
        assert!(parse_paths_info(b"{\"paths\": 3}").is_err());
        let many: Vec<String> = (0..=MAX_PATHS_INFO)
            .map(|i| format!("paths=f{i}"))
            .collect();
        assert!(parse_paths_info(many.join("&").as_bytes()).is_err());
    }
}

#[cfg(test)]
mod read_answer_tests {
    use super::*;

    fn answer(
        chunks: Vec<&'static [u8]>,
        content_length: Option<usize>,
    ) -> olah_upstream::Response {
        let stream = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let mut r = http::Response::new(reqwest::Body::wrap_stream(stream));
        if let Some(n) = content_length {
            r.headers_mut().insert(header::CONTENT_LENGTH, n.into());
        }
        olah_upstream::Response::from(r)
    }

    #[tokio::test]
    async fn answers_within_the_limit_are_read_whole() {
        let (status, _, body) = read_answer_limited(answer(vec![b"[1,", b"2]"], None), 5)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"[1,2]");
    }

    #[tokio::test]
    async fn larger_answers_are_refused_as_bad_upstream() {
        // Announced too large: refused before the body is read.
        let e = read_answer_limited(answer(vec![b"[]"], Some(1 << 30)), 1024)
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY, "{e:?}");
        // Streamed without a length: refused as soon as the count passes the limit.
        let e = read_answer_limited(answer(vec![b"[1,2,", b"3,4]"], None), 8)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::BadUpstream(_)), "{e:?}");
    }
}
