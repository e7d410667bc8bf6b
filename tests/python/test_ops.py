"""Operating the mirror: `olah-cli config show [--sources]` (the effective configuration, read
back with `-c`)."""

import os
import subprocess
import tomllib

from conftest import BIN, mirror_only

pytestmark = mirror_only

SECRET = "hf_secretOps0123456789abcdefXYZ"


def olah(*args, env=None, cwd=None, binary=None):
    """Runs olah-cli to completion: (rc, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OLAH_", "HF_"))}
    e.update(env or {})
    p = subprocess.run(
        [binary or os.path.join(BIN, "olah-cli"), *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd,
        timeout=60,
    )
    return p.returncode, p.stdout, p.stderr


# --------------------------------------------------------------------------------------------
# config show


def test_config_show_says_where_each_value_came_from_and_reads_back(tmp_path):
    conf = tmp_path / "olah.toml"
    conf.write_text(
        '[basic]\nport = 9000\ncache-size-limit = "10G"\n\n'
        '[[accessibility.proxy]]\nrepo = "acme/*"\nallow = true\n'
    )
    env = {"OLAH_ADMIN_TOKEN": SECRET}
    args = ["-c", str(conf), "--offline", "config", "show", "--host", "127.0.0.2"]
    rc, out, err = olah(*args, "--sources", env=env, cwd=tmp_path)
    assert rc == 0, err
    assert SECRET not in out + err
    lines = out.splitlines()
    for want in (
        f"port = 9000  # file ({conf}:2)",
        f"cache-size-limit = {10 << 30}  # file ({conf}:3)",
        'host = "127.0.0.2"  # flag --host',
        "offline = true  # flag --offline",
        'repos-path = "./repos"  # default',
        'mirror-netloc = "127.0.0.2:9000"  # derived from host, port',
        f"[[accessibility.proxy]]  # file ({conf}:5)",
        'token = "<redacted>"  # env OLAH_ADMIN_TOKEN',
    ):
        assert want in lines, f"{want!r} not in:\n{out}"

    # It is TOML in olah's layout.
    doc = tomllib.loads(out)
    assert doc["basic"]["port"] == 9000
    assert doc["accessibility"]["proxy"] == [{"repo": "acme/*", "allow": True, "use_re": False}]
    assert doc["admin"]["token"] == "<redacted>"

    # Fed back with -c (and the same environment), it is the same configuration.
    rc, plain, err = olah(*args, env=env, cwd=tmp_path)
    assert rc == 0, err
    assert "#" not in "".join(line for line in plain.splitlines() if not line.startswith("#"))
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    rc, again, err = olah("-c", str(shown), "config", "show", env=env, cwd=tmp_path)
    assert rc == 0, err
    assert again == plain

    # Without the real token, the placeholder is refused rather than taken as the token.
    rc, _, err = olah("-c", str(shown), "config", "show", cwd=tmp_path)
    assert rc == 2
    assert "admin.token" in err and "<redacted>" in err


def test_config_show_names_a_token_file_not_its_content(tmp_path):
    token_file = tmp_path / "admin.token"
    token_file.write_text(SECRET + "\n")
    rc, out, err = olah("config", "show", "--sources", "--admin-token-file", str(token_file))
    assert rc == 0, err
    assert SECRET not in out + err
    assert f'token_file = "{token_file}"  # flag --admin-token-file' in out.splitlines()
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    rc, again, err = olah("-c", str(shown), "config", "show", "--sources")
    assert rc == 0, err
    assert f'token_file = "{token_file}"  # file ({shown}:' in again
