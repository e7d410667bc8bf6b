//! `/admin/api/cache/{ls,verify,rm,gc}`: the cache tools (`olah-cli cache …`) run by the server
//! that holds the cache, for a CLI that finds the cache locked. Access was checked by the caller.
//!
//! `GET ls` → the repositories (JSON list); `POST verify` → the verify report; `POST rm` with
//! `{"repo_id": "ns/name", "repo_type": "model"}` → the remove report (404 `RepoNotFound` when
//! the cache knows nothing of it); `POST gc` with an optional `{"dry_run": true}` → the gc report.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, header};
use olah_service::ServiceError;
use olah_types::{CacheOp, RepoId, RepoRef, RepoType};
use serde::Deserialize;

use crate::app::App;

/// Largest request body accepted (a repo id and a flag).
const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
struct RmBody {
    repo_id: String,
    #[serde(default = "model")]
    repo_type: String,
}

fn model() -> String {
    "model".into()
}

#[derive(Deserialize, Default)]
struct GcBody {
    #[serde(default)]
    dry_run: bool,
}

/// Runs one cache tool and answers its report as JSON.
pub async fn answer(app: &App, op: CacheOp, req: Request) -> Response {
    match run(app, op, req).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => crate::error::render(e),
    }
}

async fn run(app: &App, op: CacheOp, req: Request) -> Result<String, ServiceError> {
    let Some(mirror) = app.mirror.as_ref() else {
        return Err(olah_types::RouteError::NotFound.into());
    };
    let want = if op == CacheOp::Ls {
        Method::GET
    } else {
        Method::POST
    };
    let method = req.method().clone();
    if method != want && !(op == CacheOp::Ls && method == Method::HEAD) {
        return Err(ServiceError::method_not_allowed(format!(
            "cache {} takes {want}",
            op.as_str()
        )));
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ServiceError::bad_request("request body too large"))?;
    let catalog = mirror.catalog();
    let json = match op {
        CacheOp::Ls => serde_json::to_string(&catalog.repos().await?),
        CacheOp::Verify => serde_json::to_string(&catalog.verify().await?),
        CacheOp::Rm => {
            let b: RmBody = serde_json::from_slice(&body)
                .map_err(|e| ServiceError::bad_request(format!("bad rm request: {e}")))?;
            let kind = RepoType::from_singular(&b.repo_type).ok_or_else(|| {
                ServiceError::bad_request(format!("unknown repo type {:?}", b.repo_type))
            })?;
            let id = RepoId::new(&b.repo_id)
                .map_err(|_| ServiceError::bad_request(format!("bad repo id {:?}", b.repo_id)))?;
            serde_json::to_string(&catalog.remove(&RepoRef::new(kind, id)).await?)
        }
        CacheOp::Gc => {
            let b: GcBody = if body.iter().all(u8::is_ascii_whitespace) {
                GcBody::default()
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| ServiceError::bad_request(format!("bad gc request: {e}")))?
            };
            serde_json::to_string(&catalog.gc(b.dry_run).await?)
        }
    };
    json.map_err(|e| ServiceError::internal(e.to_string()))
}
