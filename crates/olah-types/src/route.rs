//! Repository identities and THE URL route parser of the mirror.
//!
//! Every request path is interpreted here and nowhere else. Segments are percent-decoded one by
//! one (so `refs%2Fpr%2F1` stays a single revision), every identity is validated, and upstream
//! paths are rebuilt from the parsed values ([`Route::upstream_path`]) — client text never reaches
//! the upstream or the disk verbatim.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Kind of Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoType {
    /// Models: no URL prefix.
    Model,
    /// Datasets: `datasets/`.
    Dataset,
    /// Spaces: `spaces/`.
    Space,
    /// Kernels: `kernels/`.
    Kernel,
}

impl RepoType {
    /// Prefix in file URLs: `""`, `"datasets/"`, `"spaces/"`, `"kernels/"`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            Self::Model => "",
            Self::Dataset => "datasets/",
            Self::Space => "spaces/",
            Self::Kernel => "kernels/",
        }
    }

    /// Plural used in API URLs.
    pub fn api_plural(self) -> &'static str {
        match self {
            Self::Model => "models",
            Self::Dataset => "datasets",
            Self::Space => "spaces",
            Self::Kernel => "kernels",
        }
    }

    /// Parses an API plural.
    pub fn from_api_plural(s: &str) -> Option<Self> {
        Some(match s {
            "models" => Self::Model,
            "datasets" => Self::Dataset,
            "spaces" => Self::Space,
            "kernels" => Self::Kernel,
            _ => return None,
        })
    }

    /// Parses a singular name (`model`, `dataset`, `space`, `kernel`).
    pub fn from_singular(s: &str) -> Option<Self> {
        Some(match s {
            "model" => Self::Model,
            "dataset" => Self::Dataset,
            "space" => Self::Space,
            "kernel" => Self::Kernel,
            _ => return None,
        })
    }
}

/// Why a path could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route has this shape.
    #[error("no such route")]
    NotFound,
    /// The shape matches but a component is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
}

fn bad(msg: impl Into<String>) -> RouteError {
    RouteError::BadRequest(msg.into())
}

/// A validated repo id: `ns/name` or a legacy one-segment `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId(String);

fn valid_id_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with(['.', '-'])
        && !s.ends_with(['.', '-'])
        && !s.contains("--")
        && !s.contains("..")
}

impl RepoId {
    /// Validates `ns/name` or `name`.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 2 || !parts.iter().all(|p| valid_id_segment(p)) {
            return Err(bad(format!("invalid repo id {s:?}")));
        }
        Ok(Self(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('/').map(|(n, _)| n)
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map(|(_, n)| n).unwrap_or(&self.0)
    }
}

/// A repository: kind and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoRef {
    /// Kind.
    pub kind: RepoType,
    /// Id.
    pub id: RepoId,
}

impl RepoRef {
    /// Stable key `"{plural}/{id}"`, e.g. `models/acme/tiny`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.api_plural(), self.id.as_str())
    }
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A decoded revision: branch, tag, commit sha, `refs/pr/1`, `refs/convert/parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Revision(String);

impl Revision {
    /// Validates a decoded revision.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        if s.is_empty()
            || s.len() > 256
            || s.starts_with('/')
            || s.chars().any(|c| c.is_control() || c == '\\')
            || s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad(format!("invalid revision {s:?}")));
        }
        Ok(Self(s.to_string()))
    }

    /// The revision as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Exactly 40 lowercase hex digits.
    pub fn is_commit_sha(&self) -> bool {
        self.0.len() == 40
            && self
                .0
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// A validated relative file path inside a repo: `/`-separated, no empty, `.` or `..`
/// components, no control characters or backslashes. Joined to a directory it stays inside.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

impl RepoPath {
    /// Validates a decoded path.
    pub fn new(s: &str) -> Result<Self, RouteError> {
        if s.is_empty()
            || s.len() > 1024
            || s.starts_with('/')
            || s.chars().any(|c| c.is_control() || c == '\\')
            || s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad(format!("invalid file path {s:?}")));
        }
        Ok(Self(s.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{prefix}{repo}/resolve/{rev}/{path}`
    Resolve {
        repo: RepoRef,
        revision: Revision,
        path: RepoPath,
    },
    /// `/api/{t}s/{repo}`
    RepoInfo { repo: RepoRef },
    /// `/api/{t}s/{repo}/revision/{rev}`
    RevisionInfo { repo: RepoRef, revision: Revision },
    /// `/api/{t}s/{repo}/tree/{rev}[/{path}]`
    Tree {
        repo: RepoRef,
        revision: Revision,
        path: Option<RepoPath>,
    },
    /// `/api/{t}s/{repo}/paths-info/{rev}`
    PathsInfo { repo: RepoRef, revision: Revision },
    /// `/api/{t}s/{repo}/refs`
    Refs { repo: RepoRef },
    /// `/api/{t}s/{repo}/commits/{rev}`
    Commits { repo: RepoRef, revision: Revision },
    /// `/api/{t}s/{repo}/xet-read-token/{rev}`
    XetReadToken { repo: RepoRef, revision: Revision },
    /// `/api/whoami-v2`
    Whoami,
    /// `/health` (the mirror's own)
    Health,
}

const KEYWORDS: &[&str] = &[
    "revision",
    "tree",
    "paths-info",
    "refs",
    "commits",
    "xet-read-token",
];

fn decode(seg: &str) -> Result<String, RouteError> {
    percent_decode_str(seg)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| bad("path is not valid UTF-8"))
}

/// Parses a raw (percent-encoded, query-less) request path.
pub fn parse_route(raw_path: &str) -> Result<Route, RouteError> {
    let raw = raw_path.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if raw.len() > 4096 {
        return Err(bad("path too long"));
    }
    let segs: Vec<String> = raw.split('/').map(decode).collect::<Result<_, _>>()?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["health"] => Ok(Route::Health),
        ["api", "whoami-v2"] => Ok(Route::Whoami),
        ["api", plural, rest @ ..] => {
            let kind = RepoType::from_api_plural(plural).ok_or(RouteError::NotFound)?;
            parse_api(kind, rest)
        }
        _ => parse_resolve(&s),
    }
}

fn parse_resolve(s: &[&str]) -> Result<Route, RouteError> {
    let (kind, rest) = match s.first().copied() {
        Some("datasets") => (RepoType::Dataset, &s[1..]),
        Some("spaces") => (RepoType::Space, &s[1..]),
        Some("kernels") => (RepoType::Kernel, &s[1..]),
        Some("models") => (RepoType::Model, &s[1..]),
        _ => (RepoType::Model, s),
    };
    let (id_len, _) = if rest.len() >= 5 && rest[2] == "resolve" {
        (2, ())
    } else if rest.len() >= 4 && rest[1] == "resolve" {
        (1, ())
    } else {
        return Err(RouteError::NotFound);
    };
    let id = RepoId::new(&rest[..id_len].join("/"))?;
    let revision = Revision::new(rest[id_len + 1])?;
    let path = RepoPath::new(&rest[id_len + 2..].join("/"))?;
    Ok(Route::Resolve {
        repo: RepoRef { kind, id },
        revision,
        path,
    })
}

fn parse_api(kind: RepoType, rest: &[&str]) -> Result<Route, RouteError> {
    // Two-segment repo ids first; legacy one-segment ids second.
    let two = (rest.len() >= 2)
        .then(|| api_tail(kind, &rest[..2], &rest[2..]))
        .flatten();
    let one = (!rest.is_empty())
        .then(|| api_tail(kind, &rest[..1], &rest[1..]))
        .flatten();
    // `/api/models/gpt2/refs`: a legacy repo's refs, not the info of a repo named `gpt2/refs`.
    let prefer_one = rest.len() == 2 && KEYWORDS.contains(&rest[1]);
    let pick = if prefer_one { one.or(two) } else { two.or(one) };
    pick.unwrap_or(Err(RouteError::NotFound))
}

/// Interprets the segments after a repo id. `None` = shape does not match.
fn api_tail(kind: RepoType, id: &[&str], tail: &[&str]) -> Option<Result<Route, RouteError>> {
    let repo = || RepoId::new(&id.join("/")).map(|id| RepoRef { kind, id });
    let rev = |r: &str| Revision::new(r);
    let build = |f: &dyn Fn(RepoRef) -> Result<Route, RouteError>| Some(repo().and_then(f));
    match tail {
        [] => build(&|repo| Ok(Route::RepoInfo { repo })),
        ["refs"] => build(&|repo| Ok(Route::Refs { repo })),
        ["revision", r] => build(&|repo| {
            Ok(Route::RevisionInfo {
                repo,
                revision: rev(r)?,
            })
        }),
        ["paths-info", r] => build(&|repo| {
            Ok(Route::PathsInfo {
                repo,
                revision: rev(r)?,
            })
        }),
        ["commits", r] => build(&|repo| {
            Ok(Route::Commits {
                repo,
                revision: rev(r)?,
            })
        }),
        ["xet-read-token", r] => build(&|repo| {
            Ok(Route::XetReadToken {
                repo,
                revision: rev(r)?,
            })
        }),
        ["tree", r, path @ ..] => build(&|repo| {
            let joined = path.join("/");
            let joined = joined.trim_end_matches('/');
            let path = if joined.is_empty() {
                None
            } else {
                Some(RepoPath::new(joined)?)
            };
            Ok(Route::Tree {
                repo,
                revision: rev(r)?,
                path,
            })
        }),
        _ => None,
    }
}

/// Everything but unreserved characters is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn enc_path(p: &str) -> String {
    p.split('/').map(enc).collect::<Vec<_>>().join("/")
}

impl Route {
    /// Canonical percent-encoded upstream path (no host, no query).
    pub fn upstream_path(&self) -> String {
        let api = |repo: &RepoRef, tail: &str| {
            format!(
                "/api/{}/{}{}",
                repo.kind.api_plural(),
                enc_path(repo.id.as_str()),
                tail
            )
        };
        match self {
            Route::Resolve {
                repo,
                revision,
                path,
            } => format!(
                "/{}{}/resolve/{}/{}",
                repo.kind.url_prefix(),
                enc_path(repo.id.as_str()),
                enc(revision.as_str()),
                enc_path(path.as_str())
            ),
            Route::RepoInfo { repo } => api(repo, ""),
            Route::RevisionInfo { repo, revision } => {
                api(repo, &format!("/revision/{}", enc(revision.as_str())))
            }
            Route::Tree {
                repo,
                revision,
                path,
            } => api(
                repo,
                &match path {
                    Some(p) => format!("/tree/{}/{}", enc(revision.as_str()), enc(p.as_str())),
                    None => format!("/tree/{}", enc(revision.as_str())),
                },
            ),
            Route::PathsInfo { repo, revision } => {
                api(repo, &format!("/paths-info/{}", enc(revision.as_str())))
            }
            Route::Refs { repo } => api(repo, "/refs"),
            Route::Commits { repo, revision } => {
                api(repo, &format!("/commits/{}", enc(revision.as_str())))
            }
            Route::XetReadToken { repo, revision } => {
                api(repo, &format!("/xet-read-token/{}", enc(revision.as_str())))
            }
            Route::Whoami => "/api/whoami-v2".into(),
            Route::Health => "/health".into(),
        }
    }

    /// The repository, for repo routes.
    pub fn repo(&self) -> Option<&RepoRef> {
        match self {
            Route::Resolve { repo, .. }
            | Route::RepoInfo { repo }
            | Route::RevisionInfo { repo, .. }
            | Route::Tree { repo, .. }
            | Route::PathsInfo { repo, .. }
            | Route::Refs { repo }
            | Route::Commits { repo, .. }
            | Route::XetReadToken { repo, .. } => Some(repo),
            Route::Whoami | Route::Health => None,
        }
    }

    /// The revision, for routes that carry one.
    pub fn revision(&self) -> Option<&Revision> {
        match self {
            Route::Resolve { revision, .. }
            | Route::RevisionInfo { revision, .. }
            | Route::Tree { revision, .. }
            | Route::PathsInfo { revision, .. }
            | Route::Commits { revision, .. }
            | Route::XetReadToken { revision, .. } => Some(revision),
            _ => None,
        }
    }
}
