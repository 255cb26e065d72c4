"""Retries and stream recovery of our client against a scriptable ORS server on real uvicorn: transient statuses
(429/502/503/504, Retry-After, a backend still starting), streams dropped halfway and re-attached by task id,
silent streams (heartbeat timeout)."""
import asyncio, time

import pytest

from openreward import AsyncOpenReward, OpenReward
from openreward.api.environments.types import Task
from openreward.client import RetryPolicy
from openreward.errors import HeartbeatTimeoutError, SessionResponseError, TransportError

TASK = Task(server_name="fake", environment_name="fake", task_spec={"id": "t0"}, namespace=None)
FAST = RetryPolicy(backoff=0.01, stream_backoff=0.01)

@pytest.fixture(autouse=True)
def fresh(fake):
    fake.fail.clear(); fake.counts.clear()

def env(fake, **kw):
    return OpenReward(ping_interval=60, retry=kw.pop("retry", FAST), **kw).environments.get("fake", base_url=fake.url)

def test_transient_statuses_are_retried(fake):
    fake.fail["/prompt"] = [(503, {}), (502, {}), ]
    with env(fake).session(TASK) as s:
        n0 = fake.paths(s.sid).count("/prompt")
        assert s.get_prompt()[0].text == "Say hello."
        assert fake.paths(s.sid).count("/prompt") - n0 == 3

def test_retry_after_is_honoured(fake):
    fake.fail["/prompt"] = [(429, {"Retry-After": "1"})]
    with env(fake).session(TASK) as s:
        t0 = time.monotonic()
        s.get_prompt()
        assert 0.9 <= time.monotonic() - t0 < 5

def test_500_is_not_retried_and_budget_is_bounded(fake):
    with env(fake).session(TASK) as s:
        fake.fail["/prompt"] = [(500, {})]
        with pytest.raises(SessionResponseError, match="canned 500") as e: s.get_prompt()
        assert e.value.status == 500 and fake.paths(s.sid).count("/prompt") == 1
        fake.fail["/prompt"] = [(504, {})] * 5
        with pytest.raises(SessionResponseError) as e: s.get_prompt()
        assert e.value.status == 504 and fake.paths(s.sid).count("/prompt") == 4  # 3 attempts
        fake.fail["/prompt"].clear()

def test_starting_backend_is_ridden_out(fake, monkeypatch):
    "503 + X-Backend-State: starting is retried past the attempt count, until OPENREWARD_STARTING_RIDE_OUT_S."
    starting = (503, {"Retry-After": "0", "X-Backend-State": "starting"})
    fake.fail["/create_session"] = [starting] * 6
    with env(fake).session(TASK) as s:
        assert s.sid
    assert not fake.fail["/create_session"]
    monkeypatch.setenv("OPENREWARD_STARTING_RIDE_OUT_S", "0")
    fake.fail["/prompt"] = [starting] * 6
    with env(fake).session(TASK) as s:
        with pytest.raises(SessionResponseError) as e: s.get_prompt()
        assert e.value.status == 503 and e.value.backend_starting
    fake.fail["/prompt"].clear()

def test_dropped_stream_reattaches_by_task_id(fake):
    with env(fake).session(TASK) as s:
        out = s.call_tool("drop")
        calls = [r for r in fake.log if r["path"] == "/call" and r["headers"].get("x-session-id") == s.sid]
    assert out.blocks[0].text == "drop #1" and out.metadata == {"resumed": True}
    assert fake.counts["drop"] == 1  # the tool ran once
    assert len(calls) == 2 and "task_id" not in calls[0]["body"]
    assert calls[1]["body"] == {"name": "drop", "input": {}, "task_id": fake.task_ids[-1]}

def test_silent_stream_times_out_then_reattaches(fake):
    with env(fake, heartbeat_timeout=0.5).session(TASK) as s:
        t0 = time.monotonic()
        out = s.call_tool("silent")
        assert 0.4 < time.monotonic() - t0 < 5
    assert out.metadata == {"resumed": True} and fake.counts["silent"] == 1

def test_always_silent_stream_raises_heartbeat_timeout(fake):
    policy = RetryPolicy(stream_backoff=0.01, call_retries=2)
    with env(fake, heartbeat_timeout=0.3, retry=policy).session(TASK) as s:
        with pytest.raises(HeartbeatTimeoutError, match="no data for 0.3 s"): s.call_tool("mute")
        assert [r["path"] for r in fake.log if r["headers"].get("x-session-id") == s.sid].count("/call") == 3

def test_call_is_not_resent_when_it_may_have_run(fake):
    "A /call whose stream broke before the task id arrived is not re-sent (it may have run); a refused one is."
    policy = RetryPolicy(stream_backoff=0.01)
    with env(fake, heartbeat_timeout=0.3, retry=policy).session(TASK) as s:
        with pytest.raises(TransportError, match="not retried, as it may have run"): s.call_tool("drop_early")
        assert fake.counts["drop_early"] == 1
        fake.fail["/call"] = [(503, {"Retry-After": "0"})]  # answered by the router: nothing ran, retried
        assert s.call_tool("count").blocks[0].text == "count #1"
    closed = OpenReward(ping_interval=60, retry=policy).environments.get("fake", base_url="http://127.0.0.1:9")
    with pytest.raises(TransportError, match="Exceeded 3 retries for /create_session"):
        with closed.session(TASK): pass

def test_async_dropped_stream_and_statuses(fake):
    async def main():
        client = AsyncOpenReward(ping_interval=60, retry=FAST)
        e = client.environments.get("fake", base_url=fake.url)
        fake.fail["/prompt"] = [(503, {}), (429, {"Retry-After": "0"})]
        async with e.session(TASK) as s:
            prompt = await s.get_prompt()
            outs = await asyncio.gather(*[s.call_tool("drop") for _ in range(3)])
        await client.aclose()
        return prompt, outs
    prompt, outs = asyncio.run(main())
    assert prompt[0].text == "Say hello." and all(o.metadata == {"resumed": True} for o in outs)
    assert fake.counts["drop"] == 3
