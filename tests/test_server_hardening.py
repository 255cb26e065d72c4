"""Nothing one client does can take the server from the others (issue 15), against real uvicorn on 127.0.0.1.

Each test starts `tests/fixtures/serve_hardening.py` (an environment whose tools block, wait or answer big, and
whose teardown can hang) in a subprocess, so that its memory can be read from /proc and its exit watched. Every
wait is bounded; the heavy ones are marked slow.
"""
from __future__ import annotations

import json, select, signal, socket, subprocess, sys, threading, time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import free_port, serve_subprocess, stop_process, subprocess_env
from openreward.sse import SSEDecoder, ResultAssembler, iter_sse
from openreward.errors import SSEError

SCRIPT = Path(__file__).resolve().parent/"fixtures"/"serve_hardening.py"
MiB = 2**20

def rss(pid: int) -> int:
    "Resident set size of process `pid`, in bytes."
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"): return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")

@contextmanager
def hostile(**server_kwargs):
    "The hostile environment served in a subprocess (through `uvicorn.run`); yields `(base_url, popen)`."
    with serve_subprocess(sys.executable, SCRIPT, json.dumps(server_kwargs)) as (url, proc): yield url, proc

@contextmanager
def hostile_to_stop(**server_kwargs):
    "The hostile environment served through `Server.run` in a subprocess the test itself stops; yields `(url, popen, logs)`."
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "127.0.0.1", str(port), json.dumps(server_kwargs), "--run"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=subprocess_env())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200: break
            except httpx.TransportError: time.sleep(0.1)
        yield url, proc
    finally: stop_process(proc)

def create(c: httpx.Client, sid: str, task: str = "plain", key: str | None = None) -> httpx.Response:
    headers = {"X-Session-ID": sid} | ({"X-API-Key": key} if key else {})
    return c.post("/create", headers=headers, json={"env_name": "hostile", "task_spec": {"id": task}})

def open_call(port: int, sid: str, tool: str, params: dict | None = None) -> socket.socket:
    "Send a /call on a raw socket and leave its answer unread; the caller closes the socket."
    body = json.dumps({"name": tool, "input": params or {}}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST /hostile/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nX-Session-ID: {sid}\r\n\r\n".encode() + body)
    return sock

def port_of(url: str) -> int: return int(url.rsplit(":", 1)[1])

class StreamReader(threading.Thread):
    "Reads one call's event stream in a thread: the events, when each arrived, how it ended."
    def __init__(self, url: str, sid: str, tool: str, params: dict | None = None):
        super().__init__(daemon=True)
        self.url, self.sid, self.tool, self.params = url, sid, tool, params or {}
        self.events, self.ended_at, self.error = [], None, None
    def run(self):
        try:
            with httpx.Client(base_url=self.url, timeout=30) as c, \
                 c.stream("POST", "/hostile/call", headers={"X-Session-ID": self.sid},
                          json={"name": self.tool, "input": self.params}) as r:
                for ev in iter_sse(r): self.events.append((time.monotonic(), ev.event, ev.data))
        except Exception as e: self.error = e
        finally: self.ended_at = time.monotonic()

def detail(c: httpx.Client, **headers) -> dict | None:
    "`/health?detail=1`, or None on a server that has no detail."
    r = c.get("/health", params={"detail": 1}, headers=headers)
    body = r.json()
    return body if "threads" in body else None

# ---------------------------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------------------------

def test_session_takeover_refused_with_auth():
    "With keys configured, a request without one gets 401, and another key's session is as if it did not exist."
    with hostile(api_key=["key-alice", "key-bob"]) as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/health").json() == {"status": "ok"}  # liveness stays open for probes
        assert c.get("/list_environments").status_code == 401
        r = c.post("/create", headers={"X-Session-ID": "s1"}, json={"env_name": "hostile", "task_spec": {"id": "plain"}})
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert c.get("/list_environments", headers={"X-API-Key": "key-alicf"}).status_code == 401
        assert create(c, "s1", key="key-alice").status_code == 200
        alice, bob = {"X-Session-ID": "s1", "X-API-Key": "key-alice"}, {"X-Session-ID": "s1", "X-API-Key": "key-bob"}
        nobody = {"X-Session-ID": "never-created", "X-API-Key": "key-bob"}
        # Bob sees for Alice's session exactly what he sees for a session that does not exist
        for method, path in [("POST", "/ping"), ("GET", "/hostile/prompt"), ("GET", "/hostile/task_tools")]:
            theirs, missing = c.request(method, path, headers=bob), c.request(method, path, headers=nobody)
            assert (theirs.status_code, theirs.content) == (missing.status_code, missing.content) == (404, missing.content)
        r = c.post("/hostile/call", headers=bob, json={"name": "echo", "input": {"text": "hi"}})
        assert r.status_code == 404
        assert c.post("/delete", headers=bob).json() == {"sid": "s1"}  # idempotent, as for an unknown id ...
        assert c.post("/ping", headers=alice).json() == {"status": "ok"}  # ... and Alice's session is untouched
        # Bob may use the same id: it is his own session, Alice's is not replaced
        assert create(c, "s1", key="key-bob").status_code == 200
        with c.stream("POST", "/hostile/call", headers=alice, json={"name": "echo", "input": {"text": "alice's"}}) as r:
            events = list(iter_sse(r))
        task_id = events[0].data
        assert json.loads(events[-1].data)["output"]["blocks"][0]["text"] == "alice's"
        with c.stream("POST", "/hostile/call", headers=bob, json={"name": "echo", "input": {}, "task_id": task_id}) as r:
            assert [(e.event, e.data) for e in iter_sse(r)] == [("error", "unknown task_id")]  # no re-attach to hers
        assert c.get("/health?detail=1").status_code == 401  # the detail is for key holders
        assert detail(c, **{"X-API-Key": "key-bob"})["auth"] is True

# ---------------------------------------------------------------------------------------------------------------
# Bounded input
# ---------------------------------------------------------------------------------------------------------------

def read_answer(sock: socket.socket, timeout: float = 5) -> bytes:
    "What the server sends on `sock` until it closes the connection (or `timeout` passes)."
    sock.settimeout(timeout)
    data = b""
    try:
        while piece := sock.recv(65536): data += piece
    except OSError: pass
    return data

class HealthProbe(threading.Thread):
    "Times GET /health on its own keep-alive connection until stopped."
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.times, self.stop = port, [], threading.Event()
    def run(self):
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5) as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                c.get("/health").raise_for_status()
                self.times.append(time.perf_counter() - t0)
                self.stop.wait(0.02)

@pytest.mark.slow
def test_one_gib_body_refused_early():
    "A 1 GiB chunked /create is refused with 413 early: memory grows by less than 64 MiB and /health stays quick."
    with hostile() as (url, proc):
        port = port_of(url)
        declared = socket.create_connection(("127.0.0.1", port), timeout=10)
        declared.sendall(b"POST /create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nX-Session-ID: big\r\n\r\n{" % 2**30)
        declared_answer = read_answer(declared)
        declared.close()
        start = rss(proc.pid)
        probe = HealthProbe(port); probe.start()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"POST /create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nX-Session-ID: big\r\n\r\n")
        piece = b"%x\r\n" % (256 * 1024) + b'{"task_spec": {"id": "' + b"x" * (256 * 1024 - 22) + b"\r\n"
        sent, answer, peak = 0, b"", start
        try:
            while sent < 2**30 and peak - start < 64 * MiB:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable: break
                try: sock.sendall(piece)
                except OSError: break  # the server closed the connection
                sent += len(piece)
                if sent % (8 * MiB) < len(piece): peak = max(peak, rss(proc.pid))
            answer = read_answer(sock)
        finally:
            sock.close()
            peak = max(peak, rss(proc.pid))
            time.sleep(0.2)
            probe.stop.set(); probe.join(10)
        assert declared_answer.startswith(b"HTTP/1.1 413")  # a declared length over the limit: refused unread
        assert answer.startswith(b"HTTP/1.1 413"), (sent, answer[:200])
        assert b"larger than the server's limit of" in answer
        assert sent < 64 * MiB, sent
        assert peak - start < 64 * MiB, (peak - start) / MiB
        assert probe.times and max(probe.times) < 0.1, max(probe.times)
        with httpx.Client(base_url=url, timeout=10) as c: assert detail(c)["sessions"] == 0

# ---------------------------------------------------------------------------------------------------------------
# Bounded threads
# ---------------------------------------------------------------------------------------------------------------

def test_stuck_sync_tools_leave_the_catalogue_answering():
    "Six sessions each stuck in a sync tool fill every user thread; the catalogue and /create still answer."
    with hostile(user_threads=6, session_threads=2) as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        port, socks = port_of(url), []
        try:
            for i in range(6):
                assert create(c, f"stuck-{i}").status_code == 200
                socks.append(open_call(port, f"stuck-{i}", "block"))
            deadline = time.monotonic() + 5
            while (d := detail(c)) is None or d["threads"]["sessions"]["busy"] < 6:
                if time.monotonic() > deadline: break
                time.sleep(0.05)
            time.sleep(0.2)  # on a server without the detail, time for the calls to take their threads
            quick = httpx.Client(base_url=url, timeout=3)
            with quick:
                assert quick.post("/hostile/tasks", json={"split": "train"}).json()["tasks"][0] == {"id": "plain"}
                assert quick.post("/hostile/num_tasks", json={"split": "train"}).json() == {"num_tasks": 2}
                assert quick.post("/hostile/task", json={"split": "train", "index": 1}).json()["task"] == {"id": "hang-teardown"}
                assert quick.get("/hostile/tools").status_code == 200
                r = quick.post("/create", headers={"X-Session-ID": "newcomer"}, json={"env_name": "hostile", "split": "train", "index": 0})
                assert r.json() == {"sid": "newcomer"}  # (its own sync work waits for a thread: the pool is full)
            d = detail(c)
            pool = d["threads"]["sessions"]
            assert (pool["size"], pool["busy"], pool["per_session"]) == (6, 6, 2)
            # deleting the stuck sessions abandons their threads: the pool is free again, the abandoned counted
            for i in range(6): c.post("/delete", headers={"X-Session-ID": f"stuck-{i}"})
            d = detail(c)["threads"]["sessions"]
            assert (d["busy"], d["abandoned"], d["abandoned_total"]) == (0, 6, 6)
        finally:
            for s in socks: s.close()

# ---------------------------------------------------------------------------------------------------------------
# Cancellation and deadlines
# ---------------------------------------------------------------------------------------------------------------

def wait_running(c: httpx.Client, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = detail(c)
        if d is None or d["calls"]["running"] >= n: return
        time.sleep(0.02)

def test_deleted_session_calls_cancelled_within_a_second():
    "/delete ends the session's running calls: async ones cancelled, sync ones abandoned, each stream ends with why."
    with hostile() as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        assert create(c, "doomed").status_code == 200
        readers = [StreamReader(url, "doomed", "wait")]
        readers[0].start()
        wait_running(c, 1)
        assert create(c, "doomed-sync").status_code == 200
        readers.append(StreamReader(url, "doomed-sync", "block")); readers[1].start()
        wait_running(c, 2)
        time.sleep(0.3)  # both past their first events
        t0 = time.monotonic()
        c.post("/delete", headers={"X-Session-ID": "doomed"})
        c.post("/delete", headers={"X-Session-ID": "doomed-sync"})
        for r in readers: r.join(3)
        for r in readers:
            assert r.ended_at is not None and r.ended_at - t0 < 1.0, "the stream did not end within a second"
            kinds = [e[1] for e in r.events]
            assert kinds[0] == "task_id" and kinds[-1] == "error", r.events
            assert r.events[-1][2] == "cancelled: the session was deleted while the call ran"
        d = detail(c)
        assert d["calls"]["cancelled_still_running"] == 0  # the async tool really stopped
        assert d["threads"]["sessions"]["abandoned"] == 1  # the sync one cannot be stopped: abandoned, counted

def test_expired_session_calls_cancelled():
    "Expiry cancels a running call the same way, and says so."
    with hostile(session_ttl=0.5, reap_interval=0.1, ping_interval=0.2) as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        assert create(c, "short").status_code == 200
        reader = StreamReader(url, "short", "wait"); reader.start()
        reader.join(5)
        assert reader.ended_at is not None
        assert reader.events[-1][1:] == ("error", "cancelled: the session expired while the call ran")

def test_hung_teardown_bounded_and_sigterm_exits():
    "A teardown that never returns holds /delete only for teardown_timeout, and SIGTERM still exits within 10 s."
    with hostile_to_stop(teardown_timeout=1.0) as (url, proc), httpx.Client(base_url=url, timeout=10) as c:
        assert create(c, "hang-1", task="hang-teardown").status_code == 200
        t0 = time.monotonic()
        try: answered = c.post("/delete", headers={"X-Session-ID": "hang-1"}, timeout=5).json()
        except httpx.TimeoutException: answered = None
        assert answered == {"sid": "hang-1"} and time.monotonic() - t0 < 3
        # a server with a hung teardown pending, a stuck sync tool, and a waiting async tool with its stream open
        assert create(c, "hang-2", task="hang-teardown").status_code == 200
        assert create(c, "busy").status_code == 200
        sync_reader, async_reader = StreamReader(url, "hang-2", "block"), StreamReader(url, "busy", "wait")
        sync_reader.start(); async_reader.start()
        wait_running(c, 2)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired: pass
        took = time.monotonic() - t0
        assert proc.poll() is not None and took < 10, f"still running {took:.1f} s after SIGTERM"
        log = proc.stdout.read().decode(errors="replace")
        assert "forced exit" not in log, log  # the deadlines did it: the watchdog was not needed
        for r in (sync_reader, async_reader):
            r.join(2)
            assert r.events and r.events[-1][1:] == ("error", "cancelled: the server is shutting down while the call ran"), r.events

# ---------------------------------------------------------------------------------------------------------------
# Bounded output
# ---------------------------------------------------------------------------------------------------------------

class PeakRSS(threading.Thread):
    "Samples a process's RSS every 20 ms until stopped."
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self.stop.wait(0.02)

@pytest.mark.slow
def test_200_mib_result_streams_at_once():
    "A 200 MiB result's first chunk arrives within a second, and the server's memory grows by less than twice its size."
    size = 200 * MiB
    with hostile() as (url, proc), httpx.Client(base_url=url, timeout=30) as c:
        assert create(c, "big").status_code == 200
        start = rss(proc.pid)
        sampler = PeakRSS(proc.pid); sampler.start()
        decoder, asm = SSEDecoder(), ResultAssembler()
        first = chars = None
        t0 = time.monotonic()
        head = tail = ""
        with c.stream("POST", "/hostile/call", headers={"X-Session-ID": "big"}, json={"name": "big", "input": {"size": size}}) as r:
            chars = 0
            for piece in r.iter_raw(1 << 16):
                for ev in decoder.feed(piece):
                    if ev.event in ("chunk", "end"):
                        if first is None: first, head = time.monotonic() - t0, ev.data
                        chars += len(ev.data)
                        if ev.event == "end": tail = ev.data
        decoder.close()
        sampler.stop.set(); sampler.join(5)
        wrapper = ('{"ok":true,"output":{"blocks":[{"text":"', '"type":"text"}],"metadata":null,"reward":null,"finished":false}}')
        assert head.startswith(wrapper[0]) and tail.endswith(wrapper[1])
        assert chars == size + len(wrapper[0]) + len('","detail":null,') + len(wrapper[1])
        assert first < 1.0, f"first chunk after {first:.2f} s"
        assert sampler.peak - start < 2 * size, (sampler.peak - start) / MiB

@pytest.mark.slow
def test_unread_streams_release_memory():
    "200 unread 5 MiB streams, closed: memory returns to within 20% of where it started once their results expire."
    size, total, batch = 5 * MiB, 200, 20
    budget = 64 * MiB
    with hostile(result_ttl=1.0, reap_interval=0.2, result_budget=budget) as (url, proc), httpx.Client(base_url=url, timeout=30) as c:
        port = port_of(url)
        for i in range(batch): assert create(c, f"u{i}").status_code == 200
        # warm up: one large result read whole, then expired, so the start is measured on a server that has done this before
        with c.stream("POST", "/hostile/call", headers={"X-Session-ID": "u0"}, json={"name": "big", "input": {"size": size}}) as r:
            for _ in r.iter_raw(): pass
        time.sleep(1.5)
        start = rss(proc.pid)
        sampler = PeakRSS(proc.pid); sampler.start()
        for n in range(0, total, batch):
            socks = [open_call(port, f"u{i}", "big", {"size": size}) for i in range(batch)]
            for s in socks: s.recv(1024)  # each stream has started; the rest stays unread
            time.sleep(0.05)
            for s in socks: s.close()
            wait_running(c, 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            d = detail(c)
            if d is not None and d["calls"]["results_kept"] == 0 and d["calls"]["running"] == 0: break
            time.sleep(0.2)
        time.sleep(0.6)  # a reaper pass after the last result went
        sampler.stop.set(); sampler.join(5)
        end = rss(proc.pid)
        assert end < start * 1.2, f"RSS {start / MiB:.0f} MiB before, {end / MiB:.0f} MiB after (peak {sampler.peak / MiB:.0f} MiB)"
        # at most the results kept for re-attach plus the batch in flight (and no copies of them): well under 200 x 5 MiB
        assert sampler.peak - start < budget + 2 * batch * size, (sampler.peak - start) / MiB

def test_result_budget_drops_oldest_results():
    "Finished results kept for re-attach stay within the byte budget; the oldest are dropped first."
    with hostile(result_budget=12 * MiB) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
        assert create(c, "b").status_code == 200
        ids = []
        for _ in range(4):
            with c.stream("POST", "/hostile/call", headers={"X-Session-ID": "b"}, json={"name": "big", "input": {"size": 5 * MiB}}) as r:
                events = list(iter_sse(r))
            ids.append(events[0].data)
        d = detail(c)["calls"]
        assert d["results_kept"] == 2 and d["result_chars_kept"] <= 12 * MiB
        def reattach(task_id):
            with c.stream("POST", "/hostile/call", headers={"X-Session-ID": "b"}, json={"name": "big", "input": {}, "task_id": task_id}) as r:
                return [e.event for e in iter_sse(r)]
        assert reattach(ids[0]) == ["error"]  # dropped
        assert reattach(ids[-1])[-1] == "end"  # kept

# ---------------------------------------------------------------------------------------------------------------
# Safe framing, and the client's own bounds
# ---------------------------------------------------------------------------------------------------------------

def test_line_separators_survive_iter_lines():
    "U+2028, U+2029 and U+0085 in a tool's text reach a client that splits the stream with httpx `iter_lines()`."
    text = "one\u2028two\u2029three\x85four\u000bfive\u001csix"
    with hostile() as (url, _), httpx.Client(base_url=url, timeout=10) as c:
        assert create(c, "lines").status_code == 200
        events, kind, data = [], None, []
        with c.stream("POST", "/hostile/call", headers={"X-Session-ID": "lines"}, json={"name": "echo", "input": {"text": text}}) as r:
            for line in r.iter_lines():  # how the seeds' raw client reads it
                if line.startswith("event:"): kind = line[6:].strip()
                elif line.startswith("data:"): data.append(line[5:].lstrip(" "))
                elif not line and kind:
                    events.append((kind, "\n".join(data))); kind, data = None, []
        assert [k for k, _ in events] == ["task_id", "end"]
        assert json.loads(events[-1][1])["output"]["blocks"][0]["text"] == text

class EndlessServer(threading.Thread):
    "A hostile 'server' on 127.0.0.1: answers any request with an event stream whose one line never ends."
    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port, self.sent = self.sock.getsockname()[1], 0
    def run(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            piece = b"x" * (1 << 20)
            try:
                conn.sendall(b"6\r\ndata: \r\n")
                while self.sent < 2**30:
                    conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    self.sent += len(piece)
            except OSError: pass

def test_client_refuses_an_endless_event():
    "The SSE decoder stops a hostile stream at its cap with a clear error, instead of buffering it."
    server = EndlessServer(); server.start()
    with httpx.Client(timeout=10) as c, c.stream("POST", f"http://127.0.0.1:{server.port}/x/call") as r:
        decoder = SSEDecoder(max_event_bytes=4 * MiB)
        with pytest.raises(SSEError, match="larger than 4194304 bytes"):
            for piece in r.iter_raw(): decoder.feed(piece)
    assert server.sent < 64 * MiB
    server.sock.close()
