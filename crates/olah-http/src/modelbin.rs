//! Model-bin mode: plain directories `DIR/<org>/<repo>/…` served as Hub model repos, offline.
//!
//! * Every directory two levels under `DIR` is the model repo `org/repo`; nothing else exists
//!   (datasets, spaces, one-level ids → 404 `RepoNotFound`).
//! * A repo's files are found by walking its directory on every request (hidden names skipped,
//!   symlinks followed only when their target stays under `DIR`). Its commit id is a synthetic
//!   sha1 over the sorted `(path, size, mtime)` of those files: it changes when a file is added,
//!   removed or touched. Revisions: `main` and that exact sha.
//! * Content hashes (sha256 for LFS-class files, git blob sha1 otherwise) are computed once per
//!   file state, streaming, on blocking threads, single-flight, cached in memory keyed by the
//!   file's `(path, size, mtime, inode, ctime)`.
//! * Request paths never become file system paths: they are looked up in the walked listing,
//!   whose entries are canonical paths checked to be under `DIR`.
//! * File bodies are streamed from disk in 1 MiB chunks.

// Errors are `ApiError` by design (the crate's one error type, rendered by `error.rs`); the
// sync helpers returning it are on cold paths, where boxing would only add noise.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use olah_types::{ConditionalAnswer, RepoPath, RepoRef, RepoType, Revision, Route};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Files larger than this are LFS-class whatever their extension.
const LFS_THRESHOLD: u64 = 10 << 20;
/// Extensions (lowercase) of LFS-class files.
const LFS_EXTENSIONS: &[&str] = &[
    "bin",
    "safetensors",
    "gguf",
    "pt",
    "pth",
    "onnx",
    "h5",
    "msgpack",
    "parquet",
];
/// Read size for hashing and for response bodies.
const CHUNK: usize = 1 << 20;
/// Deepest directory nesting walked inside a repo.
const MAX_DEPTH: usize = 64;
/// Most files listed in one repo (bounds memory per request).
const MAX_FILES: usize = 200_000;
/// Most paths honoured in one paths-info request.
const MAX_PATHS: usize = 10_000;
/// Largest paths-info body.
const MAX_BODY: usize = 1 << 20;
/// Attempts of a request whose files change while they are read.
const ATTEMPTS: usize = 3;
/// Hashes computed concurrently for one listing.
const HASH_PARALLELISM: usize = 4;
/// Title of the one synthetic commit.
const COMMIT_TITLE: &str = "model-bin snapshot";

/// The model-bin router: serves `root/<org>/<repo>/…` as model repos.
pub fn router(root: PathBuf) -> Router {
    let state = Arc::new(ModelBin {
        root,
        hashes: HashCache::default(),
    });
    Router::new().fallback(dispatch).with_state(state)
}

struct ModelBin {
    root: PathBuf,
    hashes: HashCache,
}

// ------------------------------------------------------------------------------------------
// Repo listing

/// What identifies one state of a file: a change of any field means "re-hash".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    ino: u64,
    ctime_ns: i128,
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Self {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let (ino, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            (
                md.ino(),
                i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
            )
        };
        #[cfg(not(unix))]
        let (ino, ctime_ns) = (0, 0);
        Self {
            size: md.len(),
            mtime_ns,
            ino,
            ctime_ns,
        }
    }
}

/// A file of a repo: its canonical location (under the root) and its state when walked.
#[derive(Debug, Clone)]
struct FileEntry {
    abs: PathBuf,
    stamp: Stamp,
}

/// A repo as walked for one request.
#[derive(Debug)]
struct RepoState {
    id: String,
    /// Relative `/`-separated path → file.
    files: BTreeMap<String, FileEntry>,
    /// Every directory holding at least one listed file (relative, no trailing `/`).
    dirs: BTreeSet<String>,
    commit: String,
    last_modified_ns: u128,
}

fn repo_not_found(id: &str) -> ApiError {
    ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "RepoNotFound",
        message: format!("Repository {id} not found"),
    }
}

/// A file or directory name that can be part of a [`RepoPath`] and is not hidden.
fn listable(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.chars().any(|c| c.is_control() || c == '\\')
}

/// Walks `root/<org>/<name>` (blocking).
fn scan(root: &Path, repo: &RepoRef) -> Result<RepoState, ApiError> {
    let id = repo.id.as_str();
    let (RepoType::Model, Some(org)) = (repo.kind, repo.id.namespace()) else {
        return Err(repo_not_found(id));
    };
    let root = fs::canonicalize(root).map_err(|e| {
        ApiError::Internal(format!("model-bin root {} unusable: {e}", root.display()))
    })?;
    // RepoId segments are validated (no `/`, `..`, leading `.`), so this join stays two levels
    // down; the canonical form is checked anyway (the repo dir may be a symlink).
    let dir =
        fs::canonicalize(root.join(org).join(repo.id.name())).map_err(|_| repo_not_found(id))?;
    if !dir.starts_with(&root) || dir == root || !dir.is_dir() {
        return Err(repo_not_found(id));
    }
    let mut files = BTreeMap::new();
    // (canonical dir, relative prefix, canonical dirs from the repo root down to it)
    let mut stack = vec![(dir.clone(), String::new(), vec![dir.clone()])];
    while let Some((abs, prefix, chain)) = stack.pop() {
        let rd = match fs::read_dir(&abs) {
            Ok(rd) => rd,
            Err(e) if prefix.is_empty() => {
                return Err(ApiError::Internal(format!("cannot list {id}: {e}")));
            }
            Err(e) => {
                tracing::warn!(repo = id, dir = prefix, error = %e, "model-bin: unreadable directory skipped");
                continue;
            }
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(name) = name.to_str().filter(|n| listable(n)) else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(ft) = ent.file_type() else { continue };
            let (real, md) = if ft.is_symlink() {
                let Ok(real) = fs::canonicalize(ent.path()) else {
                    continue; // dangling
                };
                if !real.starts_with(&root) {
                    tracing::debug!(
                        repo = id,
                        path = rel,
                        "model-bin: symlink leaving the root refused"
                    );
                    continue;
                }
                match fs::metadata(&real) {
                    Ok(md) => (real, md),
                    Err(_) => continue,
                }
            } else {
                match ent.metadata() {
                    // `abs` is canonical and `name` is no symlink: the joined path is canonical.
                    Ok(md) => (ent.path(), md),
                    Err(_) => continue,
                }
            };
            if md.is_dir() {
                // A directory already on the way down (symlink loop) is not entered again.
                if chain.len() < MAX_DEPTH && !chain.contains(&real) {
                    let mut chain = chain.clone();
                    chain.push(real.clone());
                    stack.push((real, rel, chain));
                }
            } else if md.is_file() && RepoPath::new(&rel).is_ok() {
                if files.len() >= MAX_FILES {
                    return Err(ApiError::Internal(format!(
                        "{id} has more than {MAX_FILES} files"
                    )));
                }
                files.insert(
                    rel,
                    FileEntry {
                        abs: real,
                        stamp: Stamp::of(&md),
                    },
                );
            }
        }
    }
    let mut dirs = BTreeSet::new();
    for path in files.keys() {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            dirs.insert(path[..end].to_string());
            end += 1;
        }
    }
    let mut h = Sha1::new();
    h.update(b"olah model-bin v1\n");
    for (path, f) in &files {
        h.update(format!("{path}\0{}\0{}\n", f.stamp.size, f.stamp.mtime_ns).as_bytes());
    }
    let last_modified_ns = files
        .values()
        .map(|f| f.stamp.mtime_ns)
        .max()
        .or_else(|| fs::metadata(&dir).ok().map(|m| Stamp::of(&m).mtime_ns))
        .unwrap_or(0);
    Ok(RepoState {
        id: id.to_string(),
        files,
        dirs,
        commit: hex::encode(h.finalize()),
        last_modified_ns,
    })
}

impl RepoState {
    fn check_revision(&self, rev: &Revision) -> Result<(), ApiError> {
        if rev.as_str() == "main" || rev.as_str() == self.commit {
            Ok(())
        } else {
            Err(ApiError::Hub {
                status: StatusCode::NOT_FOUND,
                code: "RevisionNotFound",
                message: format!("Invalid rev id: {}", rev.as_str()),
            })
        }
    }

    fn date(&self) -> String {
        iso8601(self.last_modified_ns)
    }

    /// Files under `dir/` (`dir` empty = the whole repo), in path order.
    fn files_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a FileEntry)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.files
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// A synthetic tree id: changes whenever a file below the directory changes.
    fn dir_oid(&self, dir: &str) -> String {
        let mut h = Sha1::new();
        h.update(format!("tree {dir}\0").as_bytes());
        for (path, f) in self.files_under(dir) {
            h.update(format!("{path}\0{}\0{}\n", f.stamp.size, f.stamp.mtime_ns).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

fn is_lfs(path: &str, size: u64) -> bool {
    size > LFS_THRESHOLD
        || path
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .is_some_and(|ext| !ext.contains('/') && LFS_EXTENSIONS.contains(&ext.as_str()))
}

fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

fn git_blob_header(size: u64) -> Vec<u8> {
    format!("blob {size}\0").into_bytes()
}

// ------------------------------------------------------------------------------------------
// Content hashes

/// Hashes of one file state.
#[derive(Debug, Clone)]
struct FileHash {
    /// Git blob id: of the content, or of the LFS pointer for LFS-class files.
    oid: String,
    /// sha256 of the content, for LFS-class files.
    sha256: Option<String>,
}

impl FileHash {
    fn etag(&self) -> &str {
        self.sha256.as_deref().unwrap_or(&self.oid)
    }
}

#[derive(Debug, Clone)]
enum HashError {
    /// The file changed under us: walk again.
    Changed,
    Io(String),
}

type HashFuture = Shared<BoxFuture<'static, Result<FileHash, HashError>>>;

/// Single-flight, in-memory cache of file hashes. The hashing runs detached on a blocking
/// thread: a client that goes away does not cancel it, the next one picks up its result.
#[derive(Default)]
struct HashCache {
    map: Mutex<HashMap<(PathBuf, bool), (Stamp, HashFuture)>>,
    /// Hash computations started (observability and tests).
    runs: AtomicU64,
}

impl HashCache {
    async fn get(&self, f: &FileEntry, lfs: bool) -> Result<FileHash, HashError> {
        let key = (f.abs.clone(), lfs);
        let fut = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some((stamp, fut)) if *stamp == f.stamp => fut.clone(),
                _ => {
                    self.runs.fetch_add(1, Ordering::Relaxed);
                    let (abs, stamp) = (f.abs.clone(), f.stamp);
                    let task = tokio::task::spawn_blocking(move || hash_file(&abs, stamp, lfs));
                    let fut = async move {
                        task.await
                            .unwrap_or_else(|e| Err(HashError::Io(format!("hash task: {e}"))))
                    }
                    .boxed()
                    .shared();
                    map.insert(key.clone(), (f.stamp, fut.clone()));
                    fut
                }
            }
        };
        let res = fut.await;
        if res.is_err() {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&key).is_some_and(|(s, _)| *s == f.stamp) {
                map.remove(&key);
            }
        }
        res
    }
}

/// Hashes a file in chunks (blocking); `Changed` when it is not in state `stamp` throughout.
fn hash_file(abs: &Path, stamp: Stamp, lfs: bool) -> Result<FileHash, HashError> {
    let io_err = |e: io::Error| HashError::Io(format!("{}: {e}", abs.display()));
    let mut file = fs::File::open(abs).map_err(io_err)?;
    if Stamp::of(&file.metadata().map_err(io_err)?) != stamp {
        return Err(HashError::Changed);
    }
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    if !lfs {
        sha1.update(git_blob_header(stamp.size));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        total += n as u64;
        if lfs {
            sha256.update(&buf[..n]);
        } else {
            sha1.update(&buf[..n]);
        }
    }
    if total != stamp.size || Stamp::of(&file.metadata().map_err(io_err)?) != stamp {
        return Err(HashError::Changed);
    }
    Ok(if lfs {
        let sha = hex::encode(sha256.finalize());
        let pointer = lfs_pointer(&sha, stamp.size);
        FileHash {
            oid: git_blob_oid(pointer.as_bytes()),
            sha256: Some(sha),
        }
    } else {
        FileHash {
            oid: hex::encode(sha1.finalize()),
            sha256: None,
        }
    })
}

fn git_blob_oid(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(git_blob_header(content.len() as u64));
    h.update(content);
    hex::encode(h.finalize())
}

/// `2025-01-01T00:00:00.000Z` from nanoseconds since the epoch (UTC).
fn iso8601(ns: u128) -> String {
    crate::timefmt::iso8601_ms(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX))
}

// ------------------------------------------------------------------------------------------
// HTTP

/// Why a request failed: an answer, or "files changed while read, try again".
enum Fail {
    Api(ApiError),
    Changed,
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<HashError> for Fail {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Changed => Self::Changed,
            HashError::Io(m) => Self::Api(ApiError::Internal(m)),
        }
    }
}

type Reply = Result<Response, Fail>;

async fn dispatch(State(mb): State<Arc<ModelBin>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return ApiError::bad_request("request body too large or unreadable")
                    .into_response();
            }
        }
    } else {
        Bytes::new()
    };
    let mut resp = None;
    for _ in 0..ATTEMPTS {
        match handle(&mb, &parts.method, &parts.uri, &parts.headers, &body).await {
            Ok(r) => {
                resp = Some(r);
                break;
            }
            Err(Fail::Api(e)) => {
                resp = Some(e.into_response());
                break;
            }
            Err(Fail::Changed) => continue,
        }
    }
    let resp = resp.unwrap_or_else(|| {
        ApiError::Hub {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "ContentChanging",
            message: "files of this repo keep changing while being read; retry later".into(),
        }
        .into_response()
    });
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), status = resp.status().as_u16(), "model-bin");
    resp
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True" | "TRUE" | "yes")
}

fn query_flag(uri: &Uri, name: &str) -> bool {
    query_pairs(uri).iter().any(|(k, v)| k == name && truthy(v))
}

async fn handle(
    mb: &Arc<ModelBin>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Reply {
    let route = olah_types::parse_route(uri.path()).map_err(ApiError::from)?;
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Health if read => Ok("ok".into_response()),
        Route::Whoami if read => Err(ApiError::Hub {
            status: StatusCode::UNAUTHORIZED,
            code: "Unauthorized",
            message: "model-bin mode has no accounts".into(),
        }
        .into()),
        Route::XetReadToken { .. } if read => Err(crate::xet::disabled().into()),
        Route::Resolve {
            repo,
            revision,
            path,
        } if read => resolve(mb, &repo, &revision, &path, headers, method == Method::HEAD).await,
        Route::RepoInfo { repo } if read => {
            let main = Revision::new("main").map_err(|e| ApiError::Internal(e.to_string()))?;
            info(mb, &repo, &main, uri).await
        }
        Route::RevisionInfo { repo, revision } if read => info(mb, &repo, &revision, uri).await,
        Route::Tree {
            repo,
            revision,
            path,
        } if read => tree(mb, &repo, &revision, path.as_ref(), uri).await,
        Route::PathsInfo { repo, revision } if method == Method::POST => {
            paths_info(mb, &repo, &revision, headers, body).await
        }
        Route::Refs { repo } if read => {
            let st = mb.state(&repo).await?;
            Ok(json_response(&json!({
                "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": st.commit}],
                "tags": [],
                "converts": [],
                "pullRequests": [],
            })))
        }
        Route::Commits { repo, revision } if read => {
            let st = mb.state(&repo).await?;
            st.check_revision(&revision)?;
            Ok(json_response(&json!([{
                "id": st.commit,
                "title": COMMIT_TITLE,
                "message": "",
                "date": st.date(),
                "authors": [{"user": "model-bin", "avatar": null}],
                "formatted": {"title": COMMIT_TITLE, "message": ""},
            }])))
        }
        _ => Err(ApiError::Hub {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "MethodNotAllowed",
            message: format!("{method} is not supported on this route"),
        }
        .into()),
    }
}

impl ModelBin {
    async fn state(&self, repo: &RepoRef) -> Result<Arc<RepoState>, ApiError> {
        let (root, repo) = (self.root.clone(), repo.clone());
        tokio::task::spawn_blocking(move || scan(&root, &repo))
            .await
            .map_err(|e| ApiError::Internal(format!("scan task: {e}")))?
            .map(Arc::new)
    }

    /// A tree entry of a file.
    async fn file_json(
        &self,
        st: &RepoState,
        path: &str,
        f: &FileEntry,
        expand: bool,
    ) -> Result<Value, Fail> {
        let h = self.hashes.get(f, is_lfs(path, f.stamp.size)).await?;
        let mut v = json!({"type": "file", "oid": h.oid, "size": f.stamp.size, "path": path});
        if let Some(sha) = &h.sha256 {
            v["lfs"] = json!({
                "oid": sha,
                "size": f.stamp.size,
                "pointerSize": lfs_pointer(sha, f.stamp.size).len(),
            });
        }
        if expand {
            v["lastCommit"] = last_commit(st);
        }
        Ok(v)
    }

    /// Tree entries of `paths` (files and directories of `st`), in order.
    async fn entries(&self, st: &RepoState, paths: Vec<String>, expand: bool) -> Reply {
        let items: Vec<Value> = futures::stream::iter(paths)
            .map(|p| async move {
                match st.files.get(&p) {
                    Some(f) => self.file_json(st, &p, f, expand).await,
                    None => {
                        let mut v = json!({
                            "type": "directory",
                            "oid": st.dir_oid(&p),
                            "size": 0,
                            "path": p,
                        });
                        if expand {
                            v["lastCommit"] = last_commit(st);
                        }
                        Ok(v)
                    }
                }
            })
            .buffered(HASH_PARALLELISM)
            .try_collect()
            .await?;
        Ok(json_response(&Value::Array(items)))
    }
}

fn last_commit(st: &RepoState) -> Value {
    json!({"id": st.commit, "title": COMMIT_TITLE, "date": st.date()})
}

fn json_response(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn entry_not_found(commit: &str, path: &str) -> Response {
    let mut r = ApiError::Hub {
        status: StatusCode::NOT_FOUND,
        code: "EntryNotFound",
        message: format!("Entry not found: {path}"),
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(commit) {
        r.headers_mut().insert("x-repo-commit", v);
    }
    r
}

async fn info(mb: &ModelBin, repo: &RepoRef, revision: &Revision, uri: &Uri) -> Reply {
    let st = mb.state(repo).await?;
    st.check_revision(revision)?;
    let blobs = query_flag(uri, "blobs");
    let files: Vec<(String, FileEntry)> = st
        .files
        .iter()
        .map(|(p, f)| (p.clone(), f.clone()))
        .collect();
    let siblings: Vec<Value> = futures::stream::iter(files)
        .map(|(path, f)| async move {
            if !blobs {
                return Ok::<_, Fail>(json!({"rfilename": path}));
            }
            let h = mb.hashes.get(&f, is_lfs(&path, f.stamp.size)).await?;
            let mut v = json!({"rfilename": path, "blobId": h.oid, "size": f.stamp.size});
            if let Some(sha) = &h.sha256 {
                v["lfs"] = json!({
                    "sha256": sha,
                    "size": f.stamp.size,
                    "pointerSize": lfs_pointer(sha, f.stamp.size).len(),
                });
            }
            Ok(v)
        })
        .buffered(HASH_PARALLELISM)
        .try_collect()
        .await?;
    let date = st.date();
    let mut info = crate::hubjson::local_repo_info(
        &format!("model-bin/{}", st.id),
        repo,
        &st.commit,
        &date,
        &date,
        siblings,
    );
    info["modelId"] = json!(st.id);
    info["spaces"] = json!([]);
    info["usedStorage"] = json!(st.files.values().map(|f| f.stamp.size).sum::<u64>());
    Ok(json_response(&info))
}

async fn tree(
    mb: &ModelBin,
    repo: &RepoRef,
    revision: &Revision,
    path: Option<&RepoPath>,
    uri: &Uri,
) -> Reply {
    let st = mb.state(repo).await?;
    st.check_revision(revision)?;
    let recursive = query_flag(uri, "recursive");
    let expand = query_flag(uri, "expand");
    let base = match path {
        None => String::new(),
        Some(p) if st.dirs.contains(p.as_str()) => p.as_str().to_string(),
        Some(p) => {
            return Ok(entry_not_found(&st.commit, p.as_str()));
        }
    };
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    let wanted =
        |p: &&String| p.starts_with(&prefix) && (recursive || !p[prefix.len()..].contains('/'));
    let mut paths: Vec<String> = st
        .dirs
        .iter()
        .filter(wanted)
        .chain(st.files.keys().filter(wanted))
        .cloned()
        .collect();
    paths.sort();
    mb.entries(&st, paths, expand).await
}

async fn paths_info(
    mb: &ModelBin,
    repo: &RepoRef,
    revision: &Revision,
    headers: &HeaderMap,
    body: &Bytes,
) -> Reply {
    let st = mb.state(repo).await?;
    st.check_revision(revision)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (asked, expand): (Vec<String>, bool) = if is_json {
        #[derive(serde::Deserialize)]
        struct Req {
            #[serde(default)]
            paths: Vec<String>,
            #[serde(default)]
            expand: bool,
        }
        let r: Req = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("paths-info body: {e}")))?;
        (r.paths, r.expand)
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::bad_request(format!("paths-info body: {e}")))?;
        let expand = pairs.iter().any(|(k, v)| k == "expand" && truthy(v));
        let paths = pairs
            .into_iter()
            .filter(|(k, _)| k == "paths" || k == "paths[]")
            .map(|(_, v)| v)
            .collect();
        (paths, expand)
    };
    if asked.len() > MAX_PATHS {
        return Err(ApiError::bad_request(format!("at most {MAX_PATHS} paths per request")).into());
    }
    let mut seen = BTreeSet::new();
    let paths: Vec<String> = asked
        .into_iter()
        .map(|p| p.trim_end_matches('/').to_string())
        .filter(|p| RepoPath::new(p).is_ok())
        .filter(|p| st.files.contains_key(p) || st.dirs.contains(p))
        .filter(|p| seen.insert(p.clone()))
        .collect();
    mb.entries(&st, paths, expand).await
}

fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "txt" | "model" | "vocab" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "py" => "text/x-python; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Opens a walked file positioned at `start`; `Changed` when it is no longer in its walked state.
fn open_at(f: &FileEntry, start: u64) -> Result<fs::File, HashError> {
    let io_err = |e: io::Error| HashError::Io(format!("{}: {e}", f.abs.display()));
    let mut file = fs::File::open(&f.abs).map_err(io_err)?;
    if Stamp::of(&file.metadata().map_err(io_err)?) != f.stamp {
        return Err(HashError::Changed);
    }
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    Ok(file)
}

/// `len` bytes of `file` from its position, in chunks read on blocking threads (one at a time,
/// so memory stays flat). A file that ends early aborts the body with an error.
fn file_stream(
    file: fs::File,
    len: u64,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        let (file, buf) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            file.read_exact(&mut buf)?;
            Ok::<_, io::Error>((file, buf))
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some((Bytes::from(buf), (file, left - n as u64))))
    })
}

async fn resolve(
    mb: &ModelBin,
    repo: &RepoRef,
    revision: &Revision,
    path: &RepoPath,
    req: &HeaderMap,
    is_head: bool,
) -> Reply {
    let st = mb.state(repo).await?;
    st.check_revision(revision)?;
    let Some(f) = st.files.get(path.as_str()) else {
        return Ok(entry_not_found(&st.commit, path.as_str()));
    };
    let size = f.stamp.size;
    let lfs = is_lfs(path.as_str(), size);
    let hash = mb.hashes.get(f, lfs).await?;
    let etag = format!("\"{}\"", hash.etag());
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put("x-repo-commit", &st.commit);
    put("etag", &etag);
    if lfs {
        put("x-linked-etag", &etag);
        put("x-linked-size", &size.to_string());
    }
    put("accept-ranges", "bytes");
    put("content-type", content_type(path.as_str()));
    let range = match olah_types::conditional::decide(
        hash.etag(),
        size,
        crate::conditional::conditions(req),
        1,
    ) {
        ConditionalAnswer::NotModified => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = h;
            return Ok(r);
        }
        ConditionalAnswer::Unsatisfiable => {
            return Err(ApiError::RangeNotSatisfiable { size }.into());
        }
        ConditionalAnswer::Whole => None,
        ConditionalAnswer::Ranges(r) => r.first().copied(),
    };
    let (status, start, len) = match range {
        Some((a, b)) => {
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {a}-{b}/{size}"))
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = if is_head || len == 0 {
        Body::empty()
    } else {
        let entry = f.clone();
        let file = tokio::task::spawn_blocking(move || open_at(&entry, start))
            .await
            .map_err(|e| ApiError::Internal(format!("open task: {e}")))??;
        Body::from_stream(file_stream(file, len))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};
    use tower::ServiceExt;

    const PTR_PREFIX: &str = "version https://git-lfs.github.com/spec/v1\n";

    fn sha256_hex(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn write(root: &Path, rel: &str, content: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }

    /// Sets a file's mtime explicitly (file system timestamps can be coarser than a test step).
    fn set_mtime(root: &Path, rel: &str, secs: u64) {
        let f = fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    fn big_content(n: usize) -> Vec<u8> {
        (0..n as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    struct Fixture {
        dir: tempfile::TempDir,
        outside: tempfile::TempDir,
        app: Router,
        big: Vec<u8>,
        tensors: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "acme/m1/config.json", b"{\"a\": 1}\n");
        write(r, "acme/m1/sub/dir/x.txt", b"hello world\n");
        let tensors = big_content(300_000);
        write(r, "acme/m1/model.safetensors", &tensors);
        let big = big_content((10 << 20) + 7);
        write(r, "acme/m1/big.dat", &big);
        write(r, "acme/m1/.hidden", b"secret");
        write(r, "acme/m1/.git/config", b"secret");
        write(r, "acme/m1/sub/.cache/y", b"secret");
        write(r, "acme/m1/emptydir/.keep", b"");
        write(r, "stray.txt", b"not a repo");
        write(outside.path(), "secret.txt", b"outside the root");
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(
                outside.path().join("secret.txt"),
                r.join("acme/m1/leak.txt"),
            )
            .unwrap();
            symlink(outside.path(), r.join("acme/m1/leakdir")).unwrap();
            symlink(outside.path(), r.join("acme/escape")).unwrap();
            symlink(r.join("acme/m1/sub/dir/x.txt"), r.join("acme/m1/alias.txt")).unwrap();
            symlink(r.join("acme/m1/sub"), r.join("acme/m1/sub/dir/loop")).unwrap();
            symlink(r.join("acme/m1/sub/dir"), r.join("acme/m1/linked")).unwrap();
        }
        let app = router(r.to_path_buf());
        Fixture {
            dir,
            outside,
            app,
            big,
            tensors,
        }
    }

    struct Got {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Got {
        fn h(&self, k: &str) -> &str {
            self.headers
                .get(k)
                .map(|v| v.to_str().unwrap())
                .unwrap_or_else(|| panic!("missing header {k}: {:?}", self.headers))
        }
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
        fn code(&self) -> Option<&str> {
            self.headers
                .get("x-error-code")
                .map(|v| v.to_str().unwrap())
        }
    }

    async fn call(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Got {
        call_body(app, method, uri, headers, Body::empty()).await
    }

    async fn call_body(
        app: &Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Got {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Got {
            status,
            headers,
            body,
        }
    }

    async fn commit_of(app: &Router, repo: &str) -> String {
        let g = call(app, "GET", &format!("/api/models/{repo}"), &[]).await;
        assert_eq!(g.status, StatusCode::OK);
        g.json()["sha"].as_str().unwrap().to_string()
    }

    #[test]
    fn sha1_matches_known_vectors_and_git_blob_ids() {
        let hexsha = |chunks: &[&[u8]]| {
            let mut h = Sha1::new();
            for c in chunks {
                h.update(c);
            }
            hex::encode(h.finalize())
        };
        assert_eq!(hexsha(&[]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hexsha(&[b"abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let two_block = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hexsha(&[two_block]),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let million = vec![b'a'; 1_000_000];
        let want = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
        assert_eq!(hexsha(&[&million]), want);
        // Same digest whatever the chunking (buffer carry-over paths).
        let pieces: Vec<&[u8]> = million.chunks(37).collect();
        assert_eq!(hexsha(&pieces), want);
        let (a, b) = million.split_at(63);
        assert_eq!(hexsha(&[a, b]), want);
        // `git hash-object` ids.
        assert_eq!(
            git_blob_oid(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_oid(b"hello world\n"),
            "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
        );
    }

    #[test]
    fn dates_are_hub_shaped_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(1_735_689_600_000_000_000),
            "2025-01-01T00:00:00.000Z"
        );
        assert_eq!(
            iso8601(1_709_164_800_000_000_000 + 3_723_456_000_000),
            "2024-02-29T01:02:03.456Z"
        );
        assert_eq!(iso8601(951_868_799_999_000_000), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn lfs_class_by_extension_or_size() {
        assert!(is_lfs("model.safetensors", 10));
        assert!(is_lfs("a/b/W.BIN", 10));
        assert!(is_lfs("x.gguf", 0));
        assert!(!is_lfs("config.json", LFS_THRESHOLD));
        assert!(is_lfs("config.json", LFS_THRESHOLD + 1));
        assert!(!is_lfs("bin", 10));
        assert!(!is_lfs("dir.bin/readme", 10));
    }

    #[tokio::test]
    async fn resolve_serves_exact_bytes_with_hub_headers() {
        let fx = fixture();
        let app = &fx.app;
        let commit = commit_of(app, "acme/m1").await;
        assert_eq!(commit.len(), 40);

        // Regular file: git blob id as ETag, no linked headers.
        let g = call(app, "GET", "/acme/m1/resolve/main/sub/dir/x.txt", &[]).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(&g.body[..], b"hello world\n");
        assert_eq!(g.h("x-repo-commit"), commit);
        assert_eq!(g.h("etag"), "\"3b18e512dba79e4c8300dd08aeb37f8e728b8dad\"");
        assert_eq!(g.h("content-length"), "12");
        assert_eq!(g.h("accept-ranges"), "bytes");
        assert!(g.h("content-type").starts_with("text/plain"));
        assert!(g.headers.get("x-linked-etag").is_none());

        // LFS by extension: sha256 as ETag and X-Linked-Etag.
        let sha = sha256_hex(&fx.tensors);
        let g = call(
            app,
            "HEAD",
            &format!("/acme/m1/resolve/{commit}/model.safetensors"),
            &[],
        )
        .await;
        assert_eq!(g.status, StatusCode::OK);
        assert!(g.body.is_empty());
        assert_eq!(g.h("etag"), format!("\"{sha}\""));
        assert_eq!(g.h("x-linked-etag"), format!("\"{sha}\""));
        assert_eq!(g.h("x-linked-size"), fx.tensors.len().to_string());
        assert_eq!(g.h("content-length"), fx.tensors.len().to_string());
        assert_eq!(g.h("content-type"), "application/octet-stream");

        // LFS by size (> 10 MiB), streamed in several chunks.
        let g = call(app, "GET", "/acme/m1/resolve/main/big.dat", &[]).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.body.len(), fx.big.len());
        assert!(g.body == fx.big[..]);
        assert_eq!(g.h("x-linked-etag"), format!("\"{}\"", sha256_hex(&fx.big)));
        assert_eq!(g.h("content-type"), "application/octet-stream");

        // A symlink inside the root is served; the JSON file gets its content type.
        let g = call(app, "GET", "/acme/m1/resolve/main/alias.txt", &[]).await;
        assert_eq!(&g.body[..], b"hello world\n");
        let g = call(app, "GET", "/acme/m1/resolve/main/config.json", &[]).await;
        assert_eq!(g.h("content-type"), "application/json");

        // If-None-Match with the current ETag → 304.
        let etag = g.h("etag").to_string();
        let g = call(
            app,
            "GET",
            "/acme/m1/resolve/main/config.json",
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(g.status, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn ranges() {
        let fx = fixture();
        let app = &fx.app;
        let n = fx.big.len();
        let url = "/acme/m1/resolve/main/big.dat";
        let g = call(app, "GET", url, &[("range", "bytes=100-199")]).await;
        assert_eq!(g.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(g.h("content-range"), format!("bytes 100-199/{n}"));
        assert_eq!(g.h("content-length"), "100");
        assert!(g.body == fx.big[100..200]);
        // Across chunk boundaries, open-ended.
        let from = (1 << 20) - 5;
        let g = call(app, "GET", url, &[("range", &format!("bytes={from}-"))]).await;
        assert_eq!(g.status, StatusCode::PARTIAL_CONTENT);
        assert!(g.body == fx.big[from..]);
        let g = call(app, "GET", url, &[("range", "bytes=-10")]).await;
        assert!(g.body == fx.big[n - 10..]);
        assert_eq!(
            g.h("content-range"),
            format!("bytes {}-{}/{n}", n - 10, n - 1)
        );
        // Unsatisfiable.
        let g = call(app, "GET", url, &[("range", &format!("bytes={n}-"))]).await;
        assert_eq!(g.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(g.h("content-range"), format!("bytes */{n}"));
        // Several ranges, a garbage header, or a stale If-Range → the whole file.
        for hs in [
            vec![("range", "bytes=0-1,5-9")],
            vec![("range", "lines=1-2")],
            vec![("range", "bytes=0-9"), ("if-range", "\"other\"")],
        ] {
            let g = call(app, "GET", "/acme/m1/resolve/main/sub/dir/x.txt", &hs).await;
            assert_eq!(g.status, StatusCode::OK, "{hs:?}");
            assert_eq!(&g.body[..], b"hello world\n");
        }
        // If-Range compares strongly (RFC 9110 §13.1.5): the file's own ETag keeps the range,
        // the same tag marked weak does not.
        let x = "/acme/m1/resolve/main/sub/dir/x.txt";
        let etag = call(app, "HEAD", x, &[]).await.h("etag").to_string();
        let g = call(
            app,
            "GET",
            x,
            &[("range", "bytes=0-4"), ("if-range", &etag)],
        )
        .await;
        assert_eq!(
            (g.status, &g.body[..]),
            (StatusCode::PARTIAL_CONTENT, &b"hello"[..])
        );
        let weak = format!("W/{etag}");
        let g = call(
            app,
            "GET",
            x,
            &[("range", "bytes=0-4"), ("if-range", &weak)],
        )
        .await;
        assert_eq!(
            (g.status, &g.body[..]),
            (StatusCode::OK, &b"hello world\n"[..])
        );
    }

    #[tokio::test]
    async fn errors_are_hub_shaped() {
        let fx = fixture();
        let app = &fx.app;
        let commit = commit_of(app, "acme/m1").await;
        let cases: &[(&str, &str, u16, &str)] = &[
            (
                "GET",
                "/acme/nope/resolve/main/config.json",
                404,
                "RepoNotFound",
            ),
            (
                "HEAD",
                "/acme/nope/resolve/main/config.json",
                404,
                "RepoNotFound",
            ),
            ("GET", "/api/models/acme/nope", 404, "RepoNotFound"),
            ("GET", "/api/models/acme", 404, "RepoNotFound"),
            ("GET", "/api/models/stray.txt", 404, "RepoNotFound"),
            ("GET", "/api/datasets/acme/m1", 404, "RepoNotFound"),
            (
                "GET",
                "/datasets/acme/m1/resolve/main/config.json",
                404,
                "RepoNotFound",
            ),
            (
                "GET",
                "/spaces/acme/m1/resolve/main/config.json",
                404,
                "RepoNotFound",
            ),
            (
                "GET",
                "/acme/escape/resolve/main/secret.txt",
                404,
                "RepoNotFound",
            ),
            (
                "GET",
                "/acme/m1/resolve/dev/config.json",
                404,
                "RevisionNotFound",
            ),
            (
                "GET",
                "/api/models/acme/m1/revision/v1.0",
                404,
                "RevisionNotFound",
            ),
            (
                "GET",
                "/api/models/acme/m1/revision/0123456789abcdef0123456789abcdef01234567",
                404,
                "RevisionNotFound",
            ),
            (
                "GET",
                "/api/models/acme/m1/tree/dev",
                404,
                "RevisionNotFound",
            ),
            (
                "GET",
                "/api/models/acme/m1/tree/main/nope",
                404,
                "EntryNotFound",
            ),
            (
                "GET",
                "/api/models/acme/m1/tree/main/config.json",
                404,
                "EntryNotFound",
            ),
            (
                "DELETE",
                "/acme/m1/resolve/main/config.json",
                405,
                "MethodNotAllowed",
            ),
            (
                "GET",
                "/acme/m1/resolve/main/%2E%2E/m1/config.json",
                400,
                "BadRequest",
            ),
        ];
        for (method, uri, status, code) in cases {
            let g = call(app, method, uri, &[]).await;
            assert_eq!(g.status.as_u16(), *status, "{method} {uri}");
            assert_eq!(g.code(), Some(*code), "{method} {uri}");
        }
        // Missing, hidden, outside-pointing and directory entries: EntryNotFound + X-Repo-Commit.
        for p in [
            "nope.txt",
            ".hidden",
            ".git/config",
            "sub/.cache/y",
            "leak.txt",
            "leakdir/secret.txt",
            "sub",
            "emptydir/.keep",
        ] {
            let g = call(app, "HEAD", &format!("/acme/m1/resolve/main/{p}"), &[]).await;
            assert_eq!(g.status, StatusCode::NOT_FOUND, "{p}");
            assert_eq!(g.code(), Some("EntryNotFound"), "{p}");
            assert_eq!(g.h("x-repo-commit"), commit, "{p}");
        }
        let g = call(app, "GET", "/health", &[]).await;
        assert_eq!(g.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn info_tree_paths_info_refs_commits() {
        let fx = fixture();
        let app = &fx.app;
        let commit = commit_of(app, "acme/m1").await;
        let visible = [
            "alias.txt",
            "big.dat",
            "config.json",
            "linked/x.txt",
            "model.safetensors",
            "sub/dir/x.txt",
        ];

        let g = call(app, "GET", "/api/models/acme/m1", &[]).await;
        let v = g.json();
        assert_eq!(v["id"], "acme/m1");
        assert_eq!(v["private"], false);
        assert_eq!(v["gated"], false);
        assert!(v["lastModified"].as_str().unwrap().ends_with('Z'));
        let names: Vec<&str> = v["siblings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["rfilename"].as_str().unwrap())
            .collect();
        // Hidden entries and symlinks leaving the root are not listed; a symlinked directory
        // inside the root is, but not `loop` (a symlink to its own ancestor).
        assert_eq!(names, visible);
        assert!(v["siblings"][0].get("blobId").is_none());

        let g = call(
            app,
            "GET",
            &format!("/api/models/acme/m1/revision/{commit}?blobs=true"),
            &[],
        )
        .await;
        let v = g.json();
        assert_eq!(v["sha"], commit.as_str());
        let sib = |name: &str| {
            v["siblings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["rfilename"] == name)
                .unwrap()
                .clone()
        };
        let sha = sha256_hex(&fx.tensors);
        let s = sib("model.safetensors");
        assert_eq!(s["size"], fx.tensors.len());
        assert_eq!(s["lfs"]["sha256"], sha.as_str());
        let pointer = format!("{PTR_PREFIX}oid sha256:{sha}\nsize {}\n", fx.tensors.len());
        assert_eq!(s["lfs"]["pointerSize"], pointer.len());
        assert_eq!(s["blobId"], git_blob_oid(pointer.as_bytes()).as_str());
        let s = sib("config.json");
        assert_eq!(s["blobId"], git_blob_oid(b"{\"a\": 1}\n").as_str());
        assert!(s.get("lfs").is_none());

        // Tree, non-recursive root: directories and files, directories as such.
        let g = call(
            app,
            "GET",
            "/api/models/acme/m1/tree/main?recursive=false&expand=false",
            &[],
        )
        .await;
        let v = g.json();
        let entries: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().into(),
                    e["path"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("file", "alias.txt"),
            ("file", "big.dat"),
            ("file", "config.json"),
            ("directory", "linked"),
            ("file", "model.safetensors"),
            ("directory", "sub"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(entries, want);
        let tensors = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "model.safetensors")
            .unwrap();
        assert_eq!(tensors["lfs"]["oid"], sha.as_str());
        assert_eq!(tensors["oid"], git_blob_oid(pointer.as_bytes()).as_str());
        assert_eq!(tensors["size"], fx.tensors.len());
        let big = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "big.dat")
            .unwrap();
        assert_eq!(big["lfs"]["oid"], sha256_hex(&fx.big).as_str());

        // Recursive listing from a sub path sent as one %2F-encoded segment.
        let g = call(
            app,
            "GET",
            "/api/models/acme/m1/tree/main/sub%2Fdir?recursive=true",
            &[],
        )
        .await;
        let paths: Vec<String> = g
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(paths, ["sub/dir/x.txt"]);
        let g = call(
            app,
            "GET",
            "/api/models/acme/m1/tree/main/sub?recursive=true",
            &[],
        )
        .await;
        let v = g.json();
        assert_eq!(v[0]["path"], "sub/dir");
        assert_eq!(v[0]["type"], "directory");
        assert_eq!(v[1]["path"], "sub/dir/x.txt");
        assert_eq!(v.as_array().unwrap().len(), 2);
        let g = call(
            app,
            "GET",
            &format!("/api/models/acme/m1/tree/{commit}?recursive=true&expand=true"),
            &[],
        )
        .await;
        let v = g.json();
        let files: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "file")
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(files, visible);
        assert_eq!(v[0]["lastCommit"]["id"], commit.as_str());

        // paths-info: form body, unknown paths omitted.
        let g = call_body(
            app,
            "POST",
            "/api/models/acme/m1/paths-info/main",
            &[("content-type", "application/x-www-form-urlencoded")],
            Body::from("paths=config.json&paths=sub&paths=nope&paths=.hidden&paths=config.json&expand=false"),
        )
        .await;
        assert_eq!(g.status, StatusCode::OK);
        let v = g.json();
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v[0]["path"], "config.json");
        assert_eq!(v[0]["oid"], git_blob_oid(b"{\"a\": 1}\n").as_str());
        assert_eq!(v[1]["type"], "directory");
        let g = call_body(
            app,
            "POST",
            "/api/models/acme/m1/paths-info/main",
            &[("content-type", "application/json")],
            Body::from(r#"{"paths":["model.safetensors"]}"#),
        )
        .await;
        assert_eq!(g.json()[0]["lfs"]["oid"], sha.as_str());

        let g = call(app, "GET", "/api/models/acme/m1/refs", &[]).await;
        let v = g.json();
        assert_eq!(v["branches"][0]["name"], "main");
        assert_eq!(v["branches"][0]["targetCommit"], commit.as_str());
        assert_eq!(v["tags"], json!([]));
        assert_eq!(v["converts"], json!([]));

        let g = call(app, "GET", "/api/models/acme/m1/commits/main", &[]).await;
        let v = g.json();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], commit.as_str());
        assert!(v[0]["authors"][0]["user"].is_string());
    }

    #[tokio::test]
    async fn changes_on_disk_change_the_commit_and_the_hashes() {
        let fx = fixture();
        let app = &fx.app;
        let r = fx.dir.path();
        let c1 = commit_of(app, "acme/m1").await;
        assert_eq!(
            c1,
            commit_of(app, "acme/m1").await,
            "stable while nothing changes"
        );

        // A new file: new commit, the old sha is no longer a valid revision.
        write(r, "acme/m1/new.txt", b"new\n");
        let c2 = commit_of(app, "acme/m1").await;
        assert_ne!(c1, c2);
        let g = call(
            app,
            "GET",
            &format!("/acme/m1/resolve/{c1}/config.json"),
            &[],
        )
        .await;
        assert_eq!(g.code(), Some("RevisionNotFound"));
        let g = call(app, "GET", &format!("/acme/m1/resolve/{c2}/new.txt"), &[]).await;
        assert_eq!(&g.body[..], b"new\n");

        // New content of the same size with a new mtime: new commit, re-hashed ETag.
        let before = call(app, "HEAD", "/acme/m1/resolve/main/model.safetensors", &[]).await;
        let mut changed = fx.tensors.clone();
        changed[0] ^= 0xff;
        write(r, "acme/m1/model.safetensors", &changed);
        set_mtime(r, "acme/m1/model.safetensors", 1_700_000_000);
        let c3 = commit_of(app, "acme/m1").await;
        assert_ne!(c2, c3);
        let after = call(app, "HEAD", "/acme/m1/resolve/main/model.safetensors", &[]).await;
        assert_ne!(before.h("etag"), after.h("etag"));
        assert_eq!(after.h("etag"), format!("\"{}\"", sha256_hex(&changed)));

        // A touched mtime alone changes the commit too.
        set_mtime(r, "acme/m1/config.json", 1_600_000_000);
        assert_ne!(c3, commit_of(app, "acme/m1").await);

        // A new repo appears without a restart.
        write(r, "other/m2/a.txt", b"a");
        let g = call(app, "GET", "/other/m2/resolve/main/a.txt", &[]).await;
        assert_eq!(&g.body[..], b"a");
        drop(fx.outside);
    }

    #[tokio::test]
    async fn hashes_are_computed_once_per_file_state() {
        let fx = fixture();
        let app = fx.app.clone();
        // A router whose hash cache the test can observe.
        let mb = Arc::new(ModelBin {
            root: fx.dir.path().to_path_buf(),
            hashes: HashCache::default(),
        });
        let own = Router::new().fallback(dispatch).with_state(mb.clone());
        let url = "/acme/m1/resolve/main/big.dat";
        let calls = (0..6).map(|_| call(&own, "HEAD", url, &[]));
        let got = futures::future::join_all(calls).await;
        assert!(got.iter().all(|g| g.status == StatusCode::OK));
        assert_eq!(mb.hashes.runs.load(Ordering::Relaxed), 1, "single flight");
        call(
            &own,
            "GET",
            "/api/models/acme/m1/tree/main?recursive=true",
            &[],
        )
        .await;
        // 6 files; alias.txt and linked/x.txt are sub/dir/x.txt: 4 distinct file states.
        assert_eq!(mb.hashes.runs.load(Ordering::Relaxed), 4);
        call(&own, "GET", "/api/models/acme/m1?blobs=true", &[]).await;
        assert_eq!(mb.hashes.runs.load(Ordering::Relaxed), 4, "cached");
        // A changed file is hashed again.
        write(fx.dir.path(), "acme/m1/config.json", b"{\"a\": 22}\n");
        set_mtime(fx.dir.path(), "acme/m1/config.json", 1_500_000_000);
        call(&own, "HEAD", "/acme/m1/resolve/main/config.json", &[]).await;
        assert_eq!(mb.hashes.runs.load(Ordering::Relaxed), 5);
        // The public router answers the same ETag.
        let a = call(&own, "HEAD", url, &[]).await;
        let b = call(&app, "HEAD", url, &[]).await;
        assert_eq!(a.h("etag"), b.h("etag"));
    }
}
