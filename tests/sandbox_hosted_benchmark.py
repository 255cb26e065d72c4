"""The hosted sandbox protocol's overhead: `run("true")` latency (p50/p99) and throughput at 1 and 32 concurrent callers,
and a 64 MiB streamed transfer, through our sandbox service (uvicorn, local backend, its own process) with our
hosted client, next to the same calls on the in-process local backend. Client CPU per call is this process's CPU
time over the calls. Not a test: `python tests/sandbox_hosted_benchmark.py [--runs N]`; prints a table and the load.
"""
from __future__ import annotations

import argparse, asyncio, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import httpx

from conftest import free_port, stop_process, subprocess_env
from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
from openreward.sandbox_hosted import HostedBackend

KEY = "sk-bench"
SETTINGS = SandboxSettings(environment="bench/sandbox", image="python:3.11-slim", machine_size="0.5:0.5")

def start_service(root: str) -> tuple[str, subprocess.Popen]:
    port = free_port()
    code = (f"from openreward.sandbox_service import serve_sandbox_service as s; "
            f"s(port={port}, api_key={KEY!r}, log_level='warning', max_sandboxes=64, max_commands=128)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            env=subprocess_env(OPENREWARD_SANDBOX_DIR=root))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200: return url, proc
        except httpx.TransportError: time.sleep(0.1)
    stop_process(proc)
    raise SystemExit("the sandbox service did not start")

def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]

async def measure(make, callers: int, runs: int) -> dict:
    "Open `callers` sandboxes, run `runs` commands in each concurrently; latency and throughput."
    boxes = [make() for _ in range(callers)]
    await asyncio.gather(*(b.start() for b in boxes))
    try:
        for b in boxes: await b.run("true")  # warm connections
        lat: list[float] = []
        async def one(b):
            for _ in range(runs):
                t = time.perf_counter(); r = await b.run("true"); lat.append(time.perf_counter() - t)
                assert r.return_code == 0
        cpu, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(b) for b in boxes))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    finally:
        await asyncio.gather(*(b.stop() for b in boxes))
    return {"p50": pct(lat, 0.5) * 1e3, "p99": pct(lat, 0.99) * 1e3, "per_s": len(lat) / wall, "cpu_ms": cpu / len(lat) * 1e3}

async def transfer(make, size: int) -> tuple[float, float]:
    "MiB/s of upload_from and download_to of a `size`-byte file."
    tmp = Path(tempfile.mkdtemp())
    src = tmp / "src"; src.write_bytes(os.urandom(size))
    b = make()
    await b.start()
    try:
        t = time.perf_counter(); await b.upload_from(src, "/tmp/big"); up = time.perf_counter() - t
        t = time.perf_counter(); await b.download_to("/tmp/big", tmp / "back"); down = time.perf_counter() - t
    finally:
        await b.stop(); shutil.rmtree(tmp, ignore_errors=True)
    return size / 2**20 / up, size / 2**20 / down

async def main(runs: int) -> None:
    root = tempfile.mkdtemp(prefix="orw-bench-", dir="/tmp"); os.chmod(root, 0o711)
    url, proc = start_service(root)
    os.environ.setdefault("OPENREWARD_SANDBOX_DIR", tempfile.mkdtemp(prefix="orw-bench-local-", dir="/tmp"))
    os.chmod(os.environ["OPENREWARD_SANDBOX_DIR"], 0o711)
    try:
        hosted = lambda: AsyncSandboxesAPI(settings=SETTINGS, backend=HostedBackend(url, KEY))
        local = lambda: AsyncSandboxesAPI(settings=SETTINGS, backend="local")
        rows = []
        for callers, n in ((1, runs), (32, max(1, runs // 10))):
            h, l = await measure(hosted, callers, n), await measure(local, callers, n)
            rows.append((callers, h, l))
        th, tl = await transfer(hosted, 64 * 2**20), await transfer(local, 64 * 2**20)
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}, {os.cpu_count()} cores")
    print(f"{'':28} {'hosted (service, uvicorn)':>28} {'local (in process)':>22}")
    for callers, h, l in rows:
        print(f"run('true'), {callers:2} caller(s): p50 {h['p50']:6.1f} ms  p99 {h['p99']:6.1f} ms   p50 {l['p50']:6.1f} ms  p99 {l['p99']:6.1f} ms")
        print(f"{'':22} throughput {h['per_s']:7.0f}/s {'':12} {l['per_s']:7.0f}/s")
        print(f"{'':22} client CPU {h['cpu_ms']:6.2f} ms/call {'':7} {l['cpu_ms']:6.2f} ms/call")
    print(f"64 MiB upload_from / download_to: {th[0]:.0f} / {th[1]:.0f} MiB/s (hosted)   {tl[0]:.0f} / {tl[1]:.0f} MiB/s (local)")

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="commands per caller at 1 caller (a tenth of it at 32)")
    asyncio.run(main(ap.parse_args().runs))
