"""Benchmark `orwd serve --workers`: 1 worker vs 2 behind nginx, next to the bare-Starlette anchor. Not a test.

    python tests/scale_benchmark.py [--quick] [--json FILE]

Servers, one after the other (never two at once), all serving the example environments on uvicorn:
  anchor      tests/fixtures/scale_anchor.py: bare Starlette answering the same requests (the stack's ceiling)
  ours        our Server, one process, direct (tests/fixtures/serve_examples.py, as tests/benchmark.py runs it)
  nginx+1     `serve_workers("openreward.examples", workers=1)` (nginx in front of one worker)
  nginx+2     the same with --workers 2
The load generator is tests/benchmark.py's (imported and run as `benchmark.py --loadgen SPEC`: raw HTTP/1.1
keep-alive over asyncio sockets, in its own process). Pinning on this machine (`taskset`-style, sched_setaffinity):
the load generator always on the last CPU; the anchor, ours and nginx+1's worker and nginx on the first; nginx+2's
workers one on each CPU (so with 2 CPUs the second worker shares the load generator's: no core is left free) and
nginx on the first. The CPU time of every server process (workers and nginx) in the measured window is read from
/proc, so "calls per server-CPU-second" compares the configurations' cost even where a core is missing.

Last, the kill phase: 32 sessions on `--workers 2` (tests/fixtures/scale_env.py, whose tool answers its pid), each
calling back to back; one worker is killed with SIGKILL mid-run. It counts, per session, the answers that were not
a success, split by whether the session lived on the killed worker, and whether the worker came back.
"""
from __future__ import annotations

import argparse, asyncio, json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchmark  # noqa: E402  (the load generator and its helpers)
from benchmark import Conn, cpu_s  # noqa: E402
from conftest import EXAMPLES_PY, FIXTURES, SERVE_EXAMPLES, free_port, stop_process, subprocess_env  # noqa: E402

CPUS = sorted(os.sched_getaffinity(0))
FIRST, LAST = {CPUS[0]}, {CPUS[-1]}
ORWD = [sys.executable, "-c", "import sys; from openreward.cli import main; sys.exit(main())"]

def descendants(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: ppid = int((d/"stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue
        if ppid == pid: out += [int(d.name), *descendants(int(d.name))]
    return out

def cmdline(pid: int) -> str:
    try: return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError: return ""

class Served:
    "One configuration under test: a process tree listening on 127.0.0.1:port, pinned as the docstring says."
    def __init__(self, name: str, argv: list[str], workers: int = 0, env: dict | None = None):
        self.name, self.port, self.workers = name, free_port(), workers
        self.tmp = tempfile.TemporaryDirectory(prefix=f"orw-scale-{name}-")
        self.log = open(Path(self.tmp.name)/"log", "w+b")
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=self.tmp.name, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=subprocess_env(**(env or {})))
        import httpx
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None: raise RuntimeError(f"{name} exited:\n{self.logs()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200 and \
                   len(self.worker_pids()) >= workers: break
            except httpx.TransportError: pass
            if time.monotonic() > deadline: raise RuntimeError(f"{name} did not start:\n{self.logs()}")
            time.sleep(0.1)
        self.pin()

    def worker_pids(self) -> list[int]:
        return sorted(p for p in descendants(self.proc.pid) if "--uds" in cmdline(p))

    def server_pids(self) -> list[int]:
        "Every process that serves: the workers and nginx (or the one server), not the idle supervisor."
        if not self.workers: return [self.proc.pid]
        return [p for p in descendants(self.proc.pid)]

    def pin(self) -> None:
        if len(CPUS) < 2: return
        if not self.workers: os.sched_setaffinity(self.proc.pid, FIRST); return
        workers = self.worker_pids()
        for p in descendants(self.proc.pid):
            if p not in workers: os.sched_setaffinity(p, FIRST)  # nginx master and workers
        for i, p in enumerate(workers): os.sched_setaffinity(p, {CPUS[i % len(CPUS)]})
        os.sched_setaffinity(self.proc.pid, FIRST)

    def cpu(self) -> float:
        total = 0.0
        for p in self.server_pids():
            try: total += cpu_s(p)
            except (OSError, IndexError): pass
        return total

    def logs(self) -> str:
        self.log.flush(); self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.proc, grace=30)
        self.log.close(); self.tmp.cleanup()

def loadgen(s: Served, phase: str, timeout: float, **spec) -> dict:
    "One phase of tests/benchmark.py's load generator against `s`, pinned to the last CPU; plus server CPU in the window."
    import threading
    proc = subprocess.Popen([sys.executable, benchmark.__file__, "--loadgen", json.dumps({"phase": phase, "port": s.port, **spec})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    if len(CPUS) >= 2: os.sched_setaffinity(proc.pid, LAST)
    timer = threading.Timer(timeout, proc.kill); timer.start()
    marks, res = {}, None
    try:
        for line in proc.stdout:
            line = line.strip()
            if line in ("START", "STOP"): marks[line] = (s.cpu(), time.perf_counter())
            elif line: res = json.loads(line)
        err = proc.stderr.read(); proc.wait()
    finally: timer.cancel()
    if proc.returncode != 0 or res is None:
        raise RuntimeError(f"{phase} on {s.name} failed (rc {proc.returncode}):\n{err[-3000:]}\n--- server ---\n{s.logs()}")
    (c0, t0), (c1, t1) = marks["START"], marks["STOP"]
    res["server_cpu_s"] = c1 - c0
    res["server_cores_busy"] = (c1 - c0) / (t1 - t0)
    res["calls_per_cpu_s"] = res["count"] / (c1 - c0) if c1 > c0 else None
    return res

CONFIGS = {
    "anchor": dict(argv=[sys.executable, str(FIXTURES/"scale_anchor.py"), "127.0.0.1", "{port}"]),
    "ours": dict(argv=[sys.executable, str(SERVE_EXAMPLES), "127.0.0.1", "{port}", str(EXAMPLES_PY)]),
    # `--workers 1` is the plain single server: one worker behind nginx is what serve_workers makes of workers=1
    "nginx+1": dict(argv=[sys.executable, "-c", "import sys; from openreward.scale import serve_workers; "
                          "serve_workers('openreward.examples', workers=1, port=int(sys.argv[1]))", "{port}"], workers=1),
    "nginx+2": dict(argv=[*ORWD, "serve", "openreward.examples", "--workers", "2", "--port", "{port}"], workers=2),
}

def measure(name: str, cfg: dict) -> dict:
    print(f"--- {name}", flush=True)
    s = Served(name, **CONFIGS[name])
    r = {}
    try:
        loadgen(s, "calls", 120, clients=8, duration=1.0, max_calls=None, warmup=0.5)  # warm up
        for c in (32, 128):
            r[f"calls_{c}"] = loadgen(s, "calls", cfg["duration"] + 120, clients=c, duration=cfg["duration"],
                                      max_calls=None, warmup=cfg["warmup"])
            print(f"    calls@{c}: {r[f'calls_{c}']['rate']:.0f}/s, p99 {r[f'calls_{c}']['p99_ms']:.1f} ms", flush=True)
        r["sessions"] = loadgen(s, "sessions", cfg["duration"] + 120, clients=32, duration=cfg["duration"], warmup=cfg["warmup"])
        print(f"    create+delete: {r['sessions']['rate']:.0f}/s", flush=True)
    finally: s.stop()
    return r

async def kill_phase(cfg: dict) -> dict:
    "32 sessions calling back to back on 2 workers; SIGKILL one worker mid-run; errors per side."
    s = Served("kill", [*ORWD, "serve", f"{FIXTURES/'scale_env.py'}:app", "--workers", "2", "--port", "{port}"], workers=2)
    try:
        before = s.worker_pids()
        victim = before[0]
        n = 32
        conns = [Conn(s.port) for _ in range(n)]
        sids = [f"kill-{i}-{os.getpid()}" for i in range(n)]
        body = json.dumps({"name": "pid", "input": {}}).encode()
        home = {}
        for c, sid in zip(conns, sids):
            assert (await c.request("POST", "/create", json.dumps({"task_spec": {"id": sid}}).encode(), sid))[0] == 200
            st, data = await c.request("POST", "/probe/call", body, sid)
            home[sid] = json.loads(data.split(b"data: ")[-1])["output"]["metadata"]["pid"]
        stats = {sid: {"ok": 0, "errors": 0, "statuses": {}} for sid in sids}
        stop = False

        async def client(c: Conn, sid: str):
            while not stop:
                try: st, data = await c.request("POST", "/probe/call", body, sid)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    stats[sid]["errors"] += 1; stats[sid]["statuses"]["transport"] = stats[sid]["statuses"].get("transport", 0) + 1
                    await c.close(); continue
                if benchmark.call_ok(st, data): stats[sid]["ok"] += 1
                else:
                    stats[sid]["errors"] += 1; stats[sid]["statuses"][st] = stats[sid]["statuses"].get(st, 0) + 1
                    await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(client(c, sid)) for c, sid in zip(conns, sids)]
        await asyncio.sleep(cfg["duration"] / 2)
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()
        while len(set(s.worker_pids()) - {victim}) < 2 and time.monotonic() - t_kill < 60: await asyncio.sleep(0.05)
        restarted_after = time.monotonic() - t_kill
        await asyncio.sleep(cfg["duration"] / 2)
        stop = True
        await asyncio.gather(*tasks)
        for c in conns: await c.close()
        lost = [sid for sid in sids if home[sid] == victim]
        kept = [sid for sid in sids if home[sid] != victim]
        statuses = {}
        for sid in lost:
            for k, v in stats[sid]["statuses"].items(): statuses[str(k)] = statuses.get(str(k), 0) + v
        return {"sessions": n, "on_killed_worker": len(lost), "on_other_worker": len(kept),
                "other_errors": sum(stats[s_]["errors"] for s_ in kept), "other_ok": sum(stats[s_]["ok"] for s_ in kept),
                "killed_side_error_statuses": statuses, "killed_sessions_that_failed": sum(stats[s_]["errors"] > 0 for s_ in lost),
                "restarted": len(set(s.worker_pids()) - set(before)) == 1, "restart_s": round(restarted_after, 2)}
    finally: s.stop()

def fmt(v, unit=""):
    if v is None: return "n/a"
    return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:,.2f}{unit}"

def report(r: dict) -> None:
    names = list(CONFIGS)
    rows = []
    for c in (32, 128):
        rows.append((f"tool calls/s @{c}", [r[n][f"calls_{c}"]["rate"] for n in names]))
        rows.append((f"call p99 @{c} (ms)", [r[n][f"calls_{c}"]["p99_ms"] for n in names]))
        rows.append((f"calls per server-CPU-s @{c}", [r[n][f"calls_{c}"]["calls_per_cpu_s"] for n in names]))
        rows.append((f"server cores busy @{c}", [r[n][f"calls_{c}"]["server_cores_busy"] for n in names]))
    rows.append(("sessions (create+delete)/s @32", [r[n]["sessions"]["rate"] for n in names]))
    rows.append(("errors (all phases)", [sum(r[n][k]["errors"] for k in ("calls_32", "calls_128", "sessions")) for n in names]))
    w = max(len(x[0]) for x in rows)
    print(f"\n{'metric':<{w}}  " + "  ".join(f"{n:>10}" for n in names))
    for label, vals in rows: print(f"{label:<{w}}  " + "  ".join(f"{fmt(v):>10}" for v in vals))
    a, o, n1, n2 = (r[n] for n in names)
    print()
    for c in (32, 128):
        print(f"@{c}: ours / anchor = {o[f'calls_{c}']['rate'] / a[f'calls_{c}']['rate']:.2f} (target >= 0.70); "
              f"nginx+2 / nginx+1 = {n2[f'calls_{c}']['rate'] / n1[f'calls_{c}']['rate']:.2f} (target >= 1.6 with a free core: "
              f"{'none here' if len(CPUS) <= 2 else 'yes'}); nginx+1 / ours = {n1[f'calls_{c}']['rate'] / o[f'calls_{c}']['rate']:.2f}")
    print(f"sessions/s: nginx+2 / nginx+1 = {n2['sessions']['rate'] / n1['sessions']['rate']:.2f}")
    k = r["kill"]
    print(f"\nkill phase: {k}")
    print(f"{'PASS' if k['other_errors'] == 0 and k['restarted'] else 'FAIL'}  zero errors on the surviving worker's "
          f"{k['on_other_worker']} sessions ({k['other_ok']} calls), killed worker restarted in {k['restart_s']} s")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short phases")
    ap.add_argument("--json", help="also write the raw figures here")
    a = ap.parse_args()
    cfg = dict(duration=5, warmup=1) if a.quick else dict(duration=15, warmup=2)
    print(f"load average before: {os.getloadavg()}; cpus {CPUS}; load generator on {LAST}; nproc {os.cpu_count()}")
    t0 = time.monotonic()
    r = {name: measure(name, cfg) for name in CONFIGS}
    r["kill"] = asyncio.run(kill_phase(cfg))
    report(r)
    print(f"\nload average after: {os.getloadavg()}; wall time {time.monotonic() - t0:.0f} s")
    if a.json: Path(a.json).write_text(json.dumps({"results": r, "cfg": cfg, "cpus": CPUS}, indent=1))

if __name__ == "__main__":
    main()
