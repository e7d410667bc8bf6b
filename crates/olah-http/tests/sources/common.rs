//! Helpers: requests through the router, git fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use olah_http::App;
use olah_service::source::{DirSource, GitSource, RepoSource, Sources};
use serde_json::Value;
use sha2::Digest;
use tower::ServiceExt;

/// A router over local git repositories under `roots`.
pub fn git_app(roots: Vec<PathBuf>) -> Router {
    olah_http::router(App::local(Sources::new(vec![Arc::new(GitSource::new(
        roots,
    ))])))
}

/// A router over model directories under `root`, and the source (to observe its hash cache).
pub fn dir_app(root: &Path) -> (Router, Arc<DirSource>) {
    let src = Arc::new(DirSource::new(root.to_path_buf()));
    let list: Vec<Arc<dyn RepoSource>> = vec![src.clone()];
    (olah_http::router(App::local(Sources::new(list))), src)
}

pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    /// A header's value, "" when absent.
    pub fn h(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .map(|v| v.to_str().expect("ascii"))
            .unwrap_or("")
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
    pub fn code(&self) -> Option<&str> {
        self.headers
            .get("x-error-code")
            .map(|v| v.to_str().expect("ascii"))
    }
}

pub async fn call_body(
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
    let resp = app
        .clone()
        .oneshot(b.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    Got {
        status,
        headers,
        body,
    }
}

pub async fn call(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Got {
    call_body(app, method, uri, headers, Body::empty()).await
}

pub async fn get(app: &Router, uri: &str) -> Got {
    call(app, "GET", uri, &[]).await
}

pub const DATE1: &str = "2024-03-01T12:00:00Z";
pub const DATE2: &str = "2024-03-02T08:30:15Z";

/// Runs git in `dir` with a fixed identity and dates; its trimmed stdout.
pub fn git(dir: &Path, date: &str, args: &[&str]) -> String {
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

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// The git-lfs pointer text of `content`.
pub fn pointer(content: &[u8]) -> String {
    format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        sha256_hex(content),
        content.len()
    )
}

/// Stores `content` in the LFS store of the repository whose git dir is `git_dir`.
pub fn put_lfs_object(git_dir: &Path, content: &[u8]) {
    let sha = sha256_hex(content);
    let obj = git_dir.join("lfs/objects").join(&sha[..2]).join(&sha[2..4]);
    std::fs::create_dir_all(&obj).expect("mkdir");
    std::fs::write(obj.join(&sha), content).expect("write");
}

pub fn blob_id(content: &[u8]) -> String {
    olah_service::source::json::git_blob_oid(content)
}

pub fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, content).expect("write");
}
