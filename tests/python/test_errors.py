"""Hub-shaped errors: the real client raises the right exception (it reads X-Error-Code), for
downloads and API calls; gated and private repos with the right, a wrong, and no token."""

import pytest

DL = """
from huggingface_hub import hf_hub_download
def dl():
    p = hf_hub_download({repo!r}, {path!r}, repo_type={kind!r}, revision={rev!r})
    return sha(p)
r = catch(dl)
storage = os.path.join(os.environ["HF_HOME"], "hub", {storage!r})
r["no_exist"] = sorted(
    os.path.relpath(os.path.join(d, n), storage)
    for d, _, ns in os.walk(os.path.join(storage, ".no_exist")) for n in ns
)
emit(r)
"""


def download(client_env, repo, path, rev="main", kind="model", token=None, **kw):
    storage = f"{kind}s--{repo.replace('/', '--')}"
    return client_env(DL.format(repo=repo, path=path, rev=rev, kind=kind, storage=storage), token=token, **kw).out


@pytest.mark.parametrize(
    "repo,kind,path,rev,token,exc",
    [
        ("acme/nope", "model", "config.json", "main", None, "RepositoryNotFoundError"),
        ("acme/nope", "model", "config.json", "main", "hf_other", "RepositoryNotFoundError"),
        ("acme/nope", "dataset", "x.txt", "main", None, "RepositoryNotFoundError"),
        ("acme/tiny", "model", "config.json", "no-such-branch", None, "RevisionNotFoundError"),
        ("acme/tiny", "model", "config.json", "0" * 40, None, "RevisionNotFoundError"),
        ("acme/data", "dataset", "README.md", "refs/convert/nope", None, "RevisionNotFoundError"),
        ("acme/tiny", "model", "no-such-file.json", "main", None, "RemoteEntryNotFoundError"),
        ("acme/tiny", "model", "old-only.txt", "main", None, "RemoteEntryNotFoundError"),
        ("acme/space", "space", "nope.py", "main", None, "RemoteEntryNotFoundError"),
        ("acme/private", "model", "config.json", "main", None, "RepositoryNotFoundError"),
        ("acme/private", "model", "config.json", "main", "hf_other", "RepositoryNotFoundError"),
        ("acme/gated", "model", "weights.bin", "main", None, "GatedRepoError"),
        ("acme/gated", "model", "config.json", "main", None, "GatedRepoError"),
        ("acme/gated", "model", "weights.bin", "main", "hf_other", "GatedRepoError"),
    ],
    ids=lambda v: str(v) if v is not None else "anon",
)
def test_download_error_types(hub, client_env, repo, kind, path, rev, token, exc):
    out = download(client_env, repo, path, rev, kind, token)
    assert out.get("err") == exc, out
    if exc == "RemoteEntryNotFoundError":
        assert "EntryNotFoundError" in out["mro"]
        # The 404 carried X-Repo-Commit, so the client recorded a negative cache entry.
        commit = hub.commit(repo, rev, kind)
        assert out["no_exist"] == [f".no_exist/{commit}/{path}"], out
    if exc == "GatedRepoError":
        assert out["status"] in (401, 403), out


@pytest.mark.parametrize(
    "repo,path,token",
    [
        ("acme/gated", "weights.bin", "hf_granted"),
        ("acme/gated", "config.json", "hf_granted"),
        ("acme/private", "config.json", "hf_owner"),
    ],
)
def test_authorised_tokens_get_exact_bytes(hub, client_env, repo, path, token):
    out = download(client_env, repo, path, token=token)
    assert out == {"ok": hub.file(repo, path)["sha256"], "no_exist": []}


def test_api_error_types(client_env):
    out = client_env(
        """
        from huggingface_hub import HfApi, snapshot_download
        api = HfApi()
        emit({
            "info_missing": catch(api.model_info, "acme/nope"),
            "info_bad_rev": catch(api.model_info, "acme/tiny", revision="no-such-branch"),
            "info_private": catch(api.model_info, "acme/private"),
            "dataset_missing": catch(api.dataset_info, "acme/nope"),
            "tree_missing_path": catch(lambda: list(api.list_repo_tree("acme/tiny", path_in_repo="nope"))),
            "tree_bad_rev": catch(lambda: list(api.list_repo_tree("acme/tiny", revision="nope"))),
            "snapshot_missing": catch(snapshot_download, "acme/nope"),
            "snapshot_bad_rev": catch(snapshot_download, "acme/tiny", revision="nope"),
            "snapshot_gated": catch(snapshot_download, "acme/gated"),
        })
        """
    ).out
    expect = {
        "info_missing": "RepositoryNotFoundError",
        "info_bad_rev": "RevisionNotFoundError",
        "info_private": "RepositoryNotFoundError",
        "dataset_missing": "RepositoryNotFoundError",
        "tree_missing_path": "RemoteEntryNotFoundError",
        "tree_bad_rev": "RevisionNotFoundError",
        "snapshot_missing": "RepositoryNotFoundError",
        "snapshot_bad_rev": "RevisionNotFoundError",
        "snapshot_gated": "GatedRepoError",
    }
    assert {k: v.get("err") for k, v in out.items()} == expect, out


def test_private_repo_api_with_owner_token(hub, client_env):
    out = client_env(
        """
        from huggingface_hub import HfApi
        info = HfApi().model_info("acme/private")
        emit({"sha": info.sha, "private": info.private, "files": [s.rfilename for s in info.siblings]})
        """,
        token="hf_owner",
    ).out
    assert out == {"sha": hub.commit("acme/private"), "private": True, "files": ["config.json"]}
