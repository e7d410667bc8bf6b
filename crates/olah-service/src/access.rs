//! Who may read what: the fail-closed gate in front of cached content.
//!
//! Cached bytes of a gated or private repo are served to a caller only after the Hub confirmed
//! that caller's access. Answers are remembered per (repo, scope, caller) for a short TTL, where
//! the caller is `anon` or a salted sha256 of the token (the token itself is never stored or
//! logged). A repo the Hub served to an anonymous caller is public: everyone may read it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use olah_store::MetaDb;
use olah_types::{RepoPath, RepoRef, Revision, Route};
use olah_upstream::{HubRequest, Upstream};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::common::{Meta, header_str, is_refusal, now};
use crate::error::{ErrorKind, HubCode, Origin};
use crate::flight::Flight;
use crate::policy::Policy;

use crate::error::ServiceError;

/// What the access is for: repo metadata (API) or file contents (gated repos differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// API metadata: refused for private repos only.
    Meta,
    /// File contents: refused for private repos and for gated repos without a grant.
    Files,
}

/// An opaque identity for a caller: `anon`, or a salted hash of its token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller(String);

impl Caller {
    /// The anonymous caller.
    pub fn anon() -> Self {
        Self("anon".into())
    }

    /// Whether this is the anonymous caller.
    pub fn is_anon(&self) -> bool {
        self.0 == "anon"
    }

    /// The short identity used in keys and logs.
    pub fn id(&self) -> &str {
        &self.0
    }

    /// The caller of an id [`Caller::id`] gave (a Xet session restored from the index).
    pub(crate) fn from_id(id: String) -> Self {
        Self(id)
    }
}

#[derive(Clone)]
enum Answer {
    Allow,
    Deny(ServiceError),
}

/// Most access answers kept in memory.
const MAX_ANSWERS: usize = 100_000;

type AnswerMap = HashMap<(String, Scope, Caller), (Answer, Instant)>;

/// Remembered access answers.
pub struct AccessCache {
    salt: [u8; 16],
    ttl: Duration,
    answers: Mutex<AnswerMap>,
}

/// What the cache knows for a caller.
pub enum Known {
    /// Allowed (fresh answer, or the repo is public).
    Allowed,
    /// Refused, with the Hub's error.
    Denied(ServiceError),
    /// Nothing fresh: ask the Hub.
    Unknown,
}

impl AccessCache {
    /// A cache whose answers stay fresh for `ttl`; caller ids are hashed with `salt`.
    pub fn new(ttl: Duration, salt: [u8; 16]) -> Self {
        Self {
            salt,
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The caller identity for an `Authorization` header value.
    pub fn caller(&self, auth: Option<&HeaderValue>) -> Caller {
        match auth {
            None => Caller::anon(),
            Some(v) => {
                let mut h = Sha256::new();
                h.update(self.salt);
                h.update(v.as_bytes());
                Caller(hex::encode(&h.finalize()[..16]))
            }
        }
    }

    /// Looks up a fresh answer; a public repo (anonymous allow) admits everyone.
    pub fn check(&self, repo: &str, scope: Scope, caller: &Caller) -> Known {
        let m = self.answers.lock().expect("access cache lock");
        let fresh = |c: &Caller| {
            m.get(&(repo.to_string(), scope, c.clone()))
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(a, _)| a.clone())
        };
        if let Some(Answer::Allow) = fresh(&Caller::anon()) {
            return Known::Allowed;
        }
        match fresh(caller) {
            Some(Answer::Allow) => Known::Allowed,
            Some(Answer::Deny(e)) => Known::Denied(e),
            None => Known::Unknown,
        }
    }

    /// Whether the repo was ever seen public (at any age): used when the upstream is down.
    pub fn was_public(&self, repo: &str, scope: Scope) -> bool {
        let m = self.answers.lock().expect("access cache lock");
        matches!(
            m.get(&(repo.to_string(), scope, Caller::anon())),
            Some((Answer::Allow, _))
        )
    }

    /// Keeps the table bounded whatever callers send: expired answers go first, and if every
    /// answer is fresh, all of them (forgetting only costs a new question to the Hub).
    fn bound(&self, m: &mut AnswerMap) {
        if m.len() > MAX_ANSWERS {
            let ttl = self.ttl;
            m.retain(|_, (_, at)| at.elapsed() < ttl);
            if m.len() > MAX_ANSWERS {
                m.clear();
            }
        }
    }

    /// Records that the Hub allowed `caller`. A file allow also implies metadata access.
    pub fn allow(&self, repo: &str, scope: Scope, caller: &Caller) {
        let mut m = self.answers.lock().expect("access cache lock");
        m.insert(
            (repo.to_string(), scope, caller.clone()),
            (Answer::Allow, Instant::now()),
        );
        if scope == Scope::Files {
            m.insert(
                (repo.to_string(), Scope::Meta, caller.clone()),
                (Answer::Allow, Instant::now()),
            );
        }
        self.bound(&mut m);
    }

    /// Records that the Hub refused `caller`, with the error to repeat. A metadata refusal also
    /// refuses the files. Replacing an anonymous allow ends the repo's public status (in memory).
    pub fn deny(&self, repo: &str, scope: Scope, caller: &Caller, err: ServiceError) {
        let mut m = self.answers.lock().expect("access cache lock");
        if scope == Scope::Meta {
            m.insert(
                (repo.to_string(), Scope::Files, caller.clone()),
                (Answer::Deny(err.clone()), Instant::now()),
            );
        }
        m.insert(
            (repo.to_string(), scope, caller.clone()),
            (Answer::Deny(err), Instant::now()),
        );
        self.bound(&mut m);
    }
}

/// The fail-closed access gate: remembered answers ([`AccessCache`]), their persisted form (a
/// token's grant as its salted hash, public marks) for offline mode and stale-if-error, and the
/// probe that asks the Hub with the caller's own token.
pub struct AccessGate {
    cache: AccessCache,
    db: Meta,
    upstream: Upstream,
    policy: Policy,
    check_flight: Flight<Result<(), ServiceError>>,
}

impl AccessGate {
    /// A gate over `db` (whose salt hashes caller ids) asking `upstream`.
    pub(crate) fn open(db: Meta, upstream: Upstream, policy: Policy) -> Result<Self, String> {
        let ttl = Duration::from_secs(policy.ttl());
        Ok(Self {
            cache: AccessCache::new(ttl, salt(db.raw())?),
            db,
            upstream,
            policy,
            check_flight: Flight::default(),
        })
    }

    /// The caller identity for an `Authorization` header value.
    pub fn caller(&self, auth: Option<&HeaderValue>) -> Caller {
        self.cache.caller(auth)
    }

    /// A fresh remembered answer.
    pub fn known(&self, repo_key: &str, scope: Scope, caller: &Caller) -> Known {
        self.cache.check(repo_key, scope, caller)
    }

    /// Whether the Hub ever served this scope of the repo to an anonymous caller. Per scope: a
    /// gated repo's metadata is public but its files are not.
    pub(crate) async fn is_public_persisted(&self, repo_key: &str, scope: Scope) -> bool {
        self.db.has(public_key(repo_key, scope)).await
    }

    /// The Hub allowed `caller`: remember it (in memory for the TTL; a token's grant also on disk
    /// as its salted hash, for offline mode; an anonymous allow marks the repo public).
    pub(crate) async fn granted(&self, repo_key: &str, scope: Scope, caller: &Caller) {
        self.cache.allow(repo_key, scope, caller);
        if caller.is_anon() {
            self.mark_public(repo_key, scope).await;
            if scope == Scope::Files {
                self.mark_public(repo_key, Scope::Meta).await;
            }
        } else {
            self.put_mark(grant_key(repo_key, scope, caller)).await;
        }
    }

    /// The Hub refused `caller` (see [`is_refusal`](crate::common::is_refusal)): remember it and
    /// forget any offline grant. An anonymous refusal means the repo is no longer public in that
    /// scope (a refused metadata scope also closes its files): the in-memory and persisted public
    /// marks go, so neither stale-if-error nor offline mode reopens it. Every place that sees a
    /// refusal calls this.
    pub(crate) async fn refused(
        &self,
        repo_key: &str,
        scope: Scope,
        caller: &Caller,
        err: ServiceError,
    ) {
        self.cache.deny(repo_key, scope, caller, err);
        let keys: Vec<String> = if caller.is_anon() {
            let scopes: &[Scope] = match scope {
                Scope::Meta => &[Scope::Meta, Scope::Files],
                Scope::Files => &[Scope::Files],
            };
            scopes.iter().map(|s| public_key(repo_key, *s)).collect()
        } else {
            vec![grant_key(repo_key, scope, caller)]
        };
        let res = self
            .db
            .run(move |db| {
                for k in keys {
                    if db.get_json::<u64>(&k)?.is_some() {
                        db.delete(&k)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(repo = repo_key, error = ?e, "could not forget an access mark");
        }
    }

    /// Whether a token's grant for this scope (a file grant also covers metadata) is persisted.
    pub(crate) async fn has_grant(&self, repo_key: &str, scope: Scope, caller: &Caller) -> bool {
        if caller.is_anon() {
            return false;
        }
        let k = grant_key(repo_key, scope, caller);
        let files = (scope == Scope::Meta).then(|| grant_key(repo_key, Scope::Files, caller));
        self.db
            .run(move |db| {
                Ok(db.get_json::<u64>(&k)?.is_some()
                    || match &files {
                        Some(f) => db.get_json::<u64>(f)?.is_some(),
                        None => false,
                    })
            })
            .await
            .unwrap_or(false)
    }

    async fn mark_public(&self, repo_key: &str, scope: Scope) {
        self.put_mark(public_key(repo_key, scope)).await;
    }

    /// Persists a grant or public mark (the time it was first seen) unless it exists already.
    async fn put_mark(&self, k: String) {
        let _ = self
            .db
            .run(move |db| {
                if db.get_json::<u64>(&k)?.is_none() {
                    db.put_json(&k, &now())?;
                }
                Ok(())
            })
            .await;
    }

    /// Whether cached data of this scope may be served while the upstream cannot be asked: the
    /// repo was seen public, or the Hub confirmed this caller within the TTL.
    pub(crate) async fn may_serve_without_upstream(
        &self,
        repo_key: &str,
        scope: Scope,
        caller: &Caller,
    ) -> bool {
        self.cache.was_public(repo_key, scope)
            || self.is_public_persisted(repo_key, scope).await
            || matches!(self.cache.check(repo_key, scope, caller), Known::Allowed)
    }

    /// Offline: admitted only on a persisted public mark or grant.
    pub(crate) async fn check_offline(
        &self,
        repo_key: &str,
        scope: Scope,
        caller: &Caller,
    ) -> Result<(), ServiceError> {
        if self.is_public_persisted(repo_key, scope).await
            || self.has_grant(repo_key, scope, caller).await
        {
            Ok(())
        } else {
            Err(ServiceError::new(
                ErrorKind::Unauthorized,
                Origin::Client,
                HubCode::GatedRepo,
                "offline: access to this repository cannot be confirmed",
            ))
        }
    }

    /// The fail-closed gate for cached content: allowed when the repo is public or the Hub
    /// confirmed this caller within the TTL; otherwise asks the Hub with the caller's own token.
    pub async fn check(
        self: &Arc<Self>,
        repo: &RepoRef,
        scope: Scope,
        caller: &Caller,
        auth: Option<&HeaderValue>,
        file: Option<(&str, &RepoPath)>,
    ) -> Result<(), ServiceError> {
        let repo_key = repo.key();
        match self.cache.check(&repo_key, scope, caller) {
            Known::Allowed => return Ok(()),
            Known::Denied(e) => return Err(e),
            Known::Unknown => {}
        }
        if self.policy.offline() {
            return self.check_offline(&repo_key, scope, caller).await;
        }
        let probe_route = match (scope, file) {
            // A bucket: its info, or the file's resolve (no revision).
            (Scope::Files, Some((_, path))) if repo.kind == olah_types::RepoType::Bucket => {
                Route::BucketResolve {
                    bucket: repo.clone(),
                    path: path.clone(),
                }
            }
            _ if repo.kind == olah_types::RepoType::Bucket => Route::BucketInfo {
                bucket: repo.clone(),
            },
            (Scope::Files, Some((commit, path))) => Route::Resolve {
                repo: repo.clone(),
                revision: Revision::new(commit)
                    .map_err(|e| ServiceError::internal(e.to_string()))?,
                path: path.clone(),
            },
            _ => Route::RepoInfo { repo: repo.clone() },
        };
        // A hand-built route whose URL would read back as another repo (e.g. the info of a
        // repo named `x/refs`) must never be used to decide access: fail closed.
        if !probe_route.is_canonical() {
            return Err(ServiceError::bad_request(
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
                    let e = ServiceError::relayed(status, resp.headers(), Bytes::new());
                    me.refused(&repo_key2, scope, &caller2, e.clone()).await;
                    return Err(e);
                }
                if !status.is_redirection() {
                    return Err(ServiceError::relayed(status, resp.headers(), Bytes::new()));
                }
                // Only a final 2xx grants: follow the Hub's redirect (the LFS CDN URL of a
                // resolve) to an allowed host, without any credential.
                let loc = header_str(resp.headers(), header::LOCATION)
                    .filter(|l| me.upstream.allows_url(l))
                    .ok_or_else(|| {
                        ServiceError::bad_upstream(
                            "access probe redirected without an allowed Location",
                        )
                    })?;
                let next = me.upstream.head_absolute(&loc).await?;
                if next.status().is_success() {
                    me.granted(&repo_key2, scope, &caller2).await;
                    Ok(())
                } else {
                    Err(ServiceError::bad_upstream(format!(
                        "access probe redirect answered {}",
                        next.status()
                    )))
                }
            })
            .await;
        match res {
            Err(e)
                if matches!(e.kind, ErrorKind::Unavailable { .. })
                    && self
                        .may_serve_without_upstream(&repo_key, scope, caller)
                        .await =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

fn public_key(repo_key: &str, scope: Scope) -> String {
    format!("public|{scope:?}|{repo_key}")
}

/// Database key of a persisted grant: the caller id is a salted hash, never the token.
fn grant_key(repo_key: &str, scope: Scope, caller: &Caller) -> String {
    format!("grant|{repo_key}|{scope:?}|{}", caller.id())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_repos_admit_everyone_and_grants_are_per_caller() {
        let c = AccessCache::new(Duration::from_secs(60), [1; 16]);
        let a = c.caller(Some(&HeaderValue::from_static("Bearer hf_a")));
        let b = c.caller(Some(&HeaderValue::from_static("Bearer hf_b")));
        assert_ne!(a, b);
        assert!(!a.id().contains("hf_a"));
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &a),
            Known::Unknown
        ));
        c.allow("models/x/y", Scope::Files, &a);
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &a),
            Known::Allowed
        ));
        assert!(matches!(
            c.check("models/x/y", Scope::Meta, &a),
            Known::Allowed
        ));
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &b),
            Known::Unknown
        ));
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &Caller::anon()),
            Known::Unknown
        ));
        c.allow("models/x/y", Scope::Files, &Caller::anon());
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &b),
            Known::Allowed
        ));
    }

    #[test]
    fn answers_expire() {
        let c = AccessCache::new(Duration::from_millis(0), [1; 16]);
        let a = c.caller(Some(&HeaderValue::from_static("Bearer hf_a")));
        c.allow("models/x/y", Scope::Files, &a);
        assert!(matches!(
            c.check("models/x/y", Scope::Files, &a),
            Known::Unknown
        ));
    }
}
