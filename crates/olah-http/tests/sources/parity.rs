//! The same files served by a git repository and by a directory answer the same way: headers,
//! conditional requests, ranges, multipart, and metadata JSON shapes (the three disagreements
//! of the former implementations — paths-info parsing, refs shape, tree `expand` — each have a
//! test here).

use axum::Router;
use http::StatusCode;
use serde_json::Value;

use crate::common::*;

struct Pair {
    _tmp: tempfile::TempDir,
    git: Router,
    dir: Router,
    tensors: Vec<u8>,
}

const FILES: &[(&str, &[u8])] = &[
    ("config.json", b"{\"a\": 1}\n"),
    ("README.md", b"# same\n"),
    ("sub/x.txt", b"hello world\n"),
    ("sub/deeper/y.txt", b"y file\n"),
];

/// `acme/same` as a git repository (the weights as an LFS pointer + object) and as a directory.
fn pair() -> Pair {
    let tmp = tempfile::tempdir().expect("tempdir");
    let groot = tmp.path().join("git");
    let droot = tmp.path().join("dir");
    let repo = groot.join("models/acme/same");
    let plain = droot.join("acme/same");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let tensors: Vec<u8> = (0..200_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
    for (p, c) in FILES {
        write(&repo, p, c);
        write(&plain, p, c);
    }
    write(&repo, "model.safetensors", pointer(&tensors).as_bytes());
    write(&plain, "model.safetensors", &tensors);
    git(&repo, DATE1, &["init", "-q"]);
    put_lfs_object(&repo.join(".git"), &tensors);
    git(&repo, DATE1, &["add", "-A"]);
    git(&repo, DATE1, &["commit", "-q", "-m", "one"]);
    Pair {
        git: git_app(vec![groot]),
        dir: dir_app(&droot).0,
        _tmp: tmp,
        tensors,
    }
}

/// The headers both sources must agree on.
const SAME: &[&str] = &[
    "etag",
    "content-length",
    "content-type",
    "content-range",
    "accept-ranges",
    "x-linked-etag",
    "x-linked-size",
    "x-error-code",
];

async fn both(p: &Pair, method: &str, uri: &str, headers: &[(&str, &str)]) -> (Got, Got) {
    let g = call(&p.git, method, uri, headers).await;
    let d = call(&p.dir, method, uri, headers).await;
    assert_eq!(g.status, d.status, "{method} {uri} {headers:?}");
    for h in SAME {
        let skip = match *h {
            // Boundaries differ.
            "content-type" => g.h(h).starts_with("multipart/"),
            // Metadata documents differ in their commits and dates, error messages in words.
            "content-length" => !uri.contains("/resolve/") || g.status.as_u16() >= 400,
            _ => false,
        };
        if skip {
            continue;
        }
        assert_eq!(g.h(h), d.h(h), "{h} of {method} {uri} {headers:?}");
    }
    assert_eq!(
        g.headers.contains_key("x-repo-commit"),
        d.headers.contains_key("x-repo-commit"),
        "{uri}"
    );
    (g, d)
}

#[tokio::test]
async fn files_answer_the_same_from_git_and_from_a_directory() {
    let p = pair();
    let all: Vec<(&str, Vec<u8>)> = FILES
        .iter()
        .map(|(n, c)| (*n, c.to_vec()))
        .chain([("model.safetensors", p.tensors.clone())])
        .collect();
    for (path, content) in &all {
        let url = format!("/acme/same/resolve/main/{path}");
        let (g, d) = both(&p, "GET", &url, &[]).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.body, content[..], "{path}");
        assert_eq!(d.body, content[..], "{path}");
        let etag = g.h("etag").to_string();
        both(&p, "HEAD", &url, &[]).await;
        // Conditional requests and ranges.
        let (g, _) = both(&p, "GET", &url, &[("if-none-match", &etag)]).await;
        assert_eq!(g.status, StatusCode::NOT_MODIFIED);
        let (g, d) = both(&p, "GET", &url, &[("range", "bytes=2-5")]).await;
        assert_eq!(g.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(g.body, content[2..=5]);
        assert_eq!(d.body, g.body);
        let (g, _) = both(
            &p,
            "GET",
            &url,
            &[("range", "bytes=2-5"), ("if-range", &etag)],
        )
        .await;
        assert_eq!(g.status, StatusCode::PARTIAL_CONTENT);
        let weak = format!("W/{etag}");
        let (g, _) = both(
            &p,
            "GET",
            &url,
            &[("range", "bytes=2-5"), ("if-range", &weak)],
        )
        .await;
        assert_eq!(g.status, StatusCode::OK);
        let (g, _) = both(&p, "GET", &url, &[("range", "bytes=99999999-")]).await;
        assert_eq!(g.status, StatusCode::RANGE_NOT_SATISFIABLE);
        // Several ranges: multipart/byteranges from both (boundaries differ).
        let (g, d) = both(&p, "GET", &url, &[("range", "bytes=0-1,4-6")]).await;
        assert_eq!(g.status, StatusCode::PARTIAL_CONTENT);
        for got in [&g, &d] {
            let ct = got.h("content-type");
            let boundary = ct
                .strip_prefix("multipart/byteranges; boundary=")
                .unwrap_or_else(|| panic!("{ct}"));
            let body = String::from_utf8_lossy(&got.body).replace(boundary, "B");
            let want_ct =
                olah_service::source::json::content_type(path, *path == "model.safetensors");
            let size = content.len();
            let want = format!(
                "\r\n--B\r\nContent-Type: {want_ct}\r\nContent-Range: bytes 0-1/{size}\r\n\r\n{}\r\n--B\r\nContent-Type: {want_ct}\r\nContent-Range: bytes 4-6/{size}\r\n\r\n{}\r\n--B--\r\n",
                String::from_utf8_lossy(&content[0..=1]),
                String::from_utf8_lossy(&content[4..=6]),
            );
            assert_eq!(body, want, "{path}");
            assert_eq!(got.h("content-length"), got.body.len().to_string());
        }
    }
    // The LFS file: sha256 ETag and linked headers from both.
    let (g, _) = both(&p, "HEAD", "/acme/same/resolve/main/model.safetensors", &[]).await;
    assert_eq!(g.h("etag"), format!("\"{}\"", sha256_hex(&p.tensors)));
    assert_eq!(g.h("x-linked-size"), p.tensors.len().to_string());
    // Missing entries and revisions.
    let (g, _) = both(&p, "GET", "/acme/same/resolve/main/nope.txt", &[]).await;
    assert_eq!(g.code(), Some("EntryNotFound"));
    let (g, _) = both(&p, "GET", "/acme/same/resolve/nope/config.json", &[]).await;
    assert_eq!(g.code(), Some("RevisionNotFound"));
    let (g, _) = both(&p, "GET", "/api/models/acme/same/xet-read-token/main", &[]).await;
    assert_eq!(g.code(), Some("XetDisabled"));
}

/// Keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

/// A tree/paths-info answer without what legitimately differs (directory ids, commits).
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    for e in v.as_array_mut().expect("array") {
        let o = e.as_object_mut().expect("object");
        if o["type"] == "directory" {
            o.remove("oid");
        }
        if let Some(lc) = o.remove("lastCommit") {
            o.insert("lastCommit".into(), Value::from(keys(&lc)));
        }
    }
    v
}

#[tokio::test]
async fn repo_info_has_one_shape() {
    let p = pair();
    for q in ["", "?blobs=true"] {
        let uri = format!("/api/models/acme/same{q}");
        let (g, d) = both(&p, "GET", &uri, &[]).await;
        let (g, d) = (g.json(), d.json());
        assert_eq!(keys(&g), keys(&d), "{uri}");
        // The git repo has no hidden files: the same siblings, blob ids, sizes and LFS data.
        assert_eq!(g["siblings"], d["siblings"], "{uri}");
        assert_eq!(g["usedStorage"], d["usedStorage"]);
    }
}

#[tokio::test]
async fn tree_expand_adds_last_commit_in_both() {
    let p = pair();
    for q in [
        "",
        "?recursive=true",
        "?expand=true",
        "?recursive=1&expand=True",
    ] {
        let uri = format!("/api/models/acme/same/tree/main{q}");
        let (g, d) = both(&p, "GET", &uri, &[]).await;
        let (g, d) = (g.json(), d.json());
        assert_eq!(comparable(&g), comparable(&d), "{uri}");
        let expanded = q.contains("expand");
        for e in g
            .as_array()
            .expect("array")
            .iter()
            .chain(d.as_array().expect("array"))
        {
            assert_eq!(e.get("lastCommit").is_some(), expanded, "{uri}: {e}");
        }
    }
    let (g, d) = both(
        &p,
        "GET",
        "/api/models/acme/same/tree/main/sub%2Fdeeper",
        &[],
    )
    .await;
    assert_eq!(comparable(&g.json()), comparable(&d.json()));
    let (g, _) = both(&p, "GET", "/api/models/acme/same/tree/main/nope", &[]).await;
    assert_eq!(g.code(), Some("EntryNotFound"));
}

#[tokio::test]
async fn paths_info_bodies_are_read_the_same_way() {
    let p = pair();
    let uri = "/api/models/acme/same/paths-info/main";
    let form = "application/x-www-form-urlencoded";
    for (ct, body) in [
        (
            form,
            "paths=config.json&paths=sub&paths=nope&paths=model.safetensors",
        ),
        (form, "paths%5B%5D=config.json&paths=sub%2F&expand=true"),
        (form, "paths=config.json&paths=config.json"),
        (
            "application/json",
            r#"{"paths": ["sub/x.txt", "sub"], "expand": true}"#,
        ),
        ("text/plain", r#"{"paths": ["README.md"]}"#),
    ] {
        let g = call_body(&p.git, "POST", uri, &[("content-type", ct)], body.into()).await;
        let d = call_body(&p.dir, "POST", uri, &[("content-type", ct)], body.into()).await;
        assert_eq!(g.status, StatusCode::OK, "{body}");
        assert_eq!(d.status, StatusCode::OK, "{body}");
        let (g, d) = (g.json(), d.json());
        assert_eq!(comparable(&g), comparable(&d), "{body}");
        assert!(!g.as_array().expect("array").is_empty(), "{body}");
    }
    // Same refusals.
    for body in ["{not json", r#"{"paths": ["../x"]}"#] {
        let g = call_body(&p.git, "POST", uri, &[], body.into()).await;
        let d = call_body(&p.dir, "POST", uri, &[], body.into()).await;
        assert_eq!(g.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(d.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn refs_and_commits_have_the_hub_shape_in_both() {
    let p = pair();
    let (g, d) = both(&p, "GET", "/api/models/acme/same/refs", &[]).await;
    for v in [g.json(), d.json()] {
        assert_eq!(keys(&v), ["branches", "converts", "tags"], "{v}");
        assert_eq!(v["branches"][0]["name"], "main");
        assert_eq!(keys(&v["branches"][0]), ["name", "ref", "targetCommit"]);
    }
    let (g, d) = both(&p, "GET", "/api/models/acme/same/refs?include_prs=1", &[]).await;
    for v in [g.json(), d.json()] {
        assert_eq!(v["pullRequests"], Value::Array(vec![]), "{v}");
    }
    for q in ["", "?expand%5B%5D=formatted"] {
        let uri = format!("/api/models/acme/same/commits/main{q}");
        let (g, d) = both(&p, "GET", &uri, &[]).await;
        let (g, d) = (g.json(), d.json());
        assert_eq!(keys(&g[0]), keys(&d[0]), "{uri}");
        assert_eq!(keys(&g[0]["authors"][0]), ["user"]);
        assert_eq!(g[0].get("formatted").is_some(), !q.is_empty());
    }
}
