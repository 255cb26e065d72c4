"""Our ORS server on a real uvicorn (127.0.0.1, free port, subprocess stopped by PID): what in-process tests cannot see.

Incremental SSE delivery and keep-alive pings on the wire, a client that disconnects mid-call and re-attaches,
session expiry by the reaper, and shutdown by SIGTERM tearing down every open session exactly once. The served
environment (tests/fixtures/serve_lifecycle.py) appends "setup/teardown/run <id>" lines to a file.
"""
import base64, contextlib, json, re, signal, subprocess, sys, tempfile, time
from pathlib import Path

import httpx
import pytest

from conftest import FIXTURES, free_port, stop_process, subprocess_env

SCRIPT = FIXTURES/"serve_lifecycle.py"
PING = re.compile(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00\r\n\r\n")

@contextlib.contextmanager
def live_server(tmp: Path, use_run: bool = False, env: dict | None = None, **opts):
    "Start the lifecycle server; yield (base_url, proc, events_file, logs()); stop it by PID."
    events, out = tmp/"events.txt", open(tmp/"out.txt", "w+b")
    port = free_port()
    extra = dict(ORW_EVENTS=str(events), ORW_SERVER_OPTS=json.dumps(opts), ORW_USE_RUN="1" if use_run else "0", **(env or {}))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "127.0.0.1", str(port)], cwd=tmp, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=subprocess_env(**extra))
    def logs() -> str:
        out.flush(); out.seek(0)
        return out.read().decode(errors="replace")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"server exited early\n{logs()}"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            assert time.monotonic() < deadline, f"server did not start\n{logs()}"
            time.sleep(0.05)
        yield url, proc, events, logs
    finally:
        stop_process(proc)
        out.close()

def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []

def create(c: httpx.Client, sid: str, **spec) -> None:
    r = c.post("/create", headers={"X-Session-ID": sid}, json={"task_spec": {"id": sid, **spec}})
    assert r.status_code == 200, r.text

def events_of(raw: bytes) -> list[tuple[str, str]]:
    "(event, data) pairs of a CRLF event stream, comments skipped."
    out = []
    for block in raw.split(b"\r\n\r\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\r\n") if line and not line.startswith(b":"))
        if b"event" in fields: out.append((fields[b"event"].decode(), fields.get(b"data", b"").decode()))
    return out

@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="orw-live-") as d: yield Path(d)


def test_stream_arrives_incrementally_with_pings(tmp):
    with live_server(tmp, ping_interval=0.2) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        create(c, "s1")
        arrivals, raw = [], b""
        t0 = time.monotonic()
        with c.stream("POST", "/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "nap", "input": {"seconds": 2.0}}) as r:
            assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
            for chunk in r.iter_raw():
                arrivals.append((time.monotonic() - t0, chunk))
                raw += chunk
        first_at, first = arrivals[0]
        end_at = arrivals[-1][0]
        assert end_at >= 1.9 and arrivals[-1][1].startswith(b"event: end"), arrivals[-1]
        assert first.startswith(b"event: task_id\r\ndata: ") and b"event: end" not in first, arrivals[:2]  # sent at once, alone
        # while the tool ran (2 s), one every 0.2 s: counted by what came before the end event, not by the clock (load)
        pings = [t for t, chunk in arrivals[:-1] for _ in PING.finditer(chunk)]
        assert len(pings) >= 3, arrivals
        evs = events_of(raw)
        assert [e for e, _ in evs] == ["task_id", "end"] and json.loads(evs[1][1])["output"]["metadata"] == {"runs": 1}


def test_disconnected_client_reattaches_and_the_tool_runs_once(tmp):
    with live_server(tmp, ping_interval=0.2) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        create(c, "s1")
        with c.stream("POST", "/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "nap", "input": {"seconds": 0.8}}) as r:
            first = next(r.iter_raw())
        task_id = events_of(first)[0][1]   # the connection is closed here, long before the tool finishes
        assert re.fullmatch(r"[0-9a-f]{32}", task_id)
        t0 = time.monotonic()
        r = c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "nap", "input": {}, "task_id": task_id})
        evs = events_of(r.content)
        assert evs[0] == ("task_id", task_id) and evs[-1][0] == "end", evs
        assert json.loads(evs[-1][1])["output"]["metadata"] == {"runs": 1}
        assert time.monotonic() - t0 < 60  # bounded; that it waited for the running call, not started another, is runs == 1
        again = c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "nap", "input": {}, "task_id": task_id})
        assert events_of(again.content) == evs   # finished results stay available for re-attach
        assert [l for l in lines(events) if l.startswith("run")] == ["run s1 1"]
        unknown = c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "nap", "input": {}, "task_id": "f" * 32})
        assert events_of(unknown.content) == [("error", "unknown task_id")]


def test_finished_results_expire(tmp):
    with live_server(tmp, result_ttl=0.3) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        create(c, "s1")
        task_id = events_of(c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "echo", "input": {}}).content)[0][1]
        time.sleep(0.5)
        c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "echo", "input": {}})  # any new call purges
        r = c.post("/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": "echo", "input": {}, "task_id": task_id})
        assert events_of(r.content) == [("error", "unknown task_id")]


def test_idle_sessions_expire_and_are_torn_down_once(tmp):
    with live_server(tmp, session_ttl=0.6, reap_interval=0.1) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        create(c, "idle")
        create(c, "busy")
        for _ in range(10):   # keep "busy" alive with pings for 1 s
            assert c.post("/ping", headers={"X-Session-ID": "busy"}).status_code == 200
            time.sleep(0.1)
        assert c.post("/ping", headers={"X-Session-ID": "idle"}).status_code == 404
        assert c.post("/ping", headers={"X-Session-ID": "busy"}).status_code == 200
        assert lines(events).count("teardown idle") == 1 and "teardown busy" not in lines(events)
        time.sleep(1.0)
        assert c.post("/ping", headers={"X-Session-ID": "busy"}).status_code == 404
        assert sorted(l for l in lines(events) if l.startswith("teardown")) == ["teardown busy", "teardown idle"]


def test_sigterm_tears_down_every_open_session_exactly_once(tmp):
    with live_server(tmp, use_run=True) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        sids = [f"s{i}" for i in range(6)]
        for sid in sids: create(c, sid)
        create(c, "starting", setup_s=30)   # setup still running at shutdown: cancelled, then torn down
        assert c.post("/delete", headers={"X-Session-ID": "s0"}).json() == {"sid": "s0"}
        assert c.post("/delete", headers={"X-Session-ID": "s0"}).json() == {"sid": "s0"}   # idempotent
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so the exit status is -SIGTERM
        assert proc.wait(20) in (0, -signal.SIGTERM), logs()
        assert "session ended session_id=s5" in logs()
    teardowns = [l for l in lines(events) if l.startswith("teardown")]
    assert sorted(teardowns) == sorted(f"teardown {s}" for s in sids + ["starting"]), (teardowns, logs())


def test_secrets_stay_out_of_logs_and_bodies(tmp):
    secret = "sk-live-SECRET-0123456789"
    header = base64.b64encode(json.dumps({"API_KEY": {"value": secret, "allowed_domains": []}}).encode()).decode()
    env = {"OPENREWARD_USE_STRUCTURED_LOGS": "1", "OPENREWARD_LOG_LEVEL": "DEBUG"}
    with live_server(tmp, use_run=True, env=env) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        h = {"X-Session-ID": "a", "X-Secrets": header}
        r = c.post("/create", headers=h, json={"task_spec": {"id": "a", "fail_init": True}})
        assert r.status_code == 500 and secret not in r.text and "[secret]" in r.text, r.text
        assert c.post("/create", headers=h, json={"task_spec": {"id": "a"}}).status_code == 200
        r = c.post("/lifecycle/call", headers=h, json={"name": "leak", "input": {}})
        assert events_of(r.content)[-1] == ("error", "failed using [secret]")
        assert c.post("/delete", headers=h).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        out = logs()
    assert secret not in out, out
    structured = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    messages = {l["message"] for l in structured}
    assert {"request failed", "request handled", "session created", "session ended", "tool raised"} <= messages, messages
    assert all({"time", "severity", "message", "logger"} <= set(l) for l in structured)


def test_calls_of_one_tool_queue_while_other_tools_answer(tmp):
    import concurrent.futures
    with live_server(tmp) as (url, proc, events, logs), httpx.Client(base_url=url, timeout=10) as c:
        create(c, "s1")
        t0 = time.monotonic()
        def timed(name, input):  # (when it ended, its last event); timeouts generous: the machine may be loaded
            r = httpx.post(url + "/lifecycle/call", headers={"X-Session-ID": "s1"}, json={"name": name, "input": input}, timeout=60)
            return time.monotonic() - t0, events_of(r.content)[-1]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            naps = [pool.submit(timed, "nap", {"seconds": 2.5}) for _ in range(2)]
            time.sleep(0.1)
            echo = pool.submit(timed, "echo", {})
            (t1, e1), (t2, e2), (te, ee) = sorted(f.result() for f in naps) + [echo.result()]
    assert e1[0] == e2[0] == ee[0] == "end"
    assert t1 >= 2.5 and t2 >= 5.0, (t1, t2)   # the second nap waited for the first: two naps back to back
    assert te < t1, (te, t1)                   # a concurrent tool is not held up: it ended while the first nap ran
    assert sorted(json.loads(e)["output"]["metadata"]["runs"] for e in (e1[1], e2[1])) == [1, 2]
