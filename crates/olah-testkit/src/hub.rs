//! Routes of the hub host: `/resolve`, `/api/…`, and the Xet CAS API under `/cas/`.
#![allow(clippy::result_large_err)] // access checks return ready-made error responses

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use crate::fixture::{CommitFixture, FileFixture, Kind, RepoFixture, Visibility};
use crate::resp::{content_type, hub_error, hv, json_response, now, serve_content};
use crate::server::HubState;

/// Lifetime of signed CDN URLs and Xet access tokens.
const TTL_SECS: u64 = 3600;
/// Commits per page when the request has no `limit`.
const COMMITS_PAGE: usize = 50;
/// Maximum tree page size with `expand=true`.
const EXPAND_PAGE: usize = 50;

type Query = Vec<(String, String)>;

fn qget<'a>(q: &'a Query, k: &str) -> Option<&'a str> {
    q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

fn qtrue(q: &Query, k: &str) -> bool {
    matches!(qget(q, k), Some("true" | "True" | "1"))
}

fn bearer(h: &HeaderMap) -> Option<Result<String, ()>> {
    let v = h.get(header::AUTHORIZATION)?;
    let t = v
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    Some(t.map(str::to_string).ok_or(()))
}

fn not_found_repo(tok: &Option<String>) -> Response<Body> {
    let status = if tok.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    hub_error(status, Some("RepoNotFound"), "Repository not found")
}

fn not_found() -> Response<Body> {
    hub_error(StatusCode::NOT_FOUND, None, "Not Found")
}

fn revision_not_found(rev: &str) -> Response<Body> {
    hub_error(
        StatusCode::NOT_FOUND,
        Some("RevisionNotFound"),
        &format!("Invalid rev id: {rev}"),
    )
}

fn entry_not_found(path: &str, rev: &str, commit: &str) -> Response<Body> {
    let mut r = hub_error(
        StatusCode::NOT_FOUND,
        Some("EntryNotFound"),
        &format!("{path} does not exist on \"{rev}\""),
    );
    r.headers_mut().insert("x-repo-commit", hv(commit));
    r
}

/// Private repos look missing to everyone but their owners.
fn visible(repo: &RepoFixture, tok: &Option<String>) -> bool {
    match &repo.visibility {
        Visibility::Private { owners } => tok.as_ref().is_some_and(|t| owners.contains(t)),
        _ => true,
    }
}

/// Files of gated repos need a granted token.
fn file_access(repo: &RepoFixture, tok: &Option<String>) -> Result<(), Response<Body>> {
    let Visibility::Gated { granted } = &repo.visibility else {
        return Ok(());
    };
    let what = format!("{} {}", repo.kind.singular(), repo.id);
    match tok {
        None => Err(hub_error(
            StatusCode::UNAUTHORIZED,
            Some("GatedRepo"),
            &format!(
                "Access to {what} is restricted. You must have access to it and be authenticated to access it. Please log in."
            ),
        )),
        Some(t) if !granted.contains(t) => Err(hub_error(
            StatusCode::FORBIDDEN,
            Some("GatedRepo"),
            &format!(
                "Access to {what} is restricted and you are not in the authorized list. Visit the repository page to ask for access."
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Finds `{id}` at the start of `segs` where `segs[n]` is `marker` (`None`: the id may be
/// followed by nothing or by an API keyword). Namespaced ids are tried first.
fn find_repo<'a>(
    st: &'a HubState,
    kind: Kind,
    segs: &[String],
    marker: Option<&str>,
) -> Option<(&'a RepoFixture, usize)> {
    const KW: &[&str] = &[
        "revision",
        "tree",
        "paths-info",
        "refs",
        "commits",
        "xet-read-token",
        "auth-check",
        "safetensors-metadata",
    ];
    [2usize, 1].into_iter().find_map(|n| {
        let shape = match marker {
            Some(m) => segs.len() > n && segs[n] == m,
            None => segs.len() == n || (segs.len() > n && KW.contains(&segs[n].as_str())),
        };
        if !shape || segs[..n].iter().any(String::is_empty) {
            return None;
        }
        st.fixture.repo(kind, &segs[..n].join("/")).map(|r| (r, n))
    })
}

/// Resolves the revision at the start of `segs` (one decoded segment such as `main`,
/// `refs/pr/1` sent as `refs%2Fpr%2F1`, or an unencoded `refs/x/y` spread over three
/// segments). Returns the commit index and how many segments were used.
fn rev_prefix(repo: &RepoFixture, segs: &[String]) -> Option<(usize, usize)> {
    let first = segs.first()?;
    if let Some(i) = repo.resolve_index(first) {
        return Some((i, 1));
    }
    if first == "refs" && segs.len() >= 3 {
        return repo.resolve_index(&segs[..3].join("/")).map(|i| (i, 3));
    }
    None
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Every request of the hub host except `/__admin/`.
pub(crate) async fn route(st: &Arc<HubState>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/cas/") {
        return cas_route(st, rest, &req);
    }
    if path == "/v1/telemetry" {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        return r;
    }
    let tok = match bearer(req.headers()) {
        None => None,
        Some(Ok(t)) if st.fixture.tokens.contains(&t) => Some(t),
        Some(_) => {
            return hub_error(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
            );
        }
    };
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let get_like = matches!(*req.method(), Method::GET | Method::HEAD);
    if segs[0] == "api" && segs.get(1).is_some_and(|s| s == "buckets") {
        return crate::bucket::api(st, req, &segs[2..], tok).await;
    }
    if segs[0] == "api" && segs.get(1).is_some_and(|s| s == "resolve-cache") && get_like {
        return resolve_cache(st, &req, &segs[2..], tok);
    }
    if segs[0] == "api" && segs.len() == 2 && segs[1] == "agent-harnesses" && get_like {
        return json_response(&json!({"standardEnvVars": [], "harnesses": {}}));
    }
    if segs[0] == "api" {
        return api(st, req, &segs[1..], tok).await;
    }
    if segs[0] == "buckets" && segs.get(3).is_some_and(|s| s == "resolve") {
        if !get_like {
            return not_found();
        }
        return crate::bucket::resolve(st, &req, &segs[1..], tok);
    }
    if !get_like {
        return not_found();
    }
    resolve(st, &req, &segs, tok)
}

/// Path characters left as they are in the redirects the fake Hub writes (RFC 3986 unreserved).
const PATH_SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Each `/`-separated segment percent-encoded, the `/`s kept.
fn encode_path(p: &str) -> String {
    p.split('/')
        .map(|s| utf8_percent_encode(s, PATH_SET).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `/api/resolve-cache/{t}s/{id}/{commit}/{path}`: where a regular file's resolve redirects
/// (PROTOCOL-2.md B.1). Commit-addressed; the bytes with `X-Repo-Commit`, `ETag`,
/// `Content-Length` and Range, like the live Hub.
fn resolve_cache(
    st: &Arc<HubState>,
    req: &Request<Body>,
    segs: &[String],
    tok: Option<String>,
) -> Response<Body> {
    let Some(kind) = segs.first().and_then(|s| Kind::from_plural(s)) else {
        return not_found();
    };
    let rest = &segs[1..];
    let full_sha = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let found = [2usize, 1].into_iter().find_map(|n| {
        if rest.len() <= n + 1 || !full_sha(&rest[n]) {
            return None;
        }
        st.fixture.repo(kind, &rest[..n].join("/")).map(|r| (r, n))
    });
    let Some((repo, n)) = found else {
        return not_found_repo(&tok);
    };
    if !visible(repo, &tok) {
        return not_found_repo(&tok);
    }
    if let Err(r) = file_access(repo, &tok) {
        return r;
    }
    let commit = rest[n].to_ascii_lowercase();
    let Some(c) = repo.commits.iter().find(|c| c.sha == commit) else {
        return revision_not_found(&commit);
    };
    let fpath = rest[n + 1..].join("/");
    match c.files.get(&fpath) {
        Some(f) if !f.lfs => serve_blob(req, c, &fpath, f.content(), &f.oid()),
        _ => entry_not_found(&fpath, &commit, &c.sha),
    }
}

/// A git blob (a regular file, or an LFS file's pointer) with the Hub's headers and Range.
fn serve_blob(
    req: &Request<Body>,
    c: &CommitFixture,
    fpath: &str,
    content: &crate::fixture::Content,
    oid: &str,
) -> Response<Body> {
    let mut h = HeaderMap::new();
    h.insert("x-repo-commit", hv(&c.sha));
    h.insert(header::ETAG, hv(&format!("\"{oid}\"")));
    h.insert(header::CONTENT_TYPE, hv(content_type(fpath)));
    let sha = c.sha.clone();
    serve_content(req.headers(), content, h, move |s, m| {
        let mut r = hub_error(s, None, m);
        r.headers_mut().insert("x-repo-commit", hv(&sha));
        r
    })
}

fn resolve(
    st: &Arc<HubState>,
    req: &Request<Body>,
    segs: &[String],
    tok: Option<String>,
) -> Response<Body> {
    let (kind, rest) = match segs[0].as_str() {
        "datasets" => (Kind::Dataset, &segs[1..]),
        "spaces" => (Kind::Space, &segs[1..]),
        "kernels" => (Kind::Kernel, &segs[1..]),
        _ => (Kind::Model, segs),
    };
    let (found, raw) = match find_repo(st, kind, rest, Some("resolve")) {
        Some(f) => (Some(f), false),
        None => (find_repo(st, kind, rest, Some("raw")), true),
    };
    let Some((repo, n)) = found else {
        return if rest.iter().take(3).any(|s| s == "resolve" || s == "raw") {
            not_found_repo(&tok)
        } else {
            not_found()
        };
    };
    if !visible(repo, &tok) {
        return not_found_repo(&tok);
    }
    if let Err(r) = file_access(repo, &tok) {
        return r;
    }
    let after = &rest[n + 1..];
    let Some((idx, used)) = rev_prefix(repo, after) else {
        return match after.first() {
            Some(rev) => revision_not_found(rev),
            None => not_found(),
        };
    };
    let rev = after[..used].join("/");
    let c = &repo.commits[idx];
    let fpath = after[used..].join("/");
    let Some(f) = c.files.get(&fpath) else {
        return entry_not_found(&fpath, &rev, &c.sha);
    };
    if raw {
        // `/raw/`: the git blob, so an LFS file's pointer.
        return if f.lfs {
            let pointer = crate::fixture::Content::from(f.pointer_text().as_str());
            serve_blob(req, c, &fpath, &pointer, &f.oid())
        } else {
            serve_blob(req, c, &fpath, f.content(), &f.oid())
        };
    }
    let mut h = HeaderMap::new();
    h.insert("x-repo-commit", hv(&c.sha));
    if !f.lfs {
        // Like the live Hub: a same-origin relative 307 to the commit-addressed resolve-cache
        // URL, which serves the bytes (PROTOCOL-2.md B.1).
        let id = &rest[..n].join("/");
        let original = format!("/{}{id}/resolve/{rev}/{fpath}", kind.prefix());
        let location = format!(
            "/api/resolve-cache/{}/{}/{}/{}?{}=&etag=%22{}%22",
            kind.plural(),
            encode_path(id),
            c.sha,
            encode_path(&fpath),
            encode(&original),
            f.oid()
        );
        h.insert(header::LOCATION, hv(&location));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(header::ETAG, hv(&format!("\"{}\"", f.oid())));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let mut r = Response::new(Body::from(format!(
            "Temporary Redirect. Redirecting to {location}"
        )));
        *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        r.headers_mut().extend(h);
        return r;
    }
    let sha256 = f.sha256();
    let location = st.cdn_location(
        sha256,
        &format!("repo={}", encode(&format!("{}/{}", kind.plural(), repo.id))),
        TTL_SECS,
    );
    h.insert(header::ETAG, hv(&format!("\"{}\"", f.oid())));
    h.insert("x-linked-etag", hv(&format!("\"{sha256}\"")));
    h.insert("x-linked-size", f.size().into());
    let mut fileinfo = None;
    if f.xet {
        let xh = f.xet_hash();
        let refresh = format!(
            "{}/api/{}/{}/xet-read-token/{}",
            st.hub_url,
            kind.plural(),
            repo.id,
            c.sha
        );
        let recon = format!("{}/cas/v1/reconstructions/{xh}", st.hub_url);
        h.insert("x-xet-hash", hv(&xh));
        h.insert(
            header::LINK,
            hv(&format!(
                "<{refresh}>; rel=\"xet-auth\", <{recon}>; rel=\"xet-reconstruction-info\""
            )),
        );
        let wants_fileinfo = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/vnd.xet-fileinfo+json"));
        if wants_fileinfo {
            fileinfo = Some(json!({
                "casUrl": format!("{}/cas", st.hub_url),
                "hash": xh,
                "refreshUrl": refresh,
                "reconstructionUrl": recon,
                "etag": sha256,
                "size": f.size(),
            }));
        }
    }
    let mut r = match fileinfo {
        Some(v) => {
            let mut r = Response::new(Body::from(v.to_string()));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.xet-fileinfo+json"),
            );
            r.headers_mut().extend(h);
            r
        }
        None => {
            let mut r = Response::new(Body::from(format!("Found. Redirecting to {location}")));
            *r.status_mut() = StatusCode::FOUND;
            h.insert(header::LOCATION, hv(&location));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r.headers_mut().extend(h);
            r
        }
    };
    r.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Origin, Accept, Range"),
    );
    r
}

// ------------------------------------------------------------------------------------------
// API

async fn api(
    st: &Arc<HubState>,
    req: Request<Body>,
    segs: &[String],
    tok: Option<String>,
) -> Response<Body> {
    let method = req.method().clone();
    let get_like = matches!(method, Method::GET | Method::HEAD);
    if segs == ["whoami-v2"] {
        if !get_like {
            return method_not_allowed();
        }
        return whoami(st, &tok);
    }
    let Some(kind) = segs.first().and_then(|s| Kind::from_plural(s)) else {
        return not_found();
    };
    let rest = &segs[1..];
    if rest.is_empty() || rest[0].is_empty() {
        return not_found();
    }
    let Some((repo, n)) = find_repo(st, kind, rest, None) else {
        // An existing (visible) repo followed by an unknown operation is an unknown route.
        let known = [2usize, 1].into_iter().any(|n| {
            rest.len() >= n
                && st
                    .fixture
                    .repo(kind, &rest[..n].join("/"))
                    .is_some_and(|r| visible(r, &tok))
        });
        return if known {
            not_found()
        } else {
            not_found_repo(&tok)
        };
    };
    if !visible(repo, &tok) {
        return not_found_repo(&tok);
    }
    let q: Query = serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let tail = &rest[n..];
    let raw_path = req.uri().path().to_string();
    let rev_of = |segs: &[String]| -> Result<(usize, String), Response<Body>> {
        let rev = segs.join("/");
        repo.resolve_index(&rev)
            .map(|i| (i, rev.clone()))
            .ok_or_else(|| revision_not_found(&rev))
    };
    let Some(op) = tail.first().map(String::as_str) else {
        return if get_like {
            json_response(&repo_info(st, repo, repo.main_index(), &q))
        } else {
            method_not_allowed()
        };
    };
    if (op == "paths-info") == get_like {
        return method_not_allowed();
    }
    match op {
        "revision" if tail.len() >= 2 => match rev_of(&tail[1..]) {
            Ok((i, _)) => json_response(&repo_info(st, repo, i, &q)),
            Err(r) => r,
        },
        "refs" if tail.len() == 1 => json_response(&refs_json(repo, &q)),
        "commits" if tail.len() >= 2 => match rev_of(&tail[1..]) {
            Ok((i, _)) => commits(st, repo, i, &q, &raw_path),
            Err(r) => r,
        },
        "tree" if tail.len() >= 2 => {
            let Some((i, used)) = rev_prefix(repo, &tail[1..]) else {
                return revision_not_found(&tail[1]);
            };
            let rev = tail[1..1 + used].join("/");
            let base = tail[1 + used..].join("/").trim_matches('/').to_string();
            tree(st, repo, i, &rev, &base, &q, &raw_path)
        }
        "paths-info" if tail.len() >= 2 => match rev_of(&tail[1..]) {
            Ok((i, _)) => {
                let ctype = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let body = axum::body::to_bytes(req.into_body(), 16 << 20)
                    .await
                    .unwrap_or_default();
                paths_info(repo, i, &ctype, &body)
            }
            Err(r) => r,
        },
        "xet-read-token" if tail.len() >= 2 => {
            if let Err(r) = file_access(repo, &tok) {
                return r;
            }
            match rev_of(&tail[1..]) {
                Ok(_) => xet_token(st, repo),
                Err(r) => r,
            }
        }
        "auth-check" if tail.len() <= 2 => auth_check(repo, &tok, tail.get(1).map(String::as_str)),
        "safetensors-metadata" => {
            if let Err(r) = file_access(repo, &tok) {
                return r;
            }
            safetensors_metadata(repo, &tail[1..])
        }
        _ => not_found(),
    }
}

/// `/api/{t}s/{repo}/auth-check[/write]`: 200 when the caller may read (write: owns) the repo.
fn auth_check(repo: &RepoFixture, tok: &Option<String>, what: Option<&str>) -> Response<Body> {
    match what {
        None => match file_access(repo, tok) {
            Ok(()) => json_response(&json!({})),
            Err(r) => r,
        },
        Some("write") => match &repo.visibility {
            Visibility::Private { owners } if tok.as_ref().is_some_and(|t| owners.contains(t)) => {
                json_response(&json!({}))
            }
            _ => hub_error(
                StatusCode::FORBIDDEN,
                None,
                "You don't have write access to this repository",
            ),
        },
        Some(_) => not_found(),
    }
}

/// `/api/models/{repo}/safetensors-metadata[/{index}]` (at `main`): the index and the header of
/// every shard it names.
fn safetensors_metadata(repo: &RepoFixture, index: &[String]) -> Response<Body> {
    let idx = repo.main_index();
    let c = &repo.commits[idx];
    let name = if index.is_empty() {
        "model.safetensors.index.json".to_string()
    } else {
        index.join("/")
    };
    let Some(f) = c.files.get(&name) else {
        return entry_not_found(&name, "main", &c.sha);
    };
    let Ok(index_json) = serde_json::from_slice::<Value>(&f.content().to_vec()) else {
        return hub_error(StatusCode::BAD_REQUEST, None, "index is not JSON");
    };
    let mut headers = serde_json::Map::new();
    let shards: std::collections::BTreeSet<&str> = index_json["weight_map"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for shard in shards {
        let Some(sf) = c.files.get(shard) else {
            return entry_not_found(shard, "main", &c.sha);
        };
        let bytes = sf.content().read_range(0, sf.size().min(1 << 20));
        let n = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
        let header = n
            .and_then(|n| bytes.get(8..8 + n))
            .and_then(|h| serde_json::from_slice::<Value>(h).ok());
        match header {
            Some(h) => {
                headers.insert(shard.to_string(), h);
            }
            None => return hub_error(StatusCode::BAD_REQUEST, None, "not a safetensors file"),
        }
    }
    json_response(&json!({"index": index_json, "headers": headers}))
}

fn method_not_allowed() -> Response<Body> {
    hub_error(StatusCode::METHOD_NOT_ALLOWED, None, "Method Not Allowed")
}

fn whoami(st: &HubState, tok: &Option<String>) -> Response<Body> {
    let Some(t) = tok else {
        return hub_error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid username or password.",
        );
    };
    let i = st.fixture.tokens.iter().position(|x| x == t).unwrap_or(0);
    json_response(&json!({
        "type": "user",
        "id": format!("{:024x}", i + 1),
        "name": format!("user-{i}"),
        "fullname": format!("User {i}"),
        "email": format!("user-{i}@example.invalid"),
        "emailVerified": true,
        "canPay": false,
        "isPro": false,
        "periodEnd": null,
        "avatarUrl": "",
        "orgs": [],
        "auth": {"type": "access_token", "accessToken": {"displayName": format!("token-{i}"), "role": "read", "createdAt": crate::fixture::iso_date(crate::fixture::EPOCH)}},
    }))
}

fn repo_info(st: &HubState, repo: &RepoFixture, idx: usize, q: &Query) -> Value {
    let c = &repo.commits[idx];
    let blobs = qtrue(q, "blobs");
    let siblings: Vec<Value> = c
        .files
        .iter()
        .map(|(p, f)| {
            let mut s = json!({"rfilename": p});
            if blobs {
                s["blobId"] = json!(f.oid());
                s["size"] = json!(f.size());
                if f.lfs {
                    s["lfs"] = json!({"sha256": f.sha256(), "size": f.size(), "pointerSize": f.pointer_size()});
                }
            }
            s
        })
        .collect();
    let id_hash =
        crate::fixture::git_blob_sha1(format!("{}/{}", repo.kind.plural(), repo.id).as_bytes());
    let mut v = json!({
        "_id": &id_hash[..24],
        "id": repo.id,
        "author": repo.id.split_once('/').map_or(repo.id.as_str(), |(a, _)| a),
        "sha": c.sha,
        "lastModified": c.date,
        "createdAt": repo.commits[0].date,
        "private": matches!(repo.visibility, Visibility::Private { .. }),
        "gated": if matches!(repo.visibility, Visibility::Gated { .. }) { json!("manual") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "cardData": {},
        "siblings": siblings,
        "usedStorage": c.files.values().map(FileFixture::size).sum::<u64>(),
    });
    match repo.kind {
        Kind::Model => {
            v["spaces"] = json!([]);
            v["library_name"] = json!("transformers");
        }
        Kind::Dataset => {
            v["description"] = json!("");
            v["citation"] = json!("");
            v["paperswithcode_id"] = Value::Null;
        }
        Kind::Space => {
            v["sdk"] = json!("gradio");
            v["subdomain"] = json!(repo.id.replace(['/', '.', '_'], "-"));
            v["runtime"] = json!({
                "stage": "RUNNING",
                "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                "storage": null,
                "replicas": {"current": 1, "requested": 1},
            });
            v["models"] = json!([]);
            v["datasets"] = json!([]);
        }
        Kind::Kernel => {}
    }
    if qtrue(q, "securityStatus") {
        v["securityRepoStatus"] = json!({"scansDone": true, "filesWithIssues": []});
    }
    let _ = st;
    let expand: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "expand" || k == "expand[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if !expand.is_empty()
        && let Value::Object(m) = &v
    {
        let kept = m
            .iter()
            .filter(|(k, _)| {
                k.as_str() == "_id" || k.as_str() == "id" || expand.contains(&k.as_str())
            })
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect();
        return Value::Object(kept);
    }
    v
}

fn refs_json(repo: &RepoFixture, q: &Query) -> Value {
    let sha = |i: &usize| repo.commits[*i].sha.clone();
    let mut v = json!({
        "branches": repo.branches.iter().map(|(n, i)| json!({"name": n, "ref": format!("refs/heads/{n}"), "targetCommit": sha(i)})).collect::<Vec<_>>(),
        "converts": repo.converts.iter().map(|(n, i)| json!({"name": n, "ref": format!("refs/convert/{n}"), "targetCommit": sha(i)})).collect::<Vec<_>>(),
        "tags": repo.tags.iter().map(|(n, i)| json!({"name": n, "ref": format!("refs/tags/{n}"), "targetCommit": sha(i)})).collect::<Vec<_>>(),
    });
    if qtrue(q, "include_prs") {
        let mut prs = repo.prs.clone();
        prs.sort();
        v["pullRequests"] = prs
            .iter()
            .map(|(n, i)| json!({"name": format!("refs/pr/{n}"), "ref": format!("refs/pr/{n}"), "targetCommit": sha(i)}))
            .collect();
    }
    v
}

/// `<{hub}{path}?{query with key=val}>; rel="next"`, the other parameters kept in order.
fn next_link(st: &HubState, raw_path: &str, q: &Query, key: &str, val: &str) -> HeaderValue {
    let mut q2: Query = q.iter().filter(|(k, _)| k != key).cloned().collect();
    q2.push((key.into(), val.into()));
    let qs = serde_urlencoded::to_string(&q2).unwrap_or_default();
    hv(&format!("<{}{raw_path}?{qs}>; rel=\"next\"", st.hub_url))
}

fn page_limit(q: &Query, default: usize) -> usize {
    qget(q, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(default)
}

fn commits(
    st: &HubState,
    repo: &RepoFixture,
    idx: usize,
    q: &Query,
    raw_path: &str,
) -> Response<Body> {
    let limit = page_limit(q, COMMITS_PAGE);
    let page: usize = qget(q, "p").and_then(|p| p.parse().ok()).unwrap_or(0);
    let formatted = q
        .iter()
        .any(|(k, v)| (k == "expand[]" || k == "expand") && v == "formatted");
    let history: Vec<usize> = (0..=idx).rev().collect();
    let start = page.saturating_mul(limit).min(history.len());
    let end = (start + limit).min(history.len());
    let list: Vec<Value> = history[start..end]
        .iter()
        .map(|&i| {
            let c = &repo.commits[i];
            let mut e = json!({
                "id": c.sha,
                "title": c.title,
                "message": "",
                "date": c.date,
                "authors": [{"user": "alice", "avatar": "https://cdn-avatars.example.invalid/alice.png"}],
            });
            if formatted {
                e["formatted"] = json!({"title": c.title, "message": ""});
            }
            e
        })
        .collect();
    let mut r = json_response(&Value::Array(list));
    if end < history.len() {
        r.headers_mut().insert(
            header::LINK,
            next_link(st, raw_path, q, "p", &(page + 1).to_string()),
        );
    }
    r
}

/// A tree entry (file or directory) in the Hub's JSON shape.
fn entry_json(
    repo: &RepoFixture,
    idx: usize,
    path: &str,
    file: Option<&FileFixture>,
    expand: bool,
) -> Value {
    let c = &repo.commits[idx];
    let mut e = match file {
        Some(f) => {
            let mut e = json!({"type": "file", "oid": f.oid(), "size": f.size(), "path": path});
            if f.lfs {
                e["lfs"] =
                    json!({"oid": f.sha256(), "size": f.size(), "pointerSize": f.pointer_size()});
            }
            if f.xet {
                e["xetHash"] = json!(f.xet_hash());
            }
            e
        }
        None => json!({"type": "directory", "oid": tree_oid(c, path), "size": 0, "path": path}),
    };
    if expand {
        let lc = &repo.commits[repo.last_commit_touching(idx, path)];
        e["lastCommit"] = json!({"id": lc.sha, "title": lc.title, "date": lc.date});
        if file.is_some() {
            let pickle = [".bin", ".pt", ".pth", ".pkl", ".ckpt"]
                .iter()
                .any(|x| path.ends_with(x));
            e["securityFileStatus"] = json!({
                "status": "safe",
                "avScan": {"virusFound": false, "virusNames": null},
                "pickleImportScan": if pickle { json!({"highestSafetyLevel": "innocuous", "imports": []}) } else { Value::Null },
            });
        }
    }
    e
}

/// The git tree id of directory `dir` of a commit (`""` = root), computed like git does.
fn tree_oid(c: &CommitFixture, dir: &str) -> String {
    use sha1::Digest as _;
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    // name -> (is_dir, raw oid)
    let mut children: BTreeMap<String, bool> = BTreeMap::new();
    for p in c.files.keys() {
        if let Some(rel) = p.strip_prefix(&prefix) {
            match rel.split_once('/') {
                Some((d, _)) => children.insert(d.to_string(), true),
                None => children.insert(rel.to_string(), false),
            };
        }
    }
    let mut items: Vec<(String, bool)> = children.into_iter().collect();
    // git orders tree entries by name, directories compared as if suffixed with '/'.
    items.sort_by(|a, b| {
        let ka = if a.1 {
            format!("{}/", a.0)
        } else {
            a.0.clone()
        };
        let kb = if b.1 {
            format!("{}/", b.0)
        } else {
            b.0.clone()
        };
        ka.cmp(&kb)
    });
    let mut body = Vec::new();
    for (name, is_dir) in items {
        let full = format!("{prefix}{name}");
        let (mode, oid) = if is_dir {
            ("40000", tree_oid(c, &full))
        } else {
            ("100644", c.files[&full].oid())
        };
        body.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        body.extend_from_slice(&hex::decode(oid).expect("hex oid"));
    }
    let mut h = sha1::Sha1::new();
    h.update(format!("tree {}\0", body.len()).as_bytes());
    h.update(&body);
    hex::encode(h.finalize())
}

#[allow(clippy::too_many_arguments)]
fn tree(
    st: &HubState,
    repo: &RepoFixture,
    idx: usize,
    rev: &str,
    base: &str,
    q: &Query,
    raw_path: &str,
) -> Response<Body> {
    let c = &repo.commits[idx];
    let recursive = qtrue(q, "recursive");
    let expand = qtrue(q, "expand");
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    if !base.is_empty() && !c.files.keys().any(|k| k.starts_with(&prefix)) {
        return entry_not_found(base, rev, &c.sha);
    }
    // path -> file (None = directory)
    let mut entries: BTreeMap<String, Option<&FileFixture>> = BTreeMap::new();
    for (p, f) in &c.files {
        let Some(rel) = p.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rel.split('/').collect();
        let depth = if recursive {
            parts.len() - 1
        } else {
            1.min(parts.len() - 1)
        };
        for i in 1..=depth {
            entries
                .entry(format!("{prefix}{}", parts[..i].join("/")))
                .or_insert(None);
        }
        if recursive || parts.len() == 1 {
            entries.insert(p.clone(), Some(f));
        }
    }
    let default_page = if expand {
        st.fixture.tree_page_size.min(EXPAND_PAGE)
    } else {
        st.fixture.tree_page_size
    };
    let limit = page_limit(q, default_page.max(1));
    let after = match qget(q, "cursor") {
        None => None,
        Some(cur) => match hex::decode(cur)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(p) => Some(p),
            None => return hub_error(StatusCode::BAD_REQUEST, None, "Invalid cursor"),
        },
    };
    let lower = match &after {
        Some(p) => Bound::Excluded(p.clone()),
        None => Bound::Unbounded,
    };
    let mut it = entries.range((lower, Bound::Unbounded));
    let page: Vec<(&String, &Option<&FileFixture>)> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    let list: Vec<Value> = page
        .iter()
        .map(|(p, f)| entry_json(repo, idx, p, **f, expand))
        .collect();
    let mut r = json_response(&Value::Array(list));
    if more && let Some((last, _)) = page.last() {
        r.headers_mut().insert(
            header::LINK,
            next_link(st, raw_path, q, "cursor", &hex::encode(last)),
        );
    }
    r
}

fn paths_info(repo: &RepoFixture, idx: usize, ctype: &str, body: &[u8]) -> Response<Body> {
    let (paths, expand) = if ctype.starts_with("application/json") {
        #[derive(serde::Deserialize)]
        struct J {
            #[serde(default)]
            paths: Vec<String>,
            #[serde(default)]
            expand: bool,
        }
        match serde_json::from_slice::<J>(body) {
            Ok(j) => (j.paths, j.expand),
            Err(e) => return hub_error(StatusCode::BAD_REQUEST, None, &format!("bad body: {e}")),
        }
    } else {
        let form: Query = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let paths = form
            .iter()
            .filter(|(k, _)| k == "paths" || k == "paths[]")
            .map(|(_, v)| v.clone())
            .collect();
        (paths, qtrue(&form, "expand"))
    };
    let c = &repo.commits[idx];
    let mut seen = std::collections::HashSet::new();
    let out: Vec<Value> = paths
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| seen.insert(p.clone()))
        .filter_map(|p| {
            if let Some(f) = c.files.get(&p) {
                return Some(entry_json(repo, idx, &p, Some(f), expand));
            }
            let dir = format!("{p}/");
            (!p.is_empty() && c.files.keys().any(|k| k.starts_with(&dir)))
                .then(|| entry_json(repo, idx, &p, None, expand))
        })
        .collect();
    json_response(&Value::Array(out))
}

/// A CAS token scoped to one repo, as the real CAS scopes them (PROTOCOL.md §4.1).
fn xet_token(st: &HubState, repo: &RepoFixture) -> Response<Body> {
    let repo_idx = st
        .fixture
        .repos
        .iter()
        .position(|r| r.kind == repo.kind && r.id == repo.id)
        .unwrap_or(usize::MAX);
    let exp = now() + TTL_SECS;
    let cas = format!("{}/cas", st.hub_url);
    let token = format!("xet_{}", hex::encode(rand::random::<[u8; 16]>()));
    {
        let mut toks = st.xet_tokens.lock().expect("xet token lock");
        let t = now();
        toks.retain(|_, e| e.0 > t);
        toks.insert(token.clone(), (exp, repo_idx));
    }
    let mut r = json_response(&json!({"accessToken": token, "exp": exp, "casUrl": cas}));
    let h = r.headers_mut();
    h.insert("x-xet-cas-url", hv(&cas));
    h.insert("x-xet-access-token", hv(&token));
    h.insert("x-xet-token-expiration", exp.into());
    r
}

// ------------------------------------------------------------------------------------------
// Xet CAS API (PROTOCOL §4): reconstructions with a CAS token from the token route.

/// `bytes=a-b` (inclusive) or `bytes=a-` (to the end).
fn simple_range(h: &HeaderMap) -> Option<(u64, u64)> {
    let v = h
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    let (a, b) = v.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() {
        u64::MAX
    } else {
        b.trim().parse().ok()?
    };
    (a <= b).then_some((a, b))
}

fn cas_route(st: &Arc<HubState>, rest: &str, req: &Request<Body>) -> Response<Body> {
    let scope = match bearer(req.headers()) {
        Some(Ok(t)) => st
            .xet_tokens
            .lock()
            .expect("xet token lock")
            .get(&t)
            .filter(|(exp, _)| *exp > now())
            .map(|(_, repo)| *repo),
        _ => None,
    };
    let Some(repo_idx) = scope else {
        return hub_error(
            StatusCode::UNAUTHORIZED,
            None,
            "invalid or expired CAS token",
        );
    };
    let (v2, hash) = if let Some(h) = rest.strip_prefix("v2/reconstructions/") {
        (true, h)
    } else if let Some(h) = rest.strip_prefix("v1/reconstructions/") {
        (false, h)
    } else {
        return not_found();
    };
    let exp = now() + TTL_SECS;
    let url = |h: &str, s: u64, e: u64| {
        let path = format!("/xorb/default/{h}");
        format!(
            "{}{path}?X-Xet-Signed-Range=bytes%3D{s}-{e}&Expires={exp}&Signature={}",
            st.cdn_url,
            st.sign(&format!("{path}:{s}-{e}"), exp)
        )
    };
    // The token only reads files of the repo it was issued for.
    let holds = |r: &crate::fixture::RepoFixture| {
        r.commits
            .iter()
            .flat_map(|c| c.files.values())
            .any(|f| f.xet && f.xet_hash() == hash)
    };
    let in_repo = match crate::bucket::scope_holds(st, repo_idx, hash) {
        Some(in_bucket) => in_bucket,
        None => st.fixture.repos.get(repo_idx).is_some_and(holds),
    };
    if !in_repo && (st.fixture.repos.iter().any(holds) || crate::bucket::any_holds(st, hash)) {
        return hub_error(
            StatusCode::FORBIDDEN,
            None,
            "this CAS token does not grant access to this file",
        );
    }
    match st
        .cas
        .reconstruction(hash, simple_range(req.headers()), v2, &url)
    {
        Ok(v) => json_response(&v),
        Err(crate::cas::CasError::NotFound) => {
            hub_error(StatusCode::NOT_FOUND, None, "file not found")
        }
        Err(crate::cas::CasError::Unsatisfiable) => hub_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            "range not satisfiable",
        ),
    }
}
