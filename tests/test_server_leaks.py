"""Our server leaks nothing: after thousands of sessions, after idle expiry and after shutdown, the session table and
the call registry are empty and every environment's `teardown()` ran exactly once.

The environments below count their constructions and teardowns; the server runs in-process (httpx.ASGITransport)
with its ASGI lifespan, and with short timeouts so that expiry happens within the test.
"""
import asyncio, collections, contextlib, json, random

import httpx
import pytest
from pydantic import BaseModel

from conftest import asgi_lifespan
from openreward.environments import Environment, Server, TextBlock, ToolOutput, tool

pytestmark = pytest.mark.anyio

class SleepParams(BaseModel):
    seconds: float = 0.0

class Tracked(Environment):
    "Counts every instance and every teardown, keyed by instance number."
    created: list[int] = []
    torn: collections.Counter = collections.Counter()

    def __init__(self, task_spec: dict = {}, secrets: dict[str, str] = {}):
        super().__init__(task_spec)
        self.key = len(Tracked.created)
        Tracked.created.append(self.key)

    @classmethod
    def list_splits(cls): return ["train"]

    @classmethod
    def list_tasks(cls, split: str): return [{"id": str(i)} for i in range(3)]

    def get_prompt(self): return [TextBlock(text="go")]

    def teardown(self): Tracked.torn[self.key] += 1

    @tool
    def poke(self) -> ToolOutput:
        "Answer at once."
        return ToolOutput(blocks=[TextBlock(text="ok")])

    @tool
    def boom(self) -> ToolOutput:
        "Raise."
        raise RuntimeError("boom")

    @tool
    def done(self) -> ToolOutput:
        "End the episode."
        return ToolOutput(blocks=[TextBlock(text="done")], finished=True, reward=1.0)

    @tool
    async def nap(self, params: SleepParams) -> ToolOutput:
        "Sleep a little."
        await asyncio.sleep(params.seconds)
        return ToolOutput(blocks=[TextBlock(text="rested")])

class AsyncTracked(Tracked):
    "The same, with an async teardown."
    async def teardown(self):
        await asyncio.sleep(0)
        Tracked.torn[self.key] += 1

@pytest.fixture(autouse=True)
def reset_counts():
    Tracked.created.clear(); Tracked.torn.clear()

@contextlib.asynccontextmanager
async def serving(**opts):
    server = Server([Tracked, AsyncTracked], **opts)
    async with asgi_lifespan(server.app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://leaks") as c:
            yield server, c

def assert_all_torn_down_once():
    assert Tracked.created, "no environment was constructed"
    assert set(Tracked.torn) == set(Tracked.created), \
        f"{len(set(Tracked.created) - set(Tracked.torn))} of {len(Tracked.created)} sessions never torn down"
    twice = {k: n for k, n in Tracked.torn.items() if n != 1}
    assert not twice, f"teardown ran more than once: {dict(list(twice.items())[:5])}"

async def episode(c: httpx.AsyncClient, i: int, rng: random.Random) -> None:
    "One session with a random mix of what clients do, including the awkward parts."
    sid = {"X-Session-ID": f"leak-{i}"}
    env = rng.choice(["tracked", "asynctracked"])
    r = await c.post("/create", headers=sid, json={"env_name": env, "split": "train", "index": i % 3})
    assert r.status_code == 200, r.text
    assert (await c.get(f"/{env}/prompt", headers=sid)).status_code == 200
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(["poke", "poke", "boom", "done", "nope", "nap"])
        body = {"name": name, "input": {"seconds": 0.001} if name == "nap" else {}}
        r = await c.post(f"/{env}/call", headers=sid, json=body)
        assert r.status_code == 200
    if rng.random() < 0.1:  # delete while a call is still running: the call finishes, the session stays gone
        running = asyncio.ensure_future(c.post(f"/{env}/call", headers=sid, json={"name": "nap", "input": {"seconds": 0.01}}))
        await asyncio.sleep(0)
        await c.post("/delete", headers=sid)
        assert (await running).status_code in (200, 404, 410)
    assert (await c.post("/delete", headers=sid)).json() == {"sid": sid["X-Session-ID"]}
    if rng.random() < 0.2: assert (await c.post("/delete", headers=sid)).status_code == 200   # idempotent

async def test_thousands_of_sessions_leave_nothing_behind():
    rng = random.Random(1234)
    async with serving(result_ttl=0.5) as (server, c):
        for start in range(0, 2000, 50):
            await asyncio.gather(*(episode(c, i, rng) for i in range(start, start + 50)))
        assert server.sessions == {}
        assert len(Tracked.created) == 2000
        assert_all_torn_down_once()
        assert server.calls.calls, "calls were made, so recent results should still be held for re-attach"
        await asyncio.sleep(0.6)  # past result_ttl
        # The registry forgets expired results when it is next used: one more call leaves only its own result.
        sid = {"X-Session-ID": "after"}
        await c.post("/create", headers=sid, json={"env_name": "tracked", "task_spec": {}})
        r = await c.post("/tracked/call", headers=sid, json={"name": "poke", "input": {}})
        assert r.status_code == 200 and '"ok":true' in r.text
        assert len(server.calls.calls) == 1, f"{len(server.calls.calls) - 1} results outlived their TTL"
        assert len(server.calls.finished) == 1
        await c.post("/delete", headers=sid)
        assert server.sessions == {}
    assert_all_torn_down_once()

async def test_idle_sessions_expire_with_one_teardown_each():
    async with serving(session_ttl=1.0, reap_interval=0.05) as (server, c):
        for i in range(200):
            env = ["tracked", "asynctracked"][i % 2]
            r = await c.post("/create", headers={"X-Session-ID": f"idle-{i}"}, json={"env_name": env, "task_spec": {}})
            assert r.status_code == 200
        keep = {"X-Session-ID": "idle-199"}  # the newest
        for i in range(600):  # pings keep it alive well past the TTL, while the others expire (one teardown at a time: bounded, 60 s)
            await asyncio.sleep(0.1)
            assert (await c.post("/ping", headers=keep)).status_code == 200
            if i >= 24 and list(server.sessions) == ["idle-199"]: break
        assert list(server.sessions) == ["idle-199"]
        for _ in range(100):
            if not server.sessions: break
            await asyncio.sleep(0.05)
        assert server.sessions == {}
        assert (await c.post("/ping", headers=keep)).status_code == 404
        assert (await c.post("/delete", headers=keep)).status_code == 200  # deleting an expired session is harmless
        # a session leaves the table first, then its teardown runs: wait (bounded) for the last ones, under load too
        for _ in range(600):
            if set(Tracked.torn) == set(Tracked.created): break
            await asyncio.sleep(0.05)
        assert_all_torn_down_once()
        assert len(Tracked.created) == 200

async def test_shutdown_tears_down_the_remaining_sessions_once():
    async with serving() as (server, c):
        for i in range(100):
            assert (await c.post("/create", headers={"X-Session-ID": f"left-{i}"},
                                 json={"env_name": "asynctracked" if i % 2 else "tracked", "task_spec": {}})).status_code == 200
        for i in range(0, 100, 3): await c.post("/delete", headers={"X-Session-ID": f"left-{i}"})
        assert len(server.sessions) == 100 - len(range(0, 100, 3))
    assert server.sessions == {}
    assert_all_torn_down_once()

async def test_delete_racing_expiry_tears_down_once():
    rng = random.Random(99)
    async with serving(session_ttl=0.05, reap_interval=0.01) as (server, c):
        for i in range(150):
            sid = {"X-Session-ID": f"race-{i}"}
            assert (await c.post("/create", headers=sid, json={"env_name": "tracked", "task_spec": {}})).status_code == 200
            await asyncio.sleep(rng.random() * 0.06)
            await asyncio.gather(c.post("/delete", headers=sid), c.post("/delete", headers=sid))
        await asyncio.sleep(0.2)
        assert server.sessions == {}
    assert_all_torn_down_once()
