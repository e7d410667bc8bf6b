//! The token route and the upstream CAS token: the caller's access is confirmed upstream
//! (fail closed), then the mirror issues its own token bound to the repo and caller.

use std::sync::Arc;

use http::{HeaderValue, Method};
use olah_types::{RepoRef, Revision, Route};
use olah_upstream::{CasToken, HubRequest};

use super::*;
use crate::access::{Known, Scope};
use crate::common::{TOKEN_ANSWER_LIMIT, cache_write_failed, is_refusal, now};

impl XetMirror {
    /// Before an answer advertises Xet for `repo` (a Xet file's resolve headers, a listing with
    /// `xetHash`): makes sure the mirror knows where the upstream's CAS lives, asking the token
    /// route for `rev` with the caller's credentials when that verdict is due (at most every
    /// [`CAS_VERDICT_TTL`] while it holds). A CAS outside the allow list turns Xet off, so the
    /// answer sends clients to plain HTTP instead of to a CAS the mirror cannot reach.
    pub async fn check_cas(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &str,
        auth: Option<&HeaderValue>,
    ) {
        if self.policy.offline() || !self.configured(repo) || !self.state.cas_due() {
            return;
        }
        let session = Session::new(repo, rev, auth, self.gate.caller(auth), u64::MAX);
        if let Err(e) = self.upstream_cas_token(&session).await {
            tracing::debug!(error = ?e, "asking the upstream token route where its CAS lives failed");
        }
    }

    /// [`Mirror::xet_check_cas`] for an API answer that names Xet files (tree, paths-info) before
    /// it is rendered, at the answer's revision.
    pub async fn check_listing(
        self: &Arc<Self>,
        route: &Route,
        body: &str,
        auth: Option<&HeaderValue>,
    ) {
        // Cheap checks first: the body is scanned only when a verdict is due.
        if let (Some(repo), Some(rev)) = (route.repo(), route.revision())
            && !self.policy.offline()
            && self.state.cas_due()
            && body.contains("xetHash")
        {
            self.check_cas(repo, rev.as_str(), auth).await;
        }
    }

    /// The token route: confirms the caller's access to the repo's files (fail closed), then
    /// issues a mirror token. Returns (token, expiry).
    pub async fn token(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &Revision,
        auth: Option<&HeaderValue>,
    ) -> Result<(String, u64), ServiceError> {
        self.token_at(repo, rev.as_str(), auth).await
    }

    /// [`XetMirror::token`] of a Storage Bucket (no revision: its token route has none).
    pub async fn bucket_token(
        self: &Arc<Self>,
        bucket: &RepoRef,
        auth: Option<&HeaderValue>,
    ) -> Result<(String, u64), ServiceError> {
        if bucket.kind != olah_types::RepoType::Bucket {
            return Err(ServiceError::internal("a bucket token for a repository"));
        }
        self.token_at(bucket, "", auth).await
    }

    /// The token route for a repo at `rev`, or a bucket (`rev` empty).
    async fn token_at(
        self: &Arc<Self>,
        repo: &RepoRef,
        rev: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<(String, u64), ServiceError> {
        if !self.serves(repo) {
            return Err(disabled());
        }
        let caller = self.gate.caller(auth);
        let repo_key = repo.key();
        let session = Session::new(repo, rev, auth, caller.clone(), now() + TOKEN_TTL);
        match self.gate.known(&repo_key, Scope::Files, &caller) {
            Known::Allowed if !self.policy.offline() && self.state.cas_due() => {
                // Where the upstream CAS lives is due to be confirmed: a CAS outside the allow
                // list must turn this token route off rather than lead the client to a CAS the
                // mirror cannot reach.
                if let Err(e) = self.upstream_cas_token(&session).await
                    && self.state.cas_foreign()
                {
                    return Err(e);
                }
            }
            Known::Allowed => {}
            Known::Denied(e) => return Err(e),
            Known::Unknown if self.policy.offline() => {
                self.gate
                    .check_offline(&repo_key, Scope::Files, &caller)
                    .await?;
            }
            Known::Unknown => match self.upstream_cas_token(&session).await {
                Ok(_) => {}
                Err(e)
                    if e.is_outage()
                        && self
                            .gate
                            .may_serve_without_upstream(&repo_key, Scope::Files, &caller)
                            .await => {}
                Err(e) => return Err(e),
            },
        }
        // The same caller asking again for the same repo and revision gets the token it holds
        // while that has 10 minutes left: one session per (repo, revision, caller), not per call.
        let again = session.cas_token_key();
        if let Some((tok, exp)) = self.state.issued.get(&again)
            && exp > now() + 600
        {
            return Ok((tok, exp));
        }
        let token = format!("olx_{}", hex::encode(rand::random::<[u8; 24]>()));
        let exp = session.exp;
        let id = SessionId::of_token(token.as_bytes());
        // In the index (shared by every node, kept across restarts): the token's hash and who it
        // is for, never the token or the caller's credentials.
        let record = serde_json::to_vec(&session.record())
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        if let Err(e) = self
            .db
            .run(move |db| db.put_session(&id, &record, exp.saturating_mul(1000)))
            .await
        {
            // This process still knows the session; other nodes and a restart will not.
            cache_write_failed(&e);
        }
        self.state.sessions.insert(id, Arc::new(session));
        self.state.issued.insert(again, (token.clone(), exp));
        Ok((token, exp))
    }

    /// The live session of a mirror-issued token: this process's own, else the index's (restored
    /// without the caller's credentials). `None` when unknown or expired.
    pub(super) async fn session(&self, token: &str) -> Option<Arc<Session>> {
        let id = SessionId::of_token(token.as_bytes());
        if let Some(s) = self.state.sessions.get(&id) {
            return (s.exp > now()).then_some(s);
        }
        let raw = self.db.run(move |db| db.session(&id)).await.ok()??;
        let s = serde_json::from_slice::<SessionRecord>(&raw)
            .ok()
            .and_then(Session::restored)
            .filter(|s| s.exp > now())?;
        let s = Arc::new(s);
        self.state.sessions.insert(id, s.clone());
        Some(s)
    }

    /// An upstream CAS token for the session's repo and caller (cached until a minute before it
    /// expires). Asking for it is also the upstream's verdict on the caller's access.
    pub(super) async fn upstream_cas_token(
        self: &Arc<Self>,
        s: &Session,
    ) -> Result<CasToken, ServiceError> {
        let key = s.cas_token_key();
        if let Some(t) = self.state.up_tokens.get(&key)
            && t.exp > now() + 60
        {
            if self.state.cas_due() {
                // Its CAS URL was on the allow list when it was issued.
                self.state.cas_answer(None);
            }
            return Ok(t);
        }
        if s.creds_lost {
            // A session from the index: the caller's credentials were never written, so the
            // upstream cannot be asked on its behalf. A 401 makes the client fetch a new token
            // through the token route (with its credentials), as for an expired one.
            return Err(unauthorized(
                "this Xet token must be refreshed through the token route",
            ));
        }
        // Scope-agnostic: a bucket's token route has no revision.
        let route = match s.repo.kind {
            olah_types::RepoType::Bucket => Route::BucketXetReadToken {
                bucket: s.repo.clone(),
            },
            _ => Route::XetReadToken {
                repo: s.repo.clone(),
                revision: Revision::new(&s.rev)
                    .map_err(|e| ServiceError::internal(e.to_string()))?,
            },
        };
        if !route.is_canonical() {
            return Err(ServiceError::bad_request(
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
            .inspect_err(|_| self.state.cas_unanswered())?;
        let (status, h) = (resp.status(), resp.headers().clone());
        let body = resp
            .read_limited(TOKEN_ANSWER_LIMIT)
            .await
            .map_err(ServiceError::from)
            .inspect_err(|_| self.state.cas_unanswered())?;
        let repo_key = s.repo.key();
        if !status.is_success() {
            self.state.cas_unanswered();
            let e = ServiceError::relayed(status, &h, body);
            if is_refusal(status, &h) {
                self.gate
                    .refused(&repo_key, Scope::Files, &s.caller, e.clone())
                    .await;
            }
            return Err(e);
        }
        let Some(tok) = CasToken::from_answer(&h, &body) else {
            self.state.cas_unanswered();
            return Err(ServiceError::bad_upstream(
                "Xet token answer without a token",
            ));
        };
        // The upstream gave this caller a token: access confirmed, whatever its CAS.
        self.gate.granted(&repo_key, Scope::Files, &s.caller).await;
        if !self.upstream.allows_url(&tok.cas_url) {
            self.state.cas_answer(Some(cas_host(&tok.cas_url)));
            return Err(foreign_cas());
        }
        self.state.cas_answer(None);
        self.state.up_tokens.insert(key, tok.clone());
        Ok(tok)
    }
}
