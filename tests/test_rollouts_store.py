"""The rollout store under load and failure: many threads, several processes, a process killed mid-run, and a platform
that goes down mid-run, refuses batches, or answers 5xx — nothing committed is lost, nothing is reordered."""
from __future__ import annotations

import json, os, signal, sqlite3, subprocess, sys, textwrap, threading, time
from pathlib import Path

import pytest

from conftest import FIXTURES, free_port, subprocess_env
from openreward import OpenReward, ToolResult, UserMessage
from openreward.demo import serve_in_thread
from openreward.rollout_store import RolloutStore, SendLoopConfig
from openreward.rollouts import RolloutAPI

sys.path.insert(0, str(FIXTURES))
from fake_platform import FakePlatform, events_of  # noqa: E402

@pytest.fixture
def db(tmp_path) -> str: return str(tmp_path/"rollouts.sqlite3")

def uploading_api(db: str, url: str, **kw) -> RolloutAPI:
    return RolloutAPI(SendLoopConfig(api_key="sk-test", base_url=url), store=db, user_agent="openreward-sdk/test", **kw)

def message_ids(platform: FakePlatform) -> list[str]:
    return [e["eventId"] for e in events_of(platform.requests) if e["eventType"] == "message"]

# ---------------------------------------------------------------------------------------------------------------
# Threads and processes
# ---------------------------------------------------------------------------------------------------------------

def test_100_threads_x_1000_events_no_loss_no_reordering(db):
    api = RolloutAPI(store=db, upload=False)
    rollouts = [api.create("threads", rollout_name=f"t{k}") for k in range(100)]
    shared = api.create("threads", rollout_name="shared")
    def work(k: int) -> None:
        for i in range(1000):
            rollouts[k].log(UserMessage(f"{k}:{i}"), reward=float(i))
            if i % 100 == 0: shared.log(UserMessage(f"{k}:{i}"))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(100)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert api.flush(timeout=120)
    for k in (0, 41, 99):  # spot checks through the public reader ...
        got = api.get_rollout(rollouts[k].event_id).messages
        assert [m.index for m in got] == list(range(1000)) and [m.content for m in got] == [f"{k}:{i}" for i in range(1000)]
    con = sqlite3.connect(db)  # ... and every row, straight from the table
    rows = con.execute("SELECT rollout_id, idx, body FROM events ORDER BY seq").fetchall()
    assert len(rows) == 100 * 1000 + 100 * 10
    by: dict[str, list] = {}
    for rid, idx, body in rows: by.setdefault(rid, []).append((idx, json.loads(body)["content"]))
    for k, r in enumerate(rollouts): assert by[r.event_id] == [(i, f"{k}:{i}") for i in range(1000)]
    mixed = by[shared.event_id]
    assert [i for i, _ in mixed] == list(range(1000))
    for k in range(100): assert [c for _, c in mixed if c.startswith(f"{k}:")] == [f"{k}:{i}" for i in range(0, 1000, 100)]
    summary = {s.rollout_name: s for s in api.list_rollouts(run="threads")}
    assert summary["t7"].messages == 1000 and summary["t7"].total_reward == sum(range(1000))
    api.close()

WRITER = textwrap.dedent("""
    import sys
    from openreward.rollouts import RolloutAPI, UserMessage
    db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    api = RolloutAPI(store=db, upload=False)
    r = api.create("procs", rollout_name=name)
    for i in range(n):
        r.log(UserMessage(f"{name}:{i}"))
        if i % 97 == 0: api.flush()
    api.close()
""")

def test_several_processes_write_one_store(db, tmp_path):
    script = tmp_path/"writer.py"; script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), db, f"p{k}", "3000"], env=subprocess_env()) for k in range(4)]
    for p in procs: assert p.wait(120) == 0
    store = RolloutStore(db)
    got = {s.rollout_name: s for s in store.list_rollouts(run="procs")}
    assert sorted(got) == ["p0", "p1", "p2", "p3"]
    for name, s in got.items():
        assert [m.content for m in store.get_rollout(s.id).messages] == [f"{name}:{i}" for i in range(3000)]

KILLED = textwrap.dedent("""
    import sys
    from openreward.rollouts import RolloutAPI, UserMessage
    api = RolloutAPI(store=sys.argv[1], upload=False)
    r = api.create("killed", rollout_id="00000000-0000-4000-8000-00000000dead")
    i = 0
    while True:
        r.log(UserMessage(str(i))); i += 1
        if i % 50 == 0:
            api.flush()
            print(i, flush=True)  # everything up to i is durable now
""")

def test_a_process_killed_mid_run_keeps_everything_flushed(db, tmp_path):
    script = tmp_path/"killed.py"; script.write_text(KILLED)
    p = subprocess.Popen([sys.executable, str(script), db], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    flushed = 0
    try:
        for line in p.stdout:
            flushed = int(line)
            if flushed >= 2000: break
    finally:
        p.send_signal(signal.SIGKILL); p.wait(30)
    assert flushed >= 2000
    got = RolloutStore(db).get_rollout("00000000-0000-4000-8000-00000000dead").messages
    # the documented guarantee: everything flushed survives; what was logged after the last flush may or may not
    assert len(got) >= flushed
    assert [m.content for m in got] == [str(i) for i in range(len(got))]  # a gap-free prefix, in order

# ---------------------------------------------------------------------------------------------------------------
# Upload failures
# ---------------------------------------------------------------------------------------------------------------

def test_platform_down_mid_run_every_event_arrives_after(db):
    platform, port = FakePlatform(), free_port()
    api = uploading_api(db, f"http://127.0.0.1:{port}")
    r = api.create("outage", environment="acme/arith")
    with serve_in_thread(platform.app, port=port):
        for i in range(400): r.log(UserMessage(f"before {i}"))
        assert api.sync(timeout=60)
    before = len(message_ids(platform))
    assert before == 400
    for i in range(600): r.log(UserMessage(f"during {i}"))  # the platform is down: these wait in the store
    assert api.sync(timeout=3) is False
    assert api.list_rollouts(run="outage")[0].upload == "waiting"
    with serve_in_thread(platform.app, port=port):  # back on the same address
        for i in range(100): r.log(UserMessage(f"after {i}"))
        assert api.sync(timeout=90)
        api.close()
    ids = message_ids(platform)
    logged = [m.event_id for m in api.get_rollout(r.event_id).messages]
    assert len(logged) == 1100 and sorted(ids) == sorted(logged) and len(set(ids)) == len(ids)
    assert api.get_rollout(r.event_id).upload == "sent"
    # the environment id looked up while the platform was up is on every message
    assert {e.get("environment_id") for e in events_of(platform.requests)} == {"env-123"}

def test_left_waiting_by_one_process_uploaded_by_the_next(db):
    platform, port = FakePlatform(), free_port()
    first = uploading_api(db, f"http://127.0.0.1:{port}", shutdown_timeout=0.5)
    r = first.create("handover")
    for i in range(50): r.log(UserMessage(str(i)))
    first.close()  # nothing listens: the events stay in the store
    with serve_in_thread(platform.app, port=port):
        second = uploading_api(db, f"http://127.0.0.1:{port}")
        assert second.sync(timeout=60)
        second.close()
    assert sorted(message_ids(platform)) == sorted(m.event_id for m in RolloutStore(db).get_rollout(r.event_id).messages)

def test_5xx_is_retried_4xx_is_kept_as_rejected(db, caplog):
    platform = FakePlatform()
    with serve_in_thread(platform.app) as url:
        api = uploading_api(db, url)
        platform.fail = [500, 503, 429]
        r = api.create("flaky")
        for i in range(10): r.log(ToolResult(content=str(i), call_id="c"), reward=1.0)
        assert api.sync(timeout=60)
        assert len(message_ids(platform)) == 10 and api.get_rollout(r.event_id).upload == "sent"
        platform.reject = 400
        bad = api.create("refused")
        bad.log(UserMessage("kept anyway"))
        api.sync(timeout=30)
        assert api.get_rollout(bad.event_id).upload == "rejected"
        assert [m.content for m in api.get_rollout(bad.event_id).messages] == ["kept anyway"]
        assert "rejected rollout" in caplog.text
        api.close()

def test_client_close_flushes_and_uploads(tmp_path, monkeypatch):
    platform = FakePlatform()
    monkeypatch.setenv("OPENREWARD_ROLLOUTS_DB", str(tmp_path/"r.sqlite3"))
    with serve_in_thread(platform.app) as url:
        monkeypatch.setenv("OPENREWARD_API_URL", url)
        client = OpenReward(api_key="sk-close")
        r = client.rollout.create("closing")
        for i in range(5): r.log(UserMessage(str(i)))
        client.close()
    assert len(message_ids(platform)) == 5
    assert [h for h in platform.requests[0]["headers"] if h[0] == "x-api-key"] == [["x-api-key", "sk-close"]]

def test_export_jsonl_in_provider_format(db, tmp_path):
    api = RolloutAPI(store=db, upload=False)
    r = api.create("sft")
    r.log_openai_completions({"role": "user", "content": "2+2?"})
    r.log_openai_completions({"role": "assistant", "content": "Let me add.", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"x": 2, "y": 2}'}}]})
    r.log_openai_completions({"role": "tool", "tool_call_id": "a", "content": "4"}, reward=1.0, is_finished=True)
    out = tmp_path/"sft.jsonl"
    assert api.export_jsonl(out, run="sft", format="openai") == 1
    line = json.loads(out.read_text())
    assert [m["role"] for m in line["messages"]] == ["user", "assistant", "tool"]
    assert line["messages"][1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"x": 2, "y": 2}'}
    assert line["metadata"]["total_reward"] == 1.0
    assert api.export_jsonl(tmp_path/"all.jsonl") == 1
    whole = json.loads((tmp_path/"all.jsonl").read_text())
    assert [m["type"] for m in whole["messages"]] == ["user_message", "assistant_message", "tool_call", "tool_result"]
    api.close()

EXITING = textwrap.dedent("""
    import sys
    from openreward.rollouts import RolloutAPI, UserMessage
    r = RolloutAPI(store=sys.argv[1], upload=False).create("exiting", rollout_id="00000000-0000-4000-8000-0000000e0f00")
    for i in range(5000): r.log(UserMessage(str(i)))
    # no flush, no close: the interpreter's exit must commit what is queued
""")

def test_exit_without_flush_or_close_loses_nothing(db, tmp_path):
    script = tmp_path/"exiting.py"; script.write_text(EXITING)
    subprocess.run([sys.executable, str(script), db], check=True, env=subprocess_env(), timeout=120)
    assert len(RolloutStore(db).get_rollout("00000000-0000-4000-8000-0000000e0f00").messages) == 5000

def test_two_uploaders_share_the_waiting_events_without_duplicates(db):
    platform, port = FakePlatform(), free_port()
    url = f"http://127.0.0.1:{port}"
    first = uploading_api(db, url, shutdown_timeout=0.2)
    rs = [first.create("shared", rollout_name=str(k)) for k in range(5)]
    for i in range(3000): rs[i % 5].log(UserMessage(str(i)))
    first.close()  # the platform is down: 5 starts and 3000 messages wait
    with serve_in_thread(platform.app, port=port):
        a, b = uploading_api(db, url), uploading_api(db, url)
        done = []
        threads = [threading.Thread(target=lambda api=api: done.append(api.sync(timeout=90))) for api in (a, b)]
        for t in threads: t.start()
        for t in threads: t.join()
        a.close(); b.close()
    assert done == [True, True]
    ids = message_ids(platform)
    assert len(ids) == 3000 and len(set(ids)) == 3000
    starts = [e for e in events_of(platform.requests) if e["eventType"] == "rollout"]
    assert len(starts) == 5
    assert a.uploader.sent + b.uploader.sent == 3000  # each event counted once, by whichever uploader claimed it
