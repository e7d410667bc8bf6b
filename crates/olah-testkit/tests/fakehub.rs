//! The fake Hub over real HTTP: every route, header and fault, checked with reqwest.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use olah_testkit::{
    Content, FakeHub, Faults, FileFixture, Fixture, HostKind, Kind, RepoFixture, RouteKind, Scope,
    git_blob_sha1,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::Digest as _;

const BIG: u64 = 3 << 20;

async fn standard() -> FakeHub {
    FakeHub::start(Fixture::standard(BIG)).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}: {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> Option<&str> {
        self.headers
            .get("x-error-code")
            .map(|v| v.to_str().unwrap())
    }
}

/// One request, following same-origin relative redirects (a regular file's resolve → its
/// resolve-cache URL) like huggingface_hub does; other redirects are the answer.
async fn req(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let mut url = url.to_string();
    for _ in 0..3 {
        let r = req_once(method.clone(), &url, headers, body.clone()).await;
        let relative = r.status.is_redirection()
            && r.headers
                .get("location")
                .is_some_and(|l| l.as_bytes().starts_with(b"/"));
        if !relative {
            return r;
        }
        let base = reqwest::Url::parse(&url).unwrap();
        url = base.join(r.h("location")).unwrap().to_string();
    }
    panic!("too many redirects")
}

async fn req_once(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let mut r = client().request(method, url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some((ctype, b)) = body {
        r = r.header("content-type", ctype).body(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(url: &str) -> Resp {
    req(Method::GET, url, &[], None).await
}

async fn get_tok(url: &str, tok: &str) -> Resp {
    let auth = format!("Bearer {tok}");
    req(Method::GET, url, &[("authorization", &auth)], None).await
}

async fn head(url: &str) -> Resp {
    req(Method::HEAD, url, &[], None).await
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn file<'a>(hub: &'a FakeHub, kind: Kind, id: &str, rev: &str, path: &str) -> &'a FileFixture {
    hub.fixture().file(kind, id, rev, path).unwrap()
}

fn commit(hub: &FakeHub, kind: Kind, id: &str, rev: &str) -> String {
    hub.fixture()
        .repo(kind, id)
        .unwrap()
        .resolve(rev)
        .unwrap()
        .sha
        .clone()
}

#[tokio::test]
async fn regular_file_resolve_redirects_to_resolve_cache() {
    let hub = standard().await;
    let f = file(&hub, Kind::Model, "acme/tiny", "main", "sub/dir/a b.txt");
    let main = commit(&hub, Kind::Model, "acme/tiny", "main");
    for m in [Method::HEAD, Method::GET] {
        let u = format!("{}/acme/tiny/resolve/main/sub/dir/a%20b.txt", hub.hub_url());
        let r = req_once(m.clone(), &u, &[], None).await;
        assert_eq!(r.status, 307);
        assert_eq!(r.h("x-repo-commit"), main);
        let loc = r.h("location");
        assert!(
            loc.starts_with(&format!(
                "/api/resolve-cache/models/acme/tiny/{main}/sub/dir/a%20b.txt?"
            )),
            "{loc}"
        );
        assert!(loc.ends_with(&format!("&etag=%22{}%22", f.oid())), "{loc}");
        let c = req_once(m, &format!("{}{loc}", hub.hub_url()), &[], None).await;
        assert_eq!(c.status, 200);
        assert_eq!(c.h("x-repo-commit"), main);
        assert_eq!(c.h("etag"), format!("\"{}\"", f.oid()));
        assert_eq!(c.h("content-length"), f.size().to_string());
    }
    // Ranges on the resolve-cache URL; a missing file there is EntryNotFound.
    let u = format!(
        "{}/api/resolve-cache/datasets/acme/csv/{}/data/train.csv",
        hub.hub_url(),
        commit(&hub, Kind::Dataset, "acme/csv", "main")
    );
    let p = req_once(Method::GET, &u, &[("range", "bytes=5-9")], None).await;
    assert_eq!(p.status, 206);
    assert_eq!(p.body, b"label");
    let missing = req_once(Method::HEAD, &format!("{u}x"), &[], None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), Some("EntryNotFound"));
    // `/raw/`: the git blob (an LFS file's pointer), with ranges.
    let lfs = file(&hub, Kind::Model, "acme/tiny", "main", "model.bin");
    let raw = get(&format!("{}/acme/tiny/raw/main/model.bin", hub.hub_url())).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, lfs.pointer_text().as_bytes());
    let raw = req(
        Method::GET,
        &format!("{}/acme/tiny/raw/main/config.json", hub.hub_url()),
        &[("range", "bytes=0-0")],
        None,
    )
    .await;
    assert_eq!(raw.status, 206);
    assert_eq!(raw.body, b"{");
    // `revision/HEAD` is the default branch; auth-check and safetensors-metadata.
    let info = get(&format!(
        "{}/api/models/acme/tiny/revision/HEAD",
        hub.hub_url()
    ))
    .await;
    assert_eq!(info.json()["sha"], main.as_str());
    let ok = get(&format!(
        "{}/api/models/acme/gated/auth-check",
        hub.hub_url()
    ))
    .await;
    assert_eq!(ok.status, 401);
    let ok = get_tok(
        &format!("{}/api/models/acme/gated/auth-check", hub.hub_url()),
        "hf_granted",
    )
    .await;
    assert_eq!(ok.status, 200);
    let st = get(&format!(
        "{}/api/models/acme/tok/safetensors-metadata/model.safetensors.index.json",
        hub.hub_url()
    ))
    .await
    .json();
    assert_eq!(
        st["headers"]["model-00002-of-00002.safetensors"]["b.weight"]["shape"],
        serde_json::json!([3])
    );
}

#[tokio::test]
async fn regular_file_get_head_and_ranges() {
    let hub = standard().await;
    let u = format!("{}/acme/tiny/resolve/main/config.json", hub.hub_url());
    let f = file(&hub, Kind::Model, "acme/tiny", "main", "config.json");
    let want = f.content().to_vec();
    let main = commit(&hub, Kind::Model, "acme/tiny", "main");

    let r = get(&u).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, want);
    assert_eq!(r.h("etag"), format!("\"{}\"", git_blob_sha1(&want)));
    assert_eq!(r.h("x-repo-commit"), main);
    assert_eq!(r.h("content-length"), want.len().to_string());
    assert_eq!(r.h("content-type"), "application/json");
    assert_eq!(r.h("accept-ranges"), "bytes");
    assert!(r.headers.get("location").is_none());

    let h = head(&u).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.h("content-length"), want.len().to_string());
    assert_eq!(h.h("etag"), r.h("etag"));
    assert_eq!(h.h("x-repo-commit"), main);

    let p = req(Method::GET, &u, &[("range", "bytes=2-5")], None).await;
    assert_eq!(p.status, 206);
    assert_eq!(p.body, want[2..=5]);
    assert_eq!(p.h("content-range"), format!("bytes 2-5/{}", want.len()));
    assert_eq!(p.h("content-length"), "4");

    let s = req(Method::GET, &u, &[("range", "bytes=-3")], None).await;
    assert_eq!(s.status, 206);
    assert_eq!(s.body, want[want.len() - 3..]);

    let bad = format!("bytes={}-", want.len());
    let x = req(Method::GET, &u, &[("range", &bad)], None).await;
    assert_eq!(x.status, 416);
    assert_eq!(x.h("content-range"), format!("bytes */{}", want.len()));

    // A path with a space, percent-encoded as the client sends it; content type from the extension.
    let r = get(&format!(
        "{}/acme/tiny/resolve/main/sub/dir/a%20b.txt",
        hub.hub_url()
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"nested file with a space\n");
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn lfs_redirects_to_a_signed_cdn_url() {
    let hub = standard().await;
    let f = file(&hub, Kind::Model, "acme/tiny", "main", "model.bin");
    let u = format!("{}/acme/tiny/resolve/main/model.bin", hub.hub_url());
    for method in [Method::HEAD, Method::GET] {
        let r = req(method.clone(), &u, &[], None).await;
        assert_eq!(r.status, 302, "{method}");
        let loc = r.h("location");
        assert!(
            loc.starts_with(&format!("{}/lfs/{}?", hub.cdn_url(), f.sha256())),
            "{loc}"
        );
        assert!(loc.contains("Expires=") && loc.contains("Signature=") && loc.contains("repo="));
        assert_eq!(
            r.h("etag"),
            format!("\"{}\"", git_blob_sha1(f.pointer_text().as_bytes()))
        );
        assert_eq!(r.h("x-linked-etag"), format!("\"{}\"", f.sha256()));
        assert_eq!(r.h("x-linked-size"), f.size().to_string());
        assert_eq!(
            r.h("x-repo-commit"),
            commit(&hub, Kind::Model, "acme/tiny", "main")
        );
        assert!(r.headers.get("x-xet-hash").is_none());
        assert!(r.h("content-length").parse::<u64>().unwrap() < 1000);
    }
    let loc = head(&u).await.h("location").to_string();

    // The CDN needs no Authorization, and ignores one it would not accept.
    let r = req(
        Method::GET,
        &loc,
        &[("authorization", "Bearer hf_bogus")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, f.size());
    assert_eq!(sha256(&r.body), f.sha256());
    assert_eq!(r.h("content-length"), f.size().to_string());
    assert_eq!(r.h("accept-ranges"), "bytes");
    assert_eq!(r.h("etag"), format!("\"{}\"", f.sha256()));
    let h = head(&loc).await;
    assert_eq!((h.status, h.body.len()), (StatusCode::OK, 0));
    assert_eq!(h.h("content-length"), f.size().to_string());

    let p = req(
        Method::GET,
        &loc,
        &[("range", "bytes=1000000-1000099")],
        None,
    )
    .await;
    assert_eq!(p.status, 206);
    assert_eq!(p.body, f.content().read_range(1_000_000, 1_000_100));
    assert_eq!(
        p.h("content-range"),
        format!("bytes 1000000-1000099/{}", f.size())
    );
    let x = req(Method::GET, &loc, &[("range", "bytes=99999999-")], None).await;
    assert_eq!(x.status, 416);

    // Tampered or expired signatures are refused.
    let sig = loc.split("Signature=").nth(1).unwrap();
    let tampered = loc.replace(sig, "00000000000000000000000000000000");
    assert_eq!(get(&tampered).await.status, 403);
    let expired = loc.replace(
        &format!(
            "Expires={}",
            loc.split("Expires=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
        ),
        "Expires=1000",
    );
    assert_eq!(get(&expired).await.status, 403);
    assert_eq!(
        get(&format!("{}/lfs/{}", hub.cdn_url(), f.sha256()))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn xet_files_announce_xet_and_the_cas_reconstructs_them() {
    let hub = standard().await;
    let f = file(&hub, Kind::Model, "acme/tiny", "main", "model.safetensors");
    let main = commit(&hub, Kind::Model, "acme/tiny", "main");
    let r = head(&format!(
        "{}/acme/tiny/resolve/main/model.safetensors",
        hub.hub_url()
    ))
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.h("x-xet-hash"), f.xet_hash());
    assert_eq!(r.h("x-linked-etag"), format!("\"{}\"", f.sha256()));
    let token_url = format!(
        "{}/api/models/acme/tiny/xet-read-token/{main}",
        hub.hub_url()
    );
    let recon_url = format!("{}/cas/v1/reconstructions/{}", hub.hub_url(), f.xet_hash());
    assert_eq!(
        r.h("link"),
        format!("<{token_url}>; rel=\"xet-auth\", <{recon_url}>; rel=\"xet-reconstruction-info\"")
    );

    let t = get(&token_url).await;
    assert_eq!(t.status, 200);
    let j = t.json();
    let cas = format!("{}/cas", hub.hub_url());
    assert_eq!(t.h("x-xet-cas-url"), cas);
    assert_eq!(j["casUrl"], cas.as_str());
    assert_eq!(
        t.h("x-xet-access-token"),
        j["accessToken"].as_str().unwrap()
    );
    assert_eq!(t.h("x-xet-token-expiration"), j["exp"].to_string());
    let token = j["accessToken"].as_str().unwrap().to_string();
    assert_eq!(
        get(&format!(
            "{}/api/models/acme/tiny/xet-read-token/nope",
            hub.hub_url()
        ))
        .await
        .error_code(),
        Some("RevisionNotFound")
    );

    // Without the CAS token: refused. With it: a v2 reconstruction whose xorb ranges (fetched
    // from the CDN without Authorization) decode to the file.
    assert_eq!(get(&recon_url.replace("/v1/", "/v2/")).await.status, 401);
    let size = f.size();
    let range = format!("bytes=0-{}", size - 1);
    let auth = format!("Bearer {token}");
    let rec = req(
        Method::GET,
        &recon_url.replace("/v1/", "/v2/"),
        &[("authorization", &auth), ("range", &range)],
        None,
    )
    .await;
    assert_eq!(rec.status, 200);
    let rec = rec.json();
    let mut out = Vec::new();
    for term in rec["terms"].as_array().unwrap() {
        let h = term["hash"].as_str().unwrap();
        let fetch = rec["xorbs"][h]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                let c = &e["ranges"][0]["chunks"];
                c["start"].as_u64() <= term["range"]["start"].as_u64()
                    && c["end"].as_u64() >= term["range"]["end"].as_u64()
            })
            .unwrap();
        let b = &fetch["ranges"][0]["bytes"];
        let hr = format!("bytes={}-{}", b["start"], b["end"]);
        let x = req(
            Method::GET,
            fetch["url"].as_str().unwrap(),
            &[("range", &hr)],
            None,
        )
        .await;
        assert_eq!(x.status, 206);
        let chunks = olah_xet::xorb::decode_records(&x.body).unwrap();
        let skip = (term["range"]["start"].as_u64().unwrap()
            - fetch["ranges"][0]["chunks"]["start"].as_u64().unwrap()) as usize;
        let n = (term["range"]["end"].as_u64().unwrap() - term["range"]["start"].as_u64().unwrap())
            as usize;
        for c in chunks.into_iter().skip(skip).take(n) {
            out.extend(c);
        }
    }
    assert_eq!(out.len() as u64, size);
    assert_eq!(sha256(&out), f.sha256());
    assert!(hub.stats().xorb_bytes >= size);

    // The optional fileinfo variant.
    let fi = req(
        Method::GET,
        &format!("{}/acme/tiny/resolve/main/model.safetensors", hub.hub_url()),
        &[("accept", "application/vnd.xet-fileinfo+json, */*")],
        None,
    )
    .await;
    assert_eq!(fi.status, 200);
    assert_eq!(fi.json()["hash"], f.xet_hash().as_str());
    assert_eq!(fi.h("x-xet-hash"), f.xet_hash());
}

#[tokio::test]
async fn revisions_refs_and_short_shas() {
    let hub = standard().await;
    let base = format!("{}/acme/tiny/resolve", hub.hub_url());
    let pr = commit(&hub, Kind::Model, "acme/tiny", "refs/pr/1");
    let r = get(&format!("{base}/refs%2Fpr%2F1/pr.txt")).await;
    assert_eq!(
        (r.status, r.h("x-repo-commit")),
        (StatusCode::OK, pr.as_str())
    );
    let r = get(&format!("{base}/refs/pr/1/pr.txt")).await;
    assert_eq!(r.status, 200, "unencoded refs/pr/1 works too");
    let r = get(&format!("{base}/{}/pr.txt", &pr[..7])).await;
    assert_eq!(
        (r.status, r.h("x-repo-commit")),
        (StatusCode::OK, pr.as_str())
    );
    let r = get(&format!("{base}/v1.0/old-only.txt")).await;
    assert_eq!(r.status, 200);
    let r = get(&format!("{base}/main/pr.txt")).await;
    assert_eq!(r.error_code(), Some("EntryNotFound"));
    let r = get(&format!(
        "{}/datasets/acme/data/resolve/refs%2Fconvert%2Fparquet/default%2Ftrain%2F0000.parquet",
        hub.hub_url()
    ))
    .await;
    assert_eq!(r.status, 302);
    let r = get(&format!("{}/gpt2/resolve/main/config.json", hub.hub_url())).await;
    assert_eq!(
        r.body, b"{\"model_type\": \"gpt2\"}\n",
        "legacy ids resolve"
    );
    let r = get(&format!(
        "{}/spaces/acme/space/resolve/main/app.py",
        hub.hub_url()
    ))
    .await;
    assert_eq!(r.body, b"print('hi')\n");
}

#[tokio::test]
async fn hub_errors() {
    let hub = standard().await;
    let u = |p: &str| format!("{}{p}", hub.hub_url());
    let check = |r: &Resp, status: u16, code: Option<&str>| {
        assert_eq!(
            r.status.as_u16(),
            status,
            "{:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code(), code);
        assert!(r.headers.contains_key("x-error-message"));
        assert!(r.json()["error"].is_string());
    };
    check(
        &get(&u("/acme/nope/resolve/main/x")).await,
        401,
        Some("RepoNotFound"),
    );
    let h = head(&u("/acme/nope/resolve/main/x")).await;
    assert_eq!(
        (h.status.as_u16(), h.error_code()),
        (401, Some("RepoNotFound"))
    );
    check(
        &get_tok(&u("/acme/nope/resolve/main/x"), "hf_other").await,
        404,
        Some("RepoNotFound"),
    );
    check(
        &get(&u("/datasets/acme/nope/resolve/main/x")).await,
        401,
        Some("RepoNotFound"),
    );
    check(
        &get(&u("/api/models/acme/nope")).await,
        401,
        Some("RepoNotFound"),
    );
    check(
        &get_tok(&u("/api/models/acme/nope"), "hf_granted").await,
        404,
        Some("RepoNotFound"),
    );
    // Private: invisible without an owner token.
    check(
        &get(&u("/acme/private/resolve/main/config.json")).await,
        401,
        Some("RepoNotFound"),
    );
    check(
        &get_tok(&u("/acme/private/resolve/main/config.json"), "hf_other").await,
        404,
        Some("RepoNotFound"),
    );
    check(
        &get_tok(&u("/api/models/acme/private"), "hf_other").await,
        404,
        Some("RepoNotFound"),
    );
    assert_eq!(
        get_tok(&u("/acme/private/resolve/main/config.json"), "hf_owner")
            .await
            .status,
        200
    );
    let info = get_tok(&u("/api/models/acme/private"), "hf_owner")
        .await
        .json();
    assert_eq!(info["private"], true);
    // Revisions and entries.
    check(
        &get(&u("/acme/tiny/resolve/nope/config.json")).await,
        404,
        Some("RevisionNotFound"),
    );
    check(
        &get(&u(&format!(
            "/acme/tiny/resolve/{}/config.json",
            "0".repeat(40)
        )))
        .await,
        404,
        Some("RevisionNotFound"),
    );
    check(
        &get(&u("/api/models/acme/tiny/revision/nope")).await,
        404,
        Some("RevisionNotFound"),
    );
    let r = get(&u("/acme/tiny/resolve/main/nope.json")).await;
    check(&r, 404, Some("EntryNotFound"));
    assert_eq!(
        r.h("x-repo-commit"),
        commit(&hub, Kind::Model, "acme/tiny", "main")
    );
    let r = head(&u("/acme/tiny/resolve/main/old-only.txt")).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, Some("EntryNotFound"))
    );
    assert!(r.headers.contains_key("x-repo-commit"));
    // Gated: metadata public, files need a granted token.
    check(
        &get(&u("/acme/gated/resolve/main/config.json")).await,
        401,
        Some("GatedRepo"),
    );
    check(
        &get_tok(&u("/acme/gated/resolve/main/weights.bin"), "hf_other").await,
        403,
        Some("GatedRepo"),
    );
    check(
        &get(&u("/api/models/acme/gated/xet-read-token/main")).await,
        401,
        Some("GatedRepo"),
    );
    assert_eq!(
        get_tok(&u("/acme/gated/resolve/main/config.json"), "hf_granted")
            .await
            .status,
        200
    );
    assert_eq!(
        get_tok(&u("/acme/gated/resolve/main/weights.bin"), "hf_granted")
            .await
            .status,
        302
    );
    let info = get(&u("/api/models/acme/gated")).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["gated"], "manual");
    assert_eq!(
        get(&u("/api/models/acme/gated/tree/main")).await.status,
        200
    );
    // Invalid tokens are refused everywhere on the hub.
    for p in [
        "/acme/tiny/resolve/main/config.json",
        "/api/models/acme/tiny",
        "/api/whoami-v2",
        "/api/models/acme/nope",
    ] {
        let r = get_tok(&u(p), "hf_bogus").await;
        assert_eq!(r.status, 401, "{p}");
        assert_eq!(
            r.h("x-error-message"),
            "Invalid credentials in Authorization header"
        );
    }
    // Unknown routes.
    check(&get(&u("/nothing/here")).await, 404, None);
    check(&get(&u("/api/nothing")).await, 404, None);
    check(&get(&u("/api/models/acme/tiny/nothing/x")).await, 404, None);
}

#[tokio::test]
async fn repo_info_and_revisions() {
    let hub = standard().await;
    let u = |p: &str| format!("{}{p}", hub.hub_url());
    let tiny = hub.fixture().repo(Kind::Model, "acme/tiny").unwrap();
    let info = get(&u("/api/models/acme/tiny")).await.json();
    assert_eq!(info["id"], "acme/tiny");
    assert_eq!(info["sha"], tiny.main().sha.as_str());
    assert_eq!(info["private"], false);
    assert_eq!(info["gated"], false);
    let names: Vec<&str> = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "README.md",
            "config.json",
            "model.bin",
            "model.safetensors",
            "sub/dir/a b.txt"
        ]
    );
    assert!(info["siblings"][0].get("blobId").is_none());

    let b = get(&u("/api/models/acme/tiny/revision/main?blobs=true"))
        .await
        .json();
    let mb = b["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "model.bin")
        .unwrap();
    let f = tiny.file("main", "model.bin").unwrap();
    assert_eq!(mb["blobId"], f.oid().as_str());
    assert_eq!(mb["size"], f.size());
    assert_eq!(mb["lfs"]["sha256"], f.sha256());
    assert_eq!(mb["lfs"]["pointerSize"], f.pointer_size());
    let cfg = b["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rfilename"] == "config.json")
        .unwrap();
    assert!(cfg.get("lfs").is_none());

    for (rev, want) in [("v1.0", 0usize), ("refs%2Fpr%2F1", 3), ("dev", 1)] {
        let v = get(&u(&format!("/api/models/acme/tiny/revision/{rev}")))
            .await
            .json();
        assert_eq!(v["sha"], tiny.commits[want].sha.as_str(), "{rev}");
    }
    let short = &tiny.commits[1].sha[..8];
    assert_eq!(
        get(&u(&format!("/api/models/acme/tiny/revision/{short}")))
            .await
            .json()["sha"],
        tiny.commits[1].sha.as_str()
    );

    let h = head(&u("/api/models/acme/tiny")).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert!(h.h("content-length").parse::<u64>().unwrap() > 100);

    let d = get(&u("/api/datasets/acme/data")).await.json();
    assert_eq!(d["siblings"].as_array().unwrap().len(), 301);
    let s = get(&u("/api/spaces/acme/space")).await.json();
    assert_eq!(s["sdk"], "gradio");
    assert_eq!(s["runtime"]["stage"], "RUNNING");
    assert_eq!(get(&u("/api/models/gpt2")).await.json()["id"], "gpt2");
    assert_eq!(get(&u("/api/models/gpt2/revision/main")).await.status, 200);
    // expand= keeps only the asked-for fields.
    let e = get(&u("/api/models/acme/tiny?expand=sha&expand=private"))
        .await
        .json();
    let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["_id", "id", "private", "sha"]);
}

#[tokio::test]
async fn tree_listing_entries() {
    let hub = standard().await;
    let u = |p: &str| format!("{}{p}", hub.hub_url());
    let tiny = hub.fixture().repo(Kind::Model, "acme/tiny").unwrap();
    let root = get(&u("/api/models/acme/tiny/tree/main")).await.json();
    let paths: Vec<(&str, &str)> = root
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("README.md", "file"),
            ("config.json", "file"),
            ("model.bin", "file"),
            ("model.safetensors", "file"),
            ("sub", "directory")
        ]
    );
    let st = root
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "model.safetensors")
        .unwrap();
    let f = tiny.file("main", "model.safetensors").unwrap();
    assert_eq!(st["oid"], f.oid().as_str());
    assert_eq!(st["size"], f.size());
    assert_eq!(st["lfs"]["oid"], f.sha256());
    assert_eq!(st["lfs"]["size"], f.size());
    assert_eq!(st["lfs"]["pointerSize"], f.pointer_size());
    assert_eq!(st["xetHash"], f.xet_hash().as_str());
    assert!(root[1].get("lfs").is_none() && root[1].get("xetHash").is_none());
    assert!(root[0].get("lastCommit").is_none());

    let rec = get(&u(
        "/api/models/acme/tiny/tree/main?recursive=true&expand=false",
    ))
    .await
    .json();
    let paths: Vec<&str> = rec
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "config.json",
            "model.bin",
            "model.safetensors",
            "sub",
            "sub/dir",
            "sub/dir/a b.txt"
        ]
    );

    // A sub-directory, with the path encoded as huggingface_hub sends it; its git tree id.
    let sub = get(&u("/api/models/acme/tiny/tree/main/sub%2Fdir"))
        .await
        .json();
    assert_eq!(sub.as_array().unwrap().len(), 1);
    assert_eq!(sub[0]["path"], "sub/dir/a b.txt");
    let leaf = tiny.file("main", "sub/dir/a b.txt").unwrap();
    let mut body = b"100644 a b.txt\0".to_vec();
    body.extend(hex::decode(leaf.oid()).unwrap());
    let mut tree_obj = format!("tree {}\0", body.len()).into_bytes();
    tree_obj.extend(&body);
    let want_dir_oid = hex::encode(sha1::Sha1::digest(&tree_obj));
    let subdir = get(&u("/api/models/acme/tiny/tree/main/sub")).await.json();
    assert_eq!(subdir[0]["path"], "sub/dir");
    assert_eq!(subdir[0]["oid"], want_dir_oid.as_str());

    // expand=true adds lastCommit (the commit that last changed the entry) and security info.
    let ex = get(&u("/api/models/acme/tiny/tree/main?expand=true"))
        .await
        .json();
    let cfg = ex
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "config.json")
        .unwrap();
    assert_eq!(cfg["lastCommit"]["id"], tiny.commits[1].sha.as_str());
    assert_eq!(cfg["lastCommit"]["title"], "add weights");
    assert_eq!(cfg["securityFileStatus"]["status"], "safe");
    let readme = ex
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "README.md")
        .unwrap();
    assert_eq!(readme["lastCommit"]["id"], tiny.commits[2].sha.as_str());

    let r = get(&u("/api/models/acme/tiny/tree/main/nope")).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, Some("EntryNotFound"))
    );
    let r = get(&u("/api/models/acme/tiny/tree/nope")).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, Some("RevisionNotFound"))
    );
    let r = get(&u("/api/models/acme/tiny/tree/refs%2Fpr%2F1"))
        .await
        .json();
    assert!(r.as_array().unwrap().iter().any(|e| e["path"] == "pr.txt"));
}

/// Follows `Link: <…>; rel="next"` to the end; returns (paths, pages).
async fn all_pages(hub: &FakeHub, first: &str) -> (Vec<String>, usize) {
    let mut url = first.to_string();
    let mut paths = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{url}");
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        for e in r.json().as_array().unwrap() {
            paths.push(e["path"].as_str().unwrap().to_string());
        }
        let Some(link) = r.headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        assert!(
            link.starts_with(&format!("<{}/api/", hub.hub_url())),
            "absolute hub URL: {link}"
        );
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        url = link[1..link.find('>').unwrap()].to_string();
        assert!(url.contains("cursor="));
    }
    (paths, pages)
}

#[tokio::test]
async fn tree_pagination_follows_absolute_links_to_the_end() {
    let hub = standard().await;
    let base = format!("{}/api/datasets/acme/data/tree/main", hub.hub_url());
    let (paths, pages) = all_pages(&hub, &format!("{base}?recursive=true&expand=false")).await;
    assert_eq!(pages, 4, "302 entries in pages of 100");
    assert_eq!(paths.len(), 302);
    assert_eq!(
        paths.iter().collect::<HashSet<_>>().len(),
        302,
        "no duplicates"
    );
    assert!(
        paths.contains(&"data".to_string()) && paths.contains(&"data/part-0299.jsonl".to_string())
    );
    let (_, pages) = all_pages(&hub, &format!("{base}?recursive=true&expand=true")).await;
    assert_eq!(pages, 7, "expand=true pages hold 50 entries");
    let (p, pages) = all_pages(&hub, &format!("{base}/data?limit=120")).await;
    assert_eq!((p.len(), pages), (300, 3));
    // The Link keeps the request's own parameters.
    let r = get(&format!("{base}?recursive=true&expand=false")).await;
    let link = r.h("link");
    assert!(
        link.contains("recursive=true") && link.contains("expand=false"),
        "{link}"
    );
    assert_eq!(get(&format!("{base}?cursor=zz")).await.status, 400);
    // A fixture with the default page size does not paginate 302 entries.
    let mut f = Fixture::standard(1024);
    f.tree_page_size = 1000;
    let hub2 = FakeHub::start(f).await.unwrap();
    let (_, pages) = all_pages(
        &hub2,
        &format!(
            "{}/api/datasets/acme/data/tree/main?recursive=1",
            hub2.hub_url()
        ),
    )
    .await;
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn paths_info_refs_commits_whoami() {
    let hub = standard().await;
    let u = |p: &str| format!("{}{p}", hub.hub_url());
    let tiny = hub.fixture().repo(Kind::Model, "acme/tiny").unwrap();
    let form = b"paths=config.json&paths=model.bin&paths=nope.txt&paths=sub&expand=false".to_vec();
    let r = req(
        Method::POST,
        &u("/api/models/acme/tiny/paths-info/main"),
        &[],
        Some(("application/x-www-form-urlencoded", form.clone())),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let got: Vec<(&str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("config.json", "file"),
            ("model.bin", "file"),
            ("sub", "directory")
        ]
    );
    assert_eq!(
        v[1]["lfs"]["oid"],
        tiny.file("main", "model.bin").unwrap().sha256()
    );
    let r = req(
        Method::POST,
        &u("/api/models/acme/tiny/paths-info/v1.0"),
        &[],
        Some(("application/x-www-form-urlencoded", form)),
    )
    .await
    .json();
    assert_eq!(
        r.as_array().unwrap().len(),
        1,
        "v1.0 has only config.json of these"
    );
    let j = req(
        Method::POST,
        &u("/api/models/acme/tiny/paths-info/main"),
        &[],
        Some((
            "application/json",
            br#"{"paths": ["README.md"], "expand": true}"#.to_vec(),
        )),
    )
    .await
    .json();
    assert_eq!(j[0]["lastCommit"]["id"], tiny.commits[2].sha.as_str());
    assert_eq!(
        get(&u("/api/models/acme/tiny/paths-info/main"))
            .await
            .status,
        405
    );

    let refs = get(&u("/api/models/acme/tiny/refs")).await.json();
    let branches: Vec<&str> = refs["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(branches, ["dev", "main"]);
    assert_eq!(refs["branches"][1]["ref"], "refs/heads/main");
    assert_eq!(
        refs["branches"][1]["targetCommit"],
        tiny.main().sha.as_str()
    );
    assert_eq!(refs["tags"][0]["name"], "v1.0");
    assert_eq!(
        refs["tags"][0]["targetCommit"],
        tiny.commits[0].sha.as_str()
    );
    assert!(refs["converts"].as_array().unwrap().is_empty());
    assert!(refs.get("pullRequests").is_none());
    let refs = get(&u("/api/models/acme/tiny/refs?include_prs=1"))
        .await
        .json();
    assert_eq!(refs["pullRequests"][0]["ref"], "refs/pr/1");
    assert_eq!(
        refs["pullRequests"][0]["targetCommit"],
        tiny.commits[3].sha.as_str()
    );
    let drefs = get(&u("/api/datasets/acme/data/refs")).await.json();
    assert_eq!(drefs["converts"][0]["name"], "parquet");
    assert_eq!(drefs["converts"][0]["ref"], "refs/convert/parquet");

    let c = get(&u("/api/models/acme/tiny/commits/dev")).await.json();
    let ids: Vec<&str> = c
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [tiny.commits[1].sha.as_str(), tiny.commits[0].sha.as_str()]
    );
    assert_eq!(c[0]["title"], "add weights");
    assert_eq!(c[0]["authors"][0]["user"], "alice");
    assert!(c[0]["date"].as_str().unwrap().ends_with(".000Z"));
    assert!(c[0].get("formatted").is_none());
    let c = get(&u(
        "/api/models/acme/tiny/commits/main?expand%5B%5D=formatted",
    ))
    .await
    .json();
    assert_eq!(c[0]["formatted"]["title"], "add safetensors");
    // Paginated with an absolute Link.
    let mut url = u("/api/models/acme/tiny/commits/refs%2Fpr%2F1?limit=1");
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = get(&url).await;
        seen.extend(
            r.json()
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        let Some(l) = r.headers.get("link") else {
            break;
        };
        let l = l.to_str().unwrap();
        assert!(l.starts_with(&format!("<{}/", hub.hub_url())));
        url = l[1..l.find('>').unwrap()].to_string();
    }
    let want: Vec<String> = tiny.commits.iter().rev().map(|c| c.sha.clone()).collect();
    assert_eq!(seen, want);

    let w = get_tok(&u("/api/whoami-v2"), "hf_owner").await;
    assert_eq!(w.status, 200);
    assert_eq!(w.json()["name"], "user-1");
    assert_eq!(w.json()["type"], "user");
    assert_eq!(get(&u("/api/whoami-v2")).await.status, 401);
}

#[tokio::test]
async fn faults_5xx_429_latency_and_scope() {
    let hub = standard().await;
    let u = format!("{}/api/models/acme/tiny", hub.hub_url());
    hub.set_faults(Faults {
        fail_5xx: 2,
        ..Faults::none()
    });
    assert_eq!(get(&u).await.status, 503);
    assert_eq!(hub.faults(HostKind::Hub).fail_5xx, 1);
    assert_eq!(get(&u).await.status, 503);
    assert_eq!(get(&u).await.status, 200, "recovers after N failures");

    hub.set_faults(Faults {
        fail_429: 1,
        ..Faults::none()
    });
    let r = get(&u).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.h("retry-after"), "1");
    assert_eq!(r.h("ratelimit"), "\"api\";r=0;t=1");
    assert_eq!(
        r.h("ratelimit-policy"),
        "\"fixed window\";\"api\";q=500;w=300"
    );
    assert_eq!(get(&u).await.status, 200);

    // Scoped to the CDN: the hub is untouched.
    hub.set_faults(Faults {
        fail_5xx: 5,
        scope: Scope::Cdn,
        ..Faults::none()
    });
    assert_eq!(get(&u).await.status, 200);
    let loc = head(&format!(
        "{}/acme/tiny/resolve/main/model.bin",
        hub.hub_url()
    ))
    .await
    .h("location")
    .to_string();
    assert_eq!(get(&loc).await.status, 503);
    hub.clear_faults();
    assert_eq!(head(&loc).await.status, 200);

    hub.set_faults(Faults {
        latency_ms: 300,
        scope: Scope::Hub,
        ..Faults::none()
    });
    let t = Instant::now();
    assert_eq!(get(&u).await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(head(&loc).await.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "the CDN has no latency"
    );
    hub.clear_faults();
}

#[tokio::test]
async fn faults_cut_bodies_and_pace_bandwidth() {
    let hub = standard().await;
    let f = file(&hub, Kind::Model, "acme/big", "main", "big.bin");
    let loc = head(&format!("{}/acme/big/resolve/main/big.bin", hub.hub_url()))
        .await
        .h("location")
        .to_string();
    hub.set_faults(Faults {
        cut_after_bytes: Some(100_000),
        cut_count: 1,
        scope: Scope::Cdn,
        ..Faults::none()
    });
    // HEADs and short bodies do not use up the cut.
    assert_eq!(head(&loc).await.status, 200);
    let r = req(Method::GET, &loc, &[("range", "bytes=0-999")], None).await;
    assert_eq!(r.body.len(), 1000);
    assert_eq!(hub.faults(HostKind::Cdn).cut_count, 1);
    // The next long body is aborted after exactly 100 000 bytes.
    let resp = client().get(&loc).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(f.size()));
    let mut got = Vec::new();
    let mut stream = resp;
    let err = loop {
        match stream.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(err.is_some(), "the body must not end cleanly");
    assert_eq!(got.len(), 100_000);
    assert_eq!(got, f.content().read_range(0, 100_000));
    assert_eq!(hub.faults(HostKind::Cdn).cut_count, 0);
    // The following one is whole.
    let r = get(&loc).await;
    assert_eq!(sha256(&r.body), f.sha256());

    // Bandwidth: 400 KB at 2 MB/s takes about 0.2 s.
    hub.set_faults(Faults {
        bandwidth_bytes_per_sec: 2_000_000,
        ..Faults::none()
    });
    let t = Instant::now();
    let r = req(Method::GET, &loc, &[("range", "bytes=0-399999")], None).await;
    assert_eq!(r.body.len(), 400_000);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(190) && el < Duration::from_secs(5),
        "{el:?}"
    );
    hub.clear_faults();
    let t = Instant::now();
    get(&loc).await;
    assert!(t.elapsed() < el * 4, "unpaced is faster");
}

#[tokio::test]
async fn counters_log_and_admin_api() {
    let hub = standard().await;
    hub.reset_stats();
    let f = file(&hub, Kind::Model, "acme/tiny", "main", "model.bin");
    let r = head(&format!(
        "{}/acme/tiny/resolve/main/model.bin",
        hub.hub_url()
    ))
    .await;
    let loc = r.h("location").to_string();
    let body = req(Method::GET, &loc, &[("range", "bytes=0-")], None)
        .await
        .body;
    assert_eq!(body.len() as u64, f.size());
    let tree = get_tok(
        &format!("{}/api/models/acme/tiny/tree/main", hub.hub_url()),
        "hf_other",
    )
    .await;
    let s = hub.stats();
    assert_eq!((s.hub_requests, s.cdn_requests), (2, 1));
    assert_eq!(s.cdn_bytes, f.size());
    assert_eq!(
        s.hub_bytes,
        tree.body.len() as u64,
        "HEAD sends no body; the tree JSON does"
    );
    assert_eq!(s.count(HostKind::Hub, "HEAD", RouteKind::Resolve), 1);
    assert_eq!(s.count(HostKind::Cdn, "GET", RouteKind::Lfs), 1);
    assert_eq!(s.count_route(HostKind::Hub, RouteKind::Tree), 1);
    assert_eq!(s.log.len(), 3);
    assert_eq!(s.log[0].method, "HEAD");
    assert_eq!(s.log[0].status, 302);
    assert_eq!(s.log[1].host, HostKind::Cdn);
    assert_eq!(s.log[1].range.as_deref(), Some("bytes=0-"));
    assert!(!s.log[1].auth);
    assert!(s.log[1].uri.starts_with("/lfs/") && s.log[1].uri.contains("Signature="));
    assert!(s.log[2].auth);
    assert_eq!(s.log[2].route, RouteKind::Tree);

    // The same over HTTP; admin calls are not counted.
    let stats = get(&format!("{}/__admin/stats", hub.hub_url()))
        .await
        .json();
    assert_eq!(stats["hub_requests"], 2);
    assert_eq!(stats["cdn_bytes"], f.size());
    assert_eq!(stats["requests"]["cdn"]["GET"]["lfs"], 1);
    assert_eq!(stats["log"][1]["host"], "cdn");
    let set = req(
        Method::POST,
        &format!("{}/__admin/faults", hub.hub_url()),
        &[],
        Some((
            "application/json",
            br#"{"fail_5xx": 1, "scope": "hub"}"#.to_vec(),
        )),
    )
    .await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["hub"]["fail_5xx"], 1);
    assert_eq!(set.json()["cdn"]["fail_5xx"], 0);
    assert_eq!(
        get(&format!("{}/api/models/acme/tiny", hub.hub_url()))
            .await
            .status,
        503
    );
    let bad = req(
        Method::POST,
        &format!("{}/__admin/faults", hub.hub_url()),
        &[],
        Some(("application/json", br#"{"nope": 1}"#.to_vec())),
    )
    .await;
    assert_eq!(bad.status, 400);
    let clear = req(
        Method::POST,
        &format!("{}/__admin/faults", hub.hub_url()),
        &[],
        Some(("application/json", b"{}".to_vec())),
    )
    .await;
    assert_eq!(clear.json()["hub"]["fail_5xx"], 0);
    let reset = req(
        Method::POST,
        &format!("{}/__admin/reset", hub.hub_url()),
        &[],
        Some(("application/json", b"{}".to_vec())),
    )
    .await;
    assert_eq!(reset.status, 200);
    let s = hub.stats();
    assert_eq!(
        (
            s.hub_requests,
            s.cdn_requests,
            s.hub_bytes,
            s.cdn_bytes,
            s.log.len()
        ),
        (0, 0, 0, 0, 0)
    );
    let files = get(&format!("{}/__admin/files", hub.hub_url()))
        .await
        .json();
    assert_eq!(
        files["models/acme/tiny@main:model.bin"]["sha256"],
        f.sha256()
    );
    assert_eq!(files["models/acme/tiny@main:model.bin"]["etag"], f.sha256());
}

#[tokio::test]
async fn custom_fixture_kernels_generated_and_shutdown() {
    let mut k = RepoFixture::new(Kind::Kernel, "ns/kern");
    k.commit(
        "init",
        vec![
            (
                "build/k.so",
                FileFixture::new(
                    "build/k.so",
                    Content::Generated {
                        seed: 9,
                        len: 20 << 20,
                    },
                ),
            ),
            ("README.md", FileFixture::text("README.md", "kernel\n")),
        ],
        &[],
    );
    let legacy = RepoFixture::with_files(
        Kind::Dataset,
        "squad",
        vec![("a.txt", FileFixture::text("a.txt", "a"))],
    );
    let mut hub = FakeHub::start(Fixture::new(vec![k, legacy], vec!["t1"]))
        .await
        .unwrap();
    let big = file(&hub, Kind::Kernel, "ns/kern", "main", "build/k.so");
    assert!(big.lfs, "files over 10 MiB are LFS");
    let r = head(&format!(
        "{}/kernels/ns/kern/resolve/main/build/k.so",
        hub.hub_url()
    ))
    .await;
    assert_eq!(r.status, 302);
    let body = get(r.h("location")).await.body;
    assert_eq!(sha256(&body), big.sha256());
    assert_eq!(
        get(&format!("{}/api/kernels/ns/kern", hub.hub_url()))
            .await
            .json()["id"],
        "ns/kern"
    );
    assert_eq!(
        get(&format!(
            "{}/datasets/squad/resolve/main/a.txt",
            hub.hub_url()
        ))
        .await
        .body,
        b"a"
    );
    assert_eq!(
        get(&format!("{}/api/datasets/squad/tree/main", hub.hub_url()))
            .await
            .json()[0]["path"],
        "a.txt"
    );
    // The same id under another kind does not exist.
    assert_eq!(
        get(&format!("{}/squad/resolve/main/a.txt", hub.hub_url()))
            .await
            .error_code(),
        Some("RepoNotFound")
    );

    let url = hub.hub_url().to_string();
    // A keep-alive connection opened before shutdown is closed too.
    let c = client();
    assert_eq!(
        c.get(format!("{url}/api/kernels/ns/kern"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    hub.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        c.get(format!("{url}/api/kernels/ns/kern"))
            .send()
            .await
            .is_err()
    );
    assert!(
        client()
            .get(format!("{url}/api/kernels/ns/kern"))
            .send()
            .await
            .is_err()
    );

    let bad = Fixture::new(vec![RepoFixture::new(Kind::Model, "a/b")], vec![]);
    assert!(
        FakeHub::start(bad).await.is_err(),
        "a repo without commits is rejected"
    );
}
