"""Sandbox benchmark (not a test): start, `run("true")` latency, 32 concurrent sandboxes, upload/download MiB/s, for the
local (bubblewrap) and docker backends, with the docker CLI's own `docker exec` / `docker exec -i ... cat` as the anchor.

Usage: python tests/sandbox_benchmark.py [--backends local,local-warm,docker] [--runs 200] [--mib 64]
`local-warm` is LocalBackend(warm=4): starts take a box launched ahead (starts are 0.1 s apart, time for the refill).
Docker figures need root, dockerd and busybox-static: the script starts its own dockerd (as the tests do) and stops it.
Run it on a quiet machine; it prints the load average next to the figures, since they move with it.
"""
from __future__ import annotations

import argparse, asyncio, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from openreward.sandbox import AsyncSandboxesAPI, SandboxSettings
from openreward.sandbox_docker import DockerBackend
from openreward.sandbox_local import LocalBackend

def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def ms(x: float) -> str: return f"{x * 1000:7.1f} ms"

async def bench(backend, image: str, runs: int, mib: int, tmp: Path) -> dict[str, str]:
    s = SandboxSettings(environment="bench/sandbox", image=image, machine_size="1:1")
    starts = []
    for _ in range(10):
        sb = AsyncSandboxesAPI(settings=s, backend=backend)
        t = time.perf_counter(); await sb.start(); starts.append(time.perf_counter() - t)
        await sb.stop()
        await asyncio.sleep(0.1)  # as an environment server's sessions come: the warm pool refills meanwhile
    out: dict[str, str] = {"start p50": ms(statistics.median(starts))}
    async with AsyncSandboxesAPI(settings=s, backend=backend) as sb:
        lat = []
        for _ in range(runs):
            t = time.perf_counter(); await sb.run("true"); lat.append(time.perf_counter() - t)
        out["run('true') p50"], out["run('true') p99"] = ms(pct(lat, 50)), ms(pct(lat, 99))
        src = tmp / "blob"
        src.write_bytes(os.urandom(mib * 1024 * 1024))
        t = time.perf_counter(); await sb.upload_from(src, "/tmp/blob"); up = time.perf_counter() - t
        t = time.perf_counter(); await sb.download_to("/tmp/blob", tmp / "back"); down = time.perf_counter() - t
        out["upload_from MiB/s"], out["download_to MiB/s"] = f"{mib / up:7.1f}", f"{mib / down:7.1f}"
    boxes = [AsyncSandboxesAPI(settings=s, backend=backend) for _ in range(32)]
    t = time.perf_counter()
    await asyncio.gather(*(b.start() for b in boxes))
    started = time.perf_counter() - t
    async def work(b):
        for _ in range(10): await b.run("echo $((6*7))")
    t = time.perf_counter(); await asyncio.gather(*(work(b) for b in boxes)); took = time.perf_counter() - t
    await asyncio.gather(*(b.stop() for b in boxes))
    if hasattr(backend, "aclose"): await backend.aclose()  # the warm boxes
    out["32 sandboxes: start all"] = ms(started)
    out["32 sandboxes x 10 runs: runs/s"] = f"{320 / took:7.1f}"
    return out

def docker_cli_anchor(sock: str, image: str, runs: int, mib: int, tmp: Path) -> dict[str, str]:
    dk = ["docker", "-H", f"unix://{sock}"]
    cid = subprocess.run(dk + ["run", "-d", "--init", "--network", "none", image, "sleep", "100000"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        lat = []
        for _ in range(min(runs, 100)):
            t = time.perf_counter(); subprocess.run(dk + ["exec", cid, "true"], check=True); lat.append(time.perf_counter() - t)
        src = tmp / "blob"
        with open(src, "rb") as f:
            t = time.perf_counter(); subprocess.run(dk + ["exec", "-i", cid, "sh", "-c", "cat > /tmp/blob"], stdin=f, check=True); up = time.perf_counter() - t
        with open(tmp / "cli-back", "wb") as f:
            t = time.perf_counter(); subprocess.run(dk + ["exec", cid, "cat", "/tmp/blob"], stdout=f, check=True); down = time.perf_counter() - t
        return {"start p50": "", "run('true') p50": ms(pct(lat, 50)), "run('true') p99": ms(pct(lat, 99)),
                "upload_from MiB/s": f"{mib / up:7.1f}", "download_to MiB/s": f"{mib / down:7.1f}",
                "32 sandboxes: start all": "", "32 sandboxes x 10 runs: runs/s": ""}
    finally: subprocess.run(dk + ["rm", "-f", cid], capture_output=True)

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="local,local-warm,docker")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    cols: dict[str, dict[str, str]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="orw-bench-"))
    root = Path(tempfile.mkdtemp(prefix="orw-bench-sbx-", dir="/tmp")); os.chmod(root, 0o711)
    try:
        chosen = args.backends.split(",")
        if "local" in chosen:
            cols["local"] = asyncio.run(bench(LocalBackend(root=root), "python:3.11-slim", args.runs, args.mib, tmp))
        if "local-warm" in chosen:
            cols["local (warm=4)"] = asyncio.run(bench(LocalBackend(root=root, warm=4), "python:3.11-slim", args.runs, args.mib, tmp))
        if "docker" in chosen:
            from sandbox_helpers import IMAGE, own_dockerd
            with own_dockerd() as sock:
                cols["docker"] = asyncio.run(bench(DockerBackend(socket_path=sock), IMAGE, args.runs, args.mib, tmp))
                if shutil.which("docker"): cols["docker CLI (anchor)"] = docker_cli_anchor(sock, IMAGE, args.runs, args.mib, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True); shutil.rmtree(root, ignore_errors=True)
    rows = list(next(iter(cols.values())))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({os.cpu_count()} CPUs)")
    print(f"{'':32}" + "".join(f"{c:>22}" for c in cols))
    for r in rows: print(f"{r:32}" + "".join(f"{cols[c].get(r, ''):>22}" for c in cols))

if __name__ == "__main__":
    main()
