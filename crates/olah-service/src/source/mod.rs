//! A source of Hub repositories, and the set of them the mirror answers from.
//!
//! Three implementations: the upstream Hub through the cache, local git repositories
//! (`mirrors-path`) and plain directories (`model-bin`). Each says what a file is
//! ([`FileHead`]) and opens its bytes ([`FileBody`]), and answers the metadata routes
//! ([`MetaAnswer`]). The HTTP layer does everything else once for all of them: response
//! headers, conditional requests (strong `If-Range`), `Range` and multipart, JSON and error
//! rendering, request tracing.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use http::HeaderValue;
use olah_types::{RepoPath, RepoRef, Revision, Route};
use serde::Deserialize;

use crate::error::ServiceError;

mod body;
pub mod dir;
pub mod git;
pub mod json;

pub use self::dir::DirSource;
pub use self::git::GitSource;

/// The bytes of a file (or of a range of it), streamed. An error ends the body early: the
/// client sees a cut transfer, never bytes that were not verified.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// What the service needs to know about a request besides its route.
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    /// The caller's `Authorization` header, passed to the Hub only (never logged or stored).
    pub auth: Option<HeaderValue>,
}

/// How a file or answer was obtained: recorded on the request span (and, next, in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache without asking the upstream.
    Hit,
    /// Fetched from the upstream (and cached when allowed).
    Miss,
    /// The upstream confirmed the cached copy.
    Revalidated,
    /// The upstream failed; an older cached copy stands in.
    Stale,
    /// A local source (git repository or directory): no cache involved.
    Local,
}

impl Outcome {
    /// The label on spans and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Revalidated => "revalidated",
            Self::Stale => "stale",
            Self::Local => "local",
        }
    }
}

/// What a file is: everything the HTTP layer needs for the headers of a resolve answer.
#[derive(Debug, Clone)]
pub struct FileHead {
    /// The commit the revision resolved to (`X-Repo-Commit`).
    pub commit: Option<String>,
    /// Size of the content served.
    pub size: u64,
    /// The ETag clients see, without quotes: an LFS file's sha256, else its git blob id. Always
    /// a strong validator (the bytes behind it never change).
    pub etag: String,
    /// For an LFS file: its sha256 (`X-Linked-Etag`) and size (`X-Linked-Size`).
    pub linked: Option<(String, u64)>,
    /// The file's Xet hash, when the source advertises Xet for it (`X-Xet-Hash`, `Link`s).
    pub xet_hash: Option<String>,
    /// `Content-Type` of the content.
    pub content_type: String,
    /// How it was obtained.
    pub outcome: Outcome,
}

/// Opens the bytes of one file. Held by the HTTP layer while it answers; may be opened
/// several times (multipart ranges).
#[async_trait]
pub trait FileBody: Send + Sync {
    /// Streams bytes `start..=end` (inclusive, within the file).
    async fn open(&self, start: u64, end: u64) -> Result<ByteStream, ServiceError>;

    /// After [`FileBody::open`]: `Some(true)` when every range opened so far was wholly in the
    /// cache (always, for a local source), `Some(false)` when some bytes had to come from the
    /// upstream, `None` when it is not known (nothing opened yet). Answered as `X-Olah-Cache`.
    fn cached(&self) -> Option<bool> {
        None
    }
}

/// A file of a repository at a revision: its head and a way to its bytes.
pub struct RepoFile {
    pub head: FileHead,
    pub body: Arc<dyn FileBody>,
}

/// A metadata request (repo info, tree, paths-info, refs, commits…) as the route parser saw it.
#[derive(Debug, Clone)]
pub struct MetaRequest {
    pub route: Route,
    /// The raw query string (each source keeps only the parameters it knows).
    pub query: Option<String>,
    /// The parsed body of a `POST …/paths-info/{rev}`.
    pub paths: Option<PathsQuery>,
}

/// A metadata answer: a JSON document (the Hub's own, verbatim, or one a local source wrote).
#[derive(Debug, Clone)]
pub struct MetaAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// An upstream `Link` header (pagination), with the Hub's URLs: the HTTP layer rewrites it.
    pub link: Option<String>,
    /// The commit the answer refers to, when known.
    pub commit: Option<String>,
    pub outcome: Outcome,
}

impl MetaAnswer {
    /// A 200 JSON answer a local source wrote.
    pub fn json<T: serde::Serialize>(
        value: &T,
        commit: Option<String>,
    ) -> Result<Self, ServiceError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ServiceError::internal(format!("JSON answer: {e}")))?;
        Ok(Self {
            status: 200,
            content_type: Some("application/json; charset=utf-8".into()),
            body: Bytes::from(body),
            link: None,
            commit,
            outcome: Outcome::Local,
        })
    }
}

impl MetaRequest {
    /// The query's `key=value` pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Whether the query sets `key` to a true value ([`is_true`]).
    pub fn flag(&self, key: &str) -> bool {
        self.query_pairs()
            .iter()
            .any(|(k, v)| k == key && is_true(v))
    }

    /// Whether the query has `key=value`.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.query_pairs()
            .iter()
            .any(|(k, v)| k == key && v == value)
    }
}

/// A place Hub repositories come from.
#[async_trait]
pub trait RepoSource: Send + Sync + 'static {
    /// `"hub"`, `"git"` or `"dir"`: a span field and metric label.
    fn name(&self) -> &'static str;

    /// Whether this source answers for `repo` (git: a repository exists under a root; dir: its
    /// directory exists; hub: always). The first source of [`Sources`] that owns a repo
    /// answers every request about it.
    async fn owns(&self, repo: &RepoRef) -> bool;

    /// The file `path` of `repo` at `revision`.
    async fn file(
        &self,
        cx: &RequestCtx,
        repo: &RepoRef,
        revision: &Revision,
        path: &RepoPath,
    ) -> Result<RepoFile, ServiceError>;

    /// A metadata route of a repo this source owns.
    async fn meta(&self, cx: &RequestCtx, req: &MetaRequest) -> Result<MetaAnswer, ServiceError>;
}

/// The sources the mirror answers from, in precedence order (local git, then directories,
/// then the Hub).
#[derive(Clone, Default)]
pub struct Sources {
    list: Vec<Arc<dyn RepoSource>>,
}

impl Sources {
    /// The sources in precedence order.
    pub fn new(list: Vec<Arc<dyn RepoSource>>) -> Self {
        Self { list }
    }

    /// The first source that owns `repo`, if any.
    pub async fn pick(&self, repo: &RepoRef) -> Option<Arc<dyn RepoSource>> {
        for s in &self.list {
            if s.owns(repo).await {
                return Some(s.clone());
            }
        }
        None
    }

    /// Whether no source is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The most paths one paths-info request may ask for (as the Hub).
pub const MAX_PATHS_INFO: usize = 1000;

/// The body of a `POST …/paths-info/{rev}`: the paths asked (deduplicated, in order, each a
/// valid repo path) and `expand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathsQuery {
    pub paths: Vec<String>,
    pub expand: bool,
}

impl PathsQuery {
    /// Parses a form (`paths=a&paths=b&expand=true`, what huggingface_hub sends; `paths[]` too)
    /// or JSON
    /// (`{"paths": [...], "expand": true}`, what huggingface.js sends) body.
    pub fn parse(body: &[u8]) -> Result<Self, ServiceError> {
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
                .map_err(|_| ServiceError::bad_request("paths-info body is not valid JSON"))?;
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
                    "paths" | "paths[]" => paths.push(v.into_owned()),
                    "expand" => expand = is_true(&v),
                    _ => {}
                }
            }
            (paths, expand)
        };
        if paths.len() > MAX_PATHS_INFO {
            return Err(ServiceError::bad_request(format!(
                "at most {MAX_PATHS_INFO} paths per paths-info request"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in paths {
            let p = p.trim_end_matches('/').to_string();
            RepoPath::new(&p).map_err(|e| ServiceError::bad_request(e.to_string()))?;
            if seen.insert(p.clone()) {
                out.push(p);
            }
        }
        Ok(Self { paths: out, expand })
    }
}

/// A query flag's truth, as the Hub reads it.
pub fn is_true(s: &str) -> bool {
    matches!(s, "true" | "True" | "1")
}

/// The `/raw/{rev}/{path}` view of a file: the git blob. A regular file's blob is the file; an
/// LFS (or Xet) file's blob is its Git LFS pointer, written from the sha256 and size the source
/// announced (no byte of the file is read). Served with a strong ETag (the pointer's git blob
/// id) and ranges like any file.
pub fn raw_view(file: RepoFile) -> RepoFile {
    let Some((sha256, size)) = file.head.linked.clone() else {
        return file;
    };
    let pointer =
        format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n");
    let etag = {
        use sha1::Digest as _;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", pointer.len()).as_bytes());
        h.update(pointer.as_bytes());
        hex::encode(h.finalize())
    };
    let head = FileHead {
        commit: file.head.commit,
        size: pointer.len() as u64,
        etag,
        linked: None,
        xet_hash: None,
        content_type: "text/plain; charset=utf-8".into(),
        outcome: file.head.outcome,
    };
    RepoFile {
        head,
        body: Arc::new(body::InlineBody(Bytes::from(pointer))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_info_bodies_parse_as_form_or_json_deduplicated_and_bounded() {
        let q = PathsQuery::parse(b"paths=a.txt&paths=b%2Fc.bin&paths=a.txt&expand=True").unwrap();
        assert_eq!(q.paths, ["a.txt", "b/c.bin"]);
        assert!(q.expand);
        let q = PathsQuery::parse(b"paths%5B%5D=sub%2F&paths=sub").unwrap();
        assert_eq!(q.paths, ["sub"]);
        let q = PathsQuery::parse(br#" {"paths": ["x"], "expand": false}"#).unwrap();
        assert_eq!(q.paths, ["x"]);
        assert!(!q.expand);
        assert!(PathsQuery::parse(br#"{"paths": ["../etc"]}"#).is_err());
        assert!(PathsQuery::parse(b"{not json").is_err());
        let many: String = (0..=MAX_PATHS_INFO)
            .map(|i| format!("paths=f{i}&"))
            .collect();
        assert!(PathsQuery::parse(many.as_bytes()).is_err());
    }

    #[tokio::test]
    async fn raw_view_of_an_lfs_file_is_its_pointer() {
        use futures::StreamExt as _;
        let head = |linked: Option<(String, u64)>| FileHead {
            commit: Some("c".repeat(40)),
            size: 1234,
            etag: "e".into(),
            linked,
            xet_hash: None,
            content_type: "application/octet-stream".into(),
            outcome: Outcome::Hit,
        };
        let lfs = RepoFile {
            head: head(Some(("ab".repeat(32), 1234))),
            body: Arc::new(body::InlineBody(Bytes::from_static(b"not read"))),
        };
        let raw = raw_view(lfs);
        let want = format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1234\n",
            "ab".repeat(32)
        );
        assert_eq!(raw.head.size, want.len() as u64);
        assert_eq!(raw.head.linked, None);
        assert_eq!(raw.head.commit, Some("c".repeat(40)));
        let got: Vec<u8> = raw
            .body
            .open(0, want.len() as u64 - 1)
            .await
            .unwrap()
            .map(|b| b.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(got, want.as_bytes());
        // A regular file's blob is the file itself.
        let plain = RepoFile {
            head: head(None),
            body: Arc::new(body::InlineBody(Bytes::from_static(b"x"))),
        };
        assert_eq!(raw_view(plain).head.etag, "e");
    }
}
