"""`GET /metrics` (issue 17) against real uvicorn on 127.0.0.1: the page parses, and its counters move as sessions,
calls and errors happen. The server is `tests/fixtures/serve_metrics.py` in a subprocess."""
from __future__ import annotations

import importlib.util, json, sys, time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import serve_subprocess
from openreward.metrics import parse_text

SCRIPT = Path(__file__).resolve().parent/"fixtures"/"serve_metrics.py"
KEY = "metrics-test-key-0123456789"

@contextmanager
def served(**server_kwargs):
    with serve_subprocess(sys.executable, SCRIPT, json.dumps(server_kwargs)) as (url, proc):
        with httpx.Client(base_url=url, timeout=30) as c: yield c

def scrape(c: httpx.Client, **headers: str):
    r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_text(r.text)

def call(c: httpx.Client, sid: str, name: str, headers: dict | None = None) -> str:
    r = c.post("/gauges/call", headers={"X-Session-ID": sid} | (headers or {}), json={"name": name, "input": {}})
    assert r.status_code == 200, r.text
    return r.text

def until(check, timeout: float = 20.0) -> None:
    "Wait (bounded) until `check()` is true."
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)

def test_counters_move_with_sessions_calls_and_errors():
    with served(session_ttl=1.0, reap_interval=0.2) as c:
        m = scrape(c)
        assert m.value("openreward_sessions_open") == 0 and m.value("openreward_sessions_created_total") == 0
        assert m.types["openreward_call_duration_seconds"] == "histogram"
        assert m.value("openreward_user_threads_size", pool="sessions") == 32
        assert abs(m.value("process_start_time_seconds") - time.time()) < 3600
        from openreward import __version__
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"  # uvicorn's loop="auto" takes uvloop if it can
        assert m.value("openreward_info", version=__version__, loop=loop) == 1
        for sid in ("a", "b"):
            assert c.post("/create", headers={"X-Session-ID": sid}, json={"env_name": "gauges", "task_spec": {"id": sid}}).status_code == 200
        for _ in range(3): assert '"ok":true' in call(c, "a", "answer")
        assert "event: error" in call(c, "a", "boom")
        assert '"ok":false' in call(c, "a", "no_such_tool")
        assert c.post("/ping", headers={"X-Session-ID": "nobody"}).status_code == 404
        m = scrape(c)
        assert m.value("openreward_sessions_open") == 2 and m.value("openreward_sessions_created_total") == 2
        assert m.value("openreward_call_duration_seconds_count", env="gauges", tool="answer") == 3
        assert m.value("openreward_call_duration_seconds_bucket", env="gauges", tool="answer", le="+Inf") == 3
        assert m.value("openreward_call_duration_seconds_count", env="gauges", tool="unknown") == 1  # not the client's name
        assert not any(l.get("tool") == "no_such_tool" for _, l, _ in m.samples)
        assert m.value("openreward_call_errors_total", reason="raised") == 1
        assert m.value("openreward_call_errors_total", reason="rejected") == 1
        assert m.value("openreward_http_errors_total", status="404") == 1
        # a call in flight, then cancelled by /delete
        with httpx.Client(base_url=str(c.base_url), timeout=30) as other:
            with other.stream("POST", "/gauges/call", headers={"X-Session-ID": "b"}, json={"name": "wait", "input": {}}) as r:
                until(lambda: scrape(c).value("openreward_calls_in_flight") == 1)
                assert c.post("/delete", headers={"X-Session-ID": "b"}).status_code == 200
                assert "cancelled" in r.read().decode()
        m = scrape(c)
        assert m.value("openreward_calls_in_flight") == 0
        assert m.value("openreward_call_errors_total", reason="cancelled") == 1
        assert m.value("openreward_sessions_ended_total", reason="deleted") == 1
        until(lambda: scrape(c).value("openreward_sessions_ended_total", reason="expired") == 1)  # "a" left untouched
        assert scrape(c).value("openreward_sessions_open") == 0

def test_busy_user_threads_are_visible():
    with served(user_threads=4) as c:
        sids = ["h1", "h2"]  # one call each: a session's calls of a non-concurrent tool take turns
        for sid in sids:
            assert c.post("/create", headers={"X-Session-ID": sid}, json={"env_name": "gauges", "task_spec": {"id": sid}}).status_code == 200
        streams = [httpx.Client(base_url=str(c.base_url), timeout=30) for _ in sids]
        try:
            for s, sid in zip(streams, sids):
                s.send(s.build_request("POST", "/gauges/call", headers={"X-Session-ID": sid}, json={"name": "hold", "input": {}}), stream=True)
            until(lambda: scrape(c).value("openreward_user_threads", pool="sessions", state="busy") == 2)
            m = scrape(c)
            assert m.value("openreward_user_threads_size", pool="sessions") == 4
            assert m.value("openreward_user_threads", pool="sessions", state="alive") >= 2
            for sid in sids: assert c.post("/delete", headers={"X-Session-ID": sid}).status_code == 200  # held calls abandoned
            m = scrape(c)
            assert m.value("openreward_user_calls_abandoned_total", pool="sessions") == 2
            assert m.value("openreward_user_threads", pool="sessions", state="abandoned") == 2
        finally:
            for s in streams: s.close()

def test_behind_the_api_key_or_a_bearer_token():
    with served(api_key=KEY) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and "bearer" in r.json()["detail"]
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert scrape(c, **{"X-API-Key": KEY}).value("openreward_sessions_open") == 0
        m = scrape(c, Authorization=f"Bearer {KEY}")
        assert m.value("openreward_http_errors_total", status="401") == 2
        assert KEY not in c.get("/metrics", headers={"X-API-Key": KEY}).text

def test_public_or_off():
    with served(api_key=KEY, metrics="public") as c:
        assert scrape(c).value("openreward_sessions_open") == 0
    with served(metrics=False) as c:
        assert c.get("/metrics").status_code == 404
        assert "/metrics" not in c.get("/openapi.json").json()["paths"]

def test_prometheus_client_reads_the_page():
    parser = pytest.importorskip("prometheus_client.parser")  # an independent reading, where it is installed
    with served() as c:
        assert c.post("/create", headers={"X-Session-ID": "p"}, json={"env_name": "gauges", "task_spec": {"id": "p"}}).status_code == 200
        call(c, "p", "answer")
        fams = {f.name: f for f in parser.text_string_to_metric_families(c.get("/metrics").text)}
        assert fams["openreward_call_duration_seconds"].type == "histogram"
        assert fams["openreward_sessions_created"].type == "counter"  # the parser drops the _total suffix
        assert [s.value for s in fams["openreward_sessions_open"].samples] == [1.0]
