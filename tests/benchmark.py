"""Benchmark our ORS server against the reference one (openreward 0.1.167), side by side. Not a test.

    python tests/benchmark.py [--quick]

Both servers serve the same example environments (`openreward/examples.py`, through tests/fixtures/serve_examples.py)
as a uvicorn subprocess on 127.0.0.1 with the same uvicorn settings, one after the other (never at the same time).
One load generator drives both: raw HTTP/1.1 keep-alive over asyncio sockets, in its own process, so that neither
httpx nor the orchestrator is what gets measured. With two or more cores the server is pinned to one core and the
load generator to another; the CPU time both use is printed, so a generator-bound run is visible.

The cheap tool is `Counter.increment` (a sync tool) on a task whose target is never reached.
"""
from __future__ import annotations

import argparse, asyncio, json, os, statistics, subprocess, sys, tempfile, time, uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import EXAMPLES_PY, SERVE_EXAMPLES, ensure_reference_venv, free_port, stop_process, subprocess_env  # noqa: E402

ENDLESS_TASK = {"id": "bench", "start": 0, "target": 10**15}

# ---------------------------------------------------------------------------------------------------------------
# Load generator (runs in its own process: `benchmark.py --loadgen SPEC_JSON`)
# ---------------------------------------------------------------------------------------------------------------

class Conn:
    "One keep-alive HTTP/1.1 connection with just enough parsing for ORS answers (Content-Length or chunked)."
    def __init__(self, port: int): self.port, self.r, self.w = port, None, None

    async def open(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self):
        if self.w is not None:
            self.w.close()
            try: await self.w.wait_closed()
            except OSError: pass
            self.w = None

    async def request(self, method: str, path: str, body: bytes = b"", sid: str | None = None) -> tuple[int, bytes]:
        if self.w is None: await self.open()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        if sid is not None: head += f"X-Session-ID: {sid}\r\n"
        self.w.write(head.encode() + b"\r\n" + body)
        raw = await self.r.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        headers = raw.lower()
        if b"transfer-encoding: chunked" in headers:
            parts = []
            while True:
                n = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                if n == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                parts.append((await self.r.readexactly(n + 2))[:-2])
            data = b"".join(parts)
        else:
            i = headers.find(b"content-length:")
            n = int(headers[i+15:headers.index(b"\r\n", i)]) if i >= 0 else 0
            data = await self.r.readexactly(n) if n else b""
        if b"connection: close" in headers: await self.close()
        return status, data

def call_ok(status: int, data: bytes) -> bool:
    "A /call answer is good when it is a 200 stream whose final `end` payload says ok:true."
    return status == 200 and b"event: end" in data and b'"ok":true' in data

async def open_session(conn: Conn, sid: str) -> None:
    body = json.dumps({"env_name": "counter", "task_spec": ENDLESS_TASK}).encode()
    status, data = await conn.request("POST", "/create", body, sid)
    if status != 200: raise RuntimeError(f"/create answered {status}: {data[:200]!r}")

async def phase_calls(port: int, clients: int, duration: float, max_calls: int | None, warmup: float) -> dict:
    "Each client owns a session and calls `increment` back to back; count and time the calls after a warm-up."
    body = json.dumps({"name": "increment", "input": {}}).encode()
    conns = [Conn(port) for _ in range(clients)]
    sids = [f"bench-{uuid.uuid4().hex}" for _ in range(clients)]
    await asyncio.gather(*(open_session(c, s) for c, s in zip(conns, sids)))
    lat: list[float] = []
    state = {"count": 0, "errors": 0, "measuring": False, "stop": False}

    async def client(conn: Conn, sid: str):
        while not state["stop"]:
            t = time.perf_counter()
            try: status, data = await conn.request("POST", "/counter/call", body, sid)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                state["errors"] += 1; await conn.close(); continue
            dt = time.perf_counter() - t
            if not state["measuring"]: continue
            if call_ok(status, data):
                lat.append(dt); state["count"] += 1
                if max_calls is not None and state["count"] >= max_calls: state["stop"] = True
            else: state["errors"] += 1

    tasks = [asyncio.create_task(client(c, s)) for c, s in zip(conns, sids)]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    mark("START")
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + duration
    while not state["stop"] and time.perf_counter() < deadline: await asyncio.sleep(0.05)
    state["stop"] = True
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    mark("STOP")
    n = state["count"]
    await asyncio.gather(*tasks)
    for c, s in zip(conns, sids): await c.request("POST", "/delete", b"", s)
    await asyncio.gather(*(c.close() for c in conns))
    return {"count": n, "elapsed": elapsed, "rate": n / elapsed, "errors": state["errors"], "loadgen_cpu": cpu,
            **percentiles(lat)}

async def phase_sessions(port: int, clients: int, duration: float, warmup: float) -> dict:
    "Each client loops `/create` (fresh sid) + `/delete`; count complete pairs."
    conns = [Conn(port) for _ in range(clients)]
    state = {"count": 0, "errors": 0, "measuring": False, "stop": False}
    lat: list[float] = []
    create = json.dumps({"env_name": "counter", "task_spec": ENDLESS_TASK}).encode()

    async def client(conn: Conn):
        while not state["stop"]:
            sid, t = uuid.uuid4().hex, time.perf_counter()
            try:
                s1, _ = await conn.request("POST", "/create", create, sid)
                s2, _ = await conn.request("POST", "/delete", b"", sid)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                state["errors"] += 1; await conn.close(); continue
            if not state["measuring"]: continue
            if s1 == s2 == 200: state["count"] += 1; lat.append(time.perf_counter() - t)
            else: state["errors"] += 1

    tasks = [asyncio.create_task(client(c)) for c in conns]
    await asyncio.sleep(warmup)
    state["measuring"] = True
    mark("START")
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    state["stop"] = True
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    mark("STOP")
    n = state["count"]
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in conns))
    return {"count": n, "elapsed": elapsed, "rate": n / elapsed, "errors": state["errors"], "loadgen_cpu": cpu,
            **percentiles(lat)}

async def phase_open(port: int, n: int, prefix: str, clients: int = 16, delete: bool = False) -> dict:
    "Create (or delete) `n` sessions named `prefix-i`, `clients` at a time."
    conns = [Conn(port) for _ in range(clients)]
    errors = 0
    async def client(k: int):
        nonlocal errors
        for i in range(k, n, clients):
            sid = f"{prefix}-{i}"
            if delete: status, _ = await conns[k].request("POST", "/delete", b"", sid)
            else:
                body = json.dumps({"env_name": "counter", "task_spec": ENDLESS_TASK}).encode()
                status, _ = await conns[k].request("POST", "/create", body, sid)
            errors += status != 200
    await asyncio.gather(*(client(k) for k in range(clients)))
    await asyncio.gather(*(c.close() for c in conns))
    return {"count": n, "errors": errors}

def mark(what: str) -> None:
    "Tell the orchestrator (reading our stdout) that the measured window starts or stops."
    print(what, flush=True)

def percentiles(lat: list[float]) -> dict:
    if not lat: return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": q[49]*1e3, "p90_ms": q[89]*1e3, "p99_ms": q[98]*1e3}

def loadgen_main(spec: dict) -> None:
    phase = spec.pop("phase")
    fn = {"calls": phase_calls, "sessions": phase_sessions, "open": phase_open}[phase]
    print(json.dumps(asyncio.run(fn(**spec))), flush=True)

# ---------------------------------------------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------------------------------------------

CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPU, LOADGEN_CPU = ({CPUS[0]}, {CPUS[1]}) if len(CPUS) >= 2 else (None, None)
TICK = os.sysconf("SC_CLK_TCK")

def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"): return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

class ServerProc:
    "One server under test: a uvicorn subprocess (pinned to its core)."
    def __init__(self, name: str, python: str):
        self.name, self.python, self.port = name, python, free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix=f"orw-bench-{name}-")
        self.log = open(Path(self.tmp.name)/"server.log", "w+b")
        self.proc = subprocess.Popen([python, str(SERVE_EXAMPLES), "127.0.0.1", str(self.port), str(EXAMPLES_PY)],
                                     cwd=self.tmp.name, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=subprocess_env())
        if SERVER_CPU: os.sched_setaffinity(self.proc.pid, SERVER_CPU)
        import httpx
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None: raise RuntimeError(f"{name} server died:\n{self.logs()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            if time.monotonic() > deadline: raise RuntimeError(f"{name} server did not start:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        self.log.flush(); self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self):
        stop_process(self.proc)
        self.log.close(); self.tmp.cleanup()

def loadgen(server: ServerProc, phase: str, timeout: float, **spec) -> dict:
    "Run one load-generator phase in its own process; return its JSON plus the server's CPU use in the measured window."
    import threading
    proc = subprocess.Popen([sys.executable, __file__, "--loadgen",
                             json.dumps({"phase": phase, "port": server.port, **spec})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    if LOADGEN_CPU: os.sched_setaffinity(proc.pid, LOADGEN_CPU)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    marks, res = {}, None
    try:
        for line in proc.stdout:
            line = line.strip()
            if line in ("START", "STOP"): marks[line] = (cpu_s(server.proc.pid), time.perf_counter())
            elif line: res = json.loads(line)
        err = proc.stderr.read()
        proc.wait()
    finally: timer.cancel()
    if proc.returncode != 0 or res is None:
        raise RuntimeError(f"load generator phase {phase} failed (rc {proc.returncode}, timeout {timeout} s):\n"
                           f"{err[-4000:]}\n--- server ---\n{server.logs()}")
    if "START" in marks and "STOP" in marks:
        (c0, t0), (c1, t1) = marks["START"], marks["STOP"]
        res["server_cpu_util"] = (c1 - c0) / (t1 - t0)       # 1.0 = one core busy all the time
        res["loadgen_cpu_util"] = res["loadgen_cpu"] / res["elapsed"]
    return res

def measure(name: str, python: str, cfg: dict) -> dict:
    print(f"--- {name}: starting server ({python})", flush=True)
    s = ServerProc(name, python)
    r: dict = {}
    try:
        loadgen(s, "calls", 120, clients=8, duration=1.0, max_calls=None, warmup=0.5)  # warm caches and imports
        # idle sessions first, before the heap holds free memory left over by the busy phases
        before = rss_kib(s.proc.pid)
        o = loadgen(s, "open", 600, n=cfg["idle_sessions"], prefix="idle")
        time.sleep(0.5)
        after = rss_kib(s.proc.pid)
        r["idle"] = {"n": cfg["idle_sessions"], "errors": o["errors"], "rss_before_kib": before, "rss_after_kib": after,
                     "per_session_bytes": (after - before) * 1024 / cfg["idle_sessions"]}
        loadgen(s, "open", 600, n=cfg["idle_sessions"], prefix="idle", delete=True)
        print(f"    idle session: {r['idle']['per_session_bytes']:.0f} B", flush=True)
        for c in (32, 128):
            r[f"calls_{c}"] = loadgen(s, "calls", cfg["duration"] + 120, clients=c, duration=cfg["duration"],
                                      max_calls=None, warmup=cfg["warmup"])
            print(f"    calls@{c}: {r[f'calls_{c}']['rate']:.0f}/s", flush=True)
        r["sessions"] = loadgen(s, "sessions", cfg["duration"] + 120, clients=32, duration=cfg["duration"],
                                warmup=cfg["warmup"])
        print(f"    create+delete: {r['sessions']['rate']:.0f}/s", flush=True)
        rss0 = rss_kib(s.proc.pid)
        long = loadgen(s, "calls", cfg["long_timeout"] + 120, clients=32, duration=cfg["long_timeout"],
                       max_calls=cfg["long_calls"], warmup=0.5)
        time.sleep(0.5)
        rss1 = rss_kib(s.proc.pid)
        r["long"] = {"calls": long["count"], "errors": long["errors"], "elapsed": long["elapsed"],
                     "rss_before_kib": rss0, "rss_after_kib": rss1, "growth": (rss1 - rss0) / rss0}
        print(f"    {long['count']} calls: RSS {rss0} -> {rss1} KiB", flush=True)
    finally:
        s.stop()
    return r

def fmt(v, unit=""):
    if v is None: return "n/a"
    return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:,.2f}{unit}"

def report(ours: dict, ref: dict, cfg: dict) -> bool:
    rows, verdicts = [], []
    def row(label, a, b, unit="", ratio=True):
        rows.append((label, fmt(a, unit), fmt(b, unit), (f"{a/b:.2f}x" if ratio and a is not None and b else "")))
    for c in (32, 128):
        row(f"tool calls/s @{c} clients", ours[f"calls_{c}"]["rate"], ref[f"calls_{c}"]["rate"])
    for p in ("p50", "p90", "p99"):
        row(f"call latency {p} @32 (ms)", ours["calls_32"][f"{p}_ms"], ref["calls_32"][f"{p}_ms"])
    row("call latency p99 @128 (ms)", ours["calls_128"]["p99_ms"], ref["calls_128"]["p99_ms"])
    row("session create+delete/s @32", ours["sessions"]["rate"], ref["sessions"]["rate"])
    row(f"idle session (bytes, n={cfg['idle_sessions']})", ours["idle"]["per_session_bytes"], ref["idle"]["per_session_bytes"])
    row("RSS before long run (KiB)", ours["long"]["rss_before_kib"], ref["long"]["rss_before_kib"], ratio=False)
    row(f"RSS after {cfg['long_calls']:,} calls (KiB)", ours["long"]["rss_after_kib"], ref["long"]["rss_after_kib"], ratio=False)
    row("RSS growth over long run (%)", 100*ours["long"]["growth"], 100*ref["long"]["growth"], ratio=False)
    for k in ("calls_32", "calls_128", "sessions"):
        row(f"server core busy % ({k})", 100*ours[k]["server_cpu_util"], 100*ref[k]["server_cpu_util"], ratio=False)
        row(f"load generator core busy % ({k})", 100*ours[k]["loadgen_cpu_util"], 100*ref[k]["loadgen_cpu_util"], ratio=False)
    w = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{w}}  {'ours':>12}  {'reference':>12}  {'ratio':>7}")
    for label, a, b, rat in rows: print(f"{label:<{w}}  {a:>12}  {b:>12}  {rat:>7}")
    errs = {k: (ours[k]["errors"], ref[k]["errors"]) for k in ("calls_32", "calls_128", "sessions", "long", "idle")}
    print(f"\nerrors (ours, reference): {errs}")

    def target(name, ok): verdicts.append(ok); print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print()
    target("tool calls/s >= 3x reference @32", ours["calls_32"]["rate"] >= 3 * ref["calls_32"]["rate"])
    target("tool calls/s >= 3x reference @128", ours["calls_128"]["rate"] >= 3 * ref["calls_128"]["rate"])
    target("p99 latency < 30 ms @32", ours["calls_32"]["p99_ms"] < 30)
    target("session create+delete >= 2x reference", ours["sessions"]["rate"] >= 2 * ref["sessions"]["rate"])
    target("idle session < 2 KiB", ours["idle"]["per_session_bytes"] < 2048)
    target(f"RSS flat within 10% across {ours['long']['calls']:,} calls", abs(ours["long"]["growth"]) <= 0.10
           and ours["long"]["calls"] >= cfg["long_calls"])
    target("no request errors (ours)", all(e[0] == 0 for e in errs.values()))
    return all(verdicts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short phases (about 1-2 minutes in all)")
    ap.add_argument("--ours-python", default=sys.executable, help="interpreter serving OUR server")
    ap.add_argument("--reference-python", help="interpreter serving the REFERENCE server (default: its cached venv)")
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--reference-json", help="reuse the reference figures of an earlier --json run (same mode) "
                                             "instead of measuring the reference again")
    ap.add_argument("--loadgen", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.loadgen: return loadgen_main(json.loads(a.loadgen))
    cfg = (dict(duration=5, warmup=1, idle_sessions=5000, long_calls=20_000, long_timeout=60) if a.quick else
           dict(duration=15, warmup=2, idle_sessions=20_000, long_calls=100_000, long_timeout=400))
    print(f"load average before: {os.getloadavg()}; cpus {CPUS}; server cpu {SERVER_CPU}, loadgen cpu {LOADGEN_CPU}")
    t0 = time.monotonic()
    if a.reference_json:
        earlier = json.loads(Path(a.reference_json).read_text())
        if earlier["cfg"] != cfg: sys.exit(f"{a.reference_json} was measured with {earlier['cfg']}, not {cfg}")
        print(f"reference figures reused from {a.reference_json} (not measured now)")
    ours = measure("ours", os.path.abspath(a.ours_python), cfg)
    ref = (earlier["reference"] if a.reference_json else
           measure("reference", os.path.abspath(a.reference_python or ensure_reference_venv()), cfg))
    ok = report(ours, ref, cfg)
    print(f"\nload average after: {os.getloadavg()}; wall time {time.monotonic() - t0:.0f} s")
    if a.json: Path(a.json).write_text(json.dumps({"ours": ours, "reference": ref, "cfg": cfg}, indent=1))
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
