//! Who may read what: the fail-closed gate in front of cached content.
//!
//! Cached bytes of a gated or private repo are served to a caller only after the Hub confirmed
//! that caller's access. Answers are remembered per (repo, scope, caller) for a short TTL, where
//! the caller is `anon` or a salted sha256 of the token (the token itself is never stored or
//! logged). A repo the Hub served to an anonymous caller is public: everyone may read it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

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
}

#[derive(Clone)]
enum Answer {
    Allow,
    Deny(ApiError),
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
    Denied(ApiError),
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
    pub fn deny(&self, repo: &str, scope: Scope, caller: &Caller, err: ApiError) {
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
