"""CPU cost of one tool call on the ORS server, as instructions counted by callgrind: repeatable under any load. Not a test.

    python tests/server_cost_benchmark.py [--rev REV ...] [--tree DIR ...] [--reference] [--calls N] [--clients C]

Each target (this worktree by default; `--rev` a git revision of this repository, extracted to a temporary directory;
`--tree` another checkout; `--reference` openreward 0.1.167 in its cached venv) serves the example environments
(`openreward/examples.py` of that target, the reference serving ours) under `valgrind --tool=callgrind` with
instrumentation off. A fixed client here (raw HTTP/1.1 keep-alive sockets, `--clients` sessions calling the sync tool
`Counter.increment` back to back) warms the server up, switches counting on with `callgrind_control -i on`, makes
exactly `--calls` calls, switches it off again and stops the server; the figure is the instructions the server
process executed (every thread: event loop and user threads) divided by the calls. Wall time does not enter it,
so the figure hardly moves with the machine's load; timing-dependent paths of the server (a sync tool that takes
longer than 5 ms goes out in two writes) can, a little: run twice to see the spread.

    --metrics-scrape K   also GET /metrics every K calls (cost of a scraper; needs a server that has it)
    --uvicorn JSON       uvicorn options for the server, e.g. '{"loop": "asyncio", "http": "h11"}'
    --env K=V            environment variables for the server process
"""
from __future__ import annotations

import argparse, asyncio, json, os, re, shutil, signal, subprocess, sys, tarfile, tempfile, time, uuid, io
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from benchmark import ENDLESS_TASK, Conn, call_ok  # noqa: E402
from conftest import SERVE_EXAMPLES, ensure_reference_venv, free_port, subprocess_env  # noqa: E402

SERVE = """import json, sys
sys.path.insert(0, {fixtures!r})
import uvicorn, openreward
from serve_examples import load_examples
from openreward.environments import Server
print("openreward from", openreward.__file__, flush=True)
mod = load_examples({examples!r})
opts = dict(timeout_keep_alive=60, access_log=False, log_level="warning") | json.loads({uvicorn!r})
uvicorn.run(Server(mod.ENVIRONMENTS).app, host="127.0.0.1", port=int(sys.argv[1]), **opts)
"""

def extract(rev: str, into: Path) -> Path:
    "The `openreward/` package of git revision `rev`, written under `into`; returns the directory to put on sys.path."
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "openreward"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t: t.extractall(into, filter="data")
    return into

async def drive(port: int, pid: int, clients: int, calls: int, warmup: int, scrape: int | None, native: bool) -> dict:
    "Open sessions, warm up, count exactly `calls` calls between callgrind's switches; return what happened."
    body = json.dumps({"name": "increment", "input": {}}).encode()
    create = json.dumps({"env_name": "counter", "task_spec": ENDLESS_TASK}).encode()
    conns, sids = [Conn(port) for _ in range(clients)], [f"cost-{uuid.uuid4().hex}" for _ in range(clients)]
    for c, s in zip(conns, sids):
        status, data = await c.request("POST", "/create", create, s)
        if status != 200: raise RuntimeError(f"/create answered {status}: {data[:200]!r}")
    left, bad = {"n": 0}, {"n": 0}
    async def client(conn: Conn, sid: str) -> None:
        while left["n"] > 0:
            left["n"] -= 1
            status, data = await conn.request("POST", "/counter/call", body, sid)
            bad["n"] += not call_ok(status, data)
    scraper = Conn(port)
    async def scrapes(total: int) -> int:
        n = 0
        while scrape and left["n"] > 0:
            if (total - left["n"]) // scrape > n:
                status, _ = await scraper.request("GET", "/metrics")
                if status != 200: raise RuntimeError(f"/metrics answered {status}")
                n += 1
            await asyncio.sleep(0)
        return n
    left["n"] = warmup
    await asyncio.gather(*(client(c, s) for c, s in zip(conns, sids)))
    before = control(pid, "on", native)
    t0 = time.perf_counter()
    left["n"] = calls
    _, scraped = await asyncio.gather(asyncio.gather(*(client(c, s) for c, s in zip(conns, sids))), scrapes(calls))
    wall = time.perf_counter() - t0
    after = control(pid, "off", native)
    for c, s in zip(conns, sids): await c.request("POST", "/delete", b"", s)
    for c in (*conns, scraper): await c.close()
    out = {"calls": calls, "bad": bad["n"], "scrapes": scraped, "wall_s": wall}
    if native: out |= {k: after[k] - before[k] for k in before}
    return out

CPUS = sorted(os.sched_getaffinity(0))
TICK = os.sysconf("SC_CLK_TCK")

def os_counts(pid: int) -> dict:
    "CPU seconds (user, system) of the process and context switches of its live threads, from /proc."
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    switches = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try: status = (t/"status").read_text()
        except OSError: continue  # a thread that just ended
        switches += sum(int(v) for v in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s*(\d+)", status, re.M))
    return {"user_s": int(f[11]) / TICK, "sys_s": int(f[12]) / TICK, "switches": switches}

def control(pid: int, state: str, native: bool = False) -> dict:
    "Switch callgrind's counting on or off in the server (or, native, read its OS counters)."
    if native: return os_counts(pid)
    r = subprocess.run(["callgrind_control", "-i", state, str(pid)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or "OK" not in r.stdout: raise RuntimeError(f"callgrind_control -i {state}: {r.stdout}{r.stderr}")
    return {}

def measure(name: str, python: str, pythonpath: str | None, examples: Path, a: argparse.Namespace) -> dict:
    "Serve `examples` with `python` under callgrind and count the instructions of `a.calls` calls."
    with tempfile.TemporaryDirectory(prefix="orw-cost-") as tmp:
        tmp = Path(tmp)
        (tmp/"serve.py").write_text(SERVE.format(fixtures=str(SERVE_EXAMPLES.parent), examples=str(examples), uvicorn=a.uvicorn))
        port, out = free_port(), tmp/"callgrind.out"
        env = subprocess_env(**dict(kv.split("=", 1) for kv in a.env))
        if pythonpath: env["PYTHONPATH"] = pythonpath
        log = open(tmp/"server.log", "w+b")
        real = python  # a venv interpreter (a symlink), not a shim script: callgrind_control must see its PID
        grind = [] if a.native else ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        proc = subprocess.Popen([*grind, real, str(tmp/"serve.py"), str(port)], cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        if a.native and len(CPUS) >= 2:  # server on one core, this client on another
            os.sched_setaffinity(proc.pid, {CPUS[0]})
            os.sched_setaffinity(0, {CPUS[1]})
        def logs() -> str:
            log.flush(); log.seek(0); return log.read().decode(errors="replace")[-3000:]
        try:
            import httpx
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None: raise RuntimeError(f"{name}: server exited\n{logs()}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200: break
                except httpx.TransportError: pass
                if time.monotonic() > deadline: raise RuntimeError(f"{name}: server did not start\n{logs()}")
                time.sleep(0.2)
            r = asyncio.run(drive(port, proc.pid, a.clients, a.calls, a.warmup, a.metrics_scrape, a.native))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try: proc.wait(120)
                except subprocess.TimeoutExpired: proc.kill(); proc.wait(30)
            log.close()
        text = "".join(p.read_text() for p in tmp.glob("callgrind.out*"))
        total = sum(int(m) for m in re.findall(r"^totals:\s*(\d+)", text, re.M))
        source = re.search(r"openreward from (\S+)", (tmp/"server.log").read_text())
    r |= {"name": name, "instructions": total, "per_call": total / a.calls, "openreward": source and source[1]}
    if a.native:
        n = a.calls
        print(f"  {name:<28} {r['user_s']/n*1e6:>7.1f} us user + {r['sys_s']/n*1e6:>6.1f} us system CPU/call, "
              f"{r['switches']/n:.2f} context switches/call, {n/r['wall_s']:,.0f} calls/s "
              f"({n} calls, {r['bad']} bad, {r['scrapes']} scrapes; served from {r['openreward']})", flush=True)
        return r
    print(f"  {name:<28} {r['per_call']:>12,.0f} instructions/call   ({a.calls} calls, {r['bad']} bad, "
          f"{r['scrapes']} scrapes, {r['wall_s']:.0f} s under callgrind; served from {r['openreward']})", flush=True)
    return r

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", action="append", default=[], help="a git revision of this repository (repeatable)")
    ap.add_argument("--tree", action="append", default=[], help="another checkout's root (repeatable)")
    ap.add_argument("--reference", action="store_true", help="also the reference SDK (openreward 0.1.167)")
    ap.add_argument("--no-worktree", action="store_true", help="leave out this worktree")
    ap.add_argument("--calls", type=int, default=2000, help="calls counted")
    ap.add_argument("--clients", type=int, default=32, help="sessions calling at once")
    ap.add_argument("--warmup", type=int, default=500, help="calls before counting starts")
    ap.add_argument("--metrics-scrape", type=int, default=None, help="GET /metrics every K calls")
    ap.add_argument("--uvicorn", default="{}", help="uvicorn options (JSON)")
    ap.add_argument("--env", action="append", default=[], help="K=V for the server's environment (repeatable)")
    ap.add_argument("--repeat", type=int, default=1, help="measure each target this many times")
    ap.add_argument("--native", action="store_true", help="no callgrind: CPU time and context switches per call "
                    "from /proc (server and client pinned to two cores; timing, so noisy under load)")
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args()
    if not a.native and shutil.which("valgrind") is None: sys.exit("valgrind is not installed (apt-get install valgrind)")
    print(f"load average {os.getloadavg()}; {a.calls} calls by {a.clients} clients after {a.warmup}; uvicorn {a.uvicorn}")
    results = []
    with tempfile.TemporaryDirectory(prefix="orw-cost-revs-") as revs:
        targets = [] if a.no_worktree else [("worktree", sys.executable, None, REPO/"openreward"/"examples.py")]
        for rev in a.rev:
            d = extract(rev, Path(revs)/rev.replace("/", "_"))
            targets.append((f"rev {rev}", sys.executable, str(d), d/"openreward"/"examples.py"))
        for t in a.tree: targets.append((f"tree {t}", sys.executable, str(Path(t).resolve()), Path(t).resolve()/"openreward"/"examples.py"))
        if a.reference: targets.append(("reference 0.1.167", str(ensure_reference_venv()), None, REPO/"openreward"/"examples.py"))
        for t in targets:
            for _ in range(a.repeat): results.append(measure(*t, a))
    print(f"load average {os.getloadavg()}")
    if a.json: Path(a.json).write_text(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()
