//! THE URL route parser of the mirror.
//!
//! Every request path is interpreted here and nowhere else. Segments are percent-decoded one by
//! one (so `refs%2Fpr%2F1` stays a single revision), every identity is validated, and upstream
//! paths are rebuilt from the parsed values ([`Route::upstream_path`]): client text never reaches
//! the upstream or the disk verbatim.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::repo::{RepoId, RepoPath, RepoRef, RepoType, Revision};

pub use crate::error::RouteError;

fn bad(msg: &str) -> RouteError {
    RouteError::BadRequest(msg.to_string())
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{prefix}{repo}/resolve/{rev}/{path…}`: a file download.
    Resolve {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
        /// The file.
        path: RepoPath,
    },
    /// `/api/{t}s/{repo}`: repository info.
    RepoInfo {
        /// The repository.
        repo: RepoRef,
    },
    /// `/api/{t}s/{repo}/revision/{rev}`: repository info at a revision.
    RevisionInfo {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
    },
    /// `/api/{t}s/{repo}/tree/{rev}[/{path…}]`: directory listing.
    Tree {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
        /// The directory; `None` for the repository root.
        path: Option<RepoPath>,
    },
    /// `/api/{t}s/{repo}/paths-info/{rev}` (POST, paths in the form body).
    PathsInfo {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
    },
    /// `/api/{t}s/{repo}/refs`: branches, tags, converts (and PRs).
    Refs {
        /// The repository.
        repo: RepoRef,
    },
    /// `/api/{t}s/{repo}/commits/{rev}`: commit history.
    Commits {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
    },
    /// `/api/{t}s/{repo}/xet-read-token/{rev}`: Xet CAS read token.
    XetReadToken {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
    },
    /// `/cas/v{1,2}/reconstructions/{file_hash}`: the mirror's own Xet CAS (reconstruction
    /// query). Local: never sent upstream as is.
    CasReconstruction {
        /// API version, 1 or 2.
        version: u8,
        /// The Xet file hash (64 lowercase hex digits, string form).
        file: String,
    },
    /// `/cas/xorb/{xorb_hash}`: a xorb byte range, authorised by the URL's own signature. Local.
    CasXorb {
        /// The xorb hash (64 lowercase hex digits, string form).
        xorb: String,
    },
    /// `/api/whoami-v2`.
    Whoami,
    /// `/health` (or `/healthz`): the mirror's own liveness route.
    Health,
    /// `/readyz`: the mirror's own readiness route (its stores can be used).
    Ready,
    /// `/`: the mirror's landing page (what it is, how to use it).
    Landing,
    /// `/metrics`: the mirror's Prometheus metrics.
    Metrics,
    /// `/admin…`: the mirror's admin page and API (loopback or admin token only).
    Admin(AdminRoute),
    // ---- library routes (PROTOCOL-2.md B) ----
    /// `/api/resolve-cache/{t}s/{repo}/{commit}/{path…}`: where the Hub redirects the resolve of
    /// a regular (non-LFS) file. Commit-addressed (the query, `etag=…`, adds nothing).
    ResolveCache {
        /// The repository.
        repo: RepoRef,
        /// The commit (a full sha).
        commit: Revision,
        /// The file.
        path: RepoPath,
    },
    /// `/{prefix}{repo}/raw/{rev}/{path…}`: the git blob of a file (an LFS file's pointer).
    Raw {
        /// The repository.
        repo: RepoRef,
        /// The requested revision.
        revision: Revision,
        /// The file.
        path: RepoPath,
    },
    /// `/api/{t}s/{repo}/safetensors-metadata[/{index…}]`: the Hub's sharded safetensors
    /// headers (at `main`).
    SafetensorsMetadata {
        /// The repository.
        repo: RepoRef,
        /// The index file; `None` for the Hub's default.
        index: Option<RepoPath>,
    },
    /// `/api/{t}s/{repo}/auth-check[/write]`: may the caller read (or write) the repo.
    AuthCheck {
        /// The repository.
        repo: RepoRef,
        /// `/write`: the write check.
        write: bool,
    },
    /// `/api/agent-harnesses`: the coding-agent environment variables huggingface_hub looks for.
    AgentHarnesses,
    // ---- Storage Buckets (PROTOCOL-2.md A): no revision anywhere; the id is always `ns/name`.
    /// `/api/buckets/{ns}/{name}`: bucket info (GET); `POST` creates and `DELETE` deletes it.
    BucketInfo {
        /// The bucket.
        bucket: RepoRef,
    },
    /// `/api/buckets/{ns}`: the buckets of a namespace (`me`: the caller's).
    BucketList {
        /// The namespace (a valid id segment; `me` included).
        namespace: String,
    },
    /// `/api/buckets/{ns}/{name}/tree[/{prefix…}]`: a listing, the prefix matched lexically
    /// upstream (one segment with `%2F`s or several segments).
    BucketTree {
        /// The bucket.
        bucket: RepoRef,
        /// The prefix; `None` for the whole bucket.
        prefix: Option<RepoPath>,
    },
    /// `/api/buckets/{ns}/{name}/paths-info` (POST, JSON body `{"paths": […]}`).
    BucketPathsInfo {
        /// The bucket.
        bucket: RepoRef,
    },
    /// `/buckets/{ns}/{name}/resolve/{path…}`: a bucket file (path as one segment with `%2F`s
    /// or several segments).
    BucketResolve {
        /// The bucket.
        bucket: RepoRef,
        /// The file.
        path: RepoPath,
    },
    /// `/api/buckets/{ns}/{name}/xet-read-token`: Xet CAS read token (no revision).
    BucketXetReadToken {
        /// The bucket.
        bucket: RepoRef,
    },
    /// `/api/buckets/{ns}/{name}/events`: the live-follow SSE feed.
    BucketEvents {
        /// The bucket.
        bucket: RepoRef,
    },
    /// A bucket write route other than create/delete (which are methods on [`Route::BucketInfo`]).
    BucketWrite {
        /// The bucket.
        bucket: RepoRef,
        /// Which one.
        op: BucketWriteOp,
    },
    /// `/api/repos/move` (repositories and buckets alike): a write route.
    RepoMove,
}

/// The bucket write routes under `/api/buckets/{ns}/{name}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketWriteOp {
    /// `batch` (POST, NDJSON add/copy/delete operations).
    Batch,
    /// `settings` (PUT).
    Settings,
    /// `xet-write-token` (GET).
    XetWriteToken,
}

impl BucketWriteOp {
    /// The route's last segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::Settings => "settings",
            Self::XetWriteToken => "xet-write-token",
        }
    }
}

/// The mirror's own admin routes. Local: never sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRoute {
    /// `/admin`: the HTML page.
    Page,
    /// `/admin/api/stats`: the page's figures as JSON.
    Stats,
    /// `/admin/api/cache/{op}`: a cache tool run by the server that holds the cache.
    Cache(CacheOp),
}

/// A cache tool (`olah-cli cache …`) as an admin API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOp {
    /// `ls`: repositories with revisions, files, size, last access.
    Ls,
    /// `verify`: re-hash complete blobs and verified xorb ranges, drop what fails.
    Verify,
    /// `rm`: drop one repository's cached files and metadata.
    Rm,
    /// `gc`: orphans, stale partial fills, metadata without data.
    Gc,
}

impl CacheOp {
    /// The operation's name in the URL and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOp::Ls => "ls",
            CacheOp::Verify => "verify",
            CacheOp::Rm => "rm",
            CacheOp::Gc => "gc",
        }
    }
}

/// Longest raw path accepted (a 1024-character path of 4-byte characters encodes to 12 KiB).
pub const MAX_RAW_PATH_LEN: usize = 16 * 1024;

/// First segments that would make a model's resolve URL read as something else (a type prefix
/// or the API); such models are written with an explicit `models/` prefix upstream.
const RESERVED_FIRST_SEGMENTS: [&str; 6] =
    ["api", "models", "datasets", "spaces", "kernels", "buckets"];

/// Percent-decodes one raw segment. Malformed escapes (`%`, `%4`, `%zz`) and decoded bytes that
/// are not UTF-8 are bad requests.
fn decode_segment(seg: &str) -> Result<Cow<'_, str>, RouteError> {
    let well_formed = seg.split('%').skip(1).all(|s| {
        s.as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return Err(bad("malformed percent-escape in path"));
    }
    percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| bad("path is not valid UTF-8"))
}

/// Parses a raw request path (as sent on the wire: percent-encoded, no query).
///
/// The path is split on `/` and each segment is percent-decoded on its own, so an encoded `%2F`
/// never splits a segment. A path of no known shape is [`RouteError::NotFound`]; a malformed one
/// or a known shape with an invalid component is [`RouteError::BadRequest`].
///
/// Tie-breaks between a two-segment id (`ns/name`) and a legacy one-segment id (`gpt2`):
/// * resolve: `/{prefix}{a}/{b}/resolve/{rev}/{path…}` (segment 2 after the optional type
///   prefix is `resolve` and a path follows) is the repo `a/b`; otherwise
///   `/{prefix}{a}/resolve/{rev}/{path…}` is the legacy `a`. The prefix is one of `models/`,
///   `datasets/`, `spaces/`, `kernels/`, and a model needs none.
/// * api: `/api/{t}s/{a}/refs` is the refs of the legacy `a` (legacy ids are real, `{ns}/refs`
///   repos are not). Otherwise the two-segment reading wins whenever what follows `{a}/{b}` has a
///   known shape (nothing, `refs`, `{revision|paths-info|commits|xet-read-token}/{rev}`,
///   `tree/{rev}[/{path…}]`), then the one-segment reading is tried.
///
/// Finally, a route is only returned if its [`Route::upstream_path`] parses back to the very same
/// route ([`Route::is_canonical`]): text that the two readings above would understand differently
/// once canonicalised (e.g. `/gpt2/resolve/resolve/a%2Fb`, whose canonical form
/// `/gpt2/resolve/resolve/a/b` names the repo `gpt2/resolve`) is a bad request, never a route
/// that means one thing to the mirror and another upstream.
pub fn parse_route(raw_path: &str) -> Result<Route, RouteError> {
    let route = parse_unchecked(raw_path)?;
    if route.is_canonical() {
        Ok(route)
    } else {
        Err(bad(
            "ambiguous path: its canonical form names another resource",
        ))
    }
}

fn parse_unchecked(raw_path: &str) -> Result<Route, RouteError> {
    let raw = raw_path.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if raw.len() > MAX_RAW_PATH_LEN {
        return Err(bad("request path too long"));
    }
    let decoded = raw
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;
    let segs: Vec<&str> = decoded.iter().map(|s| s.as_ref()).collect();
    match segs.as_slice() {
        ["health" | "healthz"] => Ok(Route::Health),
        ["readyz"] => Ok(Route::Ready),
        [""] => Ok(Route::Landing),
        ["metrics"] => Ok(Route::Metrics),
        ["admin"] => Ok(Route::Admin(AdminRoute::Page)),
        ["admin", "api", "stats"] => Ok(Route::Admin(AdminRoute::Stats)),
        ["admin", "api", "cache", op] => Ok(Route::Admin(AdminRoute::Cache(match *op {
            "ls" => CacheOp::Ls,
            "verify" => CacheOp::Verify,
            "rm" => CacheOp::Rm,
            "gc" => CacheOp::Gc,
            _ => return Err(RouteError::NotFound),
        }))),
        ["api", "whoami-v2"] => Ok(Route::Whoami),
        ["api", "agent-harnesses"] => Ok(Route::AgentHarnesses),
        ["api", "resolve-cache", plural, rest @ ..] => {
            let kind = RepoType::from_api_plural(plural).ok_or(RouteError::NotFound)?;
            parse_resolve_cache(kind, rest)
        }
        ["cas", v @ ("v1" | "v2"), "reconstructions", h] => Ok(Route::CasReconstruction {
            version: if *v == "v1" { 1 } else { 2 },
            file: xet_hash_segment(h)?,
        }),
        ["cas", "xorb", h] => Ok(Route::CasXorb {
            xorb: xet_hash_segment(h)?,
        }),
        ["api", "buckets", rest @ ..] => parse_bucket_api(rest),
        ["api", "repos", "move"] => Ok(Route::RepoMove),
        ["buckets", ns, name, "resolve", path @ ..] if !path.is_empty() => {
            Ok(Route::BucketResolve {
                bucket: bucket_ref(ns, name)?,
                path: RepoPath::new(&path.join("/"))?,
            })
        }
        ["api", plural, rest @ ..] => {
            let kind = RepoType::from_api_plural(plural).ok_or(RouteError::NotFound)?;
            parse_api(kind, rest)
        }
        s => parse_resolve(s),
    }
}

fn bucket_ref(ns: &str, name: &str) -> Result<RepoRef, RouteError> {
    Ok(RepoRef::new(
        RepoType::Bucket,
        RepoId::from_parts(Some(ns), name)?,
    ))
}

/// `/api/buckets/…` after `buckets`: a namespace list, or a bucket `ns/name` and its routes.
fn parse_bucket_api(rest: &[&str]) -> Result<Route, RouteError> {
    match rest {
        [ns] => {
            if crate::repo::is_valid_repo_id_segment(ns) {
                Ok(Route::BucketList {
                    namespace: ns.to_string(),
                })
            } else {
                Err(bad("invalid bucket namespace"))
            }
        }
        [ns, name, tail @ ..] => {
            let bucket = || bucket_ref(ns, name);
            let write = |op| {
                Ok(Route::BucketWrite {
                    bucket: bucket()?,
                    op,
                })
            };
            match tail {
                [] => Ok(Route::BucketInfo { bucket: bucket()? }),
                ["tree", prefix @ ..] => Ok(Route::BucketTree {
                    bucket: bucket()?,
                    prefix: tree_path(prefix)?,
                }),
                ["paths-info"] => Ok(Route::BucketPathsInfo { bucket: bucket()? }),
                ["xet-read-token"] => Ok(Route::BucketXetReadToken { bucket: bucket()? }),
                ["events"] => Ok(Route::BucketEvents { bucket: bucket()? }),
                ["batch"] => write(BucketWriteOp::Batch),
                ["settings"] => write(BucketWriteOp::Settings),
                ["xet-write-token"] => write(BucketWriteOp::XetWriteToken),
                _ => Err(RouteError::NotFound),
            }
        }
        [] => Err(RouteError::NotFound),
    }
}

/// A Xet hash path segment: exactly 64 hex digits, returned lowercased.
fn xet_hash_segment(h: &str) -> Result<String, RouteError> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(bad("not a Xet hash: expected 64 hex digits"))
    }
}

fn parse_resolve(s: &[&str]) -> Result<Route, RouteError> {
    let (kind, rest) = match s.split_first() {
        Some((first, rest)) => match RepoType::from_api_plural(first) {
            Some(kind) => (kind, rest),
            None => (RepoType::Model, s),
        },
        None => return Err(RouteError::NotFound),
    };
    let (ns, name, rev, path) = match rest {
        [ns, name, "resolve", rev, path @ ..] if !path.is_empty() => (Some(*ns), *name, *rev, path),
        [name, "resolve", rev, path @ ..] if !path.is_empty() => (None, *name, *rev, path),
        _ => return parse_raw(kind, rest),
    };
    let (rev, path) = unencoded_ref(rev, path);
    Ok(Route::Resolve {
        repo: RepoRef::new(kind, RepoId::from_parts(ns, name)?),
        revision: Revision::new(&rev)?,
        path: RepoPath::new(&path.join("/"))?,
    })
}

/// `/{prefix}{repo}/{resolve|raw}/{rev}/{path…}`, each part encoded; a model whose first id
/// segment reads as a type prefix or the API gets an explicit `models/`.
fn file_url(repo: &RepoRef, keyword: &str, revision: &Revision, path: &RepoPath) -> String {
    let mut out = String::from("/");
    let explicit_model =
        repo.kind == RepoType::Model && RESERVED_FIRST_SEGMENTS.contains(&repo.id.first_segment());
    out.push_str(if explicit_model {
        "models/"
    } else {
        repo.kind.url_prefix()
    });
    push_id(&mut out, &repo.id);
    out.push('/');
    out.push_str(keyword);
    out.push('/');
    push_encoded(&mut out, revision.as_str());
    for seg in path.segments() {
        out.push('/');
        push_encoded(&mut out, seg);
    }
    out
}

/// A revision written unencoded in a file URL (`resolve/refs/pr/1/config.json`, as
/// huggingface.js may send it): the Hub reads `refs/pr/{n}` and `refs/convert/{name}` as the
/// revision, so the mirror does too (else it would cache the file `pr/1/config.json` at the
/// commit of a branch named `refs`). Other revisions pass unchanged.
fn unencoded_ref<'a, 'b>(rev: &'a str, path: &'b [&'b str]) -> (Cow<'a, str>, &'b [&'b str]) {
    match (rev, path) {
        ("refs", [k @ ("pr" | "convert"), n, rest @ ..]) if !rest.is_empty() => {
            (Cow::Owned(format!("refs/{k}/{n}")), rest)
        }
        _ => (Cow::Borrowed(rev), path),
    }
}

/// `{repo}/raw/{rev}/{path…}` (after the optional type prefix), read like a resolve path.
fn parse_raw(kind: RepoType, rest: &[&str]) -> Result<Route, RouteError> {
    let (ns, name, rev, path) = match rest {
        [ns, name, "raw", rev, path @ ..] if !path.is_empty() => (Some(*ns), *name, *rev, path),
        [name, "raw", rev, path @ ..] if !path.is_empty() => (None, *name, *rev, path),
        _ => return Err(RouteError::NotFound),
    };
    let (rev, path) = unencoded_ref(rev, path);
    Ok(Route::Raw {
        repo: RepoRef::new(kind, RepoId::from_parts(ns, name)?),
        revision: Revision::new(&rev)?,
        path: RepoPath::new(&path.join("/"))?,
    })
}

/// `{repo}/{commit}/{path…}` after `/api/resolve-cache/{t}s/`: the repo id is the segments
/// before the first full commit sha (two segments when both readings have one).
fn parse_resolve_cache(kind: RepoType, rest: &[&str]) -> Result<Route, RouteError> {
    let sha = |s: &str| Revision::new(s).is_ok_and(|r| r.is_commit_sha());
    let (ns, name, commit, path) = match rest {
        [ns, name, c, path @ ..] if sha(c) && !path.is_empty() => (Some(*ns), *name, *c, path),
        [name, c, path @ ..] if sha(c) && !path.is_empty() => (None, *name, *c, path),
        _ => return Err(RouteError::NotFound),
    };
    Ok(Route::ResolveCache {
        repo: RepoRef::new(kind, RepoId::from_parts(ns, name)?),
        commit: Revision::new(commit)?,
        path: RepoPath::new(&path.join("/"))?,
    })
}

/// What follows the repo id in an API path (not yet validated).
enum Shape<'a> {
    Info,
    Refs,
    RevisionInfo(&'a str),
    PathsInfo(&'a str),
    Commits(&'a str),
    XetReadToken(&'a str),
    Tree(&'a str, &'a [&'a str]),
    /// `tree/refs/{pr|convert}/{name}[/{path…}]`: an unencoded ref (huggingface.js).
    TreeRef(&'a str, &'a str, &'a [&'a str]),
    SafetensorsMetadata(&'a [&'a str]),
    AuthCheck(bool),
}

fn shape<'a>(tail: &'a [&'a str]) -> Option<Shape<'a>> {
    Some(match *tail {
        [] => Shape::Info,
        ["refs"] => Shape::Refs,
        ["revision", r] => Shape::RevisionInfo(r),
        ["paths-info", r] => Shape::PathsInfo(r),
        ["commits", r] => Shape::Commits(r),
        ["xet-read-token", r] => Shape::XetReadToken(r),
        ["tree", "refs", k @ ("pr" | "convert"), n, ref path @ ..] => Shape::TreeRef(k, n, path),
        ["tree", r, ref path @ ..] => Shape::Tree(r, path),
        ["safetensors-metadata", ref index @ ..] => Shape::SafetensorsMetadata(index),
        ["auth-check"] => Shape::AuthCheck(false),
        ["auth-check", "write"] => Shape::AuthCheck(true),
        _ => return None,
    })
}

fn parse_api(kind: RepoType, rest: &[&str]) -> Result<Route, RouteError> {
    let two = || match rest {
        [ns, name, tail @ ..] => shape(tail).map(|s| (Some(*ns), *name, s)),
        _ => None,
    };
    let one = || match rest {
        [name, tail @ ..] => shape(tail).map(|s| (None, *name, s)),
        _ => None,
    };
    let (ns, name, shape) = match rest {
        // Tie-break: the refs of the legacy repo `a`, not the info of a repo `a/refs`.
        [name, "refs"] => (None, *name, Shape::Refs),
        _ => two().or_else(one).ok_or(RouteError::NotFound)?,
    };
    let repo = RepoRef::new(kind, RepoId::from_parts(ns, name)?);
    Ok(match shape {
        Shape::Info => Route::RepoInfo { repo },
        Shape::Refs => Route::Refs { repo },
        Shape::RevisionInfo(r) => Route::RevisionInfo {
            repo,
            revision: Revision::new(r)?,
        },
        Shape::PathsInfo(r) => Route::PathsInfo {
            repo,
            revision: Revision::new(r)?,
        },
        Shape::Commits(r) => Route::Commits {
            repo,
            revision: Revision::new(r)?,
        },
        Shape::XetReadToken(r) => Route::XetReadToken {
            repo,
            revision: Revision::new(r)?,
        },
        Shape::Tree(r, path) => Route::Tree {
            repo,
            revision: Revision::new(r)?,
            path: tree_path(path)?,
        },
        Shape::TreeRef(k, n, path) => Route::Tree {
            repo,
            revision: Revision::new(&format!("refs/{k}/{n}"))?,
            path: tree_path(path)?,
        },
        Shape::SafetensorsMetadata(index) => Route::SafetensorsMetadata {
            repo,
            index: tree_path(index)?,
        },
        Shape::AuthCheck(write) => Route::AuthCheck { repo, write },
    })
}

/// The directory of a tree listing: one segment with `%2F`s or several segments; one trailing
/// slash is tolerated (`tree/{rev}/` is the root).
fn tree_path(segs: &[&str]) -> Result<Option<RepoPath>, RouteError> {
    let segs = segs.strip_suffix(&[""]).unwrap_or(segs);
    if segs.is_empty() {
        Ok(None)
    } else {
        RepoPath::new(&segs.join("/")).map(Some)
    }
}

/// Python's `quote(s, safe="")`, as huggingface_hub uses: everything but the RFC 3986
/// unreserved characters `A-Z a-z 0-9 - . _ ~` is encoded (so `/`, space, `%`, `?`, `#`, and all
/// sub-delims too; matching the client byte for byte keeps upstream URLs canonical).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn push_encoded(out: &mut String, s: &str) {
    out.extend(utf8_percent_encode(s, COMPONENT));
}

fn push_id(out: &mut String, id: &RepoId) {
    for (i, seg) in id.segments().enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_encoded(out, seg);
    }
}

impl Route {
    /// Canonical percent-encoded upstream path (no host, no query) for this route, e.g.
    /// `/datasets/acme/data/resolve/refs%2Fconvert%2Fparquet/sub/a%20b.txt` or
    /// `/api/models/acme/tiny/tree/main/sub%2Fdir`. Upstream URLs are built from this only, so a
    /// client never chooses the upstream path text.
    ///
    /// Always starts with a single `/` followed by a non-empty segment, has no empty, `.` or `..`
    /// segment, and contains only unreserved characters, `/` and `%XX` escapes. The revision is
    /// encoded as one segment (`/` → `%2F`); a resolve path keeps its `/`s; a tree path encodes
    /// them (`%2F`) like huggingface_hub. A model whose first id segment is `api`, `models`,
    /// `datasets`, `spaces` or `kernels` gets an explicit `models/` prefix in resolve paths, so it
    /// cannot be read as another repository type.
    pub fn upstream_path(&self) -> String {
        let mut out = String::with_capacity(64);
        let (repo, keyword, revision, dir) = match self {
            Route::Health => return "/health".into(),
            Route::Ready => return "/readyz".into(),
            Route::Landing => return "/".into(),
            Route::Metrics => return "/metrics".into(),
            Route::Admin(AdminRoute::Page) => return "/admin".into(),
            Route::Admin(AdminRoute::Stats) => return "/admin/api/stats".into(),
            Route::Admin(AdminRoute::Cache(op)) => {
                return format!("/admin/api/cache/{}", op.as_str());
            }
            Route::Whoami => return "/api/whoami-v2".into(),
            Route::CasReconstruction { version, file } => {
                return format!("/cas/v{version}/reconstructions/{file}");
            }
            Route::CasXorb { xorb } => return format!("/cas/xorb/{xorb}"),
            Route::RepoMove => return "/api/repos/move".into(),
            Route::BucketList { namespace } => {
                out.push_str("/api/buckets/");
                push_encoded(&mut out, namespace);
                return out;
            }
            Route::BucketResolve { bucket, path } => {
                out.push_str("/buckets/");
                push_id(&mut out, &bucket.id);
                out.push_str("/resolve");
                for seg in path.segments() {
                    out.push('/');
                    push_encoded(&mut out, seg);
                }
                return out;
            }
            Route::AgentHarnesses => return "/api/agent-harnesses".into(),
            Route::ResolveCache { repo, commit, path } => {
                out.push_str("/api/resolve-cache/");
                out.push_str(repo.kind.api_plural());
                out.push('/');
                push_id(&mut out, &repo.id);
                out.push('/');
                push_encoded(&mut out, commit.as_str());
                for seg in path.segments() {
                    out.push('/');
                    push_encoded(&mut out, seg);
                }
                return out;
            }
            Route::BucketInfo { bucket }
            | Route::BucketTree { bucket, .. }
            | Route::BucketPathsInfo { bucket }
            | Route::BucketXetReadToken { bucket }
            | Route::BucketEvents { bucket }
            | Route::BucketWrite { bucket, .. } => {
                out.push_str("/api/buckets/");
                push_id(&mut out, &bucket.id);
                let tail = match self {
                    Route::BucketTree { .. } => Some("tree"),
                    Route::BucketPathsInfo { .. } => Some("paths-info"),
                    Route::BucketXetReadToken { .. } => Some("xet-read-token"),
                    Route::BucketEvents { .. } => Some("events"),
                    Route::BucketWrite { op, .. } => Some(op.as_str()),
                    _ => None,
                };
                if let Some(t) = tail {
                    out.push('/');
                    out.push_str(t);
                }
                if let Route::BucketTree {
                    prefix: Some(p), ..
                } = self
                {
                    out.push('/');
                    push_encoded(&mut out, p.as_str());
                }
                return out;
            }
            Route::Raw {
                repo,
                revision,
                path,
            } => return file_url(repo, "raw", revision, path),
            Route::SafetensorsMetadata { repo, index } => {
                out.push_str("/api/");
                out.push_str(repo.kind.api_plural());
                out.push('/');
                push_id(&mut out, &repo.id);
                out.push_str("/safetensors-metadata");
                // `quote(index, safe="/")`, as huggingface_hub sends it.
                for seg in index.iter().flat_map(|i| i.segments()) {
                    out.push('/');
                    push_encoded(&mut out, seg);
                }
                return out;
            }
            Route::AuthCheck { repo, write } => {
                out.push_str("/api/");
                out.push_str(repo.kind.api_plural());
                out.push('/');
                push_id(&mut out, &repo.id);
                out.push_str(if *write {
                    "/auth-check/write"
                } else {
                    "/auth-check"
                });
                return out;
            }
            Route::Resolve {
                repo,
                revision,
                path,
            } => return file_url(repo, "resolve", revision, path),
            Route::RepoInfo { repo } => (repo, None, None, None),
            Route::Refs { repo } => (repo, Some("refs"), None, None),
            Route::RevisionInfo { repo, revision } => {
                (repo, Some("revision"), Some(revision), None)
            }
            Route::PathsInfo { repo, revision } => (repo, Some("paths-info"), Some(revision), None),
            Route::Commits { repo, revision } => (repo, Some("commits"), Some(revision), None),
            Route::XetReadToken { repo, revision } => {
                (repo, Some("xet-read-token"), Some(revision), None)
            }
            Route::Tree {
                repo,
                revision,
                path,
            } => (repo, Some("tree"), Some(revision), path.as_ref()),
        };
        out.push_str("/api/");
        out.push_str(repo.kind.api_plural());
        out.push('/');
        push_id(&mut out, &repo.id);
        for part in [
            keyword,
            revision.map(Revision::as_str),
            dir.map(RepoPath::as_str),
        ]
        .into_iter()
        .flatten()
        {
            out.push('/');
            push_encoded(&mut out, part);
        }
        out
    }

    /// Whether [`Self::upstream_path`] parses back to this very route. Always true for what
    /// [`parse_route`] returns; a route built by hand can be ambiguous, e.g. `RepoInfo` of
    /// `acme/refs` (reads as the refs of `acme`), or, for a legacy id, a revision named like an
    /// API keyword (`RevisionInfo` of `gpt2` at `refs` reads as the refs of `gpt2/revision`)
    /// or a resolve at revision `resolve` of a nested path. Check this before sending such a
    /// route upstream.
    pub fn is_canonical(&self) -> bool {
        parse_unchecked(&self.upstream_path()).as_ref() == Ok(self)
    }

    /// The repository, for repository routes.
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
            Route::BucketInfo { bucket }
            | Route::BucketTree { bucket, .. }
            | Route::BucketPathsInfo { bucket }
            | Route::BucketResolve { bucket, .. }
            | Route::BucketXetReadToken { bucket }
            | Route::BucketEvents { bucket }
            | Route::BucketWrite { bucket, .. } => Some(bucket),
            Route::BucketList { .. } | Route::RepoMove => None,
            Route::ResolveCache { repo, .. }
            | Route::Raw { repo, .. }
            | Route::SafetensorsMetadata { repo, .. }
            | Route::AuthCheck { repo, .. } => Some(repo),
            Route::Whoami
            | Route::Health
            | Route::Ready
            | Route::Landing
            | Route::Metrics
            | Route::Admin(_)
            | Route::CasReconstruction { .. }
            | Route::CasXorb { .. }
            | Route::AgentHarnesses => None,
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
            Route::ResolveCache { commit, .. } => Some(commit),
            Route::Raw { revision, .. } => Some(revision),
            Route::SafetensorsMetadata { .. } | Route::AuthCheck { .. } | Route::AgentHarnesses => {
                None
            }
            Route::RepoInfo { .. }
            | Route::Refs { .. }
            | Route::Whoami
            | Route::Health
            | Route::Ready
            | Route::Landing
            | Route::Metrics
            | Route::Admin(_)
            | Route::CasReconstruction { .. }
            | Route::CasXorb { .. } => None,
            // Buckets have no revisions.
            Route::BucketInfo { .. }
            | Route::BucketList { .. }
            | Route::BucketTree { .. }
            | Route::BucketPathsInfo { .. }
            | Route::BucketResolve { .. }
            | Route::BucketXetReadToken { .. }
            | Route::BucketEvents { .. }
            | Route::BucketWrite { .. }
            | Route::RepoMove => None,
        }
    }

    /// Whether this is a Storage Bucket route (or `/api/repos/move`, a write route buckets share).
    pub fn is_bucket(&self) -> bool {
        matches!(
            self,
            Route::BucketInfo { .. }
                | Route::BucketList { .. }
                | Route::BucketTree { .. }
                | Route::BucketPathsInfo { .. }
                | Route::BucketResolve { .. }
                | Route::BucketXetReadToken { .. }
                | Route::BucketEvents { .. }
                | Route::BucketWrite { .. }
                | Route::RepoMove
        )
    }

    /// The file (resolve) or directory (tree) path, if any.
    pub fn path(&self) -> Option<&RepoPath> {
        match self {
            Route::Resolve { path, .. } => Some(path),
            Route::Tree { path, .. } => path.as_ref(),
            Route::BucketResolve { path, .. } => Some(path),
            Route::BucketTree { prefix, .. } => prefix.as_ref(),
            Route::ResolveCache { path, .. } | Route::Raw { path, .. } => Some(path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::is_valid_repo_id_segment;
    use RepoType::*;
    use proptest::prelude::*;

    fn rr(kind: RepoType, id: &str) -> RepoRef {
        RepoRef::new(kind, RepoId::new(id).unwrap())
    }
    fn rev(s: &str) -> Revision {
        Revision::new(s).unwrap()
    }
    fn rp(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }
    fn resolve(kind: RepoType, id: &str, r: &str, p: &str) -> Route {
        Route::Resolve {
            repo: rr(kind, id),
            revision: rev(r),
            path: rp(p),
        }
    }
    fn tree(kind: RepoType, id: &str, r: &str, p: Option<&str>) -> Route {
        Route::Tree {
            repo: rr(kind, id),
            revision: rev(r),
            path: p.map(rp),
        }
    }
    fn info(kind: RepoType, id: &str) -> Route {
        Route::RepoInfo { repo: rr(kind, id) }
    }
    fn refs(kind: RepoType, id: &str) -> Route {
        Route::Refs { repo: rr(kind, id) }
    }
    fn with_rev(make: fn(RepoRef, Revision) -> Route, kind: RepoType, id: &str, r: &str) -> Route {
        make(rr(kind, id), rev(r))
    }
    fn rev_info(repo: RepoRef, revision: Revision) -> Route {
        Route::RevisionInfo { repo, revision }
    }
    fn paths_info(repo: RepoRef, revision: Revision) -> Route {
        Route::PathsInfo { repo, revision }
    }
    fn commits(repo: RepoRef, revision: Revision) -> Route {
        Route::Commits { repo, revision }
    }
    fn xet(repo: RepoRef, revision: Revision) -> Route {
        Route::XetReadToken { repo, revision }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// (raw path, expected route, expected canonical upstream path; `""` = same as raw)
    #[rustfmt::skip]
    fn accepted() -> Vec<(&'static str, Route, &'static str)> {
        vec![
            ("/acme/tiny/resolve/0123456789abcdef0123456789abcdef01234567/model.bin", resolve(Model, "acme/tiny", SHA, "model.bin"), ""),
            // resolve, every type, both id forms
            ("/acme/tiny/resolve/main/config.json", resolve(Model, "acme/tiny", "main", "config.json"), ""),
            ("/gpt2/resolve/main/config.json", resolve(Model, "gpt2", "main", "config.json"), ""),
            ("/models/acme/tiny/resolve/main/config.json", resolve(Model, "acme/tiny", "main", "config.json"), "/acme/tiny/resolve/main/config.json"),
            ("/models/gpt2/resolve/main/x", resolve(Model, "gpt2", "main", "x"), "/gpt2/resolve/main/x"),
            ("/datasets/acme/data/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet", resolve(Dataset, "acme/data", "refs/convert/parquet", "default/train/0000.parquet"), ""),
            ("/datasets/squad/resolve/main/README.md", resolve(Dataset, "squad", "main", "README.md"), ""),
            ("/spaces/acme/app/resolve/main/app.py", resolve(Space, "acme/app", "main", "app.py"), ""),
            ("/spaces/app/resolve/main/app.py", resolve(Space, "app", "main", "app.py"), ""),
            ("/kernels/acme/k/resolve/v1/build.toml", resolve(Kernel, "acme/k", "v1", "build.toml"), ""),
            ("/kernels/k/resolve/v1/build.toml", resolve(Kernel, "k", "v1", "build.toml"), ""),
            // revisions with '/', nested and encoded paths
            ("/acme/tiny/resolve/refs%2Fpr%2F1/sub/dir/a%20b.txt", resolve(Model, "acme/tiny", "refs/pr/1", "sub/dir/a b.txt"), ""),
            ("/gpt2/resolve/refs%2fpr%2f1/x", resolve(Model, "gpt2", "refs/pr/1", "x"), "/gpt2/resolve/refs%2Fpr%2F1/x"),
            ("/acme/tiny/resolve/main/x%2Fy.txt", resolve(Model, "acme/tiny", "main", "x/y.txt"), "/acme/tiny/resolve/main/x/y.txt"),
            ("/acme/tiny/resolve/main/%E6%97%A5%E6%9C%AC/%F0%9F%98%80.txt", resolve(Model, "acme/tiny", "main", "日本/😀.txt"), ""),
            ("/acme/tiny/resolve/main/日本.txt", resolve(Model, "acme/tiny", "main", "日本.txt"), "/acme/tiny/resolve/main/%E6%97%A5%E6%9C%AC.txt"),
            ("/acme/tiny/resolve/main/a%3Fb%23c%25d%2Be(1)=,;.txt", resolve(Model, "acme/tiny", "main", "a?b#c%d+e(1)=,;.txt"), "/acme/tiny/resolve/main/a%3Fb%23c%25d%2Be%281%29%3D%2C%3B.txt"),
            ("/acme/tiny/resolve/v1.0/...", resolve(Model, "acme/tiny", "v1.0", "..."), ""),
            ("/acme/tiny/resolve/main/dir/C:x", resolve(Model, "acme/tiny", "main", "dir/C:x"), "/acme/tiny/resolve/main/dir/C%3Ax"),
            ("/%61cme/tiny/resolve/main/x", resolve(Model, "acme/tiny", "main", "x"), "/acme/tiny/resolve/main/x"),
            // resolve tie-breaks
            ("/acme/resolve/resolve/main/x", resolve(Model, "acme/resolve", "main", "x"), ""),
            ("/gpt2/resolve/resolve/x", resolve(Model, "gpt2", "resolve", "x"), ""),
            ("/models/datasets/x/resolve/main/f", resolve(Model, "datasets/x", "main", "f"), ""),
            ("/models/api/resolve/main/f", resolve(Model, "api", "main", "f"), ""),
            ("/health/resolve/main/f", resolve(Model, "health", "main", "f"), ""),
            // api, every type, both id forms
            ("/api/models/acme/tiny", info(Model, "acme/tiny"), ""),
            ("/api/models/gpt2", info(Model, "gpt2"), ""),
            ("/api/datasets/acme/data", info(Dataset, "acme/data"), ""),
            ("/api/spaces/acme/app", info(Space, "acme/app"), ""),
            ("/api/kernels/acme/k", info(Kernel, "acme/k"), ""),
            ("/api/models/acme/tree", info(Model, "acme/tree"), ""),
            ("/api/models/datasets/x", info(Model, "datasets/x"), ""),
            ("/api/models/gpt2/refs", refs(Model, "gpt2"), ""),
            ("/api/models/acme/tiny/refs", refs(Model, "acme/tiny"), ""),
            ("/api/datasets/acme/data/refs", refs(Dataset, "acme/data"), ""),
            ("/api/models/acme/tiny/revision/refs%2Fpr%2F1", with_rev(rev_info, Model, "acme/tiny", "refs/pr/1"), ""),
            ("/api/models/gpt2/revision/main", with_rev(rev_info, Model, "gpt2", "main"), ""),
            ("/api/spaces/acme/app/revision/v1.0", with_rev(rev_info, Space, "acme/app", "v1.0"), ""),
            ("/api/datasets/acme/data/paths-info/main", with_rev(paths_info, Dataset, "acme/data", "main"), ""),
            ("/api/models/gpt2/paths-info/main", with_rev(paths_info, Model, "gpt2", "main"), ""),
            ("/api/spaces/acme/app/commits/main", with_rev(commits, Space, "acme/app", "main"), ""),
            ("/api/models/gpt2/commits/v1.0", with_rev(commits, Model, "gpt2", "v1.0"), ""),
            ("/api/kernels/acme/k/xet-read-token/refs%2Fpr%2F2", with_rev(xet, Kernel, "acme/k", "refs/pr/2"), ""),
            ("/api/models/gpt2/xet-read-token/main", with_rev(xet, Model, "gpt2", "main"), ""),
            ("/api/models/acme/tiny/xet-read-token/0123456789abcdef0123456789abcdef01234567", with_rev(xet, Model, "acme/tiny", SHA), ""),
            // tree: root, trailing slash, %2F path, multi-segment path
            ("/api/models/acme/tiny/tree/main", tree(Model, "acme/tiny", "main", None), ""),
            ("/api/models/acme/tiny/tree/main/", tree(Model, "acme/tiny", "main", None), "/api/models/acme/tiny/tree/main"),
            ("/api/models/acme/tiny/tree/main/sub%2Fdir", tree(Model, "acme/tiny", "main", Some("sub/dir")), ""),
            ("/api/models/acme/tiny/tree/main/sub/dir", tree(Model, "acme/tiny", "main", Some("sub/dir")), "/api/models/acme/tiny/tree/main/sub%2Fdir"),
            ("/api/models/acme/tiny/tree/main/sub/dir/", tree(Model, "acme/tiny", "main", Some("sub/dir")), "/api/models/acme/tiny/tree/main/sub%2Fdir"),
            ("/api/models/gpt2/tree/main/sub%2Fx%20y", tree(Model, "gpt2", "main", Some("sub/x y")), ""),
            ("/api/models/gpt2/tree/main", tree(Model, "gpt2", "main", None), ""),
            ("/api/datasets/acme/data/tree/refs%2Fconvert%2Fparquet/default", tree(Dataset, "acme/data", "refs/convert/parquet", Some("default")), ""),
            ("/api/models/acme/tree/tree/main", tree(Model, "acme/tree", "main", None), ""),
            ("/api/models/gpt2/tree/tree/a/b", tree(Model, "gpt2/tree", "a", Some("b")), ""),
            ("/api/models/gpt2/tree/refs/x", tree(Model, "gpt2", "refs", Some("x")), ""),
            // non-repo routes
            ("/api/whoami-v2", Route::Whoami, ""),
            ("/health", Route::Health, ""),
            ("/healthz", Route::Health, "/health"),
            ("/readyz", Route::Ready, ""),
            ("/", Route::Landing, ""),
            ("/metrics", Route::Metrics, ""),
            ("/admin", Route::Admin(AdminRoute::Page), ""),
            ("/admin/api/stats", Route::Admin(AdminRoute::Stats), ""),
            (
                "/admin/api/cache/gc",
                Route::Admin(AdminRoute::Cache(CacheOp::Gc)),
                "",
            ),
            ("/cas/v1/reconstructions/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Route::CasReconstruction { version: 1, file: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into() }, ""),
            ("/cas/v2/reconstructions/0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", Route::CasReconstruction { version: 2, file: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into() }, "/cas/v2/reconstructions/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            ("/cas/xorb/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Route::CasXorb { xorb: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into() }, ""),
        ]
    }

    #[test]
    fn accepted_paths_parse_and_canonicalise() {
        for (raw, route, up) in accepted() {
            assert_eq!(parse_route(raw), Ok(route.clone()), "{raw}");
            let expect = if up.is_empty() { raw } else { up };
            assert_eq!(route.upstream_path(), expect, "{raw}");
            assert_eq!(parse_route(expect), Ok(route), "{expect}");
        }
    }

    #[test]
    fn unknown_shapes_are_not_found() {
        for p in [
            "",
            "nope",
            "//",
            "/admin/",
            "/admin/api/cache/drop",
            "/metrics/x",
            "/health/",
            "/api",
            "/api/",
            "/api/whoami",
            "/api/whoami-v2/x",
            "/api/models",
            "/api/foo/a/b",
            "/api/model/gpt2",
            "/API/models/gpt2",
            "/a",
            "/a/b",
            "/a/b/c",
            "/acme/tiny/resolve/main",
            "/gpt2/resolve/main",
            "/acme/tiny/blob/main/x",
            "/acme/tiny/x/resolve/main/f",
            "/datasets/resolve/main/x",
            "/api/x/resolve/main/f",
            "/api/models/gpt2/resolve/main/f",
            "/api/models/a/b/c/d/e",
            "/api/models/acme/tiny/tree",
            "/api/models/acme/tiny/revision",
            "/api/models/acme/tiny/revision/a/b",
            "/api/models/acme/tiny/commits/a/b",
            "/api/models/acme/tiny/refs/x",
            "/api/models/acme/tiny/xet-write-token/main",
            "/api/models/acme/tiny/resolve/main/x",
            "/api/models/acme/tiny/",
            "/acme/tiny/resolve%2Fmain/x",
        ] {
            assert_eq!(parse_route(p), Err(RouteError::NotFound), "{p:?}");
        }
    }

    #[test]
    fn hostile_and_invalid_paths_are_bad_requests() {
        let long = format!("/acme/tiny/resolve/main/{}", "a/".repeat(MAX_RAW_PATH_LEN));
        let long_name = format!("/acme/tiny/resolve/main/{}", "a".repeat(1025));
        for p in [
            // traversal in the file path, every spelling
            "/acme/tiny/resolve/main/../../etc/passwd",
            "/acme/tiny/resolve/main/%2e%2e/x",
            "/acme/tiny/resolve/main/a/%2E%2E/b",
            "/acme/tiny/resolve/main/a/.%2e/b",
            "/acme/tiny/resolve/main/a%2F..%2Fb",
            "/acme/tiny/resolve/main/%2F..",
            "/acme/tiny/resolve/main/%2Fetc%2Fpasswd",
            "/acme/tiny/resolve/main/./x",
            "/acme/tiny/resolve/main/a%2F.",
            "/acme/tiny/resolve/main/a//b",
            "/acme/tiny/resolve/main/a/",
            "/acme/tiny/resolve/main/",
            "/gpt2/resolve/main/..",
            // backslashes, NUL, controls, drive letters
            "/acme/tiny/resolve/main/a%5Cb",
            "/acme/tiny/resolve/main/a\\b",
            "/acme/tiny/resolve/main/..%5C..%5Cx",
            "/acme/tiny/resolve/main/a%00b",
            "/acme/tiny/resolve/main/a%0Ab",
            "/acme/tiny/resolve/main/a%7F",
            "/acme/tiny/resolve/main/C%3A%5Cwin",
            "/acme/tiny/resolve/main/c:/x",
            // malformed encodings
            "/acme/tiny/resolve/main/%ff",
            "/acme/tiny/resolve/main/%C3",
            "/acme/tiny/resolve/main/%zz",
            "/acme/tiny/resolve/main/a%",
            "/acme/tiny/resolve/main/a%2",
            // bad revisions
            "/acme/tiny/resolve/..%2F..%2Fx/file",
            "/acme/tiny/resolve/%2e%2e/file",
            "/acme/tiny/resolve/../file",
            "/acme/tiny/resolve/%2Fmain/file",
            "/acme/tiny/resolve/main%2F/file",
            "/acme/tiny/resolve/refs%2F%2Fpr/file",
            "/acme/tiny/resolve/ma%00in/file",
            "/acme/tiny/resolve/a%5Cb/file",
            "/acme/tiny/resolve//file",
            // bad or smuggled repo ids
            "/ac%2Fme/tiny/resolve/main/x",
            "/ac%2Fme/resolve/main/x",
            "/../tiny/resolve/main/x",
            "/%2e%2e/tiny/resolve/main/x",
            "/acme/-bad/resolve/main/x",
            "/acme/a--b/resolve/main/x",
            "/acme/a b/resolve/main/x",
            "//tiny/resolve/main/x",
            "/api/models/",
            "/api/models/..",
            "/api/models/../refs",
            "/api/models/ac%2Fme",
            "/api/models/a%2Fb/refs",
            "/api/models/evil.com%2F/tiny",
            // bad api revisions and tree paths
            "/api/models/acme/tiny/revision/",
            "/api/models/acme/tiny/revision/..",
            "/api/models/acme/tiny/revision/%2E%2E",
            "/api/models/acme/tiny/revision/refs%2F..%2Fx",
            "/api/models/acme/tiny/commits/a%00",
            "/api/models/acme/tiny/xet-read-token/",
            "/api/models/acme/tiny/paths-info/.",
            "/api/models/acme/tiny/tree/main/..%2Fsecret",
            "/api/models/acme/tiny/tree/main/a/../b",
            "/api/models/acme/tiny/tree/main//",
            "/api/models/acme/tiny/tree/main/%2Fetc",
            "/api/models/acme/tiny/tree/main/a%5C..",
            // text that the canonical form would read differently
            "/gpt2/resolve/resolve/a%2Fb",
            "/api/models/gpt2/tree/refs/",
            "/api/models/gpt2/tree/revision/a/b",
            // Xet CAS routes with a bad hash
            "/cas/v2/reconstructions/abc",
            "/cas/xorb/zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            // too long
            long.as_str(),
            long_name.as_str(),
        ] {
            assert!(
                matches!(parse_route(p), Err(RouteError::BadRequest(_))),
                "{p:?} -> {:?}",
                parse_route(p)
            );
        }
    }

    #[test]
    fn accessors() {
        let r = resolve(Dataset, "acme/data", "refs/pr/1", "a/b.txt");
        assert_eq!(r.repo(), Some(&rr(Dataset, "acme/data")));
        assert_eq!(r.revision(), Some(&rev("refs/pr/1")));
        assert_eq!(r.path(), Some(&rp("a/b.txt")));
        let t = tree(Model, "gpt2", "main", Some("sub"));
        assert_eq!(t.path().map(RepoPath::as_str), Some("sub"));
        assert_eq!(tree(Model, "gpt2", "main", None).path(), None);
        let i = info(Space, "acme/app");
        assert_eq!((i.revision(), i.path()), (None, None));
        assert_eq!(
            i.repo().map(RepoRef::key).as_deref(),
            Some("spaces/acme/app")
        );
        assert_eq!(refs(Model, "gpt2").revision(), None);
        for r in [Route::Whoami, Route::Health, Route::Ready] {
            assert_eq!((r.repo(), r.revision(), r.path()), (None, None, None));
        }
        let c = with_rev(commits, Kernel, "acme/k", "v1");
        assert_eq!(c.revision().map(Revision::as_str), Some("v1"));
    }

    #[test]
    fn library_routes() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let cases: Vec<(String, Route, String)> = vec![
            (
                format!(
                    "/api/resolve-cache/models/acme/tiny/{sha}/config.json?%2Facme=&etag=%22x%22"
                ),
                Route::ResolveCache {
                    repo: rr(Model, "acme/tiny"),
                    commit: rev(sha),
                    path: rp("config.json"),
                },
                format!("/api/resolve-cache/models/acme/tiny/{sha}/config.json"),
            ),
            (
                format!("/api/resolve-cache/datasets/squad/{sha}/sub/a%20b.txt"),
                Route::ResolveCache {
                    repo: rr(Dataset, "squad"),
                    commit: rev(sha),
                    path: rp("sub/a b.txt"),
                },
                format!("/api/resolve-cache/datasets/squad/{sha}/sub/a%20b.txt"),
            ),
            (
                "/datasets/acme/data/raw/refs%2Fconvert%2Fparquet/a/b.parquet".into(),
                Route::Raw {
                    repo: rr(Dataset, "acme/data"),
                    revision: rev("refs/convert/parquet"),
                    path: rp("a/b.parquet"),
                },
                "/datasets/acme/data/raw/refs%2Fconvert%2Fparquet/a/b.parquet".into(),
            ),
            (
                "/gpt2/raw/main/config.json".into(),
                Route::Raw {
                    repo: rr(Model, "gpt2"),
                    revision: rev("main"),
                    path: rp("config.json"),
                },
                "/gpt2/raw/main/config.json".into(),
            ),
            (
                "/api/models/acme/tiny/tree/refs/pr/1/sub/dir".into(),
                tree(Model, "acme/tiny", "refs/pr/1", Some("sub/dir")),
                "/api/models/acme/tiny/tree/refs%2Fpr%2F1/sub%2Fdir".into(),
            ),
            (
                "/api/datasets/acme/data/tree/refs/convert/parquet".into(),
                tree(Dataset, "acme/data", "refs/convert/parquet", None),
                "/api/datasets/acme/data/tree/refs%2Fconvert%2Fparquet".into(),
            ),
            (
                "/acme/tiny/resolve/refs/pr/1/sub/config.json".into(),
                resolve(Model, "acme/tiny", "refs/pr/1", "sub/config.json"),
                "/acme/tiny/resolve/refs%2Fpr%2F1/sub/config.json".into(),
            ),
            (
                "/datasets/acme/data/raw/refs/convert/parquet/default/0.parquet".into(),
                Route::Raw {
                    repo: rr(Dataset, "acme/data"),
                    revision: rev("refs/convert/parquet"),
                    path: rp("default/0.parquet"),
                },
                "/datasets/acme/data/raw/refs%2Fconvert%2Fparquet/default/0.parquet".into(),
            ),
            (
                "/api/models/acme/tiny/revision/HEAD".into(),
                with_rev(rev_info, Model, "acme/tiny", "HEAD"),
                "/api/models/acme/tiny/revision/HEAD".into(),
            ),
            (
                "/api/models/acme/tiny/safetensors-metadata/model.safetensors.index.json".into(),
                Route::SafetensorsMetadata {
                    repo: rr(Model, "acme/tiny"),
                    index: Some(rp("model.safetensors.index.json")),
                },
                "/api/models/acme/tiny/safetensors-metadata/model.safetensors.index.json".into(),
            ),
            (
                "/api/models/acme/tiny/auth-check".into(),
                Route::AuthCheck {
                    repo: rr(Model, "acme/tiny"),
                    write: false,
                },
                "/api/models/acme/tiny/auth-check".into(),
            ),
            (
                "/api/datasets/acme/data/auth-check/write".into(),
                Route::AuthCheck {
                    repo: rr(Dataset, "acme/data"),
                    write: true,
                },
                "/api/datasets/acme/data/auth-check/write".into(),
            ),
            (
                "/api/agent-harnesses".into(),
                Route::AgentHarnesses,
                "/api/agent-harnesses".into(),
            ),
        ];
        for (raw, want, up) in cases {
            let path = raw.split('?').next().unwrap();
            assert_eq!(parse_route(path).as_ref(), Ok(&want), "{raw}");
            assert_eq!(want.upstream_path(), up, "{raw}");
            assert!(want.is_canonical(), "{raw}");
            check_upstream_text(&up).unwrap();
        }
        // A resolve-cache path needs a full commit sha and a file.
        for p in [
            "/api/resolve-cache/models/acme/tiny/main/config.json",
            format!("/api/resolve-cache/models/acme/tiny/{sha}").as_str(),
            "/api/resolve-cache/nope/acme/tiny",
            "/acme/tiny/raw/main",
        ] {
            assert_eq!(parse_route(p), Err(RouteError::NotFound), "{p}");
        }
        assert!(matches!(
            parse_route(&format!("/api/resolve-cache/models/acme/tiny/{sha}/..")),
            Err(RouteError::BadRequest(_))
        ));
        // The encoded and unencoded spellings of a ref name the same listing.
        assert_eq!(
            parse_route("/api/models/acme/tiny/tree/refs%2Fpr%2F1/sub%2Fdir"),
            parse_route("/api/models/acme/tiny/tree/refs/pr/1/sub/dir")
        );
    }

    #[test]
    fn hand_built_ambiguous_routes_are_flagged() {
        for r in [
            info(Model, "acme/refs"),
            with_rev(rev_info, Model, "gpt2", "refs"),
            with_rev(xet, Dataset, "squad", "refs"),
            tree(Model, "gpt2", "refs", None),
            tree(Model, "gpt2", "commits", Some("x")),
            resolve(Model, "gpt2", "resolve", "a/b"),
        ] {
            assert!(!r.is_canonical(), "{r:?}");
            assert_ne!(parse_route(&r.upstream_path()), Ok(r));
        }
        // The `models/` prefix keeps reserved first segments unambiguous.
        let r = resolve(Model, "datasets/x", "main", "f");
        assert_eq!(r.upstream_path(), "/models/datasets/x/resolve/main/f");
        assert!(r.is_canonical());
    }

    #[test]
    fn bucket_routes() {
        let b = RepoRef::new(RepoType::Bucket, RepoId::new("acme/bk").unwrap());
        let cases: Vec<(&str, Route, &str)> = vec![
            (
                "/api/buckets/acme/bk",
                Route::BucketInfo { bucket: b.clone() },
                "/api/buckets/acme/bk",
            ),
            (
                "/api/buckets/me",
                Route::BucketList {
                    namespace: "me".into(),
                },
                "/api/buckets/me",
            ),
            (
                "/api/buckets/acme/bk/tree",
                Route::BucketTree {
                    bucket: b.clone(),
                    prefix: None,
                },
                "/api/buckets/acme/bk/tree",
            ),
            // huggingface_hub encodes the prefix's `/`; huggingface.js sends it raw.
            (
                "/api/buckets/acme/bk/tree/data%2Fsub%20dir",
                Route::BucketTree {
                    bucket: b.clone(),
                    prefix: Some(rp("data/sub dir")),
                },
                "/api/buckets/acme/bk/tree/data%2Fsub%20dir",
            ),
            (
                "/api/buckets/acme/bk/tree/data/sub%20dir",
                Route::BucketTree {
                    bucket: b.clone(),
                    prefix: Some(rp("data/sub dir")),
                },
                "/api/buckets/acme/bk/tree/data%2Fsub%20dir",
            ),
            (
                "/api/buckets/acme/bk/paths-info",
                Route::BucketPathsInfo { bucket: b.clone() },
                "/api/buckets/acme/bk/paths-info",
            ),
            (
                "/buckets/acme/bk/resolve/data%2Fa.txt",
                Route::BucketResolve {
                    bucket: b.clone(),
                    path: rp("data/a.txt"),
                },
                "/buckets/acme/bk/resolve/data/a.txt",
            ),
            (
                "/buckets/acme/bk/resolve/data/a.txt",
                Route::BucketResolve {
                    bucket: b.clone(),
                    path: rp("data/a.txt"),
                },
                "/buckets/acme/bk/resolve/data/a.txt",
            ),
            (
                "/api/buckets/acme/bk/xet-read-token",
                Route::BucketXetReadToken { bucket: b.clone() },
                "/api/buckets/acme/bk/xet-read-token",
            ),
            (
                "/api/buckets/acme/bk/events",
                Route::BucketEvents { bucket: b.clone() },
                "/api/buckets/acme/bk/events",
            ),
            (
                "/api/buckets/acme/bk/xet-write-token",
                Route::BucketWrite {
                    bucket: b.clone(),
                    op: BucketWriteOp::XetWriteToken,
                },
                "/api/buckets/acme/bk/xet-write-token",
            ),
            ("/api/repos/move", Route::RepoMove, "/api/repos/move"),
        ];
        for (raw, want, up) in cases {
            let got = parse_route(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(got, want, "{raw}");
            assert_eq!(got.upstream_path(), up, "{raw}");
            assert_eq!(got.revision(), None);
            assert_eq!(
                got.repo().map(RepoRef::key).is_some(),
                !matches!(got, Route::BucketList { .. } | Route::RepoMove)
            );
        }
        assert_eq!(b.key(), "buckets/acme/bk");
        // A bucket id always has two segments; no revision anywhere.
        for p in [
            "/api/buckets/acme/bk/tree/main/..%2Fx",
            "/buckets/acme/bk/resolve/..%2Fetc",
            "/buckets/ac%2Fme/bk/resolve/x",
            "/api/buckets/a%2Fb",
            "/api/buckets/-x/bk",
        ] {
            assert!(
                matches!(parse_route(p), Err(RouteError::BadRequest(_))),
                "{p}: {:?}",
                parse_route(p)
            );
        }
        for p in [
            "/api/buckets",
            "/api/buckets/acme/bk/xet-read-token/main",
            "/api/buckets/acme/bk/unknown",
            "/buckets/acme/bk/resolve",
        ] {
            assert!(parse_route(p).is_err(), "{p}");
        }
        // A model under a namespace named `buckets` stays reachable (explicit `models/`).
        let m = resolve(Model, "buckets/x", "main", "f");
        assert_eq!(m.upstream_path(), "/models/buckets/x/resolve/main/f");
        assert_eq!(parse_route(&m.upstream_path()), Ok(m));
    }

    // ---- property tests ----------------------------------------------------------------------

    const WORDS: &[&str] = &[
        "refs",
        "tree",
        "revision",
        "commits",
        "paths-info",
        "xet-read-token",
        "resolve",
        "models",
        "datasets",
        "spaces",
        "kernels",
        "api",
        "health",
        "whoami-v2",
        "main",
        "gpt2",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop::sample::select(WORDS).prop_map(str::to_string)
    }

    fn arb_id() -> impl Strategy<Value = RepoId> {
        let seg = prop_oneof![
            3 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}"
                .prop_filter("hub rules", |s| is_valid_repo_id_segment(s)),
            1 => word(),
        ];
        (prop::option::of(seg.clone()), seg)
            .prop_map(|(ns, name)| RepoId::from_parts(ns.as_deref(), &name).unwrap())
    }

    fn arb_rev() -> impl Strategy<Value = Revision> {
        prop_oneof![
            1 => word(),
            3 => prop::sample::select(&WORDS[..7]).prop_map(str::to_string),
            1 => Just("refs/pr/1".to_string()),
            1 => Just("refs/convert/parquet".to_string()),
            1 => "[0-9a-f]{40}",
            2 => "[a-zA-Z0-9 ._%#?+=&~é中/-]{1,16}",
        ]
        .prop_filter_map("valid revision", |s| Revision::new(&s).ok())
    }

    fn arb_path() -> impl Strategy<Value = RepoPath> {
        let seg = prop_oneof![
            3 => "[a-zA-Z0-9 ._%#?+=&;,()@~:é中😀-]{1,8}",
            1 => word(),
        ];
        prop::collection::vec(seg, 1..5)
            .prop_filter_map("valid path", |v| RepoPath::new(&v.join("/")).ok())
    }

    fn arb_route() -> impl Strategy<Value = Route> {
        let kind = prop::sample::select(RepoType::ALL.to_vec());
        (
            kind,
            arb_id(),
            arb_rev(),
            prop::option::of(arb_path()),
            0..19u8,
        )
            .prop_map(|(kind, id, revision, path, which)| {
                // Buckets always have a two-segment id.
                let bucket = RepoRef::new(
                    RepoType::Bucket,
                    RepoId::from_parts(Some(id.first_segment()), id.name()).unwrap(),
                );
                let repo = RepoRef::new(kind, id);
                match which {
                    11 => Route::BucketInfo { bucket },
                    12 => Route::BucketList {
                        namespace: bucket.id.first_segment().to_string(),
                    },
                    13 => Route::BucketTree {
                        bucket,
                        prefix: path,
                    },
                    14 => Route::BucketPathsInfo { bucket },
                    15 => Route::BucketResolve {
                        bucket,
                        path: path.unwrap_or_else(|| rp("dir/f")),
                    },
                    16 => Route::BucketXetReadToken { bucket },
                    17 => Route::BucketEvents { bucket },
                    18 => Route::BucketWrite {
                        bucket,
                        op: BucketWriteOp::Batch,
                    },
                    0 => Route::Resolve {
                        repo,
                        revision,
                        path: path.unwrap_or_else(|| rp("dir/f")),
                    },
                    1 => Route::RepoInfo { repo },
                    2 => Route::RevisionInfo { repo, revision },
                    3 => Route::Tree {
                        repo,
                        revision,
                        path,
                    },
                    4 => Route::PathsInfo { repo, revision },
                    5 => Route::Refs { repo },
                    6 => Route::Commits { repo, revision },
                    7 => Route::XetReadToken { repo, revision },
                    8 => Route::Whoami,
                    9 => Route::Ready,
                    _ => Route::Health,
                }
            })
    }

    /// The hand-built routes whose canonical text reads as another route, characterised
    /// independently of the parser (see [`Route::is_canonical`]).
    fn documented_ambiguity(r: &Route) -> bool {
        let legacy = r.repo().is_some_and(|r| r.id.namespace().is_none());
        let rev = r.revision().map(Revision::as_str).unwrap_or_default();
        let rev_keyword = [
            "revision",
            "paths-info",
            "commits",
            "xet-read-token",
            "tree",
        ];
        match r {
            Route::RepoInfo { repo } => repo.id.namespace().is_some() && repo.id.name() == "refs",
            Route::Resolve { path, .. } => {
                legacy && rev == "resolve" && path.segments().count() >= 2
            }
            Route::Tree { path: None, .. } => legacy && rev == "refs",
            Route::Tree { path: Some(_), .. } => legacy && rev_keyword.contains(&rev),
            Route::RevisionInfo { .. }
            | Route::PathsInfo { .. }
            | Route::Commits { .. }
            | Route::XetReadToken { .. } => legacy && rev == "refs",
            Route::Refs { .. }
            | Route::Whoami
            | Route::Health
            | Route::Ready
            | Route::Landing
            | Route::Metrics
            | Route::Admin(_)
            | Route::CasReconstruction { .. }
            | Route::CasXorb { .. }
            | Route::BucketInfo { .. }
            | Route::BucketList { .. }
            | Route::BucketTree { .. }
            | Route::BucketPathsInfo { .. }
            | Route::BucketResolve { .. }
            | Route::BucketXetReadToken { .. }
            | Route::BucketEvents { .. }
            | Route::BucketWrite { .. }
            | Route::RepoMove => false,
            // Not generated by `arb_route`; see `library_routes`.
            Route::ResolveCache { .. }
            | Route::Raw { .. }
            | Route::SafetensorsMetadata { .. }
            | Route::AuthCheck { .. }
            | Route::AgentHarnesses => false,
        }
    }

    /// What every upstream path must look like, whoever built the route.
    fn check_upstream_text(up: &str) -> Result<(), TestCaseError> {
        if up == "/" {
            // The landing page: the mirror's own, never sent upstream.
            return Ok(());
        }
        prop_assert!(up.starts_with('/') && !up.starts_with("//"), "{}", up);
        for seg in up[1..].split('/') {
            prop_assert!(!matches!(seg, "" | "." | ".."), "{}", up);
        }
        let b = up.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            let ok = c.is_ascii_alphanumeric()
                || b"-._~/".contains(&c)
                || (c == b'%'
                    && b.len() > i + 2
                    && b[i + 1..i + 3]
                        .iter()
                        .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)));
            prop_assert!(ok, "{}", up);
        }
        prop_assert!(!up.to_ascii_lowercase().contains("%2e"), "{}", up);
        Ok(())
    }

    fn check_parsed(r: &Route) -> Result<(), TestCaseError> {
        if let Some(p) = r.path() {
            let p = p.as_str();
            prop_assert!(!p.starts_with('/'));
            prop_assert!(p.split('/').all(|c| !matches!(c, "" | "." | "..")));
            prop_assert!(!p.contains('\\') && !p.chars().any(char::is_control));
        }
        if let Some(v) = r.revision() {
            prop_assert!(v.as_str().split('/').all(|c| !matches!(c, "" | "." | "..")));
        }
        let up = r.upstream_path();
        check_upstream_text(&up)?;
        prop_assert_eq!(parse_route(&up), Ok(r.clone()));
        Ok(())
    }

    /// Raw paths assembled from tokens that matter to the parser, plus random text.
    fn raw_path() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            2 => word(),
            2 => prop::sample::select(vec![
                "", ".", "..", "%2e%2e", "%2E.", ".%2e", "%2F", "a%2Fb", "%2F..", "..%2F", "%5C",
                "\\", "%00", "%0a", "%ff", "%", "%zz", "refs%2Fpr%2F1", "acme", "tiny", "x y",
                "a%20b", "é", "%C3%A9", "C:", "c%3A", "config.json", "%2e", "sub%2Fdir%2F",
            ])
            .prop_map(str::to_string),
            1 => "[a-zA-Z0-9%._ \\\\/-]{0,6}",
        ];
        prop::collection::vec(token, 0..9).prop_map(|v| format!("/{}", v.join("/")))
    }

    #[test]
    fn route_generator_covers_every_variant_and_ambiguity() {
        use proptest::strategy::ValueTree;
        use std::collections::HashSet;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = arb_route();
        let (mut variants, mut ambiguous) = (HashSet::new(), HashSet::new());
        for _ in 0..4000 {
            let r = strategy.new_tree(&mut runner).unwrap().current();
            variants.insert(std::mem::discriminant(&r));
            if documented_ambiguity(&r) {
                ambiguous.insert(std::mem::discriminant(&r));
            }
        }
        assert_eq!(variants.len(), 19);
        // Every variant that can be ambiguous is generated ambiguous at least once.
        assert_eq!(ambiguous.len(), 7, "{ambiguous:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn upstream_path_round_trips(r in arb_route()) {
            let up = r.upstream_path();
            check_upstream_text(&up)?;
            let parsed = parse_route(&up);
            if documented_ambiguity(&r) {
                prop_assert!(!r.is_canonical());
                prop_assert_ne!(&parsed, &Ok(r.clone()));
                // Still only ever a route whose own canonical text is the same bytes.
                if let Ok(other) = parsed {
                    prop_assert_eq!(other.upstream_path(), up);
                }
            } else {
                prop_assert!(r.is_canonical());
                prop_assert_eq!(parsed, Ok(r));
            }
        }

        #[test]
        fn token_paths_never_escape(s in raw_path()) {
            if let Ok(r) = parse_route(&s) {
                check_parsed(&r)?;
            }
        }

        #[test]
        fn any_string_never_panics(s in "\\PC*", t in ".*") {
            for p in [s.clone(), format!("/{s}"), t] {
                if let Ok(r) = parse_route(&p) {
                    check_parsed(&r)?;
                }
            }
        }
    }
}
