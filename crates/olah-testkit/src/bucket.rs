//! Storage Buckets on the hub host (PROTOCOL-2.md A): info, namespace list, paginated tree with
//! a lexical prefix, JSON paths-info, resolve (Xet headers, 302 to the CDN "bridge" that honours
//! Range), the Xet read token without revision (JSON `casUrl` and `X-Xet-*` headers), the events
//! feed, and the write routes. Paths are mutable: the state is live, and an admin call
//! overwrites a path with one of the bucket's spare contents.
#![allow(clippy::result_large_err)] // access checks return ready-made error responses

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::fixture::{BucketFixture, FileFixture, Fixture, iso_date};
use crate::resp::{hub_error, hv, json_response, now};
use crate::server::HubState;

/// Lifetime of the CDN URLs and CAS tokens handed out.
const TTL_SECS: u64 = 3600;

/// One path of a live bucket.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    file: FileFixture,
    uploaded_at: u64,
    mtime_ms: u64,
}

/// A bucket as it is now.
#[derive(Debug, Clone)]
pub(crate) struct LiveBucket {
    id: String,
    owners: Option<Vec<String>>,
    files: BTreeMap<String, Entry>,
    spares: Vec<FileFixture>,
    created: u64,
    updated: u64,
}

/// The live buckets, built from the fixture.
pub(crate) fn live(fixture: &Fixture) -> Vec<LiveBucket> {
    // Fixed times, so listings are stable across runs.
    let t0 = 1_767_225_600; // 2026-01-01
    fixture
        .buckets
        .iter()
        .map(|b: &BucketFixture| LiveBucket {
            id: b.id.clone(),
            owners: b.owners.clone(),
            files: b
                .files
                .iter()
                .map(|(p, f)| {
                    (
                        p.clone(),
                        Entry {
                            file: f.clone(),
                            uploaded_at: t0,
                            mtime_ms: t0 * 1000,
                        },
                    )
                })
                .collect(),
            spares: b.spares.clone(),
            created: t0,
            updated: t0,
        })
        .collect()
}

/// The index a CAS token scoped to bucket `i` carries (after the repos').
pub(crate) fn token_scope(st: &HubState, i: usize) -> usize {
    st.fixture.repos.len() + i
}

/// Whether the CAS token scope `scope` is a bucket's that holds Xet file `hash` (now, before an
/// overwrite, or as a spare: the CAS keeps what was uploaded).
pub(crate) fn scope_holds(st: &HubState, scope: usize, hash: &str) -> Option<bool> {
    let i = scope.checked_sub(st.fixture.repos.len())?;
    let b = st.fixture.buckets.get(i)?;
    Some(
        b.files
            .values()
            .chain(b.spares.iter())
            .any(|f| f.xet_hash() == hash),
    )
}

/// Whether any bucket holds Xet file `hash`.
pub(crate) fn any_holds(st: &HubState, hash: &str) -> bool {
    st.fixture.buckets.iter().any(|b| {
        b.files
            .values()
            .chain(b.spares.iter())
            .any(|f| f.xet_hash() == hash)
    })
}

fn visible(b: &LiveBucket, tok: &Option<String>) -> bool {
    match &b.owners {
        Some(owners) => tok.as_ref().is_some_and(|t| owners.contains(t)),
        None => true,
    }
}

fn owner(b: &LiveBucket, tok: &Option<String>) -> bool {
    match (&b.owners, tok) {
        (Some(o), Some(t)) => o.contains(t),
        // A public bucket's "owner" in the fake: any valid token.
        (None, Some(_)) => true,
        _ => false,
    }
}

fn bucket_not_found(tok: &Option<String>) -> Response<Body> {
    let status = if tok.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::UNAUTHORIZED
    };
    hub_error(status, Some("RepoNotFound"), "Bucket not found")
}

fn info_json(b: &LiveBucket) -> Value {
    json!({
        "id": b.id,
        "private": b.owners.is_some(),
        "createdAt": iso_date(b.created),
        "updatedAt": iso_date(b.updated),
        "size": b.files.values().map(|e| e.file.size()).sum::<u64>(),
        "totalFiles": b.files.len(),
    })
}

fn file_json(path: &str, e: &Entry) -> Value {
    json!({
        "type": "file",
        "path": path,
        "size": e.file.size(),
        "xetHash": e.file.xet_hash(),
        "mtime": iso_date(e.mtime_ms / 1000),
        "uploadedAt": iso_date(e.uploaded_at),
    })
}

type Query = Vec<(String, String)>;

fn qget<'a>(q: &'a Query, k: &str) -> Option<&'a str> {
    q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// The entries of a listing: files whose path starts with `prefix` (lexically, as the Hub:
/// `logs` also matches `logs.json`); without `recursive`, only the first level below the
/// prefix, folders synthesised from the paths.
fn listing(b: &LiveBucket, prefix: &str, recursive: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (p, e) in b.files.range(prefix.to_string()..) {
        if !p.starts_with(prefix) {
            break;
        }
        if recursive {
            out.push(file_json(p, e));
            continue;
        }
        let rest = &p[prefix.len()..];
        // Below the prefix as a folder (`data` → `data/…`), or a lexical sibling (`logs.json`).
        let (head, rest) = match rest.strip_prefix('/') {
            Some(r) if !prefix.is_empty() => (format!("{prefix}/"), r),
            _ => (prefix.to_string(), rest),
        };
        match rest.find('/') {
            Some(i) => {
                let d = format!("{head}{}", &rest[..i]);
                if dirs.insert(d.clone()) {
                    out.push(json!({"type": "directory", "path": d, "uploadedAt": iso_date(e.uploaded_at)}));
                }
            }
            None => out.push(file_json(p, e)),
        }
    }
    out
}

/// `/api/buckets/…` (after `buckets`), segments percent-decoded.
pub(crate) async fn api(
    st: &Arc<HubState>,
    req: Request<Body>,
    segs: &[String],
    tok: Option<String>,
) -> Response<Body> {
    let method = req.method().clone();
    let q: Query = serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let raw_path = req.uri().path().to_string();
    if let [ns] = segs {
        return match method {
            Method::GET | Method::HEAD => list(st, ns, &tok),
            _ => hub_error(StatusCode::METHOD_NOT_ALLOWED, None, "method not allowed"),
        };
    }
    let (id, tail) = match segs {
        [ns, name, tail @ ..] if !ns.is_empty() && !name.is_empty() => {
            (format!("{ns}/{name}"), tail)
        }
        _ => return hub_error(StatusCode::NOT_FOUND, None, "Not Found"),
    };
    let op = tail.first().map(String::as_str);
    // Create: POST on the bucket itself.
    if op.is_none() && method == Method::POST {
        return create(st, &id, &tok);
    }
    // A snapshot: the lock is never held across an await.
    let found = {
        let buckets = st.buckets.lock().expect("buckets lock");
        buckets.iter().find(|b| b.id == id).cloned()
    };
    let Some(b) = found.filter(|b| visible(b, &tok)) else {
        return bucket_not_found(&tok);
    };
    let single = tail.len() == 1;
    match (op, &method) {
        (None, &Method::GET | &Method::HEAD) => json_response(&info_json(&b)),
        (None, &Method::DELETE) => {
            if !owner(&b, &tok) {
                return hub_error(StatusCode::FORBIDDEN, None, "You cannot delete this bucket");
            }
            st.buckets
                .lock()
                .expect("buckets lock")
                .retain(|x| x.id != id);
            json_response(&json!({}))
        }
        (Some("tree"), &Method::GET) => {
            let prefix = tail[1..].join("/").trim_matches('/').to_string();
            let recursive = matches!(qget(&q, "recursive"), Some("true" | "True" | "1"));
            let all = listing(&b, &prefix, recursive);
            if all.is_empty() && !prefix.is_empty() {
                return hub_error(
                    StatusCode::NOT_FOUND,
                    Some("EntryNotFound"),
                    &format!("{prefix} does not exist in bucket {id}"),
                );
            }
            let limit = qget(&q, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0)
                .unwrap_or(st.fixture.tree_page_size.max(1));
            let start: usize = qget(&q, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
            let mut r = json_response(&Value::Array(page));
            if start + limit < all.len() {
                let mut q2: Query = q.iter().filter(|(k, _)| k != "cursor").cloned().collect();
                q2.push(("cursor".into(), (start + limit).to_string()));
                let qs = serde_urlencoded::to_string(&q2).unwrap_or_default();
                r.headers_mut().insert(
                    header::LINK,
                    hv(&format!("<{}{raw_path}?{qs}>; rel=\"next\"", st.hub_url)),
                );
            }
            r
        }
        (Some("paths-info"), &Method::POST) if single => {
            let body = axum::body::to_bytes(req.into_body(), 16 << 20)
                .await
                .unwrap_or_default();
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return hub_error(StatusCode::BAD_REQUEST, None, "expected a JSON body");
            };
            let Some(paths) = v.get("paths").and_then(Value::as_array) else {
                return hub_error(StatusCode::BAD_REQUEST, None, "expected {\"paths\": [...]}");
            };
            let out: Vec<Value> = paths
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|p| b.files.get(p).map(|e| file_json(p, e)))
                .collect();
            json_response(&Value::Array(out))
        }
        (Some("xet-read-token"), &Method::GET) if single => xet_token(st, &id),
        (Some("xet-write-token"), &Method::GET) if single => {
            if !owner(&b, &tok) {
                return hub_error(
                    StatusCode::FORBIDDEN,
                    None,
                    "You cannot write to this bucket",
                );
            }
            xet_token(st, &id)
        }
        (Some("events"), &Method::GET) if single => {
            // One `ready` event, then the stream ends (the follower reconnects).
            let mut r = Response::new(Body::from(format!(
                "event: ready\ndata: {}\n\n",
                json!({"cursor": b.updated.to_string()})
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            r
        }
        (Some("settings"), &Method::PUT) if single => {
            if !owner(&b, &tok) {
                return hub_error(StatusCode::FORBIDDEN, None, "You cannot change this bucket");
            }
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let private = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("private").and_then(Value::as_bool));
            let mut buckets = st.buckets.lock().expect("buckets lock");
            if let (Some(p), Some(b)) = (private, buckets.iter_mut().find(|b| b.id == id)) {
                b.owners = match (p, tok) {
                    (true, Some(t)) => Some(b.owners.clone().unwrap_or_else(|| vec![t])),
                    _ => None,
                };
            }
            json_response(&json!({}))
        }
        (Some("batch"), &Method::POST) if single => {
            if !owner(&b, &tok) {
                return hub_error(
                    StatusCode::FORBIDDEN,
                    None,
                    "You cannot write to this bucket",
                );
            }
            let body = axum::body::to_bytes(req.into_body(), 16 << 20)
                .await
                .unwrap_or_default();
            batch(st, &id, &body)
        }
        _ => hub_error(StatusCode::NOT_FOUND, None, "Not Found"),
    }
}

/// `GET /api/buckets/{ns}` (`me`: the caller's).
fn list(st: &HubState, ns: &str, tok: &Option<String>) -> Response<Body> {
    if ns == "me" && tok.is_none() {
        return hub_error(StatusCode::UNAUTHORIZED, None, "You must be authenticated");
    }
    let buckets = st.buckets.lock().expect("buckets lock");
    let out: Vec<Value> = buckets
        .iter()
        .filter(|b| {
            if ns == "me" {
                b.owners
                    .as_ref()
                    .is_some_and(|o| tok.as_ref().is_some_and(|t| o.contains(t)))
            } else {
                b.id.split('/').next() == Some(ns) && visible(b, tok)
            }
        })
        .map(info_json)
        .collect();
    json_response(&Value::Array(out))
}

fn create(st: &HubState, id: &str, tok: &Option<String>) -> Response<Body> {
    if tok.is_none() {
        return hub_error(StatusCode::UNAUTHORIZED, None, "You must be authenticated");
    }
    let mut buckets = st.buckets.lock().expect("buckets lock");
    if buckets.iter().any(|b| b.id == id) {
        return hub_error(
            StatusCode::CONFLICT,
            None,
            "You already created this bucket",
        );
    }
    let t = now();
    buckets.push(LiveBucket {
        id: id.to_string(),
        owners: None,
        files: BTreeMap::new(),
        spares: Vec::new(),
        created: t,
        updated: t,
    });
    json_response(&json!({"url": format!("{}/buckets/{id}", st.hub_url)}))
}

/// `POST …/batch` (NDJSON): `addFile`/`copyFile` of a Xet hash the fake CAS holds, `deleteFile`.
fn batch(st: &HubState, id: &str, body: &[u8]) -> Response<Body> {
    let mut buckets = st.buckets.lock().expect("buckets lock");
    let Some(b) = buckets.iter_mut().find(|b| b.id == id) else {
        return hub_error(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            "Bucket not found",
        );
    };
    let mut failed = Vec::new();
    for line in body.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
        let Ok(op) = serde_json::from_slice::<Value>(line) else {
            return hub_error(StatusCode::BAD_REQUEST, None, "bad NDJSON line");
        };
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match op.get("type").and_then(Value::as_str) {
            Some("deleteFile") => {
                b.files.remove(&path);
            }
            Some("addFile" | "copyFile") => {
                let hash = op.get("xetHash").and_then(Value::as_str).unwrap_or("");
                let known = st
                    .fixture
                    .all_files()
                    .into_iter()
                    .find(|f| f.xet && f.xet_hash() == hash);
                match known {
                    Some(f) => {
                        let mtime = op
                            .get("mtime")
                            .and_then(Value::as_u64)
                            .unwrap_or(now() * 1000);
                        b.files.insert(
                            path,
                            Entry {
                                file: f.clone(),
                                uploaded_at: now(),
                                mtime_ms: mtime,
                            },
                        );
                    }
                    None => failed.push(json!({"path": path, "error": "unknown xetHash"})),
                }
            }
            _ => failed.push(json!({"path": path, "error": "unknown operation"})),
        }
    }
    b.updated = now();
    if failed.is_empty() {
        json_response(&json!({}))
    } else {
        let mut r = json_response(&json!({ "failed": failed }));
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        r
    }
}

/// A CAS token scoped to the bucket, in JSON (`casUrl`, what hf_xet reads for buckets) and in
/// the `X-Xet-*` headers (what huggingface_hub reads).
fn xet_token(st: &HubState, id: &str) -> Response<Body> {
    let i = st
        .fixture
        .buckets
        .iter()
        .position(|b| b.id == id)
        .unwrap_or(usize::MAX - st.fixture.repos.len());
    let exp = now() + TTL_SECS;
    let cas = format!("{}/cas", st.hub_url);
    let token = format!("xet_{}", hex::encode(rand::random::<[u8; 16]>()));
    {
        let mut toks = st.xet_tokens.lock().expect("xet token lock");
        let t = now();
        toks.retain(|_, e| e.0 > t);
        toks.insert(token.clone(), (exp, token_scope(st, i)));
    }
    let mut r = json_response(&json!({"accessToken": token, "exp": exp, "casUrl": cas}));
    let h = r.headers_mut();
    h.insert("x-xet-cas-url", hv(&cas));
    h.insert("x-xet-access-token", hv(&token));
    h.insert("x-xet-token-expiration", exp.into());
    r
}

/// `HEAD|GET /buckets/{ns}/{name}/resolve/{path…}` (segments after `buckets`).
pub(crate) fn resolve(
    st: &Arc<HubState>,
    req: &Request<Body>,
    segs: &[String],
    tok: Option<String>,
) -> Response<Body> {
    let (id, path) = match segs {
        [ns, name, r, path @ ..] if r == "resolve" && !path.is_empty() => {
            (format!("{ns}/{name}"), path.join("/"))
        }
        _ => return hub_error(StatusCode::NOT_FOUND, None, "Not Found"),
    };
    let buckets = st.buckets.lock().expect("buckets lock");
    let Some(b) = buckets.iter().find(|b| b.id == id) else {
        return bucket_not_found(&tok);
    };
    if !visible(b, &tok) {
        return bucket_not_found(&tok);
    }
    let Some(e) = b.files.get(&path) else {
        return hub_error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            &format!("{path} does not exist in bucket {id}"),
        );
    };
    let f = &e.file;
    let xh = f.xet_hash();
    let mut h = HeaderMap::new();
    let refresh = format!("{}/api/buckets/{id}/xet-read-token", st.hub_url);
    let recon = format!("{}/cas/v1/reconstructions/{xh}", st.hub_url);
    h.insert("x-xet-hash", hv(&xh));
    h.insert(
        header::LINK,
        hv(&format!(
            "<{refresh}>; rel=\"xet-auth\", <{recon}>; rel=\"xet-reconstruction-info\""
        )),
    );
    h.insert("x-linked-size", f.size().into());
    h.insert(header::ETAG, hv(&format!("\"{xh}\"")));
    h.insert("x-linked-etag", hv(&format!("\"{xh}\"")));
    let wants_fileinfo = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/vnd.xet-fileinfo+json"));
    if wants_fileinfo {
        let v = json!({
            "casUrl": format!("{}/cas", st.hub_url),
            "hash": xh,
            "refreshUrl": refresh,
            "reconstructionUrl": recon,
            "etag": xh,
            "size": f.size(),
        });
        let mut r = Response::new(Body::from(v.to_string()));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.xet-fileinfo+json"),
        );
        r.headers_mut().extend(h);
        return r;
    }
    // The bytes: a 302 to the CDN, which honours Range (the "bridge").
    let sha256 = f.sha256();
    let location = st.cdn_location(
        sha256,
        &format!(
            "bucket={}",
            percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC)
        ),
        TTL_SECS,
    );
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

/// Admin: `POST /__admin/bucket-overwrite {"bucket", "path", "spare"}` puts spare content
/// number `spare` of the bucket at `path` (a new upload: new `uploadedAt`, `updatedAt`).
pub(crate) fn overwrite(st: &HubState, body: &[u8]) -> Response<Body> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (Some(id), Some(path), Some(spare)) = (
        v.get("bucket").and_then(Value::as_str),
        v.get("path").and_then(Value::as_str),
        v.get("spare").and_then(Value::as_u64),
    ) else {
        return hub_error(
            StatusCode::BAD_REQUEST,
            None,
            "expected {bucket, path, spare}",
        );
    };
    let mut buckets = st.buckets.lock().expect("buckets lock");
    let Some(b) = buckets.iter_mut().find(|b| b.id == id) else {
        return hub_error(StatusCode::NOT_FOUND, None, "no such bucket");
    };
    let Some(f) = b.spares.get(spare as usize).cloned() else {
        return hub_error(StatusCode::NOT_FOUND, None, "no such spare");
    };
    let t = now();
    b.files.insert(
        path.to_string(),
        Entry {
            file: f.clone(),
            uploaded_at: t,
            mtime_ms: t * 1000,
        },
    );
    b.updated = t;
    json_response(&json!({"xetHash": f.xet_hash(), "size": f.size(), "sha256": f.sha256()}))
}
