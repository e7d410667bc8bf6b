//! Hub JSON shapes for repositories the mirror answers itself (mirrors-path, model-bin).

use olah_types::RepoRef;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `GET /api/{t}s/{repo}` (PROTOCOL.md §3.1) for a local repository. `id_seed` makes a stable
/// Hub-style `_id` (24 hex digits).
pub(crate) fn local_repo_info(
    id_seed: &str,
    repo: &RepoRef,
    sha: &str,
    created: &str,
    last_modified: &str,
    siblings: Vec<Value>,
) -> Value {
    let id = hex::encode(Sha256::digest(id_seed.as_bytes()));
    json!({
        "_id": &id[..24],
        "id": repo.id.as_str(),
        "author": repo.id.namespace().unwrap_or(""),
        "sha": sha,
        "lastModified": last_modified,
        "createdAt": created,
        "private": false,
        "gated": false,
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    })
}
