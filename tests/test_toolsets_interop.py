"""Toolset listings and binding, compared byte for byte with the reference server (openreward 0.1.167, own venv).

Both servers serve tests/fixtures/toolset_envs.py: `ts-<key>` declares each built-in toolset class-level, `bare`
and `clash` get every toolset bound per session through `/create`'s `toolset_name`. `/tools`, `/task_tools` and
the `/create` answers (including the 400 for an unknown toolset) must be the same bytes.
"""
import sys

import httpx
import pytest

from conftest import FIXTURES, SERVE_EXAMPLES, serve_subprocess

ENVS = FIXTURES/"toolset_envs.py"
KEYS = ["backsearch", "claude-code", "cli", "codex", "gemini-cli", "hermes", "openclaw", "web"]

@pytest.fixture(scope="module")
def both(reference_python):
    with serve_subprocess(reference_python, SERVE_EXAMPLES, str(ENVS)) as (ref, _), \
         serve_subprocess(sys.executable, SERVE_EXAMPLES, str(ENVS)) as (ours, _):
        yield ref, ours

def test_environment_list_identical(both):
    ref, ours = both
    a, b = httpx.get(f"{ref}/list_environments"), httpx.get(f"{ours}/list_environments")
    assert a.content == b.content and len(a.json()) == 11

@pytest.mark.parametrize("key", KEYS)
def test_class_level_listing_identical(both, key):
    ref, ours = both
    a, b = httpx.get(f"{ref}/ts-{key}/tools"), httpx.get(f"{ours}/ts-{key}/tools")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content, f"/ts-{key}/tools differs"

@pytest.mark.parametrize("env", ["bare", "clash"])
@pytest.mark.parametrize("key", KEYS + ["nope"])
def test_session_toolset_listing_identical(both, key, env):
    got = []
    for base in both:
        sid = f"interop-{env}-{key}"
        c = httpx.post(f"{base}/create", json={"env_name": env, "task_spec": {"id": "t0"}, "toolset_name": key},
                       headers={"X-Session-ID": sid})
        tools = httpx.get(f"{base}/{env}/task_tools", headers={"X-Session-ID": sid}) if c.status_code == 200 else None
        httpx.post(f"{base}/delete", headers={"X-Session-ID": sid})
        got.append((c.status_code, c.content, tools and (tools.status_code, tools.content)))
    assert got[0] == got[1]
    if key == "nope": assert got[0][0] == 400 and b"valid options are" in got[0][1]
    else: assert got[0][2][0] == 200

@pytest.mark.parametrize("key", KEYS)
def test_toolset_without_its_sandbox(both, key):
    "A sandbox toolset on an environment without a sandbox: 400 from both servers, naming `env.sandbox`; web ones bind."
    got = []
    for base in both:
        sid = f"interop-nobox-{key}"
        c = httpx.post(f"{base}/create", json={"env_name": "nobox", "task_spec": {"id": "t0"}, "toolset_name": key},
                       headers={"X-Session-ID": sid})
        httpx.post(f"{base}/delete", headers={"X-Session-ID": sid})
        got.append((c.status_code, c.json()))
    assert got[0][0] == got[1][0] == (200 if key in ("web", "backsearch") else 400)
    if got[0][0] == 400: assert all("requires `env.sandbox` to be set" in g[1]["detail"] for g in got), got
