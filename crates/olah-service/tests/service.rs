//! The service in-process against the fake Hub (olah-testkit) on 127.0.0.1:0: resolve outcomes,
//! the access gate, and the Xet side (tokens, reconstructions, signed xorb URLs). No HTTP server
//! of the mirror is involved.

use std::sync::Arc;

use futures::StreamExt;
use http::HeaderValue;
use olah_config::Config;
use olah_service::access::Scope;
use olah_service::{ErrorKind, HubCode, Mirror, Origin, ServiceError};
use olah_testkit::{FakeHub, Faults, Fixture, HostKind, RouteKind};
use olah_types::{RepoPath, RepoRef, Revision, Route, parse_route};

const BASE: &str = "http://mirror.test:8090";

async fn hub() -> FakeHub {
    FakeHub::start(Fixture::standard_with(1 << 16, 1 << 16))
        .await
        .unwrap()
}

fn config(hub: &FakeHub, dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let netloc = |u: &str| u.split_once("//").unwrap().1.to_string();
    let mut cfg = Config {
        repos_path: dir.to_path_buf(),
        hf_scheme: "http".into(),
        hf_netloc: netloc(hub.hub_url()),
        hf_lfs_netloc: netloc(hub.cdn_url()),
        mirror_scheme: "http".into(),
        mirror_netloc: "mirror.test:8090".into(),
        ..Default::default()
    };
    tweak(&mut cfg);
    cfg
}

fn mirror(hub: &FakeHub, dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Mirror {
    Mirror::open(Arc::new(config(hub, dir, tweak))).unwrap()
}

fn repo(id: &str) -> RepoRef {
    match parse_route(&format!("/api/models/{id}")).unwrap() {
        Route::RepoInfo { repo } => repo,
        r => panic!("not a repo route: {r:?}"),
    }
}

fn rev(r: &str) -> Revision {
    Revision::new(r).unwrap()
}

fn path(p: &str) -> RepoPath {
    RepoPath::new(p).unwrap()
}

fn token(t: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {t}")).unwrap()
}

fn hub_heads(hub: &FakeHub) -> u64 {
    hub.stats().count_route(HostKind::Hub, RouteKind::Resolve)
}

#[tokio::test]
async fn a_miss_is_cached_then_hit_without_the_upstream() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (r, rv, p) = (repo("acme/tiny"), rev("main"), path("config.json"));
    let first = m.hub().resolve(&r, &rv, &p, None).await.unwrap();
    assert_eq!(first.cache.as_str(), "miss");
    assert_eq!(first.commit.len(), 40);
    let asked = hub_heads(&hub);
    assert!(asked >= 1);
    let second = m.hub().resolve(&r, &rv, &p, None).await.unwrap();
    assert_eq!(second.cache.as_str(), "hit");
    assert_eq!(second.commit, first.commit);
    assert_eq!(second.meta, first.meta);
    assert_eq!(hub_heads(&hub), asked, "a hit asks nothing upstream");
}

#[tokio::test]
async fn a_branch_is_revalidated_after_the_ttl_and_served_stale_when_the_upstream_fails() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |c| c.metadata_cache_ttl = 0);
    let (r, rv, p) = (repo("acme/tiny"), rev("main"), path("config.json"));
    assert_eq!(
        m.hub()
            .resolve(&r, &rv, &p, None)
            .await
            .unwrap()
            .cache
            .as_str(),
        "miss"
    );
    let again = m.hub().resolve(&r, &rv, &p, None).await.unwrap();
    assert_eq!(again.cache.as_str(), "revalidated");
    hub.set_faults(Faults {
        fail_5xx: 100,
        ..Faults::none()
    });
    let stale = m.hub().resolve(&r, &rv, &p, None).await.unwrap();
    assert_eq!(stale.cache.as_str(), "stale");
    assert_eq!(stale.commit, again.commit);
    // Something never cached is not made up: the outage is reported as an upstream error.
    let e = m
        .hub()
        .resolve(&r, &rv, &path("README.md"), None)
        .await
        .unwrap_err();
    assert!(e.is_outage(), "{e:?}");
    assert_eq!(e.origin, Origin::Upstream);
    hub.clear_faults();
}

#[tokio::test]
async fn offline_answers_not_cached_for_what_it_never_saw() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |c| c.offline = true);
    let e = m
        .hub()
        .resolve(&repo("acme/tiny"), &rev("main"), &path("config.json"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, HubCode::OfflineNotCached, "{e:?}");
    assert!(matches!(e.kind, ErrorKind::NotFound));
    assert_eq!(
        hub.stats().hub_requests,
        0,
        "offline never asks the upstream"
    );
}

#[tokio::test]
async fn the_gate_refuses_anonymous_callers_of_a_gated_repo_and_remembers_it() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (r, rv, p) = (repo("acme/gated"), rev("main"), path("weights.bin"));
    let e = m.hub().resolve(&r, &rv, &p, None).await.unwrap_err();
    assert_eq!(e.code, HubCode::GatedRepo, "{e:?}");
    assert!(!e.is_outage());
    // A granted token is admitted (the Hub confirms it).
    let granted = token("hf_granted");
    let ok = m.hub().resolve(&r, &rv, &p, Some(&granted)).await.unwrap();
    assert_eq!(ok.cache.as_str(), "miss");
    // Cached now, but the anonymous caller is still refused: from the remembered refusal,
    // without asking the Hub again.
    let before = hub.stats().hub_requests;
    let again = m.hub().resolve(&r, &rv, &p, None).await.unwrap_err();
    assert_eq!(again.code, HubCode::GatedRepo);
    assert_eq!(
        hub.stats().hub_requests,
        before,
        "the refusal was remembered"
    );
    // Another valid token without a grant is refused too, after asking the Hub.
    let other = token("hf_other");
    let e = m
        .hub()
        .resolve(&r, &rv, &p, Some(&other))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Relayed(_)) && e.code == HubCode::GatedRepo,
        "{e:?}"
    );
    // The granted token reads the cached file without a new upstream HEAD of its own.
    let heads = hub_heads(&hub);
    let hit = m.hub().resolve(&r, &rv, &p, Some(&granted)).await.unwrap();
    assert_eq!(hit.cache.as_str(), "hit");
    assert_eq!(hub_heads(&hub), heads);
}

#[tokio::test]
async fn the_gate_fails_closed_offline_without_a_persisted_grant() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |c| c.offline = true);
    let r = repo("acme/gated");
    let granted = token("hf_granted");
    for auth in [None, Some(&granted)] {
        let caller = m.gate().caller(auth);
        let e: ServiceError = m
            .gate()
            .check(&r, Scope::Files, &caller, auth, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, HubCode::GatedRepo, "{e:?}");
        assert!(matches!(e.kind, ErrorKind::Unauthorized));
    }
    assert_eq!(hub.stats().hub_requests, 0);
}

/// Resolves the Xet file of `acme/tiny` and returns (its Xet hash, the mirror token).
async fn xet_setup(m: &Mirror) -> (String, String) {
    let r = repo("acme/tiny");
    let res = m
        .hub()
        .resolve(&r, &rev("main"), &path("model.safetensors"), None)
        .await
        .unwrap();
    let xh = res.meta.xet_hash.clone().expect("a Xet file");
    assert!(m.xet().serves(&r));
    let (tok, exp) = m.xet().token(&r, &rev("main"), None).await.unwrap();
    assert!(
        tok.starts_with("olx_"),
        "a mirror token, not the upstream's"
    );
    assert!(exp > 0);
    (xh.to_ascii_lowercase(), tok)
}

#[tokio::test]
async fn xet_tokens_are_the_mirrors_own_and_bound_to_the_repo_and_caller() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (_, tok) = xet_setup(&m).await;
    // The same caller asking again for the same repo and revision gets the same session.
    let (again, _) = m
        .xet()
        .token(&repo("acme/tiny"), &rev("main"), None)
        .await
        .unwrap();
    assert_eq!(again, tok);
    // Another caller gets its own.
    let granted = token("hf_granted");
    let (theirs, _) = m
        .xet()
        .token(&repo("acme/tiny"), &rev("main"), Some(&granted))
        .await
        .unwrap();
    assert_ne!(theirs, tok);
    // A gated Xet repo: the anonymous caller gets no token at all, the granted one does.
    let gated = repo("acme/gated-xet");
    let e = m.xet().token(&gated, &rev("main"), None).await.unwrap_err();
    assert_eq!(e.code, HubCode::GatedRepo, "{e:?}");
    assert!(
        m.xet()
            .token(&gated, &rev("main"), Some(&granted))
            .await
            .is_ok()
    );
    // An unknown token opens nothing.
    let e = m
        .xet()
        .reconstruction_json(1, &"1".repeat(64), None, Some("olx_forged"), BASE)
        .await
        .unwrap_err();
    assert_eq!(e.code, HubCode::Unauthorized);
}

#[tokio::test]
async fn reconstructions_come_from_the_cache_and_point_at_the_mirror() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (xh, tok) = xet_setup(&m).await;
    let cas = |h: &FakeHub| {
        h.stats()
            .log
            .iter()
            .filter(|l| l.uri.contains("/reconstructions/"))
            .count()
    };
    let v = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&tok), BASE)
        .await
        .unwrap();
    let asked = cas(&hub);
    assert_eq!(
        asked, 1,
        "the first reconstruction comes from the upstream CAS"
    );
    let text = v.to_string();
    assert!(text.contains(&format!("{BASE}/cas/xorb/")), "{text}");
    assert!(
        !text.contains(hub.cdn_url()),
        "no upstream URL leaks: {text}"
    );
    let v2 = m
        .xet()
        .reconstruction_json(2, &xh, None, Some(&tok), BASE)
        .await
        .unwrap();
    assert_eq!(cas(&hub), asked, "the second is answered from the cache");
    assert_eq!(v["terms"], v2["terms"]);
    assert!(v2.get("xorbs").is_some(), "v2 shape");
}

#[tokio::test]
async fn a_xorb_url_with_a_tampered_signature_is_refused() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (xh, tok) = xet_setup(&m).await;
    let v = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&tok), BASE)
        .await
        .unwrap();
    let (xorb, entries) = v["fetch_info"].as_object().unwrap().iter().next().unwrap();
    let url = entries[0]["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1;
    // Tampered: the last hex digit of the signature changed.
    let last = query.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &query[..query.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let e = match m.xet().xorb(xorb, Some(&forged), None).await {
        Err(e) => e,
        Ok(_) => panic!("a forged signature was accepted"),
    };
    assert_eq!(e.code, HubCode::Forbidden, "{e:?}");
    // A widened byte range under the original signature is refused as well.
    let b = entries[0]["url_range"]["end"].as_u64().unwrap();
    let widened = query.replace(&format!("-{b}&x="), &format!("-{}&x=", b + 1000));
    assert_ne!(widened, query);
    assert!(m.xet().xorb(xorb, Some(&widened), None).await.is_err());
    // The genuine URL streams exactly the signed range.
    let (served, mut stream) = m.xet().xorb(xorb, Some(query), None).await.unwrap();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len() as u64;
    }
    assert_eq!(n, served.end - served.start + 1);
    assert!(n > 0);
}

/// The granted caller's Xet file of `acme/gated-xet`: (its Xet hash, the mirror token, the v1
/// reconstruction, now cached).
async fn gated_setup(m: &Mirror) -> (String, String, serde_json::Value) {
    let granted = token("hf_granted");
    let gated = repo("acme/gated-xet");
    let res = m
        .hub()
        .resolve(
            &gated,
            &rev("main"),
            &path("model.safetensors"),
            Some(&granted),
        )
        .await
        .unwrap();
    let xh = res.meta.xet_hash.unwrap().to_ascii_lowercase();
    let (tok, _) = m
        .xet()
        .token(&gated, &rev("main"), Some(&granted))
        .await
        .unwrap();
    let v = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&tok), BASE)
        .await
        .unwrap();
    (xh, tok, v)
}

#[tokio::test]
async fn a_xet_session_reads_only_its_own_repos_files_even_when_they_are_cached() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let (_, public_tok) = xet_setup(&m).await;
    // The granted caller fetches the gated repo's reconstruction: now it is cached.
    let (xh, _, _) = gated_setup(&m).await;
    // A session for the public repo asks for that file: not from the cache (the file is not
    // known to belong to its repo), and the upstream CAS, asked with a token scoped to the
    // public repo, refuses it.
    let e = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&public_tok), BASE)
        .await
        .unwrap_err();
    assert!(!e.is_outage(), "{e:?}");
    assert!(matches!(e.kind, ErrorKind::Relayed(_)), "{e:?}");
}

/// Fetches every xorb range a v1 reconstruction names through its signed mirror URL; returns
/// the (xorb, query) of the first.
async fn fetch_all_xorbs(m: &Mirror, v: &serde_json::Value) -> (String, String) {
    let mut first = None;
    for (xorb, entries) in v["fetch_info"].as_object().unwrap() {
        for e in entries.as_array().unwrap() {
            let query = e["url"].as_str().unwrap().split_once('?').unwrap().1;
            let (_, mut s) = m.xet().xorb(xorb, Some(query), None).await.unwrap();
            while let Some(c) = s.next().await {
                c.unwrap();
            }
            first.get_or_insert((xorb.clone(), query.to_string()));
        }
    }
    first.expect("a xorb range")
}

/// Opens a mirror on `dir` once the previous one has let go of its database (its background
/// file checks end once every range is fetched).
async fn reopen(hub: &FakeHub, dir: &std::path::Path) -> Mirror {
    for _ in 0..100 {
        if let Ok(m) = Mirror::open(Arc::new(config(hub, dir, |_| {}))) {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the database was never released");
}

#[tokio::test]
async fn xorb_urls_and_xet_sessions_survive_a_restart_without_writing_a_token() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let cas = |h: &FakeHub| {
        h.stats()
            .log
            .iter()
            .filter(|l| l.uri.contains("/reconstructions/"))
            .count()
    };
    let (xh, gated_tok, public_tok, (xorb, query)) = {
        let m = mirror(&hub, dir.path(), |_| {});
        let (_, public_tok) = xet_setup(&m).await;
        let (xh, gated_tok, v) = gated_setup(&m).await;
        let first = fetch_all_xorbs(&m, &v).await;
        (xh, gated_tok, public_tok, first)
    };
    // "Restart": the first mirror is gone, a new one opens the same directory.
    let m = reopen(&hub, dir.path()).await;
    let asked = cas(&hub);

    // A xorb URL signed before the restart is still accepted.
    let (served, mut s) = m.xet().xorb(&xorb, Some(&query), None).await.unwrap();
    let mut n = 0u64;
    while let Some(c) = s.next().await {
        n += c.unwrap().len() as u64;
    }
    assert_eq!(n, served.end - served.start + 1);

    // The token issued before the restart still gets the cached reconstruction, with no upstream
    // call (the caller's credentials were never written, so none could be made for it).
    let v = m
        .xet()
        .reconstruction_json(2, &xh, None, Some(&gated_tok), BASE)
        .await
        .unwrap();
    assert!(v.get("xorbs").is_some());
    assert_eq!(cas(&hub), asked, "served from the cache");
    // What needs the upstream makes the client refresh its token (401), never an anonymous ask.
    let e = m
        .xet()
        .reconstruction_json(1, &xh, Some("bytes=0-9"), Some(&gated_tok), BASE)
        .await
        .unwrap_err();
    assert_eq!(e.code, HubCode::Unauthorized, "{e:?}");
    assert_eq!(cas(&hub), asked, "no upstream call without the credentials");

    // The public repo's session still cannot read the gated repo's (cached) file.
    let e = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&public_tok), BASE)
        .await
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Relayed(_)), "{e:?}");

    // A tampered token opens nothing.
    let last = gated_tok.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &gated_tok[..gated_tok.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let e = m
        .xet()
        .reconstruction_json(1, &xh, None, Some(&tampered), BASE)
        .await
        .unwrap_err();
    assert_eq!(e.code, HubCode::Unauthorized, "{e:?}");

    // The index holds the sessions under the tokens' hashes, never a token or a credential.
    let id = olah_store::SessionId::of_token(gated_tok.as_bytes());
    assert!(m.meta_db().session(&id).unwrap().is_some());
    drop(m);
    let bytes = std::fs::read(dir.path().join("olah-meta.redb")).unwrap();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(id.as_bytes()),
        "the session is keyed by the token's hash"
    );
    for secret in [
        gated_tok.as_bytes(),
        public_tok.as_bytes(),
        b"hf_granted",
        b"olx_",
    ] {
        assert!(!has(secret), "{}", String::from_utf8_lossy(secret));
    }
}

// ---- Storage Buckets ------------------------------------------------------------------------

fn bucket(id: &str) -> RepoRef {
    match parse_route(&format!("/api/buckets/{id}")).unwrap() {
        Route::BucketInfo { bucket } => bucket,
        r => panic!("not a bucket route: {r:?}"),
    }
}

async fn read_all(f: &olah_service::source::RepoFile) -> Vec<u8> {
    if f.head.size == 0 {
        return Vec::new();
    }
    let mut s = f.body.open(0, f.head.size - 1).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

#[tokio::test]
async fn a_bucket_path_is_revalidated_after_the_ttl_and_its_bytes_come_from_the_xet_cache() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |c| c.metadata_cache_ttl = 0);
    let cx = olah_service::source::RequestCtx::default();
    let (bk, other) = (bucket("acme/bk"), bucket("acme/bk-other"));
    let p = path("logs/run1.txt");
    let f = m.buckets().file(&cx, &bk, &p).await.unwrap();
    assert_eq!(f.head.outcome.as_str(), "miss");
    assert_eq!(f.head.commit, None);
    let fx = hub.fixture().bucket("acme/bk").unwrap();
    assert_eq!(
        f.head.xet_hash.as_deref(),
        Some(fx.files["logs/run1.txt"].xet_hash().as_str())
    );
    assert_eq!(read_all(&f).await, b"run 1\n");
    // Overwritten upstream: the TTL is 0, so the next request sees the new content.
    let new = hub
        .state()
        .overwrite_bucket_path("acme/bk", "logs/run1.txt", 0)
        .unwrap();
    let f = m.buckets().file(&cx, &bk, &p).await.unwrap();
    assert_eq!(f.head.outcome.as_str(), "revalidated");
    assert_eq!(f.head.xet_hash.as_deref(), Some(new.as_str()));
    assert_eq!(
        read_all(&f).await,
        b"run 1, overwritten with a longer text\n"
    );
    // The same path of another bucket is that bucket's own file.
    let o = m.buckets().file(&cx, &other, &p).await.unwrap();
    assert_eq!(read_all(&o).await, b"the OTHER bucket's run 1\n");
    // An empty file has no body to fetch.
    let e = m
        .buckets()
        .file(&cx, &bk, &path("data/empty.txt"))
        .await
        .unwrap();
    assert_eq!((e.head.size, read_all(&e).await.len()), (0, 0));
}

#[tokio::test]
async fn a_private_bucket_is_served_per_caller_and_its_mapping_is_cached_within_the_ttl() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let m = mirror(&hub, dir.path(), |_| {});
    let pb = bucket("acme/bk-private");
    let p = path("secret/plan.txt");
    let owner = olah_service::source::RequestCtx {
        auth: Some(token("hf_owner")),
    };
    let f = m.buckets().file(&owner, &pb, &p).await.unwrap();
    assert_eq!(read_all(&f).await, b"private bucket content\n");
    let again = m.buckets().file(&owner, &pb, &p).await.unwrap();
    assert_eq!(again.head.outcome.as_str(), "hit");
    for auth in [None, Some(token("hf_other"))] {
        let cx = olah_service::source::RequestCtx { auth };
        let Err(e) = m.buckets().file(&cx, &pb, &p).await else {
            panic!("a private bucket served to another caller");
        };
        assert!(!matches!(e.kind, ErrorKind::Internal), "{e:?}");
        let Err(_) = m.xet().bucket_token(&pb, cx.auth.as_ref()).await else {
            panic!("a Xet token for a private bucket to another caller");
        };
    }
}
