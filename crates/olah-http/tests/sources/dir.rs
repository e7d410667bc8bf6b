//! Plain directories (model-bin mode) through the router.

use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::Router;
use http::StatusCode;
use serde_json::json;

use crate::common::*;

const PTR_PREFIX: &str = "version https://git-lfs.github.com/spec/v1\n";

/// Sets a file's mtime explicitly (file system timestamps can be coarser than a test step).
fn set_mtime(root: &Path, rel: &str, secs: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(root.join(rel))
        .expect("open");
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("mtime");
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
    src: std::sync::Arc<olah_service::source::DirSource>,
    big: Vec<u8>,
    tensors: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
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
        .expect("symlink");
        symlink(outside.path(), r.join("acme/m1/leakdir")).expect("symlink");
        symlink(outside.path(), r.join("acme/escape")).expect("symlink");
        symlink(r.join("acme/m1/sub/dir/x.txt"), r.join("acme/m1/alias.txt")).expect("symlink");
        symlink(r.join("acme/m1/sub"), r.join("acme/m1/sub/dir/loop")).expect("symlink");
        symlink(r.join("acme/m1/sub/dir"), r.join("acme/m1/linked")).expect("symlink");
    }
    let (app, src) = dir_app(r);
    Fixture {
        dir,
        outside,
        app,
        src,
        big,
        tensors,
    }
}

async fn commit_of(app: &Router, repo: &str) -> String {
    let g = get(app, &format!("/api/models/{repo}")).await;
    assert_eq!(g.status, StatusCode::OK);
    g.json()["sha"].as_str().expect("sha").to_string()
}

#[tokio::test]
async fn resolve_serves_exact_bytes_with_hub_headers() {
    let fx = fixture();
    let app = &fx.app;
    let commit = commit_of(app, "acme/m1").await;
    assert_eq!(commit.len(), 40);

    // Regular file: git blob id as ETag, no linked headers.
    let g = get(app, "/acme/m1/resolve/main/sub/dir/x.txt").await;
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
    let g = get(app, "/acme/m1/resolve/main/big.dat").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.body.len(), fx.big.len());
    assert!(g.body == fx.big[..]);
    assert_eq!(g.h("x-linked-etag"), format!("\"{}\"", sha256_hex(&fx.big)));
    assert_eq!(g.h("content-type"), "application/octet-stream");

    // A symlink inside the root is served; the JSON file gets its content type.
    let g = get(app, "/acme/m1/resolve/main/alias.txt").await;
    assert_eq!(&g.body[..], b"hello world\n");
    let g = get(app, "/acme/m1/resolve/main/config.json").await;
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
    // A garbage header or a stale If-Range → the whole file.
    let x = "/acme/m1/resolve/main/sub/dir/x.txt";
    for hs in [
        vec![("range", "lines=1-2")],
        vec![("range", "bytes=0-9"), ("if-range", "\"other\"")],
    ] {
        let g = call(app, "GET", x, &hs).await;
        assert_eq!(g.status, StatusCode::OK, "{hs:?}");
        assert_eq!(&g.body[..], b"hello world\n");
    }
    // If-Range compares strongly (RFC 9110 §13.1.5): the file's own ETag keeps the range,
    // the same tag marked weak does not.
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
        (
            "GET",
            "/api/models/acme/m1/xet-read-token/main",
            404,
            "XetDisabled",
        ),
        ("GET", "/api/whoami-v2", 401, "Unauthorized"),
        ("POST", "/health", 405, "MethodNotAllowed"),
        ("GET", "/api/models/acme/m1/refs/extra", 404, "NotFound"),
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
    let g = get(app, "/health").await;
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

    let v = get(app, "/api/models/acme/m1").await.json();
    assert_eq!(v["id"], "acme/m1");
    assert_eq!(v["modelId"], "acme/m1");
    assert_eq!(v["private"], false);
    assert_eq!(v["gated"], false);
    assert!(v["lastModified"].as_str().expect("date").ends_with('Z'));
    let names: Vec<&str> = v["siblings"]
        .as_array()
        .expect("siblings")
        .iter()
        .map(|s| s["rfilename"].as_str().expect("name"))
        .collect();
    // Hidden entries and symlinks leaving the root are not listed; a symlinked directory
    // inside the root is, but not `loop` (a symlink to its own ancestor).
    assert_eq!(names, visible);
    assert!(v["siblings"][0].get("blobId").is_none());

    let v = get(
        app,
        &format!("/api/models/acme/m1/revision/{commit}?blobs=true"),
    )
    .await
    .json();
    assert_eq!(v["sha"], commit.as_str());
    let sib = |name: &str| {
        v["siblings"]
            .as_array()
            .expect("siblings")
            .iter()
            .find(|s| s["rfilename"] == name)
            .expect("sibling")
            .clone()
    };
    let sha = sha256_hex(&fx.tensors);
    let s = sib("model.safetensors");
    assert_eq!(s["size"], fx.tensors.len());
    assert_eq!(s["lfs"]["sha256"], sha.as_str());
    let pointer = format!("{PTR_PREFIX}oid sha256:{sha}\nsize {}\n", fx.tensors.len());
    assert_eq!(s["lfs"]["pointerSize"], pointer.len());
    assert_eq!(s["blobId"], blob_id(pointer.as_bytes()).as_str());
    let s = sib("config.json");
    assert_eq!(s["blobId"], blob_id(b"{\"a\": 1}\n").as_str());
    assert!(s.get("lfs").is_none());

    // Tree, non-recursive root: directories and files, directories as such.
    let v = get(
        app,
        "/api/models/acme/m1/tree/main?recursive=false&expand=false",
    )
    .await
    .json();
    let entries: Vec<(&str, &str)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type"),
                e["path"].as_str().expect("path"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("file", "alias.txt"),
            ("file", "big.dat"),
            ("file", "config.json"),
            ("directory", "linked"),
            ("file", "model.safetensors"),
            ("directory", "sub"),
        ]
    );
    let find = |p: &str| {
        v.as_array()
            .expect("array")
            .iter()
            .find(|e| e["path"] == p)
            .expect("entry")
            .clone()
    };
    let tensors = find("model.safetensors");
    assert_eq!(tensors["lfs"]["oid"], sha.as_str());
    assert_eq!(tensors["oid"], blob_id(pointer.as_bytes()).as_str());
    assert_eq!(tensors["size"], fx.tensors.len());
    assert_eq!(find("big.dat")["lfs"]["oid"], sha256_hex(&fx.big).as_str());
    assert!(find("sub").get("lastCommit").is_none());

    // Recursive listing from a sub path sent as one %2F-encoded segment.
    let g = get(
        app,
        "/api/models/acme/m1/tree/main/sub%2Fdir?recursive=true",
    )
    .await;
    let paths: Vec<String> = g
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect();
    assert_eq!(paths, ["sub/dir/x.txt"]);
    let v = get(app, "/api/models/acme/m1/tree/main/sub?recursive=true")
        .await
        .json();
    assert_eq!(v[0]["path"], "sub/dir");
    assert_eq!(v[0]["type"], "directory");
    assert_eq!(v[1]["path"], "sub/dir/x.txt");
    assert_eq!(v.as_array().expect("array").len(), 2);
    let v = get(
        app,
        &format!("/api/models/acme/m1/tree/{commit}?recursive=true&expand=true"),
    )
    .await
    .json();
    let files: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(files, visible);
    assert_eq!(v[0]["lastCommit"]["id"], commit.as_str());
    assert_eq!(v[0]["lastCommit"]["title"], "model-bin snapshot");

    // paths-info: form body, unknown and hidden paths omitted, duplicates once.
    let g = call_body(
        app,
        "POST",
        "/api/models/acme/m1/paths-info/main",
        &[("content-type", "application/x-www-form-urlencoded")],
        "paths=config.json&paths=sub&paths=nope&paths=.hidden&paths=config.json&expand=false"
            .into(),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK);
    let v = g.json();
    assert_eq!(v.as_array().expect("array").len(), 2, "{v}");
    assert_eq!(v[0]["path"], "config.json");
    assert_eq!(v[0]["oid"], blob_id(b"{\"a\": 1}\n").as_str());
    assert_eq!(v[1]["type"], "directory");
    let g = call_body(
        app,
        "POST",
        "/api/models/acme/m1/paths-info/main",
        &[("content-type", "application/json")],
        r#"{"paths":["model.safetensors"]}"#.into(),
    )
    .await;
    assert_eq!(g.json()[0]["lfs"]["oid"], sha.as_str());

    let v = get(app, "/api/models/acme/m1/refs").await.json();
    assert_eq!(
        v,
        json!({
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": commit}],
            "converts": [],
            "tags": [],
        })
    );

    let v = get(app, "/api/models/acme/m1/commits/main").await.json();
    assert_eq!(v.as_array().expect("array").len(), 1);
    assert_eq!(v[0]["id"], commit.as_str());
    assert_eq!(v[0]["authors"], json!([{"user": "model-bin"}]));
    assert!(v[0].get("formatted").is_none());
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
    let g = get(app, &format!("/acme/m1/resolve/{c1}/config.json")).await;
    assert_eq!(g.code(), Some("RevisionNotFound"));
    let g = get(app, &format!("/acme/m1/resolve/{c2}/new.txt")).await;
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
    let g = get(app, "/other/m2/resolve/main/a.txt").await;
    assert_eq!(&g.body[..], b"a");
    drop(fx.outside);
}

#[tokio::test]
async fn hashes_are_computed_once_per_file_state() {
    let fx = fixture();
    let (app, src) = (&fx.app, &fx.src);
    let url = "/acme/m1/resolve/main/big.dat";
    let calls = (0..6).map(|_| call(app, "HEAD", url, &[]));
    let got = futures::future::join_all(calls).await;
    assert!(got.iter().all(|g| g.status == StatusCode::OK));
    assert_eq!(src.hash_runs(), 1, "single flight");
    get(app, "/api/models/acme/m1/tree/main?recursive=true").await;
    // 6 files; alias.txt and linked/x.txt are sub/dir/x.txt: 4 distinct file states.
    assert_eq!(src.hash_runs(), 4);
    get(app, "/api/models/acme/m1?blobs=true").await;
    assert_eq!(src.hash_runs(), 4, "cached");
    // A changed file is hashed again.
    write(fx.dir.path(), "acme/m1/config.json", b"{\"a\": 22}\n");
    set_mtime(fx.dir.path(), "acme/m1/config.json", 1_500_000_000);
    let g = call(app, "HEAD", "/acme/m1/resolve/main/config.json", &[]).await;
    assert_eq!(g.h("etag"), format!("\"{}\"", blob_id(b"{\"a\": 22}\n")));
    assert_eq!(src.hash_runs(), 5);
}
