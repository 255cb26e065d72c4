"""Sandbox service benchmark (not a test): `run("true")` p50/p99 and throughput at 1 and 32 concurrent callers (each
with its own sandbox), through our sandbox service on uvicorn (driven by the reference SDK's sandbox client, in its
own venv) next to the in-process local backend, so the protocol's overhead is visible. Also the service's CPU time
per command (from /proc), which moves less with the machine's load than the wall-clock figures.

Usage: python tests/sandbox_service_benchmark.py [--runs 200] [--callers 1,32] [--clients reference,ours]
`ours` drives the service with our own client (`backend="hosted"`), when this build has it; add other clients to
CLIENTS. Run it on a quiet machine: it prints the load average next to the figures.
"""
from __future__ import annotations

import argparse, asyncio, json, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FIXTURES, ensure_reference_venv, free_port, stop_process, subprocess_env
from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
from openreward.sandbox_local import LocalBackend

KEY = "bench-key-0123456789"
SETTINGS = SandboxSettings(environment="bench/service", image="python:3.11-slim", machine_size="0.5:0.5")

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

async def timed_runs(boxes: list, runs: int) -> dict:
    "Each box's caller runs `runs` commands one after another, all callers at once: latencies and wall time."
    for b in boxes: await b.run("true")  # warm-up
    lat: list[float] = []
    async def caller(b):
        for _ in range(runs):
            t = time.perf_counter(); await b.run("true"); lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    await asyncio.gather(*(caller(b) for b in boxes))
    return {"lat": lat, "wall": time.perf_counter() - t}

async def in_process(callers: int, runs: int, root: Path) -> dict:
    "The anchor: our sandbox API on the local backend, in this process (no HTTP)."
    backend = LocalBackend(root=root)
    boxes = [AsyncSandboxesAPI(settings=SETTINGS, backend=backend) for _ in range(callers)]
    await asyncio.gather(*(b.start() for b in boxes))
    try: return await timed_runs(boxes, runs)
    finally: await asyncio.gather(*(b.stop() for b in boxes))

def reference_client(url: str, callers: int, runs: int) -> dict:
    "The reference SDK's sandbox client against the service (a subprocess in its venv)."
    python = ensure_reference_venv()
    r = subprocess.run([str(python), str(FIXTURES / "reference_sandbox_bench.py"), str(callers), str(runs)], capture_output=True,
                       text=True, timeout=1800, cwd=tempfile.gettempdir(),
                       env=subprocess_env(OPENREWARD_SESSION_URL=url, OPENREWARD_API_KEY=KEY, OPENREWARD_URL="http://127.0.0.1:9"))
    if r.returncode != 0: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def our_client(url: str, callers: int, runs: int) -> dict:
    "Our client (`backend=\"hosted\"`) against the service, in this process."
    async def main():
        boxes = [AsyncSandboxesAPI(base_url=url, api_key=KEY, settings=SETTINGS, backend="hosted") for _ in range(callers)]
        await asyncio.gather(*(b.start() for b in boxes))
        try: return await timed_runs(boxes, runs)
        finally: await asyncio.gather(*(b.stop() for b in boxes))
    return asyncio.run(main())

CLIENTS = {"reference": reference_client, "ours": our_client}  # name -> (service url, callers, runs) -> {"lat", "wall"}

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def row(name: str, callers: int, res: dict, cpu: float | None = None) -> str:
    lat, n = res["lat"], len(res["lat"])
    extra = f"{cpu / n * 1000:8.2f} ms" if cpu is not None else "       -"
    return (f"{name:<34} {callers:>7} {pct(lat, 50) * 1000:9.2f} ms {pct(lat, 99) * 1000:9.2f} ms {n / res['wall']:9.1f}/s  {extra}")

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200, help="commands per caller")
    ap.add_argument("--callers", default="1,32")
    ap.add_argument("--clients", default="reference,ours")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orw-svc-bench-", dir="/tmp")); os.chmod(root, 0o711)
    port = free_port()
    svc = subprocess.Popen([sys.executable, str(FIXTURES / "serve_sandbox_service.py"), "127.0.0.1", str(port), '{"max_commands": 256}'],
                           env=subprocess_env(OPENREWARD_SANDBOX_SERVICE_KEY=KEY, OPENREWARD_SANDBOX_DIR=str(root / "svc"),
                                              OPENREWARD_LOG_LEVEL="WARNING"), stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200: break
            except httpx.TransportError: pass
            if time.monotonic() > deadline or svc.poll() is not None: raise SystemExit("the service did not start")
            time.sleep(0.1)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs; {a.runs} runs per caller")
        print(f"{'path':<34} {'callers':>7} {'p50':>12} {'p99':>12} {'throughput':>11}  service CPU/run")
        for callers in map(int, a.callers.split(",")):
            (root / "local").mkdir(exist_ok=True); os.chmod(root / "local", 0o711)
            print(row("in-process local backend", callers, asyncio.run(in_process(callers, a.runs, root / "local"))), flush=True)
            for name in a.clients.split(","):
                before = cpu_seconds(svc.pid)
                try: res = CLIENTS[name](url, callers, a.runs)
                except Exception as e:
                    print(f"{'service, ' + name + ' client':<34} {callers:>7}  n/a ({type(e).__name__}: {str(e).splitlines()[0][:80]})"); continue
                print(row(f"service, {name} client", callers, res, cpu_seconds(svc.pid) - before), flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        stop_process(svc)
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
