//! Local git repositories (`mirrors-path`) through the router.

use std::path::PathBuf;

use http::StatusCode;
use serde_json::json;

use crate::common::*;

const BIG: usize = 5 << 20;

fn lfs_content() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

fn big_content() -> Vec<u8> {
    (0..BIG as u32).map(|i| (i ^ (i >> 9)) as u8).collect()
}

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: PathBuf,
    pub c1: String,
    pub c2: String,
    pub dev: String,
}

/// `{root}/models/local/demo`: main (2 commits), dev, annotated tag v1, an LFS file.
pub fn fixture() -> Fixture {
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
    put_lfs_object(&repo.join(".git"), &lfs);
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

#[tokio::test]
async fn other_repos_are_not_local() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    // Unknown repo, other kind, a directory that is not a repository: no local source owns
    // them, and without an upstream they do not exist.
    std::fs::create_dir_all(f.root.join("models/local/plain")).expect("mkdir");
    for p in [
        "/local/other/resolve/main/README.md",
        "/datasets/local/demo/resolve/main/README.md",
        "/local/plain/resolve/main/README.md",
        "/api/models/local",
    ] {
        let a = get(&app, p).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(a.code(), Some("RepoNotFound"), "{p}");
    }
    assert_eq!(
        get(&app, "/api/whoami-v2").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
    let none = git_app(vec![]);
    let a = get(&none, "/local/demo/resolve/main/README.md").await;
    assert_eq!(a.code(), Some("RepoNotFound"));
    // A second root is searched when the first does not hold the repo.
    let two = git_app(vec![f.root.join("nowhere"), f.root.clone()]);
    assert_eq!(
        get(&two, "/local/demo/resolve/main/README.md").await.body,
        "hello v2\n"
    );
}

#[tokio::test]
async fn resolve_by_branch_tag_and_sha() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    for (rev, want, commit) in [
        ("main", "hello v2\n", &f.c2),
        ("dev", "hello dev\n", &f.dev),
        ("v1", "hello v1\n", &f.c1),
        (f.c1.as_str(), "hello v1\n", &f.c1),
        (&f.c1[..7], "hello v1\n", &f.c1),
        ("refs%2Fheads%2Fdev", "hello dev\n", &f.dev),
    ] {
        let a = get(&app, &format!("/local/demo/resolve/{rev}/README.md")).await;
        assert_eq!(a.status, StatusCode::OK, "{rev}");
        assert_eq!(a.body, want, "{rev}");
        assert_eq!(a.h("x-repo-commit"), commit.as_str(), "{rev}");
        assert_eq!(a.h("etag"), format!("\"{}\"", blob_id(want.as_bytes())));
        assert_eq!(a.h("content-length"), want.len().to_string());
        assert_eq!(a.h("accept-ranges"), "bytes");
        assert_eq!(a.h("content-type"), "text/markdown; charset=utf-8");
        assert!(a.headers.get("x-linked-etag").is_none());
    }
    let a = get(&app, "/local/demo/resolve/main/sub/dir/nested.txt").await;
    assert_eq!(a.body, "nested v1\n");
    assert_eq!(a.h("content-type"), "text/plain; charset=utf-8");
    // HEAD: same headers, no body.
    let a = call(&app, "HEAD", "/local/demo/resolve/main/README.md", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.h("content-length"), "9");
    assert!(a.body.is_empty());
    // Conditional GET.
    let etag = format!("\"{}\"", blob_id(b"hello v2\n"));
    let a = call(
        &app,
        "GET",
        "/local/demo/resolve/main/README.md",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.body.is_empty());
}

#[tokio::test]
async fn lfs_files_are_served_from_the_lfs_store_with_ranges() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    let lfs = lfs_content();
    let sha = sha256_hex(&lfs);
    let url = "/local/demo/resolve/main/weights.bin";
    let a = get(&app, "/local/demo/resolve/v1/weights.bin").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, lfs);
    assert_eq!(a.h("etag"), format!("\"{sha}\""));
    assert_eq!(a.h("x-linked-etag"), format!("\"{sha}\""));
    assert_eq!(a.h("x-linked-size"), "3000");
    assert_eq!(a.h("content-length"), "3000");
    assert_eq!(a.h("content-type"), "application/octet-stream");
    let head = call(&app, "HEAD", url, &[]).await;
    assert_eq!(head.h("x-linked-size"), "3000");
    assert_eq!(head.h("x-repo-commit"), f.c2);
    assert!(head.body.is_empty());
    for (range, a, b) in [
        ("bytes=10-19", 10, 19),
        ("bytes=2990-", 2990, 2999),
        ("bytes=-5", 2995, 2999),
        ("bytes=100-99999", 100, 2999),
    ] {
        let r = call(&app, "GET", url, &[("range", range)]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, lfs[a..=b], "{range}");
        assert_eq!(r.h("content-range"), format!("bytes {a}-{b}/3000"));
        assert_eq!(r.h("content-length"), (b - a + 1).to_string());
    }
    let r = call(&app, "GET", url, &[("range", "bytes=3000-")]).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.h("content-range"), "bytes */3000");
    // If-Range with another validator: the whole file.
    let r = call(
        &app,
        "GET",
        url,
        &[("range", "bytes=0-1"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 3000);
    // If-Range compares strongly: the ETag itself keeps the range, its weak form does not.
    let etag = format!("\"{sha}\"");
    for (validator, status) in [
        (etag.clone(), StatusCode::PARTIAL_CONTENT),
        (format!("W/{etag}"), StatusCode::OK),
    ] {
        let r = call(
            &app,
            "GET",
            url,
            &[("range", "bytes=0-1"), ("if-range", &validator)],
        )
        .await;
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
    let r = get(&app, url).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), Some("EntryNotFound"));
    assert!(r.headers.get("x-repo-commit").is_none());
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
    let app = git_app(vec![f.root.clone()]);
    for repo in ["demo", "bare"] {
        let url = format!("/local/{repo}/resolve/main/big.dat");
        let a = get(&app, &url).await;
        assert_eq!(a.status, StatusCode::OK, "{repo}");
        assert_eq!(a.h("etag"), want_etag, "{repo}");
        assert!(a.body == big, "{repo}: whole body differs");
        let r = call(&app, "GET", &url, &[("range", "bytes=1000000-3000000")]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        assert!(
            r.body == big[1_000_000..=3_000_000],
            "{repo}: range differs"
        );
    }
    // The bare clone has no LFS store yet: a bare repository keeps it in `lfs/`.
    let lfs = lfs_content();
    let r = get(&app, "/local/bare/resolve/main/weights.bin").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    put_lfs_object(&bare, &lfs);
    let r = get(&app, "/local/bare/resolve/main/weights.bin").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, lfs);
}

#[tokio::test]
async fn errors_are_hub_shaped() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    for p in [
        "/local/demo/resolve/nope/README.md",
        "/local/demo/resolve/0000000000000000000000000000000000000000/README.md",
        "/api/models/local/demo/revision/nope",
        "/api/models/local/demo/tree/nope",
        "/api/models/local/demo/commits/HEAD~1",
    ] {
        let a = get(&app, p).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(a.code(), Some("RevisionNotFound"), "{p}");
    }
    let a = get(&app, "/local/demo/resolve/main/nope.txt").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.code(), Some("EntryNotFound"));
    assert_eq!(a.h("x-repo-commit"), f.c2);
    // A directory is not a file.
    let a = get(&app, "/local/demo/resolve/main/sub").await;
    assert_eq!(a.code(), Some("EntryNotFound"));
    // big.dat exists on main only.
    let a = get(&app, "/local/demo/resolve/v1/big.dat").await;
    assert_eq!(a.code(), Some("EntryNotFound"));
    assert_eq!(a.h("x-repo-commit"), f.c1);
    let a = get(&app, "/api/models/local/demo/tree/main/nope").await;
    assert_eq!(a.code(), Some("EntryNotFound"));
    let a = call(&app, "POST", "/local/demo/resolve/main/README.md", &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // No Xet for local repositories.
    let x = get(&app, "/api/models/local/demo/xet-read-token/main").await;
    assert_eq!(x.status, StatusCode::NOT_FOUND);
    assert_eq!(x.code(), Some("XetDisabled"));
}

#[tokio::test]
async fn api_answers_from_history() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    let lfs = lfs_content();
    let sha = sha256_hex(&lfs);
    let ptr = pointer(&lfs);

    let info = get(&app, "/api/models/local/demo").await.json();
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
    let info = get(&app, "/api/models/local/demo/revision/v1?blobs=true")
        .await
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

    let top = get(&app, &format!("/api/models/local/demo/tree/{}", f.c1))
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
    let rec = get(
        &app,
        "/api/models/local/demo/tree/main?recursive=true&expand=false",
    )
    .await
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
    let sub = get(&app, "/api/models/local/demo/tree/main/sub%2Fdir")
        .await
        .json();
    assert_eq!(sub[0]["path"], "sub/dir/nested.txt");
    assert_eq!(sub.as_array().expect("array").len(), 1);

    let pi = call_body(
        &app,
        "POST",
        "/api/models/local/demo/paths-info/dev",
        &[("content-type", "application/x-www-form-urlencoded")],
        "paths=README.md&paths=sub&paths=missing&paths=weights.bin&expand=false".into(),
    )
    .await
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

    let refs = get(&app, "/api/models/local/demo/refs?include_prs=1")
        .await
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

    let commits = get(
        &app,
        "/api/models/local/demo/commits/main?expand%5B%5D=formatted",
    )
    .await
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
    let dev = get(&app, "/api/models/local/demo/commits/dev").await.json();
    let ids: Vec<&str> = dev
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [f.dev.as_str(), f.c1.as_str()]);
    assert!(dev[0].get("formatted").is_none());

    // HEAD on an API route: headers only.
    let h = call(&app, "HEAD", "/api/models/local/demo/refs", &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    assert!(h.body.is_empty());
    assert!(h.h("content-type").starts_with("application/json"));
}

#[tokio::test]
async fn expanded_tree_entries_name_the_commit_that_last_changed_them() {
    let f = fixture();
    let app = git_app(vec![f.root.clone()]);
    let v = get(&app, "/api/models/local/demo/tree/main?expand=true")
        .await
        .json();
    let last = |p: &str| {
        v.as_array()
            .expect("array")
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p}"))["lastCommit"]
            .clone()
    };
    assert_eq!(
        last("README.md"),
        json!({"id": f.c2, "title": "second", "date": "2024-03-02T08:30:15.000Z"})
    );
    assert_eq!(last("big.dat")["id"], f.c2.as_str());
    assert_eq!(
        last("weights.bin"),
        json!({"id": f.c1, "title": "first", "date": "2024-03-01T12:00:00.000Z"})
    );
    assert_eq!(last("sub")["id"], f.c1.as_str());
    // paths-info too.
    let pi = call_body(
        &app,
        "POST",
        "/api/models/local/demo/paths-info/dev",
        &[("content-type", "application/json")],
        r#"{"paths": ["README.md", "weights.bin"], "expand": true}"#.into(),
    )
    .await
    .json();
    assert_eq!(pi[0]["lastCommit"]["id"], f.dev.as_str());
    assert_eq!(pi[1]["lastCommit"]["id"], f.c1.as_str());
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
    let app = git_app(vec![tmp.path().to_path_buf()]);
    let a = get(&app, "/datasets/org/data/resolve/main/a.csv").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "x,y\n");
    let a = get(&app, "/datasets/org/data/resolve/master/a.csv").await;
    assert_eq!(a.body, "x,y\n");
    // An empty repository has no revision at all.
    let empty = tmp.path().join("spaces/org/empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    git(&empty, DATE1, &["init", "-q"]);
    let a = get(&app, "/api/spaces/org/empty/revision/main").await;
    assert_eq!(a.code(), Some("RevisionNotFound"));
}
