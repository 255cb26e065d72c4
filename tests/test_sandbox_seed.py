"""The seed's sandbox environment (tests/fixtures/seed_sandbox_env.py, bugs fixed and marked) served by OUR server on
real uvicorn in a subprocess, its sandbox on the local backend, driven through our client; then the server is stopped
(SIGTERM, as an orchestrator does) with sessions open, and nothing may be left behind."""
from __future__ import annotations

import asyncio, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from openreward import AsyncOpenReward, OpenReward

import httpx

from conftest import free_port, serve_subprocess, subprocess_env
from sandbox_helpers import leftovers, needs_bwrap, processes_of, state_dir

pytestmark = needs_bwrap
SEED = Path(__file__).parent / "fixtures" / "seed_sandbox_env.py"

def events(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

def wait_for(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline: return False
        time.sleep(0.05)
    return True

@pytest.fixture
def served(tmp_path):
    root = state_dir()
    log = tmp_path / "events"
    with serve_subprocess(sys.executable, SEED, env={"OPENREWARD_SANDBOX_DIR": str(root), "ORW_EVENTS": str(log)}) as (url, proc):
        yield url, proc, root, log
    shutil.rmtree(root, ignore_errors=True)

def test_an_agent_drives_the_seed_environments_bash_tool(served):
    url, proc, root, log = served
    env = OpenReward(api_key="").environments.get("myenvironment", base_url=url)
    task = env.list_tasks("train")[0]
    with env.session(task) as session:
        first = session.call_tool("bash", {"command": "echo 'print(6 * 7)' > answer.py && python3 answer.py"})
        second = session.call_tool("bash", {"command": "ls; cat /etc/shadow"})
    assert first.blocks[0].text == "42\n\n(exit 0)" and first.metadata == {"output": "42", "exit_code": 0}
    assert second.metadata["output"].startswith("answer.py") and "Permission denied" in second.metadata["output"]
    assert wait_for(lambda: [e[0] for e in events(log)] == ["sandbox", "stopped"])  # teardown stopped it on /delete
    uid = int(events(log)[0][2])
    assert leftovers(root, [uid]) == {"processes": [], "cgroups": [], "dirs": []}

def test_concurrent_sessions_each_get_their_own_sandbox(served):
    url, proc, root, log = served
    async def main():
        env = AsyncOpenReward(api_key="").environments.get("myenvironment", base_url=url)
        task = (await env.list_tasks("train"))[0]
        async def one(i):
            async with env.session(task) as s:
                await s.call_tool("bash", {"command": f"echo {i} > mine"})
                await asyncio.sleep(0.2)
                return (await s.call_tool("bash", {"command": "cat mine; ls | wc -l"})).metadata["output"]
        return await asyncio.gather(*(one(i) for i in range(4)))
    assert asyncio.run(main()) == [f"{i}\n1" for i in range(4)]

def start_seed(root: Path, log: Path) -> tuple[str, subprocess.Popen]:
    "The seed server in a subprocess we stop ourselves (serve_subprocess treats a server that exits as a failure)."
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SEED), "127.0.0.1", str(port)], stdin=subprocess.DEVNULL,
                            env=subprocess_env(OPENREWARD_SANDBOX_DIR=str(root), ORW_EVENTS=str(log)))
    url = f"http://127.0.0.1:{port}"
    def up():
        try: return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.TransportError: return proc.poll() is not None
    assert wait_for(up, 60) and proc.poll() is None
    return url, proc

def test_sigterm_of_the_server_stops_every_sandbox_it_owns(tmp_path):
    root, log = state_dir(), tmp_path / "events"
    url, proc = start_seed(root, log)
    async def main():
        env = AsyncOpenReward(api_key="").environments.get("myenvironment", base_url=url)
        task = (await env.list_tasks("train"))[0]
        sessions = [env.session(task) for _ in range(3)]
        for s in sessions:
            await s.__aenter__()
            await s.call_tool("bash", {"command": "nohup sleep 600 >/dev/null 2>&1 & echo started"})
        return sessions
    try: asyncio.run(main())  # the sessions are never closed by the client: the server must clean up
    except BaseException:
        proc.kill(); raise
    uids = [int(e[2]) for e in events(log) if e[0] == "sandbox"]
    assert len(uids) == 3 and all(processes_of(u) for u in uids)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) is not None
    assert sorted(e[0] for e in events(log)).count("stopped") == 3  # teardown ran for each open session
    assert leftovers(root, uids) == {"processes": [], "cgroups": [], "dirs": []}
    shutil.rmtree(root, ignore_errors=True)
