//! `mirrors-path`: local git repositories served as Hub repos, without the upstream.
//!
//! Layout: `{root}/{models|datasets|spaces|kernels}/{ns}/{name}` (a legacy one-segment id is
//! `{root}/{plural}/{name}`), each a non-bare checkout (`.git/`) or a bare repository. The first
//! root holding an openable repository wins; a directory that is not a git repository is ignored
//! (the mirror then proxies as usual).
//!
//! Everything is read from the git history, never from a working tree: revisions are branches
//! (`refs/heads`), tags (`refs/tags`, peeled), any full ref name under `refs/`, or a full or
//! abbreviated (>= 4 hex digits) commit sha; `main` falls back to `HEAD` when the repository has no
//! `main` branch (many local repositories use `master`). A file's ETag is its git blob id; a file
//! whose blob is a git-lfs pointer is served from the repository's LFS store
//! (`{git dir}/lfs/objects/{aa}/{bb}/{sha256}`, or `lfs.storage`) with the pointer's sha256 as
//! ETag/`X-Linked-Etag` and the real size as `X-Linked-Size`, streamed from disk in chunks.
//!
//! git2 is blocking: every repository access runs in `spawn_blocking`, and a repository is opened
//! per request (cheap; refs and packs are always current).
//!
//! Lists (tree, commits) are answered in one page: no `Link: rel="next"` is emitted.

use std::ffi::OsStr;
use std::io::{self, Read, SeekFrom};
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use git2::{ErrorCode, ObjectType, Odb, Oid, Repository, RepositoryOpenFlags, Sort, Tree};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use olah_types::{ConditionalAnswer, RepoRef, Route};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::ApiError;

/// A git-lfs pointer is smaller than this (git-lfs spec).
const LFS_POINTER_MAX: usize = 1024;
/// Regular blobs up to this size are read whole; larger ones are streamed when the object
/// database can (loose objects), else read whole by a blocking producer.
const WHOLE_BLOB_MAX: usize = 4 << 20;
/// Chunk size of streamed bodies.
const CHUNK: usize = 256 << 10;

type IoStream = BoxStream<'static, Result<Bytes, io::Error>>;

/// Errors of the blocking part, boxed (an [`ApiError`] is large).
type Res<T> = Result<T, Box<ApiError>>;

/// The local git repositories under the configured `mirrors-path` roots.
#[derive(Debug, Clone, Default)]
pub struct LocalRepos {
    roots: Vec<PathBuf>,
}

impl LocalRepos {
    /// Repositories under these roots (`mirrors-path`); an empty list serves nothing.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self { roots }
    }

    /// No roots configured: [`handle`](Self::handle) always answers `None`.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Answers `route` from a local git repository. `None` when the route's repo is not a local
    /// git repo (the mirror then proxies as usual).
    pub async fn handle(
        &self,
        method: &Method,
        route: &Route,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Option<Bytes>,
    ) -> Option<Result<Response, ApiError>> {
        let repo = route.repo()?;
        if self.roots.is_empty() {
            return None;
        }
        let candidates: Vec<PathBuf> = self.roots.iter().map(|r| repo_dir(r, repo)).collect();
        let req = Req {
            method: method.clone(),
            route: route.clone(),
            query: query.unwrap_or("").to_string(),
            body,
            small_body: method == Method::GET,
        };
        let job = tokio::task::spawn_blocking(move || {
            let (dir, git) = match open_first(&candidates)? {
                Ok(found) => found,
                Err(e) => return Some(Err(e)),
            };
            Some(plan(&git, &dir, &req).map_err(|e| *e))
        })
        .await;
        let plan = match job {
            Ok(None) => return None,
            Ok(Some(p)) => p,
            Err(e) => return Some(Err(ApiError::Internal(format!("local git task: {e}")))),
        };
        let span = tracing::Span::current();
        span.record("cache", "local");
        Some(match plan {
            Err(e) => Err(e),
            Ok(Plan::Json { value, commit }) => {
                if let Some(c) = &commit {
                    span.record("commit", c.as_str());
                }
                Ok(json_response(&value, method == Method::HEAD))
            }
            Ok(Plan::EntryMissing { commit, message }) => {
                span.record("commit", commit.as_str());
                let mut r = ApiError::Hub {
                    status: StatusCode::NOT_FOUND,
                    code: "EntryNotFound",
                    message,
                }
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&commit) {
                    r.headers_mut().insert("x-repo-commit", v);
                }
                Ok(r)
            }
            Ok(Plan::File(f)) => {
                span.record("commit", f.commit.as_str());
                serve_file(f, method == Method::HEAD, headers).await
            }
        })
    }
}

/// `{root}/{plural}/{ns}/{name}`: the id is validated by the route parser (no `.`/`..`
/// segments, no separators but the one `/`), so the path stays under the root.
fn repo_dir(root: &Path, repo: &RepoRef) -> PathBuf {
    let mut p = root.join(repo.kind.api_plural());
    for seg in repo.id.as_str().split('/') {
        p.push(seg);
    }
    p
}

/// The first candidate that is a git repository. `None`: none is (not local).
fn open_first(candidates: &[PathBuf]) -> Option<Result<(PathBuf, Repository), ApiError>> {
    for dir in candidates {
        if !dir.is_dir() {
            continue;
        }
        match Repository::open_ext(
            dir,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&OsStr>(),
        ) {
            Ok(repo) => return Some(Ok((dir.clone(), repo))),
            Err(e) if e.code() == ErrorCode::Owner => {
                tracing::warn!(dir = %dir.display(), error = %e, "local git repository refused (owner)");
                return Some(Err(ApiError::Internal(format!(
                    "local repository {} is owned by another user (git safe.directory)",
                    dir.display()
                ))));
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "not a git repository");
            }
        }
    }
    None
}

/// What the blocking part needs to know about the request.
struct Req {
    method: Method,
    route: Route,
    query: String,
    body: Option<Bytes>,
    /// GET: small blobs are read in the same blocking step.
    small_body: bool,
}

impl Req {
    fn query_pairs(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.query).unwrap_or_default()
    }

    fn query_flag(&self, key: &str) -> bool {
        self.query_pairs()
            .iter()
            .any(|(k, v)| k == key && matches!(v.as_str(), "1" | "true" | "True"))
    }
}

/// The answer decided by the blocking part.
enum Plan {
    Json {
        value: Value,
        commit: Option<String>,
    },
    /// 404 EntryNotFound carrying `X-Repo-Commit` (the client records a negative cache entry).
    EntryMissing {
        commit: String,
        message: String,
    },
    File(FilePlan),
}

/// A file to serve.
struct FilePlan {
    commit: String,
    path: String,
    info: FileInfo,
    source: Source,
}

/// Where a file's bytes come from.
enum Source {
    /// A small blob read whole (GET only).
    Inline(Bytes),
    /// A git blob to stream from the repository at `dir`.
    Blob { dir: PathBuf, oid: Oid },
    /// An LFS object file.
    Lfs(PathBuf),
}

/// A file entry at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileInfo {
    /// Git blob id (of the pointer text for LFS files).
    oid: Oid,
    /// Size of the git blob.
    blob_size: u64,
    /// The git-lfs pointer, if the blob is one.
    lfs: Option<LfsPointer>,
}

impl FileInfo {
    /// The size clients see (the real size for LFS files).
    fn size(&self) -> u64 {
        self.lfs.as_ref().map_or(self.blob_size, |l| l.size)
    }

    /// The ETag clients see (sha256 for LFS files, else the git blob id).
    fn etag(&self) -> String {
        match &self.lfs {
            Some(l) => l.sha256.clone(),
            None => self.oid.to_string(),
        }
    }
}

/// A parsed git-lfs pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LfsPointer {
    /// Lowercase hex sha256 of the content.
    sha256: String,
    /// Size of the content.
    size: u64,
}

/// Parses a git-lfs pointer (spec v1): `version …\noid sha256:{64 hex}\nsize {n}\n`.
fn parse_lfs_pointer(data: &[u8]) -> Option<LfsPointer> {
    if data.len() >= LFS_POINTER_MAX {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    let version = lines.next()?.strip_prefix("version ")?;
    if !matches!(
        version,
        "https://git-lfs.github.com/spec/v1" | "https://hawser.github.com/spec/v1"
    ) {
        return None;
    }
    let (mut sha256, mut size) = (None, None);
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        match k {
            "oid" => {
                let hex = v.strip_prefix("sha256:")?;
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                sha256 = Some(hex.to_string());
            }
            "size" => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                size = Some(v.parse().ok()?);
            }
            _ => {}
        }
    }
    Some(LfsPointer {
        sha256: sha256?,
        size: size?,
    })
}

fn git_err(e: git2::Error) -> Box<ApiError> {
    Box::new(ApiError::Internal(format!("local git: {}", e.message())))
}

fn hub_404(code: &'static str, message: String) -> Box<ApiError> {
    Box::new(ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code,
        message,
    })
}

fn method_not_allowed(m: &Method) -> Box<ApiError> {
    Box::new(ApiError::Hub {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "MethodNotAllowed",
        message: format!("{m} is not supported on this route"),
    })
}

/// Decides the answer (blocking: git2).
fn plan(git: &Repository, dir: &Path, req: &Req) -> Res<Plan> {
    let get_or_head = matches!(req.method, Method::GET | Method::HEAD);
    let json = |value: Value, commit: Option<String>| Ok(Plan::Json { value, commit });
    match &req.route {
        Route::Resolve { revision, path, .. } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            let commit = resolve_rev(git, revision.as_str())?;
            plan_file(git, dir, &commit, path.as_str(), req.small_body)
        }
        Route::RepoInfo { repo } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            let c = resolve_rev(git, "main")?;
            json(
                repo_info(git, repo, &c, req.query_flag("blobs"))?,
                Some(c.id().to_string()),
            )
        }
        Route::RevisionInfo { repo, revision } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            let c = resolve_rev(git, revision.as_str())?;
            json(
                repo_info(git, repo, &c, req.query_flag("blobs"))?,
                Some(c.id().to_string()),
            )
        }
        Route::Tree { revision, path, .. } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            let c = resolve_rev(git, revision.as_str())?;
            let recursive = req.query_flag("recursive");
            let v = tree_listing(git, &c, path.as_ref().map(|p| p.as_str()), recursive)?;
            json(v, Some(c.id().to_string()))
        }
        Route::PathsInfo { revision, .. } => {
            if req.method != Method::POST {
                return Err(method_not_allowed(&req.method));
            }
            let c = resolve_rev(git, revision.as_str())?;
            let form: Vec<(String, String)> = req
                .body
                .as_deref()
                .and_then(|b| serde_urlencoded::from_bytes(b).ok())
                .unwrap_or_default();
            let paths: Vec<&str> = form
                .iter()
                .filter(|(k, _)| k == "paths")
                .map(|(_, v)| v.as_str())
                .collect();
            json(paths_info(git, &c, &paths)?, Some(c.id().to_string()))
        }
        Route::Refs { .. } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            json(refs(git, req.query_flag("include_prs"))?, None)
        }
        Route::Commits { revision, .. } => {
            if !get_or_head {
                return Err(method_not_allowed(&req.method));
            }
            let c = resolve_rev(git, revision.as_str())?;
            let formatted = req
                .query_pairs()
                .iter()
                .any(|(k, v)| k == "expand[]" && v == "formatted");
            json(commits(git, &c, formatted)?, Some(c.id().to_string()))
        }
        // Local repositories have no Xet storage: nothing announces Xet for them.
        Route::XetReadToken { .. } => Err(Box::new(crate::xet::disabled())),
        Route::Whoami | Route::Health | Route::CasReconstruction { .. } | Route::CasXorb { .. } => {
            Err(Box::new(ApiError::Internal(
                "route without a repository reached the local git handler".into(),
            )))
        }
    }
}

/// A revision → commit: branch, tag, full ref name, full or abbreviated commit sha.
fn resolve_rev<'r>(git: &'r Repository, rev: &str) -> Res<git2::Commit<'r>> {
    let not_found = || hub_404("RevisionNotFound", format!("Invalid rev id: {rev}"));
    let mut names = vec![format!("refs/heads/{rev}"), format!("refs/tags/{rev}")];
    if rev.starts_with("refs/") {
        names.push(rev.to_string());
    }
    for name in &names {
        if let Ok(r) = git.find_reference(name) {
            return r.peel_to_commit().map_err(|_| not_found());
        }
    }
    if rev == "main"
        && let Ok(c) = git.head().and_then(|h| h.peel_to_commit())
    {
        return Ok(c);
    }
    if (4..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let obj = if rev.len() == 40 {
            Oid::from_str(rev).and_then(|oid| git.find_object(oid, None))
        } else {
            git.find_object_by_prefix(rev, None)
        };
        if let Ok(c) = obj.and_then(|o| o.peel_to_commit()) {
            return Ok(c);
        }
    }
    Err(not_found())
}

/// Size and LFS pointer of a blob, reading only small blobs.
fn file_info(odb: &Odb<'_>, oid: Oid) -> Res<FileInfo> {
    let (size, _) = odb.read_header(oid).map_err(git_err)?;
    let lfs = if size < LFS_POINTER_MAX {
        parse_lfs_pointer(odb.read(oid).map_err(git_err)?.data())
    } else {
        None
    };
    Ok(FileInfo {
        oid,
        blob_size: size as u64,
        lfs,
    })
}

/// The LFS store of a repository: `lfs.storage` (relative to the git dir), else `{git dir}/lfs`.
fn lfs_object_path(git: &Repository, sha256: &str) -> PathBuf {
    let common = git.commondir();
    let storage = git
        .config()
        .ok()
        .and_then(|c| c.get_path("lfs.storage").ok())
        .map(|p| if p.is_absolute() { p } else { common.join(p) })
        .unwrap_or_else(|| common.join("lfs"));
    // `sha256` is 64 validated hex digits: the path stays inside the store.
    storage
        .join("objects")
        .join(&sha256[0..2])
        .join(&sha256[2..4])
        .join(sha256)
}

fn plan_file(
    git: &Repository,
    dir: &Path,
    commit: &git2::Commit<'_>,
    path: &str,
    small_body: bool,
) -> Res<Plan> {
    let commit_id = commit.id().to_string();
    let missing = || {
        Ok(Plan::EntryMissing {
            commit: commit_id.clone(),
            message: format!("{path} does not exist at {commit_id}"),
        })
    };
    let tree = commit.tree().map_err(git_err)?;
    let entry = match tree.get_path(Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == ErrorCode::NotFound => return missing(),
        Err(e) => return Err(git_err(e)),
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return missing();
    }
    let odb = git.odb().map_err(git_err)?;
    let info = file_info(&odb, entry.id())?;
    let source = if let Some(lfs) = &info.lfs {
        let p = lfs_object_path(git, &lfs.sha256);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() == lfs.size => Source::Lfs(p),
            Ok(m) => {
                return Err(Box::new(ApiError::Internal(format!(
                    "LFS object {} of {path} has {} bytes, its pointer says {}",
                    lfs.sha256,
                    m.len(),
                    lfs.size
                ))));
            }
            Err(_) => {
                // Without X-Repo-Commit: the client raises but records no negative cache entry.
                return Err(hub_404(
                    "EntryNotFound",
                    format!(
                        "{path}: LFS object {} is not present in the local mirror",
                        lfs.sha256
                    ),
                ));
            }
        }
    } else if small_body && info.blob_size as usize <= WHOLE_BLOB_MAX {
        let blob = git.find_blob(info.oid).map_err(git_err)?;
        Source::Inline(Bytes::copy_from_slice(blob.content()))
    } else {
        Source::Blob {
            dir: dir.to_path_buf(),
            oid: info.oid,
        }
    };
    Ok(Plan::File(FilePlan {
        commit: commit_id,
        path: path.to_string(),
        info,
        source,
    }))
}

/// One tree entry.
enum Entry {
    Dir { path: String, oid: Oid },
    File { path: String, info: FileInfo },
}

impl Entry {
    fn to_json(&self) -> Value {
        match self {
            Entry::Dir { path, oid } => {
                json!({"type": "directory", "oid": oid.to_string(), "size": 0, "path": path})
            }
            Entry::File { path, info } => {
                let mut v = json!({"type": "file", "oid": info.oid.to_string(), "size": info.size(), "path": path});
                if let Some(l) = &info.lfs {
                    v["lfs"] =
                        json!({"oid": l.sha256, "size": l.size, "pointerSize": info.blob_size});
                }
                v
            }
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Entries of `tree` (pre-order, git order), descending into subtrees when `recursive`.
/// Submodules and entries whose name is not UTF-8 are skipped.
fn walk(
    git: &Repository,
    odb: &Odb<'_>,
    tree: &Tree<'_>,
    prefix: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
) -> Res<()> {
    for te in tree.iter() {
        let Ok(name) = te.name() else { continue };
        let path = join(prefix, name);
        match te.kind() {
            Some(ObjectType::Tree) => {
                out.push(Entry::Dir {
                    path: path.clone(),
                    oid: te.id(),
                });
                if recursive {
                    let sub = git.find_tree(te.id()).map_err(git_err)?;
                    walk(git, odb, &sub, &path, true, out)?;
                }
            }
            Some(ObjectType::Blob) => out.push(Entry::File {
                path,
                info: file_info(odb, te.id())?,
            }),
            _ => {}
        }
    }
    Ok(())
}

fn tree_listing(
    git: &Repository,
    commit: &git2::Commit<'_>,
    path: Option<&str>,
    recursive: bool,
) -> Res<Value> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut out = Vec::new();
    match path {
        None => walk(git, &odb, &root, "", recursive, &mut out)?,
        Some(p) => {
            let entry = root.get_path(Path::new(p)).map_err(|_| {
                hub_404(
                    "EntryNotFound",
                    format!("{p} does not exist at {}", commit.id()),
                )
            })?;
            // A file path lists nothing (as the fake Hub does); a directory lists its content.
            if entry.kind() == Some(ObjectType::Tree) {
                let sub = git.find_tree(entry.id()).map_err(git_err)?;
                walk(git, &odb, &sub, p, recursive, &mut out)?;
            }
        }
    }
    Ok(Value::Array(out.iter().map(Entry::to_json).collect()))
}

fn paths_info(git: &Repository, commit: &git2::Commit<'_>, paths: &[&str]) -> Res<Value> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/');
        if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            continue;
        }
        let Ok(te) = root.get_path(Path::new(p)) else {
            continue;
        };
        match te.kind() {
            Some(ObjectType::Tree) => out.push(Entry::Dir {
                path: p.to_string(),
                oid: te.id(),
            }),
            Some(ObjectType::Blob) => out.push(Entry::File {
                path: p.to_string(),
                info: file_info(&odb, te.id())?,
            }),
            _ => {}
        }
    }
    Ok(Value::Array(out.iter().map(Entry::to_json).collect()))
}

fn repo_info(
    git: &Repository,
    repo: &RepoRef,
    commit: &git2::Commit<'_>,
    blobs: bool,
) -> Res<Value> {
    let root = commit.tree().map_err(git_err)?;
    let odb = git.odb().map_err(git_err)?;
    let mut entries = Vec::new();
    walk(git, &odb, &root, "", true, &mut entries)?;
    let siblings: Vec<Value> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Dir { .. } => None,
            Entry::File { path, info } => {
                let mut s = json!({ "rfilename": path });
                if blobs {
                    s["blobId"] = json!(info.oid.to_string());
                    s["size"] = json!(info.size());
                    if let Some(l) = &info.lfs {
                        s["lfs"] = json!({"sha256": l.sha256, "size": l.size, "pointerSize": info.blob_size});
                    }
                }
                Some(s)
            }
        })
        .collect();
    // The oldest commit reachable from this one: the repository's creation date.
    let mut walk = git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git_err)?;
    walk.push(commit.id()).map_err(git_err)?;
    let first = walk
        .next()
        .transpose()
        .map_err(git_err)?
        .and_then(|oid| git.find_commit(oid).ok())
        .map_or(commit.time().seconds(), |c| c.time().seconds());
    Ok(crate::hubjson::local_repo_info(
        &repo.key(),
        repo,
        &commit.id().to_string(),
        &iso8601(first),
        &iso8601(commit.time().seconds()),
        siblings,
    ))
}

fn refs(git: &Repository, include_prs: bool) -> Res<Value> {
    let mut all: Vec<(String, String)> = Vec::new();
    for r in git.references().map_err(git_err)? {
        let Ok(r) = r else { continue };
        let Ok(name) = r.name().map(str::to_string) else {
            continue;
        };
        if let Ok(c) = r.peel_to_commit() {
            all.push((name, c.id().to_string()));
        }
    }
    all.sort();
    let (mut branches, mut tags, mut converts, mut prs) = (vec![], vec![], vec![], vec![]);
    for (name, sha) in &all {
        let item = |short: &str| json!({"name": short, "ref": name, "targetCommit": sha});
        if let Some(b) = name.strip_prefix("refs/heads/") {
            branches.push(item(b));
        } else if let Some(t) = name.strip_prefix("refs/tags/") {
            tags.push(item(t));
        } else if let Some(c) = name.strip_prefix("refs/convert/") {
            converts.push(item(c));
        } else if name.starts_with("refs/pr/") {
            prs.push(item(name));
        }
    }
    let mut v = json!({"branches": branches, "converts": converts, "tags": tags});
    if include_prs {
        v["pullRequests"] = json!(prs);
    }
    Ok(v)
}

fn commits(git: &Repository, commit: &git2::Commit<'_>, formatted: bool) -> Res<Value> {
    let mut walk = git.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(git_err)?;
    walk.push(commit.id()).map_err(git_err)?;
    let mut out = Vec::new();
    for oid in walk {
        let c = git.find_commit(oid.map_err(git_err)?).map_err(git_err)?;
        let title = lossy(c.summary_bytes());
        let message = lossy(c.body_bytes()).trim_end().to_string();
        let author = String::from_utf8_lossy(c.author().name_bytes()).into_owned();
        let mut v = json!({
            "id": c.id().to_string(),
            "title": title,
            "message": message,
            "date": iso8601(c.time().seconds()),
            "authors": [{"user": author}],
        });
        if formatted {
            v["formatted"] =
                json!({"title": html_escape(&title), "message": html_escape(&message)});
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

fn lossy(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` of a Unix time (proleptic Gregorian, UTC).
fn iso8601(secs: i64) -> String {
    crate::timefmt::iso8601_ms(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

fn json_response(v: &Value, head: bool) -> Response {
    let body = v.to_string();
    let len = body.len();
    let mut r = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("txt" | "md" | "py" | "jsonl" | "csv") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn serve_file(f: FilePlan, head: bool, req_h: &HeaderMap) -> Result<Response, ApiError> {
    let size = f.info.size();
    let etag = format!("\"{}\"", f.info.etag());
    let mut h = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put(&mut h, "x-repo-commit", &f.commit);
    put(&mut h, "etag", &etag);
    if f.info.lfs.is_some() {
        put(&mut h, "x-linked-etag", &etag);
        put(&mut h, "x-linked-size", &size.to_string());
    }
    put(&mut h, "accept-ranges", "bytes");
    put(&mut h, "content-type", content_type(&f.path));
    let range = match olah_types::conditional::decide(
        &f.info.etag(),
        size,
        crate::conditional::conditions(req_h),
        1,
    ) {
        ConditionalAnswer::NotModified => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = h;
            return Ok(r);
        }
        ConditionalAnswer::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
        ConditionalAnswer::Whole => None,
        ConditionalAnswer::Ranges(r) => r.first().copied(),
    };
    let (status, start, len) = match range {
        Some((a, b)) => {
            put(&mut h, "content-range", &format!("bytes {a}-{b}/{size}"));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    put(&mut h, "content-length", &len.to_string());
    let body = if head || len == 0 {
        Body::empty()
    } else {
        match f.source {
            Source::Inline(b) => {
                let (a, n) = (start as usize, len as usize);
                if a + n > b.len() {
                    return Err(ApiError::Internal("git blob shorter than its size".into()));
                }
                Body::from(b.slice(a..a + n))
            }
            Source::Lfs(p) => Body::from_stream(lfs_stream(&p, start, len).await?),
            Source::Blob { dir, oid } => Body::from_stream(blob_stream(dir, oid, start, len)),
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    Ok(r)
}

/// Bytes `start..start+len` of an LFS object file, in chunks.
async fn lfs_stream(p: &Path, start: u64, len: u64) -> Result<IoStream, ApiError> {
    let io = |e: io::Error| ApiError::Internal(format!("LFS object {}: {e}", p.display()));
    let mut file = tokio::fs::File::open(p).await.map_err(io)?;
    file.seek(SeekFrom::Start(start)).await.map_err(io)?;
    let s = futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(CHUNK as u64) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "LFS object ended early",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(s.boxed())
}

/// Bytes `start..start+len` of a (large) git blob: a blocking producer reads the object (as a
/// stream when the object database can, i.e. loose objects; else whole) and hands chunks over a
/// bounded channel. It stops when the body is dropped.
fn blob_stream(dir: PathBuf, oid: Oid, start: u64, len: u64) -> IoStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let send = |chunk: Result<Bytes, io::Error>| tx.blocking_send(chunk).is_ok();
        let res = (|| -> Result<(), io::Error> {
            let repo = Repository::open_ext(
                &dir,
                RepositoryOpenFlags::NO_SEARCH,
                std::iter::empty::<&OsStr>(),
            )
            .map_err(io::Error::other)?;
            let odb = repo.odb().map_err(io::Error::other)?;
            if let Ok((mut reader, _, _)) = odb.reader(oid) {
                let mut skip = start;
                let mut left = len;
                let mut buf = vec![0u8; CHUNK];
                while left > 0 {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "git blob ended early",
                        ));
                    }
                    let mut piece = &buf[..n];
                    let drop = skip.min(piece.len() as u64) as usize;
                    skip -= drop as u64;
                    piece = &piece[drop..];
                    let take = left.min(piece.len() as u64) as usize;
                    if take > 0 {
                        left -= take as u64;
                        if !send(Ok(Bytes::copy_from_slice(&piece[..take]))) {
                            return Ok(());
                        }
                    }
                }
                return Ok(());
            }
            let blob = repo.find_blob(oid).map_err(io::Error::other)?;
            let content = blob.content();
            let end = start.saturating_add(len);
            if end > content.len() as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "git blob shorter than its size",
                ));
            }
            for piece in content[start as usize..end as usize].chunks(CHUNK) {
                if !send(Ok(Bytes::copy_from_slice(piece))) {
                    return Ok(());
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use olah_types::parse_route;
    use std::process::Command;

    const DATE1: &str = "2024-03-01T12:00:00Z";
    const DATE2: &str = "2024-03-02T08:30:15Z";
    const BIG: usize = 5 << 20;

    fn git(dir: &Path, date: &str, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=Tester",
                "-c",
                "user.email=t@example.invalid",
            ])
            .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    fn lfs_content() -> Vec<u8> {
        (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    fn big_content() -> Vec<u8> {
        (0..BIG as u32).map(|i| (i ^ (i >> 9)) as u8).collect()
    }

    fn sha256_hex(b: &[u8]) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
    }

    fn pointer(content: &[u8]) -> String {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            sha256_hex(content),
            content.len()
        )
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        repo: PathBuf,
        c1: String,
        c2: String,
        dev: String,
    }

    /// `{root}/models/local/demo`: main (2 commits), dev, annotated tag v1, an LFS file.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("mirrors");
        let repo = root.join("models/local/demo");
        std::fs::create_dir_all(repo.join("sub/dir")).expect("mkdir");
        git(&repo, DATE1, &["init", "-q"]);
        std::fs::write(repo.join("README.md"), "hello v1\n").expect("write");
        std::fs::write(repo.join("sub/dir/nested.txt"), "nested v1\n").expect("write");
        std::fs::write(
            repo.join(".gitattributes"),
            "*.bin filter=lfs diff=lfs merge=lfs -text\n",
        )
        .expect("write");
        let lfs = lfs_content();
        std::fs::write(repo.join("weights.bin"), pointer(&lfs)).expect("write");
        let sha = sha256_hex(&lfs);
        let obj = repo
            .join(".git/lfs/objects")
            .join(&sha[..2])
            .join(&sha[2..4]);
        std::fs::create_dir_all(&obj).expect("mkdir");
        std::fs::write(obj.join(&sha), &lfs).expect("write");
        git(&repo, DATE1, &["add", "-A"]);
        git(&repo, DATE1, &["commit", "-q", "-m", "first\n\nbody <b>"]);
        let c1 = git(&repo, DATE1, &["rev-parse", "HEAD"]);
        git(&repo, DATE1, &["tag", "-a", "v1", "-m", "tag v1"]);
        git(&repo, DATE1, &["checkout", "-q", "-b", "dev"]);
        std::fs::write(repo.join("README.md"), "hello dev\n").expect("write");
        git(&repo, DATE2, &["commit", "-q", "-am", "dev change"]);
        let dev = git(&repo, DATE2, &["rev-parse", "HEAD"]);
        git(&repo, DATE2, &["checkout", "-q", "main"]);
        std::fs::write(repo.join("README.md"), "hello v2\n").expect("write");
        std::fs::write(repo.join("big.dat"), big_content()).expect("write");
        git(&repo, DATE2, &["add", "-A"]);
        git(&repo, DATE2, &["commit", "-q", "-m", "second"]);
        let c2 = git(&repo, DATE2, &["rev-parse", "HEAD"]);
        // The working tree must not matter: only committed content is served.
        std::fs::write(repo.join("README.md"), "uncommitted\n").expect("write");
        Fixture {
            _tmp: tmp,
            root,
            repo,
            c1,
            c2,
            dev,
        }
    }

    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Answer {
        fn h(&self, k: &str) -> &str {
            self.headers
                .get(k)
                .map(|v| v.to_str().expect("ascii"))
                .unwrap_or("")
        }
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("json body")
        }
    }

    async fn call_full(
        local: &LocalRepos,
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &[(&'static str, &str)],
        body: Option<&str>,
    ) -> Option<Answer> {
        let route = parse_route(path).expect("route");
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        let r = local
            .handle(
                &method,
                &route,
                query,
                &h,
                body.map(|b| Bytes::from(b.to_string())),
            )
            .await?;
        let r = r.unwrap_or_else(|e| e.into_response());
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    async fn get(local: &LocalRepos, path: &str) -> Answer {
        call_full(local, Method::GET, path, None, &[], None)
            .await
            .expect("local repo")
    }

    fn blob_id(content: &[u8]) -> String {
        Oid::hash_object(ObjectType::Blob, content)
            .expect("hash")
            .to_string()
    }

    #[tokio::test]
    async fn other_repos_are_not_local() {
        let f = fixture();
        let local = LocalRepos::new(vec![f.root.clone()]);
        // Unknown repo, other kind, a directory that is not a repository, no repo in the route.
        std::fs::create_dir_all(f.root.join("models/local/plain")).expect("mkdir");
        for p in [
            "/local/other/resolve/main/README.md",
            "/datasets/local/demo/resolve/main/README.md",
            "/local/plain/resolve/main/README.md",
            "/api/models/local",
            "/api/whoami-v2",
        ] {
            let route = parse_route(p).expect("route");
            assert!(
                local
                    .handle(&Method::GET, &route, None, &HeaderMap::new(), None)
                    .await
                    .is_none(),
                "{p}"
            );
        }
        let none = LocalRepos::new(vec![]);
        let route = parse_route("/local/demo/resolve/main/README.md").expect("route");
        assert!(
            none.handle(&Method::GET, &route, None, &HeaderMap::new(), None)
                .await
                .is_none()
        );
        // A second root is searched when the first does not hold the repo.
        let two = LocalRepos::new(vec![f.root.join("nowhere"), f.root.clone()]);
        assert_eq!(
            get(&two, "/local/demo/resolve/main/README.md").await.body,
            "hello v2\n"
        );
    }

    #[tokio::test]
    async fn resolve_by_branch_tag_and_sha() {
        let f = fixture();
        let local = LocalRepos::new(vec![f.root.clone()]);
        for (rev, want, commit) in [
            ("main", "hello v2\n", &f.c2),
            ("dev", "hello dev\n", &f.dev),
            ("v1", "hello v1\n", &f.c1),
            (f.c1.as_str(), "hello v1\n", &f.c1),
            (&f.c1[..7], "hello v1\n", &f.c1),
            ("refs%2Fheads%2Fdev", "hello dev\n", &f.dev),
        ] {
            let a = get(&local, &format!("/local/demo/resolve/{rev}/README.md")).await;
            assert_eq!(a.status, StatusCode::OK, "{rev}");
            assert_eq!(a.body, want, "{rev}");
            assert_eq!(a.h("x-repo-commit"), commit.as_str(), "{rev}");
            assert_eq!(a.h("etag"), format!("\"{}\"", blob_id(want.as_bytes())));
            assert_eq!(a.h("content-length"), want.len().to_string());
            assert_eq!(a.h("accept-ranges"), "bytes");
            assert!(a.headers.get("x-linked-etag").is_none());
        }
        let a = get(&local, "/local/demo/resolve/main/sub/dir/nested.txt").await;
        assert_eq!(a.body, "nested v1\n");
        // HEAD: same headers, no body.
        let a = call_full(
            &local,
            Method::HEAD,
            "/local/demo/resolve/main/README.md",
            None,
            &[],
            None,
        )
        .await
        .expect("local");
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.h("content-length"), "9");
        assert!(a.body.is_empty());
        // Conditional GET.
        let etag = format!("\"{}\"", blob_id(b"hello v2\n"));
        let a = call_full(
            &local,
            Method::GET,
            "/local/demo/resolve/main/README.md",
            None,
            &[("if-none-match", &etag)],
            None,
        )
        .await
        .expect("local");
        assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn lfs_files_are_served_from_the_lfs_store_with_ranges() {
        let f = fixture();
        let local = LocalRepos::new(vec![f.root.clone()]);
        let lfs = lfs_content();
        let sha = sha256_hex(&lfs);
        let a = get(&local, "/local/demo/resolve/v1/weights.bin").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, lfs);
        assert_eq!(a.h("etag"), format!("\"{sha}\""));
        assert_eq!(a.h("x-linked-etag"), format!("\"{sha}\""));
        assert_eq!(a.h("x-linked-size"), "3000");
        assert_eq!(a.h("content-length"), "3000");
        let head = call_full(
            &local,
            Method::HEAD,
            "/local/demo/resolve/main/weights.bin",
            None,
            &[],
            None,
        )
        .await
        .expect("local");
        assert_eq!(head.h("x-linked-size"), "3000");
        assert_eq!(head.h("x-repo-commit"), f.c2);
        assert!(head.body.is_empty());
        for (range, a, b) in [
            ("bytes=10-19", 10, 19),
            ("bytes=2990-", 2990, 2999),
            ("bytes=-5", 2995, 2999),
            ("bytes=100-99999", 100, 2999),
        ] {
            let r = call_full(
                &local,
                Method::GET,
                "/local/demo/resolve/main/weights.bin",
                None,
                &[("range", range)],
                None,
            )
            .await
            .expect("local");
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(r.body, lfs[a..=b], "{range}");
            assert_eq!(r.h("content-range"), format!("bytes {a}-{b}/3000"));
            assert_eq!(r.h("content-length"), (b - a + 1).to_string());
        }
        let r = call_full(
            &local,
            Method::GET,
            "/local/demo/resolve/main/weights.bin",
            None,
            &[("range", "bytes=3000-")],
            None,
        )
        .await
        .expect("local");
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.h("content-range"), "bytes */3000");
        // If-Range with another validator: the whole file.
        let r = call_full(
            &local,
            Method::GET,
            "/local/demo/resolve/main/weights.bin",
            None,
            &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
            None,
        )
        .await
        .expect("local");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), 3000);
        // If-Range compares strongly: the ETag itself keeps the range, its weak form does not.
        let etag = format!("\"{sha}\"");
        for (validator, status) in [
            (etag.clone(), StatusCode::PARTIAL_CONTENT),
            (format!("W/{etag}"), StatusCode::OK),
        ] {
            let r = call_full(
                &local,
                Method::GET,
                "/local/demo/resolve/main/weights.bin",
                None,
                &[("range", "bytes=0-1"), ("if-range", &validator)],
                None,
            )
            .await
            .expect("local");
            assert_eq!(r.status, status, "{validator}");
        }
        // The object is missing: an EntryNotFound error, not the pointer text.
        std::fs::remove_file(
            f.repo
                .join(".git/lfs/objects")
                .join(&sha[..2])
                .join(&sha[2..4])
                .join(&sha),
        )
        .expect("rm");
        let r = get(&local, "/local/demo/resolve/main/weights.bin").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.h("x-error-code"), "EntryNotFound");
    }

    #[tokio::test]
    async fn large_regular_blobs_stream_loose_and_packed() {
        let f = fixture();
        let big = big_content();
        let want_etag = format!("\"{}\"", blob_id(&big));
        // Loose objects (streamed by the odb reader), then a packed bare clone (read whole).
        let bare = f.root.join("models/local/bare");
        git(
            &f.root,
            DATE2,
            &[
                "clone",
                "-q",
                "--bare",
                f.repo.to_str().expect("utf-8"),
                bare.to_str().expect("utf-8"),
            ],
        );
        git(&bare, DATE2, &["repack", "-adq"]);
        git(&bare, DATE2, &["prune-packed"]);
        let local = LocalRepos::new(vec![f.root.clone()]);
        for repo in ["demo", "bare"] {
            let url = format!("/local/{repo}/resolve/main/big.dat");
            let a = get(&local, &url).await;
            assert_eq!(a.status, StatusCode::OK, "{repo}");
            assert_eq!(a.h("etag"), want_etag, "{repo}");
            assert!(a.body == big, "{repo}: whole body differs");
            let r = call_full(
                &local,
                Method::GET,
                &url,
                None,
                &[("range", "bytes=1000000-3000000")],
                None,
            )
            .await
            .expect("local");
            assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
            assert!(
                r.body == big[1_000_000..=3_000_000],
                "{repo}: range differs"
            );
        }
        // The bare clone has no LFS store yet: a bare repository keeps it in `lfs/`.
        let lfs = lfs_content();
        let sha = sha256_hex(&lfs);
        let r = get(&local, "/local/bare/resolve/main/weights.bin").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let obj = bare.join("lfs/objects").join(&sha[..2]).join(&sha[2..4]);
        std::fs::create_dir_all(&obj).expect("mkdir");
        std::fs::write(obj.join(&sha), &lfs).expect("write");
        let r = get(&local, "/local/bare/resolve/main/weights.bin").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, lfs);
    }

    #[tokio::test]
    async fn errors_are_hub_shaped() {
        let f = fixture();
        let local = LocalRepos::new(vec![f.root.clone()]);
        for p in [
            "/local/demo/resolve/nope/README.md",
            "/local/demo/resolve/0000000000000000000000000000000000000000/README.md",
            "/api/models/local/demo/revision/nope",
            "/api/models/local/demo/tree/nope",
            "/api/models/local/demo/commits/HEAD~1",
        ] {
            let a = get(&local, p).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{p}");
            assert_eq!(a.h("x-error-code"), "RevisionNotFound", "{p}");
        }
        let a = get(&local, "/local/demo/resolve/main/nope.txt").await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.h("x-error-code"), "EntryNotFound");
        assert_eq!(a.h("x-repo-commit"), f.c2);
        // A directory is not a file.
        let a = get(&local, "/local/demo/resolve/main/sub").await;
        assert_eq!(a.h("x-error-code"), "EntryNotFound");
        // big.dat exists on main only.
        let a = get(&local, "/local/demo/resolve/v1/big.dat").await;
        assert_eq!(a.h("x-error-code"), "EntryNotFound");
        assert_eq!(a.h("x-repo-commit"), f.c1);
        let a = get(&local, "/api/models/local/demo/tree/main/nope").await;
        assert_eq!(a.h("x-error-code"), "EntryNotFound");
        let a = call_full(
            &local,
            Method::POST,
            "/local/demo/resolve/main/README.md",
            None,
            &[],
            None,
        )
        .await
        .expect("local");
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn api_answers_from_history() {
        let f = fixture();
        let local = LocalRepos::new(vec![f.root.clone()]);
        let lfs = lfs_content();
        let sha = sha256_hex(&lfs);
        let ptr = pointer(&lfs);

        let info = get(&local, "/api/models/local/demo").await.json();
        assert_eq!(info["sha"], f.c2.as_str());
        assert_eq!(info["id"], "local/demo");
        assert_eq!(info["author"], "local");
        assert_eq!(info["lastModified"], "2024-03-02T08:30:15.000Z");
        assert_eq!(info["createdAt"], "2024-03-01T12:00:00.000Z");
        let names: Vec<&str> = info["siblings"]
            .as_array()
            .expect("siblings")
            .iter()
            .map(|s| s["rfilename"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names,
            [
                ".gitattributes",
                "README.md",
                "big.dat",
                "sub/dir/nested.txt",
                "weights.bin"
            ]
        );
        let info = call_full(
            &local,
            Method::GET,
            "/api/models/local/demo/revision/v1",
            Some("blobs=true"),
            &[],
            None,
        )
        .await
        .expect("local")
        .json();
        assert_eq!(info["sha"], f.c1.as_str());
        let w = info["siblings"]
            .as_array()
            .expect("siblings")
            .iter()
            .find(|s| s["rfilename"] == "weights.bin")
            .expect("weights.bin")
            .clone();
        assert_eq!(
            w,
            json!({"rfilename": "weights.bin", "blobId": blob_id(ptr.as_bytes()), "size": 3000,
                   "lfs": {"sha256": sha, "size": 3000, "pointerSize": ptr.len()}})
        );

        let top = get(&local, &format!("/api/models/local/demo/tree/{}", f.c1))
            .await
            .json();
        let sub_tree = git(&f.repo, DATE1, &["rev-parse", &format!("{}:sub", f.c1)]);
        assert_eq!(
            top,
            json!([
                {"type": "file", "oid": blob_id(b"*.bin filter=lfs diff=lfs merge=lfs -text\n"), "size": 42, "path": ".gitattributes"},
                {"type": "file", "oid": blob_id(b"hello v1\n"), "size": 9, "path": "README.md"},
                {"type": "directory", "oid": sub_tree, "size": 0, "path": "sub"},
                {"type": "file", "oid": blob_id(ptr.as_bytes()), "size": 3000, "path": "weights.bin",
                 "lfs": {"oid": sha, "size": 3000, "pointerSize": ptr.len()}},
            ])
        );
        let rec = call_full(
            &local,
            Method::GET,
            "/api/models/local/demo/tree/main",
            Some("recursive=true&expand=false"),
            &[],
            None,
        )
        .await
        .expect("local")
        .json();
        let paths: Vec<&str> = rec
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["path"].as_str().expect("path"))
            .collect();
        assert_eq!(
            paths,
            [
                ".gitattributes",
                "README.md",
                "big.dat",
                "sub",
                "sub/dir",
                "sub/dir/nested.txt",
                "weights.bin"
            ]
        );
        let sub = get(&local, "/api/models/local/demo/tree/main/sub%2Fdir")
            .await
            .json();
        assert_eq!(sub[0]["path"], "sub/dir/nested.txt");
        assert_eq!(sub.as_array().expect("array").len(), 1);

        let pi = call_full(
            &local,
            Method::POST,
            "/api/models/local/demo/paths-info/dev",
            None,
            &[],
            Some("paths=README.md&paths=sub&paths=missing&paths=weights.bin&expand=false"),
        )
        .await
        .expect("local")
        .json();
        let got: Vec<(&str, &str, u64)> = pi
            .as_array()
            .expect("array")
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().expect("path"),
                    e["type"].as_str().expect("type"),
                    e["size"].as_u64().expect("size"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("README.md", "file", 10),
                ("sub", "directory", 0),
                ("weights.bin", "file", 3000)
            ]
        );
        assert_eq!(pi[0]["oid"], blob_id(b"hello dev\n"));

        let refs = call_full(
            &local,
            Method::GET,
            "/api/models/local/demo/refs",
            Some("include_prs=1"),
            &[],
            None,
        )
        .await
        .expect("local")
        .json();
        assert_eq!(
            refs,
            json!({
                "branches": [
                    {"name": "dev", "ref": "refs/heads/dev", "targetCommit": f.dev},
                    {"name": "main", "ref": "refs/heads/main", "targetCommit": f.c2},
                ],
                "converts": [],
                "tags": [{"name": "v1", "ref": "refs/tags/v1", "targetCommit": f.c1}],
                "pullRequests": [],
            })
        );

        let commits = call_full(
            &local,
            Method::GET,
            "/api/models/local/demo/commits/main",
            Some("expand%5B%5D=formatted"),
            &[],
            None,
        )
        .await
        .expect("local")
        .json();
        assert_eq!(
            commits,
            json!([
                {"id": f.c2, "title": "second", "message": "", "date": "2024-03-02T08:30:15.000Z",
                 "authors": [{"user": "Tester"}], "formatted": {"title": "second", "message": ""}},
                {"id": f.c1, "title": "first", "message": "body <b>", "date": "2024-03-01T12:00:00.000Z",
                 "authors": [{"user": "Tester"}], "formatted": {"title": "first", "message": "body &lt;b&gt;"}},
            ])
        );
        let dev = get(&local, "/api/models/local/demo/commits/dev")
            .await
            .json();
        let ids: Vec<&str> = dev
            .as_array()
            .expect("array")
            .iter()
            .map(|c| c["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [f.dev.as_str(), f.c1.as_str()]);

        // HEAD on an API route: headers only.
        let h = call_full(
            &local,
            Method::HEAD,
            "/api/models/local/demo/refs",
            None,
            &[],
            None,
        )
        .await
        .expect("local");
        assert_eq!(h.status, StatusCode::OK);
        assert!(h.body.is_empty());
        assert!(h.h("content-type").starts_with("application/json"));
        // No Xet for local repositories.
        let x = get(&local, "/api/models/local/demo/xet-read-token/main").await;
        assert_eq!(x.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn main_falls_back_to_head() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("datasets/org/data");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, DATE1, &["init", "-q", "-b", "master"]);
        std::fs::write(repo.join("a.csv"), "x,y\n").expect("write");
        git(&repo, DATE1, &["add", "-A"]);
        git(&repo, DATE1, &["commit", "-q", "-m", "only"]);
        let local = LocalRepos::new(vec![tmp.path().to_path_buf()]);
        let a = get(&local, "/datasets/org/data/resolve/main/a.csv").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body, "x,y\n");
        let a = get(&local, "/datasets/org/data/resolve/master/a.csv").await;
        assert_eq!(a.body, "x,y\n");
        // An empty repository has no revision at all.
        let empty = tmp.path().join("spaces/org/empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        git(&empty, DATE1, &["init", "-q"]);
        let a = get(&local, "/api/spaces/org/empty/revision/main").await;
        assert_eq!(a.h("x-error-code"), "RevisionNotFound");
    }

    #[test]
    fn pointer_parsing_and_dates() {
        let p = pointer(b"abc");
        let got = parse_lfs_pointer(p.as_bytes()).expect("pointer");
        assert_eq!(got.size, 3);
        assert_eq!(got.sha256, sha256_hex(b"abc"));
        assert!(
            parse_lfs_pointer(b"version https://git-lfs.github.com/spec/v1\nsize 3\n").is_none()
        );
        assert!(parse_lfs_pointer(b"hello\n").is_none());
        assert!(parse_lfs_pointer(p.replace("sha256:", "sha1:").as_bytes()).is_none());
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_735_689_599), "2024-12-31T23:59:59.000Z");
        assert_eq!(iso8601(951_825_600), "2000-02-29T12:00:00.000Z");
        assert_eq!(
            iso8601(-1),
            "1970-01-01T00:00:00.000Z",
            "pre-epoch commit times clamp"
        );
    }
}
