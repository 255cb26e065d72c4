"""Session lifecycle of our client against a recording ORS server on real uvicorn: the exact request sequence and
headers, keepalive pings, and clean-up (`/delete` then `/delete_session`) on every way out of a session."""
import asyncio, base64, json, sys, time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent/"fixtures"))
from fake_ors_server import FakeORS, serve_in_thread

from openreward import AsyncOpenReward, OpenReward, __version__
from openreward.api.environments.types import Task
from openreward.errors import SessionResponseError, SessionTerminatedError, ToolFailed

TASK = Task(server_name="fake", environment_name="fake", task_spec={"id": "t0"}, namespace=None)

@pytest.fixture
def fake():
    f = FakeORS()
    with serve_in_thread(f.app) as url:
        f.url = url
        yield f

def wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline: return False
        time.sleep(0.02)
    return True

def test_request_sequence_and_headers(fake):
    client = OpenReward(api_key="sk-test", ping_interval=60)
    env = client.environments.get("acme/fake", base_url=fake.url)
    with env.session(TASK, secrets={"OPENAI_API_KEY": "sk-openai"}) as s:
        s.get_prompt()
        s.call_tool("count", {})
        sid = s.sid
    assert wait_for(lambda: "/delete_session" in fake.paths(sid))
    first = fake.log[0]
    assert first["path"] == "/create_session" and "x-session-id" not in first["headers"] and first["body"] == {}
    assert first["headers"]["x-deployment"] == "acme/fake" and "x-secrets" in first["headers"]
    seq = [p for p in fake.paths(sid) if p != "/ping"]
    assert seq == ["/create", "/prompt", "/call", "/delete", "/delete_session"]
    assert fake.paths(sid).count("/ping") == 1  # the first ping goes out right after /create
    by_path = {r["path"]: r for r in fake.log if r["headers"].get("x-session-id") == sid}
    for path, r in by_path.items():
        h = r["headers"]
        assert h["user-agent"] == f"openreward-sdk/{__version__}" and h["x-api-key"] == "sk-test"
        assert ("x-deployment" in h) == (path not in ("/delete", "/delete_session")), path
        assert ("x-secrets" in h) == (path == "/create"), path
    assert by_path["/create"]["headers"]["x-deployment"] == "acme/fake"
    assert by_path["/create"]["body"] == {"task_spec": {"id": "t0"}, "env_name": "fake"}
    assert by_path["/call"]["body"] == {"name": "count", "input": {}}
    assert by_path["/call"]["headers"]["accept"] == "text/event-stream"
    secrets = json.loads(base64.b64decode(by_path["/create"]["headers"]["x-secrets"]))
    assert secrets["OPENAI_API_KEY"] == {"value": "sk-openai", "allowed_domains": ["api.openai.com"]}
    assert secrets["api_key"]["value"] == secrets["OPENREWARD_API_KEY"]["value"] == "sk-test"

def test_sync_cleanup_on_exception_and_interrupt(fake):
    env = OpenReward(ping_interval=60).environments.get("fake", base_url=fake.url)
    for exc in (ValueError("agent bug"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with env.session(TASK) as s:
                sid = s.sid
                raise exc
        assert fake.paths(sid)[-2:] == ["/delete", "/delete_session"]
        assert sid not in fake.sessions

def test_async_cleanup_on_exception(fake):
    async def main():
        env = AsyncOpenReward(ping_interval=60).environments.get("fake", base_url=fake.url)
        with pytest.raises(ValueError):
            async with env.session(TASK) as s:
                main.sid = s.sid
                raise ValueError("agent bug")
    asyncio.run(main())
    assert fake.paths(main.sid)[-2:] == ["/delete", "/delete_session"]

def test_async_cleanup_on_cancel(fake):
    "Cancelling a task in the middle of a tool call still deletes the session on the server."
    async def main():
        env = AsyncOpenReward(ping_interval=60).environments.get("fake", base_url=fake.url)
        opened = asyncio.Event()
        async def agent():
            async with env.session(TASK) as s:
                main.sid = s.sid
                opened.set()
                await s.call_tool("slow", {"seconds": 30})
        task = asyncio.create_task(agent())
        await opened.wait()
        await asyncio.sleep(0.3)  # the call is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError): await task
        return time.monotonic()
    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 10  # did not wait for the 30 s tool
    assert fake.paths(main.sid)[-2:] == ["/delete", "/delete_session"]

def test_async_cleanup_on_timeout(fake):
    "asyncio.timeout around a session: the timeout propagates as TimeoutError and the session is deleted."
    async def main():
        env = AsyncOpenReward(ping_interval=60).environments.get("fake", base_url=fake.url)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async with env.session(TASK) as s:
                    main.sid = s.sid
                    await s.call_tool("slow", {"seconds": 30})
    asyncio.run(main())
    assert fake.paths(main.sid)[-2:] == ["/delete", "/delete_session"]

def test_failed_create_still_cleans_up(fake):
    fake.fail["/create"] = [(400, {})]
    env = OpenReward().environments.get("fake", base_url=fake.url)
    with pytest.raises(SessionResponseError, match="canned 400") as e:
        with env.session(TASK): pass
    assert e.value.status == 400
    sid = fake.log[1]["headers"]["x-session-id"]
    assert fake.paths(sid) == ["/create", "/delete", "/delete_session"]

def test_pings_while_open_and_stop_on_exit(fake):
    env = OpenReward(ping_interval=0.1).environments.get("fake", base_url=fake.url)
    with env.session(TASK) as s:
        time.sleep(0.65)
        sid = s.sid
    pings = fake.paths(sid).count("/ping")
    assert 4 <= pings <= 9, pings
    time.sleep(0.3)
    assert fake.paths(sid).count("/ping") == pings  # the pinger stopped with the session

def test_async_pings(fake):
    async def main():
        env = AsyncOpenReward(ping_interval=0.1).environments.get("fake", base_url=fake.url)
        async with env.session(TASK) as s:
            await asyncio.sleep(0.65)
            return s.sid
    sid = asyncio.run(main())
    assert 4 <= fake.paths(sid).count("/ping") <= 9

def test_lost_session_detected_by_ping(fake):
    env = OpenReward(ping_interval=0.05).environments.get("fake", base_url=fake.url)
    with env.session(TASK) as s:
        fake.dead_pings.add(s.sid)
        assert wait_for(lambda: s._core.dead is not None)
        with pytest.raises(SessionTerminatedError, match="Active environment not found"): s.call_tool("count")

def test_tool_failure_kills_session_and_deletes_eagerly(fake):
    env = OpenReward(ping_interval=60).environments.get("fake", base_url=fake.url)
    with env.session(TASK) as s:
        with pytest.raises(ToolFailed, match="the tool raised: on purpose"): s.call_tool("raise")
        assert fake.paths(s.sid)[-1] == "/delete"  # freed at once, not at exit
        with pytest.raises(SessionTerminatedError): s.call_tool("count")
        sid = s.sid
    assert fake.paths(sid).count("/delete") == 1 and fake.paths(sid)[-1] == "/delete_session"
