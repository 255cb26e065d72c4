"""A coding task end to end against real uvicorn: our server (subprocess) serving tests/fixtures/coding_task.py.

An agent lists files, greps, reads a range, edits, runs the tests with the toolset's shell and submits for the
environment's reward: through `toolsets = [CLIToolset]`, through every coding toolset bound per session with
`session(toolset=...)` on our client, and through the REFERENCE client (its own venv) on our server.
"""
import asyncio, json, sys

import pytest

from conftest import FIXTURES, SERVE_EXAMPLES, run_reference_script, serve_subprocess

sys.path.insert(0, str(FIXTURES))
from coding_task import PLANS, check_outputs

from openreward.client import AsyncOpenReward

@pytest.fixture(scope="module")
def server():
    with serve_subprocess(sys.executable, SERVE_EXAMPLES, str(FIXTURES/"coding_task.py")) as (url, _):
        yield url

def text(out): return out.blocks[0].text

async def play(url, env_name, key, toolset=None):
    async with AsyncOpenReward(api_key="") as client:
        env = client.environments.get("coding", variant=env_name, base_url=url)
        async with env.session(split="train", index=0, toolset=toolset) as s:
            names = [t.name for t in await s.list_tools()]
            outs = [text(await s.call_tool(name, args)) for name, args in PLANS[key]]
            return names, outs, (await s.call_tool("submit", {})).reward

def test_class_level_cli(server):
    names, outs, reward = asyncio.run(play(server, "bugfix", "cli"))
    assert names == ['submit', 'bash', 'edit', 'glob', 'grep', 'ls', 'multi_edit', 'read', 'todo_write', 'write']
    check_outputs("cli", outs)
    assert outs[2] == "     1\tdef add(a, b):\n     2\t    return a - b\n\n(exit 0)"
    assert reward == 1.0

@pytest.mark.parametrize("key", ["claude-code", "codex", "gemini-cli", "hermes", "openclaw"])
def test_session_toolset(server, key):
    names, outs, reward = asyncio.run(play(server, "anyagent", key, toolset=key))
    assert names[0] == "submit" and all(n in names for n, _ in PLANS[key])
    check_outputs(key, outs)
    assert reward == 1.0

@pytest.mark.parametrize("toolset", ["cli", "class", "instance"])
def test_session_cli_through_our_client(server, toolset):
    "Our client accepts every registered name, `cli` included (the reference's refuses it), and a Toolset class or instance."
    from types import SimpleNamespace
    from openreward.toolsets import CLIToolset
    ts = {"cli": "cli", "class": CLIToolset, "instance": CLIToolset(SimpleNamespace(sandbox=object()))}[toolset]
    names, outs, reward = asyncio.run(play(server, "anyagent", "cli", toolset=ts))
    check_outputs("cli", outs)
    assert reward == 1.0

def test_reference_client_drives_toolset_sessions(server, reference_python):
    plans = {k: PLANS[k] for k in ("claude-code", "codex", "gemini-cli", "hermes", "openclaw")}  # all its client accepts
    r = run_reference_script(reference_python, FIXTURES/"reference_toolset_client.py", server, json.dumps(plans))
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for key in plans:
        check_outputs(key, got[key]["texts"])
        assert got[key]["reward"] == 1.0 and got[key]["tools"][0] == "submit"
