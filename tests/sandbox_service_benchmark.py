"""The sandbox protocol's overhead, in one table (not a test): `run("true")` latency (p50/p99), throughput, and CPU per
call at 1 and 32 concurrent callers (each with its own sandbox), and 64 MiB streamed transfers, for

- our sandbox service (uvicorn, local backend, its own process) driven by the reference SDK's sandbox client (in its
  own venv) and by our client (`backend="hosted"`, in this process);
- the in-process local backend (no HTTP), the anchor.

"service CPU" is the service process's CPU time over the calls (from /proc), "client CPU" the caller's process time
over them: both move less with the machine's load than the wall-clock figures. The reference client takes part in the
`run` rows only (its transfers are a separate, base64-in-a-command path).

Usage: python tests/sandbox_service_benchmark.py [--runs 200] [--callers 1,32] [--clients reference,ours] [--transfer-mib 64]
Run it on a quiet machine: it prints the load average before and after the figures.
"""
from __future__ import annotations

import argparse, asyncio, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import httpx

from conftest import FIXTURES, ensure_reference_venv, free_port, stop_process, subprocess_env
from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
from openreward.sandbox_local import LocalBackend

KEY = "bench-key-0123456789"
SETTINGS = SandboxSettings(environment="bench/service", image="python:3.11-slim", machine_size="0.5:0.5")

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

async def timed_runs(boxes: list, runs: int) -> dict:
    "Each box's caller runs `runs` commands one after another, all callers at once: latencies, wall and CPU time."
    for b in boxes: await b.run("true")  # warm-up (connections, the sandbox's first bash)
    lat: list[float] = []
    async def caller(b):
        for _ in range(runs):
            t = time.perf_counter(); r = await b.run("true"); lat.append(time.perf_counter() - t)
            assert r.return_code == 0, r
    cpu, t = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(b) for b in boxes))
    return {"lat": lat, "wall": time.perf_counter() - t, "cpu": time.process_time() - cpu}

async def with_boxes(make, callers: int, body):
    boxes = [make() for _ in range(callers)]
    await asyncio.gather(*(b.start() for b in boxes))
    try: return await body(boxes)
    finally: await asyncio.gather(*(b.stop() for b in boxes))

async def transfer(make, size: int) -> dict:
    "Seconds of `upload_from` and `download_to` of a `size`-byte random file (checked on the way back)."
    tmp = Path(tempfile.mkdtemp(prefix="orw-bench-xfer-"))
    src, back = tmp / "src", tmp / "back"
    src.write_bytes(os.urandom(size))
    async def body(boxes):
        b = boxes[0]
        t = time.perf_counter(); await b.upload_from(src, "/tmp/big"); up = time.perf_counter() - t
        t = time.perf_counter(); await b.download_to("/tmp/big", back); down = time.perf_counter() - t
        assert back.read_bytes() == src.read_bytes(), "the file came back different"
        return {"up": up, "down": down}
    try: return await with_boxes(make, 1, body)
    finally: shutil.rmtree(tmp, ignore_errors=True)

def reference_client(url: str, callers: int, runs: int) -> dict:
    "The reference SDK's sandbox client against the service (a subprocess in its venv)."
    python = ensure_reference_venv()
    r = subprocess.run([str(python), str(FIXTURES / "reference_sandbox_bench.py"), str(callers), str(runs)], capture_output=True,
                       text=True, timeout=1800, cwd=tempfile.gettempdir(),
                       env=subprocess_env(OPENREWARD_SESSION_URL=url, OPENREWARD_API_KEY=KEY, OPENREWARD_URL="http://127.0.0.1:9"))
    if r.returncode != 0: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def ours(url: str):
    return lambda: AsyncSandboxesAPI(base_url=url, api_key=KEY, settings=SETTINGS, backend="hosted")

def our_client(url: str, callers: int, runs: int) -> dict:
    "Our client (`backend=\"hosted\"`) against the service, in this process."
    return asyncio.run(with_boxes(ours(url), callers, lambda boxes: timed_runs(boxes, runs)))

CLIENTS = {"reference": reference_client, "ours": our_client}  # name -> (service url, callers, runs) -> {"lat", "wall", "cpu"}

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

HEAD = f"{'path':<30} {'callers':>7} {'p50':>10} {'p99':>10} {'throughput':>11} {'service CPU':>12} {'client CPU':>11}"

def ms(x: float | None) -> str: return f"{x * 1000:7.2f} ms" if x is not None else f"{'-':>10}"

def row(name: str, callers: int, res: dict, service_cpu: float | None = None) -> str:
    n = len(res["lat"])
    return (f"{name:<30} {callers:>7} {ms(pct(res['lat'], 50))} {ms(pct(res['lat'], 99))} {n / res['wall']:9.1f}/s "
            f"{ms(service_cpu / n if service_cpu is not None else None):>12} {ms(res['cpu'] / n if 'cpu' in res else None):>11}")

def xfer_row(name: str, mib: int, res: dict) -> str:
    return f"{name:<30} {mib:>4} MiB upload_from {mib / res['up']:7.0f} MiB/s   download_to {mib / res['down']:7.0f} MiB/s"

def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200: return
        except httpx.TransportError: pass
        if time.monotonic() > deadline or proc.poll() is not None: raise SystemExit("the sandbox service did not start")
        time.sleep(0.1)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="commands per caller")
    ap.add_argument("--callers", default="1,32")
    ap.add_argument("--clients", default="reference,ours", help=f"service clients, of {sorted(CLIENTS)}")
    ap.add_argument("--transfer-mib", type=int, default=64, help="size of the streamed transfer (0: none)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orw-svc-bench-", dir="/tmp")); os.chmod(root, 0o711)
    for d in ("svc", "local"): (root / d).mkdir(); os.chmod(root / d, 0o711)
    port = free_port()
    svc = subprocess.Popen([sys.executable, str(FIXTURES / "serve_sandbox_service.py"), "127.0.0.1", str(port),
                            json.dumps({"max_sandboxes": 64, "max_commands": 256})],
                           env=subprocess_env(OPENREWARD_SANDBOX_SERVICE_KEY=KEY, OPENREWARD_SANDBOX_DIR=str(root / "svc"),
                                              OPENREWARD_LOG_LEVEL="WARNING"), stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    def in_process():  # a backend per sandbox: each measurement has its own event loop
        return AsyncSandboxesAPI(settings=SETTINGS, backend=LocalBackend(root=root / "local"))
    try:
        wait_up(url, svc)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs; {a.runs} runs per caller")
        print(HEAD)
        for callers in map(int, a.callers.split(",")):
            res = asyncio.run(with_boxes(in_process, callers, lambda boxes: timed_runs(boxes, a.runs)))
            print(row("in-process local backend", callers, res), flush=True)
            for name in a.clients.split(","):
                before = cpu_seconds(svc.pid)
                try: res = CLIENTS[name](url, callers, a.runs)
                except Exception as e:
                    print(f"{'service, ' + name + ' client':<30} {callers:>7}  n/a ({type(e).__name__}: {str(e).splitlines()[0][:80]})"); continue
                print(row(f"service, {name} client", callers, res, cpu_seconds(svc.pid) - before), flush=True)
        if a.transfer_mib:
            size = a.transfer_mib * 2**20
            print(xfer_row("in-process local backend", a.transfer_mib, asyncio.run(transfer(in_process, size))), flush=True)
            print(xfer_row("service, ours client", a.transfer_mib, asyncio.run(transfer(ours(url), size))), flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        stop_process(svc)
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
